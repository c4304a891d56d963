"""Loss weighting strategies for multi-objective PINN training.

The total loss is ``L = sum_k lambda_k L_k``. The weights ``lambda_k`` are

* ``"fixed"``: constants given by the user (default all 1);
* ``"annealing"`` (learning-rate annealing, Wang, Teng & Perdikaris 2021):
  ``lambda_k = max |grad L_res| / mean |grad L_k|`` for every non-residual term ``k``, where
  ``L_res`` runs over the PDE residual terms (whose weights stay 1);
* ``"inverse-dirichlet"`` (Maddu, Sturm, Mueller & Sbalzarini 2022, arXiv:2107.00940):
  ``lambda_k = max_t std(grad L_t) / std(grad L_k)`` over all terms ``t``, which equalises the
  variance (Dirichlet energy) of the back-propagated gradients of all objectives.

Gradients are taken with respect to the network weights (not the PDE coefficients). Adaptive
weights are updated every few steps and smoothed by a moving average
``lambda <- (1 - alpha) lambda + alpha lambda_hat`` (``alpha = 0.5`` as in the paper). The history
of the weights is recorded for plots.
"""

from __future__ import annotations

import torch

from ...errors import InputError

STRATEGIES = ("fixed", "annealing", "inverse-dirichlet")


class LossWeighting:
    """Weights of the loss terms and their history.

    Parameters
    ----------
    names : sequence of str
        Loss term names, in order.
    residual : sequence of str
        Names of the PDE residual terms (the reference of ``"annealing"``).
    strategy : {"fixed", "annealing", "inverse-dirichlet"}
    fixed : dict of str -> float, optional
        Weights for ``"fixed"`` (missing names: 1), also the initial weights of adaptive strategies.
    alpha : float
        Moving-average factor of adaptive weights (1: no smoothing).
    update_every : int
        Update adaptive weights every ``update_every`` steps.
    """

    def __init__(self, names, residual=(), *, strategy: str = "inverse-dirichlet", fixed=None,
                 alpha: float = 0.5, update_every: int = 5):
        if strategy not in STRATEGIES:
            raise InputError(f"unknown weighting '{strategy}': use one of {', '.join(STRATEGIES)}")
        if not 0 < alpha <= 1:
            raise InputError(f"alpha must be in (0, 1], got {alpha}")
        if strategy == "annealing" and not list(residual):
            raise InputError("'annealing' weighting needs at least one PDE residual loss term")
        self.names = list(names)
        self.residual = [n for n in residual if n in self.names]
        self.strategy = strategy
        self.alpha = float(alpha)
        self.update_every = max(1, int(update_every))
        unknown = set(fixed or {}) - set(self.names)
        if unknown:
            raise InputError(f"weights given for unknown loss terms {sorted(unknown)}; terms are {self.names}")
        self.weights = {n: float((fixed or {}).get(n, 1.0)) for n in self.names}
        self.history: list[tuple[int, dict[str, float]]] = []

    @property
    def adaptive(self) -> bool:
        """Whether the weights depend on the gradients."""
        return self.strategy != "fixed"

    def due(self, step: int) -> bool:
        """Whether the weights are updated at ``step``."""
        return self.adaptive and step % self.update_every == 0

    def update(self, step: int, grads: dict[str, torch.Tensor]) -> dict[str, float]:
        """Update from flattened per-term gradients ``grads[name]`` (w.r.t. the network weights)."""
        if self.strategy == "inverse-dirichlet":
            std = {n: float(torch.std(g)) for n, g in grads.items()}
            top = max(std.values())
            target = {n: top / max(s, 1e-30) for n, s in std.items()}
        else:
            top = max(float(grads[n].abs().max()) for n in self.residual)
            target = {n: 1.0 if n in self.residual else top / max(float(g.abs().mean()), 1e-30)
                      for n, g in grads.items()}
        a = self.alpha
        for n, lam in target.items():
            self.weights[n] = (1 - a) * self.weights[n] + a * lam
        self.history.append((int(step), dict(self.weights)))
        return self.weights

    def record(self, step: int) -> None:
        """Record the current (fixed) weights at ``step``."""
        self.history.append((int(step), dict(self.weights)))

    def state_dict(self) -> dict:
        return {"weights": dict(self.weights), "history": [(s, dict(w)) for s, w in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.weights.update(state["weights"])
        self.history = [(int(s), dict(w)) for s, w in state["history"]]
