"""The pixel reader gives every layer the file's geometry (issue 17): scale, translate, units and axis labels from
ImageJ / OME-TIFF metadata and OME-Zarr ``coordinateTransformations``, through the one reader ``io.open_image``;
an OME-Zarr pyramid opens as a multiscale layer. The files are written here."""

import numpy as np
import pytest

from napari_dynfit.geometry import axes_geometry
from napari_dynfit.io import open_image

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")


def _movie(shape=(3, 16, 20)):
    return (np.arange(np.prod(shape)) % 251).reshape(shape).astype(np.uint16)


def _imagej(path, movie):
    # 0.2 µm pixels (resolution 5 px/µm), 0.5 s frames, calibration origin at pixel (y 50, x 25)
    tifffile.imwrite(path, movie, imagej=True, resolution=(5.0, 5.0),
                     metadata={"axes": "TYX", "unit": "micron", "finterval": 0.5, "xorigin": 25.0, "yorigin": 50.0})
    return path


def _ome_tiff(path, vol):
    tifffile.imwrite(path, vol, ome=True, metadata={
        "axes": "TZYX", "PhysicalSizeX": 0.2, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.2,
        "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 1.5, "PhysicalSizeZUnit": "µm", "TimeIncrement": 2.0,
        "TimeIncrementUnit": "min"})
    return path


def _ome_zarr(path, movie, levels=2):
    """OME-NGFF 0.4: per-level scale and translation (the half-pixel shift of coarser levels), a multiscale-wide
    scale and translation on top, axes with units."""
    grp = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for lv in range(levels):
        f = 2 ** lv
        grp.create_array(str(lv), data=movie[:, ::f, ::f], chunks=(1, 8, 8))
        datasets.append({"path": str(lv), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 0.5 * f, 0.5 * f]},
            {"type": "translation", "translation": [0.0, 0.25 * (f - 1), 0.25 * (f - 1)]}]})
    grp.attrs["multiscales"] = [{
        "version": "0.4", "name": "img", "datasets": datasets,
        "axes": [{"name": "t", "type": "time", "unit": "second"}, {"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "coordinateTransformations": [{"type": "scale", "scale": [0.1, 1.0, 1.0]},
                                      {"type": "translation", "translation": [3.0, 10.0, 5.0]}]}]
    return path


def test_open_image_reads_units_and_origin(tmp_path):
    movie = _movie()
    img = open_image(_imagej(tmp_path / "ij.tif", movie))
    assert img.axes == "tyx" and img.scale == pytest.approx((0.5, 0.2, 0.2))
    assert img.origin == pytest.approx((0.0, -10.0, -5.0))  # -origin (px) * pixel size
    geo = img.layer_geometry()
    assert geo["units"] == ("second", "micrometer", "micrometer") and geo["axis_labels"] == ("t", "y", "x")
    assert geo["dt"] == 0.5 and geo["translate"] == pytest.approx((0.0, -10.0, -5.0))

    ome = open_image(_ome_tiff(tmp_path / "o.ome.tif", np.zeros((2, 3, 8, 10), np.uint16)))
    assert ome.axes == "tzyx" and ome.scale == pytest.approx((2.0, 1.5, 0.2, 0.2))
    assert ome.layer_geometry()["units"] == ("minute", "micrometer", "micrometer", "micrometer")

    z = open_image(_ome_zarr(tmp_path / "m.zarr", movie))
    assert z.axes == "tyx" and z.scale == pytest.approx((0.1, 0.5, 0.5)) and z.origin == pytest.approx((3.0, 10.0, 5.0))
    assert [lv.shape for lv in z.levels] == [(3, 16, 20), (3, 8, 10)]
    np.testing.assert_array_equal(np.asarray(z.levels[1]), movie[:, ::2, ::2])
    assert z.layer_geometry()["units"] == ("second", "micrometer", "micrometer")

    # a file that says nothing: pixels and frames (napari's "pixel"), no frame interval
    tifffile.imwrite(tmp_path / "plain.tif", movie[0])
    plain = open_image(tmp_path / "plain.tif").layer_geometry()
    assert plain["units"] == ("pixel", "pixel") and "dt" not in plain
    assert axes_geometry("tcyx", (1.0, 1.0, 1.0, 1.0), (None,) * 4)["axis_labels"] == ("t", "y", "x")


@pytest.mark.gui
def test_pixel_reader_layers_carry_the_files_geometry(make_napari_viewer, tmp_path):
    from napari_dynfit._napari._apr_reader import get_pixels_reader

    movie = _movie()
    viewer = make_napari_viewer()
    paths = {"ij": _imagej(tmp_path / "ij.tif", movie), "zarr": _ome_zarr(tmp_path / "m.zarr", movie)}
    layers = {}
    for key, path in paths.items():
        (data, kwargs, kind), = get_pixels_reader(str(path))(str(path))
        layers[key] = viewer._add_layer_from_data(data, kwargs, kind)[0]
    ij, z = layers["ij"], layers["zarr"]
    assert [str(u) for u in ij.units] == ["second", "micrometer", "micrometer"]
    assert tuple(ij.axis_labels) == ("t", "y", "x") and ij.metadata["dt"] == 0.5
    np.testing.assert_allclose(ij.data_to_world((2, 50, 25)), (1.0, 0.0, 0.0))  # the calibration origin
    assert z.multiscale and len(z.data) == 2
    np.testing.assert_allclose(z.scale, (0.1, 0.5, 0.5))
    np.testing.assert_allclose(z.data_to_world((1, 4, 6)), (3.1, 12.0, 8.0))
    assert [str(u) for u in z.units] == ["second", "micrometer", "micrometer"]
    assert viewer.dims.axis_labels[0] == "t"
