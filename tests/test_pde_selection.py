"""Model selection to the noise floor, held-out blocks, forecast check, identifiability; reference solvers."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from napari_dynfit.fields import FieldBundle
from napari_dynfit.models.pde import discover_pde
from napari_dynfit.models.selection import block_labels, select_on_path
from napari_dynfit.models.stability import stability_selection
from napari_dynfit.sim import pde_solutions as ps

#: PDE-FIND's .mat files: $DYNFIT_PDEFIND_DATA or ../shared/data/pdefind next to the checkout (optional)
DATA = Path(os.environ.get("DYNFIT_PDEFIND_DATA", Path(__file__).resolve().parents[2] / "shared/data/pdefind"))


@pytest.fixture(scope="module")
def fisher():
    return ps.fisher_kpp_front()


def test_reference_solver_matches_exact_linear_solution():
    """ETDRK4 on u_t = -0.5 u_x + 0.1 u_xx (Fourier-exact) and BDF finite differences converge."""
    L, n = 2 * np.pi, 64
    x = np.arange(n) * L / n
    t = np.linspace(0, 1, 11)
    u0 = np.exp(np.sin(x))
    k = 2 * np.pi * np.fft.fftfreq(n, L / n)
    exact = np.real(np.fft.ifft(np.fft.fft(u0)[None] * np.exp((-0.5j * k - 0.1 * k ** 2)[None] * t[:, None])))
    num = ps.solve_periodic(u0, L, t, lambda k: -0.1 * k ** 2, lambda u, k, fft: -0.5j * k * fft(u),
                            steps_per_frame=10)
    assert np.abs(num - exact).max() < 1e-8
    coarse = ps.advection_diffusion_layer(refine=2)
    fine = ps.advection_diffusion_layer(refine=4)
    assert np.abs(coarse["u"] - fine["u"]).max() < 0.02 and fine["u"][-1, -5:].max() > 0.3   # the layer formed


def test_zeldovich_fronts_are_pushed_at_the_theoretical_speed():
    """u_t = D u_xx + r u^2 (1 - u): the plateau's left front moves at sqrt(D r / 2) (pushed front)."""
    b = ps.zeldovich_front()
    u, x, t = np.asarray(b["u"]), np.asarray(b.coords["x"]), np.asarray(b.coords["t"])

    def left(i):                                       # where the left front crosses u = 1/2
        v = u[i, : len(x) // 2]
        j = np.flatnonzero((v[:-1] < 0.5) & (v[1:] >= 0.5))[0]
        return x[j] + (0.5 - v[j]) / (v[j + 1] - v[j]) * (x[j + 1] - x[j])

    assert (left(60) - left(120)) / (t[120] - t[60]) == pytest.approx(np.sqrt(0.2 * 2.0 / 2), rel=0.02)
    assert u[-1].min() > -1e-3 and u[-1].max() < 1 + 1e-3 and u[-1, 3 * len(x) // 4] > 0.9   # the bump ignited


def test_fisher_front_diffusion_found_with_defaults(fisher):
    """1 % noise, default options: u_t = D u_xx + r u - r u^2 with every coefficient within 5 %; u_xx front-only."""
    truth = fisher.attrs["truth"]["u_t"]
    res = discover_pde(ps.add_noise(fisher, 0.01, seed=3), seed=3)
    found = res.equations["u_t"]
    assert set(found) == set(truth)
    for term, c in truth.items():
        assert found[term] == pytest.approx(c, rel=0.05)
        lo, hi = res.model["confidence_intervals"]["u_t"][term]
        assert lo < c < hi
    assert res.identifiable and not res.reasons
    where = res.where["u_t"]
    assert where["u_xx"]["busy_fraction"] < 0.6                 # the dynamics happen at the fronts only
    assert where["u_xx"]["active_fraction"] < where["u"]["active_fraction"]
    assert where["u_xx"]["peak"] > 0.1
    assert res.local_share["u_t"]["u_xx"].ndim == 2
    assert res.forecast["error"] < 0.05
    assert "u_xx" in res.summary() and "not identifiable" not in res.summary()
    # the previous one-decade grid drops the diffusion (issue 15)
    assert "u_xx" not in discover_pde(ps.add_noise(fisher, 0.01, seed=3), decades=1.0, seed=3).equations["u_t"]


def test_look_alike_reaction_loses_to_the_front_diffusion_on_half_size_test_functions(fisher):
    """5 % noise, seed 101: on a travelling front u_t is a function of u, so u + u^2 + u^3 predicts held-out
    u_t as well as the true u + u^2 + u_xx on the default test functions; re-scored on half-size test
    functions the true set wins."""
    truth = fisher.attrs["truth"]["u_t"]
    res = discover_pde(ps.add_noise(fisher, 0.05, seed=101), seed=101)
    assert set(res.equations["u_t"]) == set(truth)
    sel = res.results["u_t"]
    alts = {tuple(sorted(a["terms"])): a for a in sel.alternatives}
    won = alts[tuple(sorted(truth))]
    assert won["chosen"] and won["cv_half"] == min(a["cv_half"] for a in alts.values())
    assert ("u", "u^2", "u^3") in alts and sel.selected.source == "alternative"
    assert "half-size" in sel.reason and res.identifiable
    assert res.model["selection"]["u_t"]["alternatives"] == sel.alternatives


def test_forecast_check_prefers_a_richer_model_that_moves_the_fronts(fisher):
    """With a held-out rule that never lets diffusion in, the forecast check brings it back and says so."""
    res = discover_pde(ps.add_noise(fisher, 0.01, seed=0), gain=1e3, seed=0)
    assert res.forecast["switched"] and "u_xx" in res.equations["u_t"]
    assert "forecast check" in res.summary()


def test_pure_noise_and_short_movie_are_not_identifiable(tmp_path, capsys):
    from napari_dynfit.cli import main

    rng = np.random.default_rng(0)
    t, x = np.linspace(0, 4, 41), np.linspace(0, 10, 64, endpoint=False)
    noise = FieldBundle({"u": rng.standard_normal((41, 64))}, {"t": t, "x": x}, periodic=(True,))
    res = discover_pde(noise, seed=0)
    assert not res.identifiable and res.reasons and res.hints
    assert "not identifiable from these data" in res.summary()
    short = FieldBundle({"u": np.sin(x)[None] * np.exp(-t[:8, None])}, {"t": t[:8], "x": x}, periodic=(True,))
    res = discover_pde(short)
    assert not res.identifiable and "frames" in res.reasons[0] and "longer movie" in res.hints[0]
    path = tmp_path / "short.npz"
    short.save(path)
    assert main(["discover-pde", str(path), "-o", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "not identifiable from these data" in out and "u_t =" not in out
    model = json.loads((tmp_path / "m.json").read_text())
    assert model["identifiability"]["identifiable"] is False and model["identifiability"]["reasons"]


def test_select_on_path_finds_a_small_localized_term():
    """A term that is nonzero in 5 % of the rows with a normalised coefficient two decades below the
    largest: the one-decade grid misses it, the path to the noise floor plus held-out blocks keeps it."""
    rng = np.random.default_rng(1)
    n, m = 2000, 8
    G = rng.standard_normal((n, m))
    G[:, 3] = 0.0
    front = rng.choice(n, n // 20, replace=False)
    G[front, 3] = rng.standard_normal(len(front))
    xi = np.zeros(m)
    xi[[0, 1, 3]] = [1.0, -0.8, 0.2]
    y = G @ xi + 0.003 * rng.standard_normal(n)
    names = [f"t{j}" for j in range(m)]
    labels = block_labels((20, 100), (4, 2)).ravel()
    sel = select_on_path(G, y, names, labels, seed=0)
    assert sel.selected.terms == ["t0", "t1", "t3"]
    assert sel.selected.coefficients["t3"] == pytest.approx(0.2, rel=0.05)
    assert sel.penalties[-1] < 0.01 * sel.penalties[0]           # the path reaches two decades down
    assert stability_selection(G, y, names, seed=0).selected == ["t0", "t1"]


@pytest.mark.skipif(not DATA.exists(), reason="PDE-FIND .mat files not available")
@pytest.mark.parametrize("name", ["burgers", pytest.param("kuramoto_sivishinky", marks=pytest.mark.slow),
                                  pytest.param("kdv", marks=pytest.mark.slow)])
def test_generated_pdefind_data_match_the_mat_files(name):
    from napari_dynfit.fields.matfile import read_pdefind_mat

    ours, theirs = ps.PDEFIND[name](), read_pdefind_mat(DATA / f"{name}.mat")
    assert ours.shape == theirs.shape
    assert np.abs(ours.coords["x"] - theirs.coords["x"]).max() < 1e-9
    assert np.abs(ours["u"] - theirs["u"]).max() < 1e-4 * np.abs(theirs["u"]).max()


@pytest.mark.slow
def test_localized_benchmark_figures():
    """Issue 15, the figure of docs/pde.md on held-out noise seeds 400-404 (tuned on 100-104): default options,
    1 % and 5 % noise, the exact term set and every coefficient within 5 % on 5/5 seeds for at least four of the
    five localized equations at each noise level; every localized equation exact and identifiable on every seed;
    Burgers/KdV/KS (our solvers) at 10 % noise 5/5 within 5 %."""
    from napari_dynfit.bench import pde_localized as bench_pde_localized

    res = bench_pde_localized.run(seeds=5, first_seed=400)["results"]
    print({k: (r["ours"]["n_exact"], r["ours"]["n_within_5pct"], r["ours"]["max_rel_coef_error_when_exact"])
           for k, r in res.items()})                                  # the figures (pytest -s)
    for key, row in res.items():
        assert row["ours"]["n_exact"] == 5, key
        assert row["ours"]["n_identifiable"] == 5, key
        assert row["ours"]["max_rel_coef_error_when_exact"] < 0.1, key
        if "one_decade" in row:
            assert row["one_decade"]["n_exact"] == 0, key          # the previous grid misses the localized term
    for noise in ("0.01", "0.05"):
        met = [name for name in ps.LOCALIZED if res[f"{name}@{noise}"]["ours"]["n_within_5pct"] == 5]
        assert len(met) >= 4, (noise, met)
    for name in ps.PDEFIND:
        assert res[f"{name}@0.1"]["ours"]["n_within_5pct"] == 5, name
    # without the noise correction Allen-Cahn's coefficients shrink beyond 5 % at 5 % noise
    assert res["allen_cahn@0.05"]["no_noise_correction"]["n_within_5pct"] < 5
