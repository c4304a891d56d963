"""Scale-space blob detection with sub-pixel refinement, for particles in 2D/3D movies.

Why our own rather than :func:`skimage.feature.blob_log` alone: ``blob_log`` returns integer
positions (errors up to 0.5 px per axis), applies one isotropic sigma and has no noise-relative
threshold. Here the scale-normalised Laplacian of Gaussian (LoG) is computed with scipy per scale (at 0.7 of the
blob width by default, which separates close pairs better)
(anisotropic voxels take per-axis sigmas), maxima are taken in (scale, space) with
:func:`skimage.feature.peak_local_max`, the threshold defaults to a multiple of the robust noise
level of the filter response (median absolute deviation), and each maximum is refined to sub-pixel
precision with one Newton step on the quadratic model of the response (gradient and Hessian by
central differences), followed by a Gaussian-weighted centroid of the background-subtracted image.
Two spots closer than about twice the PSF width make a single maximum (no peak detector can separate
them); with ``split=True`` every blob whose windowed second moment exceeds that of one spot is fitted
with one and with two Gaussians (width fitted, shared; batched Levenberg-Marquardt in numpy) and split
when the Bayesian information criterion prefers two.
Frames are processed in a thread pool (scipy's filters release the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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


def _window(img: np.ndarray, pos: np.ndarray, half: np.ndarray, *, inside: bool = False):
    """Pixels of ``img`` in windows of +-``half`` around the pixels nearest to ``pos`` (n, nd).

    Returns the offsets of the window pixels from ``pos`` (n, k, nd), their values (n, k; 0 outside the image) and,
    with ``inside=True``, the mask of pixels inside the image (n, k). One gather on the zero-padded, raveled image
    (linear indices), which is several times faster than indexing with (n, k, nd) coordinates.
    """
    nd = img.ndim
    half = np.asarray(half, int)
    grids = np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij")
    offs = np.stack([g.ravel() for g in grids], axis=1)  # (k, nd)
    shape = np.array(img.shape)
    base = np.clip(np.round(pos).astype(int), 0, shape - 1)
    padded = np.pad(img, [(h, h) for h in half])
    strides = np.cumprod((1,) + padded.shape[::-1])[:-1][::-1]
    lin = ((base + half) @ strides)[:, None] + (offs @ strides)[None]
    vals = padded.ravel()[lin]
    d = offs[None] + (base - pos)[:, None, :]
    if not inside:
        return d, vals
    mask = np.pad(np.ones(img.shape, bool), [(h, h) for h in half])
    return d, vals, mask.ravel()[lin]


def _weighted_centroid(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Gaussian-weighted centroid of the flattened image ``flat`` (objects positive) in +-2 sigma around ``pos``.

    For a Gaussian spot of width sigma at ``c``, the product of the spot and a weight of the same width centred on
    ``pos`` is a Gaussian centred half-way, at ``(c + pos) / 2``: the shift of the weighted centroid is doubled (an
    unbiased one-step estimate, 20-30 % lower median error than the plain weighted centroid on rendered spots),
    clipped to +-1 px.
    """
    half = np.maximum(np.ceil(2 * sig).astype(int), 1)
    d, vals = _window(flat, pos, half)
    w = np.clip(vals, 0, None) * np.exp(-0.5 * ((d / sig) ** 2).sum(axis=2))
    sw = w.sum(axis=1)
    shift = (w[..., None] * d).sum(axis=1) / np.where(sw > 0, sw, 1)[:, None]
    return pos + np.where((sw > 0)[:, None], np.clip(2 * shift, -1, 1), 0.0)


