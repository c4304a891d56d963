"""npe2 readers: ``.apr`` files and ``.aprmovie`` folders (lazy multiscale), TIFF / OME-Zarr images
(as pixels, or converted to the APR on opening).

APR layers are multiscale image layers whose levels are :class:`~napari_dynfit.apr.LazyAprArray`
(or :class:`~napari_dynfit.apr.LazyAprMovie`): napari asks each level only for the slice or tile
on screen, and uses the coarse levels when zoomed out and for 3D rendering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..apr.io import APR_SUFFIX, MOVIE_SUFFIX, PIXEL_SUFFIXES
from ..geometry import NO_UNIT


def _one_path(path):
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(str(path).rstrip("/\\"))


def _contrast(levels) -> list[float]:
    """Contrast limits from the middle plane of the coarsest level (first frame for movies).

    One plane, not the whole coarse volume: the layer then opens in the time of one small
    reconstruction whatever the size of the image.
    """
    from ..apr import LazyAprMovie

    coarse = levels[-1]
    if isinstance(coarse, LazyAprMovie):
        coarse = coarse[0:1]
    lead = tuple(n // 2 for n in coarse.shape[:-2])
    sample = np.asarray(coarse[lead]) if lead else np.asarray(coarse)
    lo, hi = float(np.min(sample)), float(np.max(sample))
    return [lo, hi if hi > lo else lo + 1.0]


def apr_layer_metadata(stats: dict) -> dict:
    """The ``metadata`` of an APR layer: particle count, computational ratio, memory saved."""
    return {"apr": {"particles": int(stats["particles"]),
                    "computational_ratio": round(float(stats["computational_ratio"]), 3),
                    "memory_saved": f"{100 * float(stats['memory_saved']):.1f} %",
                    "pixel_bytes": int(stats["pixel_bytes"]), "particle_bytes": int(stats["particle_bytes"])}}


def apr_layers(path, mode: str = "constant") -> list:
    """Layer data tuples of an ``.apr`` file or ``.aprmovie`` folder (one image layer per channel)."""
    from ..apr import open_lazy

    opened = open_lazy(path, mode=mode)
    head = opened["header"]
    out = []
    for levels, name in zip(opened["levels"], opened["channel_names"]):
        meta = apr_layer_metadata(head)
        meta["apr"]["path"] = head["path"]
        meta["apr"]["mode"] = mode
        scale = list(opened["scale"])
        movie = Path(str(path)).suffix.lower() == MOVIE_SUFFIX
        # the convention (napari_dynfit.geometry): a movie's first axis is time, scale[0] = its frame interval
        axes = ("t" if movie else "") + "zyx"[-(len(scale) - int(movie)):]
        kwargs = {"name": name if len(opened["channel_names"]) > 1 else Path(head["path"]).stem,
                  "multiscale": True, "scale": scale, "metadata": meta, "axis_labels": tuple(axes),
                  "contrast_limits": _contrast(levels)}
        if movie:
            meta["dt"] = float(scale[0])
        if mode == "level":
            kwargs["colormap"] = "turbo"
        out.append((levels, kwargs, "image"))
    return out


def is_apr_layer(layer) -> bool:
    """Whether ``layer`` shows lazy APR data (opened or converted by this plugin)."""
    from ..apr import LazyAprArray, LazyAprMovie

    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return isinstance(data, (LazyAprArray, LazyAprMovie))


def set_apr_mode(layer, mode: str) -> None:
    """Switch an APR layer between ``constant``, ``smooth`` and ``level`` reconstruction (stays lazy)."""
    levels = [lv.with_mode(mode) for lv in layer.data]
    lims = _contrast(levels)
    layer.data = levels
    layer.contrast_limits_range = lims
    layer.contrast_limits = lims
    layer.metadata.setdefault("apr", {})["mode"] = mode
    if mode == "level":
        layer.colormap = "turbo"


def _read_apr(path):
    return apr_layers(_one_path(path))


def get_apr_reader(path):
    """npe2 reader for ``.apr`` files and ``.aprmovie`` folders."""
    p = _one_path(path)
    if p is None or p.suffix.lower() not in (APR_SUFFIX, MOVIE_SUFFIX):
        return None
    return _read_apr


def _read_pixels(path) -> dict:
    """:func:`read_pixels`; a 3D file that does not name its axes is taken as a movie (``tyx``), said in the
    layer metadata (``axes``, ``axes_source``)."""
    from .._tiff import AmbiguousAxesError
    from ..apr.io import read_pixels

    try:
        return read_pixels(path)
    except AmbiguousAxesError as exc:
        if exc.ndim != 3:
            raise
        px = read_pixels(path, axes="tyx")
        px["axes_source"] = "assumed tyx (a movie): the file does not name its axes"
        return px


def _napari_units(units) -> tuple:
    """Units napari (pint) knows; one it does not becomes ``"pixel"`` (the layer still opens, with its scale).
    Without napari (the reader's layer tuples built headless) the units are returned as the file gives them."""
    try:
        from napari.utils._units import get_unit_registry
    except ImportError:
        return tuple(units)

    reg, out = get_unit_registry(), []
    for u in units:
        try:
            reg.Unit(u)
            out.append(u)
        except Exception:  # pint's UndefinedUnitError and parse errors: a unit spelled as napari cannot read
            out.append(NO_UNIT)
    return tuple(out)


def _pixel_layer(path):
    """One image layer (per channel) of a TIFF / OME-Zarr with the file's geometry: ``scale``, ``translate``,
    ``units`` and ``axis_labels`` of :meth:`napari_dynfit.io.ImageData.layer_geometry` (the time convention of
    :mod:`napari_dynfit.geometry`: frames with ``scale[0]`` = the frame interval), ``metadata["dt"]`` when the
    file gives a frame interval; an OME-Zarr pyramid opens as a multiscale layer (lazy levels)."""
    px = _read_pixels(_one_path(path))
    from ..geometry import axes_geometry

    geo = axes_geometry(px["axes"], px["scale"], px.get("units"), px.get("origin"))
    dt = geo.pop("dt", None)
    geo["units"] = _napari_units(geo["units"])
    meta = {"axes": px["axes"], "axes_source": px.get("axes_source", "")}
    if dt is not None:
        meta["dt"] = dt
    kwargs = {"name": px["name"], **geo, "metadata": meta}
    if "c" in px["axes"]:
        kwargs["channel_axis"] = px["axes"].index("c")
    data = px["data"]
    if px.get("levels"):
        data, kwargs["multiscale"] = list(px["levels"]), True
    return [(data, kwargs, "image")]


def apr_layers_from_result(result, name: str, mode: str = "constant") -> list:
    """Layer data tuples (lazy multiscale) of an in-memory :class:`AprImage` or :class:`AprMovie`."""
    from ..apr import AprImage, lazy_multiscale
    from ..apr.lazy import lazy_movie_multiscale

    if isinstance(result, AprImage):
        levels = lazy_multiscale(result, mode=mode)
        return [(levels, {"name": f"{name} (APR)", "multiscale": True, "scale": list(result.spacing),
                          "metadata": apr_layer_metadata(result.stats()), "contrast_limits": _contrast(levels)},
                 "image")]
    out = []
    for c, cname in enumerate(result.channel_names):
        levels = lazy_movie_multiscale([fr[c] for fr in result.frames], mode=mode)
        layer_name = f"{name} (APR)" if len(result.channel_names) == 1 else f"{name} {cname} (APR)"
        out.append((levels, {"name": layer_name, "multiscale": True,
                             "scale": [result.frame_interval, *result.spacing],
                             "metadata": apr_layer_metadata(result.stats()),
                             "contrast_limits": _contrast(levels)}, "image"))
    return out


def _pixels_as_apr(path):
    from ..apr.io import pixels_to_apr

    px = _read_pixels(_one_path(path))
    return apr_layers_from_result(pixels_to_apr(px), px["name"])


def _is_pixels(p) -> bool:
    return p is not None and p.suffix.lower() in PIXEL_SUFFIXES and p.suffix.lower() != ".npy"


def get_pixels_reader(path):
    """npe2 reader: TIFF / OME-Zarr as a pixel image layer (OME-Zarr stays lazy); a ``.zarr`` that is a GEFF
    tracks store opens as a Tracks layer (one reader per pattern: napari does not ask which to use)."""
    from ..track.io_formats import _is_geff

    p = _one_path(path)
    if p is not None and p.is_dir() and _is_geff(p):
        from ._tracks_io import read_tracks_layers

        return read_tracks_layers
    return _pixel_layer if _is_pixels(p) else None


def get_pixels_to_apr_reader(path):
    """TIFF / OME-Zarr converted to the APR on opening (automatic parameters). Not a File > Open reader
    (it would claim the patterns of :func:`get_pixels_reader` and napari would ask every time): the
    "Convert to APR" widget converts an opened image."""
    return _pixels_as_apr if _is_pixels(_one_path(path)) else None
