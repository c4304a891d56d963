"""Probability flow inference: the issue's figures and CPU/GPU runtimes, printed as JSON.

    python benchmarks/bench_pfi.py [--case ou2|ou2-cli|ou10|bistable|all] [--quick] [--threads 1] [--jobs 1]
        [-o out.json] [--markdown] [--render out.json]

``--case ou2-cli`` runs ``dynfit infer-flow`` with default options on 4 held-out 2D drifts x 2 seeds (8-11 x 2, 3; separate
processes; ``--threads 0`` leaves the CLI's thread default). ``--markdown`` also prints its table of
docs/flow.md; ``--render out.json`` prints that table from a saved result without running anything.

Same as ``dynfit bench pfi``. Cases and figures are described in :mod:`napari_dynfit.bench.pfi_cases`.
"""

import argparse
import sys

from napari_dynfit._io import emit_json
from napari_dynfit.bench.pfi_cases import ou2_cli_markdown, run_benchmarks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=("ou2", "ou2-cli", "ou10", "bistable", "all"), default="all")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (GPU when present)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="ou2-cli: CLI runs at a time (each timed on its own)")
    p.add_argument("-o", "--output")
    p.add_argument("--markdown", action="store_true", help="ou2-cli: also print the docs/flow.md table")
    p.add_argument("--render", help="print the ou2-cli table of a saved result (JSON) and exit")
    args = p.parse_args(argv)
    if args.render:
        import json
        from pathlib import Path

        print(ou2_cli_markdown(json.loads(Path(args.render).read_text())))
        return 0
    result = run_benchmarks(args.case, quick=args.quick, device=args.device, seed=args.seed, threads=args.threads,
                            jobs=args.jobs)
    emit_json(result, args.output, indent=2)
    if args.markdown and "ou2_cli" in result:
        print(ou2_cli_markdown(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
