"""The per-frame pipeline: APR conversion -> APR-native Gaussian -> blob detection, on any Dask scheduler.

Every frame of a movie ``(t, [z,] y, x)`` goes through

1. :func:`napari_dynfit.apr.to_apr` (our numba construction; pyapr on request) -> particles;
2. :func:`napari_dynfit.apr.filters.gaussian` on the particles (our native convolution; skipped with
   ``filter=None``);
3. the piecewise-constant reconstruction of the filtered particles (ours) and
   :func:`napari_dynfit.detect.detect_blobs` on it (LoG scale space, sub-pixel refinement, split of
   unresolved pairs). Detection runs on the reconstruction because that is what the detection module
   supports (a pixel image); the APR's own segmentation (:mod:`napari_dynfit.apr.segment`) finds
   objects, not sub-pixel spots.

The Gaussian is optional (``filter=None`` by default) because detection is already a LoG filter and
measured better without it on the simulator's particles (``docs/parallel.md``). When it is used, it
widens every spot: detection runs at ``hypot(sigma, filter sigma)`` and reports ``size``
back in the movie's units, so ``detect={"sigma": ...}`` is always the spot width of the input movie;
and the split of unresolved pairs is off by default (``split=None``), because its two-Gaussian
test assumes uncorrelated pixel noise and splits single spots of a smoothed image (precision 0.92
instead of 0.99 on the simulator's particles).

Frames are independent tasks mapped with :func:`napari_dynfit.parallel.map_frames`, so the same call
runs serially (``scheduler="sync"``, the reference), on threads, on processes, on a
``LocalCluster`` or on any ``dask.distributed`` cluster (``"tcp://HOST:PORT"``), with identical
results. Inside a task every native library (pyapr's OpenMP, our numba kernels) runs on one thread:
the parallelism is across frames, and nested thread pools on shared cores only spin against each
other. Movies larger than memory are opened lazily with :func:`open_movie` (OME-Zarr, TIFF, ``.npy``):
each task reads its own frame on the worker, so a worker holds one frame's working set at a time.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .parallel import map_frames

__all__ = ["CONVERT_DEFAULTS", "DETECT_DEFAULTS", "FILTER_DEFAULTS", "PipelineResult", "MovieFile",
           "TiffFrames", "open_movie", "process_frame", "process_movie"]

#: Conversion parameters (keywords of :func:`napari_dynfit.apr.to_apr`).
CONVERT_DEFAULTS = {"rel_error": 0.1, "intensity_threshold": 0.0, "gradient_smoothing": 3.0,
                    "auto_parameters": True, "gradient_threshold": None, "sigma_threshold": None,
                    "backend": "numba"}
#: APR-native Gaussian (keywords of :func:`napari_dynfit.apr.filters.gaussian`: sigma and stencil size, pixels).
FILTER_DEFAULTS = {"sigma": 1.0, "size": None}
#: Detection (keywords of :func:`napari_dynfit.detect.detect_blobs`; ``sigma`` = spot width in the movie, px;
#: None: estimated from the movie by the rule of ``dynfit detect`` and ``detect_movie``,
#: :func:`napari_dynfit.detect.size.estimate_movie_spot_sigma`).
#: ``split=None``: split unresolved pairs unless the frame is smoothed (see the module docstring).
DETECT_DEFAULTS = {"sigma": None, "sigma_range": None, "num_sigma": 3, "threshold": None, "threshold_snr": 5.0,
                   "min_distance": None, "exclude_border": False, "split": None, "detection_scale": 0.7,
                   "polarity": "auto"}
MOVIE_SUFFIXES = (".tif", ".tiff", ".zarr", ".npy")


@dataclass
class PipelineResult:
    """What :func:`process_movie` returns.

    Attributes
    ----------
    detections : pandas.DataFrame
        ``frame, [z,] y, x, intensity, size`` (pixels; ``size`` = spot sigma in the movie), the
        detections table of :mod:`napari_dynfit.tables`; ``attrs["spacing"]`` when known.
    frames : pandas.DataFrame
        One row per frame: ``frame, particles, computational_ratio, level_min, level_max,
        detections``.
    """

    detections: pd.DataFrame
    frames: pd.DataFrame


# ----------------------------------------------------------------------------------------------
# parameters


def _merge(name: str, defaults: dict, given) -> dict:
    if given is None:
        return dict(defaults)
    if not isinstance(given, dict):
        raise InputError(f"{name} must be a dict of parameters ({', '.join(defaults)}), got {type(given).__name__}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(f"unknown {name} parameter(s) {', '.join(unknown)}; use {', '.join(defaults)}")
    return {**defaults, **given}


def _filter_params(filter) -> dict | None:
    if filter is None or filter is False:
        return None
    params = _merge("filter", FILTER_DEFAULTS, filter)
    sigma = params["sigma"]
    if not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise InputError(f"filter sigma must be a positive number of pixels, got {sigma!r}; pass filter=None "
                         "to detect on the unfiltered APR")
    return params


def _check_spacing(spacing, ndim: int):
    if spacing is None:
        return None
    sp = tuple(float(s) for s in np.ravel(spacing))
    if len(sp) != ndim or not all(math.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"spacing {spacing!r} must give {ndim} positive pixel sizes "
                         f"({'(z, y, x)' if ndim == 3 else '(y, x)'})")
    return sp


# ----------------------------------------------------------------------------------------------
# one frame


@contextlib.contextmanager
def _one_thread(backend: str = "numba"):
    """Our numba kernels (and pyapr's OpenMP, when it converts) on this thread only (per-thread settings)."""
    import numba
    from threadpoolctl import threadpool_limits

    if backend == "pyapr":
        from .apr.convert import _pyapr

        _pyapr()  # load pyapr's OpenMP runtime so that the limit below reaches it
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="openmp"):
            yield
    finally:
        numba.set_num_threads(before)


