"""Filters and segmentation of APR particles on the GPU, built on the fused tile kernel of :mod:`.convolve_tile`.

Everything stays on the device between steps; the host sends the particle values once and gets the result once:

* :func:`filter_device`: a bank of stencils in one tile-kernel pass (Gaussian, LoG, DoG: one stencil; gradient
  magnitude: one derivative stencil per axis in the same pass, combined by :func:`_magnitude` on the device).
* :func:`segment_device`: Gaussian smoothing, Otsu threshold (volume-weighted 256-bin histogram and Otsu's
  criterion on the device, as :func:`.segment.threshold`) or a fixed value, the mask, and face-connected
  components by a lock-free union-find (compare-and-swap hooks the larger root under the smaller, so every
  component's root is its first particle, as in the CPU union-find of :mod:`.segment`). Only the per-particle
  roots (and the smoothed values) come back; relabelling, size filter and the object table are host steps on
  those arrays.

All kernels are numba-cuda and run on the CPU under ``NUMBA_ENABLE_CUDASIM=1`` (tests).
"""

from __future__ import annotations

import math

import numpy as np

from . import convolve_tile as tile
from .convolve import level_stencils
from .grid import AprGrid

__all__ = ["filter_device", "otsu_device", "components_device", "segment_device"]

cuda = None  # numba.cuda as a module global (the simulator swaps it in kernels)
_K: dict = {}
_NBINS = 256


