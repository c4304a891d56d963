"""BPINN (issue 20): the HMC sampler, the latent-field CLI, and the must-show cases (slow)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_dynfit.errors import InputError  # noqa: E402
from napari_dynfit.models.pinn.bayes import BPINN, MLP, Prior, Task, derivative  # noqa: E402
from napari_dynfit.models.pinn.hmc import hmc_chain  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sobolev(seed=0, n=60, sf=0.05, sd=0.5):
    rng = np.random.default_rng(seed)
    x = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
    f = torch.sin(2 * np.pi * x[:, 0])
    df = 2 * np.pi * torch.cos(2 * np.pi * x[:, 0])
    yf = f + sf * torch.as_tensor(rng.standard_normal(n))
    yd = df + sd * torch.as_tensor(rng.standard_normal(n))
    return [Task("f", lambda net, th: net(x) - yf), Task("df", lambda net, th: derivative(net, x)[1] - yd)]


@pytest.mark.slow
def test_adaptive_weights_recover_noise_and_cover_truth():
    b = BPINN(MLP((0, 1), (16, 16)), _sobolev())
    b.warmup(1500)
    # each task's implied noise within 30 % of the noise added (0.05 on f, 0.5 on f')
    assert abs(1 / np.sqrt(b.weights["f"]) - 0.05) < 0.3 * 0.05
    assert abs(1 / np.sqrt(b.weights["df"]) - 0.5) < 0.3 * 0.5
    xs = np.linspace(0.05, 0.95, 30)[:, None]
    res = b.sample(xs, draws=30, tune=40, chains=2, num_steps=10)
    truth = np.sin(2 * np.pi * xs[:, 0])
    err = np.abs(res.mean["u"] - truth)
    assert err.max() < 0.1
    assert np.mean(err <= 3 * res.std["u"] + 1e-9) >= 0.8
    assert res.noise["f"] == pytest.approx(1 / np.sqrt(res.weights["f"]))
    assert res.diagnostics["draws"] == 30 and len(res.diagnostics["acceptance"]) == 2
    assert 0 < np.mean(res.diagnostics["acceptance"]) <= 1


@pytest.mark.slow
def test_inverse_decay_rate_interval_covers_truth():
    # u' = -k u, u(0) = 1, noisy data of u; k has a log-normal prior far from the truth
    rng = np.random.default_rng(1)
    k_true = 3.0
    x = torch.linspace(0, 1, 40, dtype=torch.float64)[:, None]
    y = torch.exp(-k_true * x[:, 0]) + 0.02 * torch.as_tensor(rng.standard_normal(40))

    def ode(net, th):
        u, du = derivative(net, x)
        return du + th["k"] * u

    tasks = [Task("data", lambda net, th: net(x) - y), Task("ode", ode, noise=0.02, physics=True)]
    b = BPINN(MLP((0, 1), (16, 16), seed=1), tasks, {"k": Prior(0.0, 2.0, log=True)})
    res = b.sample(None, draws=40, tune=40, chains=2, num_steps=10, warmup_steps=1500)
    lo, hi = res.intervals["k"]
    assert lo <= k_true <= hi
    assert abs(res.samples["k"].mean() - k_true) < 0.1 * k_true
    assert res.samples["k"].shape == (2, 40)
    assert np.isfinite(res.diagnostics["ess"]["k"]) and np.isfinite(res.diagnostics["rhat"]["k"])


@pytest.mark.slow
def test_stop_keeps_samples_and_fixed_weights():
    b = BPINN(MLP((0, 1), (8,)), _sobolev(n=20), weighting="fixed")
    b.warmup(50, lbfgs_rounds=0)
    assert b.weights == {"f": 1.0, "df": 1.0}
    seen = []
    res = b.sample(np.zeros((3, 1)), draws=50, tune=5, chains=2, num_steps=3,
                   callback=lambda c, i, n: seen.append(i), should_stop=lambda: len(seen) >= 12)
    assert res.diagnostics["stopped"] and res.diagnostics["chains"] == 1
    assert 1 <= res.diagnostics["draws"] < 50 and res.mean["u"].shape == (3,)


def test_warmup_rounds_until_the_noise_levels_are_a_fixed_point():
    # adaptive weights: L-BFGS rounds under the maximum-likelihood noise levels go on until no level changes by
    # more than noise_tol; then one more round under the final levels leaves them where they are. A single
    # round stops far from it (the noise levels still ~50 % off), as the earlier 4 x 100 rounds did on the
    # Lotka-Volterra case (docs/pinn.md)
    import math

    def one_more_round(b):
        z = b.z_map.clone().requires_grad_(True)
        b._lbfgs(z, dict(b.weights), 50)
        r = b._residuals_value(z.detach())
        return max(abs(float(r[k].pow(2).mean().sqrt()) * math.sqrt(w) - 1) for k, w in b.weights.items())

    b = BPINN(MLP((0, 1), (8,), seed=0), _sobolev(n=30))
    b.warmup(100, lbfgs_steps=50)
    assert b.warmup_info["converged"] and b.warmup_info["noise_change"] <= 0.02 and b.warmup_info["rounds"] >= 4
    assert one_more_round(b) <= 0.02
    once = BPINN(MLP((0, 1), (8,), seed=0), _sobolev(n=30))
    once.warmup(100, lbfgs_rounds=1, lbfgs_steps=50, noise_tol=None)
    assert once.warmup_info["rounds"] == 1 and not once.warmup_info["converged"]
    assert one_more_round(once) > 0.2


def test_lotka_volterra_summary_counts_against_the_exact_posterior():
    from napari_dynfit.bench.bpinn_cases import LV_TRUE, lotka_volterra_summary
    from napari_dynfit.bench.figures import _bpinn

    def run(seed, cov, ref_cov, shift):
        return {"seed": seed, "reference": {"covered": dict(zip(LV_TRUE, ref_cov))},
                "adaptive": {"all_within_5pct": True, "all_covered": all(cov), "covered": dict(zip(LV_TRUE, cov)),
                             "shift": dict.fromkeys(LV_TRUE, shift), "sd_ratio": dict.fromkeys(LV_TRUE, 1.0 + shift)}}

    s = lotka_volterra_summary([run(0, [1, 1, 0, 1], [1, 1, 1, 1], 0.2), run(1, [1, 1, 1, 1], [0, 1, 1, 1], -0.4)])
    assert s["all_covered"] == 1 and s["reference_all_covered"] == 1 and s["all_within_5pct"] == 2
    assert s["covered"] == {"alpha": 2, "beta": 2, "delta": 1, "gamma": 2}
    assert s["reference_covered"]["alpha"] == 1
    assert s["shift_mean"]["alpha"] == pytest.approx(-0.1) and s["shift_rms"]["beta"] == pytest.approx(np.sqrt(0.1))
    assert s["sd_ratio"]["gamma"] == pytest.approx([0.6, 0.9, 1.2])
    assert "LV rates covered 7/8 (exact 7/8)" in _bpinn({"lotka_volterra_summary": s})


def test_bad_weighting_is_one_clear_error():
    with pytest.raises(InputError, match="weighting"):
        BPINN(MLP(), _sobolev(n=5), weighting="magic")


def test_output_layer_draws_match_bayesian_linear_regression():
    # with the hidden layers at the MAP point the network is linear in its output layer: the
    # posterior of the fit is Bayesian linear regression on the hidden features, known in closed form
    from torch.func import functional_call

    rng = np.random.default_rng(0)
    x = torch.linspace(0, 1, 25, dtype=torch.float64)[:, None]
    y = torch.sin(2 * np.pi * x[:, 0]) + 0.1 * torch.as_tensor(rng.standard_normal(25))
    b = BPINN(MLP((0, 1), (6,), seed=2), [Task("y", lambda f, th: f(x) - y, noise=0.1)], weighting="fixed")
    b.warmup(100, lbfgs_rounds=1, lbfgs_steps=30)
    idx = b.subnetwork_index("output")
    assert len(idx) == 7 and len(b.subnetwork_index("all")) == b.n_weights
    xt = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)[:, None]
    params, _ = b._split(b.z_map)
    head = {k: v for k, v in params.items() if k.startswith("mlp.2")}

    def out(h, X):
        return functional_call(b.net, {**params, **h}, (X,))

    design = {X: torch.cat([t.reshape(len(X), -1) for t in torch.func.jacrev(out)(head, X).values()], dim=1)
              for X in (x, xt)}  # f is linear in the head: f = design @ head (zero prior mean)
    cov = torch.linalg.inv(design[x].T @ design[x] / 0.1 ** 2 + torch.eye(7, dtype=torch.float64))
    mean = cov @ design[x].T @ y / 0.1 ** 2
    res = b.sample(xt.numpy(), draws=250, tune=50, chains=1, num_steps=6, restarts=False)
    sd = torch.sqrt(torch.einsum("ij,jk,ik->i", design[xt], cov, design[xt])).numpy()
    assert np.allclose(res.mean["u"], (design[xt] @ mean).numpy(), atol=0.3 * sd.max())
    assert np.allclose(res.std["u"], sd, rtol=0.25)
    assert res.diagnostics["sampled_dim"] == 7 and res.diagnostics["divergences"] == 0


def test_rest_laplace_adds_the_hidden_layers_linearised_share_of_the_width():
    # u' = -k u from noisy data with a 5-unit network: with the hidden layers held at the MAP point the
    # Laplace sd of log k is the output layer's (conditional) one; rest="laplace" adds draws whose
    # variance is the difference to the all-weights Laplace variance (law of total variance for a
    # Gaussian), and moves the hidden layers with them
    rng = np.random.default_rng(1)
    x = torch.linspace(0, 1, 30, dtype=torch.float64)[:, None]
    y = torch.exp(-3 * x[:, 0]) + 0.05 * torch.as_tensor(rng.standard_normal(30))

    def ode(net, th):
        u, du = derivative(net, x)
        return du + th["k"] * u

    tasks = [Task("data", lambda net, th: net(x) - y, noise=0.05), Task("ode", ode, noise=0.05, physics=True)]
    b = BPINN(MLP((0, 1), (5,), seed=1), tasks, {"k": Prior(0.0, 2.0, log=True)}, weighting="fixed")
    b.warmup(300, lbfgs_rounds=1, lbfgs_steps=100)
    z = b.z_map
    out, every = b.subnetwork_index("output"), b.subnetwork_index("all")
    var = {s: float((L @ L.T)[-1, -1]) for s, L in (("out", b.laplace_factor(z, None, out)),
                                                       ("all", b.laplace_factor(z, None, every)))}
    assert var["all"] > 1.05 * var["out"]  # the hidden layers hold a share of the width here
    d = b._rest_shifts(z, out, b.weights, 20000, torch.Generator().manual_seed(0))
    assert float(d[:, -1].var()) == pytest.approx(var["all"] - var["out"], rel=0.05)
    hidden = torch.ones(len(z), dtype=torch.bool)
    hidden[out] = False
    assert float(d[:, hidden].std(dim=0).min()) > 0  # every hidden weight moves
    res = b.sample(None, draws=20, tune=20, chains=1, num_steps=5, rest="laplace")
    assert res.samples["k"].shape == (1, 20) and np.all(np.abs(np.log(res.samples["k"]) - np.log(3.0)) < 0.5)
    with pytest.raises(InputError, match="rest"):
        b.sample(None, draws=2, tune=2, subnetwork="all", rest="laplace")
    with pytest.raises(InputError, match="rest"):
        b.sample(None, draws=2, tune=2, rest="magic")


def test_laplace_factor_is_the_square_root_of_the_autograd_gauss_newton_covariance():
    # a tiny tanh network (nonlinear in every hidden weight) at a state off the MAP point, two tasks of
    # different weights (one differentiating the network) and a log-normal rate: the reference builds
    # H = sum_k lambda_k J_k^T J_k + P with J_k by autograd (exact) and P from the priors as stated; the
    # factor (central differences, step 1e-5: error ~1e-10 relative) must satisfy L^T H L = I
    x = torch.linspace(0, 1, 12, dtype=torch.float64)[:, None]
    y = torch.exp(-2 * x[:, 0])

    def ode(net, th):
        u, du = derivative(net, x)
        return du + th["k"] * u

    tasks = [Task("data", lambda net, th: net(x) - y, noise=0.05), Task("ode", ode, noise=0.3, physics=True)]
    b = BPINN(MLP((0, 1), (3,), seed=2), tasks, {"k": Prior(0.5, 2.0, log=True)}, weighting="fixed", prior_std=1.5)
    z = b.initial_state() + 0.3 * torch.randn(b.n_weights + 1, dtype=torch.float64,
                                              generator=torch.Generator().manual_seed(4))
    lam = {"data": 0.05 ** -2, "ode": 0.3 ** -2}
    for sub in ("output", "all"):
        index = b.subnetwork_index(sub)

        def weighted(v, index=index):
            r = b.residuals(z.index_put((index,), v))
            return torch.cat([np.sqrt(lam[k]) * r[k] for k in ("data", "ode")])

        J = torch.autograd.functional.jacobian(weighted, z[index].clone())
        prec = torch.tensor([1.5 ** -2] * b.n_weights + [2.0 ** -2], dtype=torch.float64)[index]
        H = J.T @ J + torch.diag(prec)
        L = b.laplace_factor(z, None, index)
        assert L.shape == (len(index), len(index)) and torch.equal(L, torch.triu(L))
        eye = torch.eye(len(index), dtype=torch.float64)
        assert float((L.T @ H @ L - eye).abs().max()) < 1e-6  # measured 3e-10 (output), 1.4e-9 (all)
        # the check can tell: without the prior precision L^T H L is far from I (measured 0.93, 0.99), and the
        # tolerance is below the finite-difference error of a coarser step in the hidden weights (1.4e-5)
        assert float((L.T @ (J.T @ J) @ L - eye).abs().max()) > 0.5
        if sub == "all":
            coarse = b.laplace_factor(z, None, index, step=1e-3)
            assert float((coarse.T @ H @ coarse - eye).abs().max()) > 1e-6


def test_cut_parameter_draws_carry_the_parameter_uncertainty_into_the_field():
    # u = a sin(2 pi x) is fixed by an equation given a; a comes from a separate estimate with
    # log-sd 0.1 (a cut posterior): the pooled field draws spread like a sin(2 pi x), cover the truth
    # (a = 1) at every point, and each chain holds its own draw of a
    x = torch.linspace(0, 1, 30, dtype=torch.float64)[:, None]
    s = torch.sin(2 * np.pi * x[:, 0])
    b = BPINN(MLP((0, 1), (16,), seed=1), [Task("eq", lambda f, th: f(x) - th["a"] * s, noise=0.01)],
              {"a": Prior(0.0, 0.1, log=True)}, weighting="fixed")
    b.warmup(200, lbfgs_rounds=1, lbfgs_steps=50, fit_parameters=False)
    a = np.exp(np.random.default_rng(0).normal(0.0, 0.1, (12, 1)))
    xs = np.linspace(0.05, 0.45, 9)[:, None]  # sin > 0 there
    truth = np.sin(2 * np.pi * xs[:, 0])
    res = b.sample(xs, draws=15, tune=15, chains=12, num_steps=4, parameter_draws=a)
    assert np.allclose(res.samples["a"], np.repeat(a, 15, axis=1))
    assert res.diagnostics["parameters_cut"] and res.diagnostics["sampled_dim"] == 17
    assert np.allclose(res.std["u"] / truth, a.std(), rtol=0.2)
    lo, hi = np.percentile(res.field_samples["u"].reshape(-1, 9), [2.5, 97.5], axis=0)
    assert np.all((lo <= truth) & (truth <= hi))
    assert res.diagnostics["rhat_field_max_u"] > 2 and "rhat_within_max_u" in res.diagnostics  # chains differ by design
    with pytest.raises(InputError, match="parameter_draws"):
        b.sample(xs, draws=2, tune=2, chains=2, parameter_draws=a)


def test_gaussian_sampler_draws_the_exact_conditional_posterior_with_a_parameter_draw_each():
    # u = a sin(2 pi x) + b x: linear in the output layer and affine in (a, b), so given the hidden
    # layers the output layer's posterior is Gaussian; sampler="gaussian" gives exact independent draws,
    # one parameter draw each (400 here, at the cost of 3 Jacobians per chain)
    from torch.func import functional_call

    x = torch.linspace(0, 1, 30, dtype=torch.float64)[:, None]
    s = torch.sin(2 * np.pi * x[:, 0])
    b = BPINN(MLP((0, 1), (16,), seed=1), [Task("eq", lambda f, th: f(x) - th["a"] * s - th["b"] * x[:, 0], noise=0.01)],
              {"a": Prior(0.0, 0.1, log=True), "b": Prior(0.0, 0.1)}, weighting="fixed")
    b.warmup(200, lbfgs_rounds=1, lbfgs_steps=50, fit_parameters=False)
    rng = np.random.default_rng(0)
    ab = np.column_stack([np.exp(rng.normal(0.0, 0.1, 400)), rng.normal(0.0, 0.1, 400)])
    xs = np.linspace(0.05, 0.45, 9)[:, None]
    res = b.sample(xs, draws=200, chains=2, sampler="gaussian", parameter_draws=ab)
    assert res.diagnostics["sampler"] == "gaussian" and res.field_samples["u"].shape == (2, 200, 9)
    assert np.allclose(res.samples["a"].reshape(-1), ab[:, 0]) and np.allclose(res.samples["b"].reshape(-1), ab[:, 1])
    # the pooled draws spread like a sin(2 pi x) + b x and the per-draw fields follow their parameters
    model = ab[:, :1] * np.sin(2 * np.pi * xs[:, 0]) + ab[:, 1:] * xs[:, 0]
    assert np.allclose(res.std["u"], model.std(axis=0), rtol=0.15)
    assert np.corrcoef(res.field_samples["u"].reshape(400, 9)[:, 4], model[:, 4])[0, 1] > 0.95
    # with the parameters fixed, the draws' spread is the closed-form posterior's
    fixed = np.tile([1.0, 0.0], (600, 1))
    res = b.sample(xs, draws=300, chains=2, sampler="gaussian", parameter_draws=fixed)
    params, _ = b._split(b.z_map)
    head = {k: v for k, v in params.items() if k.startswith("mlp.2")}

    def design(X):
        jac = torch.func.jacrev(lambda h: functional_call(b.net, {**params, **h}, (X,)))(head)
        return torch.cat([t.reshape(len(X), -1) for t in jac.values()], dim=1)

    cov = torch.linalg.inv(design(x).T @ design(x) / 0.01 ** 2 + torch.eye(17, dtype=torch.float64))
    Xs = torch.as_tensor(xs)
    sd = torch.sqrt(torch.einsum("ij,jk,ik->i", design(Xs), cov, design(Xs))).numpy()
    assert np.allclose(res.std["u"], sd, rtol=0.15)
    # a residual that is not linear in the output layer is refused, as are missing parameter draws
    nl = BPINN(MLP((0, 1), (16,), seed=1), [Task("eq", lambda f, th: f(x) ** 2 - s ** 2, noise=0.01)], weighting="fixed")
    nl.warmup(20, lbfgs_rounds=0)
    with pytest.raises(InputError, match="linear"):
        nl.sample(xs, draws=2, chains=1, sampler="gaussian")
    with pytest.raises(InputError, match="parameter_draws"):
        b.sample(xs, draws=2, chains=1, sampler="gaussian")


def test_hmc_samples_an_ill_conditioned_gaussian():
    # scales 100 apart: the adapted diagonal mass matrix makes both directions mix
    scale = torch.tensor([0.01, 1.0], dtype=torch.float64)
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)

    def U(z):
        return 0.5 * (((z - mu) / scale) ** 2).sum()

    ch = hmc_chain(U, mu + 0.5 * scale, draws=300, tune=200, num_steps=6, seed=3)
    d = ch.draws.numpy()
    assert d.shape == (300, 2) and ch.divergences == 0 and not ch.stopped
    assert np.allclose(d.mean(0), mu.numpy(), atol=(0.25 * scale).numpy())
    assert np.allclose(d.std(0), scale.numpy(), rtol=0.25)
    assert 0.6 < ch.acceptance <= 1.0


def test_hmc_stop_keeps_draws():
    seen = []
    ch = hmc_chain(lambda z: 0.5 * (z ** 2).sum(), torch.zeros(3, dtype=torch.float64), draws=50, tune=10,
                   num_steps=4, callback=lambda i, n, z: seen.append(i), should_stop=lambda: len(seen) >= 15)
    assert ch.stopped and len(ch.draws) == 5


def _tracks_and_source(tmp_path):
    from napari_dynfit.sim.chemotaxis import simulate_chemotaxis

    sim = simulate_chemotaxis(n_cells=40, n_frames=4, substeps=2, grid=16, seed=0)
    sim.to_table().to_csv(tmp_path / "tracks.csv", index=False)
    sim.field_bundle().to_npz(tmp_path / "truth.npz")  # its field "s" is the source
    return tmp_path / "tracks.csv", tmp_path / "truth.npz"


def test_cli_latent_field_bayesian_writes_mean_std_and_draws(tmp_path, capsys):
    import pandas as pd

    from napari_dynfit.cli import main
    from napari_dynfit.fields import FieldBundle

    tracks, src = _tracks_and_source(tmp_path)
    out = tmp_path / "post.zarr"
    base = [str(tracks), "--dt", "0.2", "--box", "10", "10", "--source", str(src), "--steps", "4", "--grid", "6",
            "--bayesian", "--draws", "3", "--tune", "2", "--chains", "1", "--collocation", "100"]
    # --no-estimate: Dc, k, chi are sampled too (log-normal priors around the guesses)
    # --device auto: the CPU here
    assert main(["latent-field", *base, "-o", str(out), "--no-estimate", "--samples", str(tmp_path / "d.csv"),
                 "--device", "auto"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    b = FieldBundle.from_zarr(out)
    assert b["phi"].shape == b["phi_std"].shape == (4, 6, 6)
    assert np.all(b["phi_std"] >= 0) and np.isfinite(b["phi"]).all()
    draws = pd.read_csv(tmp_path / "d.csv")
    assert list(draws.columns) == ["chain", "draw", "Dc", "k", "chi"] and len(draws) == 3
    assert set(info["noise"]) == {"velocity", "pde", "initial"}
    assert b.attrs["bpinn"]["coefficients_sampled"]
    if not torch.cuda.is_available():  # --device cuda without a GPU: one clear error line, exit 2
        assert main(["latent-field", *base, "-o", str(tmp_path / "c.zarr"), "--device", "cuda"]) == 2
        assert "CUDA GPU" in capsys.readouterr().err  # the one device rule's message (napari_dynfit.device)


def test_bench_bpinn_registered():
    from napari_dynfit.commands.bench import _benchmarks

    assert "bpinn" in _benchmarks()


@pytest.mark.gui
def test_latent_field_widget_bayesian_mean_std_layers_and_histograms(make_napari_viewer):
    from napari_dynfit._napari._pinn_widget import LAYER, STD_LAYER, LatentFieldWidget
    from napari_dynfit.sim.chemotaxis import simulate_chemotaxis

    tr = simulate_chemotaxis(n_cells=30, n_frames=4, substeps=2, grid=16, seed=0).to_table()
    viewer = make_napari_viewer()
    viewer.add_tracks(tr[["track_id", "frame", "y", "x"]].to_numpy(float), name="cells")
    w = LatentFieldWidget(viewer)
    w._box_y.value = w._box_x.value = 10.0
    w._steps.value, w._chunk.value, w._grid.value = 10, 10, 8
    w._bayesian.value, w._draws.value = True, 3
    w.train(block=True)
    # the names say what the (untitled) colour bars show: grad(phi) is a velocity of tracks without units, so px²/frame
    mean, std = viewer.layers[f"{LAYER} (px²/frame)"], viewer.layers[f"{STD_LAYER} (px²/frame)"]
    assert mean.data.shape == std.data.shape == (4, 8, 8)
    # on the tracks' time axis (the one convention), labelled t, y, x
    assert tuple(std.axis_labels) == ("t", "y", "x") and viewer.dims.range[0].start == 0.0
    assert "3 draws x 2 chains" in w._status.value
    # no known source: Dc, k are sampled; their draws arrived live and are shown as histograms
    assert set(w._draws_seen) == {"Dc", "k"} and len(w._figure.axes[0].patches) > 0


# --- issue 20's must-show cases (slow; figures and runtimes in docs/pinn.md) ------------------------
def test_sobolev_case_function_and_epsilon_optimal_weights():
    # the paper's u = sin^3(6x): analytic derivatives against finite differences, and the epsilon-optimal
    # weights (eq. 25) proportional to 1 / int |D^k u|^2 and summing to one
    from napari_dynfit.bench.bpinn_cases import epsilon_optimal_weights, sobolev_function

    x = np.linspace(-0.7, 0.7, 2001)
    assert np.allclose(sobolev_function(x), np.sin(6 * x) ** 3, atol=1e-14)
    for k in (1, 2, 3):
        fd = np.gradient(sobolev_function(x, k - 1), x, edge_order=2)
        assert np.allclose(fd[5:-5], sobolev_function(x, k)[5:-5], rtol=1e-3, atol=1e-3 * 18 ** k)
    lam = epsilon_optimal_weights(2)
    integrals = [np.trapezoid(sobolev_function(x, k) ** 2, x) for k in range(3)]
    assert sum(lam) == pytest.approx(1.0)
    assert np.allclose(np.array(lam) * integrals, lam[0] * integrals[0], rtol=1e-5)


def test_sobolev_case_runs_both_samplers_from_one_warm_up():
    # tiny problem: each weighting is warmed up once and sampled by both samplers (output layer; every weight),
    # and the table / README cell report them side by side
    from napari_dynfit.bench.bpinn_cases import _md_table, sobolev_case
    from napari_dynfit.bench.figures import _bpinn

    torch.manual_seed(0)
    r = sobolev_case(3, n=12, hidden=(4,), draws=4, tune=4, warmup_steps=10, num_steps=2,
                     warmup_options={"lbfgs_rounds": 1, "lbfgs_steps": 5})
    out, full = r["samplers"]["output"], r["samplers"]["all"]
    for w in ("adaptive", "epsilon-optimal", "equal"):
        assert out[w]["weights"] == full[w]["weights"]  # one warm-up: the same learned weights
        assert out[w]["seconds"]["warmup"] == full[w]["seconds"]["warmup"]
        assert np.isfinite(full[w]["rel_l2"]) and full[w]["rel_l2"] != out[w]["rel_l2"]
    assert r["ratio_equal"] == out["ratio_equal"] and "ratio_equal" in full  # top level: the default sampler
    assert full["equal"]["weights"] == {"d0": 1.0, "d1": 1.0, "d2": 1.0}
    table = _md_table({"sobolev": [r]})
    assert "output-layer HMC" in table and "HMC on every weight" in table
    assert "HMC on every weight: adaptive" in _bpinn({"sobolev": [r]})


@pytest.mark.slow
def test_sobolev_adaptive_within_2x_of_epsilon_optimal():
    # the paper's case (sin^3(6x), 100 points, u, u', u'' with noise 0.1); held-out seed 0 (tuned on 10-11)
    from napari_dynfit.bench.bpinn_cases import sobolev_case

    r = sobolev_case(0)
    assert r["ratio_adaptive"] <= 2.0  # the bound
    # the learned noise of the value data is the noise added (0.1); those of u', u'' add the network's misfit
    assert r["adaptive"]["noise"]["d0"] == pytest.approx(0.1, rel=0.3)
    # not met (docs/pinn.md): equal weights are not >= 10x worse -- with the hidden layers at the MAP point and
    # HMC whitened by the output layer's Laplace factor the paper's failure of uniform weights (a stiff, non-
    # conservative leapfrog over every weight) does not occur; what holds is that they do not fail
    assert r["ratio_equal"] < 10
    # the paper's setting, every weight sampled (same warm-up): adaptive still within 2x (measured 0.59x), equal
    # weights worse (measured 3.04x; 2.6-3.7x on seeds 0-2: the u offset does not mix), not the paper's >= 10x
    full = r["samplers"]["all"]
    assert full["ratio_adaptive"] <= 2.0
    assert full["ratio_equal"] >= 2.0 and full["ratio_equal"] > 2 * full["ratio_adaptive"]
    # the paper's AW-HMC start (every weight from the initial weights, no warm-up): adaptive within 2x (measured
    # 0.14x), equal weights fail -- posterior mean of u worse than u = 0 (rel. L2 1.85; 7.5x eps-optimal)
    init = r["samplers"]["all-from-init"]
    assert init["ratio_adaptive"] <= 2.0
    assert init["equal"]["rel_l2"] > 1.0 and init["ratio_equal"] > 5 * init["ratio_adaptive"]


@pytest.mark.slow
def test_lotka_volterra_exact_posterior_is_calibrated():
    # the reference the BPINN is judged against: over 100 noise seeds (~4 min) its 95 % intervals cover each
    # rate on ~95 % of the seeds (measured over seeds 0-199: 94.0-95.5 %; all four at once 90 %), so "every
    # rate covered on all 5 seeds" holds for a calibrated posterior with probability ~0.9^5 = 0.59 only
    from napari_dynfit.bench.bpinn_cases import lotka_volterra_reference_coverage

    c = lotka_volterra_reference_coverage(range(100))
    assert all(0.89 <= v <= 0.99 for v in c["coverage"].values()), c["coverage"]
    assert 0.8 <= c["all_covered"] <= 0.97
    assert all(abs(v) <= 0.35 for v in c["z_mean"].values()) and all(0.8 <= v <= 1.2 for v in c["z_sd"].values())


@pytest.mark.slow
def test_lotka_volterra_posterior_matches_the_exact_ode_posterior():
    # held-out noise seeds 0-4 (the warm-up's stopping rule and the noise floor were chosen on seeds 100-109);
    # ~25 s CPU per seed. Judged against the exact ODE posterior on the same data (lotka_volterra_reference):
    # the BPINN mean of each log rate minus the exact one, in exact sd ("shift"), and the sd ratio.
    # Before the fix (4 x 100 L-BFGS iterations, floor 1e-3) the shift averaged +0.5 sd low on a and b
    # over seeds 0-14 and the MAP point was 1.7-2.4 sd off on tuning seeds 100-103 (docs/pinn.md)
    from napari_dynfit.bench.bpinn_cases import lotka_volterra_case, lotka_volterra_summary

    runs = [lotka_volterra_case(seed, weightings=("adaptive",)) for seed in range(5)]
    for r in runs:
        a = r["adaptive"]
        assert a["all_within_5pct"], (r["seed"], a["rel_error"])
        assert a["warmup"]["converged"], (r["seed"], a["warmup"])
        for k in ("prey", "predator"):  # learned data noise within 25 % of the noise added
            assert a["noise"][k] == pytest.approx(r["true_noise"][k], rel=0.25)
        # measured on seeds 0-14: |shift| <= 0.46, sd ratio 0.63-1.17 (docs/pinn.md)
        assert all(abs(v) <= 1.0 for v in a["shift"].values()), (r["seed"], a["shift"])
        assert all(0.55 <= v <= 1.5 for v in a["sd_ratio"].values()), (r["seed"], a["sd_ratio"])
        assert max(a["rhat"].values()) <= 1.2
    s = lotka_volterra_summary(runs)
    # no systematic shift (measured over seeds 0-4: |mean| <= 0.07 sd; before the fix ~0.5 sd on a and b)
    assert all(abs(v) <= 0.3 for v in s["shift_mean"].values()), s["shift_mean"]


@pytest.mark.slow
def test_lotka_volterra_rest_laplace_restores_the_hidden_layers_share_of_the_width():
    # tuning seed 100, ~55 s CPU: against the exact ODE posterior that estimates its noise as the BPINN does,
    # HMC on the output layer alone (rest="map") gives b's sd 0.93x; with the hidden layers' linearised share
    # added (rest="laplace", the case's default) 1.00x (docs/pinn.md)
    from napari_dynfit.bench.bpinn_cases import lotka_volterra_case

    r = lotka_volterra_case(100, weightings=("adaptive",))
    a = r["adaptive"]
    assert r["rest"] == "laplace"
    assert a["sd_ratio_estimated_noise"]["beta"] >= 0.95, a["sd_ratio_estimated_noise"]
    assert all(0.9 <= v <= 1.2 for v in a["sd_ratio_estimated_noise"].values()), a["sd_ratio_estimated_noise"]
    assert all(abs(v) <= 0.4 for v in a["shift_estimated_noise"].values()), a["shift_estimated_noise"]
    assert max(a["rhat"].values()) <= 1.1


@pytest.mark.slow
def test_lotka_volterra_converged_warmup_removes_the_map_bias():
    # the diagnosis on tuning seed 100: the earlier 4 x 100 L-BFGS rounds stopped with the predator equation's
    # noise still falling and the MAP rates a, b 2.2 and 2.6 exact sd low; at the fixed point of the noise
    # levels (the default) within 0.3 sd, and the output layer holds >= 85 % of the Laplace width
    from napari_dynfit.bench.bpinn_cases import FIXED_ROUNDS_WARMUP, lotka_volterra_map_check

    old = lotka_volterra_map_check(100, noise_floor=1e-3, warmup_options=FIXED_ROUNDS_WARMUP)
    assert old["shift_map"]["alpha"] < -1.5 and old["shift_map"]["beta"] < -1.5 and not old["warmup"]["converged"]
    new = lotka_volterra_map_check(100)
    assert new["warmup"]["converged"]
    assert all(abs(v) <= 0.4 for v in new["shift_map"].values()), new["shift_map"]
    assert all(0.85 <= v <= 1.15 for v in new["sd_ratio"]["output"].values()), new["sd_ratio"]


@pytest.mark.slow
def test_latent_chemotaxis_posterior_mean_and_learned_noise():
    # defaults (warm-up on redrawn points, 2 chains x 100 draws, each with its own coefficient draw and
    # an exact Gaussian draw of the output layer); held-out seed 1
    from napari_dynfit.bench.bpinn_cases import chemotaxis_case

    r = chemotaxis_case(1)
    assert r["rel_l2"] <= 0.05  # measured 0.82 % (docs/pinn.md)
    assert abs(r["noise_ratio"] - 1) <= 0.3  # measured 1.021
    assert r["coefficients_propagated"] and r["sampler"] == "gaussian" and r["chains"] * r["draws"] == 200
    # the bands carry the coefficients' uncertainty (1.29 % of the RMS field) and cover the truth:
    # measured 99.4 %, as the exact-physics posterior (100 %). Not met (docs/pinn.md): 90-98 % on every
    # seed -- seed 2 99.9 %, seed 3 20.9 % (the exact-physics posterior: 100 %, 20 %)
    assert r["mean_std_over_rms"] >= 0.008
    assert r["coverage95"] >= 0.90


def test_dirichlet_weights_balance_gradient_variances():
    # task b's residual is 3x task a's: its gradient is 9x, so its inverse-Dirichlet weight is 1/9 (a's: 1)
    x = torch.linspace(0, 1, 10, dtype=torch.float64)[:, None]
    y = torch.sin(3 * x[:, 0])
    tasks = [Task("a", lambda net, th: net(x) - y), Task("b", lambda net, th: 3 * (net(x) - y))]
    b = BPINN(MLP((0, 1), (6,)), tasks)
    lam = b.dirichlet_weights(b.initial_state())
    assert lam["a"] == pytest.approx(1.0) and lam["b"] == pytest.approx(1 / 9, rel=1e-9)


def test_hmc_on_tune_changes_the_potential_during_burn_in():
    # the potential's scale is switched from 1 to 3 during tuning: the kept draws follow the new one
    scale = {"s": 1.0}

    def on_tune(i, z):
        if i == 10:
            scale["s"] = 3.0
            return True
        return False

    ch = hmc_chain(lambda z: 0.5 * (z / scale["s"]).pow(2).sum(), torch.zeros(2, dtype=torch.float64), draws=400,
                   tune=100, num_steps=6, seed=1, on_tune=on_tune)
    assert np.allclose(ch.draws.numpy().std(0), 3.0, rtol=0.25)


def test_sobolev_case_from_initial_weights_skips_the_warm_up():
    # the paper's AW-HMC start: no warm-up, every chain from the network's initialisation; adaptive weights set
    # from the inverse-Dirichlet balance in burn-in (scaled by 1 / noise^2), fixed weights untouched
    from napari_dynfit.bench.bpinn_cases import _md_table, sobolev_case
    from napari_dynfit.bench.figures import _bpinn

    r = sobolev_case(3, n=12, hidden=(4,), draws=4, tune=6, num_steps=2, samplers=("all-from-init",))
    s = r["samplers"]["all-from-init"]
    for w in ("adaptive", "epsilon-optimal", "equal"):
        assert s[w]["seconds"]["warmup"] == 0.0 and np.isfinite(s[w]["rel_l2"])
    lam = {k: v * 0.1 ** 2 for k, v in s["adaptive"]["weights"].items()}
    assert max(lam.values()) == pytest.approx(1.0) and min(lam.values()) < 1  # the least-varying task's weight 1
    assert s["equal"]["weights"] == {"d0": 1.0, "d1": 1.0, "d2": 1.0} and "ratio_equal" in s
    assert "HMC on every weight from the initial weights" in _md_table({"sobolev": [r]})
    assert "from the initial weights: adaptive" in _bpinn({"sobolev": [r]})
