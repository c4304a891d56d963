"""Probability flow inference: the issue's figures and CPU/GPU runtimes, printed as JSON.

    python benchmarks/bench_pfi.py [--case ou2|ou2-cli|ou10|bistable|all] [--quick] [--threads 1] [--jobs 1]
        [-o out.json]

``--case ou2-cli`` runs ``dynfit infer-flow`` with default options on 4 held-out 2D drifts x 2 seeds (separate
processes; ``--threads 0`` leaves the CLI's thread default).

Same as ``dynfit bench pfi``. Cases and figures are described in :mod:`napari_dynfit.models.flow.bench`.
"""

import argparse
import sys

from napari_dynfit._io import emit_json
from napari_dynfit.models.flow.bench import run_benchmarks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=("ou2", "ou2-cli", "ou10", "bistable", "all"), default="all")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (GPU when present)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="ou2-cli: CLI runs at a time (each timed on its own)")
    p.add_argument("-o", "--output")
    args = p.parse_args(argv)
    result = run_benchmarks(args.case, quick=args.quick, device=args.device, seed=args.seed, threads=args.threads,
                            jobs=args.jobs)
    emit_json(result, args.output, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
