"""Locally dominant balances of a PDE model (Callaham et al., Nat. Commun. 12, 1016 (2021)).

Given fields and a model ``lhs = sum_k c_k term_k`` (model JSON, learned or written by hand), every
term is evaluated at every grid point and time and moved to one side, ``f_0 = lhs`` and
``f_k = -c_k term_k``, so that ``sum_k f_k = 0`` wherever the model holds. Each grid point is then
a point of *equation space* (one coordinate per term; ``d`` per term for vector equations).
Optional *groups* sum several model terms into one physical term (e.g. ``(a + b rho) p``, the
density-dependent alignment, from the library terms ``p`` and ``rho*p``).

1. **Clustering**: a Gaussian mixture in equation space (scikit-learn), fitted on a random
   subsample (``max_samples`` points) after dividing all coordinates by one common scale (the
   relative sizes of the terms are the signal, so the terms are not standardised one by one); the
   number of components is chosen by BIC unless given. Every grid point gets the mixture posteriors.
2. **Active terms per cluster**: the leading sparse principal component (scikit-learn
   ``SparsePCA``, over a path of penalties) proposes nested candidate sets of active terms; the
   sparsity is chosen automatically as the smallest candidate set (of at least two terms) whose
   *dropped-term residual* ``sqrt(sum_{k not in A} rms(f_k)^2) / max_k rms(f_k)`` within the
   cluster (the norm of the inactive terms, as in Callaham et al.'s code) is at most ``tol`` (the
   full model when none is). A cluster whose largest term is below ``quiet`` times the largest
   term of the whole domain has no active terms ("no dynamics").
3. **Merging**: clusters with the same active set form one balance; a point's posterior for a
   balance is the sum of its clusters' posteriors, its balance the most probable one and its
   uncertainty ``1 -`` that probability.

Outputs: the region map (balance index per grid point, same axes as the fields), the table of
balances (active terms, share of the domain, dropped-term residual) and equation-space samples for
scatter plots. Why our own: the method (clustering + sparse active sets + merging) is the product;
the numerical parts are scikit-learn's ``GaussianMixture`` and ``SparsePCA`` (which no longer takes
``normalize_components``: its components are always normalised).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_path
from .._progress import progress_iter, report
from ..errors import InputError
from ..results import Result
from .model_json import read_model, validate_model
from .terms import evaluate_terms


@dataclass
class EquationSpace:
    """Every term of one model equation at every grid point.

    Attributes
    ----------
    equation : str
        Left-hand side of the equation (``"u_t"``).
    terms : list of str
        Names of the coordinates: ``[lhs, term_1, ...]`` with the model's names, a group's name in
        place of its first member (see ``groups`` in :func:`equation_space`).
    members : list of list of str
        The model terms summed into each coordinate (``[["u_t"], ["u*u_x"], ...]``; several for a group).
    signs : dict of str -> float
        Factor applied to every raw model term (``1`` for the lhs, ``-c_k`` for the others).
    values : ndarray, shape (n_points, n_terms, n_components)
        Signed terms ``f_k``; they sum to ~0 over ``k`` where the model holds. ``n_components`` is 1
        for scalar equations and the spatial dimension for vector equations.
    grid_shape : tuple of int
        ``(t, *space)`` of the fields; ``n_points = prod(grid_shape)`` in C order.
    """

    equation: str
    terms: list[str]
    members: list[list[str]]
    signs: dict[str, float]
    values: np.ndarray
    grid_shape: tuple[int, ...]

    @property
    def features(self) -> np.ndarray:
        """``(n_points, n_terms * n_components)`` coordinates of the points."""
        return self.values.reshape(len(self.values), -1)


def _model(model) -> dict:
    if isinstance(model, (str, Path)):
        return read_model(model)
    return validate_model(model)


def parse_groups(specs) -> dict[str, list[str]]:
    """Term groups from ``NAME=TERM,TERM,...`` strings (the CLI's ``--group``).

    Examples
    --------
    >>> parse_groups(["alignment=p,rho*p"])
    {'alignment': ['p', 'rho*p']}
    """
    groups = {}
    for spec in specs or ():
        name, sep, members = str(spec).partition("=")
        name = name.strip()
        terms = [t.strip() for t in members.split(",") if t.strip()]
        if not sep or not name or not terms:
            raise InputError(f"group '{spec}' is not NAME=TERM,TERM,...: write e.g. alignment=p,rho*p")
        if name in groups:
            raise InputError(f"group '{name}' is given twice: give each group once")
        groups[name] = terms
    return groups


def _check_groups(groups, names: list[str]) -> dict[str, list[str]]:
    """Validate ``groups`` against the equation's terms ``names`` (lhs first); canonical member names."""
    from .terms import canonical

    out, used = {}, {}
    for gname, members in (groups or {}).items():
        gname = str(gname).strip()
        if isinstance(members, str) or not members:
            raise InputError(f"group '{gname}' must list model terms, e.g. {{'{gname}': ['p', 'rho*p']}}")
        canon = []
        for m in members:
            c = canonical(m)
            if c not in names:
                raise InputError(f"group '{gname}': '{m}' is not a term of equation '{names[0]}'; "
                                 f"its terms are {names}")
            if c in used or c in canon:
                raise InputError(f"term '{c}' is in group '{used.get(c, gname)}' already: a term can be in one group")
            used[c] = gname
            canon.append(c)
        out[gname] = canon
    for gname, members in out.items():
        if gname in names and gname not in members:
            raise InputError(f"group name '{gname}' is also a term of the equation: choose another name")
    return out


def equation_space(bundle, model, equation: str | None = None, *, groups: dict | None = None,
                   method: str = "finite", window: int | None = None,
                   polyorder: int | None = None) -> EquationSpace:
    """Evaluate every term of one equation of ``model`` on the grid of ``bundle``.

    Parameters
    ----------
    bundle : FieldBundle
        The fields, ``(t, *space)``.
    model : dict or path
        Model JSON (``{"equations": {"u_t": {"u*u_x": -1.0, "u_xx": 0.1}}}``) or its file.
    equation : str, optional
        Which equation (its left-hand side, e.g. ``"p_t"``); default the model's first.
    groups : dict of str -> list of str, optional
        Physical terms made of several model terms, e.g. the density-dependent alignment
        ``{"alignment": ["p", "rho*p"]}`` (``(a + b rho) p``) or the material derivative
        ``{"Dp/Dt": ["p_t", "p.grad(p)"]}``: the signed members are summed into one coordinate
        named after the group (placed where its first member was). Terms in no group stay as they are.
    method, window, polyorder
        Derivatives, as in :func:`napari_dynfit.models.terms.evaluate_terms`.

    Returns
    -------
    EquationSpace
    """
    model = _model(model)
    eqs = model["equations"]
    lhs = next(iter(eqs)) if equation is None else equation
    if lhs not in eqs:
        raise InputError(f"the model has no equation '{lhs}'; its equations are {list(eqs)}")
    if not eqs[lhs]:
        raise InputError(f"equation '{lhs}' has no right-hand-side terms: nothing to balance")
    names = [lhs] + list(eqs[lhs])
    groups = _check_groups(groups, names)
    signs = dict(zip(names, [1.0] + [-c for c in eqs[lhs].values()]))
    vals = evaluate_terms(bundle, names, method=method, reference=model.get("reference"),
                          window=window, polyorder=polyorder)
    n = int(np.prod(bundle.shape))
    raw = {}
    for name in names:
        v = np.asarray(vals[name], dtype=float)
        if v.shape[: 1 + bundle.ndim] != bundle.shape:
            raise InputError(f"term '{name}' evaluated to shape {v.shape}, not the grid {bundle.shape}")
        raw[name] = signs[name] * v.reshape(n, -1)
    widths = {c.shape[1] for c in raw.values()}
    if len(widths) != 1:
        raise InputError(f"equation '{lhs}' mixes scalar and vector terms: {names}")
    group_of = {m: g for g, members in groups.items() for m in members}
    terms, members = [], []
    for name in names:
        g = group_of.get(name)
        if g is None:
            terms.append(name)
            members.append([name])
        elif g not in terms:
            terms.append(g)
            members.append(groups[g])
    if len(terms) < 2:
        raise InputError(f"the groups leave equation '{lhs}' with one term: nothing to balance; group fewer terms")
    cols = [sum(raw[m] for m in ms) for ms in members]
    return EquationSpace(lhs, terms, members, signs, np.stack(cols, axis=1), tuple(bundle.shape))


@dataclass
class Balance:
    """One dominant balance.

    Attributes
    ----------
    terms : list of str
        Active terms (empty: no dynamics).
    fraction : float
        Share of the grid points in this balance.
    residual : float
        Dropped-term residual (:func:`dropped_residual`) over its points; ``>= 1`` for "no dynamics",
        where every term is dropped.
    strength : float
        Its largest term (RMS over its points) relative to the largest term over the whole domain:
        how strong the dynamics are there (small for "no dynamics").
    clusters : list of int
        Mixture components merged into it.
    """

    terms: list[str]
    fraction: float
    residual: float
    strength: float = float("nan")
    clusters: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"terms": list(self.terms), "fraction": float(self.fraction), "residual": float(self.residual),
                "strength": float(self.strength), "clusters": [int(c) for c in self.clusters]}


