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
    prev, mask = viewer.layers[PREVIEW], viewer.layers[PREVIEW_MASK]
    assert tuple(prev.scale) == tuple(mask.scale) == (1.0, 1.0)
    for data, kwargs, ltype in apr_layers_from_result(image, "coarse"):  # the same image on another pixel grid
        kwargs = {**kwargs, "name": "coarse", "scale": (1.0, 2.0, 3.0), "translate": (0.0, 5.0, -4.0)}
        coarse = viewer.add_layer(Layer.create(data, kwargs, ltype))
    widget._layer.value = coarse
    widget.update_preview(sync=True)
    assert viewer.layers[PREVIEW] is prev and viewer.layers[PREVIEW_MASK] is mask  # in place, on its grid
    assert tuple(prev.scale) == tuple(mask.scale) == (2.0, 3.0)
    assert tuple(prev.translate) == tuple(mask.translate) == (5.0, -4.0)
    widget._layer.value = viewer.layers["spots (APR)"]
    widget.run(sync=True)
    labels = viewer.layers["spots (APR) objects"]
    points = viewer.layers["spots (APR) objects centroids"]
    assert len(points.data) == len(truth)
    grid = widget._cache["grid"]
    np.testing.assert_array_equal(np.asarray(labels.data[z]), grid.plane(widget._cache["labels"], z))
    assert {"volume", "intensity_mean"} <= set(points.features.columns)


@pytest.mark.gui
def test_widget_finds_dark_objects_as_the_cli(make_napari_viewer):
    """Dark spots with bright halos on a tilted field (phase-contrast-like): the widget's default polarity (auto,
    as `dynfit segment IN.apr`) flattens and inverts them on the particles and finds them; taken as bright, the
    threshold falls on the background instead (a few regions over the bright side of the field)."""
    from napari.layers import Layer
    from scipy.spatial.distance import cdist

    from napari_dynfit._napari._apr_filter_widget import AprFilterWidget
    from napari_dynfit._napari._apr_reader import apr_layers_from_result
    from test_apr_contrast import _phase_like

    img, pts = _phase_like(1)
    viewer = make_napari_viewer()
    for data, kwargs, ltype in apr_layers_from_result(to_apr(img), "phase"):
        viewer.add_layer(Layer.create(data, kwargs, ltype))
    widget = AprFilterWidget(viewer)

    def recall():
        found = viewer.layers["phase (APR) objects centroids"].data[:, -2:]
        d = cdist(pts, found) if len(found) else np.full((len(pts), 1), np.inf)
        return float((d.min(axis=1) <= 2.0).mean()), len(found)

    assert widget._polarity.value == "auto"
    widget.run(sync=True)
    assert widget._cache["polarity"] == "dark" and "dark objects" in widget._stats.value
    r, n = recall()
    assert r >= 0.9 and n <= 1.2 * len(pts)
    assert (np.asarray(viewer.layers["phase (APR) objects"].data) > 0).mean() < 0.1  # the spots, not the field
    widget._polarity.value = "bright"
    widget.run(sync=True)
    assert widget._cache["polarity"] == "bright" and recall()[1] < len(pts) / 2
    assert (np.asarray(viewer.layers["phase (APR) objects"].data) > 0).mean() > 0.3
