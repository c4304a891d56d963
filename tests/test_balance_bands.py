"""Dominant balances of travelling Vicsek bands from the particle simulator (slow: ~3 min of simulation)."""

import numpy as np
import pytest

from napari_dynfit.models.balance import dominant_balance
from napari_dynfit.models.terms import evaluate_terms

#: Toner-Tu structure of the polarisation equation: pressure, self-advection, alignment, saturation, elasticity
P_TERMS = ["grad(rho)", "p.grad(p)", "p", "rho*p", "|p|^2*p", "lap(p)"]


def known_model(bundle):
    """The hydrodynamic model with the known Toner-Tu terms, coefficients by least squares on the fields."""
    vals = evaluate_terms(bundle, ["p_t"] + P_TERMS, method="spectral")
    A = np.stack([vals[t].ravel() for t in P_TERMS], axis=1)
    coef, *_ = np.linalg.lstsq(A, vals["p_t"].ravel(), rcond=None)
    return {"equations": {"p_t": dict(zip(P_TERMS, coef.tolist()))}}


@pytest.mark.slow
def test_vicsek_bands_front_and_dilute_bulk_are_different_balances():
    from napari_dynfit.fields.coarse_grain import coarse_grain
    from napari_dynfit.sim.abp import simulate_abp, vicsek_bands_preset

    params = dict(vicsek_bands_preset(seed=0), n_steps=16000, save_every=20)  # frames every time unit
    traj = simulate_abp(**params)
    fields = coarse_grain(traj, spacing=1.0, sigma=2.0, fields=("rho", "p"), frames=slice(650, None))
    model = known_model(fields)
    # pressure term of the kinetic theory: -v0/2 grad(rho)
    assert model["equations"]["p_t"]["grad(rho)"] == pytest.approx(-params["v0"] / 2, rel=0.25)
    res = dominant_balance(fields, model, "p_t", method="spectral", seed=0)
    rho = fields["rho"]
    drho = np.gradient(rho, axis=2)  # bands travel along +x: the front is where rho falls ahead
    front = drho < -np.quantile(np.abs(drho), 0.8)
    dilute = rho < np.quantile(rho, 0.3)
    main_front = int(np.bincount(res.regions[front]).argmax())
    main_dilute = int(np.bincount(res.regions[dilute]).argmax())
    assert main_front != main_dilute
    assert np.mean(res.regions[front] == main_front) > 0.6 and np.mean(res.regions[dilute] == main_dilute) > 0.8
    front_terms = res.balances[main_front].terms
    assert {"p_t", "grad(rho)"} <= set(front_terms)
    assert len(front_terms) > len(res.balances[main_dilute].terms)
