"""Held-out real movie: 1 um beads in water (trackpy's walkthrough data), our detector and linker with no linking
parameters given, against trackpy's documented pipeline on the same frames.

Run ``python -m napari_dynfit.bench.track_beads FOLDER [--frames 300]`` (FOLDER holds ``bulk_water_###.png``); prints JSON.

* Frames are greyscale (first channel) and inverted (dark beads -> bright blobs) before our LoG detector
  (``detect_movie``, blob sigma searched in 2-5 px); trackpy uses its documented settings (``diameter 11,
  minmass 20, invert=True``, ``link(search_range=5, memory=3)``; mpp 100/285 um, 24 fps).
* No ground truth exists: the figures are the agreement of the links (detections matched within 1.5 px between the
  two pipelines; a link agrees when both ends are matched and both pipelines link them) and the diffusion
  coefficient of the ensemble MSD over lags 1-10 frames (after subtracting the mean drift) from each set of tracks
  of at least 25 frames.
"""

from __future__ import annotations

import argparse
import glob
import json
import time
import warnings

import numpy as np


def load(folder, n_frames):
    import imageio.v3 as iio

    files = sorted(glob.glob(f"{folder}/bulk_water_*.png"))[:n_frames]
    return np.stack([np.asarray(iio.imread(f))[..., 0] for f in files])


def diffusion(tracks, mpp, fps, min_len=25, max_lag=10):
    """D (um^2/s) from the ensemble MSD (drift removed), fitted as MSD = 4 D t through the origin."""
    tr = tracks.groupby("track_id").filter(lambda g: len(g) >= min_len).sort_values(["track_id", "frame"])
    drift = tr.groupby("frame")[["y", "x"]].mean()
    drift = drift.diff().fillna(0).cumsum()  # mean displacement of all beads (the walkthrough's compute_drift)
    pos = tr[["y", "x"]].to_numpy() - drift.loc[tr["frame"]].to_numpy()
    tid, fr = tr["track_id"].to_numpy(), tr["frame"].to_numpy()
    lags, msd = np.arange(1, max_lag + 1), []
    for lag in lags:
        same = (tid[lag:] == tid[:-lag]) & (fr[lag:] - fr[:-lag] == lag)
        msd.append(np.mean(((pos[lag:] - pos[:-lag])[same] ** 2).sum(1)) * mpp ** 2)
    t = lags / fps
    return float(np.sum(np.asarray(msd) * t) / np.sum(t * t) / 4)


def link_agreement(a, b, match=1.5):
    """Fraction of links of ``b`` (between detections matched to ``a``) that ``a`` has too."""
    from napari_dynfit.track.metrics import match_nodes

    ia, ib = match_nodes(a, b, match_distance=match)
    b2a = np.full(len(b), -1)
    b2a[ib] = ia

    def edges(df):
        df = df.reset_index(drop=True)
        s = df.sort_values(["track_id", "frame"])
        idx = s.index.to_numpy()
        same = s["track_id"].to_numpy()[1:] == s["track_id"].to_numpy()[:-1]
        return idx[:-1][same], idx[1:][same]

    sa, da = edges(a)
    sb, db = edges(b)
    ok = (b2a[sb] >= 0) & (b2a[db] >= 0)
    key_a = set(zip(sa.tolist(), da.tolist()))
    agree = np.array([(int(b2a[s]), int(b2a[d])) in key_a for s, d in zip(sb[ok], db[ok])])
    return float(agree.mean()) if len(agree) else float("nan"), int(ok.sum())


def main(argv=None):
    import trackpy as tp

    from napari_dynfit.detect import detect_movie
    from napari_dynfit.track import link
    from napari_dynfit.track.quality import TrackingQuality

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--frames", type=int, default=300)
    a = ap.parse_args(argv)
    mpp, fps = 100 / 285.0, 24.0
    grey = load(a.folder, a.frames)
    t0 = time.perf_counter()
    det = detect_movie(255 - grey.astype(np.float64), sigma_range=(2.0, 5.0))
    t1 = time.perf_counter()
    ours = link(det)
    t2 = time.perf_counter()
    for c in ours.attrs["link_choices"]:
        print(f"{c['name']} = {c['value']}  ({'given' if c['given'] else c['reason']})")
    print(TrackingQuality.from_dict(ours.attrs["tracking_quality"]).summary())
    tp.quiet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = tp.batch(list(grey), 11, minmass=20, invert=True, processes=1)
        t3 = time.perf_counter()
        t_tp = tp.link(f, 5, memory=3).rename(columns={"particle": "track_id"})
    t_tp = t_tp[["frame", "y", "x", "track_id"]].reset_index(drop=True)
    # the same linking from our detections, to separate detection from linking differences
    t_tp_ours_det = tp.link(det[["frame", "y", "x"]].copy(), 5, memory=3, pos_columns=["y", "x"],
                            t_column="frame").rename(columns={"particle": "track_id"})
    agree_same_det, n_same = link_agreement(ours, t_tp_ours_det, match=1e-6)
    agree_rev, _ = link_agreement(t_tp_ours_det, ours, match=1e-6)
    agree_tp, n_tp = link_agreement(ours, t_tp)
    out = {"frames": int(grey.shape[0]), "our_detections": int(len(det)), "trackpy_features": int(len(f)),
           "link_params": ours.attrs["link_params"],
           "trackpy_links_also_ours_same_detections": agree_same_det, "links_compared": n_same,
           "our_links_also_trackpy_same_detections": agree_rev,
           "trackpy_pipeline_links_also_ours": agree_tp, "trackpy_pipeline_links_compared": n_tp,
           "D_um2_per_s": {"ours": diffusion(ours, mpp, fps), "trackpy_pipeline": diffusion(t_tp, mpp, fps)},
           "seconds": {"our_detection": t1 - t0, "our_linking": t2 - t1, "trackpy_batch": t3 - t2}}
    print(json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
