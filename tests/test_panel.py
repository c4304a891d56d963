"""The DynFit panel: steps, project save/open round trip, plot export (napari under Xvfb)."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_panel_project_roundtrip(make_napari_viewer, tmp_path):
    from napari_dynfit._napari._panel import STEPS, DynFitPanel

    viewer = make_napari_viewer()
    viewer.open_sample("napari-dynfit", "active_particles_2d")
    movie = viewer.layers[0].data
    tracks = [lay for lay in viewer.layers if type(lay).__name__ == "Tracks"][0]
    # a user annotation: a Points layer edited by hand
    pts = viewer.add_points(np.array([[3, 10.5, 20.0], [4, 11.0, 21.5]]), name="edited detections")
    panel = DynFitPanel(viewer)
    assert STEPS[0][0] in panel.steps  # the first step is built at once
    panel.save_project(tmp_path / "prj")
    assert "saved" in panel.status.text()

    viewer2 = make_napari_viewer()
    panel2 = DynFitPanel(viewer2)
    panel2.open_project(tmp_path / "prj")
    names = {lay.name: lay for lay in viewer2.layers}
    assert len(names) == len(viewer.layers)
    np.testing.assert_array_equal(np.asarray(names[viewer.layers[0].name].data), np.asarray(movie))
    np.testing.assert_allclose(names["edited detections"].data, pts.data)
    tr2 = names[tracks.name]
    assert type(tr2).__name__ == "Tracks"
    np.testing.assert_allclose(np.asarray(tr2.data)[:, 2:], np.asarray(tracks.data)[:, 2:])
    np.testing.assert_allclose(tr2.scale, tracks.scale)


def test_fit_keeps_ui_responsive_and_cancel_leaves_viewer_usable(make_napari_viewer, qtbot, monkeypatch):
    """While a fit runs, its work runs off the GUI thread and the event loop keeps processing events; Stop ends it
    cleanly.

    Checked without timing (the machine's load must not decide it): every call of the set-up, the training and the
    grid prediction is recorded with its thread, none may run in the GUI thread; a Qt timer keeps ticking and several
    live updates arrive while the worker trains; an update changes the plot's lines in place under a fixed layout
    (a new plot or constrained layout per update was what cost the GUI thread ~0.2 s each).
    """
    import threading

    from qtpy.QtCore import QTimer

    import napari_dynfit.models.pinn as pinn_api
    from napari_dynfit._napari._panel import STEPS, DynFitPanel
    from napari_dynfit.models.pinn.train import PINN

    calls = []  # (what, ran in the GUI thread)

    def recorded(what, func):
        def wrapper(*args, **kwargs):
            calls.append((what, threading.current_thread() is threading.main_thread()))
            return func(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(pinn_api, "latent_chemotaxis_pinn", recorded("set-up", pinn_api.latent_chemotaxis_pinn))
    monkeypatch.setattr(PINN, "fit", recorded("fit", PINN.fit))
    monkeypatch.setattr(PINN, "predict_grid", recorded("predict", PINN.predict_grid))

    viewer = make_napari_viewer()
    viewer.open_sample("napari-dynfit", "active_particles_2d")
    truth = next(lay for lay in viewer.layers if type(lay).__name__ == "Tracks")
    # the step never takes ground truth: give it tracks of our own (here: the truth's data under a user's name)
    mine = viewer.add_tracks(truth.data, name="my tracks", scale=truth.scale, translate=truth.translate)
    panel = DynFitPanel(viewer)
    index = next(i for i, s in enumerate(STEPS) if s[2] == "LatentFieldWidget")
    widget = panel.step(index)
    widget._layer.reset_choices()
    widget._layer.value = mine
    widget._steps.value = 1_000_000  # far more than the test waits for
    widget._chunk.value = 20
    ticks, updates, lines = [], [], []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(widget._job.running))
    widget.made.connect(lambda layer: (updates.append(layer), lines.append(dict(widget._lines))))
    timer.start(50)
    widget.train()
    assert widget._job.running and not calls  # the click only started the worker
    # the waits are conditions with generous limits (the set-up's wall time depends on the machine's load)
    qtbot.waitUntil(lambda: len(updates) >= 3, timeout=600_000)
    ticks.clear()
    qtbot.waitUntil(lambda: len(ticks) >= 20, timeout=600_000)  # the loop keeps processing timer events
    timer.stop()
    assert all(ticks) and widget._job.running  # ... while the worker was training
    done = {what for what, _ in calls}
    assert {"set-up", "fit", "predict"} <= done, calls
    assert not [what for what, in_gui in calls if in_gui], calls  # none of the work ran in the GUI thread
    assert all(layer is updates[0] for layer in updates)  # one overlay layer, its data replaced
    assert lines[0] and all(ln[k] is v for ln in lines[1:] for k, v in lines[0].items())  # lines updated in place
    assert widget._figure.get_layout_engine() is None
    assert widget.layer_name() in viewer.layers  # the live overlay exists while training
    widget.stop()
    qtbot.waitUntil(lambda: not widget._job.running, timeout=60_000)
    assert widget._run.enabled
    # the viewer is still usable after cancelling
    viewer.dims.set_current_step(0, 5)
    lay = viewer.add_points(np.array([[5, 1.0, 1.0]]))
    assert lay in viewer.layers
