"""The DynFit panel: steps, project save/open round trip, plot export (napari under Xvfb)."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_panel_project_roundtrip(make_napari_viewer, tmp_path):
    from napari_dynfit._napari._panel import STEPS, DynFitPanel

    viewer = make_napari_viewer()
    viewer.open_sample("napari-dynfit", "active_particles_2d")
    movie = viewer.layers[0].data
    tracks = [lay for lay in viewer.layers if type(lay).__name__ == "Tracks"][0]
    # a user annotation: a Points layer edited by hand
    pts = viewer.add_points(np.array([[3, 10.5, 20.0], [4, 11.0, 21.5]]), name="edited detections")
    panel = DynFitPanel(viewer)
    assert STEPS[0][0] in panel.steps  # the first step is built at once
    panel.save_project(tmp_path / "prj")
    assert "saved" in panel.status.text()

    viewer2 = make_napari_viewer()
    panel2 = DynFitPanel(viewer2)
    panel2.open_project(tmp_path / "prj")
    names = {lay.name: lay for lay in viewer2.layers}
    np.testing.assert_array_equal(np.asarray(names[viewer.layers[0].name].data), np.asarray(movie))
    np.testing.assert_allclose(names["edited detections"].data, pts.data)
    tr2 = names[tracks.name]
    assert type(tr2).__name__ == "Tracks"
    np.testing.assert_allclose(np.asarray(tr2.data)[:, 2:], np.asarray(tracks.data)[:, 2:])
    np.testing.assert_allclose(tr2.scale, tracks.scale)