def process_frame(frame, index: int = 0, *, convert: dict | None = None, filter: dict | None = None,
                  detect: dict | None = None, spacing=None) -> tuple[pd.DataFrame, dict]:
    """Convert one frame to the APR, smooth it on the particles and detect blobs.

    Parameters
    ----------
    frame : array_like, shape (y, x) or (z, y, x)
        One frame (integer or float; no NaNs).
    index : int
        Frame number (the ``frame`` column, error messages).
    convert, filter, detect : dict, optional
        As in :func:`process_movie` (merged with the defaults; ``filter=None`` skips the Gaussian).
    spacing : sequence of float, optional
        Physical pixel size ``([z,] y, x)``.

    Returns
    -------
    detections : pandas.DataFrame
        ``frame, [z,] y, x, intensity, size``.
    stats : dict
        ``frame, particles, computational_ratio, level_min, level_max, detections``.
    """
    from .apr import to_apr
    from .apr.filters import gaussian
    from .detect import detect_blobs

    conv = _merge("convert", CONVERT_DEFAULTS, convert)
    det_kw = _merge("detect", DETECT_DEFAULTS, detect)
    smooth = filter if filter is None else _merge("filter", FILTER_DEFAULTS, filter)
    widen = 0.0 if smooth is None else float(smooth["sigma"])
    if det_kw["split"] is None:
        det_kw["split"] = smooth is None
    if det_kw["sigma"] is None and det_kw["sigma_range"] is None:  # one frame: its own estimate (process_movie
        from .detect import resolve_spot_sigma  # estimates once for the movie and passes the size)

        det_kw["sigma"], det_kw["polarity"], _, _ = resolve_spot_sigma(np.asarray(frame)[None], spacing=spacing,
                                                                       polarity=det_kw["polarity"])
    if det_kw["sigma"] is not None:
        det_kw["sigma"] = math.hypot(det_kw["sigma"], widen)
    if det_kw["sigma_range"] is not None:
        det_kw["sigma_range"] = tuple(math.hypot(s, widen) for s in det_kw["sigma_range"])
    try:
        with _one_thread(conv["backend"]):
            image = to_apr(frame, spacing=spacing, **conv)
            values = image.particles
            if smooth is not None:
                values = gaussian(image.grid, values, smooth["sigma"], size=smooth["size"])
                pixels = image.with_values(np.asarray(values, dtype=np.float32)).reconstruct()
            else:
                pixels = image.reconstruct()
            # the reconstruction errs by up to the APR's relative error: the detector's split test allows for it
            table = detect_blobs(pixels, spacing=spacing, image_error=min(float(conv["rel_error"]), 0.5), **det_kw)
    except InputError as exc:
        raise InputError(f"frame {index}: {exc}") from None
    table["size"] = np.sqrt(np.maximum(table["size"].to_numpy() ** 2 - widen ** 2, 0.0))
    table.insert(0, "frame", np.int64(index))
    stats = {"frame": int(index), "particles": image.n_particles, "computational_ratio": image.computational_ratio,
             "level_min": int(image.grid.level_min), "level_max": int(image.grid.level_max),
             "detections": len(table)}
    return table, stats


# ----------------------------------------------------------------------------------------------
# the movie


