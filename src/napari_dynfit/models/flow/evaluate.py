"""Scores of a learned stochastic model against a known one (used by the tests, benchmarks and the demo).

* :func:`drift_matrix_error`: ``|A_hat - A| / |A|`` (Frobenius) of linear drifts.
* :func:`simulate_sde`: Euler-Maruyama paths of ``dX = f(X) dt + sqrt(2 D) dW`` recorded at given times.
* :func:`path_energy_distance`: energy distance between two sets of paths recorded at the same times, each path
  one point in ``R^(T d)`` (positions at all recorded times concatenated), so it compares the laws of whole
  trajectories, not only their marginals.
* :func:`fate_probabilities`: for each starting point, the fraction of ``n_repeats`` independent paths that end
  with ``classify(x) == True`` (e.g. ``x0 > 0``: the right well of a bistable system).
"""

from __future__ import annotations

import numpy as np

from .sinkhorn import energy_distance


def drift_matrix_error(A_hat, A_true) -> float:
    """Relative Frobenius error ``|A_hat - A_true| / |A_true|``."""
    A_hat, A_true = np.asarray(A_hat, float), np.asarray(A_true, float)
    return float(np.linalg.norm(A_hat - A_true) / np.linalg.norm(A_true))


def simulate_sde(drift, diffusion, x0, times, *, n_substeps: int = 20, seed: int = 0) -> np.ndarray:
    """Paths of ``dX = drift(X) dt + sqrt(2 D) dW`` from ``x0`` ``(n, d)``; returns ``(n, len(times), d)``.

    ``drift`` maps ``(n, d)`` arrays to ``(n, d)``; ``diffusion`` is a scalar or a ``(d, d)`` matrix.
    """
    x = np.array(x0, dtype=float, copy=True)
    d = x.shape[1]
    Dm = np.asarray(diffusion, float) * np.eye(d) if np.ndim(diffusion) == 0 else np.asarray(diffusion, float)
    L = np.linalg.cholesky(2.0 * Dm + 1e-12 * np.eye(d))
    rng = np.random.default_rng(seed)
    out = [x.copy()]
    for t0, t1 in zip(times[:-1], times[1:]):
        h = (t1 - t0) / n_substeps
        for _ in range(n_substeps):
            x = x + drift(x) * h + np.sqrt(h) * rng.normal(size=x.shape) @ L.T
        out.append(x.copy())
    return np.stack(out, axis=1)


def path_energy_distance(paths_a: np.ndarray, paths_b: np.ndarray) -> float:
    """Energy distance between two path sets ``(n, T, d)`` and ``(m, T, d)`` (paths flattened to ``T d``)."""
    a = np.asarray(paths_a, float)
    b = np.asarray(paths_b, float)
    return energy_distance(a.reshape(len(a), -1), b.reshape(len(b), -1))


def fate_probabilities(drift, diffusion, x0, t_end: float, classify, *, n_repeats: int = 50,
                       n_steps: int = 100, seed: int = 0) -> np.ndarray:
    """Probability that a path started at each row of ``x0`` ``(n, d)`` ends (at ``t_end``) in ``classify``'s set.

    Returns
    -------
    ndarray, shape (n,)
    """
    x0 = np.asarray(x0, float)
    rep = np.repeat(x0, n_repeats, axis=0)
    end = simulate_sde(drift, diffusion, rep, [0.0, t_end], n_substeps=n_steps, seed=seed)[:, -1]
    return np.asarray(classify(end), float).reshape(len(x0), n_repeats).mean(axis=1)

