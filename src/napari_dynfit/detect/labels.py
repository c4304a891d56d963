"""Cells from label images: per-frame centroids, sizes and the overlaps that the linker uses.

A label movie (``(t, y, x)`` or ``(t, z, y, x)`` integers, 0 = background) comes from the APR
segmentation, any napari Labels layer, or Cell Tracking Challenge masks. Centroids and areas come from
:func:`scipy.ndimage` sums over labels (vectorised over all labels of a frame); overlaps between
consecutive frames from one :func:`numpy.unique` over the paired label values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._progress import progress_iter
from ..errors import InputError

AXES = ("z", "y", "x")


def check_labels(labels, *, what: str = "label movie") -> np.ndarray:
    """Return ``labels`` as an integer array ``(t, [z,] y, x)`` or raise :class:`InputError`."""
    lab = np.asarray(labels)
    if lab.ndim not in (3, 4):
        raise InputError(f"{what} has {lab.ndim} dimensions; expected (t, y, x) or (t, z, y, x)")
    if lab.size == 0:
        raise InputError(f"{what} is empty")
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab)):
            raise InputError(f"{what} holds non-integer values: pass a label image (integers, 0 = background)")
        lab = lab.astype(np.int64)
    if (lab < 0).any():
        raise InputError(f"{what} has negative labels: labels must be >= 0 (0 = background)")
    return lab


def label_centroids(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (> 0) of one label frame and their centroids: ``(ids, centroids)``, shapes ``(n,)`` and
    ``(n, ndim)`` (pixels, axis order of the frame)."""
    ids = np.unique(frame)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return ids, np.zeros((0, frame.ndim))
    cen = ndi.center_of_mass(np.ones(frame.shape, dtype=np.float64), frame, ids)
    return ids, np.asarray(cen, float).reshape(len(ids), frame.ndim)


def label_table(labels, *, intensity=None, spacing=None) -> pd.DataFrame:
    """Centroid, size (pixel count) and optional mean intensity of every label in every frame.

    Parameters
    ----------
    labels : array_like of int, shape (t, y, x) or (t, z, y, x)
        Label movie, 0 = background.
    intensity : array_like, same shape, optional
        Movie whose mean per label becomes the ``intensity`` column.
    spacing : sequence of float, optional
        Pixel size along ``(z,) y, x``, stored in ``attrs["spacing"]``.

    Returns
    -------
    pandas.DataFrame
        ``frame, [z,] y, x, label, size, [axis_z,] axis_y, axis_x[, intensity]``, coordinates in pixels.
        ``axis_*`` is the half-offset of the daughters of a division along the long axis: the principal
        axis of the mask scaled by the square root of its largest second moment (a quarter of the length of
        a uniform rod), used by the linker to predict where daughters appear.
    """
    lab = check_labels(labels)
    nd = lab.ndim - 1
    cols = list(AXES[-nd:])
    parts = []
    for t in progress_iter(range(lab.shape[0]), desc="measuring labels"):
        fr = lab[t]
        ids, cen = label_centroids(fr)
        if len(ids) == 0:
            continue
        size = ndi.sum_labels(np.ones_like(fr, dtype=np.float64), fr, ids)
        df = pd.DataFrame(cen, columns=cols)
        df.insert(0, "frame", t)
        df["label"] = ids.astype(np.int64)
        df["size"] = size
        df[[f"axis_{c}" for c in cols]] = _long_axes(fr, ids, cen, size)
        if intensity is not None:
            df["intensity"] = ndi.mean(np.asarray(intensity[t], float), fr, ids)
        parts.append(df)
    if not parts:
        raise InputError("label movie has no labels (all zero): segment the movie first")
    out = pd.concat(parts, ignore_index=True)
    if spacing is not None:
        out.attrs["spacing"] = [float(s) for s in np.asarray(spacing, float)[-nd:]]
    return out


def _long_axes(frame: np.ndarray, ids: np.ndarray, cen: np.ndarray, size: np.ndarray) -> np.ndarray:
    """sqrt(largest eigenvalue) x principal direction of each label's pixel covariance, shape (n, ndim)."""
    nd = frame.ndim
    grids = np.indices(frame.shape, dtype=np.float64)
    cov = np.empty((len(ids), nd, nd))
    for a in range(nd):
        for b in range(a, nd):
            m = ndi.sum_labels(grids[a] * grids[b], frame, ids) / size
            cov[:, a, b] = cov[:, b, a] = m - cen[:, a] * cen[:, b]
    w, v = np.linalg.eigh(cov)
    return np.sqrt(np.clip(w[:, -1], 0, None))[:, None] * v[:, :, -1]


def label_overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel overlaps between the labels of two frames.

    Returns
    -------
    la, lb, count : ndarray
        For every pair of labels (``la`` in ``a``, ``lb`` in ``b``, both > 0) sharing pixels, the number of
        shared pixels.
    """
    m = (a > 0) & (b > 0)
    if not m.any():
        z = np.zeros(0, np.int64)
        return z, z, z
    pa = a[m].astype(np.int64)
    pb = b[m].astype(np.int64)
    key = pa * (int(pb.max()) + 1) + pb
    u, cnt = np.unique(key, return_counts=True)
    return u // (int(pb.max()) + 1), u % (int(pb.max()) + 1), cnt
