"""``dynfit demo`` stage "APR filter and segmentation": LoG on the particles of frame 0, Otsu, connected particles."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def _demo_stage(ctx) -> None:
    import matplotlib.pyplot as plt

    from ..apr.filters import log
    from ..apr.grid import AprGrid, read_particle_values
    from ..apr.io import movie_header
    from ..apr.segment import segment

    info = ctx.artefacts.get("apr")
    if not info or not (ctx.out_dir / info["path"]).exists():
        ctx.report.add_text("No APR of the sample in this run (the APR stage did not produce one): "
                            "filtering and segmentation skipped.")
        return
    head = movie_header(ctx.out_dir / info["path"])
    first = Path(head["path"]) / head["files"][0][0]  # frame 0, channel 0
    grid, values = AprGrid.from_file(first), read_particle_values(first)
    t0 = time.perf_counter()
    blob = log(grid, values, 1.0)  # spots of the sample: PSF sigma ~1.5 px
    res = segment(grid, blob, method="otsu", smooth_sigma=None, min_size=2, frame=0)
    seconds = time.perf_counter() - t0
    ctx.artefacts["apr_objects"] = res.table
    res.table.to_csv(ctx.out_dir / "apr_objects.csv", index=False)
    text = (f"Frame 0 of the APR ({grid.n_particles} particles, computational ratio "
            f"{grid.computational_ratio:.1f}) was filtered on its particles with a scale-normalised LoG "
            f"(sigma 1 px, 5x5 stencil), thresholded (Otsu, {res.threshold:.3g}), and its connected particles "
            f"labelled: {len(res.table)} objects in {seconds:.2f} s (filter + segmentation, no pixel image).")
    truth = ctx.artefacts.get("truth")
    spatial = [c for c in ("z", "y", "x") if c in res.table.columns]
    if truth is not None and len(res.table) and set(spatial) <= set(truth.columns):
        from scipy.optimize import linear_sum_assignment
        from scipy.spatial.distance import cdist

        t = truth[truth["frame"] == 0]
        if len(t):
            d = cdist(t[spatial].to_numpy(float), res.table[spatial].to_numpy(float))
            r, c = linear_sum_assignment(d)
            ok = d[r, c] <= 3.0
            text += (f" Against the simulator's truth: recall {ok.sum() / len(t):.2f}, median centroid error "
                     f"{np.median(d[r, c][ok]) if ok.any() else float('nan'):.2f} px.")
    ctx.report.add_text(text)
    ctx.report.add_table(res.table.head(10))
    centers = grid.pixel_centers()
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    sel = slice(None) if grid.ndim == 2 else np.abs(centers[:, 0] - grid.shape[0] / 2) < 4
    for a, vals, title in ((ax[0], values, "particles (intensity)"), (ax[1], blob, "LoG on the particles")):
        a.scatter(centers[sel, 2], centers[sel, 1], c=np.asarray(vals)[sel], s=2, cmap="magma")
        a.set_title(title)
        a.invert_yaxis()
        a.set_aspect("equal")
    ax[0].plot(res.table["x"], res.table["y"], "c+", ms=8)
    ctx.report.add_figure(fig, "Particles of frame 0 with the segmented objects (+) and the LoG response")


DEMO_STAGE = (30, "APR filter and segmentation", _demo_stage)
