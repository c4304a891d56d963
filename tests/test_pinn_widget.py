"""The "Latent field (PINN)" widget opened on its own starts at the defaults of `dynfit latent-field` and the core."""

import inspect

import pytest

pytest.importorskip("torch", reason="the learning stack: pip install 'napari-dynfit[learn]'")

pytestmark = pytest.mark.gui


def _cli_defaults(tmp_path, *extra):
    from napari_dynfit.cli import build_parser

    return build_parser().parse_args(["latent-field", str(tmp_path / "tracks.csv"), "-o", str(tmp_path / "f.zarr"),
                                      *extra])


def test_latent_field_widget_starts_at_the_cli_and_core_defaults(make_napari_viewer, tmp_path):
    from napari_dynfit._napari._pinn_widget import LatentFieldWidget
    from napari_dynfit.models.pinn import fit_latent_field
    from napari_dynfit.models.pinn.chemotaxis import latent_chemotaxis_pinn

    w = LatentFieldWidget(make_napari_viewer())
    core, args = inspect.signature(fit_latent_field).parameters, _cli_defaults(tmp_path)
    # Adam steps: what the latent-chemotaxis figure is measured with (1500), not a GUI-only number
    assert w._steps.value == core["steps"].default == args.steps == 1500
    assert w._weighting.value == core["weighting"].default == args.weighting
    assert w._weighting.value == inspect.signature(latent_chemotaxis_pinn).parameters["weighting"].default
    # no periodic box unless given (0: none), as the CLI without --box
    assert (w._box_y.value, w._box_x.value) == (0.0, 0.0) and args.box is None
    assert w._settings()["box"] is None
    # "Bayesian": off as without --bayesian; draws per chain and the warm-up steps as `--bayesian`'s defaults
    bayes = _cli_defaults(tmp_path, "--bayesian")
    assert w._bayesian.value is False and args.bayesian is False
    assert w._draws.value == bayes.draws
    assert w._steps.value == bayes.steps  # warm-up Adam steps of the BPINN
    from napari_dynfit.models.pinn.bayes_latent import bayesian_latent_field

    bcore = inspect.signature(bayesian_latent_field).parameters
    assert w._steps.value == bcore["warmup_steps"].default
    assert w._draws.value == bcore["draws"].default == bcore["tune"].default == bayes.tune  # the widget tunes "draws"


def test_latent_field_layers_update_in_place_and_contrast_follows_phi(make_napari_viewer):
    """Each update (live while training, and a re-run) replaces phi in the same layer, and the contrast follows
    phi's range (napari keeps an Image's limits when its data is replaced; phi's range moves while it trains)."""
    from types import SimpleNamespace

    import numpy as np

    from napari_dynfit._napari._pinn_widget import LAYER, STD_LAYER, LatentFieldWidget

    viewer = make_napari_viewer()
    w = LatentFieldWidget(viewer)
    w._plot_curves = w._plot_histograms = lambda *_: None  # the plots are not under test
    coords = {"t": np.arange(3.0), "y": np.arange(4.0), "x": np.arange(5.0)}
    pinn = SimpleNamespace(step=10, coefficient_values=lambda: {"Dc": 0.1})
    made = []
    w.made.connect(made.append)
    phi = np.linspace(0.0, 1.0, 60).reshape(3, 4, 5)
    w._show((pinn, phi, coords))
    layer = viewer.layers[w.layer_name()]
    assert made == [layer] and tuple(layer.contrast_limits) == pytest.approx((0.0, 1.0))
    layer.colormap = "gray"  # the user's colours survive the updates
    w._show((pinn, 50.0 + 10 * phi, coords))
    assert viewer.layers[w.layer_name()] is layer and made == [layer, layer] and layer.colormap.name == "gray"
    assert tuple(layer.contrast_limits) == pytest.approx((50.0, 60.0))
    np.testing.assert_allclose(layer.data, 50.0 + 10 * phi)
    w._show((pinn, np.full_like(phi, 2.0e4), coords))  # a flat large field still gets two distinct limits
    low, high = layer.contrast_limits
    assert low < high and low <= 2.0e4 <= high

    class Bundle(dict):
        pass

    res = SimpleNamespace(diagnostics={"draws": 3, "chains": 1, "stopped": False}, noise={}, samples={})
    for shift in (0.0, -5.0):  # the Bayesian result twice: mean (the same phi layer) and std, in place
        bundle = Bundle(phi=phi + shift, phi_std=0.1 * phi + 0.01 * (1 - shift))
        bundle.coords = coords
        w._show_posterior(("final", bundle, res))
        mean, std = viewer.layers[w.layer_name(LAYER)], viewer.layers[w.layer_name(STD_LAYER)]
        assert mean is layer and tuple(mean.contrast_limits) == pytest.approx((shift, 1.0 + shift))
        assert tuple(std.contrast_limits) == pytest.approx((0.01 * (1 - shift), 0.1 + 0.01 * (1 - shift)))
    assert len(viewer.layers) == 2


