"""Tracks files in and out: one reader and one writer for every tracks format napari-dynfit knows.

:func:`read_tracks` and :func:`write_tracks` choose the format from the path:

============================  =====================================================================  =======
format                        path                                                                   access
============================  =====================================================================  =======
Cell Tracking Challenge       a folder with ``res_track.txt`` / ``man_track.txt`` + ``mask###.tif``,  read/write
                              that text file itself, or (to write) a folder name without suffix or
                              ending in ``.ctc``
GEFF (graph exchange format)  a Zarr folder ``*.geff`` / ``*.zarr`` holding GEFF metadata               read/write
TrackMate                     ``*.xml`` (a TrackMate session / export)                                read
table                         ``*.csv``, ``*.parquet``                                               read/write
============================  =====================================================================  =======

Every reader returns the tracks table of :mod:`napari_dynfit.tables`: one row per detection, columns
``track_id, frame, [z,] y, x, parent_id`` (axis order t, z, y, x; ``parent_id`` -1 for a root, else the
track the detection's track divided from) and any features (``label``, ``size``, ``quality``, ...).
Coordinates are in pixels; ``attrs`` carries the geometry and units when the file does:

* ``spacing``: physical size of a pixel along ``([z,] y, x)``; ``origin``: physical position of pixel 0
  (napari's ``translate``);
* ``dt``: time between frames; ``space_unit``, ``time_unit``: unit names (``"micrometer"``, ``"second"``).

GEFF keeps all of it (axis ``scale``, ``offset``, ``unit``, ``scaled_unit``); Parquet keeps ``attrs``; a CTC
folder we write keeps it in ``dynfit_tracks.json``; CSV keeps none. A track is a chain of detections of one
object, which may skip frames (a gap); a division ends the mother track and starts one track per daughter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._io import atomic_path, check_input_file
from ..errors import InputError
from ..tables import SPATIAL, TABLE_SUFFIXES, coord_columns, read_table, validate_table, write_table
from .formats import _CTC_TXT, CTC_META, read_ctc, read_trackmate_xml, tracks_from_edges, write_ctc

#: Formats of :func:`read_tracks` / :func:`write_tracks`.
FORMATS = ("ctc", "geff", "trackmate", "table")
#: Suffixes of tracks files (for file dialogs and napari's reader patterns).
GEFF_SUFFIXES = (".geff", ".zarr")
READ_SUFFIXES = (".geff", ".zarr", ".xml", ".csv", ".parquet", ".pq", ".txt")
#: The ``attrs`` keys that describe geometry and units (kept by the formats that can).
GEOMETRY_ATTRS = ("spacing", "origin", "dt", "space_unit", "time_unit")
_TIME_NAMES = ("t", "time", "frame")


# ------------------------------------------------------------------------------------------------
# format detection


def _is_geff(p: Path) -> bool:
    """Whether ``p`` is a Zarr folder whose root attributes hold GEFF metadata."""
    for name in ("zarr.json", ".zattrs"):
        f = p / name
        if f.is_file():
            try:
                attrs = json.loads(f.read_text())
            except (OSError, ValueError):
                return False
            attrs = attrs.get("attributes", attrs) if name == "zarr.json" else attrs
            return isinstance(attrs, dict) and "geff" in attrs
    return False


def tracks_format(path, *, write: bool = False) -> str:
    """The format of a tracks path (one of :data:`FORMATS`); ``write``: of a path to be written.

    Raises :class:`InputError` (one line) when the path is none of them.
    """
    p = Path(path).expanduser()
    name = p.name.lower()
    suffix = p.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return "table"
    if suffix == ".xml":
        if write:
            raise InputError(f"'{p}': TrackMate XML is read only; write GEFF (.geff), CTC (a folder) or a table "
                             "(.csv / .parquet)")
        return "trackmate"
    if write:
        if suffix in GEFF_SUFFIXES or name.endswith(".geff.zarr"):
            return "geff"
        if suffix in ("", ".ctc"):
            return "ctc"
        raise InputError(f"'{p}': unknown tracks format '{suffix}'; use .geff (GEFF), .csv / .parquet (table) or a "
                         "folder without suffix (Cell Tracking Challenge)")
    if name in _CTC_TXT:
        return "ctc"
    if p.is_dir():
        if _is_geff(p):
            return "geff"
        if any((p / t).is_file() for t in _CTC_TXT):
            return "ctc"
        raise InputError(f"folder '{p}' is neither a GEFF store (no 'geff' metadata) nor a CTC folder "
                         f"(no {' / '.join(_CTC_TXT)})")
    raise InputError(f"'{p}' is not a tracks file: expected a CTC folder or its res_track.txt, a GEFF store "
                     "(.geff / .zarr), a TrackMate .xml, or a .csv / .parquet table")


# ------------------------------------------------------------------------------------------------
# reading


def read_tracks(path, *, format: str | None = None) -> pd.DataFrame:
    """Read a tracks file (CTC, GEFF, TrackMate XML, CSV/Parquet) as a tracks table.

    Parameters
    ----------
    path : str or Path
        The file or folder (see the module docstring for the accepted paths).
    format : {"ctc", "geff", "trackmate", "table"}, optional
        Default: from the path (:func:`tracks_format`).

    Returns
    -------
    pandas.DataFrame
        ``track_id, frame, [z,] y, x, parent_id`` (+ features), sorted by track and frame; coordinates in
        pixels; ``attrs``: ``spacing``, ``origin``, ``dt``, ``space_unit``, ``time_unit`` where the file has them.

    Raises
    ------
    InputError
        One line naming the file and what is wrong with it.
    """
    p = check_input_file(path, what="tracks file")
    fmt = format or tracks_format(p)
    if fmt not in FORMATS:
        raise InputError(f"unknown tracks format '{fmt}': choose one of {', '.join(FORMATS)}")
    if fmt == "ctc":
        folder = p.parent if p.is_file() else p
        df, _ = read_ctc(folder)
        meta = folder / CTC_META
        if meta.is_file():
            try:
                df.attrs.update({k: v for k, v in json.loads(meta.read_text()).items() if k in GEOMETRY_ATTRS})
            except ValueError as exc:
                raise InputError(f"'{meta}' is not valid JSON ({exc}): remove or fix it") from exc
    elif fmt == "geff":
        df = _read_geff(p)
    elif fmt == "trackmate":
        df = read_trackmate_xml(p)
    else:
        df = read_table(p, required=("frame", "track_id"))
        if "parent_id" not in df.columns:
            df["parent_id"] = -1
    return _canonical(df)


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Columns ``track_id, frame, [z,] y, x, parent_id`` first, rows by track and frame, attrs kept."""
    attrs = dict(df.attrs)
    cols = coord_columns(df)
    first = ["track_id", "frame", *cols, "parent_id"]
    out = df[first + [c for c in df.columns if c not in first]]
    out = out.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)
    out.attrs = attrs
    return out


