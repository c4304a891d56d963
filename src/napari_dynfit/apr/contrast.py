"""Contrast pre-filters on the APR's particles: background flattening and object polarity, no pixel image.

The particle counterparts of :mod:`napari_dynfit.detect.contrast` (brightfield and phase contrast: uneven
illumination, dark objects on a bright field, bright halos around dark cells):

* :func:`local_background`: the slowly varying background as the median of blocks of pixels, each particle
  weighted by the pixels its cell covers (a pixel-weighted median: a large background cell counts as the pixels
  it stands for), interpolated bilinearly between block centres at every particle's centre. It agrees with the
  pixel version on the reconstructed image to the APR's reconstruction error.
* :func:`flatten`: particle values minus that background, sign-flipped for dark objects, so that objects are
  positive bumps on a zero background. Halos of the opposite sign (the bright rim of a phase-contrast cell) become
  negative and stay out of any positive threshold, which is what keeps touching cells apart.
* ``polarity="auto"`` decides from the pixel-weighted skewness of the lightly smoothed, flattened values
  (:func:`napari_dynfit.detect.contrast.decide_polarity`: ``|skewness| < 0.2`` is ambiguous, reported with a
  warning and taken as bright).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..detect.contrast import background_block, check_polarity, orient
from .grid import AprGrid


def _spatial(grid: AprGrid, a) -> np.ndarray:
    """Per-axis ``(z, y, x)`` values from a scalar or a ``([z,] y, x)`` sequence (z is 1 in 2D)."""
    a = np.atleast_1d(np.asarray(a, float))
    nd = grid.ndim
    a = np.broadcast_to(a, (nd,)) if a.size == 1 else a
    if a.size != nd:
        from ..errors import InputError

        raise InputError(f"give one value or {nd} (one per spatial axis), got {a.size}")
    return np.concatenate([[1.0], a]) if nd == 2 else a


def local_background(grid: AprGrid, values, block) -> np.ndarray:
    """Slowly varying background at every particle: pixel-weighted block medians, interpolated bilinearly.

    Parameters
    ----------
    grid : AprGrid
    values : ndarray, shape (n_particles,)
        Particle intensities.
    block : int or sequence of int
        Block size in pixels, one value or one per spatial axis ``([z,] y, x)``; larger than the objects (about
        ten blob sigmas, :func:`napari_dynfit.detect.contrast.background_block`).

    Returns
    -------
    ndarray of float32, shape (n_particles,)
    """
    v = np.asarray(grid.check_values(values), np.float64)
    shape = np.asarray(grid.shape)
    block = np.clip(_spatial(grid, block).astype(int), 1, shape)
    if grid.ndim == 2:
        block[0] = 1
    nb = -(-shape // block)
    centers = grid.pixel_centers()
    idx = np.minimum(np.floor((centers + 0.5) / block).astype(np.int64), nb - 1)
    key = np.ravel_multi_index(tuple(idx.T), tuple(nb))
    w = grid.cell_sizes()
    order = np.lexsort((v, key))
    k, vs, cw = key[order], v[order], np.cumsum(w[order])
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.r_[starts[1:], len(k)]
    before = np.r_[0.0, cw[:-1]][starts]
    pos = np.searchsorted(cw, before + 0.5 * (cw[ends - 1] - before))  # first particle past half the group's pixels
    med = np.full(int(np.prod(nb)), np.nan)
    med[k[starts]] = vs[np.minimum(pos, ends - 1)]
    med = med.reshape(tuple(nb))
    if np.isnan(med).any():  # a block whose pixels all belong to larger cells centred elsewhere: nearest block
        near = ndi.distance_transform_edt(np.isnan(med), return_distances=False, return_indices=True)
        med = med[tuple(near)]
    coords = np.clip((centers + 0.5) / block - 0.5, 0, nb - 1).T
    return ndi.map_coordinates(med, coords, order=1, mode="nearest").astype(np.float32)


def skewness(grid: AprGrid, flat, sig_px) -> float:
    """Pixel-weighted skewness of ``flat`` smoothed at half the blob width (positive: bright objects)."""
    from .filters import gaussian

    s = float(np.mean(_spatial(grid, sig_px)[-grid.ndim:]))
    f = gaussian(grid, np.asarray(flat, np.float32), 0.5 * s, device="cpu") if 0.5 * s >= 0.5 else flat
    f = np.asarray(f, np.float64)
    w = grid.cell_sizes()
    f = f - np.average(f, weights=w)
    s2 = float(np.average(f * f, weights=w))
    return float(np.average(f ** 3, weights=w) / s2 ** 1.5) if s2 > 0 else 0.0


def flatten(grid: AprGrid, values, sig_px, polarity: str = "auto", *, warn: bool = True):
    """Background-flattened particle values with the objects positive.

    Parameters
    ----------
    grid : AprGrid
    values : ndarray, shape (n_particles,)
    sig_px : float or sequence of float
        Object (blob) sigma in pixels, one value or one per spatial axis; sets the background block size
        (:func:`napari_dynfit.detect.contrast.background_block`, about ten sigmas).
    polarity : {"bright", "dark", "auto"}
        ``"auto"`` decides from the skewness of the flattened values.

    Returns
    -------
    flat, polarity, skew
        As :func:`napari_dynfit.detect.contrast.flatten`, per particle: ``flat`` has shape ``(n_particles,)``.
    """
    check_polarity(polarity)
    v = np.asarray(grid.check_values(values), np.float32)
    sig = _spatial(grid, sig_px)[-grid.ndim:]
    bg = local_background(grid, v, background_block(sig))
    return orient(v, bg, polarity, lambda: skewness(grid, v - bg, sig), warn=warn)


def objects_bright(grid: AprGrid, values, polarity: str = "auto", diameter: float | None = None):
    """Particle values to threshold with the objects bright: unchanged for bright objects; for dark ones
    (brightfield, phase contrast) flattened and sign-flipped on the particles (:func:`flatten`, object sigma
    ``diameter / 2.83`` px, 2 px without a diameter). ``"auto"`` decides (:func:`flatten`'s skewness rule).

    The step ``dynfit segment IN.apr`` and the *APR filter & segment* widget run before thresholding (one rule for
    both).

    Parameters
    ----------
    grid : AprGrid
    values : ndarray, shape (n_particles,)
    polarity : {"auto", "bright", "dark"}
    diameter : float, optional
        Object diameter (px).

    Returns
    -------
    values : ndarray, shape (n_particles,)
    polarity : str
        ``"bright"`` or ``"dark"``: the polarity used.
    """
    check_polarity(polarity)
    if polarity == "bright":
        return np.asarray(values), "bright"
    sig = diameter / 2.83 if diameter else 2.0
    flat, polarity, _ = flatten(grid, values, sig, polarity, warn=False)
    return (flat if polarity == "dark" else np.asarray(values)), polarity
