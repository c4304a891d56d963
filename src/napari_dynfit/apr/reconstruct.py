"""Pixel reconstruction of an APR (no pyapr): piecewise constant, smooth and level images of any box.

A box ``[lo, hi)`` is given in the pixel grid of the output resolution ``level_max + level_delta``
(``level_delta <= 0``; ``-k`` halves every axis ``k`` times, shape ``ceil(shape / 2**k)``), axes
``(z, y, x)``. Every particle at a level ``l`` no finer than the output level paints its cell
(``2 ** (level_out - l)`` output pixels per axis); where particles are finer, the tree node of the
output level (the mean of the particles below it, :meth:`AprGrid.tree_mean`) paints its pixel. This
is the reconstruction LibAPR defines (``APRReconstruction::reconstruct_constant`` with a patch).

Only the particles of the rows crossing the box are touched: particle values are requested per
level as one contiguous storage range (the rows ``(z, y)`` of a box are contiguous from its first
to its last row), which is what lets :mod:`napari_dynfit.apr.lazy` read files in slabs.

``smooth`` follows LibAPR's ``reconstruct_smooth``: the constant reconstruction, then along each
axis a moving mean whose half-width is ``min(floor(2 ** (level_out - l) / 2), 10)`` pixels for a
pixel of particle level ``l`` (large cells are smoothed more), computed with cumulative sums (the window is cut at the border of the box, where LibAPR mirrors a
boundary term; interiors agree).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import InputError
from .grid import AprGrid

#: LibAPR's cap on the half-width of the smoothing window (pixels).
SMOOTH_OFFSET_MAX = 10


@njit(cache=True, nogil=True)
def _paint(offsets, xs, vals, p_base, row0, ny_l, scale, lo, hi, out, level_value, use_level):
    """Paint the cells of one level (``scale`` output pixels per cell edge) that cut the box."""
    zl0, zl1 = lo[0] // scale, (hi[0] - 1) // scale + 1
    yl0, yl1 = lo[1] // scale, (hi[1] - 1) // scale + 1
    xmin = lo[2] // scale
    for zl in range(zl0, zl1):
        za = max(zl * scale, lo[0]) - lo[0]
        zb = min((zl + 1) * scale, hi[0]) - lo[0]
        for yl in range(yl0, yl1):
            ya = max(yl * scale, lo[1]) - lo[1]
            yb = min((yl + 1) * scale, hi[1]) - lo[1]
            r = row0 + zl * ny_l + yl
            a = offsets[r]
            b = offsets[r + 1]
            while a < b:  # first particle with x >= xmin
                mid = (a + b) // 2
                if xs[mid] < xmin:
                    a = mid + 1
                else:
                    b = mid
            for p in range(a, offsets[r + 1]):
                x0 = np.int64(xs[p]) * scale
                if x0 >= hi[2]:
                    break
                xa = max(x0, lo[2]) - lo[2]
                xb = min(x0 + scale, hi[2]) - lo[2]
                v = level_value if use_level else vals[p - p_base]
                for z in range(za, zb):
                    for y in range(ya, yb):
                        for x in range(xa, xb):
                            out[z, y, x] = v


@njit(cache=True, nogil=True)
def _smooth_axis(img, level, d_max, scale, offset_max):
    """Adaptive moving mean along the last axis of ``img`` (3D, float32), in place."""
    nz, ny, nx = img.shape
    off_cap = min(offset_max, nx // 2 - 1)
    if off_cap < 1:
        return
    csum = np.empty(nx + 1, dtype=np.float64)
    row = np.empty(nx, dtype=np.float64)
    for z in range(nz):
        for y in range(ny):
            csum[0] = 0.0
            for k in range(nx):
                row[k] = img[z, y, k]
                csum[k + 1] = csum[k] + row[k]
            for k in range(nx):
                off = min(int(np.floor(2.0 ** (d_max - level[z, y, k]) / scale)), off_cap)
                a = max(k - off, 0)
                b = min(k + off + 1, nx)
                img[z, y, k] = (csum[b] - csum[a]) / (b - a)


def _level_slab(grid: AprGrid, level: int, level_out: int, lo, hi):
    """``(z0, y0, z_last, y_last)``: first and last row of ``level`` crossing the box."""
    scale = 2 ** (level_out - level)
    nz_l, ny_l = (int(v) for v in grid.level_shapes[level][:2])
    zl0, zl1 = lo[0] // scale, min((hi[0] - 1) // scale + 1, nz_l)
    yl0, yl1 = lo[1] // scale, min((hi[1] - 1) // scale + 1, ny_l)
    return zl0, yl0, zl1 - 1, yl1 - 1


def box_shape_at(grid: AprGrid, level_delta: int) -> tuple[int, int, int]:
    """Pixel shape ``(nz, ny, nx)`` of the reconstruction at ``level_delta`` (``ceil(shape / 2**-delta)``)."""
    k = -int(level_delta)
    return tuple(-(-int(n) // 2 ** k) for n in grid.shape)


def reconstruct_box(grid: AprGrid, values, tree_values, lo=None, hi=None, *, level_delta: int = 0,
                    mode: str = "constant", dtype=None) -> np.ndarray:
    """Reconstruct the pixel box ``[lo, hi)`` of an APR at resolution ``level_delta``.

    Parameters
    ----------
    grid : AprGrid
        The access structure.
    values : ndarray (n_particles,) or callable
        Particle values, or ``values(p0, p1)`` returning those of storage range ``[p0, p1)``.
    tree_values : ndarray (n_tree,), callable or None
        Tree node values (needed for ``level_delta < 0`` in constant/smooth modes); a callable as for
        ``values``; None computes :meth:`AprGrid.tree_mean` when needed.
    lo, hi : sequence of 3 int, optional
        Box corners ``(z, y, x)`` in output pixels (default: the whole image).
    level_delta : int
        0 full resolution, ``-k`` every axis downsampled ``2**k`` times.
    mode : {"constant", "smooth", "level"}
        Piecewise constant values, smoothed values, or the particle level of each pixel (uint8).
    dtype : numpy dtype, optional
        Output type for constant/smooth (default: that of the values).

    Returns
    -------
    ndarray, shape ``hi - lo`` (3D; ``nz == 1`` for 2D images)
    """
    if mode not in ("constant", "smooth", "level"):
        raise InputError(f"unknown reconstruction mode {mode!r}; use one of constant, smooth, level")
    level_delta = int(level_delta)
    if level_delta > 0:
        raise InputError("level_delta must be <= 0 (upsampling is not supported)")
    level_out = max(grid.level_max + level_delta, 0)
    full = box_shape_at(grid, level_out - grid.level_max)
    lo = np.zeros(3, np.int64) if lo is None else np.asarray(lo, dtype=np.int64)
    hi = np.asarray(full, np.int64) if hi is None else np.asarray(hi, dtype=np.int64)
    if np.any(lo < 0) or np.any(hi > np.asarray(full)) or np.any(hi <= lo):
        raise InputError(f"box {tuple(lo)}..{tuple(hi)} is empty or outside the image {full}")
    get_v = values if callable(values) else (lambda a, b, v=np.asarray(values): v[a:b])
    if dtype is None:
        dtype = np.uint8 if mode == "level" else get_v(0, 0).dtype
    work_dtype = np.float32 if mode == "smooth" else (np.uint8 if mode == "level" else dtype)
    out = np.zeros(tuple(int(v) for v in hi - lo), dtype=work_dtype)
    dummy = np.zeros(0, dtype=work_dtype)
    use_level = mode == "level"

    def paint(offsets, xs, row_start, level, get, level_value):
        scale = 2 ** (level_out - level)
        zl0, yl0, zl_last, yl_last = _level_slab(grid, level, level_out, lo, hi)
        ny_l = int(grid.level_shapes[level][1])
        r_first = int(row_start[level]) + zl0 * ny_l + yl0
        r_last = int(row_start[level]) + zl_last * ny_l + yl_last
        p0, p1 = int(offsets[r_first]), int(offsets[r_last + 1])
        if p1 == p0:
            return
        vals = dummy if use_level else np.asarray(get(p0, p1))
        _paint(offsets, xs, vals, p0, int(row_start[level]), ny_l, scale, lo, hi, out, level_value, use_level)

    for level in range(grid.level_min, min(level_out, grid.level_max) + 1):
        paint(grid.offsets, grid.x, grid.level_row_start, level, get_v, level)
    if level_out < grid.level_max:
        if tree_values is None and not use_level:
            tree_values = grid.tree_mean(get_v(0, grid.n_particles))
        get_t = tree_values if callable(tree_values) else (lambda a, b, v=np.asarray(tree_values): v[a:b])
        paint(grid.tree_offsets, grid.tree_x, grid.tree_level_row_start, level_out, get_t, level_out)
    if mode != "smooth":
        return out
    levels = reconstruct_box(grid, values, tree_values, lo, hi, level_delta=level_delta, mode="level")
    for axis in (2, 1, 0):  # LibAPR: y (our x), x (our y), z
        if out.shape[axis] > 1:
            img = np.ascontiguousarray(np.moveaxis(out, axis, 2))
            _smooth_axis(img, np.ascontiguousarray(np.moveaxis(levels, axis, 2)), level_out, 2.0, SMOOTH_OFFSET_MAX)
            out = np.moveaxis(img, 2, axis)
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(dtype)
    return np.ascontiguousarray(out.astype(dtype))
