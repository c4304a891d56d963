"""Our own APR construction (pixel image -> particles), numba/numpy, no pyapr.

The steps and their definitions follow the APR paper (Cheeseman, Günther, Gonciarz, Susik & Sbalzarini,
"Adaptive particle representation of fluorescence microscopy images", Nat. Commun. 9, 5160, 2018) as
implemented by LibAPR (the library inside pyapr 1.0.7, ``APRConverter<float>``, which pyapr's
``get_apr`` uses for every input type). Axes are ours, ``(z, y, x)``; LibAPR calls them ``(z, x, y)``.

1. **Smoothing** (``lambda > 0``): a smoothing cubic B-spline fit along each axis longer than 2 pixels,
   by the recursive (causal + anti-causal) filter of Unser et al. with the truncated boundary sums of
   LibAPR (:func:`_bspline_line`).
2. **Gradient magnitude**: central differences of the B-spline coefficients (one-sided halves at the
   border, step = pixel spacing), then the maximum over 2x2(x2) blocks: the gradient lives on the grid of
   level ``level_max - 1``.
3. **Local intensity scale** ``sigma``: the B-spline coefficients averaged over 2x2(x2) blocks and
   converted back to intensities (the B-spline kernel ``[1, 4, 1] / 6``), then
   ``sigma = c * mean_w2(|I - mean_w1(I)|)`` with box means of half-widths ``w1, w2`` (1 and 3 for the
   default PSF of 2 pixels) on a reflect-padded image, and ``c`` LibAPR's calibration constant.
4. **Parameters**: with ``auto_parameters`` the gradient threshold and ``sigma_th`` are Li's minimum
   cross-entropy thresholds of the gradient and of ``sigma`` over the pixels above the intensity
   threshold. Then the gradient is zeroed below ``grad_th`` and where the intensity is at most
   ``Ip_th``, and ``sigma`` below ``sigma_th`` is raised to ``sigma_th``.
5. **Resolution function -> local particle cell set**: level
   ``L = floor(log2(|grad| / sigma * 2**level_max * min(spacing) / E))`` per cell of level ``level_max - 1``,
   its maximum over blocks on every coarser level; a cell is a seed of level ``l`` where ``L == l``
   (``>=`` at the finest, ``<=`` at the coarsest level).
6. **Pulling scheme** (paper, Methods): from the finest level down, ascendants of seeds are marked, their
   neighbours propagate, fillers complete the children of those, and boundary cells surround seeds,
   giving the optimal valid particle cell set. With LibAPR's neighbourhood optimisation a seed cell is
   represented by its children one level finer.
7. **Sampling**: a particle's value is the mean of the pixels of its cell, taken from a pyramid of 2x2(x2)
   block means (border pixels repeated; truncated to the integer type at every level, as LibAPR does).

Levels are LibAPR's: ``level_min = 1``, ``level_max = max(1, ceil(log2(max(shape))))``, so the files are
pyapr's and the structure is interchangeable (:mod:`napari_dynfit.apr.h5`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .grid import AprGrid

# pulling-scheme cell states (LibAPR's values)
EMPTY, SEED, BOUNDARY, FILLER, UPSAMPLED_SEED = 0, 1, 2, 3, 4
ASCENDANT, PROPAGATE, ASCENDANT_NEIGHBOUR = 8, 15, 16

#: LibAPR's calibration of the local intensity scale (index: PSF size in pixels - 1), by active dimensions.
_LIS_RESCALE = {3: (12.8214, 26.1256, 40.2795, 23.3692, 36.2061, 27.0385),
                2: (13.2421, 28.7069, 52.0385, 24.4272, 34.9565, 21.1891),
                1: (13.9040, 31.2843, 57.4037, 30.3767, 45.9930, 29.0890)}
_WIN_1 = (1, 1, 1, 2, 2, 3)
_WIN_2 = (2, 3, 4, 4, 5, 6)


def apr_levels(shape) -> tuple[int, int]:
    """LibAPR's ``(level_min, level_max)`` for a pixel shape: ``(1, max(1, ceil(log2(max(shape)))))``."""
    return 1, max(1, int(math.ceil(math.log2(max(int(s) for s in shape)))))


