"""``dynfit bench pfi``: probability flow inference on OU snapshots and bistable growth (:mod:`.pfi_cases`).

``--case ou2-cli`` runs ``dynfit infer-flow`` with default options on 4 held-out 2D drifts x 2 seeds (8-11 x 2, 3;
separate processes, ``--jobs`` at a time; ``--threads 0`` leaves the CLI's thread default); ``--markdown`` adds its
table of docs/flow.md to the JSON (``markdown``); ``--render out.json`` makes that table from a saved result without
running anything.
"""

from __future__ import annotations

from ..validate import positive_int
from . import add_threads

NAME = "pfi"
HELP = "probability flow inference: OU drift errors, bistable growth (balanced vs unbalanced), runtimes"


def add_arguments(parser) -> None:
    parser.add_argument("--case", choices=("ou2", "ou2-cli", "ou10", "bistable", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, not the issue's figures)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (GPU when present)")
    parser.add_argument("--seed", type=int, default=0)
    add_threads(parser)
    parser.add_argument("--jobs", type=positive_int, default=1, help="ou2-cli: CLI runs at a time (each timed on its own)")
    parser.add_argument("--markdown", action="store_true", help="ou2-cli: add the docs/flow.md table ('markdown')")
    parser.add_argument("--render", metavar="RESULT.json",
                        help="only make the ou2-cli table of a saved result (JSON 'markdown'); runs nothing")


def run(args) -> dict:
    if args.render:
        import json
        from pathlib import Path

        from .pfi_cases import ou2_cli_markdown

        return {"markdown": ou2_cli_markdown(json.loads(Path(args.render).read_text()))}
    from .pfi_cases import ou2_cli_markdown, run_benchmarks

    result = run_benchmarks(case=args.case, quick=args.quick, device=args.device, seed=args.seed,
                            threads=args.threads, jobs=args.jobs)
    if args.markdown and "ou2_cli" in result:
        result["markdown"] = ou2_cli_markdown(result)
    return result