def _kernels():
    global cuda
    if _K:
        return _K
    import numba

    cuda = tile._cuda()
    lower_bound, upper_bound, _, _, _, smaller, _ = tile._helpers()
    i64 = numba.int64

    @cuda.jit
    def magnitude(bank, out):
        """``out[f, p] = sqrt(sum_s bank[f, s, p]**2)``."""
        p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        f = cuda.blockIdx.y
        if p < bank.shape[2]:
            acc = 0.0
            for s in range(bank.shape[1]):
                acc += bank[f, s, p] * bank[f, s, p]
            out[f, p] = math.sqrt(acc)

    @cuda.jit(device=True)
    def cell(p, level, p0, shapes, offsets, row_start):
        """``(z, y)`` of particle ``p`` of ``level`` (row by binary search in the level's row offsets)."""
        rs = row_start[level]
        r = upper_bound(offsets, rs, row_start[level + 1] + 1, p) - 1 - rs
        ny = shapes[level, 1]
        return r // ny, r % ny

    @cuda.jit
    def minmax(vals, out):
        p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if p < vals.shape[0]:
            cuda.atomic.min(out, 0, vals[p])
            cuda.atomic.max(out, 1, vals[p])

    @cuda.jit
    def histogram(level, lmax, p0, p1, shapes, offsets, px, row_start, image_shape, vals, rng, hist):
        """Volume-weighted histogram of ``vals`` over ``[rng[0], rng[1]]`` (``np.histogram``'s binning)."""
        p = p0 + cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if p >= p1:
            return
        z, y = cell(p, level, p0, shapes, offsets, row_start)
        size = i64(1) << (lmax - level)
        vol = 1.0
        c = (z, y, i64(px[p]))
        for a in range(3):
            lo = c[a] * size
            vol *= smaller(lo + size, image_shape[a]) - lo
        first = np.float64(rng[0])
        last = np.float64(rng[1])
        v = np.float64(vals[p])
        step = (last - first) / _NBINS
        k = int((v - first) * (_NBINS / (last - first)))
        if k >= _NBINS:
            k = _NBINS - 1
        if k > 0 and v < first + k * step:
            k -= 1
        elif k < _NBINS - 1 and v >= first + (k + 1) * step:
            k += 1
        cuda.atomic.add(hist, k, vol)

    @cuda.jit
    def otsu(hist, rng, thr):
        """Otsu's threshold of a weighted histogram (``skimage.filters.threshold_otsu(hist=...)``), one thread."""
        if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
            return
        first = np.float64(rng[0])
        step = (np.float64(rng[1]) - first) / _NBINS
        total = 0.0
        total_m = 0.0
        for k in range(_NBINS):
            total += hist[k]
            total_m += hist[k] * (first + (k + 0.5) * step)
        w1 = 0.0
        m1 = 0.0
        best = -1.0
        best_k = 0
        for k in range(_NBINS - 1):
            ck = first + (k + 0.5) * step
            w1 += hist[k]
            m1 += hist[k] * ck
            w2 = total - w1
            if w1 > 0 and w2 > 0:
                d = m1 / w1 - (total_m - m1) / w2
                var = w1 * w2 * d * d
                if var > best:
                    best = var
                    best_k = k
        thr[0] = first + (best_k + 0.5) * step

    @cuda.jit
    def above(vals, thr, mask):
        p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if p < vals.shape[0]:
            mask[p] = 1 if vals[p] > thr[0] else 0

    @cuda.jit(device=True)
    def covering(level, z, y, x, lmin, shapes, offsets, px, row_start):
        """Particle at ``level`` or coarser covering level-``level`` cell (z, y, x); -1 if finer particles cover it."""
        for d in range(level - lmin + 1):
            lv = level - d
            r = row_start[lv] + (z >> d) * shapes[lv, 1] + (y >> d)
            e = offsets[r + 1]
            i = lower_bound(px, offsets[r], e, x >> d)
            if i < e and px[i] == (x >> d):
                return i
        return -1

    @cuda.jit(device=True)
    def find(parent, i):
        while parent[i] != i:
            i = parent[i]
        return i

    @cuda.jit
    def union(level, lmin, p0, p1, shapes, offsets, px, row_start, ndim, mask, parent):
        """Join each masked particle of ``level`` with the masked particles covering its face neighbours."""
        p = p0 + cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if p >= p1 or mask[p] == 0:
            return
        z, y = cell(p, level, p0, shapes, offsets, row_start)
        x = i64(px[p])
        for k in range(6):
            if k < 2 and ndim == 2:
                continue
            z2 = z + (-1 if k == 0 else (1 if k == 1 else 0))
            y2 = y + (-1 if k == 2 else (1 if k == 3 else 0))
            x2 = x + (-1 if k == 4 else (1 if k == 5 else 0))
            if z2 < 0 or y2 < 0 or x2 < 0 or z2 >= shapes[level, 0] or y2 >= shapes[level, 1] \
                    or x2 >= shapes[level, 2]:
                continue
            q = covering(level, z2, y2, x2, lmin, shapes, offsets, px, row_start)
            if q < 0 or mask[q] == 0:
                continue
            while True:  # lock-free union: hook the larger root under the smaller one
                a = find(parent, p)
                b = find(parent, q)
                if a == b:
                    break
                if a < b:
                    a, b = b, a
                if cuda.atomic.cas(parent, a, a, b) == a:
                    break

    @cuda.jit
    def init_parent(parent):
        p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if p < parent.shape[0]:
            parent[p] = p

    @cuda.jit
    def flatten(mask, parent, roots):
        p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if p < parent.shape[0]:
            roots[p] = find(parent, p) if mask[p] != 0 else -1

    _K.update(magnitude=magnitude, minmax=minmax, histogram=histogram, otsu=otsu, above=above, union=union,
              init_parent=init_parent, flatten=flatten)
    return _K


def _threads() -> int:
    """Threads per block of the per-particle kernels (fewer under the simulator, where each is a Python thread)."""
    return 32 if tile.is_simulator() else 256


