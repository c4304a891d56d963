"""Object size from an image: the scale of its brightest spots (:func:`estimate_spot_sigma`).

The napari panel sets the detection's blob sigma and the APR segmentation's filter sigma from it; scripts and
the CLI can call it on any frame.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["estimate_spot_sigma"]


def estimate_spot_sigma(frame, *, spacing=None, sigmas=None, n_spots: int = 30, max_size: int = 256) -> float:
    """Object size as a Gaussian sigma (pixels of the last axis) from the brightest spots of one image.

    The image (a central crop of at most ``max_size`` pixels per axis) is filtered with the
    scale-normalised Laplacian of Gaussian ``-s^2 LoG_s`` at geometrically spaced scales from 1 px
    (finer scales answer to pixel noise, e.g. the shot noise inside bright cells, more than to
    objects). Spots are the (at most ``n_spots``) strongest local maxima of the response over scales
    that reach half the strongest; at each the best scale is read and the median returned. For a
    Gaussian spot of width ``sigma`` the normalised response peaks at ``s = sigma``; for a ball of
    radius ``r`` at ``r / sqrt(3)`` (3D). Measured: the 2D sample's spots (sigma 1.5 px) 1.48 px,
    the 3D sample's cells (r = 5 px) 2.85 px.

    Parameters
    ----------
    frame : array_like, shape ([z,] y, x)
    spacing : sequence of float, optional
        Pixel size per axis; anisotropic voxels get per-axis scales (``s * spacing[-1] / spacing[i]``).
    sigmas : sequence of float, optional
        Candidate scales in pixels (default 1-12 px, 20 steps).
    n_spots : int
        Number of brightest spots used.
    max_size : int
        Crop size per axis (the estimate needs a few dozen spots, not the whole image; at most 64
        for 3D images).

    Returns
    -------
    float
        The spot sigma in pixels of the ``x`` axis.
    """
    from scipy import ndimage as ndi

    img = np.asarray(frame, dtype=np.float32)
    if img.ndim not in (2, 3) or min(img.shape) < 3:
        raise InputError(f"need a 2D or 3D image to estimate the object size, got shape {img.shape}")
    if img.ndim == 3:
        max_size = min(max_size, 64)  # 20 scales of a 64^3 crop: well under a second
    crop = tuple(slice(max(0, (n - max_size) // 2), max(0, (n - max_size) // 2) + max_size) for n in img.shape)
    img = img[crop]
    img = (img - np.median(img)) / (img.std() + 1e-12)
    sigmas = np.geomspace(1.0, 12.0, 20) if sigmas is None else np.asarray(sigmas, float)
    rel = np.ones(img.ndim) if spacing is None else float(spacing[-1]) / np.asarray(spacing, float)[-img.ndim:]
    resp = np.stack([-(s ** 2) * ndi.gaussian_laplace(img, s * rel) for s in sigmas])
    best = resp.max(axis=0)
    peaks = (best == ndi.maximum_filter(best, size=3)) & (best > 0.5 * best.max())
    idx = np.flatnonzero(peaks)
    if best.max() <= 0 or len(idx) == 0:
        raise InputError("no bright spots in the image: set the object size by hand")
    top = idx[np.argsort(best.ravel()[idx])[::-1][:n_spots]]
    return float(np.median(sigmas[resp.reshape(len(sigmas), -1)[:, top].argmax(axis=0)]))
