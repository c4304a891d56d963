"""Tracking generated cells with no parameters given: the simulator's 3D dividing cells and 2D rod colonies.

Run ``python -m napari_dynfit.bench.track_generated``; prints one JSON line per case (LNK, division F1, the chosen motion
model, daughter size). Masks are relabelled 1..n per frame in a random order (no identity in the label values).
The rod colonies come from ``tests/_track_data.py`` (rods that grow, halve along their axis and are pushed outwards by
the colony's growth; optional drift and stage jump).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))

CASES = [
    ("colony doubling 6", 0, {}),
    ("colony doubling 4 (every cell moves half a cell length per frame)", 1, {"doubling": 4.0}),
    ("colony doubling 5, noise 1.5 px", 2, {"doubling": 5.0, "noise": 1.5, "size": (640, 640)}),
    ("colony doubling 5, drift (3, -2) px/frame", 3, {"drift": (3.0, -2.0), "doubling": 5.0}),
    ("colony doubling 5, 40 px stage jump", 4, {"doubling": 5.0, "size": (640, 640), "jump": (22, (-5.0, 40.0))}),
    ("colony doubling 6, 42 px stage jump", 5, {"doubling": 6.0, "size": (640, 640), "jump": (15, (30.0, 30.0))}),
]


def run(name, rel, truth, spacing=None, match=0.5):
    from napari_dynfit.detect import label_table
    from napari_dynfit.track import link
    from napari_dynfit.track.metrics import tracking_metrics

    det = label_table(rel, spacing=spacing)
    t0 = time.perf_counter()
    tracks = link(det, labels=rel)
    el = time.perf_counter() - t0
    m = tracking_metrics(truth, tracks, match_distance=match, spacing=spacing)
    ch = {c["name"]: c["value"] for c in tracks.attrs["link_choices"]}
    print(json.dumps({"case": name, "LNK": round(m["LNK"], 3), "division_f1": round(m["division_f1"], 3),
                      "gt_divisions": m["gt_divisions"], "motion": ch.get("motion"),
                      "daughter_size": round(ch.get("daughter_size", float("nan")), 3), "link_s": round(el, 1)}))


def main():
    from _track_data import relabel_per_frame, rod_colony
    from napari_dynfit.sim import dividing_cells_3d

    for seed in (0, 1):
        s = dividing_cells_3d(seed=seed)
        run(f"simulator 3D dividing cells seed {seed}", relabel_per_frame(s.labels), s.truth, s.spacing, 1.0)
    for name, seed, kw in CASES:
        lab, truth = rod_colony(seed, **kw)
        run(name, relabel_per_frame(lab, seed), truth)


if __name__ == "__main__":
    main()
