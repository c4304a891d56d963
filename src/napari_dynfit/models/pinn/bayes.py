"""Bayesian PINNs (BPINN) with automatically adapted task weights (Perez et al. 2023, arXiv:2302.12697).

The posterior over the flattened network weights ``w`` and the physical parameters ``theta`` is

.. math::

    -\\log p(w, \\theta \\mid D) = \\sum_k \\frac{\\lambda_k}{2} \\sum_i r_{k,i}(w, \\theta)^2
    + \\frac{|w|^2}{2 s_w^2} + \\sum_j \\frac{(q_j - m_j)^2}{2 s_j^2} + \\mathrm{const},

one Gaussian likelihood term per *task* ``k`` (data fit, derivative data, PDE residual, boundary...)
with residuals ``r_k`` and weight ``lambda_k = 1 / sigma_k^2`` (``sigma_k``: the task's noise
standard deviation, in the residual's units). ``q_j`` is ``theta_j`` or ``log theta_j`` (log-normal prior,
for positive parameters spanning orders of magnitude).

Weights
-------
* ``"fixed"``: ``lambda_k`` given per task (default 1 for all: equal weights).
* ``"adaptive"``: the multi-task structure of the posterior is used as in the paper: each task's
  noise ``sigma_k`` is a hyper-parameter estimated during warm-up, jointly with a MAP point
  (Adam on the negative log posterior; every ``update_every`` steps the closed-form maximiser
  ``sigma_k^2 = mean_i r_{k,i}^2`` of the task's Gaussian likelihood, floored at ``noise_floor`` times
  the task's residual scale at the start so a task that can be met exactly cannot take all the weight).
  After warm-up the weights are **fixed** and HMC samples the resulting posterior, so the chain
  targets a stationary distribution. The learned ``lambda_k`` then report each task's noise level
  (``sigma_k = lambda_k^{-1/2}``) and, for PDE residuals, how well the model equation fits the data.
  Tasks given an explicit ``noise`` keep it.

Sampler
-------
We do not write an HMC sampler: pyro-ppl's NUTS (or HMC) runs on a ``potential_fn`` over one flat
torch vector ``z = (w, q)``, with pyro's dual-averaging step-size and diagonal mass-matrix adaptation,
and its ``effective_sample_size`` / ``split_gelman_rubin`` diagnostics. A potential function (rather
than a pyro model with ``sample`` statements per layer) keeps the network an ordinary
:class:`torch.nn.Module` evaluated with :func:`torch.func.functional_call`, so issue 8's networks and
autograd residuals are reused unchanged. Chains run one after the other (each from the MAP point
plus a small jitter); ``should_stop`` interrupts sampling and the samples drawn so far are kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.func import functional_call

from ...errors import InputError

WEIGHTINGS = ("adaptive", "fixed")


@dataclass
class Task:
    """One likelihood term.

    Parameters
    ----------
    name : str
    residual : callable
        ``residual(f, theta) -> Tensor (N,)``: ``f(points) -> output`` evaluates the network with the
        current weights; ``theta`` maps parameter names to 0-d tensors (physical values).
    noise : float, optional
        Fixed noise standard deviation of this task (residual units); ``None``: set by the weighting.
    weight : float
        ``lambda_k`` for ``weighting="fixed"`` when ``noise`` is not given.
    """

    name: str
    residual: Callable
    noise: float | None = None
    weight: float = 1.0


@dataclass
class Prior:
    """Normal prior on a physical parameter (``log=True``: normal on ``log theta``; mean/std of that)."""

    mean: float
    std: float
    log: bool = False


@dataclass
class BPINNResult:
    """Posterior summary of a BPINN run.

    Attributes
    ----------
    mean, std : dict of str -> ndarray
        Posterior mean and standard deviation of each predicted quantity at the evaluation points.
    samples : dict of str -> ndarray, shape (chains, draws)
        Physical parameter samples (physical units).
    intervals : dict of str -> (float, float)
        Central 95 % credible intervals of the parameters.
    weights, noise : dict of str -> float
        Task weights ``lambda_k`` used for sampling and the noise level ``lambda_k^{-1/2}`` each implies.
    diagnostics : dict
        ``acceptance`` (mean acceptance probability per chain), ``ess`` and ``rhat`` per parameter,
        ``ess_field_min`` / ``rhat_field_max`` over the predicted values, ``draws``, ``stopped``,
        ``seconds`` (warm-up, sampling).
    """

    mean: dict
    std: dict
    samples: dict
    intervals: dict
    weights: dict
    noise: dict
    diagnostics: dict = field(default_factory=dict)
    field_samples: dict = field(default_factory=dict, repr=False)


class _Stop(Exception):
    pass


class BPINN:
    """Bayesian PINN sampled by NUTS/HMC on a potential function.

    Parameters
    ----------
    network : torch.nn.Module
        The field network (e.g. :class:`FieldNetwork`); converted to float64 on ``device``.
    tasks : sequence of Task
    parameters : dict of str -> Prior, optional
        Physical parameters and their priors.
    weighting : {"adaptive", "fixed"}
    prior_std : float
        Standard deviation of the Gaussian prior on each network weight.
    noise_floor : float
        Relative floor of adaptive noise levels (see module docstring).
    device : str
        Torch device (``"cpu"``, ``"cuda"``).
    """

    def __init__(self, network, tasks, parameters=None, *, weighting: str = "adaptive", prior_std: float = 1.0,
                 noise_floor: float = 1e-3, device: str = "cpu"):
        if weighting not in WEIGHTINGS:
            raise InputError(f"weighting '{weighting}' is not one of {WEIGHTINGS}")
        if not tasks:
            raise InputError("a BPINN needs at least one task (likelihood term)")
        self.device = torch.device(device)
        self.net = network.to(device=self.device, dtype=torch.float64)
        self.tasks = list(tasks)
        self.priors = dict(parameters or {})
        self.weighting = weighting
        self.prior_std = float(prior_std)
        self.noise_floor = float(noise_floor)
        self._names = [n for n, _ in self.net.named_parameters()]
        self._shapes = [p.shape for _, p in self.net.named_parameters()]
        self._sizes = [p.numel() for _, p in self.net.named_parameters()]
        self.n_weights = sum(self._sizes)
        self.weights = {t.name: (1.0 / t.noise ** 2 if t.noise else float(t.weight)) for t in self.tasks}
        self._pm = torch.tensor([p.mean for p in self.priors.values()], dtype=torch.float64, device=self.device)
        self._ps = torch.tensor([p.std for p in self.priors.values()], dtype=torch.float64, device=self.device)
        self.z_map = None

    # --- potential ------------------------------------------------------------------------
    def _split(self, z: torch.Tensor):
        w = z[: self.n_weights]
        params = {}
        for name, shape, chunk in zip(self._names, self._shapes, torch.split(w, self._sizes)):
            params[name] = chunk.view(shape)
        q = z[self.n_weights:]
        theta = {n: (torch.exp(q[i]) if p.log else q[i]) for i, (n, p) in enumerate(self.priors.items())}
        return params, theta

    def _field(self, params):
        return lambda x: functional_call(self.net, params, (x,))

    def residuals(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Residual vector of each task at the flat state ``z``."""
        params, theta = self._split(z)
        f = self._field(params)
        return {t.name: t.residual(f, theta).reshape(-1) for t in self.tasks}

    def potential(self, z: torch.Tensor, weights=None) -> torch.Tensor:
        """Negative log posterior (up to a constant) at the flat state ``z``."""
        weights = self.weights if weights is None else weights
        res = self.residuals(z)
        u = sum(0.5 * weights[k] * (r ** 2).sum() for k, r in res.items())
        u = u + 0.5 * (z[: self.n_weights] ** 2).sum() / self.prior_std ** 2
        if self.priors:
            u = u + 0.5 * (((z[self.n_weights:] - self._pm) / self._ps) ** 2).sum()
        return u

    def initial_state(self) -> torch.Tensor:
        """Flat state of the network's current weights and the parameters' prior means."""
        w = torch.cat([p.detach().reshape(-1) for p in self.net.parameters()])
        return torch.cat([w.to(torch.float64), self._pm.clone()])

    # --- warm-up --------------------------------------------------------------------------
    def warmup(self, steps: int = 2000, lr: float = 3e-3, update_every: int = 50, should_stop=None) -> torch.Tensor:
        """MAP point by Adam; with ``weighting="adaptive"`` also the task noise levels (then fixed)."""
        z = self.initial_state().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        adapt = [t.name for t in self.tasks if t.noise is None] if self.weighting == "adaptive" else []
        floors = {}
        if adapt:
            with torch.no_grad():
                r0 = self.residuals(z)
            for k in adapt:
                scale = float(r0[k].pow(2).mean().sqrt())
                floors[k] = max(self.noise_floor * scale, 1e-12)
                self.weights[k] = 1.0 / max(scale, floors[k]) ** 2
        for step in range(int(steps)):
            opt.zero_grad()
            loss = self.potential(z)
            loss.backward()
            opt.step()
            if adapt and (step + 1) % update_every == 0:
                with torch.no_grad():
                    r = self.residuals(z)
                for k in adapt:
                    sigma = max(float(r[k].pow(2).mean().sqrt()), floors[k])
                    self.weights[k] = 1.0 / sigma ** 2
            if should_stop is not None and should_stop():
                break
        self.z_map = z.detach()
        return self.z_map

    # --- sampling -------------------------------------------------------------------------
    def sample(self, points=None, predict=None, *, draws: int = 200, tune: int = 200, chains: int = 2,
               sampler: str = "nuts", max_tree_depth: int = 6, num_steps: int = 20, jitter: float = 1e-3,
               warmup_steps: int = 2000, seed: int = 0, callback=None, should_stop=None) -> BPINNResult:
        """Warm up (if not done), sample, and summarise.

        Parameters
        ----------
        points : array-like, shape (N, D), optional
            Evaluation points of the latent field(s).
        predict : callable, optional
            ``predict(f, theta, X) -> dict of str -> Tensor``; default: the network outputs at ``X``
            (a tensor output is named ``"u"``).
        draws, tune, chains : int
            Posterior draws per chain, sampler adaptation steps per chain, number of chains.
        sampler : {"nuts", "hmc"}
        callback : callable, optional
            ``callback(chain, i, total)`` after every draw (``i`` counts warm-up and sampling).
        should_stop : callable, optional
            Returns True to stop; the draws collected so far are kept and summarised.
        """
        import pyro
        from pyro.infer.mcmc import HMC, NUTS, MCMC

        if sampler not in ("nuts", "hmc"):
            raise InputError(f"sampler '{sampler}' is not one of ('nuts', 'hmc')")
        t0 = time.perf_counter()
        if self.z_map is None:
            self.warmup(warmup_steps, should_stop=should_stop)
        t_warm = time.perf_counter() - t0
        weights = dict(self.weights)

        def potential_fn(params):
            return self.potential(params["z"], weights)

        chains_z, acceptance, stopped = [], [], False
        for c in range(int(chains)):
            pyro.set_rng_seed(seed + c)
            gen = torch.Generator(device="cpu").manual_seed(seed + c)
            z0 = self.z_map + jitter * torch.randn(self.z_map.shape, generator=gen, dtype=torch.float64).to(self.device)
            if sampler == "nuts":
                kernel = NUTS(potential_fn=potential_fn, adapt_step_size=True, adapt_mass_matrix=True,
                              max_tree_depth=max_tree_depth, target_accept_prob=0.8)
            else:
                kernel = HMC(potential_fn=potential_fn, num_steps=num_steps, adapt_step_size=True,
                             adapt_mass_matrix=True, target_accept_prob=0.8)
            got, acc = [], [float("nan")]

            def hook(kern, params, stage, i, got=got, acc=acc, c=c):
                if stage == "Sample":
                    got.append(params["z"].detach().clone())
                    acc[0] = float(getattr(kern, "_mean_accept_prob", float("nan")))
                if callback is not None:
                    callback(c, i + (0 if stage != "Sample" else int(tune)), int(tune) + int(draws))
                if should_stop is not None and should_stop():
                    raise _Stop

            mcmc = MCMC(kernel, num_samples=int(draws), warmup_steps=int(tune), initial_params={"z": z0},
                        hook_fn=hook, disable_progbar=True)
            try:
                mcmc.run()
            except _Stop:
                stopped = True
            if got:
                chains_z.append(torch.stack(got))
                acceptance.append(acc[0])
            if stopped:
                break
        if not chains_z:
            raise InputError("stopped before the first posterior draw: nothing to summarise")
        n = min(len(z) for z in chains_z)
        Z = torch.stack([z[:n] for z in chains_z])  # (chains, draws, dim)
        result = self._summarise(Z, points, predict, weights)
        result.diagnostics.update(acceptance=acceptance, draws=int(n), chains=len(chains_z), stopped=stopped,
                                  seconds={"warmup": t_warm, "sampling": time.perf_counter() - t0 - t_warm})
        return result

    def _summarise(self, Z, points, predict, weights) -> BPINNResult:
        from pyro.ops.stats import effective_sample_size, split_gelman_rubin

        C, S, _ = Z.shape
        samples = {}
        for i, (name, prior) in enumerate(self.priors.items()):
            q = Z[:, :, self.n_weights + i]
            samples[name] = (torch.exp(q) if prior.log else q).cpu().numpy()
        diag = {"ess": {}, "rhat": {}}
        for name, s in samples.items():
            t = torch.as_tensor(s)
            diag["ess"][name] = float(effective_sample_size(t, chain_dim=0, sample_dim=1))
            diag["rhat"][name] = float(split_gelman_rubin(t, chain_dim=0, sample_dim=1)) if S >= 4 else float("nan")
        intervals = {k: tuple(float(v) for v in np.percentile(s, [2.5, 97.5])) for k, s in samples.items()}
        mean, std, field_samples = {}, {}, {}
        if points is not None:
            X = torch.as_tensor(np.asarray(points, dtype=float), dtype=torch.float64, device=self.device)
            out: dict[str, list] = {}
            for z in Z.reshape(C * S, -1):
                params, theta = self._split(z)
                f = self._field(params)
                if predict is not None:
                    vals = predict(f, theta, X)
                else:
                    with torch.no_grad():
                        vals = f(X)
                if isinstance(vals, torch.Tensor):
                    vals = {"u": vals}
                for k, v in vals.items():
                    out.setdefault(k, []).append(v.detach().cpu().numpy())
            for k, v in out.items():
                a = np.stack(v).reshape(C, S, *v[0].shape)
                field_samples[k] = a
                mean[k] = a.mean(axis=(0, 1))
                std[k] = a.std(axis=(0, 1))
                flat = torch.as_tensor(a.reshape(C, S, -1))
                if S >= 4:
                    sub = flat[:, :, :: max(1, flat.shape[2] // 64)]
                    ess = effective_sample_size(sub, chain_dim=0, sample_dim=1)
                    diag[f"ess_field_min_{k}"] = float(torch.nan_to_num(ess, nan=float(C * S)).min())
                    if C >= 1:
                        rh = split_gelman_rubin(sub, chain_dim=0, sample_dim=1)
                        diag[f"rhat_field_max_{k}"] = float(torch.nan_to_num(rh, nan=1.0).max())
        noise = {k: 1.0 / math.sqrt(w) for k, w in weights.items()}
        return BPINNResult(mean=mean, std=std, samples=samples, intervals=intervals, weights=dict(weights),
                           noise=noise, diagnostics=diag, field_samples=field_samples)


class MLP(torch.nn.Module):
    """Small tanh MLP ``(N, d_in) -> (N,)`` for 1D problems (tests, benchmarks).

    Inputs are mapped to ``[-1, 1]`` with ``bounds`` ``(low, high)``.
    """

    def __init__(self, bounds=(0.0, 1.0), hidden=(32, 32), d_in: int = 1, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        self.low, self.high = float(bounds[0]), float(bounds[1])
        widths = [d_in, *hidden, 1]
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            lin = torch.nn.Linear(a, b)
            torch.nn.init.xavier_normal_(lin.weight, generator=gen)
            torch.nn.init.zeros_(lin.bias)
            layers += [lin, torch.nn.Tanh()]
        self.mlp = torch.nn.Sequential(*layers[:-1])

    def forward(self, x):
        z = 2.0 * (x - self.low) / (self.high - self.low) - 1.0
        return self.mlp(z).squeeze(-1)


def derivative(f, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Value and first derivative ``(f(x), df/dx)`` of a scalar 1D network at ``x`` ``(N, 1)``."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = f(x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    return u, du[:, 0]
