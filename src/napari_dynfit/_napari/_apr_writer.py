"""npe2 writer: Image and Labels layers to ``.apr`` (movies: ``.aprmovie`` folders).

An APR layer (opened from a file or converted in the session) is written from its particles,
without reconstructing pixels; a pixel layer is converted first (images with automatic
parameters, labels so that every label is kept exactly). Writes are atomic.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .._io import atomic_path
from ..apr import (
    AprImage,
    AprMovie,
    LazyAprArray,
    LazyAprMovie,
    labels_to_apr,
    read_apr,
    to_apr,
    write_apr,
    write_apr_movie,
)
from ..apr.lazy import _FileSource
from ..errors import InputError


def _apr_image_of(level0):
    """The AprImage behind a lazy level (file-backed arrays are read, not reconstructed)."""
    src = level0._src
    return read_apr(src.header["path"]) if isinstance(src, _FileSource) else src.image


def _frames_of(movie: LazyAprMovie) -> list:
    return [fr if isinstance(fr, AprImage) else read_apr(fr) for fr in movie.frames]


def _spatial_scale(attributes: dict, ndim: int):
    scale = attributes.get("scale")
    return None if scale is None else [float(s) for s in list(scale)[-ndim:]]


def write_apr_layer(path: str, data, attributes: dict, layer_type: str) -> list[str]:
    """Write one Image or Labels layer to ``path`` exactly (``.apr``; a movie needs ``.aprmovie``)."""
    multiscale = attributes.get("multiscale") or isinstance(data, (list, tuple))
    level0 = data[0] if multiscale else data
    dest = Path(path)
    if isinstance(level0, LazyAprArray):
        src = level0._src
        if isinstance(src, _FileSource):
            with atomic_path(dest) as tmp:  # the file already is the APR: copy it
                shutil.copyfile(src.header["path"], tmp)
            return [str(dest)]
        return [str(write_apr(_apr_image_of(level0), dest))]
    if isinstance(level0, LazyAprMovie):
        scale = attributes.get("scale") or [1.0]
        movie = AprMovie(frames=[[im] for im in _frames_of(level0)], frame_interval=float(scale[0]),
                         channel_names=(attributes.get("name") or "ch0",))
        return [str(write_apr_movie(movie, dest))]  # a movie needs NAME.aprmovie: not renamed
    arr = np.asarray(level0)
    if arr.ndim not in (2, 3):
        raise InputError(f"the layer has {arr.ndim} dimensions; the .apr writer takes 2D or 3D layers "
                         "(convert movies with the 'Convert to APR' widget)")
    spacing = _spatial_scale(attributes, arr.ndim)
    image = labels_to_apr(arr, spacing=spacing) if layer_type == "labels" else to_apr(arr, spacing=spacing)
    return [str(write_apr(image, dest))]


def write_image(path: str, data, attributes: dict) -> list[str]:
    """npe2 single-layer writer for Image layers."""
    return write_apr_layer(path, data, attributes, "image")


def write_labels(path: str, data, attributes: dict) -> list[str]:
    """npe2 single-layer writer for Labels layers."""
    return write_apr_layer(path, data, attributes, "labels")
