"""napari side of the APR: lazy reader, writer round trip, "Convert to APR" widget preview."""

import numpy as np
import pytest

from napari_dynfit.apr import LazyAprArray, LazyAprMovie, read_apr, read_apr_movie, to_apr, write_apr, write_apr_movie
from napari_dynfit.errors import InputError
from test_apr_io import blobs  # noqa: E402  (tests/ is on sys.path under pytest)

pytestmark = pytest.mark.gui


def _shown(layer) -> np.ndarray:
    """The 2D array napari currently displays for ``layer`` (at its current data level)."""
    return np.asarray(layer._slice.image.raw)


def test_reader_opens_lazy_multiscale_and_browses(make_napari_viewer, tmp_path, rng, qtbot):
    img = blobs((20, 300, 280), rng, n=25)
    path = write_apr(to_apr(img, spacing=(2.0, 0.5, 0.5)), tmp_path / "vol.apr")
    ref = read_apr(path).reconstruct()
    viewer = make_napari_viewer(show=True)  # shown: the canvas draws and picks the level
    layers = viewer.open(str(path), plugin="napari-dynfit")
    layer = layers[0]
    assert layer.multiscale and isinstance(layer.data[0], LazyAprArray)
    assert [lv.shape for lv in layer.data][:2] == [(20, 300, 280), (10, 150, 140)]
    assert tuple(layer.scale) == (2.0, 0.5, 0.5)
    meta = layer.metadata["apr"]
    assert meta["particles"] == read_apr(path).n_particles
    assert meta["computational_ratio"] == pytest.approx(img.size / meta["particles"], rel=1e-3)
    assert meta["memory_saved"].endswith("%")
    # browse: at every z the viewer shows the lazy reconstruction of the tile on screen
    seen = set()
    viewer.camera.zoom /= 16  # zoomed out: a coarse level
    for z in (0, 7, 19):
        viewer.dims.set_point(0, z * 2.0)
        qtbot.wait(50)
        lvl = layer.data_level
        (_, y0, x0), (_, y1, x1) = layer.corner_pixels
        zl = min(z // 2 ** lvl, layer.data[lvl].shape[0] - 1)
        np.testing.assert_array_equal(_shown(layer), layer.data[lvl][zl, y0:y1 + 1, x0:x1 + 1])
        if lvl == 0:
            np.testing.assert_array_equal(_shown(layer), ref[z, y0:y1 + 1, x0:x1 + 1])
        seen.add(lvl)
        viewer.camera.zoom *= 8  # zoom in: finer level, smaller tile
    assert 0 in seen and len(seen) > 1, seen
    # the full-resolution level equals pyapr's reconstruction
    np.testing.assert_array_equal(layer.data[0][7, 100:180, 40:90], ref[7, 100:180, 40:90])
    # display modes: the level map, lazily
    from napari_dynfit._napari._apr_reader import set_apr_mode

    set_apr_mode(layer, "level")
    qtbot.wait(50)
    lvl = layer.data_level
    (_, y0, x0), (_, y1, x1) = layer.corner_pixels
    zl = min(19 // 2 ** lvl, layer.data[lvl].shape[0] - 1)
    assert layer.data[0].mode == "level" and _shown(layer).max() <= read_apr(path).grid.level_max
    np.testing.assert_array_equal(_shown(layer), layer.data[lvl][zl, y0:y1 + 1, x0:x1 + 1])
    # 3D view uses the coarsest level
    viewer.dims.ndisplay = 3
    assert layer.data_level == len(layer.data) - 1


def test_reader_opens_movie_folder(make_napari_viewer, tmp_path, rng):
    movie = np.stack([blobs((64, 72), rng, n=6) for _ in range(4)])
    mv = to_apr(movie, movie=True, frame_interval=0.5)
    path = write_apr_movie(mv, tmp_path / "mov.aprmovie")
    viewer = make_napari_viewer()
    layer = viewer.open(str(path), plugin="napari-dynfit")[0]
    assert isinstance(layer.data[0], LazyAprMovie) and layer.data[0].shape == (4, 64, 72)
    assert layer.scale[0] == 0.5 and layer.metadata["dt"] == 0.5
    assert tuple(layer.axis_labels) == ("t", "y", "x") and viewer.dims.axis_labels[0] == "t"  # the convention
    viewer.dims.set_point(0, 3 * 0.5)
    np.testing.assert_array_equal(_shown(layer), mv.frames[3][0].reconstruct())


def test_writer_round_trip_image_and_labels(make_napari_viewer, tmp_path, rng):
    from skimage.draw import disk

    viewer = make_napari_viewer()
    img = blobs((80, 90), rng)
    viewer.add_image(img, name="img", scale=(0.3, 0.3))
    out = viewer.layers["img"].save(str(tmp_path / "img.apr"), plugin="napari-dynfit")
    back = read_apr(out[0] if isinstance(out, list) else out)
    assert back.spacing == (0.3, 0.3)
    np.testing.assert_array_equal(back.reconstruct(), to_apr(img, spacing=(0.3, 0.3)).reconstruct())

    lab = np.zeros((70, 90), np.uint8)
    for i in range(1, 8):
        rr, cc = disk((rng.uniform(10, 60), rng.uniform(10, 80)), rng.uniform(3, 9), shape=lab.shape)
        lab[rr, cc] = i
    viewer.add_labels(lab, name="lab")
    viewer.layers["lab"].save(str(tmp_path / "lab.apr"), plugin="napari-dynfit")
    np.testing.assert_array_equal(read_apr(tmp_path / "lab.apr").reconstruct(), lab)

    # an APR layer opened from a file is written from its particles (same APR back)
    layer = viewer.open(str(tmp_path / "img.apr"), plugin="napari-dynfit")[0]
    layer.save(str(tmp_path / "again.apr"), plugin="napari-dynfit")
    np.testing.assert_array_equal(read_apr(tmp_path / "again.apr").particles, back.particles)

    # an APR movie layer converted in the session is written as a movie folder
    movie = np.stack([blobs((40, 40), rng, n=5) for _ in range(3)])
    from napari.layers import Layer

    from napari_dynfit._napari._apr_reader import apr_layers_from_result

    mv = to_apr(movie, movie=True, frame_interval=2.0)
    data, kwargs, ltype = apr_layers_from_result(mv, "m")[0]
    viewer.add_layer(Layer.create(data, kwargs, ltype))
    viewer.layers["m (APR)"].save(str(tmp_path / "m.aprmovie"), plugin="napari-dynfit")  # written exactly as named
    back_mv = read_apr_movie(tmp_path / "m.aprmovie")
    assert back_mv.frame_interval == 2.0
    np.testing.assert_array_equal(back_mv.frames[2][0].particles, mv.frames[2][0].particles)


def test_convert_widget_preview_and_convert(make_napari_viewer, tmp_path, rng, qtbot):
    from napari_dynfit._napari._apr_convert_widget import PREVIEW, PREVIEW_LEVELS, AprConvertWidget

    viewer = make_napari_viewer()
    vol = blobs((30, 96, 100), rng, n=15)
    viewer.add_image(vol, name="vol")
    w = AprConvertWidget(viewer)
    viewer.window.add_dock_widget(w)
    assert w._layer.value is viewer.layers["vol"] and not w._movie.value
    viewer.dims.set_current_step(0, 12)
    w._rel_error.value = 0.2
    w.update_preview(sync=True)
    prev, lev = viewer.layers[PREVIEW], viewer.layers[PREVIEW_LEVELS]
    # the preview is the APR of a 16-plane slab around z=12, shown at z=12
    slab = to_apr(vol[4:20], rel_error=0.2)
    np.testing.assert_array_equal(prev.data, slab.reconstruct()[8])
    np.testing.assert_array_equal(lev.data, slab.reconstruct("level")[8])
    assert f"{slab.n_particles} particles" in w._stats.value
    # a larger error bound -> fewer particles in the live preview (worker thread)
    w._preview.value = True
    w._rel_error.value = 1.0
    qtbot.waitUntil(lambda: f"{to_apr(vol[4:20], rel_error=1.0).n_particles} particles" in w._stats.value,
                    timeout=20000)
    # full conversion: a lazy APR layer plus a file
    w._output.value = tmp_path / "vol.apr"
    w.convert(sync=True)
    layer = viewer.layers["vol (APR)"]
    assert layer.multiscale and layer.metadata["apr"]["particles"] == read_apr(tmp_path / "vol.apr").n_particles
    np.testing.assert_array_equal(layer.data[0][12], to_apr(vol, rel_error=1.0).reconstruct()[12])
    viewer.layers.selection.active = viewer.layers["vol"]
    viewer.layers.selection.active = layer  # the widget shows the selected APR layer's stats
    assert w._stats.value.startswith(f"vol (APR): {layer.metadata['apr']['particles']} particles")
    w._mode.value = "smooth"
    assert layer.data[0].mode == "smooth" and layer.metadata["apr"]["mode"] == "smooth"


def test_convert_preview_updates_in_place_on_the_previewed_layers_grid(make_napari_viewer, rng):
    """Previewing another layer replaces the preview's data in the same layers (the user's opacity kept) and moves
    them onto that layer's pixel grid (scale, translate of its last two axes)."""
    from napari_dynfit._napari._apr_convert_widget import PREVIEW, PREVIEW_LEVELS, AprConvertWidget

    viewer = make_napari_viewer()
    img = blobs((40, 44), rng, n=4)
    a = viewer.add_image(img, name="a", scale=(0.5, 0.5))
    b = viewer.add_image(img[::2, ::2].copy(), name="b", scale=(2.0, 3.0), translate=(10.0, -4.0))
    w = AprConvertWidget(viewer)
    w._layer.value = a
    w.update_preview(sync=True)
    prev, lev = viewer.layers[PREVIEW], viewer.layers[PREVIEW_LEVELS]
    assert tuple(prev.scale) == tuple(lev.scale) == (0.5, 0.5) and prev.data.shape == (40, 44)
    prev.opacity = 0.3
    w._layer.value = b
    w.update_preview(sync=True)
    assert viewer.layers[PREVIEW] is prev and viewer.layers[PREVIEW_LEVELS] is lev and len(viewer.layers) == 4
    assert prev.data.shape == lev.data.shape == (20, 22) and prev.opacity == 0.3
    assert tuple(prev.scale) == tuple(lev.scale) == (2.0, 3.0)
    assert tuple(prev.translate) == tuple(lev.translate) == (10.0, -4.0)


def test_preview_slice_of_a_movie_and_a_volume_movie(rng):
    from napari_dynfit._napari._apr_convert_widget import preview_slice

    movie = np.stack([blobs((40, 44), rng, n=5) for _ in range(3)])
    res = preview_slice(movie, (2, 10, 10), is_movie=True, params={"rel_error": 0.1})
    ref = to_apr(movie[2])
    np.testing.assert_array_equal(res["image"], ref.reconstruct())
    np.testing.assert_array_equal(res["levels"], ref.reconstruct("level"))
    assert res["stats"]["particles"] == ref.n_particles
    vmovie = np.stack([blobs((6, 30, 32), rng, n=4) for _ in range(2)])
    res = preview_slice(vmovie, (1, 5, 0, 0), is_movie=True, params={"rel_error": 0.1}, slab=4)
    np.testing.assert_array_equal(res["image"], to_apr(vmovie[1, 2:6]).reconstruct()[3])


def test_convert_widget_converts_a_movie_in_a_worker(make_napari_viewer, tmp_path, rng, qtbot):
    from napari_dynfit._napari._apr_convert_widget import AprConvertWidget

    viewer = make_napari_viewer()
    movie = np.stack([blobs((48, 40), rng, n=5) for _ in range(3)])
    viewer.add_image(movie, name="mov", scale=(2.0, 0.5, 0.5), axis_labels=("t", "y", "x"))
    w = AprConvertWidget(viewer)
    assert w._movie.value  # first axis labelled t
    w._output.value = tmp_path / "mov.apr"
    with pytest.raises(InputError, match="name the output 'mov.aprmovie'"):  # never renamed behind the user's back
        w.convert()
    w._output.value = tmp_path / "mov.aprmovie"
    w.convert()
    qtbot.waitUntil(lambda: "mov (APR)" in viewer.layers and w._run.enabled, timeout=30000)
    layer = viewer.layers["mov (APR)"]
    assert isinstance(layer.data[0], LazyAprMovie) and tuple(layer.scale) == (2.0, 0.5, 0.5)
    back = read_apr_movie(tmp_path / "mov.aprmovie")
    assert back.frame_interval == 2.0 and back.spacing == (0.5, 0.5)
    np.testing.assert_array_equal(layer.data[0][1], to_apr(movie[1], spacing=(0.5, 0.5)).reconstruct())
    assert "saved to" in w._stats.value


def test_tiff_readers_pixels_and_converted(tmp_path, rng):
    import tifffile

    from napari_dynfit._napari._apr_reader import get_apr_reader, get_pixels_reader, get_pixels_to_apr_reader

    vol = blobs((8, 40, 36), rng, n=5)
    path = str(tmp_path / "v.tif")
    tifffile.imwrite(path, vol, imagej=True, metadata={"axes": "ZYX", "spacing": 3.0})
    assert get_apr_reader(path) is None and get_pixels_reader(str(tmp_path / "x.apr")) is None
    (data, kwargs, ltype), = get_pixels_reader(path)(path)
    np.testing.assert_array_equal(data, vol)
    assert ltype == "image" and tuple(kwargs["scale"]) == (3.0, 1.0, 1.0)
    (levels, kwargs, ltype), = get_pixels_to_apr_reader(path)(path)
    assert kwargs["multiscale"] and isinstance(levels[0], LazyAprArray) and kwargs["name"] == "v (APR)"
    ref = to_apr(vol, spacing=(3.0, 1.0, 1.0))
    np.testing.assert_array_equal(levels[0][4], ref.reconstruct()[4])
    assert kwargs["metadata"]["apr"]["particles"] == ref.n_particles
    # a 3D TIFF that does not name its axes opens as a movie, and the layer says it was assumed
    tifffile.imwrite(tmp_path / "plain.tif", vol)
    (data, kwargs, _), = get_pixels_reader(str(tmp_path / "plain.tif"))(str(tmp_path / "plain.tif"))
    assert data.shape == vol.shape and kwargs["metadata"]["axes"] == "tyx"
    assert "assumed" in kwargs["metadata"]["axes_source"]


def test_convert_widget_starts_at_the_cli_and_core_defaults(make_napari_viewer, tmp_path):
    """Opened on its own, "Convert to APR" converts with `dynfit convert`'s parameters and ``to_apr``'s defaults."""
    import inspect

    from napari_dynfit._napari._apr_convert_widget import AprConvertWidget
    from napari_dynfit.cli import build_parser
    from napari_dynfit.commands.apr import _conversion_params

    w = AprConvertWidget(make_napari_viewer())
    cli = _conversion_params(build_parser().parse_args(["convert", "image.tif", "-o", str(tmp_path / "out.apr")]))
    core = inspect.signature(to_apr).parameters
    for name, value in w.params().items():
        assert value == pytest.approx(cli[name]) and cli[name] == core[name].default, name
    assert cli["backend"] == core["backend"].default  # the widget leaves the back end to to_apr


def test_reconversion_updates_its_own_layer_and_the_preview_contrast_follows(make_napari_viewer, rng):
    """Converting again (another error bound, the image rescaled) updates the APR layer the widget made, in place
    (the user's opacity kept; data, particle count and contrast the new conversion's); a layer of the user's
    called "img (APR)" or "APR preview" is never touched; the preview's contrast follows the layer previewed."""
    from napari_dynfit._napari._apr_convert_widget import PREVIEW, AprConvertWidget

    viewer = make_napari_viewer()
    img = blobs((48, 52), rng, n=5)
    src = viewer.add_image(img, name="img")
    mine = viewer.add_image(np.zeros((4, 4)), name="img (APR)", opacity=0.9)
    my_prev = viewer.add_image(np.ones((3, 3)), name=PREVIEW, contrast_limits=(0.0, 7.0))
    w = AprConvertWidget(viewer)
    w._layer.value = src
    assert [n for n, _ in w._image_layers()] == ["img", "img (APR)", PREVIEW]  # the user's layers are inputs
    w._rel_error.value = 0.05
    w.convert(sync=True)
    made = viewer.layers["img (APR) [1]"]
    first = made.metadata["apr"]["particles"]
    assert made.multiscale and first == to_apr(img, rel_error=0.05).n_particles
    made.opacity = 0.3
    src.data = 10 * img  # the image changed (e.g. re-opened brighter): converted again, looser
    w._rel_error.value = 0.5
    w.convert(sync=True)
    assert viewer.layers["img (APR) [1]"] is made and len(viewer.layers) == 4 and made.opacity == 0.3
    assert made.metadata["apr"]["particles"] == to_apr(10 * img, rel_error=0.5).n_particles < first
    np.testing.assert_allclose(np.asarray(made.data[0]), to_apr(10 * img, rel_error=0.5).reconstruct())
    assert made.contrast_limits[1] > 5 * float(img.max())  # the new data's range, not the first conversion's
    viewer.layers.selection.active = made
    w._mode.value = "smooth"
    w.convert(sync=True)  # the display mode chosen for the layer survives a re-conversion
    assert viewer.layers["img (APR) [1]"] is made and made.data[0].mode == "smooth"
    assert made.metadata["apr"]["mode"] == "smooth"
    np.testing.assert_array_equal(mine.data, np.zeros((4, 4)))
    assert mine.opacity == 0.9
    w.update_preview(sync=True)
    prev = viewer.layers[f"{PREVIEW} [1]"]
    assert tuple(prev.contrast_limits) == tuple(src.contrast_limits)
    src.contrast_limits = (0.0, 2.0)  # the user's contrast of the image: the next preview shows it so
    w.update_preview(sync=True)
    assert viewer.layers[f"{PREVIEW} [1]"] is prev and tuple(prev.contrast_limits) == (0.0, 2.0)
    np.testing.assert_array_equal(my_prev.data, np.ones((3, 3)))
    assert tuple(my_prev.contrast_limits) == (0.0, 7.0)
    assert PREVIEW + " [1]" not in [n for n, _ in w._image_layers()]  # its own preview is not an input
