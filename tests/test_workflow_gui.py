"""The whole workflow in napari, driven through the DynFit panel's step widgets and their buttons.

A 128 x 128 um piece of the 2D sample (about 170 active Brownian particles, 50 frames; the sample's
density and rendering) -> APR -> filter & segment -> detect -> track (with a hand edit of the
detections and re-tracking) -> fields -> PDE model -> dominant balance -> latent field; project
save/re-open of the edits; plot export; cancelling a running step. The full sample's physics:
``tests/test_sample_physics_gui.py``.
"""

import numpy as np
import pytest
from scipy.spatial import cKDTree

pytestmark = pytest.mark.gui


def _click(button):
    """Press a magicgui PushButton like a user does (the Qt button's click)."""
    button.native.click()


def _recall(found_yx, truth_yx, tol):
    d, _ = cKDTree(found_yx).query(truth_yx)
    return float(np.mean(d < tol))


def test_full_workflow_on_2d_sample(make_napari_viewer, qtbot, tmp_path):
    from napari_dynfit._napari._panel import STEPS, DynFitPanel
    from napari_dynfit._napari._sample_data import _layers
    from napari_dynfit.sim.samples import ABP_2D, ABP_2D_RENDER, active_particles_2d

    viewer = make_napari_viewer()
    piece = active_particles_2d(seed=0, fov=128.0, frames=50)  # a piece of the sample, as the menu adds it
    for data, meta, kind in _layers(piece):
        getattr(viewer, f"add_{kind}")(data, **meta)
    n_particles = piece.params["simulation"]["n_particles"]
    movie = viewer.layers["active_particles_2d"]
    truth = np.asarray(viewer.layers["active_particles_2d truth"].data)  # track_id, t, y, x (pixels)
    _, panel = viewer.window.add_plugin_dock_widget("napari-dynfit", "DynFit panel")  # as from the menu
    assert isinstance(panel, DynFitPanel)
    index = {s[2]: i for i, s in enumerate(STEPS)}

    # --- defaults from the data: selecting the movie sets spacing, dt, object size -----------
    viewer.layers.selection.active = movie
    d = panel.defaults
    assert d.dt == pytest.approx(ABP_2D["dt"] * ABP_2D["save_every"])
    assert d.spacing == (ABP_2D_RENDER["scale"],) * 2 and d.periodic
    assert d.spot_sigma == pytest.approx(ABP_2D_RENDER["psf_sigma"], rel=0.15)
    assert d.extent == (128.0, 128.0)

    # --- 1. APR: cancel a conversion, then convert the movie -----------------------------------
    conv = panel.step(index["AprConvertWidget"])
    assert conv._layer.value is movie and conv._movie.value  # a movie: dt known from the data
    _click(conv._run)
    _click(conv._cancel)
    qtbot.waitUntil(lambda: conv._run.enabled, timeout=60_000)
    if "active_particles_2d (APR)" in viewer.layers:  # finished before the cancel arrived
        viewer.layers.remove("active_particles_2d (APR)")
    else:
        assert conv._stats.value == "cancelled"
    viewer.dims.set_current_step(0, 3)  # the viewer is still usable
    assert viewer.add_points(np.array([[3, 1.0, 1.0]]), name="probe") in viewer.layers
    viewer.layers.remove("probe")

    _click(conv._run)
    qtbot.waitUntil(lambda: "active_particles_2d (APR)" in viewer.layers and conv._run.enabled, timeout=600_000)
    apr = viewer.layers["active_particles_2d (APR)"]
    assert apr.multiscale and apr.metadata["dt"] == pytest.approx(d.dt)
    assert apr.metadata["apr"]["computational_ratio"] > 1.5
    frame0 = np.asarray(apr.data[0][0], float)
    raw0 = np.asarray(movie.data[0], float)
    assert frame0.shape == raw0.shape
    assert np.corrcoef(frame0.ravel(), raw0.ravel())[0, 1] > 0.9  # the APR drops pixel noise

    # --- 2. filter & segment the current frame on the APR --------------------------------------
    filt = panel.step(index["AprFilterWidget"])
    viewer.layers.selection.active = apr
    assert filt._layer.value is apr
    viewer.dims.set_current_step(0, 0)
    _click(filt._run)  # runs in the step's job: wait for its layers
    qtbot.waitUntil(lambda: "active_particles_2d (APR) objects centroids" in viewer.layers
                    and not filt._job.running, timeout=600_000)
    objects = viewer.layers["active_particles_2d (APR) objects"]
    centroids = viewer.layers["active_particles_2d (APR) objects centroids"]
    assert type(objects).__name__ == "Labels" and objects.data.shape == raw0.shape
    truth0 = truth[truth[:, 1] == 0][:, 2:]
    n_obj = len(centroids.data)
    assert 0.6 * len(truth0) < n_obj < 1.2 * len(truth0), n_obj  # touching particles merge
    assert _recall(centroids.data, truth0, 2.0) > 0.6

    # --- 3. detect on the APR movie, track ------------------------------------------------------
    trk = panel.step(index["TrackWidget"])
    viewer.layers.selection.active = apr  # the user picks the layer to detect in
    # the spot size estimated on the APR layer (piecewise constant: smaller than on the noisy pixels)
    assert trk._image.value is apr and trk._sigma.value == pytest.approx(panel.defaults.spot_sigma, abs=0.01)
    assert 0.9 < trk._sigma.value < 2.0
    _click(trk._detect)  # cancel a detection: no error reaches the Qt loop, the step runs again
    _click(trk._cancel)
    qtbot.waitUntil(lambda: trk._detect.enabled, timeout=600_000)
    assert trk._status.value == "cancelled" or "detections" in viewer.layers, trk._status.value
    _click(trk._detect)
    qtbot.waitUntil(lambda: "detections" in viewer.layers and trk._track.enabled, timeout=600_000)
    det = viewer.layers["detections"]
    assert det.data.shape[1] == 3 and set(np.unique(det.data[:, 0])) == set(range(50))
    for t in (0, 25, 49):
        assert _recall(det.data[det.data[:, 0] == t][:, 1:], truth[truth[:, 1] == t][:, 2:], 1.0) > 0.9

    assert trk._source.value is det  # the only time-resolved Points layer (not the centroids of one frame)
    _click(trk._track)
    qtbot.waitUntil(lambda: "tracks" in viewer.layers and trk._track.enabled, timeout=600_000)
    tracks = viewer.layers["tracks"]
    lengths = np.unique(tracks.data[:, 0], return_counts=True)[1]
    # the periodic box cuts tracks at its edges; spurious spots make 1-2 frame tracks
    assert n_particles <= (lengths >= 5).sum() < 2.5 * n_particles, (lengths >= 5).sum()
    assert lengths[lengths >= 5].sum() / 50 == pytest.approx(n_particles, rel=0.08)
    qtbot.waitUntil(lambda: panel.extra("MsdPlot").msd is not None, timeout=600_000)  # computed in its worker
    msd = panel.extra("MsdPlot").msd
    assert msd is not None and len(msd) >= 5
    # MSD of the tracks (physical units) against the active Brownian particle theory at 0.5 s
    from napari_dynfit.sim import abp_msd

    assert panel.extra("MsdPlot")._figure.axes[0].get_xlabel() == "lag time"  # in s, from dt
    lag5 = msd.set_index("lag").loc[5, "msd"]
    theory = abp_msd(0.5, v0=ABP_2D["v0"], Dr=ABP_2D["Dr"], Dt=ABP_2D["Dt"])
    assert lag5 == pytest.approx(theory, rel=0.25)

    # --- annotation: delete the detections in a corner of frame 20, re-track from the edit ---
    pts = np.asarray(det.data)
    cut = (pts[:, 0] == 20) & (pts[:, 1] < 64) & (pts[:, 2] < 64)
    assert cut.sum() >= 3
    det.data = pts[~cut]  # what deleting the selected points does
    _click(trk._track)
    qtbot.waitUntil(lambda: trk._track.enabled and "tracks" in trk._status.value, timeout=600_000)
    tr = np.asarray(viewer.layers["tracks"].data)
    at20 = tr[tr[:, 1] == 20][:, 2:]
    d_removed, _ = cKDTree(at20).query(pts[cut][:, 1:])
    assert d_removed.min() > 1e-6  # the deleted detections are no longer in the tracks
    assert len(tr) == int((~cut).sum())

    # --- 4. fields from the edited tracks, then the PDE model ---------------------------------
    pde = panel.step(index["PDEWidget"])
    glue = panel.extra("FieldsFromTracks")
    viewer.layers.selection.active = viewer.layers["tracks"]
    assert glue.tracks_layer is viewer.layers["tracks"]
    assert glue._auto.value and glue._fill.value and glue._dt.value == pytest.approx(d.dt)  # kernel from the data
    assert glue._periodic.value  # the sample is a periodic box (its metadata)
    _click(glue._run)
    qtbot.waitUntil(lambda: glue.path is not None and not glue._job.running, timeout=600_000)  # in its worker
    fb = glue.bundle
    # kernel from the data (mean inter-particle distance), grid half of it; a periodic grid tiles the box
    assert fb is not None and fb.shape == (50,) + (int(round(128.0 / fb.spacing[0])),) * 2
    assert glue._grid.value == pytest.approx(fb.spacing[0], rel=1e-3)
    n_per_frame = fb["rho"].sum(axis=(1, 2)) * np.prod(fb.spacing)  # the density integrates to the points
    counts = np.bincount(tr[:, 1].astype(int), minlength=50)
    filled = np.asarray(fb.attrs["particles_per_frame"]) - counts   # frames skipped by gap-closing links
    assert (filled >= 0).all() and filled.sum() == fb.attrs["filled_rows"]
    np.testing.assert_allclose(n_per_frame, counts + filled, rtol=0.01)
    assert pde.fields_path == glue.path and pde._stochastic.value  # particle fields: Ito form
    _click(pde._run)
    qtbot.waitUntil(lambda: not pde._job.running and pde.model is not None, timeout=600_000)
    rho_t = pde.model["equations"]["rho_t"]
    obs = "observed: rho (1/µm²)"  # a density in the movie's unit (the name says what the colour bar shows)
    assert obs in viewer.layers and viewer.layers[obs].scale[0] == pytest.approx(movie.scale[0])
    if pde.identifiable is False:  # with the identifiability check of discover_pde: this piece is too small
        assert pde._status.value.startswith("not identifiable from these data")
        assert "model: rho (1/µm²)" not in viewer.layers
    else:
        assert rho_t.get("div(p)") == pytest.approx(-ABP_2D["v0"], rel=0.2)  # truth: rho_t = -v0 div(p) + ...
        assert viewer.layers["model: rho (1/µm²)"].data.shape == fb["rho"].shape
        # on the movie's time axis (frames with scale[0] = dt): the time slider keeps the movie's 50 steps
        assert viewer.layers["model: rho (1/µm²)"].scale[0] == pytest.approx(movie.scale[0])
    assert viewer.dims.nsteps[0] == 50

    # --- 5a. dominant balance of the learned model on the fields ------------------------------
    bal = panel.step(index["BalanceWidget"])
    if pde.identifiable is False:  # no balances of a model the data do not pin down: none handed over
        from napari_dynfit.models.model_json import write_model

        bal._model.value = write_model(pde.model, tmp_path / "model.json")  # the user's own choice
        bal._fields.value = glue.path
        bal._equation.reset_choices()
    assert str(bal._fields.value) == str(glue.path) and "rho_t" in list(bal._equation.choices)
    bal._clusters.value = 2
    _click(bal._run)
    qtbot.waitUntil(lambda: not bal._job.running and bal.result is not None, timeout=600_000)
    regions = viewer.layers["balance regions"]
    assert regions.scale[0] == pytest.approx(movie.scale[0]) and viewer.dims.nsteps[0] == 50
    assert regions.data.shape[:3] == fb["rho"].shape[:3] and regions.data.min() >= 1
    assert abs(sum(b.fraction for b in bal.result.balances) - 1.0) < 1e-6

    # --- 5b. latent field from the tracks (a few steps: the layer and the curves appear) -------
    pinn = panel.step(index["LatentFieldWidget"])
    assert pinn._layer.value is viewer.layers["tracks"] and pinn._dt.value == pytest.approx(d.dt)
    pinn._steps.value, pinn._chunk.value, pinn._grid.value = 20, 10, 16
    _click(pinn._run)
    qtbot.waitUntil(lambda: not pinn._job.running, timeout=600_000)
    latent = viewer.layers["latent field phi (µm²/s)"]  # grad(phi) is a velocity: µm²/s
    assert latent.data.ndim == 3 and np.isfinite(latent.data).all()

    # --- 5c. snapshot flow from the detections (no tracks): a few steps, the drift field appears ---
    flow = panel.step(index["FlowWidget"])
    viewer.layers.selection.active = det
    assert flow.layer.currentText() == "detections" and flow.dt.value() == pytest.approx(d.dt)
    flow.score_steps.setValue(10)
    flow.steps.setValue(2)
    flow.run_btn.click()
    qtbot.waitUntil(lambda: flow.run_btn.isEnabled() and flow.status.text() != "score matching ...",
                    timeout=600_000)
    assert flow.status.text().startswith("done"), flow.status.text()
    drift = viewer.layers["PFI drift"]
    assert type(drift).__name__ == "Vectors" and drift.data.shape[1:] == (2, 2)
    assert np.isfinite(drift.data).all()

    # --- plots exported, edits saved with the project and re-opened -----------------------------
    files = panel.export_plots(tmp_path / "plots")
    stems = {f.stem for f in files}
    assert any("PDE" in s for s in stems) and any("MsdPlot" in s for s in stems)
    assert any("balance" in s for s in stems) and any("PINN" in s for s in stems)
    assert all(f.stat().st_size > 1000 for f in files)

    panel.save_project(tmp_path / "prj")
    assert "saved" in panel.status.text()
    viewer2 = make_napari_viewer()
    panel2 = DynFitPanel(viewer2)
    panel2.open_project(tmp_path / "prj")
    np.testing.assert_allclose(viewer2.layers["detections"].data, pts[~cut])
    np.testing.assert_allclose(viewer2.layers["tracks"].data[:, 1:], tr[:, 1:])
    assert viewer2.layers["active_particles_2d"].metadata["dt"] == pytest.approx(d.dt)
    from napari_dynfit.project import Project

    prj = Project(tmp_path / "prj")
    assert prj.load("model")["equations"]["rho_t"] == pytest.approx(rho_t)
    assert prj.load("fields").shape == fb.shape


