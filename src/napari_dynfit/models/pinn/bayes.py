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
  (:meth:`BPINN.warmup`: Adam with every task scaled by its own residual magnitude, then L-BFGS
  rounds, each after setting the closed-form maximiser ``sigma_k^2 = mean_i r_{k,i}^2`` of the
  task's Gaussian likelihood, floored at ``noise_floor`` times the task's residual scale so a task
  that can be met exactly cannot take all the weight).
  After warm-up the weights are **fixed** and HMC samples the resulting posterior, so the chain
  targets a stationary distribution. The learned ``lambda_k`` then report each task's noise level
  (``sigma_k = lambda_k^{-1/2}``) and, for PDE residuals, how well the model equation fits the data.
  Tasks given an explicit ``noise`` keep it.

Sampler
-------
HMC (:func:`.hmc.hmc_chain`: leapfrog, dual-averaging step size) on the network's **output layer
and the physical parameters**, whitened by the square root of their Gauss-Newton Laplace
covariance at the MAP point (:meth:`BPINN.laplace_factor`); the hidden layers stay at the MAP
point of each chain, and each chain has its own warm-up from independently drawn weights, so the
pooled draws also hold the spread between MAP points and split R-hat (``pyro.ops.stats``)
measures whether the chains agree (:meth:`BPINN.sample`, ``subnetwork``, ``restarts``). Why:
with every weight sampled (diagonal mass matrix, the first sampler) the chains did not move along
the ridge on which the field and the parameters change together -- the Lotka-Volterra rate
intervals were 5-10x narrower than the posterior's (docs/pinn.md); the output layer carries
94-96 % of the linearised posterior width of the rates there, and the potential is nearly
quadratic in it, so HMC mixes. pyro-ppl's own NUTS/HMC were used first and replaced: they spent
117 170 potential evaluations on 40 iterations of a small problem (the measured comparison is
in :mod:`.hmc`). A potential function (rather than a probabilistic model with ``sample``
statements per layer) keeps the network an ordinary :class:`torch.nn.Module` evaluated with
:func:`torch.func.functional_call`, so issue 8's networks and autograd residuals are reused
unchanged. ``should_stop`` interrupts sampling and the draws so far are kept.

Parameters estimated elsewhere (``parameter_draws``: the latent field's coefficients from an exact-
physics fit) enter as a cut posterior: with HMC each chain holds one draw, refits the network to it
and samples given it; with ``sampler="gaussian"`` (residuals linear in the output layer and affine
in the parameters) every draw holds its own parameter draw and an exact draw of the output layer
given it. Either way the pooled field draws carry the parameters' uncertainty. Tasks with random
points (``Task.redraw``) get fresh points at every warm-up step, and their noise levels are
measured on points the network was not fitted to.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.func import functional_call

from ...errors import InputError

