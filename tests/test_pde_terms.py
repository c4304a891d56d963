"""Term vocabulary, evaluator and model JSON (napari_dynfit.models.terms / model_json)."""

import json

import numpy as np
import pytest

from napari_dynfit.errors import InputError
from napari_dynfit.fields import FieldBundle
from napari_dynfit.models import evaluate_terms, format_model, parse_term, read_model, term_kind, write_model


@pytest.mark.parametrize("name", ["u*u_x", "u_xx", "lap(rho)", "|p|^2*p", "p.grad(p)", "grad(div(p))",
                                  "dev(rho)*p", "d_x(u^2)", "(u*v)^2", "1", "rho_t", "u^3*u_xxx"])
def test_parse_roundtrip(name):
    assert str(parse_term(name)) == name
    assert str(parse_term(str(parse_term(name)))) == name


@pytest.mark.parametrize("bad", ["u*", "foo(u)", "u_q", "", "u^x", "|p|"])
def test_parse_errors(bad):
    with pytest.raises(InputError):
        parse_term(bad)


def _bundle2d(n=48, nt=21):
    L = 2 * np.pi
    y = np.arange(n) * L / n
    x = np.arange(n) * L / n
    t = np.linspace(0, 1, nt)
    T, Y, X = np.meshgrid(t, y, x, indexing="ij")
    rho = 1 + 0.3 * np.sin(X) * np.cos(Y) * np.exp(-T)
    p = np.stack([0.2 * np.cos(X + T), 0.1 * np.sin(2 * Y) * np.cos(X)], axis=-1)
    return FieldBundle({"rho": rho, "p": p}, {"t": t, "y": y, "x": x}, periodic=(True, True)), (T, Y, X, rho, p)


@pytest.mark.parametrize("method,tol", [("spectral", 1e-9), ("finite", 2e-2)])
def test_evaluate_against_analytic(method, tol):
    b, (T, Y, X, rho, p) = _bundle2d()
    r = evaluate_terms(b, ["lap(rho)", "div(p)", "grad(rho)", "p.grad(rho)", "|p|^2*p", "dev(rho)*p", "p.grad(p)"],
                       method=method)
    drho_y = -0.3 * np.sin(X) * np.sin(Y) * np.exp(-T)
    drho_x = 0.3 * np.cos(X) * np.cos(Y) * np.exp(-T)
    assert np.abs(r["lap(rho)"] + 2 * (rho - 1)).max() < tol
    div = -0.2 * np.sin(X + T) * 0 + 0.1 * np.sin(2 * Y) * -np.sin(X)  # d_y p_y = 0 (p_y has no y), d_x p_x
    assert np.abs(r["div(p)"] - div).max() < tol
    assert np.abs(r["grad(rho)"][..., 0] - drho_y).max() < tol
    assert np.abs(r["p.grad(rho)"] - (p[..., 0] * drho_y + p[..., 1] * drho_x)).max() < tol
    assert np.allclose(r["|p|^2*p"], (p ** 2).sum(-1)[..., None] * p)
    assert np.allclose(r["dev(rho)*p"], (rho - rho.mean())[..., None] * p)
    # (p.grad)p_x = p_y d_y p_x + p_x d_x p_x
    dpx_y = 0.2 * np.cos(2 * Y) * np.cos(X)
    dpx_x = -0.1 * np.sin(2 * Y) * np.sin(X)
    assert np.abs(r["p.grad(p)"][..., 1] - (p[..., 0] * dpx_y + p[..., 1] * dpx_x)).max() < tol


def test_time_derivative_and_reference():
    b, (T, Y, X, rho, p) = _bundle2d(n=16, nt=41)
    r = evaluate_terms(b, ["rho_t", "dev(rho)"], reference={"rho": 1.0})
    assert np.abs(r["rho_t"] + (rho - 1)).max() < 2e-3
    assert np.allclose(r["dev(rho)"], rho - 1.0)


def test_1d_nonperiodic_derivatives_exact_for_polynomials():
    x = np.linspace(-1, 1, 41)
    t = np.linspace(0, 1, 5)
    u = np.broadcast_to(x ** 4, (5, 41)).copy()
    b = FieldBundle({"u": u}, {"t": t, "x": x})
    r = evaluate_terms(b, ["u_x", "u_xxxx", "u*u_x", "d_x(u^2)"], window=9, polyorder=8)
    assert np.allclose(r["u_x"], 4 * x ** 3, atol=1e-9)
    central = evaluate_terms(b, ["u_x"])["u_x"]  # 3-point stencil: error h^2 u'(3)/6 = 4 x h^2
    assert np.allclose(central[:, 1:-1], (4 * x ** 3 + 4 * x * (x[1] - x[0]) ** 2)[1:-1], atol=1e-9)
    assert np.allclose(r["u_xxxx"], 24, atol=1e-6)
    assert np.allclose(r["d_x(u^2)"], 2 * r["u*u_x"], atol=1e-6)


def test_term_kind_and_errors():
    b, _ = _bundle2d(n=8, nt=5)
    assert term_kind("p.grad(p)", b.kinds) == "vector"
    assert term_kind("div(p)", b.kinds) == "scalar"
    assert term_kind("|p|^2*p", b.kinds) == "vector"
    with pytest.raises(InputError):
        term_kind("p*p", b.kinds)
    with pytest.raises(InputError):
        evaluate_terms(b, ["div(rho)"])
    with pytest.raises(InputError):
        evaluate_terms(b, ["c*rho"])


def test_model_json_roundtrip(tmp_path):
    m = {"equations": {"u_t": {"u * u_x": -1, "u_xx": 0.1}}, "selection_probability": {"u_t": {"u*u_x": 1.0}}}
    path = write_model(m, tmp_path / "m.json")
    back = read_model(path)
    assert back["format"] == "dynfit-model/1"
    assert back["equations"] == {"u_t": {"u*u_x": -1.0, "u_xx": 0.1}}
    assert back["fields"] == ["u"]
    assert format_model(back) == "u_t = -1 u*u_x + 0.1 u_xx"
    (tmp_path / "bad.json").write_text(json.dumps({"equations": {"u_t": {"u*": 1}}}))
    with pytest.raises(InputError):
        read_model(tmp_path / "bad.json")
    (tmp_path / "trunc.json").write_text("{\"equations\": ")
    with pytest.raises(InputError):
        read_model(tmp_path / "trunc.json")