def test_object_size_from_the_image():
    """The default object size follows the simulated spots (2D) and cells (3D, anisotropic voxels)."""
    from napari_dynfit._napari._defaults import estimate_spot_sigma
    from napari_dynfit.sim.samples import CELLS_3D, dividing_cells_3d

    rng = np.random.default_rng(1)
    for sigma in (1.5, 3.0):
        yy, xx = np.mgrid[:128, :128]
        img = rng.normal(100, 3, (128, 128))
        for cy, cx in rng.uniform(10, 118, (25, 2)):
            img += 60 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
        assert estimate_spot_sigma(img) == pytest.approx(sigma, rel=0.15)
    cells = dividing_cells_3d(seed=0)
    radius_px = CELLS_3D["radius"] / cells.spacing[-1]
    est = estimate_spot_sigma(cells.movie[20], spacing=cells.spacing)
    assert est == pytest.approx(radius_px / np.sqrt(3), rel=0.2)  # LoG scale of a ball: r / sqrt(3)


def test_edit_labels_retrack_save_reopen(make_napari_viewer, qtbot, tmp_path):
    """Annotation round trip on a segmentation: erase a spurious mask, re-track, save, re-open."""
    import pandas as pd

    from napari_dynfit._napari._panel import STEPS, DynFitPanel
    from napari_dynfit.sim import render_labels

    viewer = make_napari_viewer()
    truth = pd.DataFrame({"track_id": np.repeat([1, 2, 3], 5), "frame": np.tile(np.arange(5), 3),
                          "y": np.r_[np.linspace(10, 14, 5), np.full(5, 30.0), np.linspace(40, 36, 5)],
                          "x": np.r_[np.full(5, 10.0), np.linspace(30, 33, 5), np.full(5, 12.0)], "radius": 3.5})
    labels = render_labels(truth, (5, 56, 56)).astype(np.int32)
    labels[2, 48:52, 46:50] = 9  # a segmentation error: a spurious object in frame 2
    layer = viewer.add_labels(labels, name="cells", scale=(1.0, 0.5, 0.5), metadata={"dt": 2.0})
    panel = DynFitPanel(viewer)
    trk = panel.step([s[2] for s in STEPS].index("TrackWidget"))
    viewer.layers.selection.active = layer
    assert trk._source.value is layer and panel.defaults.dt == 2.0
    _click(trk._track)
    qtbot.waitUntil(lambda: "cells tracked" in viewer.layers and trk._track.enabled, timeout=60_000)
    assert trk._status.value.startswith("4 tracks")
    edited = np.asarray(layer.data).copy()
    edited[edited == 9] = 0  # what erasing the object with the eraser does
    layer.data = edited
    _click(trk._track)
    qtbot.waitUntil(lambda: trk._track.enabled and "tracks," in trk._status.value, timeout=60_000)
    assert trk._status.value.startswith("3 tracks"), trk._status.value
    rel = np.asarray(viewer.layers["cells tracked"].data)
    assert rel[2, 48:52, 46:50].max() == 0 and len(np.unique(rel)) == 4  # 3 cells + background
    panel.save_project(tmp_path / "prj")
    viewer2 = make_napari_viewer()
    DynFitPanel(viewer2).open_project(tmp_path / "prj")
    np.testing.assert_array_equal(np.asarray(viewer2.layers["cells"].data), edited)
    np.testing.assert_array_equal(np.asarray(viewer2.layers["cells tracked"].data), rel)
    assert viewer2.layers["cells"].metadata["dt"] == 2.0
    np.testing.assert_allclose(viewer2.layers["cells"].scale, (1.0, 0.5, 0.5))


