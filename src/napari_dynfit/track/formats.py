"""Track formats: Cell Tracking Challenge (CTC) import/export, TrackMate XML import, label-movie input,
and conversion of tracks to napari's Tracks layer data and to relabelled label movies.

CTC folders hold one label TIFF per frame (``man_track####.tif`` / ``mask####.tif``, label = track id)
and a text file ``man_track.txt`` / ``res_track.txt`` with one line ``L B E P`` per track (label, first
frame, last frame, parent label or 0). A CTC track is continuous in time: a track that skips frames is
written as two tracks, the second with the first as parent, and read back as one track.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_path, check_input_file
from ..errors import InputError
from ..tables import coord_columns, validate_table

_CTC_TXT = ("res_track.txt", "man_track.txt")
#: JSON file of a CTC folder we write: what the CTC format does not carry (pixel size, frame interval, units).
CTC_META = "dynfit_tracks.json"
_CTC_TIF = re.compile(r"^(?:mask|man_track|man_seg)(\d+)\.tiff?$", re.IGNORECASE)


def tracks_from_edges(frames: np.ndarray, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a lineage graph into tracks.

    Parameters
    ----------
    frames : ndarray of int, shape (n,)
        Frame of every node.
    src, dst : ndarray of int
        Directed edges (node indices, earlier to later).

    Returns
    -------
    track_id, parent_id : ndarray of int, shape (n,)
        A track is a chain of nodes with one successor each; a node with two or more successors ends its
        track and each successor starts a new track whose ``parent_id`` is the ended track. A node with
        several predecessors (a merge) continues the earliest-listed predecessor's track only.
    """
    n = len(frames)
    outdeg = np.bincount(src, minlength=n)
    pred = np.full(n, -1, np.int64)
    div_parent = np.full(n, -1, np.int64)
    for s, d in zip(src.tolist(), dst.tolist()):
        if outdeg[s] == 1 and pred[d] < 0:
            pred[d] = s
        elif outdeg[s] >= 2 and div_parent[d] < 0 and pred[d] < 0:
            div_parent[d] = s
    track = np.full(n, -1, np.int64)
    nxt = 1
    for k in np.argsort(frames, kind="stable").tolist():
        if pred[k] >= 0 and track[pred[k]] > 0:
            track[k] = track[pred[k]]
        else:
            track[k] = nxt
            nxt += 1
    parent_of = {}
    for k in np.flatnonzero(div_parent >= 0).tolist():
        parent_of[int(track[k])] = int(track[div_parent[k]])
    parent = np.array([parent_of.get(int(t), -1) for t in track], np.int64)
    return track, parent


def _ctc_files(folder: Path) -> tuple[Path | None, list[tuple[int, Path]]]:
    txt = next((folder / t for t in _CTC_TXT if (folder / t).is_file()), None)
    tifs = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _CTC_TIF.match(p.name)))
    return txt, tifs


def read_label_movie(path, *, what: str = "label movie", axes: str | None = None) -> np.ndarray:
    """Read a (label) movie ``(t, [z,] y, x)`` from a TIFF stack, an OME-Zarr/Zarr store or a CTC folder.

    ``what`` names the input in error messages. A TIFF's axes come from its metadata (ImageJ / OME) or from
    ``axes`` (file order, e.g. ``"tyx"``); a TIFF of 3+ dimensions that names none needs ``axes``
    (:func:`napari_dynfit._tiff.tiff_axes`). A CTC folder holds one frame per file: its axes are ``[z,] y, x``.
    """
    from ..io.image import open_image

    img = open_image(path, axes, what=what)
    if axes is None:
        img = img.as_movie_axes()  # a Zarr store that does not name its axes holds a movie here
    arr = np.asarray(img.movie())
    if img.axes_source in ("ome-zarr", "default") and img.ndim > 4:  # (t, c, z, y, x) labels, z = 1: (t, y, x)
        arr = arr.reshape([s for i, s in enumerate(arr.shape) if not (s == 1 and i > 0)])
    return arr


