"""The ``dynfit`` command line: a thin shell over the core functions.

Subcommands live in :mod:`napari_dynfit.commands`, one module per area; each module defines
``register(subparsers)`` which adds its subcommands and sets ``func(args) -> int`` on them.
Adding a module there is all it takes to add commands.

Errors raised on purpose (:class:`~napari_dynfit.errors.DynfitError`) are printed as one line,
``dynfit <command>: error: <message>``, with exit status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import __version__
from ._progress import TqdmProgress, progress_context
from .errors import Cancelled, DynfitError


def _command_modules():
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (all subcommands registered)."""
    parser = argparse.ArgumentParser(
        prog="dynfit",
        description="napari-dynfit: from fluorescence movies to learned physics (APR, tracking, fields, models).",
    )
    parser.add_argument("--version", action="version", version=f"dynfit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dynfit`` console script; returns the exit status."""
    os.environ.setdefault("QT_API", "pyqt6")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    bar = TqdmProgress(disable=args.quiet or not sys.stderr.isatty())
    try:
        with progress_context(bar):
            return int(args.func(args) or 0)
    except DynfitError as exc:
        if isinstance(exc, Cancelled):
            print(f"dynfit {args.command}: cancelled", file=sys.stderr)
            return 130
        msg = " ".join(str(exc).split())
        print(f"dynfit {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dynfit {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        bar.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
