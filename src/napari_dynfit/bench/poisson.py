"""The multi-scale 2D Poisson benchmark of the loss-weighting strategies (after arXiv:2107.00940).

``lap(u) = f`` on the unit square with Dirichlet boundary values, exact solution

    u(y, x) = cos(w1 x) sin(w1 y) + eps cos(w2 x) sin(w2 y),   w1 = pi * low, w2 = pi * high

(a smooth mode, ``low = 1``, plus a high-frequency mode, ``high = 6``, of relative amplitude
``eps = 0.01``), set up as the paper's Poisson example (``cos(w x) sin(w y)``, plain tanh MLP
with Xavier initialisation, Dirichlet data on 4 x 100 boundary points, random collocation points,
Adam at ``lr = 1e-3``, weights updated every 5 steps with ``alpha = 0.5``), scaled down to run on a
laptop CPU: 3 x 50 instead of 5 x 50 neurons, 1000 instead of 2500 collocation points, 2000
instead of 30000 steps (learning rate decaying to 1e-4). The
high-frequency mode makes the residual's gradients ``~w2^4`` times larger than the boundary term's:
with equal weights the boundary data is ignored and the solution drifts by a harmonic function;
inverse-Dirichlet weighting balances the two. The problem is steady: the network sees a single
time ``t = 0``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..models.pinn.losses import PointLoss, ResidualLoss
from ..models.pinn.network import FieldNetwork
from ..models.pinn.train import PINN


def poisson_solution(y, x, *, low: float = 1.0, high: float = 6.0, eps: float = 0.01):
    """Exact solution ``u(y, x)`` (numpy or torch arrays)."""
    lib = torch if isinstance(x, torch.Tensor) else np
    w1, w2 = np.pi * low, np.pi * high
    return lib.cos(w1 * x) * lib.sin(w1 * y) + eps * lib.cos(w2 * x) * lib.sin(w2 * y)


def poisson_source(y, x, *, low: float = 1.0, high: float = 6.0, eps: float = 0.01):
    """``f = lap(u)`` of :func:`poisson_solution`."""
    lib = torch if isinstance(x, torch.Tensor) else np
    w1, w2 = np.pi * low, np.pi * high
    return (-2 * w1**2 * lib.cos(w1 * x) * lib.sin(w1 * y)
            - 2 * eps * w2**2 * lib.cos(w2 * x) * lib.sin(w2 * y))


def poisson_pinn(weighting: str, *, low: float = 1.0, high: float = 6.0, eps: float = 0.01,
                 n_collocation: int = 1000, n_boundary: int = 100, hidden=(50, 50, 50),
                 fourier_features: int = 0, fourier_scale: float = 1.0, lr: float = 1e-3,
                 device: str = "cpu", seed: int = 0) -> PINN:
    """Build the multi-scale Poisson PINN with a given weighting strategy (see the module docstring)."""
    rng = np.random.default_rng(seed)
    yx = rng.uniform(0, 1, size=(n_collocation, 2))
    coll = np.column_stack([np.zeros(n_collocation), yx])
    s = np.linspace(0, 1, n_boundary)
    edges = np.concatenate([np.column_stack([s, np.zeros_like(s)]), np.column_stack([s, np.ones_like(s)]),
                            np.column_stack([np.zeros_like(s), s]), np.column_stack([np.ones_like(s), s])])
    bnd = np.column_stack([np.zeros(len(edges)), edges])
    kw = dict(low=low, high=high, eps=eps)
    losses = [ResidualLoss("residual", "lap(u)", {"f": 1.0}, coll),
              PointLoss("boundary", "u", bnd, poisson_solution(edges[:, 0], edges[:, 1], **kw), kind="boundary")]
    net = FieldNetwork([(0, 1), (0, 1), (0, 1)], {"u": "scalar"}, hidden=hidden, fourier_features=fourier_features,
                       fourier_scale=fourier_scale, seed=seed)
    known = {"f": lambda X: poisson_source(X[:, 1], X[:, 2], **kw)}
    return PINN(net, losses, weighting=weighting, known=known, lr=lr, device=device, seed=seed)


def poisson_benchmark(*, steps: int = 2000, strategies=("inverse-dirichlet", "fixed", "annealing"),
                      grid: int = 100, seed: int = 0, **kwargs) -> dict:
    """Train the same network with each strategy for the same number of steps; relative L2 errors.

    Returns
    -------
    dict
        ``<strategy>_rel_l2`` (on a ``grid x grid`` mesh), ``<strategy>_s`` (training seconds),
        final weights, and ``fixed_over_inverse_dirichlet`` (error ratio).
    """
    g = np.linspace(0, 1, grid)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    kw = {k: kwargs[k] for k in ("low", "high", "eps") if k in kwargs}
    truth = poisson_solution(yy, xx, **kw)
    out: dict = {"steps": steps, "seed": seed, **kwargs}
    for strategy in strategies:
        pinn = poisson_pinn(strategy, seed=seed, **kwargs)
        t0 = time.perf_counter()
        pinn.fit(steps)
        key = strategy.replace("-", "_")
        out[f"{key}_s"] = time.perf_counter() - t0
        u = pinn.predict_grid({"t": [0.0], "y": g, "x": g})["u"][0]
        out[f"{key}_rel_l2"] = float(np.linalg.norm(u - truth) / np.linalg.norm(truth))
        out[f"{key}_final_weights"] = dict(pinn.weighting.weights)
    if "inverse-dirichlet" in strategies and "fixed" in strategies:
        out["fixed_over_inverse_dirichlet"] = out["fixed_rel_l2"] / out["inverse_dirichlet_rel_l2"]
    return out
