"""Linking with no parameters on free Brownian particles among static ones (beads diffusing among specks stuck to the
glass): does the estimated ``max_distance`` cover the free particles' steps?

Run ``python -m napari_dynfit.bench.track_mixture [--seeds 4] [--first-seed 0]``; prints one JSON line per case and
seed: the estimated range, the free particles' 99.99 % step (``sqrt(chi2_2.ppf(0.9999))`` x their per-axis step), the
gap range, the estimated ``alternative_cost`` (clutter-aware, :func:`napari_dynfit.track.auto.clutter_cost`), link
recall / precision against the truth, the recall of the true steps longer than 13.5 px, and the ensemble MSD
exponent / prefactor (:func:`napari_dynfit.track.analysis.fit_msd`, immobile tracks left out) of the tracks and of the
truth, over all tracks and over tracks of at least 20 positions (``msd20_*``, ``truth20_*``). Seeds 0-3 tuned the
clutter-aware cost's constant (``FLOOR``); 10-13 are held out. The data come from
``tests/_track_data.py`` (:func:`static_and_free`: 480 x 640 px, free particles 3.9 px per axis per frame reflected at
the edges, static ones jittering 0.3 px per axis):

* ``mixture``: 150 free + 60 static, 30 frames;
* ``single``: 210 free, 30 frames (one population: the estimate must not move);
* ``clutter``: 170 free + 40 static + 40 false detections per frame, 40 frames (no gaps: no gap closing);
* ``gaps``: 160 free + 45 static, 10 % missed and 40 false detections per frame, 40 frames;
* ``clutter20``, ``clutter100``: as ``clutter`` with 20 / 100 false detections per frame;
* ``clutter100_gaps``: as ``gaps`` with 100 false detections per frame;
* ``faint``: 150 free + 60 static specks of which half the detections are missed (faint, flickering), 60 false
  detections per frame, 40 frames.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))

SIGMA = 3.9
CASES = {
    "mixture": dict(n_free=150, n_static=60, frames=30),
    "single": dict(n_free=210, n_static=0, frames=30),
    "clutter": dict(n_free=170, n_static=40, frames=40, clutter=40),
    "gaps": dict(n_free=160, n_static=45, frames=40, drop=0.1, clutter=40),
    "clutter20": dict(n_free=170, n_static=40, frames=40, clutter=20),
    "clutter100": dict(n_free=170, n_static=40, frames=40, clutter=100),
    "clutter100_gaps": dict(n_free=160, n_static=45, frames=40, drop=0.1, clutter=100),
    "faint": dict(n_free=150, n_static=60, frames=40, static_drop=0.5, clutter=60),
}


def _msd(tracks, min_length=0) -> tuple:
    from napari_dynfit.track.analysis import fit_msd

    f = fit_msd(tracks, min_length=min_length)
    return round(float(f.exponent), 3), round(float(f.prefactor), 2), bool(f.composition_ok)


def run(case: str, seed: int) -> dict:
    from scipy import stats

    from _track_data import long_step_recall, static_and_free
    from napari_dynfit.track import link
    from napari_dynfit.track.metrics import tracking_metrics

    truth, det = static_and_free(np.random.default_rng(seed), sigma=SIGMA, **CASES[case])
    tracks = link(det)
    m = tracking_metrics(truth, tracks, match_distance=1e-3)
    ch = {c["name"]: c for c in tracks.attrs["link_choices"]}
    long_hit, n_long = long_step_recall(truth, tracks, 13.5)
    alt = ch.get("alternative_cost", {"value": 1.0, "reason": "fixed"})
    e_t, a_t, _ = _msd(truth)
    e, a, ok = _msd(tracks)
    e_t20, a_t20, _ = _msd(truth, 20)
    e20, a20, ok20 = _msd(tracks, 20)
    return {"case": case, "seed": seed, "max_distance": round(tracks.attrs["link_params"]["max_distance"], 2),
            "free_step_9999": round(float(np.sqrt(stats.chi2.ppf(0.9999, 2))) * SIGMA, 2),
            "gap_frames": ch["gap_frames"]["value"], "link_recall": round(m["link_recall"], 4),
            "link_precision": round(m["link_precision"], 4), "long_step_recall": round(long_hit, 3),
            "long_steps": n_long, "alternative_cost": round(float(alt["value"]), 3),
            "msd_exponent": e, "msd_prefactor": a, "composition_ok": ok, "truth_exponent": e_t,
            "truth_prefactor": a_t, "msd20_exponent": e20, "msd20_prefactor": a20, "composition20_ok": ok20,
            "truth20_exponent": e_t20, "truth20_prefactor": a_t20, "reason": ch["max_distance"]["reason"], "alt_reason": alt["reason"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--cases", default=",".join(CASES))
    a = ap.parse_args(argv)
    for case in a.cases.split(","):
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            print(json.dumps(run(case, seed)), flush=True)


if __name__ == "__main__":
    main()
