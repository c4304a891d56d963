"""APR-native convolution of particle values with 2D/3D stencils (CPU kernel, numba, parallel).

Method (Jonsson et al., "Parallel discrete convolutions on adaptive particle representations of
images", arXiv:2112.03592; same conventions as ``pyapr.filter.convolve``, which is our oracle):

* Each particle of level ``L`` is filtered on the *level-L grid*: the stencil reads, for every
  neighbour cell of that grid, the particle at level ``L`` if there is one, else the tree node at
  ``L`` (the mean of the finer particles it covers), else the coarser particle that covers the cell.
* *Restricted stencils*: a particle ``d = level_max - L`` levels below the finest level uses the
  stencil downsampled by ``2**d`` (area-weighted, size ``max(2*ceil(h / 2**d) + 1, 3)`` per axis),
  so the result approximates the stencil applied to the pixel image. As in LibAPR, level_min uses
  the stencil of level_min + 1, and every stencil is normalised to sum 1 when ``normalize=True``.
  One deliberate difference: for 2D images LibAPR counts the size-1 z axis of a stencil with an
  overlap of ``2**d``, so pyapr's *unnormalised* restricted 2D stencils are ``2**d`` times too large
  (derivatives, LoG); we use the area weights. Normalised stencils (the default) are identical.
* Reflective boundary (``a b c | b a`` mirror, no repeated edge) on each level grid, or zeros.

The CPU kernel works on *tasks* (a block of ``(z, y)`` rows of one level that hold particles) in one
parallel region with dynamic scheduling (``numba.prange``, chunk size 1), costliest levels first. A
task keeps a rolling buffer of the ``kz * ky`` level-L rows around its current row; each buffer row
is built from the row-indexed particle and tree arrays of :class:`~napari_dynfit.apr.grid.AprGrid`
(particles of ``L``, tree nodes of ``L``, then coarser particles until every cell is covered) and
only over the x range the particles need, then reused while the task moves along ``y``. The stencil
is then applied to the particles of the centre row. Unlike LibAPR's pencil method, which builds every
row of every level, rows and x ranges that no output particle needs are never built; this is where
the speed-up over pyapr comes from.

This kernel is our own code because it is the product (see ``docs/apr_filters.md``); the GPU back
end is :mod:`napari_dynfit.apr.convolve_tile`. Both take the same arguments through :func:`convolve`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..device import resolve_device
from ..errors import InputError
from .grid import AprGrid

__all__ = ["convolve", "correlate", "level_stencils", "downsample_stencil", "resolve_device"]

MAX_STENCIL = 7


# ------------------------------------------------------------------------------- stencils
def _check_stencil(stencil, grid: AprGrid) -> np.ndarray:
    s = np.asarray(stencil, dtype=np.float64)
    if s.ndim not in (2, 3):
        raise InputError(f"stencil must be 2D (ky, kx) or 3D (kz, ky, kx), got shape {s.shape}")
    if s.ndim == 2:
        s = s[None]
    if any(n % 2 == 0 for n in s.shape) or max(s.shape) > MAX_STENCIL:
        raise InputError(f"stencil sizes must be odd and at most {MAX_STENCIL}, got {s.shape}; "
                         "crop or pad the stencil to an odd size")
    if grid.ndim == 2 and s.shape[0] > 1:
        raise InputError(f"a 3D stencil {s.shape} cannot filter a 2D APR; pass a 2D (ky, kx) stencil")
    if not np.all(np.isfinite(s)):
        raise InputError("stencil contains NaN or infinite values; fix the stencil")
    return s


def _overlap(n: int, step: int) -> np.ndarray:
    """``(n_ds, n)`` overlap (in fine cells) of input taps with downsampled taps along one axis."""
    if n == 1:
        return np.ones((1, 1))
    n_ds = max(2 * (((n - 1) // 2 + step - 1) // step) + 1, 3)
    off = (n_ds // 2) * step - n // 2
    d = np.arange(n_ds)[:, None] * step
    i = off + np.arange(n)[None, :]
    return np.maximum(np.minimum(d + step, i + step) - np.maximum(d, i), 0).astype(np.float64)


def downsample_stencil(stencil: np.ndarray, level_delta: int, normalize: bool) -> np.ndarray:
    """Restrict a 3D stencil to a grid ``2**level_delta`` times coarser (LibAPR's area weighting).

    Parameters
    ----------
    stencil : ndarray, shape (kz, ky, kx)
    level_delta : int
        Number of levels below the finest level (0 returns the stencil, normalised if asked).
    normalize : bool
        Scale the result to sum 1.
    """
    s = np.asarray(stencil, dtype=np.float64)
    if level_delta > 0:
        step = 2 ** level_delta
        ndim = sum(n > 1 for n in s.shape)
        mz, my, mx = (_overlap(n, step) for n in s.shape)
        s = np.einsum("ai,bj,ck,ijk->abc", mz, my, mx, s) / step ** ndim
    if normalize:
        total = s.sum()
        if abs(total) < 1e-12 * max(np.abs(s).sum(), 1e-300):
            raise InputError("normalize=True needs a stencil whose sum is not zero (LoG, gradients...); "
                             "pass normalize=False")
        s = s / total
    return s


def level_stencils(stencil, grid: AprGrid, *, restrict: bool = True, normalize: bool = True,
                   flip: bool = True) -> list[np.ndarray]:
    """The float32 stencil used at each level, as ``pyapr.filter.convolve`` builds them.

    Returns
    -------
    list of ndarray
        Entry ``L`` (for ``L`` in ``level_min .. level_max``; lower entries are None) is the
        ``(kz, ky, kx)`` correlation stencil of level ``L`` (flipped first when ``flip``: convolution).
    """
    s = _check_stencil(stencil, grid)
    if flip:
        s = s[::-1, ::-1, ::-1]
    n = max(grid.level_max - grid.level_min, 1) if restrict else 1
    bank = [downsample_stencil(s, d, normalize).astype(np.float32) for d in range(n)]
    out: list = [None] * (grid.level_max + 1)
    for level in range(grid.level_min, grid.level_max + 1):
        out[level] = np.ascontiguousarray(bank[min(n - 1, grid.level_max - level)])
    return out


# ------------------------------------------------------------------------------- kernel
@numba.njit(cache=True, inline="always")
def _mirror(i, n, reflect):
    if 0 <= i < n:
        return i
    if not reflect:
        return -1
    if i < 0:
        i = -i
    if i >= n:
        i = 2 * (n - 1) - i
    return min(max(i, 0), n - 1)


@numba.njit(cache=True, inline="always")
def _lower_bound(a, lo, hi, v):
    """First index in ``a[lo:hi]`` (sorted) with ``a[i] >= v``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, inline="always")
