"""``dynfit convert-tracks IN OUT``: tracks from one file format to another
(:mod:`napari_dynfit.track.io_formats`).

Reads a CTC folder (or its ``res_track.txt`` / ``man_track.txt``), a GEFF store, a TrackMate XML file or a
CSV/Parquet table; writes GEFF (``OUT.geff``), a CTC folder (``OUT`` without suffix, or ``OUT.ctc``) or a table
(``OUT.csv`` / ``OUT.parquet``). Lineage (divisions), gaps, features, pixel size, frame interval and units go
along where the output format can hold them.
"""

from __future__ import annotations

import argparse

from ..results import json_text
from ..validate import OutputPath, positive_float, positive_int


def _tracks_output(text: str):
    """argparse type of OUT: a GEFF store or a CTC folder is a store (replaced only with --overwrite and only
    when dynfit wrote it), a table a file."""
    from ..errors import InputError
    from ..track.io_formats import tracks_format

    if not text.strip():
        raise argparse.ArgumentTypeError("an output path is needed")
    try:
        fmt = tracks_format(text, write=True)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    out = OutputPath(text)
    out.kind = "file" if fmt == "table" else "store"
    out.suffixes = None
    return out


_tracks_output.__name__ = "output path"  # the CLI adds --overwrite to commands with an output path


def _cmd_convert(args) -> int:
    from ..errors import InputError
    from ..track.io_formats import read_tracks, tracks_format, write_tracks

    tracks = read_tracks(args.input)
    coords = [c for c in ("z", "y", "x") if c in tracks.columns]
    if args.spacing:
        if len(args.spacing) != len(coords):
            raise InputError(f"--spacing has {len(args.spacing)} value(s) but the tracks have {len(coords)} spatial "
                             f"axes ({', '.join(coords)}): give one per axis")
        tracks.attrs["spacing"] = list(args.spacing)
    for key in ("dt", "space_unit", "time_unit"):
        if getattr(args, key) is not None:
            tracks.attrs[key] = getattr(args, key)
    out = write_tracks(tracks, args.output, shape=args.shape, radius=args.radius)
    n_div = int((tracks.groupby("track_id")["parent_id"].first() >= 0).sum())
    print(json_text({"input": str(args.input), "output": str(out), "format": tracks_format(out, write=True),
                      "detections": len(tracks), "tracks": int(tracks["track_id"].nunique()),
                      "daughter_tracks": n_div, **{k: tracks.attrs[k] for k in
                                                  ("spacing", "dt", "space_unit", "time_unit") if k in tracks.attrs}}))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "convert-tracks", help="convert tracks between CTC, GEFF, TrackMate XML (read) and CSV/Parquet",
        description="Convert a tracks file. IN: a CTC folder (or its res_track.txt / man_track.txt), a GEFF store "
                    "(.geff / .zarr), a TrackMate .xml, or a .csv / .parquet table (track_id, frame, [z,] y, x, "
                    "parent_id). OUT: .geff (GEFF), .csv / .parquet, or a folder without suffix / ending in .ctc "
                    "(Cell Tracking Challenge: res_track.txt + mask###.tif). Divisions, gaps and features are "
                    "kept; pixel size, frame interval and units where OUT can hold them (GEFF, Parquet, CTC folders "
                    "we write). Prints a JSON summary.")
    p.add_argument("input", help="tracks to read (CTC folder, GEFF, TrackMate XML, CSV/Parquet)")
    p.add_argument("output", type=_tracks_output, help="where to write (.geff, .csv, .parquet, or a CTC folder)")
    p.add_argument("--spacing", type=positive_float, nargs="+", help="set the pixel size along ([z] y x)")
    p.add_argument("--dt", type=positive_float, help="set the frame interval")
    p.add_argument("--space-unit", help="set the spatial unit (e.g. micrometer)")
    p.add_argument("--time-unit", help="set the time unit (e.g. second)")
    p.add_argument("--shape", type=positive_int, nargs="+",
                   help="CTC output: image shape ([z] y x) in pixels (default: the extent of the tracks)")
    p.add_argument("--radius", type=positive_float, default=2.0,
                   help="CTC output: radius in pixels of the disc drawn for each detection (default 2)")
    p.set_defaults(func=_cmd_convert)
