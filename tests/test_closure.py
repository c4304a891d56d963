"""Kinetic theory, moment model and closures (issue 19): checks against exact results."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    from napari_dynfit.report import torch_threads

    with torch_threads(1):  # small FFTs: more threads only contend
        yield

from napari_dynfit.errors import InputError  # noqa: E402
from napari_dynfit.fields import FieldBundle  # noqa: E402
from napari_dynfit.models.closure import train as T  # noqa: E402
from napari_dynfit.models.closure.ensemble import ensemble_check  # noqa: E402
from napari_dynfit.models.closure.kinetic import (  # noqa: E402
    KineticSolver,
    SuspensionParams,
    isotropic_growth_rates,
    simulate_kinetic,
    simulate_kinetic_ensemble,
)
from napari_dynfit.models.closure.learned import LearnedClosure  # noqa: E402
from napari_dynfit.models.closure.moment_model import (  # noqa: E402
    MomentSolver,
    _TensorParams,
    isotropic_state,
    moments_from_state,
)
from napari_dynfit.models.closure.moments import (  # noqa: E402
    bingham_closure,
    fourth_harmonics_from_m4,
    fourth_moment,
    order_parameter,
)

PARAMS = SuspensionParams(alpha=-2.0, beta=0.8, zeta=0.5, length=10.0)


def _mode_growth(series_first, series_last, weight, t):
    amp = lambda f: float((f * weight).mean())  # noqa: E731
    return math.log(amp(series_last) / amp(series_first)) / t


@pytest.mark.parametrize("params", [PARAMS, SuspensionParams(alpha=-3.0, beta=0.0, zeta=0.0)])
def test_kinetic_linear_growth_matches_dispersion_relation(params):
    solver = KineticSolver(params, n=8, n_theta=8, dt=0.01)
    x = solver.grid.coords()
    Y, X = torch.meshgrid(x, x, indexing="ij")
    k = 2 * 2 * math.pi / params.length
    th = solver.theta[:, None, None]
    eps = 1e-7
    psi0 = (1 + eps * torch.cos(k * X) * torch.sin(2 * th) + eps * torch.cos(k * Y) * torch.cos(2 * th)) / (2 * math.pi)
    times, snaps = solver.run(psi0, 0.5, save_every=0.5)
    theory = isotropic_growth_rates(params, k)
    shear = _mode_growth(snaps[0]["D"][..., 0, 1], snaps[-1]["D"][..., 0, 1], torch.cos(k * X).numpy(), times[-1])
    a = [s["D"][..., 1, 1] - s["D"][..., 0, 0] for s in (snaps[0], snaps[-1])]
    normal = _mode_growth(a[0], a[1], torch.cos(k * Y).numpy(), times[-1])
    assert shear == pytest.approx(theory["shear"], abs=1e-3)
    assert normal == pytest.approx(theory["normal"], abs=1e-3)


def test_kinetic_conserves_particles_and_moments_are_consistent():
    b = simulate_kinetic(SuspensionParams(alpha=-4.0, zeta=0.3), t_end=0.5, save_every=0.25, n=16, n_theta=16,
                         amplitude=0.3, seed=1)
    c = b["concentration"]
    assert np.ptp(c[0]) > 1e-3  # the initial condition perturbs c too
    np.testing.assert_allclose(c.mean(axis=(1, 2)), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.trace(b["D"], axis1=-2, axis2=-1), c, atol=1e-12)
    # flow is divergence-free and E is its symmetric gradient's trace-free part
    np.testing.assert_allclose(np.trace(b["E"], axis1=-2, axis2=-1), 0.0, atol=1e-10)
    assert b.periodic == (True, True) and b.attrs["kinetic"]["alpha"] == -4.0


def test_moment_model_linear_growth_matches_kinetic_theory():
    solver = MomentSolver(PARAMS, bingham_closure, n=8, dt=0.01)
    x = solver.grid.coords()
    Y, X = torch.meshgrid(x, x, indexing="ij")
    k = 2 * 2 * math.pi / PARAMS.length
    s0 = isotropic_state(8)
    s0[2] += 1e-7 * torch.cos(k * X)
    s0[1] += 1e-7 * torch.cos(k * Y)
    traj = solver.rollout(s0, 50, every=50)
    theory = isotropic_growth_rates(PARAMS, k)
    assert _mode_growth(s0[2], traj[-1, 2], torch.cos(k * X), 0.5) == pytest.approx(theory["shear"], abs=1e-3)
    assert _mode_growth(s0[1], traj[-1, 1], torch.cos(k * Y), 0.5) == pytest.approx(theory["normal"], abs=1e-3)


def _distribution_moments(psi, theta):
    w = 2 * math.pi / len(theta)
    p = torch.stack([torch.sin(theta), torch.cos(theta)], -1)
    c = psi.sum(-1) * w
    D = torch.einsum("...t,ti,tj->...ij", psi, p, p) * w
    S = torch.einsum("...t,ti,tj,tk,tl->...ijkl", psi, p, p, p, p) * w
    q4 = (psi * torch.cos(4 * theta)).sum(-1) * w, (psi * torch.sin(4 * theta)).sum(-1) * w
    return c, D, S, q4


def test_fourth_moment_from_harmonics_and_bingham_exact_for_von_mises():
    theta = torch.arange(256, dtype=torch.float64) * 2 * math.pi / 256
    kappa = torch.tensor([[0.3], [2.0], [7.0]], dtype=torch.float64)
    phi = torch.tensor([[0.2], [1.1], [-0.7]], dtype=torch.float64)
    psi = 1.7 * torch.exp(kappa * torch.cos(2 * (theta - phi)))
    c, D, S, q4 = _distribution_moments(psi, theta)
    torch.testing.assert_close(fourth_moment(c, D, *q4), S)
    torch.testing.assert_close(torch.einsum("...ijkk->...ij", S), D)
    qb = bingham_closure(c, D)
    torch.testing.assert_close(qb[0], q4[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(qb[1], q4[1], rtol=1e-5, atol=1e-7)


def _random_D(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, generator=g, dtype=torch.float64) * 0.95
    phi = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    c = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)
    n_ = torch.stack([torch.sin(phi), torch.cos(phi)], -1)
    D = c[:, None, None] * ((1 - s)[:, None, None] / 2 * torch.eye(2, dtype=torch.float64)
                            + s[:, None, None] * n_[:, :, None] * n_[:, None, :])
    return c, D


def test_learned_closure_is_equivariant_realizable_and_starts_as_bingham():
    c, D = _random_D()
    net = LearnedClosure(seed=3)
    q = net(c, D, PARAMS)
    qb = bingham_closure(c, D)
    torch.testing.assert_close(q[0], qb[0])  # untrained = Bingham
    with torch.no_grad():
        for w in net.parameters():
            w.add_(0.5 * torch.randn_like(w))
    ang = 0.63
    R = torch.tensor([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]], dtype=torch.float64)
    S = fourth_moment(c, D, *net(c, D, PARAMS))
    Dr = R @ D @ R.T
    Sr = fourth_moment(c, Dr, *net(c, Dr, PARAMS))
    S_rot = torch.einsum("ai,bj,ck,dl,nijkl->nabcd", R, R, R, R, S)
    torch.testing.assert_close(Sr, S_rot)  # rotating D rotates S
    s = order_parameter(c, D)
    m4 = net.m4(s, PARAMS)
    assert torch.all(m4 <= 1 + 1e-12) and torch.all(m4 >= 2 * s ** 2 - 1 - 1e-12)


def test_a_priori_training_learns_a_non_bingham_family(tmp_path):
    # wrapped-Cauchy distributions in 2 theta: <cos 2k phi> = rho^k, so m4 = s^2 exactly (not Bingham's)
    s = torch.linspace(0.02, 0.95, 400, dtype=torch.float64)
    samples = T.ClosureSamples(s=s, m4=s ** 2, alpha=torch.full_like(s, -2.0), zeta=torch.full_like(s, 0.3))
    net = LearnedClosure(hidden=16, seed=0)
    params = _TensorParams(None, samples.alpha, samples.zeta)  # per-sample alpha / zeta
    before = float(((net.m4(s, params) - s ** 2) ** 2).mean().sqrt())
    T.fit_a_priori(net, samples, epochs=400, lr=2e-2)
    after = float(((net.m4(s, params) - s ** 2) ** 2).mean().sqrt())
    assert before > 0.03 and after < 0.2 * before
    path = net.save(tmp_path / "closure.npz")
    again = LearnedClosure.load(path)
    torch.testing.assert_close(again.m4(s, params),
                               net.m4(s, params))


def _moment_model_data(alpha=-3.0):
    """Moment data of a Bingham-closed run at ``alpha`` (8^2 grid, 13 frames 0.1 apart)."""
    from napari_dynfit.models.closure.moment_model import moments_from_state

    truth = SuspensionParams(alpha=alpha, beta=0.8, zeta=0.3)
    n = 8
    solver = MomentSolver(truth, bingham_closure, n=n, dt=0.05)
    x = solver.grid.coords()
    Y, X = torch.meshgrid(x, x, indexing="ij")
    k0 = 2 * math.pi / truth.length
    s0 = isotropic_state(n)
    s0[1] += 0.3 * torch.cos(k0 * X + 0.3) * torch.sin(2 * k0 * Y)
    s0[2] += 0.3 * torch.sin(k0 * Y + 1.0) * torch.cos(k0 * X)
    with torch.no_grad():
        traj = torch.cat([s0[None], solver.rollout(s0, 24, every=2)])
    c, D = moments_from_state(traj)
    return FieldBundle({"concentration": c.numpy(), "D": D.numpy()},
                       {"t": np.arange(len(traj)) * 0.1, "y": x.numpy(), "x": x.numpy()}, periodic=(True, True),
                       attrs={"kinetic": {"beta": 0.8, "zeta": 0.3, "length": 10.0, "alpha": 0.0}})


def test_parameter_estimation_backs_off_from_trial_values_that_blow_up(monkeypatch):
    """The line search may try a value at which the moment model blows up (alpha = -4.5 on 64^2 data): that trial
    gets a large loss and the fit goes on from the good values; a blow-up at the start value is the error."""
    from napari_dynfit.models.closure import moment_model

    real = moment_model.MomentSolver.rollout

    def rollout(self, *a, **kw):  # a model that "blows up" beyond alpha = -2 (the data's is -3)
        if self.alpha is not None and float(torch.as_tensor(self.alpha).detach()) < barrier:
            raise moment_model.MomentBlowUp("the moment model blew up (test)")
        return real(self, *a, **kw)

    monkeypatch.setattr(moment_model.MomentSolver, "rollout", rollout)
    barrier = -2.0
    data = _moment_model_data()
    est = T.estimate_parameters(data, fit=("alpha",), epochs=8, windows=3)
    assert float("inf") in est.history  # the search stepped past the barrier and came back
    assert -2.0 <= est.values["alpha"] < -1.5 and np.isfinite(est.loss)  # towards the data's -3, never beyond
    barrier = 0.0  # blows up at the start value alpha = -1: nothing to back off to
    with pytest.raises(InputError, match="blew up"):
        T.estimate_parameters(data, fit=("alpha",), epochs=2, windows=3)


def test_moment_model_step_shrinks_with_the_grid_spacing():
    # 0.05 (MOMENT_DT) on the 32^2 grids it was measured on and coarser ones; halved on 64^2 (it blew up there)
    assert T.substeps(0.25) == T.substeps(0.25, spacing=10 / 32) == T.substeps(0.25, spacing=10 / 8) == 5
    assert T.substeps(0.25, spacing=10 / 64) == 10 and T.substeps(0.25, spacing=10 / 256) == 40
    assert T.substeps(0.25, 3, spacing=10 / 64) == 3  # given: as given
    # the rollouts' one way: the spacing of an n x n grid over the box of the suspension (length 20 here)
    p = SuspensionParams(length=20.0)
    assert [T.grid_substeps(0.25, None, p, n) for n in (8, 64, 128, 512)] == [5, 5, 10, 40]
    assert T.grid_substeps(0.25, 3, p, 512) == 3


def test_parameter_estimation_recovers_alpha_of_a_moment_model_run():
    est = T.estimate_parameters(_moment_model_data(-3.0), fit=("alpha",), epochs=20, windows=3)
    assert est.values["alpha"] == pytest.approx(-3.0, rel=0.02)


def test_active_learning_adds_the_worst_covered_parameter():
    from napari_dynfit.models.closure.kinetic import simulate_kinetic as sim

    calls = []

    def simulate(alpha):
        calls.append(alpha)
        return sim(SuspensionParams(alpha=alpha, zeta=0.3), t_end=1.0, save_every=0.25, n=8, n_theta=16,
                   amplitude=0.3, seed=int(-alpha * 10))

    net = LearnedClosure(hidden=8)
    res = T.active_learning(net, simulate, [-2.0, -4.0, -6.0], initial=[-2.0], rounds=1, epochs=5)
    assert len(res.errors) == 2 and set(res.errors[0]) == {-2.0, -4.0, -6.0}
    added = res.trained_on[1]
    assert added != -2.0 and res.errors[0][added] == max(v for a, v in res.errors[0].items() if a != -2.0)
    assert sorted(calls) == [-6.0, -4.0, -2.0]  # each parameter simulated once


def test_posterior_check_on_the_moment_models_own_run_is_exact_and_discards_the_transient():
    from napari_dynfit.errors import InputError
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models.closure.moment_model import moments_from_state

    n, meta = 8, {"alpha": -3.0, "beta": 0.8, "zeta": 0.3, "length": 10.0}
    x = torch.arange(n, dtype=torch.float64) * 10.0 / n
    Y, X = torch.meshgrid(x, x, indexing="ij")
    s0 = isotropic_state(n)
    s0[1] += 0.3 * torch.cos(2 * math.pi * X / 10 + 0.3)
    s0[2] += 0.3 * torch.sin(2 * math.pi * Y / 10)
    c, D = moments_from_state(s0[None])
    start = FieldBundle({"concentration": c.numpy(), "D": D.numpy()}, {"t": np.array([0.0]), "y": x.numpy(),
                        "x": x.numpy()}, periodic=(True, True), attrs={"kinetic": meta})
    start = FieldBundle({k: np.concatenate([start[k]] * 2) for k in ("concentration", "D")},
                        {"t": np.array([0.0, 0.1]), "y": x.numpy(), "x": x.numpy()}, periodic=(True, True),
                        attrs={"kinetic": meta})
    data = T.simulate_moments(start, bingham_closure, frames=12, steps_per_frame=2)
    data.attrs["kinetic"] = meta
    res = T.posterior_check(data, {"bingham": bingham_closure, "untrained": LearnedClosure()}, horizon_frames=10,
                            discard_frames=4, steps_per_frame=2)
    for name in ("bingham", "untrained"):  # an untrained learned closure is Bingham
        assert not res[name]["blew_up"]
        assert max(res[name][k] for k in ("mean_speed", "order", "spectrum_max")) < 1e-6
    assert set(res["data"]["halves"]) == {"mean_speed", "order"}
    with pytest.raises(InputError, match="discard_frames"):
        T.posterior_check(data, {"bingham": bingham_closure}, horizon_frames=10, discard_frames=10)


# --- ensembles (kinetic runs from several seeds; the ensemble a-posteriori check) ---------------

META = {"alpha": -3.0, "beta": 0.8, "zeta": 0.3, "length": 10.0}


def test_kinetic_ensemble_members_equal_single_runs():
    p = SuspensionParams(alpha=-4.0, zeta=0.3)
    kw = dict(t_end=0.3, save_every=0.1, n=8, n_theta=8, amplitude=0.3)
    ens = simulate_kinetic_ensemble(p, seeds=(3, 5), **kw)
    for seed, member in zip((3, 5), ens):
        one = simulate_kinetic(p, seed=seed, **kw)
        assert member.attrs["kinetic"]["seed"] == seed
        for f in one.fields:
            np.testing.assert_allclose(member[f], one[f], rtol=0, atol=1e-13)
    assert np.abs(ens[0]["D"][-1] - ens[1]["D"][-1]).max() > 1e-3  # different seeds, different runs


def _moment_data(phase, closure=bingham_closure, frames=12):
    """A moment-model run (closure ``closure``) from a perturbed isotropic state, as data."""
    n = 8
    x = torch.arange(n, dtype=torch.float64) * 10.0 / n
    Y, X = torch.meshgrid(x, x, indexing="ij")
    s0 = isotropic_state(n)
    s0[1] += 0.3 * torch.cos(2 * math.pi * X / 10 + phase)
    s0[2] += 0.3 * torch.sin(2 * math.pi * Y / 10 + 2 * phase)
    c, D = moments_from_state(s0[None])
    coords = {"t": np.array([0.0, 0.1]), "y": x.numpy(), "x": x.numpy()}
    start = FieldBundle({"concentration": np.concatenate([c.numpy()] * 2), "D": np.concatenate([D.numpy()] * 2)},
                        coords, periodic=(True, True), attrs={"kinetic": META})
    data = T.simulate_moments(start, closure, frames=frames, steps_per_frame=2)
    data.attrs["kinetic"] = META
    return data


def _isotropic_m4(c, D, params=None):  # a different closure: no fourth harmonic at all
    return fourth_harmonics_from_m4(c, D, torch.zeros_like(order_parameter(c, D)))


def test_ensemble_check_is_exact_on_the_moment_models_own_ensemble_and_reports_the_spread():
    members = [_moment_data(ph) for ph in (0.3, 1.7, 2.9)]
    res = ensemble_check(members, {"bingham": bingham_closure, "untrained": LearnedClosure(), "other": _isotropic_m4},
                         horizon_frames=10, discard_frames=4, steps_per_frame=2)
    assert res["frames"] == [5, 10] and res["shells"] == [1, 2]  # n = 8: shells up to 4, half of it
    kin = res["kinetic"]
    assert kin["members"] == 3 and len(kin["mean_speed_per_member"]) == 3
    # the spread is the members' own: relative sd of the three time averages, and sd / sqrt(3) for the mean
    vals = np.array(kin["mean_speed_per_member"])
    assert kin["mean_speed"] == pytest.approx(vals.mean())
    assert kin["mean_speed_rel_sd"] == pytest.approx(vals.std(ddof=1) / vals.mean())
    assert kin["mean_speed_rel_se"] == pytest.approx(kin["mean_speed_rel_sd"] / math.sqrt(3))
    assert kin["mean_speed_rel_sd"] > 1e-3
    from napari_dynfit.models.closure.ensemble import ensemble_statistics

    alone = ensemble_statistics(members, first=5, last=10)  # the same frames, without the closures
    assert alone["mean_speed"] == pytest.approx(kin["mean_speed"]) and alone["order"] == pytest.approx(kin["order"])
    for name in ("bingham", "untrained"):  # the data's own closure (an untrained learned closure is Bingham)
        r = res[name]
        assert r["blew_up"] == 0 and all(r["met"].values())
        assert max(r["rel_diff"].values()) < 1e-6
        assert r["resolution"]["mean_speed"] == pytest.approx(2 * math.sqrt(2) * kin["mean_speed_rel_se"], rel=1e-6)
    other = res["other"]["rel_diff"]
    assert other["order"] > 1e-3 and other["mean_speed"] > 1e-3
    json.dumps(res)  # plain JSON


def test_ensemble_check_refuses_what_it_cannot_compare():
    a = _moment_data(0.3)
    with pytest.raises(InputError, match="at least two"):
        ensemble_check([a], {"bingham": bingham_closure}, horizon_frames=10)
    b = _moment_data(1.0)
    b.attrs["kinetic"] = META | {"alpha": -4.0}
    with pytest.raises(InputError, match="share"):
        ensemble_check([a, b], {"bingham": bingham_closure}, horizon_frames=10)
    with pytest.raises(InputError, match="frames after"):
        ensemble_check([a, _moment_data(1.0)], {"bingham": bingham_closure}, horizon_frames=20)


def test_closure_ensemble_cli(tmp_path, capsys):
    from napari_dynfit.cli import main

    paths = []
    for i, ph in enumerate((0.3, 1.7)):
        paths.append(tmp_path / f"m{i}.npz")
        _moment_data(ph).save(paths[-1])
    code = main(["closure", "ensemble", *map(str, paths), "--discard", "4", "--t-start", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    res = json.loads(out.splitlines()[-1])
    assert res["kinetic"]["members"] == 2 and res["bingham"]["rel_diff"]["mean_speed"] < 1e-6
    assert res["frames"] == [5, 12]
    assert main(["closure", "ensemble", str(paths[0])]) != 0  # one run: a one-line error


def test_realizability_counts_moments_no_distribution_can_have():
    from napari_dynfit.models.closure.ensemble import realizability
    from napari_dynfit.models.closure.moments import bingham_m4

    rng = np.random.default_rng(0)
    shape = (3, 8, 8)
    s = torch.as_tensor(rng.uniform(0.5, 0.95, shape))
    phi = torch.as_tensor(rng.uniform(0, math.pi, shape))
    c = torch.ones(shape, dtype=torch.float64)
    a, b = s * torch.cos(2 * phi), s * torch.sin(2 * phi)  # D_xx - D_yy and 2 D_xy over c
    D = moments_from_state(torch.stack([c, a, b], -3))[1]
    bad = torch.as_tensor(rng.uniform(size=shape) < 0.3)
    m4 = torch.where(bad, 2 * s * s - 1 - 0.05, bingham_m4(s))  # below the bound by 0.05 at the "bad" points
    q4c, q4s = fourth_harmonics_from_m4(c, D, m4)
    x = np.arange(8.0)
    data = FieldBundle({"concentration": c.numpy(), "D": D.numpy(), "S_cos4": q4c.numpy(), "S_sin4": q4s.numpy()},
                       {"t": np.arange(3.0), "y": x, "x": x}, periodic=(True, True), attrs={"kinetic": META})
    res = realizability(data)
    assert res["unrealizable"] == pytest.approx(float(bad.double().mean()))
    assert res["deficit"] == pytest.approx(0.05, abs=1e-9)
    assert res["high_order"] == pytest.approx(float((s > 0.9).double().mean()))


def _psi(solver, f_theta):
    """``Psi (n_theta, n, n)`` equal to ``f_theta(theta)`` at every point of ``solver``'s grid."""
    return f_theta(solver.theta)[:, None, None].expand(-1, solver.n, solver.n).clone()


