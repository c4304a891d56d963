"""Scale-space blob detection with sub-pixel refinement, for particles in 2D/3D movies.

Why our own rather than :func:`skimage.feature.blob_log` alone: ``blob_log`` returns integer
positions (errors up to 0.5 px per axis), applies one isotropic sigma and has no noise-relative
threshold. Here the scale-normalised Laplacian of Gaussian (LoG) is computed with scipy per scale (at 0.7 of the
blob width by default, which separates close pairs better)
(anisotropic voxels take per-axis sigmas), maxima are taken in (scale, space) with
a maximum filter (or, with few candidates, a test of each against its window), the threshold defaults to a multiple of the robust noise
level of the filter response (median absolute deviation), and each maximum is refined to sub-pixel
precision with one Newton step on the quadratic model of the response (gradient and Hessian by
central differences), followed by a Gaussian-weighted centroid of the background-subtracted image.
Maxima closer than 2 sigmas (texture or noise within one object, or two real spots) are tested: one spot and two
spots (shared fitted width, constant offset) are fitted to the window around the pair; they stay two only where two
spots explain it to within the image's error (pixel noise, plus ``image_error`` for reconstructions such as the
APR's) and better than one by more than the Bayesian information criterion's penalty in units of that error plus a
relative model error (``model_error``: how far a Gaussian spot is from a real object), else they become one blob. Two
spots closer than
about twice the PSF width make a single maximum (no peak detector can separate them); with ``split=True`` blobs
significantly elongated beyond one spot (Hessian screen) get the same test. An irregular object that no pair of
Gaussian spots fits (a brightfield bead with its halo) is never split. The fits are compiled (numba,
:mod:`._spotfit`), one small window at a time, and run only on those candidates.
Frames are processed in a thread pool (scipy's filters and the compiled kernels release the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._progress import progress_iter
from ..errors import InputError
from .contrast import check_polarity, flatten

AXES = ("z", "y", "x")


def _pixel_sigmas(sigma: float, spacing: np.ndarray) -> np.ndarray:
    """Per-axis sigma in pixels for a physical sigma ``sigma`` expressed in units of the finest axis."""
    return sigma * spacing.min() / spacing


def _check_image(image, what="image") -> np.ndarray:
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise InputError(f"{what} has {img.ndim} dimensions; expected 2D (y, x) or 3D (z, y, x): pass one frame")
    if img.size == 0:
        raise InputError(f"{what} is empty")
    img = img.astype(np.float32, copy=False)
    if not np.isfinite(img).all():
        raise InputError(f"{what} contains NaN or infinite values: replace them (e.g. np.nan_to_num) first")
    return img


def _refine(resp: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Newton step on the quadratic model of ``resp`` around integer ``peaks`` (n, ndim)."""
    nd = resp.ndim
    pad = np.pad(resp, 1, mode="edge")
    p = peaks + 1
    def val(offset):
        idx = tuple(p[:, a] + offset[a] for a in range(nd))
        return pad[idx]
    e = np.eye(nd, dtype=int)
    f0 = val(np.zeros(nd, int))
    g = np.empty((len(peaks), nd))
    h = np.empty((len(peaks), nd, nd))
    for a in range(nd):
        fp, fm = val(e[a]), val(-e[a])
        g[:, a] = 0.5 * (fp - fm)
        h[:, a, a] = fp - 2 * f0 + fm
        for b in range(a + 1, nd):
            hab = 0.25 * (val(e[a] + e[b]) - val(e[a] - e[b]) - val(-e[a] + e[b]) + val(-e[a] - e[b]))
            h[:, a, b] = h[:, b, a] = hab
    off = np.zeros((len(peaks), nd))
    det_ok = np.linalg.det(h) != 0
    if det_ok.any():
        off[det_ok] = -np.linalg.solve(h[det_ok], g[det_ok][..., None])[..., 0]
    off[~np.isfinite(off).all(axis=1) | (np.abs(off) > 1).any(axis=1)] = 0.0
    return peaks + np.clip(off, -0.5, 0.5)


@lru_cache(maxsize=64)
def _offsets(half: tuple) -> np.ndarray:
    """Integer offsets (k, nd) of the pixels of a window of +-``half`` (C order)."""
    grids = np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij")
    offs = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
    offs.flags.writeable = False
    return offs


def _grid(img: np.ndarray, pos: np.ndarray, half: np.ndarray):
    """Windows of +-``half`` around the pixels nearest to ``pos`` (n, nd) for the compiled fits: the grid's offsets
    (k, nd), each window's shift from ``pos`` (n, nd; pixel ``i`` of window ``j`` lies at ``offs[i] + shift[j]``
    from ``pos[j]``) and the values (n, k, float64; 0 outside the image)."""
    from ._spotfit import gather

    offs = _offsets(tuple(int(h) for h in half))
    shape = np.array(img.shape)
    base = np.clip(np.round(pos).astype(np.int64), 0, shape - 1)
    vals, _ = gather(np.ascontiguousarray(img).ravel(), shape.astype(np.int64), base, offs)
    return offs, (base - pos).astype(np.float64), vals


def _kernel_args(img: np.ndarray, pos: np.ndarray, half: np.ndarray, sig: np.ndarray):
    """Arguments of the compiled window kernels: raveled image, shape, positions, window offsets, sigmas."""
    offs = _offsets(tuple(int(h) for h in half))
    return (np.ascontiguousarray(img).ravel(), np.array(img.shape, np.int64), np.asarray(pos, np.float64), offs,
            np.asarray(sig, np.float64))


