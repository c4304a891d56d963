"""Lazy, multiscale pixel views of APR images and movies.

:class:`LazyAprArray` looks like a read-only numpy array of the pixel image at one resolution
(``shape``, ``dtype``, ``ndim``, ``__getitem__``); indexing reconstructs only the requested box
with our own reconstruction (:mod:`napari_dynfit.apr.reconstruct`, no pyapr), from the file (the
structure is read once; particle values only for the rows that cross the box) or from an
in-memory :class:`~napari_dynfit.apr.AprImage`.
Resolution ``level_delta = -k`` halves every axis ``k`` times, reading the APR tree (interior
node means) where particles are finer than the requested pixel; this is what napari's multiscale
image layers need: coarse levels for zoomed-out 2D views and for 3D rendering.
:class:`LazyAprMovie` stacks frames (one ``.apr`` per frame) along a leading time axis and opens
only the frames that are looked at.

Why our own class rather than pyapr's ``LazySlicer``/``APRSlicer``: those print on transposes, do
not accept numpy-style keys (negative indices, steps, Ellipsis), keep pyapr's ``[z, x, y]`` axis
naming, do not share one opened file between resolution levels, are not thread-safe, and have no
movie or 2D shape handling; and they need pyapr.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from copy import copy as _shallow_copy
from numbers import Integral
from pathlib import Path

import numpy as np

from ..errors import InputError
from .convert import MODES, AprImage

#: Coarsest level kept in a multiscale pyramid: its largest axis is at least this many pixels.
MIN_LEVEL_SIZE = 128


class _Source:
    """One APR (file or memory) that reconstructs boxes at any resolution; thread-safe."""

    def __init__(self, grid, values, tree_values, ndim: int, spacing, dtype):
        self.lock = threading.Lock()
        self.closed = False
        self.grid, self.values, self.tree_values = grid, values, tree_values
        self.ndim, self.spacing, self.dtype = ndim, tuple(spacing), np.dtype(dtype)
        self.full = tuple(int(v) for v in grid.shape)

    def box(self, level_delta: int, lo, hi, mode: str) -> np.ndarray:
        """Reconstruct ``[lo, hi)`` (``(z, y, x)`` pixels at ``level_delta``)."""
        from .reconstruct import reconstruct_box

        with self.lock:
            if self.closed:
                raise ValueError("the APR file of this lazy array was closed")
            return reconstruct_box(self.grid, self.values, self.tree_values, lo, hi, level_delta=level_delta,
                                   mode=mode, dtype=np.uint8 if mode == "level" else self.dtype)

    def close(self):
        pass


class _FileSource(_Source):
    """An ``.apr`` file with tree particles: the structure is read once, particle values per box (slabs)."""

    def __init__(self, path: str):
        import h5py
        import hdf5plugin  # noqa: F401  (Blosc)

        from .grid import AprGrid
        from .h5 import ROOT
        from .io import apr_header

        head = apr_header(path)
        self.header = head
        grid = AprGrid.from_file(path)
        self.file = h5py.File(path, "r")
        parts, tree = self.file[ROOT]["particles"], self.file[ROOT]["Tree/particles"]
        super().__init__(grid, lambda a, b: parts[a:b], lambda a, b: tree[a:b], head["ndim"], head["spacing"],
                         head["dtype"])

    def close(self):
        with self.lock:
            if not self.closed:
                self.file.close()
                self.closed = True


def _memory_source(image: AprImage) -> _Source:
    src = _Source(image.grid, image.parts, image.tree_parts, image.ndim, image.spacing, image.dtype)
    src.image = image  # what the filter widget works on
    return src


def _open_source(src) -> _Source:
    if isinstance(src, AprImage):
        return _memory_source(src)
    from .io import apr_header, read_apr

    if apr_header(src)["tree_particles"] == 0:  # written without tree values: read it whole
        return _memory_source(read_apr(src))
    return _FileSource(str(src))


def _normalise_key(key, shape):
    """numpy key -> per-axis (start, stop, step, is_int) over ``shape``."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1:]
    if len(key) > len(shape):
        raise IndexError(f"too many indices for an array of {len(shape)} dimensions")
    key = key + (slice(None),) * (len(shape) - len(key))
    out = []
    for k, n in zip(key, shape):
        if isinstance(k, (Integral, np.integer)):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"index {int(k)} is out of bounds for an axis of size {n}")
            out.append((i, i + 1, 1, True))
        elif isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step < 1:
                raise IndexError("lazy APR arrays support only positive slice steps")
            out.append((start, max(stop, start), step, False))
        else:
            raise IndexError(f"lazy APR arrays support integers and slices, not {type(k).__name__}")
    return out


