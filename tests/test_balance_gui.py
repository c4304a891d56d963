"""Dominant-balance widget: regions as a Labels layer over the fields, table and scatter plots."""

import json

import numpy as np
import pytest

from napari_dynfit.sim import write_active_matter_example


@pytest.mark.gui
def test_balance_widget_on_active_matter_file(make_napari_viewer, tmp_path):
    from napari_dynfit._napari._balance_widget import REGIONS, UNCERTAINTY, BalanceWidget

    path = write_active_matter_example(tmp_path / "am.hdf5", size=64, n_steps=6, dt=0.1, seed=5)
    model = tmp_path / "fkpp.json"
    model.write_text(json.dumps({"equations": {"concentration_t": {
        "lap(concentration)": 0.1, "concentration": 1.0, "concentration^2": -1.0}}}))
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-dynfit")
    w = BalanceWidget(viewer)
    assert str(w._fields.value) == str(path)  # proposed from the layers' source
    w._model.value = model
    assert w._equation.choices == ("concentration_t",)
    w._clusters.value = 3
    w._groups.value = "logistic=concentration,concentration^2"
    w.run(block=True)
    assert w.result is not None, w._status.value
    assert w.result.terms == ["concentration_t", "lap(concentration)", "logistic"]
    lab = viewer.layers[REGIONS]
    assert type(lab).__name__ == "Labels" and lab.data.shape == (6, 64, 64)
    np.testing.assert_allclose(lab.scale, viewer.layers["concentration (a.u.)"].scale)
    assert set(np.unique(lab.data)) <= set(range(1, len(w.result.balances) + 1))
    assert viewer.layers[UNCERTAINTY].visible is False
    assert w._table.rowCount() == len(w.result.balances)
    assert len(w._figure.axes) == 3
    assert lab.metadata["balances"] == {i + 1: " + ".join(b.terms) or "no dynamics"
                                        for i, b in enumerate(w.result.balances)}
    # a re-run updates both layers in place (the user's opacity and metadata kept, the balances replaced)
    lab.opacity, lab.metadata["note"] = 0.2, "kept"
    n_layers, unc = len(viewer.layers), viewer.layers[UNCERTAINTY]
    w._clusters.value = 2
    w.run(block=True)
    assert len(viewer.layers) == n_layers and viewer.layers[REGIONS] is lab and viewer.layers[UNCERTAINTY] is unc
    assert lab.opacity == 0.2 and lab.metadata["note"] == "kept"
    assert set(np.unique(lab.data)) <= set(range(1, len(w.result.balances) + 1))
    assert set(lab.metadata["balances"]) == set(range(1, len(w.result.balances) + 1))
    np.testing.assert_array_equal(unc.data, w.result.uncertainty)
    # a re-run on another fields file (another grid): the same layers, on that file's grid
    from napari_dynfit._napari._geometry import fields_kwargs
    from napari_dynfit.io.well import load_fields

    other = write_active_matter_example(tmp_path / "am2.hdf5", size=32, n_steps=6, dt=0.1, seed=5, length=20.0)
    w._fields.value = other
    w.run(block=True)
    geo = fields_kwargs(load_fields(other))
    assert viewer.layers[REGIONS] is lab and viewer.layers[UNCERTAINTY] is unc and lab.data.shape == (6, 32, 32)
    for layer in (lab, unc):
        np.testing.assert_allclose(layer.scale, geo["scale"])
        np.testing.assert_allclose(layer.translate, geo["translate"])


@pytest.mark.gui
def test_balance_widget_reports_missing_inputs(make_napari_viewer):
    from napari_dynfit._napari._balance_widget import BalanceWidget

    w = BalanceWidget(make_napari_viewer())
    w.run(block=True)
    assert w.result is None and "model JSON" in w._status.value


@pytest.mark.gui
def test_balance_widget_starts_at_the_cli_and_core_defaults(make_napari_viewer, tmp_path):
    """Opened on its own, the widget's clustering options are `dynfit balance`'s and ``dominant_balance``'s."""
    import inspect

    from napari_dynfit._napari._balance_widget import BalanceWidget
    from napari_dynfit.cli import build_parser
    from napari_dynfit.models.balance import dominant_balance

    w = BalanceWidget(make_napari_viewer())
    core = inspect.signature(dominant_balance).parameters
    args = build_parser().parse_args(["balance", "model.json", "fields.zarr", "-o", str(tmp_path / "out")])
    assert (w._clusters.value or None) is None is args.clusters is core["n_clusters"].default  # 0 / none: BIC
    assert w._tol.value == pytest.approx(args.tol) and args.tol == core["tol"].default
    assert w._quiet.value == pytest.approx(args.quiet) and args.quiet == core["quiet"].default
    assert w._seed.value == args.seed == core["seed"].default
    assert w._groups.value == "" and args.group == []
