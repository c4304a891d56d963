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
                        ("pi_th", w._pi_th.value), ("stochastic", True if w._stochastic.value else None), ("seed", w._seed.value)):
        assert value == core[name].default == getattr(args, name), name
    # the same candidate terms as the CLI and the core for a scalar field (the library the spin boxes build)
    t, x = np.arange(4.0), np.linspace(0.0, 1.0, 8)
    bundle = FieldBundle({"u": np.zeros((4, 8))}, {"t": t, "x": x})
    assert w._equations(bundle) == _equations(bundle, args) == default_equations(bundle)
    assert "u^3" in w._equations(bundle)["u_t"]


def _bundle(shape, dt, value):
    """A scalar field ``u`` on a ``(t, [y,] x)`` grid of ``shape``, time step ``dt``: ``value``, 0 on the first
    column (so its range is ``value`` to 0)."""
    from napari_dynfit.fields import FieldBundle

    axes = ("y", "x")[-(len(shape) - 1):]
    coords = {"t": np.arange(shape[0]) * dt, **{a: np.arange(n) * 0.5 for a, n in zip(axes, shape[1:])}}
    u = np.full(shape, float(value))
    u[..., 0] = 0.0
    return FieldBundle({"u": u}, coords)


@pytest.mark.gui
def test_pde_widget_rerun_starts_the_model_layer_empty_on_the_new_grid(make_napari_viewer):
    """A re-run never shows a previous model's frames as the new one's: the model layer (the same layer object)
    starts empty (NaN), on the new fields' grid and shape, its contrast that of the new observed field, widened
    to the new model's values; a model the data do not pin down (no forecast) leaves it empty."""
    from napari_dynfit._napari._pde_widget import PDEWidget

    viewer = make_napari_viewer()
    w = PDEWidget(viewer)

    def runs(bundle, frames, value, ok=True):
        def compute():
            yield "model", bundle, {"equations": {"u_t": {"u_xx": 0.1}}}, (ok, [] if ok else ["few data"], [])
            for i in range(frames):
                yield "frame", i, {"u": np.full(bundle.shape[1:], float(value))}
        w.compute = compute
        w.run(block=True)
        return viewer.layers["model: u (a.u.)"]

    first = runs(_bundle((6, 16), 0.1, 10.0), 6, 20.0)     # observed 10, model 20: contrast widened to 20
    assert np.all(first.data == 20.0)
    np.testing.assert_allclose(first.contrast_limits, (0.0, 20.0))
    # another model on other data, stopped after 3 frames: frames 3-5 of the first model are gone
    second = runs(_bundle((6, 16), 0.1, -1.0), 3, 0.5)
    assert second is first
    assert np.all(second.data[:3] == 0.5) and np.isnan(second.data[3:]).all()
    np.testing.assert_allclose(second.contrast_limits, (-1.0, 0.5))  # the new observed range, widened to 0.5
    np.testing.assert_allclose(second.contrast_limits_range, (-1.0, 0.5))
    # another grid: 2D, 4 frames 0.2 apart; the stack is replaced, the layer follows the grid
    third = runs(_bundle((4, 5, 7), 0.2, 3.0), 4, 4.0)
    assert third is first and third.data.shape == (4, 5, 7) and np.all(third.data == 4.0)
    np.testing.assert_allclose(third.scale, (0.2, 0.5, 0.5))
    np.testing.assert_allclose(viewer.layers["observed: u (a.u.)"].scale, (0.2, 0.5, 0.5))
    np.testing.assert_allclose(third.contrast_limits, (0.0, 4.0))
    # not identifiable: no forecast, and nothing of the previous model is left
    fourth = runs(_bundle((4, 5, 7), 0.2, 3.0), 0, 0.0, ok=False)
    assert fourth is first and np.isnan(fourth.data).all()
    assert "not identifiable" in w._status.value


def test_pde_widget_ticks_particle_noise_when_the_core_chose_it(make_napari_viewer):
    """Unticked, the box lets the core decide (Ito form for fields coarse-grained from particles); when it did,
    the box shows it, so a re-run or a saved project repeats the same fit."""
    from napari_dynfit._napari._pde_widget import PDEWidget

    w = PDEWidget(make_napari_viewer())
    assert not w._stochastic.value
    for chosen in (False, True):
        def compute(chosen=chosen):
            yield "model", _bundle((6, 16), 0.1, 1.0), {"equations": {"u_t": {"u_xx": 0.1}},
                                                      "method": {"stochastic": chosen}}, (False, ["few"], [])
        w.compute = compute
        w.run(block=True)
        assert w._stochastic.value is chosen