def test_training_progress_counts_against_all_steps_and_the_plot_keeps_its_margins(make_napari_viewer):
    """The widget trains in chunks ("refresh every"): its progress reads n / Adam steps (it read 100/200 of
    1500), and its fixed plot layout is applied (``set_layout_engine("none")`` after constrained layout
    vetoed ``subplots_adjust`` with a warning, leaving matplotlib's default margins)."""
    import numpy as np

    from napari_dynfit._napari._pinn_widget import LatentFieldWidget
    from napari_dynfit._progress import progress_context

    viewer = make_napari_viewer()
    w = LatentFieldWidget(viewer)
    assert w._figure.get_layout_engine() is None
    assert w._figure.axes[0].get_position().x0 == pytest.approx(0.16)
    rng = np.random.default_rng(0)
    rows = [(tid, t, *(xy + rng.normal(0, 0.3, 2) * t)) for tid, xy in enumerate(rng.uniform(2, 18, (30, 2)))
            for t in range(6)]
    w._layer.reset_choices()
    viewer.add_tracks(np.array(rows, float), name="tracks")
    w._layer.value = viewer.layers["tracks"]
    w._steps.value, w._chunk.value, w._grid.value = 30, 10, 8
    seen = []
    with progress_context(lambda done, total, desc: seen.append((done, total, desc))):
        steps = [pinn.step for pinn, *_ in LatentFieldWidget.training(w._settings())]
    assert steps == [10, 20, 30]
    totals = {total for _, total, desc in seen if desc == "PINN training"}
    assert totals == {30}, seen


def test_latent_field_widget_takes_the_periodic_box_the_data_state(make_napari_viewer):
    """Tracks of a periodic sample (``metadata["periodic"]``) set the page's periodic box to the field of view
    (it stayed at 0, "none", on the GUI sample's periodic box); tracks that say they are not periodic keep 0."""
    import numpy as np

    from napari_dynfit._napari._defaults import apply_defaults, data_defaults
    from napari_dynfit._napari._pinn_widget import LatentFieldWidget

    viewer = make_napari_viewer()
    w = LatentFieldWidget(viewer)
    image = viewer.add_image(np.zeros((5, 40, 60)), scale=(0.5, 2.0, 2.0), metadata={"periodic": True, "dt": 0.5})
    tracks = viewer.add_tracks(np.array([[0, 0, 10.0, 10.0], [0, 1, 12.0, 11.0]]), metadata={"periodic": True})
    done = apply_defaults(w, data_defaults(tracks).merged(data_defaults(image)))
    assert (w._box_y.value, w._box_x.value) == (80.0, 120.0) and w._settings()["box"] == (80.0, 120.0)
    assert done.count("periodic box") == 1, done
    w2 = LatentFieldWidget(viewer)
    open_box = viewer.add_tracks(np.array([[0, 0, 10.0, 10.0], [0, 1, 12.0, 11.0]]), metadata={"periodic": False})
    apply_defaults(w2, data_defaults(open_box).merged(data_defaults(image)))
    assert w2._settings()["box"] is None


def test_curves_draw_while_the_training_thread_appends(make_napari_viewer):
    """The training thread appends to the histories while the widget reads them: a step already in ``"step"`` but
    not yet in a loss made matplotlib raise ("x and y must have same first dimension") in the GUI walk."""
    import numpy as np

    from napari_dynfit._napari._pinn_widget import LatentFieldWidget

    class Half:  # a history caught between two appends
        history = {"step": [0, 10], "loss:data": [1.0], "loss:pde": [2.0, 1.5]}
        weighting = type("W", (), {"names": ["data", "pde"]})()

        def weight_history(self):
            return {"step": np.array([0, 10]), "data": np.array([1.0]), "pde": np.array([1.0, 0.9])}

    w = LatentFieldWidget(make_napari_viewer())
    w._plot_curves(Half())
    lines = {tuple(np.asarray(line.get_xdata())): len(line.get_ydata()) for line in w._figure.axes[0].lines}
    assert lines == {(0,): 1, (0, 10): 2}, lines
