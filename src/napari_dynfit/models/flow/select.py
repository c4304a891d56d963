"""Held-out model selection for linear drifts: is a candidate drift better than a reference on unseen points?

:func:`~.pfi.fit_flow` uses it as a safeguard. It holds out a fraction of every snapshot's points, fits on the
rest, and then asks on the held-out points (the same criterion for every candidate, none of them fitted to it):
is the probability-flow refinement better than its starting point, the Gaussian moment fit?

**Criterion.** For each interval ``k -> k + 1``, a candidate predicts held-out snapshot ``k + 1`` from the
held-out points ``x_i`` of snapshot ``k`` as the mixture ``(1/n) sum_i N(e^{A h} x_i + c, Q)`` (its exact
linear-Gaussian transition, no time-stepping error); the criterion is minus the mean log density of that mixture
at the held-out points of snapshot ``k + 1``, summed over intervals (a proper scoring rule). It tests the model's
whole claim (the law of the next snapshot given this one) and favours no estimator: the moment fit matches
moments, the refinement Sinkhorn divergences, and the criterion is neither. Its power to separate drifts that
predict the marginals almost equally well is low (that is why :func:`~.pfi.fit_flow` decides the offset by a
likelihood-ratio test on all points instead).

**Decision.** A candidate replaces the reference only when its criterion is lower by more than
``z`` bootstrap standard deviations of the difference (held-out points resampled, the same resample for both
models and for a snapshot's two roles as source and target): with the default ``z = 2.33`` a no-better
candidate wins about 1 % of the time. Where the data cannot tell the two apart, the simpler / starting model stays.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.linalg import expm

from .io import Snapshots

__all__ = ["split_snapshots", "linear_transition", "heldout_score", "compare_heldout"]


def split_snapshots(snapshots: Snapshots, fraction: float, seed: int = 0) -> tuple[Snapshots, Snapshots]:
    """Split every snapshot's points at random into a fitting part and a held-out part (``fraction`` of them).

    Returns
    -------
    fit, held : Snapshots
        Same times, columns and masses; disjoint point sets.
    """
    rng = np.random.default_rng(seed + 12345)
    fit, held = [], []
    for x in snapshots.samples:
        idx = rng.permutation(len(x))
        n_held = int(round(fraction * len(x)))
        held.append(x[idx[:n_held]])
        fit.append(x[idx[n_held:]])
    return replace(snapshots, samples=fit), replace(snapshots, samples=held)


def linear_transition(A, b, D, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact transition of ``dX = (A X + b) dt + sqrt(2 D) dW`` over a time ``h``.

    Returns
    -------
    E : ndarray (d, d)
        ``e^{A h}``.
    c : ndarray (d,)
        ``integral_0^h e^{A s} b ds``: ``X(h) = E X(0) + c + noise``.
    Q : ndarray (d, d)
        Covariance of the noise, ``integral_0^h e^{A s} 2 D e^{A^T s} ds`` (Van Loan's method).
    """
    A, b, D = (np.asarray(v, float) for v in (A, b, D))
    d = len(b)
    M = np.zeros((d + 1, d + 1))
    M[:d, :d], M[:d, d] = A, b
    Eb = expm(M * h)
    E, c = Eb[:d, :d], Eb[:d, d]
    F = expm(np.block([[A, 2 * D], [np.zeros((d, d)), -A.T]]) * h)
    Q = F[:d, d:] @ E.T
    return E, c, 0.5 * (Q + Q.T)


def heldout_score(candidates, diffusion, held: Snapshots, *, sources: Snapshots | None = None, n_boot: int = 200,
                  seed: int = 0) -> np.ndarray:
    """Held-out criterion of linear drifts (negative log predictive density), observed and bootstrapped.

    For each interval ``k -> k + 1`` a candidate predicts snapshot ``k + 1`` from the held-out points ``x_i`` of
    snapshot ``k`` as the mixture ``(1 / n) sum_i N(e^{A h} x_i + c, Q)`` (its exact transition,
    :func:`linear_transition`); the criterion is minus the mean log density of that mixture at the held-out points
    of snapshot ``k + 1``, summed over intervals (a proper scoring rule: in expectation lowest for the true model).

    Parameters
    ----------
    candidates : list of (A (d, d), b (d,))
        Linear drifts ``f(x) = A x + b``.
    diffusion : array (d, d)
        The diffusion matrix ``D``.
    held : Snapshots
        Held-out points (not used to fit any candidate).
    n_boot : int
        Bootstrap resamples of the held-out points.
    seed : int

    Returns
    -------
    ndarray, shape (len(candidates), 1 + n_boot)
        Column 0: the criterion on the held-out points; columns 1..: on the bootstrap resamples (the same
        resample for every candidate, and for a snapshot in its two roles, source and target).
    """
    rng = np.random.default_rng(seed + 777)
    D = np.asarray(diffusion, float)
    # weights of each held-out snapshot's points: column 0 the observed points, then multinomial resamples
    weights = []
    for x in held.samples:
        n = len(x)
        w = np.ones((n, 1 + n_boot))
        w[:, 1:] = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).T
        weights.append(w / w.sum(0, keepdims=True))
    out = np.zeros((len(candidates), 1 + n_boot))
    for k in range(len(held.times) - 1):
        x, y = (sources or held).samples[k], held.samples[k + 1]
        h = float(held.times[k + 1] - held.times[k])
        for c, (A, b) in enumerate(candidates):
            E, shift, Q = linear_transition(A, b, D, h)
            L = np.linalg.cholesky(Q + 1e-12 * np.eye(len(b)))
            # whitened residuals of every target point from every source point's prediction
            r = np.linalg.solve(L, (y[:, None, :] - (x @ E.T + shift)[None]).reshape(-1, len(b)).T)
            logk = -0.5 * (r * r).sum(0).reshape(len(y), len(x)) - np.log(np.diag(L)).sum()
            top = logk.max(1, keepdims=True)
            wx = weights[k] if sources is None else np.full((len(x), weights[k].shape[1]), 1.0 / len(x))
            logp = np.log(np.exp(logk - top) @ wx) + top  # (n_y, 1 + n_boot): mixture log density
            out[c] -= (weights[k + 1] * logp).sum(0)
    return out


def compare_heldout(candidate, reference, diffusion, held: Snapshots, *, z: float = 2.33,
                    sources: Snapshots | None = None, n_boot: int = 200, seed: int = 0) -> dict:
    """Is the linear drift ``candidate`` better than ``reference`` on the held-out points?

    ``sources``, ``n_boot``, ``seed``: as in :func:`heldout_score`.

    Returns
    -------
    dict
        ``better`` (bool: lower criterion by more than ``z`` bootstrap standard deviations), ``difference``
        (candidate minus reference; negative: candidate better), ``sd`` (bootstrap standard deviation of the
        difference), ``z`` (difference / sd) and the two criteria.
    """
    crit = heldout_score([candidate, reference], diffusion, held, sources=sources, n_boot=n_boot, seed=seed)
    diff = crit[0] - crit[1]
    sd = float(np.std(diff[1:])) if diff.size > 1 else 0.0
    score = float(diff[0] / sd) if sd > 0 else 0.0
    return {"better": bool(diff[0] < 0 and score < -z), "difference": float(diff[0]), "sd": sd, "z": score,
            "criterion_candidate": float(crit[0, 0]), "criterion_reference": float(crit[1, 0])}
