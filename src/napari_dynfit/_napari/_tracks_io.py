"""npe2 reader and writer of Tracks layers: CTC folders, GEFF, TrackMate XML, Parquet
(:mod:`napari_dynfit.track.io_formats` does the work).

*File > Open*: a CTC folder's ``res_track.txt`` / ``man_track.txt`` (Tracks + the masks as Labels), a ``.geff``
store (a GEFF store named ``.zarr`` is handed over by the pixels reader), a TrackMate ``.xml``, a tracks
``.parquet`` table. *File > Save Selected Layer(s)* of a Tracks layer: ``.geff``, ``.ctc`` (a CTC folder),
``.csv`` or ``.parquet``. Layers carry ``scale`` (time axis in frames, space from the file's pixel size),
``translate``, ``units``, ``axis_labels`` and ``metadata["dt"]``; the writer writes the layer's data (pixel)
coordinates with its scale and translate as the file's pixel size and origin.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

#: Extensions of the Tracks writer (napari appends the first when the name has none).
WRITE_EXTENSIONS = (".geff", ".ctc", ".csv", ".parquet")


def _one_path(path) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(str(path).rstrip("/\\"))


def _is_trackmate(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"<TrackMate" in head


def _is_tracks_table(p: Path) -> bool:
    try:
        import pyarrow.parquet as pq

        return "track_id" in pq.read_schema(p).names
    except Exception:  # noqa: BLE001 - not a Parquet file: not ours to read
        return False


def is_tracks_path(path) -> bool:
    """Whether ``path`` is a tracks file this reader opens (cheap checks, no data read)."""
    from ..track.io_formats import _CTC_TXT, _is_geff

    p = _one_path(path)
    if p is None or not p.exists():
        return False
    suffix = p.suffix.lower()
    if p.name.lower() in _CTC_TXT and p.is_file():
        return True
    if p.is_dir():
        return _is_geff(p) or any((p / t).is_file() for t in _CTC_TXT)
    if suffix == ".xml":
        return _is_trackmate(p)
    if suffix in (".parquet", ".pq"):
        return _is_tracks_table(p)
    return False


def get_tracks_reader(path):
    """npe2 reader: a tracks file as a Tracks layer (``None`` for anything else)."""
    return read_tracks_layers if is_tracks_path(path) else None


def _valid_units(kwargs: dict) -> dict:
    """Drop ``units`` napari cannot parse (they stay in ``metadata``)."""
    units = kwargs.get("units")
    if units:
        try:
            from napari.utils._units import get_unit_registry

            reg = get_unit_registry()
            for u in units:
                reg(u)
        except Exception:  # noqa: BLE001 - pint raises several types for unknown units
            kwargs.pop("units")
    return kwargs


def read_tracks_layers(path) -> list:
    """Layer data tuples of a tracks file: the Tracks layer (and for a CTC folder its masks as Labels)."""
    from ..track.formats import read_ctc
    from ..track.io_formats import read_tracks, tracks_format, tracks_to_napari

    p = _one_path(path)
    fmt = tracks_format(p)
    name = (p.parent if p.is_file() and fmt == "ctc" else p).name.split(".")[0] or "tracks"
    tracks = read_tracks(p, format=fmt)
    data, kwargs = tracks_to_napari(tracks, name=name)
    kwargs["metadata"]["source"] = str(p)
    out = [(data, _valid_units(kwargs), "tracks")]
    if fmt == "ctc":
        _, labels = read_ctc(p.parent if p.is_file() else p)
        lab_kw = {k: kwargs[k] for k in ("scale", "translate", "axis_labels", "units") if k in kwargs}
        out.insert(0, (labels, {"name": f"{name} masks", "opacity": 0.5, **lab_kw}, "labels"))
    return out


def write_tracks_layer(path: str, data, attributes: dict) -> list[str]:
    """npe2 writer of one Tracks layer: GEFF (``.geff``), CTC folder (``.ctc``), ``.csv`` or ``.parquet``."""
    from ..track.io_formats import tracks_from_napari, write_tracks

    layer = SimpleNamespace(data=data, graph=attributes.get("graph") or {}, name=attributes.get("name", "tracks"),
                            scale=attributes.get("scale"), translate=attributes.get("translate"),
                            features=attributes.get("features"), metadata=attributes.get("metadata") or {},
                            units=attributes.get("units"))
    tracks = tracks_from_napari(layer, physical=False)
    return [str(write_tracks(tracks, path))]
