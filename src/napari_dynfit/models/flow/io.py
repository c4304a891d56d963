"""Snapshot sets: point clouds at a few times, without tracks.

:class:`Snapshots` holds one ``(n_k, d)`` array per time and the population size (mass) at each time, relative to
the first one. It is built from

* a detections table of our pipeline (``frame, [z,] y, x``; one row per detected object): time is
  ``frame * dt`` (``df.attrs["dt"]``, default 1) and the mass is the number of detections per frame;
* any point-cloud table (CSV/Parquet) with a ``time`` column and numeric coordinate columns; an optional
  ``weight`` column gives each row's share of the population (the weights at one time sum to its mass);
* an AnnData ``.h5ad`` file (read with h5py, :mod:`napari_dynfit.models.flow.h5ad`): time from ``obs[time_key]``,
  coordinates from ``obsm[basis]`` (e.g. ``X_pca``) or ``X``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..._io import check_input_file
from ...errors import InputError
from ...tables import SPATIAL, read_table

RESERVED = ("time", "frame", "weight", "track_id", "parent_id", "label", "intensity", "size")


@dataclass
class Snapshots:
    """Point clouds at increasing times.

    Attributes
    ----------
    times : ndarray, shape (K,)
        Snapshot times (increasing, physical units).
    samples : list of ndarray
        ``K`` arrays of shape ``(n_k, d)``: the coordinates of the sampled individuals at each time.
    masses : ndarray, shape (K,)
        Population size at each time relative to the first (``masses[0] == 1``).
    columns : tuple of str
        Names of the ``d`` coordinates (axis order, e.g. ``("y", "x")``).
    """

    times: np.ndarray
    samples: list
    masses: np.ndarray
    columns: tuple

    @property
    def dim(self) -> int:
        """Number of coordinates ``d``."""
        return self.samples[0].shape[1]

    def to_table(self) -> pd.DataFrame:
        """The snapshots as a table ``time, <columns>, weight``."""
        parts = []
        for t, x, m in zip(self.times, self.samples, self.masses):
            df = pd.DataFrame(x, columns=list(self.columns))
            df.insert(0, "time", t)
            df["weight"] = m / len(x)
            parts.append(df)
        return pd.concat(parts, ignore_index=True)


def snapshots_from_table(df: pd.DataFrame, *, columns=None, time_column: str | None = None,
                         dt: float | None = None) -> Snapshots:
    """Group a table into :class:`Snapshots`.

    Parameters
    ----------
    df : DataFrame
        Detections (``frame, [z,] y, x``) or a point cloud with a ``time`` column.
    columns : sequence of str, optional
        Coordinate columns. Default: ``z, y, x`` / ``y, x`` when present, else every numeric column that is not
        ``time, frame, weight, track_id, ...``.
    time_column : str, optional
        Default ``"time"`` when present, else ``"frame"``.
    dt : float, optional
        Time between frames when time comes from ``frame`` (default ``df.attrs.get("dt", 1)``).
    """
    if not isinstance(df, pd.DataFrame) or len(df) == 0:
        raise InputError("the snapshot table is empty: give at least two time points with points in each")
    if time_column is None:
        time_column = "time" if "time" in df.columns else "frame" if "frame" in df.columns else None
    if time_column is None or time_column not in df.columns:
        raise InputError(f"the snapshot table has no time column (columns: {list(df.columns)}): "
                         "add a 'time' (or 'frame') column")
    if columns is None:
        spatial = [c for c in SPATIAL if c in df.columns]
        if spatial in (["z", "y", "x"], ["y", "x"]):
            columns = spatial
        else:
            columns = [c for c in df.columns if c not in RESERVED and c != time_column
                       and pd.api.types.is_numeric_dtype(df[c])]
    columns = list(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing or not columns:
        raise InputError(f"coordinate column(s) {missing or columns} not in the table {list(df.columns)}: "
                         "name existing numeric columns")
    xyz = df[columns].to_numpy(dtype=float)
    t = df[time_column].to_numpy(dtype=float)
    if not (np.isfinite(xyz).all() and np.isfinite(t).all()):
        raise InputError("the snapshot table has NaN or infinite values: drop or fix those rows")
    if time_column == "frame":
        t = t * float(dt if dt is not None else df.attrs.get("dt", 1.0))
    w = df["weight"].to_numpy(dtype=float) if "weight" in df.columns else np.ones(len(df))
    if np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise InputError("the 'weight' column must hold positive finite numbers: fix or drop it")
    times = np.unique(t)
    if len(times) < 2:
        raise InputError(f"the table has {len(times)} time point(s); flow inference needs at least 2")
    samples, masses = [], []
    for tk in times:
        sel = t == tk
        if sel.sum() < 2:
            raise InputError(f"time {tk:g} has fewer than 2 points: drop that time or add points")
        samples.append(xyz[sel])
        masses.append(w[sel].sum())
    masses = np.asarray(masses) / masses[0]
    return Snapshots(times=times, samples=samples, masses=masses, columns=tuple(columns))


def read_snapshots(path, *, columns=None, time_column: str | None = None, dt: float | None = None,
                   basis: str | None = None) -> Snapshots:
    """Read snapshots from a CSV/Parquet table or an AnnData ``.h5ad`` file.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.parquet`` or ``.h5ad``.
    columns, time_column, dt
        See :func:`snapshots_from_table`; for ``.h5ad`` ``time_column`` names the ``obs`` column
        (default ``"time"``).
    basis : str, optional
        ``.h5ad`` only: the ``obsm`` key of the coordinates (e.g. ``"X_pca"``); default ``X``.
    """
    p = Path(path)
    if p.suffix.lower() == ".h5ad":
        return _read_h5ad(p, time_key=time_column or "time", basis=basis)
    p = check_input_file(p, suffixes=(".csv", ".parquet", ".pq"), what="snapshot file")
    try:
        df = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
    except Exception as exc:  # pandas raises many types for corrupt files
        raise InputError(f"cannot read '{p}' ({exc.__class__.__name__}: {exc}): is it a valid CSV/Parquet file?") from exc
    if "time" not in df.columns and "frame" in df.columns:
        df = read_table(p)  # a detections table: validated by the shared reader
    return snapshots_from_table(df, columns=columns, time_column=time_column, dt=dt)


def _read_h5ad(path: Path, *, time_key: str, basis: str | None) -> Snapshots:
    from .h5ad import read_h5ad_table

    df = read_h5ad_table(path, time_key=time_key, basis=basis)
    return snapshots_from_table(df, columns=[c for c in df.columns if c != "time"], time_column="time")
