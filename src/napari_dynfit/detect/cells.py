"""Touching cells and nuclei from raw images: background flattening, polarity, seeded watershed, shape priors.

:func:`segment_cells` segments one 2D ``(y, x)`` or 3D ``(z, y, x)`` image; :func:`segment_movie` a whole
movie frame by frame (Dask via :func:`~napari_dynfit.parallel.map_frames`), with the parameters estimated once
from a few frames so that every frame is cut the same way.

Steps (``method="classic"``, all from scikit-image / scipy):

1. **Background and noise.** The background level is the mode of the lightly smoothed image (the peak of its
   histogram) and its spread the peak's half width at half maximum (robust to the cells in both tails). A
   flat-field surface is the normalised convolution of the background pixels (within 2 spreads of the mode) with
   a wide Gaussian, computed on a block-averaged image; it is subtracted (background flattening).
2. **Polarity.** ``bright`` (fluorescence), ``dark`` (brightfield / phase contrast) or ``auto``: when only one
   tail (pixels beyond :data:`MIN_SNR` background spreads) is present it holds the objects; when both are
   (phase contrast: dark cells with bright halos) the objects are the tail whose area in compact components
   (area x solidity) is larger: cells are compact, halos are rims and networks. Once the polarity is ``dark``
   the image is inverted and the halos become deep valleys, which is what separates touching cells.
3. **Foreground.** A threshold that cannot return the background as one object: half the median plateau of the
   cells' centres and ridges (the half-maximum edge of a blurred cell), never below :data:`MIN_SNR` background
   spreads, with hysteresis down to :data:`HYSTERESIS` of it (textured cell interiors stay connected). With
   halos the final masks grow (at most half a radius) into the dark-to-bright transition (:data:`HALO_EDGE`),
   where a phase-contrast cell's edge lies.
4. **Cell size.** The width ``2 r`` from the median of the distance-transform ridge (local maxima of the
   Euclidean distance transform of the foreground), for rods from its 95th percentile (:func:`_rod_radius`),
   unless ``diameter`` is given.
5. **Seeds and watershed.** A landscape, contrast (saturating at :data:`SATURATION` of the plateau) times
   distance to the edge in radii, peaks on a cell's centre or ridge and dips at necks, septa and the bright
   lines between touching cells. Its regional maxima seed a watershed: an over-segmentation.
6. **Shape priors.** Adjacent regions are merged greedily, highest saddle first, when the boundary between them
   is no constriction (the landscape's highest point on the boundary stays above ``constriction`` x the
   smaller of the two peaks: this is h-maxima suppression relative to the peaks) and the merged region is still
   one cell: for ``rods`` its width (from its second moments) stays that of one rod (at most
   :data:`ROD_MAX_WIDTH` ``2 r``), so
   fragments along a rod join while two rods side by side never do; for ``round`` nuclei its longest axis stays
   that of one nucleus (1.35 ``2 r``). ``kind="auto"`` decides before the watershed: in 2D from the ridge index
   of the foreground (distance-transform ridge length x width / area, :data:`RIDGE_INDEX`), in 3D from the median aspect
   ratio of its convex components (single cells, :data:`ROD_ASPECT`); round nuclei are cut on their cores
   (contrast above :data:`CORE` of the plateau, where blurred touching nuclei no longer share a neck) and grown
   back to the half-maximum edge (:func:`_cut_round`). Regions
   smaller than ``min_size`` join the neighbour they share the longest boundary with (or are dropped when
   isolated).

``method="learned"`` runs this package's small U-Net for rod-shaped cells in 2D phase contrast, trained only
on generated images (:mod:`napari_dynfit.detect.learned`; needs torch). ``method="auto"`` (the default) picks it
when the image is 2D, its estimated polarity is ``dark`` with bright halos (phase contrast), the kind is ``rods``
and torch can be imported, else ``classic`` (:func:`choose_method`; the choice and why in ``info["method"]`` and
``info["method_reason"]``). ``method="cellpose"`` / ``"stardist"``
run a deep-learning model instead (only when the package and its
weights are installed, or with a ``model`` object passed in; see :func:`segment_cells`). The parameters that
were used and estimated are returned in :attr:`CellSegmentation.info`.

Also :func:`match_segmentation`: precision, recall and F1 of a label image against ground truth at an IoU
threshold (one-to-one matches; at IoU > 0.5 matches are unique).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import InputError

__all__ = ["segment_cells", "segment_movie", "estimate_parameters", "match_segmentation", "CellSegmentation",
           "choose_method", "POLARITIES", "KINDS", "METHODS"]

POLARITIES = ("auto", "bright", "dark")
KINDS = ("auto", "rods", "round")
METHODS = ("auto", "classic", "learned", "cellpose", "stardist")
#: What ``method="auto"`` says (``info["note"]``, printed once by ``dynfit segment``) when the images are 2D phase
#: contrast rods, for which the learned back end is better, but torch cannot be imported.
NEEDS_TORCH = ("phase-contrast rods: the learned back end needs torch (pip install napari-dynfit[learn]); "
               "classic used")

#: Minimum contrast of the foreground, in background spreads (HWHM-based sigma).
MIN_SNR = 4.0
#: Low threshold of the hysteresis, as a fraction of the foreground threshold (1: no hysteresis). Chosen on
#: generated phase-contrast rod colonies: F1 0.983 / 0.894 at cell texture 0.15 / 0.3, against 0.991 / 0.758
#: without hysteresis.
HYSTERESIS = 0.5
#: Contrast (fraction of the plateau) above which the intensity factor of the landscape saturates.
SATURATION = 0.5
#: Smoothing of the contrast in the landscape, in cell radii.
LANDSCAPE_SMOOTH = 0.0
#: Ridge index (see :func:`_ridge_index`) above which ``kind="auto"`` says rods in 2D (generated data: rod
#: colonies 0.37-0.59, touching disks 0.16-0.21).
RIDGE_INDEX = 0.3
#: Re-cut once with the segmented cells' own median width when it differs from the ridge estimate by > 15 %.
REFINE = True
#: With halos, masks grow to this fraction of the way from the plateau down to the halo level. Generated
#: colonies cannot tell (F1 equal at 0.5-0.7); chosen on three frames of the real bacteria movie (F1 0.673 vs
#: 0.646 at 0.5), which are then not held out.
HALO_EDGE = 0.6
#: ... by at most this many cell radii.
HALO_GROW = 0.5
#: Rods: regions smaller than this many squares (cubes) of the rod width join a neighbour (see _rod_min_size).
ROD_MIN_SIZE = 0.8
#: Default ``constriction`` (see :func:`segment_cells`).
CONSTRICTION = 0.5
#: Rods: a merged region stays one rod while its width (second moments) is at most this many cell widths ...
ROD_MAX_WIDTH = 1.3
#: ... and its length at most this many times the median length of a first pass (0: no length prior).
ROD_MAX_LENGTH = 0.0
#: Round cells: seeds from the cores, contrast above this fraction of the plateau (see :func:`_cut_round`).
#: Chosen on generated touching nuclei (2D, seeds 1-2): F1 0.94 / 0.96 / 1.0 / 1.0 at 0.5 / 0.6 / 0.7 / 0.8.
CORE = 0.75
#: Aspect ratio (length / width from second moments) above which ``kind="auto"`` says rods in 3D.
ROD_ASPECT = 1.6


@dataclass
class CellSegmentation:
    """Result of :func:`segment_cells` / :func:`segment_movie`.

    Attributes
    ----------
    labels : ndarray of int32, shape ([t,] [z,] y, x)
        Objects 1..n (per frame for movies), 0 = background.
    info : dict
        Parameters used and estimated: ``polarity``, ``kind``, ``diameter`` (cell width, pixels), ``length``
        (rods: median length, pixels), ``threshold`` (foreground threshold in background spreads),
        ``background`` (mode, grey levels), ``noise`` (background spread, grey levels), ``objects`` and the
        ``method``; for movies per-frame ``objects`` as a list.
    """

    labels: np.ndarray
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# background, polarity, foreground


def _check_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise InputError(f"image has {img.ndim} dimensions; expected (y, x) or (z, y, x): pass one frame "
                         "(segment_movie for movies)")
    if img.size == 0 or min(img.shape) < 3:
        raise InputError(f"image of shape {img.shape} is too small to segment (at least 3 pixels per axis)")
    if img.dtype.kind not in "uifb":
        raise InputError(f"image has dtype {img.dtype}; pass a numeric image")
    img = img.astype(np.float32)
    if not np.all(np.isfinite(img)):
        raise InputError("image holds NaN or inf values: replace them (e.g. numpy.nan_to_num) first")
    return img


def _mode_and_spread(values: np.ndarray, polarity: str = "auto", valleys: bool = False) -> tuple[float, float]:
    """Background peak of the histogram of ``values`` and its half width at half maximum as a Gaussian sigma.

    The background is the highest peak, or, when the polarity is known, the brightest (``dark`` objects) or
    darkest (``bright`` objects) peak of at least a fifth of its height: in a confluent frame the cells outnumber
    the background pixels.
    """
    from scipy.signal import find_peaks

    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        return float(lo), 1.0
    counts, edges = np.histogram(values, bins=256, range=(lo, hi))
    counts = ndi.gaussian_filter1d(counts.astype(float), 1.5)
    k = int(np.argmax(counts))
    if polarity != "auto":
        peaks, _ = find_peaks(counts, height=0.2 * counts[k], prominence=0.1 * counts[k])
        if len(peaks):
            k = int(peaks.max() if polarity == "dark" else peaks.min())
    half = counts[k] / 2
    left = k
    while left > 0 and counts[left] > half:
        left -= 1
    right = k
    while right < len(counts) - 1 and counts[right] > half:
        right += 1
    # each half width also ends at a clear valley (a confluent frame's cells or halos join the peak's flank
    # there, so it never falls to half); the narrower side is then the background's own
    cuts = find_peaks(-counts, prominence=0.25 * counts[k])[0] if valleys else np.zeros(0, int)
    below, above = cuts[cuts < k], cuts[cuts > k]
    width = edges[1] - edges[0]
    if (len(below) and below.max() > left) or (len(above) and above.min() < right):
        left = max(left, below.max()) if len(below) else left
        right = min(right, above.min()) if len(above) else right
        hwhm = min(k - left, right - k) * width
    else:
        hwhm = 0.5 * (right - left) * width
    centre = 0.5 * (edges[k] + edges[k + 1])
    return float(centre), float(max(hwhm / 1.1774, width / 2))


def _poly_terms(shape, coords):
    """Quadratic polynomial terms of normalised coordinates, shape (n, 1 + nd + nd (nd + 1) / 2)."""
    x = [c / max(n - 1, 1) - 0.5 for c, n in zip(coords, shape)]
    terms = [np.ones_like(x[0])] + x
    terms += [x[a] * x[b] for a in range(len(x)) for b in range(a, len(x))]
    return np.stack(terms, axis=-1)


def _flat_background(img: np.ndarray, mode: float, spread: float, scale: float) -> np.ndarray:
    """Smooth background surface from the background pixels (``|I - mode| < 2 spread``).

    A quadratic polynomial fitted to them (ramps and vignetting, also at the borders), plus the normalised
    convolution of their residual with a Gaussian of ``scale`` pixels (computed on a block-averaged image) for
    slower-varying structure.
    """
    from skimage.transform import resize

    m = np.abs(img - mode) < 2 * spread
    if m.mean() < 0.02:
        return np.full(img.shape, mode, np.float32)
    idx = np.flatnonzero(m.ravel())
    if len(idx) > 50_000:
        idx = idx[:: len(idx) // 50_000]
    coords = np.unravel_index(idx, img.shape)
    coef, *_ = np.linalg.lstsq(_poly_terms(img.shape, [c.astype(float) for c in coords]), img.ravel()[idx],
                               rcond=None)
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in img.shape], indexing="ij", sparse=True)
    poly = (_poly_terms(img.shape, np.broadcast_arrays(*grid)) @ coef.astype(np.float32)).astype(np.float32)
    res = np.where(m, img - poly, 0).astype(np.float32)
    f = max(1, int(scale // 4))
    crop = tuple(slice(0, (n // f) * f) for n in img.shape) if f > 1 else ...
    small_r, small_m = res[crop], m[crop].astype(np.float32)
    if f > 1:
        new = tuple(n // f for n in small_r.shape)
        small_r = small_r.reshape([x for n in new for x in (n, f)]).mean(axis=tuple(range(1, 2 * len(new), 2)))
        small_m = small_m.reshape([x for n in new for x in (n, f)]).mean(axis=tuple(range(1, 2 * len(new), 2)))
    sig = max(scale / f, 1.0)
    num = ndi.gaussian_filter(small_r, sig, mode="nearest")
    den = ndi.gaussian_filter(small_m, sig, mode="nearest")
    smooth = np.where(den > 1e-3, num / np.maximum(den, 1e-6), 0).astype(np.float32)
    if f > 1:
        smooth = resize(smooth, img.shape, order=1, mode="edge", anti_aliasing=False, preserve_range=True)
    return (poly + smooth).astype(np.float32)


def _contrast(img: np.ndarray, polarity: str = "auto") -> tuple[np.ndarray, dict]:
    """Flattened image in units of the background spread (0 = background) and the statistics used."""
    smooth = ndi.gaussian_filter(img, 1.0)
    mode, spread = _mode_and_spread(smooth, polarity)
    scale = max(img.shape) / 6
    surf = _flat_background(smooth, mode, spread, scale)
    # second pass on the flattened image: an uneven background no longer widens the spread
    mode2, spread = _mode_and_spread(smooth - surf, polarity, valleys=polarity != "auto")
    surf = _flat_background(smooth - surf, mode2, spread, scale) + surf
    d = (smooth - surf) / spread
    return d, {"background": mode, "noise": spread}


def _decide_polarity(d: np.ndarray, polarity: str) -> tuple[str, float]:
    """``bright`` or ``dark`` objects and the halo level (background spreads, on the object's side, <= 0).

    ``auto``: when only one tail (pixels beyond :data:`MIN_SNR` spreads) is substantial it holds the objects.
    When both are (phase contrast: dark cells, bright halos; or bright cells with dark rims), the objects are
    the side that the other side encloses: the fraction of each tail's outer rim lying in the other tail is
    compared, and halos lie around the cells, not the reverse.
    """
    bright = ndi.binary_opening(d > MIN_SNR)
    dark = ndi.binary_opening(d < -MIN_SNR)
    nb, nd_ = int(bright.sum()), int(dark.sum())
    if polarity == "auto":
        if min(nb, nd_) == 0:
            polarity = "bright" if nb >= nd_ else "dark"
        else:
            polarity = "dark" if _solidity(dark) * nd_ > _solidity(bright) * nb else "bright"
    other = bright if polarity == "dark" else dark
    halo = -float(np.median(np.abs(d[other]))) if other.sum() > 0.1 * max(nb, nd_, 1) else 0.0
    return polarity, halo


def _solidity(mask: np.ndarray) -> float:
    """Area-weighted mean solidity (area / convex hull area) of the components of ``mask``."""
    from skimage.measure import label, regionprops

    props = [r for r in regionprops(label(mask)) if r.area >= 9]
    if not props:
        return 0.0
    area = np.array([r.area for r in props], float)
    sol = np.array([r.solidity for r in props], float)
    return float(np.sum(area * sol) / area.sum())


def _foreground(o: np.ndarray, threshold: float | None) -> tuple[np.ndarray, float, float]:
    """Foreground mask of the oriented contrast ``o``, the threshold used and the plateau (background spreads)."""
    if threshold is None:
        clear = o > MIN_SNR
        if not clear.any():  # nothing stands out: no objects
            return np.zeros(o.shape, bool), MIN_SNR, MIN_SNR
        # the plateau is the contrast on the cells' centres and ridges (distance-transform maxima of the clear
        # pixels), not of all clear pixels: in 3D most of a blurred ball's volume is its dimmer shell
        dist = ndi.distance_transform_edt(clear)
        ridge = clear & (dist >= ndi.maximum_filter(dist, size=3))
        plateau = float(np.median(o[ridge]))
        threshold = max(MIN_SNR, 0.5 * plateau)
    else:
        clear = o[o > threshold]
        plateau = float(np.median(clear)) if clear.size else float(threshold)
    if HYSTERESIS < 1:
        from skimage.filters import apply_hysteresis_threshold

        low = max(0.5 * MIN_SNR, HYSTERESIS * threshold)
        return apply_hysteresis_threshold(o, low, threshold), float(threshold), max(plateau, float(threshold))
    return o > threshold, float(threshold), max(plateau, float(threshold))


# ----------------------------------------------------------------------------------------------
# seeds, watershed, shape priors


def _radius(dist: np.ndarray, fg: np.ndarray) -> float | None:
    """Median of the distance-transform ridge (local maxima inside the foreground), pixels; None if no ridge."""
    size = (3,) * dist.ndim
    ridge = fg & (dist >= ndi.maximum_filter(dist, size=size)) & (dist >= 1.5)
    if not ridge.any():
        return None
    return float(np.median(dist[ridge]))


def _moments(lab: np.ndarray, n: int) -> np.ndarray:
    """Per-label raw moments ``[count, sum x_i, sum x_i x_j]`` (additive under merging), shape (n + 1, m)."""
    nd = lab.ndim
    flat = lab.ravel()
    sel = flat > 0
    idx = flat[sel]
    coords = [c.ravel()[sel].astype(np.float64) for c in np.indices(lab.shape, sparse=False)]
    cols = [np.bincount(idx, minlength=n + 1).astype(np.float64)]
    cols += [np.bincount(idx, coords[a], minlength=n + 1) for a in range(nd)]
    for a in range(nd):
        for b in range(a, nd):
            cols.append(np.bincount(idx, coords[a] * coords[b], minlength=n + 1))
    return np.stack(cols, axis=1)


def _axes_from_moments(m: np.ndarray, nd: int) -> np.ndarray:
    """Sorted eigenvalues of the covariance of each row of :func:`_moments` output, shape (k, nd)."""
    m = np.atleast_2d(m)
    cnt = np.maximum(m[:, 0], 1.0)
    mean = m[:, 1:1 + nd] / cnt[:, None]
    cov = np.empty((len(m), nd, nd))
    k = 1 + nd
    for a in range(nd):
        for b in range(a, nd):
            cov[:, a, b] = cov[:, b, a] = m[:, k] / cnt - mean[:, a] * mean[:, b]
            k += 1
    return np.clip(np.linalg.eigvalsh(cov), 0, None)


def _width_length(m: np.ndarray, nd: int) -> tuple[np.ndarray, np.ndarray]:
    """Width and length (pixels) of rod-like regions from second moments.

    2D: a ``W x L`` rectangle has variances ``W^2 / 12`` and ``L^2 / 12``; 3D: a rod of circular cross-section
    of diameter ``W`` has ``W^2 / 16`` across (the middle eigenvalue is used, so a flat pair of rods is wide).
    """
    ev = _axes_from_moments(m, nd)
    width = np.sqrt(12 * ev[:, 0]) if nd == 2 else 4 * np.sqrt(ev[:, 1])
    return width, np.sqrt(12 * ev[:, -1])


def _boundaries(lab: np.ndarray, dist: np.ndarray):
    """Pairs of touching labels with the highest distance-transform value on their shared boundary and its length."""
    pairs = []
    for ax in range(lab.ndim):
        a = np.moveaxis(lab, ax, 0)
        da = np.moveaxis(dist, ax, 0)
        l1, l2 = a[:-1], a[1:]
        sel = (l1 != l2) & (l1 > 0) & (l2 > 0)
        v = np.minimum(da[:-1][sel], da[1:][sel])
        p, q = l1[sel].astype(np.int64), l2[sel].astype(np.int64)
        pairs.append((np.minimum(p, q), np.maximum(p, q), v))
    if not pairs or sum(len(p[0]) for p in pairs) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0), np.zeros(0)
    p = np.concatenate([x[0] for x in pairs])
    q = np.concatenate([x[1] for x in pairs])
    v = np.concatenate([x[2] for x in pairs])
    n1 = int(lab.max()) + 1
    key = p * n1 + q
    g = pd.Series(v).groupby(key)
    top, cnt = g.max(), g.size()
    uk = top.index.to_numpy()
    return uk // n1, uk % n1, top.to_numpy(float), cnt.to_numpy(float)


def _group_max(keys: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Maximum of ``values`` per integer key 0..n (``-inf`` where absent)."""
    out = np.full(n + 1, -np.inf)
    m = pd.Series(values).groupby(keys).max()
    out[m.index.to_numpy()] = m.to_numpy()
    return out


def _merge(lab: np.ndarray, land: np.ndarray, kind: str, width: float, length: float | None,
           constriction: float, min_size: float) -> np.ndarray:
    """Greedy merging of over-segmented regions under the shape prior (see the module docstring)."""
    n = int(lab.max())
    if n < 2:
        return lab
    nd = lab.ndim
    mom = _moments(lab, n)
    peak = np.zeros(n + 1)
    peak[1:] = _group_max(lab.ravel(), land.ravel(), n)[1:]
    p, q, saddle, blen = _boundaries(lab, land)
    parent = np.arange(n + 1)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    max_width = ROD_MAX_WIDTH * width
    max_round = 1.35 * width
    max_len = None if length is None else ROD_MAX_LENGTH * length
    # candidates: highest saddle relative to the smaller peak of the two *current* regions first (a heap with
    # lazy updates: a fragment at the contact of two cells must not bridge them once it has joined one)
    import heapq

    heap = [(-s / max(min(peak[a], peak[b]), 1e-9), k) for k, (a, b, s) in enumerate(zip(p, q, saddle))]
    heapq.heapify(heap)
    while heap:
        neg, k = heapq.heappop(heap)
        if -neg < constriction:
            break
        a, b = find(int(p[k])), find(int(q[k]))
        if a == b:
            continue
        ratio = saddle[k] / max(min(peak[a], peak[b]), 1e-9)
        if ratio < -neg - 1e-12:  # a region grew since this pair was queued
            heapq.heappush(heap, (-ratio, k))
            continue
        mm = mom[a] + mom[b]
        w, ln = _width_length(mm, nd)
        if kind == "rods":
            ok = w[0] <= max_width and (max_len is None or ln[0] <= max_len)
        else:
            ok = ln[0] <= max_round
        if ok:
            parent[b] = a
            mom[a] = mm
            peak[a] = max(peak[a], peak[b])
    # small fragments join the neighbour they share the longest boundary with
    roots = np.array([find(i) for i in range(n + 1)])
    order = np.argsort(-blen, kind="stable")
    for k in order:
        a, b = find(int(p[k])), find(int(q[k]))
        if a == b:
            continue
        if min(mom[a, 0], mom[b, 0]) < min_size:
            small, big = (a, b) if mom[a, 0] < mom[b, 0] else (b, a)
            parent[small] = big
            mom[big] = mom[big] + mom[small]
    roots = np.array([find(i) for i in range(n + 1)])
    keep = mom[roots, 0] >= min_size
    roots[~keep] = 0
    roots[0] = 0
    _, new = np.unique(roots, return_inverse=True)  # roots[0] == 0 keeps the background at 0
    return new[lab].astype(np.int32)


def _landscape(o: np.ndarray, fg: np.ndarray, plateau: float, radius: float, sampling=None):
    """Cell-ness: contrast relative to the plateau (saturating at :data:`SATURATION`) times the distance to the
    edge in cell radii.

    It peaks on a cell's centre (round) or ridge (rod) and dips where the intensity dips (the bright line or
    halo between touching cells, a septum) and where the mask narrows (the neck between two nuclei).
    """
    dist = ndi.distance_transform_edt(fg, sampling=sampling)
    o = ndi.gaussian_filter(o, LANDSCAPE_SMOOTH * radius)
    e = np.clip(o / (SATURATION * plateau), 0, 1) * (dist / radius)
    return ndi.gaussian_filter(e.astype(np.float32), 0.5) * fg


def _convex_aspects(fg: np.ndarray, min_size: float) -> np.ndarray:
    """Aspect ratios of the convex foreground components (solidity >= 0.95: single cells, not clusters); of all
    components when none is convex."""
    from skimage.measure import label, regionprops

    comps = label(fg)
    props = [r for r in regionprops(comps) if r.area >= min_size]
    if not props:
        return np.zeros(0)
    # components of more than 20 cells (80 min_size) are clusters: their convex hull (slow in 3D) is not needed
    convex = [r for r in props if r.area <= 80 * min_size and r.solidity >= 0.95]
    use = convex if convex else props
    sub = np.zeros(comps.max() + 1, np.int64)
    sub[[r.label for r in use]] = np.arange(1, len(use) + 1)
    mom = _moments(sub[comps], len(use))[1:]
    ev = _axes_from_moments(mom, fg.ndim)
    return np.sqrt(ev[:, -1] / np.maximum(ev[:, 0 if fg.ndim == 2 else 1], 1e-9))


def _ridge_index(fg: np.ndarray, radius: float, sampling=None) -> float:
    """Ridge length x cell width / foreground area (2D): about ``1 - w / L`` for rods of length ``L``, about
    ``2 / (pi r)`` for disks, also in touching clusters (a saddle between two nuclei is no ridge pixel)."""
    dist = ndi.distance_transform_edt(fg, sampling=sampling)
    ridge = fg & (dist >= ndi.maximum_filter(dist, size=3)) & (dist >= 0.5 * radius)
    return float(ridge.sum() * 2 * radius / max(fg.sum(), 1))


def _kind_of(aspects, ridge_index: float, ndim: int) -> str:
    """``rods`` or ``round``: in 2D from the ridge index (above :data:`RIDGE_INDEX`), in 3D from the median aspect
    ratio of the convex components (above :data:`ROD_ASPECT`)."""
    if ndim == 2 and np.isfinite(ridge_index):
        return "rods" if ridge_index > RIDGE_INDEX else "round"
    return "rods" if len(aspects) and float(np.median(aspects)) > ROD_ASPECT else "round"


def _watershed_cells(e: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Over-segmentation: watershed of the negative landscape from its regional maxima.

    The maxima are not h-filtered here (``skimage.morphology.h_maxima`` took 4-7 s on a 1.3 Mpx frame): the
    merging step (:func:`_merge`) joins every pair of regions whose saddle is not a real constriction, which
    is the same suppression with the shape prior on top.
    """
    from skimage.segmentation import watershed

    peaks = fg & (e >= ndi.maximum_filter(e, size=3)) & (e > 0)
    markers, _ = ndi.label(peaks, structure=np.ones((3,) * e.ndim))
    return watershed(-e, markers, mask=fg).astype(np.int32)


def _median_length(lab: np.ndarray) -> float:
    """Median length (pixels, from second moments) of the objects of a label image."""
    n = int(lab.max())
    mom = _moments(lab, n)[1:]
    return float(np.median(_width_length(mom, lab.ndim)[1])) if n else float("nan")


# ----------------------------------------------------------------------------------------------
# public API


def _check_choice(value, choices, name):
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _torch_available() -> bool:
    """Whether torch can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def choose_method(ndim: int, polarity: str, halo: float, kind: str | None, *,
                  classic_only: tuple[str, ...] = ()) -> tuple[str, str, str | None]:
    """The back end ``method="auto"`` uses: ``learned`` for 2D phase-contrast rods when torch is there, else ``classic``.

    Parameters
    ----------
    ndim : int
        Dimensions of one frame (2 or 3).
    polarity : {"bright", "dark"}
        Estimated (or given) polarity of the cells.
    halo : float
        Halo level in background spreads (negative: bright halos around dark cells, see :func:`_decide_polarity`).
    kind : {"rods", "round"} or None
        Estimated (or given) shape; None when no cells were found.
    classic_only : tuple of str
        Names of classic-only parameters the user gave (``threshold``, ``min_size``, ``constriction``,
        ``diameter``): the learned back end would ignore them, so they keep ``classic``.

    Returns
    -------
    method : {"learned", "classic"}
    reason : str
        Why (goes to ``info["method_reason"]``).
    note : str or None
        :data:`NEEDS_TORCH` when the learned back end would be chosen but torch is missing.
    """
    phase = polarity == "dark" and halo < 0
    if classic_only:
        return "classic", f"auto: classic-only parameters given ({', '.join(classic_only)})", None
    if ndim != 2:
        return "classic", f"auto: {ndim}D frames (the learned back end is for 2D phase-contrast rods)", None
    if not phase:
        what = "bright cells" if polarity == "bright" else "dark cells without bright halos"
        return "classic", f"auto: not phase contrast ({what})", None
    if kind != "rods":
        return "classic", f"auto: phase contrast, but the cells are {kind or 'not found'}, not rods", None
    if not _torch_available():
        return "classic", f"auto: {NEEDS_TORCH}", NEEDS_TORCH
    return "learned", "auto: 2D phase contrast (dark cells, bright halos), rods, torch available", None


def _check_auto_model(method: str, model) -> None:
    if method == "auto" and model is not None:
        raise InputError("model= needs an explicit method ('learned', 'cellpose' or 'stardist')")


def _classic_only(diameter, threshold, min_size, constriction) -> tuple[str, ...]:
    given = dict(diameter=diameter, threshold=threshold, min_size=min_size, constriction=constriction)
    return tuple(k for k, v in given.items() if v is not None)


def estimate_parameters(image, *, polarity: str = "auto", kind: str = "auto", diameter: float | None = None,
                        threshold: float | None = None) -> dict:
    """Polarity, kind and cell diameter of an image (what :func:`segment_cells` uses; it runs the segmentation).

    Returns
    -------
    dict
        ``polarity``, ``kind``, ``diameter`` (pixels), ``length`` (pixels, rods), ``threshold``, ``background``,
        ``noise``.
    """
    return segment_cells(image, polarity=polarity, kind=kind, diameter=diameter, threshold=threshold,
                         method="classic").info


def segment_cells(image, *, polarity: str = "auto", kind: str = "auto", diameter: float | None = None,
                  threshold: float | None = None, min_size: float | None = None, constriction: float | None = None,
                  method: str = "auto", model=None, spacing=None, tta: int | None = None,
                  rod_merge: float | None = None) -> CellSegmentation:
    """Segment touching cells or nuclei in one raw image.

    Parameters
    ----------
    image : array_like, shape (y, x) or (z, y, x)
        Raw intensities (any numeric dtype).
    polarity : {"auto", "bright", "dark"}
        Objects brighter (fluorescence) or darker (brightfield, phase contrast) than the background; ``auto``
        decides from the image (reported in ``info["polarity"]``).
    kind : {"auto", "rods", "round"}
        Shape prior: elongated rods (bacteria; split only across constrictions) or round nuclei/cells.
    diameter : float, optional
        Cell width (rods) or diameter (round), pixels; estimated from the distance-transform ridge when omitted.
    threshold : float, optional
        Foreground threshold in background spreads above the (flattened) background; automatic by default.
    min_size : float, optional
        Smallest object in pixels (default a quarter of a disk of the cell's width).
    constriction : float
        Two regions stay apart when the distance transform on their boundary drops below this fraction of the
        smaller of their peaks (a neck, a septum, the bright line between two cells); :data:`CONSTRICTION` by
        default.
    method : {"auto", "classic", "learned", "cellpose", "stardist"}
        Back end. ``learned``: the shipped rod U-Net (2D phase contrast, dark rods; needs torch), ``model`` may
        be another weights file or a loaded network. The deep-learning ones need the package with its weights,
        or ``model``. ``auto`` (default): ``learned`` for a 2D image whose estimated polarity is dark with bright
        halos (phase contrast) and kind rods, when torch can be imported, else ``classic``
        (:func:`choose_method`; ``info["method"]``, ``info["method_reason"]``, and ``info["note"]`` when torch
        is missing). Classic-only parameters (``diameter``, ``threshold``, ``min_size``, ``constriction``)
        keep ``classic``.
    model : object, optional
        For ``learned`` a weights path or :func:`~napari_dynfit.detect.learned.load_rod_model` result; else
        a Cellpose-like model (``model.eval(image, diameter=...)`` returning masks first) or a StarDist-like
        model (``model.predict_instances(image)`` returning ``(labels, details)``).
    spacing : sequence of float, optional
        Pixel size per axis for anisotropic 3D images (distances in the units of the smallest spacing).
    tta : {1, 4, 8}, optional
        ``learned`` only: test-time augmentation, the number of flips/rotations of the image whose maps are
        averaged (:func:`~napari_dynfit.detect.learned.predict_maps`); default
        :data:`~napari_dynfit.detect.learned.TTA`. Ignored by the other back ends.
    rod_merge : float, optional
        ``learned`` only: touching objects that are one rod cut in two rejoin when the U-Net's distance map on
        their shared boundary stays above this fraction of their smaller peak and the union is one rod wide
        (:func:`~napari_dynfit.detect.learned.merge_rod_fragments`); default
        :data:`~napari_dynfit.detect.learned.ROD_MERGE`, 0: off. Ignored by the other back ends.

    Returns
    -------
    CellSegmentation
        ``labels`` (int32, same shape as the image) and ``info`` (parameters used and estimated).
    """
    _check_choice(polarity, POLARITIES, "polarity")
    _check_choice(kind, KINDS, "kind")
    _check_choice(method, METHODS, "method")
    img = _check_image(image)
    if diameter is not None and (not np.isfinite(diameter) or diameter <= 0):
        raise InputError(f"diameter must be a positive number of pixels, got {diameter}")
    classic_only = _classic_only(diameter, threshold, min_size, constriction)
    if constriction is None:
        constriction = CONSTRICTION
    if not 0 < constriction <= 1:
        raise InputError(f"constriction must be in (0, 1], got {constriction}")
    sampling = None
    if spacing is not None:
        sp = np.asarray(spacing, float)
        if sp.shape != (img.ndim,) or np.any(sp <= 0) or not np.all(np.isfinite(sp)):
            raise InputError(f"spacing must hold {img.ndim} positive numbers, got {spacing}")
        sampling = sp / sp.min()
    pr, auto = None, {}
    _check_auto_model(method, model)
    if method == "auto":
        pr = _prepare(img, polarity, threshold, diameter, sampling, min_size)
        kd = kind if kind != "auto" else (None if pr["radius"] is None else
                                          _kind_of(pr["aspects"], pr["ridge_index"], img.ndim))
        method, reason, note = choose_method(img.ndim, pr["polarity"], pr["halo"], kd, classic_only=classic_only)
        auto = {"method_reason": reason, **({"note": note} if note else {})}
    if method == "learned":
        from .learned import segment_rods_learned

        lab, info = segment_rods_learned(img, model=model, tta=tta, rod_merge=rod_merge)
        return CellSegmentation(labels=lab, info=dict(info, diameter=diameter, objects=int(lab.max()), **auto))
    if method != "classic":
        return _deep(img, method, model, diameter, polarity)
    if pr is None:
        pr = _prepare(img, polarity, threshold, diameter, sampling, min_size)
    info, pol, halo, o, fg, thr, plateau, radius = (pr[k] for k in ("info", "polarity", "halo", "o", "fg",
                                                                      "threshold", "plateau", "radius"))
    if radius is None:
        info.update(method="classic", polarity=pol, halo=halo, kind=None if kind == "auto" else kind,
                    diameter=None if diameter is None else float(diameter), threshold=thr, length=None, objects=0,
                    min_size=None, constriction=float(constriction), **auto)
        return CellSegmentation(labels=np.zeros(img.shape, np.int32), info=info)
    msize = pr["min_size"]
    width = 2 * radius
    length = None
    kd = kind if kind != "auto" else _kind_of(pr["aspects"], pr["ridge_index"], img.ndim)
    if kd == "rods" and diameter is None:
        radius = pr["rod_radius"]
        width = 2 * radius
    if kd == "rods":
        msize = float(min_size) if min_size is not None else _rod_min_size(radius, img.ndim)
    out = _cut(o, fg, plateau, radius, sampling, kd, constriction, msize, thr)
    if diameter is None and REFINE and out.max() > 0:
        # the distance-transform ridge is biased by clusters (up) and ragged masks (down): the cells' own width
        refined = _object_width(out, kd)
        if abs(refined / width - 1) > 0.15:
            radius = 0.5 * refined
            width = refined
            msize = float(min_size) if min_size is not None else (
                _rod_min_size(radius, img.ndim) if kd == "rods" else 0.25 * _ball(radius, img.ndim))
            out = _cut(o, fg, plateau, radius, sampling, kd, constriction, msize, thr)
    if halo < 0:
        out = _to_halo_edge(out, o, plateau + HALO_EDGE * (halo - plateau), radius)
    if kd == "rods":
        length = _median_length(out)
    info.update(method="classic", polarity=pol, halo=halo, kind=kd, diameter=float(width), threshold=thr,
                length=None if length is None else float(length), objects=int(out.max()),
                min_size=msize, constriction=float(constriction), **auto)
    return CellSegmentation(labels=out, info=info)


def _cut(o, fg, plateau, radius, sampling, kind, constriction, min_size, threshold=None) -> np.ndarray:
    """Landscape, watershed and shape-prior merging (steps 5 and 6 of the module docstring)."""
    if kind == "rods":
        e = _landscape(o, fg, plateau, radius, sampling)
        ws = _watershed_cells(e, fg)
        out = _merge(ws, e, kind, 2 * radius, None, constriction, min_size)
        if ROD_MAX_LENGTH and out.max() > 1:
            # second pass with the length prior: no rod longer than ROD_MAX_LENGTH x the first pass's median
            out = _merge(ws, e, kind, 2 * radius, _median_length(out), constriction, min_size)
        return out
    return _cut_round(o, fg, plateau, radius, sampling, constriction, min_size, threshold)


def _cut_round(o, fg, plateau, radius, sampling, constriction, min_size, threshold=None) -> np.ndarray:
    """Round cells: seeds from the cores (contrast above :data:`CORE` of the plateau), grown back to the edge.

    Blurred nuclei that touch are joined by a neck as wide as the blur at the foreground's level (half the
    plateau, or lower with hysteresis) and by the filled gaps between three of them, so the foreground's distance
    transform has one maximum per cluster; at :data:`CORE` of the plateau the necks are open. The cores'
    distance landscape is cut and merged under the shape prior, then each core grows (watershed of the smoothed
    contrast) over the foreground pixels above the half-maximum edge.
    """
    from skimage.segmentation import watershed

    core = ndi.binary_opening(fg & (o > CORE * plateau))
    e = _landscape(o, core, plateau, radius, sampling)
    seeds = _merge(_watershed_cells(e, core), e, "round", 2 * radius, None, constriction, 0.5 * min_size)
    edge = 0.5 * plateau if threshold is None else max(threshold, 0.5 * plateau)
    mask = (fg & (o > edge)) | (seeds > 0)
    grown = watershed(-ndi.gaussian_filter(o, 1.0), seeds, mask=mask).astype(np.int32)
    size = np.bincount(grown.ravel())
    small = size < min_size
    small[0] = True
    if small[1:].any():
        keep = np.flatnonzero(~small)
        lut = np.zeros(len(size), np.int32)
        lut[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
        grown = lut[grown]
    return grown


def _object_width(lab: np.ndarray, kind: str) -> float:
    """Median width of the segmented rods (second moments) or equivalent diameter of the round cells, pixels."""
    n = int(lab.max())
    mom = _moments(lab, n)[1:]
    if kind == "rods":
        return float(np.median(_width_length(mom, lab.ndim)[0]))
    vol = mom[:, 0]
    return float(np.median(2 * np.sqrt(vol / np.pi) if lab.ndim == 2 else 2 * np.cbrt(3 * vol / (4 * np.pi))))


def _prepare(img, polarity, threshold, diameter, sampling, min_size) -> dict:
    """Contrast, polarity, foreground, radius and the aspect ratios of the convex foreground components."""
    d, info = _contrast(img, polarity)
    pol, halo = _decide_polarity(d, polarity)
    o = d if pol == "bright" else -d
    fg, thr, plateau = _foreground(o, threshold)
    fg = ndi.binary_opening(fg)
    radius = None
    if diameter is not None:
        radius = 0.5 * diameter
    elif fg.any():
        radius = _radius(ndi.distance_transform_edt(fg, sampling=sampling), fg)
    out = dict(info=info, polarity=pol, halo=halo, o=o, fg=fg, threshold=thr, plateau=plateau, radius=radius,
               min_size=None, aspects=np.zeros(0), ridge_index=float("nan"), polarity_weight=float(fg.sum()))
    if radius is None or not fg.any():
        out["radius"] = None
        return out
    out["fg"] = fg = _fill_small_holes(fg, radius)
    out["min_size"] = float(min_size) if min_size is not None else 0.25 * _ball(radius, img.ndim)
    if img.ndim == 3:  # 2D decides from the ridge index
        out["aspects"] = _convex_aspects(fg, out["min_size"])
    out["ridge_index"] = _ridge_index(fg, radius, sampling)
    out["rod_radius"] = _rod_radius(fg, sampling) if diameter is None else radius
    return out


def _rod_min_size(radius: float, nd: int) -> float:
    """Smallest rod fragment kept on its own, pixels: :data:`ROD_MIN_SIZE` x a square (cube) of the rod's width."""
    return float(ROD_MIN_SIZE * (2 * radius) ** nd)


def _rod_radius(fg: np.ndarray, sampling=None) -> float:
    """Half width of rods from the 95th percentile of the foreground's distance transform, pixels.

    Across a long rod of half width ``r`` the distance to the edge is uniform on ``[0, r]`` in 2D (95th
    percentile ``0.95 r``) and distributed as in a disk in 3D (``P(d > x) = (1 - x / r)^2``: ``0.776 r``). Unlike
    the median of the distance-transform ridge, short spurs of a ragged or textured mask do not pull it down
    (generated rods: 10.5 px for 10 px; the ridge median gave 8.5-10).
    """
    d = ndi.distance_transform_edt(fg, sampling=sampling)[fg]
    return float(np.percentile(d, 95) / (0.95 if fg.ndim == 2 else 0.776))


def _to_halo_edge(lab: np.ndarray, o: np.ndarray, edge: float, radius: float) -> np.ndarray:
    """Grow labels (at most :data:`HALO_GROW` radii) over pixels above ``edge``: with halos the edge of a cell
    lies between its dark interior and the bright halo (:data:`HALO_EDGE` of the way), not at the background
    level."""
    from skimage.segmentation import expand_labels

    grown = expand_labels(lab, distance=max(HALO_GROW * radius, 1.0))
    return np.where((lab > 0) | (o > edge), grown, 0).astype(np.int32)


def _ball(r: float, nd: int) -> float:
    return float(np.pi * r * r) if nd == 2 else float(4 / 3 * np.pi * r ** 3)


def _fill_small_holes(fg: np.ndarray, radius: float) -> np.ndarray:
    from skimage.morphology import remove_small_holes

    return remove_small_holes(fg, max_size=max(int(0.5 * _ball(radius, fg.ndim)), 1))


# ----------------------------------------------------------------------------------------------
# deep-learning back ends


def _deep(img, method, model, diameter, polarity) -> CellSegmentation:
    """Run a Cellpose- or StarDist-like model; ``model=None`` loads the package's pretrained one."""
    if model is None:
        model = _load_model(method)
    if method == "cellpose":
        if not hasattr(model, "eval"):
            raise InputError("method='cellpose' needs a model with an eval(image, diameter=...) method")
        out = model.eval(img, diameter=diameter)
        masks = out[0] if isinstance(out, (tuple, list)) else out
    else:
        if not hasattr(model, "predict_instances"):
            raise InputError("method='stardist' needs a model with a predict_instances(image) method")
        lo, hi = np.percentile(img, [1, 99.8])
        out = model.predict_instances((img - lo) / max(hi - lo, 1e-9))
        masks = out[0] if isinstance(out, (tuple, list)) else out
    masks = np.asarray(masks)
    if masks.shape != img.shape:
        raise InputError(f"the {method} model returned masks of shape {masks.shape} for an image of shape "
                         f"{img.shape}: check the model's input axes")
    from skimage.segmentation import relabel_sequential

    lab = relabel_sequential(masks.astype(np.int64))[0].astype(np.int32)
    return CellSegmentation(labels=lab, info={"method": method, "polarity": polarity, "kind": None,
                                              "diameter": diameter, "objects": int(lab.max())})


def _load_model(method: str):
    if method == "cellpose":
        try:
            from cellpose import models
        except ImportError:
            raise InputError("method='cellpose' needs cellpose (pip install cellpose) and its weights; "
                             "or use method='classic'") from None
        try:
            return models.CellposeModel(gpu=False)
        except Exception as exc:  # weights missing or not downloadable
            raise InputError(f"cellpose could not load its pretrained weights ({exc}); download them once "
                             "with network access, or use method='classic'") from exc
    try:
        from stardist.models import StarDist2D
    except ImportError:
        raise InputError("method='stardist' needs stardist (pip install stardist) and its weights; "
                         "or use method='classic'") from None
    try:
        return StarDist2D.from_pretrained("2D_versatile_fluo")
    except Exception as exc:
        raise InputError(f"stardist could not load its pretrained weights ({exc}); download them once with "
                         "network access, or use method='classic'") from exc


# ----------------------------------------------------------------------------------------------
# movies


def _segment_frame(frame, kwargs):
    if kwargs["method"] == "learned":  # keeps the distance map for the movie-level pass
        from .learned import segment_rods_learned

        lab, info = segment_rods_learned(_check_image(frame), model=kwargs["model"], tta=kwargs["tta"],
                                         keep_dist=True, rod_merge=kwargs["rod_merge"])
        return lab, dict(info, objects=int(lab.max()))
    res = segment_cells(frame, **kwargs)
    return res.labels, res.info


def segment_movie(movie, *, polarity: str = "auto", kind: str = "auto", diameter: float | None = None,
                  threshold: float | None = None, min_size: float | None = None, constriction: float | None = None,
                  method: str = "auto", model=None, spacing=None, scheduler="threads",
                  n_workers: int | None = None, tta: int | None = None,
                  rod_merge: float | None = None) -> CellSegmentation:
    """Segment every frame of a movie ``(t, [z,] y, x)`` with :func:`segment_cells`, in parallel.

    ``polarity``, ``kind`` and ``diameter`` left on auto are estimated once from the first, middle and last
    frames (majority polarity and kind, median diameter) and then fixed for all frames, so every frame is cut
    with the same shape prior; the foreground threshold stays per frame. Frames run through
    :func:`~napari_dynfit.parallel.map_frames` (``scheduler``: ``"sync"``, ``"threads"``, ``"processes"``,
    ``"local-cluster"`` or a Dask scheduler address); lazy movies (Zarr, Dask, TIFF pages) are read per frame.
    With ``method="learned"`` last passes over the movie split masks holding touching cells that earlier frames
    show apart (:func:`~napari_dynfit.detect.temporal.split_transient_merges`, their number in
    ``info["merges_split"]``), join pieces that are one object in the frame before and again in a frame after
    (:func:`~napari_dynfit.detect.temporal.join_transient_splits`, ``info["splits_joined"]``), split objects whose
    two successors already show a septum the frame before
    (:func:`~napari_dynfit.detect.learned.split_late_divisions`; ``info["late_divisions_split"]``; skipped, with
    a note, when the segmented area doubles in fewer than :data:`~napari_dynfit.detect.learned.LATE_MIN_DOUBLING`
    frames, ``info["doubling_frames"]``, None when it does not grow), then drop
    objects nothing overlaps in the frames before and after (:func:`~napari_dynfit.detect.temporal.drop_isolated`;
    ``info["isolated_dropped"]``).

    ``method="auto"`` (default) decides the back end once for the movie from the same five probe frames
    (:func:`choose_method`: ``learned`` for 2D phase-contrast rods, when torch can be imported; polarity by the
    frames' foreground-weighted vote, halos when frames holding most of the foreground have them), reported in
    ``info["method"]`` and ``info["method_reason"]`` (and ``info["note"]`` when torch is missing). ``tta`` and
    ``rod_merge`` (rod fragments rejoined per frame, before the movie passes): see :func:`segment_cells`.

    Returns
    -------
    CellSegmentation
        ``labels`` int32 ``(t, [z,] y, x)`` (objects numbered 1..n per frame) and ``info`` with the fixed
        parameters and ``objects`` per frame.
    """
    from ..parallel import map_frames

    try:
        n = int(movie.shape[0]) if hasattr(movie, "shape") else len(movie)
        nd = len(movie.shape) if hasattr(movie, "shape") else np.asarray(movie[0]).ndim + 1
    except (TypeError, IndexError):
        raise InputError("movie must be an array of shape (t, y, x) or (t, z, y, x)") from None
    if nd not in (3, 4) or n == 0:
        raise InputError(f"movie has {nd} dimensions; expected (t, y, x) or (t, z, y, x)")
    _check_choice(method, METHODS, "method")
    _check_auto_model(method, model)
    kw = dict(polarity=polarity, kind=kind, diameter=diameter, threshold=threshold, min_size=min_size,
              constriction=constriction, method=method, model=model, spacing=spacing, tta=tta,
              rod_merge=rod_merge)
    auto = {}
    if method == "auto" or (method == "classic" and (polarity == "auto" or kind == "auto" or diameter is None)):
        # pooled over five frames, each weighted by its foreground: a frame with two cells does not outvote
        # one with three hundred
        probe = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, 5))})
        imgs = [_check_image(movie[t]) for t in probe]
        sampling = None if spacing is None else np.asarray(spacing, float) / min(spacing)
        prs = [_prepare(im, polarity, threshold, diameter, sampling, min_size) for im in imgs]
        if polarity == "auto":
            votes = {}
            for pr in prs:
                votes[pr["polarity"]] = votes.get(pr["polarity"], 0.0) + pr["polarity_weight"]
            kw["polarity"] = max(votes, key=votes.get)
            prs = [pr if pr["polarity"] == kw["polarity"] else
                   _prepare(im, kw["polarity"], threshold, diameter, sampling, min_size) for pr, im in zip(prs, imgs)]
        ok = [pr for pr in prs if pr["radius"] is not None]
        if ok and kind == "auto":
            w = np.array([pr["fg"].sum() for pr in ok], float)
            ridge = float(np.sum(w * np.array([pr["ridge_index"] for pr in ok])) / w.sum())
            kw["kind"] = _kind_of(np.concatenate([pr["aspects"] for pr in ok]), ridge, nd - 1)
        if ok and diameter is None:
            w = np.array([pr["fg"].sum() for pr in ok], float)
            r = np.array([pr["rod_radius" if kw["kind"] == "rods" else "radius"] for pr in ok])
            order = np.argsort(r)
            cum = np.cumsum(w[order])
            kw["diameter"] = float(2 * r[order][np.searchsorted(cum, cum[-1] / 2)])
        if method == "auto":
            # halos (phase contrast) when the frames holding most of the foreground have them
            w = np.array([pr["polarity_weight"] for pr in prs], float)
            halos = np.array([pr["halo"] < 0 for pr in prs])
            halo = -1.0 if w.sum() > 0 and w[halos].sum() > 0.5 * w.sum() else 0.0
            kd = kw["kind"] if kw["kind"] != "auto" else None
            method, reason, note = choose_method(nd - 1, kw["polarity"], halo, kd,
                                                 classic_only=_classic_only(diameter, threshold, min_size,
                                                                            constriction))
            auto = {"method_reason": reason, **({"note": note} if note else {})}
            kw["method"] = method
            if method == "learned":  # the U-Net estimates nothing of these: report what the user gave
                kw.update(polarity=polarity, kind=kind, diameter=diameter)
    if method == "learned" and not hasattr(model, "forward"):  # load the network once for all frames
        from .learned import load_rod_model

        kw["model"] = model = load_rod_model(model)
    results = map_frames(_segment_frame, movie, scheduler=scheduler, n_workers=n_workers, kwargs={"kwargs": kw},
                         desc="segmenting cells")
    labels = np.stack([r[0] for r in results]).astype(np.int32)
    n_late = None
    if method == "learned" and labels.ndim == 3:
        from .learned import split_late_divisions
        from .temporal import (
            doubling_frames,
            drop_isolated,
            join_transient_splits,
            on_present_frames,
            present_frames,
            split_transient_merges,
        )

        dists = [r[1].pop("dist") for r in results]
        labels, n_merged = split_transient_merges(labels, dists)  # touching cells the frame's masks merged
        labels, n_joined = join_transient_splits(labels)  # one cell the frame's masks cut for a frame or two
        # divisions the masks show a frame late (faint septa), not on movies sparse in the cell cycle; frames
        # without objects skipped, as in the others
        from .learned import SEPTUM_DIP, check_tta

        keep = present_frames(labels)
        doubling = doubling_frames(labels if keep is None else labels[keep])  # the frames split_late_divisions sees
        labels, n_late = on_present_frames(split_late_divisions, labels, dists, dip=SEPTUM_DIP[check_tta(tta)],
                                           doubling=doubling)  # its gate, computed once
        labels, n_isolated = drop_isolated(labels)  # one-frame specks: no cell before or after
    info = {k: v for k, v in results[0][1].items() if k not in ("objects", "threshold", "background", "noise",
                                                                   "length", "dist")}
    if n_late is not None:
        info.update(late_divisions_split=n_late, merges_split=n_merged, splits_joined=n_joined,
                    isolated_dropped=n_isolated, doubling_frames=round(doubling, 2) if np.isfinite(doubling) else None)
        results = [(lab, dict(r[1], objects=int(lab.max()))) for lab, r in zip(labels, results)]
    info.update(polarity=info.get("polarity") if method == "learned" else kw["polarity"],
                kind=kw["kind"] if method == "classic" else info.get("kind"),
                diameter=kw["diameter"], objects=[int(r[1]["objects"]) for r in results],
                threshold=[r[1].get("threshold") for r in results], **auto)
    if n_late is not None:
        from .learned import LATE_MIN_DOUBLING

        if doubling < LATE_MIN_DOUBLING:  # said, as the CLI prints info["note"]
            info["note"] = "; ".join(filter(None, [info.get("note"), (
                f"late-division pass skipped: the segmented area doubles every {doubling:.1f} frames (< "
                f"{LATE_MIN_DOUBLING:g}), frames too far apart in the cell cycle for a septum seen one frame late")]))
    if "rod_fragments_merged" in info:  # per frame in the results: the movie's total
        info["rod_fragments_merged"] = int(sum(r[1].get("rod_fragments_merged", 0) for r in results))
    return CellSegmentation(labels=labels, info=info)


