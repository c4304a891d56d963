"""AprGrid: per-level rows and per-particle (level, z, y, x) against pyapr's LinearIterator."""

import numpy as np
import pytest

from napari_dynfit.apr import to_apr
from napari_dynfit.apr.grid import AprGrid, export_grid, load_grid, read_particle_values
from napari_dynfit.errors import InputError


def blobs(shape, n, seed, amp=1000.0, sigma=2.0):
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    img = np.full(shape, 100.0)
    for c in rng.uniform(3, np.array(shape) - 3, (n, len(shape))):
        img += amp * np.exp(-sum((g - ci) ** 2 for g, ci in zip(grids, c)) / (2 * sigma ** 2))
    return (img + rng.normal(0, 3, shape)).clip(0).astype(np.uint16)


@pytest.fixture(scope="module")
def image3d():
    return to_apr(blobs((24, 37, 45), 5, 1), rel_error=0.1, auto_parameters=False, gradient_smoothing=2.0,
                  sigma_threshold=50.0, gradient_threshold=10.0)


def _iterator_coords(apr):
    it = apr.iterator()
    rows = []
    for level in range(it.level_min(), it.level_max() + 1):
        for z in range(it.z_num(level)):
            for x in range(it.x_num(level)):  # pyapr x = our y
                b = it.begin(level, z, x)
                e = it.end()
                rows += [(level, z, x, it.y(i)) for i in range(b, e)]
    return np.array(rows)


def test_grid_matches_linear_iterator(image3d, tmp_path):
    pytest.importorskip("pyapr")
    from napari_dynfit.apr import write_apr

    grid = image3d.grid
    np.testing.assert_array_equal(grid.coords, _iterator_coords(image3d.apr))
    assert grid.n_particles == image3d.apr.total_number_particles()
    assert grid.n_tree == image3d.apr.total_number_tree_particles()
    assert grid.shape == tuple(image3d.apr.shape())
    for level in range(grid.level_min, grid.level_max + 1):
        assert tuple(grid.level_shapes[level]) == (image3d.apr.z_num(level), image3d.apr.x_num(level),
                                                   image3d.apr.y_num(level))
    # file path gives the same structure, and values in storage order
    path = write_apr(image3d, tmp_path / "a.apr")
    from_file = AprGrid.from_file(path)
    np.testing.assert_array_equal(from_file.offsets, grid.offsets)
    np.testing.assert_array_equal(from_file.x, grid.x)
    np.testing.assert_array_equal(read_particle_values(path), np.asarray(image3d.parts))


def test_tree_mean_equals_pyapr(image3d):
    pyapr = pytest.importorskip("pyapr")

    grid = image3d.grid
    vals = np.asarray(image3d.parts).astype(np.float32)
    ref = np.asarray(pyapr.tree.fill_tree_mean(image3d.apr, pyapr.FloatParticles(vals)))
    np.testing.assert_allclose(grid.tree_mean(vals), ref, rtol=1e-5, atol=1e-3)


def test_pixel_centers_cover_the_image(image3d):
    grid = image3d.grid
    # the particle cells tile the image exactly once
    assert grid.cell_sizes().sum() == np.prod(grid.shape)
    c = grid.pixel_centers()
    assert c.min() >= 0 and np.all(c.max(0) <= np.array(grid.shape) - 1)
    # a pixel-level particle sits on its pixel
    fine = grid.levels == grid.level_max
    np.testing.assert_array_equal(c[fine], grid.coords[fine, 1:])


def test_npz_round_trip_without_pyapr(image3d, tmp_path):
    from napari_dynfit.apr import write_apr

    path = write_apr(image3d, tmp_path / "b.apr")
    out = tmp_path / "grid.npz"
    grid = export_grid(path, out)
    back, values = load_grid(out)
    np.testing.assert_array_equal(back.coords, grid.coords)
    np.testing.assert_array_equal(back.tree_coords, grid.tree_coords)
    np.testing.assert_array_equal(values, np.asarray(image3d.parts))
    assert AprGrid.from_npz(out).computational_ratio == pytest.approx(grid.computational_ratio)


def test_bad_inputs(image3d, tmp_path):
    grid = image3d.grid
    with pytest.raises(InputError, match="one value per particle"):
        grid.tree_mean(np.zeros(3))
    with pytest.raises(InputError, match="NaN"):
        grid.check_values(np.full(grid.n_particles, np.nan))
    with pytest.raises(InputError, match="does not exist"):
        AprGrid.from_file(tmp_path / "missing.apr")
    bad = tmp_path / "bad.apr"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(InputError):
        AprGrid.from_file(bad)
    with pytest.raises(InputError, match="entries"):
        AprGrid(grid.shape, grid.level_min, grid.level_max, grid.offsets[:-1], grid.x, grid.tree_offsets, grid.tree_x)


def test_plane_equals_pyapr_reconstruction(image3d):
    grid = image3d.grid
    rec = image3d.reconstruct()
    values = np.asarray(image3d.parts)
    for z in (0, 7, grid.shape[0] - 1):
        np.testing.assert_array_equal(grid.plane(values, z), rec[z])
