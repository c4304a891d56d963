"""The ``--scheduler`` / ``--workers`` options of the commands that run per-frame work (:mod:`napari_dynfit.parallel`)."""

from __future__ import annotations

from ..parallel import SCHEDULER_HELP


def add_scheduler_arguments(parser, default: str = "threads") -> None:
    """Add ``--scheduler`` and ``--workers`` to a command's argparse parser (same help everywhere).

    ``default``: ``"threads"`` for work that releases the GIL, ``"processes"`` for work that holds it.
    """
    parser.add_argument("--scheduler", default=default, help=f"where per-frame work runs: {SCHEDULER_HELP} "
                                                             f"(default {default})")
    parser.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU cores)")