def _intensity(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Mean of ``flat`` weighted by a Gaussian of half the blob width at ``pos``: the peak height above the local
    background, slightly smoothed (negative for a maximum of the band-pass that is no object)."""
    half = np.maximum(np.ceil(sig).astype(int), 1)
    d, vals, inside = _window(flat, pos, half, inside=True)
    g = np.where(inside, np.exp(-2.0 * ((d / sig) ** 2).sum(axis=2)), 0.0)
    return (g * vals).sum(axis=1) / np.maximum(g.sum(axis=1), 1e-12)


def _fit_gaussians(vals: np.ndarray, coords: np.ndarray, sig: np.ndarray, q0: np.ndarray, iters: int = 15,
                   rss_stop: float = np.inf):
    """Batched Levenberg-Marquardt fit of ``k`` Gaussians of one shared width to many windows at once.

    ``vals`` (c, m) pixel values above background, ``coords`` (c, m, nd) pixel offsets, ``q0`` (c, k*(nd+1)+1)
    initial ``[amplitude, centre...]`` per Gaussian and last a width factor (the widths are ``factor * sig``).
    Fits whose residual sum of squares is still above ``rss_stop`` after 3 iterations are abandoned (their
    result is then not a minimum). Returns the fitted parameters and residual sums of squares.
    """
    c, m, nd = coords.shape
    k = (q0.shape[1] - 1) // (nd + 1)

    def model(q, coords):
        n = len(q)
        f = np.zeros((n, m))
        jac = np.empty((n, m, q.shape[1]))
        jac[:, :, -1] = 0.0
        w = q[:, -1][:, None]
        for g in range(k):
            a = q[:, g * (nd + 1)]
            cen = q[:, g * (nd + 1) + 1:(g + 1) * (nd + 1)]
            u = (coords - cen[:, None, :]) / (sig * w[..., None])
            u2 = (u ** 2).sum(-1)
            e = np.exp(-0.5 * u2)
            f += a[:, None] * e
            jac[:, :, g * (nd + 1)] = e
            jac[:, :, g * (nd + 1) + 1:(g + 1) * (nd + 1)] = (a[:, None] * e)[..., None] * u / (sig * w[..., None])
            jac[:, :, -1] += a[:, None] * e * u2 / w
        return f, jac

    q = q0.copy()
    f, jac = model(q, coords)
    rss = ((f - vals) ** 2).sum(1)
    lam = np.full(c, 1e-2)
    eye = np.eye(q.shape[1])
    act = np.arange(c)  # fits still improving: only these are evaluated (most converge in a few steps)
    for it in range(iters):
        if it in (1, 3):  # a fit this far above the target after 1 (3) steps does not reach it
            act = act[rss[act] < rss_stop * (2.5 if it == 1 else 1.0)]
            if len(act) == 0:
                break
        r = f[act] - vals[act]
        jt = jac[act].transpose(0, 2, 1)
        jtj = jt @ jac[act]
        jtr = (jt @ r[..., None])[..., 0]
        la = lam[act]
        step = -np.linalg.solve(jtj + la[:, None, None] * (jtj * eye + 1e-9 * eye), jtr[..., None])[..., 0]
        q_new = q[act] + step
        f_new, jac_new = model(q_new, coords[act])
        rss_new = ((f_new - vals[act]) ** 2).sum(1)
        better = rss_new < rss[act]
        converged = np.where(better, rss[act] - rss_new < 1e-3 * rss[act], la > 1e2)
        ib = act[better]
        q[ib], f[ib], jac[ib], rss[ib] = q_new[better], f_new[better], jac_new[better], rss_new[better]
        lam[act] = np.where(better, la / 3, la * 4)
        act = act[~converged]
        if len(act) == 0:
            break
    return q, rss


#: A blob is a split candidate when the ratio of the two extreme eigenvalues of the Hessian of the image smoothed at
#: the blob scale (in units of sigma) is below this: one round spot gives 0.85-1 at SNR >= 10 (median 0.92-0.98),
#: two spots 1.6 sigma apart 0.68-0.77 (99th percentile 0.77); closer pairs approach 1 (the fits decide).
SPLIT_HESSIAN_RATIO = 0.9
#: Two fitted components closer than this (in sigmas) are one object.
SPLIT_MIN_SEPARATION = 0.8
#: The two-spot model must explain the blob to within the noise: residual sum of squares per pixel below this many
#: noise variances (true pairs give 0.5-2.2 at SNR 10-30; irregular objects such as brightfield beads with halos,
#: which one Gaussian does not fit either, 10 or more).
SPLIT_MAX_CHI2 = 4.0
#: Only blobs peaking above this many noise standard deviations are tested for a split: below, noise makes single
#: spots look elongated and the fits cannot tell two spots from one (and cost most of the time at low SNR).
SPLIT_MIN_SNR = 8.0


def _pixel_noise(flat: np.ndarray) -> float:
    """Robust standard deviation of the pixel noise: MAD of neighbour differences along the last axis / sqrt 2.

    Returns ``inf`` (no noise-based test) when that is below a tenth of the spread (MAD) of the flattened image:
    smoothed or piecewise-constant images (APR reconstructions) have no independent pixel noise to measure a fit
    against.
    """
    step = max(1, flat.size // 30_000)
    v = np.diff(flat, axis=-1).ravel()[::step]
    f = flat.ravel()[::step]
    noise = 1.4826 * np.median(np.abs(v - np.median(v))) / np.sqrt(2)
    spread = 1.4826 * np.median(np.abs(f - np.median(f)))
    return float(noise) if noise >= 0.1 * spread and noise > 0 else np.inf


def _shape_hessian(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray):
    """Hessian (in units of sigma) of ``flat`` smoothed by a Gaussian of width ``sig`` at each ``pos``, computed on a
    window around each blob only (far cheaper than filtering the frame). Returns eigenvalues (n, nd), ascending,
    and eigenvectors (n, nd, nd) in pixel axes."""
    half = np.ceil(3 * sig).astype(int)
    d, vals = _window(flat, pos, half)
    u = d / sig  # (n, k, nd)
    g = vals * np.exp(-0.5 * (u ** 2).sum(axis=2))
    h = (g[..., None] * u).transpose(0, 2, 1) @ u - g.sum(axis=1)[:, None, None] * np.eye(flat.ndim)
    return np.linalg.eigh(h)


def _split_merged(flat: np.ndarray, pos: np.ndarray, sig: np.ndarray, noise: float) -> np.ndarray:
    """Split blobs that are two unresolved spots (see the module docstring); returns the new positions.

    Only blobs elongated beyond one spot (Hessian eigenvalue ratio below :data:`SPLIT_HESSIAN_RATIO`) are fitted
    with one and two Gaussians; a blob is split when the Bayesian information criterion prefers two, both
    components have a width close to one spot's, comparable amplitudes and lie at least
    :data:`SPLIT_MIN_SEPARATION` sigmas apart, and the two spots fit the blob to within the pixel ``noise``
    (:data:`SPLIT_MAX_CHI2`): a blob that is not made of Gaussian spots (a bead with its halo) is never split. Without
    measurable pixel noise (``noise`` inf: APR reconstructions) the last test is skipped.
    """
    nd = flat.ndim
    if len(pos) == 0:
        return pos
    ev, evec = _shape_hessian(flat, pos, sig)
    # at a maximum the eigenvalues are negative; ev[:, -1] / ev[:, 0] < ratio: flatter along evec[:, :, -1] (a pair)
    cand = np.flatnonzero((ev[:, 0] < 0) & (ev[:, -1] > SPLIT_HESSIAN_RATIO * ev[:, 0]))
    if len(cand) == 0:
        return pos
    half = np.ceil(2.5 * sig).astype(int)
    coords, vals = _window(flat, pos[cand], half)  # offsets from the blob centre, values
    if np.isfinite(noise):
        bright = vals.max(axis=1) > SPLIT_MIN_SNR * noise
        cand, coords, vals = cand[bright], coords[bright], vals[bright]
        if len(cand) == 0:
            return pos
    # two spots of width sigma at +-delta along the flat axis give the Hessian ratio r = 1 - delta^2 / (2 sigma^2):
    # place them there, fit both amplitudes by linear least squares, and keep for the non-linear fit only the blobs
    # that this start already explains to within a few times the target (irregular objects are far off)
    r = ev[cand, -1] / ev[cand, 0]
    sep = np.sqrt(2 * np.clip(1 - r, 0.05, 1))[:, None] * sig * evec[cand, :, -1]
    m = vals.shape[1]
    chi_max = SPLIT_MAX_CHI2 * m * noise ** 2
    g1 = np.exp(-0.5 * (((coords - sep[:, None, :]) / sig) ** 2).sum(axis=2))
    g2 = np.exp(-0.5 * (((coords + sep[:, None, :]) / sig) ** 2).sum(axis=2))
    gram = np.stack([np.stack([(g1 * g1).sum(1), (g1 * g2).sum(1)], -1),
                     np.stack([(g1 * g2).sum(1), (g2 * g2).sum(1)], -1)], -2)
    rhs = np.stack([(g1 * vals).sum(1), (g2 * vals).sum(1)], -1)
    amp = np.linalg.solve(gram + 1e-9 * np.eye(2), rhs[..., None])[..., 0]
    rss0 = (vals ** 2).sum(1) - (amp * rhs).sum(1)
    near = np.flatnonzero(rss0 < 4 * chi_max)
    if len(near) == 0:
        return pos
    cand, vals, coords, sep, amp = cand[near], vals[near], coords[near], sep[near], amp[near]
    ones = np.ones((len(cand), 1))
    q2, rss2 = _fit_gaussians(vals, coords, sig, np.concatenate([amp[:, :1], sep, amp[:, 1:], -sep, ones], 1),
                              rss_stop=3 * chi_max)
    a1, a2 = q2[:, 0], q2[:, nd + 1]
    c1, c2 = q2[:, 1:nd + 1], q2[:, nd + 2:2 * nd + 2]
    sep_sig = np.linalg.norm((c1 - c2) / sig, axis=1)
    w2 = q2[:, -1]
    good = ((rss2 < chi_max) & (np.abs(w2 - 1) < 0.25)
            & (np.minimum(a1, a2) > 0.25 * np.maximum(a1, a2)) & (sep_sig > SPLIT_MIN_SEPARATION) & (sep_sig < 3)
            & (np.abs(c1 / sig) < 2).all(1) & (np.abs(c2 / sig) < 2).all(1))
    if good.any():  # the one-spot fit (for the information criterion) only where two spots explain the blob
        g = np.flatnonzero(good)
        q1, rss1 = _fit_gaussians(vals[g], coords[g], sig,
                                  np.concatenate([vals[g].max(1)[:, None], np.zeros((len(g), nd)), ones[g]], 1))
        bic_gain = m * np.log(rss1 / np.maximum(rss2[g], 1e-12)) - (nd + 1) * np.log(m)
        good[g] = (bic_gain > 4) & (q1[:, -1] > w2[g])
    if not good.any():
        return pos
    from scipy.spatial import cKDTree

    gi = cand[good]
    keep = np.ones(len(pos), bool)
    keep[gi] = False
    # unsplit blobs first, so that a split half duplicating one of them (two neighbouring blobs both split
    # towards each other) is the one dropped
    new = np.concatenate([pos[keep], pos[gi] + c1[good], pos[gi] + c2[good]])
    drop = np.zeros(len(new), bool)
    for i, j in sorted(cKDTree(new / sig).query_pairs(SPLIT_MIN_SEPARATION)):
        if not drop[i]:
            drop[j] = True
    return new[~drop]


#: Maxima closer than this (in sigmas) are merged into one blob at their mean position: texture or noise within one
#: object (a bead; requiring a dip of the response between them still let 1-3 % of the beads of a brightfield movie
#: count twice); if they are two spots, the split (two-spot fit within the noise) separates them again.
MERGE_DISTANCE = 2.0


def _merge_close(pos: np.ndarray, peaks: np.ndarray, resp: np.ndarray, sig: np.ndarray):
    """Merge maxima closer than :data:`MERGE_DISTANCE` sigmas: the strongest stays, at the response-weighted mean
    position of the group (centred, so that the split can still find two spots there). Returns the kept indices of
    ``pos`` (refined positions of the integer ``peaks`` of ``resp``) and their positions."""
    from scipy.spatial import cKDTree

    # distances between the refined positions (between the integer maxima instead, dense clusters of spots keep more
    # spots, but 5 % of the beads of a brightfield movie count twice)
    pairs = cKDTree(pos / sig).query_pairs(MERGE_DISTANCE, output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(len(pos)), pos
    strength = np.maximum(resp[tuple(peaks.T)], 1e-12)
    order = np.argsort(-strength, kind="stable")
    rank = np.empty(len(pos), int)
    rank[order] = np.arange(len(pos))
    drop = np.zeros(len(pos), bool)
    wsum = strength.copy()
    psum = pos * strength[:, None]
    # strongest first: a maximum joins a kept, stronger one within the distance
    pairs = np.where((rank[pairs[:, 0]] < rank[pairs[:, 1]])[:, None], pairs, pairs[:, ::-1])  # (stronger, weaker)
    for i, j in pairs[np.argsort(rank[pairs[:, 0]], kind="stable")]:
        if not drop[i] and not drop[j]:
            drop[j] = True
            wsum[i] += strength[j]
            psum[i] += strength[j] * pos[j]
    keep = np.flatnonzero(~drop)
    return keep, psum[keep] / wsum[keep, None]


def _peaks(resp: np.ndarray, thr: np.ndarray, md: int, exclude_border: bool) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of ``resp`` (scales, *space) above ``thr`` per scale, at least ``md`` px apart in space."""
    nd = resp.ndim - 1
    if len(resp) == 1:
        r = resp[0]
        above = np.flatnonzero(r.ravel() > thr[0])
        if len(above) < 0.05 * r.size:  # few candidates: compare each with its window (a full max filter costs more)
            pad = np.pad(r, md, constant_values=-np.inf)
            strides = np.cumprod((1,) + pad.shape[::-1])[:-1][::-1]
            grids = np.meshgrid(*[np.arange(-md, md + 1)] * nd, indexing="ij")
            offs = np.stack([g.ravel() for g in grids], axis=1) @ strides
            coords = np.stack(np.unravel_index(above, r.shape), axis=1)
            lin = (coords + md) @ strides
            is_max = pad.ravel()[lin[:, None] + offs[None]].max(axis=1) <= r.ravel()[above]
            pk = coords[is_max]
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


def detect_blobs(image, *, sigma: float = 2.0, sigma_range: tuple[float, float] | None = None,
                 num_sigma: int = 3, threshold: float | None = None, threshold_snr: float = 5.0,
                 spacing=None, min_distance: int | None = None, exclude_border: bool = False,
                 split: bool = True, detection_scale: float = 0.7, polarity: str = "auto") -> pd.DataFrame:
    """Detect bright or dark blobs in one 2D or 3D image with sub-pixel positions.

    Parameters
    ----------
    image : array_like, shape (y, x) or (z, y, x)
        One frame (a pixel stack or an APR reconstruction).
    sigma : float
        Expected blob sigma in pixels of the finest axis (a Gaussian spot of width ``sigma``); used when
        ``sigma_range`` is None.
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
        Split blobs that are two unresolved spots (two-Gaussian fit of elongated blobs, see the module docstring).
    detection_scale : float
        Maxima are searched on the LoG at ``detection_scale * sigma``: below 1 it separates close spots
        (at 0.7, pairs down to about 2.4 sigma apart instead of 3 sigma) at a small cost in noise.
    polarity : {"auto", "bright", "dark"}
        Objects brighter (fluorescence) or darker (brightfield beads, absorbing objects) than the background;
        ``"auto"`` decides from the skewness of the background-flattened image
        (:func:`napari_dynfit.detect.contrast.decide_polarity`).

    Returns
    -------
    pandas.DataFrame
        Columns ``[z,] y, x`` (pixels, sub-pixel, inside the image), ``intensity`` (contrast above the local
        background, > 0; for dark objects the depth below it) and ``size`` (blob sigma in pixels of the finest
        axis), one row per blob; ``attrs["polarity"]`` holds the polarity used and ``attrs["skewness"]`` the
        statistic that decided it (``"auto"``).
    """
    img = _check_image(image)
    nd = img.ndim
    sp = np.ones(nd) if spacing is None else np.asarray(spacing, float)[-nd:]
    if sp.shape != (nd,) or (sp <= 0).any():
        raise InputError(f"spacing must hold {nd} positive numbers (one per axis of the image), got {spacing}")
    if sigma_range is None:
        sigmas = np.array([float(sigma)])
    else:
        lo, hi = map(float, sigma_range)
        if not 0 < lo <= hi:
            raise InputError(f"sigma_range must be 0 < low <= high, got {sigma_range}")
        sigmas = np.geomspace(lo, hi, max(int(num_sigma), 1)) if hi > lo else np.array([lo])
    if not 0 < detection_scale <= 2:
        raise InputError(f"detection_scale must be in (0, 2], got {detection_scale}")
    if (sigmas <= 0).any():
        raise InputError(f"sigma must be positive, got {sigma}")
    flat, pol, skew = flatten(img, _pixel_sigmas(sigmas.max(), sp), polarity)
    resp = np.stack([-(s ** 2) * ndi.gaussian_laplace(flat, _pixel_sigmas(s * detection_scale, sp), truncate=3.0)
                     for s in sigmas])
    if threshold is None:  # one threshold per scale: the noise of the response falls with the scale
        thr = np.empty(len(sigmas))
        for k, r in enumerate(resp):
            v = r.ravel()[:: max(1, r.size // 30_000)]  # a subsample estimates the noise as well, 3-10x faster
            med = np.median(v)
            thr[k] = med + threshold_snr * max(1.4826 * np.median(np.abs(v - med)), 1e-12)
    else:
        thr = np.full(len(sigmas), float(threshold))
    md = max(1, int(round(sigmas.min()))) if min_distance is None else int(min_distance)
    cols = list(AXES[-nd:])
    scale_idx, peaks = _peaks(resp, thr, md, exclude_border)
    shape = np.array(img.shape)
    noise = _pixel_noise(flat) if split else 0.0
    parts = [(np.zeros((0, nd)), np.zeros(0), np.zeros(0, int))]
    for k in np.unique(scale_idx):
        sig = _pixel_sigmas(sigmas[k], sp)
        pk = peaks[scale_idx == k]
        p = _weighted_centroid(flat, _refine(resp[k], pk), sig)
        _, p = _merge_close(p, pk, resp[k], sig)
        if split:
            p = _split_merged(flat, p, sig, noise)
        p = np.clip(p, 0, shape - 1)  # a spot cut by the border keeps a position inside the image
        parts.append((p, _intensity(flat, p, sig), np.full(len(p), k)))
    pos, intensity, scale_idx = (np.concatenate(x) for x in zip(*parts))
    keep = intensity > 0  # a maximum of the band-pass at or below the local background is not an object
    out = pd.DataFrame(pos[keep], columns=cols)
    out["intensity"] = intensity[keep]
    out["size"] = sigmas[scale_idx[keep]]
    out.attrs.update(polarity=pol, skewness=skew)
    return out


def movie_polarity(movie, *, sigma: float = 2.0, spacing=None, n_frames: int = 5) -> tuple[str, float]:
    """Polarity of the objects in a movie (``"bright"`` or ``"dark"``) and the median skewness that decided it.

    The skewness of the background-flattened intensities (:func:`napari_dynfit.detect.contrast.skewness`) of up
    to ``n_frames`` frames spread over the movie; one decision for the whole movie, so that every frame is detected
    the same way.
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
    return decide_polarity(skew), skew


def detect_movie(movie, *, n_workers: int = 2, **kwargs) -> pd.DataFrame:
    """Detect blobs in every frame of a movie (see :func:`detect_blobs` for ``kwargs``).

    Parameters
    ----------
    movie : array_like, shape (t, y, x) or (t, z, y, x)
        Any object indexable by frame (numpy, dask, zarr, lazily reconstructed APR frames).
    n_workers : int
        Frames processed in parallel (threads).

    Returns
    -------
    pandas.DataFrame
        The detections table: ``frame, [z,] y, x, intensity, size``; ``attrs["spacing"]`` is set when
        ``spacing`` is given, ``attrs["polarity"]`` to the polarity used (with ``polarity="auto"``, the default,
        decided once for the movie by :func:`movie_polarity`, whose skewness is ``attrs["skewness"]``).
    """
    nd = getattr(movie, "ndim", None)
    if nd is None:
        movie = np.asarray(movie)
        nd = movie.ndim
    if nd not in (3, 4):
        raise InputError(f"movie has {nd} dimensions; expected (t, y, x) or (t, z, y, x): pick one channel")
    n = movie.shape[0]
    kwargs = dict(kwargs)
    skew = None
    if check_polarity(kwargs.get("polarity", "auto")) == "auto":
        sig = kwargs.get("sigma_range", (kwargs.get("sigma", 2.0),))[-1]
        kwargs["polarity"], skew = movie_polarity(movie, sigma=sig, spacing=kwargs.get("spacing"))

    def one(t):
        df = detect_blobs(np.asarray(movie[t]), **kwargs)
        df.insert(0, "frame", t)
        return df

    with ThreadPoolExecutor(max_workers=max(1, int(n_workers))) as pool:
        parts = list(progress_iter(pool.map(one, range(n)), total=n, desc="detecting"))
    out = pd.concat(parts, ignore_index=True)
    out["frame"] = out["frame"].astype(np.int64)
    out.attrs = {"polarity": kwargs["polarity"], "skewness": skew}
    if kwargs.get("spacing") is not None:
        out.attrs["spacing"] = [float(s) for s in np.asarray(kwargs["spacing"], float)[-(nd - 1):]]
    return out
