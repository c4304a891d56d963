"""The panel's step contract, a readable view and the dock width (napari under Xvfb, a few seconds)."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _small_sample(viewer):
    from napari_dynfit._napari._sample_data import _layers
    from napari_dynfit.sim.samples import active_particles_2d

    for data, meta, kind in _layers(active_particles_2d(seed=0, fov=64.0, frames=6)):
        getattr(viewer, f"add_{kind}")(data, **meta)
    return viewer.layers["active_particles_2d"]


def _build_all(panel):
    from napari_dynfit._napari._panel import STEPS

    return {s[2]: panel.step(i) for i, s in enumerate(STEPS)}


def test_every_step_keeps_the_contract(make_napari_viewer):
    """Public inputs/defaults of every step; unknown parameter names fail loudly; hand edits are kept."""
    from napari_dynfit._napari._contract import StepContract
    from napari_dynfit._napari._defaults import DataDefaults, apply_defaults
    from napari_dynfit._napari._panel import DynFitPanel

    viewer = make_napari_viewer()
    _small_sample(viewer)
    panel = DynFitPanel(viewer)
    steps = _build_all(panel)
    for name, w in steps.items():
        assert isinstance(w, StepContract), name
        assert w.inputs(), name
        assert set(w.defaults()) == set(w.PARAMS), name  # every declared parameter has its widget
        with pytest.raises(KeyError, match="no parameter 'no_such'"):
            w.apply_defaults({"no_such": 1})
    trk = steps["TrackWidget"]
    assert trk.apply_defaults({"spot_sigma": 2.0}) == ["spot_sigma"] and trk.defaults()["spot_sigma"] == 2.0
    trk._sigma.value = 3.3  # the user's own value
    assert trk.apply_defaults({"spot_sigma": 1.2}) == [] and trk.defaults()["spot_sigma"] == 3.3
    assert apply_defaults(trk, DataDefaults(spot_sigma=1.0)) == [] and trk._sigma.value == 3.3
    # files go to the slot whose patterns they match
    bal = steps["BalanceWidget"]
    assert bal.inputs() == {"model": ("*.json",), "fields": ("*.zarr", "*.npz", "*.mat", "*.hdf5", "*.h5")}
    assert not bal.accepts("x.tif")


def test_selecting_a_result_does_not_change_other_steps(make_napari_viewer):
    """Grid spacing set by hand survives selecting other layers; a step's output sets only its readers."""
    from napari_dynfit._napari._panel import DynFitPanel

    viewer = make_napari_viewer()
    movie = _small_sample(viewer)
    panel = DynFitPanel(viewer)
    steps = _build_all(panel)
    glue = panel.extra("FieldsFromTracks")
    glue._auto.value = False
    glue._grid.value = 5.0  # by hand
    viewer.layers.selection.active = movie
    assert glue._grid.value == 5.0
    pinn = steps["LatentFieldWidget"]
    pinn._dt.value = 0.25  # by hand
    pts = viewer.add_points(np.array([[0, 5.0, 5.0], [1, 6.0, 5.5], [2, 7.0, 6.0]]), name="detections",
                            scale=(1.0, 2.0, 2.0))
    viewer.layers.selection.active = movie
    viewer.layers.selection.active = pts  # a step's output selected later: input of its readers only
    assert glue._grid.value == 5.0 and pinn._dt.value == 0.25
    assert steps["TrackWidget"]._source.value is pts


def test_the_track_steps_output_is_the_layer_it_made(make_napari_viewer):
    """With the user's Image called "tracks" in the viewer, Track's Tracks layer is "tracks [1]": the panel knows it
    as the step's result (styled as one) and leaves the user's image alone; a
    Tracks layer the user adds under another name is not the step's."""
    from napari_dynfit._napari._panel import STEPS, DynFitPanel

    viewer = make_napari_viewer()
    movie = _small_sample(viewer)
    panel = DynFitPanel(viewer)
    trk = panel.step(next(i for i, s in enumerate(STEPS) if s[2] == "TrackWidget"))
    mine = viewer.add_image(np.zeros((6, 8, 8)), name="tracks")  # the user's own image
    assert panel.maker(mine) is None and mine.blending != "additive" and mine.colormap.name == "gray"
    truth = viewer.layers["active_particles_2d truth"]
    pts = viewer.add_points(np.asarray(truth.data)[:, 1:], name="spots", scale=truth.scale)
    trk._source.value = pts
    trk._max_distance.value = 3.0
    trk.track(sync=True)
    made = trk.tracks_layer()
    assert made.name == "tracks [1]" and type(made).__name__ == "Tracks"
    assert panel.maker(made) is trk and made.opacity <= 0.8  # styled as a result once the step made it
    other = viewer.add_tracks(np.asarray(truth.data), name="tracks [2]", scale=truth.scale)
    assert panel.maker(other) is None and other.opacity == 1.0
    viewer.layers.selection.active = movie
    viewer.layers.selection.active = mine
    assert mine.blending != "additive" and mine.colormap.name == "gray" and mine.visible


