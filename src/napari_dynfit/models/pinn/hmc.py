"""Compact Hamiltonian Monte Carlo on a torch potential (used by :mod:`.bayes`).

Why not pyro-ppl's NUTS/HMC (the first BPINN used them): measured on the Sobolev test problem
(tanh MLP 1x32, 60 points, value and derivative tasks with adaptive weights, 1 CPU thread, shared
2-core machine), one potential + gradient evaluation costs 2.8 ms, but pyro's ``HMC(num_steps=10)``
made **117 170** potential calls for 40 iterations (20 warm-up, 20 draws; 561 s instead of the ~1.2 s
that 400 leapfrog steps cost): its step-size search is re-run after every mass-matrix update and
crawls on the stiff posteriors that adaptive weights give (task weights 1e2-1e6 apart). Its NUTS
has the same search and up to ``2^max_tree_depth`` gradients per draw. The recovery tests never
finished within 15 minutes. This module is the textbook algorithm with a bounded cost per draw:

* leapfrog integration with a diagonal mass matrix, the number of steps drawn uniformly in
  ``[num_steps // 2, num_steps]`` (avoids periodic trajectories), Metropolis correction;
* step size by dual averaging (Hoffman & Gelman 2014, target acceptance ``target_accept``) during
  ``tune``, restarted after each mass-matrix update, then frozen at its averaged value;
* diagonal mass matrix from the variance of the warm-up draws in windows ending at 30 %, 55 % and
  85 % of ``tune``, regularised towards ``1e-3`` as in Stan;
* a transition with energy error above 1000 or a non-finite potential is rejected and counted
  as divergent.

Every draw costs at most ``num_steps + 1`` gradient evaluations plus a bounded step-size
search at the start (at most 40 evaluations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class ChainResult:
    """Draws of one chain.

    Attributes
    ----------
    draws : Tensor, shape (n, dim)
        Posterior draws after tuning (fewer than requested when stopped).
    acceptance : float
        Mean Metropolis acceptance probability of the kept draws.
    step_size : float
        Step size used for sampling.
    divergences : int
        Rejected transitions with energy error > 1000 or a non-finite potential, after tuning.
    stopped : bool
        Whether ``should_stop`` interrupted the chain.
    """

    draws: torch.Tensor
    acceptance: float
    step_size: float
    divergences: int
    stopped: bool


def _value_and_grad(potential, z):
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        u = potential(z)
        (g,) = torch.autograd.grad(u, z)
    return float(u.detach()), g.detach()


def _leapfrog(potential, z, p, g, eps, inv_mass, n):
    p = p - 0.5 * eps * g
    for i in range(n):
        z = z + eps * inv_mass * p
        u, g = _value_and_grad(potential, z)
        if not math.isfinite(u):
            return z, p, u, g
        p = p - (eps if i < n - 1 else 0.5 * eps) * g
    return z, p, u, g


def _find_step_size(potential, z, u, g, inv_mass, gen, eps=0.1, tries=40):
    """Double or halve ``eps`` until one leapfrog step's acceptance crosses 1/2."""
    p = torch.randn(z.shape, generator=gen, dtype=z.dtype).to(z.device) / inv_mass.sqrt()
    h0 = u + 0.5 * float((inv_mass * p * p).sum())

    def log_accept(e):
        z1, p1, u1, _ = _leapfrog(potential, z, p, g, e, inv_mass, 1)
        h1 = u1 + 0.5 * float((inv_mass * p1 * p1).sum())
        return h0 - h1 if math.isfinite(h1) else -math.inf

    direction = 1.0 if log_accept(eps) > math.log(0.5) else -1.0
    for _ in range(tries):
        nxt = eps * 2.0 ** direction
        la = log_accept(nxt)
        if (direction > 0 and not la > math.log(0.5)) or (direction < 0 and la > math.log(0.5)):
            return nxt if direction < 0 else eps
        eps = nxt
    return eps


