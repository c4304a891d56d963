"""The one image reader: :func:`open_image` opens every pixel format the package reads, with axes and scale.

Formats: TIFF (ImageJ, OME-TIFF, tifffile-shaped; axes from the metadata or ``axes=``, see
:func:`napari_dynfit._tiff.tiff_axes`), OME-Zarr image groups and plain Zarr arrays, ``.npy``, ``.aprmovie`` /
``.apr`` (reconstructed lazily), and folders: a Cell Tracking Challenge label folder (``mask###.tif``,
``man_track###.tif``: frame ``###`` at index ``###``, gaps are empty frames) or a folder of single-frame images
(TIFF / PNG / JPEG / BMP sorted by name; colour frames become grey).

Every reader of the package is a thin call to it: :func:`napari_dynfit.apr.io.read_pixels` (the APR
conversion's input), :func:`napari_dynfit.pipeline.open_movie`, :func:`napari_dynfit.track.read_label_movie` and
the CLI's movie readers.

>>> img = open_image("movie.tif")                          # doctest: +SKIP
>>> img.axes, img.scale, img.units                         # doctest: +SKIP
('tyx', (1.0, 0.16, 0.16), (None, 'micron', 'micron'))
>>> movie = img.movie()                                    # (t, [z,] y, x), one channel  # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .._io import check_input_file
from .._tiff import AmbiguousAxesError, check_axes
from ..errors import InputError

__all__ = ["ImageData", "open_image", "IMAGE_SUFFIXES", "FRAME_SUFFIXES"]

#: files :func:`open_image` reads (folders too: Zarr, ``.aprmovie``, CTC label folders, folders of frames)
IMAGE_SUFFIXES = (".tif", ".tiff", ".zarr", ".npy", ".aprmovie", ".apr")
#: single-frame files a folder of frames may hold
FRAME_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
_CTC_LABEL = re.compile(r"^(?:mask|man_track|man_seg)(\d+)\.tiff?$", re.IGNORECASE)
_GREY = np.array([0.2125, 0.7154, 0.0721])  # as pims.as_grey / skimage.color.rgb2gray


@dataclass
class ImageData:
    """An image or movie as :func:`open_image` found it.

    Attributes
    ----------
    data : array-like
        The pixels in file order of ``axes``: a numpy array, a memory map (``.npy``), a Dask array (OME-Zarr,
        ``.aprmovie``) or a lazy TIFF reader (``lazy=True``).
    axes : str
        One letter per dimension among ``tczyx``, ending in ``yx`` (e.g. ``"tyx"``, ``"tczyx"``).
    scale : tuple of float
        Physical size per axis (frame interval for ``t``, 1.0 for ``c`` and where the file says nothing).
    units : tuple of str or None
        Unit per axis as the file names it (``"micron"``, ``"s"``...), None where it names none.
    name : str
        The file's name without suffixes (layer names, output names).
    path : Path or None
    axes_source : str
        Where the axes came from: ``"given"``, ``"imagej"``, ``"ome"``, ``"shaped"``, ``"2d"``, ``"ome-zarr"``,
        ``"apr"``, ``"folder"``, ``"default"`` (a plain Zarr array, or OME-Zarr without axes: the file does not
        name them).
    origin : tuple of float
        World position of pixel 0 per axis (time of frame 0 for ``t``), from the file's metadata (OME-Zarr
        ``translation`` transformations, ImageJ's calibration origin); empty: all 0.
    levels : list or None
        A multiscale file's resolution levels, full resolution first (lazy; OME-Zarr), else ``None``.
    """

    data: object
    axes: str
    scale: tuple
    units: tuple
    name: str
    path: Path | None = None
    axes_source: str = ""
    _channel_reader: object = field(default=None, repr=False)
    origin: tuple = ()
    levels: list | None = field(default=None, repr=False)

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def spacing(self) -> tuple:
        """Physical pixel size of the spatial axes ``([z,] y, x)`` in file order."""
        return tuple(s for a, s in zip(self.axes, self.scale) if a in "zyx")

    def has_spacing(self) -> bool:
        """Whether the file gave any spatial pixel size other than 1."""
        return any(s != 1.0 for s in self.spacing)

    def to_dict(self) -> dict:
        """``data``, ``axes``, ``scale`` (list), ``units``, ``name``, ``axes_source`` (the old ``read_pixels``
        dict), ``origin`` (list) and ``levels``."""
        return {"data": self.data, "axes": self.axes, "scale": list(self.scale), "units": list(self.units),
                "name": self.name, "axes_source": self.axes_source,
                "origin": list(self.origin or (0.0,) * self.ndim), "levels": self.levels}

    def layer_geometry(self) -> dict:
        """napari layer kwargs ``scale``, ``translate``, ``units`` and ``axis_labels`` of the axes other than ``c``
        (the plugin's convention, :func:`napari_dynfit.geometry.axes_geometry`); ``dt`` too when the file gives
        a frame interval."""
        from ..geometry import axes_geometry

        return axes_geometry(self.axes, self.scale, self.units, self.origin)

    def as_movie_axes(self) -> ImageData:
        """When the file does not name its axes (``axes_source == "default"``) and they have no ``t``: the same
        data read as a movie (``tyx``, ``tzyx``...); otherwise ``self``."""
        if self.axes_source != "default" or "t" in self.axes or not _default_axes(self.ndim):
            return self
        return replace(self, axes=_default_axes(self.ndim))

    def canonical(self) -> ImageData:
        """The same image with its axes in ``tczyx`` order (lazy where the data is)."""
        order = [self.axes.index(a) for a in "tczyx" if a in self.axes]
        if order == list(range(self.ndim)):
            return self
        origin = tuple(self.origin[i] for i in order) if self.origin else ()
        levels = [lv.transpose(order) for lv in self.levels] if self.levels else None
        return replace(self, data=self.data.transpose(order), axes="".join(self.axes[i] for i in order),
                       scale=tuple(self.scale[i] for i in order), units=tuple(self.units[i] for i in order),
                       origin=origin, levels=levels)

    def movie(self, channel: int | None = None):
        """The pixels as a movie ``(t, [z,] y, x)`` of one channel (lazy where the file allows).

        Parameters
        ----------
        channel : int, optional
            Channel of a multi-channel file (required when the ``c`` axis is longer than 1).

        Raises
        ------
        InputError
            No ``t`` axis, or a channel that is missing or not chosen.
        """
        where = self.path or self.name
        if "t" not in self.axes:
            raise InputError(f"'{where}' has axes '{self.axes}' (no time axis): a movie needs one; pass --axes "
                             f"t{self.axes[1:] if len(self.axes) > 2 else self.axes} if its first axis is time")
        c = _channel(self.axes, self.shape, channel, where)
        if self._channel_reader is not None:  # a lazy TIFF: one frame at a time, the channel picked per frame
            return self._channel_reader(c)
        img = self.canonical()
        data = img.data
        if c is not None:
            data = data[:, c]
        return data


def _channel(axes: str, shape, channel, path) -> int | None:
    """The channel index to read (None: no ``c`` axis), with one-line errors."""
    if "c" not in axes:
        if channel not in (None, 0):
            raise InputError(f"channel {channel} does not exist in '{path}' (one channel, axes '{axes}'): "
                             "drop --channel")
        return None
    n = shape[axes.index("c")]
    if channel is None:
        if n == 1:
            return 0
        raise InputError(f"'{path}' has {n} channels; choose one (channel=..., --channel)")
    if not 0 <= channel < n:
        raise InputError(f"channel {channel} does not exist in '{path}' ({n} channels)")
    return int(channel)


def _is_zarr(p: Path) -> bool:
    return p.suffix.lower() == ".zarr" or (p.is_dir() and any((p / n).exists()
                                                              for n in ("zarr.json", ".zgroup", ".zarray")))


def _default_axes(ndim: int) -> str:
    return {2: "yx", 3: "tyx", 4: "tzyx", 5: "tczyx"}.get(ndim, "")


def open_image(path, axes: str | None = None, *, lazy: bool = False, what: str = "image") -> ImageData:
    """Open an image or movie with its axes, physical scale, units and name.

    Parameters
    ----------
    path : str or Path
        TIFF, OME-Zarr / Zarr, ``.npy``, ``.aprmovie`` / ``.apr``, a CTC label folder or a folder of frames.
    axes : str, optional
        The axes in file order (letters among ``tczyx`` ending in ``yx``, e.g. ``"tyx"``); they take precedence
        over the file's. Needed for a TIFF / ``.npy`` of 3+ dimensions without axis metadata.
    lazy : bool
        TIFF only: read frames on demand (:class:`napari_dynfit.pipeline.TiffFrames`) instead of loading the
        file. OME-Zarr, ``.npy`` and APR files are always lazy.
    what : str
        How error messages name the input (``"movie"``, ``"label movie"``...).

    Returns
    -------
    ImageData

    Raises
    ------
    AmbiguousAxesError
        A TIFF / ``.npy`` of 3+ dimensions that does not name its axes, and no ``axes``.
    InputError
        A missing, unreadable or unsupported file, or ``axes`` that do not fit it.
    """
    p = check_input_file(path, what=what)
    name = p.name.split(".")[0]
    suffix = p.suffix.lower()
    if suffix in (".aprmovie", ".apr"):
        img = _open_apr(p, name)
    elif _is_zarr(p):
        img = _open_zarr(p, name, what)
    elif p.is_dir():
        img = _open_folder(p, name, what)
    elif suffix == ".npy":
        img = _open_npy(p, name, axes)
    elif suffix in (".tif", ".tiff"):
        return _open_tiff(p, name, axes, lazy)
    else:
        raise InputError(f"{what} '{p}' has an unsupported type; expected a TIFF, OME-Zarr, .npy, .aprmovie or a "
                         "folder of frames")
    if axes:
        img.axes, img.axes_source = check_axes(axes, len(img.shape), p), "given"
    return img


def _open_tiff(p: Path, name: str, axes, lazy: bool) -> ImageData:
    from .._tiff import read_tiff, tiff_axes

    if lazy:
        from ..pipeline import TiffFrames

        info = tiff_axes(p, axes)
        data = _LazyTiff(p, info)
        reader = (lambda c: TiffFrames(p, info.axes, c))
    else:
        data, info = read_tiff(p, axes)
        reader = None
    scale = tuple(float(info.scale.get(a, 1.0)) for a in info.axes)
    units = tuple(info.units.get(a) if info.units else None for a in info.axes)
    origin = tuple(float(info.origin.get(a, 0.0)) for a in info.axes)
    return ImageData(data, info.axes, scale, units, name, p, info.source, reader, origin)


class _LazyTiff:
    """Shape and dtype of a TIFF's first series without reading its pixels (indexing reads them)."""

    def __init__(self, path: Path, info):
        self.path, self.shape, self.dtype, self.ndim = path, tuple(info.shape), info.dtype, len(info.shape)
        self.dropped = tuple(info.dropped)  # the file's axes of length 1 not read (``_tiff.kept_axes``)

    def __getitem__(self, key):
        from .._tiff import file_key
        from ..pipeline import _tiff_zarr

        return np.asarray(_tiff_zarr(str(self.path), self.path.stat().st_mtime_ns)[file_key(key, self.ndim,
                                                                                             self.dropped)])

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[...], dtype=dtype)


