"""Sensible step parameters taken from the data: spacing, frame interval and object size.

When the user selects a layer, the DynFit panel calls :func:`data_defaults` on it and
:func:`apply_defaults` on every step widget built so far, so the parameters start from what the data
says instead of from fixed numbers:

* **spacing** (physical size of a pixel per spatial axis) is the layer's ``scale`` without the time
  axis;
* **frame interval** ``dt`` is ``layer.metadata["dt"]`` (the samples, the APR movie reader and the
  project reader set it), else the time axis' ``scale`` when it is not 1;
* **object size** is the scale-normalised LoG scale of the brightest spots of one frame
  (:func:`estimate_spot_sigma`, pixels) of a microscope image (integer pixels or an APR layer; not
  derived float fields): the blob sigma of detection and the filter sigma of the APR segmentation.

Only parameters a widget actually has are set (duck typing over the attribute names below), so a
widget that changes its parameters does not break the panel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..detect.size import estimate_spot_sigma  # moved to the core


@dataclass
class DataDefaults:
    """Parameters read from a layer (``None``: the layer does not say).

    Attributes
    ----------
    spacing : tuple of float or None
        Physical pixel size per spatial axis ``([z,] y, x)``.
    dt : float or None
        Frame interval (time units of the data, e.g. s).
    is_movie : bool or None
        Whether the first axis is time.
    spot_sigma : float or None
        Object size as a Gaussian sigma in pixels of the ``y, x`` axes.
    extent : tuple of float or None
        Physical size of the field of view per spatial axis (``shape * spacing``).
    periodic : bool or None
        Whether the field of view is a periodic box (``layer.metadata["periodic"]``: the simulated
        samples); ``None`` when the layer does not say.
    """

    spacing: tuple | None = None
    dt: float | None = None
    is_movie: bool | None = None
    spot_sigma: float | None = None
    extent: tuple | None = None
    periodic: bool | None = None
    source: str = ""
    kind: str = ""
    notes: list = field(default_factory=list)

    def merged(self, older: DataDefaults | None) -> DataDefaults:
        """These values, with the gaps filled from ``older`` (e.g. ``dt`` of the movie for its tracks)."""
        if older is None:
            return self
        out = DataDefaults(**{k: getattr(self, k) for k in ("spacing", "dt", "is_movie", "spot_sigma", "extent",
                                                            "periodic", "source", "kind")})
        for k in ("spacing", "dt", "spot_sigma", "extent", "periodic"):
            if getattr(out, k) is None:
                setattr(out, k, getattr(older, k))
        if self.kind in ("Points", "Tracks") and older.extent is not None:
            out.extent = older.extent  # an image's field of view beats the range of its points
        return out


def data_defaults(layer, *, estimate_size: bool = True) -> DataDefaults:
    """Spacing, frame interval, movie flag, object size and extent read from a napari layer."""
    layer = getattr(layer, "__wrapped__", layer)  # napari's PublicOnlyProxy
    kind = type(layer).__name__
    meta = getattr(layer, "metadata", None) or {}
    scale = [float(s) for s in layer.scale]
    d = DataDefaults(source=layer.name, kind=kind)
    if meta.get("periodic") is not None:  # layers without the mark (results, APR copies) keep the movie's
        d.periodic = bool(meta["periodic"])
    dt = meta.get("dt")
    if kind in ("Tracks",):
        n_space = layer.data.shape[1] - 2
        d.is_movie = True
    elif kind == "Points":
        n_space = layer.data.shape[1] - 1
        d.is_movie = n_space in (2, 3)
    else:
        labels = [str(a).lower() for a in getattr(layer, "axis_labels", ())]
        time_axis = dt is not None or (bool(labels) and labels[0] in ("t", "time")) or layer.ndim == 4
        d.is_movie = bool(time_axis and layer.ndim >= 3)
        n_space = layer.ndim - (1 if d.is_movie else 0)
    if d.is_movie and dt is None and len(scale) > n_space and scale[0] != 1.0:
        dt = scale[0]
    d.dt = None if dt is None else float(dt)
    d.spacing = tuple(scale[-n_space:])
    if kind in ("Image", "Labels"):
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        d.extent = tuple(float(n) * s for n, s in zip(data.shape[-n_space:], d.spacing))
        raw = getattr(layer, "multiscale", False) or np.issubdtype(np.dtype(data.dtype), np.integer)
        if kind == "Image" and estimate_size and raw:  # microscope images, not derived float fields
            frame = data[len(data) // 2] if d.is_movie else data
            try:
                d.spot_sigma = estimate_spot_sigma(np.asarray(frame), spacing=d.spacing)
            except ValueError as exc:
                d.notes.append(str(exc))
    elif len(layer.data):
        coords = np.asarray(layer.data, float)[:, -n_space:] * np.asarray(d.spacing)
        d.extent = tuple(float(v) for v in coords.max(axis=0) - np.minimum(coords.min(axis=0), 0))
    return d


def _set(widget, attr, value, done, label):
    w = getattr(widget, attr, None)
    if w is None or value is None:
        return
    if hasattr(w, "max"):
        value = min(max(value, w.min), w.max)
    try:
        w.value = value
    except (ValueError, TypeError):
        return
    done.append(label)


def apply_defaults(widget, d: DataDefaults) -> list[str]:
    """Set the parameter widgets of a step widget from ``d``; returns what was set (for the status line).

    =====================  ====================  ==========================================
    step widget            parameter             from
    =====================  ====================  ==========================================
    AprConvertWidget       first axis is time    ``is_movie`` (``dt`` known or axis ``t``)
    AprFilterWidget        sigma (px)            ``spot_sigma``
    TrackWidget            blob sigma (px)       ``spot_sigma``
    FieldsFromTracks       grid, kernel, box     ``extent`` / 32, 2 grid spacings (only with "from the
                                                 data" unticked), ``extent``
    FieldsFromTracks       periodic box          ``periodic`` (``metadata["periodic"]``)
    LatentFieldWidget      frame interval        ``dt``
    FlowWidget             time per frame        ``dt``
    any                    ``_dt`` widget        ``dt``
    =====================  ====================  ==========================================
    """
    name = type(widget).__name__
    done: list[str] = []
    if name == "AprConvertWidget" and d.is_movie is not None and d.dt is not None:
        _set(widget, "_movie", bool(d.is_movie), done, "movie")
    if name in ("AprFilterWidget", "TrackWidget") and d.spot_sigma is not None:
        _set(widget, "_sigma", round(d.spot_sigma, 2), done, f"object sigma {d.spot_sigma:.2f} px")
    if name == "FieldsFromTracks" and d.extent:
        grid = max(d.extent) / 32
        auto = getattr(getattr(widget, "_auto", None), "value", False)
        if not auto:  # "from the data" ticked: the spin boxes show what the last run used
            _set(widget, "_grid", round(grid, 4), done, f"grid {grid:.3g}")
            _set(widget, "_kernel", round(2 * grid, 4), done, "kernel")
        _set(widget, "_box_y", d.extent[-2], done, "box")
        _set(widget, "_box_x", d.extent[-1], done, "box")
    if name == "FieldsFromTracks" and d.periodic is not None:
        _set(widget, "_periodic", bool(d.periodic), done, "periodic box" if d.periodic else "open box")
    if d.dt is not None:
        _set(widget, "_dt", d.dt, done, f"dt {d.dt:g}")
        spin = getattr(widget, "dt", None)  # plain Qt widgets (FlowWidget: "time per frame")
        if hasattr(spin, "setValue"):
            spin.setValue(d.dt)
            done.append(f"dt {d.dt:g}")
    return done


# --- which layers a step may take as input ------------------------------------------------------
def is_ground_truth(layer) -> bool:
    """Whether ``layer`` holds ground truth (``metadata["ground_truth"]``, set by the samples).

    Ground truth is for checking results; the panel never picks it as the input of a step.
    """
    layer = getattr(layer, "__wrapped__", layer)
    return bool((getattr(layer, "metadata", None) or {}).get("ground_truth", False))


def is_time_resolved(layer) -> bool:
    """Whether ``layer`` is a movie of objects a tracker can link: Points ``(t, [z,] y, x)`` with more
    than one frame, or Labels with a time axis (``t, [z,] y, x``, see :func:`data_defaults`).

    The centroids of one segmented frame (Points ``(y, x)``) and a single label image are not.
    """
    layer = getattr(layer, "__wrapped__", layer)
    kind = type(layer).__name__
    if kind == "Points":
        data = np.asarray(layer.data)
        return data.ndim == 2 and data.shape[1] in (3, 4) and len(np.unique(np.round(data[:, 0]))) > 1
    if kind == "Labels":  # a 3D label image without time metadata may be (t, y, x): offered, the user knows
        return layer.ndim >= 3 and layer.data.shape[0] > 1 and (
            bool(data_defaults(layer, estimate_size=False).is_movie) or layer.ndim == 3)
    return False


def input_layers(viewer, kinds, *, time_resolved: bool = False, ground_truth: bool = False,
                 exclude=()) -> list[tuple[str, object]]:
    """``(name, layer)`` choices for a step's input: layers of the given kinds (class names), in the
    layer list's order (newest last); only time-resolved ones with ``time_resolved``; ground truth only with ``ground_truth``;
    never the names in ``exclude`` (a step's own previews)."""
    out = []
    for lay in viewer.layers:
        inner = getattr(lay, "__wrapped__", lay)
        if type(inner).__name__ not in kinds or lay.name in exclude:
            continue
        if (not ground_truth and is_ground_truth(inner)) or (time_resolved and not is_time_resolved(inner)):
            continue
        out.append((lay.name, lay))
    return out