# ----------------------------------------------------------------------------------------------
# 1. smoothing B-spline


def _bspline_coefficients(lam: float, n: int, tol: float = 1e-4):
    """Filter constants and LibAPR's boundary vectors for a line of ``n`` samples."""
    xi = 1 - 96 * lam + 24 * lam * math.sqrt(3 + 144 * lam)
    rho = (24 * lam - 1 - math.sqrt(xi)) / (24 * lam) * math.sqrt((1 / xi) * (48 * lam + 24 * lam * math.sqrt(3 + 144 * lam)))
    omg = math.atan(math.sqrt((1 / xi) * (144 * lam - 1)))
    c0 = (1 + rho ** 2) / (1 - rho ** 2) * (1 - 2 * rho * math.cos(omg) + rho ** 2) / (1 + 2 * rho * math.cos(omg) + rho ** 2)
    gamma = (1 - rho ** 2) / (1 + rho ** 2) / math.tan(omg)
    b1, b2 = 2 * rho * math.cos(omg), -rho ** 2
    k0 = int(math.ceil(abs(math.log(tol) / math.log(rho))))
    min_len = min(k0, n)
    norm = (1 - 2.0 * rho * math.cos(omg) + rho ** 2) ** 2
    k = np.arange(k0 + 3, dtype=np.float64)
    f = rho ** k * np.sin((k + 1) * omg) / math.sin(omg)
    b = c0 * rho ** k * (np.cos(omg * k) + gamma * np.sin(omg * k)) / norm
    bc1 = np.zeros(k0)
    bc1[1] = f[0]
    bc1 += f[1:k0 + 1]
    bc2 = f[:k0].copy()
    bc3 = np.zeros(k0)
    bc3[0] = b[1]
    bc3[1:] += b[:k0 - 1] + b[2:k0 + 1]
    bc4 = np.zeros(k0)
    bc4[0] = b[0]
    bc4[1:] += 2 * b[1:k0]
    for v in (bc1, bc2, bc3, bc4):
        v[min_len - 1] += v[min_len:].sum()
    bcs = np.stack([bc1[:min_len], bc2[:min_len], bc3[:min_len], bc4[:min_len]]).astype(np.float32)
    return np.float32(b1), np.float32(b2), np.float32(norm), bcs


@njit(cache=True, nogil=True)
def _bspline_2d(f, b1, b2, norm, bcs):
    """Smoothing B-spline along axis 0 of a 2D float32 array ``(n, m)``, vectorised over axis 1, in place."""
    n, m = f.shape
    nb = bcs.shape[1]
    t1 = np.zeros(m, np.float32)
    t2 = np.zeros(m, np.float32)
    t3 = np.zeros(m, np.float32)
    t4 = np.zeros(m, np.float32)
    for k in range(nb):
        for x in range(m):
            t1[x] += bcs[0, k] * f[k, x]
            t2[x] += bcs[1, k] * f[k, x]
            t3[x] += bcs[2, k] * f[n - 1 - k, x]
            t4[x] += bcs[3, k] * f[n - 1 - k, x]
    for x in range(m):
        f[0, x] = t2[x]
        f[1, x] = t1[x]
    for i in range(2, n):
        for x in range(m):
            t = t1[x] * b1 + t2[x] * b2 + f[i, x]
            f[i, x] = t
            t2[x] = t1[x]
            t1[x] = t
    for x in range(m):
        f[n - 2, x] = t3[x] * norm
        f[n - 1, x] = t4[x] * norm
        t2[x] = f[n - 1, x] / norm
        t1[x] = f[n - 2, x] / norm
    for i in range(n - 3, -1, -1):
        for x in range(m):
            t = t1[x] * b1 + t2[x] * b2 + f[i, x]
            f[i, x] = t * norm
            t2[x] = t1[x]
            t1[x] = t


@njit(cache=True, parallel=True, nogil=True)
def _bspline_axis1(img, b1, b2, norm, bcs):
    """Smoothing B-spline along axis 1 of a 3D float32 array, vectorised over axis 2, in place."""
    for z in prange(img.shape[0]):
        _bspline_2d(img[z], b1, b2, norm, bcs)


