"""Negative Psi in the closure benchmark's kinetic runs: how far each is from a density, and what resolves it.

The exact ``Psi(x, theta, t)`` of the kinetic theory stays non-negative; a spectral run that is sharper than
its grid resolves oscillates below zero, and then its moments (``D``, ``S``: the closures' ground truth) need
not be a distribution's. For each run (``--alphas``; seed ``10 |alpha|`` as the benchmark's, or ``--seed``) and
each variant of the numerics (``--variants``, one setting changed from the defaults at a time) this integrates
the kinetic theory from the benchmark's start and reports, over the frames from ``t = SETTLE_T`` (10) on, saved
every ``--every`` time units:

- ``negative_mass``: the share of ``int |Psi|`` on negative values (mean and largest over the frames);
- ``min_ratio``: the smallest ``min Psi / max Psi``;
- ``negative_points``: the fraction of ``(theta, x)`` grid values below zero (mean);
- ``moments_outside``: the fraction of points where an eigenvalue of ``D / c`` leaves ``[0, 1]`` (mean);
- ``eig_min``, ``eig_max``: the extreme eigenvalues of ``D / c`` (in ``[0, 1]`` for a density); ``trace_error``:
  the largest ``|tr D - c|`` (rounding);
- ``mean_speed``, ``order``: mean ``|u|`` and mean order parameter ``s`` (the closure checks' statistics), and
  ``bingham_S_error``: the Bingham closure's relative a-priori error of ``S`` over the frames (as
  :func:`napari_dynfit.models.closure.train.a_priori_error`): how much the reference's figures move with the
  resolution;
- ``unrealizable``: the fraction of points with ``m4 < 2 s^2 - 1 - 0.01`` (no distribution has these ``D`` and
  fourth harmonics; the bound of :func:`napari_dynfit.models.closure.ensemble.realizability`), mean;
- ``cpu_s``: CPU seconds of the run.

Variants: ``default`` (the benchmark's until solver version 2 (2026-12-05): 32^2 x 32 angles, ``dt = 0.01``,
amplitude 0.2, 2/3 dealiasing in ``x, y`` and ``theta``; every variant keeps the 2/3 rule in ``theta`` unless its
name ends in ``exact``, so the version-1 figures of ``docs/closures.md`` re-measure as they were), ``resolved``
(the benchmark's since version 2: ``closure_defaults.GRID``^2 x ``ANGLES``, exact angular dealiasing, as the
library's runs), ``grid64_angles64_exact``, ``grid64_angles48_exact``, ``angles64``, ``angles128``, ``grid64``, ``grid64_angles64``, ``grid96_angles64``, ``grid64_theta_exact``, ``dt0.005``,
``amplitude0.01``, ``zeta0`` (no steric alignment: other physics), ``beta0`` (no constraint stress: other
physics), ``theta_exact`` (angular dealiasing at ``|m| <= n_theta / 2 - 2`` instead of 2/3: exact, since
``theta_dot`` holds the harmonics 0 and 2 only), ``no_dealias`` (none in ``x, y`` or ``theta``), ``x_no_dealias``
(none in ``x, y``). The dealiasing is set here on the solver (:func:`~napari_dynfit.models.closure.kinetic.angular_mask`);
the library's runs (version 2) use the exact rule in ``theta`` and 2/3 in ``x, y``.

Usage (``docs/closures.md``, *Negative Psi*)::

    python -m napari_dynfit.bench.closure_positivity                      # the benchmark's 8 runs, t = 0..30
    python -m napari_dynfit.bench.closure_positivity --alphas=-4.5 --seed 45 --t-end 20 \\
        --variants default,angles64,grid64,grid64_angles64,dt0.005,theta_exact,no_dealias
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from napari_dynfit import closure_defaults as D
from napari_dynfit._io import atomic_path

ALPHAS = (-2.0, -3.0, -4.0, -5.0, -2.5, -3.5, -4.5, -6.0)
VARIANTS = {
    "default": {}, "angles64": {"n_theta": 64}, "angles128": {"n_theta": 128}, "grid64": {"n": 64},
    "grid64_angles64": {"n": 64, "n_theta": 64}, "grid96_angles64": {"n": 96, "n_theta": 64},
    "grid64_theta_exact": {"n": 64, "dealias": "theta_exact"}, "dt0.005": {"dt": 0.005}, "amplitude0.01": {"amplitude": 0.01},
    "zeta0": {"zeta": 0.0}, "beta0": {"beta": 0.0}, "theta_exact": {"dealias": "theta_exact"},
    "no_dealias": {"dealias": "none"}, "x_no_dealias": {"dealias": "x_none"},
    "grid64_angles64_exact": {"n": 64, "n_theta": 64, "dealias": "theta_exact"},
    "resolved": {"n": D.GRID, "n_theta": D.ANGLES, "dealias": "theta_exact"},
    "grid64_angles48_exact": {"n": 64, "n_theta": 48, "dealias": "theta_exact"},
}


def frame_figures(solver, psi) -> dict:
    """:meth:`~napari_dynfit.models.closure.kinetic.KineticSolver.positivity` of one frame plus the fraction of
    points whose ``(s, m4)`` no distribution has (``m4 < 2 s^2 - 1 - 0.01``), the extreme eigenvalues of
    ``D / c``, the flow statistics (mean speed, mean order parameter) and the squared norms of the Bingham
    closure's ``S`` error and of ``S`` (for its relative a-priori error over frames), as floats."""
    import torch

    from napari_dynfit.models.closure.moments import bingham_closure, fourth_moment, harmonics, order_parameter

    out = {k: float(v) for k, v in solver.positivity(psi).items()}
    u, _, _, mo = solver.flow(psi)
    c = mo["c"]
    out["mean_speed"] = float(torch.sqrt((u ** 2).sum(-1)).mean())
    out["order"] = float(order_parameter(c, mo["D"]).mean())
    S_b = fourth_moment(c, mo["D"], *bingham_closure(c, mo["D"]))
    out["bingham_err2"], out["S2"] = float(((S_b - mo["S"]) ** 2).sum()), float((mo["S"] ** 2).sum())
    C2, S2 = harmonics(c, mo["D"])
    s2 = C2 ** 2 + S2 ** 2
    m4 = (mo["q4c"] * (C2 ** 2 - S2 ** 2) + mo["q4s"] * 2 * C2 * S2) / (c * torch.clamp(s2, min=1e-12))
    out["unrealizable"] = float((m4 < 2 * s2 - 1 - 0.01).to(psi.dtype).mean())
    lam = torch.linalg.eigvalsh(mo["D"]) / c[..., None]  # eigenvalues of D / c, ascending
    out["eig_min"], out["eig_max"] = float(lam[..., 0].min()), float(lam[..., 1].max())
    out["trace_error"] = float((mo["D"].diagonal(dim1=-2, dim2=-1).sum(-1) - c).abs().max())
    return out