def _copy_row(buf, base, xs, vs, lo, hi, xa, xb):
    """``buf[base + xs[i]] = vs[i]`` for the entries of the sorted row ``xs[lo:hi]`` in ``[xa, xb)``; their count."""
    i = _lower_bound(xs, lo, hi, xa)
    n = 0
    while i < hi and xs[i] < xb:
        buf[base + xs[i]] = vs[i]
        n += 1
        i += 1
    return n


@numba.njit(cache=True, fastmath=True, inline="always")
def _fill_range(buf, o, hx, xa, xb, level, lmin, lmax, zs, ys, shapes, offsets, px, vals, row_start,
                t_offsets, tx, tvals, t_row_start):
    """Fill ``buf[o + hx + x]`` for ``xa <= x < xb`` with the level-``level`` view of row ``(zs, ys)``.

    The view holds the particle of ``level``, else the tree node (mean of finer particles), else the
    covering coarser particle; ``zs < 0`` or ``ys < 0`` (outside, zero padding) gives zeros. The cells
    form a partition, so the search over coarser levels stops once every cell of the range is written.
    """
    if xb <= xa:
        return
    if zs < 0 or ys < 0:
        for x in range(xa, xb):
            buf[o + hx + x] = 0.0
        return
    need = xb - xa
    ny = shapes[level, 1]
    r = row_start[level] + zs * ny + ys
    done = _copy_row(buf, o + hx, px, vals, offsets[r], offsets[r + 1], xa, xb)
    if level < lmax and done < need:
        r = t_row_start[level] + zs * ny + ys
        done += _copy_row(buf, o + hx, tx, tvals, t_offsets[r], t_offsets[r + 1], xa, xb)
    d = 1
    while done < need and d <= level - lmin:
        lv = level - d
        r = row_start[lv] + (zs >> d) * shapes[lv, 1] + (ys >> d)
        step = 1 << d
        i = _lower_bound(px, offsets[r], offsets[r + 1], xa >> d)
        while i < offsets[r + 1]:
            x0 = px[i] << d
            if x0 >= xb:
                break
            x1 = min(x0 + step, xb)
            v = vals[i]
            for xx in range(max(x0, xa), x1):
                buf[o + hx + xx] = v
            done += x1 - max(x0, xa)
            i += 1
        d += 1


