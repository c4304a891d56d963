"""APR-native convolution (numba CPU and torch back ends) against pyapr.filter.convolve."""

import numpy as np
import pytest

from napari_dynfit.apr import to_apr
from napari_dynfit.apr.convert import pyapr_particles
from napari_dynfit.apr.convolve import convolve, correlate, downsample_stencil, level_stencils
from napari_dynfit.apr.convolve_gpu import convolve_torch
from napari_dynfit.errors import InputError
from test_apr_grid import blobs


def _convert(img):
    return to_apr(img, rel_error=0.1, auto_parameters=False, gradient_smoothing=2.0,
                  sigma_threshold=50.0, gradient_threshold=10.0)


@pytest.fixture(scope="module", params=[2, 3])
def case(request):
    img = blobs((96, 110), 8, 2) if request.param == 2 else blobs((30, 41, 52), 6, 3)
    image = _convert(img)
    grid = image.grid
    levels = np.unique(grid.levels)
    assert len(levels) >= 4, f"test APR needs >= 4 levels, has {levels}"
    return image, grid


def _run(backend, grid, values, stencil, **kw):
    if backend == "cpu":
        return convolve(grid, values, stencil, **kw)
    flags = dict(restrict=kw.get("restrict", True), normalize=kw.get("normalize", True))
    return convolve_torch(grid, values, level_stencils(stencil, grid, **flags),
                          reflect=kw.get("reflect", True), device="cpu")


def _rel_err(ours, ref):
    return np.max(np.abs(ours - ref)) / np.max(np.abs(ref))


def _pyapr_2d_unnormalised(grid, ref):
    """pyapr (LibAPR ``downsample_stencil``) counts a size-1 z axis as overlap ``2**d``, so in 2D its
    unnormalised restricted stencils are ``2**d`` times too large; we use the area weights. Undo it."""
    if grid.ndim == 3:
        return ref
    n = max(grid.level_max - grid.level_min, 1)
    d = np.minimum(n - 1, grid.level_max - grid.levels)
    return ref / 2.0 ** d


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_matches_pyapr(case, k, backend):
    pyapr = pytest.importorskip("pyapr")

    image, grid = case
    rng = np.random.default_rng(k)
    stencil = rng.uniform(0.05, 1.0, (k,) * grid.ndim).astype(np.float32)  # asymmetric: checks the flip
    values = np.asarray(image.parts)
    ref = np.asarray(pyapr.filter.convolve(image.apr, pyapr_particles(image.parts), stencil))
    ours = _run(backend, grid, values, stencil)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert _rel_err(ours, ref) < 1e-5


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_options_match_pyapr(case, backend):
    """Zero padding, unnormalised zero-sum stencil, unrestricted stencil, correlation."""
    pyapr = pytest.importorskip("pyapr")

    image, grid = case
    values = np.asarray(image.parts)
    rng = np.random.default_rng(0)
    stencil = rng.normal(size=(5,) * grid.ndim).astype(np.float32)
    stencil -= stencil.mean()
    ref = np.asarray(pyapr.filter.convolve(image.apr, pyapr_particles(image.parts), stencil, reflect_boundary=False,
                                           normalize_stencil=False))
    ref = _pyapr_2d_unnormalised(grid, ref)
    assert _rel_err(_run(backend, grid, values, stencil, reflect=False, normalize=False), ref) < 1e-5
    ref = np.asarray(pyapr.filter.convolve(image.apr, pyapr_particles(image.parts), stencil, restrict_stencil=False,
                                           normalize_stencil=False))
    assert _rel_err(_run(backend, grid, values, stencil, restrict=False, normalize=False), ref) < 1e-5
    if backend == "cpu":
        ref = np.asarray(pyapr.filter.correlate(image.apr, pyapr_particles(image.parts), stencil, normalize_stencil=False))
        ref = _pyapr_2d_unnormalised(grid, ref)
        assert _rel_err(correlate(grid, values, stencil, normalize=False), ref) < 1e-5


def test_constant_image_is_preserved(case):
    _, grid = case
    out = convolve(grid, np.full(grid.n_particles, 7.0), np.ones((5,) * grid.ndim))
    np.testing.assert_allclose(out, 7.0, rtol=1e-5)


def test_downsampled_stencil_keeps_mass_and_centre():
    s = np.zeros((1, 7, 7))
    s[0, 3, 3] = 1.0
    for d in (1, 2, 3):
        ds = downsample_stencil(s, d, normalize=False)
        assert ds.shape[1] % 2 == 1 and ds.shape[1] >= 3
        assert ds.sum() == pytest.approx(1.0)
        c = ds.shape[1] // 2
        assert ds[0, c, c] == ds.max()


def test_bad_stencils(case):
    _, grid = case
    v = np.zeros(grid.n_particles)
    with pytest.raises(InputError, match="odd"):
        convolve(grid, v, np.ones((4,) * grid.ndim))
    with pytest.raises(InputError, match="odd"):
        convolve(grid, v, np.ones((9,) * grid.ndim))
    with pytest.raises(InputError, match="normalize=False"):
        convolve(grid, v, np.zeros((3,) * grid.ndim))
    with pytest.raises(InputError, match="device"):
        convolve(grid, v, np.ones((3,) * grid.ndim), device="tpu")
    if grid.ndim == 2:
        with pytest.raises(InputError, match="2D"):
            convolve(grid, v, np.ones((3, 3, 3)))
