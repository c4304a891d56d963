"""Track formats: CTC round trip (gaps, divisions, masks), TrackMate XML, label movies, napari layer data."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.detect import label_table
from napari_dynfit.errors import InputError
from napari_dynfit.sim import render_labels
from napari_dynfit.track import link
from napari_dynfit.track.formats import (
    read_ctc,
    read_label_movie,
    read_trackmate_xml,
    relabel_movie,
    to_napari_tracks,
    tracks_from_edges,
    write_ctc,
)
from napari_dynfit.track.metrics import tracking_metrics

TRACKS = pd.DataFrame({"track_id": [1, 1, 1, 1, 2, 2, 3, 3], "frame": [0, 1, 3, 4, 5, 6, 5, 6],
                       "y": [10, 11, 12, 13, 20, 21, 5, 6.0], "x": [10, 10, 10, 10, 12, 12, 8, 8.0],
                       "parent_id": [-1, -1, -1, -1, 1, 1, 1, 1]})


def test_ctc_round_trip_points_with_gap_and_division(tmp_path):
    write_ctc(TRACKS, tmp_path / "res", shape=(32, 32))
    lines = np.loadtxt(tmp_path / "res" / "res_track.txt", dtype=int)
    # the gap splits track 1 into two CTC tracks; the daughters hang from the second piece
    assert lines.tolist() == [[1, 0, 1, 0], [2, 5, 6, 4], [3, 5, 6, 4], [4, 3, 4, 1]]
    assert len(list((tmp_path / "res").glob("mask*.tif"))) == 7
    back, labels = read_ctc(tmp_path / "res")
    assert labels.shape == (7, 32, 32)
    m = tracking_metrics(TRACKS, back, match_distance=0.5)
    assert m["TRA"] == 1.0 and m["LNK"] == 1.0 and m["division_f1"] == 1.0
    assert back["track_id"].nunique() == 3  # the gap is joined again


def test_ctc_round_trip_masks(tmp_path):
    truth = pd.DataFrame({"track_id": [1, 1, 2, 2], "frame": [0, 1, 0, 1], "y": [10.0, 11, 30, 30],
                          "x": [10.0, 10, 30, 31], "radius": 4.0})
    labels = render_labels(truth, (2, 48, 48))
    shuffled = np.where(labels > 0, 3 - labels, 0)  # labels swapped: identity lost
    tracks = link(label_table(shuffled), max_distance=5, labels=shuffled)
    write_ctc(tracks, tmp_path / "res", labels=shuffled)
    back, masks = read_ctc(tmp_path / "res")
    assert tracking_metrics(truth, back, match_distance=0.5)["TRA"] == 1.0
    # each mask keeps its pixels and now carries its track id
    np.testing.assert_array_equal(masks > 0, labels > 0)
    rel = relabel_movie(shuffled, tracks)
    np.testing.assert_array_equal(rel, masks)


def test_read_label_movie_tiff_zarr(tmp_path):
    import tifffile
    import zarr

    lab = np.zeros((3, 8, 8), np.uint16)
    lab[:, 2:4, 2:4] = 5
    tifffile.imwrite(tmp_path / "l.tif", lab)  # no axis metadata: frames or slices? the caller says
    np.testing.assert_array_equal(read_label_movie(tmp_path / "l.tif", axes="tyx"), lab)
    g = zarr.open_group(str(tmp_path / "l.ome.zarr"), mode="w", zarr_format=2)
    g.create_array("0", data=lab)
    g.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}]}]
    np.testing.assert_array_equal(read_label_movie(tmp_path / "l.ome.zarr"), lab)
    with pytest.raises(InputError, match="does not exist"):
        read_label_movie(tmp_path / "missing.tif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="CTC"):
        read_label_movie(tmp_path / "empty")


def test_read_ctc_bad_folder(tmp_path):
    (tmp_path / "man_track.txt").write_text("1 0 3\n")
    with pytest.raises(InputError, match="L B E P"):
        read_ctc(tmp_path)


TRACKMATE = """<?xml version="1.0" encoding="UTF-8"?>
<TrackMate version="7.0">
  <Model spatialunits="micron" timeunits="sec">
    <AllSpots nspots="6">
      <SpotsInFrame frame="0">
        <Spot ID="10" FRAME="0" POSITION_X="2.0" POSITION_Y="4.0" POSITION_Z="0.0" QUALITY="5" />
      </SpotsInFrame>
      <SpotsInFrame frame="1">
        <Spot ID="11" FRAME="1" POSITION_X="2.5" POSITION_Y="4.0" POSITION_Z="0.0" QUALITY="5" />
      </SpotsInFrame>
      <SpotsInFrame frame="2">
        <Spot ID="12" FRAME="2" POSITION_X="2.0" POSITION_Y="3.0" POSITION_Z="0.0" QUALITY="4" />
        <Spot ID="13" FRAME="2" POSITION_X="2.0" POSITION_Y="5.0" POSITION_Z="0.0" QUALITY="4" />
        <Spot ID="14" FRAME="2" POSITION_X="9.0" POSITION_Y="9.0" POSITION_Z="0.0" QUALITY="1" />
      </SpotsInFrame>
      <SpotsInFrame frame="3">
        <Spot ID="15" FRAME="3" POSITION_X="2.0" POSITION_Y="2.5" POSITION_Z="0.0" QUALITY="4" />
      </SpotsInFrame>
    </AllSpots>
    <AllTracks>
      <Track name="Track_0" TRACK_ID="0">
        <Edge SPOT_SOURCE_ID="10" SPOT_TARGET_ID="11" />
        <Edge SPOT_SOURCE_ID="11" SPOT_TARGET_ID="12" />
        <Edge SPOT_SOURCE_ID="11" SPOT_TARGET_ID="13" />
        <Edge SPOT_SOURCE_ID="15" SPOT_TARGET_ID="12" />
      </Track>
    </AllTracks>
  </Model>
  <Settings>
    <ImageData filename="x.tif" width="20" height="20" nslices="1" nframes="4" pixelwidth="0.5" pixelheight="0.5" voxeldepth="1.0" />
  </Settings>