# ----------------------------------------------------------------------------------------------
# evaluation


def match_segmentation(truth, pred, *, iou: float = 0.5) -> dict:
    """Object-level precision, recall and F1 of ``pred`` against ``truth`` label images at an IoU threshold.

    A predicted and a true object match when their intersection over union exceeds ``iou`` (for ``iou >= 0.5``
    each object has at most one such partner, so the matching is unique; below, a maximum-IoU assignment).
    ``truth`` and ``pred`` are one image each (2D or 3D): for movies whose labels restart per frame, call it per
    frame and pool the counts.

    Returns
    -------
    dict
        ``tp``, ``n_true``, ``n_pred``, ``precision``, ``recall``, ``f1``, ``mean_iou`` (of the matches).
    """
    from scipy.optimize import linear_sum_assignment

    from .labels import label_overlaps

    t = np.asarray(truth)
    p = np.asarray(pred)
    if t.shape != p.shape:
        raise InputError(f"truth {t.shape} and prediction {p.shape} have different shapes")
    if not 0 < iou < 1:
        raise InputError(f"iou must be in (0, 1), got {iou}")
    la, lb, inter = label_overlaps(t, p)
    st = np.bincount(t.ravel())
    sp = np.bincount(p.ravel())
    n_true = int(np.count_nonzero(st[1:]))
    n_pred = int(np.count_nonzero(sp[1:]))
    tp, ious = 0, np.zeros(0)
    if len(la):
        union = st[la] + sp[lb] - inter
        score = inter / union
        ok = score > iou
        if ok.any():
            ua, ia = np.unique(la[ok], return_inverse=True)
            ub, ib = np.unique(lb[ok], return_inverse=True)
            cost = np.zeros((len(ua), len(ub)))
            cost[ia, ib] = -score[ok]
            r, c = linear_sum_assignment(cost)
            good = cost[r, c] < 0
            tp = int(good.sum())
            ious = -cost[r, c][good]
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_true if n_true else 0.0
    f1 = 2 * tp / (n_true + n_pred) if (n_true + n_pred) else 1.0
    return {"tp": tp, "n_true": n_true, "n_pred": n_pred, "precision": prec, "recall": rec, "f1": f1,
            "mean_iou": float(ious.mean()) if len(ious) else float("nan")}
