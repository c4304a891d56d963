"""Distances between weighted point clouds: Sinkhorn divergences (via geomloss) and the energy distance.

* :func:`sinkhorn_loss` builds the debiased Sinkhorn divergence ``S_eps(a, b)`` of geomloss with the squared
  Euclidean cost ``|x - y|^2 / 2``. With ``reach=None`` it is balanced (the weights of each cloud are normalised
  to sum to one); with a ``reach`` it is the unbalanced divergence (soft KL penalty on mass creation and
  destruction, ``rho = reach^2``), so clouds of different total mass can be compared.
* :func:`energy_distance` is the (squared) energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` of two samples,
  used to score sampled paths against the truth.
"""

from __future__ import annotations

import torch


def sinkhorn_loss(blur: float, *, reach: float | None = None, scaling: float = 0.6):
    """A geomloss ``SamplesLoss`` computing Sinkhorn divergences.

    Parameters
    ----------
    blur : float
        Entropic blur ``eps^(1/2)`` in the coordinates' units (the length scale below which the transport
        plan is smoothed).
    reach : float, optional
        Unbalanced transport: the length scale beyond which mass is created/destroyed rather than moved.
        ``None`` gives balanced transport.
    scaling : float
        Epsilon-scaling ratio of the Sinkhorn iterations (closer to 1: more accurate, slower).

    Returns
    -------
    callable
        ``loss(a, x, b, y)`` for weights ``a`` ``(n,)``, ``b`` ``(m,)`` and points ``x`` ``(n, d)``,
        ``y`` ``(m, d)``; or ``loss(x, y)`` for uniform weights.
    """
    from geomloss import SamplesLoss

    return SamplesLoss("sinkhorn", p=2, blur=blur, reach=reach, scaling=scaling, debias=True,
                       backend="tensorized")


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Squared energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` of samples ``x`` ``(n, d)`` and ``y`` ``(m, d)``."""
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())
