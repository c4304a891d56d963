"""Learned closures vs Bingham (issue 19): a priori, a posteriori and parameter estimation, on kinetic runs.

Runs (cached in ``--cache``): kinetic simulations at ``alpha`` = -2, -3, -4, -5 (training) and -2.5, -3.5, -4.5
(held out, inside the range) and -6 (outside), ``zeta = 0.3``, 32^2 x 32 angles, ``t = 0..30`` saved every 0.25,
isotropic start plus 20 % perturbation; frames from ``t = 10`` (frame 40) on are used (past the initial
instability). Then:

1. a priori: learned closure fitted on the training runs' ``(s, m4)``; relative Frobenius error of ``S`` and of the
   closed harmonics on the held-out runs, learned vs Bingham;
2. a posteriori training by unrolled time stepping (2 frames, moment data only);
3. a posteriori check on held-out runs: the moment model from frame 40 for ``--horizon`` frames (default 40, i.e.
   20x the unroll), mean ``|u|``, order parameter and velocity spectrum (k up to half the grid's maximum) vs the
   kinetic run over the same frames, learned vs Bingham;
4. parameter estimation: ``alpha`` of the held-out runs from their moment data, with the learned closure.

Prints one JSON object (``--json``) or a text table. Usage::

    python benchmarks/bench_closure.py --cache /tmp/closure-runs --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

TRAIN = (-2.0, -3.0, -4.0, -5.0)
HELD_OUT = (-2.5, -3.5, -4.5)
OUTSIDE = (-6.0,)


def run_for(alpha: float, cache: Path, *, t_end: float = 30.0):
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models.closure.kinetic import SuspensionParams, simulate_kinetic

    path = cache / f"kinetic_alpha{alpha:+.2f}.npz"
    if path.exists():
        return FieldBundle.load(path)
    b = simulate_kinetic(SuspensionParams(alpha=alpha, zeta=0.3), t_end=t_end, save_every=0.25, n=32, n_theta=32,
                         dt=0.01, seed=int(round(abs(alpha) * 10)), amplitude=0.2)
    b.save(path)
    return b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=None, help="folder for the kinetic runs (default: a temporary folder)")
    ap.add_argument("--horizon", type=int, default=40, help="a-posteriori frames (default 40 = 20x the unroll)")
    ap.add_argument("--a-priori-epochs", type=int, default=600)
    ap.add_argument("--a-posteriori-epochs", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    import tempfile

    import torch

    from napari_dynfit.models.closure.learned import LearnedClosure
    from napari_dynfit.models.closure.moments import bingham_closure
    from napari_dynfit.models.closure import train as T

    torch.set_num_threads(1)
    cache = Path(args.cache or tempfile.mkdtemp(prefix="closure-runs-"))
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    runs = {a: run_for(a, cache) for a in TRAIN + HELD_OUT + OUTSIDE}
    t_sim = time.process_time() - t0
    start = 40
    net = LearnedClosure(seed=0)
    t0 = time.process_time()
    T.fit_a_priori(net, T.closure_samples([runs[a] for a in TRAIN], t_start=start), epochs=args.a_priori_epochs)
    a_priori = {a: {"learned_S": T.a_priori_error(net, runs[a], t_start=start),
                    "bingham_S": T.a_priori_error(bingham_closure, runs[a], t_start=start),
                    "learned_q4": T.a_priori_harmonic_error(net, runs[a], t_start=start),
                    "bingham_q4": T.a_priori_harmonic_error(bingham_closure, runs[a], t_start=start)}
                for a in HELD_OUT + OUTSIDE}
    t_prior = time.process_time() - t0
    t0 = time.process_time()
    T.fit_a_posteriori(net, [runs[a] for a in TRAIN], unroll_frames=2, epochs=args.a_posteriori_epochs, t_start=start)
    t_post = time.process_time() - t0
    a_post = {}
    for a in HELD_OUT + OUTSIDE:
        a_post[a] = T.posterior_check(runs[a], {"learned": net, "bingham": bingham_closure}, t_start=start,
                                      horizon_frames=args.horizon)
    t0 = time.process_time()
    est = {a: T.estimate_parameters(runs[a].time_slice(start, start + 20), closure=net, fit=("alpha",)).values["alpha"]
           for a in HELD_OUT}
    t_est = time.process_time() - t0
    out = {"a_priori": {str(k): v for k, v in a_priori.items()},
           "a_posteriori": {str(k): v for k, v in a_post.items()},
           "estimate_alpha": {str(k): {"estimate": v, "rel_error": abs(v / k - 1)} for k, v in est.items()},
           "cpu_s": {"simulate": t_sim, "a_priori": t_prior, "a_posteriori": t_post, "estimate": t_est},
           "horizon_frames": args.horizon, "unroll_frames": 2}
    if args.json:
        print(json.dumps(out, default=float))
    else:
        for a, v in a_priori.items():
            print(f"alpha {a:+.1f} a priori S error: learned {v['learned_S']:.4f}, Bingham {v['bingham_S']:.4f}")
        for a, v in a_post.items():
            print(f"alpha {a:+.1f} a posteriori: {json.dumps(v, default=float)}")
        for a, v in est.items():
            print(f"alpha {a:+.1f}: estimated {v:.4f} ({abs(v / a - 1):.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
