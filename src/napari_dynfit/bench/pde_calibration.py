"""Calibration of the 95 % intervals of ``discover_pde(..., stochastic=True)`` on free ABPs.

The particle example of docs/pde.md, one simulation per seed: ``N`` free active Brownian particles
(v0 = 1, Dr = 1, Dt = 0.05, periodic box L = 20, uniform start, ``dt = 0.005``, a frame every 10
steps), coarse-grained with ``sigma = 1``, spacing 0.5, then ``discover_pde(fields, stochastic=True,
seed=seed)`` with the defaults. Truth: ``rho_t = -v0 div(p)``, ``p_t = -Dr p - (v0/2) grad(rho)``
(plus the small ``Dt lap(rho)``, ``Dt lap(p)`` and the unlisted ``-v0 div(Q)``, which the library
does not need to find).

For every true term: how often it was selected, how often its printed 95 % interval covers the
truth (of the seeds where it was selected), the mean and standard deviation of the estimate over
seeds, and the width ratio ``(mean interval half-width / 1.96) / sd over seeds`` (1 when the
intervals are as wide as the spread says; below 1: too narrow). Prints JSON.

    python -m napari_dynfit.bench.pde_calibration --seeds 20 --first-seed 100 -o tuning.json
    python -m napari_dynfit.bench.pde_calibration --seeds 10 --first-seed 400 -o heldout.json
    python -m napari_dynfit.bench.pde_calibration ... --no-frame-correction     # the previous estimator
    python -m napari_dynfit.bench.pde_calibration --study --seeds 20 --first-seed 100   # fixed supports, blocks
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_dynfit._io import emit_json

V0, DR, DT_TRANS, L = 1.0, 1.0, 0.05, 20.0
TRUTH = {"rho_t": {"div(p)": -V0}, "p_t": {"p": -DR, "grad(rho)": -V0 / 2}}


def fit_seed(seed: int, particles: int = 20000, steps: int = 2000, frame_correction: bool = True) -> dict:
    """One simulation + coarse-graining + discovery: equations, intervals, timings."""
    from napari_dynfit.fields.coarse_grain import coarse_grain
    from napari_dynfit.models.pde import discover_pde
    from napari_dynfit.sim import simulate_abp

    t0 = time.perf_counter()
    traj = simulate_abp(particles, steps, box=L, dt=0.005, v0=V0, Dr=DR, Dt=DT_TRANS, save_every=10, seed=seed)
    fields = coarse_grain(traj, spacing=0.5, sigma=1.0)
    t1 = time.perf_counter()
    res = discover_pde(fields, stochastic=True, frame_correction=frame_correction, seed=seed)
    t2 = time.perf_counter()
    return {"seed": seed, "equations": res.model["equations"], "intervals": res.model["confidence_intervals"],
            "identifiable": res.identifiable, "simulate_s": t1 - t0, "discover_s": t2 - t1}


def summarise(runs: list) -> dict:
    """Per true term: selected, covered, mean, sd, mean half-width and the width ratio."""
    out = {}
    for lhs, terms in TRUTH.items():
        for term, truth in terms.items():
            sel = [r for r in runs if term in r["equations"].get(lhs, {})]
            est = np.array([r["equations"][lhs][term] for r in sel])
            ci = np.array([r["intervals"][lhs][term] for r in sel]).reshape(-1, 2)
            hw = (ci[:, 1] - ci[:, 0]) / 2
            sd = float(np.std(est, ddof=1)) if len(est) > 1 else float("nan")
            out[f"{lhs}: {term}"] = {
                "truth": truth, "selected": f"{len(sel)}/{len(runs)}",
                "covered": f"{int(np.sum((ci[:, 0] <= truth) & (truth <= ci[:, 1])))}/{len(sel)}",
                "mean": float(est.mean()) if len(est) else None, "sd": sd,
                "mean_half_width": float(hw.mean()) if len(hw) else None,
                "width_ratio": float(hw.mean() / 1.96 / sd) if len(hw) > 1 and sd > 0 else None}
    return out


STUDY_BLOCKS = ((4, 2, 2), (16, 1, 1), (4, 4, 4))
STUDY_SUPPORTS = {"true": {"rho_t": ["div(p)"], "p_t": ["p", "grad(rho)"]},
                  "with lap": {"rho_t": ["div(p)", "lap(rho)"], "p_t": ["p", "grad(rho)", "lap(p)"]}}


def study_seed(seed: int, particles: int = 20000, steps: int = 2000) -> dict:
    """Fixed supports, no selection: plain and frame-midpoint least squares, the block-jackknife standard
    error for the block layouts ``STUDY_BLOCKS`` (plain fit of the true support) and the autocorrelation of
    the per-row score ``G r`` along t, y, x (lags 0-6)."""
    from scipy.stats import t as student

    from napari_dynfit.fields.bundle import FieldBundle
    from napari_dynfit.fields.coarse_grain import coarse_grain
    from napari_dynfit.fields.terms import evaluate_terms
    from napari_dynfit.fields.weak import weak_features
    from napari_dynfit.models.selection import block_labels
    from napari_dynfit.sim import simulate_abp

    traj = simulate_abp(particles, steps, box=L, dt=0.005, v0=V0, Dr=DR, Dt=DT_TRANS, save_every=10, seed=seed)
    b = coarse_grain(traj, spacing=0.5, sigma=1.0, fields=("rho", "p"))
    lib = ["div(p)", "lap(rho)", "p", "grad(rho)", "lap(p)"]
    kw = {"method": "decoupled", "half_width": (0, 5, 5), "stride": (1, 1, 1)}
    F = weak_features(b, ["rho_t", "p_t", *lib], **kw)
    shape = F["rho_t"].shape[:3]
    pointwise = evaluate_terms(b, lib, method="spectral")

    def rows(feats, lhs, terms):
        y = feats[lhs].reshape(-1)
        return np.stack([feats[t].reshape(-1) for t in terms], axis=-1), y

    def fit(feats, sup):
        return {lhs: dict(zip(terms, np.linalg.lstsq(*rows(feats, lhs, terms), rcond=None)[0]))
                for lhs, terms in sup.items()}

    out = {"seed": seed, "fits": {}, "jackknife_half_width": {}, "score_autocorrelation": {}}
    for name, sup in STUDY_SUPPORTS.items():
        xi = fit(F, sup)
        out["fits"][name] = {"plain": xi}
        for _ in range(3):
            mid = {f: b[f] + 0.5 * b.dt * sum(c * pointwise[t] for t, c in xi[f + "_t"].items()) for f in ("rho", "p")}
            Fm = weak_features(FieldBundle(mid, b.coords, periodic=b.periodic), lib, **kw)
            Fm.update({"rho_t": F["rho_t"], "p_t": F["p_t"]})
            xi = fit(Fm, sup)
        out["fits"][name]["midpoint"] = xi
    for lhs, terms in STUDY_SUPPORTS["true"].items():
        X, y = rows(F, lhs, terms)
        d = X.shape[0] // int(np.prod(shape))
        xi = np.linalg.lstsq(X, y, rcond=None)[0]
        score = (X * (y - X @ xi)[:, None]).reshape(*shape, d, len(terms)).sum(axis=3)
        for j, t in enumerate(terms):
            sc = score[..., j] - score[..., j].mean()
            ac = []
            for ax in range(3):
                f = np.fft.fft(sc, axis=ax)
                a = np.fft.ifft(f * f.conj(), axis=ax).real.mean(axis=tuple(i for i in range(3) if i != ax))
                ac.append((a[:7] / a[0]).tolist())
            out["score_autocorrelation"][t] = ac
        for bl in STUDY_BLOCKS:
            lab = np.repeat(block_labels(shape, bl).reshape(-1), d)
            K = int(lab.max()) + 1
            fc = np.array([np.linalg.lstsq(X[lab != k], y[lab != k], rcond=None)[0] for k in range(K)])
            se = np.sqrt((K - 1) / K * ((fc - fc.mean(axis=0)) ** 2).sum(axis=0))
            q = float(student.ppf(0.975, K - 1))
            for j, t in enumerate(terms):
                out["jackknife_half_width"].setdefault(t, {})["x".join(map(str, bl))] = float(q * se[j])
    return out


def summarise_study(runs: list) -> dict:
    """Means and sds over seeds of the fixed-support fits; width ratio per block layout (plain, true support)."""
    out = {"fits": {}, "width_ratio": {}, "score_autocorrelation_t_y_x": {}}
    for name in STUDY_SUPPORTS:
        for kind in ("plain", "midpoint"):
            for lhs, terms in STUDY_SUPPORTS[name].items():
                for t in terms:
                    v = np.array([r["fits"][name][kind][lhs][t] for r in runs])
                    out["fits"][f"{name}, {kind}: {t}"] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1))}
    for lhs, terms in STUDY_SUPPORTS["true"].items():
        for t in terms:
            sd = np.std([r["fits"]["true"]["plain"][lhs][t] for r in runs], ddof=1)
            out["width_ratio"][t] = {bl: float(np.mean([r["jackknife_half_width"][t][bl] for r in runs]) / 1.96 / sd)
                                     for bl in runs[0]["jackknife_half_width"][t]}
            out["score_autocorrelation_t_y_x"][t] = np.round(
                np.mean([r["score_autocorrelation"][t] for r in runs], axis=0), 3).tolist()
    return out


def run(seeds: int = 20, first_seed: int = 100, particles: int = 20000, steps: int = 2000,
        frame_correction: bool = True) -> dict:
    runs = [fit_seed(s, particles, steps, frame_correction) for s in range(first_seed, first_seed + seeds)]
    return {"particles": particles, "steps": steps, "seeds": f"{first_seed}-{first_seed + seeds - 1}",
            "frame_correction": frame_correction, "truth": TRUTH, "terms": summarise(runs),
            "identifiable": f"{sum(r['identifiable'] for r in runs)}/{seeds}", "runs": runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=100)
    p.add_argument("--particles", type=int, default=20000)
    p.add_argument("--steps", type=int, default=2000, help="time steps of 0.005 (a frame every 10)")
    p.add_argument("--no-frame-correction", action="store_true", help="the previous (uncorrected) Ito fit")
    p.add_argument("--study", action="store_true", help="fixed supports, no selection: plain vs frame-midpoint "
                   "fits, jackknife widths for several block layouts, score autocorrelation")
    p.add_argument("-o", "--output", help="also write the JSON here")
    args = p.parse_args(argv)
    if args.study:
        runs = [study_seed(s, args.particles, args.steps) for s in range(args.first_seed, args.first_seed + args.seeds)]
        emit_json({"seeds": f"{args.first_seed}-{args.first_seed + args.seeds - 1}", "summary": summarise_study(runs),
                   "runs": runs}, args.output, indent=1)
        return 0
    emit_json(run(args.seeds, args.first_seed, args.particles, args.steps, not args.no_frame_correction),
              args.output, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