def process_movie(movie, *, convert: dict | None = None, filter: dict | None = None,
                  detect: dict | None = None, spacing=None, scheduler="sync", workers: int | None = None,
                  in_flight: int | None = None) -> PipelineResult:
    """Run APR conversion -> APR-native Gaussian -> blob detection on every frame of a movie.

    Parameters
    ----------
    movie : array_like, path or MovieFile, shape (t, y, x) or (t, z, y, x)
        numpy, Zarr or Dask array (lazy arrays are read one frame per task, on the workers), or a
        path / :class:`MovieFile` of :func:`open_movie` (OME-Zarr, TIFF, ``.npy``; its spacing is
        used unless ``spacing`` is given).
    convert : dict, optional
        APR conversion parameters, see :data:`CONVERT_DEFAULTS` (``rel_error`` E...).
    filter : dict or None
        Gaussian on the particles, see :data:`FILTER_DEFAULTS` (``sigma`` in pixels); ``None`` (default)
        detects on the unfiltered APR.
    detect : dict, optional
        Detection parameters, see :data:`DETECT_DEFAULTS` (``sigma``: spot width of the movie in pixels; None,
        the default: estimated once from the movie's raw frames at 1/4, 1/2 and 3/4 by
        :func:`napari_dynfit.detect.size.estimate_movie_spot_sigma`, the rule of ``dynfit detect`` and
        :func:`napari_dynfit.detect.detect_movie`; recorded in ``detections.attrs["sigma"]`` and
        ``attrs["sigma_choice"]``, the polarity used in ``attrs["polarity"]``).
    spacing : sequence of float, optional
        Physical pixel size ``([z,] y, x)`` (anisotropic stacks).
    scheduler : str or distributed.Client
        ``"sync"`` (serial reference), ``"threads"``, ``"processes"``, ``"local-cluster"`` or a
        scheduler address ``"tcp://HOST:PORT"`` (see :mod:`napari_dynfit.parallel`).
    workers : int, optional
        Parallel workers of the local schedulers / local cluster (default: CPU cores).
    in_flight : int, optional
        Frames submitted at once to a cluster (default two per worker).

    Returns
    -------
    PipelineResult
        The detections table and per-frame APR statistics; identical for every scheduler.

    Raises
    ------
    InputError
        A movie that is not ``(t, [z,] y, x)``, has no frames or empty frames, a non-numeric type,
        NaN/infinite or all-zero frames (named by frame), unknown parameters.
    """
    if isinstance(movie, (str, Path)):
        movie = open_movie(movie)
    if isinstance(movie, MovieFile):
        spacing = movie.spacing if spacing is None else spacing
        movie = movie.data
    shape = tuple(getattr(movie, "shape", np.shape(movie)))
    if len(shape) not in (3, 4):
        raise InputError(f"movie has {len(shape)} dimensions {shape}; expected (t, y, x) or (t, z, y, x): "
                         "pick one channel, or add a time axis of length 1 to a single image")
    if shape[0] == 0:
        raise InputError("movie has no frames; check the file or the time range")
    if 0 in shape[1:]:
        raise InputError(f"movie frames are empty (shape {shape}); check the crop or the axes")
    dtype = np.dtype(getattr(movie, "dtype", np.asarray(movie[0]).dtype))
    if dtype.kind not in "buif":
        raise InputError(f"movie has dtype {dtype}; expected integer or floating-point pixels")
    if not hasattr(movie, "shape"):
        movie = np.asarray(movie)
    spacing = _check_spacing(spacing, len(shape) - 1)
    det_kw = _merge("detect", DETECT_DEFAULTS, detect)
    # size and polarity: one decision for the movie, here (not in every worker, frame by frame), by the rule of
    # detect_movie / dynfit detect (sigma None: estimated from the raw frames at 1/4, 1/2, 3/4)
    from .detect import resolve_spot_sigma

    det_kw["sigma"], det_kw["polarity"], _, choice = resolve_spot_sigma(
        movie, det_kw["sigma"], det_kw["sigma_range"], spacing=spacing, polarity=det_kw["polarity"],
        decide_polarity=True)
    func = functools.partial(process_frame, convert=_merge("convert", CONVERT_DEFAULTS, convert),
                             filter=_filter_params(filter), detect=det_kw, spacing=spacing)
    results = map_frames(func, movie, scheduler=scheduler, n_workers=workers, in_flight=in_flight,
                         desc="APR + detection", index=True)
    detections = pd.concat([table for table, _ in results], ignore_index=True)
    detections["frame"] = detections["frame"].astype(np.int64)
    detections.attrs.update(sigma=det_kw["sigma"], sigma_choice=choice, polarity=det_kw["polarity"])
    if spacing is not None:
        detections.attrs["spacing"] = list(spacing)
    return PipelineResult(detections=detections, frames=pd.DataFrame([stats for _, stats in results]))


