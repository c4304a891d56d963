"""``dynfit demo`` stage "Detection and tracking": the sample's spots detected and linked, scored against the truth."""

from __future__ import annotations

import numpy as np

from ..tables import write_table


def _demo(ctx) -> None:
    """Detect and track the embedded active particles; compare with the simulator's ground truth."""
    import matplotlib.pyplot as plt

    from ..detect import detect_movie
    from ..track import link
    from ..track.metrics import match_nodes, tracking_metrics

    movie, truth = ctx.artefacts.get("movie"), ctx.artefacts.get("truth")
    if movie is None or truth is None:
        ctx.report.add_text("No simulated movie with ground truth from an earlier stage: detection and tracking skipped.")
        return
    movie = np.asarray(movie)
    if ctx.quick:
        movie = movie[:15]
        truth = truth[truth["frame"] < 15]
    sample = ctx.artefacts.get("sample")
    sigma = float(np.ravel(truth.attrs.get("psf_sigma", [1.5]))[-1])
    det = detect_movie(movie, sigma=sigma)
    gi, pj = match_nodes(truth, det, match_distance=1.5)
    err = np.linalg.norm(truth[["y", "x"]].to_numpy()[gi] - det[["y", "x"]].to_numpy()[pj], axis=1)
    rows = []
    results = {}
    for motion in ("brownian", "velocity"):
        tr = link(det, max_distance=5.0, gap_frames=2, motion=motion)
        m = tracking_metrics(truth, tr, match_distance=1.5)
        results[motion] = tr
        rows.append({"motion model": motion, **{k: m[k] for k in ("link_precision", "link_recall", "DET", "TRA",
                                                                  "LNK", "CHOTA")}})
    import pandas as pd

    tracks = results["velocity"]
    if sample is not None:
        det.attrs["spacing"] = tracks.attrs["spacing"] = list(sample.spacing)
    ctx.artefacts["detections"] = det
    ctx.artefacts["tracks"] = tracks
    ctx.artefact_meta["detections"] = {"layer_type": "points"}
    ctx.artefact_meta["tracks"] = {"layer_type": "tracks"}
    write_table(det, ctx.out_dir / "detections.csv")
    write_table(tracks, ctx.out_dir / "tracks.csv")
    table = pd.DataFrame(rows)
    ctx.artefacts["tracking_metrics"] = table
    ctx.report.add_text(
        f"Detection (LoG, sigma {sigma:g} px, sub-pixel refinement, split of unresolved pairs): {len(det)} detections "
        f"for {len(truth)} true particles; recall {len(gi) / len(truth):.3f}, precision {len(pj) / max(len(det), 1):.3f}, "
        f"median localisation error {np.median(err):.3f} px (matched within 1.5 px). Linking: sparse LAP, "
        "max distance 5 px, gap closing over 2 frames.")
    ctx.report.add_table(table, "Tracking against the simulator's ground truth (CTC measures and link precision/recall).")
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    t = movie.shape[0] - 1
    axes[0].imshow(movie[t], cmap="gray")
    for _, g in tracks[tracks["frame"] <= t].groupby("track_id"):
        g = g[g["frame"] > t - 10]
        if len(g) > 1:
            axes[0].plot(g["x"], g["y"], "-", lw=0.8)
    f = det[det["frame"] == t]
    axes[0].scatter(f["x"], f["y"], s=30, facecolors="none", edgecolors="tab:red", linewidths=0.7)
    axes[0].set_title(f"frame {t}: detections (red) and the last 10 frames of each track")
    axes[1].hist(err, bins=40)
    axes[1].set_xlabel("localisation error (px)")
    axes[1].set_ylabel("detections")
    axes[1].set_title("detection error against ground truth")
    ctx.report.add_figure(fig, "Detections and tracks on the simulated active particles.")


DEMO_STAGE = (40, "Detection and tracking", _demo)
