"""Stability selection for sparse regression (PDE-STRIDE, Maddu et al. 2019; Meinshausen & Buehlmann 2010).

For ``y ~ G xi`` (rows = samples, columns = candidate terms), both normalised to unit column norm:

1. penalties ``tau`` on a log grid over one decade below ``tau_max``, the largest normalised
   coefficient of the ridge fit with every term (above it no term survives the first threshold);
2. ``B`` random half-subsamples of the rows; for every subsample and penalty a sparse solver gives a
   support: **IHT-d** (iterative hard thresholding with debiasing: a gradient step, keep the
   coefficients with ``|xi| >= tau``, least squares on that support, until the support repeats) or
   **STRidge** (PDE-FIND's sequentially thresholded ridge regression);
3. the selection probability of term ``j`` at penalty ``k`` is the fraction of subsamples whose
   support contains ``j``; terms whose largest probability reaches ``pi_th`` are kept;
4. debiased coefficients: least squares on the kept terms with all rows; confidence intervals from
   a bootstrap over rows.

Why our own: the solvers are a few lines of numpy, and the product is the selection procedure
with its stability-path data, which scikit-learn and PySINDy do not provide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._progress import progress_iter
from ..errors import InputError

SOLVERS = ("iht", "stridge")


def _solve(A: np.ndarray, c: np.ndarray, support: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Coefficients on ``support`` from the normal equations ``A = G^T G``, ``c = G^T y``."""
    S = np.flatnonzero(support)
    As = A[np.ix_(S, S)] + ridge * np.eye(len(S))
    try:
        return np.linalg.solve(As, c[S])
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(As, c[S], rcond=None)[0]


def iht_debiased(A: np.ndarray, c: np.ndarray, tau: float, max_iter: int = 50,
                 start: np.ndarray | None = None) -> np.ndarray:
    """IHT-d on normalised data: support of ``argmin |y - G xi|^2`` with ``|xi_j| >= tau`` on it.

    Starts from the ridge solution on all columns (or ``start``); each step is a gradient step of
    unit length (the columns have unit norm), a hard threshold at ``tau`` and least squares on the
    surviving columns; it stops when a support repeats.

    Parameters
    ----------
    A : ndarray, shape (m, m)
        Gram matrix ``G^T G`` of a library with unit-norm columns.
    c : ndarray, shape (m,)
        ``G^T y``.
    tau : float
        Hard threshold on the (normalised) coefficients.
    max_iter : int
        Iteration cap.
    start : ndarray, optional
        Initial coefficients.

    Returns
    -------
    ndarray of bool, shape (m,)
        The support.
    """
    m = len(c)
    xi = _solve(A, c, np.ones(m, bool), 1e-5) if start is None else start
    seen = set()
    support = np.zeros(m, bool)
    for _ in range(max_iter):
        v = xi + c - A @ xi
        support = np.abs(v) >= tau
        key = support.tobytes()
        if key in seen:
            break
        seen.add(key)
        xi = np.zeros(m)
        if support.any():
            xi[support] = _solve(A, c, support)
    return support


def stridge(A: np.ndarray, c: np.ndarray, tau: float, ridge: float = 1e-5, max_iter: int = 20) -> np.ndarray:
    """Sequentially thresholded ridge regression (PDE-FIND) from the normal equations; returns the support."""
    m = len(c)
    support = np.ones(m, bool)
    for _ in range(max_iter):
        if not support.any():
            break
        keep = np.abs(_solve(A, c, support, ridge)) >= tau
        if keep.all():
            break
        idx = np.flatnonzero(support)
        support = np.zeros(m, bool)
        support[idx[keep]] = True
    return support


