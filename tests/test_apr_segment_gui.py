"""The "APR filter & segment" widget: preview on the current slice, lazy Labels + Points outputs."""

import numpy as np
import pytest

from napari_dynfit.apr import to_apr
from napari_dynfit.sim.render import render_movie
from test_apr_segment import _spots


@pytest.mark.gui
def test_widget_preview_and_run(make_napari_viewer):
    from napari.layers import Layer

    from napari_dynfit._napari._apr_filter_widget import PREVIEW, PREVIEW_MASK, AprFilterWidget
    from napari_dynfit._napari._apr_reader import apr_layers_from_result

    truth_table = _spots((20, 64, 64), 6, 14, 4)
    movie, truth = render_movie(truth_table, (1, 20, 64, 64), psf_sigma=(1.5, 2.0, 2.0), snr=15.0, seed=4)
    image = to_apr(movie[0], rel_error=0.1)
    viewer = make_napari_viewer()
    for data, kwargs, ltype in apr_layers_from_result(image, "spots"):
        viewer.add_layer(Layer.create(data, kwargs, ltype))
    widget = AprFilterWidget(viewer)
    assert widget._layer.value is not None
    z = int(round(truth["z"].iloc[0]))
    viewer.dims.set_point(0, z)
    widget._preview.value = True
    widget.update_preview(sync=True)
    assert PREVIEW in viewer.layers and PREVIEW_MASK in viewer.layers
    assert viewer.layers[PREVIEW].data.shape == (64, 64)
    widget.run(sync=True)
    labels = viewer.layers["spots (APR) objects"]
    points = viewer.layers["spots (APR) objects centroids"]
    assert len(points.data) == len(truth)
    grid = widget._cache["grid"]
    np.testing.assert_array_equal(np.asarray(labels.data[z]), grid.plane(widget._cache["labels"], z))
    assert {"volume", "intensity_mean"} <= set(points.features.columns)
