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