WEIGHTINGS = ("adaptive", "fixed")
SUBNETWORKS = ("output", "output+biases", "all")


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
    physics : bool
        A model-equation residual (PDE/ODE, boundary law) rather than data: left out of the first
        ``data_first`` part of the warm-up so the network fits the data before the equation
        constrains it (otherwise a heavily weighted equation is met by a field far from the data).
    redraw : callable, optional
        ``redraw(rng)`` replaces the task's points by a fresh draw from the same distribution (random
        collocation points, a random subset of many data points); ``rng`` a
        :class:`numpy.random.Generator`. Such a task is evaluated on fresh points at every Adam step
        of the warm-up and before each L-BFGS round, and its noise level is the RMS residual on
        points the network was not fitted to (:meth:`BPINN.warmup`).
    """

    name: str
    residual: Callable
    noise: float | None = None
    weight: float = 1.0
    physics: bool = False
    redraw: Callable | None = None


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


class BPINN:
    """Bayesian PINN sampled by HMC on a potential function (output layer and parameters by default).

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
        Relative floor of adaptive noise levels (see module docstring). An equation residual the
        network can meet has no finite maximum-likelihood noise: its learned noise ends at this
        floor, which then sets how tightly the equation is imposed. Measured on the
        Lotka-Volterra case (docs/pinn.md): 1e-3 weighs the network's approximation error of the
        ODE solution against the data (rates up to 1.2 posterior sd off), 1e-2 matches the exact
        ODE posterior (the case's default), 3e-2 gives intervals 1.4-1.7x too wide.
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
        self._fit_parameters = True

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

    def _residuals_value(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Detached residuals (autograd stays on: residuals may differentiate the network)."""
        with torch.enable_grad():
            return {k: r.detach() for k, r in self.residuals(z.detach()).items()}

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
    def warmup(self, steps: int = 2000, lr: float = 1e-2, data_first: float = 0.3, param_first: float = 0.2,
               param_lr: float = 0.03, warmup_noise: float = 0.01, lbfgs_rounds: int = 4, lbfgs_steps: int = 500,
               should_stop=None, z_init: torch.Tensor | None = None, fit_parameters: bool = True,
               redraw_seed: int = 0, noise_tol: float | None = 0.02, max_rounds: int = 20) -> torch.Tensor:
        """MAP point; with ``weighting="adaptive"`` also the task noise levels (then fixed for sampling).

        Three Adam phases, then L-BFGS rounds:

        1. data tasks only (``data_first`` of ``steps``): the network fits the data before any model
           equation constrains it;
        2. physical parameters only, network frozen (``param_first``, learning rate ``param_lr``): the
           field fitted to the data determines them (when both move from the start the network meets
           a heavily weighted equation with wrong parameters by leaving the data -- measured);
        3. everything.

        During Adam an adaptive task has ``sigma_k = warmup_noise * s_k``, ``s_k`` the RMS of its
        residual at the start (data tasks) or after phase 1 (physics tasks): every task is fitted
        to the same relative accuracy. Re-estimating ``sigma_k`` during Adam was measured to lock
        in a task that is fitted late (its ``sigma_k`` stays large, so its weight stays small). Each
        L-BFGS round then sets ``sigma_k^2 = mean_i r_{k,i}^2`` (the maximum-likelihood noise,
        floored at ``noise_floor * s_k``) and polishes the MAP point under those weights; the rounds
        go on until no noise level changes by more than ``noise_tol`` (relative) in a round, so the
        MAP point and the noise levels that are sampled are a fixed point of this iteration.
        Why (Lotka-Volterra case, docs/pinn.md): the earlier 4 rounds of 100 L-BFGS iterations
        stopped far from it -- the predator equation's noise was still falling (1.06 after 4
        rounds, 0.73 after 20, at its floor after 3 rounds of 500) and the MAP rates ``a``, ``b``
        were 1.6 and 2.3 exact-posterior standard deviations low (tuning seeds 100-102, against
        the exact ODE posterior); at the fixed point 0.5 sd with ``noise_floor=1e-3`` and 0.0-0.1
        sd with the case's 1e-2 (see ``noise_floor``). Each round's state is kept in
        ``warmup_info`` (``rounds``, ``converged``, ``noise_change``, ``trace``).

        Parameters
        ----------
        steps : int
            Adam steps (all phases).
        lr : float
            Initial Adam learning rate, decayed geometrically to ``lr / 10`` at the last step.
        data_first, param_first : float
            Fractions of ``steps`` of phases 1 and 2 (skipped without physics tasks / parameters).
        param_lr : float
            Learning rate of the parameters in phase 2.
        warmup_noise : float
            Relative noise level of adaptive tasks during Adam.
        lbfgs_rounds, lbfgs_steps : int
            L-BFGS rounds (at least; iterations each) with maximum-likelihood noise levels.
        noise_tol : float or None
            Further rounds, up to ``max_rounds``, until the largest relative change of a noise
            level over a round is at most ``noise_tol`` (none with ``lbfgs_rounds=0``); ``None``:
            exactly ``lbfgs_rounds`` rounds (the behaviour before; tasks with ``redraw`` measure
            their noise on fresh points, whose estimate fluctuates from round to round).
        max_rounds : int
            Cap on the rounds with ``noise_tol``.
        should_stop : callable, optional
        z_init : Tensor, optional
            Start (default :meth:`initial_state`; :meth:`sample` starts further chains from
            re-drawn network weights).
        fit_parameters : bool
            Off: the physical parameters stay at their prior means during warm-up (they are still
            sampled); for parameters that come from a separate estimate (the latent field's
            spectral coefficients).
        redraw_seed : int
            Seed of the fresh points of tasks with a ``redraw`` (:class:`Task`): they are redrawn at
            every Adam step and before each L-BFGS round, and each round's maximum-likelihood noise
            is measured on the freshly drawn points, before the round fits them (held out: the
            generalisation error of the equation, not its error at points the network has
            memorised). The potential that is sampled keeps the last draw. Why (chemotaxis case,
            docs/pinn.md): with 2000 fixed collocation points and 1793 weights the warm-up met the
            PDE at the points (RMS residual 0.09) and not between them (0.87 at fresh points); the
            field was 31-44 % wrong.
        """
        self._fit_parameters = bool(fit_parameters)
        z0 = self.initial_state() if z_init is None else z_init.detach().clone()
        w = z0[: self.n_weights].clone().requires_grad_(True)
        q = z0[self.n_weights:].clone().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [w], "lr": lr}, {"params": [q], "lr": lr}])
        adapt = [t.name for t in self.tasks if t.noise is None] if self.weighting == "adaptive" else []
        physics = {t.name for t in self.tasks if t.physics}
        n_data = int(data_first * steps) if len(physics) < len(self.tasks) else 0
        n_param = n_data + (int(param_first * steps) if physics and self.priors and fit_parameters else 0)
        floors = {}

        def scales(z, names):
            r = self._residuals_value(z)
            for k in names:
                sc = max(float(r[k].pow(2).mean().sqrt()), 1e-12)
                floors[k] = max(self.noise_floor * sc, 1e-12)
                self.weights[k] = 1.0 / (warmup_noise * sc) ** 2

        fresh = [t for t in self.tasks if t.redraw is not None]
        rng = np.random.default_rng(redraw_seed)

        def redraw():
            for t in fresh:
                t.redraw(rng)

        scales(z0, [k for k in adapt if k not in physics or n_data == 0])
        for step in range(int(steps)):
            if fresh and step:
                redraw()
            if step == n_data and n_data:
                scales(torch.cat([w, q]), [k for k in adapt if k in physics])
            decay = lr * 0.1 ** (step / max(steps - 1, 1))  # to lr / 10 at the end
            opt.param_groups[0]["lr"] = 0.0 if n_data <= step < n_param else decay
            opt.param_groups[1]["lr"] = (param_lr if n_data <= step < n_param else decay) if fit_parameters else 0.0
            opt.zero_grad()
            wt = self.weights if step >= n_data else {k: (0.0 if k in physics else v) for k, v in self.weights.items()}
            loss = self.potential(torch.cat([w, q]), wt)
            loss.backward()
            opt.step()
            if should_stop is not None and should_stop():
                return self._set_map(torch.cat([w, q]))
        # L-BFGS polish of the MAP point (Adam stalls on these stiff, full-batch posteriors) under the
        # maximum-likelihood noise levels, re-estimated before each round and after the last
        z = torch.cat([w, q]).detach().requires_grad_(True)

        def ml_update():
            """Maximum-likelihood noise levels at ``z``; returns the largest relative change of a noise level."""
            change = 0.0
            if adapt:
                r = self._residuals_value(z)
                for k in adapt:
                    new = 1.0 / max(float(r[k].pow(2).mean().sqrt()), floors[k]) ** 2
                    change = max(change, abs(math.sqrt(self.weights[k] / new) - 1.0))
                    self.weights[k] = new
            return change

        rounds = int(lbfgs_rounds) if noise_tol is None or lbfgs_rounds <= 0 else max(int(lbfgs_rounds), int(max_rounds))
        trace = []
        converged = False
        for i in range(rounds):
            redraw()
            change = ml_update()
            trace.append((dict(self.weights), change))
            if noise_tol is not None and i >= int(lbfgs_rounds) and change <= noise_tol:
                converged = True
                break
            if not self._lbfgs(z, dict(self.weights), lbfgs_steps) or (should_stop is not None and should_stop()):
                break
        if not converged:
            redraw()
            trace.append((None, ml_update()))
        # rounds: L-BFGS rounds run (the last entry of trace is the check after the last one)
        self.warmup_info = {"rounds": len(trace) - 1, "noise_change": trace[-1][1],
                            "converged": converged, "trace": trace}
        return self._set_map(z)

    def _lbfgs(self, z, weights, steps) -> bool:
        """L-BFGS on ``potential(z, weights)`` in place; False (and ``z`` restored) if it diverged."""
        opt = torch.optim.LBFGS([z], lr=1.0, max_iter=int(steps), history_size=50, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = self.potential(z, weights)
            loss.backward()
            return loss

        z_prev = z.detach().clone()
        if not self._fit_parameters and self.priors:
            mask = torch.ones_like(z)
            mask[self.n_weights:] = 0.0
            z.register_hook(lambda g: g * mask)
        opt.step(closure)
        if not torch.isfinite(z).all():
            with torch.no_grad():
                z.copy_(z_prev)
            return False
        return True

    def subnetwork_index(self, subnetwork: str = "output") -> torch.Tensor:
        """Indices into the flat state of the coordinates that :meth:`sample` samples.

        ``"output+biases"``: the output layer's weights, every bias and the physical parameters;
        ``"output"``: the output layer and the parameters; ``"all"``: everything.
        """
        if subnetwork not in SUBNETWORKS:
            raise InputError(f"subnetwork '{subnetwork}' is not one of {SUBNETWORKS}")
        n_params = len(self.priors)
        if subnetwork == "all":
            return torch.arange(self.n_weights + n_params)
        # the output layer: the last weight matrix and the last bias (nn.Linear names them so)
        out_w = max(i for i, n in enumerate(self._names) if n.endswith("weight"))
        out = {out_w} | {i for i, n in enumerate(self._names) if n.endswith("bias") and i > out_w}
        keep = out | ({i for i, n in enumerate(self._names) if n.endswith("bias")} if subnetwork == "output+biases" else set())
        offsets = np.cumsum([0, *self._sizes])
        idx = [j for i in sorted(keep) for j in range(offsets[i], offsets[i + 1])]
        return torch.as_tensor(idx + list(range(self.n_weights, self.n_weights + n_params)), dtype=torch.long)

    def laplace_factor(self, z: torch.Tensor, weights=None, index=None, step: float = 1e-5) -> torch.Tensor:
        """Square root ``L`` (``L L^T = H^{-1}``) of the Gauss-Newton Laplace covariance of ``z[index]``.

        ``H = sum_k lambda_k J_k^T J_k + P`` with ``J_k`` the Jacobian of task ``k``'s residuals
        with respect to ``z[index]`` (the other coordinates held at ``z``), by central differences
        of step ``step`` (two residual evaluations per column; exact for the output layer's weights, in
        which the residuals of linear equations are linear, not for log-scaled physical parameters), and ``P``
        the prior precision.
        HMC on ``y`` with ``z[index] = z_MAP[index] + L y`` then sees a nearly isotropic posterior.

        Returns
        -------
        Tensor, shape (len(index), len(index))
            Upper-triangular ``L``.
        """
        weights = self.weights if weights is None else weights
        index = self.subnetwork_index("all") if index is None else index
        J = self._weighted_jacobian(z, index, weights, step)
        prec = self._prior_precision(J.dtype, J.device)[index.to(J.device)]
        K = torch.linalg.cholesky(J.T @ J + torch.diag(prec))
        eye = torch.eye(len(prec), dtype=J.dtype, device=J.device)
        return torch.linalg.solve_triangular(K.mT, eye, upper=True)

    def redrawn_state(self, seed: int) -> torch.Tensor:
        """Like :meth:`initial_state` with each network weight tensor redrawn from a normal of its own spread."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        parts = []
        for p in self.net.parameters():
            p = p.detach().reshape(-1).to(torch.float64)
            sd = float(p.std()) if p.numel() > 1 else 0.0
            parts.append(sd * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device) if sd > 0 else p)
        return torch.cat([*parts, self._pm.clone()])

    def _set_map(self, z):
        self.z_map = z.detach().clone()
        return self.z_map

    # --- sampling -------------------------------------------------------------------------
    def sample(self, points=None, predict=None, *, draws: int = 200, tune: int = 200, chains: int = 2,
               num_steps: int = 20, target_accept: float = 0.8, subnetwork: str = "output", restarts: bool = False,
               jitter: float = 1e-3, warmup_steps: int = 2000, warmup_options: dict | None = None, seed: int = 0,
               parameter_draws=None, refit_steps: int = 0, sampler: str = "hmc", rest: str = "map", callback=None,
               callback_state: bool = False, should_stop=None) -> BPINNResult:
        """Warm up (if not done), sample, and summarise.

        Parameters
        ----------
        points : array-like, shape (N, D), optional
            Evaluation points of the latent field(s).
        predict : callable, optional
            ``predict(f, theta, X) -> dict of str -> Tensor``; default: the network outputs at ``X``
            (a tensor output is named ``"u"``).
        draws, tune, chains : int
            Posterior draws per chain, adaptation iterations per chain, number of chains.
        num_steps : int
            Maximum leapfrog steps per HMC transition (:func:`.hmc.hmc_chain`).
        target_accept : float
            Target acceptance probability of the step-size adaptation.
        subnetwork : {"output", "output+biases", "all"}
            Coordinates sampled by HMC (:meth:`subnetwork_index`); the others stay at each chain's
            MAP point. The sampled ones are whitened, ``z[S] = z_MAP[S] + L y`` with ``L`` the
            square root of their Gauss-Newton Laplace covariance (:meth:`laplace_factor`), and HMC
            samples ``y`` with unit mass. ``"all"`` samples every weight with an adapted diagonal
            mass matrix instead (the first sampler). Why (Lotka-Volterra case, docs/pinn.md): the
            posterior's rate intervals (linearised Laplace over all weights: 0.66-0.74 % log-sd;
            exact ODE posterior 0.7-0.85 %) were sampled 5-10x too narrow with every weight free
            -- the chain does not move along the ridge on which field and rates change together
            (condition number of ``H`` ~5e9; with the Laplace metric over all weights the hidden
            weights' directions are so non-quadratic that the step size fell to 2e-4 of a
            standard deviation). The output layer and the rates carry 94-96 % of the linearised
            posterior width of the rates (with all biases 100 %, but the potential is far from
            quadratic in the biases; the rates alone, network fixed, 2-20 %), the potential is
            nearly quadratic in them, and the chains mix.
        restarts : bool
            Each chain from its own warm-up (chain 0 from the network's weights, further chains
            from redrawn weights, :meth:`redrawn_state`): the pooled draws include the spread between
            MAP points (the hidden layers' uncertainty that one chain cannot see) and R-hat
            measures whether the chains agree. With adaptive weights the chains share the
            geometric mean of the warm-ups' weights (each MAP point polished under them by L-BFGS).
            Off (default): all chains from the one MAP point. Measured with restarts: on the
            Lotka-Volterra case the chains agreed (R-hat 0.99-1.18, seeds 10-12) and the
            intervals were 10-20 % wider (seed 0), but did not cover seed 2's rates either; on the
            earlier Sobolev case (``sin(2 pi x) + 0.1 sin(10 pi x)``) the pooled mean's error was
            4.9e-2 (18x the epsilon-optimal baseline: one warm-up ended in a poor optimum); the
            warm-up, the dominant cost, doubles.
        jitter : float
            Standard deviation of the perturbation of the MAP point that starts each chain (with
            the whitened subnetwork in units of the Laplace standard deviations).
        warmup_steps : int
            Adam steps of :meth:`warmup` when it has not been run.
        warmup_options : dict, optional
            Further arguments of :meth:`warmup` (e.g. ``lbfgs_steps``).
        seed : int
        parameter_draws : array-like, shape (chains, n_parameters), optional
            Draws of the physical parameters (physical units, in the order of ``parameters``) from a
            separate ("cut", modular) posterior, e.g. an estimate with the exact physics and its
            Laplace covariance. Chain ``c`` then holds the parameters at draw ``c`` and samples only
            the network coordinates of ``subnetwork``, started from their conditional mode (one
            Newton step in the whitened coordinates from the MAP point: exact where the residuals
            are linear in them, as in the output layer for linear equations); the pooled draws
            are the field's posterior averaged over the parameters' (multiple imputation). The
            parameters' own likelihood through the tasks is not used (cut): for a latent field
            whose equation residual the network cannot meet exactly, the learned residual noise
            rewards shrinking the field and its source coefficient together (measured on the
            chemotaxis case: ``chi`` drifted 30 % when sampled jointly, ``bayes_latent``). The
            split R-hat over chains then also measures the spread between draws (by design);
            ``rhat_within_max`` is the largest split R-hat of a single chain.
        refit_steps : int
            With ``parameter_draws``: L-BFGS iterations on all network weights under chain ``c``'s
            parameters before it samples (its conditional MAP point), so that the hidden layers
            follow the parameters too; 0: only the sampled coordinates move (Newton step). Measured
            on the chemotaxis case (docs/pinn.md): no gain there -- the output layer's Newton step
            already follows the coefficients (the field spread matched the exact solution's for the
            same draws, 0.71 % of the RMS field without the refit, 0.75 % with it).
        sampler : {"hmc", "gaussian"}
            ``"gaussian"``: exact independent draws instead of HMC, for the ``"output"`` subnetwork
            when the residuals are linear in the output layer (a linear equation and data on the
            field and its derivatives: the network is linear in its last layer) and affine in the
            physical parameters (as in a PDE residual ``phi_t - Dc lap(phi) + k phi - chi s``).
            Given the hidden layers and the parameters the output layer's posterior is then
            Gaussian (Gauss-Newton is exact): ``draws`` per chain, each with its own parameter draw
            (``parameter_draws`` of shape ``(chains * draws, n_parameters)``; required when there
            are parameters), from the conditional mode and Cholesky factor of the precision,
            :meth:`_gaussian_draws`. The residuals and their Jacobian are evaluated at
            ``n_parameters + 1`` parameter values only and interpolated (exact for affine
            parameters; checked at one draw, an error otherwise), so thousands of parameter draws
            cost seconds where HMC costs one chain each. ``tune``, ``num_steps`` and
            ``refit_steps`` are not used. Why (chemotaxis case, docs/pinn.md): with one
            coefficient draw per HMC chain, 8 chains gave 8 draws and the percentile bands of 8
            values covered 3-88 % of the grid points; the field's uncertainty is dominated by the
            coefficients', which needs >= 64 draws.
        rest : {"map", "laplace"}
            The coordinates HMC does not sample (the hidden layers with ``subnetwork="output"``):
            ``"map"`` holds them at the chain's MAP point; ``"laplace"`` adds to every draw an
            independent draw of them from their linearised (Gauss-Newton Laplace, all weights)
            marginal, with the sampled coordinates moved by their linear conditional mean given it
            (:meth:`_rest_shifts`): exact for a Gaussian posterior, so the pooled draws carry the
            hidden layers' share of the width that HMC with them fixed cannot see. Costs one
            Jacobian over all weights per chain (two residual evaluations per weight). Only with
            HMC on a whitened subnetwork and no ``parameter_draws``. Measured on the
            Lotka-Volterra case (docs/pinn.md; its default there): the rate ``b``'s sd against the
            exact ODE posterior 0.92x with ``"map"``, 1.01x with ``"laplace"`` (tuning seeds
            100-109); held-out seeds 0-14: 55/60 rates covered, was 52/60 (exact posterior 56/60).
            Default ``"map"``: the Sobolev and chemotaxis cases were measured so.
        callback : callable, optional
            ``callback(chain, i, total)`` after every iteration (``i`` counts tuning and sampling);
            with ``callback_state`` also the current physical parameters, ``callback(chain, i, total, theta)``.
        should_stop : callable, optional
            Returns True to stop; the draws collected so far are kept and summarised.
        """
        from .hmc import hmc_chain

        if sampler not in ("hmc", "gaussian"):
            raise InputError(f"sampler '{sampler}' is not one of ('hmc', 'gaussian')")
        if rest not in ("map", "laplace"):
            raise InputError(f"rest '{rest}' is not one of ('map', 'laplace')")
        if rest == "laplace" and (sampler != "hmc" or subnetwork == "all" or parameter_draws is not None):
            raise InputError("rest='laplace' needs sampler='hmc', a whitened subnetwork ('output' or "
                             "'output+biases') and no parameter_draws")
        gaussian = sampler == "gaussian"
        if gaussian and subnetwork != "output":
            raise InputError("sampler='gaussian' samples the output layer only: use subnetwork='output'")
        if gaussian and self.priors and parameter_draws is None:
            raise InputError("sampler='gaussian' with physical parameters needs parameter_draws "
                             "(chains * draws, parameters) from their separate posterior")
        index = self.subnetwork_index(subnetwork).to(self.device)
        cut = None
        if parameter_draws is not None:
            cut = self._cut_states(parameter_draws, int(chains) * int(draws) if gaussian else chains, subnetwork)
            index = index[index < self.n_weights]
        elif gaussian:
            index = index[index < self.n_weights]
        opts = dict(warmup_options or {})
        t0 = time.perf_counter()
        if self.z_map is None:
            self.warmup(warmup_steps, should_stop=should_stop, **opts)
        maps = [self.z_map]
        if restarts and chains > 1:
            found = [dict(self.weights)]
            for c in range(1, int(chains)):
                if should_stop is not None and should_stop():
                    break
                maps.append(self.warmup(warmup_steps, should_stop=should_stop,
                                        z_init=self.redrawn_state(seed + 7919 * c), **opts))
                found.append(dict(self.weights))
            if self.weighting == "adaptive":
                self.weights = {k: math.exp(float(np.mean([math.log(w[k]) for w in found]))) for k in found[0]}
                for i, z in enumerate(maps):
                    z = z.detach().clone().requires_grad_(True)
                    self._lbfgs(z, dict(self.weights), opts.get("lbfgs_steps", 500))
                    maps[i] = z.detach()
            self.z_map = maps[0]
        t_warm = time.perf_counter() - t0
        weights = dict(self.weights)

        chains_z, acceptance, step, divergent, stopped = [], [], [], 0, False
        for c in range(int(chains)):
            gen = torch.Generator(device="cpu").manual_seed(seed + 7919 * c)
            z_c = maps[c % len(maps)]
            if gaussian:
                qs = None if cut is None else cut[c * int(draws):(c + 1) * int(draws)]
                ch = self._gaussian_draws(z_c, index, weights, int(draws), qs, gen, chain=c, callback=callback,
                                          callback_state=callback_state, should_stop=should_stop)
                if len(ch):
                    chains_z.append(ch)
                    acceptance.append(1.0)
                    step.append(float("nan"))
                if len(ch) < int(draws):
                    stopped = True
                    break
                continue
            if cut is not None:
                z_c = z_c.clone()
                z_c[self.n_weights:] = cut[c]
                if refit_steps:
                    z_c = z_c.requires_grad_(True)
                    fit, self._fit_parameters = self._fit_parameters, False
                    self._lbfgs(z_c, weights, refit_steps)
                    self._fit_parameters, z_c = fit, z_c.detach()
            if subnetwork != "all":
                L = self.laplace_factor(z_c, weights, index)
                if cut is not None:
                    z_c = self._newton(z_c, index, L, weights)

                def to_z(y, z_c=z_c, L=L):
                    return z_c.index_add(0, index, L @ y)
            else:
                def to_z(y, z_c=z_c):
                    return z_c + y

            def potential_fn(y, to_z=to_z):
                return self.potential(to_z(y), weights)

            dim = len(index) if subnetwork != "all" else len(z_c)
            y0 = jitter * torch.randn(dim, generator=gen, dtype=torch.float64).to(self.device)
            cb = None
            if callback is not None and callback_state:
                def cb(i, n, y, c=c, to_z=to_z):
                    callback(c, i, n, {k: float(v) for k, v in self._split(to_z(y))[1].items()})
            elif callback is not None:
                cb = (lambda i, n, y, c=c: callback(c, i, n))
            ch = hmc_chain(potential_fn, y0, draws=draws, tune=tune, num_steps=num_steps,
                           target_accept=target_accept, seed=seed + 7919 * c, adapt_mass=subnetwork == "all",
                           callback=cb, should_stop=should_stop)
            if len(ch.draws):
                zs = torch.stack([to_z(y) for y in ch.draws])
                if rest == "laplace":
                    zs = zs + self._rest_shifts(z_c, index, weights, len(zs), gen)
                chains_z.append(zs)
                acceptance.append(ch.acceptance)
                step.append(ch.step_size)
            divergent += ch.divergences
            if ch.stopped:
                stopped = True
                break
        if not chains_z:
            raise InputError("stopped before the first posterior draw: nothing to summarise")
        n = min(len(z) for z in chains_z)
        Z = torch.stack([z[:n] for z in chains_z])  # (chains, draws, dim)
        result = self._summarise(Z, points, predict, weights, within=cut is not None)
        result.diagnostics.update(parameters_cut=cut is not None, sampler=sampler, acceptance=acceptance, step_size=step, divergences=divergent, draws=int(n),
                                  chains=len(chains_z), stopped=stopped, subnetwork=subnetwork, sampled_dim=int(len(index)),
                                  restarts=bool(restarts and len(maps) > 1),
                                  seconds={"warmup": t_warm, "sampling": time.perf_counter() - t0 - t_warm})
        return result

    def dirichlet_weights(self, z: torch.Tensor) -> dict[str, float]:
        """Inverse-Dirichlet balance ``lambda_k = min_t std(grad L_t) / std(grad L_k)`` at ``z``.

        ``L_k = 0.5 sum r_k^2`` (unweighted), gradients with respect to the network weights, the
        standard deviation over the weights (Maddu et al. 2022; the AW-HMC weights of Perez et al.
        2023, arXiv:2302.12697, normalised to the least-varying task: every ``lambda_k <= 1``).
        """
        z = z.detach().requires_grad_(True)
        std = {}
        with torch.enable_grad():
            for k, r in self.residuals(z).items():
                (g,) = torch.autograd.grad(0.5 * (r ** 2).sum(), z, retain_graph=True)
                std[k] = float(g[: self.n_weights].std())
        low = min(std.values())
        return {k: low / max(v, 1e-300) for k, v in std.items()}

    def sample_from_initial(self, points=None, predict=None, *, draws: int = 100, tune: int = 100, chains: int = 2,
                            num_steps: int = 20, target_accept: float = 0.8, adapt_weights: int = 20,
                            weight_scale: float = 1.0, seed: int = 0) -> BPINNResult:
        """AW-HMC as in the paper: HMC on every weight from the network's initial weights, no warm-up.

        Every chain starts at :meth:`initial_state` (the network's initialisation; no optimiser) and
        samples all coordinates with an adapted diagonal mass matrix (:func:`.hmc.hmc_chain`). With
        ``weighting="adaptive"`` the task weights are ``weight_scale * lambda_k`` with ``lambda_k`` of
        :meth:`dirichlet_weights` at the chain's state, set after each of the first ``adapt_weights``
        burn-in iterations, then fixed (the first chain's; later chains use them from the start).
        With ``weighting="fixed"`` the given weights. ``draws``, ``tune``, ``chains``, ``num_steps``
        as in :meth:`sample`. Not the product's sampler: a benchmark of the paper's setting
        (``bench.bpinn_cases.sobolev_case``, ``samplers=("all-from-init",)``).
        """
        from .hmc import hmc_chain

        weights = dict(self.weights)
        adapt = self.weighting == "adaptive" and adapt_weights > 0
        z0 = self.initial_state().to(self.device)
        chains_z, acceptance, step, divergent = [], [], [], 0
        t0 = time.perf_counter()
        for c in range(int(chains)):
            def on_tune(i, z, first=c == 0):
                if not (adapt and first and i < adapt_weights):
                    return False
                weights.update({k: weight_scale * v for k, v in self.dirichlet_weights(z).items()})
                return True

            if adapt and c == 0:
                on_tune(0, z0)
            ch = hmc_chain(lambda z: self.potential(z, weights), z0, draws=draws, tune=tune, num_steps=num_steps,
                           target_accept=target_accept, seed=seed + 7919 * c, adapt_mass=True, on_tune=on_tune)
            chains_z.append(ch.draws)
            acceptance.append(ch.acceptance)
            step.append(ch.step_size)
            divergent += ch.divergences
        self.weights = dict(weights)
        result = self._summarise(torch.stack(chains_z), points, predict, weights)
        result.diagnostics.update(sampler="hmc", acceptance=acceptance, step_size=step, divergences=divergent,
                                  draws=int(draws), chains=len(chains_z), stopped=False, subnetwork="all-from-init",
                                  sampled_dim=int(len(z0)), restarts=False,
                                  seconds={"warmup": 0.0, "sampling": time.perf_counter() - t0})
        return result

    def _cut_states(self, parameter_draws, n, subnetwork):
        """Flat parameter states ``q`` (log where the prior is log-normal) of the given draws (``n`` of them)."""
        d = np.array(parameter_draws, dtype=float)  # a copy: logs taken in place below
        if d.ndim != 2 or d.shape != (int(n), len(self.priors)):
            raise InputError(f"parameter_draws must have shape ({int(n)}, {len(self.priors)}) (one row per chain, "
                             f"per draw with sampler='gaussian'), got {d.shape}")
        if subnetwork == "all":
            raise InputError("parameter_draws need a whitened subnetwork ('output' or 'output+biases'), not 'all'")
        logs = np.array([p.log for p in self.priors.values()], dtype=bool)
        if np.any(d[:, logs] <= 0):
            raise InputError("parameter_draws of log-normal parameters must be > 0")
        d[:, logs] = np.log(d[:, logs])
        return torch.as_tensor(d, dtype=torch.float64, device=self.device)

    def _weighted_jacobian(self, z, index, weights, step: float = 1e-5) -> torch.Tensor:
        """Jacobian of all tasks' residuals, each task times ``sqrt(lambda_k)``, in ``z[index]``.

        Central differences of step ``step`` in each coordinate ``z[i]``, ``i`` in ``index`` (the
        others held at ``z``): two residual evaluations per column, differenced before weighting.

        Returns
        -------
        Tensor, shape (M, len(index))
            ``M`` the total number of residuals (tasks concatenated in their order).
        """
        z = z.detach()
        cols = []
        for i in index.tolist():
            zp, zm = z.clone(), z.clone()
            zp[i] += step
            zm[i] -= step
            rp, rm = self._residuals_value(zp), self._residuals_value(zm)
            cols.append(torch.cat([math.sqrt(weights[k]) * (rp[k] - rm[k]) / (2 * step) for k in rp]))
        return torch.stack(cols, dim=1)

    def _weighted_linearisation(self, z, index, weights, step: float = 1e-5):
        """Residuals ``r`` of all tasks at ``z``, each task times ``sqrt(lambda_k)``, their Jacobian ``J`` in
        ``z[index]`` (:meth:`_weighted_jacobian`) and the function ``z -> r``."""
        def res(zz):
            r = self._residuals_value(zz)
            return torch.cat([math.sqrt(weights[k]) * r[k] for k in r])

        return res(z), self._weighted_jacobian(z, index, weights, step), res

    def _physical(self, q):
        """Physical parameter values of the flat parameter states ``q`` (..., n_parameters)."""
        logs = torch.tensor([p.log for p in self.priors.values()], dtype=torch.bool, device=q.device)
        return torch.where(logs, torch.exp(q), q)

    def _gaussian_draws(self, z, index, weights, n, qs, gen, *, chain=0, callback=None, callback_state=False,
                        should_stop=None, tol: float = 1e-6):
        """``n`` exact draws of the output layer's conditional posterior (``sampler="gaussian"`` of :meth:`sample`).

        Draw ``j`` holds the parameters at ``qs[j]`` (flat states; ``None``: none) and the output
        layer ``z[index]`` at ``m_j + K_j^{-T} e``, ``e ~ N(0, I)``, where ``K_j K_j^T = J_j^T J_j + P``
        (``P`` the prior precision) and ``m_j`` the mode (one Newton step from ``z``, exact for
        linear residuals). ``r_j``, ``J_j`` are interpolated linearly in the physical parameter values
        from ``len(qs[0]) + 1`` evaluations (doubling one parameter at a time); the interpolation
        and the linearity are checked at the first draw (relative error above ``tol``: an error).

        Returns
        -------
        Tensor, shape (n_done, dim)
            Flat states (fewer than ``n`` when ``should_stop`` interrupted).
        """
        z = z.detach().clone()
        p = len(self.priors)
        base_q = z[self.n_weights:].clone() if qs is None else qs[0].clone()
        z[self.n_weights:] = base_q
        r0, J0, res = self._weighted_linearisation(z, index, weights)
        theta0 = self._physical(base_q)
        dr, dJ, dtheta = [], [], []
        for c in range(p if qs is not None else 0):
            zc = z.clone()
            prior = list(self.priors.values())[c]
            zc[self.n_weights + c] = base_q[c] + (math.log(2.0) if prior.log else max(1.0, abs(float(base_q[c]))))
            r_c, J_c, _ = self._weighted_linearisation(zc, index, weights)
            dr.append(r_c - r0)
            dJ.append(J_c - J0)
            dtheta.append(float(self._physical(zc[self.n_weights:])[c] - theta0[c]))
        prec = self._prior_precision(z.dtype, z.device)[index.to(z.device)]  # output-layer weights only
        w0 = z[index]
        out = []
        for j in range(int(n)):
            if should_stop is not None and should_stop():
                break
            q = base_q if qs is None else qs[j]
            a = (self._physical(q) - theta0).tolist() if p else []
            r = r0 + sum((ac / d) * x for ac, d, x in zip(a, dtheta, dr)) if dr else r0
            J = J0 + sum((ac / d) * x for ac, d, x in zip(a, dtheta, dJ)) if dJ else J0
            K = torch.linalg.cholesky(J.T @ J + torch.diag(prec))
            g = J.T @ r + prec * w0
            mode = w0 - torch.cholesky_solve(g[:, None], K)[:, 0]
            e = torch.randn(len(index), generator=gen, dtype=z.dtype).to(z.device)
            zj = z.clone()
            zj[self.n_weights:] = q
            zj[index] = mode + torch.linalg.solve_triangular(K.mT, e[:, None], upper=True)[:, 0]
            if j == 0:  # the linear model against the residuals themselves
                pred = r + J @ (zj[index] - w0)
                got = res(zj)
                err = float((got - pred).norm() / got.norm().clamp_min(1e-300))
                if not err <= tol:
                    raise InputError(f"sampler='gaussian' needs residuals linear in the output layer and affine in "
                                     f"the parameters (relative misfit {err:.1e}): use sampler='hmc'")
            out.append(zj)
            if callback is not None and callback_state:
                callback(chain, j, int(n), {k: float(v) for k, v in self._split(zj)[1].items()})
            elif callback is not None:
                callback(chain, j, int(n))
        return torch.stack(out) if out else torch.empty((0, len(z)), dtype=z.dtype, device=z.device)

    def _prior_precision(self, dtype, device) -> torch.Tensor:
        """Diagonal prior precision of every coordinate ``(n_weights + n_params,)``: network weights, then the
        physical parameters (their prior sds in the sampled space)."""
        return torch.cat([torch.full((self.n_weights,), 1.0 / self.prior_std ** 2, dtype=dtype, device=device),
                          1.0 / self._ps.to(device=device, dtype=dtype) ** 2])

    def _rest_shifts(self, z, index, weights, n, gen):
        """``n`` linearised draws of the coordinates outside ``index`` and the conditional shift of those in it.

        With ``H`` the Gauss-Newton Laplace precision of all coordinates at ``z`` (as in
        :meth:`laplace_factor`), ``S = index`` and ``R`` the rest: ``d_R ~ N(0, (H^{-1})_RR)`` (the
        ``R`` part of ``K^{-T} e``, ``K K^T = H``) and ``d_S = -H_SS^{-1} H_SR d_R``, the mean of the
        sampled coordinates given ``R`` moved by ``d_R``. Added to draws of ``S`` given ``R`` at ``z``
        they give draws of the joint Gaussian.

        Returns
        -------
        Tensor, shape (n, dim)
        """
        z = z.detach()
        all_idx = self.subnetwork_index("all").to(z.device)
        J = self._weighted_jacobian(z, all_idx, weights)
        prec = self._prior_precision(J.dtype, J.device)
        H = J.T @ J + torch.diag(prec)
        K = torch.linalg.cholesky(H)
        e = torch.randn(len(prec), int(n), generator=gen, dtype=J.dtype).to(J.device)
        d = torch.linalg.solve_triangular(K.mT, e, upper=True)  # (dim, n) ~ N(0, H^{-1})
        in_s = torch.zeros(len(prec), dtype=torch.bool, device=J.device)
        in_s[index] = True
        S, R = torch.nonzero(in_s)[:, 0], torch.nonzero(~in_s)[:, 0]
        out = torch.zeros_like(d)
        out[R] = d[R]
        out[S] = -torch.cholesky_solve(H[S][:, R] @ d[R], torch.linalg.cholesky(H[S][:, S]))
        return out.T

    def _newton(self, z, index, L, weights, steps: int = 2):
        """``z`` moved to the mode of the potential in ``z[index]`` by Newton steps ``-L L^T grad``."""
        for _ in range(int(steps)):
            y = torch.zeros(len(index), dtype=z.dtype, device=z.device, requires_grad=True)
            with torch.enable_grad():
                u = self.potential(z.index_add(0, index, L @ y), weights)
                (g,) = torch.autograd.grad(u, y)
            z = z.index_add(0, index, L @ (-g.detach())).detach()
        return z

    def _summarise(self, Z, points, predict, weights, within: bool = False) -> BPINNResult:
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
                    if within:
                        rw = [split_gelman_rubin(sub[c:c + 1], chain_dim=0, sample_dim=1) for c in range(C)]
                        diag[f"rhat_within_max_{k}"] = float(max(torch.nan_to_num(r, nan=1.0).max() for r in rw))
        noise = {k: 1.0 / math.sqrt(w) for k, w in weights.items()}
        return BPINNResult(mean=mean, std=std, samples=samples, intervals=intervals, weights=dict(weights),
                           noise=noise, diagnostics=diag, field_samples=field_samples)


