"""Learned closures vs Bingham (issue 19): a priori, a posteriori and parameter estimation, on kinetic runs.

Runs (cached in ``--cache``): kinetic simulations at ``alpha`` = -2, -3, -4, -5 (training) and -2.5, -3.5, -4.5
(held out, inside the range) and -6 (outside), ``zeta = 0.3``, 32^2 x 32 angles, ``t = 0..30`` saved every 0.25,
isotropic start plus 20 % perturbation; frames from ``t = 10`` (frame 40) on are used (past the initial
instability). Then:

1. a priori: learned closure fitted on the training runs' ``(s, m4)``; relative Frobenius error of ``S`` and of the
   closed harmonics on the held-out runs, learned vs Bingham;
2. a posteriori training by unrolled time stepping (2 frames, moment data only);
3. a posteriori check on held-out runs: the moment model from frame 40 for ``--horizon`` frames (default 80, i.e.
   40x the unroll), mean ``|u|``, order parameter and velocity spectrum (k up to half the grid's maximum) vs the
   kinetic run over the same frames, learned vs Bingham;
4. parameter estimation: ``alpha`` of the held-out runs from their moment data, with the learned closure;
5. stationary windows: longer held-out runs (``alpha`` = -2.5, -3.5, seed 99, ``t = 0..60``); the moment model
   from ``t = 10`` to ``t = 60``, statistics over ``t = 20..60`` only (both transients discarded), with the kinetic
   run's own change between ``t = 20..40`` and ``t = 40..60`` (how stationary one window is);
6. active learning over the training ``alpha`` (pool: the four training runs, start from ``alpha = -3``, two
   rounds adding the worst-covered ``alpha``), held-out a-priori errors after each round.

``--plot PNG`` draws the a-priori errors against ``alpha`` and the long runs' velocity spectra.

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
LONG = (-2.5, -3.5)


def run_for(alpha: float, cache: Path, *, long: bool = False):
    """Kinetic run at ``alpha`` (cached): ``t = 0..30``, or ``t = 0..60`` with seed 99 when ``long``."""
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models.closure.kinetic import SuspensionParams, simulate_kinetic

    path = cache / f"kinetic_{'long_' if long else ''}alpha{alpha:+.2f}.npz"
    if path.exists():
        return FieldBundle.load(path)
    b = simulate_kinetic(SuspensionParams(alpha=alpha, zeta=0.3), t_end=60.0 if long else 30.0, save_every=0.25,
                         n=32, n_theta=32, dt=0.01, seed=99 if long else int(round(abs(alpha) * 10)), amplitude=0.2)
    b.save(path)
    return b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=None, help="folder for the kinetic runs (default: a temporary folder)")
    ap.add_argument("--horizon", type=int, default=80, help="a-posteriori frames (default 80 = 40x the unroll)")
    ap.add_argument("--a-priori-epochs", type=int, default=600)
    ap.add_argument("--a-posteriori-epochs", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--plot", default=None, help="PNG of the a-priori errors and the long runs' spectra")
    ap.add_argument("--save-closure", default=None, help="write the trained closure (.npz)")
    ap.add_argument("--skip-long", action="store_true", help="leave out the t = 0..60 runs (step 5)")
    args = ap.parse_args(argv)
    import tempfile

    import torch

    from napari_dynfit.models.closure import train as T
    from napari_dynfit.models.closure.learned import LearnedClosure
    from napari_dynfit.models.closure.moments import bingham_closure

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
    al_net = LearnedClosure(seed=0)
    al = T.active_learning(al_net, lambda a: runs[a], TRAIN, initial=(-3.0,), rounds=2, epochs=args.a_priori_epochs,
                           t_start=start)
    active = {"trained_on": al.trained_on,
              "pool_errors": [{str(k): v for k, v in e.items()} for e in al.errors],
              "held_out_S": {str(a): T.a_priori_error(al_net, runs[a], t_start=start) for a in HELD_OUT + OUTSIDE}}
    t_al = time.process_time() - t0
    t0 = time.process_time()
    T.fit_a_posteriori(net, [runs[a] for a in TRAIN], unroll_frames=2, epochs=args.a_posteriori_epochs, t_start=start)
    t_post = time.process_time() - t0
    if args.save_closure:
        net.save(args.save_closure)
    a_post = {}
    for a in HELD_OUT + OUTSIDE:
        a_post[a] = T.posterior_check(runs[a], {"learned": net, "bingham": bingham_closure}, t_start=start,
                                      horizon_frames=args.horizon)
    t0 = time.process_time()
    est = {a: T.estimate_parameters(runs[a].time_slice(start, start + 20), closure=net, fit=("alpha",)).values["alpha"]
           for a in HELD_OUT}
    t_est = time.process_time() - t0
    t0 = time.process_time()
    long_post = {}
    if not args.skip_long:
        for a in LONG:
            run = run_for(a, cache, long=True)
            long_post[a] = T.posterior_check(run, {"learned": net, "bingham": bingham_closure}, t_start=start,
                                             horizon_frames=len(run.coords["t"]) - start - 1, discard_frames=min(40, len(run.coords["t"]) - start - 4),
                                             spectra=True)
    t_long = time.process_time() - t0
    out = {"a_priori": {str(k): v for k, v in a_priori.items()},
           "a_posteriori": {str(k): v for k, v in a_post.items()},
           "estimate_alpha": {str(k): {"estimate": v, "rel_error": abs(v / k - 1)} for k, v in est.items()},
           "active_learning": active,
           "long_runs": {str(k): v for k, v in long_post.items()},
           "cpu_s": {"simulate": t_sim, "a_priori": t_prior, "active_learning": t_al, "a_posteriori": t_post,
                     "estimate": t_est, "long_runs": t_long},
           "horizon_frames": args.horizon, "unroll_frames": 2}
    if args.plot:
        plot(out, args.plot)
    if args.json:
        print(json.dumps(out, default=float))
    else:
        for a, v in a_priori.items():
            print(f"alpha {a:+.1f} a priori S error: learned {v['learned_S']:.4f}, Bingham {v['bingham_S']:.4f}")
        for a, v in a_post.items():
            print(f"alpha {a:+.1f} a posteriori: {json.dumps(v, default=float)}")
        for a, v in est.items():
            print(f"alpha {a:+.1f}: estimated {v:.4f} ({abs(v / a - 1):.2%})")
        print(f"active learning: trained on {al.trained_on}, held-out S errors {active['held_out_S']}")
        for a, v in long_post.items():
            print(f"alpha {a:+.1f} t = 20..60: {json.dumps({k: w for k, w in v.items()}, default=float)}")
    return 0


def plot(out: dict, path) -> None:
    """A-priori S error against alpha (learned, Bingham) and the long runs' velocity spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longs = out["long_runs"]
    fig, axes = plt.subplots(1, 1 + len(longs), figsize=(4.2 * (1 + len(longs)), 3.6), layout="constrained")
    axes = np.atleast_1d(axes)
    alphas = sorted((float(a) for a in out["a_priori"]), reverse=True)
    for key, lab, mk in (("learned_S", "learned", "o-"), ("bingham_S", "Bingham", "s--")):
        axes[0].plot(alphas, [out["a_priori"][str(a)][key] for a in alphas], mk, label=lab)
    axes[0].axvspan(min(TRAIN), max(TRAIN), color="0.9", label="trained range")
    axes[0].set(xlabel="alpha", ylabel="relative error of S (held out)", title="a priori")
    axes[0].legend(fontsize=8)
    for ax, (a, v) in zip(axes[1:], longs.items()):
        k = np.asarray(v["data"]["k"])
        for name, style in (("data", "k-"), ("learned", "C0o-"), ("bingham", "C1s--")):
            if "spectrum" in v.get(name, {}):
                ax.loglog(k[1:], np.asarray(v[name]["spectrum"])[1:], style, ms=3,
                          label="kinetic" if name == "data" else name)
        ax.axvline(k[len(k) // 2], color="0.6", lw=0.8)
        ax.set(xlabel="k", ylabel="E(k)", title=f"alpha {float(a):g}, t = 20..60")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
