"""Real bead movie: our default detection (polarity auto) + our linker vs trackpy's documented walkthrough, side by side.

Usage::

    python -m napari_dynfit.bench.beads FOLDER [--frames N] [--every K] [--mpp 0.3509] [--fps 24] [--diameter 11]
                                            [--minmass 20] [--invert | --no-invert] [--search-range 5] [--memory 3]
                                            [--sigma S] [--json]

FOLDER holds the frames as images (PNG/TIFF/JPEG, sorted by name), or is one multi-page TIFF (frames along its pages);
colour frames are converted to grey with the weights trackpy's walkthrough uses through ``pims.as_grey``:
0.2125 R + 0.7154 G + 0.0721 B. E.g. trackpy's ``bulk_water`` sample (1 um beads in water, brightfield, 24 fps,
100/285 um per pixel). ``--every K`` keeps every K-th frame (after ``--frames``), for movies that store each image
more than once; ``--fps`` is the rate of the frames kept.

trackpy: ``batch(frames, diameter, minmass=minmass, invert=invert)``, ``link(search_range, memory)`` (default 5 px, 3),
``filter_stubs(25)``, ``subtract_drift(compute_drift)``, ``emsd(mpp, fps)`` (max lag 100 frames),
``utils.fit_powerlaw``. Ours: :func:`napari_dynfit.detect.detect_movie` with the defaults of ``dynfit detect``
(sigma auto: estimated from the movie, :func:`napari_dynfit.detect.size.estimate_movie_spot_sigma`; polarity
auto, splitting on), :func:`napari_dynfit.track.link` (max distance = search range,
gap frames = memory),
:func:`napari_dynfit.track.fit_msd` (tracks of >= 25 positions, drift removed, max lag 100, immobile tracks left out
and counted: its defaults). Both detectors run in
this process, one frame at a time on one thread (ours also with its default of 2 threads). Printed: detections per frame, detection time
(wall and CPU) and ratios,
positions outside the image, detections on the wrong side of the local background, pairs closer than 3 px, MSD
exponent and prefactor of both and their differences, and the same MSD on trackpy's particles and frames with our
positions in place of trackpy's (:func:`paired_msd`: localisation alone). ``--json``: the text goes to stderr and the figures as one
JSON object to stdout (read by ``dynfit bench --all``, napari_dynfit.bench.figures).

``--simulate D`` replaces FOLDER by a simulated fluorescence bead movie with known truth (the real
fluorescence and bright-particle movies run so far, with their sources and commands: docs/tracking.md): 150 beads diffusing with coefficient D (um^2/s) in 256 x 256 px at ``--mpp``/``--fps``,
200 frames rendered by :func:`napari_dynfit.sim.render_movie` (Gaussian PSF 1.5 px, peak SNR 8); trackpy then uses
diameter 7 and the minmass that maximises its F1 on separate tuning frames (``napari_dynfit.bench.detect``), no
inversion; the true MSD exponent is 1 and prefactor 4 D.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_dynfit.bench import add_json, say_for

GREY = np.array([0.2125, 0.7154, 0.0721])


def _grey(im: np.ndarray) -> np.ndarray:
    return im[..., :3] @ GREY if im.ndim == 3 and im.shape[-1] in (3, 4) else im.astype(float)


def read_frames(path: Path, n: int | None, every: int = 1) -> np.ndarray:
    """Frames (t, y, x) float32 from a folder of images or one multi-page TIFF: the first ``n`` (all if None), then
    every ``every``-th of those; colour converted to grey (module docstring)."""
    import imageio.v3 as iio

    if path.is_file():
        import tifffile

        stack = tifffile.imread(path)
        if stack.ndim == 2 or (stack.ndim == 3 and stack.shape[-1] in (3, 4)):
            raise SystemExit(f"{path} holds one frame, not a movie")
        frames = [_grey(im) for im in stack[:n]]
    else:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg"))[:n]
        if not files:
            raise SystemExit(f"no image frames in {path}")
        frames = [_grey(iio.imread(f)) for f in files]
    return np.stack(frames[::every]).astype(np.float32)


def _bead_tracks(D, mpp, fps, n=150, frames=200, size=256, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    steps = rng.normal(0, np.sqrt(2 * D / fps), (n, frames, 2)) / mpp  # pixels
    pos = rng.uniform(0, size, (n, 1, 2)) + np.cumsum(steps, axis=1)
    return pd.DataFrame({"frame": np.tile(np.arange(frames), n), "y": pos[..., 0].ravel(), "x": pos[..., 1].ravel()})


def simulate(D, mpp, fps, seed=0) -> np.ndarray:
    """Fluorescence bead movie (t, y, x), float32 (see the module docstring)."""
    from napari_dynfit.sim import render_movie

    table = _bead_tracks(D, mpp, fps, seed=seed)
    inside = table[(table["y"] > -3) & (table["y"] < 259) & (table["x"] > -3) & (table["x"] < 259)]
    movie, _ = render_movie(inside, (200, 256, 256), psf_sigma=1.5, snr=8, seed=seed)
    return movie.astype(np.float32)


def tune(D, mpp, fps) -> float:
    """trackpy's best minmass on 3 separate simulated frames."""
    from napari_dynfit.bench.detect import tune_minmass
    from napari_dynfit.sim import render_movie

    table = _bead_tracks(D, mpp, fps, frames=3, seed=99)
    movie, truth = render_movie(table, (3, 256, 256), psf_sigma=1.5, snr=8, seed=99)
    return tune_minmass(movie.astype(np.float32), truth, 7, False)


