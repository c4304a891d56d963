"""Conversion of pixel images and movies to the Adaptive Particle Representation (APR).

The APR itself is computed by our own construction (:mod:`napari_dynfit.apr.construct`, LibAPR's
definitions in numba) or, on request, by pyapr (``backend="pyapr"``); this module adds what a pipeline
needs around it:
input checks with clear errors, our ``(t, z, y, x)`` axis order and physical spacing, parallel
conversion of movie frames with Dask, progress/cancellation, and small dataclasses
(:class:`AprImage`, :class:`AprMovie`) that carry the metadata the files store.

Axis order: pyapr's arrays are ``[z, x, y]`` with ``y`` the fastest (last numpy) axis, so a numpy
image ``(z, y, x)`` goes into pyapr unchanged and pyapr's ``x``/``y`` are our ``y``/``x``.
The only places that rename axes are :func:`_pyapr_parameters` (spacing) and
:mod:`napari_dynfit.apr.h5` (file attributes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .._progress import report
from ..errors import InputError
from .grid import AprGrid

#: Reconstruction modes understood by :meth:`AprImage.reconstruct` and the lazy arrays.
MODES = ("constant", "smooth", "level")


#: The extra that installs pyapr (named in the error raised where it is missing).
PYAPR_EXTRA = "napari-dynfit[pyapr]"


def _pyapr():
    """pyapr, or a one-line :class:`InputError` naming the extra that installs it."""
    os.environ.setdefault("QT_API", "pyqt6")
    try:
        import pyapr
    except ImportError as exc:
        raise InputError(f"this needs pyapr, which is not installed: pip install '{PYAPR_EXTRA}' "
                         "(wheels exist for Python 3.11 only)") from exc
    return pyapr


@dataclass(eq=False)
class AprImage:
    """One image in the APR: the particle structure, particle values and spatial metadata.

    Attributes
    ----------
    grid : AprGrid
        The particle structure (levels and positions) as numpy arrays.
    parts : ndarray, shape (n_particles,)
        One value per particle, in the grid's storage order (uint8, uint16 or float32 as converted).
    ndim : int
        Spatial dimensions of the source image, 2 (``(y, x)``) or 3 (``(z, y, x)``).
    spacing : tuple of float
        Physical pixel size per spatial axis, ``(y, x)`` or ``(z, y, x)``.
    params : dict
        Conversion parameters (stored in the file's attributes, as pyapr does).
    """

    grid: AprGrid
    parts: np.ndarray
    ndim: int
    spacing: tuple[float, ...]
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        self.parts = self.grid.check_values(np.asarray(self.parts), "particle values")

    @property
    def shape(self) -> tuple[int, ...]:
        """Pixel shape of the image, ``(y, x)`` or ``(z, y, x)``."""
        z, y, x = self.grid.shape
        return (y, x) if self.ndim == 2 else (z, y, x)

    @property
    def dtype(self) -> np.dtype:
        """Particle value type (that of the reconstructed image)."""
        return self.parts.dtype

    @property
    def n_particles(self) -> int:
        return self.grid.n_particles

    @property
    def computational_ratio(self) -> float:
        """Number of pixels divided by the number of particles."""
        return float(np.prod(self.shape)) / max(self.n_particles, 1)

    @property
    def particles(self) -> np.ndarray:
        """Particle values as a 1D numpy array (no copy)."""
        return self.parts

    @cached_property
    def tree_parts(self) -> np.ndarray:
        """Values of the interior tree nodes (mean of their children, rounded to the particle type for integers)."""
        tree = self.grid.tree_mean(self.parts)
        if self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            return np.clip(np.rint(tree), info.min, info.max).astype(self.dtype)
        return tree.astype(self.dtype)

    def with_values(self, values) -> AprImage:
        """The same particles (and metadata) with other values, e.g. filtered values or labels."""
        return AprImage(self.grid, np.asarray(values), self.ndim, self.spacing, dict(self.params))

    @cached_property
    def apr(self):
        """The structure as a ``pyapr.APR`` (for pyapr-only operations such as the graph cut; needs pyapr)."""
        return grid_to_pyapr(self.grid, self.params)

    def stats(self) -> dict:
        """Particle count, computational ratio and memory footprint (bytes) as a dict."""
        return apr_stats(self.shape, self.n_particles, self.dtype)

    def reconstruct(self, mode: str = "constant") -> np.ndarray:
        """The full pixel image, shape :attr:`shape` (our own reconstruction, no pyapr).

        Parameters
        ----------
        mode : {"constant", "smooth", "level"}
            Piecewise-constant, smoothed, or the particle level of every pixel (uint8).
        """
        from .reconstruct import reconstruct_box

        if mode not in MODES:
            raise InputError(f"unknown reconstruction mode {mode!r}; use one of {', '.join(MODES)}")
        out = reconstruct_box(self.grid, self.parts, self.tree_parts, mode=mode)
        return out[0] if self.ndim == 2 else out


def grid_to_pyapr(grid: AprGrid, params: dict | None = None):
    """A ``pyapr.APR`` with the structure of ``grid`` (through a temporary file; needs pyapr)."""
    import tempfile
    from pathlib import Path

    from .h5 import write_h5

    pyapr = _pyapr()
    zeros = np.zeros(grid.n_particles, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "grid.apr")
        write_h5(path, grid, zeros, np.zeros(grid.n_tree, np.float32), params=params)
        apr, _ = pyapr.io.read(path)
    return apr


def pyapr_particles(values):
    """``values`` as pyapr particle data (``ByteParticles``/``ShortParticles``/``FloatParticles``...; needs pyapr)."""
    pyapr = _pyapr()
    values = np.asarray(values)
    kind = {np.dtype(np.uint8): pyapr.ByteParticles, np.dtype(np.uint16): pyapr.ShortParticles,
            np.dtype(np.uint64): pyapr.LongParticles}.get(values.dtype, pyapr.FloatParticles)
    return kind(values if kind is not pyapr.FloatParticles else values.astype(np.float32))


@dataclass
class AprMovie:
    """A movie in the APR: one :class:`AprImage` per frame and channel.

    Attributes
    ----------
    frames : list of list of AprImage
        ``frames[t][c]``.
    frame_interval : float
        Time between frames (physical units, e.g. seconds).
    channel_names : tuple of str
        One name per channel.
    """

    frames: list
    frame_interval: float = 1.0
    channel_names: tuple[str, ...] = ("ch0",)
    attrs: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def ndim(self) -> int:
        return self.frames[0][0].ndim

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.frames[0][0].spacing

    @property
    def shape(self) -> tuple[int, ...]:
        """``(t, [z,] y, x)`` of one channel."""
        return (self.n_frames, *self.frames[0][0].shape)

    def stats(self) -> dict:
        """Summed particle count and ratios over all frames and channels."""
        n = sum(im.n_particles for fr in self.frames for im in fr)
        shape = (self.n_frames * len(self.channel_names), *self.frames[0][0].shape)
        return apr_stats(shape, n, self.frames[0][0].dtype)


def apr_stats(shape, n_particles: int, dtype) -> dict:
    """Particle count, computational ratio and memory footprint of an APR of a pixel ``shape``."""
    n_pix = int(np.prod(shape))
    item = np.dtype(dtype).itemsize
    return {
        "shape": [int(s) for s in shape],
        "particles": int(n_particles),
        "computational_ratio": n_pix / max(int(n_particles), 1),
        "pixel_bytes": n_pix * item,
        "particle_bytes": int(n_particles) * item,
        "memory_saved": 1.0 - int(n_particles) / max(n_pix, 1),
    }


# ----------------------------------------------------------------------------------------------
# input checks


def _as_pyapr_dtype(image: np.ndarray, what: str) -> np.ndarray:
    """Cast to one of pyapr's types (uint8, uint16, float32), checking values on the way."""
    dt = image.dtype
    if dt in (np.uint8, np.uint16, np.float32):
        out = image
    elif dt == np.bool_:
        out = image.astype(np.uint8)
    elif np.issubdtype(dt, np.integer):
        lo, hi = (int(image.min()), int(image.max())) if image.size else (0, 0)
        out = image.astype(np.uint16) if lo >= 0 and hi <= 65535 else image.astype(np.float32)
    elif np.issubdtype(dt, np.floating):
        out = image.astype(np.float32)
    else:
        raise InputError(f"{what} has dtype {dt}; expected an integer or floating-point image")
    if out.dtype == np.float32:
        bad = ~np.isfinite(out)
        if bad.any():
            raise InputError(
                f"{what} contains {int(bad.sum())} NaN or infinite pixels; replace them first "
                "(e.g. np.nan_to_num(image, nan=0.0)) or crop them away"
            )
    if not out.any():
        raise InputError(f"{what} is all zero: there is nothing to sample; check the channel, frame "
                         "or contrast of the input")
    return np.ascontiguousarray(out)


def _check_spacing(spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    sp = tuple(float(s) for s in np.atleast_1d(spacing))
    if len(sp) != ndim or not all(np.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"spacing {spacing!r} must give {ndim} positive pixel sizes "
                         f"({'(z, y, x)' if ndim == 3 else '(y, x)'})")
    return sp


#: Construction back ends of :func:`to_apr`: our numba implementation, or pyapr (``napari-dynfit[pyapr]``).
BACKENDS = ("numba", "pyapr")


def _conversion_parameters(ndim, spacing, rel_error, intensity_threshold, gradient_smoothing,
                           auto_parameters, gradient_threshold, sigma_threshold) -> dict:
    """Checked conversion parameters; ``spacing`` as LibAPR sees it, ``(z, y, x)`` with ``z = 1`` in 2D."""
    if not rel_error > 0:
        raise InputError(f"rel_error must be > 0 (got {rel_error}); 0.1 is a good start")
    if gradient_smoothing < 0:
        raise InputError(f"gradient_smoothing must be >= 0 (got {gradient_smoothing})")
    if not auto_parameters and (gradient_threshold is None or sigma_threshold is None):
        raise InputError("auto_parameters=False needs gradient_threshold and sigma_threshold "
                         "(or use auto_parameters=True)")
    return {"rel_error": float(rel_error), "intensity_threshold": float(intensity_threshold),
            "gradient_smoothing": float(gradient_smoothing), "auto_parameters": bool(auto_parameters),
            "gradient_threshold": None if auto_parameters else float(gradient_threshold),
            "sigma_threshold": None if auto_parameters else float(sigma_threshold),
            "spacing": (1.0, *spacing) if ndim == 2 else tuple(spacing)}


def _pyapr_parameters(params: dict):
    pyapr = _pyapr()
    p = pyapr.APRParameters()
    p.rel_error = params["rel_error"]
    p.Ip_th = params["intensity_threshold"]
    p.gradient_smoothing = params["gradient_smoothing"]
    p.auto_parameters = params["auto_parameters"]
    if not params["auto_parameters"]:
        p.grad_th = params["gradient_threshold"]
        p.sigma_th = params["sigma_threshold"]
    # pyapr: dz = shape[0], dx = shape[1], dy = shape[2]  ->  our (z, y, x)
    p.dz, p.dx, p.dy = params["spacing"]
    return p


def _convert_one(image: np.ndarray, params: dict, backend: str, ndim: int, spacing, what: str) -> AprImage:
    img = _as_pyapr_dtype(np.asarray(image), what)
    if backend == "pyapr":
        pyapr = _pyapr()
        apr, parts = pyapr.converter.get_apr(img, params=_pyapr_parameters(params))
        q = apr.get_parameters()  # with the estimated thresholds
        used = {"lambda": q.gradient_smoothing, "rel_error": q.rel_error, "grad_th": q.grad_th,
                "sigma_th": q.sigma_th, "I_th": q.Ip_th}
        return AprImage(AprGrid.from_apr(apr), np.array(parts, copy=True), ndim, spacing, used)
    from .construct import construct_apr

    grid, parts, used = construct_apr(
        img if img.ndim == 3 else img[None], rel_error=params["rel_error"],
        gradient_smoothing=params["gradient_smoothing"], intensity_threshold=params["intensity_threshold"],
        auto_parameters=params["auto_parameters"], gradient_threshold=params["gradient_threshold"],
        sigma_threshold=params["sigma_threshold"], spacing=params["spacing"])
    return AprImage(grid, parts, ndim, spacing, used)


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError(f"unknown APR construction back end {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "pyapr":
        _pyapr()  # one line naming the extra when it is missing
    return backend


# ----------------------------------------------------------------------------------------------
# public API


def to_apr(image, *, rel_error: float = 0.1, intensity_threshold: float = 0.0,
           gradient_smoothing: float = 3.0, auto_parameters: bool = True, spacing=None,
           gradient_threshold: float | None = None, sigma_threshold: float | None = None,
           movie: bool = False, channel_axis: int | None = None, frame_interval: float = 1.0,
           channel_names=None, n_workers: int | None = None, backend: str = "numba"):
    """Convert a 2D/3D image, or a movie, to the APR.

    Parameters
    ----------
    image : array_like
        ``(y, x)`` or ``(z, y, x)`` image; with ``movie=True`` a ``(t, [c,] [z,] y, x)`` movie
        (numpy or Dask array; Dask frames are computed one at a time). Integer, boolean and
        floating-point types are accepted; pyapr computes in uint8, uint16 or float32.
    rel_error : float
        Relative reconstruction error bound E of the APR (smaller: more particles). Default 0.1.
    intensity_threshold : float
        Intensity (image units) below which the image is treated as background (pyapr ``Ip_th``).
    gradient_smoothing : float
        Smoothing of the B-spline gradient estimate (pyapr ``lambda``); 0 = none. Default 3.
    auto_parameters : bool
        Estimate pyapr's ``grad_th`` and ``sigma_th`` from the image (Li thresholding).
    spacing : sequence of float, optional
        Physical pixel size ``(y, x)`` or ``(z, y, x)``; default 1 per axis.
    gradient_threshold, sigma_threshold : float, optional
        pyapr's ``grad_th`` and ``sigma_th``; required when ``auto_parameters=False``.
    movie : bool
        Treat axis 0 as time and return an :class:`AprMovie` (frames converted in parallel).
    channel_axis : int, optional
        For movies, the channel axis (1 for ``(t, c, ...)``).
    frame_interval : float
        Time between frames (movies only).
    channel_names : sequence of str, optional
        Names of the movie's channels (default ``ch0, ch1...``).
    n_workers : int, optional
        Frames converted at the same time (Dask threads); default: the CPU count.
    backend : {"numba", "pyapr"}
        Our own construction (:mod:`napari_dynfit.apr.construct`, the default; no pyapr needed) or
        pyapr's (``pip install 'napari-dynfit[pyapr]'``, Python 3.11). Both give the same particles.

    Returns
    -------
    AprImage or AprMovie

    Raises
    ------
    InputError
        Wrong dimensionality, all-zero image or frame, NaN/inf values, bad parameters.
    """
    ndim_in = len(getattr(image, "shape", np.shape(image)))
    if not movie:
        if ndim_in not in (2, 3):
            raise InputError(
                f"image has {ndim_in} dimensions; expected 2D (y, x) or 3D (z, y, x): pass one "
                "channel/frame, or movie=True for (t, [z,] y, x) movies")
        sp = _check_spacing(spacing, ndim_in)
        params = _conversion_parameters(ndim_in, sp, rel_error, intensity_threshold, gradient_smoothing,
                                        auto_parameters, gradient_threshold, sigma_threshold)
        return _convert_one(image, params, _check_backend(backend), ndim_in, sp, "image")
    return _movie_to_apr(image, spacing, frame_interval, channel_axis, channel_names, n_workers,
                         (rel_error, intensity_threshold, gradient_smoothing, auto_parameters,
                          gradient_threshold, sigma_threshold), _check_backend(backend))


def _movie_to_apr(movie, spacing, frame_interval, channel_axis, channel_names, n_workers, pargs, backend):
    import dask

    shape = tuple(movie.shape)
    n_ch_axes = 0 if channel_axis is None else 1
    ndim = len(shape) - 1 - n_ch_axes
    if ndim not in (2, 3):
        raise InputError(
            f"movie has {len(shape)} dimensions; expected (t, [c,] [z,] y, x) with a 2D or 3D frame"
            " (set channel_axis for a channel axis)")
    if channel_axis is not None and channel_axis != 1:
        movie = np.moveaxis(movie, channel_axis, 1) if isinstance(movie, np.ndarray) else \
            movie.transpose(0, channel_axis, *[a for a in range(1, len(shape)) if a != channel_axis])
    n_ch = movie.shape[1] if channel_axis is not None else 1
    names = tuple(channel_names) if channel_names is not None else tuple(f"ch{c}" for c in range(n_ch))
    if len(names) != n_ch:
        raise InputError(f"{len(names)} channel names given for {n_ch} channels")
    if not frame_interval > 0:
        raise InputError(f"frame_interval must be > 0 (got {frame_interval})")
    sp = _check_spacing(spacing, ndim)
    params = _conversion_parameters(ndim, sp, *pargs)

    def frame(t, c):
        return movie[t, c] if channel_axis is not None else movie[t]

    jobs = [(t, c) for t in range(shape[0]) for c in range(n_ch)]
    if not jobs:
        raise InputError("movie has no frames")
    workers = n_workers or dask.system.CPU_COUNT
    tasks = [dask.delayed(_convert_one, pure=False)(frame(t, c), params, backend, ndim, sp,
                                                    f"frame {t} channel {names[c]}")
             for t, c in jobs]
    # The first frame is converted in this thread, alone: pyapr finishes its lazy imports there (and numba
    # compiles or loads its kernels once). Started together, one worker importing a module while another
    # held the GIL inside pyapr's get_apr (which then imported too) deadlocked `dynfit demo`.
    batches = [tasks[:1]] + [tasks[i:i + workers] for i in range(1, len(tasks), workers)]
    done = []
    report(0, len(tasks), "APR conversion")
    for k, batch in enumerate(batches):
        done.extend(dask.compute(*batch, scheduler="sync" if k == 0 else "threads", num_workers=workers))
        report(len(done), len(tasks), "APR conversion")  # frames done; raises Cancelled when asked
    frames = [done[t * n_ch:(t + 1) * n_ch] for t in range(shape[0])]
    return AprMovie(frames=frames, frame_interval=float(frame_interval), channel_names=names)


def labels_to_apr(labels, *, spacing=None) -> AprImage:
    """Convert a label image ``(y, x)`` / ``(z, y, x)`` to the APR without changing any label.

    Particles are placed at full resolution wherever the label changes (zero gradient threshold,
    no gradient smoothing, tight error bound), so every particle cell lies inside one label and
    the piecewise-constant reconstruction equals the input exactly; this is checked.

    Raises
    ------
    InputError
        Negative labels, labels above 65535, a non-integer image, or a result that is not exact.
    """
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise InputError(f"labels have {lab.ndim} dimensions; expected (y, x) or (z, y, x)")
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == np.bool_):
        raise InputError(f"labels must be integers (got {lab.dtype}); round or relabel them first")
    if lab.size and (lab.min() < 0 or lab.max() > 65535):
        raise InputError("labels must lie in 0..65535 to be stored as APR particles; relabel them "
                         "(skimage.segmentation.relabel_sequential)")
    lab16 = lab.astype(np.uint16)
    image = to_apr(lab16, rel_error=0.01, gradient_smoothing=0.0, auto_parameters=False,
                   gradient_threshold=0.0, sigma_threshold=1.0, spacing=spacing)
    if not np.array_equal(image.reconstruct(), lab16):
        raise InputError("these labels cannot be stored exactly as APR particles; save them as TIFF or Zarr")
    return image
