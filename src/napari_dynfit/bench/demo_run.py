"""``dynfit demo`` as a user runs it: wall time, peak memory and the stages' times, printed as JSON.

Usage::

    python -m napari_dynfit.bench.demo_run [--quick] [--keep DIR]

Runs ``python -m napari_dynfit.cli demo -o DIR`` in a child process (a temporary folder unless ``--keep``) and
prints one JSON object: ``wall_s`` (the child's wall time, imports included), ``peak_rss_gb`` (the child's peak
resident memory, from ``getrusage(RUSAGE_CHILDREN)``; Linux reports kB), ``stages_s`` (the demo's own
``timings.json``: seconds per stage), ``stages_sum_s``, ``skipped_stages`` (the stages the demo skipped, e.g.
for a missing extra, with its one-line reason) and the load average before and after (timings on a shared machine are
noisy). The same figure as ``/usr/bin/time -v dynfit demo -o DIR``, machine-readable.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the demo's --quick sizes")
    ap.add_argument("--keep", help="write the demo here (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dynfit-demo-") as tmp:
        out = Path(args.keep) if args.keep else Path(tmp) / "demo"
        cmd = [sys.executable, "-m", "napari_dynfit.cli", "demo", "-o", str(out)] + (["--quick"] if args.quick else [])
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()
            sys.exit(f"dynfit demo failed ({proc.returncode}): {tail[-1] if tail else 'no output'}")
        rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
        stages = json.loads((out / "timings.json").read_text())
    skipped = [ln.split("dynfit demo: ", 1)[1] for ln in proc.stderr.splitlines() if "dynfit demo: stage" in ln]
    result = {"quick": args.quick, "wall_s": wall, "peak_rss_gb": rss_gb, "stages_s": stages,
              "stages_sum_s": float(sum(v for v in stages.values() if isinstance(v, (int, float)))),
              "n_stages": len(stages), "skipped_stages": skipped,
              "load_average_before": load0[0], "load_average_after": os.getloadavg()[0], "cpus": os.cpu_count()}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