@numba.njit(cache=True)
def _pad_x(buf, o, hx, nx, reflect, left, right):
    """Write the x padding of one buffer row (mirror or zeros) on the requested sides."""
    for k in range(hx):
        if left:
            lo = _mirror(-1 - k, nx, reflect)
            buf[o + hx - 1 - k] = buf[o + hx + lo] if lo >= 0 else 0.0
        if right:
            hi = _mirror(nx + k, nx, reflect)
            buf[o + hx + nx + k] = buf[o + hx + hi] if hi >= 0 else 0.0


@numba.njit(cache=True, fastmath=True, inline="always")
def _row_dot(st, w, buf, o, kx):
    """``sum(st[w:w+kx] * buf[o:o+kx])``, unrolled for the common widths."""
    if kx == 3:
        return st[w] * buf[o] + st[w + 1] * buf[o + 1] + st[w + 2] * buf[o + 2]
    if kx == 5:
        return (st[w] * buf[o] + st[w + 1] * buf[o + 1] + st[w + 2] * buf[o + 2] + st[w + 3] * buf[o + 3]
                + st[w + 4] * buf[o + 4])
    if kx == 7:
        return (st[w] * buf[o] + st[w + 1] * buf[o + 1] + st[w + 2] * buf[o + 2] + st[w + 3] * buf[o + 3]
                + st[w + 4] * buf[o + 4] + st[w + 5] * buf[o + 5] + st[w + 6] * buf[o + 6])
    acc = np.float32(0.0)
    for dx in range(kx):
        acc += st[w + dx] * buf[o + dx]
    return acc


