"""Maximum-likelihood linear drift from Gaussian snapshots (the Ornstein-Uhlenbeck special case), and how well
the snapshots can pin it.

For ``dX = (A X + b) dt + sqrt(2 D) dW`` with a Gaussian initial population, every snapshot is Gaussian and its
mean and covariance follow exactly from ``A``, ``b``, ``D`` and the initial mean and covariance (the OU
transition between consecutive snapshot times). The snapshots hold different, independent individuals, so the
likelihood of all the points is the product of the snapshots' Gaussian likelihoods; it depends on the points only
through each snapshot's sample mean and covariance, and maximising it is the exact maximum-likelihood estimate
(efficient for OU data). :func:`~.pfi.fit_flow` starts a linear drift from it (the probability-flow fit from
``A = 0`` can stall in a wrong basin when the drift rotates quickly); the OU benchmarks report it as the floor that
no method can beat on the same data; :func:`drift_uncertainty` turns its Fisher information into the error the
snapshot counts allow (Cramer-Rao), and says "not identifiable" when that error is large.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..._progress import report
from .io import Snapshots

__all__ = ["MomentFit", "moment_fit", "gaussian_mle_drift", "drift_uncertainty"]

#: Relative 95 % bound on ``|A_hat - A| / |A|`` above which the drift is called "not identifiable".
IDENTIFIABLE_BOUND = 0.5


@dataclass
class MomentFit:
    """The Gaussian maximum-likelihood fit of a linear drift to snapshots.

    Attributes
    ----------
    A : ndarray, shape (d, d)
        Drift matrix (``f(x) = A x + b``), per time unit.
    b : ndarray, shape (d,)
        Offset (zeros without ``offset``), data units per time unit.
    m0 : ndarray, shape (d,)
        Fitted mean of the population at the first snapshot time.
    S0 : ndarray, shape (d, d)
        Fitted covariance of the population at the first snapshot time (data units squared).
    loss : float
        ``-2 log L / N`` at the optimum (``N`` points in all, up to a constant): ``N (loss_0 - loss_1)`` is the
        likelihood-ratio statistic of two nested fits.
    offset : bool
        Whether ``b`` was fitted.
    """

    A: np.ndarray
    b: np.ndarray
    m0: np.ndarray
    S0: np.ndarray
    loss: float
    offset: bool


def _as_diffusion(diffusion, d: int) -> torch.Tensor:
    D = np.asarray(diffusion, float)
    return torch.as_tensor(D * np.eye(d) if D.ndim == 0 else D, dtype=torch.float64)


#: More snapshots than this: :func:`_propagate` reuses the transition of intervals of equal length (to 1e-12).
_CACHE_ABOVE = 17


def _propagate(A, b, m0, S0, Dm, times):
    """Means and covariances at ``times`` of ``dX = (A X + b) dt + sqrt(2 D) dW`` from ``N(m0, S0)`` at
    ``times[0]`` (exact OU transitions: the mean through the augmented matrix ``[[A, b], [0, 0]]``, the noise
    integral by Van Loan's method)."""
    d = A.shape[0]
    zero = torch.zeros(d, d, dtype=A.dtype)
    m, S = m0, S0
    out = [(m, S)]
    # with many snapshots (frames of a movie: equal intervals) the transitions of equal intervals are computed once
    # (two matrix exponentials per interval were most of the cost); with few, every interval as before, bit for bit
    cache: dict | None = {} if len(times) > _CACHE_ABOVE else None
    for h in np.diff(times):
        key = float(np.round(h, 12))
        if cache is not None and key in cache:
            Eb, F = cache[key]
        else:
            Ab = torch.cat([torch.cat([A, b[:, None]], 1), torch.zeros(1, d + 1, dtype=A.dtype)], 0)
            Eb = torch.matrix_exp(Ab * float(h))
            F = torch.matrix_exp(torch.cat([torch.cat([A, 2 * Dm], 1), torch.cat([zero, -A.T], 1)], 0) * float(h))
            if cache is not None:
                cache[key] = (Eb, F)
        E = Eb[:d, :d]
        m = E @ m + Eb[:d, d]
        S = E @ S @ E.T + F[:d, d:] @ E.T
        S = 0.5 * (S + S.T)
        out.append((m, S))
    return out


def _statistics(snapshots: Snapshots):
    d = snapshots.dim
    counts = [len(x) for x in snapshots.samples]
    means = [torch.as_tensor(x.mean(axis=0), dtype=torch.float64) for x in snapshots.samples]
    covs = [torch.as_tensor(np.cov(x.T, bias=True).reshape(d, d), dtype=torch.float64) for x in snapshots.samples]
    return counts, means, covs


def _moment_start(snapshots: Snapshots, Dm: np.ndarray, offset: bool) -> np.ndarray:
    """A closed-form start for ``A``: least squares on the moment equations ``m' = A m + b`` and
    ``S' = A S + S A^T + 2 D`` with finite differences between consecutive snapshots (midpoint values)."""
    d = snapshots.dim
    counts, means, covs = _statistics(snapshots)
    rows, rhs = [], []
    for k in range(len(snapshots.times) - 1):
        h = float(snapshots.times[k + 1] - snapshots.times[k])
        m = 0.5 * (means[k] + means[k + 1]).numpy()
        S = 0.5 * (covs[k] + covs[k + 1]).numpy()
        dm = (means[k + 1] - means[k]).numpy() / h
        dS = (covs[k + 1] - covs[k]).numpy() / h - 2 * Dm
        scale = np.sqrt(min(counts[k], counts[k + 1]))
        for i in range(d):  # m'_i = sum_j A_ij m_j (+ b_i)
            r = np.zeros(d * d + d)
            r[i * d:(i + 1) * d] = m
            r[d * d + i] = 1.0
            rows.append(scale * r)
            rhs.append(scale * dm[i])
        for i in range(d):  # S'_ij = sum_l A_il S_lj + S_il A_jl
            for j in range(i, d):
                r = np.zeros(d * d + d)
                r[i * d:(i + 1) * d] += S[:, j]
                r[j * d:(j + 1) * d] += S[i, :]
                rows.append(scale * r)
                rhs.append(scale * dS[i, j])
    M, y = np.array(rows), np.array(rhs)
    if not offset:
        M = M[:, :d * d]
    coef = np.linalg.lstsq(M, y, rcond=None)[0]
    return coef[:d * d].reshape(d, d)


def moment_fit(snapshots: Snapshots, diffusion, *, offset: bool = False, max_iter: int = 3000) -> MomentFit:
    """Exact maximum-likelihood fit of ``dX = (A X + b) dt + sqrt(2 D) dW`` with a known ``D`` to snapshots.

    ``A``, ``b``, the initial mean ``m_0`` and covariance ``S_0`` are fitted jointly by L-BFGS (restarted until
    the likelihood stops improving) on the Gaussian log-likelihood of all the points, given by the snapshots'
    sample means and covariances; the predicted moments follow by the exact OU transitions between snapshot
    times. Two starts, ``A = 0`` and the least-squares solution of the moment equations, guard against a local
    optimum (a quickly rotating drift); the one of higher likelihood is returned. Exact for linear drifts and
    Gaussian data; for other data it is only a starting point.

    Parameters
    ----------
    snapshots : Snapshots
        ``K >= 2`` point clouds of ``d`` coordinates (independent individuals at each time).
    diffusion : float or array (d, d)
        The known diffusion matrix ``D`` (data units squared per time unit).
    offset : bool
        Fit ``b`` too (``False``: ``b = 0``).
    max_iter : int
        L-BFGS iterations per restart.

    Returns
    -------
    MomentFit
    """
    d = snapshots.dim
    dtype = torch.float64
    Dm = _as_diffusion(diffusion, d)
    times = [float(t) for t in snapshots.times]
    counts, means, covs = _statistics(snapshots)
    total_n = sum(counts)
    try:
        starts = [np.zeros((d, d)), _moment_start(snapshots, Dm.numpy(), offset)]
    except np.linalg.LinAlgError:
        starts = [np.zeros((d, d))]
    best = None
    evaluations = [0]  # shown as progress (the count is open-ended: L-BFGS restarts until the likelihood settles)
    for A_start in starts:
        A = torch.as_tensor(A_start, dtype=dtype).clone().requires_grad_(True)
        b = torch.zeros(d, dtype=dtype, requires_grad=offset)
        m0 = means[0].clone().requires_grad_(True)
        L0 = torch.linalg.cholesky(covs[0] + 1e-9 * torch.eye(d, dtype=dtype)).clone(
            memory_format=torch.contiguous_format).requires_grad_(True)

        def nll(A=A, b=b, m0=m0, L0=L0):
            total = 0.0
            for n, (m, S), mk, Sk in zip(counts, _propagate(A, b, m0, L0 @ L0.T, Dm, times), means, covs):
                Si = torch.linalg.inv(S)
                r = mk - m
                total = total + n * (torch.logdet(S) + torch.trace(Si @ Sk) + r @ Si @ r)
            return total / total_n

        opt = torch.optim.LBFGS([A, m0, L0] + ([b] if offset else []), max_iter=max_iter,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-14)

        def closure(opt=opt, nll=nll):
            # one evaluation propagates through every snapshot: hundreds of them take seconds; report() also
            # honours Cancel
            evaluations[0] += 1
            report(evaluations[0], None, "Gaussian moment fit (likelihood evaluations)")
            opt.zero_grad()
            loss = nll()
            loss.backward()
            return loss

        previous = float("inf")
        for _ in range(10):  # L-BFGS restarts until the likelihood stops improving
            loss = float(opt.step(closure).detach())
            if not np.isfinite(loss) or previous - loss < 1e-10:
                break
            previous = loss
        with torch.no_grad():
            loss = float(nll())
        if np.isfinite(loss) and (best is None or loss < best.loss - 1e-12):
            L = L0.detach()
            best = MomentFit(A=A.detach().numpy().astype(float), b=b.detach().numpy().astype(float),
                             m0=m0.detach().numpy().astype(float), S0=(L @ L.T).numpy().astype(float),
                             loss=loss, offset=offset)
    if best is None:
        raise FloatingPointError("the Gaussian moment fit did not converge (non-finite likelihood)")
    return best


def gaussian_mle_drift(snapshots: Snapshots, diffusion, *, offset: bool = False, max_iter: int = 3000,
                       return_loss: bool = False):
    """Maximum-likelihood drift ``A``, ``b`` of ``dX = (A X + b) dt + sqrt(2 D) dW`` from Gaussian snapshots
    (:func:`moment_fit`, its drift only).

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
    fit = moment_fit(snapshots, diffusion, offset=offset, max_iter=max_iter)
    return (fit.A, fit.b, fit.loss) if return_loss else (fit.A, fit.b)


def drift_uncertainty(snapshots: Snapshots, diffusion, *, fit: MomentFit | None = None, offset: bool = False,
                      level: float = 0.95, n_draws: int = 20000) -> dict:
    """How well the snapshots pin the drift matrix: standard errors of ``A`` from the snapshot counts.

    The expected Fisher information of the Gaussian snapshot likelihood (:func:`moment_fit`; per snapshot
    ``n_k [J_m^T S^-1 J_m + tr(S^-1 dS_a S^-1 dS_b) / 2]``, with the exact derivatives of the predicted means
    and covariances) over ``A``, ``b`` (with ``offset``), ``m_0`` and ``S_0`` is inverted; its ``A`` block is
    the covariance of the maximum-likelihood ``A`` (the Cramer-Rao bound: no estimator from these snapshots
    does better on OU data). The relative error ``|A_hat - A| / |A|`` (Frobenius, ``|A|`` the fitted one)
    then has the root-mean-square value ``expected_error`` and the ``level`` quantile ``bound`` (a weighted sum
    of chi-squares, by simulation with a fixed seed).

    Parameters
    ----------
    snapshots : Snapshots
        The snapshots the drift is fitted to (their point counts set the information).
    diffusion : float or array (d, d)
        The known diffusion matrix ``D``.
    fit : MomentFit, optional
        The fit to evaluate the information at (default: :func:`moment_fit` of ``snapshots``).
    offset : bool
        With ``fit`` absent: fit ``b`` too. An offset costs information on ``A``.
    level : float
        Coverage of ``bound``.
    n_draws : int
        Draws used for the quantile.

    Returns
    -------
    dict
        ``A_standard_error`` (d x d list), ``expected_error`` and ``bound`` (relative to ``|A|``), ``level``,
        ``identifiable`` (``bound <= 0.5``), ``verdict`` ("identifiable" or "not identifiable"), ``reason``
        (one line), ``hint`` (what would help; empty when identifiable), ``points_per_snapshot``,
        ``method``.
    """
    fit = moment_fit(snapshots, diffusion, offset=offset) if fit is None else fit
    d = snapshots.dim
    Dm = _as_diffusion(diffusion, d)
    times = [float(t) for t in snapshots.times]
    counts = [len(x) for x in snapshots.samples]
    iu = np.triu_indices(d)
    sizes = [d * d, d if fit.offset else 0, d, len(iu[0])]
    theta0 = torch.as_tensor(np.concatenate([fit.A.ravel(), fit.b if fit.offset else [], fit.m0, fit.S0[iu]]),
                             dtype=torch.float64)
    iu_t = (torch.as_tensor(iu[0]), torch.as_tensor(iu[1]))

    def moments(theta):
        A, b, m0, s = torch.split(theta, sizes)
        A = A.reshape(d, d)
        b = b if fit.offset else torch.zeros(d, dtype=theta.dtype)
        S0 = torch.zeros(d, d, dtype=theta.dtype).index_put(iu_t, s)
        S0 = S0 + S0.T - torch.diag(torch.diagonal(S0))
        return torch.cat([torch.cat([m, S.reshape(-1)]) for m, S in _propagate(A, b, m0, S0, Dm, times)])

    J = torch.autograd.functional.jacobian(moments, theta0).numpy()  # (K (d + d^2), P)
    values = moments(theta0).detach().numpy()
    info = np.zeros((len(theta0), len(theta0)))
    for k, n in enumerate(counts):
        o = k * (d + d * d)
        S = values[o + d:o + d + d * d].reshape(d, d)
        Si = np.linalg.inv(S)
        Jm, JS = J[o:o + d], J[o + d:o + d + d * d].T.reshape(-1, d, d)
        M = Si[None] @ JS  # (P, d, d): S^-1 dS/dtheta_a
        info += n * (Jm.T @ Si @ Jm + 0.5 * np.einsum("aij,bji->ab", M, M))
    cov = np.linalg.pinv(info, hermitian=True)[:d * d, :d * d]
    cov = 0.5 * (cov + cov.T)
    norm = float(np.linalg.norm(fit.A))
    se = np.sqrt(np.clip(np.diag(cov), 0, None)).reshape(d, d)
    evals = np.clip(np.linalg.eigvalsh(cov), 0, None)
    draws = np.random.default_rng(0).standard_normal((n_draws, len(evals))) ** 2 @ evals
    expected = float(np.sqrt(evals.sum()) / norm) if norm > 0 else float("inf")
    bound = float(np.sqrt(np.quantile(draws, level)) / norm) if norm > 0 else float("inf")
    ok = bool(np.isfinite(bound) and bound <= IDENTIFIABLE_BOUND)
    pct = f"{100 * level:g} %"
    n_text = f"{len(counts)} snapshots of {min(counts)}" + (f"-{max(counts)}" if max(counts) > min(counts) else "")
    reason = (f"drift matrix A from {n_text} points: expected relative error {expected:.3f}, {pct} bound "
              f"{bound:.3f} (Cramer-Rao bound of the Gaussian snapshot likelihood)")
    hint = ""
    if not ok:
        reason = (f"not identifiable from these data: the {pct} bound on the relative error of A is {bound:.2f} "
                  f"(> {IDENTIFIABLE_BOUND}) from {n_text} points")
        hint = ("more points per snapshot (the error falls as 1 / sqrt(n)), more snapshots or a longer time span, "
                "or a population farther from its steady state would pin A")
    return {"A_standard_error": se.tolist(), "expected_error": expected, "bound": bound, "level": level,
            "identifiable": ok, "verdict": "identifiable" if ok else "not identifiable", "reason": reason,
            "hint": hint, "points_per_snapshot": counts,
            "method": "expected Fisher information of the Gaussian snapshot likelihood (Cramer-Rao)"}