def contrast_checks(frames: np.ndarray, table, dark: bool) -> dict:
    """Fractions of detections outside the image, on the wrong side of the local background (the Gaussian-smoothed
    value at the position vs the median of the 21 x 21 window around it), and in pairs closer than 3 px."""
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    h, w = frames.shape[1:]
    y, x, fr = table["y"].to_numpy(), table["x"].to_numpy(), table["frame"].to_numpy().astype(int)
    outside = (y < -0.5) | (y > h - 0.5) | (x < -0.5) | (x > w - 0.5)
    wrong = np.zeros(len(table), bool)
    close = 0
    for t in np.unique(fr):
        sel = np.flatnonzero(fr == t)
        sm = ndi.gaussian_filter(frames[t], 1.0)
        bg = ndi.median_filter(frames[t][::3, ::3], size=7, mode="nearest")  # ~21 px window, on a coarse grid
        iy = np.clip(np.round(y[sel]).astype(int), 0, h - 1)
        ix = np.clip(np.round(x[sel]).astype(int), 0, w - 1)
        c = sm[iy, ix] - bg[np.clip(iy // 3, 0, bg.shape[0] - 1), np.clip(ix // 3, 0, bg.shape[1] - 1)]
        wrong[sel] = c >= 0 if dark else c <= 0
        close += len(cKDTree(np.c_[y[sel], x[sel]]).query_pairs(3.0))
    n = max(len(table), 1)
    return {"outside": outside.sum() / n, "wrong_side": wrong.sum() / n, "close_pairs": close / n}


def paired_msd(t1, det, mpp: float, fps: float, max_distance: float = 2.0):
    """trackpy's MSD pipeline (drift removed, ``emsd``, ``fit_powerlaw``) on trackpy's particles and frames, once
    with trackpy's positions and once with our nearest detection (within ``max_distance`` px, same frame) in their
    place: localisation alone, without the choice of which particles are counted. Returns (fraction of trackpy's
    positions paired, median offset px, (exponent, prefactor) with trackpy's positions, the same with ours); NaN
    fits where no MSD can be formed (no tracks; one particle, whose motion is all "drift")."""
    import pandas as pd
    import trackpy as tp
    from scipy.spatial import cKDTree

    rows = []
    for t, g in t1.groupby("frame"):
        q = det[det["frame"] == t]
        if not len(q):
            continue
        d, j = cKDTree(q[["y", "x"]].to_numpy()).query(g[["y", "x"]].to_numpy())
        ok = d < max_distance
        rows.append(pd.DataFrame({"frame": t, "particle": g["particle"].to_numpy()[ok], "d": d[ok],
                                  "y": g["y"].to_numpy()[ok], "x": g["x"].to_numpy()[ok],
                                  "y_o": q["y"].to_numpy()[j[ok]], "x_o": q["x"].to_numpy()[j[ok]]}))
    if not rows:
        return 0.0, float("nan"), (float("nan"),) * 2, (float("nan"),) * 2
    pairs = pd.concat(rows, ignore_index=True)
    fits = []
    for y, x in (("y", "x"), ("y_o", "x_o")):
        t = pairs[["frame", "particle", y, x]].rename(columns={y: "y", x: "x"})
        try:
            em = tp.emsd(tp.subtract_drift(t.copy(), tp.compute_drift(t)), mpp, fps)
            pl = tp.utils.fit_powerlaw(em, plot=False)
            fits.append((float(pl["n"].iloc[0]), float(pl["A"].iloc[0])))
        except ValueError:  # nothing left to average (no tracks, or one particle: its motion is the "drift")
            fits.append((float("nan"),) * 2)
    return len(pairs) / max(len(t1), 1), float(np.median(pairs["d"])), fits[0], fits[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, nargs="?", help="folder of frames or a multi-page TIFF (not with --simulate)")
    ap.add_argument("--simulate", type=float, metavar="D", help="simulated fluorescence beads of diffusion D um^2/s")
    ap.add_argument("--frames", type=int, help="first N frames only")
    ap.add_argument("--every", type=int, default=1, help="keep every K-th frame (default 1: all)")
    ap.add_argument("--mpp", type=float, default=100 / 285.0, help="um per pixel (default 100/285)")
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--diameter", type=int, default=11, help="trackpy diameter (default 11)")
    ap.add_argument("--minmass", type=float, default=20.0, help="trackpy minmass (default 20)")
    ap.add_argument("--invert", action=argparse.BooleanOptionalAction, default=True, help="trackpy invert")
    ap.add_argument("--search-range", type=float, default=5.0,
                    help="linking distance in px, trackpy search_range and our max_distance (default 5)")
    ap.add_argument("--memory", type=int, default=3, help="trackpy memory and our gap frames (default 3)")
    ap.add_argument("--sigma", type=float, default=None,
                    help="our blob sigma in px (default: dynfit detect's auto, estimated from the movie; the estimate "
                         "is part of our detection time)")
    add_json(ap)
    args = ap.parse_args(argv)
    say = say_for(args)

    import trackpy as tp

    from napari_dynfit.detect import detect_movie
    from napari_dynfit.track import fit_msd, link

    tp.quiet()
    if args.simulate:
        frames = simulate(args.simulate, args.mpp, args.fps, seed=0)
        args.diameter, args.invert = 7, False
        args.minmass = tune(args.simulate, args.mpp, args.fps)
        say(f"simulated fluorescence beads, D {args.simulate} um^2/s: true exponent 1, prefactor "
              f"{4 * args.simulate:.3f} um^2/s; trackpy diameter 7, minmass {args.minmass:.0f} (tuned)")
    else:
        if args.folder is None:
            raise SystemExit("give FOLDER or --simulate D")
        frames = read_frames(args.folder, args.frames, args.every)
    say(f"{len(frames)} frames of {frames.shape[1]} x {frames.shape[2]}")

    # warm-up of both on two frames (imports, compiled kernels: a cold numba cache costs ours ~20 s once)
    tp.batch(frames[:2], args.diameter, minmass=args.minmass, invert=args.invert, processes=1)
    detect_movie(frames[:2], sigma=args.sigma, n_workers=1)
    c0, t0 = time.process_time(), time.perf_counter()
    f = tp.batch(frames, args.diameter, minmass=args.minmass, invert=args.invert, processes=1)
    c_tp, t_tp = time.process_time() - c0, time.perf_counter() - t0
    c0, t0 = time.process_time(), time.perf_counter()
    det = detect_movie(frames, sigma=args.sigma, n_workers=1)
    c_ours, t_ours = time.process_time() - c0, time.perf_counter() - t0
    t0 = time.perf_counter()
    detect_movie(frames, sigma=args.sigma)  # dynfit detect's default: 2 worker threads
    t_def = time.perf_counter() - t0
    pol = det.attrs["polarity"]
    say(f"detection  trackpy {len(f) / len(frames):7.1f} per frame  {t_tp:7.2f} s | ours {len(det) / len(frames):7.1f} "
          f"per frame  {t_ours:7.2f} s (polarity {pol}, skewness {det.attrs['skewness']:+.2f}; "
          f"{det.attrs['sigma_choice']}) | time ratio ours/trackpy "
          f"{t_ours / t_tp:.2f} (CPU {c_ours:.2f} s vs {c_tp:.2f} s: {c_ours / c_tp:.2f}); with the default 2 threads "
          f"{t_def:.2f} s, ratio {t_def / t_tp:.2f}")
    checks = {}
    for name, tab in (("trackpy", f), ("ours", det)):
        c = checks[name] = contrast_checks(frames, tab, dark=pol == "dark")
        say(f"  {name:8s} outside image {100 * c['outside']:.2f} %  wrong side of background "
              f"{100 * c['wrong_side']:.2f} %  pairs < 3 px {100 * c['close_pairs']:.2f} % of detections")

    mpp, dt = args.mpp, 1.0 / args.fps
    t1 = tp.filter_stubs(tp.link(f, args.search_range, memory=args.memory), 25)
    tm = tp.subtract_drift(t1.copy(), tp.compute_drift(t1))
    em = tp.emsd(tm, mpp, args.fps)
    pl = tp.utils.fit_powerlaw(em, plot=False)
    n_tp, a_tp = float(pl["n"].iloc[0]), float(pl["A"].iloc[0])
    tracks = link(det, max_distance=args.search_range, gap_frames=args.memory)
    fit = fit_msd(tracks, dt=dt, spacing=(mpp, mpp), max_lag=100, min_length=25, drift=True)
    kept = (tracks.groupby("track_id")["frame"].transform("size") >= 25).sum()
    say(f"tracks >= 25 frames  trackpy {t1['particle'].nunique()} ({len(t1)} positions) | ours "
          f"{(tracks.groupby('track_id').size() >= 25).sum()} ({kept} positions)")
    say(f"MSD fit (drift removed)  trackpy: exponent {n_tp:.3f} prefactor {a_tp:.3f} um^2/s^n | ours: exponent "
          f"{fit.exponent:.3f} prefactor {fit.prefactor:.3f} um^2/s^n (D {fit.D:.3f} um^2/s; {fit.immobile_report()})")
    say(f"  {fit.precision_report()}")
    say(f"  {fit.composition_report()}")
    say(f"difference  exponent {fit.exponent - n_tp:+.3f}  prefactor {100 * (fit.prefactor / a_tp - 1):+.1f} %")
    if fit.populations:
        big = fit.largest_population
        say(f"largest mobility population ({big.n_tracks} tracks), difference  exponent {big.exponent - n_tp:+.3f}  "
            f"prefactor {100 * (big.prefactor / a_tp - 1):+.1f} %")
    frac, off, (n_p, a_p), (n_o, a_o) = paired_msd(t1, det, mpp, args.fps)
    say(f"same particles and frames (trackpy's tracks, our nearest detection within 2 px: {100 * frac:.1f} % paired, "
        f"median offset {off:.3f} px)  exponent {n_o:.3f} vs {n_p:.3f} ({n_o - n_p:+.3f})  prefactor {a_o:.3f} vs "
        f"{a_p:.3f} ({100 * (a_o / a_p - 1):+.1f} %)")
    if args.json:
        print(json.dumps({
            "frames": len(frames), "polarity": pol, "simulated_D": args.simulate, "sigma": float(det.attrs["sigma"]),
            "sigma_choice": det.attrs["sigma_choice"],
            "detections_per_frame": {"trackpy": len(f) / len(frames), "ours": len(det) / len(frames)},
            "detect_s": {"trackpy": t_tp, "ours": t_ours, "ours_default_threads": t_def},
            "detect_cpu_s": {"trackpy": c_tp, "ours": c_ours}, "cpu_ratio_ours_over_trackpy": c_ours / c_tp,
            "checks": {k: {q: float(x) for q, x in v.items()} for k, v in checks.items()},
            "msd": {"trackpy": {"exponent": n_tp, "prefactor": a_tp},
                    "ours": {"exponent": float(fit.exponent), "prefactor": float(fit.prefactor), "D": float(fit.D),
                             "tracks": fit.n_tracks, "immobile_excluded": len(fit.immobile),
                             "composition_bias": float(fit.composition_bias),
                             "exponent_fixed_composition": float(fit.exponent_fixed_composition),
                             "exponent_ci": list(fit.exponent_ci), "prefactor_ci": list(fit.prefactor_ci),
                             "populations": fit.as_dict()["populations"]}},
            "exponent_difference": float(fit.exponent - n_tp),
            "prefactor_difference_pct": float(100 * (fit.prefactor / a_tp - 1)),
            "paired": {"fraction": frac, "median_offset_px": off, "exponent_difference": n_o - n_p,
                       "prefactor_difference_pct": 100 * (a_o / a_p - 1)}}))


if __name__ == "__main__":
    main()