class MLP(torch.nn.Module):
    """Small tanh MLP ``(N, d_in) -> (N,)`` (or ``(N, d_out)``) for 1D problems (tests, benchmarks).

    Inputs are mapped to ``[-1, 1]`` with ``bounds`` ``(low, high)``; outputs are multiplied by
    ``scale`` (scalar or one per output: the expected magnitude, so the weights stay of order one
    under their unit prior).
    """

    def __init__(self, bounds=(0.0, 1.0), hidden=(32, 32), d_in: int = 1, seed: int = 0, d_out: int = 1,
                 scale=1.0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        self.low, self.high = float(bounds[0]), float(bounds[1])
        self.d_out = int(d_out)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float64).reshape(-1))
        widths = [d_in, *hidden, self.d_out]
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            lin = torch.nn.Linear(a, b)
            torch.nn.init.xavier_normal_(lin.weight, generator=gen)
            torch.nn.init.zeros_(lin.bias)
            layers += [lin, torch.nn.Tanh()]
        self.mlp = torch.nn.Sequential(*layers[:-1])

    def forward(self, x):
        z = 2.0 * (x - self.low) / (self.high - self.low) - 1.0
        out = self.mlp(z) * self.scale.to(x.dtype)
        return out.squeeze(-1) if self.d_out == 1 else out


def derivative(f, x: torch.Tensor, order: int = 1) -> tuple[torch.Tensor, ...]:
    """Value and derivatives ``(f(x), df/dx, ..., d^order f/dx^order)`` of a 1D network at ``x`` ``(N, 1)``.

    A network with several outputs ``(N, m)`` gives each derivative as ``(N, m)``.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = f(x)
        out = [u]
        for _ in range(int(order)):
            v = out[-1]
            if v.ndim == 1:
                (d,) = torch.autograd.grad(v.sum(), x, create_graph=True)
                out.append(d[:, 0])
            else:
                out.append(torch.stack([torch.autograd.grad(v[:, j].sum(), x, create_graph=True)[0][:, 0]
                                        for j in range(v.shape[1])], dim=1))
    return tuple(out)