def _open_npy(p: Path, name: str, axes) -> ImageData:
    try:
        data = np.load(p, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty file
        raise InputError(f"cannot read '{p}' as a numpy array ({' '.join(str(exc).split()) or 'empty file'}): "
                         "is the file complete?") from exc
    if axes is None and data.ndim != 2:
        raise AmbiguousAxesError(f"'{p}' has {data.ndim} dimensions {data.shape} and a .npy file does not name "
                                 "its axes: pass them, e.g. --axes tyx (frames) or --axes zyx (slices)", data.ndim)
    return ImageData(data, "yx" if data.ndim == 2 else _default_axes(data.ndim), (1.0,) * data.ndim,
                     (None,) * data.ndim, name, p, "2d")


def _open_zarr(p: Path, name: str, what: str) -> ImageData:
    import zarr

    from .._io import check_zarr_chunks, lazy_zarr

    try:
        node = zarr.open(str(p), mode="r")
    except Exception as exc:  # zarr raises several types for a path that is no store
        raise InputError(f"cannot open Zarr store '{p}' ({exc}): is it an OME-Zarr image?") from exc
    if hasattr(node, "shape"):  # a plain array: axes by its number of dimensions (a movie)
        data = np.asarray(node)
        return ImageData(data, _default_axes(data.ndim), (1.0,) * data.ndim, (None,) * data.ndim, name, p,
                         "default")
    try:
        attrs = dict(node.attrs)
        ms = (attrs.get("ome") or attrs).get("multiscales")
        if not ms:
            if "0" in node:  # a group with a level 0 and no metadata (label stores written by other tools)
                arr = np.asarray(node["0"])
                arr = arr.reshape([s for i, s in enumerate(arr.shape) if not (s == 1 and i > 0 and arr.ndim > 4)])
                return ImageData(arr, _default_axes(arr.ndim), (1.0,) * arr.ndim, (None,) * arr.ndim, name, p,
                                 "default")
            raise InputError(f"'{p}' is a Zarr group without OME-NGFF 'multiscales' metadata; "
                             "write it as OME-Zarr (e.g. with ome-zarr-py) or save a TIFF")
        first = ms[0]
        ds0 = first["datasets"][0]
        if ds0["path"] not in node:
            raise InputError(f"Zarr store '{p}' has no array '{ds0['path']}': write the image as OME-Zarr level 0")
        arr = node[ds0["path"]]
        source = "ome-zarr" if "axes" in first else "default"  # OME-NGFF < 0.4: no axes, (t, c, z, y, x) implied
        ax = first.get("axes", "tczyx"[-arr.ndim:])
        axes = "".join(a["name"] if isinstance(a, dict) else a for a in ax)
        units = tuple((a.get("unit") if isinstance(a, dict) else None) for a in ax)
        scale, origin = ome_zarr_transform(ds0, first, arr.ndim)
        check_zarr_chunks(p)  # an absent chunk that held data is an error, not zeros
        data = lazy_zarr(arr, p)  # an undecodable chunk is a one-line error naming it, not a codec traceback
        levels = [data] + [lazy_zarr(node[ds["path"]], p) for ds in first["datasets"][1:] if ds["path"] in node]
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise InputError(f"cannot read OME-Zarr '{p}' ({exc}); check the path points at the image group") from exc
    axes = check_axes(axes, data.ndim, p)
    return ImageData(data, axes, tuple(scale), units if len(units) == data.ndim else (None,) * data.ndim, name, p,
                     source, origin=tuple(origin), levels=levels if len(levels) > 1 else None)


def ome_zarr_transform(dataset: dict, multiscale: dict, ndim: int) -> tuple[list, list]:
    """``(scale, translate)`` per axis of one OME-NGFF dataset: its ``coordinateTransformations`` (``scale``,
    then ``translation``) followed by the multiscale's own (applied to the result), as the specification
    composes them: ``world = (index * s_ds + t_ds) * s_ms + t_ms``."""
    scale, shift = np.ones(ndim), np.zeros(ndim)
    for transforms in (dataset.get("coordinateTransformations") or [],
                       multiscale.get("coordinateTransformations") or []):
        for tr in transforms:
            if tr.get("type") == "scale" and len(tr.get("scale", ())) == ndim:
                s = np.asarray(tr["scale"], float)
                scale, shift = scale * s, shift * s
            elif tr.get("type") == "translation" and len(tr.get("translation", ())) == ndim:
                shift = shift + np.asarray(tr["translation"], float)
    return [float(v) for v in scale], [float(v) for v in shift]


def _open_apr(p: Path, name: str) -> ImageData:
    from ..apr import open_lazy

    info = open_lazy(p)
    data = info["levels"][0][0]
    axes = ("t" if p.suffix.lower() == ".aprmovie" else "") + "zyx"[-(data.ndim - (p.suffix.lower() == ".aprmovie")):]
    return ImageData(data, axes, tuple(float(s) for s in info["scale"]), (None,) * data.ndim, name, p, "apr")


def _open_folder(p: Path, name: str, what: str) -> ImageData:
    import tifffile

    labels = sorted((int(m.group(1)), f) for f in p.iterdir() if (m := _CTC_LABEL.match(f.name)))
    if labels:  # CTC labels: frame index from the name, missing frames empty
        frames = [tifffile.imread(f) for _, f in labels]
        shape = frames[0].shape
        if any(f.shape != shape for f in frames):
            raise InputError(f"CTC folder '{p}' has label images of different shapes: they must all match")
        data = np.zeros((max(i for i, _ in labels) + 1,) + shape, np.int64)
        for (i, _), f in zip(labels, frames):
            data[i] = f
    else:
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise InputError(f"folder '{p}' holds no frames (TIFF/PNG/JPEG/BMP, or CTC mask###.tif) and is not "
                             f"Zarr: pass {'an' if what[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {what} file or folder")
        frames = []
        for f in files:
            if f.suffix.lower() in (".tif", ".tiff"):
                im = tifffile.imread(f)
            else:
                import imageio.v3 as iio

                im = np.asarray(iio.imread(f))
                im = (im[..., :3] @ _GREY).astype(np.float32) if im.ndim == 3 else im
            if frames and im.shape != frames[0].shape:
                raise InputError(f"'{f.name}' has shape {im.shape}, '{files[0].name}' {frames[0].shape}: all frames "
                                 "of the folder must have one shape")
            frames.append(im)
        data = np.stack(frames)
        if any(f.suffix.lower() not in (".tif", ".tiff") for f in files):
            data = data.astype(np.float32)
    return ImageData(data, "t" + "zyx"[-(data.ndim - 1):], (1.0,) * data.ndim, (None,) * data.ndim, name, p,
                     "folder")
