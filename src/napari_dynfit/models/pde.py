"""Sparse PDE discovery on a :class:`FieldBundle`: library features + stability selection -> model JSON.

>>> from napari_dynfit.models.pde import discover_pde
>>> result = discover_pde(bundle)                     # u_t from a PDE-FIND library, weak form
>>> result.model["equations"]                         # {"u_t": {"u*u_x": -1.0, "u_xx": 0.1}}

Features come from the weak form (:mod:`napari_dynfit.fields.weak`, the default and the
noise-robust choice) or from pointwise derivatives (``"finite"``/``"spectral"``, PDE-FIND style,
at a random subset of interior grid points). Each equation is selected independently with
:func:`napari_dynfit.models.stability.stability_selection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .library import polynomial_library, vector_library
from .model_json import FORMAT, format_model
from .stability import StabilityResult, stability_selection
from .terms import canonical, evaluate_terms, parse_term, term_kind

DERIVATIVES = ("weak", "finite", "spectral")


@dataclass
class PDEDiscovery:
    """Result of :func:`discover_pde`.

    Attributes
    ----------
    model : dict
        Model JSON (``dynfit-model/1``) with equations, selection probabilities, intervals, library,
        method, diagnostics and stability paths.
    results : dict of str -> StabilityResult
        Per left-hand side.
    """

    model: dict
    results: dict = field(default_factory=dict)

    @property
    def equations(self) -> dict:
        return self.model["equations"]

    def __str__(self) -> str:
        return format_model(self.model)


def default_equations(bundle) -> dict[str, list[str]]:
    """Left-hand sides and libraries chosen from the bundle's fields.

    A bundle with a scalar ``rho`` and a vector ``p`` gets the isotropic (rho, p) libraries of
    :func:`~napari_dynfit.models.library.vector_library` for ``rho_t`` and ``p_t``; otherwise every
    scalar field ``u`` gets ``u_t`` with a PDE-FIND library (powers <= 2, derivatives <= 3).
    """
    kinds = bundle.kinds
    if kinds.get("rho") == "scalar" and kinds.get("p") == "vector":
        return {"rho_t": vector_library(equation="rho", dim=bundle.ndim),
                "p_t": vector_library(equation="p", dim=bundle.ndim)}
    scalars = [n for n, k in kinds.items() if k == "scalar"]
    if not scalars:
        raise InputError(f"no scalar fields in the bundle ({sorted(kinds)}); name the equations and "
                         "library explicitly")
    lib = polynomial_library(scalars, axes=bundle.space_axes)
    return {f"{s}_t": lib for s in scalars}


def _pointwise_features(bundle, names, method, window, polyorder, reference, max_samples, rng):
    vals = evaluate_terms(bundle, names, method=method, window=window, polyorder=polyorder, reference=reference)
    w = max(5, window or 5)
    slices = [slice(w, -w)]
    for periodic in bundle.periodic:
        slices.append(slice(None) if periodic else slice(w, -w))
    out = {n: v[tuple(slices)] for n, v in vals.items()}
    n_points = next(iter(out.values())).shape[: 1 + bundle.ndim]
    total = int(np.prod(n_points))
    if total == 0:
        raise InputError("fields are too small for pointwise derivatives: use derivative='weak' or more data")
    pick = rng.choice(total, min(total, max_samples), replace=False) if total > max_samples else slice(None)
    return {n: v.reshape((total,) + v.shape[1 + bundle.ndim:])[pick] for n, v in out.items()}


def discover_pde(bundle, equations=None, *, derivative: str = "weak", solver: str = "iht", pi_th: float = 0.8,
                 n_subsamples: int = 40, n_penalties: int = 20, decades: float = 1.0, n_bootstrap: int = 200,
                 half_width=None, stride=None, window: int | None = None, polyorder: int | None = None,
                 reference: dict | None = None, max_samples: int = 20000, stochastic: bool = False,
                 seed=0) -> PDEDiscovery:
    """Learn a sparse PDE model from fields.

    Parameters
    ----------
    bundle : FieldBundle
        Observed fields on a ``(t, *space)`` grid (physical coordinates).
    equations : dict of str -> list of str, optional
        Left-hand side (``"u_t"``, ``"p_t"``...) -> candidate terms. Default :func:`default_equations`.
        A list of left-hand sides uses the default library for each.
    derivative : {"weak", "finite", "spectral"}
        Feature construction: weak-form integrals (noise-robust, default) or pointwise derivatives.
    solver : {"iht", "stridge"}
        Sparse solver inside stability selection.
    pi_th : float
        Selection-probability threshold.
    n_subsamples, n_penalties, decades, n_bootstrap
        Stability selection (``B``, ``M``, penalty span in decades, bootstrap resamples).
    half_width, stride : int or tuple, optional
        Weak form: test-function half-width and centre spacing in grid points (``(t, *space)``).
    window, polyorder : int, optional
        Finite differences: polynomial window (smoothing) and degree.
    reference : dict, optional
        Reference values of ``dev(...)`` arguments; default the bundle means.
    stochastic : bool
        Fields with intrinsic noise (coarse-grained particles): the Ito weak form, i.e. spatial
        test functions only, time derivatives as forward differences and the library at the
        earlier time (sets the time half-width to 0). A symmetric time window would bias the
        coefficients of such data towards zero.
    max_samples : int
        Largest number of regression rows (random subset of grid points or test-function centres
        times components).
    seed : int
        Randomness of the point sample, subsamples and bootstrap.

    Returns
    -------
    PDEDiscovery
    """
    from ..fields.weak import weak_features

    if derivative not in DERIVATIVES:
        raise InputError(f"unknown derivative method '{derivative}'; use one of {', '.join(DERIVATIVES)}")
    if equations is None:
        equations = default_equations(bundle)
    elif not isinstance(equations, dict):
        defaults = default_equations(bundle)
        equations = {canonical(lhs): defaults.get(canonical(lhs)) for lhs in equations}
        missing = [k for k, v in equations.items() if v is None]
        if missing:
            raise InputError(f"no default library for {missing}: pass equations={{lhs: [terms]}}")
    equations = {canonical(lhs): [canonical(t) for t in lib] for lhs, lib in equations.items()}
    for lhs, lib in equations.items():
        lk = term_kind(lhs, bundle.kinds)
        for t in lib:
            if term_kind(t, bundle.kinds) != lk:
                raise InputError(f"term '{t}' is not a {lk} like '{lhs}': remove it from that library")
    all_names = list(dict.fromkeys([n for lhs, lib in equations.items() for n in [lhs, *lib]]))
    uses_dev = [str(n.arg) for n in _walk_dev(all_names)]
    ref = {name: float(np.mean(evaluate_terms(bundle, [name])[name])) for name in uses_dev}
    ref.update(reference or {})
    rng = np.random.default_rng(seed)
    if stochastic:
        if derivative != "weak":
            raise InputError("stochastic=True needs derivative='weak'")
        hw = half_width if half_width is not None else [max(4, n // 8) for n in bundle.shape]
        hw = [int(hw)] * len(bundle.shape) if np.isscalar(hw) else list(hw)
        half_width = (0, *hw[1:])
    if derivative == "weak":
        feats = weak_features(bundle, all_names, method="decoupled" if window is None else "finite",
                              window=window, polyorder=polyorder,
                              reference=ref, half_width=half_width, stride=stride)
    else:
        feats = _pointwise_features(bundle, all_names, derivative, window, polyorder, ref, max_samples, rng)
    results: dict[str, StabilityResult] = {}
    model = {"format": FORMAT, "equations": {}, "selection_probability": {}, "confidence_intervals": {},
             "library": {}, "fields": sorted(bundle.fields), "axes": ["t", *bundle.space_axes],
             "reference": ref, "periodic": list(bundle.periodic),
             "method": {"derivative": derivative, "solver": solver, "pi_th": pi_th, "n_subsamples": n_subsamples,
                        "n_penalties": n_penalties, "decades": decades, "seed": seed,
                        "half_width": half_width, "stride": stride, "window": window, "polyorder": polyorder,
                        "stochastic": stochastic},
             "diagnostics": {}, "stability_path": {}}
    for lhs, lib in equations.items():
        y = feats[lhs].reshape(-1)
        G = np.stack([feats[n].reshape(-1) for n in lib], axis=1)
        if len(y) > max_samples:
            rows = np.sort(rng.choice(len(y), max_samples, replace=False))
            G, y = G[rows], y[rows]
        res = stability_selection(G, y, lib, solver=solver, n_subsamples=n_subsamples, n_penalties=n_penalties,
                                  decades=decades, pi_th=pi_th, n_bootstrap=n_bootstrap, seed=rng)
        results[lhs] = res
        model["equations"][lhs] = res.coefficients
        model["selection_probability"][lhs] = dict(zip(lib, map(float, res.max_probability)))
        model["confidence_intervals"][lhs] = {k: list(v) for k, v in res.intervals.items()}
        model["library"][lhs] = lib
        model["diagnostics"][lhs] = {"relative_residual": res.residual, "n_samples": int(len(y))}
        model["stability_path"][lhs] = res.path_data()
    return PDEDiscovery(model, results)


def _walk_dev(names):
    from .terms import Op

    seen = {}

    def walk(node):
        if isinstance(node, Op) and node.op == "dev":
            seen[str(node)] = node
        for c in node.children():
            walk(c)

    for n in names:
        walk(parse_term(n))
    return list(seen.values())
