"""Sensible step parameters taken from the data: spacing, frame interval and object size.

When the user selects a layer, the DynFit panel calls :func:`data_defaults` on it and
:func:`apply_defaults` on every step widget built so far, so the parameters start from what the data
says instead of from fixed numbers:

* **spacing** (physical size of a pixel per spatial axis) is the layer's ``scale`` without the time
  axis;
* **frame interval** ``dt`` is ``layer.metadata["dt"]`` (the samples, the APR movie reader and the
  project reader set it), else the time axis' ``scale`` when it is not 1;
* **object size** is :func:`napari_dynfit.detect.size.estimate_movie_spot_sigma` (the rule ``dynfit detect``
  and ``detect_movie`` use by default: the scale-normalised LoG scale of the strongest spots of the objects'
  polarity, median over the frames at 1/4, 1/2 and 3/4 of a movie; pixels) of a microscope image (integer pixels
  or an APR layer; not derived float fields): the blob sigma of detection and the filter sigma of the APR
  segmentation.

The parameters go through the step contract (:mod:`._contract`): a step lists the names it takes
(``PARAMS``); a name it does not have raises instead of being dropped, and values the user set by hand
are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..detect.size import estimate_movie_spot_sigma, estimate_spot_sigma  # noqa: F401 (moved to the core)
from ..errors import InputError


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
            try:  # the core's rule (dynfit detect's default); a single image as a one-frame movie
                movie = data if d.is_movie else np.asarray(data)[None]
                est = estimate_movie_spot_sigma(movie, spacing=d.spacing, warn=False)
                d.spot_sigma = est.sigma
                d.notes.extend(est.notes)
            except InputError as exc:
                d.notes.append(str(exc))
    elif len(layer.data):
        coords = np.asarray(layer.data, float)[:, -n_space:] * np.asarray(d.spacing)
        d.extent = tuple(float(v) for v in coords.max(axis=0) - np.minimum(coords.min(axis=0), 0))
    return d


def default_values(d: DataDefaults, current: dict | None = None) -> dict:
    """Step parameters (the names of :attr:`._contract.StepContract.PARAMS`) from the data defaults ``d``.

    =====================  ==========================================================================
    parameter              from
    =====================  ==========================================================================
    ``movie``              ``is_movie`` when the frame interval is known (page 1: first axis is time)
    ``spot_sigma``         ``spot_sigma`` (pages 2 and 3: filter and blob sigma, px)
    ``dt``                 ``dt`` (frame interval: fields, PINN, flow)
    ``grid``, ``kernel``   ``extent`` / 32 and 2 grid spacings, only while ``current["auto_kernel"]`` is
                           false (with "from the data" ticked the boxes show what the last run used)
    ``box_y``, ``box_x``   ``extent`` (box of the fields)
    ``periodic``           ``periodic`` (``metadata["periodic"]`` of the samples)
    ``periodic_box_y/x``   ``extent`` when ``periodic``, 0 (none) when the data say they are not periodic
                           (the latent-field page's periodic box)
    =====================  ==========================================================================
    """
    current = current or {}
    out = {"dt": d.dt, "periodic": None if d.periodic is None else bool(d.periodic)}
    if d.is_movie is not None and d.dt is not None:
        out["movie"] = bool(d.is_movie)
    if d.spot_sigma is not None:
        out["spot_sigma"] = round(float(d.spot_sigma), 2)
    if d.extent:
        if current.get("auto_kernel") is False:
            grid = max(d.extent) / 32
            out["grid"], out["kernel"] = round(grid, 4), round(2 * grid, 4)
        out["box_y"], out["box_x"] = d.extent[-2], d.extent[-1]
        if d.periodic is not None:
            out["periodic_box_y"], out["periodic_box_x"] = (d.extent[-2], d.extent[-1]) if d.periodic else (0.0, 0.0)
    return {k: v for k, v in out.items() if v is not None}


def _label(name, value) -> str:
    return {"spot_sigma": f"object sigma {value:.2f} px", "dt": f"dt {value:g}", "movie": "movie",
            "periodic": "periodic box" if value is True else "open box",
            "box_y": "box", "box_x": "box", "periodic_box_y": "periodic box" if value else "no periodic box",
            "periodic_box_x": "periodic box" if value else "no periodic box"}.get(name, f"{name} {value:.3g}" if isinstance(value, float) else name)


def apply_defaults(widget, d: DataDefaults) -> list[str]:
    """Set the parameters of a step widget (a :class:`._contract.StepContract`) from ``d``; returns what
    was set (for the status line). Values the user changed by hand are kept; a widget whose ``PARAMS``
    name a missing attribute raises (``AttributeError``), an unknown name ``KeyError``.

    Widgets without parameters (plots) are skipped.
    """
    if not hasattr(widget, "apply_defaults") or not getattr(widget, "PARAMS", None):
        return []
    current = widget.defaults()
    values = {k: v for k, v in default_values(d, current).items() if k in current}
    done = widget.apply_defaults(values)
    return list(dict.fromkeys(_label(k, values[k]) for k in done))  # "box" once for y and x


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
    never those in ``exclude``: layers (a step's own previews, :meth:`._contract.StepContract.made_layer`) or
    names."""
    names = {x for x in exclude if isinstance(x, str)}
    objs = [getattr(x, "__wrapped__", x) for x in exclude if not isinstance(x, str)]
    out = []
    for lay in viewer.layers:
        inner = getattr(lay, "__wrapped__", lay)
        if type(inner).__name__ not in kinds or lay.name in names or any(inner is x for x in objs):
            continue
        if (not ground_truth and is_ground_truth(inner)) or (time_resolved and not is_time_resolved(inner)):
            continue
        out.append((lay.name, lay))
    return out