def _require_geff():
    try:
        import geff  # noqa: F401
    except ImportError as exc:  # pragma: no cover - geff is a dependency
        raise InputError("GEFF files need the 'geff' package: pip install 'geff>=1.0'") from exc


def _short(exc: Exception) -> str:
    """One short line for an exception of geff / pydantic / zarr."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            errs = errors()
            first = errs[0]
            where = ".".join(str(x) for x in first.get("loc", ())) or "metadata"
            return f"{len(errs)} metadata problem(s), first: {where}: {first.get('msg', '')}"
        except Exception:  # noqa: BLE001 - not a pydantic error after all
            pass
    msg = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {msg[:160]}{'...' if len(msg) > 160 else ''}"


class _Axis(NamedTuple):
    """A GEFF axis without metadata (a property named t / z / y / x)."""

    name: str
    type: str | None = None
    scale: float | None = None
    unit: str | None = None
    scaled_unit: str | None = None
    offset: float | None = None


def _read_geff(p: Path) -> pd.DataFrame:
    _require_geff()
    from geff.core_io import read_to_memory

    try:
        mem = read_to_memory(str(p))
    except Exception as exc:  # geff / zarr / pydantic raise many types for damaged stores
        raise InputError(f"cannot read GEFF '{p}' ({_short(exc)}): is it a complete GEFF store?") from exc
    meta = mem["metadata"]
    props = mem["node_props"]
    nodes = np.asarray(mem["node_ids"])
    if len(nodes) == 0:
        raise InputError(f"GEFF '{p}' has no nodes: nothing to read")

    def values(name):
        d = props[name]
        v = np.asarray(d["values"])
        miss = d.get("missing")
        if v.ndim != 1 or not np.issubdtype(v.dtype, np.number) and v.dtype != bool:
            return None
        v = v.astype(float) if miss is not None and np.any(miss) else v
        if miss is not None and np.any(miss):
            v[np.asarray(miss, bool)] = np.nan
        return v

    axes = list(meta.axes or [])
    t_ax = next((a for a in axes if a.type == "time"), None) or next(
        (a for a in axes if a.name.lower() in _TIME_NAMES), None)
    if t_ax is None:  # no axes metadata: a property named t / time / frame
        t_ax = next((_Axis(n) for n in _TIME_NAMES if n in props), None)
    if t_ax is None or t_ax.name not in props:
        raise InputError(f"GEFF '{p}' has no time axis (metadata axes {[a.name for a in axes]}): tracks need "
                         "a node property of type 'time'")
    space = [a for a in axes if a is not t_ax and (a.type == "space" or (a.type is None and a.name.lower() in SPATIAL))]
    if not space:
        space = [_Axis(n) for n in SPATIAL if n in props]
    if {a.name.lower() for a in space} <= set(SPATIAL):  # named z / y / x: put them in (z, y, x) order
        space.sort(key=lambda a: SPATIAL.index(a.name.lower()))
    if len(space) not in (2, 3) or any(a.name not in props for a in space):
        raise InputError(f"GEFF '{p}' has {len(space)} spatial axes ({[a.name for a in space]}): tracks need 2 "
                         "(y, x) or 3 (z, y, x) spatial node properties")
    t = values(t_ax.name)
    if t is None or not np.all(np.isfinite(t)):
        raise InputError(f"GEFF '{p}': the time property '{t_ax.name}' must be numbers for every node")
    dt = float(t_ax.scale) if t_ax.scale else 1.0
    if np.allclose(t, np.round(t)):
        frames = np.round(t).astype(np.int64)
    else:  # times, not frame numbers: frame = time / the smallest time step
        steps = np.diff(np.unique(t))
        step = float(steps[steps > 0].min()) if len(steps) else 1.0
        frames = np.round((t - t.min()) / step).astype(np.int64)
        dt *= step
    if frames.min() < 0:
        frames = frames - frames.min()
    index = {int(k): i for i, k in enumerate(nodes.tolist())}
    edges = np.asarray(mem["edge_ids"]).reshape(-1, 2)
    try:
        src = np.array([index[int(a)] for a in edges[:, 0]], np.int64)
        dst = np.array([index[int(b)] for b in edges[:, 1]], np.int64)
    except KeyError as exc:
        raise InputError(f"GEFF '{p}' has an edge to node {exc}, which is not in its nodes: the file is "
                         "damaged") from exc
    swap = frames[src] > frames[dst]
    src, dst = np.where(swap, dst, src), np.where(swap, src, dst)
    tracklet = (meta.track_node_props or {}).get("tracklet")
    if tracklet in props and values(tracklet) is not None and np.all(np.isfinite(values(tracklet))):
        track = values(tracklet).astype(np.int64)
        parent_of: dict[int, int] = {}
        for a, b in zip(track[src].tolist(), track[dst].tolist()):
            if a != b:
                parent_of.setdefault(b, a)
        parent = np.array([parent_of.get(k, -1) for k in track.tolist()], np.int64)
    else:
        track, parent = tracks_from_edges(frames, src, dst)
    df = pd.DataFrame({"track_id": track, "frame": frames})
    names = "zyx"[-len(space):]
    for a, n in zip(space, names):
        v = values(a.name)
        if v is None:
            raise InputError(f"GEFF '{p}': the spatial property '{a.name}' is not numeric")
        df[n] = v.astype(float)
    df["parent_id"] = parent
    skip = {t_ax.name, tracklet, *(a.name for a in space)}
    for name in props:
        if name in skip or name in df.columns:
            continue
        v = values(name)
        if v is not None:
            df[name] = v
    df.attrs["spacing"] = [float(a.scale) if a.scale else 1.0 for a in space]
    if any(a.offset for a in space):
        df.attrs["origin"] = [float(a.offset or 0.0) for a in space]
    df.attrs["dt"] = dt
    su = next((a.scaled_unit if a.scale and a.scaled_unit else a.unit for a in space), None)
    if su and su != "pixel":
        df.attrs["space_unit"] = su
    tu = t_ax.scaled_unit if t_ax.scale and t_ax.scaled_unit else t_ax.unit
    if tu and tu != "frame":
        df.attrs["time_unit"] = tu
    return df


# ------------------------------------------------------------------------------------------------
# writing


def _geometry(df: pd.DataFrame) -> dict:
    return {k: df.attrs[k] for k in GEOMETRY_ATTRS if df.attrs.get(k) is not None}


def write_tracks(tracks: pd.DataFrame, path, *, format: str | None = None, labels=None, shape=None,
                 radius: float = 2.0) -> Path:
    """Write a tracks table as CTC, GEFF or CSV/Parquet (atomically; an existing output is replaced only
    when napari-dynfit wrote it).

    Parameters
    ----------
    tracks : pandas.DataFrame
        ``track_id, frame, [z,] y, x`` (pixels) and optionally ``parent_id`` and features; ``attrs`` as in
        :func:`read_tracks`.
    path : str or Path
        ``*.geff`` / ``*.zarr`` (GEFF), ``*.csv`` / ``*.parquet`` (table), or a folder without suffix or
        ending in ``.ctc`` (Cell Tracking Challenge).
    format : {"ctc", "geff", "table"}, optional
        Default: from the path (:func:`tracks_format` with ``write=True``).
    labels : array_like of int, shape (t, [z,] y, x), optional
        CTC only: the label movie the detections came from (needs a ``label`` column); its masks are
        relabelled with the track ids.
    shape : tuple of int, optional
        CTC only, without ``labels``: image shape ``([z,] y, x)`` in pixels; default ``attrs["shape"]``, else
        the extent of the tracks plus ``radius``.
    radius : float
        CTC only, without ``labels``: radius in pixels of the disc (ball) drawn for each detection; its
        centroid, which CTC readers take as the position, is the rounded position.

    Returns
    -------
    Path
        What was written.
    """
    p = Path(path).expanduser()
    fmt = format or tracks_format(p, write=True)
    if fmt == "trackmate":
        raise InputError("TrackMate XML is read only: write GEFF, CTC or a table")
    if fmt not in FORMATS:
        raise InputError(f"unknown tracks format '{fmt}': choose one of ctc, geff, table")
    df = validate_table(tracks, required=("frame", "track_id"), what="tracks")
    if "parent_id" not in df.columns:
        df["parent_id"] = -1
    df = _canonical(df)
    if fmt == "table":
        return write_table(df, p)
    if fmt == "geff":
        return _write_geff(df, p)
    cols = coord_columns(df)
    if labels is None and shape is None:
        shape = df.attrs.get("shape")
        if shape is None:
            ext = np.ceil(df[cols].to_numpy().max(axis=0) + radius).astype(int) + 1
            shape = tuple(int(max(e, 1)) for e in ext)
        shape = tuple(int(s) for s in shape)[-len(cols):]
    return write_ctc(df, p, labels=labels, shape=shape, radius=radius, meta=_geometry(df))


def _write_geff(df: pd.DataFrame, p: Path) -> Path:
    _require_geff()
    from geff import GeffMetadata
    from geff.core_io import write_arrays
    from geff_spec import Axis

    cols = coord_columns(df)
    n = len(df)
    ids = np.arange(n, dtype=np.int64)
    track = df["track_id"].to_numpy(np.int64)
    frame = df["frame"].to_numpy(np.int64)
    # edges: consecutive detections of a track (rows are sorted by track and frame), mother's last -> daughter's first
    same = track[1:] == track[:-1]
    src, dst = list(ids[:-1][same]), list(ids[1:][same])
    first = dict(zip(*np.unique(track, return_index=True)))
    last = {k: i for i, k in enumerate(track.tolist())}
    for tid, par in df.groupby("track_id")["parent_id"].first().items():
        if par >= 0 and par in last and par != tid:
            src.append(last[par]), dst.append(first[tid])
    edges = np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)], axis=1) if src else \
        np.zeros((0, 2), np.int64)

    def prop(v):
        v = np.asarray(v)
        miss = None
        if np.issubdtype(v.dtype, np.floating) and np.isnan(v).any():
            miss = np.isnan(v)
        return {"values": v, "missing": miss}

    node_props = {"t": prop(frame), "track_id": prop(track)}
    for c in cols:
        node_props[c] = prop(df[c].to_numpy(float))
    for c in df.columns:
        if c in ("track_id", "frame", "parent_id", *cols) or c in node_props:
            continue
        v = df[c]
        if pd.api.types.is_bool_dtype(v) or pd.api.types.is_numeric_dtype(v):
            node_props[str(c)] = prop(v.to_numpy())
    sp = list(df.attrs.get("spacing") or [1.0] * len(cols))[-len(cols):]
    origin = list(df.attrs.get("origin") or [0.0] * len(cols))[-len(cols):]
    su, tu = df.attrs.get("space_unit"), df.attrs.get("time_unit")
    axes = [Axis(name="t", type="time", unit="frame", scale=float(df.attrs.get("dt") or 1.0),
                 scaled_unit=tu)]
    axes += [Axis(name=c, type="space", unit="pixel", scale=float(s), scaled_unit=su, offset=float(o) or None)
             for c, s, o in zip(cols, sp, origin)]
    meta = GeffMetadata(directed=True, axes=axes, track_node_props={"tracklet": "track_id"},
                        node_props_metadata={}, edge_props_metadata={},
                        extra={"napari_dynfit": {"attrs": _geometry(df)}})
    with atomic_path(p, is_dir=True) as tmp:
        try:
            write_arrays(str(tmp), ids, node_props, edges, None, meta, overwrite=True)
        except (ValueError, TypeError) as exc:
            raise InputError(f"cannot write GEFF '{p}' ({_short(exc)})") from exc
    return p


# ------------------------------------------------------------------------------------------------
# napari layers (duck-typed: no napari import)


def tracks_from_napari(layer, *, physical: bool = True) -> pd.DataFrame:
    """The tracks table of a napari Tracks layer (or of a Points layer with a ``track_id`` feature).

    Parameters
    ----------
    layer : napari.layers.Tracks or napari.layers.Points
        Tracks: ``data`` rows ``track_id, t, [z,] y, x``, lineage in ``graph``, features in ``features``.
        Points: ``data`` rows ``t, [z,] y, x`` and a ``track_id`` feature (``parent_id`` optional).
    physical : bool
        ``True``: coordinates in world units, ``data * scale + translate`` along the spatial axes (what is
        drawn on screen, e.g. µm); ``attrs["spacing"]`` is then 1. ``False``: data coordinates (pixels)
        with ``attrs["spacing"] = scale`` and ``attrs["origin"] = translate``.

    Returns
    -------
    pandas.DataFrame
        ``track_id, frame, [z,] y, x, parent_id`` (+ numeric features); ``frame`` is the layer's time index
        (data coordinate, rounded). ``attrs["dt"]`` is ``metadata["dt"]`` when set, else the time scale;
        ``attrs["space_unit"]`` the layer's spatial unit when it is not pixels.
    """
    name = getattr(layer, "name", "layer")
    data = np.asarray(getattr(layer, "data", None), dtype=float)
    feats = getattr(layer, "features", None)
    feats = feats if isinstance(feats, pd.DataFrame) else pd.DataFrame()
    is_tracks = type(layer).__name__ == "Tracks" or hasattr(layer, "graph")
    if is_tracks:
        if data.ndim != 2 or data.shape[1] not in (4, 5) or len(data) == 0:
            raise InputError(f"layer '{name}' is not a non-empty Tracks layer (rows track_id, t, [z,] y, x)")
        tid, t, xyz = data[:, 0], data[:, 1], data[:, 2:]
        graph = getattr(layer, "graph", None) or {}
        parents = {int(k): int(v[0]) for k, v in graph.items() if len(v)}
    else:
        if data.ndim != 2 or data.shape[1] not in (3, 4) or len(data) == 0:
            raise InputError(f"layer '{name}' is not a non-empty time-resolved Points layer (rows t, [z,] y, x)")
        if "track_id" not in feats.columns:
            raise InputError(f"Points layer '{name}' has no 'track_id' feature: link the detections first")
        tid, t, xyz = feats["track_id"].to_numpy(float), data[:, 0], data[:, 1:]
        parents = {}
        if "parent_id" in feats.columns:
            parents = dict(zip(feats["track_id"].astype(int), feats["parent_id"].astype(int)))
    nd = xyz.shape[1]
    cols = list(SPATIAL[-nd:])
    scale = getattr(layer, "scale", None)
    scale = np.ones(nd + 1) if scale is None else np.asarray(scale, float)
    translate = getattr(layer, "translate", None)
    translate = np.zeros(nd + 1) if translate is None else np.asarray(translate, float)
    df = pd.DataFrame({"track_id": tid.astype(np.int64), "frame": np.round(t).astype(np.int64)})
    xyz = xyz * scale[-nd:] + translate[-nd:] if physical else xyz
    for i, c in enumerate(cols):
        df[c] = xyz[:, i]
    df["parent_id"] = df["track_id"].map(parents).fillna(-1).astype(np.int64)
    for c in feats.columns:
        if c not in df.columns and len(feats) == len(df) and pd.api.types.is_numeric_dtype(feats[c]):
            df[c] = feats[c].to_numpy()
    meta = getattr(layer, "metadata", None) or {}
    df.attrs["dt"] = float(meta.get("dt") or scale[0] or 1.0)
    if not physical:
        df.attrs["spacing"] = [float(s) for s in scale[-nd:]]
        if np.any(translate[-nd:]):
            df.attrs["origin"] = [float(o) for o in translate[-nd:]]
    units = [str(u) for u in (getattr(layer, "units", None) or ())]
    if len(units) == nd + 1 and units[-1] not in ("pixel", "px", ""):
        df.attrs["space_unit"] = units[-1]
    for k in ("time_unit", "space_unit"):
        if meta.get(k) and k not in df.attrs:
            df.attrs[k] = meta[k]
    df = df.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)
    return df


def tracks_to_napari(tracks: pd.DataFrame, *, name: str = "tracks") -> tuple[np.ndarray, dict]:
    """napari Tracks layer ``(data, kwargs)`` of a tracks table in pixels, with its geometry.

    ``kwargs`` holds ``name``, ``graph`` (lineage), ``features``, and the geometry of
    :func:`napari_dynfit.geometry.movie_geometry` (time axis in frames with ``scale[0] = attrs["dt"]``, in
    ``attrs["time_unit"]``, seconds when the file gives an interval without unit, frames without an interval;
    space: ``attrs["spacing"]`` / ``attrs["origin"]`` in ``attrs["space_unit"]``, else pixels), and
    ``metadata`` (``dt``, units).
    """
    from ..geometry import NO_UNIT, movie_geometry
    from .formats import to_napari_tracks

    df = validate_table(tracks, required=("frame", "track_id"), what="tracks").sort_values(
        ["track_id", "frame"], kind="stable")
    cols = coord_columns(df)
    data, props, graph = to_napari_tracks(df)
    nd = len(cols)
    sp = [float(s) for s in (df.attrs.get("spacing") or [1.0] * nd)][-nd:]
    origin = [float(o) for o in (df.attrs.get("origin") or [0.0] * nd)][-nd:]
    dt = df.attrs.get("dt")
    tu = df.attrs.get("time_unit") or (None if dt else NO_UNIT)
    meta = {"dt": float(dt or 1.0)}
    meta.update({k: df.attrs[k] for k in ("space_unit", "time_unit") if df.attrs.get(k)})
    feats = pd.DataFrame({k: np.asarray(v) for k, v in props.items() if k != "parent_id"})
    kwargs = {"name": name, "graph": graph, "features": feats,
              **movie_geometry(sp, float(dt or 1.0), origin=origin, space_unit=df.attrs.get("space_unit"),
                               time_unit=tu), "metadata": meta}
    return data, kwargs
