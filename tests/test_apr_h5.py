"""``.apr`` files in pure h5py: interchangeable with pyapr both ways; reading, lazy views and filters without pyapr."""

import sys

import numpy as np
import pytest

from napari_dynfit.apr import LazyAprArray, read_apr, to_apr, write_apr
from napari_dynfit.apr.filters import gaussian
from napari_dynfit.apr.reconstruct import reconstruct_box


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.poisson(20.0, size=shape).astype(np.float32)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    for _ in range(6):
        c = [rng.uniform(4, n - 4) for n in shape]
        r2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        img += 800.0 * np.exp(-r2 / (2 * 2.5 ** 2))
    return img.astype(np.uint16)


@pytest.fixture(params=[(70, 90), (20, 44, 52)], ids=["2d", "3d"])
def image(request):
    return to_apr(_image(request.param), spacing=(0.5,) * len(request.param))


def test_ours_opens_in_pyapr(image, tmp_path):
    pyapr = pytest.importorskip("pyapr")
    path = write_apr(image, tmp_path / "ours.apr")
    apr, parts = pyapr.io.read(str(path))
    assert apr.total_number_particles() == image.n_particles
    np.testing.assert_array_equal(np.asarray(parts), image.parts)
    assert apr.level_min() == image.grid.level_min and apr.level_max() == image.grid.level_max
    ref = np.asarray(pyapr.reconstruction.reconstruct_constant(apr, parts))
    np.testing.assert_array_equal(ref.reshape(image.shape), image.reconstruct())
    np.testing.assert_array_equal(np.asarray(pyapr.reconstruction.reconstruct_level(apr)).reshape(image.shape),
                                  image.reconstruct("level"))


def test_pyapr_file_opens_in_ours(image, tmp_path):
    pyapr = pytest.importorskip("pyapr")
    from napari_dynfit.apr.convert import pyapr_particles

    apr, parts = image.apr, pyapr_particles(image.parts)
    path = str(tmp_path / "theirs.apr")
    pyapr.io.write(path, apr, parts, write_tree=True, tree_parts=pyapr.tree.fill_tree_mean(apr, parts))
    ours = read_apr(path)
    np.testing.assert_array_equal(ours.parts, image.parts)
    np.testing.assert_array_equal(ours.grid.offsets, image.grid.offsets)
    np.testing.assert_array_equal(ours.grid.x, image.grid.x)
    ref = np.asarray(pyapr.reconstruction.reconstruct_constant(apr, parts)).reshape(image.shape)
    np.testing.assert_array_equal(ours.reconstruct(), ref)
    # coarse lazy levels read pyapr's own tree values: equal to pyapr's patch reconstruction
    for k in (1, 2):
        patch = pyapr.ReconPatch()
        patch.level_delta = -k
        want = np.asarray(pyapr.reconstruction.reconstruct_lazy(path, patch=patch))
        got = np.asarray(LazyAprArray(path, level_delta=-k))
        np.testing.assert_array_equal(got, want.reshape(got.shape))


def test_everything_without_pyapr(image, tmp_path, monkeypatch):
    """Write, read, reconstruct (whole, boxes, coarse levels), filter: no pyapr import anywhere."""
    full = image.reconstruct()
    monkeypatch.setitem(sys.modules, "pyapr", None)
    monkeypatch.setitem(sys.modules, "_pyaprwrapper", None)
    path = write_apr(image, tmp_path / "a.apr")
    back = read_apr(path)
    np.testing.assert_array_equal(back.parts, image.parts)
    np.testing.assert_array_equal(back.reconstruct(), full)
    lazy = LazyAprArray(path)
    np.testing.assert_array_equal(np.asarray(lazy), full)
    box = (slice(3, 17),) * image.ndim
    np.testing.assert_array_equal(np.asarray(lazy[box]), full[box])
    # a coarse level is the block mean of the reconstruction where cells are finer (tree means)
    coarse = np.asarray(LazyAprArray(path, level_delta=-1)).astype(float)
    assert coarse.shape == tuple(-(-n // 2) for n in image.shape)
    even = tuple(slice(0, 2 * (n // 2)) for n in image.shape)
    split = tuple(v for n in image.shape for v in (n // 2, 2))
    blocks = full[even].astype(float).reshape(split).mean(axis=tuple(range(1, 2 * image.ndim, 2)))
    inner = tuple(slice(0, n // 2) for n in image.shape)
    assert np.abs(coarse[inner] - blocks).mean() < 0.02 * full.max()
    smoothed = gaussian(back.grid, back.parts, 1.0)
    assert smoothed.shape == (image.n_particles,) and np.isfinite(smoothed).all()


def test_box_equals_slice_of_whole(image):
    whole = reconstruct_box(image.grid, image.parts, image.tree_parts, level_delta=-1)
    lo, hi = (0, 1, 2), (whole.shape[0], whole.shape[1] - 1, whole.shape[2] - 3)
    part = reconstruct_box(image.grid, image.parts, image.tree_parts, lo, hi, level_delta=-1)
    np.testing.assert_array_equal(part, whole[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
