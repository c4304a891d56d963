"""Tracking benchmark: accuracy and speed of our LAP linker against laptrack and trackpy, same detections.

Run ``python -m napari_dynfit.bench.tracking [--sections accuracy,speed,scaling]``; prints JSON.

* accuracy: particles placed at random (uniform, some pairs genuinely ambiguous). Brownian steps with mean
  0.15 of the mean nearest-neighbour distance ``0.5 sqrt(area / N)``; self-propelled particles (ABP,
  rotational diffusion 0.05 rad^2 per frame) with steps 0.4 of it. Correct-link fraction = link recall against
  the simulated identities (and precision).
* speed: ``--n`` particles x ``--frames`` frames in 2D, Brownian, 2 % of detections dropped, gap closing over
  2 frames (ours given ``max_distance``, ``gap_frames`` and ``motion``, so nothing is estimated; ``ours_defaults_s``
  times ours with no parameters: the estimates and two linking passes): ours vs trackpy (``memory=2``) vs laptrack with gap closing (at ``--laptrack-n`` particles when that
  is smaller: its gap closing is slow; the ratio is then extrapolated linearly in N and flagged). Peak memory of
  ours by tracemalloc in a separate run.
* scaling: ours from 10^3 to 10^5 particles (``--scaling-frames`` frames).
Timings are wall-clock on a shared machine: noisy.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np
import pandas as pd

from napari_dynfit.track import link
from napari_dynfit.track.metrics import tracking_metrics


def brownian_table(n, frames, *, step_fraction=0.15, drop=0.0, seed=0):
    """Random points with Brownian steps, a fraction ``drop`` of detections missing.

    Returns (truth of the detected points, detections, mean step, nn distance).
    """
    rng = np.random.default_rng(seed)
    side = 10.0 * np.sqrt(n)  # area / N = 100, nn distance 5
    nn = 0.5 * np.sqrt(side * side / n)
    mean_step = step_fraction * nn
    sig = mean_step / np.sqrt(np.pi / 2)
    pos = rng.uniform(0, side, (n, 2)) + np.cumsum(rng.normal(0, sig, (frames, n, 2)), axis=0)
    truth = pd.DataFrame({"track_id": np.tile(np.arange(1, n + 1), frames), "frame": np.repeat(np.arange(frames), n),
                          "y": pos[..., 0].ravel(), "x": pos[..., 1].ravel()})
    kept = truth[rng.random(len(truth)) >= drop]
    # the ground truth of what was detected: its tracks skip the dropped frames (gap closing recovers those links)
    return kept.reset_index(drop=True), kept[["frame", "y", "x"]].reset_index(drop=True), mean_step, nn


def abp_table(n, frames, *, step_fraction=0.4, rot_diffusion=0.05, seed=0):
    """Self-propelled particles (simulator ABP, unwrapped positions)."""
    from napari_dynfit.sim import simulate_abp

    side = 10.0 * np.sqrt(n)
    nn = 0.5 * np.sqrt(side * side / n)
    step = step_fraction * nn
    traj = simulate_abp(n, (frames - 1) * 10, dim=2, box=side, dt=0.1, v0=step, Dr=rot_diffusion, Dt=0.0,
                        save_every=10, seed=seed)
    p = traj.unwrapped
    truth = pd.DataFrame({"track_id": np.tile(np.arange(1, n + 1), p.shape[0]),
                          "frame": np.repeat(np.arange(p.shape[0]), n), "y": p[..., 0].ravel(), "x": p[..., 1].ravel()})
    return truth, truth[["frame", "y", "x"]].copy(), step, nn


def run_trackpy(det, search_range, memory=0, predict=False):
    import trackpy as tp

    tp.quiet()
    df = det.copy()
    if predict:
        out = tp.predict.NearestVelocityPredict().link_df(df, search_range, memory=memory, pos_columns=["y", "x"],
                                                          t_column="frame")
    else:
        out = tp.link(df, search_range, memory=memory, pos_columns=["y", "x"], t_column="frame")
    out = out.rename(columns={"particle": "track_id"})
    out["track_id"] = out["track_id"] + 1
    return out.reset_index(drop=True)


def _laptrack(max_distance, gap_frames):
    from laptrack import LapTrack

    kw = dict(metric="sqeuclidean", cutoff=max_distance ** 2, splitting_cutoff=False, merging_cutoff=False)
    if gap_frames:
        kw.update(gap_closing_metric="sqeuclidean", gap_closing_cutoff=max_distance ** 2 * (gap_frames + 1),
                  gap_closing_max_frame_count=gap_frames)
    else:
        kw.update(gap_closing_cutoff=False)
    return LapTrack(**kw)


def run_laptrack(det, max_distance, gap_frames=0):
    lt = _laptrack(max_distance, gap_frames)
    track_df, _, _ = lt.predict_dataframe(det.copy(), ["y", "x"], only_coordinate_cols=False)
    out = track_df.reset_index(drop=True)
    out["track_id"] = out["track_id"] + 1
    return out


def _score(truth, tracks):
    m = tracking_metrics(truth, tracks, match_distance=1e-3)
    return {"correct_link_fraction": m["link_recall"], "link_precision": m["link_precision"], "LNK": m["LNK"]}


def accuracy(n=1000, frames=30, seed=0):
    res = {}
    truth, det, step, nn = brownian_table(n, frames, seed=seed)
    r = 4 * step
    res["brownian_0.15"] = {"mean_step": step, "nn_distance": nn, "max_distance": r,
                            "ours": _score(truth, link(det, max_distance=r)),
                            "ours_defaults": _score(truth, link(det)),
                            "laptrack": _score(truth, run_laptrack(det, r)),
                            "trackpy": _score(truth, run_trackpy(det, r))}
    truth, det, step, nn = abp_table(n, frames, seed=seed)
    r = 2 * step
    res["self_propelled_0.4"] = {
        "mean_step": step, "nn_distance": nn, "max_distance": r,
        "ours_brownian": _score(truth, link(det, max_distance=r, motion="brownian")),
        "ours_velocity": _score(truth, link(det, max_distance=r, motion="velocity")),
        "ours_drift": _score(truth, link(det, max_distance=r, motion="drift")),
        "ours_defaults": _score(truth, link(det)),
        "laptrack": _score(truth, run_laptrack(det, r)),
        "trackpy": _score(truth, run_trackpy(det, r)),
        "trackpy_velocity_predict": _score(truth, run_trackpy(det, r, predict=True)),
    }
    return res


def _time(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def speed(n=10_000, frames=100, laptrack_n=None, gap_frames=2, seed=0):
    truth, det, step, _ = brownian_table(n, frames, drop=0.02, seed=seed)
    r = 4 * step
    res = {"n_particles": n, "frames": frames, "detections": len(det), "gap_frames": gap_frames, "max_distance": r}
    t_ours, ours = _time(lambda: link(det, max_distance=r, gap_frames=gap_frames, motion="brownian"))
    res["ours_s"] = t_ours
    res["ours"] = _score(truth, ours)
    t_def, ours_def = _time(lambda: link(det))  # everything estimated: two linking passes and the estimates
    res["ours_defaults_s"] = t_def
    res["ours_defaults"] = _score(truth, ours_def)
    tracemalloc.start()
    link(det, max_distance=r, gap_frames=gap_frames, motion="brownian")
    res["ours_peak_memory_mb"] = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    t_tp, tpk = _time(lambda: run_trackpy(det, r, memory=gap_frames))
    res["trackpy_s"] = t_tp
    res["trackpy"] = _score(truth, tpk)
    res["speedup_vs_trackpy"] = t_tp / t_ours
    ln = laptrack_n or n
    if ln < n:
        truth_l, det_l, _, _ = brownian_table(ln, frames, drop=0.02, seed=seed)
        t_ours_l, _ = _time(lambda: link(det_l, max_distance=r, gap_frames=gap_frames, motion="brownian"))
    else:
        det_l, t_ours_l = det, t_ours
    lt = _laptrack(r, gap_frames)
    coords = [g[["y", "x"]].to_numpy() for _, g in det_l.groupby("frame")]
    t_lt, _ = _time(lambda: lt.predict(coords))  # the graph only: predict_dataframe adds ~10x on top
    res["laptrack_n_particles"] = ln
    res["laptrack_gap_closing_s"] = t_lt
    res["ours_at_laptrack_size_s"] = t_ours_l
    res["speedup_vs_laptrack"] = t_lt / t_ours_l
    res["laptrack_measured_at_smaller_size"] = ln < n
    return res


def scaling(sizes=(1_000, 10_000, 100_000), frames=100, gap_frames=2, seed=0):
    rows = []
    for n in sizes:
        truth, det, step, _ = brownian_table(n, frames, drop=0.02, seed=seed)
        t, tracks = _time(lambda det=det, step=step: link(det, max_distance=4 * step, gap_frames=gap_frames,
                                                                   motion="brownian"))
        rows.append({"n_particles": n, "frames": frames, "detections": len(det), "ours_s": t,
                     "us_per_detection": 1e6 * t / len(det), **_score(truth, tracks)})
        del truth, det, tracks
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="accuracy,speed,scaling")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--laptrack-n", type=int, default=None, help="particles for laptrack's gap closing run")
    ap.add_argument("--scaling-frames", type=int, default=100)
    ap.add_argument("--scaling-sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    out = {}
    sections = args.sections.split(",")
    if "accuracy" in sections:
        out["accuracy"] = accuracy()
    if "speed" in sections:
        out["speed"] = speed(args.n, args.frames, args.laptrack_n)
    if "scaling" in sections:
        out["scaling"] = scaling(tuple(args.scaling_sizes), args.scaling_frames)
    text = json.dumps(out, indent=2, default=float)
    print(text)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
