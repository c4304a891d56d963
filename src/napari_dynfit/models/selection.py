"""Model selection along the full penalty path, judged on held-out space-time blocks.

For one equation ``y ~ G xi`` (rows: test-function centres or grid points, each with a space-time
block label; columns: candidate terms):

1. **Path to the noise floor.** Columns and target are normalised; the penalties (thresholds on
   normalised coefficients) run on a log grid from ``tau_max``, the largest coefficient of the
   full-library fit, down to the **noise floor**: the relative residual of that fit, i.e. the part
   of ``|y|`` no combination of candidate terms explains. A term whose normalised coefficient is
   below the floor contributes less to ``y`` than the noise, so it cannot be told apart; every term
   above it can enter, however small its share (a diffusion acting only at a moving front).
2. **Candidates.** Stability selection (:func:`~napari_dynfit.models.stability.stability_paths`)
   gives the selection probability of every term at every penalty; the support of stable terms
   (probability ``>= pi_th``) at each penalty is a candidate model, from sparse (large penalty) to
   rich (the floor).
3. **Held-out residual.** Every candidate is refitted with one block of space-time left out at a
   time (blocks: contiguous chunks of time x space; ``block_labels``) and scored on it. **Term
   entry** is judged by that error (:func:`stepwise`, started from the empty model and from every
   candidate of the path): a term enters when it lowers the held-out error *materially* and its
   block-jackknife interval excludes zero; a term leaves when the error without it is not
   materially higher, or when its interval includes zero; a term must carry at least 2 % of the
   time derivative somewhere (its local share, see :func:`local_share`). Materially (:func:`_worse`) means by more
   than ``gain`` relative to the error *or* by more than ``signal`` times the explained part: the
   first matters for smooth fields with measurement noise, where a term acting only at a front
   lowers an already small residual a lot, the second for fields with intrinsic noise, where the
   residual is mostly noise. The chosen model is the sparsest end point of these searches whose
   error is not materially above the best one's. This finds a term that the stability paths rank
   below a collinear decoy (``u^3`` next to ``u^2`` on ``0 <= u <= 1``) or that enters only below
   the floor at high noise.
4. **Intervals.** The refits without each block give a block jackknife of the coefficients; their
   Student-t intervals do not assume independent rows (overlapping test functions are correlated,
   which makes a row bootstrap too narrow).

Why our own: the selection procedure and its diagnostics are the product; scikit-learn's
cross-validated estimators neither follow stability paths nor score candidate supports by blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .debias import corrected_solve
from .stability import check_regression, normalise, stability_paths


def block_labels(shape, blocks) -> np.ndarray:
    """Block index of every point of a grid of shape ``shape`` cut into ``blocks`` contiguous chunks per axis.

    Parameters
    ----------
    shape : tuple of int
        Grid shape ``(t, *space)`` (e.g. the weak-form centres).
    blocks : tuple of int
        Chunks per axis (clipped to the axis length).

    Returns
    -------
    ndarray of int, shape ``shape``
    """
    labels = np.zeros(shape, dtype=int)
    mult = 1
    for ax, (n, k) in enumerate(zip(shape, blocks)):
        k = max(1, min(int(k), n))
        chunk = np.minimum((np.arange(n) * k) // n, k - 1)
        sh = [1] * len(shape)
        sh[ax] = n
        labels = labels + mult * chunk.reshape(sh)
        mult *= k
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(shape)


@dataclass
class Candidate:
    """One model on the penalty path.

    Attributes
    ----------
    terms : list of str
        Its support.
    penalty : float
        The largest penalty (normalised units) at which it is the stable support.
    cv_error : float
        Held-out squared error relative to ``|y|^2`` (mean over blocks); ``sqrt`` of it is a relative residual.
    cv_folds : ndarray, shape (K,)
        Per-block held-out squared errors (relative to the mean ``|y_b|^2``).
    coefficients : dict of str -> float
        Least-squares coefficients on all rows (physical units).
    fold_coefficients : ndarray, shape (K, len(terms))
        Coefficients refitted without each block (physical units).
    source : str
        ``"path"`` (a stable support of the stability paths), ``"stepwise"`` (found by adding or
        dropping terms by held-out error, see :func:`stepwise`) or ``"alternative"`` (a look-alike
        that won on half-size test functions, see :func:`look_alikes`).
    """

    terms: list
    penalty: float
    cv_error: float
    cv_folds: np.ndarray
    coefficients: dict
    fold_coefficients: np.ndarray
    source: str = "path"

    def to_json(self) -> dict:
        return {"terms": list(self.terms), "penalty": float(self.penalty) if np.isfinite(self.penalty) else None,
                "cv_error": float(self.cv_error), "source": self.source, "coefficients": dict(self.coefficients)}


@dataclass
class PathSelection:
    """Outcome of :func:`select_on_path` for one equation.

    ``names`` (the columns), ``penalties`` (from ``tau_max`` down to the noise floor) and
    ``probabilities`` (shape ``(M, m)``) are the stability paths, as in
    :class:`~napari_dynfit.models.stability.StabilityResult`.

    Attributes
    ----------
    noise_floor : float
        Relative residual of the full-library fit (the smallest penalty).
    candidates : list of Candidate
        Distinct stable supports along the path, sparse first.
    chosen : int
        Index of the selected candidate (-1: none, every support empty).
    reason : str
        Why the chosen candidate won (one line).
    n_blocks : int
        Space-time blocks used for the held-out errors.
    steps : list of (str, str, float)
        Stepwise refinement after the path choice: ``("add"|"drop", term, held-out error)``.
    alternatives : list of dict
        Look-alikes of the chosen support (:func:`look_alikes`: one term swapped, held-out error not
        materially worse) re-scored on half-size test functions: ``terms``, ``cv_error`` (default
        test functions), ``cv_half`` (half-size; None when not re-scored), ``chosen``.
    """

    names: list
    penalties: np.ndarray
    probabilities: np.ndarray
    noise_floor: float
    candidates: list = field(default_factory=list)
    chosen: int = -1
    reason: str = ""
    n_blocks: int = 0
    steps: list = field(default_factory=list)
    alternatives: list = field(default_factory=list)

    @property
    def selected(self) -> Candidate | None:
        return self.candidates[self.chosen] if self.chosen >= 0 else None

    def max_probability(self) -> np.ndarray:
        return self.probabilities.max(axis=0)


def jackknife_var(folds) -> np.ndarray:
    """Block-jackknife variance of coefficients from their leave-one-block-out refits ``folds (K, m)`` (or ``(K,)``):
    ``(K - 1) / K * sum_k (f_k - mean f)^2``."""
    folds = np.asarray(folds)
    K = len(folds)
    return (K - 1) / K * np.sum((folds - folds.mean(axis=0)) ** 2, axis=0)


class _BlockGram:
    """Per-block Gram matrices of the normalised library: held-out fits without touching the rows again."""

    def __init__(self, Gn, yn, labels, noise=None):
        self.Gn = Gn
        self.blocks = np.unique(labels)
        order = np.argsort(labels, kind="stable")          # rows of a block contiguous: views, not copies
        Go, yo = Gn[order], yn[order]
        cut = np.searchsorted(labels[order], self.blocks, side="right")
        parts = [slice(a, b) for a, b in zip(np.r_[0, cut[:-1]], cut)]
        self.A = np.stack([Go[r].T @ Go[r] for r in parts])
        self.c = np.stack([Go[r].T @ yo[r] for r in parts])
        self.s = np.array([float(yo[r] @ yo[r]) for r in parts])
        self.At, self.ct = self.A.sum(axis=0), self.c.sum(axis=0)
        # noise part of the normal equations per block (models/debias.py), subtracted in the fits only
        self.dA = self.dc = None
        if noise is not None:
            mom = [noise.moments(labels == b) for b in self.blocks]
            self.dA, self.dc = np.stack([a for a, _ in mom]), np.stack([c for _, c in mom])
            self.dAt, self.dct = self.dA.sum(axis=0), self.dc.sum(axis=0)
        self.cache = {}
        from scipy.stats import t as student

        self.t_crit = float(student.ppf(0.975, max(1, len(self.blocks) - 1)))

    def fit(self, idx, leave_out=None):
        """Coefficients of support ``idx`` fitted on every block but ``leave_out`` (noise-corrected if given)."""
        if not len(idx):
            return np.zeros(0)
        A, c = self.At, self.ct
        dA = dc = None
        if leave_out is not None:
            A, c = A - self.A[leave_out], c - self.c[leave_out]
        if self.dA is not None:
            dA, dc = self.dAt, self.dct
            if leave_out is not None:
                dA, dc = dA - self.dA[leave_out], dc - self.dc[leave_out]
            dA, dc = dA[np.ix_(idx, idx)], dc[idx]
        return corrected_solve(A[np.ix_(idx, idx)], c[idx], dA, dc)

    def t_value(self, idx, j) -> float:
        """``|coefficient| / block-jackknife standard error`` of term ``j`` in support ``idx``."""
        idx = list(idx)
        coefs = self.held_out(idx)[1][:, idx.index(j)]
        se = np.sqrt(jackknife_var(coefs))
        full = self.fit(np.asarray(idx, dtype=int))[idx.index(j)]
        return float(abs(full) / max(se, 1e-300))

    def peak_share(self, idx, j) -> float:
        """99th percentile of term ``j``'s local share of ``|y|`` (the model's) in support ``idx``
        (:func:`local_share`, rows where the model's ``|y|`` is at least 10 % of its 99th percentile)."""
        idx = list(idx)
        xi = self.fit(np.asarray(idx, dtype=int))
        contrib = self.Gn[:, idx] * xi
        tot = np.abs(contrib.sum(axis=1))
        busy = tot >= 0.1 * max(np.percentile(tot, 99), 1e-300)
        share = np.abs(contrib[busy, idx.index(j)]) / np.maximum(tot[busy], 1e-300)
        return float(np.percentile(np.minimum(share, 1.0), 99)) if busy.any() else 0.0

    def excludes_zero(self, idx, j) -> bool:
        """Whether the 95 % block-jackknife interval of term ``j``'s coefficient in support ``idx`` excludes zero."""
        return self.t_value(idx, j) > self.t_crit

    def held_out(self, idx):
        """Per-block held-out squared errors (relative to the mean ``|y_b|^2``) and refitted coefficients."""
        key = tuple(int(i) for i in idx)
        if key not in self.cache:
            idx = np.asarray(key, dtype=int)
            K = len(self.blocks)
            errs = np.empty(K)
            coefs = np.empty((K, len(idx)))
            mean_sst = self.s.sum() / K
            for b in range(K):
                xi = self.fit(idx, leave_out=b)
                sse = self.s[b] - 2 * xi @ self.c[b][idx] + xi @ self.A[b][np.ix_(idx, idx)] @ xi
                errs[b] = max(float(sse), 0.0) / mean_sst
                coefs[b] = xi
            self.cache[key] = (errs, coefs)
        return self.cache[key]


def _worse(cv_a: float, cv_b: float, gain: float, signal: float) -> bool:
    """Whether held-out error ``cv_a`` is materially above ``cv_b``.

    Materially: by more than ``gain`` relative to ``cv_b`` (data whose time derivative is mostly
    explained, where a localized term lowers a small residual a lot) **or** by more than
    ``signal`` (a fraction of the explained part ``1 - cv``: data with intrinsic noise, where the
    residual is mostly noise and a real term removes a small but clear part of it).
    """
    d = cv_a - cv_b
    return d > gain * cv_b or d > signal


def choose(candidates, gain: float = 0.5, signal: float = 0.0):
    """Index of the sparsest candidate whose held-out error is not materially above the best one's."""
    if not candidates:
        return -1, "no term is stable at any penalty"
    cv = np.array([c.cv_error for c in candidates])
    best = int(np.argmin(cv))
    sizes = np.array([len(c.terms) for c in candidates])
    ok = np.flatnonzero([not _worse(v, cv[best], gain, signal) for v in cv])
    i = int(ok[np.lexsort((cv[ok], sizes[ok]))[0]])
    if i == best:
        return i, "lowest held-out error on the path"
    return i, f"held-out error {cv[i]:.3g} not materially above the best on the path ({cv[best]:.3g})"


def stepwise(bg: _BlockGram, start, m: int, gain: float, signal: float = 0.0, min_share: float = 0.02,
             max_steps: int = 20):
    """Forward-backward refinement of a support by held-out error (see the module docstring).

    A term enters when it lowers the held-out squared error materially (:func:`_worse`) and its
    coefficient's block-jackknife interval excludes zero (the gain is consistent over space-time,
    not one block's artefact) and it carries at least ``min_share`` of ``|y|`` somewhere
    (:meth:`_BlockGram.peak_share`: clean data let terms of no dynamical weight fit discretization
    errors); a term leaves when the error without it is not materially above the best error seen,
    or when it is the least significant term and its interval includes zero, or when it never
    carries ``min_share``.
    Returns the final support and the list of steps ``(action, term index, cv)``.
    """
    cur = sorted(int(i) for i in start)
    cv_cur = bg.held_out(cur)[0].mean() if cur else 1.0
    cv_best = cv_cur
    steps = []
    for _ in range(max_steps):
        changed = False
        rest = [j for j in range(m) if j not in cur]
        trial = sorted((bg.held_out(sorted(cur + [j]))[0].mean(), j) for j in rest)
        for cv_new, j in trial:
            if not _worse(cv_cur, cv_new, gain, signal):
                break
            if bg.excludes_zero(sorted(cur + [j]), j) and bg.peak_share(sorted(cur + [j]), j) >= min_share:
                cur = sorted(cur + [j])
                cv_cur, cv_best = cv_new, min(cv_best, cv_new)
                steps.append(("add", j, float(cv_new)))
                changed = True
                break
        if len(cur) > 1 and not changed:
            trial = [(bg.held_out([i for i in cur if i != j])[0].mean(), j) for j in cur]
            cv_new, j = min(trial)
            weakest = min(cur, key=lambda i: bg.t_value(cur, i))
            smallest = min(cur, key=lambda i: bg.peak_share(cur, i))
            if not _worse(cv_new, cv_best, gain, signal):
                action = ("drop", j, float(cv_new))
            elif bg.t_value(cur, weakest) < bg.t_crit:
                action = ("drop", weakest, float(bg.held_out([i for i in cur if i != weakest])[0].mean()))
            elif bg.peak_share(cur, smallest) < min_share:
                action = ("drop", smallest, float(bg.held_out([i for i in cur if i != smallest])[0].mean()))
            else:
                action = None
            if action is not None:
                cur = [i for i in cur if i != action[1]]
                cv_cur = action[2]
                steps.append(action)
                changed = True
        if not changed:
            break
    return cur, steps


def look_alikes(bg: _BlockGram, support, m: int, gain: float, signal: float = 0.0, max_alternatives: int = 6):
    """Supports that differ from ``support`` by one swapped term and predict held-out data as well.

    A swap ``j -> k`` is a look-alike when its held-out error is not materially above the
    support's (:func:`_worse`) and the new term's block-jackknife interval excludes zero: the data at
    this test-function scale cannot tell the two apart (e.g. a front-only diffusion ``u_xx`` and a
    reaction ``u^3`` on a travelling front, where ``u_t`` is a function of ``u``). At most
    ``max_alternatives``, lowest held-out error first. Returns a list of sorted index lists.
    """
    cur = sorted(int(i) for i in support)
    if not cur:
        return []
    cv_cur = bg.held_out(cur)[0].mean()
    out = []
    for j in cur:
        for k in range(m):
            if k in cur:
                continue
            trial = sorted([i for i in cur if i != j] + [k])
            cv = bg.held_out(trial)[0].mean()
            if not _worse(cv, cv_cur, gain, signal) and bg.excludes_zero(trial, k):
                out.append((cv, trial))
    out.sort()
    return [t for _, t in out[:max_alternatives]]


def select_on_path(G: np.ndarray, y: np.ndarray, names, labels: np.ndarray, *, solver: str = "iht",
                   n_subsamples: int = 40, per_decade: int = 8, max_decades: float = 4.0, pi_th: float = 0.8,
                   gain: float = 0.5, signal: float = 0.1, decades: float | None = None, noise=None,
                   rescore=None, path_rows=None, seed=0) -> PathSelection:
    """Stability paths down to the noise floor, candidates along them, held-out block selection.

    Parameters
    ----------
    G : ndarray, shape (n, m)
        Candidate terms at ``n`` rows (physical units).
    y : ndarray, shape (n,)
        Left-hand side.
    names : sequence of str
        Term names of the columns.
    labels : ndarray of int, shape (n,)
        Space-time block of every row (:func:`block_labels`); at least two blocks.
    solver : {"iht", "stridge"}
        Sparse solver inside stability selection.
    n_subsamples : int
        Half-subsamples per penalty.
    per_decade : int
        Penalties per decade of the path.
    max_decades : float
        The path never spans more than this below ``tau_max`` (clean data have a floor near zero).
    pi_th : float
        Selection probability for a term to be stable at a penalty.
    gain : float
        Relative drop in held-out squared error a richer model must achieve to win (:func:`_worse`).
    signal : float
        ... and the drop as a fraction of the explained part ``1 - cv`` of the best candidate.
    decades : float, optional
        Fixed span of the path below ``tau_max`` instead of the noise floor (the old behaviour).
    noise : NoiseRows, optional
        Simulated measurement noise of the rows (:mod:`napari_dynfit.models.debias`): the rows are
        corrected for its mean shift and every fit (coefficients, held-out refits, intervals) for
        its part of the normal equations.
    rescore : callable, optional
        ``rescore(list of term-name lists) -> list of held-out errors`` on half-size test functions
        (or None where it cannot): the chosen support and its look-alikes (:func:`look_alikes`) are
        re-scored with it and the lowest wins (``PathSelection.alternatives``).
    path_rows : ndarray of int, optional
        Rows the stability paths draw their half-subsamples from (default all): a random subset keeps
        the paths cheap on very many rows. The held-out selection, the coefficients and the intervals
        always use every row (a subset of the rows would add its own scatter to the coefficients).
    seed : int or numpy.random.Generator

    Returns
    -------
    PathSelection
    """
    G, y, names = check_regression(G, y, names, solver)
    labels = np.asarray(labels).ravel()
    n, m = G.shape
    if len(np.unique(labels)) < 2:
        raise InputError("held-out selection needs at least two space-time blocks")
    rng = np.random.default_rng(seed)
    if noise is not None:
        G, y = G - noise.bias_G, y - noise.bias_y
    Gn, yn, col, ynorm = normalise(G, y)
    xi_full = np.linalg.lstsq(Gn, yn, rcond=None)[0]
    floor = float(np.linalg.norm(yn - Gn @ xi_full))
    tau_max = float(np.max(np.abs(xi_full))) if m else 0.0
    span = decades if decades is not None else min(max_decades, max(0.5, np.log10(tau_max / max(floor, 1e-12))))
    n_pen = max(4, int(np.ceil(per_decade * span)) + 1)
    penalties = tau_max * np.logspace(0, -span, n_pen) if tau_max > 0 else np.zeros(1)
    on = slice(None) if path_rows is None else np.asarray(path_rows, dtype=int)
    probs = stability_paths(Gn[on], yn[on], penalties, solver=solver, n_subsamples=n_subsamples, rng=rng)
    out = PathSelection(names, penalties, probs, floor, n_blocks=len(np.unique(labels)))
    bg = _BlockGram(Gn, yn, labels, None if noise is None else noise.normalised(col, ynorm))

    def candidate(S, tau, source):
        errs, fold = bg.held_out(S)
        xi = bg.fit(np.asarray(S, dtype=int))
        scale = ynorm / col[S]
        return Candidate([names[j] for j in S], float(tau), float(errs.mean()), errs,
                         {names[j]: float(x * s) for j, x, s in zip(S, xi, scale)}, fold * scale, source)

    seen = {}
    for k, tau in enumerate(penalties):
        S = [int(j) for j in np.flatnonzero(probs[k] >= pi_th)]
        if S and tuple(S) not in seen:
            seen[tuple(S)] = len(out.candidates)
            out.candidates.append(candidate(S, tau, "path"))
    # term entry by held-out error: stepwise from the empty model and from every path candidate
    best_cv = min([c.cv_error for c in out.candidates], default=1.0)
    sig = signal * max(0.0, 1.0 - best_cv)
    finals = {}
    for start in [[]] + [[names.index(t) for t in c.terms] for c in list(out.candidates)]:
        final, steps = stepwise(bg, start, m, gain, sig)
        if final and tuple(final) not in finals:
            finals[tuple(final)] = steps
            if tuple(final) not in seen:
                seen[tuple(final)] = len(out.candidates)
                out.candidates.append(candidate(final, float("nan"), "stepwise"))
    if not finals:
        out.reason = "no term lowers the held-out error"
        return out
    ends = [out.candidates[seen[k]] for k in finals]
    i, why = choose(ends, gain, sig)
    key = tuple(names.index(t) for t in ends[i].terms)
    out.chosen = seen[key]
    out.steps = [(a, names[j], cv) for a, j, cv in finals[key]]
    src = "a stable support of the path" if ends[i].source == "path" else "found by adding/dropping terms"
    out.reason = (f"{src}; " + why.replace(" on the path", "")).replace("lowest held-out error",
                                                                       "lowest held-out error of the stepwise ends")
    alts = look_alikes(bg, key, m, gain, sig) if rescore is not None else []
    if alts:
        sets = [list(key)] + alts
        scores = rescore([[names[j] for j in S] for S in sets])
        if scores is not None:
            best = int(np.argmin(scores))
            for i, (S, sc) in enumerate(zip(sets, scores)):
                out.alternatives.append({"terms": [names[j] for j in S], "cv_error": float(bg.held_out(S)[0].mean()),
                                         "cv_half": float(sc), "chosen": i == best})
            if best > 0:
                S = sets[best]
                if tuple(S) not in seen:
                    seen[tuple(S)] = len(out.candidates)
                    out.candidates.append(candidate(S, float("nan"), "alternative"))
                old = " + ".join(names[j] for j in key)
                out.chosen = seen[tuple(S)]
                out.steps = out.steps + [("swap", " + ".join(names[j] for j in S), float(scores[best]))]
                out.reason = (f"look-alike of {old} (as good on the default test functions) with the lower "
                              f"held-out error on half-size test functions ({scores[best]:.3g} vs {scores[0]:.3g})")
    return out


def jackknife_intervals(candidate: Candidate, level: float = 0.95) -> dict:
    """Block-jackknife Student-t intervals of a candidate's coefficients: ``{term: (lo, hi)}``."""
    from scipy.stats import t as student

    K = len(candidate.fold_coefficients)
    if K < 2:
        return {n: (float("-inf"), float("inf")) for n in candidate.terms}
    fc = candidate.fold_coefficients
    se = np.sqrt(jackknife_var(fc))
    q = float(student.ppf(0.5 + level / 2, K - 1))
    return {n: (float(candidate.coefficients[n] - q * s), float(candidate.coefficients[n] + q * s))
            for n, s in zip(candidate.terms, se)}


def local_share(G: np.ndarray, coefficients: dict, names, *, active: float = 0.1) -> tuple[dict, dict]:
    """Where each term matters: its local share of ``|u_t|`` (the model's), per row.

    The share of term ``j`` at a row is ``min(1, |c_j G_j| / |sum_i c_i G_i|)``: about 1 where the
    term carries the time derivative (or cancels another term there), small where it does not.

    Parameters
    ----------
    G : ndarray, shape (n, m) or (n, d, m)
        Library at the rows (physical units); with a middle axis (vector components) magnitudes are
        Euclidean norms over it.
    coefficients : dict of str -> float
        The model.
    names : sequence of str
        Column names of ``G``.
    active : float
        Rows where ``|u_t|`` is at least ``active`` times its 99th percentile are *busy* (the
        dynamics happen there); a term is active at a busy row where its share is at least ``active``.

    Returns
    -------
    shares : dict of str -> ndarray, shape (n,)
        Share per row (0 at rows that are not busy).
    summary : dict of str -> dict
        ``overall`` (mean share over the busy rows), ``active_fraction`` (fraction of the busy rows
        where the term is active), ``busy_fraction`` (fraction of all rows that are busy),
        ``peak`` (99th percentile of the share on the busy rows).
    """
    terms = list(coefficients)
    if not terms:
        return {}, {}
    idx = [list(names).index(t) for t in terms]
    G3 = G[:, None, :] if G.ndim == 2 else G
    contrib = G3[..., idx] * np.array([coefficients[t] for t in terms])          # (n, d, k)
    mag = np.linalg.norm(contrib, axis=1)                                           # (n, k)
    ut = np.linalg.norm(contrib.sum(axis=2), axis=1)                               # (n,)
    busy = ut >= active * max(np.percentile(ut, 99), 1e-300)
    shares = np.where(busy[:, None], np.minimum(1.0, mag / np.maximum(ut, 1e-300)[:, None]), 0.0)
    summ = {}
    for j, t in enumerate(terms):
        s = shares[busy, j]
        summ[t] = {"overall": float(s.mean()) if len(s) else 0.0,
                   "active_fraction": float(np.mean(s >= active)) if len(s) else 0.0,
                   "busy_fraction": float(busy.mean()),
                   "peak": float(np.percentile(s, 99)) if len(s) else 0.0}
    return {t: shares[:, j] for j, t in enumerate(terms)}, summ
