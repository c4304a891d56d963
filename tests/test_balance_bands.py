"""Dominant balances of travelling Vicsek bands from the particle simulator (slow: ~1 min).

The hydrodynamic model is learned from the coarse-grained particles (weak form, Ito, the Toner-Tu
terms of the polarisation equation); the balances of its ``p_t`` equation are then found on the
same fields. Figures measured with three simulation seeds are in ``docs/balance.md``.
"""

import numpy as np
import pytest

from napari_dynfit.models.balance import dominant_balance

#: Toner-Tu structure of the polarisation equation: pressure, self-advection, linear alignment
#: ``(a + b rho) p``, cubic saturation, elasticity
P_TERMS = ["grad(rho)", "p.grad(p)", "p", "rho*p", "|p|^2*p", "lap(p)"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bands():
    """Fields of travelling bands (frames every 0.4), the learned model and its balances (frames every 0.8)."""
    from napari_dynfit.fields.coarse_grain import coarse_grain
    from napari_dynfit.models.pde import discover_pde
    from napari_dynfit.sim.abp import simulate_abp, vicsek_bands_preset

    # bands form within t ~ 500 (docs/simulator.md); record 300 time units after t = 1300
    warm = simulate_abp(**dict(vicsek_bands_preset(seed=0), n_steps=13000, save_every=13000))
    traj = simulate_abp(**dict(vicsek_bands_preset(seed=1000), n_steps=3000, save_every=4,
                               positions0=warm.positions[-1], orientations0=warm.orientations[-1]))
    fine = coarse_grain(traj, spacing=1.0, sigma=2.0, fields=("rho", "p"))
    # particle fields carry intrinsic noise: the Ito weak form (frames every 0.4 keep its O(dt) bias small)
    model = discover_pde(fine, {"p_t": P_TERMS}, stochastic=True, seed=0).model
    fields = coarse_grain(traj, spacing=1.0, sigma=2.0, fields=("rho", "p"), frames=slice(None, None, 2))
    res = dominant_balance(fields, model, "p_t", method="spectral", seed=0)
    return fields, model, res


def _regions(fields):
    """Band front (the 20 % steepest density fall along +x, the direction of travel), dilute bulk (30 %
    lowest density) and band core (5 % highest density)."""
    rho = fields["rho"]
    drho = np.gradient(rho, axis=2)
    return (drho < -np.quantile(np.abs(drho), 0.8), rho < np.quantile(rho, 0.3), rho > np.quantile(rho, 0.95))


def test_learned_model_has_the_toner_tu_structure(bands):
    fields, model, _ = bands
    eq = model["equations"]["p_t"]
    # pressure and self-advection; decay of p at low density, alignment growing with density, saturation
    assert eq["grad(rho)"] < 0 and eq["p.grad(p)"] < 0
    assert eq["p"] < 0 < eq["rho*p"] and eq["|p|^2*p"] < 0
    # the ordering threshold rho_c = -a / b lies between the dilute gas and the bands
    rho_c = -eq["p"] / eq["rho*p"]
    _, dilute, core = _regions(fields)
    assert np.quantile(fields["rho"][dilute], 0.9) < rho_c < np.median(fields["rho"][core])
    # inside the bands alignment and saturation balance: |p| = sqrt((a + b rho) / -c) (Landau)
    rho, p = fields["rho"][core], np.linalg.norm(fields["p"][core], axis=-1)
    landau = np.sqrt((eq["p"] + eq["rho*p"] * rho) / -eq["|p|^2*p"])
    assert np.median(p / landau) == pytest.approx(1.0, abs=0.2)


def test_band_front_and_dilute_bulk_are_different_balances(bands):
    fields, _, res = bands
    front, dilute, _ = _regions(fields)
    sets = [set(b.terms) for b in res.balances]
    main_front = int(np.bincount(res.regions[front]).argmax())
    main_dilute = int(np.bincount(res.regions[dilute]).argmax())
    assert main_front != main_dilute
    assert np.mean(res.regions[dilute] == main_dilute) > 0.9 and np.mean(res.regions[front] == main_dilute) < 0.05
    # the front: pressure (density gradient) and density-dependent alignment act together
    assert {"p_t", "grad(rho)", "rho*p"} <= sets[main_front]
    with_both = np.array([{"grad(rho)", "rho*p"} <= s for s in sets])
    assert with_both[res.regions[front]].mean() > 0.7
    # the dilute bulk: weak relaxation, no alignment
    assert "rho*p" not in sets[main_dilute]


def test_band_core_is_the_full_ordered_balance(bands):
    fields, _, res = bands
    _, _, core = _regions(fields)
    main_core = int(np.bincount(res.regions[core]).argmax())
    assert np.mean(res.regions[core] == main_core) > 0.9
    assert {"rho*p", "|p|^2*p", "grad(rho)"} <= set(res.balances[main_core].terms)


def test_grouped_alignment_names_the_physical_term(bands):
    fields, model, _ = bands
    res = dominant_balance(fields, model, "p_t", groups={"alignment": ["p", "rho*p"]}, method="spectral", seed=0)
    learned = ["p_t"] + list(model["equations"]["p_t"])
    assert res.terms == ["alignment" if t == "p" else t for t in learned if t != "rho*p"]
    assert res.groups == {"alignment": ["p", "rho*p"]}
    _, _, core = _regions(fields)
    main_core = int(np.bincount(res.regions[core]).argmax())
    assert {"alignment", "|p|^2*p"} <= set(res.balances[main_core].terms)
