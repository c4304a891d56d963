"""``dynfit demo`` stage "Probability flow inference": OU snapshots -> linear PFI, the fitted drift against the truth."""

from __future__ import annotations

import time

import numpy as np

from ..report import one_torch_thread


def _stage(ctx) -> None:
    """``dynfit demo`` stage: OU snapshots -> linear PFI; the fitted drift matrix against the truth."""
    import matplotlib.pyplot as plt

    from ..models.flow import fit_flow, snapshots_from_table
    from ..models.flow.evaluate import drift_matrix_error
    from ..models.flow.layers import drift_vectors
    from ..sim.snapshots import OU_TIMES, ou_matrix, simulate_ou_snapshots

    n_samples = 200 if ctx.quick else 2000
    d = 2
    B = ou_matrix(d)
    table = simulate_ou_snapshots(B, 0.5, OU_TIMES, n_samples, mean0=np.full(d, 2.0), cov0=0.5 * np.eye(d),
                                  seed=ctx.seed + 1)
    snaps = snapshots_from_table(table)
    # the defaults of dynfit infer-flow (offset test, refinement checked on held-out points); quick: fewer steps
    quick = dict(steps=15, score_kwargs={"steps": 100}) if ctx.quick else {}
    t0 = time.perf_counter()
    model = fit_flow(snaps, 0.5, model="linear", device="cpu", seed=ctx.seed, **quick)
    fit_s = time.perf_counter() - t0
    model.save(ctx.out_dir / "flow")
    ctx.artefacts["flow_model"] = model.to_dict()
    err = drift_matrix_error(model.A, -B)
    ctx.report.add_text("Untracked snapshots (5 times) of dX = -B X dt + sqrt(2 D) dW, D = 0.5, fitted by probability "
                        "flow inference with a linear drift f(x) = A x + b (default settings of dynfit infer-flow, "
                        f"{fit_s:.0f} s); A should approach -B. "
                        + " ".join(f"{k}: {v['reason']}." for k, v in model.selection.items()))
    ctx.report.add_equation(f"A = {np.array2string(model.A, precision=3)}\n-B = {np.array2string(-B, precision=3)}"
                            f"\n|A + B| / |B| = {err:.3f}")
    fig, ax = plt.subplots(figsize=(5, 5))
    for t, x in zip(snaps.times, snaps.samples):
        ax.scatter(x[:, 1], x[:, 0], s=2, label=f"t = {t:g}")
    vec = drift_vectors(model, snaps, n_grid=12, length=0.1)
    ax.quiver(vec[:, 0, 1], vec[:, 0, 0], vec[:, 1, 1], vec[:, 1, 0], angles="xy", scale_units="xy", scale=1)
    ax.set_xlabel("x1")
    ax.set_ylabel("x0")
    ax.legend(markerscale=4)
    ctx.report.add_figure(fig, "snapshots and the learned drift field (arrows: f(x) * 0.1)")


DEMO_STAGE = (95, "Probability flow inference", one_torch_thread(_stage))