@numba.njit(parallel=True, cache=True, fastmath=True)
def _convolve_tasks(tasks, lmin, lmax, shapes, offsets, px, vals, row_start, t_offsets, tx, tvals,
                    t_row_start, st_flat, st_off, st_shape, reflect, out):
    """Convolve the particles of every task ``(level, z, y0, y1)``: rows ``y0..y1-1`` of slice ``z``."""
    for t in numba.prange(len(tasks)):
        level, z, y0, y1 = tasks[t, 0], tasks[t, 1], tasks[t, 2], tasks[t, 3]
        nz, ny, nx = shapes[level, 0], shapes[level, 1], shapes[level, 2]
        kz, ky, kx = st_shape[level, 0], st_shape[level, 1], st_shape[level, 2]
        hz, hy, hx = kz // 2, ky // 2, kx // 2
        width = nx + 2 * hx
        nrow = kz * ky
        stf = st_flat[st_off[level]:st_off[level] + nrow * kx]
        r0 = row_start[level] + z * ny
        # rolling buffer of kz x ky rows of the level grid: slot (dz, (y + hy) % ky) holds row y of
        # slice z - hz + dz, filled on [lo, hi) only (the x range the particles need so far)
        buf = np.empty(nrow * width, dtype=np.float32)
        held = np.full(nrow, -(1 << 30), dtype=np.int64)
        lo = np.zeros(nrow, dtype=np.int64)
        hi = np.zeros(nrow, dtype=np.int64)
        rowoff = np.empty(nrow, dtype=np.int64)
        for y in range(y0, y1):
            a = offsets[r0 + y]
            b = offsets[r0 + y + 1]
            if a == b:
                continue
            xa = max(px[a] - hx, 0)
            xb = min(px[b - 1] + hx + 1, nx)
            for dy in range(ky):
                yy = y - hy + dy
                slot = (yy + hy) % ky
                ys = _mirror(yy, ny, reflect)
                for dz in range(kz):
                    q = dz * ky + slot
                    o = q * width
                    zs = _mirror(z - hz + dz, nz, reflect)
                    if held[q] != yy:
                        held[q] = yy
                        lo[q] = xa
                        hi[q] = xa
                    if xa < lo[q]:
                        _fill_range(buf, o, hx, xa, lo[q], level, lmin, lmax, zs, ys, shapes, offsets, px,
                                    vals, row_start, t_offsets, tx, tvals, t_row_start)
                        lo[q] = xa
                    if xb > hi[q]:
                        s0 = max(hi[q], xa)
                        _fill_range(buf, o, hx, s0, xb, level, lmin, lmax, zs, ys, shapes, offsets, px,
                                    vals, row_start, t_offsets, tx, tvals, t_row_start)
                        if s0 > hi[q]:  # gap between the old and the new range
                            _fill_range(buf, o, hx, hi[q], s0, level, lmin, lmax, zs, ys, shapes, offsets,
                                        px, vals, row_start, t_offsets, tx, tvals, t_row_start)
                        hi[q] = xb
                    _pad_x(buf, o, hx, nx, reflect, xa == 0, xb == nx)
                    rowoff[dz * ky + dy] = o
            for p in range(a, b):
                xp = px[p]
                acc = np.float32(0.0)
                for q in range(nrow):
                    acc += _row_dot(stf, q * kx, buf, rowoff[q] + xp, kx)
                out[p] = acc


def _as_kernel_arrays(grid: AprGrid):
    return dict(shapes=grid.level_shapes, offsets=grid.offsets, px=grid.x.astype(np.int32),
                row_start=grid.level_row_start, t_offsets=grid.tree_offsets,
                tx=grid.tree_x.astype(np.int32), t_row_start=grid.tree_level_row_start)


def _convolve_cpu(grid: AprGrid, values: np.ndarray, stencils: list, reflect: bool,
                  tree_values: np.ndarray | None = None) -> np.ndarray:
    vals = np.ascontiguousarray(values, dtype=np.float32)
    tvals = grid.tree_mean(vals) if tree_values is None else np.asarray(tree_values, dtype=np.float32)
    arr = _as_kernel_arrays(grid)
    out = np.empty(grid.n_particles, dtype=np.float32)
    shapes = np.zeros((grid.level_max + 1, 3), dtype=np.int64)
    st_off = np.zeros(grid.level_max + 2, dtype=np.int64)
    for level in range(grid.level_min, grid.level_max + 1):
        shapes[level] = stencils[level].shape
        st_off[level + 1] = st_off[level] + stencils[level].size
    st_off[: grid.level_min + 1] = 0
    flat = np.concatenate([stencils[lv].ravel() for lv in range(grid.level_min, grid.level_max + 1)])
    tasks = _tasks(grid, numba.get_num_threads())
    with numba.parallel_chunksize(1):  # dynamic scheduling: tasks differ in cost, machines are shared
        _convolve_tasks(tasks, grid.level_min, grid.level_max, arr["shapes"], arr["offsets"], arr["px"], vals,
                        arr["row_start"], arr["t_offsets"], arr["tx"], tvals, arr["t_row_start"],
                        flat.astype(np.float32), st_off, shapes, reflect, out)
    return out


