"""Detection against simulated truth: our default detector vs trackpy.locate, side by side in one process.

Usage::

    python -m napari_dynfit.bench.detect [--frames 10] [--spots 400] [--size 512] [--snr 5 10 20] [--sigma 1.5]
                                      [--dark] [--json]

Each frame holds ``--spots`` point emitters at uniformly random positions (close pairs included) rendered by
:func:`napari_dynfit.sim.render_movie` (Gaussian PSF of ``--sigma`` px, Poisson + read noise, peak SNR ``--snr``);
``--dark`` inverts the frames (dark objects on a bright background). Ours: :func:`napari_dynfit.detect.detect_movie`
with its defaults (polarity auto, decided once per movie; splitting on), the spot sigma and one worker. trackpy: ``locate`` with ``diameter`` the odd
integer >= 4.5 sigma (7 for 1.5 px), ``invert`` for dark frames, and ``minmass`` chosen to maximise its F1 on
separate tuning frames of the same SNR (its best case: trackpy's docs pick ``minmass`` by eye from the mass
histogram). Both run one frame at a time on one thread. Detections are matched one-to-one to the truth within 1.5
px (Hungarian); printed per SNR: recall, precision, median position error, CPU (process, all threads) and wall time
per frame (medians of ``--rounds`` alternating runs, so that both see the same load), and the time ratios.
``--json``: the table goes to stderr and one JSON object (per SNR: both methods' figures) to stdout (read by
``dynfit bench --all``, napari_dynfit.bench.figures).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from napari_dynfit.bench import add_json, say_for


def frames(n_frames, n_spots, size, snr, sigma, seed, dark):
    from napari_dynfit.sim import render_movie

    rng = np.random.default_rng(seed)
    rows = [pd.DataFrame({"frame": t, "y": rng.uniform(2, size - 3, n_spots), "x": rng.uniform(2, size - 3, n_spots)})
            for t in range(n_frames)]
    movie, truth = render_movie(pd.concat(rows, ignore_index=True), (n_frames, size, size), psf_sigma=sigma,
                                snr=snr, seed=seed)
    movie = movie.astype(np.float32)
    if dark:
        movie = movie.max() + 100 - movie
    return movie, truth


def score(truth, det):
    from napari_dynfit.track.metrics import match_nodes

    if len(det) == 0:
        return 0.0, 0.0, np.nan
    gi, pj = match_nodes(truth, det, match_distance=1.5)
    err = np.linalg.norm(truth[["y", "x"]].to_numpy()[gi] - det[["y", "x"]].to_numpy()[pj], axis=1)
    return len(gi) / len(truth), len(pj) / len(det), float(np.median(err)) if len(err) else np.nan


def run_tp(movie, diameter, minmass, dark):
    import trackpy as tp

    parts = []
    for t, fr in enumerate(movie):
        f = tp.locate(fr, diameter, minmass=minmass, invert=dark)
        parts.append(pd.DataFrame({"frame": t, "y": f["y"].to_numpy(), "x": f["x"].to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def run_ours(movie, sigma):
    from napari_dynfit.detect import detect_movie

    return detect_movie(movie, sigma=sigma, n_workers=1)[["frame", "y", "x"]]


def tune_minmass(movie, truth, diameter, dark):
    """trackpy's minmass maximising F1 on tuning frames (a grid over the mass quantiles of all its candidates)."""
    import trackpy as tp

    cand = pd.concat([tp.locate(fr, diameter, minmass=0, invert=dark).assign(frame=t) for t, fr in enumerate(movie)])
    best = (-1.0, 0.0)
    for mm in np.quantile(cand["mass"], np.linspace(0, 0.95, 39)):
        sel = cand[cand["mass"] >= mm]
        r, p, _ = score(truth, sel[["frame", "y", "x"]])
        f1 = 2 * r * p / max(r + p, 1e-12)
        best = max(best, (f1, float(mm)))
    return best[1]


def timed(ours, theirs, rounds: int, n: int):
    """Median CPU (process) and wall time per frame of two callables run alternately ``rounds`` times."""
    out = {0: [], 1: []}
    for _ in range(rounds):
        for k, f in enumerate((ours, theirs)):
            c0, w0 = time.process_time(), time.perf_counter()
            f()
            out[k].append(((time.process_time() - c0) / n, (time.perf_counter() - w0) / n))
    return [tuple(np.median(np.array(out[k]), axis=0)) for k in (0, 1)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--spots", type=int, default=400)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--snr", type=float, nargs="+", default=[5.0, 10.0, 20.0])
    ap.add_argument("--sigma", type=float, default=1.5)
    ap.add_argument("--dark", action="store_true", help="dark spots on a bright background")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds (alternating; medians reported)")
    add_json(ap, "the table")
    args = ap.parse_args(argv)
    say = say_for(args)

    result = {"frames": args.frames, "spots": args.spots, "size": args.size, "sigma": args.sigma, "dark": args.dark,
              "snr": {}}

    import trackpy as tp

    tp.quiet()
    diameter = int(np.ceil(4.5 * args.sigma)) | 1
    say(f"{args.frames} frames of {args.size} x {args.size}, {args.spots} spots each, PSF sigma {args.sigma} px, "
          f"{'dark' if args.dark else 'bright'} spots; trackpy diameter {diameter}")
    say(f"{'SNR':>5} {'method':8} {'recall':>7} {'precision':>9} {'median err (px)':>16} {'CPU s/fr':>8} {'wall s/fr':>8}")
    for snr in args.snr:
        tune, tune_truth = frames(3, args.spots, args.size, snr, args.sigma, seed=1000 + int(snr), dark=args.dark)
        minmass = tune_minmass(tune, tune_truth, diameter, args.dark)
        movie, truth = frames(args.frames, args.spots, args.size, snr, args.sigma, seed=int(snr), dark=args.dark)
        run_ours(movie[:1], args.sigma)  # warm-up (imports), both
        run_tp(movie[:1], diameter, minmass, args.dark)
        # alternate the two, several rounds: both see the same load of a shared machine
        t_ours, t_tp = timed(lambda: run_ours(movie, args.sigma), lambda: run_tp(movie, diameter, minmass, args.dark),
                             args.rounds, len(movie))
        ours, ref = run_ours(movie, args.sigma), run_tp(movie, diameter, minmass, args.dark)
        row = result["snr"][f"{snr:g}"] = {"trackpy_minmass": minmass, "time_ratio_cpu": t_ours[0] / t_tp[0],
                                           "time_ratio_wall": t_ours[1] / t_tp[1]}
        for name, det, t in (("ours", ours, t_ours), ("trackpy", ref, t_tp)):
            r, p, e = score(truth, det)
            row[name] = {"recall": r, "precision": p, "median_error_px": e, "cpu_s_per_frame": t[0],
                         "wall_s_per_frame": t[1]}
            say(f"{snr:5.0f} {name:8} {r:7.3f} {p:9.3f} {e:16.3f} {t[0]:8.4f} {t[1]:8.4f}")
        say(f"{'':5} time ratio ours/trackpy: CPU {t_ours[0] / t_tp[0]:.2f}, wall {t_ours[1] / t_tp[1]:.2f} "
              f"(trackpy minmass {minmass:.0f}, tuned)")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
