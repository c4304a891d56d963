"""Dominant balance: Burgers' three regimes through the CLI, synthetic equation spaces, errors."""

import json

import numpy as np
import pytest

from napari_dynfit import InputError
from napari_dynfit.cli import main
from napari_dynfit.fields import FieldBundle
from napari_dynfit.io import load_fields
from napari_dynfit.models.balance import (
    EquationSpace,
    dominant_balance,
    dropped_residual,
    equation_space,
    find_balances,
    parse_groups,
    plot_equation_space,
)

BURGERS = None  #: path of the Burgers .mat file (set by the fixture below: published or generated)


@pytest.fixture(autouse=True, scope="module")
def _burgers_path(pdefind_mat):
    global BURGERS
    BURGERS = pdefind_mat("burgers")
BURGERS_MODEL = {"format": "dynfit-model/1", "equations": {"u_t": {"u*u_x": -1.0, "u_xx": 0.1}}}


@pytest.fixture(scope="module")
def burgers_cli(tmp_path_factory):
    d = tmp_path_factory.mktemp("balance")
    model = d / "burgers.json"
    model.write_text(json.dumps(BURGERS_MODEL))
    out = d / "out"
    assert main(["balance", str(model), BURGERS, "-o", str(out), "--plot"]) == 0
    return json.loads((out / "balances.json").read_text()), np.load(out / "regions.npy"), out


def test_burgers_three_regimes_and_shock(burgers_cli):
    table, regions, out = burgers_cli
    u = load_fields(BURGERS)
    assert regions.shape == u.shape == (101, 256)
    sets = [tuple(b["terms"]) for b in table["balances"]]
    assert len(set(sets)) == len(sets)  # merged: one entry per active set
    none, inviscid, shock = (), ("u_t", "u*u_x"), ("u_t", "u*u_x", "u_xx")
    for s in (none, inviscid, shock):
        assert s in sets, f"{s} missing from {sets}"
        assert table["balances"][sets.index(s)]["fraction"] > 0.05
    assert sum(b["fraction"] for b in table["balances"]) == pytest.approx(1.0)
    for k in range(len(sets)):
        assert np.mean(regions == k) == pytest.approx(table["balances"][k]["fraction"])
    # independent numpy terms
    x, t, U = u.coords["x"], u.coords["t"], u["u"]
    ux = np.gradient(U, x, axis=1)
    uxx = np.gradient(ux, x, axis=1)
    ut = np.gradient(U, t, axis=0)
    # the shock is where |u_x| is largest
    top = np.abs(ux) >= np.quantile(np.abs(ux), 0.99)
    assert np.mean(regions[top] == sets.index(shock)) > 0.95
    steepest = np.argmax(np.abs(ux), axis=1)
    assert np.mean(regions[np.arange(len(t)), steepest] == sets.index(shock)) > 0.9
    # inviscid steepening: viscosity is small next to advection there
    inv = regions == sets.index(inviscid)
    assert np.median(np.abs(0.1 * uxx[inv]) / np.abs(U * ux)[inv]) < 0.2
    # no dynamics: all terms small
    quiet = regions == sets.index(none)
    strength = [b["strength"] for b in table["balances"]]
    assert strength[sets.index(none)] < 0.2 and max(strength) == strength[sets.index(shock)]
    assert np.quantile(np.abs(ut[quiet]), 0.9) < 0.05 * np.abs(ut).max()
    assert (out / "equation_space.png").stat().st_size > 1000


def test_equation_space_signs_and_balance_api():
    u = load_fields(BURGERS, t_stop=40)
    sp = equation_space(u, BURGERS_MODEL)
    assert sp.terms == ["u_t", "u*u_x", "u_xx"] and sp.signs == pytest.approx({"u_t": 1.0, "u*u_x": 1.0, "u_xx": -0.1})
    assert sp.members == [["u_t"], ["u*u_x"], ["u_xx"]]
    assert sp.values.shape == (40 * 256, 3, 1)
    # the model holds: the signed terms nearly cancel
    total = np.sqrt(np.mean(sp.values.sum(axis=1) ** 2))
    assert total < 0.02 * np.sqrt(np.mean(sp.values[:, 0] ** 2))
    res = find_balances(sp, n_clusters=4, seed=1)
    assert res.regions.shape == (40, 256) and res.n_clusters == 4 and res.bic == {}
    assert res.uncertainty.min() >= 0 and res.uncertainty.max() <= 1
    assert res.samples.shape[1:] == (3, 1) and len(res.samples) == len(res.sample_regions)
    df = res.table()
    assert list(df.columns) == ["balance", "terms", "fraction", "residual", "strength"]
    fig = plot_equation_space(res)
    assert len(fig.axes) == 3
    # into a figure with its own layout (the napari widget's constrained one): kept, and no warning that
    # tight_layout replaced it (it was printed on every "Find balances")
    import warnings

    from matplotlib.figure import Figure

    own = Figure(layout="constrained")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_equation_space(res, fig=own)
    assert type(own.get_layout_engine()).__name__ == "ConstrainedLayoutEngine" and len(own.axes) == 3