def check_regression(G, y, names, solver: str = "iht"):
    """``(G, y, names)`` as float arrays and a list, after checking shapes, finiteness and the solver name."""
    G = np.asarray(G, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    names = list(names)
    if G.ndim != 2 or G.shape[0] != y.shape[0] or G.shape[1] != len(names):
        raise InputError(f"library of shape {G.shape} does not match {y.shape[0]} samples and {len(names)} names")
    if solver not in SOLVERS:
        raise InputError(f"unknown solver '{solver}'; use one of {', '.join(SOLVERS)}")
    if not (np.isfinite(G).all() and np.isfinite(y).all()):
        raise InputError("the library or the left-hand side contains NaN/inf: check the fields")
    return G, y, names


def normalise(G: np.ndarray, y: np.ndarray):
    """``(G / |G_j|, y / |y|, |G_j|, |y|)``: unit-norm columns and target (zero columns left as they are)."""
    col = np.linalg.norm(G, axis=0)
    col[col == 0] = 1.0
    ynorm = float(np.linalg.norm(y)) or 1.0
    return G / col, y / ynorm, col, ynorm


def stability_paths(Gn: np.ndarray, yn: np.ndarray, penalties, *, solver: str = "iht", n_subsamples: int = 40,
                    rng=None) -> np.ndarray:
    """Selection probabilities ``(M, m)``: fraction of random half-subsamples whose support contains each term.

    ``Gn``, ``yn`` are normalised (:func:`normalise`); on each subsample the columns and target are
    renormalised (through the Gram matrix) and the solver runs at every penalty.
    """
    rng = np.random.default_rng(rng)
    solve = iht_debiased if solver == "iht" else stridge
    n, m = Gn.shape
    counts = np.zeros((len(penalties), m))
    half = n // 2
    for _ in progress_iter(range(n_subsamples), desc="stability selection"):
        rows = rng.choice(n, half, replace=False)
        Gs, ys = Gn[rows], yn[rows]
        cn = np.sqrt(np.maximum(np.einsum("ij,ij->j", Gs, Gs), 1e-300))
        s = np.linalg.norm(ys) or 1.0
        As = (Gs.T @ Gs) / np.outer(cn, cn)
        cs = (Gs.T @ ys) / cn / s
        for k, tau in enumerate(penalties):
            counts[k] += solve(As, cs, tau)
    return counts / n_subsamples


@dataclass
class StabilityResult:
    """Outcome of :func:`stability_selection`.

    Attributes
    ----------
    names : list of str
        Candidate terms (columns).
    penalties : ndarray, shape (M,)
        Thresholds on normalised coefficients, largest first.
    probabilities : ndarray, shape (M, m)
        Selection probability of each term at each penalty (the stability paths).
    max_probability : ndarray, shape (m,)
        Largest probability per term.
    selected : list of str
        Terms with ``max_probability >= pi_th``.
    coefficients : dict of str -> float
        Debiased coefficients of the selected terms (units of ``y`` per unit of the column).
    intervals : dict of str -> (float, float)
        Bootstrap percentile intervals (``level``) of the coefficients.
    residual : float
        Relative residual ``|y - G xi| / |y|`` of the debiased fit.
    pi_th : float
    """

    names: list
    penalties: np.ndarray
    probabilities: np.ndarray
    max_probability: np.ndarray
    selected: list
    coefficients: dict
    intervals: dict
    residual: float
    pi_th: float

    def path_data(self) -> dict:
        """JSON-ready stability paths: ``{"penalties": [...], "probabilities": {term: [...]}}``."""
        return {"penalties": self.penalties.tolist(),
                "probabilities": {n: self.probabilities[:, j].tolist() for j, n in enumerate(self.names)},
                "pi_th": self.pi_th}


def stability_selection(G: np.ndarray, y: np.ndarray, names, *, solver: str = "iht", n_subsamples: int = 40,
                        n_penalties: int = 20, decades: float = 1.0, pi_th: float = 0.8, n_bootstrap: int = 200,
                        level: float = 0.95, seed=0) -> StabilityResult:
    """Stability selection of the columns of ``G`` explaining ``y`` (see the module docstring).

    Parameters
    ----------
    G : ndarray, shape (n, m)
        Candidate terms evaluated at ``n`` samples (physical units).
    y : ndarray, shape (n,)
        Left-hand side at the same samples.
    names : sequence of str
        Term names of the ``m`` columns.
    solver : {"iht", "stridge"}
        Sparse solver per subsample and penalty.
    n_subsamples : int
        ``B``, random half-subsamples of the rows.
    n_penalties : int
        ``M``, penalties on a log grid.
    decades : float
        Span of the penalty grid below the largest penalty.
    pi_th : float
        Probability threshold for keeping a term.
    n_bootstrap : int
        Bootstrap resamples for the confidence intervals.
    level : float
        Confidence level of the intervals.
    seed : int or numpy.random.Generator
        Randomness of subsamples and bootstrap.

    Returns
    -------
    StabilityResult
    """
    G, y, names = check_regression(G, y, names, solver)
    n, m = G.shape
    if n < 2 * m:
        raise InputError(f"{n} samples for {m} candidate terms: need at least {2 * m}; use more data "
                         "or a smaller library")
    rng = np.random.default_rng(seed)
    Gn, yn, col, ynorm = normalise(G, y)
    A, c = Gn.T @ Gn, Gn.T @ yn
    tau_max = float(np.max(np.abs(_solve(A, c, np.ones(m, bool), 1e-5))))
    penalties = tau_max * np.logspace(0, -decades, n_penalties)
    probs = stability_paths(Gn, yn, penalties, solver=solver, n_subsamples=n_subsamples, rng=rng)
    pmax = probs.max(axis=0)
    keep = pmax >= pi_th
    coefs, intervals, residual = {}, {}, 1.0
    if keep.any():
        idx = np.flatnonzero(keep)
        xi = _solve(A, c, keep)
        residual = float(np.linalg.norm(yn - Gn[:, idx] @ xi))
        scale = ynorm / col[idx]
        boot = np.empty((n_bootstrap, len(idx)))
        Gk = Gn[:, idx]
        for b in range(n_bootstrap):
            w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
            Ab = (Gk * w[:, None]).T @ Gk
            boot[b] = np.linalg.lstsq(Ab, (Gk * w[:, None]).T @ yn, rcond=None)[0]
        lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)], axis=0)
        for j, i in enumerate(idx):
            coefs[names[i]] = float(xi[j] * scale[j])
            intervals[names[i]] = (float(lo[j] * scale[j]), float(hi[j] * scale[j]))
    return StabilityResult(names, penalties, probs, pmax, [names[i] for i in np.flatnonzero(keep)], coefs,
                           intervals, residual, pi_th)
