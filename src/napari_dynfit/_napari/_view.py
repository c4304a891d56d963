"""A view that stays readable: how the panel shows the layers its steps make.

* :func:`style_result`: a step's new layer arrives translucent over the movie: images additive with
  their own colormap (a grey result would hide the grey movie) and a colour bar (napari's canvas overlay,
  shown while the layer is), label images at 40 % opacity, points with hollow markers;
* :func:`hide_other_results`: the image results of other steps are hidden when a step shows a new one
  (the movie stays visible under at most one step's images; the layers stay in the list to toggle back).
"""

from __future__ import annotations

#: colormaps for a step's grey results (a grey image over a grey movie cannot be told apart)
RESULT_COLORMAPS = ("green", "magenta", "cyan", "yellow")


def _inner(layer):
    return getattr(layer, "__wrapped__", layer)


def style_result(layer, others=()) -> None:
    """Translucent styling of a layer a step has just made (in place); ``others``: the viewer's layers (a grey
    result gets a colormap no other visible image uses)."""
    layer = _inner(layer)
    kind = type(layer).__name__
    if kind == "Image":
        if layer.blending in ("translucent", "opaque", "translucent_no_depth"):
            layer.blending = "additive"
        cmap = getattr(layer.colormap, "name", "")
        if cmap == "gray" and not getattr(layer, "multiscale", False):  # APR layers are the movie itself: keep grey
            used = {getattr(_inner(o).colormap, "name", "") for o in others
                    if type(_inner(o)).__name__ == "Image" and _inner(o).visible and _inner(o) is not layer}
            layer.colormap = next((c for c in RESULT_COLORMAPS if c not in used), RESULT_COLORMAPS[0])
        layer.opacity = min(layer.opacity, 0.8)
        bar = getattr(layer, "colorbar", None)
        if bar is not None and not getattr(layer, "rgb", False) and not getattr(layer, "multiscale", False):
            bar.visible = True  # the values of a result field, not the movie (APR layers are the movie)
    elif kind == "Labels":
        layer.opacity = min(layer.opacity, 0.4)
    elif kind == "Points" or kind == "Tracks":
        layer.opacity = min(layer.opacity, 0.8)


def hide_other_results(viewer, new_layer, maker_of, maker) -> list[str]:
    """Hide the visible image results of the steps other than ``maker`` (``maker_of(layer)``: the step that
    made a layer, or ``None`` for the user's own layers, which stay as they are). Returns the hidden names."""
    if type(_inner(new_layer)).__name__ != "Image" or not _inner(new_layer).visible:
        return []
    hidden = []
    for lay in viewer.layers:
        inner = _inner(lay)
        if inner is _inner(new_layer) or type(inner).__name__ != "Image" or not inner.visible:
            continue
        other = maker_of(inner)
        if other is not None and other is not maker:
            inner.visible = False
            hidden.append(inner.name)
    return hidden
