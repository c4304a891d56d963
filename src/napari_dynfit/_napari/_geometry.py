"""Geometry of the layers the plugin adds: one place that says where a new layer sits in the world.

The convention (time axis in frames with ``scale[0] = dt``, space in pixels with ``scale`` = pixel size) is
:mod:`napari_dynfit.geometry`'s. A layer made from another layer (detections from a movie, tracks from
detections, masks, previews) takes its geometry from :func:`layer_kwargs`; a layer made from metadata (fields on
their grid, a file's pixel size) from :func:`napari_dynfit.geometry.movie_geometry` /
:func:`napari_dynfit.geometry.bundle_geometry`.
"""

from __future__ import annotations

import numpy as np

from ..geometry import NO_UNIT, SPACE_LABELS, TIME_LABEL, unit_name

#: layer types whose first axis is time when they do not say (the plugin's points and tracks are ``t, [z,] y, x``)
_TIMED = ("Points", "Tracks")


def _units(layer) -> tuple[str, ...] | None:
    units = getattr(layer, "units", None)
    if not units:
        return None
    return tuple(str(u) for u in units)


def _is_default_labels(labels, n: int) -> bool:
    """napari's default axis labels (``"-2", "-1"`` or ``"axis -2"``...) say nothing about the axes."""
    return not labels or all(str(lb).lstrip("axis ").lstrip("-").isdigit() for lb in labels)


def layer_kwargs(source, *, axes: int | None = None, time: bool | None = None) -> dict:
    """``scale``, ``translate``, ``units`` and ``axis_labels`` of a new layer drawn over ``source``.

    Parameters
    ----------
    source : napari layer
        The layer the new one is made from (its world coordinates are the new layer's).
    axes : int, optional
        Keep only the last ``axes`` axes (e.g. the spatial axes of a movie for a one-frame preview); default
        all of the source's axes.
    time : bool, optional
        Whether the first kept axis is time (labels ``t, [z,] y, x``) when the source does not name its axes;
        default: all axes kept, at least 3 of them, and a ``dt`` in the source's metadata, 4 axes, or a Points /
        Tracks source (the plugin's points and tracks are time-resolved).

    Returns
    -------
    dict
        Layer kwargs; ``axis_labels`` are the source's when it names its axes, else ``t, [z,] y, x``.
    """
    n_all = int(getattr(source, "ndim", len(source.scale)))
    n = n_all if axes is None else int(axes)
    scale = [float(s) for s in np.asarray(source.scale, float)[-n:]]
    translate = [float(t) for t in np.asarray(source.translate, float)[-n:]]
    out = {"scale": tuple(scale), "translate": tuple(translate)}
    units = _units(source)
    if units:
        out["units"] = units[-n:]
    labels = tuple(str(lb) for lb in (getattr(source, "axis_labels", None) or ()))
    if not _is_default_labels(labels, n_all):
        out["axis_labels"] = labels[-n:]
    else:
        if time is None:
            meta = getattr(source, "metadata", None) or {}
            time = axes is None and n >= 3 and ("dt" in meta or n == 4 or type(source).__name__ in _TIMED)
        nd = n - int(bool(time))
        space = SPACE_LABELS[-nd:] if 0 < nd <= 3 else tuple(f"x{i}" for i in range(nd))
        out["axis_labels"] = ((TIME_LABEL,) if time else ()) + tuple(space)
    return out


def is_time_resolved(layer) -> bool:
    """Whether the layer's first axis is time (label ``"t"``, or a ``dt`` in its metadata)."""
    labels = tuple(getattr(layer, "axis_labels", None) or ())
    return (bool(labels) and labels[0] == TIME_LABEL) or "dt" in (getattr(layer, "metadata", None) or {})


def time_axis(layer) -> tuple[float, float, str]:
    """``(dt, t0, unit)`` of the layer's time axis: world time of frame ``k`` is ``t0 + k * dt``.

    ``dt`` is ``scale[0]`` (the convention), or ``metadata["dt"]`` when the scale is 1 (a layer made before the
    convention: time in frames with the interval in its metadata); ``unit`` the time unit (``"pixel"``: frames).
    """
    scale = float(np.asarray(layer.scale, float)[0])
    t0 = float(np.asarray(layer.translate, float)[0])
    meta = getattr(layer, "metadata", None) or {}
    units = _units(layer)
    unit = unit_name(units[0]) if units else NO_UNIT
    if scale == 1.0 and meta.get("dt"):
        return float(meta["dt"]), t0, unit
    return scale, t0, unit


def unit_symbols(layer, dt: float = 1.0) -> tuple[str, str]:
    """``(length, time)`` symbols for the units of values computed from ``layer`` (a rate, a velocity) for layer
    names: its spatial unit (``"µm"``; ``"px"`` without one) and its time unit (``"s"``); a time axis without a unit
    counts frames: ``"frame"`` when the frame interval ``dt`` used is 1, else ``"time unit"`` (the unit of ``dt``,
    which the layer does not name). ``layer=None``: ``("px", ...)`` as without units."""
    from ..geometry import unit_symbol

    units = _units(layer) if layer is not None else None
    space = unit_symbol(units[-1] if units else None)
    t_unit = time_axis(layer)[2] if units and len(units) >= 2 else NO_UNIT
    if t_unit != NO_UNIT:
        return space, unit_symbol(t_unit, time=True)
    return space, "frame" if float(dt) == 1.0 else "time unit"