def test_positivity_is_zero_for_densities_and_exact_for_a_known_negative_distribution():
    s = KineticSolver(SuspensionParams(), n=8, n_theta=256)
    iso = s.positivity(_psi(s, lambda th: torch.full_like(th, 1 / (2 * math.pi))))
    assert float(iso["negative_mass"]) == 0 and float(iso["min_ratio"]) == pytest.approx(1.0)
    assert float(iso["negative_points"]) == 0 and float(iso["moments_outside"]) == 0
    # 1 + cos 2 theta touches zero but is a density: nothing counted
    edge = s.positivity(_psi(s, lambda th: 1 + torch.cos(2 * th)))
    assert float(edge["negative_mass"]) < 1e-12 and float(edge["moments_outside"]) == 0
    # 1 + 3 cos 2 theta: negative where cos 2 theta < -1/3; exact share of int |Psi| on the negative values,
    # with phi0 = arccos(-1/3): N / (2 pi + 2 N), N = 2 a sin(phi0) - (2 pi - 2 phi0), a = 3
    a, phi0 = 3.0, math.acos(-1 / 3)
    neg = 2 * a * math.sin(phi0) - (2 * math.pi - 2 * phi0)
    bad = s.positivity(_psi(s, lambda th: 1 + a * torch.cos(2 * th)))
    assert float(bad["negative_mass"]) == pytest.approx(neg / (2 * math.pi + 2 * neg), rel=1e-3)
    assert float(bad["min_ratio"]) == pytest.approx((1 - a) / (1 + a))  # theta = pi / 2 is a grid angle
    assert float(bad["negative_points"]) == pytest.approx((math.pi - phi0) / math.pi, abs=2 / 256)
    # D / c = diag(1/2 - a/4, 1/2 + a/4) (components y, x): an eigenvalue -1/4, at every point; on half of
    # the points (the others isotropic) half of them
    assert float(bad["moments_outside"]) == 1.0
    half = _psi(s, lambda th: 1 + a * torch.cos(2 * th))
    half[:, :, : s.n // 2] = 1.0
    assert float(s.positivity(half)["moments_outside"]) == 0.5
    # leading axes are independent runs
    both = s.positivity(torch.stack([_psi(s, lambda th: 1 + torch.cos(2 * th)), half]))
    assert both["moments_outside"].tolist() == [0.0, 0.5]


def test_positivity_flags_a_sharp_distribution_truncated_to_the_solvers_angular_harmonics():
    # von Mises in 2 theta, kappa = 30 (order s = 0.98, as the benchmark's most aligned points): a density when
    # sampled on 128 angles, negative once truncated to |m| <= 10, the harmonics a 32-angle run keeps (2/3 rule)
    s = KineticSolver(SuspensionParams(), n=8, n_theta=128)
    psi = _psi(s, lambda th: torch.exp(30 * (torch.cos(2 * th) - 1)))
    full = s.positivity(psi)
    assert float(full["negative_mass"]) == 0 and float(full["moments_outside"]) == 0
    psi_hat = torch.fft.fft(psi, dim=0)
    m = torch.fft.fftfreq(128, d=1 / 128)
    cut = s.positivity(torch.fft.ifft(psi_hat * (m.abs() <= 10)[:, None, None], dim=0).real)
    assert float(cut["negative_mass"]) > 0.01 and float(cut["min_ratio"]) < -0.05
    assert float(cut["moments_outside"]) == 0  # D keeps its harmonics: only the fourth and higher are wrong


def test_kinetic_runs_record_positivity_and_say_when_under_resolved(tmp_path):
    from napari_dynfit.models.closure.kinetic import (
        NEGATIVE_MASS_WARN,
        positivity_summary,
        positivity_warning,
    )

    kw = dict(t_end=1.0, save_every=0.5, amplitude=0.2)
    calm = simulate_kinetic(SuspensionParams(alpha=-4.0, zeta=0.3), n=8, n_theta=16, **kw)
    rec = calm.attrs["positivity"]
    assert len(rec["negative_mass"]) == len(calm.coords["t"]) == 3
    summ = positivity_summary(calm)
    assert summ["negative_mass"] == 0 and summ["min_ratio"] > 0 and not summ["under_resolved"]
    assert positivity_warning(summ, 8, 16, 0.01) is None
    # 8 angles keep harmonics |m| <= 2 only: Psi = c (1 + 2 s cos 2(theta - phi)) / (2 pi) goes negative as
    # soon as the order s passes 1/2, which the instability reaches by t = 10
    sharp = simulate_kinetic(SuspensionParams(alpha=-4.0, zeta=0.3), n=8, n_theta=8, dt=0.05, t_end=10.0,
                             save_every=0.5, amplitude=0.2)
    summ = positivity_summary(sharp)
    assert summ["negative_mass"] > NEGATIVE_MASS_WARN and summ["under_resolved"] and summ["moments_outside"] > 0
    line = positivity_warning(summ, 8, 8, 0.05)
    assert "--angles 16 --size 16" in line and "\n" not in line
    sharp.save(tmp_path / "sharp.npz")
    assert positivity_summary(FieldBundle.load(tmp_path / "sharp.npz")) == summ  # kept with the run
    # the benchmark's table of its runs (from t = 10: frame 20 here): the same records, and D / c's eigenvalues
    from napari_dynfit.bench.closure import run_positivity

    tab = run_positivity(sharp, 20)
    rec = {k: np.asarray(v)[20:] for k, v in sharp.attrs["positivity"].items()}
    assert tab["negative_mass_max"] == rec["negative_mass"].max() > NEGATIVE_MASS_WARN
    assert tab["min_ratio"] == rec["min_ratio"].min() < 0 and tab["moments_outside"] == rec["moments_outside"].mean()
    assert tab["eig_min"] < 0 and tab["eig_max"] > 1 and tab["unrealizable"] > 0  # outside: as moments_outside says
    assert run_positivity(calm, 0)["eig_min"] > 0 and run_positivity(calm, 0)["negative_mass_max"] == 0
    del sharp.attrs["positivity"]  # runs made before it was recorded
    assert run_positivity(sharp, 20) is None
    assert positivity_summary(sharp) is None and positivity_warning(None, 8, 8, 0.05) is None


def test_positivity_study_figures_are_exact_on_known_distributions():
    from napari_dynfit.bench.closure_positivity import frame_figures

    s = KineticSolver(SuspensionParams(), n=8, n_theta=64)
    # 1 + a cos 2 theta: <cos 2 theta> = a / 2 = s, no fourth harmonic (m4 = 0), D / c = diag(1/2 - a/4, 1/2 + a/4)
    bad = frame_figures(s, _psi(s, lambda th: 1 + 3 * torch.cos(2 * th)))  # s = 1.5: 0 < 2 s^2 - 1
    assert bad["unrealizable"] == 1.0 and bad["moments_outside"] == 1.0
    assert bad["eig_min"] == pytest.approx(-0.25) and bad["eig_max"] == pytest.approx(1.25)
    ok = frame_figures(s, _psi(s, lambda th: 1 + torch.cos(2 * th)))  # s = 0.5: 2 s^2 - 1 = -0.5 < 0
    assert ok["unrealizable"] == 0.0 and ok["eig_min"] == pytest.approx(0.25) and ok["trace_error"] < 1e-12
    # a von Mises law (kappa = 4, resolved on 64 angles) is a density: realizable, inside [0, 1]
    vm = frame_figures(s, _psi(s, lambda th: torch.exp(4 * torch.cos(2 * th))))
    assert vm["unrealizable"] == 0.0 and vm["negative_mass"] == 0.0 and 0 < vm["eig_min"] < vm["eig_max"] < 1