def hmc_chain(potential, z0: torch.Tensor, *, draws: int = 200, tune: int = 200, num_steps: int = 20,
              target_accept: float = 0.8, seed: int = 0, adapt_mass: bool = True, callback=None,
              should_stop=None, on_tune=None) -> ChainResult:
    """Sample ``exp(-potential(z))`` by HMC from ``z0``.

    Parameters
    ----------
    potential : callable
        ``potential(z: Tensor (dim,)) -> 0-d Tensor``, differentiable.
    z0 : Tensor, shape (dim,)
        Start (e.g. a MAP point).
    draws, tune : int
        Kept draws and adaptation iterations (step size and mass matrix; discarded).
    num_steps : int
        Maximum leapfrog steps per transition.
    target_accept : float
        Target mean acceptance probability of the step-size adaptation.
    seed : int
        Seed of the momenta and Metropolis decisions.
    adapt_mass : bool
        Adapt the diagonal mass matrix (off: unit mass, for a potential that is already
        preconditioned, e.g. whitened by a Laplace covariance).
    callback : callable, optional
        ``callback(i, total, z)`` after every iteration ``i`` (tuning first), ``z`` the current state.
    should_stop : callable, optional
        Checked after every iteration; when it returns True the draws so far are returned.
    on_tune : callable, optional
        ``on_tune(i, z) -> bool`` after every tuning iteration ``i``; True when it changed the
        potential (e.g. adaptive task weights during burn-in), which is then re-evaluated at ``z``.

    Returns
    -------
    ChainResult
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    z = z0.detach().clone()
    dim = z.numel()
    inv_mass = torch.ones(dim, dtype=z.dtype, device=z.device)
    u, g = _value_and_grad(potential, z)
    eps = _find_step_size(potential, z, u, g, inv_mass, gen)
    tune, draws = int(tune), int(draws)
    windows = {int(f * tune) for f in (0.3, 0.55, 0.85)} if tune >= 20 and adapt_mass else set()
    win = []

    def restart(e):
        return {"mu": math.log(10 * e), "hbar": 0.0, "log_bar": 0.0, "t": 0}

    da = restart(eps)
    kept, acc_kept, divergences, stopped = [], [], 0, False
    total = tune + draws
    for it in range(total):
        n = int(torch.randint(max(1, num_steps // 2), num_steps + 1, (1,), generator=gen))
        p = torch.randn(dim, generator=gen, dtype=z.dtype).to(z.device) / inv_mass.sqrt()
        h0 = u + 0.5 * float((inv_mass * p * p).sum())
        z1, p1, u1, g1 = _leapfrog(potential, z, p, g, eps, inv_mass, n)
        h1 = u1 + 0.5 * float((inv_mass * p1 * p1).sum()) if math.isfinite(u1) else math.inf
        dh = h1 - h0
        if not math.isfinite(dh) or dh > 1000.0:
            accept_prob, divergences = 0.0, divergences + (it >= tune)
        else:
            accept_prob = 1.0 if dh <= 0 else math.exp(-dh)
        if float(torch.rand(1, generator=gen)) < accept_prob:
            z, u, g = z1, u1, g1
        if it < tune:
            da["t"] += 1
            t = da["t"]
            da["hbar"] = (1 - 1 / (t + 10)) * da["hbar"] + (target_accept - accept_prob) / (t + 10)
            log_eps = da["mu"] - math.sqrt(t) / 0.05 * da["hbar"]
            w = t ** -0.75
            da["log_bar"] = w * log_eps + (1 - w) * da["log_bar"]
            eps = math.exp(log_eps)
            if it >= 0.15 * tune:
                win.append(z)
            if it + 1 in windows and len(win) >= 10:
                var = torch.stack(win).var(dim=0)
                m = len(win)
                inv_mass = (m / (m + 5.0)) * var + 1e-3 * (5.0 / (m + 5.0))
                win = []
                eps = _find_step_size(potential, z, u, g, inv_mass, gen, eps)
                da = restart(eps)
            if it == tune - 1:
                eps = math.exp(da["log_bar"]) if da["t"] else eps
            if on_tune is not None and on_tune(it, z):
                u, g = _value_and_grad(potential, z)
        else:
            kept.append(z)
            acc_kept.append(accept_prob)
        if callback is not None:
            callback(it, total, z)
        if should_stop is not None and should_stop():
            stopped = True
            break
    out = torch.stack(kept) if kept else z.new_zeros((0, dim))
    return ChainResult(out, float(sum(acc_kept) / len(acc_kept)) if acc_kept else float("nan"), eps,
                       divergences, stopped)
