"""Save the viewer's layers to a project folder and open a project folder as layers.

Mapping (see :mod:`napari_dynfit.project` for the folder layout):

=========  ==========================================  ===================================
layer      stored as                                   metadata kept
=========  ==========================================  ===================================
Image      Zarr array ``(t, [z,] y, x)``               scale, translate, contrast limits, colormap
Labels     Zarr array                                  scale, translate
Points     table ``frame, [z,] y, x`` + features       scale, translate
Tracks     table ``track_id, frame, [z,] y, x``        scale, translate, lineage graph
Vectors    Zarr array ``(n, 2, ndim)``                 scale, translate
=========  ==========================================  ===================================

A layer a step of the panel (or a widget docked beside it: the closure widget) made records that step and the name it made it under (manifest ``owner``:
``{"step": widget class, "slot": name}``); it opens with them in ``metadata[OWNER_KEY]``, so that the step
claims it and a re-run updates it instead of adding ``"name [1]"`` on each save/open cycle.

Field bundles saved by the pipeline (``fields``) open as one Image layer per scalar field. The
panel also saves its hand-over products with the layers (``extra``: the coarse-grained fields and the
learned model JSON), and the frame interval ``metadata["dt"]`` of every layer that has one.
Lazy APR layers are not copied: they keep pointing at their ``.apr`` source (stored in the
manifest as ``source``) and are re-opened from it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import InputError
from ..project import Project

_AXES = ("frame", "z", "y", "x")

#: the key of a layer's ``metadata`` holding the step that made it (``{"step": class name, "slot": name}``),
#: set on the layers a project opens with
OWNER_KEY = "dynfit_owner"


def layer_owner(layer, owners: dict | None = None) -> dict | None:
    """``{"step", "slot"}`` of the step that made ``layer``: from ``owners`` (layer name -> owner, the live record
    of the panel's steps), else from the layer's metadata (a layer opened from a project and not re-run)."""
    owner = (owners or {}).get(layer.name) or (getattr(layer, "metadata", None) or {}).get(OWNER_KEY)
    if isinstance(owner, dict) and isinstance(owner.get("step"), str) and isinstance(owner.get("slot"), str):
        return {"step": owner["step"], "slot": owner["slot"]}
    return None


def claim_recorded(widgets, layers) -> int:
    """Give each of ``widgets`` (:class:`._contract.LayerOwner`) the ``layers`` a project records as made by
    its class (``metadata[OWNER_KEY]``), under the name it made them under (:meth:`~._contract.LayerOwner.claim`:
    a widget that already has a live layer under that name keeps it). Returns how many were claimed."""
    by_class = {type(w).__name__: w for w in widgets}
    n = 0
    for layer in layers:
        layer = getattr(layer, "__wrapped__", layer)  # napari's proxy of it (plugin widgets get a proxied viewer)
        owner = (getattr(layer, "metadata", None) or {}).get(OWNER_KEY)
        w = by_class.get(owner.get("step")) if isinstance(owner, dict) else None
        if w is not None and isinstance(owner.get("slot"), str) and w.slot_of(layer) is None:
            n += bool(w.claim(layer, owner["slot"]))
    return n


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "layer"


def _points_table(data: np.ndarray, features: pd.DataFrame | None, *, time_axis: bool = True) -> pd.DataFrame:
    """Points layer data -> table ``[frame,] [z,] y, x`` (+ features); ``time_axis``: the first column is time."""
    n_space = data.shape[1] - (1 if time_axis else 0)
    if not 1 <= n_space <= 3:
        raise InputError(f"cannot store {data.shape[1]}-dimensional points in a project (at most t, z, y, x)")
    cols = (["frame"] if time_axis else []) + list(_AXES[-n_space:])
    df = pd.DataFrame(data, columns=cols)
    if time_axis:
        df["frame"] = np.round(df["frame"]).astype(np.int64)
    if features is not None and len(features) == len(df):
        for c in features.columns:
            if c not in df.columns:
                df[c] = np.asarray(features[c])
    return df


def save_viewer_project(viewer, folder, extra: dict | None = None, owners: dict | None = None) -> Project:
    """Save every savable layer of ``viewer`` into the project ``folder``; returns the project.

    ``extra`` maps artefact names to further objects to save (a ``FieldBundle``, a model dict); ``owners`` maps
    layer names to the step that made them (``{"step": widget class name, "slot": name it made it under}``,
    :meth:`._contract.LayerOwner.slot_of`), recorded as the layer's ``owner`` (see :func:`layer_owner`).
    """
    prj = Project(folder)
    for name, obj in (extra or {}).items():
        prj.save(name, obj)
    for layer in viewer.layers:
        kind = type(layer).__name__.lower()
        name = _safe_name(layer.name)
        meta = {"layer_type": kind, "layer_name": layer.name, "scale": [float(s) for s in layer.scale],
                "translate": [float(t) for t in layer.translate], "units": [str(u) for u in layer.units],
                "axis_labels": [str(a) for a in layer.axis_labels]}
        if (layer.metadata or {}).get("dt") is not None:
            meta["dt"] = float(layer.metadata["dt"])
        owner = layer_owner(layer, owners)
        if owner is not None:
            meta["owner"] = owner
        source = getattr(layer, "source", None)
        src_path = getattr(source, "path", None) if source is not None else None
        if kind in ("image", "labels"):
            data = layer.data[0] if layer.multiscale else layer.data
            if not isinstance(data, np.ndarray) and src_path and str(src_path).endswith((".apr", ".aprmovie")):
                prj.manifest.setdefault("sources", {})[layer.name] = {"path": str(src_path), **meta}
                prj._write_manifest()
                continue
            if kind == "image":
                meta["contrast_limits"] = [float(c) for c in layer.contrast_limits]
                meta["colormap"] = layer.colormap.name
            prj.save(name, np.asarray(data), meta=meta)
        elif kind == "points":
            # time first, unless the points are spatial only: 2 columns, or object centroids whose
            # features carry the spatial coordinates and no frame (APR segmentation of one frame)
            feats = layer.features
            spatial = layer.ndim == 2 or ("frame" not in feats.columns
                                          and set(_AXES[-layer.ndim:]) <= set(feats.columns))
            time_axis = not spatial
            prj.save(name, _points_table(np.asarray(layer.data), layer.features, time_axis=time_axis), meta=meta)
        elif kind == "tracks":
            from ..track.io_formats import tracks_from_napari

            df = tracks_from_napari(layer, physical=False)  # data coordinates: scale/translate are in meta
            df.attrs = {}
            meta["graph"] = {str(k): [int(v) for v in vs] for k, vs in (layer.graph or {}).items()}
            prj.save(name, df, meta=meta)
        elif kind == "vectors":
            prj.save(name, np.asarray(layer.data, dtype=float), meta=meta)
    return prj


def project_layers(folder) -> list[tuple]:
    """Layer data tuples for everything in the project ``folder`` (for ``viewer._add_layer_from_data``)."""
    prj = Project(folder)
    layers = []
    layer_names = {prj.meta(n).get("layer_name") for n in prj.names}  # fields already saved as layers
    for src in prj.manifest.get("sources", {}).values():
        from ._apr_reader import apr_layers

        layers.extend(apr_layers(src["path"]))
    for name in prj.names:
        meta = dict(prj.meta(name))
        entry = prj.manifest["artefacts"][name]
        kind = meta.pop("layer_type", None)
        kwargs = {"name": meta.pop("layer_name", name)}
        for key in ("scale", "translate", "units", "axis_labels"):
            if key in meta:
                kwargs[key] = meta.pop(key)
        if "dt" in meta:
            kwargs["metadata"] = {"dt": meta.pop("dt")}
        if isinstance(meta.get("owner"), dict):
            kwargs.setdefault("metadata", {})[OWNER_KEY] = meta.pop("owner")
        if entry["kind"] == "fields":
            fb = prj.load(name)
            for fname, arr in fb.fields.items():
                if fb.kinds[fname] == "scalar" and f"{name}: {fname}" not in layer_names:
                    from ..geometry import bundle_geometry

                    layers.append((arr, {"name": f"{name}: {fname}", **bundle_geometry(fb)}, "image"))
            continue
        if entry["kind"] == "json":
            continue
        obj = prj.load(name)
        if entry["kind"] == "array":
            arr = np.asarray(obj)
            if kind is None:  # artefacts saved without layer metadata, e.g. by `dynfit demo`
                kind = "labels" if ("label" in name or "mask" in name) else "image"
            if kind == "image":
                for k in ("contrast_limits", "colormap"):
                    if k in meta:
                        kwargs[k] = meta[k]
            layers.append((arr, kwargs, kind))
        elif entry["kind"] == "table":
            df = obj
            coords = [c for c in ("z", "y", "x") if c in df.columns]
            if kind == "tracks" or (kind is None and "track_id" in df.columns):
                graph = {int(k): v for k, v in meta.get("graph", {}).items()}
                if not graph and "parent_id" in df.columns:
                    firsts = df.sort_values("frame").drop_duplicates("track_id")
                    graph = {int(t): [int(p)] for t, p in zip(firsts["track_id"], firsts["parent_id"]) if p >= 0}
                data = df.sort_values(["track_id", "frame"])[["track_id", "frame", *coords]].to_numpy(float)
                layers.append((data, {**kwargs, "graph": graph}, "tracks"))
            elif "frame" in df.columns or kind == "points":
                axes = (["frame"] if "frame" in df.columns else []) + coords
                feats = df.drop(columns=axes)
                layers.append((df[axes].to_numpy(float), {**kwargs, "features": feats, "size": 4}, "points"))
    return layers


def open_project(viewer, folder) -> list:
    """Add the project's layers to ``viewer``; returns the new layers."""
    added = []
    for data, kwargs, kind in project_layers(folder):
        added.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return added