@dataclass
class BalanceResult(Result):
    """Dominant balances of one equation over a field grid.

    Attributes
    ----------
    equation : str
    terms : list of str
        All terms of the equation (lhs first), as named in the model.
    balances : list of Balance
        Distinct balances (clusters with equal active sets merged), fewest active terms first.
    regions : ndarray of int, shape grid_shape
        Balance index per grid point (same axes as the fields, ``(t, *space)``).
    uncertainty : ndarray of float, shape grid_shape
        ``1 -`` the posterior probability of the assigned balance.
    clusters : ndarray of int, shape grid_shape
        Gaussian-mixture component per grid point.
    n_clusters : int
        Mixture components used.
    bic : dict of int -> float
        BIC per number of components tried (empty when ``n_clusters`` was given).
    cluster_terms : list of list of str
        Active terms of every mixture component (before merging).
    samples : ndarray, shape (n_samples, n_terms, n_components)
        Equation-space points for scatter plots (a random subsample).
    sample_regions : ndarray of int, shape (n_samples,)
        Their balance indices.
    groups : dict of str -> list of str
        Term groups used (group name -> its model terms); empty without groups.
    """

    equation: str
    terms: list[str]
    balances: list[Balance]
    regions: np.ndarray
    uncertainty: np.ndarray
    clusters: np.ndarray
    n_clusters: int
    bic: dict
    cluster_terms: list
    samples: np.ndarray
    sample_regions: np.ndarray
    groups: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON form written to ``balances.json``."""
        return {"equation": self.equation, "terms": list(self.terms),
                "balances": [b.to_dict() for b in self.balances], "n_clusters": int(self.n_clusters),
                "bic": {str(k): float(v) for k, v in self.bic.items()},
                "cluster_terms": [list(t) for t in self.cluster_terms],
                "groups": {k: list(v) for k, v in self.groups.items()}}

    def table(self):
        """The balances as a pandas DataFrame (``balance, terms, fraction, residual, strength``)."""
        import pandas as pd

        return pd.DataFrame({"balance": range(len(self.balances)),
                             "terms": [" + ".join(b.terms) if b.terms else "(no dynamics)" for b in self.balances],
                             "fraction": [b.fraction for b in self.balances],
                             "residual": [b.residual for b in self.balances],
                             "strength": [b.strength for b in self.balances]})

    def summary(self) -> str:
        """Text for people: one line per balance (active terms, share of the domain, residual)."""
        lines = [f"dominant balances of {self.equation} ({self.n_clusters} clusters)"]
        for i, b in enumerate(self.balances):
            lines.append(f"  {i}: {' + '.join(b.terms) if b.terms else '(no dynamics)'}: {b.fraction:.0%} of the "
                         f"domain, dropped-term residual {b.residual:.3g}")
        return "\n".join(lines)

    def plot(self, ax=None, *, frame: int = -1):
        """The balance of every grid point (last frame; 1D fields: space-time) as an image; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        reg = np.asarray(self.regions)
        img = reg if reg.ndim == 2 else reg[frame]
        img = img if img.ndim == 2 else img[img.shape[0] // 2]
        im = ax.imshow(img, origin="lower", cmap="tab10", vmin=-0.5, vmax=9.5, aspect="auto", interpolation="nearest")
        ax.set_title(self.equation + ": " + "; ".join(f"{i} = {' + '.join(b.terms) or 'none'}"
                                                     for i, b in enumerate(self.balances)), fontsize=8)
        ax.figure.colorbar(im, ax=ax, ticks=range(len(self.balances)))
        return ax

    def balance_of(self, terms) -> int | None:
        """Index of the balance with exactly this set of active terms, ``None`` if absent."""
        want = set(terms)
        return next((i for i, b in enumerate(self.balances) if set(b.terms) == want), None)


def _rms(x: np.ndarray) -> np.ndarray:
    """RMS over points of ``(n, ..., n_comp)`` values, Euclidean over the last axis."""
    return np.sqrt(np.mean(np.sum(x * x, axis=-1), axis=0))


def dropped_residual(values: np.ndarray, active: np.ndarray) -> float:
    """Size of the dropped terms: ``sqrt(sum_{k not in A} rms(f_k)^2) / max_k rms(f_k)`` over the points.

    The norm of the inactive terms themselves, as in Callaham et al. (not of their sum: terms
    that are large but cancel each other, such as alignment and its cubic saturation inside an
    ordered band, form a balance of their own and must not be dropped).

    Parameters
    ----------
    values : ndarray, shape (n, n_terms, n_components)
        Signed terms of the points.
    active : ndarray of bool, shape (n_terms,)
        The candidate active set.
    """
    rms = _rms(values)
    scale = float(rms.max())
    if scale == 0:
        return 0.0
    return float(np.sqrt(np.sum(rms[~active] ** 2))) / scale


def _sparse_loadings(X: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """Leading sparse principal component of ``X`` (rows = points) at penalty ``alpha``."""
    from sklearn.decomposition import SparsePCA

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SparsePCA(n_components=1, alpha=float(alpha), ridge_alpha=1e-6, max_iter=100,
                         random_state=seed).fit(X).components_[0]


def _active_terms(values: np.ndarray, global_scale: float, tol: float, quiet: float, n_alphas: int,
                  seed: int) -> tuple[np.ndarray, float]:
    """Active set of one cluster: walk the sparse-PCA path from the sparsest end and keep the first
    candidate whose dropped-term residual is at most ``tol`` (the full set if none is)."""
    n, k, c = values.shape
    none = np.zeros(k, bool)
    if n == 0:
        return none, 0.0
    if _rms(values).max() < quiet * global_scale:
        return none, dropped_residual(values, none)
    X = values.reshape(n, k * c)
    X = X / (np.linalg.norm(X) or 1.0)
    seen = []
    for alpha in np.logspace(0, -4, n_alphas):
        load = np.abs(_sparse_loadings(X, alpha, seed).reshape(k, c)).max(axis=1)
        act = load > 1e-8 * max(load.max(), 1e-300)
        if act.sum() < 2 or any(np.array_equal(act, a) for a in seen):
            continue
        seen.append(act)
        res = dropped_residual(values, act)
        if res <= tol or act.all():
            return act, res
    return np.ones(k, bool), 0.0


def find_balances(space: EquationSpace, *, n_clusters: int | None = None, max_clusters: int = 8,
                  max_samples: int = 20000, tol: float = 0.15, quiet: float = 0.2, n_alphas: int = 12,
                  n_scatter: int = 5000, seed: int = 0) -> BalanceResult:
    """Cluster equation space and find the active terms of every region.

    Parameters
    ----------
    space : EquationSpace
        From :func:`equation_space`.
    n_clusters : int, optional
        Mixture components; default chosen by BIC among ``1..max_clusters``.
    max_clusters : int
        Largest number of components tried by BIC.
    max_samples : int
        Points used to fit the mixture (a random subsample of the grid); all points get posteriors.
    tol : float
        Largest dropped-term residual (:func:`dropped_residual`) accepted when sparsifying a
        cluster's active set: the default 0.15 drops terms whose combined RMS is below 15 % of
        the cluster's largest term.
    quiet : float
        A cluster whose largest term (RMS over the cluster) is below ``quiet`` times the largest
        term (RMS over the whole domain) has no active terms: the default 0.2 calls "no dynamics"
        what is five times weaker than the typical dynamics.
    n_alphas : int
        Penalties on the sparse-PCA path.
    n_scatter : int
        Equation-space points kept for scatter plots.
    seed : int
        Random seed (subsampling, mixture initialisation, sparse PCA).

    Returns
    -------
    BalanceResult
    """
    from threadpoolctl import threadpool_limits

    # the matrices are tiny (n_terms x n_terms): BLAS/OpenMP threads only add contention
    with threadpool_limits(limits=1):
        return _find_balances(space, n_clusters, max_clusters, max_samples, tol, quiet, n_alphas, n_scatter, seed)


def _find_balances(space, n_clusters, max_clusters, max_samples, tol, quiet, n_alphas, n_scatter, seed):
    from sklearn.mixture import GaussianMixture

    vals = space.values
    n = len(vals)
    if n < 10:
        raise InputError(f"only {n} grid points: dominant balance needs a field grid, not a handful of points")
    if not np.isfinite(vals).all():
        raise InputError("some terms are NaN or infinite on the grid: check the fields and the model")
    rng = np.random.default_rng(seed)
    X = space.features
    scale = float(np.sqrt(np.mean(X * X))) or 1.0
    sub = rng.choice(n, size=min(n, max_samples), replace=False)
    Xs = X[sub] / scale
    bic = {}
    if n_clusters is None:
        if max_clusters < 1:
            raise InputError("max_clusters must be >= 1")
        bic_idx = sub[: min(len(sub), 5000)]
        Xb = X[bic_idx] / scale
        for k in progress_iter(range(1, max_clusters + 1), desc="mixture (BIC)"):
            gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-6, max_iter=300, random_state=seed).fit(Xb)
            bic[k] = float(gm.bic(Xb))
        n_clusters = min(bic, key=bic.get)
    elif n_clusters < 1:
        raise InputError("n_clusters must be >= 1")
    report(0, 1, "mixture (fit)")
    gm = GaussianMixture(n_clusters, covariance_type="full", reg_covar=1e-6, max_iter=300, random_state=seed).fit(Xs)
    post = np.empty((n, n_clusters))
    step = 200000
    for i in range(0, n, step):
        post[i:i + step] = gm.predict_proba(X[i:i + step] / scale)
    labels = post.argmax(axis=1)
    global_scale = float(_rms(vals).max())

    cluster_sets, cluster_res = [], []
    for j in progress_iter(range(n_clusters), desc="active terms"):
        idx = np.flatnonzero(labels == j)
        if len(idx) > 2000:
            idx = rng.choice(idx, 2000, replace=False)
        act, res = _active_terms(vals[idx], global_scale, tol, quiet, n_alphas, seed)
        cluster_sets.append(act)
        cluster_res.append(res)

    # merge clusters with the same active set; order: fewest terms first, then first appearance
    keys = []
    for act in cluster_sets:
        key = tuple(bool(a) for a in act)
        if key not in keys:
            keys.append(key)
    first = list(keys)
    keys.sort(key=lambda kk: (sum(kk), first.index(kk)))
    cl_to_bal = np.array([keys.index(tuple(bool(a) for a in act)) for act in cluster_sets])
    bal_post = np.zeros((n, len(keys)))
    for j, b in enumerate(cl_to_bal):
        bal_post[:, b] += post[:, j]
    regions = bal_post.argmax(axis=1)
    uncertainty = np.clip(1.0 - bal_post[np.arange(n), regions], 0.0, 1.0)

    balances = []
    for b, key in enumerate(keys):
        act = np.array(key)
        members = np.flatnonzero(regions == b)
        if len(members) > 20000:
            members = rng.choice(members, 20000, replace=False)
        res = dropped_residual(vals[members], act) if len(members) else float("nan")
        strength = float(_rms(vals[members]).max()) / global_scale if len(members) and global_scale else float("nan")
        balances.append(Balance([t for t, a in zip(space.terms, act) if a], float(np.mean(regions == b)), res,
                                strength, [int(j) for j in np.flatnonzero(cl_to_bal == b)]))
    scatter_idx = rng.choice(n, size=min(n, n_scatter), replace=False)
    shape = space.grid_shape
    return BalanceResult(space.equation, list(space.terms), balances, regions.reshape(shape),
                         uncertainty.reshape(shape), labels.reshape(shape), int(n_clusters), bic,
                         [[t for t, a in zip(space.terms, act) if a] for act in cluster_sets],
                         vals[scatter_idx], regions[scatter_idx],
                         {t: list(m) for t, m in zip(space.terms, space.members) if m != [t]})


def dominant_balance(bundle, model, equation: str | None = None, *, groups: dict | None = None,
                     method: str = "finite", window: int | None = None, polyorder: int | None = None,
                     n_clusters: int | None = None, max_clusters: int = 8, max_samples: int = 20000,
                     tol: float = 0.15, quiet: float = 0.2, n_alphas: int = 12, n_scatter: int = 5000,
                     seed: int = 0) -> BalanceResult:
    """Dominant balances of one equation of ``model`` on the fields of ``bundle``.

    :func:`equation_space` (``groups`` sums model terms into named physical terms; ``method``, ``window``,
    ``polyorder``: the derivatives) followed by :func:`find_balances` (``n_clusters`` ... ``seed``: see there).

    Examples
    --------
    >>> from napari_dynfit.io import load_fields
    >>> u = load_fields("burgers.mat")                                  # doctest: +SKIP
    >>> res = dominant_balance(u, {"equations": {"u_t": {"u*u_x": -1.0, "u_xx": 0.1}}})  # doctest: +SKIP
    >>> res.table()                                                     # doctest: +SKIP
    """
    space = equation_space(bundle, model, equation, groups=groups, method=method, window=window,
                           polyorder=polyorder)
    return find_balances(space, n_clusters=n_clusters, max_clusters=max_clusters, max_samples=max_samples, tol=tol,
                         quiet=quiet, n_alphas=n_alphas, n_scatter=n_scatter, seed=seed)


def write_balances(result: BalanceResult, out_dir) -> tuple[Path, Path]:
    """Write ``OUT_DIR/balances.json`` and ``OUT_DIR/regions.npy`` (atomically); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, rpath = out / "balances.json", out / "regions.npy"
    with atomic_path(jpath) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    with atomic_path(rpath) as tmp, open(tmp, "wb") as fh:
        np.save(fh, result.regions.astype(np.int32))
    return jpath, rpath


def plot_equation_space(result: BalanceResult, *, fig=None, max_pairs: int = 6):
    """Scatter plots of equation space: every pair of terms, points coloured by balance.

    Vector equations show the component with the largest spread (index in axis order).

    Parameters
    ----------
    result : BalanceResult
    fig : matplotlib Figure, optional
        Drawn into (cleared first); a new figure otherwise.
    max_pairs : int
        At most this many term pairs (the first ones in model order).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import itertools

    import matplotlib.pyplot as plt

    terms = result.terms
    pairs = list(itertools.combinations(range(len(terms)), 2))[:max_pairs]
    if fig is None:
        fig = plt.figure(figsize=(3.2 * max(len(pairs), 1), 3.2))
    fig.clear()
    # vector equations: the component with the largest spread (e.g. along a band's motion)
    comp = int(np.argmax(np.sum(result.samples ** 2, axis=(0, 1))))
    pts = result.samples[..., comp]
    suffix = f" [{comp}]" if result.samples.shape[-1] > 1 else ""
    cmap = plt.get_cmap("tab10")
    for i, (a, b) in enumerate(pairs):
        ax = fig.add_subplot(1, len(pairs), i + 1)
        for k, bal in enumerate(result.balances):
            sel = result.sample_regions == k
            label = " + ".join(bal.terms) if bal.terms else "no dynamics"
            ax.scatter(pts[sel, a], pts[sel, b], s=3, color=cmap(k % 10), label=label, rasterized=True)
        ax.set_xlabel(terms[a] + suffix)
        ax.set_ylabel(terms[b] + suffix)
    if pairs:
        fig.axes[0].legend(fontsize=7, markerscale=3, loc="best")
    if fig.get_layout_engine() is None:  # a figure with its own layout (the napari widget's constrained) keeps it
        fig.tight_layout()
    return fig
