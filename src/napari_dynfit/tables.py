"""Detections and tracks tables: validation and file I/O.

Tables are :class:`pandas.DataFrame` objects with one row per object per frame:

* detections: ``frame, [z,] y, x`` plus optional ``intensity, size, label`` ...
* tracks: ``track_id, frame, [z,] y, x, parent_id`` (``parent_id`` is ``-1`` for roots).

Coordinates are in pixels of the movie they come from unless a table says otherwise in
``df.attrs["spacing"]`` (physical size of one pixel along ``(z,) y, x``) and ``df.attrs["dt"]``
(frame interval). ``z`` is absent for 2D data. Files are CSV or Parquet, chosen by suffix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_path, check_input_file
from .errors import InputError

SPATIAL = ("z", "y", "x")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def coord_columns(df: pd.DataFrame) -> list[str]:
    """The spatial coordinate columns of ``df`` in axis order: ``['z', 'y', 'x']`` or ``['y', 'x']``."""
    cols = [c for c in SPATIAL if c in df.columns]
    if cols not in (["z", "y", "x"], ["y", "x"]):
        raise InputError(
            f"table has coordinate columns {cols or 'none'}; expected 'y, x' (2D) or 'z, y, x' (3D): "
            "rename the columns of your table"
        )
    return cols


def validate_table(df: pd.DataFrame, *, required: tuple[str, ...] = ("frame",), what: str = "table") -> pd.DataFrame:
    """Check a detections/tracks table and return it with clean dtypes.

    Raises :class:`InputError` for missing columns, an empty table, NaN/inf coordinates or
    negative frame numbers.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{what} lacks the column(s) {missing}; it has {list(df.columns)}: add or rename them")
    if len(df) == 0:
        raise InputError(f"{what} is empty: nothing to process (check the detection threshold or the input file)")
    cols = coord_columns(df)
    xyz = df[cols].to_numpy(dtype=float)
    if not np.isfinite(xyz).all():
        bad = int((~np.isfinite(xyz)).any(axis=1).sum())
        raise InputError(f"{what} has {bad} row(s) with NaN or infinite coordinates: drop or fix them")
    out = df.copy()
    out[cols] = xyz
    if "frame" in out.columns:
        fr = out["frame"].to_numpy()
        if not np.all(np.isfinite(fr)) or np.any(np.asarray(fr) < 0) or np.any(np.asarray(fr) != np.round(fr)):
            raise InputError(f"{what} has frame numbers that are not non-negative integers: fix the 'frame' column")
        out["frame"] = out["frame"].astype(np.int64)
    for c in ("track_id", "parent_id"):
        if c in out.columns:
            out[c] = out[c].astype(np.int64)
    out.attrs = dict(df.attrs)
    return out


def read_table(path, *, required: tuple[str, ...] = ("frame",)) -> pd.DataFrame:
    """Read a CSV or Parquet table and validate it (see :func:`validate_table`).

    A ``time`` column stands in for ``frame`` when ``frame`` is missing and ``time`` holds integers.
    """
    p = check_input_file(path, suffixes=TABLE_SUFFIXES, what="table file")
    try:
        df = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
    except Exception as exc:  # pandas raises many types for corrupt files
        raise InputError(f"cannot read table '{p}' ({exc.__class__.__name__}: {exc}): is it a valid CSV/Parquet file?") from exc
    return validate_table(df, required=required, what=f"table '{p.name}'")


def write_table(df: pd.DataFrame, path) -> Path:
    """Write ``df`` to CSV or Parquet (by suffix) atomically; returns the path written."""
    p = Path(path)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"output '{p}' must end in .csv or .parquet")
    with atomic_path(p) as tmp:
        if p.suffix.lower() == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return p
