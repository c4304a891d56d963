"""The issue's figures for probability flow inference, as functions (used by ``dynfit bench pfi``
and the slow tests).

Cases (all with the convention ``dX = f(X) dt + sqrt(2 D) dW``):

* ``ou2`` / ``ou10``: OU snapshots ``dX = -B X dt + sqrt(2 D) dW`` (``D = 0.5``, 5 snapshots at
  ``t = 0, 0.25, ..., 1`` of 2000 samples, initial Gaussian of :func:`ou_initial`); the fitted linear drift ``A x`` (no
  offset, as the OU family) should approach ``-B``; the figure is ``|A + B| / |B|`` (Frobenius). Heun steps (3 per
  interval): explicit Euler's bias ``h A^2 / 2`` alone is ~6% of ``|B|`` here.
* ``bistable``: :func:`~napari_dynfit.sim.snapshots.simulate_bistable_growth` (``d = 10``, ``sigma = 0.5``, division
  rate ``2.5 (1 + tanh(2 x0))``, 5 times in ``[0, 1]``), fitted with an MLP drift by balanced PFI and by unbalanced
  PFI (growth learned). Figures: the path energy distance between 500 paths of the learned and of the true
  single-cell SDE from the same starting cells (positions at the 5 times, :func:`~.evaluate.path_energy_distance`)
  and the Pearson correlation of fate probabilities ``P(x0(1) > 0 | X(0))`` of 200 starting cells (50 paths each).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..models.flow.evaluate import (
    drift_matrix_error,
    fate_probabilities,
    path_energy_distance,
    simulate_sde,
)
from ..models.flow.gaussian import gaussian_mle_drift
from ..models.flow.io import snapshots_from_table
from ..models.flow.pfi import fit_flow
from ..models.flow.score import fit_score
from ..sim.snapshots import (
    OU_TIMES,
    bistable_drift,
    ou2_case,
    ou_matrix,
    simulate_bistable_growth,
    simulate_ou_snapshots,
)

BISTABLE_TIMES = np.linspace(0.0, 1.0, 5)


FLOW = dict(integrator="heun", n_euler=3, batch_size=500)


def ou_initial(d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Initial mean and covariance of the OU cases: ``(2, 2)`` and ``0.5 I`` in 2D; in more dimensions a random
    mean (std 5 per coordinate) and a random anisotropic covariance (eigenvalues 0.1 ... 5), far from the
    stationary state, so that the snapshots' means and covariances carry information on all ``d^2`` entries of
    ``B``. (With a mean of std 1.5 and eigenvalues 0.2 ... 2 around a near-identity ``B``, even the Gaussian MLE
    of ``B`` from 5 x 2000 samples was off by 0.4-1.1: no method could reach 0.10 there.)"""
    if d == 2:
        return np.full(2, 2.0), 0.5 * np.eye(2)
    rng = np.random.default_rng(seed + 100)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return rng.normal(size=d) * 5.0, Q @ np.diag(np.geomspace(0.1, 5.0, d)) @ Q.T


