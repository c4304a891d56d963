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


#: Largest coordinate magnitude accepted in a table (pixels or physical units): larger values are
#: corrupt data (and would overflow the grids built from them).
MAX_COORDINATE = 1e12

#: Largest frame number accepted in a table: a movie of 10^7 frames (a day at 100 Hz). The per-frame work
#: (drift, linking, quality) spans every frame up to the last, so a larger number (a time stamp in seconds, a
#: corrupt row) would run for hours; at this limit ``dynfit msd`` takes ~15 s and ``dynfit track`` ~50 s.
MAX_FRAME = 10**7


def _check_numeric(df: pd.DataFrame, columns, what: str, line_offset: int | None) -> None:
    """Raise :class:`InputError` naming the first row and column that is empty, not a number, not
    finite or implausibly large (> :data:`MAX_COORDINATE`)."""
    for c in columns:
        col = df[c]
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(num) | (np.abs(num) > MAX_COORDINATE)
        if not bad.any():
            continue
        i = int(np.flatnonzero(bad)[0])
        raw = col.iloc[i]
        if pd.isna(raw):
            reason = "is empty or NaN (a truncated or incomplete row?)"
        elif np.isnan(num[i]):
            reason = f"{str(raw)[:40]!r} is not a number"
        elif not np.isfinite(num[i]):
            reason = f"is infinite ({raw})"
        else:
            reason = f"{raw} is implausibly large (|value| > {MAX_COORDINATE:g})"
        where = f"row {i + 1}" + (f" (line {i + line_offset})" if line_offset else "")
        n = int(bad.sum())
        more = f"; {n - 1} more bad row(s)" if n > 1 else ""
        raise InputError(f"{what}: {where}, column '{c}': {reason}{more}: NaN or bad values must be fixed or "
                         "the rows dropped")


def validate_table(df: pd.DataFrame, *, required: tuple[str, ...] = ("frame",), what: str = "table",
                   line_offset: int | None = None) -> pd.DataFrame:
    """Check a detections/tracks table and return it with clean dtypes.

    Raises :class:`InputError` for missing columns, an empty table, empty, non-numeric, NaN/inf or
    implausibly large (> :data:`MAX_COORDINATE`) coordinates / frames / ids (naming the first such
    row; ``line_offset`` turns row numbers into file line numbers, 2 for a CSV with a header),
    negative frame numbers or frame numbers above :data:`MAX_FRAME`; when ``required`` names ``track_id`` (a tracks
    table), two rows of one track in one frame.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{what} lacks the column(s) {missing}; it has {list(df.columns)}: add or rename them")
    if len(df) == 0:
        raise InputError(f"{what} is empty: nothing to process (check the detection threshold or the input file)")
    cols = coord_columns(df)
    numeric = [c for c in (*cols, "frame", "track_id", "parent_id") if c in df.columns]
    _check_numeric(df, numeric, what, line_offset)
    xyz = df[cols].to_numpy(dtype=float)
    out = df.copy()
    out[cols] = xyz
    if "frame" in out.columns:
        fr = pd.to_numeric(out["frame"]).to_numpy()
        if not np.all(np.isfinite(fr)) or np.any(np.asarray(fr) < 0) or np.any(np.asarray(fr) != np.round(fr)):
            raise InputError(f"{what} has frame numbers that are not non-negative integers: fix the 'frame' column")
        if np.any(fr > MAX_FRAME):
            i = int(np.argmax(fr))
            where = f"row {i + 1}" + (f" (line {i + line_offset})" if line_offset else "")
            raise InputError(f"{what}: {where}, column 'frame': {fr[i]:.0f} is implausibly large (more than "
                             f"{MAX_FRAME:.0e} frames): 'frame' must count the movie's frames 0, 1, 2 ... (not times): "
                             "renumber it or drop the row")
        out["frame"] = out["frame"].astype(np.int64)
    for c in ("track_id", "parent_id"):
        if c in out.columns:
            out[c] = out[c].astype(np.int64)
    if "track_id" in required and "frame" in out.columns:
        dup = out.duplicated(["track_id", "frame"]).to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            where = f"row {i + 1}" + (f" (line {i + line_offset})" if line_offset else "")
            raise InputError(f"{what}: {where} gives track {out['track_id'].iloc[i]} a second position in frame "
                             f"{out['frame'].iloc[i]} ({int(dup.sum())} such row(s)): a tracks table holds one row per "
                             "track and frame; drop the duplicates or give them their own track_id")
    out.attrs = dict(df.attrs)
    return out


def read_table(path, *, required: tuple[str, ...] = ("frame",)) -> pd.DataFrame:
    """Read a CSV or Parquet table and validate it (see :func:`validate_table`).

    A ``time`` column stands in for ``frame`` when ``frame`` is missing and ``time`` holds integers.
    """
    p = check_input_file(path, suffixes=TABLE_SUFFIXES, what="table file")
    csv = p.suffix.lower() == ".csv"
    try:
        df = pd.read_csv(p, skip_blank_lines=False) if csv else pd.read_parquet(p)
    except Exception as exc:  # pandas raises many types for corrupt files
        msg = " ".join(str(exc).split())
        raise InputError(f"cannot read table '{p}' ({exc.__class__.__name__}: {msg}): is it a valid CSV/Parquet file?") from exc
    if csv:
        # a blank line inside the data is damage; trailing blank lines are not
        blank = df.isna().all(axis=1).to_numpy()
        last = len(blank) - int(np.argmax(~blank[::-1])) if (~blank).any() else 0
        df = df.iloc[:last]
        if blank[:last].any():
            i = int(np.flatnonzero(blank[:last])[0])
            raise InputError(f"table '{p}': row {i + 1} (line {i + 2}) is blank: fix or drop the row")
    return validate_table(df, required=required, what=f"table '{p}'", line_offset=2 if csv else None)


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
