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


@pytest.mark.gui
def test_pde_widget_starts_at_the_cli_and_core_defaults(make_napari_viewer, tmp_path):
    """Opened on its own, the widget's options are those of `dynfit discover-pde` and ``discover_pde``: the scalar
    library (powers <= 3: bistable ``u - u^3``), derivatives, solver, threshold and seed."""
    import inspect

    from napari_dynfit._napari._pde_widget import PDEWidget
    from napari_dynfit.cli import build_parser
    from napari_dynfit.commands.pde import _equations
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models.library import default_library
    from napari_dynfit.models.pde import default_equations, discover_pde

    w = PDEWidget(make_napari_viewer())
    lib = inspect.signature(default_library).parameters
    assert (w._max_power.value, w._max_derivative.value) == (lib["max_power"].default, lib["max_derivative"].default)
    assert w._max_power.value == 3
    core = inspect.signature(discover_pde).parameters
    args = build_parser().parse_args(["discover-pde", str(tmp_path / "f.zarr"), "-o", str(tmp_path / "m.json")])
    for name, value in (("derivative", w._derivative.value), ("solver", w._solver.value),
                        ("pi_th", w._pi_th.value), ("stochastic", w._stochastic.value), ("seed", w._seed.value)):
        assert value == core[name].default == getattr(args, name), name
    # the same candidate terms as the CLI and the core for a scalar field (the library the spin boxes build)
    t, x = np.arange(4.0), np.linspace(0.0, 1.0, 8)
    bundle = FieldBundle({"u": np.zeros((4, 8))}, {"t": t, "x": x})
    assert w._equations(bundle) == _equations(bundle, args) == default_equations(bundle)
    assert "u^3" in w._equations(bundle)["u_t"]
