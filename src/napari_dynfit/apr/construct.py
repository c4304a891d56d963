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


@njit(cache=True, parallel=True, nogil=True)
def _bspline_lines(img, b1, b2, norm, bcs):
    """Smoothing B-spline along the last axis of a 2D array of lines (float32), in place."""
    n_lines, n = img.shape
    m = bcs.shape[1]
    for li in prange(n_lines):
        f = img[li]
        t1 = np.float32(0.0)
        t2 = np.float32(0.0)
        t3 = np.float32(0.0)
        t4 = np.float32(0.0)
        for k in range(m):
            t1 += bcs[0, k] * f[k]
            t2 += bcs[1, k] * f[k]
            t3 += bcs[2, k] * f[n - 1 - k]
            t4 += bcs[3, k] * f[n - 1 - k]
        f[0] = t2
        f[1] = t1
        for i in range(2, n):
            t = t1 * b1 + t2 * b2 + f[i]
            f[i] = t
            t2 = t1
            t1 = t
        f[n - 2] = t3 * norm
        f[n - 1] = t4 * norm
        t2 = f[n - 1] / norm
        t1 = f[n - 2] / norm
        for i in range(n - 3, -1, -1):
            t = t1 * b1 + t2 * b2 + f[i]
            f[i] = t * norm
            t2 = t1
            t1 = t


def _along(arr: np.ndarray, axis: int, fn) -> np.ndarray:
    """Apply the in-place line function ``fn`` along ``axis`` of a 3D float32 array (a new array; ``arr`` is kept)."""
    moved = np.array(np.moveaxis(arr, axis, -1), order="C", copy=True)
    flat = moved.reshape(-1, moved.shape[-1])
    fn(flat)
    return np.moveaxis(flat.reshape(moved.shape), -1, axis)


def smooth_bspline(img: np.ndarray, lam: float) -> np.ndarray:
    """B-spline coefficients of ``img`` (3D float32) with smoothing ``lam`` along every axis longer than 2."""
    out = img
    for axis in (2, 1, 0):  # LibAPR: y, x, z = our x, y, z
        n = out.shape[axis]
        if n > 2:
            b1, b2, norm, bcs = _bspline_coefficients(lam, n)
            out = _along(out, axis, lambda a: _bspline_lines(a, b1, b2, norm, bcs))
    return np.ascontiguousarray(out)


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


def _pad_even(a: np.ndarray) -> np.ndarray:
    pads = [(0, n % 2) for n in a.shape]
    return np.pad(a, pads, mode="edge") if any(p[1] for p in pads) else a


