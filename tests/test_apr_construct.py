"""Our APR construction (numba): against ground truth without pyapr, and against pyapr 1.0.7 as the oracle."""

import sys

import numpy as np
import pytest

from napari_dynfit.apr import to_apr
from napari_dynfit.apr.construct import apr_levels, local_intensity_scale_image, threshold_li
from napari_dynfit.errors import InputError
from napari_dynfit.sim.apr_images import cells_image, spots_image

IMAGES = {"spots2d": lambda: spots_image((200, 240), 25, 1), "cells2d": lambda: cells_image((192, 224), 2),
          "spots3d": lambda: spots_image((32, 72, 80), 20, 3), "cells3d": lambda: cells_image((24, 64, 72), 4)}


@pytest.fixture(params=list(IMAGES), scope="module")
def case(request):
    img = IMAGES[request.param]()
    return request.param, img, to_apr(img, backend="numba")


def test_reconstruction_condition_without_pyapr(case, monkeypatch):
    """|I - I_hat| <= E * sigma (the APR's reconstruction condition, sigma = the construction's local intensity
    scale) on nearly every pixel, at a fraction of the pixels; no pyapr involved."""
    name, img, im = case
    monkeypatch.setitem(sys.modules, "pyapr", None)
    rec = im.reconstruct().astype(float)
    assert rec.shape == img.shape
    sigma = local_intensity_scale_image(img if img.ndim == 3 else img[None])
    sigma = sigma if img.ndim == 3 else sigma[0]
    met = np.abs(rec - img) <= 0.1 * sigma
    assert met.mean() >= 0.95, (name, met.mean())
    assert im.computational_ratio > 1.5, (name, im.computational_ratio)


def test_levels_and_structure(case):
    _, img, im = case
    g = im.grid
    assert (g.level_min, g.level_max) == apr_levels(img.shape)
    # every pixel is covered by exactly one particle cell: the level image has no holes
    levels = im.reconstruct("level")
    assert levels.min() >= g.level_min and levels.max() <= g.level_max
    assert np.isclose(g.cell_sizes().sum(), img.size)


def test_equals_pyapr(case):
    """Same particles (levels, positions) and values as pyapr 1.0.7 with the same parameters."""
    pytest.importorskip("pyapr")
    name, img, im = case
    ref = to_apr(img, backend="pyapr")
    assert abs(im.n_particles / ref.n_particles - 1) <= 0.015, name
    np.testing.assert_array_equal(im.grid.offsets, ref.grid.offsets)
    np.testing.assert_array_equal(im.grid.x, ref.grid.x)
    np.testing.assert_array_equal(im.parts, ref.parts)
    np.testing.assert_array_equal(im.grid.tree_offsets, ref.grid.tree_offsets)
    assert im.params["grad_th"] == pytest.approx(ref.params["grad_th"], rel=1e-3)
    assert im.params["sigma_th"] == pytest.approx(ref.params["sigma_th"], rel=1e-3)


@pytest.mark.parametrize("manual", [False, True])
def test_float_and_manual_parameters_equal_pyapr(manual):
    pytest.importorskip("pyapr")
    img = spots_image((90, 110), 12, 7).astype(np.float32) / 7.0
    kw = dict(rel_error=0.05, gradient_smoothing=1.0, spacing=(0.5, 0.5))
    if manual:
        kw.update(auto_parameters=False, gradient_threshold=2.0, sigma_threshold=10.0, intensity_threshold=5.0)
    ours, ref = to_apr(img, backend="numba", **kw), to_apr(img, backend="pyapr", **kw)
    np.testing.assert_array_equal(ours.grid.offsets, ref.grid.offsets)
    np.testing.assert_array_equal(ours.grid.x, ref.grid.x)
    np.testing.assert_allclose(ours.parts, ref.parts, rtol=1e-6)


def test_small_images_and_errors(monkeypatch):
    tiny = to_apr(np.arange(12, dtype=np.uint16).reshape(3, 4) + 1)
    assert tiny.n_particles == 12  # LibAPR: images of at most 4 px per side are kept whole
    np.testing.assert_array_equal(tiny.reconstruct(), np.arange(12).reshape(3, 4) + 1)
    with pytest.raises(InputError, match="back end"):
        to_apr(np.ones((8, 8)), backend="cuda")
    monkeypatch.setitem(sys.modules, "pyapr", None)
    with pytest.raises(InputError, match=r"napari-dynfit\[pyapr\]"):
        to_apr(np.ones((8, 8)), backend="pyapr")


def test_threshold_li_matches_skimage():
    from skimage.filters import threshold_li as sk_li

    v = np.random.default_rng(0).gamma(2.0, 10.0, 5000)
    assert threshold_li(v) == pytest.approx(sk_li(v), rel=1e-2)


def test_convert_cli_backends(tmp_path):
    import tifffile

    from napari_dynfit.apr import read_apr
    from napari_dynfit.cli import main

    img = spots_image((64, 80), 6, 5)
    tifffile.imwrite(tmp_path / "img.tif", img)
    assert main(["-q", "convert", str(tmp_path / "img.tif"), "-o", str(tmp_path / "ours.apr")]) == 0
    ours = read_apr(tmp_path / "ours.apr")
    np.testing.assert_array_equal(ours.parts, to_apr(img).parts)
    if "pyapr" not in sys.modules:
        pytest.importorskip("pyapr")
    assert main(["-q", "convert", str(tmp_path / "img.tif"), "-o", str(tmp_path / "theirs.apr"),
                 "--backend", "pyapr"]) == 0
    theirs = read_apr(tmp_path / "theirs.apr")
    np.testing.assert_array_equal(ours.grid.offsets, theirs.grid.offsets)
    np.testing.assert_array_equal(ours.parts, theirs.parts)
