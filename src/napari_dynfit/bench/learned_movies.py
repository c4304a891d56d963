"""The learned rod back end on generated phase-contrast movies: segmentation F1 and CTC tracking figures.

Usage::

    python -m napari_dynfit.bench.learned_movies                        # shipped weights, held-out seeds
    python -m napari_dynfit.bench.learned_movies --weights W.npz --seeds 7001 7002 --colonies 1 2

Each movie is :func:`napari_dynfit.sim.phase.phase_colony_movie` (320 x 320 px, 30 frames, rods 9-16 px wide,
one draw of optics per movie; young septa unless ``--no-young``). It runs what ``dynfit segment --method learned``
and ``dynfit track --divisions`` run, with defaults: :func:`~napari_dynfit.detect.segment_movie` (``method="learned"``,
with its temporal passes), then :func:`~napari_dynfit.track.link` (``divisions=True``) on the label table, scored by
:func:`~napari_dynfit.track.metrics.tracking_metrics` with the CTC mask matching (DET, TRA, LNK, division F1; the
figures are the means over the movies, segmentation F1 at IoU 0.5 pooled). ``--colonies`` adds the classic back
end's ``render_cells`` phase colonies (200 x 200 px, 40 frames, the seeds given): segmentation F1 pooled over all
frames, the check that a model does not cut single textured rods. Needs torch. JSON to stdout (and ``--json FILE``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from napari_dynfit._io import emit_json

HELD_OUT = (7101, 7102, 7103, 7104, 7105, 7106)


def movie_figures(seed: int, model, young: bool = True, tta: int | None = None) -> dict:
    from napari_dynfit.bench.cells import pooled
    from napari_dynfit.detect import label_table, segment_movie
    from napari_dynfit.sim.phase import phase_colony_movie
    from napari_dynfit.track import link
    from napari_dynfit.track.metrics import tracking_metrics

    images, truth_labels, truth = phase_colony_movie(seed, young_septa=young)
    t0 = time.perf_counter()
    res = segment_movie(images, method="learned", model=model, scheduler="sync", tta=tta)
    seg = pooled(truth_labels, res.labels)
    tracks = link(label_table(res.labels), labels=res.labels, divisions=True)
    m = tracking_metrics(truth, tracks, gt_labels=truth_labels, pred_labels=res.labels)
    return {"seed": seed, "seg": seg, "DET": float(m["DET"]), "TRA": float(m["TRA"]), "LNK": float(m["LNK"]),
            "division_f1": float(np.nan_to_num(m["division_f1"])), "gt_divisions": int(m.get("gt_divisions", -1)),
            "seconds": time.perf_counter() - t0}


def colony_f1(seed: int, model, tta: int | None = None) -> float:
    from napari_dynfit.bench.cells import pooled
    from napari_dynfit.detect import segment_movie
    from napari_dynfit.sim.cells import simulate_rod_colony
    from napari_dynfit.sim.render import render_cells

    tab = simulate_rod_colony(8, 40, box=(200.0, 200.0), width=10, division_length=44, growth_rate=0.08, seed=seed)
    movie, labels, _ = render_cells(tab, (200.0, 200.0), seed=seed + 100, contrast="phase", amplitude=70, halo=4.0,
                                    halo_sigma=2, gap=True, texture=0.15)
    res = segment_movie(movie, method="learned", model=model, scheduler="sync", tta=tta)
    return pooled(labels, res.labels)["f1"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", help="model weights (.npz); default the shipped ones")
    ap.add_argument("--seeds", type=int, nargs="*", default=list(HELD_OUT), help="movie seeds")
    ap.add_argument("--no-young", action="store_true", help="movies without young septa (daughters' tips as born)")
    ap.add_argument("--colonies", type=int, nargs="*", default=[], help="render_cells colony seeds")
    ap.add_argument("--tta", type=int, choices=(1, 4, 8), default=None,
                    help="test-time augmentation: transforms averaged (default the back end's, detect.learned.TTA)")
    ap.add_argument("--septum-dip", type=float, default=None,
                    help="tuning: the late-division pass's dip (default detect.learned.SEPTUM_DIP of the tta)")
    ap.add_argument("--rod-merge", type=float, default=None,
                    help="tuning: merge_rod_fragments' constriction (default detect.learned.ROD_MERGE; 0: off)")
    ap.add_argument("--json", help="also write the JSON here")
    args = ap.parse_args(argv)
    from napari_dynfit.detect import learned
    from napari_dynfit.detect.learned import check_tta, load_rod_model

    if args.septum_dip is not None:
        learned.SEPTUM_DIP = dict.fromkeys(learned.TTA_CHOICES, args.septum_dip)
    if args.rod_merge is not None:
        learned.ROD_MERGE = args.rod_merge

    model = load_rod_model(args.weights)
    out = {"weights": args.weights or "shipped", "young_septa": not args.no_young, "tta": check_tta(args.tta),
           "septum_dip": learned.SEPTUM_DIP[check_tta(args.tta)], "rod_merge": learned.ROD_MERGE, "movies": []}
    tp = nt = npred = 0
    for seed in args.seeds:
        r = movie_figures(seed, model, young=not args.no_young, tta=args.tta)
        out["movies"].append(r)
        tp += round(r["seg"]["f1"] * (r["seg"]["n_true"] + r["seg"]["n_pred"]) / 2)
        nt, npred = nt + r["seg"]["n_true"], npred + r["seg"]["n_pred"]
    if args.seeds:
        mv = out["movies"]
        out["mean"] = {"seg_f1": 2 * tp / max(nt + npred, 1),
                       **{k: float(np.mean([r[k] for r in mv])) for k in ("DET", "TRA", "LNK", "division_f1")}}
    out["colonies"] = {str(s): colony_f1(s, model, args.tta) for s in args.colonies}
    emit_json(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
