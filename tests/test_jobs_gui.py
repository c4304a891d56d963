"""The one job layer (:class:`napari_dynfit._napari._jobs.StepJob`): progress in the widget and napari's activity
dock, several run buttons, Cancel, stale results dropped, preparation in the worker."""

import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _job(viewer, n_run=2):
    from magicgui.widgets import Label, PushButton

    from napari_dynfit._napari._jobs import StepJob

    runs = [PushButton(text=f"run {i}") for i in range(n_run)]
    stop = PushButton(text="Cancel", enabled=False)
    status = Label(value="")
    return StepJob(runs, stop, status, viewer=viewer), runs, stop, status


def test_progress_reaches_widget_and_activity_dock(make_napari_viewer, qtbot):
    from napari.utils import progress

    from napari_dynfit._progress import progress_iter

    viewer = make_napari_viewer()
    job, runs, stop, status = _job(viewer)
    gate = threading.Event()
    seen_bars, texts = [], []

    def compute():
        for i in progress_iter(range(5), desc="counting"):
            if i == 2:
                gate.wait(30)  # hold the loop until the test has looked at the bar
        return "done"

    results = []
    job.start(compute, on_return=results.append)
    assert all(not r.enabled for r in runs) and stop.enabled  # every run button is disabled while it runs

    def bar_shown():
        bars = [b for b in progress._all_instances if getattr(b, "desc", "").startswith("counting")]
        seen_bars.extend(bars)
        texts.append(status.value)
        return bool(bars) and "counting" in status.value

    qtbot.waitUntil(bar_shown, timeout=60_000)
    gate.set()
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert results == ["done"]
    assert all(r.enabled for r in runs) and not stop.enabled
    assert not [b for b in progress._all_instances if b in seen_bars]  # the bar is closed at the end


def test_cancel_and_stale_results_dropped(make_napari_viewer, qtbot):
    from napari_dynfit._progress import progress_iter

    viewer = make_napari_viewer()
    job, runs, stop, status = _job(viewer)
    results = []
    first_started = threading.Event()

    def slow():
        first_started.set()
        for _ in progress_iter(range(10_000), desc="slow"):
            time.sleep(0.01)
        return "stale"

    job.start(slow, on_return=results.append)
    qtbot.waitUntil(first_started.is_set, timeout=60_000)
    job.start(lambda: "fresh", on_return=results.append)  # a newer run replaces the older one
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    qtbot.wait(50)
    assert results == ["fresh"]

    job.start(slow, on_return=results.append)
    stop.native.click()
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert status.value == "cancelled" and results == ["fresh"]
    assert all(r.enabled for r in runs)