</TrackMate>
"""


def test_trackmate_xml(tmp_path):
    p = tmp_path / "tm.xml"
    p.write_text(TRACKMATE)
    df = read_trackmate_xml(p)
    assert list(df.columns[:5]) == ["track_id", "frame", "y", "x", "parent_id"]
    assert df.attrs["spacing"] == [0.5, 0.5]
    by_spot = df.set_index("spot_id")
    assert by_spot.loc[11, "x"] == 5.0 and by_spot.loc[11, "y"] == 8.0  # microns / pixel size
    mother = by_spot.loc[10, "track_id"]
    assert by_spot.loc[11, "track_id"] == mother
    d1, d2 = by_spot.loc[12, "track_id"], by_spot.loc[13, "track_id"]
    assert d1 != d2 != mother and by_spot.loc[12, "parent_id"] == mother == by_spot.loc[13, "parent_id"]
    assert by_spot.loc[15, "track_id"] == d1  # edge written backwards in time is reoriented
    assert by_spot.loc[14, "parent_id"] == -1 and (df["track_id"] == by_spot.loc[14, "track_id"]).sum() == 1
    bad = tmp_path / "bad.xml"
    bad.write_text("<TrackMate><Model/></TrackMate>")
    with pytest.raises(InputError, match="AllSpots"):
        read_trackmate_xml(bad)


def test_tracks_from_edges_and_napari_data():
    frames = np.array([0, 1, 2, 2, 3])
    tid, par = tracks_from_edges(frames, np.array([0, 1, 1, 2]), np.array([1, 2, 3, 4]))
    assert tid[0] == tid[1] and len({tid[1], tid[2], tid[3]}) == 3 and tid[4] == tid[2]
    assert par[2] == par[3] == tid[0] and par[0] == -1
    df = pd.DataFrame({"track_id": tid, "frame": frames, "y": 0.0, "x": np.arange(5.0), "parent_id": par})
    data, props, graph = to_napari_tracks(df)
    assert data.shape == (5, 4)
    assert graph == {int(tid[2]): [int(tid[0])], int(tid[3]): [int(tid[0])]}
    assert "parent_id" in props
