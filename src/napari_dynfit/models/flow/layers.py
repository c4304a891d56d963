"""A fitted flow model as napari layer data (plain numpy; the widget turns these into layers).

* :func:`drift_vectors`: the drift ``f`` on a regular grid over the data as Vectors data ``(n, 2, d_show)``;
* :func:`growth_map`: the growth rate ``g`` on the same grid as an image ``(ny, nx)`` with its scale/translate;
* :func:`trajectory_table`: paths of the learned SDE as a tracks table (``track_id, frame, time, coords``);

For more than two or three coordinates only the first two are shown (the others are held at their mean).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .io import Snapshots
from .pfi import FlowModel


def _grid(snapshots: Snapshots, n: int):
    """Grid points ``(n * n, d)`` over the first two coordinates (``(n, 1)`` in 1D) and the grid axes."""
    allx = np.concatenate(snapshots.samples)
    k = min(2, allx.shape[1])
    lo, hi = np.percentile(allx[:, :k], 1, axis=0), np.percentile(allx[:, :k], 99, axis=0)
    axes = [np.linspace(lo[i], hi[i], n) for i in range(k)]
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.tile(allx.mean(axis=0), (mesh[0].size, 1))
    for i in range(k):
        pts[:, i] = mesh[i].ravel()
    return pts, axes


def drift_vectors(model: FlowModel, snapshots: Snapshots, *, n_grid: int = 20, length: float = 0.1) -> np.ndarray:
    """The drift on an ``n_grid x n_grid`` grid of the first two coordinates.

    Parameters
    ----------
    length : float
        Time over which each arrow is drawn (arrow = ``f(x) * length``).

    Returns
    -------
    ndarray, shape (n_grid**2, 2, 2)
        napari Vectors data (start point, displacement) in the first two coordinates.
    """
    if snapshots.dim < 2:
        pts = np.linspace(*np.percentile(np.concatenate(snapshots.samples), [1, 99]), n_grid)[:, None]
        f = model.drift(pts)
        return np.stack([np.c_[np.zeros(n_grid), pts[:, 0]], np.c_[np.zeros(n_grid), f[:, 0] * length]], axis=1)
    pts, _ = _grid(snapshots, n_grid)
    f = model.drift(pts)
    return np.stack([pts[:, :2], f[:, :2] * length], axis=1)


def growth_map(model: FlowModel, snapshots: Snapshots, *, n_grid: int = 64) -> tuple[np.ndarray, dict]:
    """The growth rate on a grid of the first two coordinates: ``(image (n_grid, n_grid), layer kwargs)``
    (``(1, n_grid)`` for 1D data)."""
    pts, axes = _grid(snapshots, n_grid)
    g = model.growth(pts).reshape(-1, n_grid)
    if len(axes) == 1:
        axes = [np.zeros(1), axes[0]]
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
