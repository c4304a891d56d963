"""The probability-flow widget: fit from a Points layer, live drift overlay, output layers, cancel."""

import numpy as np
import pytest

from napari_dynfit.sim.snapshots import simulate_ou_snapshots

pytestmark = pytest.mark.gui


def _points(viewer, n=150, dt=0.25):
    B = np.array([[1.0, 1.5], [-1.0, 0.5]])
    table = simulate_ou_snapshots(B, 0.5, [0.0, dt, 2 * dt], n, mean0=[2.0, 2.0], cov0=0.5 * np.eye(2), seed=0)
    frames = np.round(table.time.to_numpy() / dt)
    return viewer.add_points(np.c_[frames, table[["x0", "x1"]].to_numpy()], name="cells")


def test_flow_widget_fit_and_layers(make_napari_viewer, qtbot):
    from napari_dynfit._napari._flow_widget import FlowWidget

    viewer = make_napari_viewer()
    _points(viewer)
    w = FlowWidget(viewer)
    assert w.layer.currentText() == "cells"
    w.dt.setValue(0.25)
    w.score_steps.setValue(30)
    w.steps.setValue(12)
    w.growth.setChecked(True)
    snaps = w.snapshots()
    assert np.allclose(snaps.times, [0.0, 0.25, 0.5]) and snaps.dim == 2
    w.start()
    qtbot.waitUntil(lambda: w.run_btn.isEnabled(), timeout=120000)
    assert w.model is not None
    names = [ly.name for ly in viewer.layers]
    # the growth map's name says what its colour bar shows: a rate per unit of the frame interval (0.25 of a unit
    # the points do not name)
    assert {"PFI drift", "PFI growth rate (1/time unit)", "PFI trajectories"} <= set(names)
    vec = viewer.layers["PFI drift"].data
    assert vec.shape[1:] == (2, 2)
    # arrows along the drift, scaled together so that the longest is 0.9 arrow-grid spacings (visible at any units)
    f = w.model.drift(vec[:, 0])
    c = np.linalg.norm(vec[:, 1], axis=1).max() / np.linalg.norm(f, axis=1).max()
    assert np.allclose(vec[:, 1], c * f, atol=1e-4 * np.abs(vec[:, 1]).max())
    spacing = np.sqrt(np.prod(np.ptp(vec[:, 0], axis=0)) / len(vec))
    assert np.linalg.norm(vec[:, 1], axis=1).max() == pytest.approx(0.9 * spacing)
    # showing a result again (a re-run) updates the three layers in place: no renamed copies
    shown = {n: viewer.layers[n] for n in ("PFI drift", "PFI growth rate (1/time unit)", "PFI trajectories")}
    n_layers, tracks = len(viewer.layers), shown["PFI trajectories"].data.copy()
    w._finish(w.model, w._snaps)
    assert len(viewer.layers) == n_layers and all(viewer.layers[k] is v for k, v in shown.items())
    assert shown["PFI trajectories"].data.shape == tracks.shape


def test_flow_widget_cancel(make_napari_viewer, qtbot):
    from napari_dynfit._napari._flow_widget import FlowWidget
    from napari_dynfit.models.flow.pfi import SCORE_DEFAULTS

    viewer = make_napari_viewer()
    _points(viewer)
    w = FlowWidget(viewer)
    # the widget's defaults are fit_flow's (the benchmarks' settings): score steps, flow steps by model
    assert w.score_steps.value() == SCORE_DEFAULTS["steps"] and w.steps.value() == 0
    w.score_steps.setValue(100000)
    w.start()
    w.cancel_btn.click()
    qtbot.waitUntil(lambda: w.run_btn.isEnabled(), timeout=60000)
    assert w.model is None and w.status.text() == "cancelled"


def test_flow_widget_says_not_identifiable(make_napari_viewer, qtbot):
    # 3 frames of 12 cells 0.05 time units apart cannot pin a linear drift: the status line must say so
    from napari_dynfit._napari._flow_widget import FlowWidget

    viewer = make_napari_viewer()
    _points(viewer, n=12, dt=0.05)
    w = FlowWidget(viewer)
    w.dt.setValue(0.05)
    w.score_steps.setValue(10)
    w.steps.setValue(2)
    w.start()
    qtbot.waitUntil(lambda: w.run_btn.isEnabled(), timeout=120000)
    assert w.model is not None and w.model.uncertainty["verdict"] == "not identifiable"
    assert "not identifiable from these data" in w.status.text() and "more points" in w.status.text()


def test_flow_widget_starts_at_the_cli_and_core_defaults(make_napari_viewer, tmp_path):
    """Opened on its own, the widget's fit options are `dynfit infer-flow`'s and ``fit_flow``'s (D has no default
    there: the CLI needs --diffusion; the widget proposes 0.5 with "fit D" off)."""
    import inspect

    pytest.importorskip("torch")
    from napari_dynfit._napari._flow_widget import FlowWidget
    from napari_dynfit.cli import build_parser
    from napari_dynfit.models.flow.pfi import SCORE_DEFAULTS, fit_flow

    w = FlowWidget(make_napari_viewer())
    core = inspect.signature(fit_flow).parameters
    args = build_parser().parse_args(["infer-flow", "snaps.csv", "--diffusion", "0.5", "-o", str(tmp_path / "out")])
    s = w._settings()
    assert s["model"] == args.model == core["model"].default
    assert s["growth"] is args.growth is core["growth"].default
    assert s["steps"] is args.steps is core["steps"].default  # None: by drift model (the benchmarks' settings)
    assert s["score_steps"] == args.score_steps == SCORE_DEFAULTS["steps"]
    assert w.dt.value() == 1.0 and args.dt is None  # the CLI's --dt default 1 (when time comes from 'frame')
