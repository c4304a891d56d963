"""The 95 % intervals of the Ito fit (``discover_pde(..., stochastic=True)``) cover the truth.

Free active Brownian particles (the particle example of docs/pde.md, frames every 0.1 instead of
0.05): ``rho_t = -v0 div(p)``, ``p_t = -Dr p - (v0/2) grad(rho)``. Forward differences over a frame
interval ``dt`` estimate ``-v0 (1 - Dr dt / 2)`` for the ``div(p)`` coefficient (-0.95 here) and the
block-jackknife intervals, about +-3 %, then miss -1 in about half the seeds (the previous
estimator on these four: 2 of 4 covered, mean error 4.9 standard errors of the mean; both tests
fail on it); the refit at the predicted frame midpoint (``frame_correction``, default) removes
that bias. Over 20 tuning seeds
(``python -m napari_dynfit.bench.pde_calibration``, docs/pde.md) the intervals cover in 18-19 of 20
and their width matches the spread over seeds (ratio 0.87-1.03); this test asserts it on four other
seeds, with a binomial tolerance (at 95 % coverage, 2 or fewer of 4 happens with probability 1.4 %).
"""

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TRUTH = {"rho_t": {"div(p)": -1.0}, "p_t": {"p": -1.0, "grad(rho)": -0.5}}


@pytest.fixture(scope="module")
def fits():
    from napari_dynfit.fields.coarse_grain import coarse_grain
    from napari_dynfit.models.pde import discover_pde
    from napari_dynfit.sim import simulate_abp

    out = []
    for seed in range(4):
        traj = simulate_abp(20000, 2000, box=20.0, dt=0.005, v0=1, Dr=1, Dt=0.05, save_every=20, seed=seed)
        res = discover_pde(coarse_grain(traj, spacing=0.5, sigma=1.0), stochastic=True, seed=seed)
        out.append(res.model)
    return out


def test_ito_intervals_cover_the_truth(fits):
    for lhs, terms in TRUTH.items():
        for term, truth in terms.items():
            found = [m for m in fits if term in m["equations"][lhs]]
            assert len(found) >= 3, (lhs, term, [m["equations"][lhs] for m in fits])
            covered = [lo <= truth <= hi for m in found for lo, hi in [m["confidence_intervals"][lhs][term]]]
            assert sum(covered) >= 3, (lhs, term, [m["confidence_intervals"][lhs][term] for m in found])


def test_ito_div_p_error_is_within_its_own_intervals(fits):
    """Mean error of the ``div(p)`` coefficient over the seeds against the standard error the intervals
    state: the previous estimator's O(dt) bias was 4.9 standard errors of the mean here."""
    est = np.array([m["equations"]["rho_t"]["div(p)"] for m in fits])
    hw = np.array([np.diff(m["confidence_intervals"]["rho_t"]["div(p)"])[0] / 2 for m in fits])
    se_mean = np.sqrt(np.sum((hw / 1.96) ** 2)) / len(fits)
    assert abs(est.mean() + 1.0) < 3 * se_mean, (est, hw)
    # the uncorrected fit is still reported, and is the biased one
    unc = np.array([m["diagnostics"]["frame_interval"]["uncorrected"]["rho_t"]["div(p)"] for m in fits])
    assert np.all(unc > est) and abs(unc.mean() + 1.0) > 3 * se_mean


def test_demo_stripe_missing_diffusion_is_added_by_the_frame_check():
    """``dynfit demo``'s density stripe (``Dt = 0.1``, frames every 0.1): the selection leaves out the
    real ``Dt lap(rho)``; without it the frame-midpoint refit put ``div(p)`` at -1.058 [-1.087, -1.029]
    (interval excluding the truth -1). The frame-interval check adds it (its absence moved ``div(p)``
    beyond its interval) and both intervals cover the truth (measured: -1.014 [-1.042, -0.987],
    ``lap(rho)`` 0.099 [0.078, 0.120])."""
    from napari_dynfit.fields.coarse_grain import coarse_grain
    from napari_dynfit.models.pde import discover_pde
    from napari_dynfit.sim.samples import demo_trajectories

    traj = demo_trajectories(quick=False, seed=0)
    spacing = float(np.asarray(traj.box, dtype=float)[0]) / 64
    res = discover_pde(coarse_grain(traj, spacing=spacing, sigma=2 * spacing), stochastic=True, seed=0)
    m = res.model
    added = m["diagnostics"]["frame_interval"]["added"]
    assert [(a["lhs"], a["term"]) for a in added] == [("rho_t", "lap(rho)")], added
    for term, truth in {"div(p)": -1.0, "lap(rho)": 0.1}.items():
        lo, hi = m["confidence_intervals"]["rho_t"][term]
        assert lo <= truth <= hi, (term, m["equations"]["rho_t"], lo, hi)
    assert "frame-interval check: added lap(rho)" in res.results["rho_t"].reason
