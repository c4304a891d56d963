"""PDE-discovery widget: stability paths, rendered equation, observed vs simulated layers."""

import numpy as np
import pytest

DATA = None  #: path of the Burgers .mat file (set by the fixture below: published or generated)
KDV = None


@pytest.fixture(autouse=True, scope="module")
def _pdefind_paths(pdefind_mat):
    global DATA, KDV
    DATA, KDV = pdefind_mat("burgers"), pdefind_mat("kdv")


@pytest.mark.gui
def test_pde_widget_discovers_burgers_and_simulates(make_napari_viewer, tmp_path):
    from napari_dynfit._napari._pde_widget import PDEWidget
    from napari_dynfit.models import read_model

    viewer = make_napari_viewer()
    w = PDEWidget(viewer)
    w._fields.value = DATA
    w.run(block=True)
    assert w.model is not None, w._status.value
    assert set(w.model["equations"]["u_t"]) == {"u*u_x", "u_xx"}
    obs, sim = viewer.layers["observed: u (a.u.)"], viewer.layers["model: u (a.u.)"]  # no units in a .mat
    assert obs.data.shape == sim.data.shape == (101, 256)
    np.testing.assert_allclose(obs.scale, sim.scale)
    rel = np.linalg.norm(sim.data - obs.data) / np.linalg.norm(obs.data)
    assert rel < 0.05
    assert len(w._figure.axes) == 2                     # equation panel + one stability-path panel
    assert "u_{t}" in w._figure.axes[0].texts[0].get_text()
    w._save.value = tmp_path / "model.json"
    w.save()
    assert read_model(tmp_path / "model.json")["equations"]["u_t"].keys() == {"u*u_x", "u_xx"}


@pytest.mark.gui
def test_pde_widget_reports_missing_fields(make_napari_viewer):
    from napari_dynfit._napari._pde_widget import PDEWidget

    w = PDEWidget(make_napari_viewer())
    w.run(block=True)
    assert w.model is None and "fields file" in w._status.value


@pytest.mark.gui
def test_pde_widget_runs_in_a_thread_worker(make_napari_viewer, qtbot):
    from napari_dynfit._napari._pde_widget import PDEWidget

    viewer = make_napari_viewer()
    w = PDEWidget(viewer)
    w._fields.value = KDV
    w.run()
    assert w._run.enabled is False and w._stop.enabled is True
    qtbot.waitUntil(lambda: not w._job.running, timeout=120000)
    assert set(w.model["equations"]["u_t"]) == {"u*u_x", "u_xxx"}, w._status.value
    sim = viewer.layers["model: u (a.u.)"].data
    assert np.isfinite(sim).all()                      # every frame was filled while integrating
    assert w._run.enabled is True
