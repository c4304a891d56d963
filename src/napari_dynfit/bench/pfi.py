"""``dynfit bench pfi``: probability flow inference on OU snapshots and bistable growth (:mod:`.pfi_cases`)."""

from __future__ import annotations

from . import add_threads

NAME = "pfi"
HELP = "probability flow inference: OU drift errors, bistable growth (balanced vs unbalanced), runtimes"


def add_arguments(parser) -> None:
    parser.add_argument("--case", choices=("ou2", "ou2-cli", "ou10", "bistable", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, not the issue's figures)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    add_threads(parser)


def run(args) -> dict:
    from .pfi_cases import run_benchmarks

    return run_benchmarks(case=args.case, quick=args.quick, device=args.device, seed=args.seed,
                          threads=args.threads)
