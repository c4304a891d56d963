"""The axes of a TIFF, as its metadata or the user gives them: the one place every TIFF movie/image reader asks.

A TIFF's pages carry no axis names; ImageJ hyperstacks (``axes`` from ``images/slices/frames/channels``), OME-TIFF
(``DimensionOrder``) and tifffile's own shaped files (``metadata={'axes': ...}``) do, and tifffile reports them
as ``series.axes``. A plain stack of 2D pages has none (tifffile calls such axes ``Q`` or ``I``): a 300-page
stack may be 300 frames or 300 slices, and guessing either way gave different answers in different commands.
:func:`tiff_axes` takes the metadata's axes, else the user's (``axes=`` / ``--axes``), and otherwise refuses a
file of 3 or more dimensions with an :class:`AmbiguousAxesError` that asks for ``--axes``.

Axes of length 1 that hold no image dimension are dropped (:func:`kept_axes`): ImageJ and OME-TIFF series come
squeezed from tifffile already (``channels=1`` or ``TZCYX`` with ``C = 1`` is read ``tzyx``), tifffile's shaped
files do not, so a samples axis ``S``, a channel ``C`` or a slice axis ``Z`` of length 1 is dropped there too
(``TYXS`` with ``S = 1`` is a grey movie ``tyx``, not an RGB image), and so is any axis of length 1 after the
page's ``Y, X`` (a trailing 1, e.g. of ``(t, y, x, 1)``, is never taken for ``x``). A time axis of length 1 that
the metadata names is kept (a movie of one frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import check_input_file, check_tiff_complete
from .errors import InputError

AXES = "tczyx"
_CHOICES = {3: "--axes tyx (frames) or --axes zyx (slices)",
            4: "--axes tzyx, --axes tcyx or --axes czyx", 5: "--axes tczyx"}


class AmbiguousAxesError(InputError):
    """A TIFF of 3+ dimensions whose metadata does not name its axes (``ndim`` tells how many)."""

    def __init__(self, message: str, ndim: int):
        super().__init__(message)
        self.ndim = ndim


@dataclass(frozen=True)
class TiffAxes:
    """What :func:`tiff_axes` found.

    Attributes
    ----------
    axes : str
        One letter per dimension of the first series, among ``tczyx``, ending in ``yx`` (file order).
    shape : tuple of int
    dtype : numpy.dtype
    scale : dict
        Physical sizes the metadata gives: ``y``/``x`` from the resolution tags when a unit is set, ``z`` from
        ImageJ's ``spacing``, ``t`` from ImageJ's ``finterval``. Absent keys: no information.
    source : str
        Where ``axes`` came from: ``"given"`` (the caller), ``"imagej"``, ``"ome"``, ``"shaped"`` (tifffile's
        metadata) or ``"2d"`` (two dimensions are ``yx``).
    units : dict
        Units of the axes in ``scale`` as the file names them: ImageJ's ``unit`` for ``z``/``y``/``x`` and
        ``tunit`` for ``t`` (absent: None; a frame interval without a unit is read as seconds by
        :func:`napari_dynfit.geometry.axes_geometry`); OME's ``PhysicalSize*Unit`` (default ``"µm"``) and
        ``TimeIncrementUnit`` (default ``"s"``).
    origin : dict
        World position of pixel 0 per spatial axis (ImageJ's ``xorigin``/``yorigin``/``zorigin``, which are in
        pixels: ``-origin * pixel size``). Absent keys: 0.
    dropped : tuple of int
        Positions, in tifffile's series (``tifffile.imread(path).shape``), of the axes of length 1 left out of
        ``axes`` and ``shape`` (:func:`kept_axes`); empty when none.
    """

    axes: str
    shape: tuple
    dtype: np.dtype
    scale: dict = field(default_factory=dict)
    source: str = ""
    units: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)
    dropped: tuple = ()


def kept_axes(series_axes: str, shape) -> list[int]:
    """Positions of the axes of a TIFF series (tifffile's ``series.axes`` and ``series.shape``) that are read:
    all but the axes of length 1 that hold no image dimension, i.e. a samples ``S``, channel ``C`` or slice ``Z``
    axis of length 1 and any axis of length 1 after the page's ``Y`` and ``X`` (so a trailing 1 is never ``x``).

    Parameters
    ----------
    series_axes : str
        tifffile's axis letters, one per dimension (``"TYXS"``, ``"QYXQ"``...).
    shape : tuple of int
        The series' shape.

    Returns
    -------
    list of int
        Indices into ``shape`` of the axes kept, in file order.
    """
    letters = str(series_axes).upper()
    last = max(letters.rfind("Y"), letters.rfind("X"))
    return [i for i, (a, n) in enumerate(zip(letters, shape))
            if not (n == 1 and (a in "SCZ" or (last >= 0 and i > last)))]


def file_key(key, ndim: int, dropped: tuple):
    """An index ``key`` into the read axes (``ndim`` of them) as an index into the file's series: 0 at the
    ``dropped`` positions (:attr:`TiffAxes.dropped`), so the result has the read axes' shape."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1:]
    out = list(key) + [slice(None)] * (ndim - len(key))
    for d in sorted(dropped):
        out.insert(d, 0)
    return tuple(out)


def check_axes(axes: str, ndim: int, path, *, hint: str = "") -> str:
    """Lower-case ``axes`` after checking them: ``ndim`` distinct letters among ``tczyx`` ending in ``yx``."""
    a = str(axes).lower()
    if set(a) - set(AXES) or len(a) != ndim or len(set(a)) != ndim or not a.endswith("yx"):
        raise InputError(f"axes '{axes}' do not fit '{path}' ({ndim} dimensions): give {ndim} distinct letters "
                         f"among t, c, z, y, x ending in yx{hint or ', e.g. --axes tyx'}")
    return a


def tiff_axes(path, axes: str | None = None) -> TiffAxes:
    """Axes, shape and physical scale of a TIFF's first series, from its metadata or from ``axes``.

    Parameters
    ----------
    path : str or Path
        ``.tif`` / ``.tiff`` file.
    axes : str, optional
        The axes in file order (e.g. ``"tyx"``, ``"zyx"``, ``"tczyx"``); they take precedence over the metadata.

    Returns
    -------
    TiffAxes

    Raises
    ------
    AmbiguousAxesError
        The file has 3 or more dimensions, no axis metadata and no ``axes`` were given.
    InputError
        Unreadable or truncated file (fewer frames or bytes than its metadata declares), RGB samples, or ``axes``
        that do not fit the shape.
    """
    import tifffile

    p = check_input_file(path, suffixes=(".tif", ".tiff"), what="TIFF")
    check_tiff_complete(p)  # a truncated series is an error here, never fewer frames (CLI, napari readers, pipeline)
    try:
        with tifffile.TiffFile(p) as tf:
            series = tf.series[0]
            letters, full = str(series.axes).upper(), tuple(series.shape)
            dtype, kind = np.dtype(series.dtype), series.kind
            ij = tf.imagej_metadata or {}
            ome = _ome_pixels(tf.ome_metadata) if tf.is_ome else {}
            tags = tf.pages[0].tags
            res = [tags[k].value for k in ("YResolution", "XResolution") if k in tags]
    except (OSError, ValueError, IndexError, tifffile.TiffFileError) as exc:
        raise InputError(f"cannot read TIFF '{p}' ({exc}); check that the file is complete") from exc
    kept = kept_axes(letters, full)
    dropped = tuple(i for i in range(len(full)) if i not in kept)
    found, shape = "".join(letters[i] for i in kept).lower(), tuple(full[i] for i in kept)
    gone = (f" (axes of length 1 dropped: {letters} {full} is read as {found.upper() or '-'} {shape})"
            if dropped else "")
    if len(shape) < 2:
        raise InputError(f"'{p}' holds no 2D image (axes {letters} {full}): re-export it as a (t, [z,] y, x) image")
    if axes is not None:
        out, source = check_axes(axes, len(shape), p, hint=gone and f", one per axis read{gone}"), "given"
    elif all(a in AXES for a in found) and found.endswith("yx"):
        out, source = found, ("2d" if len(shape) == 2 else str(kind).lower())
    elif "s" in found:
        raise InputError(f"'{p}' is an RGB(A) image (axes {found.upper()}): save one grey channel, "
                         "e.g. with Fiji's Image > Type > 8-bit")
    elif all(a in AXES for a in found) and "y" in found and "x" in found:
        raise InputError(f"'{p}' has axes {found.upper()} {shape}: axes after y, x are not read; save the "
                         f"image with y, x last (e.g. metadata={{'axes': '{''.join(a for a in found if a not in 'yx').upper()}YX'}})")
    else:
        n = len(shape)
        raise AmbiguousAxesError(f"'{p}' has {n} dimensions {shape}{gone} and no axis metadata: say what they are "
                                 f"with {_CHOICES.get(n, '--axes (letters among t, c, z, y, x)')} "
                                 "(axes=... in Python)", n)
    scale, units, origin = {}, {}, {}
    if len(res) == 2 and ij.get("unit") not in (None, "", "pixel") and all(r[0] for r in res):
        scale["y"], scale["x"] = (r[1] / r[0] for r in res)
    if "spacing" in ij:
        scale["z"] = float(ij["spacing"])
    if ij.get("finterval"):
        scale["t"] = float(ij["finterval"])
    units = {a: (ij.get("tunit") if a == "t" else ij.get("unit")) for a in scale}
    for a in "zyx":  # ImageJ's calibration origin is in pixels
        if ij.get(f"{a}origin") and a in scale:
            origin[a] = -float(ij[f"{a}origin"]) * scale[a]
    for a, (size, unit) in ome.items():  # OME-TIFF: PhysicalSize* and TimeIncrement
        scale.setdefault(a, size)
        units.setdefault(a, unit)
    return TiffAxes(axes=out, shape=shape, dtype=dtype, scale=scale, source=source, units=units, origin=origin,
                    dropped=dropped)


def _ome_pixels(xml) -> dict:
    """``axis -> (size, unit)`` from the first image's OME ``Pixels`` element (``PhysicalSizeX/Y/Z`` with their
    units, default µm; ``TimeIncrement``, default s); ``{}`` when the XML says nothing or cannot be parsed."""
    import tifffile

    try:
        image = tifffile.xml2dict(xml or "").get("OME", {}).get("Image", {})
        pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
    except Exception:  # metadata we cannot parse: the file's pixels are still readable
        return {}
    out = {}
    for a, key, default in (("x", "PhysicalSizeX", "µm"), ("y", "PhysicalSizeY", "µm"), ("z", "PhysicalSizeZ", "µm"),
                            ("t", "TimeIncrement", "s")):
        size = pixels.get(key)
        if isinstance(size, (int, float)) and size > 0:
            out[a] = (float(size), str(pixels.get(f"{key}Unit") or default))
    return out


def read_tiff(path, axes: str | None = None) -> tuple[np.ndarray, TiffAxes]:
    """The first series of a TIFF in memory and its :func:`tiff_axes` (file order of the axes)."""
    import tifffile

    from .validate import check_memory

    info = tiff_axes(path, axes)
    size = float(np.prod(info.shape, dtype=float))  # the pixels and one float32 working copy (every command makes one)
    check_memory(size * (np.dtype(info.dtype).itemsize + 4),
                 f"TIFF '{path}' ({' x '.join(map(str, info.shape))} {np.dtype(info.dtype).name}, read whole)",
                 "crop or bin it first, or save it as OME-Zarr (read frame by frame)")
    try:
        data = tifffile.imread(Path(path).expanduser(), series=0)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise InputError(f"cannot read TIFF '{path}' ({exc}); check that the file is complete") from exc
    if info.dropped:  # the axes of length 1 that hold no image dimension (kept_axes)
        data = np.squeeze(data, axis=info.dropped)
    return data, info


def movie_order(data, axes: str, path, *, channel: int | None = None):
    """``data`` with axes ``axes`` as a movie ``(t, [z,] y, x)`` (one channel taken when there is a ``c`` axis)."""
    if "t" not in axes:
        raise InputError(f"'{path}' has axes '{axes}' (no time axis): a movie needs one; pass --axes "
                         f"t{axes[1:] if len(axes) > 2 else axes} if its first axis is time")
    if "c" in axes:
        n = data.shape[axes.index("c")]
        if channel is None and n != 1:
            raise InputError(f"'{path}' has {n} channels; choose one (channel=..., --channel)")
        data = np.take(data, channel or 0, axis=axes.index("c"))
        axes = axes.replace("c", "")
    order = [axes.index(a) for a in "tzyx" if a in axes]
    return data.transpose(order) if order != list(range(len(order))) else data