def _blocks(n: int) -> int:
    return max(1, (n + _threads() - 1) // _threads())


def filter_device(grid: AprGrid, values, stencils, *, normalize: bool, magnitude: bool = False, reflect=True):
    """Convolve with a bank of stencils in one tile-kernel pass on the GPU.

    Parameters
    ----------
    grid : AprGrid
    values : ndarray or device array, shape (n_particles,) or (frames, n_particles)
    stencils : list of ndarray
        ``(ky, kx)`` / ``(kz, ky, kx)`` convolution stencils (odd sizes, at most 7).
    normalize : bool
        Normalise each restricted stencil to sum 1 (pyapr's default; False for zero-sum stencils).
    magnitude : bool
        Return ``sqrt(sum of squares)`` over the bank (gradient magnitude) instead of the bank.

    Returns
    -------
    device array of float32, shape (frames, NS, n_particles), or (frames, n_particles) with ``magnitude``
    """
    per = [level_stencils(s, grid, normalize=normalize) for s in stencils]
    banks = [None if per[0][lv] is None else [p[lv] for p in per] for lv in range(grid.level_max + 1)]
    out = tile.convolve_bank(tile.device_grid(grid), values, banks, reflect=reflect)
    if not magnitude:
        return out
    k = _kernels()
    mag = cuda.device_array((out.shape[0], out.shape[2]), dtype=np.float32)
    k["magnitude"][(_blocks(out.shape[2]), out.shape[0]), _threads()](out, mag)
    return mag


def _level_launch(grid: AprGrid, kernel, *args):
    """Launch ``kernel(level, ..., p0, p1, ...)`` over the particles of every level."""
    for level in range(grid.level_min, grid.level_max + 1):
        p0, p1 = grid.level_range(level)
        if p1 > p0:
            kernel(level, p0, p1, *args)


def otsu_device(grid: AprGrid, dvals):
    """Volume-weighted Otsu threshold of device values ``(n_particles,)``; a device array of one float64."""
    k = _kernels()
    dg = tile.device_grid(grid)
    n = grid.n_particles
    rng = cuda.to_device(np.array([np.inf, -np.inf], np.float32))
    k["minmax"][_blocks(n), _threads()](dvals, rng)
    hist = cuda.to_device(np.zeros(_NBINS, np.float64))
    shape = cuda.to_device(np.asarray(grid.shape, np.int64))
    _level_launch(grid, lambda lv, p0, p1: k["histogram"][_blocks(p1 - p0), _threads()](
        lv, grid.level_max, p0, p1, dg.shapes, dg.offsets, dg.px, dg.row_start, shape, dvals, rng, hist))
    thr = cuda.device_array(1, np.float64)
    k["otsu"][1, 1](hist, rng, thr)
    return thr, rng


def components_device(grid: AprGrid, dmask):
    """Face-connected components of a device mask ``(n_particles,)`` uint8: per particle its root (-1: off)."""
    k = _kernels()
    dg = tile.device_grid(grid)
    n = grid.n_particles
    parent = cuda.device_array(n, np.int64)
    k["init_parent"][_blocks(n), _threads()](parent)
    _level_launch(grid, lambda lv, p0, p1: k["union"][_blocks(p1 - p0), _threads()](
        lv, grid.level_min, p0, p1, dg.shapes, dg.offsets, dg.px, dg.row_start, grid.ndim, dmask, parent))
    roots = cuda.device_array(n, np.int64)
    k["flatten"][_blocks(n), _threads()](dmask, parent, roots)
    return roots


def segment_device(grid: AprGrid, values, *, method="otsu", smooth_sigma=1.0):
    """Smooth, threshold and label on the GPU; returns host ``(roots, threshold, smoothed)``.

    ``method`` is ``"otsu"`` or a number; ``roots`` is each particle's component root (-1 for background).
    """
    from .filters import gaussian_stencil

    k = _kernels()
    dvals = tile.to_device(np.asarray(values, np.float32))
    if smooth_sigma:
        smoothed = filter_device(grid, dvals, [gaussian_stencil(smooth_sigma, None, grid.ndim)], normalize=True)
        smoothed = smoothed.reshape(grid.n_particles)
    else:
        smoothed = dvals
    if isinstance(method, str):
        thr, rng = otsu_device(grid, smoothed)
        if tile.to_host(rng)[1] <= tile.to_host(rng)[0]:
            from ..errors import InputError

            raise InputError("all particle values are equal; there is nothing to threshold")
    else:
        thr = cuda.to_device(np.array([float(method)], np.float64))
    mask = cuda.device_array(grid.n_particles, np.uint8)
    k["above"][_blocks(grid.n_particles), _threads()](smoothed, thr, mask)
    roots = components_device(grid, mask)
    return tile.to_host(roots), float(tile.to_host(thr)[0]), tile.to_host(smoothed).astype(np.float32)
