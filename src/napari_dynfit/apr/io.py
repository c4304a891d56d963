"""APR files (``.apr``) and APR movie folders (``.aprmovie``).

``.apr`` is pyapr's HDF5 layout (``ParticleRepr/t/...``), always written with the tree structure
and the tree particle values (mean of the children) so that files can be sliced lazily at any
resolution (:mod:`napari_dynfit.apr.lazy`). Our metadata (spatial dimensionality, physical
spacing) is one JSON attribute ``dynfit`` on the root group; files written by other tools open too.

An APR movie is a folder ``NAME.aprmovie`` holding one ``.apr`` per frame and channel
(``c{channel}/t{frame:05d}.apr``) and ``movie.json`` (frame interval, spacing, channel names,
shape, per-frame particle counts). One file per frame keeps frames independently readable, lets
the lazy viewer open only the frame on screen, and keeps pyapr's lazy readers (which read the
first time point of a file only) usable.

Reading and writing are pure h5py (:mod:`napari_dynfit.apr.h5`; files open in pyapr and the
reverse) and never touch a pixel image. Every write goes to a temporary sibling that is renamed onto
the destination only after the data were written and checked (:func:`napari_dynfit._io.atomic_path`):
each written file is re-opened and its particle counts verified before the rename.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._io import atomic_path, check_input_file
from .._progress import progress_iter
from .._tiff import AmbiguousAxesError  # noqa: F401 (read_pixels raises it; its docstring names it)
from ..errors import InputError
from .convert import AprImage, AprMovie, apr_stats
from .h5 import attr_int

APR_SUFFIX = ".apr"
MOVIE_SUFFIX = ".aprmovie"
MOVIE_JSON = "movie.json"
_ROOT = "ParticleRepr/t"
_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float": np.float32, "float32": np.float32,
           "uint64": np.uint64, "int32": np.int32, "int16": np.int16}


# ----------------------------------------------------------------------------------------------
# single files


def apr_header(path) -> dict:
    """Check an ``.apr`` file and read its header (no particle data, no pyapr).

    Returns
    -------
    dict
        ``path``, ``shape`` (``(y, x)`` or ``(z, y, x)``), ``ndim``, ``spacing``, ``dtype``,
        ``particles``, ``tree_particles`` (0 when the file has no tree values),
        ``level_min``, ``level_max``, ``computational_ratio``, ``memory_saved``, ``file_bytes``.

    Raises
    ------
    InputError
        Missing, truncated or corrupt file, or an HDF5 file that is not an APR.
    """
    import h5py
    import hdf5plugin  # noqa: F401  (pyapr compresses particle arrays with Blosc)

    p = check_input_file(path, suffixes=(APR_SUFFIX,), what="APR file", file=True)
    fix = "re-export or re-convert it (dynfit convert IMAGE -o FILE.apr)"
    try:
        with h5py.File(p, "r") as f:
            if _ROOT not in f:
                raise InputError(f"'{p}' is an HDF5 file but not an APR file (no {_ROOT} group); {fix}")
            g = f[_ROOT]
            a = g.attrs
            n = int(np.ravel(a["total_number_particles"])[0])
            for name in ("particles", "y_vec", "xz_end_vec"):
                if name not in g:
                    raise InputError(f"APR file '{p}' lacks the dataset {name!r}; {fix}")
            parts = g["particles"]
            if parts.shape[0] != n or g["y_vec"].shape[0] != n:
                raise InputError(f"APR file '{p}' is inconsistent ({parts.shape[0]} particle values "
                                 f"for {n} particles); {fix}")
            # touch the last element of every array so that a damaged tail is detected here
            for ds in (parts, g["y_vec"], g["xz_end_vec"]):
                if ds.shape[0]:
                    ds[ds.shape[0] - 1]
            n_tree = 0
            if "Tree/particles" in g:
                n_tree = int(g["Tree/particles"].shape[0])
                if n_tree:
                    g["Tree/particles"][n_tree - 1]
            dims = [attr_int(a, k) for k in ("z_num", "x_num", "y_num")]
            meta = json.loads(f.attrs["dynfit"]) if "dynfit" in f.attrs else {}
            dtype = np.dtype(parts.dtype)
            lmin, lmax = attr_int(a, "level_min"), attr_int(a, "level_max")
    except InputError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot read APR file '{p}' (truncated or corrupt: {exc}); {fix}") from exc
    ndim = int(meta.get("ndim", 2 if dims[0] == 1 else 3))
    shape = tuple(dims[1:]) if ndim == 2 else tuple(dims)
    spacing = tuple(meta.get("spacing", (1.0,) * ndim))
    info = {"path": str(p), "ndim": ndim, "spacing": list(spacing), "dtype": str(dtype),
            "tree_particles": n_tree, "level_min": lmin, "level_max": lmax,
            "file_bytes": p.stat().st_size}
    info.update(apr_stats(shape, n, dtype))
    return info


def _write_one(image: AprImage, tmp: Path) -> None:
    """Write ``image`` with tree values to ``tmp`` (pure h5py, pyapr's layout) and verify what was written."""
    import h5py

    from .h5 import write_h5

    meta = {"format": "napari-dynfit apr", "version": 1, "ndim": image.ndim,
            "spacing": [float(s) for s in image.spacing]}
    params = dict(image.params)
    # pyapr: dz = shape[0], dx = shape[1], dy = shape[2]  ->  our (z, y, x)
    sp = (1.0, *image.spacing) if image.ndim == 2 else tuple(image.spacing)
    params.update(dz=float(sp[0]), dx=float(sp[1]), dy=float(sp[2]))
    try:
        write_h5(tmp, image.grid, image.parts, image.tree_parts, params=params,
                 root_attrs={"dynfit": json.dumps(meta)})
        with h5py.File(tmp, "r") as f:
            ok = (f[_ROOT]["particles"].shape[0] == image.n_particles
                  and f[_ROOT]["Tree/particles"].shape[0] == image.grid.n_tree)
    except (OSError, KeyError) as exc:
        raise OSError(f"writing the APR file failed ({exc})") from exc
    if not ok:
        raise OSError("writing the APR file failed: the particle counts on disk do not match")


def check_apr_output(path, *, movie: bool) -> Path:
    """``path`` as a Path when its suffix fits what is written (``.aprmovie`` for a movie, ``.apr`` for an image).

    Raises :class:`InputError` naming the suffix needed: output names are never changed behind the user's back.
    """
    dest = Path(path).expanduser()
    want = MOVIE_SUFFIX if movie else APR_SUFFIX
    if dest.suffix.lower() != want:
        stem = dest.name[:-len(dest.suffix)] if dest.suffix else dest.name
        what = "a movie is written as a .aprmovie folder" if movie else "an image (no time axis) is written as an .apr file"
        hint = ("; or pass --axes tyx if the input is a movie" if not movie and dest.suffix.lower() == MOVIE_SUFFIX
                else "")
        raise InputError(f"{what}: name the output '{stem}{want}' (got '{dest.name}'){hint}")
    return dest


def write_apr(image: AprImage, path) -> Path:
    """Write an :class:`AprImage` to an ``.apr`` file (with tree particles), atomically.

    Parameters
    ----------
    image : AprImage
        What to write.
    path : str or Path
        Destination, written exactly as given: it must end in ``.apr`` (else :class:`InputError`). An
        existing file is replaced only once the new one is complete.

    Returns
    -------
    Path
        The written file.
    """
    if not isinstance(image, AprImage):
        raise InputError(f"write_apr needs an AprImage (got {type(image).__name__}); convert with to_apr first")
    dest = check_apr_output(path, movie=False)
    with atomic_path(dest) as tmp:
        _write_one(image, tmp)
    return dest


def read_apr(path) -> AprImage:
    """Read an ``.apr`` file into memory (structure and particle values; no pixel image).

    Raises
    ------
    InputError
        Missing, truncated or corrupt file.
    """
    from .h5 import read_h5, read_parameters

    head = apr_header(path)
    try:
        grid, parts, _ = read_h5(head["path"], tree=False)
        params = read_parameters(head["path"])
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read APR file '{head['path']}' (truncated or corrupt: {exc}); re-export it") from exc
    return AprImage(grid, parts, head["ndim"], tuple(head["spacing"]), params)


# ----------------------------------------------------------------------------------------------
# movie folders


def _frame_file(c: int, t: int) -> str:
    return f"c{c}/t{t:05d}{APR_SUFFIX}"


def write_apr_movie(movie: AprMovie, path) -> Path:
    """Write an :class:`AprMovie` to a ``.aprmovie`` folder, atomically.

    Parameters
    ----------
    movie : AprMovie
        Frames, frame interval and channel names.
    path : str or Path
        Destination folder, written exactly as given: it must end in ``.aprmovie`` (else :class:`InputError`).
    """
    if not isinstance(movie, AprMovie):
        raise InputError(f"write_apr_movie needs an AprMovie (got {type(movie).__name__}); "
                         "convert with to_apr(..., movie=True) first")
    dest = check_apr_output(path, movie=True)
    n_ch = len(movie.channel_names)
    with atomic_path(dest, is_dir=True) as tmp:
        for c in range(n_ch):
            (tmp / f"c{c}").mkdir()
        for t in progress_iter(range(movie.n_frames), desc="writing APR movie"):
            for c in range(n_ch):
                _write_one(movie.frames[t][c], tmp / _frame_file(c, t))
        first = movie.frames[0][0]
        meta = {
            "format": "napari-dynfit apr movie", "version": 1,
            "n_frames": movie.n_frames, "channel_names": list(movie.channel_names),
            "frame_interval": float(movie.frame_interval),
            "spacing": [float(s) for s in movie.spacing], "ndim": movie.ndim,
            "frame_shape": list(first.shape), "dtype": str(first.dtype),
            "files": [[_frame_file(c, t) for c in range(n_ch)] for t in range(movie.n_frames)],
            "particles": [[im.n_particles for im in fr] for fr in movie.frames],
            "attrs": movie.attrs,
        }
        (tmp / MOVIE_JSON).write_text(json.dumps(meta, indent=1))
    return dest


def movie_header(path) -> dict:
    """Check an ``.aprmovie`` folder and read its metadata (no particle data).

    Returns the ``movie.json`` dict plus ``path``, ``shape`` (``(t, [z,] y, x)`` per channel),
    ``particles`` (total), ``computational_ratio`` and ``memory_saved``.
    """
    p = check_input_file(path, suffixes=(MOVIE_SUFFIX,), what="APR movie folder")
    js = p / MOVIE_JSON
    try:
        meta = json.loads(js.read_text())
        files = meta["files"]
        n_ch = len(meta["channel_names"])
        shape = (int(meta["n_frames"]), *[int(s) for s in meta["frame_shape"]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"APR movie folder '{p}' has no valid {MOVIE_JSON} ({exc}); re-export it") from exc
    if len(files) != shape[0] or any(len(fr) != n_ch for fr in files):
        raise InputError(f"APR movie folder '{p}': {MOVIE_JSON} lists the wrong number of frame files; re-export it")
    missing = [f for fr in files for f in fr if not (p / f).is_file()]
    if missing:
        raise InputError(f"APR movie folder '{p}' lacks {len(missing)} frame files (first: {missing[0]}); "
                         "copy the whole folder or re-export it")
    n = int(np.sum(meta["particles"]))
    out = dict(meta)
    out["path"] = str(p)
    out.update(apr_stats((shape[0] * n_ch, *shape[1:]), n, np.dtype(_DTYPES.get(meta["dtype"], meta["dtype"]))))
    out["shape"] = list(shape)
    return out


def read_apr_movie(path) -> AprMovie:
    """Read a ``.aprmovie`` folder into memory (all frames' structures and particle values)."""
    head = movie_header(path)
    root = Path(head["path"])
    frames = [[read_apr(root / f) for f in fr]
              for fr in progress_iter(head["files"], desc="reading APR movie")]
    return AprMovie(frames=frames, frame_interval=float(head["frame_interval"]),
                    channel_names=tuple(head["channel_names"]), attrs=head.get("attrs", {}))


def apr_info(path) -> dict:
    """Header of an ``.apr`` file or a ``.aprmovie`` folder (see :func:`apr_header`, :func:`movie_header`;
    without the per-frame file list)."""
    p = Path(path)
    if p.suffix.lower() == MOVIE_SUFFIX:
        head = movie_header(p)
        head.pop("files")  # one path per frame: long, and derived from the layout
        return head
    return apr_header(p)


# ----------------------------------------------------------------------------------------------
# pixel images (the inputs of the conversion)

PIXEL_SUFFIXES = (".tif", ".tiff", ".zarr", ".npy")


def read_pixels(path, axes: str | None = None) -> dict:
    """Open a TIFF, OME-Zarr or ``.npy`` pixel image with its axes and physical scale.

    OME-Zarr arrays stay lazy (a Dask array of the full-resolution level); TIFF and ``.npy`` are
    read into memory.

    Parameters
    ----------
    path : str or Path
        ``.tif``/``.tiff``, ``.zarr`` (OME-NGFF image group) or ``.npy``.
    axes : str, optional
        The axes in file order (letters among ``tczyx``, e.g. ``"tyx"``); they take precedence over the
        file's. Needed for a TIFF or ``.npy`` of 3+ dimensions without axis metadata (see
        :func:`napari_dynfit._tiff.tiff_axes`: ImageJ and OME-TIFF name their axes, a plain page stack does not).

    Returns
    -------
    dict
        ``data`` (array ``(t, [c,] [z,] y, x)`` in the file's order of these axes), ``axes``
        (letters among ``tczyx``, e.g. ``"tyx"``), ``scale`` (one physical size per axis) and
        ``name``; for TIFF also ``axes_source`` (``"given"``, ``"imagej"``, ``"ome"``, ``"shaped"``, ``"2d"``).

    Raises
    ------
    AmbiguousAxesError
        A TIFF / ``.npy`` of 3+ dimensions that does not name its axes, and no ``axes``.
    """
    from ..io.image import open_image

    p = check_input_file(path, suffixes=PIXEL_SUFFIXES, what="image")
    return open_image(p, axes, what="image").to_dict()


def pixels_to_apr(pixels: dict, **params):
    """Convert what :func:`read_pixels` returned: an :class:`AprImage`, or an :class:`AprMovie` when it has a ``t`` axis.

    ``params`` are :func:`~napari_dynfit.apr.to_apr`'s conversion parameters (``rel_error``...).
    """
    from .convert import to_apr

    data, axes, scale = pixels["data"], pixels["axes"], pixels["scale"]
    order = [axes.index(a) for a in "tczyx" if a in axes]
    data = data.transpose(order) if order != list(range(len(order))) else data
    axes = "".join(axes[i] for i in order)
    scale = [scale[i] for i in order]
    spatial = [s for a, s in zip(axes, scale) if a in "zyx"]
    if "t" in axes:
        return to_apr(data, movie=True, channel_axis=1 if "c" in axes else None, spacing=spatial,
                      frame_interval=scale[0], **params)
    if "c" in axes:
        if data.shape[0] != 1:
            raise InputError(f"image has {data.shape[0]} channels and no time axis; convert one channel "
                             "at a time (or add a time axis of length 1)")
        data = data[0]
    return to_apr(np.asarray(data), spacing=spatial, **params)