def block_reduce(a: np.ndarray, how: str) -> np.ndarray:
    """2x2x2 block ``mean`` or ``max`` (axes of size 1 stay 1; odd borders repeat the last pixel), as LibAPR."""
    p = _pad_even(a)
    shape = []
    for n in p.shape:
        shape += [max(n // 2, 1), 2 if n > 1 else 1]
    r = p.reshape(shape)
    if how == "max":
        return r.max(axis=(1, 3, 5))
    # LibAPR sums the 8 corner samples (a size-1 axis counts twice) and divides by 8: the block mean
    return r.mean(axis=(1, 3, 5), dtype=np.float32)


def gradient_magnitude_ds(img: np.ndarray, spacing) -> np.ndarray:
    """``|grad img|`` by central differences (border: half one-sided), maximum over 2x2x2 blocks; float32."""
    sq = np.zeros(img.shape, dtype=np.float32)
    for axis, h in enumerate(spacing):
        n = img.shape[axis]
        if n < 2:
            continue
        p = np.moveaxis(np.pad(img, [(1, 1) if a == axis else (0, 0) for a in range(3)], mode="edge"), axis, 0)
        d = (p[2:] - p[:-2]) / np.float32(2 * h)
        sq += np.moveaxis(d, 0, axis) ** 2
    return block_reduce(np.sqrt(sq), "max")


@njit(cache=True, parallel=True, nogil=True)
def _box_mean_lines(a, off):
    """Mean over ``[k - off, k + off]`` cut at the line ends, along the last axis (float32, in place)."""
    n_lines, n = a.shape
    for li in prange(n_lines):
        c = np.empty(n + 1, dtype=np.float64)
        c[0] = 0.0
        for k in range(n):
            c[k + 1] = c[k] + a[li, k]
        for k in range(n):
            lo = max(k - off, 0)
            hi = min(k + off + 1, n)
            a[li, k] = (c[hi] - c[lo]) / (hi - lo)


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
    mean = padded
    for axis in (2, 1, 0):
        if active[axis]:
            mean = _along(mean, axis, lambda a: _box_mean_lines(a, w1))
    var = np.abs(padded - mean)
    for axis in (2, 1, 0):
        if active[axis]:
            var = _along(var, axis, lambda a: _box_mean_lines(a, w2))
    var *= np.float32(_LIS_RESCALE[n_active][psf_ind])
    inner = tuple(slice(p[0], p[0] + n) for p, n in zip(pads, img_ds.shape))
    return np.ascontiguousarray(var[inner])


def threshold_li(values: np.ndarray) -> float:
    """Li's minimum cross-entropy threshold, iterated as LibAPR does (float tolerance)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return 0.0
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return lo
    tol = min(0.01, (hi - lo) * 1e-4)
    t_next, t_curr = float(v.mean()), -2.0 * tol
    for _ in range(1000):
        if abs(t_next - t_curr) <= tol:
            break
        t_curr = t_next
        fore = v > t_curr
        mean_f, mean_b = v[fore].mean(), v[~fore].mean()
        if mean_b == 0:
            return t_curr
        t_next = (mean_f - mean_b) / (math.log(mean_f) - math.log(mean_b))
    return float(t_next)


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
def _mark_parents(cur, coarser):
    """Parents of SEED / PROPAGATE / ASCENDANT cells become ASCENDANT (unless they are seeds)."""
    nz, ny, nx = cur.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                s = cur[z, y, x]
                if s == SEED or s == PROPAGATE or s == ASCENDANT:
                    if coarser[z // 2, y // 2, x // 2] != SEED:
                        coarser[z // 2, y // 2, x // 2] = ASCENDANT


def pulling_scheme(level_map: np.ndarray, level_min: int, level_max: int) -> list:
    """Cell states per level ``level_min .. level_max - 1`` (list index = level; others None).

    ``level_map`` is the resolution function on the grid of level ``level_max - 1`` (int).
    """
    top = level_max - 1
    tree = [None] * (top + 1)
    cur_map = level_map
    for level in range(top, level_min - 1, -1):
        if level != top:
            cur_map = block_reduce(cur_map, "max")
        if level == top:
            seed = cur_map >= level
        elif level == level_min:
            seed = cur_map <= level
        else:
            seed = cur_map == level
        tree[level] = np.where(seed, SEED, EMPTY).astype(np.uint8)
    for level in range(top, level_min - 1, -1):
        cur = tree[level]
        if level != top:
            _neighbour_pass(cur, 0)
            _fill_children(cur, tree[level + 1])
        _neighbour_pass(cur, 1)
        if level - 1 >= level_min:
            _mark_parents(cur, tree[level - 1])
    return tree


def particle_masks(tree: list, shape, level_min: int, level_max: int) -> list:
    """Particle cells per level (list index = level; bool arrays of the level's grid shape)."""
    masks = [None] * (level_max + 1)
    full = tuple(int(s) for s in shape)
    for level in range(level_min + 1, level_max):  # children of seeds are particles one level finer
        st = tree[level]
        up = np.repeat(np.repeat(np.repeat(tree[level - 1] == SEED, 2, 0), 2, 1), 2, 2)
        up = up[: st.shape[0], : st.shape[1], : st.shape[2]]
        st[up] = UPSAMPLED_SEED
    for level in range(level_min, level_max):
        st = tree[level]
        masks[level] = (st > SEED) & (st <= UPSAMPLED_SEED)
    seeds = tree[level_max - 1] == SEED
    up = np.repeat(np.repeat(np.repeat(seeds, 2, 0), 2, 1), 2, 2)
    masks[level_max] = np.ascontiguousarray(up[: full[0], : full[1], : full[2]])
    return masks


def grid_from_masks(masks: list, shape, level_min: int, level_max: int) -> AprGrid:
    """The :class:`AprGrid` (particles and tree) of per-level particle masks."""
    counts, xs = [], []
    for level in range(level_min, level_max + 1):
        m = masks[level]
        counts.append(m.sum(axis=2, dtype=np.int64).ravel())
        xs.append(np.nonzero(m)[2].astype(np.uint16))
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    # tree: every cell with finer particles below it, levels 0 .. level_max - 1
    tree_masks = [None] * level_max
    below = masks[level_max]
    for level in range(level_max - 1, -1, -1):
        t = block_reduce(below.astype(np.uint8), "max").astype(bool)
        tree_masks[level] = t
        below = t | masks[level] if masks[level] is not None and level >= level_min else t
    t_counts = [tree_masks[level].sum(axis=2, dtype=np.int64).ravel() for level in range(level_max)]
    t_xs = [np.nonzero(tree_masks[level])[2].astype(np.uint16) for level in range(level_max)]
    tree_offsets = np.concatenate([[0], np.cumsum(np.concatenate(t_counts) if t_counts else [])]).astype(np.int64)
    tree_x = np.concatenate(t_xs) if t_xs else np.zeros(0, np.uint16)
    return AprGrid(tuple(int(s) for s in shape), level_min, level_max, offsets, np.concatenate(xs),
                   tree_offsets, tree_x)


# ----------------------------------------------------------------------------------------------
# 7. sampling


def sample_particles(image: np.ndarray, masks: list, level_min: int, level_max: int) -> np.ndarray:
    """Particle values: each level's cells from a pyramid of block means of ``image`` (3D), storage order."""
    dtype = image.dtype
    integer = dtype.kind in "ui"
    out = []
    pyramid = [None] * (level_max + 1)
    pyramid[level_max] = image
    for level in range(level_max - 1, level_min - 1, -1):
        m = block_reduce(pyramid[level + 1].astype(np.float32), "mean")
        pyramid[level] = np.floor(m).astype(dtype) if integer else m.astype(dtype)
    for level in range(level_min, level_max + 1):
        out.append(pyramid[level][masks[level]])
    return np.concatenate(out)


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
    ds = block_reduce(f, "mean").astype(np.float32)
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
        masks[level_max] = np.ones(shape, bool)
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
    masks = particle_masks(tree, shape, level_min, level_max)
    grid = grid_from_masks(masks, shape, level_min, level_max)
    parts = sample_particles(img, masks, level_min, level_max)
    params = {"rel_error": rel_error, "lambda": gradient_smoothing, "grad_th": grad_th, "sigma_th": sigma_th,
              "sigma_th_max": sigma_threshold_max, "I_th": intensity_threshold, "psfx": psf, "psfy": psf,
              "psfz": psf}
    return grid, parts, params
