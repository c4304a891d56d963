"""Touching cells from raw images: segmentation F1 (IoU 0.5) on generated and real movies, then tracking.

Usage::

    python -m napari_dynfit.bench.cells                       # generated data only (2D rods, 3D nuclei)
    python -m napari_dynfit.bench.cells DATA [--frames N]     # + a CTC data set: DATA/img (raw), DATA/TRA (truth)

With ``DATA`` (e.g. the bacteria movie of ``bentaculum/divisualisation``, ``data/bacteria``; not part of this
repository) it runs what a user runs, with defaults and no per-movie flags::

    dynfit segment DATA/img -o LABELS.tif
    dynfit track LABELS.tif -o tracks.csv --divisions --ctc-out RES

(``method="auto"``: the learned back end for 2D phase-contrast rods when torch is installed, else the classic one;
``--segment-args='--method classic'`` for the classic one) and prints the per-frame segmentation F1 against the
TRA masks, the segmentation's time, and the CTC figures
(DET, TRA, LNK, division F1) from traccuracy (``CTCMatcher``, ``CTCMetrics``, ``DivisionMetrics``) when it is
installed. ``--track-args`` passes extra tracker flags (reported with the figures). JSON goes to stdout
(and ``--json FILE``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_dynfit._io import emit_json
from napari_dynfit.detect import match_segmentation, segment_movie


def pooled(truth, pred) -> dict:
    tp = nt = npred = 0
    per = []
    for t in range(len(truth)):
        m = match_segmentation(truth[t], pred[t])
        tp, nt, npred = tp + m["tp"], nt + m["n_true"], npred + m["n_pred"]
        per.append(m["f1"])
    return {"f1": 2 * tp / max(nt + npred, 1), "precision": tp / max(npred, 1), "recall": tp / max(nt, 1),
            "n_true": nt, "n_pred": npred, "f1_per_frame_min": float(np.min(per)),
            "f1_per_frame_median": float(np.median(per))}


def simulated() -> dict:
    from napari_dynfit.sim.cells import simulate_dividing_cells, simulate_rod_colony
    from napari_dynfit.sim.render import render_cells

    out = {}
    phase = dict(contrast="phase", amplitude=70, halo=4.0, halo_sigma=2, gap=True, texture=0.15)
    f1s = []
    for seed in (3, 4):
        tab = simulate_rod_colony(8, 40, box=(200.0, 200.0), width=10, division_length=44, growth_rate=0.08,
                                  seed=seed)
        movie, labels, _ = render_cells(tab, (200.0, 200.0), seed=seed + 100, **phase)
        frames = list(range(0, 40, 3))
        t0 = time.perf_counter()
        res = segment_movie(movie[frames], scheduler="sync")
        r = pooled(labels[frames], res.labels)
        r.update(seconds=time.perf_counter() - t0, method=res.info["method"], polarity=res.info["polarity"],
                 kind=res.info["kind"], diameter=res.info["diameter"])
        out[f"rods_2d_phase_seed{seed}"] = r
        f1s.append(r["f1"])
    for seed in (5, 6):
        box = (32.0, 80.0, 80.0)
        tab = simulate_dividing_cells(60, 4, dim=3, box=box, radius=4.0, division_rate=0.3, seed=seed,
                                      relax_iterations=50, daughter_distance=8.0)
        movie, labels, _ = render_cells(tab, box, seed=seed + 100)
        t0 = time.perf_counter()
        res = segment_movie(movie, scheduler="sync")
        r = pooled(labels, res.labels)
        r.update(seconds=time.perf_counter() - t0, method=res.info["method"], polarity=res.info["polarity"],
                 kind=res.info["kind"], diameter=res.info["diameter"])
        out[f"nuclei_3d_fluo_seed{seed}"] = r
    for seed in (7, 8):
        box = (128.0, 128.0)
        tab = simulate_dividing_cells(40, 4, dim=2, box=box, radius=5.0, division_rate=0.3, seed=seed,
                                      relax_iterations=50, daughter_distance=10.0)
        movie, labels, _ = render_cells(tab, box, seed=seed + 100)
        res = segment_movie(movie, scheduler="sync")
        r = pooled(labels, res.labels)
        r.update(method=res.info["method"], polarity=res.info["polarity"], kind=res.info["kind"],
                 diameter=res.info["diameter"])
        out[f"nuclei_2d_fluo_seed{seed}"] = r
    return out


def simulated_learned(seeds=(9101, 9102, 9103, 9104)) -> dict:
    """The learned back end on held-out randomised phase-contrast colonies (sim.phase; training used seed 0)."""
    from napari_dynfit.sim.phase import phase_colony_images

    out = {}
    for seed in seeds:
        images, labels = phase_colony_images(seed, size=256, n_frames=4)
        t0 = time.perf_counter()
        res = segment_movie(images, method="learned", scheduler="sync")
        r = pooled(labels, res.labels)
        r.update(seconds=time.perf_counter() - t0)
        out[f"rods_2d_phase_random_seed{seed}"] = r
    return out


def real(data: Path, frames: int | None, track_args: list[str], keep: str | None = None,
         segment_args: list[str] = ()) -> dict:
    import tifffile

    from napari_dynfit.cli import main
    from napari_dynfit.track.formats import read_label_movie

    out = {}
    truth = read_label_movie(data / "TRA")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = data / "img"
        if frames:
            src = tmp / "img"
            src.mkdir()
            for f in sorted((data / "img").glob("*.tif"))[:frames]:
                (src / f.name).symlink_to(f)
            truth = truth[:frames]
        labels_path = Path(keep) if keep else tmp / "labels.tif"
        if keep and labels_path.exists():  # re-use a segmentation made by an earlier run
            out["segment_seconds"] = None
        else:
            t0 = time.perf_counter()
            rc = main(["-q", "segment", str(src), "-o", str(labels_path), *segment_args])
            out["segment_command"] = "dynfit segment DATA/img -o LABELS.tif " + " ".join(segment_args)
            out["segment_seconds"] = time.perf_counter() - t0
            if rc != 0:
                raise SystemExit(f"dynfit segment failed with status {rc}")
        pred = tifffile.imread(labels_path)
        out["segmentation"] = pooled(truth, pred)
        res_dir = tmp / "RES"
        cmd = ["-q", "track", str(labels_path), "-o", str(tmp / "tracks.csv"), "--divisions",
               "--ctc-out", str(res_dir), *track_args]
        t0 = time.perf_counter()
        if main(cmd) != 0:
            raise SystemExit("dynfit track failed")
        out["track_seconds"] = time.perf_counter() - t0
        out["track_command"] = "dynfit track LABELS.tif -o tracks.csv --divisions --ctc-out RES " + " ".join(track_args)
        out["ctc"] = _traccuracy(data / "TRA", res_dir, frames)
    return out


def _traccuracy(gt_dir: Path, res_dir: Path, frames: int | None) -> dict:
    try:
        from traccuracy import run_metrics
        from traccuracy.loaders import load_ctc_data
        from traccuracy.matchers import CTCMatcher, IOUMatcher
        from traccuracy.metrics import CTCMetrics, DivisionMetrics
    except ImportError:
        return {"note": "traccuracy is not installed"}
    gt_src = gt_dir
    if frames:  # truth restricted to the same frames
        gt_src = res_dir.parent / "TRA"
        gt_src.mkdir()
        lines = []
        for line in (gt_dir / "man_track.txt").read_text().split("\n"):
            if not line.strip():
                continue
            i, b, e, p = map(int, line.split())
            if b < frames:
                lines.append(f"{i} {b} {min(e, frames - 1)} {p}")
        (gt_src / "man_track.txt").write_text("\n".join(lines) + "\n")
        for f in sorted(gt_dir.glob("man_track*.tif"))[:frames]:
            (gt_src / f.name).symlink_to(f)
    gt = load_ctc_data(str(gt_src), str(gt_src / "man_track.txt"), run_checks=False)
    pred = load_ctc_data(str(res_dir), str(res_dir / "res_track.txt"), run_checks=False)
    # CTC figures with CTC's matching; divisions need a one-to-one matching: IoU > 0.5
    results, _ = run_metrics(gt, pred, matcher=CTCMatcher(), metrics=[CTCMetrics()])
    div, _ = run_metrics(gt, pred, matcher=IOUMatcher(iou_threshold=0.5, one_to_one=True),
                         metrics=[DivisionMetrics()])
    out = {}
    for r in results + div:
        res = r["results"]
        res = res.get("Frame Buffer 0", res) if isinstance(res, dict) else res
        for k, v in res.items():
            if k in ("DET", "TRA", "LNK", "Division F1", "Division Recall", "Division Precision", "AOGM",
                     "Total GT Divisions", "Total Predicted Divisions", "True Positive Divisions"):
                out[k] = float(v)
    if "Division Recall" in out and "Division F1" not in out:
        p_, r_ = out["Division Precision"], out["Division Recall"]
        out["Division F1"] = 2 * p_ * r_ / (p_ + r_) if p_ + r_ > 0 else 0.0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="?", help="CTC data folder with img/ and TRA/ (local check)")
    ap.add_argument("--frames", type=int, help="first N frames only")
    ap.add_argument("--no-sim", action="store_true", help="skip the generated data")
    ap.add_argument("--segment-args", default="", help="extra `dynfit segment` flags, one string "
                    "(e.g. --segment-args='--method classic')")
    ap.add_argument("--learned", action="store_true", help="generated data: also the learned back end (needs torch)")
    ap.add_argument("--track-args", nargs=argparse.REMAINDER, default=[], help="extra `dynfit track` flags")
    ap.add_argument("--json", help="also write the JSON here")
    ap.add_argument("--keep", help="label movie path: written by the first run, re-used by later runs")
    args = ap.parse_args(argv)
    out = {}
    if not args.no_sim:
        out["simulated"] = simulated()
    if args.learned:
        out["simulated_learned"] = simulated_learned()
    if args.data:
        data = Path(args.data).expanduser()
        if not (data / "img").is_dir() or not (data / "TRA").is_dir():
            print(f"{data} needs img/ and TRA/ folders", file=sys.stderr)
            return 2
        out["real"] = real(data, args.frames, args.track_args, args.keep, shlex.split(args.segment_args))
    emit_json(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