@njit(cache=True, parallel=True, nogil=True)
def _bspline_axis2(img, b1, b2, norm, bcs):
    """Smoothing B-spline along axis 2 (rows), 32 rows at a time through a transposed tile, in place."""
    nz, ny, nx = img.shape
    block = 32
    nblocks = (ny + block - 1) // block
    for job in prange(nz * nblocks):
        z = job // nblocks
        r0 = (job % nblocks) * block
        r1 = min(r0 + block, ny)
        buf = np.empty((nx, r1 - r0), np.float32)
        for r in range(r0, r1):
            for x in range(nx):
                buf[x, r - r0] = img[z, r, x]
        _bspline_2d(buf, b1, b2, norm, bcs)
        for r in range(r0, r1):
            for x in range(nx):
                img[z, r, x] = buf[x, r - r0]


def _on_axis(arr: np.ndarray, axis: int, kernel) -> None:
    """Run an in-place ``kernel`` written for axis 1 of a C-contiguous 3D array along ``axis`` of ``arr``."""
    nz, ny, nx = arr.shape
    if axis == 1:
        kernel(arr)
    elif axis == 0:
        kernel(arr.reshape(1, nz, ny * nx))
    else:  # a transposed copy keeps the recursion vectorised over many lines at once
        t = np.ascontiguousarray(arr.transpose(0, 2, 1))
        kernel(t)
        arr[...] = t.transpose(0, 2, 1)


@njit(cache=True, parallel=True, nogil=True)
def _box_mean_axis1(a, off):
    """Mean over ``[k - off, k + off]`` (cut at the ends) along axis 1 of a 3D float32 array, in place."""
    nz, n, m = a.shape
    for z in prange(nz):
        c = np.zeros((n + 1, m), np.float64)
        for k in range(n):
            for x in range(m):
                c[k + 1, x] = c[k, x] + a[z, k, x]
        for k in range(n):
            lo = max(k - off, 0)
            hi = min(k + off + 1, n)
            inv = 1.0 / (hi - lo)
            for x in range(m):
                a[z, k, x] = (c[hi, x] - c[lo, x]) * inv


def smooth_bspline(img: np.ndarray, lam: float) -> np.ndarray:
    """B-spline coefficients of ``img`` (3D float32) with smoothing ``lam`` along every axis longer than 2."""
    out = np.array(img, dtype=np.float32, order="C", copy=True)
    for axis in (2, 1, 0):  # LibAPR: y, x, z = our x, y, z
        n = out.shape[axis]
        if n > 2:
            b1, b2, norm, bcs = _bspline_coefficients(lam, n)
            if axis == 2:
                _bspline_axis2(out, b1, b2, norm, bcs)
            else:
                _on_axis(out, axis, lambda a: _bspline_axis1(a, b1, b2, norm, bcs))
    return out