# ----------------------------------------------------------------------------------------------
# lazy movies


@dataclass
class MovieFile:
    """A movie opened lazily by :func:`open_movie`.

    Attributes
    ----------
    data : array-like, shape (t, [z,] y, x)
        Lazy: a Dask array (OME-Zarr), a memory map (``.npy``) or :class:`TiffFrames`.
    spacing : tuple of float or None
        Physical pixel size ``([z,] y, x)`` from the file's metadata (None when it has none).
    path : Path
    """

    data: object
    spacing: tuple | None
    path: Path


class TiffFrames:
    """A TIFF movie read one frame at a time through tifffile's Zarr view (pages are the chunks).

    Pickles as its path: each worker process opens the file once (on its first frame) and keeps it
    open for the following tasks.

    Parameters
    ----------
    path : str or Path
    axes : str
        Axes of the file's first series, letters among ``tczyx`` ending in ``yx``, with a ``t``: one per axis
        that is read (the axes of length 1 that hold no image dimension are not: :func:`._tiff.kept_axes`).
    channel : int, optional
        Channel to read when the file has a ``c`` axis.
    """

    def __init__(self, path, axes: str, channel: int | None = None):
        import tifffile

        from ._tiff import kept_axes

        self.path, self.axes, self.channel = Path(path), axes, channel
        with tifffile.TiffFile(self.path) as tf:
            series = tf.series[0]
            full, self.dtype = tuple(series.shape), np.dtype(series.dtype)
            kept = kept_axes(series.axes, full)
        self._dropped = tuple(i for i in range(len(full)) if i not in kept)
        self.shape = tuple(n for a, n in zip(axes, (full[i] for i in kept)) if a != "c")
        self.ndim = len(self.shape)
        self._stamp = self.path.stat().st_mtime_ns

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t) -> np.ndarray:
        from ._tiff import file_key

        key = tuple(t if a == "t" else self.channel if a == "c" else slice(None) for a in self.axes)
        return np.asarray(_tiff_zarr(str(self.path), self._stamp)[file_key(key, len(self.axes), self._dropped)])


@functools.lru_cache(maxsize=4)
def _tiff_zarr(path: str, stamp: int):
    """tifffile's Zarr view of a TIFF, opened once per process (``stamp``: the file's mtime, a new file reopens)."""
    import tifffile
    import zarr

    return zarr.open(tifffile.imread(path, aszarr=True), mode="r")


def _check_movie_axes(axes: str, path) -> None:
    if set(axes) - set("tczyx") or len(set(axes)) != len(axes) or not axes.endswith("yx") or "t" not in axes:
        raise InputError(f"'{path}' has axes '{axes}'; the pipeline needs a movie with distinct axes among "
                         "t, c, z, y, x ending in yx and a t axis (give them: --axes on the command line, axes=... "
                         "in Python; e.g. 'tyx' or 'tzyx')")


def open_movie(path, *, axes: str | None = None, channel: int | None = None) -> MovieFile:
    """Open a movie lazily: nothing but metadata is read until a frame is indexed.

    Parameters
    ----------
    path : str or Path
        OME-Zarr image group (``.zarr``; Dask array of the full-resolution level, chunks as stored:
        write one frame per chunk), TIFF (``.tif``/``.tiff``; pages read on demand) or ``.npy``
        (memory map).
    axes : str, optional
        Axes of the file in file order (e.g. ``"tyx"``, ``"tzyx"``, ``"tczyx"``); needed when a TIFF / ``.npy``
        of 3+ dimensions does not name them (an :class:`~._tiff.AmbiguousAxesError` asks for them).
    channel : int, optional
        Channel of a multi-channel movie (required when the ``c`` axis is longer than 1).

    Returns
    -------
    MovieFile
        ``data`` of shape ``(t, [z,] y, x)`` and the spacing found in the file.
    """
    from ._io import check_input_file
    from .io.image import open_image

    p = check_input_file(path, suffixes=MOVIE_SUFFIXES, what="movie")
    img = open_image(p, axes, lazy=True, what="movie")
    _check_movie_axes(img.axes, p)
    return MovieFile(img.movie(channel), img.spacing if img.has_spacing() else None, p)
