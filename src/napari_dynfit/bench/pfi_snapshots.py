"""Flow inference on many snapshots: the cost of a step and the accuracy, all snapshots vs a random subset.

Not a ``dynfit bench`` entry (it writes no README row); the figures of docs/flow.md ("many snapshots cost no more
per step") and docs/gui.md (step 7) come from it::

    python -m napari_dynfit.bench.pfi_snapshots timing [--all]   # the GUI sample: seconds per score / flow step
    python -m napari_dynfit.bench.pfi_snapshots score --snapshots 100 --seeds 31,32
    python -m napari_dynfit.bench.pfi_snapshots drift --snapshots 64 --seeds 21,22

``--all`` uses every snapshot (interval) every step: the cost of the code before ``snapshots_per_step`` and
``intervals_per_step`` existed (the same code path). ``score`` and ``drift`` run both ways at equal steps on OU
snapshots (2D, :func:`~napari_dynfit.sim.snapshots.ou2_case` drifts, ``D = 0.5``, 200 points per snapshot, times
in [0, 1]) and print one JSON line per fit. Torch runs one thread.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def sample_snapshots(seed: int = 0):
    """The GUI sample's ground-truth positions (world units), one snapshot per frame (400 frames)."""
    from ..models.flow.io import snapshots_from_table
    from ..sim.samples import active_particles_2d
    from ..tables import coord_columns

    s = active_particles_2d(seed=seed)
    cols = coord_columns(s.truth)
    df = s.truth[cols].astype(float) * np.asarray(s.spacing[-len(cols):], float)
    df.insert(0, "time", s.truth["frame"].to_numpy() * s.dt)
    return snapshots_from_table(df, columns=cols)


def timing(all_snapshots: bool, score_steps: int, flow_steps: int) -> dict:
    """Seconds per score-matching step and per linear flow step (the defaults' sizes) on the GUI sample."""
    from ..models.flow.pfi import FLOW_DEFAULTS, SCORE_DEFAULTS, fit_flow
    from ..models.flow.score import fit_score

    snaps = sample_snapshots()
    every = {"snapshots_per_step": None} if all_snapshots else {}
    t0 = time.perf_counter()
    score = fit_score(snaps, **{**SCORE_DEFAULTS, "steps": score_steps}, device="cpu", **every)
    t_score = (time.perf_counter() - t0) / score_steps
    # the steps alone: times of the callbacks after step 0 and after the last; D fitted (None), so no Gaussian
    # moment fit (it reads every snapshot, and on these positions, uniform in a periodic box, it takes long)
    marks = []

    def mark(step, model):
        marks.append(time.perf_counter())

    fit_flow(snaps, None, score=score, init="zero", offset=True, holdout=0, steps=flow_steps + 1, device="cpu",
             intervals_per_step=None if all_snapshots else 16, callback=mark)
    t_flow = (marks[-1] - marks[0]) / flow_steps
    return {"snapshots": len(snaps.times), "points_per_snapshot": int(np.mean([len(x) for x in snaps.samples])),
            "all_snapshots": all_snapshots, "score_step_s": round(t_score, 4), "flow_step_s": round(t_flow, 4),
            "defaults_score_min": round(SCORE_DEFAULTS["steps"] * t_score / 60, 1),
            "defaults_flow_min": round(FLOW_DEFAULTS["linear"]["steps"] * t_flow / 60, 1)}


def _ou(K: int, seed: int, centred: bool):
    from ..models.flow.io import snapshots_from_table
    from ..sim.snapshots import ou2_case, simulate_ou_snapshots

    B, _ = ou2_case(seed % 8)
    times = np.linspace(0.0, 1.0, K)
    # centred: from N(0, I) (the score figures); else the simulator's start N(1, 0.1 I) (the drift figures)
    start = {"mean0": np.zeros(2), "cov0": np.eye(2)} if centred else {}
    table = simulate_ou_snapshots(B, 0.5, times, 200, seed=seed, **start)
    return B, times, snapshots_from_table(table, columns=[c for c in table.columns if c != "time"])


def score_accuracy(K: int, seed: int, steps: int, all_snapshots: bool) -> dict:
    """Relative error of the learned score against the exact Gaussian one, averaged over the snapshot times."""
    import torch
    from scipy.linalg import expm, solve_continuous_lyapunov

    from ..models.flow.score import fit_score

    B, times, snaps = _ou(K, seed, True)
    t0 = time.perf_counter()
    score = fit_score(snaps, steps=steps, width=64, batch_size=256, device="cpu", seed=seed,
                      snapshots_per_step=None if all_snapshots else 16)
    wall = time.perf_counter() - t0
    s_inf = solve_continuous_lyapunov(B, np.eye(2))
    errs = []
    for t in times:
        E = expm(-B * t)
        C = E @ E.T + s_inf - E @ s_inf @ E.T
        x = np.random.default_rng(99).multivariate_normal(np.zeros(2), C, size=500)
        true = -x @ np.linalg.inv(C)
        est = score(torch.as_tensor(x, dtype=torch.float32), t).numpy()
        errs.append(np.linalg.norm(est - true) / np.linalg.norm(true))
    return {"what": "score", "snapshots": K, "seed": seed, "steps": steps, "all_snapshots": all_snapshots,
            "mean_error": round(float(np.mean(errs)), 4), "max_error": round(float(np.max(errs)), 4),
            "wall_s": round(wall, 1)}


def drift_accuracy(K: int, seed: int, score_steps: int, flow_steps: int, all_snapshots: bool) -> dict:
    """``|A + B| / |B|`` of a linear fit from ``A = 0`` (no held-out check), and of the Gaussian moment fit."""
    from ..models.flow.gaussian import moment_fit
    from ..models.flow.pfi import fit_flow

    B, _, snaps = _ou(K, seed, False)
    every = {"snapshots_per_step": None} if all_snapshots else {}
    t0 = time.perf_counter()
    model = fit_flow(snaps, 0.5, init="zero", holdout=0.0, offset=False, steps=flow_steps, device="cpu", seed=seed,
                     score_kwargs={"steps": score_steps, **every}, intervals_per_step=None if all_snapshots else 16)
    wall = time.perf_counter() - t0
    moments = moment_fit(snaps, 0.5)
    return {"what": "drift", "snapshots": K, "seed": seed, "all_snapshots": all_snapshots,
            "error": round(float(np.linalg.norm(model.A + B) / np.linalg.norm(B)), 4),
            "moment_fit_error": round(float(np.linalg.norm(moments.A + B) / np.linalg.norm(B)), 4),
            "wall_s": round(wall, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("timing", "score", "drift"))
    p.add_argument("--all", action="store_true", help="timing: every snapshot every step (the cost before)")
    p.add_argument("--snapshots", type=int, default=100)
    p.add_argument("--seeds", default="31,32")
    p.add_argument("--score-steps", type=int, default=None)
    p.add_argument("--flow-steps", type=int, default=None)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if a.what == "timing":
        print(json.dumps(timing(a.all, a.score_steps or (3 if a.all else 20), a.flow_steps or (2 if a.all else 10))))
        return
    for seed in (int(s) for s in a.seeds.split(",")):
        for every in (False, True):
            if a.what == "score":
                r = score_accuracy(a.snapshots, seed, a.score_steps or 500, every)
            else:
                r = drift_accuracy(a.snapshots, seed, a.score_steps or 400, a.flow_steps or 150, every)
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
