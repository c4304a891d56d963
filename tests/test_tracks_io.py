"""Tracks files in and out (:mod:`napari_dynfit.track.io_formats`, ``dynfit convert-tracks``): round trips of
known tracks with gaps and divisions through CTC, GEFF, Parquet and CSV; TrackMate XML; bad files."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.cli import main
from napari_dynfit.errors import InputError
from napari_dynfit.track.formats import read_ctc
from napari_dynfit.track.io_formats import (
    read_tracks,
    tracks_format,
    tracks_from_napari,
    tracks_to_napari,
    write_tracks,
)

CORE = ["track_id", "frame", "y", "x", "parent_id"]


def known_tracks(ndim: int = 2) -> pd.DataFrame:
    """Track 1 (gap at frame 2) divides into 2 and 3 at frame 5; 3 skips frame 7 and divides into 5 and 6;
    track 4 is a root that starts late. Integer positions away from each other (CTC stores masks)."""
    rows = []
    for f in (0, 1, 3, 4):
        rows.append((1, f, 10 + f, 20))
    for f in (5, 6, 7):
        rows.append((2, f, 10 + f, 30))
    for f in (5, 6, 8):
        rows.append((3, f, 30, 10 + f))
    for f in (9, 10):
        rows.append((5, f, 40, 20 + f))
        rows.append((6, f, 50, 20 + f))
    for f in (2, 3, 4, 5):
        rows.append((4, f, 45, 45))
    df = pd.DataFrame(rows, columns=["track_id", "frame", "y", "x"]).astype({"y": float, "x": float})
    df["parent_id"] = df["track_id"].map({1: -1, 2: 1, 3: 1, 4: -1, 5: 3, 6: 3})
    if ndim == 3:
        df.insert(2, "z", 4.0 + df["track_id"])
    df["intensity"] = np.linspace(1.0, 2.0, len(df))
    df.attrs.update(spacing=[0.5, 0.25] if ndim == 2 else [2.0, 0.5, 0.25], dt=30.0, space_unit="micrometer",
                    time_unit="second")
    return df.sort_values(["track_id", "frame"]).reset_index(drop=True)


def _same(back, truth, cols):
    pd.testing.assert_frame_equal(back[cols].reset_index(drop=True), truth[cols].reset_index(drop=True),
                                  check_dtype=False)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name", ["t.geff", "t.parquet", "t.csv", "t_ctc", "t.ctc"])
def test_round_trip_keeps_tracks_gaps_and_lineage(tmp_path, name, ndim):
    if name.endswith(".geff"):
        pytest.importorskip("geff")
    truth = known_tracks(ndim)
    if name == "t.geff" or name == "t.parquet":
        truth.attrs["origin"] = [1.0, 10.0, 5.0][-ndim:]
    out = write_tracks(truth, tmp_path / name)
    back = read_tracks(out)
    cols = CORE[:2] + (["z"] if ndim == 3 else []) + CORE[2:]
    _same(back, truth, cols)
    fmt = tracks_format(out, write=True)
    if fmt != "ctc":  # features travel (CTC keeps masks: label and size instead)
        np.testing.assert_allclose(back["intensity"], truth["intensity"])
    if name != "t.csv":  # geometry and units travel, except through CSV
        for k in ("spacing", "dt", "space_unit", "time_unit", "origin"):
            assert back.attrs.get(k) == truth.attrs.get(k), k


def test_ctc_keeps_gaps_and_divisions_in_its_own_terms(tmp_path):
    write_tracks(known_tracks(), tmp_path / "res")
    lines = np.loadtxt(tmp_path / "res" / "res_track.txt", dtype=int).tolist()
    # track 1's gap makes piece 7 (frames 3-4) with 1 as parent; daughters hang from 7; 3's gap makes 8
    assert [1, 0, 1, 0] in lines and [7, 3, 4, 1] in lines
    assert [2, 5, 7, 7] in lines and [3, 5, 6, 7] in lines and [8, 8, 8, 3] in lines
    assert [5, 9, 10, 8] in lines and [6, 9, 10, 8] in lines
    # the text file alone opens the folder
    _same(read_tracks(tmp_path / "res" / "res_track.txt"), known_tracks(), CORE)


def test_ctc_reader_gives_a_joined_track_one_parent(tmp_path):
    """A daughter that skips a frame is two CTC tracks: read back as one track, every row with its mother."""
    import tifffile

    folder = tmp_path / "ctc"
    folder.mkdir()
    # 1: frames 0-1, divides into 2 (frames 2-3) and 3 (frame 2); 3 reappears after a gap as 4 (frames 4-5)
    lines = [[1, 0, 1, 0], [2, 2, 3, 1], [3, 2, 2, 1], [4, 4, 5, 3]]
    np.savetxt(folder / "man_track.txt", lines, fmt="%d")
    for t in range(6):
        img = np.zeros((20, 20), np.uint16)
        for lab, b, e, _ in lines:
            if b <= t <= e:
                img[2 + 4 * lab:4 + 4 * lab, 2 + 2 * t:4 + 2 * t] = lab
        tifffile.imwrite(folder / f"man_track{t:03d}.tif", img)
    df, labels = read_ctc(folder)
    assert labels.shape == (6, 20, 20)
    per_track = df.groupby("track_id")["parent_id"].agg(["min", "max", "size"])
    assert per_track.to_dict("index") == {1: {"min": -1, "max": -1, "size": 2}, 2: {"min": 1, "max": 1, "size": 2},
                                          3: {"min": 1, "max": 1, "size": 3}}


def _trackmate_xml(path, *, calibration=0.5):
    """A TrackMate file: a track dividing at frame 2 (one daughter skips frame 4), a plain track, a track
    TrackMate filtered out, an untracked spot and an invisible spot. Positions in µm."""
    root = ET.Element("TrackMate", version="7.11.1")
    model = ET.SubElement(root, "Model", spatialunits="micron", timeunits="sec")
    spots = ET.SubElement(ET.SubElement(model, "AllSpots", nspots="0"), "SpotsInFrame", frame="0")
    truth = {}  # spot id -> (frame, y px, x px)
    sid = iter(range(100, 1000))

    def spot(frame, y, x, visible=1):
        i = next(sid)
        ET.SubElement(spots, "Spot", ID=str(i), name=f"ID{i}", FRAME=str(frame), POSITION_T=str(float(frame)),
                      POSITION_X=str(x * calibration), POSITION_Y=str(y * calibration), POSITION_Z="0.0",
                      QUALITY=str(10.0 + i), RADIUS="2.5", VISIBILITY=str(visible), MEAN_INTENSITY_CH1="7.0")
        truth[i] = (frame, y, x)
        return i

    tracks = ET.SubElement(model, "AllTracks")

    def track(tid, edges):
        t = ET.SubElement(tracks, "Track", name=f"Track_{tid}", TRACK_ID=str(tid))
        for a, b in edges:
            ET.SubElement(t, "Edge", SPOT_SOURCE_ID=str(a), SPOT_TARGET_ID=str(b), LINK_COST="1.0")

    m = [spot(f, 10 + f, 10) for f in range(3)]
    d1 = [spot(f, 12 + f, 14) for f in (3, 4, 5)]
    d2 = [spot(f, 12 + f, 6) for f in (3, 5)]  # skips frame 4
    track(0, [(m[0], m[1]), (m[1], m[2]), (m[2], d1[0]), (d1[0], d1[1]), (d1[1], d1[2]), (m[2], d2[0]),
              (d2[0], d2[1])])
    p = [spot(f, 40, 40 + f) for f in range(4)]
    track(1, list(zip(p[:-1], p[1:])))
    q = [spot(f, 50, 10) for f in range(2)]
    track(2, [(q[0], q[1])])
    lone = spot(1, 30, 30)
    spot(2, 60, 60, visible=0)
    filtered = ET.SubElement(model, "FilteredTracks")
    ET.SubElement(filtered, "TrackID", TRACK_ID="0")
    ET.SubElement(filtered, "TrackID", TRACK_ID="1")
    settings = ET.SubElement(root, "Settings")
    ET.SubElement(settings, "ImageData", filename="movie.tif", width="64", height="64", nslices="1", nframes="6",
                  pixelwidth=str(calibration), pixelheight=str(calibration), voxeldepth="1.0", timeinterval="5.0")
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return truth, {"mother": m, "d1": d1, "d2": d2, "plain": p, "filtered": q, "lone": lone}


def test_trackmate_xml_reads_tracks_lineage_features_and_calibration(tmp_path):
    truth, ids = _trackmate_xml(tmp_path / "tm.xml")
    df = read_tracks(tmp_path / "tm.xml")
    # 3 + 3 + 2 + 4 visible tracked spots + 1 untracked; the filtered track and the invisible spot are dropped
    assert len(df) == 13 and set(ids["filtered"]).isdisjoint(df["spot_id"])
    by_spot = df.set_index("spot_id")
    for i, (f, y, x) in truth.items():
        if i in by_spot.index:
            assert (by_spot.loc[i, "frame"], by_spot.loc[i, "y"], by_spot.loc[i, "x"]) == (f, y, x)  # pixels
    tid = {k: int(by_spot.loc[v[0] if isinstance(v, list) else v, "track_id"]) for k, v in ids.items()
           if k != "filtered"}
    assert len(set(tid.values())) == 5  # mother, two daughters, the plain track, the lone spot
    parents = df.groupby("track_id")["parent_id"].first()
    assert parents[tid["d1"]] == tid["mother"] and parents[tid["d2"]] == tid["mother"]
    assert parents[tid["mother"]] == -1 and parents[tid["plain"]] == -1
    assert df[df["track_id"] == tid["d2"]]["frame"].tolist() == [3, 5]  # the gap stays inside the track
    # TrackMate's track ids give the lineage: 2 tracks as TrackMate counts them, plus the lone spot
    assert sorted(df["lineage_id"].unique().tolist()) == [-1, 0, 1]
    assert {"quality", "radius", "mean_intensity_ch1"} <= set(df.columns)
    assert df.attrs == {"spacing": [0.5, 0.5], "dt": 5.0, "space_unit": "micrometer", "time_unit": "second"}


def test_trackmate_to_geff_to_ctc_keeps_lineage(tmp_path):
    pytest.importorskip("geff")
    _trackmate_xml(tmp_path / "tm.xml", calibration=1.0)
    tm = read_tracks(tmp_path / "tm.xml")
    g = read_tracks(write_tracks(tm, tmp_path / "tm.geff"))
    _same(g, tm, CORE)
    np.testing.assert_array_equal(g["lineage_id"], tm["lineage_id"])
    c = read_tracks(write_tracks(g, tmp_path / "tm_ctc"))
    _same(c, tm, CORE)


def test_convert_tracks_cli(tmp_path, capsys):
    pytest.importorskip("geff")
    _trackmate_xml(tmp_path / "tm.xml", calibration=1.0)
    assert main(["-q", "convert-tracks", str(tmp_path / "tm.xml"), str(tmp_path / "a.geff")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tracks"] == 5 and summary["daughter_tracks"] == 2 and summary["format"] == "geff"
    assert main(["-q", "convert-tracks", str(tmp_path / "a.geff"), str(tmp_path / "ctc"), "--spacing", "0.2", "0.2",
                 "--dt", "2"]) == 0
    back = read_tracks(tmp_path / "ctc")
    assert back.attrs["spacing"] == [0.2, 0.2] and back.attrs["dt"] == 2.0
    _same(back, read_tracks(tmp_path / "tm.xml"), CORE)
    capsys.readouterr()
    # an existing output needs --overwrite; a folder of the user's is never replaced; XML cannot be written
    user = tmp_path / "mine"
    user.mkdir()
    (user / "keep.txt").write_text("x")
    for args in ([str(tmp_path / "a.geff"), str(tmp_path / "ctc")],
                 [str(tmp_path / "a.geff"), str(user), "--overwrite"],
                 [str(tmp_path / "a.geff"), str(tmp_path / "out.xml")],
                 [str(tmp_path / "a.geff"), str(tmp_path / "c2"), "--spacing", "1", "1", "1"]):
        assert main(["-q", "convert-tracks", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dynfit convert-tracks: error:") and "\n" not in err
    assert (user / "keep.txt").read_text() == "x"
    assert not (tmp_path / "c2").exists()


#: bad inputs: path -> content (a str: a file; a dict: a folder of files; None: nothing there)
BAD = {
    "missing.geff": None,
    "garbage.xml": "<TrackMate><Model>",
    "other.xml": "<svg></svg>",
    "no_spots.xml": "<TrackMate><Model><AllSpots/></Model></TrackMate>",
    "damaged.geff": {".zgroup": '{"zarr_format": 2}', ".zattrs": '{"geff": {"geff_version": "1.0"}}'},
    "plain_folder": {"a.txt": "x"},
    "bad_ctc": {"res_track.txt": "1 0 oops\n"},
    "t.json": "{}",
    "nan.csv": "track_id,frame,y,x\n1,0,2,nan\n",
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_files_give_one_line_errors(tmp_path, name):
    p = tmp_path / name
    content = BAD[name]
    if isinstance(content, str):
        p.write_text(content)
    elif isinstance(content, dict):
        p.mkdir()
        for k, v in content.items():
            (p / k).write_text(v)
    with pytest.raises(InputError) as info:
        read_tracks(p)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_writers_refuse_what_they_cannot_write(tmp_path):
    with pytest.raises(InputError, match="read only"):
        write_tracks(known_tracks(), tmp_path / "x.xml")
    with pytest.raises(InputError, match="unknown tracks format"):
        write_tracks(known_tracks(), tmp_path / "x.json")
    with pytest.raises(InputError, match="lacks the column"):
        write_tracks(known_tracks().drop(columns="track_id"), tmp_path / "x.geff")
    assert not any(tmp_path.iterdir())


class Tracks:  # the attributes of a napari Tracks layer that tracks_from_napari reads
    def __init__(self, data, graph, scale, translate, metadata=None, units=None):
        self.name, self.data, self.graph, self.scale, self.translate = "t", data, graph, scale, translate
        self.features, self.metadata, self.units = pd.DataFrame(), metadata or {}, units


def test_tracks_from_napari_applies_scale_and_translate():
    truth = known_tracks()
    data, kw = tracks_to_napari(truth)
    # the time convention (napari_dynfit.geometry): frames, scale[0] = dt in the time unit
    assert kw["scale"] == (30.0, 0.5, 0.25) and kw["axis_labels"] == ("t", "y", "x")
    assert kw["units"] == ("second", "micrometer", "micrometer") and kw["metadata"]["dt"] == 30.0
    layer = Tracks(data, kw["graph"], scale=(30.0, 0.5, 0.25), translate=(0.0, 10.0, 5.0), metadata=kw["metadata"],
                   units=kw["units"])
    world = tracks_from_napari(layer)
    np.testing.assert_allclose(world["y"], truth["y"] * 0.5 + 10.0)
    np.testing.assert_allclose(world["x"], truth["x"] * 0.25 + 5.0)
    assert world["parent_id"].tolist() == truth["parent_id"].tolist()
    assert world.attrs["dt"] == 30.0 and world.attrs["space_unit"] == "micrometer"
    px = tracks_from_napari(layer, physical=False)
    _same(px, truth, CORE)
    assert px.attrs["spacing"] == [0.5, 0.25] and px.attrs["origin"] == [10.0, 5.0]
    with pytest.raises(InputError, match="not a non-empty Tracks layer"):
        tracks_from_napari(Tracks(np.zeros((0, 4)), {}, (1, 1, 1), (0, 0, 0)))


def test_geff_written_by_the_geff_package_from_a_graph(tmp_path):
    """A GEFF of another tool: no tracklet property, times in seconds: tracks from the edges, frames from the
    time step, units from the axes."""
    geff = pytest.importorskip("geff")
    import networkx as nx

    g = nx.DiGraph()
    pos = {0: (0, 1, 1), 1: (1, 2, 1), 2: (2, 3, 1), 3: (3, 4, 0), 4: (4, 5, 0), 5: (3, 4, 2)}
    for n, (t, y, x) in pos.items():
        g.add_node(n, t=t * 0.5, y=float(y), x=float(x), area=10.0 + n)
    g.add_edges_from([(0, 1), (1, 2), (2, 3), (3, 4), (2, 5)])  # node 2 divides into 3 and 5
    geff.write(g, str(tmp_path / "nx.geff"), axis_names=["t", "y", "x"], axis_types=["time", "space", "space"],
               axis_units=["second", "micrometer", "micrometer"])
    df = read_tracks(tmp_path / "nx.geff")
    assert df["frame"].tolist() == [0, 1, 2, 3, 4, 3] and df["area"].tolist() == [10, 11, 12, 13, 14, 15]
    assert df.groupby("track_id").size().tolist() == [3, 2, 1]
    assert df.groupby("track_id")["parent_id"].first().tolist() == [-1, 1, 1]
    assert df.attrs == {"spacing": [1.0, 1.0], "dt": 0.5, "space_unit": "micrometer", "time_unit": "second"}
