"""Tracking a CTC label movie with the defaults (no parameters given) and scoring it with ours and traccuracy.

Run ``python -m napari_dynfit.bench.track_ctc GT_TRA [--masks MASKS] [--seed 0] [--match-distance 0.5]``; prints JSON.

* ``GT_TRA``: a Cell Tracking Challenge ground-truth folder (``man_track.txt`` + ``man_track####.tif``).
* ``--masks``: the label movie to track (a CTC folder or TIFF stack); default the ground-truth masks themselves.
  Its labels are relabelled 1..n per frame in a random order (``--seed``), so that no identity leaks from the
  label values.
* Our ``tracking_metrics`` match centroids within ``--match-distance`` pixels; traccuracy 0.4.3 (the field's
  reference, optional) matches masks by overlap (``CTCMatcher``) on the CTC result written by ``write_ctc``.
Prints the parameters chosen (with reasons), the quality report and both sets of metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))


def traccuracy_scores(gt_folder, res_folder) -> dict:
    from traccuracy._run_metrics import run_metrics
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = load_ctc_data(str(gt_folder), run_checks=False)
        pred = load_ctc_data(str(res_folder), run_checks=False)
        res, _ = run_metrics(gt, pred, matcher=CTCMatcher(),
                             metrics=[CTCMetrics(), DivisionMetrics(max_frame_buffer=0)])
    out = {}
    for r in res:
        vals = r["results"]
        if "Frame Buffer 0" in vals:
            vals = vals["Frame Buffer 0"]
        for k in ("LNK", "TRA", "DET", "Division F1", "Division Precision", "Division Recall"):
            if k in vals:
                out[k] = float(vals[k])
    return out


def main(argv=None):
    from _track_data import relabel_per_frame
    from napari_dynfit.detect import label_table
    from napari_dynfit.track import link
    from napari_dynfit.track.formats import read_ctc, read_label_movie, write_ctc
    from napari_dynfit.track.metrics import tracking_metrics
    from napari_dynfit.track.quality import TrackingQuality

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gt")
    ap.add_argument("--masks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--match-distance", type=float, default=0.5)
    ap.add_argument("--no-traccuracy", action="store_true")
    a = ap.parse_args(argv)
    gt, gt_labels = read_ctc(a.gt)
    labels = gt_labels if a.masks is None else read_label_movie(a.masks)
    rel = relabel_per_frame(labels, a.seed)
    t0 = time.perf_counter()
    det = label_table(rel)
    t1 = time.perf_counter()
    tracks = link(det, labels=rel)
    t2 = time.perf_counter()
    for c in tracks.attrs["link_choices"]:
        print(f"{c['name']} = {c['value']}  ({'given' if c['given'] else c['reason']})")
    print(TrackingQuality.from_dict(tracks.attrs["tracking_quality"]).summary())
    ours = tracking_metrics(gt, tracks, match_distance=a.match_distance)
    out = {"ours": {k: ours[k] for k in ("LNK", "TRA", "DET", "CHOTA", "division_f1", "division_precision",
                                         "division_recall", "gt_divisions", "pred_divisions")},
           "seconds": {"label_table": t1 - t0, "link": t2 - t1}}
    if not a.no_traccuracy:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                write_ctc(tracks, f"{tmp}/res", labels=rel)
                out["traccuracy"] = traccuracy_scores(a.gt, f"{tmp}/res")
        except ImportError:
            out["traccuracy"] = "not installed"
    print(json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