class _LazyView:
    """numpy-style indexing over a base box: slices give lazy views, integers reconstruct.

    A view is ``origin``, ``step`` and ``shape`` per axis in the coordinates of the base array
    (shape ``_base_shape``). Subclasses implement :meth:`_read` (``[(start, step, count, is_int)]``
    per base axis -> ndarray).
    """

    def _init_view(self, base_shape):
        self._base_shape = tuple(int(s) for s in base_shape)
        self._origin = (0,) * len(base_shape)
        self._step = (1,) * len(base_shape)
        self.shape = self._base_shape

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))

    def __len__(self):
        return self.shape[0]

    def _compose(self, key):
        axes = _normalise_key(key, self.shape)
        return [(o + a * s, s * k, len(range(a, b, k)), is_int)
                for o, s, (a, b, k, is_int) in zip(self._origin, self._step, axes)]

    def __getitem__(self, key):
        """Integers (on any axis) reconstruct and return an ndarray; slices only return a lazy view."""
        base = self._compose(key)
        if any(is_int for *_, is_int in base):
            return self._read(base)
        view = _shallow_copy(self)
        view._origin = tuple(b[0] for b in base)
        view._step = tuple(b[1] for b in base)
        view.shape = tuple(b[2] for b in base)
        return view

    def __array__(self, dtype=None, copy=None):
        out = self._read(list(zip(self._origin, self._step, self.shape, [False] * self.ndim)))
        return out if dtype is None else out.astype(dtype)

    def compute(self) -> np.ndarray:
        """Reconstruct the whole view."""
        return np.asarray(self)


class LazyAprArray(_LazyView):
    """Pixel view of one APR at one resolution, reconstructed on demand.

    Indexing follows numpy, except that a key made of slices only (no integer) returns another
    lazy view (as Dask does); a key with an integer, ``np.asarray(view)`` or ``view.compute()``
    reconstructs the box (only its particles are read).

    Parameters
    ----------
    source : str, Path or AprImage
        An ``.apr`` file (read lazily) or an in-memory image.
    level_delta : int
        0 = full resolution; ``-k`` = every axis downsampled by ``2**k``.
    mode : {"constant", "smooth", "level"}
        Reconstruction: piecewise constant, smooth, or the particle level of each pixel (uint8).

    Attributes
    ----------
    shape : tuple of int
        ``(y, x)`` or ``(z, y, x)`` at this resolution.
    """

    def __init__(self, source, level_delta: int = 0, mode: str = "constant", _src: _Source | None = None):
        if mode not in MODES:
            raise InputError(f"unknown reconstruction mode {mode!r}; use one of {', '.join(MODES)}")
        if level_delta > 0:
            raise InputError("level_delta must be <= 0 (upsampling is not supported)")
        self._src = _src or _open_source(source)
        self.level_delta = int(level_delta)
        self.mode = mode
        f = 2.0 ** self.level_delta
        full = tuple(int(math.ceil(d * f)) for d in self._src.full)  # (z, y, x)
        self.spatial_ndim = self._src.ndim
        self._init_view(full[1:] if self.spatial_ndim == 2 else full)
        self.dtype = np.dtype(np.uint8) if mode == "level" else self._src.dtype

    def __repr__(self):
        return (f"LazyAprArray(shape={self.shape}, dtype={self.dtype}, level_delta={self.level_delta}, "
                f"mode={self.mode!r})")

    def _read(self, base) -> np.ndarray:
        if self.spatial_ndim == 2:
            base = [(0, 1, 1, True)] + list(base)
        if any(n == 0 for _, _, n, _ in base):
            return np.zeros([n for _, _, n, is_int in base if not is_int], self.dtype)
        lo = [start for start, _, _, _ in base]
        hi = [start + (n - 1) * step + 1 for start, step, n, _ in base]
        out = self._src.box(self.level_delta, lo, hi, self.mode)
        return out[tuple(0 if is_int else slice(None, None, step) for _, step, _, is_int in base)]

    def with_level(self, level_delta: int) -> LazyAprArray:
        """The same APR at another resolution (shares the opened file)."""
        return LazyAprArray(None, level_delta, self.mode, _src=self._src)

    def with_mode(self, mode: str) -> LazyAprArray:
        """The same APR and resolution in another reconstruction mode (shares the opened file)."""
        return LazyAprArray(None, self.level_delta, mode, _src=self._src)

    def close(self) -> None:
        """Release the file handles (for file-backed arrays)."""
        self._src.close()


def _n_levels(full_shape, min_size: int) -> int:
    """Number of pyramid levels so that the coarsest largest axis stays >= ``min_size``."""
    big = max(full_shape)
    n = 1
    while math.ceil(big / 2 ** n) >= min_size:
        n += 1
    return n


def lazy_multiscale(source, mode: str = "constant", min_size: int = MIN_LEVEL_SIZE) -> list:
    """Pyramid of :class:`LazyAprArray` levels (full resolution first) for napari multiscale layers.

    Parameters
    ----------
    source : str, Path or AprImage
        ``.apr`` file or in-memory image.
    mode : {"constant", "smooth", "level"}
        Reconstruction mode.
    min_size : int
        Stop when the largest axis of the next level would be below this many pixels.
    """
    base = LazyAprArray(source, 0, mode)
    return [base] + [base.with_level(-k) for k in range(1, _n_levels(base.shape, min_size))]


