"""Maximum-likelihood linear drift from Gaussian snapshots (the Ornstein-Uhlenbeck special case).

For ``dX = (A X + b) dt + sqrt(2 D) dW`` with a Gaussian initial population, every snapshot is Gaussian and its
mean and covariance follow exactly from ``A``, ``b``, ``D`` and the initial mean and covariance. Fitting them to
the snapshots' sample means and covariances (their sufficient statistics) by maximum likelihood is the efficient
estimator for OU data. :func:`~.pfi.fit_flow` uses it to start a linear drift (the probability-flow fit from
``A = 0`` can stall in a wrong basin when the drift rotates quickly); the OU benchmarks report it as the floor
that no method can beat on the same data.
"""

from __future__ import annotations

import numpy as np
import torch

from .io import Snapshots


def gaussian_mle_drift(snapshots: Snapshots, diffusion, *, offset: bool = False, max_iter: int = 3000,
                       return_loss: bool = False):
    """Maximum-likelihood drift ``A``, ``b`` of ``dX = (A X + b) dt + sqrt(2 D) dW`` from Gaussian snapshots.

    The snapshots of an OU process are Gaussian: given ``A``, ``b``, the initial mean ``m_0`` and covariance
    ``S_0``, the mean and covariance at every snapshot time follow exactly (``m' = A m + b``,
    ``S' = A S + S A^T + 2 D``, propagated with matrix exponentials: the mean through the augmented matrix
    ``[[A, b], [0, 0]]``, the noise integral by Van Loan's method). ``A``, ``b``, ``m_0`` and ``S_0`` are
    fitted jointly by L-BFGS (from ``A = 0``, restarted until the likelihood stops improving) on the Gaussian
    log-likelihood of the snapshots' sample means and covariances (their sufficient statistics). Exact for
    linear drifts and Gaussian data; for other data it is only a starting point.

    Parameters
    ----------
    snapshots : Snapshots
        ``K >= 2`` point clouds of ``d`` coordinates.
    diffusion : float or array (d, d)
        The known diffusion matrix ``D``.
    offset : bool
        Fit ``b`` too (``False``: ``b = 0``).
    max_iter : int
        L-BFGS iterations.
    return_loss : bool
        Also return the minimised loss: ``-2 log L / N`` (``N`` points in all, up to a constant), so that
        ``N (loss_0 - loss_1)`` is the likelihood-ratio statistic of two nested fits.

    Returns
    -------
    A : ndarray, shape (d, d)
    b : ndarray, shape (d,)
    loss : float
        Only with ``return_loss``.
    """
    d = snapshots.dim
    dtype = torch.float64
    Dm = torch.as_tensor(np.asarray(diffusion, float) * np.eye(d) if np.ndim(diffusion) == 0
                         else np.asarray(diffusion, float), dtype=dtype)
    times = [float(t) for t in snapshots.times]
    weights = [len(x) for x in snapshots.samples]
    means = [torch.as_tensor(x.mean(axis=0), dtype=dtype) for x in snapshots.samples]
    covs = [torch.as_tensor(np.cov(x.T, bias=True).reshape(d, d), dtype=dtype) for x in snapshots.samples]
    A = torch.zeros(d, d, dtype=dtype, requires_grad=True)
    b = torch.zeros(d, dtype=dtype, requires_grad=offset)
    m0 = means[0].clone().requires_grad_(True)
    L0 = torch.linalg.cholesky(covs[0] + 1e-9 * torch.eye(d, dtype=dtype)).clone(
        memory_format=torch.contiguous_format).requires_grad_(True)
    zero = torch.zeros(d, d, dtype=dtype)

    def nll():
        m, S, total = m0, L0 @ L0.T, 0.0
        for k, (n, mk, Sk) in enumerate(zip(weights, means, covs)):
            if k > 0:
                h = times[k] - times[k - 1]
                Ab = torch.cat([torch.cat([A, b[:, None]], 1), torch.zeros(1, d + 1, dtype=dtype)], 0)
                Eb = torch.matrix_exp(Ab * h)
                E = Eb[:d, :d]
                F = torch.matrix_exp(torch.cat([torch.cat([A, 2 * Dm], 1), torch.cat([zero, -A.T], 1)], 0) * h)
                m = E @ m + Eb[:d, d]
                S = E @ S @ E.T + F[:d, d:] @ E.T
                S = 0.5 * (S + S.T)
            Si = torch.linalg.inv(S)
            r = mk - m
            total = total + n * (torch.logdet(S) + torch.trace(Si @ Sk) + r @ Si @ r)
        return total / sum(weights)

    opt = torch.optim.LBFGS([A, m0, L0] + ([b] if offset else []), max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = nll()
        loss.backward()
        return loss

    previous = float("inf")
    for _ in range(10):  # L-BFGS restarts until the likelihood stops improving
        loss = float(opt.step(closure).detach())
        if previous - loss < 1e-10:
            break
        previous = loss
    out = A.detach().numpy().astype(float), b.detach().numpy().astype(float)
    if return_loss:
        with torch.no_grad():
            return (*out, float(nll()))
    return out