def run_ou(d: int = 2, *, n_samples: int = 2000, score_steps: int = 2000, flow_steps: int = 150,
           blur: float | None = None, batch_size: int | None = None, sigma_min: float = 0.05, device: str = "auto",
           seed: int = 0) -> dict:
    """Fit a linear drift to OU snapshots; returns the error ``|A + B| / |B|`` and the runtimes (s)."""
    B = ou_matrix(d, seed)
    m0, S0 = ou_initial(d, seed)
    table = simulate_ou_snapshots(B, 0.5, OU_TIMES, n_samples, mean0=m0, cov0=S0, seed=seed + 1)
    snaps = snapshots_from_table(table)
    mle_s = time.perf_counter()
    # the anchor: the Gaussian maximum-likelihood estimate from the snapshots' means and covariances (efficient for
    # OU data, and only possible because the process is linear and Gaussian): the floor any estimator can reach
    mle = gaussian_mle_drift(snaps, 0.5)
    mle_s = time.perf_counter() - mle_s
    if d == 2:
        # the defaults a user gets (dynfit infer-flow / infer_flow): offset test, refinement of 75 % of the points
        # from their moment fit, kept only if it predicts the held-out 25 % better, else the moment fit of all
        t0 = time.perf_counter()
        model = fit_flow(snaps, 0.5, model="linear", steps=flow_steps, score_kwargs={"steps": score_steps},
                         device=device, seed=seed)
        ref = model.selection["refinement"]
        return {"dim": d, "n_samples": n_samples, "rel_error_A_plus_B": drift_matrix_error(model.A, -B),
                "refined_rel_error": drift_matrix_error(ref["refined_A"], -B), "kept": ref["kept"],
                "offset_fitted": model.selection["offset"]["fitted"], "gaussian_mle_rel_error":
                drift_matrix_error(mle[0], -B), "gaussian_mle_s": mle_s, "b_norm": float(np.linalg.norm(model.b)),
                "fit_s": time.perf_counter() - t0, **_stated(model), "A": model.A.tolist(), "B": B.tolist()}
    t0 = time.perf_counter()
    # in 10D the means travel far compared with the clouds' widths: standardise each snapshot on its own
    score = fit_score(snaps, steps=score_steps, width=64, batch_size=256, sigma_min=sigma_min, device=device,
                      standardise="snapshot", seed=seed)
    t1 = time.perf_counter()
    # in 10D a sharp Sinkhorn divergence between 500-point samples is dominated by its sampling noise
    # (~ d n^(-2/d)); a blur of the order of the point spacing makes it smooth (MMD-like, ~ n^(-1/2)), and full
    # batches remove the minibatch noise (batch 1000 of 2000: 0.105 on seed 0, full batches 0.068)
    extra = dict(FLOW, blur=1.0, batch_size=2000)
    if blur is not None:
        extra["blur"] = blur
    if batch_size is not None:
        extra["batch_size"] = batch_size
    # PFI starts from the moment fit (fit_flow's init="moments", computed once above); no held-out safeguard
    # here: this is the refinement's own figure
    model = fit_flow(snaps, 0.5, score=score, model="linear", offset=False, init=mle, steps=flow_steps,
                     device=device, seed=seed, **extra)
    t3 = time.perf_counter()
    return {"dim": d, "n_samples": n_samples, "rel_error_A_plus_B": drift_matrix_error(model.A, -B),
            "gaussian_mle_rel_error": drift_matrix_error(mle[0], -B), "gaussian_mle_s": mle_s,
            "b_norm": float(np.linalg.norm(model.b)), "score_s": t1 - t0, "flow_s": t3 - t1, **_stated(model),
            "A": model.A.tolist(), "B": B.tolist()}


def _stated(model) -> dict:
    """What a linear fit says about its own accuracy (:func:`~.gaussian.drift_uncertainty`)."""
    u = getattr(model, "uncertainty", None) or {}
    return {"stated_expected_error": u.get("expected_error"), "stated_bound": u.get("bound"),
            "verdict": u.get("verdict")}


#: Held-out 2D drifts x simulation seeds of the CLI figure: no setting was chosen on them (drifts 0-3 with seeds
#: 0-1 were looked at while the defaults were set).
HELD_OUT_DRIFTS, HELD_OUT_SEEDS = (8, 9, 10, 11), (2, 3)


