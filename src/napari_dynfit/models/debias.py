"""Noise correction of the weak-form normal equations (errors in variables).

With measurement noise ``e`` (white, standard deviation ``sigma`` per field) every weak-form
feature is a noisy function of the data: ``G = G0 + B + N`` with a mean shift ``B`` (nonlinear
terms: ``<phi, (u + e)^2> = <phi, u^2> + sigma^2``, ``<phi, (u + e)^3> = <phi, u^3> + 3 sigma^2
<phi, u>``) and a zero-mean part ``N`` that also sits in the left-hand side ``y``. Least squares
then solves ``E[G^T G] = G0^T G0 + sum_rows Cov(N)`` instead of ``G0^T G0``: the noise inflates the
Gram matrix and couples ``y`` to the library through ``Cov(N, N_y)``. Both are large for terms
that are nonlinear in the data or carry derivatives of it (measured: the coefficients of
Allen-Cahn ``u_t = 0.05 u_xx + u - u^3`` shrink by 4-13 % at 5 % noise, Fisher-KPP's ``u_xx`` grows
by up to 11 %).

The correction (SIMEX-style, with antithetic draws, so it needs no term-by-term algebra and covers
every term of the vocabulary):

1. **Noise level** from the data (:func:`estimate_noise`): robust (median absolute deviation)
   standard deviation of the ``k``-th differences along every axis, ``k = 2, 3, 4``, divided by the
   white-noise factor ``sqrt(binom(2k, k))``; the smallest over axes and orders (smooth signal adds
   to the differences, white noise does not depend on the axis). Clean data give ~1e-7 of the field's
   spread and no correction.
2. **Moments by simulation** (:func:`noise_draws`): features of the data plus and minus a simulated
   noise field ``d ~ N(0, sigma^2)``, ``F(u + d)`` and ``F(u - d)``. Their half-difference is the
   noise response of every feature (exact for linear terms, leading order for the others), their
   half-sum minus ``F(u)`` the mean shift ``B`` (exact for quadratic and cubic terms).
3. **Corrected normal equations** (:class:`NoiseRows`): features minus ``B``; ``G^T G`` minus the
   simulated ``sum_rows L_G^T L_G`` and ``G^T y`` minus ``sum_rows L_G^T L_y``, averaged over the draws
   (the rows of any subset: blocks, training frames). :func:`corrected_solve` falls back to the plain
   normal equations of a support whose corrected Gram matrix is not safely positive definite (a
   column that is mostly noise).

Only the fits are corrected: the selection scores candidates by how well they predict held-out
(noisy) data, which needs no correction. Applies to measurement noise on smooth fields (the default
weak form); not to stochastic (particle) fields, whose noise is part of the dynamics (Ito form).

Why our own: the correction has to act on our weak-form lattice and block Gram matrices; the
errors-in-variables estimators of statsmodels/scikit-learn assume linear, homoscedastic errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import numpy as np

from ..errors import InputError

#: Below this noise-to-spread ratio a field counts as clean (no correction).
CLEAN = 1e-4


def estimate_noise(bundle, fields=None) -> dict[str, float]:
    """Standard deviation of white measurement noise per field, estimated from high-frequency content.

    Parameters
    ----------
    bundle : FieldBundle
        Fields on a ``(t, *space)`` grid.
    fields : iterable of str, optional
        Fields to estimate (default: every field). Vector/tensor components are pooled.

    Returns
    -------
    dict of str -> float
        Noise standard deviation in the field's units (0 for fields too short along every axis).
    """
    out = {}
    for name in fields if fields is not None else bundle.fields:
        v = np.asarray(bundle[name], dtype=float)
        grid_axes = 1 + bundle.ndim
        best = np.inf
        for ax in range(grid_axes):
            for k in (2, 3, 4):
                if v.shape[ax] <= k + 2:
                    continue
                d = np.diff(v, n=k, axis=ax).ravel()
                d = d[np.isfinite(d)]
                if not len(d):
                    continue
                mad = 1.4826 * float(np.median(np.abs(d - np.median(d))))
                best = min(best, mad / np.sqrt(comb(2 * k, k)))
        out[name] = float(best) if np.isfinite(best) else 0.0
    return out


def noisy_fields(bundle, sigma: dict[str, float], rel: float = CLEAN) -> dict[str, float]:
    """The entries of ``sigma`` above ``rel`` times the field's spread (the fields worth correcting)."""
    keep = {}
    for name, s in sigma.items():
        spread = float(np.nanstd(np.asarray(bundle[name], dtype=float)))
        if s > rel * max(spread, 1e-300):
            keep[name] = float(s)
    return keep


