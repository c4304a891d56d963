"""``dynfit detect`` and ``dynfit track``: detections and tracks from the shell.

* ``dynfit detect MOVIE -o DETECTIONS.csv``: blobs (particles) from a TIFF / OME-Zarr / ``.aprmovie`` movie, or
  with ``--labels`` the centroids of a label movie;
* ``dynfit track INPUT -o TRACKS.csv``: INPUT is a detections table (CSV/Parquet) or a label movie (TIFF stack,
  OME-Zarr, CTC folder); parameters not given are estimated from the data and printed with their reasons, with a
  quality report (also written to ``TRACKS.tracking.json``); ``--ctc-out DIR`` writes the CTC result, ``--eval GT``
  compares with ground truth (a tracks table or a CTC folder) and prints the metrics as JSON.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..results import json_text
from ..tables import TABLE_SUFFIXES, coord_columns, read_table, write_table
from ..validate import (
    all_ordered,
    check_spacing,
    memory_check,
    nonneg_float,
    nonneg_int,
    output,
    positive_float,
    positive_int,
)


def _read_movie(path, axes=None):
    """A movie ``(t, [z,] y, x)`` and its spacing (``.aprmovie``; None otherwise) from TIFF, OME-Zarr, ``.aprmovie``
    or a folder of image frames (:func:`napari_dynfit.io.open_image`); ``axes``: a TIFF's axes when its metadata
    does not name them."""
    from ..io.image import open_image

    img = open_image(path, axes, what="movie")
    return img.movie(), (img.spacing if img.axes_source == "apr" else None)


def _spacing(args, default):
    return args.spacing if args.spacing else default


def _sigma_arg(text):
    """``--sigma``: ``auto`` (None: estimated from the data) or a positive number of pixels."""
    return None if str(text).strip().lower() == "auto" else positive_float(text)


def _cmd_detect(args) -> int:
    from ..detect import detect_movie, label_table

    movie, spacing = _read_movie(args.movie, args.axes)
    check_spacing(args.spacing, movie.ndim - 1)
    spacing = _spacing(args, spacing)
    if args.labels:
        det = label_table(np.asarray(movie), spacing=spacing)
    else:
        kw = dict(sigma=args.sigma, threshold_snr=args.threshold_snr, split=not args.no_split, spacing=spacing,
                  polarity=args.polarity)
        if args.sigma_range:
            kw["sigma_range"] = tuple(args.sigma_range)
        if Path(args.movie).suffix.lower() == ".aprmovie":  # reconstructions err by up to the APR's relative error
            kw["image_error"] = 0.1  # (to_apr's default rel_error)
        det = detect_movie(movie, n_workers=args.workers, **kw)
        if not args.sigma_range:
            print(f"sigma {det.attrs['sigma']:.2f} px (given)" if args.sigma is not None else det.attrs["sigma_choice"])
        skew = det.attrs.get("skewness")
        how = f"auto: skewness {skew:+.2f} of the flattened image" if skew is not None else "given"
        print(f"objects {det.attrs['polarity']} ({how})")
    write_table(det, args.output)
    print(f"{len(det)} detections in {det['frame'].nunique() if len(det) else 0} frames -> {args.output}")
    return 0


def _read_ground_truth(path):
    """``(tracks table, label movie or None)`` for ``--eval``: a CTC folder (with its masks) or a tracks table."""
    p = Path(path).expanduser()
    if p.is_dir():
        from ..track.formats import read_ctc

        return read_ctc(p)
    return read_table(p, required=("frame", "track_id")), None


def _report_path(output) -> Path:
    """The JSON report written next to a tracks table: ``tracks.csv`` -> ``tracks.tracking.json``."""
    p = Path(output)
    return p.with_name(p.stem + ".tracking.json")


def _cmd_track(args) -> int:
    from ..detect import label_table
    from ..track import link
    from ..track.formats import read_label_movie, relabel_movie, write_ctc
    from ..track.metrics import tracking_metrics
    from ..track.quality import TrackingQuality

    src = Path(args.input).expanduser()
    truth = _read_ground_truth(args.eval) if args.eval else None  # a bad --eval fails before anything is written
    if args.eval and args.matcher == "ctc" and (truth[1] is None or src.suffix.lower() in TABLE_SUFFIXES):
        raise InputError("--matcher ctc compares masks: give a label movie as INPUT and a CTC folder to --eval")
    labels = None
    if src.suffix.lower() in TABLE_SUFFIXES:
        det = read_table(src)
    else:
        labels = read_label_movie(src, axes=args.axes)
        det = label_table(labels)
    check_spacing(args.spacing, len(coord_columns(det)))
    spacing = _spacing(args, det.attrs.get("spacing"))
    kw = {k: getattr(args, k) for k in ("alternative_cost", "division_cost", "daughter_size", "drift_radius",
                                         "overlap_weight", "size_weight") if getattr(args, k) is not None}
    tracks = link(det, max_distance=args.max_distance, gap_frames=args.gap_frames, divisions=args.divisions,
                  motion=args.motion, spacing=spacing, labels=labels, estimate=not args.no_estimate, **kw)
    write_table(tracks, args.output)
    print("parameters (given by you, or estimated from the data and why):")
    for c in tracks.attrs.get("link_choices", []):
        v = f"{c['value']:.4g}" if isinstance(c["value"], float) else str(c["value"])
        print(f"  {c['name']} = {v}  ({'given' if c['given'] else c['reason']})")
    quality = TrackingQuality.from_dict(tracks.attrs["tracking_quality"])
    print("quality:\n  " + quality.summary().replace("\n", "\n  "))
    report = {"input": str(src), "output": str(args.output), "link_params": tracks.attrs.get("link_params"),
              "choices": tracks.attrs.get("link_choices"), "estimates": tracks.attrs.get("link_estimates"),
              "quality": quality.to_dict()}
    from .._io import atomic_path

    rp = _report_path(args.output)
    with atomic_path(rp) as tmp:
        Path(tmp).write_text(json_text(report, indent=1))
    print(f"{tracks['track_id'].nunique()} tracks, {int((tracks.groupby('track_id')['parent_id'].first() >= 0).sum())} "
          f"daughter tracks -> {args.output} (parameters and quality report -> {rp})")
    if args.labels_out:
        if labels is None:
            raise InputError("--labels-out needs a label movie as INPUT")
        import tifffile

        from .._io import atomic_path

        with atomic_path(args.labels_out) as tmp:
            tifffile.imwrite(tmp, relabel_movie(labels, tracks), compression="zlib")
        print(f"relabelled masks -> {args.labels_out}")
    if args.ctc_out:
        if labels is not None:
            write_ctc(tracks, args.ctc_out, labels=labels)
        else:
            shape = args.shape or [int(np.ceil(tracks[c].max())) + 1 for c in ("z", "y", "x") if c in tracks.columns]
            write_ctc(tracks, args.ctc_out, shape=shape, radius=args.ctc_radius)
        print(f"CTC result -> {args.ctc_out}")
    if args.eval:
        metrics = tracking_metrics(truth[0], tracks, match_distance=args.match_distance, spacing=spacing,
                                   gt_labels=truth[1], pred_labels=labels, matcher=args.matcher)
        print(json_text(metrics, indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("detect", help="detect particles (blobs) or label centroids in a movie -> detections table",
                       description="Detect bright or dark blobs (background flattening, scale-space LoG, sub-pixel) in "
                                   "every frame of MOVIE (TIFF, OME-Zarr, .aprmovie, folder of PNG/JPEG frames), or "
                                   "measure label centroids with --labels.")
    p.add_argument("movie", help="movie (t, [z,] y, x): TIFF stack, OME-Zarr, .aprmovie, folder of PNG/JPEG frames, "
                                 "or a CTC folder with --labels")
    p.add_argument("-o", "--output", required=True, type=output(*TABLE_SUFFIXES), help="detections table (.csv or .parquet)")
    p.add_argument("--labels", action="store_true", help="MOVIE is a label movie: output mask centroids and sizes")
    p.add_argument("--sigma", type=_sigma_arg, default="auto",
                   help="blob sigma in pixels, or auto (default): estimated from the frames at 1/4, 1/2, 3/4 of the "
                        "movie (the napari panel's rule) and printed")
    p.add_argument("--sigma-range", type=positive_float, nargs=2, metavar=("LOW", "HIGH"), help="search blob sizes in a range")
    p.add_argument("--threshold-snr", type=positive_float, default=5.0,
                   help="threshold as a multiple of the filter response's noise (default 5)")
    p.add_argument("--no-split", action="store_true", help="do not split blobs made of two unresolved spots")
    p.add_argument("--polarity", choices=("auto", "bright", "dark"), default="auto",
                   help="objects brighter (fluorescence) or darker (brightfield beads) than the background; auto "
                        "(default) decides from the image and prints the decision")
    p.add_argument("--spacing", type=positive_float, nargs="+", help="pixel size along (z) y x (default: from the file)")
    p.add_argument("--workers", type=positive_int, default=2, help="frames processed in parallel (default 2)")
    p.add_argument("--axes", help="axes of a TIFF movie that does not name them (file order): tyx, tzyx, tczyx")
    p.set_defaults(func=_cmd_detect, checks=[all_ordered("sigma_range")])

    t = sub.add_parser("track", help="link detections (table) or masks (label movie) into tracks",
                       description="Link detections into tracks (LAP with gap closing and divisions). INPUT is a "
                                   "detections table (CSV/Parquet: frame and coordinate columns) or a label movie "
                                   "(TIFF stack, OME-Zarr, CTC folder).")
    t.add_argument("input", help="detections table or label movie")
    t.add_argument("-o", "--output", required=True, type=output(*TABLE_SUFFIXES), help="tracks table (.csv or .parquet)")
    t.add_argument("--max-distance", type=positive_float,
                   help="largest move per frame after the motion prediction, physical units (default: estimated)")
    t.add_argument("--gap-frames", type=nonneg_int, help="close gaps of up to G missing frames (default: estimated)")
    t.add_argument("--divisions", action=argparse.BooleanOptionalAction, default=None,
                   help="detect divisions (default: estimated from masks; off for point detections)")
    t.add_argument("--motion", choices=("brownian", "velocity", "drift", "flow"),
                   help="motion model (default: the one that predicts the data best)")
    t.add_argument("--drift-radius", type=positive_float, help="neighbourhood radius of the drift model (default 3 x max distance)")
    t.add_argument("--alternative-cost", type=positive_float,
                   help="cost of a death plus a birth in units of max-distance^2 (default: estimated for masks, and for "
                        "Brownian points from the false-detection density when --max-distance is estimated too; else 1)")
    t.add_argument("--division-cost", type=nonneg_float, help="extra cost of a division (default: 0 when estimated, else 0.1)")
    t.add_argument("--daughter-size", type=positive_float, help="expected daughter/mother mask size (default: estimated)")
    t.add_argument("--overlap-weight", type=nonneg_float, help="weight of mask overlap in cell costs (default 0.3)")
    t.add_argument("--size-weight", type=nonneg_float, help="weight of the size ratio in cell costs (default 1)")
    t.add_argument("--spacing", type=positive_float, nargs="+", help="pixel size along (z) y x (default: table attrs or 1)")
    t.add_argument("--no-estimate", action="store_true",
                   help="do not estimate parameters from the data: flags not given take fixed defaults")
    t.add_argument("--ctc-out", type=output(kind="store"), help="write the Cell Tracking Challenge result (res_track.txt + mask###.tif) here")
    t.add_argument("--shape", type=positive_int, nargs="+", help="image shape (z) y x for --ctc-out from a table")
    t.add_argument("--ctc-radius", type=positive_float, default=2.0, help="disc radius (pixels) of points in --ctc-out")
    t.add_argument("--labels-out", type=output(".tif", ".tiff"), help="write the label movie relabelled with track ids (TIFF)")
    t.add_argument("--eval", metavar="GT", help="ground truth (tracks table or CTC folder): print metrics as JSON "
                                                "(CTC DET/TRA/LNK, CHOTA, division F1; equal to traccuracy's)")
    t.add_argument("--match-distance", type=positive_float, default=2.0,
                   help="point matching distance for --eval, physical units (default 2)")
    t.add_argument("--matcher", choices=("auto", "ctc", "point"), default="auto",
                   help="--eval matching: ctc (a mask covers > 50 %% of a ground-truth mask), point (within "
                        "--match-distance); auto: ctc for a label movie against a CTC folder (default)")
    t.add_argument("--axes", help="axes of a label-movie TIFF that does not name them (file order): tyx, tzyx")
    t.set_defaults(func=_cmd_track, side_outputs=lambda a: [_report_path(a.output)], checks=[memory_check(
        lambda a: 16.0 * math.prod(a.shape or [1]), "--ctc-out masks of --shape", "reduce --shape")])