def world_points(layer, data=None) -> np.ndarray:
    """World coordinates ``(n, ndim)`` of a layer's data coordinates (``data``: default the layer's points)."""
    data = np.asarray(layer.data if data is None else data, float)
    return data * np.asarray(layer.scale, float) + np.asarray(layer.translate, float)


def world_vectors(source, positions, directions, *, axes: int | None = None) -> tuple[np.ndarray, dict]:
    """Vectors layer ``(data, kwargs)`` of world-coordinate vectors drawn over ``source``.

    Parameters
    ----------
    source : napari layer or None
        Gives scale/translate/units/labels of the new layer (:func:`layer_kwargs`); ``None``: world = data.
    positions, directions : ndarray, shape (n, ndim)
        Vector bases and directions in world coordinates (physical units).
    axes : int, optional
        The source's last ``axes`` axes are the vectors' axes (e.g. 2: a stationary field in ``y, x`` over a
        ``t, y, x`` movie).

    Returns
    -------
    data : ndarray, shape (n, 2, ndim)
        In the source's data coordinates (directions divided by the scale): with the returned kwargs napari draws
        them at their world positions with their world lengths.
    kwargs : dict
        The geometry of the new layer.
    """
    pos, vec = np.asarray(positions, float), np.asarray(directions, float)
    if source is None:
        return np.stack([pos, vec], axis=1), {}
    kw = layer_kwargs(source, axes=axes or pos.shape[1])
    scale, translate = np.asarray(kw["scale"], float), np.asarray(kw["translate"], float)
    return np.stack([(pos - translate) / scale, vec / scale], axis=1), kw


def arrow_style(vectors_world: np.ndarray, *, fill: float = 0.9, width: float = 0.15) -> tuple[np.ndarray, float]:
    """Vectors sized for the eye: ``(vectors, edge width)`` in world units.

    The longest arrow is ``fill`` times the spacing of the arrow grid (the typical distance between bases) and
    the edge width ``width`` times that spacing, whatever the units of the data (an arrow of a drift in µm/s over
    a 0.1 s frame would be a fraction of a pixel; a width of 0.05 µm invisible on a 400 µm image).
    """
    v = np.asarray(vectors_world, float).copy()
    pos = v[:, 0]
    extent = np.ptp(pos, axis=0) if len(pos) > 1 else np.ones(pos.shape[1])
    spread = extent[extent > 0]
    spacing = float(np.prod(spread) / len(pos)) ** (1.0 / len(spread)) if spread.size else 1.0
    longest = float(np.max(np.linalg.norm(v[:, 1], axis=1))) if len(v) else 0.0
    if longest > 0:
        v[:, 1] *= fill * spacing / longest
    return v, width * spacing


def fields_kwargs(bundle, source=None) -> dict:
    """Layer kwargs of a field of ``bundle`` (grids ``t, [z,] y, x`` in world units) drawn over ``source``.

    The fields' coordinates are world coordinates (physical time, lengths), so ``scale``/``translate`` are the
    bundle's time step and grid (:func:`napari_dynfit.geometry.bundle_geometry`); the units are the source
    layer's (the tracks or movie the fields were made from) when it has them, and are then recorded in
    ``bundle.attrs`` (``time_unit``, ``space_unit``: the PDE and balance steps read the bundle back from its file),
    else the bundle's ``attrs``; so is the time of the source's frame 0 (``time_origin``: fields of a movie that
    starts at ``t0`` start at ``t0``).
    """
    from ..geometry import bundle_geometry

    units = _units(source) if source is not None else None
    nd = len(bundle.space_axes)
    if units and len(units) >= nd + 1:
        bundle.attrs["time_unit"], bundle.attrs["space_unit"] = units[-nd - 1], units[-1]
    if source is not None and int(getattr(source, "ndim", 0)) == nd + 1:
        # core times count from the source's frame 0; it sits at translate[0] on the source's time axis
        bundle.attrs["time_origin"] = float(np.asarray(source.translate, float)[0])
    return bundle_geometry(bundle)


def world_time(source, times, dt: float) -> np.ndarray:
    """World times (the source layer's time axis) of times computed as ``frame * dt`` by a core function.

    Core functions count time from frame 0 with the frame interval ``dt`` the user gave; the source layer's
    frame ``k`` sits at ``translate[0] + k * scale[0]`` (equal to ``k * dt`` under the convention when
    ``dt = scale[0]`` and ``translate[0] = 0``). ``source=None``: the times themselves.
    """
    times = np.asarray(times, float)
    if source is None:
        return times
    return float(np.asarray(source.translate, float)[0]) + times / float(dt) * float(np.asarray(source.scale)[0])
