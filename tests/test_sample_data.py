"""The two napari sample-data contributions open with the right layers (movie, masks, lineage tracks)."""

import numpy as np
import pytest


@pytest.mark.gui
@pytest.mark.slow
def test_open_2d_sample_from_the_menu(make_napari_viewer):
    """The full 2D sample (about 30 s on a loaded 2-core machine: 750 particles x 400 frames rendered)."""
    from napari_dynfit.sim.samples import ABP_2D

    viewer = make_napari_viewer()
    viewer.open_sample("napari-dynfit", "active_particles_2d")
    assert [layer._type_string for layer in viewer.layers] == ["image", "tracks"]
    image, tracks = viewer.layers
    assert image.data.shape == (400, 384, 384) and image.data.dtype == np.uint16
    np.testing.assert_allclose(image.scale, (0.1, 1.0, 1.0))  # frames with scale[0] = dt (napari_dynfit.geometry)
    np.testing.assert_allclose(tracks.scale, image.scale)
    assert tracks.features["particle_id"].nunique() == ABP_2D["n_particles"]  # tracks split at the wrap
    # the truth is marked (never a step's input) and hidden; the periodic box is marked for the fields step
    assert tracks.metadata["ground_truth"] and not tracks.visible and not image.metadata.get("ground_truth")
    assert image.metadata["periodic"] and image.metadata["dt"] == pytest.approx(0.1)


@pytest.mark.gui
def test_open_samples_in_viewer(make_napari_viewer):
    from napari_dynfit._napari._sample_data import _layers
    from napari_dynfit.sim.samples import active_particles_2d

    viewer = make_napari_viewer()
    for data, meta, kind in _layers(active_particles_2d(seed=0, fov=64.0, frames=5)):  # a piece of the 2D sample
        getattr(viewer, f"add_{kind}")(data, **meta)
    image, tracks = viewer.layers
    assert image.data.shape == (5, 64, 64) and tracks.metadata["ground_truth"] and image.metadata["periodic"]
    viewer.layers.clear()
    viewer.open_sample("napari-dynfit", "dividing_cells_3d")
    assert [layer._type_string for layer in viewer.layers] == ["image", "labels", "tracks"]
    image, labels, tracks = viewer.layers
    assert image.data.shape == labels.data.shape == (25, 32, 96, 96)
    assert labels.metadata["ground_truth"] and tracks.metadata["ground_truth"]
    assert tracks.data.shape[1] == 5  # track_id, t, z, y, x
    assert len(tracks.graph) > 0  # divisions: daughter -> [mother]
    for child, parents in tracks.graph.items():
        assert parents[0] in set(tracks.data[:, 0].astype(int))
    # the tracks' first point of each truth object sits inside its own mask
    tid, t, z, y, x = tracks.data[0]
    assert labels.data[int(t), int(round(z)), int(round(y)), int(round(x))] == int(tid)


def test_sample_layer_data_tuples():
    from napari_dynfit._napari._sample_data import dividing_cells_3d

    layers = dividing_cells_3d()
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "labels", "tracks"]
    data, meta, _ = layers[2]
    assert meta["scale"] == (1.0, 1.0, 0.5, 0.5) and meta["units"][0] == "pixel"  # the cells' time: frames
    assert all(data[data[:, 0] == child][:, 1].min() == data[data[:, 0] == mother[0]][:, 1].max() + 1
               for child, mother in meta["graph"].items())
