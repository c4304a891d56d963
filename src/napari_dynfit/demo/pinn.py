"""``dynfit demo`` stage "Latent field (PINN)": the hidden chemotactic field of simulated cells from their tracks."""

from __future__ import annotations

from ..report import one_torch_thread


def _demo(ctx) -> None:
    """Simulate chemotactic cells, infer the hidden field from their tracks alone, compare with the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from ..models.pinn import fit_latent_field, visited_mask
    from ..sim.chemotaxis import simulate_chemotaxis

    quick = ctx.quick
    sim = simulate_chemotaxis(n_cells=100 if quick else 500, n_frames=11 if quick else 31,
                              frame_interval=0.6 if quick else 0.2, substeps=10, grid=32 if quick else 64,
                              seed=ctx.seed)
    tracks = sim.to_table()
    size = dict(hidden=(16, 16), n_collocation=500, batch_size=256) if quick else {}  # else the defaults
    bundle, prob = fit_latent_field(tracks, steps=60 if quick else 1000, grid=32 if quick else 64,
                                    source=lambda X: sim.source_function(X[:, 1], X[:, 2]), device="cpu",
                                    seed=ctx.seed, **size)
    bundle.to_zarr(ctx.out_dir / "latent_field.zarr")
    ctx.artefacts["latent_field"] = bundle
    truth = sim.phi
    mask = visited_mask(prob.points, bundle.coords, 0.5, box=sim.box)
    mask[0] = False
    rel = float(np.linalg.norm((bundle["phi"] - truth)[mask]) / np.linalg.norm(truth[mask]))
    coefs = prob.pinn.coefficient_values()
    names = ["Dc", "k", "chi"]
    table = pd.DataFrame({"coefficient": names, "true": [sim.params[n] for n in names],
                          "estimate": [coefs[n] for n in names],
                          "rel. error": [abs(coefs[n] / sim.params[n] - 1) for n in names]})
    rep = ctx.report
    rep.add_text("Cells follow chi grad c of a chemical that is never observed. From the tracks alone (with the "
                 "source known), Dc, k and chi are estimated by least squares of the exact periodic solution's "
                 "gradient against the cell velocities, then a PINN with inverse-Dirichlet loss weights "
                 f"reconstructs phi = chi c ({prob.pinn.step} Adam steps).")
    rep.add_table(table, caption="Coefficients of the hidden chemical from the tracks")
    rep.add_table({"rel. L2 error of chi c (visited region)": rel, "cells": sim.positions.shape[1],
                   "frames": len(sim.times)}, caption="Latent field inference (PINN)")
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.5))
    ext = [0, sim.box[1], 0, sim.box[0]]
    for a, img, title in ((ax[0], truth[-1], "true chi c (last frame)"), (ax[1], bundle["phi"][-1], "inferred")):
        a.imshow(img, origin="lower", extent=ext)
        a.set_title(title)
    last = prob.points[np.abs(prob.points[:, 0] - prob.points[:, 0].max()) < 1e-9]
    ax[1].plot(last[:, 2], last[:, 1], "w.", ms=2)
    wh = prob.pinn.weight_history()
    for n in prob.pinn.weighting.names:
        ax[2].semilogy(wh["step"], wh[n], label=n)
    ax[2].set_xlabel("step")
    ax[2].set_title("loss weights")
    ax[2].legend()
    rep.add_figure(fig, "Hidden chemotactic potential: truth, PINN estimate (cells as dots) and loss weights")


DEMO_STAGE = (90, "Latent field (PINN)", one_torch_thread(_demo))