def inverse_bspline(img: np.ndarray, axes) -> np.ndarray:
    """Intensities from cubic B-spline coefficients (kernel ``[1, 4, 1] / 6``, mirrored border) along ``axes``."""
    out = img
    for axis in axes:
        if out.shape[axis] < 2:
            continue
        a = np.moveaxis(out, axis, -1)
        res = np.empty_like(a)
        res[..., 1:-1] = (a[..., :-2] + a[..., 2:]) * np.float32(1 / 6) + a[..., 1:-1] * np.float32(4 / 6)
        res[..., 0] = np.float32(4 / 6) * a[..., 0] + np.float32(2 / 6) * a[..., 1]
        res[..., -1] = np.float32(2 / 6) * a[..., -2] + np.float32(4 / 6) * a[..., -1]
        out = np.moveaxis(res, -1, axis)
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------------------------
# 2.-3. gradient, block reductions, local intensity scale


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _gradient_ds(f, hz, hy, hx, out):
    nz, ny, nx = f.shape
    mz = out.shape[0]
    iz, iy, ix = np.float32(0.5) / hz, np.float32(0.5) / hy, np.float32(0.5) / hx
    for zd in prange(mz):
        g = np.empty(nx + 1, np.float32)
        for z in range(2 * zd, min(2 * zd + 2, nz)):
            fz0, fz1 = f[max(z - 1, 0)], f[min(z + 1, nz - 1)]
            for y in range(ny):
                fc, fy0, fy1 = f[z, y], f[z, max(y - 1, 0)], f[z, min(y + 1, ny - 1)]
                a, b = fz0[y], fz1[y]
                for x in range(nx):
                    gz = (b[x] - a[x]) * iz
                    gy = (fy1[x] - fy0[x]) * iy
                    gx = (fc[min(x + 1, nx - 1)] - fc[max(x - 1, 0)]) * ix
                    g[x] = np.sqrt(gz * gz + gy * gy + gx * gx)
                g[nx] = g[nx - 1]  # odd widths: the last pixel counts twice (LibAPR)
                row = out[zd, y // 2]
                for xd in range(row.shape[0]):
                    v = max(g[2 * xd], g[2 * xd + 1])
                    if v > row[xd]:
                        row[xd] = v


def gradient_magnitude_ds(img: np.ndarray, spacing) -> np.ndarray:
    """``|grad img|`` by central differences (border: half one-sided), maximum over 2x2x2 blocks; float32."""
    out = np.zeros([-(-n // 2) for n in img.shape], dtype=np.float32)
    hz, hy, hx = (np.float32(h) for h in spacing)
    _gradient_ds(np.ascontiguousarray(img, dtype=np.float32), hz, hy, hx, out)
    return out


@njit(cache=True, parallel=True, nogil=True)
def _mean_ds(a, out, truncate):
    """2x2x2 block mean with the last pixel repeated at odd borders (LibAPR ``downsample``), float32 sums."""
    nz, ny, nx = a.shape
    mz, my, mx = out.shape
    for zd in prange(mz):
        za, zb = 2 * zd, min(2 * zd + 1, nz - 1)
        for yd in range(my):
            ya, yb = 2 * yd, min(2 * yd + 1, ny - 1)
            for xd in range(mx):
                xa, xb = 2 * xd, min(2 * xd + 1, nx - 1)
                s = (np.float32(a[za, ya, xa]) + np.float32(a[za, ya, xb]) + np.float32(a[za, yb, xa])
                     + np.float32(a[za, yb, xb]) + np.float32(a[zb, ya, xa]) + np.float32(a[zb, ya, xb])
                     + np.float32(a[zb, yb, xa]) + np.float32(a[zb, yb, xb]))
                v = s / np.float32(8.0)
                if truncate:
                    out[zd, yd, xd] = np.floor(v)
                else:
                    out[zd, yd, xd] = v


def mean_ds(a: np.ndarray) -> np.ndarray:
    """2x2x2 block mean (odd borders repeat the last pixel); integer types truncated as LibAPR stores them."""
    out = np.empty([-(-n // 2) for n in a.shape], dtype=a.dtype)
    _mean_ds(np.ascontiguousarray(a), out, a.dtype.kind in "ui")
    return out


def local_intensity_scale(img_ds: np.ndarray, psf: float, spacing0: float) -> np.ndarray:
    """LibAPR's local intensity scale of the down-sampled intensity image ``img_ds`` (3D float32)."""
    psf_ind = min(max(int(round(psf / spacing0)) - 1, 0), 5)
    w1, w2 = _WIN_1[psf_ind], _WIN_2[psf_ind]
    active = [n > max(w1, w2) for n in img_ds.shape]
    n_active = sum(active)
    if n_active == 0:
        return np.full(img_ds.shape, np.float32(img_ds.mean() - img_ds.min()), dtype=np.float32)
    pads = [(min(w2, n - 1), min(w2, n - 1)) if act else (0, 0) for n, act in zip(img_ds.shape, active)]
    padded = np.pad(img_ds, pads, mode="reflect").astype(np.float32)
    mean = padded.copy()
    for axis in (2, 1, 0):
        if active[axis]:
            _on_axis(mean, axis, lambda a: _box_mean_axis1(a, w1))
    var = np.abs(padded - mean)
    for axis in (2, 1, 0):
        if active[axis]:
            _on_axis(var, axis, lambda a: _box_mean_axis1(a, w2))
    var *= np.float32(_LIS_RESCALE[n_active][psf_ind])
    inner = tuple(slice(p[0], p[0] + n) for p, n in zip(pads, img_ds.shape))
    return np.ascontiguousarray(var[inner])


@njit(cache=True, nogil=True)
def _li_iterate(v, t_next, tol):
    t_curr = -2.0 * tol
    for _ in range(1000):
        if abs(t_next - t_curr) <= tol:
            break
        t_curr = t_next
        sf = 0.0
        sb = 0.0
        nf = 0
        for x in v:
            if x > t_curr:
                sf += x
                nf += 1
            else:
                sb += x
        mean_f, mean_b = sf / nf, sb / (len(v) - nf)
        if mean_b == 0:
            return t_curr
        t_next = (mean_f - mean_b) / (np.log(mean_f) - np.log(mean_b))
    return t_next


def threshold_li(values: np.ndarray) -> float:
    """Li's minimum cross-entropy threshold, iterated as LibAPR does (float tolerance)."""
    v = np.ascontiguousarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return 0.0
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return lo
    tol = min(0.01, (hi - lo) * 1e-4)
    return float(_li_iterate(v, float(v.mean()), tol))


# ----------------------------------------------------------------------------------------------
# 5.-6. local particle cell set and pulling scheme


@njit(cache=True, nogil=True)
def _neighbour_pass(cur, mode):
    """mode 0: ASCENDANT marks neighbours (EMPTY -> ASCENDANT_NEIGHBOUR, SEED -> PROPAGATE);
    mode 1: SEED/PROPAGATE mark EMPTY neighbours BOUNDARY."""
    nz, ny, nx = cur.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                s = cur[z, y, x]
                if mode == 0:
                    if s != ASCENDANT:
                        continue
                elif not (s == SEED or s == PROPAGATE):
                    continue
                for zz in range(max(z - 1, 0), min(z + 2, nz)):
                    for yy in range(max(y - 1, 0), min(y + 2, ny)):
                        for xx in range(max(x - 1, 0), min(x + 2, nx)):
                            t = cur[zz, yy, xx]
                            if mode == 0:
                                if t == EMPTY:
                                    cur[zz, yy, xx] = ASCENDANT_NEIGHBOUR
                                elif t == SEED:
                                    cur[zz, yy, xx] = PROPAGATE
                            elif t == EMPTY:
                                cur[zz, yy, xx] = BOUNDARY


@njit(cache=True, nogil=True)
def _fill_children(cur, finer):
    """Children (one level finer) of ASCENDANT_NEIGHBOUR / PROPAGATE cells: EMPTY -> FILLER."""
    nz, ny, nx = cur.shape
    fz, fy, fx = finer.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                s = cur[z, y, x]
                if s == ASCENDANT_NEIGHBOUR or s == PROPAGATE:
                    for zz in range(2 * z, min(2 * z + 2, fz)):
                        for yy in range(2 * y, min(2 * y + 2, fy)):
                            for xx in range(2 * x, min(2 * x + 2, fx)):
                                if finer[zz, yy, xx] == EMPTY:
                                    finer[zz, yy, xx] = FILLER


@njit(cache=True, nogil=True)
def _max_ds(a, out):
    """``out`` = max(``out``, maximum of ``a`` over 2x2x2 blocks)."""
    nz, ny, nx = a.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if a[z, y, x] > out[z // 2, y // 2, x // 2]:
                    out[z // 2, y // 2, x // 2] = a[z, y, x]


@njit(cache=True, nogil=True)
def _seeds(level_map, level, side, out):
    """SEED where the resolution function asks for ``level`` (``side`` 1: at least, -1: at most, 0: exactly)."""
    flat = level_map.ravel()
    o = out.ravel()
    for i in range(flat.size):
        v = flat[i]
        hit = v >= level if side == 1 else (v <= level if side == -1 else v == level)
        o[i] = SEED if hit else EMPTY


def pulling_scheme(level_map: np.ndarray, level_min: int, level_max: int) -> list:
    """Cell states per level ``level_min .. level_max - 1`` (list index = level; others None).

    ``level_map`` is the resolution function on the grid of level ``level_max - 1`` (int).
    """
    top = level_max - 1
    tree = [None] * (top + 1)
    cur_map = np.ascontiguousarray(level_map)
    for level in range(top, level_min - 1, -1):
        if level != top:
            coarser = np.full([-(-n // 2) for n in cur_map.shape], np.iinfo(cur_map.dtype).min, cur_map.dtype)
            _max_ds(cur_map, coarser)
            cur_map = coarser
        st = np.empty(cur_map.shape, np.uint8)
        _seeds(cur_map, level, 1 if level == top else (-1 if level == level_min else 0), st)
        tree[level] = st
    for level in range(top, level_min - 1, -1):
        cur = tree[level]
        if level != top:
            _neighbour_pass(cur, 0)
            _fill_children(cur, tree[level + 1])
        _neighbour_pass(cur, 1)
        if level - 1 >= level_min:  # parents of seeds, propagating and ascendant cells become ascendant
            coarser = tree[level - 1]
            up = np.zeros(coarser.shape, np.uint8)
            _max_ds(((cur == SEED) | (cur == PROPAGATE) | (cur == ASCENDANT)).view(np.uint8), up)
            coarser[(up > 0) & (coarser != SEED)] = ASCENDANT
    return tree


def particle_masks(tree: list, level_min: int, level_max: int) -> list:
    """Particle cells per level ``level_min .. level_max - 1`` (bool, the level's grid), and at index
    ``level_max`` the seeds of level ``level_max - 1``, whose 2x2(x2) children are the finest particles."""
    masks = [None] * (level_max + 1)
    for level in range(level_min + 1, level_max):  # children of seeds are particles one level finer
        fine = tree[level]
        up = np.repeat(np.repeat(np.repeat(tree[level - 1] == SEED, 2, 0), 2, 1), 2, 2)
        fine[up[: fine.shape[0], : fine.shape[1], : fine.shape[2]]] = UPSAMPLED_SEED
    for level in range(level_min, level_max):
        st = tree[level]
        masks[level] = (st > SEED) & (st <= UPSAMPLED_SEED)
    masks[level_max] = tree[level_max - 1] == SEED
    return masks


def _rows(mask: np.ndarray):
    """Particles per row ``(z, y)`` and their x, of a level's particle mask."""
    return mask.sum(axis=2, dtype=np.int64).ravel(), np.nonzero(mask)[2].astype(np.uint16)


@njit(cache=True, nogil=True)
def _fill_finest_x(seeds, nz, ny, nx, xs):
    i = 0
    for z in range(nz):
        for y in range(ny):
            for x in range(seeds.shape[2]):
                if seeds[z // 2, y // 2, x]:
                    xs[i] = 2 * x
                    i += 1
                    if 2 * x + 1 < nx:
                        xs[i] = 2 * x + 1
                        i += 1


def _finest_rows(seeds: np.ndarray, nz: int, ny: int, nx: int):
    """Rows of the finest level: the 2x2(x2) children (inside the image) of the seeds one level coarser."""
    children = np.where(2 * np.arange(seeds.shape[2]) + 1 < nx, 2, 1)
    per = (seeds * children).sum(axis=2, dtype=np.int64)  # per finest row, shared by 2x2 rows
    counts = per[np.arange(nz)[:, None] // 2, np.arange(ny)[None, :] // 2].ravel()
    xs = np.empty(int(counts.sum()), np.uint16)
    _fill_finest_x(seeds, nz, ny, nx, xs)
    return counts, xs


@njit(cache=True, nogil=True)
def _gather_finest(image, seeds, out):
    nz, ny, nx = image.shape
    sx = seeds.shape[2]
    i = 0
    for z in range(nz):
        for y in range(ny):
            for x in range(sx):
                if seeds[z // 2, y // 2, x]:
                    out[i] = image[z, y, 2 * x]
                    i += 1
                    if 2 * x + 1 < nx:
                        out[i] = image[z, y, 2 * x + 1]
                        i += 1


def grid_from_masks(masks: list, shape, level_min: int, level_max: int) -> AprGrid:
    """The :class:`AprGrid` (particles and tree) of :func:`particle_masks`."""
    counts, xs = [], []
    for level in range(level_min, level_max):
        c, x = _rows(masks[level])
        counts.append(c)
        xs.append(x)
    c, x = _finest_rows(masks[level_max], *(int(s) for s in shape))
    counts.append(c)
    xs.append(x)
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    # tree: every cell with finer particles below it, levels 0 .. level_max - 1; at level_max - 1 the seeds
    tree = [None] * level_max
    tree[level_max - 1] = masks[level_max]
    for level in range(level_max - 2, -1, -1):
        finer = tree[level + 1] | masks[level + 1] if level + 1 >= level_min else tree[level + 1]
        out = np.zeros([-(-n // 2) for n in finer.shape], np.uint8)
        _max_ds(finer.view(np.uint8), out)
        tree[level] = out.view(bool)
    t_rows = [_rows(tree[level]) for level in range(level_max)]
    tree_offsets = np.concatenate([[0], np.cumsum(np.concatenate([c for c, _ in t_rows]))]).astype(np.int64)
    tree_x = np.concatenate([x for _, x in t_rows])
    return AprGrid(tuple(int(s) for s in shape), level_min, level_max, offsets, np.concatenate(xs),
                   tree_offsets, tree_x)


def sample_particles(image: np.ndarray, masks: list, level_min: int, level_max: int, n_particles: int) -> np.ndarray:
    """Particle values in storage order: each level's cells from a pyramid of block means of ``image`` (3D)."""
    out = np.empty(n_particles, dtype=image.dtype)
    level_img = image
    pyramid = [None] * (level_max + 1)
    for level in range(level_max - 1, level_min - 1, -1):
        level_img = mean_ds(level_img)
        pyramid[level] = level_img
    i = 0
    for level in range(level_min, level_max):
        v = pyramid[level][masks[level]]
        out[i:i + len(v)] = v
        i += len(v)
    _gather_finest(image, masks[level_max], out[i:])
    return out


# ----------------------------------------------------------------------------------------------
# the whole pipeline


def _gradient_and_scale(img, gradient_smoothing, intensity_threshold, auto_parameters, gradient_threshold,
                        sigma_threshold, sigma_threshold_max, spacing, psf):
    """Steps 1-4: thresholded gradient magnitude and local intensity scale on the grid of ``level_max - 1``."""
    shape = img.shape
    dz, dy, dx = spacing
    f = img.astype(np.float32)
    if gradient_smoothing > 0:
        f = smooth_bspline(f, gradient_smoothing)
    grad = gradient_magnitude_ds(f, (dz, dy, dx))
    ds = mean_ds(f)
    if gradient_smoothing > 0:
        ds = inverse_bspline(ds, [a for a in (2, 1, 0) if shape[a] > 2])
    lis = local_intensity_scale(ds, psf, dy)
    if auto_parameters:
        fg = ds > intensity_threshold
        n_fg = int(fg.sum())
        n_el = min(32 * 512 * 512, n_fg)
        step = max(n_fg // max(n_el, 1), 1)
        grad_th = threshold_li(grad[fg][::step][:n_el])
        sigma_th = threshold_li(lis[fg][::step][:n_el])
    else:
        grad_th, sigma_th = float(gradient_threshold), float(sigma_threshold)
    grad[ds <= intensity_threshold] = 0
    low = lis < sigma_th
    lis[low] = np.where(lis[low] < sigma_threshold_max, np.float32(60000), np.float32(sigma_th))
    grad[grad < grad_th] = 0
    return grad, lis, grad_th, sigma_th


def local_intensity_scale_image(image: np.ndarray, *, gradient_smoothing: float = 3.0, intensity_threshold: float = 0.0,
                                auto_parameters: bool = True, sigma_threshold: float | None = None,
                                spacing=(1.0, 1.0, 1.0), psf: float = 2.0) -> np.ndarray:
    """The local intensity scale ``sigma(y)`` of the construction (after ``sigma_th``) at every pixel of ``image`` (3D).

    The APR's reconstruction condition is ``|I(y) - I_hat(y)| <= E * sigma(y)``; this is the ``sigma`` to check it with.
    """
    img = np.ascontiguousarray(image)
    _, lis, _, _ = _gradient_and_scale(img, gradient_smoothing, intensity_threshold, auto_parameters, 0.0,
                                       sigma_threshold, 0.0, spacing, psf)
    up = lis
    for axis, n in enumerate(img.shape):
        if n > 1:
            up = np.repeat(up, 2, axis=axis)
    return np.ascontiguousarray(up[tuple(slice(0, n) for n in img.shape)])


def construct_apr(image: np.ndarray, *, rel_error: float = 0.1, gradient_smoothing: float = 3.0,
                  intensity_threshold: float = 0.0, auto_parameters: bool = True,
                  gradient_threshold: float | None = None, sigma_threshold: float | None = None,
                  sigma_threshold_max: float = 0.0, spacing=(1.0, 1.0, 1.0), psf: float = 2.0):
    """Pixel image -> ``(grid, particle values, used parameters)`` (see the module docstring).

    Parameters
    ----------
    image : ndarray, shape (nz, ny, nx)
        uint8, uint16 or float32 pixels (2D images as ``nz == 1``).
    rel_error : float
        Relative error bound E.
    gradient_smoothing : float
        B-spline smoothing ``lambda`` (0: none).
    intensity_threshold : float
        ``Ip_th``: no resolution is asked where the (down-sampled) intensity is at most this.
    auto_parameters : bool
        Li thresholds for ``grad_th`` and ``sigma_th``; else both must be given.
    gradient_threshold, sigma_threshold, sigma_threshold_max : float
        ``grad_th``, ``sigma_th``, ``sigma_th_max`` when not automatic.
    spacing : sequence of 3 float
        Pixel size ``(z, y, x)`` (LibAPR ``dz, dx, dy``).
    psf : float
        PSF size in pixels of axis y (LibAPR ``psfx``), picks the intensity-scale windows.

    Returns
    -------
    grid : AprGrid
    parts : ndarray (n_particles,), the image's dtype
    params : dict
        The parameters used (file attributes: ``grad_th``, ``sigma_th``...).
    """
    img = np.ascontiguousarray(image)
    shape = img.shape
    level_min, level_max = apr_levels(shape)
    dz, dy, dx = (float(s) for s in spacing)
    if level_max <= 2:  # LibAPR: tiny images are all pixels
        masks = [None] * (level_max + 1)
        for level in range(level_min, level_max):
            masks[level] = np.zeros([-(-n // 2 ** (level_max - level)) for n in shape], bool)
        masks[level_max] = np.ones([-(-n // 2) for n in shape], bool)  # every finest cell
        grid = grid_from_masks(masks, shape, level_min, level_max)
        return grid, img.ravel().copy(), {"rel_error": rel_error, "lambda": gradient_smoothing}
    grad, lis, grad_th, sigma_th = _gradient_and_scale(img, gradient_smoothing, intensity_threshold, auto_parameters,
                                                       gradient_threshold, sigma_threshold, sigma_threshold_max,
                                                       (dz, dy, dx), psf)
    factor = 2.0 ** level_max * min(dx, dy, dz) / rel_error
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(grad.astype(np.float64) / lis * factor, nan=0.0, posinf=2.0 ** 31)
    ratio = np.clip(ratio, 0, 2.0 ** 32 - 1).astype(np.uint32)
    level_map = np.zeros(ratio.shape, np.int16)
    nz = ratio > 0
    level_map[nz] = np.floor(np.log2(ratio[nz].astype(np.float64))).astype(np.int16)
    tree = pulling_scheme(level_map, level_min, level_max)
    masks = particle_masks(tree, level_min, level_max)
    grid = grid_from_masks(masks, shape, level_min, level_max)
    parts = sample_particles(img, masks, level_min, level_max, grid.n_particles)
    params = {"rel_error": rel_error, "lambda": gradient_smoothing, "grad_th": grad_th, "sigma_th": sigma_th,
              "sigma_th_max": sigma_threshold_max, "I_th": intensity_threshold, "psfx": psf, "psfy": psf,
              "psfz": psf}
    return grid, parts, params
