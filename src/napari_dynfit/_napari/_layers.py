"""One way for a dock widget to show a result layer: update the layer it made before, or add a new one.

A widget that writes a result (detections, tracks, masks, previews) shows it under a fixed name; a re-run
replaces the data of the layer it made (whatever it is called now; never a layer it did not make) in place (the
same layer object: its position in the layer list, the user's colours, size, opacity and visibility are kept)
instead of adding renamed copies. :func:`show_layer` is that pattern, once for every widget. A keyword that must
follow the data (the contrast of a field whose range changes while it trains, the grid of a preview that follows
the selected layer, arrows sized to their grid) is named in
``refresh=`` and so re-applied on every update too.
"""

from __future__ import annotations

#: layer kinds :func:`show_layer` knows: ``viewer.add_<kind>`` adds one, ``napari.layers.<Kind>`` is its class
KINDS = ("image", "labels", "points", "shapes", "surface", "tracks", "vectors")

#: keyword arguments that describe the data, re-applied (after the data) when an existing layer is updated;
#: every other keyword (scale, translate, colours, size, opacity...) applies only to a new layer
DATA_KEYS = ("features", "properties", "graph", "metadata")


def show_layer(viewer, kind: str, data, name: str, *, owner, refresh: tuple[str, ...] = (), **kwargs):
    """Update the layer ``owner`` made under ``name`` (of kind ``kind``) in place, or add it.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (or napari's proxy of it that plugin widgets get).
    kind : str
        Layer kind, one of :data:`KINDS` (``"points"``, ``"labels"``, ``"tracks"``...).
    data : array-like
        The layer's data, as ``viewer.add_<kind>`` takes it (e.g. Points ``(n, 1 + ndim)`` rows ``t, [z,] y, x``
        in data coordinates; Labels an integer array ``(t, [z,] y, x)``; Tracks ``(n, 2 + ndim)`` rows
        ``track_id, t, [z,] y, x``).
    name : str
        The layer's name.
    owner : LayerOwner
        The widget showing the layer (a :class:`._contract.LayerOwner`: every step widget, the closure widget).
        Only the layer this step made under ``name`` is updated (found by
        :meth:`~._contract.LayerOwner.made_layer`, whatever it is called now); a layer it did not make (the
        user's, one opened from a project) is never claimed, of any kind: a new layer is added beside it (napari
        names it ``"name [1]"``) and a later call updates that one. The layer is recorded as the step's
        (:meth:`~._contract.LayerOwner.remember`) before it is inserted, so the viewer's insertion handlers
        already know it as the step's. Required: there is no update by name alone.
    refresh : tuple of str, optional
        Keywords of ``kwargs`` that follow the data and so are applied to an existing layer as well, after the
        data (default none: a re-run keeps what the user set). For example ``("contrast_limits",)`` for a field
        whose value range changes from one update to the next (napari keeps an Image's contrast limits when its
        data is replaced), ``("scale", "translate")`` for data whose grid changes, ``("edge_width",)`` for arrows
        sized to their grid. ``contrast_limits`` also sets the layer's ``contrast_limits_range`` to them, as a new
        layer's is.
    **kwargs
        Keyword arguments of ``viewer.add_<kind>``. When the layer exists, only the data keys (:data:`DATA_KEYS`:
        ``features``, ``properties``, ``graph``, ``metadata``) are applied to it, after the data; ``metadata``
        is merged into the layer's (keys the layer already holds and ``metadata`` does not name are kept). The
        others (``scale``, ``translate``, ``units``, colours, ``size``, ``opacity``...) are used only to add a
        new layer, so a re-run keeps what the user changed.

    Returns
    -------
    napari.layers.Layer
        The updated layer (the same object as before), or the new one. When a layer named ``name`` that
        ``owner`` did not make exists (of any kind) it is left alone and a new layer is added, which napari names
        ``"name [1]"`` (a later call updates that one); callers should use the returned layer, not
        ``viewer.layers[name]``.

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`KINDS`, or ``refresh`` names a keyword not given in ``kwargs``.
    """
    import napari.layers

    kind = str(kind).lower()
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {', '.join(KINDS)}")
    refresh = (refresh,) if isinstance(refresh, str) else tuple(refresh)
    missing = [key for key in refresh if key not in kwargs]
    if missing:
        raise ValueError(f"refresh names keywords that were not given: {', '.join(missing)}")
    layers = viewer.layers
    cls = getattr(napari.layers, kind.capitalize())
    layer = owner.made_layer(name, layers)
    if layer is not None and isinstance(layer, cls):
        return owner.remember(_update(layer, data, kwargs, refresh), name)
    kw = dict(kwargs)
    if kind == "image":  # what viewer.add_image gives a layer by default
        kw["colormap"] = kw.get("colormap") or "gray"
        kw["blending"] = kw.get("blending") or "translucent_no_depth"
    new = owner.remember(cls(data, name=name, **kw), name)  # known as the step's when the viewer inserts it
    return viewer.add_layer(new)


def _update(layer, data, kwargs: dict, refresh: tuple):
    """Replace ``layer``'s data, then apply the data keys and the ``refresh`` keywords of ``kwargs``."""
    layer.data = data  # first: a new data resets a Tracks layer's graph and features
    for key in DATA_KEYS:
        if key not in kwargs:
            continue
        if key == "metadata":
            layer.metadata.update(kwargs[key])
        else:
            setattr(layer, key, kwargs[key])
    for key in refresh:
        if key in DATA_KEYS:  # applied above
            continue
        if key == "contrast_limits":  # the slider spans the new limits, as a new layer's does
            layer.contrast_limits_range = kwargs[key]
        setattr(layer, key, kwargs[key])
    return layer


def data_range(data) -> tuple[float, float]:
    """Contrast limits napari gives a new Image layer of ``data``: its finite range (NaN ignored); a flat field
    ``v`` gets ``(min(v, 0), max(v, 1))``. For ``show_layer(..., contrast_limits=data_range(a),
    refresh=("contrast_limits",))``: a re-run shows the new data as a freshly added layer would.

    Parameters
    ----------
    data : array-like
        The image values, any shape.

    Returns
    -------
    tuple of float
        ``(low, high)``, ``low < high``.
    """
    import numpy as np

    arr = np.asarray(data, dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (min(low, 0.0), max(high, 1.0)) if low == high else (low, high)
