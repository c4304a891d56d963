"""The ``dynfit`` command line: a thin shell over the core functions.

Subcommands live in :mod:`napari_dynfit.commands`, one module per area; each module defines
``register(subparsers)`` which adds its subcommands and sets ``func(args) -> int`` on them.
Adding a module there is all it takes to add commands.

Safety (``docs/safety.md``):

* every error is one line on stderr, ``dynfit <command>: error: <message>``, exit status 2 (bad
  flags included: argparse's usage block is not printed); no traceback is ever printed (set
  ``DYNFIT_DEBUG=1`` to see one);
* before the command runs: flags are range-checked (:mod:`napari_dynfit.validate`), inputs must
  exist and be complete (``.npy``, TIFF series, dynfit Zarr stores), outputs are checked
  (:func:`napari_dynfit._io.check_output`: suffix, writable folder, an existing file or folder or
  an input is never replaced without ``--overwrite``; side outputs declared with
  ``set_defaults(side_outputs=f(args))`` likewise);
* the command runs in :func:`napari_dynfit._io.output_transaction`: when it fails or is interrupted,
  the outputs it wrote are removed again and replaced files restored;
* Ctrl-C (SIGINT) exits with 130 and SIGTERM with 143, one line, temporaries removed, worker
  processes ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings


class Terminated(BaseException):
    """SIGTERM (or SIGHUP) arrived: unwinds like ``KeyboardInterrupt`` so that cleanups run."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def _early_signal(signum, frame):  # pragma: no cover - only during start-up
    os.write(2, f"dynfit: {'interrupted' if signum == signal.SIGINT else 'terminated'}\n".encode())
    os._exit(128 + signum)


def _install_early_handlers() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(sig, _early_signal)


if __name__ == "__main__":  # pragma: no cover
    _install_early_handlers()
elif __name__ == "__mp_main__":  # pragma: no cover - a spawned worker: Ctrl-C is the parent's business
    signal.signal(signal.SIGINT, signal.SIG_IGN)

import argparse  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402

from . import __version__  # noqa: E402
from ._progress import TqdmProgress, progress_context  # noqa: E402
from .errors import Cancelled, DynfitError, InputError  # noqa: E402


class DynfitArgumentParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``dynfit CMD: error: ... (see --help)``), exit 2."""

    def error(self, message):
        msg = " ".join(str(message).split())
        # the full command ("dynfit closure train"), as the errors of the work (main names the parser that parsed)
        self.exit(2, f"{self.prog}: error: {msg} (see '{self.prog} --help')\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but unrecognized arguments are the error of the (sub)command given them
        (``dynfit closure train: error: unrecognized arguments: --bogus``), never of ``dynfit``."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            _leaf(self, parsed).error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def _command_modules():
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield action


def _walk(parser):
    yield parser
    for action in _subparsers(parser):
        for sp in dict.fromkeys(action.choices.values()):
            yield from _walk(sp)


def _has_output(parser) -> bool:
    from .validate import output

    kinds = {output().__name__}
    return any(getattr(a.type, "__name__", None) in kinds for a in parser._actions)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (all subcommands registered)."""
    parser = DynfitArgumentParser(
        prog="dynfit",
        description="napari-dynfit: from fluorescence movies to learned physics (APR, tracking, fields, models).",
    )
    parser.add_argument("--version", action="version", version=f"dynfit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        mod.register(sub)
    from .validate import seed_int

    for p in _walk(parser):
        for a in p._actions:  # random seeds: 0 .. 2**32 - 1 (a negative one failed inside numpy: internal error)
            if a.type is int and (a.dest == "seed" or a.dest.endswith("seeds")):
                a.type = seed_int
        if _has_output(p) and not any("--overwrite" in a.option_strings for a in p._actions):
            p.add_argument("--overwrite", action="store_true",
                           help="replace existing output files and folders that dynfit wrote, or an output equal to "
                                "an input (a folder dynfit did not write is never replaced)")
    return parser


def _leaf(parser, args):
    """The (sub)parser that parsed ``args``."""
    for action in _subparsers(parser):
        name = getattr(args, action.dest, None)
        if name in action.choices:
            return _leaf(action.choices[name], args)
    return parser


def _values(v):
    if isinstance(v, (list, tuple)):
        for x in v:
            yield from _values(x)
    elif isinstance(v, (str, os.PathLike)):
        yield v


def check_args(parser, args) -> list:
    """Every check that comes before the work: flags, inputs (exist, complete), outputs (see :mod:`._io`)."""
    from pathlib import Path

    from ._io import check_input_integrity, check_output, note_new_folders
    from .validate import OutputPath, run_checks

    leaf = _leaf(parser, args)
    run_checks(args)
    outputs, inputs = [], []
    for action in leaf._actions:
        value = getattr(args, action.dest, None)
        if action.dest in ("help", "command") or isinstance(action, argparse._SubParsersAction) or value is None:
            continue
        for v in _values(value):
            if isinstance(v, OutputPath):
                outputs.append((action, v))
                continue
            if not action.option_strings and not Path(v).expanduser().exists() and not os.path.lexists(v):
                raise InputError(f"input '{v}' does not exist: check the path")
            if os.path.lexists(Path(v).expanduser()):
                inputs.append(v)
    for v in inputs:
        check_input_integrity(v)
    seen = {}
    overwrite = bool(getattr(args, "overwrite", False))
    for action, v in outputs:
        flag = "/".join(action.option_strings) or action.dest
        key = os.path.abspath(os.path.expanduser(v))
        if key in seen:
            raise InputError(f"{flag} and {seen[key]} name the same path '{v}': give different outputs")
        seen[key] = flag
        estimate = getattr(args, "output_estimate", None)
        check_output(v, kind=v.kind, suffixes=v.suffixes, overwrite=overwrite, inputs=inputs, flag=flag.split("/")[-1],
                     estimate_bytes=estimate(args) if callable(estimate) and action.dest == "output" else 0)
        note_new_folders(v)
    side = getattr(args, "side_outputs", None)  # files written beside the outputs: set_defaults(side_outputs=f(args))
    for v in (side(args) if callable(side) else ()):
        key = os.path.abspath(os.path.expanduser(v))
        if key in seen:
            raise InputError(f"{seen[key]} names '{v}', which this command also writes beside its output: "
                             "choose another path")
        seen[key] = "side output"
        check_output(v, kind="file", overwrite=overwrite, inputs=inputs, flag="side output")
    return inputs


def _children() -> set:
    try:
        import psutil

        return {p.pid for p in psutil.Process().children(recursive=True)}
    except Exception:  # noqa: BLE001 - psutil missing or the process table unreadable
        return set()


def _end_children(before: set) -> None:
    """End the worker processes this command started (Dask pools, local clusters)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        import multiprocessing

        for p in multiprocessing.active_children():
            p.terminate()
        return
    try:
        procs = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        for p in procs:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=3)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
    except Exception:  # noqa: BLE001
        pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


#: signals received during this run of :func:`main` (their exception may be swallowed where Python cannot raise it:
#: an import lock's weakref callback, a ``__del__``; main then still ends the command for them)
_SIGNALS_SEEN: list[int] = []


def _raise_signal(signum, frame):
    _SIGNALS_SEEN.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _quiet_unraisable(hook):
    """``sys.unraisablehook`` that prints nothing for the exception of a signal (recorded in ``_SIGNALS_SEEN``)."""
    def quiet(unraisable):
        if isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
            return
        hook(unraisable)

    return quiet


def _command_name(argv) -> str:
    """``dynfit COMMAND`` from the raw arguments (for a signal that arrives before they are parsed)."""
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    return f"dynfit {words[0]}" if words and words[0].replace("-", "").isalnum() else "dynfit"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dynfit`` console script; returns the exit status."""
    previous = {}
    _SIGNALS_SEEN.clear()
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _raise_signal)
    except (ValueError, AttributeError):  # not the main thread / no SIGHUP
        pass
    unraisable = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(unraisable)
    children = set()
    inputs = []
    name = _command_name(argv)
    status = 1
    bar = None
    try:  # from the first statement after the handlers: a signal here is one line too, never a traceback
        import logging

        from ._io import output_transaction

        children = _children()

        from ._headless import headless_pyapr

        os.environ.setdefault("QT_API", "pyqt6")
        headless_pyapr()
        logging.getLogger("tifffile").setLevel(logging.ERROR)  # its warnings become our one-line errors
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0 if args.command is None else 2
        name = _leaf(parser, args).prog  # "dynfit closure train": the full command, as its parser's errors
        bar = TqdmProgress(disable=args.quiet or not sys.stderr.isatty())
        with progress_context(bar), output_transaction(), warnings.catch_warnings():
            if not sys.warnoptions and not os.environ.get("DYNFIT_DEBUG"):
                warnings.simplefilter("ignore")  # library warnings are not for the terminal (one line per error)
            inputs = check_args(parser, args)
            status = int(args.func(args) or 0)
            if _SIGNALS_SEEN:  # a signal whose exception was swallowed on the way: the run is interrupted all the same
                _raise_signal(_SIGNALS_SEEN[0], None)
            if status == 0:
                _quiet_signals()  # the work is done: the outputs are committed, a late signal changes nothing
        return status
    except DynfitError as exc:
        if isinstance(exc, Cancelled):
            print(f"{name}: cancelled", file=sys.stderr)
            status = 130
            return status
        print(f"{name}: error: {_one_line(exc)}", file=sys.stderr)
        status = 2
        return status
    except KeyboardInterrupt:
        _quiet_signals()
        print(f"{name}: interrupted", file=sys.stderr)
        status = 130
        return status
    except Terminated as exc:
        _quiet_signals()
        print(f"{name}: terminated", file=sys.stderr)
        status = 128 + exc.signum
        return status
    except SystemExit as exc:  # argparse: --help and --version (raised on), usage errors (exit status 2)
        if exc.code in (0, None):
            status = 0
            raise
        status = exc.code if isinstance(exc.code, int) else 2
        return status
    except MemoryError:
        print(f"{name}: error: not enough memory for this input: use a smaller input or the options that reduce "
              "the work (see --help)", file=sys.stderr)
        status = 2
        return status
    except BrokenPipeError:  # stdout closed early (dynfit info ... | head): not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
        return status
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"{name}: error: {exc.strerror or _one_line(exc)}{where}: check the disk and the paths",
              file=sys.stderr)
        status = 2
        return status
    except Exception as exc:  # noqa: BLE001 - never a traceback on the user's terminal
        if os.environ.get("DYNFIT_DEBUG"):
            raise
        from .extras import extra_message

        if (line := extra_message(exc)) is not None:  # an optional extra is not installed
            print(f"{name}: error: {line}", file=sys.stderr)
            status = 2
            return status
        from ._io import diagnose_input

        try:
            for path in inputs:  # a damaged input is the usual cause: name the place
                diagnose_input(path)
        except InputError as found:
            print(f"{name}: error: {_one_line(found)}", file=sys.stderr)
            status = 2
            return status
        except Exception:  # noqa: BLE001
            pass
        print(f"{name}: internal error: {exc.__class__.__name__}: {_one_line(exc)} (please report it; "
              "DYNFIT_DEBUG=1 shows the traceback)", file=sys.stderr)
        status = 1
        return status
    finally:
        # run as the program (argv None), signals stay ignored from here on: one arriving during the interpreter's
        # teardown must not kill the process with the default action once its status is decided
        if argv is None or status != 0:
            _quiet_signals()
        if status != 0:
            from ._io import remove_temporaries

            remove_temporaries()
            _end_children(children)
        if bar is not None:
            bar.close()
        if argv is not None:  # called from Python (tests, scripts): give the caller its handlers back
            sys.unraisablehook = unraisable
            for sig, handler in previous.items():
                try:
                    signal.signal(sig, handler)
                except (ValueError, TypeError):
                    pass
        elif status in (128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGHUP):
            # interrupted, cleaned up: leave now, so that nothing of the interpreter's teardown (library exit
            # handlers, threads still finishing I/O) can print or change the status
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)


def _quiet_signals() -> None:
    """Ignore further SIGINT/SIGTERM while cleaning up (a second Ctrl-C must not leave a traceback)."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
    except (ValueError, AttributeError):
        pass


def run() -> None:  # pragma: no cover
    """Console entry: install the start-up signal handlers, run :func:`main`, exit with its status."""
    _install_early_handlers()
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
