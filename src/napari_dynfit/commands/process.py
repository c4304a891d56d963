"""``dynfit process``: the per-frame pipeline (APR conversion -> APR-native Gaussian -> detection) on Dask.

``dynfit process MOVIE -o DETECTIONS.csv [--rel-error E] [--gaussian SIGMA] [--sigma auto|S]
[--scheduler sync|threads|processes|local-cluster|tcp://HOST:PORT] [--workers N] [--stats FRAMES.csv]``

The default scheduler is ``processes``: pyapr and our numba kernels hold the GIL, so threads give no
speed-up for this pipeline (measured, ``docs/parallel.md``).

MOVIE is read lazily (OME-Zarr, TIFF, ``.npy``): each task reads its own frame on the worker, so
movies larger than memory work. Progress is the CLI's bar; Ctrl-C cancels.
"""

from __future__ import annotations

import time

from ..results import json_text
from ..validate import finite_float, nonneg_float, nonneg_int, output, positive_float


def _process(args) -> int:
    from .._io import atomic_path
    from ..parallel import check_scheduler
    from ..pipeline import open_movie, process_movie
    from ..tables import write_table

    check_scheduler(args.scheduler)
    movie = open_movie(args.movie, axes=args.axes, channel=args.channel)
    convert = {"rel_error": args.rel_error, "intensity_threshold": args.intensity_threshold,
               "gradient_smoothing": args.gradient_smoothing}
    detect = {"sigma": args.sigma, "threshold_snr": args.threshold_snr}
    if args.split is not None:
        detect["split"] = args.split
    t0 = time.perf_counter()
    result = process_movie(movie, convert=convert, filter={"sigma": args.gaussian} if args.gaussian else None,
                           detect=detect, spacing=args.spacing, scheduler=args.scheduler, workers=args.workers)
    seconds = time.perf_counter() - t0
    sig = result.detections.attrs.get("sigma")
    if sig is not None:
        print(f"sigma {sig:.2f} px (given)" if args.sigma is not None else result.detections.attrs["sigma_choice"])
    write_table(result.detections, args.output)
    if args.stats:
        with atomic_path(args.stats) as tmp:
            result.frames.to_csv(tmp, index=False)
    print(json_text({"output": str(args.output), "frames": len(result.frames),
                      "detections": len(result.detections),
                      "particles_per_frame": float(result.frames["particles"].mean()),
                      "computational_ratio": float(result.frames["computational_ratio"].mean()),
                      "scheduler": args.scheduler, "seconds": round(seconds, 3)}))
    return 0


def register(sub) -> None:
    from ._scheduler import add_scheduler_arguments
    from .track import _sigma_arg

    p = sub.add_parser("process", help="per-frame pipeline: APR conversion, APR-native Gaussian, detection (Dask)",
                       description="Convert every frame of a movie to the APR, optionally smooth it on the particles, "
                                   "detect spots with sub-pixel positions and write the detections table. Frames "
                                   "run in parallel on the chosen Dask scheduler (identical results); the movie "
                                   "is read lazily, one frame per task.")
    p.add_argument("movie", help="movie (t, [z,] y, x): OME-Zarr (.zarr), TIFF stack or .npy")
    p.add_argument("-o", "--output", required=True, type=output(".csv", ".parquet", ".pq"), help="detections table (.csv or .parquet)")
    p.add_argument("--stats", type=output(".csv"), help="also write per-frame APR statistics (particles, ratio, detections) as CSV here")
    p.add_argument("--axes", help="axes of the movie if the file does not say, e.g. tyx or tzyx")
    p.add_argument("--channel", type=nonneg_int, help="channel of a multi-channel movie")
    p.add_argument("--spacing", type=positive_float, nargs="+", help="pixel size along (z) y x (default: from the file)")
    p.add_argument("--rel-error", type=positive_float, default=0.1, help="APR relative error bound E (default 0.1)")
    p.add_argument("--intensity-threshold", type=finite_float, default=0.0, help="APR background intensity threshold")
    p.add_argument("--gradient-smoothing", type=nonneg_float, default=3.0, help="APR gradient smoothing (default 3)")
    p.add_argument("--gaussian", type=nonneg_float, default=0.0, metavar="SIGMA",
                   help="Gaussian on the APR particles before detection, sigma in pixels (default 0: none)")
    p.add_argument("--sigma", type=_sigma_arg, default="auto",
                   help="spot sigma in the movie, pixels, or auto (default): estimated from the frames at 1/4, 1/2, "
                        "3/4 of the movie (dynfit detect's rule) and printed")
    p.add_argument("--threshold-snr", type=positive_float, default=5.0,
                   help="detection threshold as a multiple of the response noise (default 5)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--split", dest="split", action="store_true", default=None,
                       help="split unresolved spot pairs (default: only without --gaussian)")
    split.add_argument("--no-split", dest="split", action="store_false", help="never split spot pairs")
    add_scheduler_arguments(p, default="processes")  # pyapr and the numba kernels hold the GIL: threads do not help
    p.set_defaults(func=_process)
