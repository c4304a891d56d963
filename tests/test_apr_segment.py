"""Segmentation on the APR against simulated ground truth; filters on particles."""

import sys

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from napari_dynfit.apr import to_apr
from napari_dynfit.apr.filters import gaussian, gaussian_stencil, gradient_magnitude, log
from napari_dynfit.apr.segment import connected_components, filter_sizes, object_table, segment, threshold
from napari_dynfit.errors import InputError
from napari_dynfit.sim.render import render_movie


def _spots(shape, n, min_dist, seed):
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:
        p = rng.uniform(6, np.array(shape) - 6)
        if all(np.linalg.norm(p - q) >= min_dist for q in pts):
            pts.append(p)
    cols = ["z", "y", "x"][3 - len(shape):]
    return pd.DataFrame({"frame": 0, **{c: np.array(pts)[:, i] for i, c in enumerate(cols)}})


def _render(shape, n, seed, psf):
    table = _spots(shape, n, 14, seed)
    movie, truth = render_movie(table, (1, *shape), psf_sigma=psf, snr=15.0, seed=seed)
    return movie[0], truth


def _match(table, truth, cols, max_dist=3.0):
    d = cdist(truth[cols].to_numpy(), table[cols].to_numpy())
    r, c = linear_sum_assignment(d)
    ok = d[r, c] <= max_dist
    return ok.sum() / len(truth), d[r, c][ok]


@pytest.mark.parametrize("shape, n, psf", [((200, 220), 40, 2.0), ((28, 72, 80), 14, (1.5, 2.0, 2.0))])
def test_segmentation_recovers_simulated_spots(shape, n, psf):
    img, truth = _render(shape, n, 7, psf)
    image = to_apr(img, rel_error=0.1)
    grid = image.grid
    res = segment(grid, np.asarray(image.parts), method="otsu", smooth_sigma=1.0, min_size=4)
    cols = ["z", "y", "x"][3 - len(shape):]
    recall, err = _match(res.table, truth, cols)
    assert recall >= 0.95, recall
    assert np.median(err) <= 0.5, np.median(err)
    assert len(res.table) <= 1.1 * n  # few spurious objects
    assert set(np.unique(res.labels)) == set(range(len(res.table) + 1))


def test_components_match_pixel_labelling():
    """Components of a particle mask equal scipy.ndimage.label of the reconstructed mask."""
    from scipy import ndimage

    img, _ = _render((120, 130), 20, 3, 2.0)
    image = to_apr(img, rel_error=0.1)
    grid = image.grid
    values = np.asarray(image.parts).astype(float)
    mask = values > threshold(grid, values, "otsu")
    labels = connected_components(grid, mask)
    # pixel image of the particle mask: paint every particle cell
    pix = np.zeros(grid.shape, dtype=np.int32)
    c = grid.coords
    size = 2 ** (grid.level_max - c[:, 0])
    for (lv, z, y, x), s, lab in zip(c, size, labels):
        pix[z * s:(z + 1) * s, y * s:(y + 1) * s, x * s:(x + 1) * s] = lab
    ref, n_ref = ndimage.label(pix[0] > 0)
    assert labels.max() == n_ref
    # same partition: each APR label maps to exactly one pixel label
    pairs = set(zip(pix[0][ref > 0].ravel(), ref[ref > 0].ravel()))
    assert len(pairs) == n_ref


def test_size_filter_and_table():
    img, _ = _render((100, 100), 12, 5, 2.0)
    image = to_apr(img, rel_error=0.1)
    grid = image.grid
    values = np.asarray(image.parts)
    labels = connected_components(grid, values > threshold(grid, values))
    table = object_table(grid, labels, values, frame=3)
    assert {"label", "frame", "y", "x", "volume", "bbox_y0", "bbox_x1", "intensity_mean"} <= set(table.columns)
    assert (table["frame"] == 3).all()
    assert np.all((table["y"] >= table["bbox_y0"]) & (table["y"] < table["bbox_y1"]))
    big = filter_sizes(grid, labels, min_size=table["volume"].median())
    assert big.max() == (table["volume"] >= table["volume"].median()).sum()


def test_filters_on_particles():
    img, truth = _render((96, 96), 6, 11, 2.0)
    image = to_apr(img, rel_error=0.1)
    grid = image.grid
    values = np.asarray(image.parts).astype(np.float32)
    smooth = gaussian(grid, values, 1.5)
    assert smooth.shape == values.shape and smooth.std() < values.std()
    pyapr = pytest.importorskip("pyapr")

    for ndim in (2, 3):
        ref = pyapr.filter.get_gaussian_stencil(5, 1.5, ndims=ndim, normalize=True)
        np.testing.assert_allclose(gaussian_stencil(1.5, 5, ndim), ref.reshape((5,) * ndim), rtol=1e-6)
    blob = log(grid, values, 2.0)
    centers = grid.pixel_centers()[:, 1:]
    # the strongest LoG response lies on a true spot
    top = centers[np.argmax(blob)]
    assert cdist(top[None], truth[["y", "x"]].to_numpy()).min() <= 2.0
    grad = gradient_magnitude(grid, values)
    assert grad.min() >= 0
    # the gradient of a linear ramp is its slope (per pixel), on every level
    ramp = to_apr(np.tile(np.linspace(100, 1100, 200), (64, 1)).astype(np.uint16), rel_error=0.1)
    rgrid = ramp.grid
    x = rgrid.pixel_centers()[:, 2]
    inner = (x > 10) & (x < 189)
    g = gradient_magnitude(rgrid, 100 + 1000 * x / 199.0)
    np.testing.assert_allclose(g[inner], 1000 / 199.0, rtol=0.02)


def test_bad_segmentation_input(monkeypatch):
    img, _ = _render((64, 64), 4, 1, 2.0)
    image = to_apr(img, rel_error=0.1)
    grid = image.grid
    with pytest.raises(InputError, match="equal"):
        threshold(grid, np.ones(grid.n_particles))
    with monkeypatch.context() as m:  # the graph cut is pyapr's: without it, one line naming the extra
        m.setitem(sys.modules, "pyapr", None)
        with pytest.raises(InputError, match=r"napari-dynfit\[pyapr\]"):
            segment(grid, np.asarray(image.parts), method="graphcut")
    with pytest.raises(InputError, match="threshold method"):
        threshold(grid, np.asarray(image.parts), "mean")


def test_graphcut_segmentation(capfd):
    img, truth = _render((120, 130), 12, 3, 2.0)
    image = to_apr(img, rel_error=0.1)
    grid = image.grid
    values = np.asarray(image.parts)
    thr = threshold(grid, gaussian(grid, values, 1.0))
    pytest.importorskip("pyapr")
    res = segment(grid, values, method="graphcut", min_size=4,  # pyapr's APR built from the grid
                  graphcut_kwargs={"intensity_threshold": thr})
    recall, err = _match(res.table, truth, ["y", "x"])
    assert recall >= 0.9 and np.median(err) <= 0.5
    assert res.threshold is None
    assert "minimum cut" not in capfd.readouterr().out  # pyapr's messages are silenced