def run_ou2_cli(drifts=HELD_OUT_DRIFTS, seeds=HELD_OUT_SEEDS, *, n_samples: int = 2000, jobs: int = 1,
                extra_args=(), target: float = 0.03) -> dict:
    """``dynfit infer-flow SNAPSHOTS.csv --diffusion 0.5 -o OUT`` (default options) on 2D OU snapshots of
    :func:`ou2_case` drifts, each a separate timed process (``jobs`` at a time; wall and CPU seconds per run),
    each case's error next to its Gaussian moment fit's and the 95 % bound the run states
    (``flow.json``'s ``drift_uncertainty``). ``met``: every case within ``target``, or its stated bound above
    ``target`` (the run says these data cannot pin ``A`` that closely)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    def one(tmp: Path, i: int, seed: int) -> dict:
        B, m0 = ou2_case(i)
        table = simulate_ou_snapshots(B, 0.5, OU_TIMES, n_samples, mean0=m0, cov0=0.5 * np.eye(2), seed=seed)
        src, out = tmp / f"ou2_{i}_{seed}.csv", tmp / f"out_{i}_{seed}"
        table.to_csv(src, index=False)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "napari_dynfit.cli", "-q", "infer-flow", str(src),
                                 "--diffusion", "0.5", "-o", str(out), *extra_args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own CPU time, also when runs overlap
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"dynfit infer-flow failed on drift {i}, seed {seed}")
        doc = json.loads((out / "flow.json").read_text())
        mle = gaussian_mle_drift(snapshots_from_table(table), 0.5)[0]
        sel = doc["selection"]
        err, floor = drift_matrix_error(doc["drift"]["A"], -B), drift_matrix_error(mle, -B)
        return {"drift": i, "seed": seed, "B": B.tolist(), "rel_error": err, "moment_fit_rel_error": floor,
                # a kept moment fit, recomputed here, differs from the run's by float rounding (~1e-8)
                "never_worse": bool(err <= floor + 1e-6),
                "refined_rel_error": drift_matrix_error(sel["refinement"]["refined_A"], -B),
                "kept": sel["refinement"]["kept"], "heldout_z": sel["refinement"]["z"],
                "offset_fitted": sel["offset"]["fitted"], "offset_p": sel["offset"]["p_value"],
                "b": doc["drift"]["b"], "stated_expected_error": doc["drift_uncertainty"]["expected_error"],
                "stated_bound": doc["drift_uncertainty"]["bound"], "verdict": doc["drift_uncertainty"]["verdict"],
                "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}

    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(jobs) as pool:
        rows = list(pool.map(lambda c: one(Path(tmp), *c), [(i, s) for i in drifts for s in seeds]))
    errs = np.array([r["rel_error"] for r in rows])
    return {"cases": rows, "max_rel_error": float(errs.max()), "median_rel_error": float(np.median(errs)),
            "never_worse_than_moment_fit": all(r["never_worse"] for r in rows),
            "met": bool(all(r["rel_error"] <= target or r["stated_bound"] > target for r in rows)), "target": target,
            "max_wall_s": max(r["wall_s"] for r in rows), "max_cpu_s": max(r["cpu_s"] for r in rows),
            "jobs": jobs, "load_average": list(os.getloadavg())}


def run_bistable(*, n_samples: int = 2000, dim: int = 10, score_steps: int = 2000, flow_steps: int = 400,
                 n_eval: int = 500, n_fate: int = 200, n_repeats: int = 500, kinetic_weight: float = 1.0,
                 device: str = "auto", seed: int = 0) -> dict:
    """Balanced vs unbalanced PFI on the bistable system with growth; returns the figures and runtimes (s)."""
    sigma = 0.5
    D = sigma**2 / 2
    snaps = snapshots_from_table(simulate_bistable_growth(n_samples, dim=dim, sigma=sigma, times=BISTABLE_TIMES,
                                                          seed=seed))
    t0 = time.perf_counter()
    # sigma_min 0.1: at 0.05 the denoising target's variance leaves ~40% error in the score of the 9 OU
    # coordinates (measured against the exact -x / D), at 0.1 ~25%
    score = fit_score(snaps, steps=score_steps, width=64, batch_size=256, sigma_min=0.1, device=device, seed=seed)
    out = {"dim": dim, "n_samples": n_samples, "masses": snaps.masses.tolist(), "score_s": time.perf_counter() - t0}
    rng = np.random.default_rng(seed + 7)
    x_eval = snaps.samples[0][rng.choice(len(snaps.samples[0]), n_eval, replace=n_eval > len(snaps.samples[0]))]
    true_paths = simulate_sde(bistable_drift, D, x_eval, BISTABLE_TIMES, seed=seed + 11)
    ref_paths = simulate_sde(bistable_drift, D, x_eval, BISTABLE_TIMES, seed=seed + 12)
    out["path_energy_true_vs_true"] = path_energy_distance(true_paths, ref_paths)
    x_fate = x_eval[:n_fate]

    def right(x):
        return x[:, 0] > 0

    p_true = fate_probabilities(bistable_drift, D, x_fate, BISTABLE_TIMES[-1], right, n_repeats=n_repeats,
                                seed=seed + 13)
    # noise floor of the fate figure: two independent estimates of the true fate probabilities
    p_true2 = fate_probabilities(bistable_drift, D, x_fate, BISTABLE_TIMES[-1], right, n_repeats=n_repeats,
                                 seed=seed + 14)
    out["fate_correlation_true_vs_true"] = float(np.corrcoef(p_true, p_true2)[0, 1])
    for name, growth in (("balanced", False), ("unbalanced", True)):
        t1 = time.perf_counter()
        model = fit_flow(snaps, D, score=score, model="mlp", growth=growth, steps=flow_steps, device=device,
                         kinetic_weight=kinetic_weight, seed=seed, **FLOW)
        fit_s = time.perf_counter() - t1
        paths = simulate_sde(model.drift, D, x_eval, BISTABLE_TIMES, seed=seed + 21)
        p_hat = fate_probabilities(model.drift, D, x_fate, BISTABLE_TIMES[-1], right, n_repeats=n_repeats,
                                   seed=seed + 23)
        out[name] = {"path_energy_distance": path_energy_distance(paths, true_paths),
                     "fate_correlation": float(np.corrcoef(p_hat, p_true)[0, 1]),
                     "fate_mean_true": float(p_true.mean()), "fate_mean_learned": float(p_hat.mean()),
                     "flow_s": fit_s}
        if growth:
            xs = np.zeros((2, dim))
            xs[:, 0] = (-1.0, 1.0)
            out[name]["growth_at_wells"] = model.growth(xs).tolist()
    return out


def run_benchmarks(case: str = "all", *, quick: bool = False, device: str = "auto", seed: int = 0,
                   threads: int = 1, jobs: int = 1) -> dict:
    """The figures of the chosen case(s) as a JSON-ready dict (``quick``: small sizes, seconds)."""
    torch.set_num_threads(threads)
    sizes = dict(n_samples=300, score_steps=300, flow_steps=40) if quick else {}
    dev = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    result: dict = {"device": dev, "torch_threads": torch.get_num_threads()}
    if case in ("ou2", "all"):
        result["ou2"] = run_ou(2, device=dev, seed=seed, **sizes)
    if case in ("ou2-cli", "all"):
        # the CLI's own --threads default (torch's choice) unless threads is given
        extra = ("--threads", str(threads)) if threads else ()
        result["ou2_cli"] = run_ou2_cli(jobs=jobs, **(dict(drifts=(0,), seeds=(0,), n_samples=300,
                                                           extra_args=("--steps", "20", "--score-steps", "200", *extra))
                                                      if quick else dict(extra_args=extra)))
    if case in ("ou10", "all"):
        result["ou10"] = run_ou(10, device=dev, seed=seed, **sizes)
    if case in ("bistable", "all"):
        extra = dict(n_eval=100, n_fate=40, n_repeats=50) if quick else {}
        result["bistable"] = run_bistable(device=dev, seed=seed, **sizes, **extra)
    return result


def ou2_cli_markdown(result: dict) -> str:
    """The figure table of docs/flow.md from :func:`run_ou2_cli`'s result (``result["ou2_cli"]`` of
    :func:`run_benchmarks` or the dict itself)."""
    r = result.get("ou2_cli", result)
    lines = ["| drift | seed | `|A + B| / |B|` (defaults) | moment fit | stated error / 95 % bound | verdict "
             "| refinement alone (75 %) | kept (held-out z) | offset (LR p) | wall s | CPU s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in r["cases"]:
        lines.append(f"| {c['drift']} | {c['seed']} | **{c['rel_error']:.3f}** | {c['moment_fit_rel_error']:.3f} "
                     f"| {c['stated_expected_error']:.3f} / {c['stated_bound']:.3f} | {c['verdict']} "
                     f"| {c['refined_rel_error']:.3f} | {c['kept']} ({c['heldout_z']:.2f}) "
                     f"| {'yes' if c['offset_fitted'] else 'no'} ({c['offset_p']:.2f}) | {c['wall_s']:.0f} "
                     f"| {c['cpu_s']:.0f} |")
    ok = sum(c["rel_error"] <= r["target"] for c in r["cases"])
    lines.append("")
    lines.append(f"{ok} of {len(r['cases'])} within {r['target']} (max {r['max_rel_error']:.3f}, median "
                 f"{r['median_rel_error']:.3f}); never worse than the moment fit: "
                 f"{'yes' if r['never_worse_than_moment_fit'] else 'no'}; every case within {r['target']} or its "
                 f"stated 95 % bound above it: {'yes' if r['met'] else 'no'}; {r['jobs']} run(s) at a time, load "
                 f"average {r['load_average'][0]:.1f}.")
    return "\n".join(lines)