class LazyAprMovie(_LazyView):
    """Pixel view ``(t, [z,] y, x)`` of one channel of an APR movie at one resolution.

    Indexing as :class:`LazyAprArray` (slices only: a lazy view). Frames are opened when first
    read; at most ``cache`` frames stay open.

    Parameters
    ----------
    frames : list of (str, Path or AprImage)
        One ``.apr`` file (or in-memory image) per frame.
    level_delta, mode
        As for :class:`LazyAprArray`.
    cache : int
        Frames kept open.
    """

    def __init__(self, frames, level_delta: int = 0, mode: str = "constant", cache: int = 4,
                 _shared: tuple | None = None):
        if not len(frames):
            raise InputError("an APR movie needs at least one frame")
        self.frames = list(frames)
        self.level_delta = int(level_delta)
        self.mode = mode
        self.cache = cache
        # open frames and their lock, shared by all levels and modes of this movie
        self._shared = _shared if _shared is not None else (OrderedDict(), threading.RLock())
        self._open, self._lock = self._shared
        with self._lock:
            first = self._frame(0)
        self._init_view((len(self.frames), *first.shape))
        self.dtype = first.dtype

    def _frame(self, t: int) -> LazyAprArray:
        """Frame ``t`` (opened if needed); call with ``self._lock`` held."""
        src = self._open.get(t)
        if src is None:
            src = _open_source(self.frames[t])
            self._open[t] = src
            while len(self._open) > self.cache:
                _, old = self._open.popitem(last=False)
                old.close()
        else:
            self._open.move_to_end(t)
        return LazyAprArray(None, self.level_delta, self.mode, _src=src)

    def _read(self, base) -> np.ndarray:
        (t0, tstep, nt, t_int), rest = base[0], base[1:]
        with self._lock:  # no frame is evicted (closed) while it is being read
            planes = [self._frame(t0 + i * tstep)._read(rest) for i in range(nt)]
        if t_int:
            return planes[0]
        if planes:
            return np.stack(planes)
        return np.zeros((0, *[n for _, _, n, is_int in rest if not is_int]), self.dtype)

    def with_level(self, level_delta: int) -> LazyAprMovie:
        """The same movie at another resolution (shares the opened frames)."""
        return LazyAprMovie(self.frames, level_delta, self.mode, self.cache, _shared=self._shared)

    def with_mode(self, mode: str) -> LazyAprMovie:
        """The same movie and resolution in another reconstruction mode (shares the opened frames)."""
        if mode not in MODES:
            raise InputError(f"unknown reconstruction mode {mode!r}; use one of {', '.join(MODES)}")
        return LazyAprMovie(self.frames, self.level_delta, mode, self.cache, _shared=self._shared)

    def close(self) -> None:
        with self._lock:
            for src in self._open.values():
                src.close()
            self._open.clear()


def lazy_movie_multiscale(frames, mode: str = "constant", min_size: int = MIN_LEVEL_SIZE) -> list:
    """Pyramid of :class:`LazyAprMovie` levels for one channel of a movie (see :func:`lazy_multiscale`)."""
    base = LazyAprMovie(frames, 0, mode)
    return [base] + [base.with_level(-k) for k in range(1, _n_levels(base.shape[1:], min_size))]


def open_lazy(path, mode: str = "constant", min_size: int = MIN_LEVEL_SIZE) -> dict:
    """Open an ``.apr`` file or ``.aprmovie`` folder as lazy multiscale pixel views.

    Returns
    -------
    dict
        ``levels``: list (one pyramid per channel) of lists of lazy arrays, full resolution
        first, shapes ``(t, [z,] y, x)`` for movies and ``([z,] y, x)`` for images;
        ``channel_names``; ``scale`` (physical size per axis, frame interval first for movies);
        ``header``: the file's header (particle count, computational ratio...).
    """
    from .io import MOVIE_SUFFIX, apr_header, movie_header

    p = Path(path)
    if p.suffix.lower() == MOVIE_SUFFIX:
        head = movie_header(p)
        root = Path(head["path"])
        n_ch = len(head["channel_names"])
        pyramids = [lazy_movie_multiscale([root / fr[c] for fr in head["files"]], mode, min_size)
                    for c in range(n_ch)]
        scale = [float(head["frame_interval"]), *head["spacing"]]
        return {"levels": pyramids, "channel_names": list(head["channel_names"]), "scale": scale,
                "header": head}
    head = apr_header(p)
    return {"levels": [lazy_multiscale(p, mode, min_size)], "channel_names": [p.stem],
            "scale": list(head["spacing"]), "header": head}