def _log_response(flat: np.ndarray, sig_px: np.ndarray, scale: float) -> np.ndarray:
    """``scale`` times the Laplacian of Gaussian (per-axis sigmas ``sig_px``, kernels truncated at 3 sigmas, mode
    "reflect"): compiled separable passes in 2D (5-6x faster than scipy's four), scipy in 3D."""
    if flat.ndim != 2:
        return scale * ndi.gaussian_laplace(flat, sig_px, truncate=3.0)
    from ._spotfit import log2d

    def kernels(s):
        r = int(3.0 * s + 0.5)
        x = np.arange(-r, r + 1, dtype=float)
        phi = np.exp(-0.5 * x ** 2 / s ** 2)
        phi /= phi.sum()
        return phi, phi * (x ** 2 / s ** 4 - 1 / s ** 2)

    if min(flat.shape) <= 3 * max(sig_px) + 1:  # kernels longer than the image: scipy's general reflection
        return scale * ndi.gaussian_laplace(flat, sig_px, truncate=3.0)
    return log2d(np.ascontiguousarray(flat, np.float32), *kernels(sig_px[0]), *kernels(sig_px[1]), np.float32(scale))


def _weighted_centroid(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Gaussian-weighted centroid of the flattened image ``flat`` (objects positive) in +-2 sigma around ``pos``.

    For a Gaussian spot of width sigma at ``c``, the product of the spot and a weight of the same width centred on
    ``pos`` is a Gaussian centred half-way, at ``(c + pos) / 2``: the shift of the weighted centroid is doubled (an
    unbiased one-step estimate, 20-30 % lower median error than the plain weighted centroid on rendered spots),
    clipped to +-1 px.
    """
    from ._spotfit import weighted_centroid

    return weighted_centroid(*_kernel_args(flat, pos, np.maximum(np.ceil(2 * sig).astype(int), 1), sig))


def _intensity(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Mean of ``flat`` weighted by a Gaussian of half the blob width at ``pos``: the peak height above the local
    background, slightly smoothed (negative for a maximum of the band-pass that is no object)."""
    from ._spotfit import gaussian_mean

    return gaussian_mean(*_kernel_args(flat, pos, np.maximum(np.ceil(sig).astype(int), 1), sig))


#: A blob is a split candidate when the ratio of the two extreme eigenvalues of the Hessian of the image smoothed at
#: the blob scale (in units of sigma) is below this: one round spot gives 0.85-1 at SNR >= 10 (median 0.92-0.98),
#: two spots 1.6 sigma apart 0.68-0.77 (99th percentile 0.77); closer pairs approach 1 (the fits decide).
SPLIT_HESSIAN_RATIO = 0.85
#: ... and above this: two spots that make one maximum give 0.15-0.85 (rendered pairs 0.16-0.74); lower or negative
#: ratios (a flat or dipping axis) are irregular objects (a quarter of the beads of trackpy's ``bulk_water``).
SPLIT_MIN_HESSIAN_RATIO = 0.1
#: ... and when that elongation (difference of the extreme eigenvalues) exceeds this many of its standard deviations
#: under the pixel noise (plus model error): at SNR 5-10 noise alone makes 30-70 % of single spots pass the ratio
#: test, 0.2 % this one (Rayleigh tail exp(-x^2 / 2)).
SPLIT_ELONGATION_SIGNIFICANCE = 3.5
#: Two fitted components closer than this (in sigmas) are one object.
SPLIT_MIN_SEPARATION = 0.8
#: The two-spot model must explain the blob to within the noise: residual sum of squares per pixel below this many
#: noise variances (true pairs give 0.5-2.5 at SNR 5-30; brightfield beads with halos, which no pair of Gaussian
#: spots fits either, 3-300, median 24 on trackpy's ``bulk_water``).
SPLIT_MAX_CHI2 = 4.0
#: ... and better than one spot by more than the Bayesian information criterion's penalty for the extra spot plus
#: this (in noise variances): two spots where the one-spot model also explains the window within the noise are one.
SPLIT_MIN_GAIN = 4.0
#: Default relative model error: a Gaussian spot describes a real object to within this fraction of its peak per
#: pixel. Added in quadrature to the image's error in the gain test (and the elongation screen); the fit must still
#: explain the window within the image's own error. On trackpy's ``bulk_water`` beads 0.1 leaves 0.3 % of the
#: detections in pairs closer than 3 px (0.05: 0.7 %, 0.02: 2.4 %), at a recall cost of <= 0.005 on rendered spots.
MODEL_ERROR = 0.1
#: Maxima closer than this (in sigmas, refined positions) are tested as a pair: one object (texture or noise in one
#: bead, merged at their mean position) unless two spots explain the pair within the noise and clearly better than
#: one (then both stay: dense clusters keep their spots).
MERGE_DISTANCE = 2.0


#: Censored pixels (see :func:`_censored`) are left out of the noise estimates only when they are at least this
#: fraction of the image: below it they move a median absolute deviation by less than ~1 %, not worth two filters.
CENSORED_FRACTION = 0.01


def _censored(img: np.ndarray) -> np.ndarray | None:
    """Pixels that carry no noise: in a flat 3-pixel neighbourhood at the image's minimum or maximum (a background
    clipped to the floor of an 8-bit export, saturated spots), or None where they are under
    :data:`CENSORED_FRACTION` of the image.

    Such pixels are censored measurements: left in, a clipped background covering half the frame makes the median
    absolute deviations of the noise estimates zero, the detection threshold collapses and every ripple of the
    unclipped part becomes a spot.
    """
    lo, hi = img.min(), img.max()
    ext = (img == lo) | (img == hi)
    if ext.mean() < CENSORED_FRACTION:
        return None
    cens = ext & (ndi.maximum_filter(img, size=3) == ndi.minimum_filter(img, size=3))
    return cens if cens.mean() >= CENSORED_FRACTION and not cens.all() else None


def _pixel_noise(flat: np.ndarray, censored: np.ndarray | None = None) -> float:
    """Robust standard deviation of the pixel noise: MAD of neighbour differences along the last axis / sqrt 2,
    over pixel pairs outside ``censored`` (:func:`_censored`).

    Returns 0 (no pixel-noise term: only the model error counts) when that is below a tenth of the spread (MAD) of
    the flattened image: smoothed or piecewise-constant images (APR reconstructions) have no independent pixel noise
    to measure a fit against.
    """
    step = max(1, flat.size // 10_000)  # every k-th row: ~10 000 pixels estimate both spreads to ~1 %
    rows = flat.reshape(-1, flat.shape[-1])[::step]
    v = np.diff(rows, axis=-1)
    f = rows
    if censored is not None:
        ok = ~censored.reshape(-1, flat.shape[-1])[::step]
        v, f = v[ok[:, 1:] & ok[:, :-1]], f[ok]
    v, f = v.ravel(), f.ravel()
    if v.size == 0:
        return 0.0
    noise = 1.4826 * np.median(np.abs(v - np.median(v))) / np.sqrt(2)
    spread = 1.4826 * np.median(np.abs(f - np.median(f)))
    return float(noise) if noise >= 0.1 * spread and noise > 0 else 0.0


def _two_spots(flat, centre, c1, c2, sig, noise, err):
    """Whether the window around each ``centre`` (n, nd) holds two Gaussian spots rather than one.

    ``c1``, ``c2`` (n, nd): start positions of the two spots relative to ``centre``. Two spots (with a constant
    offset for neighbours' tails) and one spot are fitted (compiled Levenberg-Marquardt, :mod:`._spotfit`); it is two
    when the two-spot residual is within :data:`SPLIT_MAX_CHI2` variances per pixel, better than one spot by more
    than the BIC penalty + :data:`SPLIT_MIN_GAIN` variances, both components have about one spot's width,
    comparable amplitudes and lie :data:`SPLIT_MIN_SEPARATION`-3 sigmas apart. ``err`` = (model_error,
    image_error): the residual test uses the image's variance ``noise^2 + (image_error * peak)^2`` (the model error
    alone where that is 0), the gain test that plus ``(model_error * peak)^2``. Returns the decision (n,) and the two
    fitted positions (absolute).
    """
    from ._spotfit import fit_spots, start_amplitudes

    nd = flat.ndim
    n = len(centre)
    half = np.ceil(2.5 * sig).astype(int)
    offs, shift, vals = _grid(flat, centre, half)
    sig = sig.astype(np.float64)
    m = vals.shape[1]
    peak = np.maximum(vals.max(axis=1), 0)
    var_img = noise ** 2 + (err[1] * peak) ** 2  # the image's own error: pixel noise (+ reconstruction error)
    var = var_img + (err[0] * peak) ** 2  # ... + a Gaussian spot's error as a model of an object
    # two spots must explain the window within the image's error (an irregular object is not two spots however high
    # its contrast); where the image has none to measure, within the model error
    chi_max = SPLIT_MAX_CHI2 * m * np.where(var_img > 0, var_img, np.maximum(var, 1e-30))
    # amplitudes of the two starts by linear least squares (no offset)
    c1, c2 = np.asarray(c1, np.float64), np.asarray(c2, np.float64)
    amp = start_amplitudes(vals, offs, shift, sig, c1, c2)
    ones, zeros = np.ones((n, 1)), np.zeros((n, 1))
    q0 = np.concatenate([amp[:, :1], c1, amp[:, 1:], c2, ones, zeros], 1)
    q2, rss2 = fit_spots(vals, offs, shift, sig, q0, 2, 15, 3 * chi_max)
    a1, a2 = q2[:, 0], q2[:, nd + 1]
    p1, p2 = q2[:, 1:nd + 1], q2[:, nd + 2:2 * nd + 2]
    sep = np.linalg.norm((p1 - p2) / sig, axis=1)
    w2 = q2[:, -2]
    two = ((rss2 < chi_max) & (np.abs(w2 - 1) < 0.25) & (np.minimum(a1, a2) > 0.25 * np.maximum(a1, a2))
           & (sep > SPLIT_MIN_SEPARATION) & (sep < 3) & (np.abs(p1 / sig) < 2.5).all(1) & (np.abs(p2 / sig) < 2.5).all(1))
    if two.any():  # the one-spot fit only where two spots explain the window
        g = np.flatnonzero(two)
        w = np.maximum(amp[g], 0)
        start = (w[:, :1] * c1[g] + w[:, 1:] * c2[g]) / np.maximum(w.sum(1), 1e-12)[:, None]
        q1, rss1 = fit_spots(vals[g], offs, shift[g], sig,
                             np.concatenate([vals[g].max(1)[:, None], start, ones[g], zeros[g]], 1), 1, 15,
                             np.full(len(g), np.inf))
        gain = (rss1 - rss2[g]) / np.maximum(var[g], 1e-30)
        two[g] = (gain > (nd + 1) * np.log(m) + SPLIT_MIN_GAIN) & (q1[:, -2] > w2[g])
    return two, centre + p1, centre + p2


def _close(pos: np.ndarray, sig: np.ndarray, dist: float) -> np.ndarray:
    """Index pairs (e, 2) of positions closer than ``dist`` sigmas."""
    from scipy.spatial import cKDTree

    return cKDTree(pos / sig).query_pairs(dist, output_type="ndarray").reshape(-1, 2)


def _components(n: int, pairs: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of ``n`` nodes joined by ``pairs``: their number and the labels (n,)
    (:func:`._spotfit.components`)."""
    from ._spotfit import components

    return components(n, np.ascontiguousarray(pairs, np.int64).reshape(-1, 2))


def _groups(n: int, pairs: np.ndarray):
    """Connected groups of ``n`` positions joined by ``pairs`` (from :func:`_close`): labels (n,) and group
    sizes."""
    lab = _components(n, pairs)[1]
    return lab, np.bincount(lab, minlength=1)


def _members(lab: np.ndarray, sizes: np.ndarray, k: int) -> np.ndarray:
    """Indices (g, k) of the members of every group of ``k``."""
    sel = np.flatnonzero(np.isin(lab, np.flatnonzero(sizes == k)))
    return sel[np.argsort(lab[sel], kind="stable")].reshape(-1, k)


def _joint_fit(flat: np.ndarray, pos: np.ndarray, mem: np.ndarray, sig: np.ndarray, iters: int = 10):
    """Fit as many Gaussian spots (shared width, constant offset) as each group ``mem`` (g, k) has members to the
    window covering the group, started at their positions. Returns the fitted positions (g, k, nd), amplitudes
    (g, k), width factors (g,), residual sums of squares (g,), window peaks (g,) and the window size m."""
    from ._spotfit import fit_spots

    g, k = mem.shape
    nd = pos.shape[1]
    p = pos[mem]
    centre = np.round(0.5 * (p.min(1) + p.max(1)))
    half = np.ceil(0.5 * (p.max(1) - p.min(1)).max(0) + 2.5 * sig).astype(int)
    offs, shift, vals = _grid(flat, centre, half)
    amp = _grid(flat, pos[mem.ravel()], np.zeros(nd, int))[2].reshape(g, k, 1)
    q0 = np.concatenate([np.concatenate([amp, p - centre[:, None]], 2).reshape(g, -1), np.ones((g, 1)),
                         np.zeros((g, 1))], 1)
    q, rss = fit_spots(vals, offs, shift, sig.astype(np.float64), q0, k, iters, np.full(g, np.inf))
    spots = q[:, :-2].reshape(g, k, nd + 1)
    return centre[:, None] + spots[..., 1:], spots[..., 0], q[:, -2], rss, vals.max(1), vals.shape[1]


def _close_pairs(pos: np.ndarray, resp_at: np.ndarray, sig: np.ndarray, flat: np.ndarray, noise: float,
                 err: tuple):
    """Maxima closer than :data:`MERGE_DISTANCE` sigmas: each pair is kept as two spots only where
    :func:`_two_spots` says so, else merged (connected groups of such pairs become one blob at their
    response-weighted mean position). Returns the positions and a mask of those confirmed as one of two spots."""
    n = len(pos)
    pairs = _close(pos, sig, MERGE_DISTANCE)
    if len(pairs) == 0:
        return pos, np.zeros(n, bool)
    # groups of 3 or 4 maxima (dense clusters): all of them stay where as many spots explain the group's window within
    # the image's error (a pair test would see the third spot as misfit and merge them)
    lab, sizes = _groups(n, pairs)
    confirmed = np.zeros(n, bool)
    pos = pos.copy()
    for k in range(3, CLUSTER_MAX + 1):
        mem = _members(lab, sizes, k)
        if len(mem) == 0:
            continue
        new, amp, w, rss, peak, m = _joint_fit(flat, pos, mem, sig, iters=15)
        var_img = noise ** 2 + (err[1] * np.maximum(peak, 0)) ** 2
        var = np.where(var_img > 0, var_img, np.maximum((err[0] * peak) ** 2, 1e-30))
        d = np.linalg.norm((new[:, :, None] - new[:, None]) / sig, axis=-1) + 9 * np.eye(k)
        ok = ((rss < SPLIT_MAX_CHI2 * m * var) & (np.abs(w - 1) < 0.25) & (amp.min(1) > 0.25 * amp.max(1))
              & (d.min((1, 2)) > SPLIT_MIN_SEPARATION) & (np.linalg.norm((new - pos[mem]) / sig, axis=2) < 1).all(1))
        pos[mem[ok]] = new[ok]
        confirmed[mem[ok]] = True
    pairs = pairs[~(confirmed[pairs[:, 0]] & confirmed[pairs[:, 1]])]
    if len(pairs) == 0:
        return pos, confirmed
    i, j = pairs[:, 0], pairs[:, 1]
    mid = 0.5 * (pos[i] + pos[j])
    two = _two_spots(flat, mid, pos[i] - mid, pos[j] - mid, sig, noise, err)[0]
    paired = confirmed.copy()
    paired[i[two]] = paired[j[two]] = True
    one = ~two
    if not one.any():
        return pos, paired
    ncomp, lab = _components(n, pairs[one])
    w = np.maximum(resp_at, 1e-12)
    wsum = np.bincount(lab, weights=w, minlength=ncomp)
    merged = np.stack([np.bincount(lab, weights=w * pos[:, a], minlength=ncomp) for a in range(pos.shape[1])], 1)
    merged /= wsum[:, None]
    # a merged group keeps "paired" only when all its members were confirmed pairs elsewhere (rare): otherwise the
    # split test below looks at it again
    conf = np.bincount(lab, weights=paired.astype(float), minlength=ncomp) == np.bincount(lab, minlength=ncomp)
    return merged, conf


#: A blob is spot-like (tested for a split, refined jointly with its neighbours) when its second moment along its
#: narrowest axis, weighted by a Gaussian of the blob width (in units of sigma^2), is below this: one Gaussian spot of
#: width w sigma gives w^2 / (1 + w^2) (0.5 at the expected width; a pair of spots is no wider across its axis):
#: rendered spots 0.44-0.53 (1st-99th percentile, SNR 5-20), the beads of trackpy's ``bulk_water`` at the default
#: sigma median 0.57 (a quarter below 0.48: many are small enough to be tested).
SPOT_MAX_MINOR_MOMENT = 0.56


def _shape(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray):
    """Shape of each blob from the image smoothed at the blob scale around it: Hessian eigenvalues (n, nd),
    ascending, eigenvectors (n, nd, nd), the window peaks (n,), the standard deviation of the difference of the
    extreme eigenvalues per unit of pixel noise (scalar) and whether the blob is spot-like (n,, see
    :data:`SPOT_MAX_MINOR_MOMENT`)."""
    from ._spotfit import shape_hessian

    half = np.ceil(3 * sig).astype(int)
    h, gsum, peak = shape_hessian(*_kernel_args(flat, pos, half, sig))
    ev, evec = np.linalg.eigh(h)
    # h = sum g (u u^T - I): the weighted second moment along the narrowest axis is 1 + ev_min / sum g
    spotlike = (gsum > 0) & (1 + ev[:, 0] / np.where(gsum > 0, gsum, 1) < SPOT_MAX_MINOR_MOMENT)
    # standard deviation of the eigenvalue difference under white noise of unit variance: that of h_00 - h_11
    u = _offsets(tuple(int(h) for h in half)) / sig
    sd_unit = float(np.sqrt((np.exp(-(u ** 2).sum(1)) * (u[:, 0] ** 2 - u[:, 1] ** 2) ** 2).sum()))
    return ev, evec, peak, sd_unit, spotlike


def _split_merged(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray, noise: float, err: tuple,
                  skip: np.ndarray):
    """Split blobs that are two unresolved spots (one maximum); returns the new positions and which are spot-like.

    Only spot-like blobs (:func:`_shape`) elongated beyond one spot are tested (Hessian of the image smoothed at the
    blob scale: eigenvalue ratio below :data:`SPLIT_HESSIAN_RATIO` and elongation above
    :data:`SPLIT_ELONGATION_SIGNIFICANCE` standard deviations of its noise), with two spots started along the flat
    axis at the separation that ratio implies; then :func:`_two_spots` decides. ``skip`` (n,) marks blobs already
    confirmed as one of two spots.
    """
    if len(pos) == 0:
        return pos, np.zeros(0, bool)
    ev, evec, peak, sd_unit, spotlike = _shape(flat, pos, sig)
    var = noise ** 2 + (err[0] ** 2 + err[1] ** 2) * np.maximum(peak, 0) ** 2
    elong = ev[:, -1] - ev[:, 0]
    cand = np.flatnonzero((ev[:, 0] < 0) & (ev[:, -1] > SPLIT_HESSIAN_RATIO * ev[:, 0])
                          & (ev[:, -1] < SPLIT_MIN_HESSIAN_RATIO * ev[:, 0]) & ~skip & spotlike
                          & (elong > SPLIT_ELONGATION_SIGNIFICANCE * sd_unit * np.sqrt(var)))
    if len(cand) == 0:
        return pos, spotlike
    # two spots of width sigma at +-delta along the flat axis give the Hessian ratio r = 1 - delta^2 / (2 sigma^2)
    r = ev[cand, -1] / ev[cand, 0]
    sep = np.sqrt(2 * np.clip(1 - r, 0.05, 1))[:, None] * sig * evec[cand, :, -1]
    two, p1, p2 = _two_spots(flat, pos[cand], sep, -sep, sig, noise, err)
    if not two.any():
        return pos, spotlike
    from scipy.spatial import cKDTree

    gi = cand[two]
    keep = np.ones(len(pos), bool)
    keep[gi] = False
    # unsplit blobs first, so that a split half duplicating one of them (two neighbouring blobs both split
    # towards each other) is the one dropped
    new = np.concatenate([pos[keep], p1[two], p2[two]])
    like = np.concatenate([spotlike[keep], np.ones(2 * two.sum(), bool)])
    drop = np.zeros(len(new), bool)
    for i, j in sorted(cKDTree(new / sig).query_pairs(SPLIT_MIN_SEPARATION)):
        if not drop[i]:
            drop[j] = True
    return new[~drop], like[~drop]


#: Detections closer than this (in sigmas) overlap: groups of up to :data:`CLUSTER_MAX` of them get their positions
#: from one joint fit of as many spots (each one's centroid is pulled towards its neighbours).
CLUSTER_DISTANCE = 3.0
CLUSTER_MAX = 4


def _refine_clusters(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray, spotlike: np.ndarray) -> np.ndarray:
    """Joint positions of overlapping detections: groups (connected pairs closer than :data:`CLUSTER_DISTANCE`
    sigmas) of 2 to :data:`CLUSTER_MAX` spot-like (``spotlike``, (n,)) detections are fitted with as many Gaussian spots (shared width, constant
    offset) on the window covering the group; a group keeps the fitted positions when the fit has about one spot's
    width, positive amplitudes and moves no spot by more than one sigma."""
    if len(pos) < 2:
        return pos
    pairs = _close(pos, sig, CLUSTER_DISTANCE)
    lab0, _ = _groups(len(pos), pairs)
    bad = np.bincount(lab0, weights=~spotlike, minlength=len(pos))  # groups with an irregular member: left alone
    lab, sizes = _groups(len(pos), pairs[bad[lab0[pairs[:, 0]]] == 0])
    out = pos.copy()
    for k in range(2, CLUSTER_MAX + 1):  # all groups of k detections in one batch of fits
        mem = _members(lab, sizes, k)
        if len(mem) == 0:
            continue
        new, amp, w, _, _, _ = _joint_fit(flat, pos, mem, sig)
        ok = ((np.abs(w - 1) < 0.4) & (amp > 0).all(1) & (np.linalg.norm((new - pos[mem]) / sig, axis=2) < 1).all(1))
        out[mem[ok]] = new[ok]
    return out


def _peaks(resp: np.ndarray, thr: np.ndarray, md: int, exclude_border: bool) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of ``resp`` (scales, *space) above ``thr`` per scale, at least ``md`` px apart in space."""
    nd = resp.ndim - 1
    if len(resp) == 1:
        r = resp[0]
        above = np.flatnonzero(r.ravel() > thr[0])
        if len(above) < 0.05 * r.size:  # few candidates: compare each with its window (a full max filter costs more)
            from ._spotfit import local_maxima

            coords = np.stack(np.unravel_index(above, r.shape), axis=1).astype(np.int64)
            pk = coords[local_maxima(np.ascontiguousarray(r).ravel(), np.array(r.shape, np.int64), coords,
                                     _offsets((md,) * nd))]
        else:
            mx = ndi.maximum_filter(r, size=2 * md + 1, mode="nearest")
            pk = np.argwhere((r == mx) & (r > thr[0]))
        pk = np.concatenate([np.zeros((len(pk), 1), int), pk], 1)
    else:
        fp = np.ones((3,) + (2 * md + 1,) * nd, bool)
        mx = ndi.maximum_filter(resp, footprint=fp, mode="nearest")
        pk = np.argwhere((resp == mx) & (resp > thr.reshape((-1,) + (1,) * nd)))
    if exclude_border and len(pk):
        shape = np.array(resp.shape[1:])
        pk = pk[((pk[:, 1:] >= md) & (pk[:, 1:] < shape - md)).all(axis=1)]
    return pk[:, 0], pk[:, 1:]


def detect_blobs(image, *, sigma: float | None = None, sigma_range: tuple[float, float] | None = None,
                 num_sigma: int = 3, threshold: float | None = None, threshold_snr: float = 5.0,
                 spacing=None, min_distance: int | None = None, exclude_border: bool = False,
                 split: bool = True, detection_scale: float = 0.7, polarity: str = "auto",
                 model_error: float = MODEL_ERROR, image_error: float = 0.0) -> pd.DataFrame:
    """Detect bright or dark blobs in one 2D or 3D image with sub-pixel positions.

    Parameters
    ----------
    image : array_like, shape (y, x) or (z, y, x)
        One frame (a pixel stack or an APR reconstruction).
    sigma : float or None
        Expected blob sigma in pixels of the finest axis (a Gaussian spot of width ``sigma``); used when
        ``sigma_range`` is None. None (the default; it was a fixed 2.0 before): estimated from the image by
        :func:`napari_dynfit.detect.size.estimate_movie_spot_sigma` (the scale of its strongest spots of the
        objects' polarity), recorded in ``attrs["sigma"]`` and ``attrs["sigma_choice"]``.
    sigma_range : (float, float), optional
        Search scales from ``sigma_range[0]`` to ``sigma_range[1]`` (``num_sigma`` scales, log-spaced).
    num_sigma : int
        Number of scales in ``sigma_range``.
    threshold : float, optional
        Absolute threshold on the scale-normalised LoG response (``-sigma^2 LoG`` of the flattened image,
        image units). Default: ``threshold_snr`` times the robust noise level of the response.
    threshold_snr : float
        Multiple of the response's noise level (1.4826 MAD about the median) used when ``threshold`` is None.
    spacing : sequence of float, optional
        Physical size of a pixel along ``(z,) y, x`` (anisotropic stacks): sigmas become per-axis.
    min_distance : int, optional
        Minimum distance between maxima in pixels (default ``max(1, round(sigma))``).
    exclude_border : bool
        Drop maxima within ``min_distance`` of the border.
    split : bool
        Split single maxima that are two unresolved spots (one- vs two-spot fits of elongated blobs, see the module
        docstring). Maxima closer than 2 sigmas are always tested the same way (kept as two only where they are two
        spots).
    detection_scale : float
        Maxima are searched on the LoG at ``detection_scale * sigma``: below 1 it separates close spots
        (at 0.7, pairs down to about 2.4 sigma apart instead of 3 sigma) at a small cost in noise.
    polarity : {"auto", "bright", "dark"}
        Objects brighter (fluorescence) or darker (brightfield beads, absorbing objects) than the background;
        ``"auto"`` decides from the skewness of the background-flattened image
        (:func:`napari_dynfit.detect.contrast.decide_polarity`).
    model_error : float
        Relative error of a Gaussian spot as a model of one object (fraction of its peak per pixel): two spots must
        beat one by more than this error (added in quadrature to the image's error) can explain; larger values keep
        more irregular objects whole.
    image_error : float
        Relative error of the image itself beyond its pixel noise (fraction of a blob's peak), e.g. the relative
        error of an APR reconstruction (``dynfit detect`` on ``.aprmovie`` and the pipeline pass it): added to the
        measured pixel noise wherever fits are compared with the noise.

    Returns
    -------
    pandas.DataFrame
        Columns ``[z,] y, x`` (pixels, sub-pixel, inside the image), ``intensity`` (contrast above the local
        background, > 0; for dark objects the depth below it) and ``size`` (blob sigma in pixels of the finest
        axis), one row per blob; ``attrs["polarity"]`` holds the polarity used and ``attrs["skewness"]`` the
        statistic that decided it (``"auto"``); ``attrs["sigma"]`` the blob sigma used (None with ``sigma_range``)
        and ``attrs["sigma_choice"]`` where it came from (``"given"`` or the estimate's one-line summary).
    """
    img = _check_image(image)
    nd = img.ndim
    sp = np.ones(nd) if spacing is None else np.asarray(spacing, float)[-nd:]
    if sp.shape != (nd,) or (sp <= 0).any():
        raise InputError(f"spacing must hold {nd} positive numbers (one per axis of the image), got {spacing}")
    sigma, polarity, skew_est, choice = resolve_spot_sigma(img[None], sigma, sigma_range, spacing=sp,
                                                          polarity=polarity)
    if sigma_range is None:
        sigmas = np.array([float(sigma)])
    else:
        lo, hi = map(float, sigma_range)
        if not 0 < lo <= hi:
            raise InputError(f"sigma_range must be 0 < low <= high, got {sigma_range}")
        sigmas = np.geomspace(lo, hi, max(int(num_sigma), 1)) if hi > lo else np.array([lo])
    if not 0 < detection_scale <= 2:
        raise InputError(f"detection_scale must be in (0, 2], got {detection_scale}")
    for name, value in (("model_error", model_error), ("image_error", image_error)):
        if not 0 <= value < 1:
            raise InputError(f"{name} must be in [0, 1), got {value}")
    err = (float(model_error), float(image_error))
    if (sigmas <= 0).any():
        raise InputError(f"sigma must be positive, got {sigma}")
    flat, pol, skew = flatten(img, _pixel_sigmas(sigmas.max(), sp), polarity)
    resp = np.stack([_log_response(flat, _pixel_sigmas(s * detection_scale, sp), -(s ** 2)) for s in sigmas])
    censored = _censored(img)
    if threshold is None:  # one threshold per scale: the noise of the response falls with the scale
        thr = np.empty(len(sigmas))
        for k, r in enumerate(resp):
            r = r if censored is None else r[~censored]
            v = r.ravel()[:: max(1, r.size // 15_000)]  # a subsample estimates the noise as well, 3-10x faster
            med = np.median(v)
            thr[k] = med + threshold_snr * max(1.4826 * np.median(np.abs(v - med)), 1e-12)
    else:
        thr = np.full(len(sigmas), float(threshold))
    md = max(1, int(round(sigmas.min()))) if min_distance is None else int(min_distance)
    cols = list(AXES[-nd:])
    scale_idx, peaks = _peaks(resp, thr, md, exclude_border)
    shape = np.array(img.shape)
    noise = _pixel_noise(flat, censored)
    parts = [(np.zeros((0, nd)), np.zeros(0), np.zeros(0, int))]
    for k in np.unique(scale_idx):
        sig = _pixel_sigmas(sigmas[k], sp)
        pk = peaks[scale_idx == k]
        p = _weighted_centroid(flat, _refine(resp[k], pk), sig)
        p, paired = _close_pairs(p, resp[k][tuple(pk.T)], sig, flat, noise, err)
        if split:
            p, spotlike = _split_merged(flat, p, sig, noise, err, paired)
        else:
            spotlike = _shape(flat, p, sig)[-1] if len(p) else np.zeros(0, bool)
        p = _refine_clusters(flat, p, sig, spotlike)
        p = np.clip(p, 0, shape - 1)  # a spot cut by the border keeps a position inside the image
        parts.append((p, _intensity(flat, p, sig), np.full(len(p), k)))
    pos, intensity, scale_idx = (np.concatenate(x) for x in zip(*parts))
    keep = intensity > 0  # a maximum of the band-pass at or below the local background is not an object
    out = pd.DataFrame({**{c: pos[keep, a] for a, c in enumerate(cols)}, "intensity": intensity[keep],
                        "size": sigmas[scale_idx[keep]]})
    out.attrs.update(polarity=pol, skewness=skew if skew_est is None else skew_est, sigma=sigma, sigma_choice=choice)
    return out


def resolve_spot_sigma(movie, sigma: float | None = None, sigma_range: tuple[float, float] | None = None, *,
                       spacing=None, polarity: str = "auto",
                       decide_polarity: bool = False) -> tuple[float | None, str, float | None, str]:
    """The blob size and polarity that detection uses: the one rule of :func:`detect_blobs`, :func:`detect_movie`
    and :func:`napari_dynfit.pipeline.process_movie` / ``process_frame``.

    A given ``sigma`` (or ``sigma_range``) is kept as it is; ``sigma=None`` (with no ``sigma_range``) is estimated
    from the movie by :func:`napari_dynfit.detect.size.estimate_movie_spot_sigma` (frames at 1/4, 1/2, 3/4), which
    also decides an ``"auto"`` polarity.

    Parameters
    ----------
    movie : array_like, shape (t, [z,] y, x)
        Any object indexable by frame (numpy, dask, zarr, lazy APR frames); a single image as ``image[None]``.
        Only read when ``sigma`` is estimated.
    sigma : float or None
        Blob sigma in pixels of the finest axis, or None to estimate it.
    sigma_range : (float, float), optional
        A range of scales (pixels of the finest axis); when given, nothing is estimated and ``sigma`` is returned
        as given (None stays None).
    spacing : sequence of float, optional
        Pixel size along ``([z,] y, x)`` (anisotropic voxels; any length unit, only the ratios matter).
    polarity : {"auto", "bright", "dark"}
        The objects' polarity, or ``"auto"``.
    decide_polarity : bool
        Decide an ``"auto"`` polarity that the size estimate left open (a given size) for the whole movie with
        :func:`movie_polarity` at the largest scale (the movie-level rule of :func:`detect_movie` and
        ``process_movie``); off: it may come back ``"auto"`` (a single image decides its own).

    Returns
    -------
    sigma : float or None
        The blob sigma to detect at (pixels of the finest axis); None only when ``sigma_range`` is given without
        ``sigma``.
    polarity : str
        ``"bright"`` or ``"dark"`` when the estimate (or ``decide_polarity``) decided it; otherwise ``polarity``
        unchanged (may still be ``"auto"``).
    skewness : float or None
        The skewness that decided an ``"auto"`` polarity (dimensionless), else None.
    choice : str
        ``"given"``, ``"given (sigma_range)"`` or the estimate's one-line summary
        (:meth:`napari_dynfit.detect.size.SpotSize.summary`).

    Raises
    ------
    InputError
        An unknown polarity, or no frame with spots of the polarity when estimating (set the size by hand).
    """
    if sigma_range is not None or sigma is not None:
        sigma = None if sigma is None else float(sigma)
        skew, choice = None, "given (sigma_range)" if sigma_range is not None else "given"
    else:
        from .size import estimate_movie_spot_sigma

        est = estimate_movie_spot_sigma(movie, spacing=spacing, polarity=check_polarity(polarity))
        sigma, polarity, skew, choice = est.sigma, est.polarity, est.skewness, est.summary()
    if decide_polarity and check_polarity(polarity) == "auto":
        polarity, skew = movie_polarity(movie, sigma=(sigma_range or (sigma,))[-1], spacing=spacing)
    return sigma, polarity, skew, choice


def movie_polarity(movie, *, sigma: float = 2.0, spacing=None, n_frames: int = 5,
                   warn: bool = True) -> tuple[str, float]:
    """Polarity of the objects in a movie (``"bright"`` or ``"dark"``) and the median skewness that decided it.

    The skewness of the background-flattened intensities (:func:`napari_dynfit.detect.contrast.skewness`) of up
    to ``n_frames`` frames spread over the movie; one decision for the whole movie, so that every frame is detected
    the same way. ``warn``: warn when the skewness is ambiguous (then ``"bright"``).
    """
    from .contrast import background_block, decide_polarity, local_background, skewness

    n = movie.shape[0]
    skews = []
    for t in np.unique(np.linspace(0, n - 1, min(n, n_frames)).round().astype(int)):
        img = _check_image(np.asarray(movie[t]), what=f"frame {t}")
        sp = np.ones(img.ndim) if spacing is None else np.asarray(spacing, float)[-img.ndim:]
        sig = _pixel_sigmas(sigma, sp)
        skews.append(skewness(img, local_background(img, background_block(sig)), sig))
    skew = float(np.median(skews))
    return decide_polarity(skew, warn=warn), skew


def detect_movie(movie, *, sigma: float | None = None, sigma_range: tuple[float, float] | None = None,
                 num_sigma: int = 3, threshold: float | None = None, threshold_snr: float = 5.0,
                 spacing=None, min_distance: int | None = None, exclude_border: bool = False,
                 split: bool = True, detection_scale: float = 0.7, polarity: str = "auto",
                 model_error: float = MODEL_ERROR, image_error: float = 0.0, n_workers: int = 2) -> pd.DataFrame:
    """Detect blobs in every frame of a movie.

    Parameters
    ----------
    movie : array_like, shape (t, y, x) or (t, z, y, x)
        Any object indexable by frame (numpy, dask, zarr, lazily reconstructed APR frames).
    sigma, sigma_range, num_sigma, threshold, threshold_snr, spacing, min_distance, exclude_border, split, \
detection_scale, polarity, model_error, image_error
        As in :func:`detect_blobs` (applied to every frame); ``polarity="auto"`` is decided once for the movie, and
        ``sigma=None`` (the default, also ``dynfit detect``'s and the napari panel's) is estimated once for the
        movie by :func:`napari_dynfit.detect.size.estimate_movie_spot_sigma` (median over the frames at 1/4, 1/2,
        3/4; it then also decides an ``"auto"`` polarity).
    n_workers : int
        Frames processed in parallel (threads).

    Returns
    -------
    pandas.DataFrame
        The detections table: ``frame, [z,] y, x, intensity, size``; ``attrs["spacing"]`` is set when
        ``spacing`` is given, ``attrs["polarity"]`` to the polarity used (with ``polarity="auto"``, the default,
        decided once for the movie by :func:`movie_polarity`, whose skewness is ``attrs["skewness"]``),
        ``attrs["sigma"]`` to the blob sigma used and ``attrs["sigma_choice"]`` to ``"given"`` or the estimate's
        one-line summary (:meth:`napari_dynfit.detect.size.SpotSize.summary`).
    """
    nd = getattr(movie, "ndim", None)
    if nd is None:
        movie = np.asarray(movie)
        nd = movie.ndim
    if nd not in (3, 4):
        raise InputError(f"movie has {nd} dimensions; expected (t, y, x) or (t, z, y, x): pick one channel")
    n = movie.shape[0]
    sp = None if spacing is None else np.asarray(spacing, float)[-(nd - 1):]
    sigma, polarity, skew, choice = resolve_spot_sigma(movie, sigma, sigma_range, spacing=sp, polarity=polarity,
                                                       decide_polarity=True)
    kwargs = dict(sigma=sigma, sigma_range=sigma_range, num_sigma=num_sigma, threshold=threshold,
                  threshold_snr=threshold_snr, spacing=spacing, min_distance=min_distance,
                  exclude_border=exclude_border, split=split, detection_scale=detection_scale, polarity=polarity,
                  model_error=model_error, image_error=image_error)

    def one(t):
        df = detect_blobs(np.asarray(movie[t]), **kwargs)
        df.insert(0, "frame", t)
        return df

    with ThreadPoolExecutor(max_workers=max(1, int(n_workers))) as pool:
        parts = list(progress_iter(pool.map(one, range(n)), total=n, desc="detecting"))
    out = pd.concat(parts, ignore_index=True)
    out["frame"] = out["frame"].astype(np.int64)
    out.attrs = {"polarity": kwargs["polarity"], "skewness": skew, "sigma": sigma, "sigma_choice": choice}
    if spacing is not None:
        out.attrs["spacing"] = [float(s) for s in np.asarray(spacing, float)[-(nd - 1):]]
    return out