def test_hints_warnings_and_readable_results(make_napari_viewer):
    """No layer fits: the page says what to do; PINN and flow on the particle sample warn; results translucent."""
    from napari_dynfit._napari._panel import DynFitPanel

    viewer = make_napari_viewer()
    movie = _small_sample(viewer)
    panel = DynFitPanel(viewer)
    steps = _build_all(panel)
    assert "press Detect" in panel.hint("TrackWidget")
    assert "Track on page 3" in panel.hint("LatentFieldWidget")
    truth = viewer.layers["active_particles_2d truth"]
    data = np.asarray(truth.data)
    det = viewer.add_points(data[:, 1:], name="detections", scale=truth.scale)
    tracks = viewer.add_tracks(data, name="tracks", scale=truth.scale)
    assert "press Detect" not in panel.hint("TrackWidget")
    assert steps["LatentFieldWidget"]._layer.value is not None
    panel.step([s for s in __import__("napari_dynfit._napari._panel", fromlist=["STEPS"]).STEPS].index(
        next(s for s in __import__("napari_dynfit._napari._panel", fromlist=["STEPS"]).STEPS
             if s[2] == "LatentFieldWidget")))
    assert "no chemical field" in panel.warning("LatentFieldWidget")
    steps["FlowWidget"].set_input(det)
    viewer.layers.selection.active = det
    assert "periodic box" in panel.warning("FlowWidget")
    # results arrive translucent and hide the other steps' images; the movie stays visible
    a = viewer.add_image(np.zeros((6, 8, 8)), name="fields: rho")
    b = viewer.add_image(np.zeros((6, 8, 8)), name="observed: rho")
    assert b.blending == "additive" and b.colormap.name != "gray" and not a.visible
    assert b.colorbar.visible and not movie.colorbar.visible  # a result's colour bar; the movie has none
    assert movie.visible and tracks.visible


def test_step_pages_fit_the_dock(make_napari_viewer):
    """Every step page fits the panel's default dock width: no horizontal scrolling, no cut buttons."""
    from napari_dynfit._napari._panel import DynFitPanel

    viewer = make_napari_viewer()
    _small_sample(viewer)
    panel = DynFitPanel(viewer)
    _build_all(panel)
    for page in panel._pages:
        assert page.minimumSizeHint().width() <= panel.DOCK_WIDTH, page.minimumSizeHint()
        assert page.sizeHint().width() <= panel.DOCK_WIDTH, page.sizeHint()


def test_every_plot_has_a_save_button(qtbot, tmp_path):
    """A plot's canvas carries a Save button; saving goes through a temporary file (PNG and SVG)."""
    from napari_dynfit._napari._plots import CANVAS_WIDTH, make_canvas, save_figure

    fig, canvas = make_canvas()
    fig.add_subplot().plot([0, 1], [1, 2])
    assert canvas.save_button.text() == "Save" and canvas.sizeHint().width() <= CANVAS_WIDTH
    for fmt in ("png", "svg"):
        assert save_figure(fig, tmp_path / f"plot.{fmt}").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "plot.svg"]  # no temporary file left


def test_coarse_graining_skips_the_track_steps_preview_not_a_users_layer_of_that_name(make_napari_viewer):
    """The fields step offers every Tracks layer but the Track step's own links preview; a user's Tracks layer
    called "links preview" is offered (it was left out by its name)."""
    from napari_dynfit._napari._track_widget import PREVIEW

    viewer, glue, trk, truth = _fields_and_track_steps(make_napari_viewer)
    mine = viewer.add_tracks(np.asarray(truth.data), name=PREVIEW, scale=truth.scale)
    trk._source.value = viewer.add_points(np.asarray(truth.data)[:, 1:], name="spots", scale=truth.scale)
    trk._max_distance.value = 3.0
    trk._window.value = 1
    viewer.dims.set_current_step(0, 2)
    trk.update_preview(sync=True)
    preview = trk.made_layer(PREVIEW, viewer.layers)
    assert preview is not None and preview is not mine and preview.name == f"{PREVIEW} [1]"
    glue._truth.value = True  # the truth's Tracks too: every Tracks layer but the step's preview
    glue._layer.reset_choices()
    offered = [lay for lay in glue._layer.choices]
    assert any(lay is mine for lay in offered) and not any(lay is preview for lay in offered)
    # a standalone "Detect & track" dock (not the panel's step) makes its own preview: not offered either
    from napari_dynfit._napari._track_widget import TrackWidget

    dock = TrackWidget(viewer)
    dock._source.value = viewer.layers["spots"]
    dock._max_distance.value = 3.0
    dock._window.value = 1
    dock.update_preview(sync=True)
    theirs = dock.made_layer(PREVIEW, viewer.layers)
    assert theirs is not None and theirs is not preview and theirs is not mine
    glue._layer.reset_choices()
    offered = [lay for lay in glue._layer.choices]
    assert any(lay is mine for lay in offered) and not any(lay is theirs for lay in offered)