def read_ctc(folder) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a CTC ground-truth (``TRA``) or result folder.

    Returns
    -------
    tracks : pandas.DataFrame
        ``track_id, frame, [z,] y, x, parent_id, label, size`` (centroids of the masks, pixels); tracks the CTC
        file splits at gaps are joined.
    labels : ndarray of int, shape (t, [z,] y, x)
        The label movie (label = CTC track label).
    """
    from ..detect.labels import label_table

    p = check_input_file(folder, what="CTC folder")
    if not p.is_dir():
        raise InputError(f"'{p}' is not a folder: pass the CTC folder holding man_track.txt or res_track.txt")
    txt, _ = _ctc_files(p)
    if txt is None:
        raise InputError(f"CTC folder '{p}' lacks man_track.txt / res_track.txt")
    try:
        lines = np.loadtxt(txt, dtype=np.int64, ndmin=2)
    except Exception as exc:
        raise InputError(f"cannot parse '{txt}' ({exc}): each line must be 'L B E P' (four integers)") from exc
    if lines.size and lines.shape[1] != 4:
        raise InputError(f"'{txt}' must have four integer columns 'L B E P', found {lines.shape[1]}")
    labels = read_label_movie(p)
    tab = label_table(labels)
    tab["track_id"] = tab["label"]
    info = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in lines}
    children: dict[int, list[int]] = {}
    for lab, (_, _, par) in info.items():
        if par > 0:
            children.setdefault(par, []).append(lab)
    # a single child starting after a gap continues its parent
    alias = {}
    for par, kids in children.items():
        if len(kids) == 1 and par in info and info[kids[0]][0] > info[par][1] + 1:
            alias[kids[0]] = par
    def root(lab):
        while lab in alias:
            lab = alias[lab]
        return lab
    def parent(track):  # the parent of a joined track is the parent of its first piece (the root)
        par = info[track][2] if track in info else 0
        return root(par) if par > 0 else -1

    tab["track_id"] = [root(t) for t in tab["label"].tolist()]
    tab["parent_id"] = [parent(t) for t in tab["track_id"].tolist()]
    cols = ["track_id", "frame"] + coord_columns(tab) + ["parent_id", "label", "size"]
    return tab[cols].sort_values(["track_id", "frame"]).reset_index(drop=True), labels


def _split_gaps(tracks: pd.DataFrame) -> pd.DataFrame:
    """CTC tracks are continuous: split tracks at gaps (each later piece has the earlier one as parent)."""
    df = tracks.sort_values(["track_id", "frame"]).reset_index(drop=True)
    tid = df["track_id"].to_numpy()
    fr = df["frame"].to_numpy()
    same = np.r_[False, tid[1:] == tid[:-1]]
    brk = same & np.r_[False, fr[1:] > fr[:-1] + 1]
    if not brk.any():
        return df
    piece = pd.Series(brk.astype(int)).groupby(tid).cumsum().to_numpy()
    new_id = tid.copy()
    later = piece > 0
    keys = tid[later] * (piece.max() + 1) + piece[later]
    uniq, inv = np.unique(keys, return_inverse=True)
    new_id[later] = tid.max() + 1 + inv
    last_piece = dict(zip(tid.tolist(), new_id.tolist()))  # rows are sorted: the last write wins
    prev_row_id = np.r_[-1, new_id[:-1]]
    par = df["parent_id"].to_numpy()
    par = np.where(later, np.where(brk, prev_row_id, -1), [last_piece.get(int(q), int(q)) for q in par])
    # rows inside a later piece take the parent set at the piece's first row
    out = df.copy()
    out["track_id"] = new_id
    out["parent_id"] = par
    out["parent_id"] = out.groupby("track_id")["parent_id"].transform("max")
    return out


def write_ctc(tracks: pd.DataFrame, folder, *, labels=None, shape=None, radius: float = 2.0,
              meta: dict | None = None) -> Path:
    """Write a CTC result folder: ``res_track.txt`` and ``mask###.tif`` (label = track id).

    Parameters
    ----------
    tracks : pandas.DataFrame
        Tracks table. With ``labels`` it needs a ``label`` column (the label of each detection in its frame).
    folder : str or Path
        Output folder (replaced atomically).
    labels : array_like of int, shape (t, [z,] y, x), optional
        The label movie the detections came from; relabelled so that each mask carries its track id.
    shape : tuple of int, optional
        Image shape ``([z,] y, x)`` for point tracks (no ``labels``): each point is drawn as a disc/ball.
    radius : float
        Radius in pixels of those discs.
    meta : dict, optional
        Written as ``CTC_META`` (JSON) beside ``res_track.txt``: pixel size, frame interval and units, which the
        CTC format does not carry (:func:`napari_dynfit.track.io_formats.read_tracks` reads them back).
    """
    import tifffile

    df = validate_table(tracks, required=("frame", "track_id"), what="tracks")
    if "parent_id" not in df.columns:
        df["parent_id"] = -1
    if (df["track_id"] <= 0).any():
        raise InputError("CTC track ids must be positive integers: renumber the tracks from 1")
    df = _split_gaps(df)
    cols = coord_columns(df)
    if labels is not None:
        movie = relabel_movie(labels, df)
    else:
        if shape is None:
            raise InputError("write_ctc needs the image shape for point tracks (or pass the label movie)")
        from ..validate import check_memory

        if len(shape) != len(cols):
            raise InputError(f"the image shape {tuple(shape)} has {len(shape)} axes but the tracks have {len(cols)} "
                             f"({', '.join(cols)}): give one size per axis (--shape)")
        nt = int(df["frame"].max()) + 1
        dtype = np.dtype(np.uint16 if df["track_id"].max() < 65535 else np.uint32)
        check_memory(nt * float(np.prod(shape, dtype=float)) * dtype.itemsize,
                     f"CTC masks of {nt} frames x {' x '.join(map(str, shape))} pixels", "give a smaller --shape")
        check_memory(16.0 * len(cols) * (2 * np.ceil(radius) + 1) ** len(cols), f"discs of radius {radius:g} pixels",
                     "give a smaller --radius")
        movie = np.zeros((nt,) + tuple(shape), dtype)
        r = int(np.ceil(radius))
        offs = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * len(cols), indexing="ij"), -1).reshape(-1, len(cols))
        offs = offs[(offs ** 2).sum(1) <= radius ** 2]
        c = np.round(df[cols].to_numpy()).astype(int)
        pts = (c[:, None, :] + offs[None]).reshape(-1, len(cols))
        ids = np.repeat(df["track_id"].to_numpy(), len(offs))
        frs = np.repeat(df["frame"].to_numpy(), len(offs))
        ok = ((pts >= 0) & (pts < np.array(shape))).all(1)
        movie[(frs[ok],) + tuple(pts[ok].T)] = ids[ok]
    g = df.groupby("track_id")
    table = pd.DataFrame({"L": g["frame"].min().index, "B": g["frame"].min().values, "E": g["frame"].max().values,
                          "P": np.maximum(g["parent_id"].first().values, 0)})
    ndig = max(3, len(str(movie.shape[0] - 1)))
    with atomic_path(folder, is_dir=True) as tmp:
        np.savetxt(tmp / "res_track.txt", table.to_numpy(np.int64), fmt="%d")
        if meta:
            (tmp / CTC_META).write_text(json.dumps(meta, indent=1) + "\n")
        for t in range(movie.shape[0]):
            tifffile.imwrite(tmp / f"mask{t:0{ndig}d}.tif", movie[t], compression="zlib")
    return Path(folder)


def relabel_movie(labels, tracks: pd.DataFrame) -> np.ndarray:
    """Label movie whose masks carry their track ids (``tracks`` needs ``frame, label, track_id``)."""
    from ..detect.labels import check_labels

    lab = check_labels(labels)
    if "label" not in tracks.columns:
        raise InputError("tracks lack a 'label' column: link detections made by label_table to relabel masks")
    dtype = np.uint16 if tracks["track_id"].max() < 65535 else np.uint32
    out = np.zeros(lab.shape, dtype)
    for t, grp in tracks.groupby("frame"):
        if t >= lab.shape[0]:
            raise InputError(f"tracks reach frame {t} but the label movie has {lab.shape[0]} frames")
        lut = np.zeros(int(max(lab[t].max(), grp["label"].max())) + 1, dtype)
        lut[grp["label"].to_numpy(np.int64)] = grp["track_id"].to_numpy()
        out[t] = lut[lab[t]]
    return out


def to_napari_tracks(tracks: pd.DataFrame) -> tuple[np.ndarray, dict, dict]:
    """napari Tracks layer data: ``(data, properties, graph)``.

    ``data`` is ``(n, 2 + ndim)`` rows ``track_id, t, [z,] y, x``; ``graph`` maps each daughter track to
    ``[mother track]`` (the lineage).
    """
    df = validate_table(tracks, required=("frame", "track_id"), what="tracks").sort_values(["track_id", "frame"])
    cols = coord_columns(df)
    data = df[["track_id", "frame"] + cols].to_numpy(float)
    props = {c: df[c].to_numpy() for c in df.columns if c not in ("track_id", "frame", *cols)
             and np.issubdtype(df[c].dtype, np.number)}
    graph = {}
    if "parent_id" in df.columns:
        par = df.groupby("track_id")["parent_id"].first()
        graph = {int(k): [int(v)] for k, v in par.items() if v >= 0 and v in par.index}
    return data, props, graph


#: Spot attributes of a TrackMate XML file that are not features (positions, frame, ids, display).
_TM_NOT_FEATURES = {"ID", "name", "FRAME", "POSITION_X", "POSITION_Y", "POSITION_Z", "POSITION_T", "VISIBILITY",
                    "MANUAL_COLOR", "MANUAL_SPOT_COLOR"}
#: TrackMate's unit names -> the names napari / OME-NGFF / GEFF use.
_TM_UNITS = {"micron": "micrometer", "microns": "micrometer", "um": "micrometer", "µm": "micrometer",
             "nm": "nanometer", "mm": "millimeter", "sec": "second", "s": "second", "min": "minute",
             "h": "hour", "ms": "millisecond", "pixel": None, "pixels": None, "frame": None, "frames": None}


def _tm_unit(text):
    if text is None:
        return None
    t = text.strip()
    return _TM_UNITS.get(t.lower(), t) if t else None


def read_trackmate_xml(path) -> pd.DataFrame:
    """Read a TrackMate XML file (``Model/AllSpots`` + ``Model/AllTracks``) as a tracks table in pixels.

    Returns
    -------
    pandas.DataFrame
        ``track_id, frame, [z,] y, x, parent_id, lineage_id, spot_id`` and one column per numeric spot
        feature (``QUALITY``, ``MEAN_INTENSITY_CH1``, ``RADIUS``, ... lower-cased). Positions are divided by
        TrackMate's calibration (``pixelwidth``, ``pixelheight``, ``voxeldepth``); a track is split at
        divisions (each daughter a track with the mother as ``parent_id``); ``lineage_id`` is TrackMate's
        ``TRACK_ID`` (one per connected track), ``-1`` for spots outside any track, which become one-detection
        tracks. Only visible spots (``VISIBILITY=1``) of the tracks TrackMate kept (``FilteredTracks``) are read.
        ``attrs``: ``spacing`` (calibration), ``dt`` (``timeinterval``), ``space_unit``, ``time_unit``.
    """
    import xml.etree.ElementTree as ET

    p = check_input_file(path, suffixes=(".xml",), what="TrackMate file")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise InputError(f"cannot parse '{p}' as XML ({exc}): is it a TrackMate export?") from exc
    if root.tag != "TrackMate":
        raise InputError(f"'{p}' is an XML file but not a TrackMate file (root element <{root.tag}>, "
                         "expected <TrackMate>)")
    spots = [s for s in root.findall(".//AllSpots//Spot") if s.get("VISIBILITY", "1").strip() not in ("0", "0.0")]
    if not spots:
        raise InputError(f"'{p}' has no visible AllSpots/Spot elements: export the full TrackMate model (not a CSV)")
    img = root.find(".//Settings/ImageData")
    cal = {"x": 1.0, "y": 1.0, "z": 1.0}
    dt = 1.0
    if img is not None:
        try:
            cal = {"x": float(img.get("pixelwidth", 1) or 1), "y": float(img.get("pixelheight", 1) or 1),
                   "z": float(img.get("voxeldepth", 1) or 1)}
            dt = float(img.get("timeinterval", 1) or 1)
        except ValueError as exc:
            raise InputError(f"'{p}': the ImageData calibration is not a number ({exc})") from exc
        if not all(np.isfinite(v) and v > 0 for v in (*cal.values(), dt)):
            cal, dt = {"x": 1.0, "y": 1.0, "z": 1.0}, 1.0
    try:
        ids = np.array([int(s.get("ID")) for s in spots])
        frames = np.array([int(float(s.get("FRAME"))) for s in spots])
        pos = {a: np.array([float(s.get(f"POSITION_{a.upper()}", 0)) / cal[a] for s in spots]) for a in "zyx"}
    except (TypeError, ValueError) as exc:
        raise InputError(f"'{p}': a Spot lacks a numeric ID, FRAME or POSITION ({exc}): the file is damaged") from exc
    is3d = (img is not None and int(float(img.get("nslices", 1) or 1)) > 1) or np.ptp(pos["z"]) > 0
    index = {k: i for i, k in enumerate(ids.tolist())}
    kept = root.find(".//FilteredTracks")
    keep = None if kept is None else {int(t.get("TRACK_ID")) for t in kept.findall("TrackID")}
    lineage = np.full(len(ids), -1, np.int64)
    drop = np.zeros(len(ids), bool)
    src, dst = [], []
    for trk in root.findall(".//AllTracks/Track"):
        tid = int(trk.get("TRACK_ID", -1))
        members = set()
        for e in trk.findall("Edge"):
            a, b = index.get(int(e.get("SPOT_SOURCE_ID"))), index.get(int(e.get("SPOT_TARGET_ID")))
            if a is None or b is None:
                continue  # an edge to an invisible spot
            members.update((a, b))
            if keep is not None and tid not in keep:
                continue
            if frames[a] > frames[b]:
                a, b = b, a
            src.append(a), dst.append(b)
        idx = np.fromiter(members, np.int64, len(members))
        if keep is not None and tid not in keep:
            drop[idx] = True
        else:
            lineage[idx] = tid
    track, parent = tracks_from_edges(frames, np.array(src, np.int64), np.array(dst, np.int64))
    df = pd.DataFrame({"track_id": track, "frame": frames})
    axes = "zyx" if is3d else "yx"
    for a in axes:
        df[a] = pos[a]
    df["parent_id"] = parent
    df["lineage_id"] = lineage
    df["spot_id"] = ids
    names = sorted({k for s in spots for k in s.keys()} - _TM_NOT_FEATURES)
    for k in names:
        vals = [s.get(k) for s in spots]
        try:
            df[k.lower()] = np.array([np.nan if v is None else float(v) for v in vals])
        except ValueError:
            continue  # a text attribute
    df = df[~drop].sort_values(["track_id", "frame"]).reset_index(drop=True)
    if df.empty:
        raise InputError(f"'{p}' keeps no visible spot in its filtered tracks: nothing to read")
    model = root.find("Model")
    df.attrs["spacing"] = [cal[a] for a in axes]
    df.attrs["dt"] = dt
    if model is not None:
        su = _tm_unit(model.get("spatialunits"))
        tu = _tm_unit(model.get("timeunits"))
        if su:
            df.attrs["space_unit"] = su
        if tu:
            df.attrs["time_unit"] = tu
    return df