def run_variant(alpha: float, variant: str, *, seed: int, t_end: float, every: float = 0.5) -> dict:
    """One kinetic run of the benchmark's setting at ``alpha`` with ``variant`` applied; figures per frame
    (``t``, ``frames``) and over the frames from ``t = SETTLE_T`` (``summary``)."""
    import torch

    from napari_dynfit.models.closure.kinetic import KineticSolver, SuspensionParams, angular_mask

    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    v = dict(VARIANTS[variant])
    dealias = v.pop("dealias", "2/3")
    amplitude = v.pop("amplitude", D.AMPLITUDE)
    phys = {k: v.pop(k) for k in ("zeta", "beta") if k in v}
    num = {"n": D.GRID, "n_theta": D.ANGLES, "dt": D.DT, **v}
    solver = KineticSolver(SuspensionParams(alpha=alpha, zeta=phys.get("zeta", D.ZETA), beta=phys.get("beta", 0.8)),
                           **num)
    m = solver.m[:, 0, 0]
    if dealias in ("2/3", "theta_exact"):  # solver version 1's rule (the 2/3 rule in theta too), or version 2's
        rule = "2/3" if dealias == "2/3" else "exact"
        solver.dealias = solver.grid.dealias[None] * angular_mask(num["n_theta"], rule=rule)[:, None, None]
    elif dealias == "x_none":
        keep = (m.abs() < 2.0 / 3.0 * (num["n_theta"] / 2)).double()[:, None, None]
        solver.dealias = torch.ones_like(solver.grid.dealias)[None] * keep
    elif dealias == "none":
        solver.dealias = torch.ones_like(solver.dealias)
    psi_hat = solver._fft(solver.initial_condition(seed=seed, amplitude=amplitude))
    n_steps, save = int(round(t_end / num["dt"])), max(1, int(round(every / num["dt"])))
    t, frames = [], []
    cpu0 = time.process_time()
    with torch.no_grad():
        for i in range(n_steps + 1):
            if i % save == 0:
                psi = solver._ifft(psi_hat)
                solver.check_finite(psi_hat, i * num["dt"])
                t.append(i * num["dt"])
                frames.append(frame_figures(solver, psi))
            if i < n_steps:
                psi_hat = solver.step(psi_hat)
    cpu = time.process_time() - cpu0
    late = [f for ti, f in zip(t, frames) if ti >= D.SETTLE_T - 1e-9] or frames
    col = lambda k: np.array([f[k] for f in late])  # noqa: E731
    summary = {"negative_mass_mean": float(col("negative_mass").mean()),
               "negative_mass_max": float(col("negative_mass").max()), "min_ratio": float(col("min_ratio").min()),
               "negative_points": float(col("negative_points").mean()),
               "moments_outside": float(col("moments_outside").mean()),
               "unrealizable": float(col("unrealizable").mean()), "eig_min": float(col("eig_min").min()),
               "eig_max": float(col("eig_max").max()), "trace_error": float(col("trace_error").max()),
               "mean_speed": float(col("mean_speed").mean()), "order": float(col("order").mean()),
               "bingham_S_error": float(np.sqrt(col("bingham_err2").sum() / col("S2").sum())), "cpu_s": cpu}
    return {"alpha": alpha, "variant": variant, "seed": seed, "t_end": t_end, "settings": {**num, **phys,
            "amplitude": amplitude, "dealias": dealias}, "t": t, "frames": frames, "summary": summary}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alphas", default=",".join(f"{a:g}" for a in ALPHAS),
                    help="active stresses (default: the closure benchmark's eight runs)")
    ap.add_argument("--seed", type=int, default=None, help="initial perturbation seed (default 10 |alpha|, the "
                                                           "benchmark's)")
    ap.add_argument("--t-end", type=float, default=D.T_END, help=f"duration (default {D.T_END:g})")
    ap.add_argument("--every", type=float, default=0.5, help="time units between measured frames (default 0.5)")
    ap.add_argument("--variants", default="default", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--out", default=None, help="JSON file with every frame's figures (rewritten after each run)")
    return ap


def main(argv=None) -> int:
    import torch

    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    try:
        alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
    except ValueError:
        raise SystemExit(f"--alphas must be comma-separated numbers, got {args.alphas!r}") from None
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not (args.t_end > D.SETTLE_T and math.isfinite(args.t_end)):
        raise SystemExit(f"--t-end must be beyond t = {D.SETTLE_T:g} (the frames measured start there)")
    results = []
    print(f"{'alpha':>6} {'variant':<16} {'neg mass mean/max':>18} {'min ratio':>9} {'neg pts':>7} "
          f"{'D/c out':>7} {'eig D/c':>13} {'unreal':>6} {'speed':>6} {'order':>6} {'S err B':>7} {'CPU s':>6}   "
          f"(frames from t = {D.SETTLE_T:g})")
    for alpha in alphas:
        for variant in variants:
            seed = args.seed if args.seed is not None else int(round(abs(alpha) * 10))
            r = run_variant(alpha, variant, seed=seed, t_end=args.t_end, every=args.every)
            results.append(r)
            s = r["summary"]
            print(f"{alpha:6g} {variant:<16} {100 * s['negative_mass_mean']:8.2f} / {100 * s['negative_mass_max']:5.2f} % "
                  f"{s['min_ratio']:9.3f} {100 * s['negative_points']:6.1f}% {100 * s['moments_outside']:6.2f}% "
                  f"{s['eig_min']:6.3f}..{s['eig_max']:5.3f} {100 * s['unrealizable']:5.1f}% {s['mean_speed']:6.3f} "
                  f"{s['order']:6.3f} {s['bingham_S_error']:7.4f} {s['cpu_s']:6.0f}", flush=True)
            if args.out:
                with atomic_path(Path(args.out)) as tmp:
                    Path(tmp).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
