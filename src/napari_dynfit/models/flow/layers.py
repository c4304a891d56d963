"""A fitted flow model as napari layer data (plain numpy; the widget turns these into layers).

* :func:`drift_vectors`: the drift ``f`` on a regular grid over the data as Vectors data ``(n, 2, d_show)``;
* :func:`growth_map`: the growth rate ``g`` on the same grid as an image ``(ny, nx)`` (``(nz, ny, nx)`` in 3D)
  with its scale/translate;
* :func:`trajectory_table`: paths of the learned SDE as a tracks table (``track_id, frame, time, coords``);

Data of up to three coordinates (positions ``y, x`` or ``z, y, x``) are shown in all of them; of more coordinates
only the first two (the others are held at their mean).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .io import Snapshots
from .pfi import FlowModel

#: grid points per axis of the drift arrows by number of axes shown (3D: 8^3 = 512 arrows, as many as 2D's 20^2)
ARROWS_PER_AXIS = {1: 20, 2: 20, 3: 8}


def shown_axes(snapshots: Snapshots) -> int:
    """How many coordinates the layers show: all of them up to three (space ``[z,] y, x``), else the first two."""
    return snapshots.dim if snapshots.dim <= 3 else 2


def _grid(snapshots: Snapshots, n: int, k: int | None = None):
    """Grid points ``(n**k, d)`` over the first ``k`` coordinates (default :func:`shown_axes`) between their 1st
    and 99th percentiles, the other coordinates at their mean, and the ``k`` grid axes."""
    allx = np.concatenate(snapshots.samples)
    k = min(shown_axes(snapshots) if k is None else k, allx.shape[1])
    lo, hi = np.percentile(allx[:, :k], 1, axis=0), np.percentile(allx[:, :k], 99, axis=0)
    axes = [np.linspace(lo[i], hi[i], n) for i in range(k)]
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.tile(allx.mean(axis=0), (mesh[0].size, 1))
    for i in range(k):
        pts[:, i] = mesh[i].ravel()
    return pts, axes


def drift_vectors(model: FlowModel, snapshots: Snapshots, *, n_grid: int | None = None,
                  length: float = 0.1) -> np.ndarray:
    """The drift on a regular grid of the shown coordinates (:func:`shown_axes`).

    Parameters
    ----------
    n_grid : int, optional
        Grid points per axis (default :data:`ARROWS_PER_AXIS`: 20 x 20 in 2D, 8 x 8 x 8 in 3D).
    length : float
        Time over which each arrow is drawn (arrow = ``f(x) * length``).

    Returns
    -------
    ndarray, shape (n_grid**k, 2, k)
        napari Vectors data (start point, displacement) in the data's coordinates (``k = 2``: the first two;
        ``k = 3``: ``z, y, x``; 1D data: ``(0, x)`` rows).
    """
    if snapshots.dim < 2:
        n_grid = n_grid or ARROWS_PER_AXIS[1]
        pts = np.linspace(*np.percentile(np.concatenate(snapshots.samples), [1, 99]), n_grid)[:, None]
        f = model.drift(pts)
        return np.stack([np.c_[np.zeros(n_grid), pts[:, 0]], np.c_[np.zeros(n_grid), f[:, 0] * length]], axis=1)
    k = shown_axes(snapshots)
    pts, _ = _grid(snapshots, n_grid or ARROWS_PER_AXIS[k], k)
    f = model.drift(pts)
    return np.stack([pts[:, :k], f[:, :k] * length], axis=1)


def growth_map(model: FlowModel, snapshots: Snapshots, *, n_grid: int | None = None) -> tuple[np.ndarray, dict]:
    """The growth rate on a grid of the shown coordinates: ``(image, layer kwargs)``; the image is
    ``(n_grid, n_grid)`` (default 64), ``(n_grid,) * 3`` for 3D data (default 24) or ``(1, n_grid)`` for 1D data;
    the kwargs' ``scale``/``translate`` put it in the data's coordinates."""
    k = max(shown_axes(snapshots), 1)
    n = n_grid or (24 if k == 3 else 64)
    pts, axes = _grid(snapshots, n, k)
    g = model.growth(pts).reshape((n,) * len(axes))
    if len(axes) == 1:
        axes, g = [np.zeros(1), axes[0]], g.reshape(1, n)
    step = [float(a[1] - a[0]) if len(a) > 1 else 1.0 for a in axes]
    return g, {"scale": step, "translate": [float(a[0]) for a in axes]}


def trajectory_table(model: FlowModel, snapshots: Snapshots, *, n_paths: int = 200, points_per_interval: int = 4,
                     seed: int = 0) -> pd.DataFrame:
    """Sample ``n_paths`` trajectories of the learned SDE from the first snapshot.

    Returns
    -------
    DataFrame
        ``track_id, frame, time, <coordinates>, parent_id`` (``parent_id = -1``); ``frame`` counts the recorded
        points (``points_per_interval`` per snapshot interval).
    """
    rng = np.random.default_rng(seed)
    x0 = snapshots.samples[0]
    x0 = x0[rng.choice(len(x0), size=min(n_paths, len(x0)), replace=False)]
    t = snapshots.times
    fine = np.concatenate([np.linspace(a, b, points_per_interval, endpoint=False) for a, b in zip(t[:-1], t[1:])]
                          + [t[-1:]])
    paths = model.sample_paths(x0, fine, n_substeps=5, seed=seed)
    n, T, d = paths.shape
    df = pd.DataFrame(paths.reshape(-1, d), columns=list(snapshots.columns))
    df.insert(0, "time", np.tile(fine, n))
    df.insert(0, "frame", np.tile(np.arange(T), n))
    df.insert(0, "track_id", np.repeat(np.arange(n), T))
    df["parent_id"] = -1
    return df


def tracks_data(table: pd.DataFrame, columns) -> np.ndarray:
    """napari Tracks data ``(track_id, frame, c0, c1[, c2])`` from :func:`trajectory_table` (first 3 coordinates)."""
    cols = list(columns)[:3]
    return table[["track_id", "frame", *cols]].to_numpy(dtype=float)