def test_deliver_from_a_callback_reaches_on_yield(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    job, *_ = _job(viewer, n_run=1)
    items = []

    def compute():
        for i in range(3):
            job.deliver(i)  # e.g. from a fit callback that cannot yield
        return None

    job.start(compute, on_yield=items.append)
    qtbot.waitUntil(lambda: not job.running and len(items) == 3, timeout=60_000)
    assert items == [0, 1, 2]
    items.clear()
    job.start(compute, on_yield=items.append, block=True)
    assert items == [0, 1, 2]


def _tracks(viewer, n=400, frames=30):
    import numpy as np

    rng = np.random.default_rng(0)
    tracks = np.column_stack([np.repeat(np.arange(n), frames), np.tile(np.arange(frames), n),
                              rng.uniform(0, 100, n * frames), rng.uniform(0, 100, n * frames)])
    return viewer.add_tracks(tracks, name="tracks")


def _click_cpu(start, job, qtbot, wait_s=120):
    """The GUI thread's CPU time spent inside ``start()`` (not wall-clock: machine load cannot fail it)."""
    t0 = time.thread_time()
    start()
    spent = time.thread_time() - t0
    assert job.running
    job.stop()
    qtbot.waitUntil(lambda: not job.running, timeout=wait_s * 1000)
    return spent


def test_train_click_does_not_compute_on_the_gui_thread(make_napari_viewer, qtbot):
    """PINN Train only reads the widget: the tracks table, the problem and the grid are built in the worker."""
    from napari_dynfit._napari._pinn_widget import LatentFieldWidget

    viewer = make_napari_viewer()
    _tracks(viewer)
    pinn = LatentFieldWidget(viewer)
    pinn._steps.value = 1_000_000
    spent = _click_cpu(pinn.train, pinn._job, qtbot)
    assert spent < 0.5, f"Train computed {spent:.2f} s on the GUI thread"


def test_coarse_grain_click_runs_in_the_worker(make_napari_viewer, qtbot, tmp_path):
    """The panel's Coarse-grain button (fields from tracks) computes and writes in the job's worker, with Cancel;
    the fields arrive as layers and the path as the step's result."""
    from napari_dynfit._napari._panel import FieldsFromTracks

    viewer = make_napari_viewer()
    glue = FieldsFromTracks(viewer, lambda: tmp_path)
    glue._layer.value = _tracks(viewer)
    made = []
    glue.made.connect(made.append)
    t0 = time.thread_time()
    glue._run.native.click()
    assert time.thread_time() - t0 < 0.5 and glue._job.running and glue._cancel.enabled
    qtbot.waitUntil(lambda: not glue._job.running, timeout=120_000)
    assert made == [tmp_path / "fields.zarr"] and glue.path == made[0] and "fields: rho (1/px²)" in viewer.layers
    glue._run.native.click()
    glue._cancel.native.click()
    qtbot.waitUntil(lambda: not glue._job.running, timeout=120_000)
    assert glue._status.value == "cancelled" and len(made) == 1
    t3 = np.c_[np.repeat(np.arange(5), 4), np.tile(np.arange(4), 5), np.zeros((20, 3))]  # 3D tracks: said at once
    glue._layer.value = viewer.add_tracks(t3, name="tracks 3d")
    glue._run.native.click()
    assert not glue._job.running and "2D" in glue._status.value and len(made) == 1


def test_msd_plot_computes_in_its_worker(make_napari_viewer, qtbot):
    """The panel's MSD plot of a new Tracks layer is computed in its job, not on the GUI thread (the full sample's
    tracks take seconds); a newer layer's MSD replaces it."""
    from napari_dynfit._napari._panel import STEPS, DynFitPanel

    viewer = make_napari_viewer()
    panel = DynFitPanel(viewer)
    panel.step([s[2] for s in STEPS].index("TrackWidget"))
    plot = panel.extra("MsdPlot")
    _tracks(viewer, n=400, frames=40)
    assert plot.job.running and plot.msd is None  # handed to the worker, not computed in the insert event
    qtbot.waitUntil(lambda: not plot.job.running, timeout=120_000)
    assert plot.msd is not None and len(plot.msd) == 10 and "MSD of 'tracks'" in plot._title.text()
    assert "immobile" not in plot._title.text()  # every track is white scatter: nothing is left out

    # random walks plus still specks: the plot leaves the specks out, as fit_msd does, and says so
    import numpy as np

    rng = np.random.default_rng(1)
    walks = np.cumsum(rng.normal(0, 1.0, (40, 40, 2)), axis=1) + rng.uniform(20, 80, (40, 1, 2))
    specks = rng.uniform(20, 80, (5, 1, 2)) + rng.normal(0, 0.05, (5, 40, 2))
    pos = np.concatenate([walks, specks]).reshape(-1, 2)
    data = np.column_stack([np.repeat(np.arange(45), 40), np.tile(np.arange(40), 45), pos])
    viewer.add_tracks(data, name="walks")
    qtbot.waitUntil(lambda: plot.msd is not None and "walks" in plot._title.text(), timeout=120_000)
    assert "5 of 45 tracks immobile" in plot._title.text()


def test_project_save_and_open_clicks_run_in_the_worker(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """The panel's Save…/Open… write and read the project in its I/O job; the layers arrive in the GUI thread."""
    from qtpy.QtWidgets import QFileDialog

    from napari_dynfit._napari._panel import DynFitPanel

    viewer = make_napari_viewer()
    viewer.add_image(np.arange(4 * 16 * 16, dtype=float).reshape(4, 16, 16), name="movie", scale=(0.5, 2.0, 2.0))
    _tracks(viewer, n=20, frames=4)
    panel = DynFitPanel(viewer)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "prj"))
    panel._save_btn.click()
    assert panel._io_job.running or "saved" in panel.status.text()
    qtbot.waitUntil(lambda: not panel._io_job.running, timeout=120_000)
    assert "saved" in panel.status.text(), panel.status.text()

    viewer2 = make_napari_viewer()
    panel2 = DynFitPanel(viewer2)
    panel2._open_btn.click()
    qtbot.waitUntil(lambda: not panel2._io_job.running and len(viewer2.layers) == 2, timeout=120_000)
    np.testing.assert_array_equal(viewer2.layers["movie"].data, viewer.layers["movie"].data)
    np.testing.assert_allclose(viewer2.layers["movie"].scale, (0.5, 2.0, 2.0))


