"""Segmentation on the APR: thresholds, graph cut, connected components, sizes, object table.

Everything works on particles (one value / label per particle), never on a pixel image:

* :func:`threshold` — Otsu or Li on particle values; Otsu weights each particle by its cell volume
  so the histogram is that of the pixel image it represents.
* :func:`graphcut_mask` — pyapr's max-flow graph cut (``pyapr.segmentation.graphcut``).
* :func:`connected_components` — face-connected components of a particle mask. Two particle cells
  are neighbours when their cells share a face; each particle looks at its 2*ndim face neighbours on
  its own level grid and joins the particle there or the coarser particle covering it (finer
  neighbours find it the same way), with a union-find (numba).
* :func:`filter_sizes`, :func:`object_table` (centroid, volume, bounding box, intensity) and the
  one-call :func:`segment`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from ..errors import InputError
from .convolve import _lower_bound
from .grid import AprGrid

__all__ = ["threshold", "graphcut_mask", "connected_components", "filter_sizes", "object_table",
           "segment", "Segmentation", "THRESHOLDS"]

THRESHOLDS = ("otsu", "li")


def threshold(grid: AprGrid, values, method: str = "otsu", *, weighted: bool = True) -> float:
    """Automatic threshold of particle values.

    Parameters
    ----------
    grid : AprGrid
    values : ndarray, shape (n_particles,)
    method : {"otsu", "li"}
    weighted : bool
        Otsu only: weight particles by their cell volume (pixel-image histogram).
    """
    from skimage import filters

    values = np.asarray(grid.check_values(values), dtype=np.float64)
    if np.ptp(values) == 0:
        raise InputError("all particle values are equal; there is nothing to threshold")
    if method == "otsu":
        if not weighted:
            return float(filters.threshold_otsu(values))
        counts, edges = np.histogram(values, bins=256, weights=grid.cell_sizes())
        return float(filters.threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2)))
    if method == "li":
        return float(filters.threshold_li(values))
    raise InputError(f"threshold method must be one of {THRESHOLDS} or a number, got {method!r}")


def graphcut_mask(apr, parts, **kwargs) -> np.ndarray:
    """Foreground mask (bool per particle) by pyapr's graph cut; ``kwargs`` go to ``pyapr.segmentation.graphcut``.

    Useful keywords: ``intensity_threshold`` (values below are background), ``alpha`` (data term
    weight), ``beta`` (smoothness weight). pyapr's timing messages on stdout are silenced.
    """
    import os
    import sys

    from .convert import _pyapr

    pyapr = _pyapr()
    if not isinstance(parts, (pyapr.ShortParticles, pyapr.FloatParticles)):
        parts = pyapr.FloatParticles(np.asarray(parts, dtype=np.float32))
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            mask = pyapr.segmentation.graphcut(apr, parts, **kwargs)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return np.asarray(mask) > 0


@numba.njit(cache=True, inline="always")
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True)
def _covering(level, z, y, x, lmin, shapes, offsets, px, row_start):
    """Index of the particle at ``level`` or coarser that covers level-``level`` cell (z, y, x); -1 if finer."""
    for d in range(level - lmin + 1):
        lv = level - d
        zz, yy, xx = z >> d, y >> d, x >> d
        r = row_start[lv] + zz * shapes[lv, 1] + yy
        i = _lower_bound(px, offsets[r], offsets[r + 1], xx)
        if i < offsets[r + 1] and px[i] == xx:
            return i
    return -1


@numba.njit(cache=True)
def _components(mask, coords, lmin, shapes, offsets, px, row_start, ndim):
    n = len(mask)
    parent = np.arange(n)
    for p in range(n):
        if not mask[p]:
            continue
        level, z, y, x = coords[p, 0], coords[p, 1], coords[p, 2], coords[p, 3]
        nz, ny, nx = shapes[level, 0], shapes[level, 1], shapes[level, 2]
        for k in range(6):
            if k < 2 and ndim == 2:
                continue
            dz = -1 if k == 0 else (1 if k == 1 else 0)
            dy = -1 if k == 2 else (1 if k == 3 else 0)
            dx = -1 if k == 4 else (1 if k == 5 else 0)
            z2, y2, x2 = z + dz, y + dy, x + dx
            if z2 < 0 or y2 < 0 or x2 < 0 or z2 >= nz or y2 >= ny or x2 >= nx:
                continue
            q = _covering(level, z2, y2, x2, lmin, shapes, offsets, px, row_start)
            if q >= 0 and mask[q]:
                a = _find(parent, p)
                b = _find(parent, q)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = np.empty(n, dtype=np.int64)
    for p in range(n):
        roots[p] = _find(parent, p) if mask[p] else -1
    return roots


def connected_components(grid: AprGrid, mask) -> np.ndarray:
    """Label face-connected components of a particle mask.

    Parameters
    ----------
    grid : AprGrid
    mask : ndarray of bool, shape (n_particles,)

    Returns
    -------
    ndarray of int32, shape (n_particles,)
        0 for background, 1..n for the components (ordered by their first particle).
    """
    mask = np.asarray(grid.check_values(mask, "mask")).astype(bool)
    roots = _components(mask, grid.coords, grid.level_min, grid.level_shapes, grid.offsets,
                        grid.x.astype(np.int64), grid.level_row_start, grid.ndim)
    labels = np.zeros(grid.n_particles, dtype=np.int32)
    fg = roots >= 0
    if fg.any():
        _, inv = np.unique(roots[fg], return_inverse=True)
        labels[fg] = inv + 1
    return labels


def filter_sizes(grid: AprGrid, labels, min_size: float = 0, max_size: float | None = None) -> np.ndarray:
    """Remove objects smaller than ``min_size`` or larger than ``max_size`` pixels; relabel 1..n."""
    labels = np.asarray(grid.check_values(labels, "labels"))
    if labels.size == 0 or labels.max() == 0:
        return labels.astype(np.int32)
    vol = np.bincount(labels, weights=grid.cell_sizes())
    keep = vol >= min_size
    if max_size is not None:
        keep &= vol <= max_size
    keep[0] = False
    new = np.zeros(len(vol), dtype=np.int32)
    new[keep] = np.arange(1, keep.sum() + 1, dtype=np.int32)
    return new[labels]


def object_table(grid: AprGrid, labels, values=None, *, frame: int | None = None) -> pd.DataFrame:
    """One row per object: centroid, volume, bounding box and intensity.

    Columns: ``label``, (``frame``), ``[z,] y, x`` (centroid in pixels, weighted by cell volume times
    intensity when ``values`` are given, else by volume), ``volume`` (pixels), ``bbox_[z0, y0, x0,
    z1, y1, x1]`` (half-open pixel box), ``intensity_mean`` (per pixel), ``intensity_max``, ``intensity_sum``.
    """
    labels = np.asarray(grid.check_values(labels, "labels"))
    fg = labels > 0
    lab = labels[fg]
    c = grid.coords[fg]
    size = 2 ** (grid.level_max - c[:, 0])
    lo = c[:, 1:] * size[:, None]
    hi = np.minimum(lo + size[:, None], np.asarray(grid.shape))
    vol = grid.cell_sizes()[fg]
    centers = grid.pixel_centers()[fg]
    vals = np.ones(len(lab)) if values is None else np.asarray(grid.check_values(values), np.float64)[fg]
    w = vol * np.clip(vals, 0, None) if values is not None else vol
    w = np.where(w > 0, w, vol * 1e-12)
    df = pd.DataFrame({"label": lab, "w": w, "vol": vol, "v": vals, "vv": vals * vol,
                       "cz": centers[:, 0] * w, "cy": centers[:, 1] * w, "cx": centers[:, 2] * w,
                       "z0": lo[:, 0], "y0": lo[:, 1], "x0": lo[:, 2], "z1": hi[:, 0], "y1": hi[:, 1], "x1": hi[:, 2]})
    agg = df.groupby("label").agg(w=("w", "sum"), volume=("vol", "sum"), vv=("vv", "sum"), vmax=("v", "max"),
                                  cz=("cz", "sum"), cy=("cy", "sum"), cx=("cx", "sum"),
                                  bbox_z0=("z0", "min"), bbox_y0=("y0", "min"), bbox_x0=("x0", "min"),
                                  bbox_z1=("z1", "max"), bbox_y1=("y1", "max"), bbox_x1=("x1", "max"))
    out = pd.DataFrame({"label": agg.index.to_numpy(dtype=np.int64)})
    if frame is not None:
        out["frame"] = int(frame)
    spatial = ["z", "y", "x"] if grid.ndim == 3 else ["y", "x"]
    for ax in spatial:
        out[ax] = (agg[f"c{ax}"] / agg["w"]).to_numpy()
    out["volume"] = agg["volume"].to_numpy()
    for ax in spatial:
        out[f"bbox_{ax}0"] = agg[f"bbox_{ax}0"].to_numpy()
    for ax in spatial:
        out[f"bbox_{ax}1"] = agg[f"bbox_{ax}1"].to_numpy()
    if values is not None:
        out["intensity_mean"] = (agg["vv"] / agg["volume"]).to_numpy()
        out["intensity_max"] = agg["vmax"].to_numpy()
        out["intensity_sum"] = agg["vv"].to_numpy()
    return out


@dataclass
class Segmentation:
    """Result of :func:`segment`.

    Attributes
    ----------
    labels : ndarray of int32, shape (n_particles,)
        Object label per particle (0 = background).
    table : pandas.DataFrame
        :func:`object_table` of the objects.
    threshold : float or None
        Threshold used on the (smoothed) values; None for graph cut.
    smoothed : ndarray of float32, shape (n_particles,)
        The values that were thresholded.
    """

    labels: np.ndarray
    table: pd.DataFrame
    threshold: float | None
    smoothed: np.ndarray


def segment(grid: AprGrid, values, *, method="otsu", smooth_sigma: float | None = 1.0,
            min_size: float = 0, max_size: float | None = None, device: str = "auto", apr=None,
            graphcut_kwargs: dict | None = None, frame: int | None = None) -> Segmentation:
    """Segment bright objects on the APR: smooth, threshold (or graph cut), components, size filter.

    Parameters
    ----------
    grid : AprGrid
    values : ndarray, shape (n_particles,)
        Particle intensities.
    method : {"otsu", "li", "graphcut"} or float
        Automatic threshold, pyapr graph cut (needs pyapr: ``napari-dynfit[pyapr]``), or a fixed threshold.
    smooth_sigma : float or None
        Gaussian smoothing (pixels) before thresholding; None to skip.
    min_size, max_size : float
        Object volume limits in pixels.
    device : {"cpu", "cuda", "auto"}
        ``"cuda"``: smoothing, Otsu or fixed threshold and components on the GPU (:mod:`.filters_tile`); with
        ``"li"`` or ``"graphcut"`` only the smoothing runs there.
    apr : pyapr.APR, optional
        The structure as pyapr's object for ``method="graphcut"`` (default: built from ``grid``).
    graphcut_kwargs : dict, optional
        Passed to ``pyapr.segmentation.graphcut``.
    frame : int, optional
        Adds a ``frame`` column to the table.
    """
    from .convolve_tile import use_device
    from .filters import gaussian

    values = grid.check_values(values)
    if use_device(device) and (method == "otsu" or not isinstance(method, str)):
        return _segment_on_device(grid, values, method, smooth_sigma, min_size, max_size, frame)
    smoothed = (gaussian(grid, values, smooth_sigma, device=device) if smooth_sigma
                else np.asarray(values, dtype=np.float32))
    thr = None
    if isinstance(method, str) and method == "graphcut":
        if apr is None:
            from .convert import grid_to_pyapr

            apr = grid_to_pyapr(grid)
        mask = graphcut_mask(apr, smoothed, **(graphcut_kwargs or {}))
    else:
        if isinstance(method, str):
            thr = threshold(grid, smoothed, method)
        else:
            thr = float(method)
            if not np.isfinite(thr):
                raise InputError(f"threshold must be finite, got {method}")
        mask = smoothed > thr
    labels = filter_sizes(grid, connected_components(grid, mask), min_size, max_size)
    return Segmentation(labels=labels, table=object_table(grid, labels, values, frame=frame),
                        threshold=thr, smoothed=smoothed)


def _segment_on_device(grid, values, method, smooth_sigma, min_size, max_size, frame) -> Segmentation:
    """:func:`segment` with smoothing, Otsu (or a fixed threshold) and components on the GPU (one round trip)."""
    from .filters_tile import segment_device

    if not isinstance(method, str) and not np.isfinite(float(method)):
        raise InputError(f"threshold must be finite, got {method}")
    roots, thr, smoothed = segment_device(grid, values, method=method, smooth_sigma=smooth_sigma)
    labels = np.zeros(grid.n_particles, dtype=np.int32)
    fg = roots >= 0
    if fg.any():
        _, inv = np.unique(roots[fg], return_inverse=True)
        labels[fg] = inv + 1
    labels = filter_sizes(grid, labels, min_size, max_size)
    return Segmentation(labels=labels, table=object_table(grid, labels, values, frame=frame), threshold=thr,
                        smoothed=smoothed)
