"""Cross-sectional snapshots of stochastic processes with known truth (for probability flow inference).

Convention: ``dX = f(X) dt + sqrt(2 D) dW`` (``D`` the diffusion matrix or scalar). Each snapshot is an
independent sample of the population at one time; no particle is followed from one snapshot to the next.

Two simulators (and the OU drifts of the benchmarks and the demo: :func:`ou_matrix`, :func:`ou2_case`):

* :func:`simulate_ou_snapshots`: the Ornstein-Uhlenbeck process ``dX = -B X dt + sqrt(2 D) dW``, sampled
  exactly (Gaussian transition densities, no time-stepping error). The drift matrix of the convention
  above is ``A = -B``.
* :func:`simulate_bistable_growth`: a branching diffusion in ``dim`` dimensions: a double well along
  ``x0`` (wells at ``x0 = +-1``), relaxation ``-x_i`` along the other axes, noise ``sigma`` (``D = sigma^2/2``)
  and cells dividing at rate ``2.5 (1 + tanh(2 x0))``. The population is thinned uniformly when it grows past
  ``max_population``; the thinning factor is kept in the ``weight`` column so that the sum of weights at a time
  is the population size relative to the initial one.

Both return a table with columns ``time, x0, x1, ...`` (and ``weight`` for the growing population), the input
format of :func:`napari_dynfit.models.flow.io.snapshots_from_table`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import expm, solve_continuous_lyapunov

__all__ = ["simulate_ou_snapshots", "simulate_bistable_growth", "bistable_drift", "bistable_birth_rate", "ou_matrix",
           "ou2_case", "OU_TIMES"]


def _columns(d: int) -> list[str]:
    return [f"x{i}" for i in range(d)]


#: Snapshot times of the OU cases (benchmarks, demo).
OU_TIMES = np.linspace(0.0, 1.0, 5)


def ou_matrix(d: int, seed: int = 0) -> np.ndarray:
    """The relaxation matrix ``B`` of the OU cases: a fixed non-symmetric 2x2, or a random stable ``d x d``."""
    if d == 2:
        return np.array([[1.0, 1.5], [-1.0, 0.5]])
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    S = rng.normal(size=(d, d)) * 2.0
    # relaxation rates 1 ... 5 along random axes plus a strong rotation: the snapshots then carry enough
    # information on all d^2 entries (the statistically efficient Gaussian MLE reaches ~0.04-0.07, see run_ou)
    return Q @ np.diag(np.geomspace(1.0, 5.0, d)) @ Q.T + (S - S.T) / 2


def ou2_case(index: int) -> tuple[np.ndarray, np.ndarray]:
    """A random 2D OU drift ``B`` and initial mean of the held-out 2D cases (not ``ou_matrix(2)``).

    ``B = P [[r, w], [-w, r]] P^-1``: relaxation rate ``r`` in [0.6, 1.5], rotation ``|w|`` in [0.5, 1.5], ``P`` a
    random rotation times an anisotropic stretch (0.7 ... 1.4); the population starts as ``N(m0, 0.5 I)`` with
    ``|m0| = 2.8`` in a random direction (as the benchmark case: away from the fixed point, so that the snapshots
    carry information on the rotation).
    """
    rng = np.random.default_rng(1000 + index)
    r, w = rng.uniform(0.6, 1.5), rng.uniform(0.5, 1.5) * rng.choice([-1, 1])
    stretch, theta, phi = rng.uniform(0.7, 1.4), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    P = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.diag([1.0, stretch])
    B = P @ np.array([[r, w], [-w, r]]) @ np.linalg.inv(P)
    return B, 2.8 * np.array([np.cos(phi), np.sin(phi)])


def simulate_ou_snapshots(B, D, times, n_samples: int = 2000, *, mean0=None, cov0=None, seed: int = 0) -> pd.DataFrame:
    """Exact snapshots of ``dX = -B X dt + sqrt(2 D) dW``.

    Parameters
    ----------
    B : array, shape (d, d)
        Relaxation matrix; all eigenvalues must have positive real part (stable process). ``A = -B`` is the drift
        matrix in the convention ``f(x) = A x``.
    D : float or array, shape (d, d)
        Diffusion matrix (a scalar means ``D * I``), symmetric positive semi-definite.
    times : sequence of float
        Snapshot times (increasing, ``>= 0``); the initial distribution is the one at ``t = 0``.
    n_samples : int
        Independent samples per snapshot.
    mean0, cov0 : array, optional
        Mean ``(d,)`` and covariance ``(d, d)`` of the initial Gaussian (default: mean ``(1, ..., 1)``,
        covariance ``0.1 I``).
    seed : int
        Random seed.

    Returns
    -------
    DataFrame
        Columns ``time, x0, ..., x{d-1}``, ``n_samples`` rows per time.
    """
    B = np.atleast_2d(np.asarray(B, dtype=float))
    d = B.shape[0]
    Dm = np.asarray(D, dtype=float) * np.eye(d) if np.ndim(D) == 0 else np.asarray(D, dtype=float)
    if np.any(np.linalg.eigvals(B).real <= 0):
        raise ValueError("B must have eigenvalues with positive real parts (a stable OU process)")
    m0 = np.ones(d) if mean0 is None else np.asarray(mean0, dtype=float)
    S0 = 0.1 * np.eye(d) if cov0 is None else np.asarray(cov0, dtype=float)
    # stationary covariance: B S + S B^T = 2 D
    s_inf = solve_continuous_lyapunov(B, 2.0 * Dm)
    rng = np.random.default_rng(seed)
    rows = []
    for t in np.asarray(times, dtype=float):
        E = expm(-B * t)
        mean = E @ m0
        cov = E @ S0 @ E.T + s_inf - E @ s_inf @ E.T
        x = rng.multivariate_normal(mean, 0.5 * (cov + cov.T), size=n_samples)
        rows.append(pd.DataFrame(x, columns=_columns(d)).assign(time=t))
    df = pd.concat(rows, ignore_index=True)
    return df[["time", *_columns(d)]]


def bistable_drift(x: np.ndarray) -> np.ndarray:
    """Drift of the bistable system: ``f0 = 4 x0 (1 - x0^2)``, ``f_i = -x_i`` (``i >= 1``); ``x`` is ``(n, d)``."""
    f = -np.asarray(x, dtype=float).copy()
    f[:, 0] = 4.0 * x[:, 0] * (1.0 - x[:, 0] ** 2)
    return f


def bistable_birth_rate(x: np.ndarray) -> np.ndarray:
    """Division rate ``2.5 (1 + tanh(2 x0))`` (per unit time) of the bistable system; ``x`` is ``(n, d)``."""
    return 2.5 * (1.0 + np.tanh(2.0 * np.asarray(x)[:, 0]))


def simulate_bistable_growth(n_samples: int = 2000, *, dim: int = 10, sigma: float = 0.5,
                             times=(0.0, 0.25, 0.5, 0.75, 1.0), growth: bool = True,
                             init_std: tuple[float, float] = (0.2, 0.35), max_population: int = 20000,
                             dt: float = 1e-3, seed: int = 0) -> pd.DataFrame:
    """Snapshots of a growing population choosing between two fates.

    Each cell follows ``dX = f(X) dt + sigma dW`` with ``f`` = :func:`bistable_drift` and divides at rate
    :func:`bistable_birth_rate` (``growth=True``): cells going to the ``x0 > 0`` well multiply, so the population's
    composition shifts towards that well without any cell changing its fate.

    Parameters
    ----------
    n_samples : int
        Cells sampled (without replacement) from the population at each time.
    dim : int
        State dimension ``d >= 1``.
    sigma : float
        Noise amplitude; the diffusion coefficient is ``D = sigma^2 / 2``.
    times : sequence of float
        Snapshot times, starting at 0.
    growth : bool
        ``False`` simulates the same cells without divisions (the single-cell dynamics).
    init_std : (float, float)
        Standard deviation of the initial Gaussian along ``x0`` and along the other axes (means 0).
    max_population : int
        The simulated population is thinned uniformly back to this size when it grows past it.
    dt : float
        Euler-Maruyama step.
    seed : int
        Random seed.

    Returns
    -------
    DataFrame
        Columns ``time, x0, ..., x{d-1}, weight``; at each time the weights sum to the population size
        relative to ``t = 0``.
    """
    rng = np.random.default_rng(seed)
    times = np.asarray(times, dtype=float)
    n0 = max(max_population // 2, n_samples)
    x = rng.normal(size=(n0, dim)) * init_std[1]
    x[:, 0] = rng.normal(size=n0) * init_std[0]
    scale = 1.0  # population size per simulated cell, relative to the initial population
    t = 0.0
    out = []
    for t_snap in times:
        while t < t_snap - 1e-12:
            h = min(dt, t_snap - t)
            x = x + bistable_drift(x) * h + sigma * np.sqrt(h) * rng.normal(size=x.shape)
            if growth:
                divide = rng.random(len(x)) < bistable_birth_rate(x) * h
                x = np.concatenate([x, x[divide]])
                if len(x) > max_population:
                    keep = rng.choice(len(x), size=max_population, replace=False)
                    scale *= len(x) / max_population
                    x = x[keep]
            t += h
        pick = rng.choice(len(x), size=min(n_samples, len(x)), replace=False)
        mass = scale * len(x) / n0
        frame = pd.DataFrame(x[pick], columns=_columns(dim))
        frame.insert(0, "time", t_snap)
        frame["weight"] = mass / len(pick)
        out.append(frame)
    return pd.concat(out, ignore_index=True)