def test_pinn_set_up_stops_at_cancel(make_napari_viewer, qtbot):
    """Cancel during the PINN step's preparation (importing torch, reading the tracks, building the problem):
    the set-up reports its stages and stops at the next one; in the widget the job ends "cancelled" without
    training or adding a layer (issue 17)."""
    import threading

    from napari_dynfit._napari._pinn_widget import LAYER, SETUP, SETUP_STAGES, LatentFieldWidget
    from napari_dynfit._progress import progress_context
    from napari_dynfit.errors import Cancelled

    pytest.importorskip("torch")
    viewer = make_napari_viewer()
    layer = _tracks(viewer, n=100, frames=10)
    seen, ev = [], threading.Event()

    def progress(done, total, desc):
        seen.append((done, total, desc))
        if desc == SETUP and done == 1:
            ev.set()  # Cancel pressed after the imports

    settings = {"layer": layer, "dt": 1.0, "box": None, "weighting": "fixed", "grid": 8, "steps": 10, "chunk": 10,
                "checkpoint": None}
    with progress_context(progress, ev), pytest.raises(Cancelled):
        next(LatentFieldWidget.training(settings))
    assert seen == [(0, SETUP_STAGES, SETUP), (1, SETUP_STAGES, SETUP)]  # nothing after the cancel

    # through the widget's job: Cancel at the first set-up stage it shows
    pinn = LatentFieldWidget(viewer)
    pinn._steps.value, pinn._chunk.value = 1_000_000, 10_000  # the first overlay only after 10 000 steps
    shown = []

    def on_progress(done, total, desc, gen):
        shown.append(desc)
        if desc == SETUP:
            pinn.stop()

    pinn._job.progressed.connect(on_progress)
    pinn.train()
    qtbot.waitUntil(lambda: not pinn._job.running, timeout=120_000)
    assert SETUP in shown and pinn._status.value == "cancelled"
    assert not any(layer.name.startswith(LAYER) for layer in viewer.layers) and pinn._job.join(0)


@pytest.mark.slow
def test_fit_click_does_not_compute_on_the_gui_thread(make_napari_viewer, qtbot):
    """Flow Fit: reading the snapshots and importing torch happen in the worker (slow: the fit's set-up before its
    first cancellation point takes long on a loaded machine)."""
    from napari_dynfit._napari._flow_widget import FlowWidget

    viewer = make_napari_viewer()
    layer = _tracks(viewer, n=34, frames=3)
    viewer.add_points(layer.data[:, 1:], name="cells")
    flow = FlowWidget(viewer)
    flow.score_steps.setValue(100_000)
    spent = _click_cpu(flow.start, flow._job, qtbot, wait_s=600)
    assert spent < 0.5, f"Fit computed {spent:.2f} s on the GUI thread"


def test_project_keeps_tracks_lineage_and_geometry(make_napari_viewer, tmp_path):
    """Saving a project writes the Tracks layer through ``tracks_from_napari(layer, physical=False)``: the data
    coordinates, the lineage and the layer's scale/translate come back."""
    import numpy as np

    from napari_dynfit._napari._project_io import project_layers, save_viewer_project

    viewer = make_napari_viewer()
    data = np.array([[1, 0, 5.0, 6.0], [1, 1, 5.5, 6.5], [2, 2, 4.0, 7.0], [3, 2, 6.0, 6.0]])
    viewer.add_tracks(data, graph={2: [1], 3: [1]}, name="lineage", scale=(1, 0.2, 0.2), translate=(0, 10, 5))
    save_viewer_project(viewer, tmp_path / "prj")
    (back, kwargs, kind), = [t for t in project_layers(tmp_path / "prj") if t[2] == "tracks"]
    np.testing.assert_allclose(back, data)
    assert kwargs["graph"] == {2: [1], 3: [1]}
    np.testing.assert_allclose(kwargs["scale"], (1, 0.2, 0.2))
    np.testing.assert_allclose(kwargs["translate"], (0, 10, 5))


def test_closing_the_viewer_ends_a_job_without_napari_private_window(make_napari_viewer, qtbot, monkeypatch):
    """``StepJob.alive()`` read napari's private ``Window._qt_window`` (gone when the window closes). The viewer's
    Qt window is now found through public API and watched: closing the viewer still ends a running job whose widget
    is not docked (joined, nothing delivered after), and no dynfit code reads ``_qt_window``."""
    import sys

    from napari_dynfit._progress import progress_iter

    viewer = make_napari_viewer()
    reads = []

    def get(window):
        caller = sys._getframe(1).f_code
        if "napari_dynfit" in caller.co_filename:
            reads.append(caller.co_name)
        try:
            return window.__dict__["_qt_window"]
        except KeyError:  # napari's Window.close() deleted it
            raise AttributeError("_qt_window") from None

    def put(window, value):
        window.__dict__["_qt_window"] = value

    def drop(window):
        del window.__dict__["_qt_window"]

    monkeypatch.setattr(type(viewer.window), "_qt_window", property(get, put, drop), raising=False)
    job, _runs, _stop, _status = _job(viewer)  # not docked: its widgets live outside the viewer
    shown = []

    def compute():
        for i in progress_iter(range(10**6), desc="long"):
            time.sleep(0.02)
            yield i

    job.start(compute, on_yield=shown.append)
    qtbot.waitUntil(lambda: len(shown) > 2, timeout=60_000)
    assert job.alive()
    viewer.close()
    assert job.join(0) and not job.alive()  # cancelled and joined while the window closed
    n = len(shown)
    for _ in range(20):
        qtbot.wait(10)
    assert len(shown) == n
    assert reads == [], reads