def _synthetic_space(rng, n=3000):
    """Three regions in the equation space of a + b + c = 0: a=-b, a=-c, and quiet."""
    s = rng.uniform(0.5, 2.0, size=n) * rng.choice([-1, 1], size=n)
    vals = np.zeros((3 * n, 3, 1))
    vals[:n, 0, 0], vals[:n, 1, 0] = s, -s
    vals[n:2 * n, 0, 0], vals[n:2 * n, 2, 0] = 2 * s, -2 * s
    vals += 0.01 * rng.normal(size=vals.shape)
    truth = np.repeat([0, 1, 2], n)
    return _space(["a", "b", "c"], vals), truth


def _space(terms, vals):
    return EquationSpace(terms[0], terms, [[t] for t in terms], dict.fromkeys(terms, 1.0), vals, vals.shape[:1])


def test_find_balances_synthetic_regions_merge_and_posteriors(rng):
    sp, truth = _synthetic_space(rng)
    res = find_balances(sp, max_clusters=6, seed=0)
    sets = [tuple(b.terms) for b in res.balances]
    assert sorted(sets) == sorted([(), ("a", "b"), ("a", "c")])
    for region, want in ((0, ("a", "b")), (1, ("a", "c")), (2, ())):
        assert np.mean(res.regions[truth == region] == sets.index(want)) > 0.97
    assert res.uncertainty.mean() < 0.05
    # more components than regions: clusters with equal active sets are merged
    many = find_balances(sp, n_clusters=8, seed=0)
    assert sorted(tuple(b.terms) for b in many.balances) == sorted(sets)
    assert sum(len(b.clusters) for b in many.balances) == 8
    # dropped-term residual: exact balance 0, dropping an active term 1
    pts = sp.values[truth == 0]
    assert dropped_residual(pts, np.array([True, True, False])) < 0.02
    assert dropped_residual(pts, np.array([True, False, False])) == pytest.approx(1.0, abs=0.02)
    # two large terms that cancel each other are not negligible: their own norms count, not their sum
    pair = np.zeros((100, 3, 1))
    pair[:, 1, 0], pair[:, 2, 0], pair[:, 0, 0] = 1.0, -1.0, 0.01
    assert dropped_residual(pair, np.array([True, False, False])) == pytest.approx(np.sqrt(2))
    assert dropped_residual(pair, np.array([False, True, True])) == pytest.approx(0.01)


def test_vector_equation_space(rng):
    t, y, x = np.arange(6) * 0.1, np.arange(16) * 0.5, np.arange(20) * 0.5
    T, Y, X = np.meshgrid(t, y, x, indexing="ij")
    rho = 1 + 0.3 * np.sin(2 * np.pi * (X - T) / 10)
    p = np.stack([0.1 * np.cos(2 * np.pi * Y / 8), 0.5 + 0.2 * np.sin(2 * np.pi * (X - T) / 10)], -1)
    b = FieldBundle({"rho": rho, "p": p}, {"t": t, "y": y, "x": x}, periodic=(True, True))
    model = {"equations": {"rho_t": {"div(p)": -1.0}, "p_t": {"grad(rho)": -0.5, "p": -0.1}}}
    sp = equation_space(b, model, "p_t", method="spectral")
    assert sp.terms == ["p_t", "grad(rho)", "p"] and sp.values.shape == (6 * 16 * 20, 3, 2)
    np.testing.assert_allclose(sp.values[:, 2], 0.1 * p.reshape(-1, 2))
    res = dominant_balance(b, model, "p_t", method="spectral", n_clusters=2)
    assert res.regions.shape == (6, 16, 20)
    with pytest.raises(InputError, match="no equation 'q_t'"):
        equation_space(b, model, "q_t")
    with pytest.raises(InputError, match="field"):
        equation_space(b.select(["rho"]), model, "p_t")


