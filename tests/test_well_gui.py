"""The Well reader in napari: an active_matter-layout file opens with the right layer types."""

import numpy as np
import pytest

from napari_dynfit.sim import write_active_matter_example


@pytest.mark.gui
def test_active_matter_file_opens_with_layer_types(make_napari_viewer, tmp_path):
    path = write_active_matter_example(tmp_path / "am.hdf5", size=256, n_steps=3, seed=2)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-dynfit")
    types = {layer.name: type(layer).__name__ for layer in layers}
    # image names say what the colour bar shows (the file stores no value units: arbitrary units)
    assert types == {"concentration (a.u.)": "Image", "velocity": "Vectors", "D director": "Vectors",
                     "E_yy (a.u.)": "Image", "E_yx (a.u.)": "Image", "E_xx (a.u.)": "Image"}
    conc = viewer.layers["concentration (a.u.)"]
    assert conc.data.shape == (3, 256, 256)
    np.testing.assert_allclose(conc.scale, [0.05, 10 / 256, 10 / 256])
    director = viewer.layers["D director"]
    assert director.vector_style == "line"  # headless
    # centred on grid points: start + projection / 2 is a grid point of the subsampled grid
    mid = director.data[:, 0, 1:] + director.data[:, 1, 1:] / 2
    np.testing.assert_allclose(mid, np.round(mid), atol=1e-6)
    vel = viewer.layers["velocity"]
    assert vel.data.shape[1:] == (2, 3) and len(vel.data) == 3 * 32 * 32
    assert np.all(vel.data[:, 1, 0] == 0)  # no projection along time


def test_reader_declines_other_hdf5(tmp_path):
    import h5py

    from napari_dynfit._napari._well_reader import get_reader

    other = tmp_path / "plain.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("a", data=np.zeros(2))
    assert get_reader(str(other)) is None
    assert get_reader(str(tmp_path / "x.tif")) is None