def noise_draws(bundle, sigma: dict[str, float], features, *, n_draws: int = 16, seed=0):
    """Simulated noise moments of features (step 2 of the module docstring).

    Parameters
    ----------
    bundle : FieldBundle
        The (noisy) data.
    sigma : dict of str -> float
        Noise standard deviation per field to simulate (:func:`estimate_noise`).
    features : callable
        ``features(bundle) -> dict of str -> ndarray`` (e.g. weak-form features of the library).
    n_draws : int
        Antithetic pairs of simulated noise fields.
    seed : int or numpy.random.Generator

    Returns
    -------
    bias : dict of str -> ndarray
        Estimated mean shift of each feature (same shapes as ``features(bundle)``).
    responses : list of dict of str -> ndarray
        Per draw, the noise response ``(F(u + d) - F(u - d)) / 2`` of each feature.
    """
    from ..fields.bundle import FieldBundle

    if n_draws < 1:
        raise InputError("noise correction needs at least one simulated draw")
    rng = np.random.default_rng(seed)
    base = features(bundle)
    bias = {n: np.zeros_like(v, dtype=float) for n, v in base.items()}
    responses = []
    for _ in range(n_draws):
        noise = {n: s * rng.standard_normal(np.shape(bundle[n])) for n, s in sigma.items()}
        pm = []
        for sign in (1.0, -1.0):
            flds = {n: (np.asarray(v, dtype=float) + sign * noise[n]) if n in noise else v
                    for n, v in bundle.fields.items()}
            pm.append(features(FieldBundle(flds, dict(bundle.coords), kinds=dict(bundle.kinds),
                                           periodic=bundle.periodic, attrs=dict(bundle.attrs))))
        responses.append({n: (pm[0][n] - pm[1][n]) / 2 for n in base})
        for n in base:
            bias[n] += ((pm[0][n] + pm[1][n]) / 2 - base[n]) / n_draws
    return bias, responses


@dataclass
class NoiseRows:
    """Simulated noise of one equation's regression rows (aligned with ``y``, ``G``).

    Attributes
    ----------
    bias_y : ndarray, shape (n,)
        Mean shift of the left-hand side per row.
    bias_G : ndarray, shape (n, m)
        Mean shift of the library per row.
    resp_y : ndarray, shape (R, n)
        Noise responses of the left-hand side per draw.
    resp_G : ndarray, shape (R, n, m)
        Noise responses of the library per draw.
    sigma : dict of str -> float
        The simulated noise levels.
    """

    bias_y: np.ndarray
    bias_G: np.ndarray
    resp_y: np.ndarray
    resp_G: np.ndarray
    sigma: dict = field(default_factory=dict)

    def subset(self, rows) -> NoiseRows:
        return NoiseRows(self.bias_y[rows], self.bias_G[rows], self.resp_y[:, rows], self.resp_G[:, rows],
                         self.sigma)

    def normalised(self, col: np.ndarray, ynorm: float) -> NoiseRows:
        """The same in the units of :func:`~napari_dynfit.models.stability.normalise` (columns / ``col``, y / ``ynorm``)."""
        return NoiseRows(self.bias_y / ynorm, self.bias_G / col, self.resp_y / ynorm, self.resp_G / col, self.sigma)

    def moments(self, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """Noise part of the normal equations over ``rows`` (default all): ``(dA (m, m), dc (m,))``,
        to subtract from ``G^T G`` and ``G^T y``."""
        Ly = self.resp_y if rows is None else self.resp_y[:, rows]
        LG = self.resp_G if rows is None else self.resp_G[:, rows]
        R = len(Ly)
        return np.einsum("rni,rnj->ij", LG, LG) / R, np.einsum("rni,rn->i", LG, Ly) / R


def corrected_solve(A: np.ndarray, c: np.ndarray, dA: np.ndarray | None, dc: np.ndarray | None,
                    min_signal: float = 0.05) -> np.ndarray:
    """Solve ``(A - dA) xi = c - dc`` for one support, or the plain ``A xi = c`` when that is unsafe.

    Unsafe: the corrected Gram matrix is not positive definite, or the correction removes more than
    ``1 - min_signal`` of some column's energy (that column is mostly noise and cannot be corrected).
    """
    def plain():
        try:
            return np.linalg.solve(A, c)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(A, c, rcond=None)[0]

    if dA is None or not len(c):
        return plain()
    Ac, cc = A - dA, c - dc
    if np.any(np.diag(Ac) <= min_signal * np.diag(A)):
        return plain()
    try:
        L = np.linalg.cholesky(Ac)
    except np.linalg.LinAlgError:
        return plain()
    return np.linalg.solve(L.T, np.linalg.solve(L, cc))


def corrected_lstsq(G: np.ndarray, y: np.ndarray, noise: NoiseRows | None = None) -> np.ndarray:
    """Least-squares coefficients of ``y ~ G`` (shapes ``(n, m)``, ``(n,)``), corrected for ``noise``
    (:class:`NoiseRows` of the same rows and columns) when given; columns normalised for the solve."""
    G = np.asarray(G, dtype=float)
    y = np.asarray(y, dtype=float)
    if noise is None:
        return np.linalg.lstsq(G, y, rcond=None)[0]
    A = G - noise.bias_G
    b = y - noise.bias_y
    col = np.linalg.norm(A, axis=0)
    col[col == 0] = 1.0
    dA, dc = noise.normalised(col, 1.0).moments()
    An = A / col
    return corrected_solve(An.T @ An, An.T @ b, dA, dc) / col
