"""Contrast pre-filters for detection: background flattening and object polarity (bright or dark objects).

* :func:`local_background`: the slowly varying background (uneven illumination of brightfield and phase contrast,
  vignetting, out-of-focus glow) as the median of blocks of about ten blob widths, interpolated back to full
  resolution. Block medians ignore objects covering less than half a block, cost one partial sort per frame and
  need no iteration (a rolling-ball or per-pixel percentile filter is 10-100x slower for the same flat field).
* :func:`flatten`: the image minus that background, sign-flipped for dark objects, so that every object is a
  positive bump on a zero background;
* :func:`decide_polarity`: ``"bright"`` or ``"dark"`` from the skewness of the lightly smoothed, flattened
  intensities: objects are rare outliers on one side of the background (bright spots make a long upper tail,
  dark beads on a bright field a long lower tail). Noise alone is symmetric; ``|skewness| < 0.2`` is reported as
  ambiguous (then ``"bright"``, with a warning).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError

POLARITIES = ("bright", "dark", "auto")
#: |skewness| below this does not decide the polarity (noise alone has skewness ~0; a few objects give > 0.5).
AMBIGUOUS_SKEW = 0.2


def local_background(img: np.ndarray, block) -> np.ndarray:
    """Slowly varying background of ``img``: block medians (of a regular subsample of each block), bilinearly
    interpolated to every pixel.

    Parameters
    ----------
    img : ndarray, shape (y, x) or (z, y, x)
        One frame (float).
    block : int or sequence of int
        Block size in pixels per axis (larger than the objects: about ten blob sigmas).

    Returns
    -------
    ndarray of float32, same shape as ``img``
    """
    img = np.asarray(img, np.float32)
    nd = img.ndim
    block = np.broadcast_to(np.asarray(block, int), (nd,))
    block = np.clip(block, 1, img.shape)
    pads = [(0, int((-s) % b)) for s, b in zip(img.shape, block)]
    p = np.pad(img, pads, mode="symmetric") if any(p[1] for p in pads) else img
    nb = [s // b for s, b in zip(p.shape, block)]
    r = p.reshape([v for pair in zip(nb, block) for v in pair])
    r = r.transpose(list(range(0, 2 * nd, 2)) + list(range(1, 2 * nd, 2))).reshape(*nb, -1)
    r = r[..., :: max(1, r.shape[-1] // 64)]  # ~64 samples per block estimate its median well, several times faster
    bg = np.median(r, axis=-1).astype(np.float32)
    # bilinear interpolation between block centres (clamped at the edges), one axis at a time: two gathers and a
    # blend per axis (element-wise; a matrix product here would wake every BLAS thread for a tiny product)
    for a, (n, b, s) in enumerate(zip(nb, block, img.shape)):
        x = np.clip((np.arange(s) + 0.5) / b - 0.5, 0, n - 1)
        i0 = np.minimum(np.floor(x).astype(int), max(n - 2, 0))
        shp = [1] * nd
        shp[a] = s
        f = (x - i0).astype(np.float32).reshape(shp)
        lo = np.take(bg, i0, axis=a)
        bg = lo + f * (np.take(bg, np.minimum(i0 + 1, n - 1), axis=a) - lo) if n > 1 else lo
    return np.ascontiguousarray(bg, dtype=np.float32)


def background_block(sig_px) -> np.ndarray:
    """Block size (pixels per axis) of :func:`local_background` for blobs of per-axis sigma ``sig_px``."""
    return np.maximum(np.ceil(10 * np.asarray(sig_px, float)).astype(int), 8)


def skewness(img: np.ndarray, bg: np.ndarray, sig_px) -> float:
    """Skewness of ``img - bg`` smoothed at half the blob width (positive: bright objects, negative: dark).

    Computed on a regular subsample of about 60 000 pixels of the smoothed image (float32 filter, float64 moments).
    """
    f = ndi.gaussian_filter(np.asarray(img, np.float32) - bg, 0.5 * np.asarray(sig_px, float), truncate=3.0)
    v = f.ravel()[:: max(1, f.size // 60_000)].astype(np.float64)
    v -= v.mean()
    v2 = v * v
    s2 = float(v2.mean())  # element-wise moments: np.dot would wake every BLAS thread for a 60 000-vector
    return float((v2 * v).mean() / s2 ** 1.5) if s2 > 0 else 0.0


def decide_polarity(skew: float, *, warn: bool = True, stacklevel: int = 3) -> str:
    """``"bright"`` or ``"dark"`` from a :func:`skewness` value (``"bright"`` with a warning when ambiguous)."""
    if abs(skew) < AMBIGUOUS_SKEW:
        if warn:
            warnings.warn(f"object polarity is ambiguous (skewness {skew:+.2f} of the flattened image): detecting "
                          "bright objects; pass polarity='dark' (CLI --polarity dark) for dark objects",
                          stacklevel=stacklevel)
        return "bright"
    return "bright" if skew > 0 else "dark"


def check_polarity(polarity: str) -> str:
    if polarity not in POLARITIES:
        raise InputError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    return polarity


def orient(values, bg, polarity: str, skew_of, *, warn: bool = True):
    """The last step of :func:`flatten` (pixels) and :func:`napari_dynfit.apr.contrast.flatten` (particles).

    ``values - bg`` (bright) or ``bg - values`` (dark) as float32; with ``polarity="auto"`` the polarity comes from
    ``skew_of()`` (the skewness, :func:`decide_polarity`). Returns ``(flat, polarity, skew)`` (``skew`` None unless
    ``"auto"``).
    """
    skew = None
    if polarity == "auto":
        skew = skew_of()
        polarity = decide_polarity(skew, warn=warn, stacklevel=4)
    flat = values - bg if polarity == "bright" else bg - values
    return flat.astype(np.float32, copy=False), polarity, skew


def flatten(img: np.ndarray, sig_px, polarity: str = "auto", *, warn: bool = True):
    """Background-flattened image with the objects positive.

    Parameters
    ----------
    img : ndarray, shape (y, x) or (z, y, x)
    sig_px : float or sequence of float
        Blob sigma in pixels per axis (sets the background block size).
    polarity : {"bright", "dark", "auto"}
        ``"auto"`` decides from the skewness of the flattened image (see the module docstring).

    Returns
    -------
    flat : ndarray of float32
        ``img - background`` (bright) or ``background - img`` (dark).
    polarity : str
        ``"bright"`` or ``"dark"`` (the decision when ``"auto"``).
    skew : float or None
        The skewness used for ``"auto"`` (None otherwise).
    """
    check_polarity(polarity)
    img = np.asarray(img, np.float32)
    bg = local_background(img, background_block(np.broadcast_to(sig_px, (img.ndim,))))
    return orient(img, bg, polarity, lambda: skewness(img, bg, sig_px), warn=warn)
