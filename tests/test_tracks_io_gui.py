"""File > Open / Save of tracks in napari: the plugin's reader and writer through the viewer, geometry kept,
one reader per file pattern."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.track.io_formats import read_tracks, tracks_from_napari, write_tracks
from test_tracks_io import CORE, _trackmate_xml, known_tracks

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("name", ["t.geff", "t.zarr", "ctc/res_track.txt", "01_RES", "t.parquet"])
def test_open_tracks_file_in_napari(make_napari_viewer, tmp_path, name):
    truth = known_tracks()
    truth.attrs["origin"] = [10.0, 5.0]
    target = tmp_path / name
    write_tracks(truth, target.parent if name.startswith("ctc") else target)  # 01_RES: a CTC folder, opened whole
    viewer = make_napari_viewer()
    layers = viewer.open(str(target), plugin="napari-dynfit")
    tracks = [lay for lay in layers if type(lay).__name__ == "Tracks"]
    assert len(tracks) == 1
    lay = tracks[0]
    np.testing.assert_allclose(lay.scale, [30.0 if lay.metadata["dt"] == 30.0 else 1.0, 0.5, 0.25])  # time: dt
    assert tuple(lay.axis_labels) == ("t", "y", "x") and [str(u) for u in lay.units][1:] == ["micrometer"] * 2
    assert lay.metadata["dt"] == 30.0
    np.testing.assert_allclose(lay.translate, [0.0, 10.0, 5.0])  # the origin (a CTC folder we wrote keeps it)
    # world coordinates: pixel * scale + translate, lineage from the layer's graph
    world = tracks_from_napari(lay)
    np.testing.assert_allclose(world["y"], truth["y"] * 0.5 + 10.0)
    np.testing.assert_allclose(world["x"], truth["x"] * 0.25 + 5.0)
    assert world["parent_id"].tolist() == truth["parent_id"].tolist()
    if name.startswith("ctc") or name.endswith("_RES"):  # the masks come along, on the same grid
        labels = [lay for lay in layers if type(lay).__name__ == "Labels"]
        assert len(labels) == 1 and labels[0].data.shape[0] == truth["frame"].max() + 1
        np.testing.assert_allclose(labels[0].scale, lay.scale)


def test_open_trackmate_xml_in_napari(make_napari_viewer, tmp_path):
    _trackmate_xml(tmp_path / "tm.xml")
    viewer = make_napari_viewer()
    (lay,) = viewer.open(str(tmp_path / "tm.xml"), plugin="napari-dynfit")
    assert len(np.unique(lay.data[:, 0])) == 5 and len(lay.graph) == 2
    np.testing.assert_allclose(lay.scale, [lay.metadata["dt"], 0.5, 0.5])  # time axis: frames, scale = dt


@pytest.mark.parametrize("ext", [".geff", ".ctc", ".parquet", ".csv"])
def test_save_tracks_layer_round_trip(make_napari_viewer, tmp_path, ext):
    from napari_dynfit.track.io_formats import tracks_to_napari

    truth = known_tracks()
    data, kw = tracks_to_napari(truth)
    kw["translate"] = (0.0, 10.0, 5.0)
    viewer = make_napari_viewer()
    lay = viewer.add_tracks(data, **kw)
    out = tmp_path / f"saved{ext}"
    written = lay.save(str(out), plugin="napari-dynfit")
    assert written == [str(out)]
    back = read_tracks(out)
    pd.testing.assert_frame_equal(back[CORE], truth[CORE], check_dtype=False)
    if ext != ".csv":
        assert back.attrs["spacing"] == [0.5, 0.25] and back.attrs["origin"] == [10.0, 5.0]
        assert back.attrs["dt"] == 30.0 and back.attrs["space_unit"] == "micrometer"


def test_one_reader_per_pattern():
    """napari asks which plugin to use when two readers claim a file: ours claim each pattern once."""
    import os

    import npe2

    import napari_dynfit

    manifest = npe2.PluginManifest.from_file(os.path.join(os.path.dirname(napari_dynfit.__file__), "napari.yaml"))
    patterns = [p for r in manifest.contributions.readers for p in r.filename_patterns]
    assert len(patterns) == len(set(patterns)), patterns
    assert {"*.tif", "*.zarr", "*.geff", "*.xml", "*_track.txt", "*_RES", "*_GT"} <= set(patterns)