def _tasks(grid: AprGrid, threads: int) -> np.ndarray:
    """``(n, 4)`` int64 tasks ``(level, z, y0, y1)`` holding particles, costliest levels first."""
    out = []
    for level in range(grid.level_max, grid.level_min - 1, -1):
        nz, ny, _ = (int(v) for v in grid.level_shapes[level])
        n_chunks = min(ny, max(1, math.ceil(16 * threads / nz)))
        ychunk = max(1, math.ceil(ny / n_chunks))
        r0 = grid.level_row_start[level]
        ends = grid.offsets[r0: r0 + nz * ny + 1]
        y0 = np.arange(0, ny, ychunk)
        y1 = np.minimum(y0 + ychunk, ny)
        z = np.repeat(np.arange(nz), len(y0))
        a = ends[z * ny + np.tile(y0, nz)]
        b = ends[z * ny + np.tile(y1, nz)]
        keep = b > a
        out.append(np.stack([np.full(keep.sum(), level), z[keep], np.tile(y0, nz)[keep], np.tile(y1, nz)[keep]], 1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 4), np.int64)


# ------------------------------------------------------------------------------- public API
def correlate(grid: AprGrid, values, stencil, *, device: str = "auto", restrict: bool = True,
              normalize: bool = True, reflect: bool = True, tree_values=None) -> np.ndarray:
    """Cross-correlate particle values with a stencil (:func:`convolve` without flipping the stencil)."""
    return _apply(grid, values, stencil, device, restrict, normalize, reflect, tree_values, flip=False)


def convolve(grid: AprGrid, values, stencil, *, device: str = "auto", restrict: bool = True,
             normalize: bool = True, reflect: bool = True, tree_values=None) -> np.ndarray:
    """Convolve APR particle values with a 2D or 3D stencil, natively on the particles.

    Parameters
    ----------
    grid : AprGrid
        Access structure of the APR.
    values : ndarray, shape (n_particles,)
        Particle values (any real dtype; computed in float32).
    stencil : ndarray, shape (ky, kx) or (kz, ky, kx)
        Odd-sized stencil (at most 7 per axis) in the image's ``(z, y, x)`` axis order.
    device : {"cpu", "cuda", "auto"}
        ``"cpu"``: numba kernel; ``"cuda"``: the fused tile kernel of :mod:`.convolve_tile`;
        ``"auto"``: CUDA when a GPU is visible.
    restrict : bool
        Use restricted (downsampled) stencils on coarser levels (pyapr's ``restrict_stencil``).
    normalize : bool
        Normalise each level's stencil to sum 1 (pyapr's default; pass False for zero-sum stencils).
    reflect : bool
        Reflective boundary (default) or zero padding.
    tree_values : ndarray, shape (n_tree,), optional
        Precomputed :meth:`AprGrid.tree_mean` of ``values``.

    Returns
    -------
    ndarray of float32, shape (n_particles,)
        Filtered particle values (equals ``pyapr.filter.convolve`` with the same options).
    """
    return _apply(grid, values, stencil, device, restrict, normalize, reflect, tree_values, flip=True)


def _apply(grid, values, stencil, device, restrict, normalize, reflect, tree_values, flip):
    if not isinstance(grid, AprGrid):
        raise InputError(f"grid must be an AprGrid, got {type(grid).__name__}; build it with AprGrid.from_file")
    values = grid.check_values(values)
    stencils = level_stencils(stencil, grid, restrict=restrict, normalize=normalize, flip=flip)
    from .convolve_tile import use_device

    if use_device(device):  # the fused tile kernel (numba-cuda); one-line error without a GPU
        from .convolve_tile import convolve_levels

        return convolve_levels(grid, values, stencils, reflect=reflect, tree_values=tree_values)
    return _convolve_cpu(grid, values, stencils, reflect, tree_values)