def test_balance_errors(tmp_path):
    sp = _space(["a", "b"], np.zeros((5, 2, 1)))
    with pytest.raises(InputError, match="grid points"):
        find_balances(sp)
    bad = _space(["a", "b"], np.full((50, 2, 1), np.nan))
    with pytest.raises(InputError, match="NaN"):
        find_balances(bad)
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"equations": {"u_t": {}}}))
    assert main(["balance", str(model), BURGERS, "-o", str(tmp_path / "o")]) == 2
    model.write_text("{not json")
    assert main(["balance", str(model), BURGERS, "-o", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o" / "balances.json").exists()


def test_demo_stage(tmp_path):
    from napari_dynfit.demo.balance import DEMO_STAGE
    from napari_dynfit.report import DemoContext, Report

    order, title, func = DEMO_STAGE
    assert order == 80
    ctx = DemoContext(out_dir=tmp_path, report=Report("t"), quick=True)
    ctx.run_stage(title, func)  # no fields/model yet: skipped cleanly
    assert "Skipped" in ctx.report.to_html() and not (tmp_path / "balance").exists()
    ctx.artefacts.update(fields=load_fields(BURGERS, t_stop=40), model=BURGERS_MODEL)
    ctx.run_stage(title, func)
    res = ctx.artefacts["balance"]
    saved = json.loads((tmp_path / "balance" / "balances.json").read_text())
    assert [b["terms"] for b in saved["balances"]] == [b.terms for b in res.balances]
    assert np.load(tmp_path / "balance" / "regions.npy").shape == (40, 256)
    assert "<table" in ctx.report.to_html()


def test_groups_sum_model_terms_into_physical_terms(tmp_path):
    u = load_fields(BURGERS, t_stop=40)
    raw = equation_space(u, BURGERS_MODEL)
    # material derivative Du/Dt = u_t + u u_x as one term
    sp = equation_space(u, BURGERS_MODEL, groups={"Du/Dt": ["u_t", "u * u_x"]})
    assert sp.terms == ["Du/Dt", "u_xx"] and sp.members == [["u_t", "u*u_x"], ["u_xx"]]
    np.testing.assert_allclose(sp.values[:, 0], raw.values[:, 0] + raw.values[:, 1])
    np.testing.assert_allclose(sp.values[:, 1], raw.values[:, 2])
    assert parse_groups(["Du/Dt=u_t, u*u_x", "visc=u_xx"]) == {"Du/Dt": ["u_t", "u*u_x"], "visc": ["u_xx"]}
    for bad, match in (({"g": ["u_t", "u_x"]}, "not a term"), ({"g": ["u_t"], "h": ["u_t"]}, "one group"),
                       ({"u_xx": ["u_t", "u*u_x"]}, "also a term"), ({"g": []}, "must list"),
                       ({"all": ["u_t", "u*u_x", "u_xx"]}, "one term")):
        with pytest.raises(InputError, match=match):
            equation_space(u, BURGERS_MODEL, groups=bad)
    for bad in (["alignment"], ["=p"], ["a=p", "a=q"]):
        with pytest.raises(InputError, match="group"):
            parse_groups(bad)
    # through the CLI: balances and balances.json name the group
    model = tmp_path / "burgers.json"
    model.write_text(json.dumps(BURGERS_MODEL))
    out = tmp_path / "out"
    assert main(["balance", str(model), BURGERS, "-o", str(out), "--clusters", "4", "--group", "Du/Dt=u_t,u*u_x"]) == 0
    table = json.loads((out / "balances.json").read_text())
    assert table["terms"] == ["Du/Dt", "u_xx"] and table["groups"] == {"Du/Dt": ["u_t", "u*u_x"]}
    # the shock: viscosity balances the material derivative
    ux = np.gradient(load_fields(BURGERS)["u"], axis=1)
    regions = np.load(out / "regions.npy")
    shock = [b["terms"] for b in table["balances"]][np.bincount(regions[np.abs(ux) >= np.quantile(np.abs(ux), 0.99)]).argmax()]
    assert shock == ["Du/Dt", "u_xx"]
    assert main(["balance", str(model), BURGERS, "-o", str(out), "--group", "visc"]) == 2