def test_reopened_project_step_updates_its_own_layers(make_napari_viewer, qtbot, tmp_path):
    """Save, re-open, re-run, save ... : the project records which step made a layer, so the re-opened step
    updates its layers in place (it added one more ``"name [n]"`` layer each cycle); a user's layer of an output's
    name is still never claimed."""
    import pandas as pd

    from napari_dynfit._napari._panel import STEPS, DynFitPanel
    from napari_dynfit.project import Project
    from napari_dynfit.sim import render_labels

    truth = pd.DataFrame({"track_id": np.repeat([1, 2], 4), "frame": np.tile(np.arange(4), 2),
                          "y": np.r_[np.linspace(10, 13, 4), np.full(4, 30.0)],
                          "x": np.r_[np.full(4, 10.0), np.linspace(30, 33, 4)], "radius": 3.5})
    labels = render_labels(truth, (4, 48, 48)).astype(np.int32)
    track_step = [s[2] for s in STEPS].index("TrackWidget")

    def run_tracking(viewer, panel):
        trk = panel.step(track_step)
        qtbot.wait(20)  # the layers just added are napari's selection until the event loop runs, not the user's
        viewer.layers.selection.active = viewer.layers["cells"]
        assert trk._source.value is viewer.layers["cells"]
        before = trk._status.value
        _click(trk._track)
        qtbot.waitUntil(lambda: trk._track.enabled and trk._status.value != before
                        and "tracks," in trk._status.value, timeout=60_000)

    viewer = make_napari_viewer()
    viewer.add_labels(labels, name="cells", metadata={"dt": 1.0})
    viewer.add_points(np.array([[0, 5.0, 5.0]]), name="tracks")  # the user's own layer of an output's name
    panel = DynFitPanel(viewer)
    run_tracking(viewer, panel)
    made = sorted(lay.name for lay in viewer.layers)
    assert made == ["cells", "cells tracked", "tracks", "tracks [1]"], made
    folder = tmp_path / "prj0"
    panel.save_project(folder)
    for cycle in range(1, 3):
        viewer = make_napari_viewer()
        panel = DynFitPanel(viewer)
        panel.open_project(folder)
        opened = {lay.name: lay for lay in viewer.layers}
        run_tracking(viewer, panel)
        assert sorted(lay.name for lay in viewer.layers) == made, cycle  # no "name [n]" added by the re-run
        for name in ("cells tracked", "tracks [1]"):
            assert viewer.layers[name] is opened[name]  # updated in place
        np.testing.assert_allclose(viewer.layers["tracks"].data, [[0, 5.0, 5.0]])  # the user's, untouched
        folder = tmp_path / f"prj{cycle}"
        panel.save_project(folder)
    # what the project records: the step and the name it made each of its layers under
    prj = Project(folder)
    owners = {prj.meta(n).get("layer_name"): prj.meta(n).get("owner") for n in prj.names}
    assert owners["cells tracked"] == {"step": "TrackWidget", "slot": "cells tracked"}, owners
    assert owners["tracks [1]"] == {"step": "TrackWidget", "slot": "tracks"}, owners
    assert owners["tracks"] is None and owners["cells"] is None  # the user's layers are nobody's
