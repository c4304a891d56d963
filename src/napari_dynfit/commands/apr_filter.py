"""``dynfit filter``, ``dynfit segment`` and ``dynfit export-grid``.

* ``dynfit filter IN.apr --gaussian SIGMA [--size K] [--device cpu|cuda|auto] -o OUT.apr`` (or
  ``--log SIGMA``, ``--dog SIGMA``, ``--gradient [SIGMA]``, ``--stencil FILE.npy``, ``--flatten SIGMA
  [--polarity auto|bright|dark]``): filters the particle values natively and writes an ``.apr`` with the same
  particles and float32 values (:mod:`napari_dynfit.apr.contrast` for ``--flatten``).
* ``dynfit segment MOVIE -o LABELS.tif [--objects OBJECTS.csv] [--polarity ...] [--kind ...] [--diameter D]``:
  touching cells / nuclei of every frame of a raw movie (:func:`~napari_dynfit.detect.cells.segment_movie`);
* ``dynfit segment IN.apr [--threshold otsu|li|graphcut|VALUE] [--smooth SIGMA] [--min-size N] [--polarity ...]
  -o OBJECTS.csv [--labels LABELS.apr]``: objects table (and particle labels); dark objects are flattened and
  inverted on the particles first.
* ``dynfit export-grid IN.apr -o GRID.npz``: the :class:`~napari_dynfit.apr.grid.AprGrid` and the
  particle values for machines without pyapr (``dynfit bench apr-conv --grid GRID.npz``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..results import json_text
from ..validate import nonneg_float, odd_int, ordered, output, positive_float

# ----------------------------------------------------------------------------------------------
# shared helpers


def _load(path):
    """``(grid, values)`` of an ``.apr`` file (no pyapr needed)."""
    from .._io import check_input_file
    from ..apr.grid import AprGrid, read_particle_values

    check_input_file(path, suffixes=(".apr",), what="APR file")
    return AprGrid.from_file(path), read_particle_values(path)


def _write_particles(src, values, out) -> Path:
    """Write ``values`` as the particles of the APR in ``src`` to ``out`` (``.apr``)."""
    from ..apr import read_apr, write_apr
    from ..apr.filter_segment import label_particles

    image = read_apr(src)
    values = np.asarray(values)
    parts = label_particles(values) if values.dtype.kind in "iub" else values.astype(np.float32)
    return write_apr(image.with_values(parts), out)


def _filter_values(grid, values, args):
    from ..apr.filter_segment import filter_values

    chosen = [n for n in ("gaussian", "log", "dog", "gradient", "stencil", "flatten") if getattr(args, n) is not None]
    if len(chosen) != 1:
        raise InputError("choose exactly one filter: --gaussian SIGMA, --log SIGMA, --dog SIGMA, "
                         "--gradient [SIGMA], --stencil FILE.npy or --flatten SIGMA")
    name = chosen[0]
    if name == "flatten":
        from ..apr.contrast import flatten

        flat, args.polarity, _ = flatten(grid, values, args.flatten, args.polarity, warn=False)
        return name, flat
    if name == "stencil":
        path = Path(args.stencil)
        if not path.is_file():
            raise InputError(f"stencil file {path} does not exist; save one with numpy.save")
        try:
            stencil = np.load(path)
        except ValueError as exc:
            raise InputError(f"{path} is not a .npy array ({exc}); save the stencil with numpy.save") from exc
        return name, filter_values(grid, values, "custom", stencil=stencil, normalize=args.normalize,
                                   device=args.device)
    return name, filter_values(grid, values, name, sigma=getattr(args, name), size=args.size, device=args.device)


def _filter(args) -> int:
    grid, values = _load(args.input)
    t0 = time.perf_counter()
    name, out = _filter_values(grid, values, args)
    seconds = time.perf_counter() - t0
    path = _write_particles(args.input, out, args.output)
    print(json_text({"filter": name, **({"polarity": args.polarity} if name == "flatten" else {}),
                      "output": str(path), "particles": grid.n_particles,
                      "seconds": round(seconds, 4), "min": float(out.min()), "max": float(out.max())}))
    return 0


def _segment(args) -> int:
    from ..apr.segment import segment
    from ..tables import write_table

    if Path(args.input).suffix.lower() != ".apr":
        return _segment_movie(args)
    if args.objects:
        raise InputError("--objects is for movies; with an .apr file -o already is the objects table")
    grid, values = _load(args.input)
    method = args.threshold or "otsu"
    apr = None
    if method not in ("otsu", "li", "graphcut"):
        try:
            method = float(method)
        except ValueError:
            raise InputError(f"--threshold must be otsu, li, graphcut or a number, got {args.threshold!r}") from None
    if method == "graphcut":
        from ..apr import read_apr

        apr = read_apr(args.input).apr
    from ..apr.contrast import objects_bright

    # dark objects (brightfield, phase contrast): flattened and inverted on the particles
    values, polarity = objects_bright(grid, values, args.polarity, args.diameter)
    res = segment(grid, values, method=method, smooth_sigma=args.smooth or None,
                  min_size=4.0 if args.min_size is None else args.min_size,
                  max_size=args.max_size, device=args.device, apr=apr)
    write_table(res.table, args.output)
    info = {"objects": len(res.table), "polarity": polarity, "threshold": res.threshold, "output": str(args.output)}
    if args.labels:
        info["labels"] = str(_write_particles(args.input, res.labels, args.labels))
    print(json_text(info))
    return 0


def _read_cells_movie(path, axes=None):
    """A raw movie ``(t, [z,] y, x)`` (lazy where the format allows) from TIFF, OME-Zarr, ``.aprmovie`` or a
    folder of single-frame images (sorted by name, e.g. a Cell Tracking Challenge image folder)."""
    from .._io import check_input_file
    from ..io.image import open_image

    p = check_input_file(path, what="movie")
    img = open_image(p, axes, lazy=True, what="movie")
    return img.as_movie_axes().movie()


def _segment_movie(args) -> int:
    from .._io import atomic_path
    from ..detect import label_table, segment_movie
    from ..tables import write_table

    out = Path(args.output)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"-o '{out}' must be a .tif label movie for a movie input (objects: --objects TABLE.csv)")
    threshold = None
    if args.threshold is not None:
        try:
            threshold = float(args.threshold)
        except ValueError:
            raise InputError(f"--threshold for a movie is a number of background spreads, got {args.threshold!r}; "
                             "otsu/li/graphcut are for .apr files") from None
    movie = _read_cells_movie(args.input, args.axes)
    if len(movie.shape) not in (3, 4):
        raise InputError(f"movie '{args.input}' has shape {tuple(movie.shape)}; expected (t, y, x) or (t, z, y, x)")
    t0 = time.perf_counter()
    res = segment_movie(movie, polarity=args.polarity, kind=args.kind, diameter=args.diameter, threshold=threshold,
                        min_size=args.min_size, method=args.method, scheduler=args.scheduler, n_workers=args.workers,
                        tta=args.tta, rod_merge=args.rod_merge)
    seconds = time.perf_counter() - t0
    if res.info.get("note"):
        print(f"dynfit segment: {res.info['note']}", file=sys.stderr)
    import tifffile

    with atomic_path(out) as tmp:
        tifffile.imwrite(tmp, res.labels.astype(np.uint16 if res.labels.max() < 65536 else np.int32),
                         compression="zlib", metadata={"axes": "TYX" if res.labels.ndim == 3 else "TZYX"})
    info = {k: res.info[k] for k in ("method", "method_reason", "tta", "rod_merge", "polarity", "kind", "diameter",
                                     "doubling_frames", "late_divisions_split") if k in res.info}
    info.update(frames=int(res.labels.shape[0]), objects_total=int(sum(res.info["objects"])),
                objects_per_frame_median=float(np.median(res.info["objects"])), seconds=round(seconds, 2),
                labels=str(out))
    if args.objects:
        write_table(label_table(res.labels, intensity=None), args.objects)
        info["objects"] = str(args.objects)
    print(json_text(info))
    return 0


def _export(args) -> int:
    from ..apr.grid import export_grid

    grid = export_grid(args.input, args.output, with_values=not args.no_values)
    print(json_text({"output": str(args.output), "particles": grid.n_particles, "tree": grid.n_tree,
                      "shape": list(grid.shape), "computational_ratio": round(grid.computational_ratio, 2)}))
    return 0


def register(sub) -> None:
    p = sub.add_parser("filter", help="filter an .apr natively on its particles (Gaussian, LoG, DoG, gradient, stencil)",
                       description="Convolve the particle values of an .apr file with a stencil on the APR itself "
                                   "(no pixel image) and write an .apr with the same particles and float values.")
    p.add_argument("input", help="input .apr file")
    p.add_argument("-o", "--output", required=True, type=output(".apr"), help="output .apr file")
    p.add_argument("--gaussian", type=positive_float, metavar="SIGMA", help="Gaussian smoothing, sigma in pixels")
    p.add_argument("--log", type=positive_float, metavar="SIGMA", help="scale-normalised negative Laplacian of Gaussian")
    p.add_argument("--dog", type=positive_float, metavar="SIGMA", help="difference of Gaussians G(SIGMA) - G(1.6 SIGMA)")
    p.add_argument("--gradient", type=nonneg_float, nargs="?", const=0.0, metavar="SIGMA",
                   help="gradient magnitude (central differences, or derivative of Gaussian with SIGMA)")
    p.add_argument("--stencil", metavar="FILE.npy", help="custom (ky, kx) or (kz, ky, kx) stencil, odd sizes <= 7")
    p.add_argument("--normalize", action="store_true", help="with --stencil: scale the stencil to sum 1")
    p.add_argument("--flatten", type=positive_float, metavar="SIGMA",
                   help="background flattening (brightfield, phase contrast): particle values minus their block "
                        "median background (blocks of ~10 SIGMA, objects of sigma SIGMA pixels), inverted for dark "
                        "objects so that objects are positive")
    p.add_argument("--polarity", choices=("auto", "bright", "dark"), default="auto",
                   help="with --flatten: objects brighter or darker than the background (default auto, decided "
                        "from the skewness and printed)")
    p.add_argument("--size", type=odd_int, help="stencil size K (odd, 3..7; default from sigma)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="convolution back end")
    p.set_defaults(func=_filter)

    p = sub.add_parser("segment", help="segment touching cells/nuclei of a raw movie -> label movie (or objects "
                                       "of an .apr on its particles)",
                       description="MOVIE (TIFF stack, OME-Zarr, .aprmovie, or a folder of single-frame TIFFs): "
                                   "segment touching cells or nuclei in every frame from the raw images "
                                   "(background flattening, polarity, seeded watershed with rod/round shape "
                                   "priors; parameters estimated from the data and printed) and write the label "
                                   "movie to -o LABELS.tif (objects numbered per frame; track them with "
                                   "`dynfit track LABELS.tif --divisions`). TIFF axes come from the ImageJ/OME "
                                   "metadata, else from --axes. With a single .apr file: smooth, threshold (Otsu, "
                                   "Li, pyapr graph cut or a value), label connected particles, filter by size, "
                                   "and write the objects table to -o.")
    p.add_argument("input", help="movie (.tif, .zarr, .aprmovie, TIFF folder) or one .apr file")
    p.add_argument("-o", "--output", required=True, type=output(".tif", ".tiff", ".csv", ".parquet", ".pq"),
                   help="movie: label movie (.tif); .apr: objects table (.csv or .parquet)")
    p.add_argument("--objects", type=output(".csv", ".parquet", ".pq"), help="movie: also write the objects table (frame, y, x, label, size, ...; .csv or "
                                     ".parquet)")
    p.add_argument("--polarity", choices=("auto", "bright", "dark"), default="auto",
                   help="cells brighter (fluorescence) or darker (phase contrast, brightfield) than the "
                        "background (default auto, decided from the images; .apr: dark objects are flattened and "
                        "inverted on the particles)")
    p.add_argument("--kind", choices=("auto", "rods", "round"), default="auto",
                   help="movie: shape prior, rods (bacteria) or round (nuclei); default auto")
    p.add_argument("--diameter", type=positive_float, help="cell width/diameter in pixels (default: movie estimated; .apr: sets the "
                                                             "background blocks of dark objects, default 5.7)")
    p.add_argument("--method", choices=("auto", "classic", "learned", "cellpose", "stardist"), default="auto",
                   help="movie: back end; learned: the shipped rod U-Net (2D phase contrast, needs torch); "
                        "cellpose/stardist need the package and its weights installed; auto (default): learned "
                        "for 2D phase-contrast rods (dark cells with bright halos) when torch is installed, else "
                        "classic (the choice and why are printed; classic-only flags such as --diameter, "
                        "--threshold, --min-size keep classic)")
    p.add_argument("--tta", type=int, choices=(1, 4, 8), default=None,
                   help="movie, learned back end: test-time augmentation, the number of flips/rotations of each "
                        "frame whose U-Net maps are averaged (1: none; time grows with it); default the back "
                        "end's")
    p.add_argument("--rod-merge", type=nonneg_float, default=None, metavar="C",
                   help="movie, learned back end: touching objects that are one rod cut in two rejoin when the "
                        "U-Net's distance map on their boundary stays above C x their smaller peak and the union "
                        "is one rod wide (e.g. 0.5); default 0: off (it rejoined young daughters on a real movie)")
    p.add_argument("--threshold", default=None,
                   help="movie: foreground threshold in background spreads (default automatic); .apr: otsu "
                        "(default), li, graphcut or a number")
    p.add_argument("--smooth", type=nonneg_float, default=1.0, help=".apr: Gaussian sigma before thresholding (0: none)")
    p.add_argument("--min-size", type=nonneg_float, default=None,
                   help="smallest object in pixels (default: movie a quarter disk of the cell width, .apr 4)")
    p.add_argument("--max-size", type=positive_float, help=".apr: largest object volume in pixels")
    p.add_argument("--labels", type=output(".apr"), help=".apr: also write the particle labels as an .apr file")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help=".apr: convolution back end")
    p.add_argument("--axes", help="axes of a TIFF movie that does not name them (file order): tyx, tzyx, tczyx")
    from ._scheduler import add_scheduler_arguments

    add_scheduler_arguments(p)
    p.set_defaults(func=_segment, checks=[ordered("min_size", "max_size")])

    p = sub.add_parser("export-grid", help="export an .apr's access structure (and values) to .npz, no pyapr needed",
                       description="Write the AprGrid (per-level rows, particle coordinates, tree) and the particle "
                                   "values of an .apr file to an .npz that machines without pyapr can use.")
    p.add_argument("input", help="input .apr file")
    p.add_argument("-o", "--output", required=True, type=output(".npz"), help="output .npz")
    p.add_argument("--no-values", action="store_true", help="structure only")
    p.set_defaults(func=_export)