def test_later_steps_read_a_steps_result_not_the_same_named_layer_it_wrote_beside(make_napari_viewer):
    """A Tracks layer called "tracks" that the Track step did not make (opened from a project, or the user's) is
    the fields step's input; Track shows its tracks beside it ("tracks [1]", the other left as it is): the fields
    step then coarse-grains the new tracks, not the old ones (before, Track wrote into "tracks" itself)."""

    viewer, glue, trk, truth = _fields_and_track_steps(make_napari_viewer)
    old = viewer.add_tracks(np.asarray(truth.data)[:20], name="tracks", scale=truth.scale)
    other = viewer.add_tracks(np.asarray(truth.data)[:20], name="other tracks", scale=truth.scale)
    glue._layer.reset_choices()
    glue.set_input(old)
    trk._source.value = viewer.add_points(np.asarray(truth.data)[:, 1:], name="spots", scale=truth.scale)
    trk._max_distance.value = 3.0
    trk.track(sync=True)
    made = trk.made_layer("tracks", viewer.layers)
    assert made is not old and made.name == "tracks [1]" and len(made.data) > 20
    assert glue.tracks_layer is made
    np.testing.assert_array_equal(old.data, np.asarray(truth.data)[:20])  # the old layer left as it was
    glue.set_input(other)  # a layer of another name chosen by the user is kept on a re-run
    trk.track(sync=True)
    assert trk.made_layer("tracks", viewer.layers) is made and glue.tracks_layer is other


def _fields_and_track_steps(make_napari_viewer):
    """A viewer with the small sample and the panel built: ``(viewer, fields step's glue, Track step, truth
    Tracks layer)``."""
    from napari_dynfit._napari._panel import DynFitPanel

    viewer = make_napari_viewer()
    _small_sample(viewer)
    panel = DynFitPanel(viewer)
    steps = _build_all(panel)
    return (viewer, panel.extra("FieldsFromTracks"), steps["TrackWidget"],
            viewer.layers["active_particles_2d truth"])


def test_apr_filter_step_reads_the_converted_layer_not_the_same_named_one(make_napari_viewer, qtbot):
    """An Image called "img (APR)" that the Convert step did not make (a project's, the user's) is the APR filter
    step's input; Convert shows its result beside it ("img (APR) [1]"): the filter step then reads the new one
    (Convert announced the APR object, not its layer, so the step stayed on the old layer)."""
    from napari_dynfit._napari._panel import DynFitPanel

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    img = np.zeros((48, 40), np.float32)
    img[10:16, 8:14] = 100
    img[30:36, 20:28] = 80
    viewer.add_image(img + rng.normal(0, 1, img.shape).astype(np.float32), name="img")
    from napari_dynfit._napari._apr_reader import apr_layers_from_result
    from napari_dynfit.apr import to_apr

    (levels, kwargs, _), = apr_layers_from_result(to_apr(img), "img")  # an APR layer (e.g. a project's)
    old = viewer.add_image(levels, **kwargs)
    assert old.name == "img (APR)"
    panel = DynFitPanel(viewer)
    steps = _build_all(panel)
    conv, filt = steps["AprConvertWidget"], steps["AprFilterWidget"]
    filt._layer.reset_choices()
    filt._layer.value = old
    conv._layer.reset_choices()
    conv._layer.value = viewer.layers["img"]
    conv.convert()
    qtbot.waitUntil(lambda: "img (APR) [1]" in viewer.layers and conv._run.enabled, timeout=30000)
    made = viewer.layers["img (APR) [1]"]
    assert conv.made_layer("img (APR)", viewer.layers) is made
    qtbot.waitUntil(lambda: filt._layer.value is made, timeout=5000)
    np.testing.assert_array_equal(np.asarray(old.data[0]), np.asarray(levels[0]))  # the old layer left as it was
