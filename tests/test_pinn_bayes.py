"""Bayesian PINN (issue 20): adaptive weights recover task noise levels; intervals cover the truth."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyro")

from napari_dynfit.errors import InputError  # noqa: E402
from napari_dynfit.models.pinn.bayes import BPINN, MLP, Prior, Task, derivative  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
    b.warmup(50)
    assert b.weights == {"f": 1.0, "df": 1.0}
    seen = []
    res = b.sample(np.zeros((3, 1)), draws=50, tune=5, chains=2, num_steps=3,
                   callback=lambda c, i, n: seen.append(i), should_stop=lambda: len(seen) >= 12)
    assert res.diagnostics["stopped"] and res.diagnostics["chains"] == 1
    assert 1 <= res.diagnostics["draws"] < 50 and res.mean["u"].shape == (3,)


def test_bad_weighting_is_one_clear_error():
    with pytest.raises(InputError, match="weighting"):
        BPINN(MLP(), _sobolev(n=5), weighting="magic")
