"""``dynfit convert``, ``dynfit info`` and ``dynfit reconstruct``: the APR from the shell."""

from __future__ import annotations

from pathlib import Path

from ..results import json_text
from ..validate import finite_float, nonneg_float, output, positive_float


def _conversion_params(args) -> dict:
    return {"rel_error": args.rel_error, "intensity_threshold": args.intensity_threshold,
            "gradient_smoothing": args.gradient_smoothing, "auto_parameters": not args.manual,
            "gradient_threshold": args.grad_th, "sigma_threshold": args.sigma_th, "backend": args.backend}


def _convert(args) -> int:
    from ..apr import AprImage, read_apr, write_apr, write_apr_movie
    from ..apr.io import APR_SUFFIX, check_apr_output, pixels_to_apr, read_pixels

    src = Path(args.input)
    if src.suffix.lower() == APR_SUFFIX:  # re-write (adds tree particles and our metadata)
        check_apr_output(args.output, movie=False)
        result = read_apr(src)
    else:
        pixels = read_pixels(src, axes=args.axes)
        check_apr_output(args.output, movie="t" in pixels["axes"])  # before the conversion, not after
        if args.spacing:
            spatial = [i for i, a in enumerate(pixels["axes"]) if a in "zyx"]
            if len(args.spacing) != len(spatial):
                from ..errors import InputError

                raise InputError(f"--spacing needs {len(spatial)} values (one per axis of "
                                 f"'{''.join(pixels['axes'][i] for i in spatial)}')")
            for i, s in zip(spatial, args.spacing):
                pixels["scale"][i] = s
        if args.frame_interval and "t" in pixels["axes"]:
            pixels["scale"][pixels["axes"].index("t")] = args.frame_interval
        result = pixels_to_apr(pixels, **_conversion_params(args))
    out = write_apr(result, args.output) if isinstance(result, AprImage) else write_apr_movie(result, args.output)
    stats = result.stats()
    stats["output"] = str(out)
    print(json_text(stats))
    return 0


def _info(args) -> int:
    from ..apr import apr_info

    print(json_text(apr_info(args.file), indent=2))
    return 0


def _reconstruct(args) -> int:
    import numpy as np
    import tifffile

    from .._io import atomic_path
    from .._progress import progress_iter
    from ..apr import open_lazy

    opened = open_lazy(args.input, mode=args.mode)
    arr = opened["levels"][0][0]  # full resolution, first channel
    planes = int(np.prod(arr.shape[:-2]))
    lead = arr.shape[:-2]
    is_movie = "n_frames" in opened["header"]
    axes = ("T" if is_movie else "") + ("Z" if arr.ndim - is_movie == 3 else "") + "YX"

    def pages():
        for i in progress_iter(range(planes), desc="reconstructing"):
            yield arr[np.unravel_index(i, lead)] if lead else np.asarray(arr)

    with atomic_path(args.output) as tmp:
        tifffile.imwrite(tmp, data=pages(), shape=arr.shape, dtype=arr.dtype,
                         imagej=arr.dtype != np.float64, metadata={"axes": axes})
    print(args.output)
    return 0


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert a TIFF / OME-Zarr / .npy image or movie to APR",
                       description="Convert an image (y, x) / (z, y, x) to an .apr file, or a movie "
                                   "(t, [c,] [z,] y, x) to an .aprmovie folder (frames in parallel). "
                                   "Prints the particle count and computational ratio as JSON.")
    p.add_argument("input", help="image: .tif/.tiff, OME-Zarr .zarr, .npy, or an .apr to re-write")
    p.add_argument("-o", "--output", required=True, type=output(kind="auto"),
                   help="output .apr (image) or .aprmovie folder (movie), written exactly as named")
    p.add_argument("--rel-error", type=positive_float, default=0.1, help="relative error bound E (default 0.1)")
    p.add_argument("--intensity-threshold", type=finite_float, default=0.0,
                   help="intensity below which the image is background (default 0)")
    p.add_argument("--gradient-smoothing", type=nonneg_float, default=3.0, help="gradient smoothing lambda (default 3)")
    p.add_argument("--manual", action="store_true", help="use --grad-th and --sigma-th instead of automatic ones")
    p.add_argument("--grad-th", type=finite_float, default=None, help="gradient threshold (with --manual)")
    p.add_argument("--sigma-th", type=finite_float, default=None, help="local intensity scale threshold (with --manual)")
    p.add_argument("--spacing", type=positive_float, nargs="+", help="pixel size per spatial axis, e.g. --spacing 2 0.5 0.5")
    p.add_argument("--backend", choices=("numba", "pyapr"), default="numba",
                   help="APR construction: ours (numba, default) or pyapr's (needs napari-dynfit[pyapr]); same particles")
    p.add_argument("--frame-interval", type=positive_float, default=None, help="time between frames (movies)")
    p.add_argument("--axes", default=None,
                   help="axes of the input in file order when the file does not name them: tyx (a movie) or zyx "
                        "(a z-stack), tzyx, tczyx... (asked for a TIFF/.npy of 3+ dimensions without axis metadata)")
    p.set_defaults(func=_convert)

    p = sub.add_parser("info", help="print an .apr file's or .aprmovie folder's header as JSON",
                       description="Print shape, particle count, computational ratio, levels, spacing "
                                   "and memory saved of an .apr file or .aprmovie folder (reads no particles).")
    p.add_argument("file", help=".apr file or .aprmovie folder")
    p.set_defaults(func=_info)

    p = sub.add_parser("reconstruct", help="reconstruct an .apr / .aprmovie to a TIFF, plane by plane",
                       description="Reconstruct the pixel image of an .apr file or .aprmovie folder (first "
                                   "channel) into a TIFF, one plane at a time (the full image is never in memory).")
    p.add_argument("input", help=".apr file or .aprmovie folder")
    p.add_argument("-o", "--output", required=True, type=output(".tif", ".tiff"), help="output .tif")
    p.add_argument("--mode", choices=("constant", "smooth", "level"), default="constant",
                   help="piecewise constant (default), smooth, or the particle level map")
    p.set_defaults(func=_reconstruct)
