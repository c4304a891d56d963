"""Sparse PDE discovery on a :class:`FieldBundle`: library features + stability selection -> model JSON.

>>> from napari_dynfit.models.pde import discover_pde
>>> result = discover_pde(bundle)                     # u_t from a PDE-FIND library, weak form
>>> result.model["equations"]                         # {"u_t": {"u*u_x": -1.0, "u_xx": 0.1}}

Features come from the weak form (:mod:`napari_dynfit.fields.weak`, the default and the
noise-robust choice) or from pointwise derivatives (``"finite"``/``"spectral"``, PDE-FIND style,
at a random subset of interior grid points). Each equation is selected with
:func:`napari_dynfit.models.selection.select_on_path` (stability paths down to the noise floor,
held-out space-time blocks), then the model is checked by a forecast of the held-out last frames
and judged identifiable or not (:class:`PDEDiscovery`). ``decades=1.0`` gives the previous
selection (:func:`napari_dynfit.models.stability.stability_selection` on a fixed grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..results import Result, to_jsonable
from .debias import NoiseRows, corrected_lstsq, estimate_noise, noise_draws, noisy_fields
from .library import default_library
from .model_json import FORMAT, format_model
from .stability import stability_selection
from .terms import canonical, evaluate_terms, max_derivative_order, parse_term, term_kind

DERIVATIVES = ("weak", "finite", "spectral")


@dataclass
class PDEDiscovery(Result):
    """Result of :func:`discover_pde`.

    Attributes
    ----------
    model : dict
        Model JSON (``dynfit-model/1``) with equations, selection probabilities, intervals, library,
        method, diagnostics, stability paths and (default selection) ``identifiability``,
        ``where`` and ``selection``.
    results : dict of str -> PathSelection or StabilityResult
        Per left-hand side.
    identifiable : bool
        False when the data cannot pin the model (``reasons`` say why, ``hints`` what would help).
    reasons : list of str
        One line per failed check (held-out residual, intervals crossing zero, conditioning,
        forecast, too little data).
    hints : list of str
        What would help (more particles, a longer movie, less noise...).
    where : dict of str -> dict of str -> dict
        Per equation and term: ``overall``, ``active_fraction``, ``busy_fraction``, ``peak``
        (see :func:`~napari_dynfit.models.selection.local_share`).
    local_share : dict of str -> dict of str -> ndarray
        Per equation and term, the local share on the grid of test-function centres (or sample
        points), shape ``(t, *space)`` of that grid.
    forecast : dict
        The forecast check: held-out window, errors of the selected and richer candidates, switches.
    noise : dict
        The measurement-noise correction (:mod:`napari_dynfit.models.debias`): ``applied``,
        ``sigma`` (estimated noise std per field), ``relative`` (per field, / its std), ``draws``, ``why``.
    """

    model: dict
    results: dict = field(default_factory=dict)
    identifiable: bool = True
    reasons: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    where: dict = field(default_factory=dict)
    local_share: dict = field(default_factory=dict)
    forecast: dict = field(default_factory=dict)
    noise: dict = field(default_factory=dict)

    @property
    def equations(self) -> dict:
        return self.model["equations"]

    def summary(self) -> str:
        """Text for people: the equations (or "not identifiable from these data" with reasons and
        hints), where each term acts, the forecast check."""
        lines = []
        if self.identifiable:
            lines.append(format_model(self.model))
        else:
            lines.append("not identifiable from these data:")
            lines += [f"  - {r}" for r in self.reasons]
            if self.hints:
                lines.append("what would help: " + "; ".join(self.hints))
        ident = self.model.get("identifiability", {}).get("equations", {})
        for lhs, terms in self.where.items():
            info = ident.get(lhs, {})
            if "condition_number" in info:
                lines.append(f"{lhs}: held-out relative residual {info['held_out_relative_residual']:.3g}, condition "
                             f"number {info['condition_number']:.3g}")
            ci = self.model.get("confidence_intervals", {}).get(lhs, {})
            for t, w in (terms if self.identifiable else {}).items():      # no equation when not identifiable
                c = self.model["equations"][lhs][t]
                lo, hi = ci.get(t, (float("nan"), float("nan")))
                lines.append(f"  {t}: {c:.4g} [{lo:.4g}, {hi:.4g}]; share of |{lhs}| >= 10 % in "
                             f"{w['active_fraction']:.0%} of the active space-time (active: {w['busy_fraction']:.0%} "
                             f"of the data), mean {w['overall']:.0%}, up to {w['peak']:.0%}")
        if self.noise.get("applied"):
            lines.append("noise correction: " + ", ".join(f"sigma({f}) = {v:.3g} ({self.noise['relative'][f]:.1%} of "
                                                            f"its std)" for f, v in self.noise["sigma"].items()))
        fc = self.forecast
        if fc.get("error") is not None:
            lines.append(f"forecast of the held-out last {fc['frames']} frames: relative error {fc['error']:.3g}")
        for sw in fc.get("switched", []):
            lines.append(f"forecast check: {sw}")
        for a in self.model.get("diagnostics", {}).get("frame_interval", {}).get("added", []):
            moved = ", ".join(f"{k} {a['before'][k]:.3g} -> {a['after'][k]:.3g}" for k in a["before"])
            lines.append(f"frame-interval check: added {a['term']} to {a['lhs']} ({a['coefficient']:.3g}, "
                         f"{a['z']:.1f} standard errors; without it {moved}, beyond the intervals)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        """The model JSON and the verdict (identifiable, reasons, hints, where, forecast, noise) as plain Python."""
        return to_jsonable({"model": self.model, "identifiable": self.identifiable, "reasons": self.reasons,
                            "hints": self.hints, "where": self.where, "forecast": self.forecast,
                            "noise": self.noise})

    def simulate(self, observed, *, start: int = 0, stop: int | None = None, substeps: int = 8):
        """Integrate the discovered model forward from frame ``start`` of ``observed`` (a FieldBundle on the grid
        to simulate on) to ``stop`` (:func:`~napari_dynfit.models.integrate_model`); returns a FieldBundle."""
        from .integrate import integrate_model

        return integrate_model(self.model, observed, start=start, stop=stop, substeps=substeps)

    def plot(self, ax=None):
        """The selected coefficients of every equation with their confidence intervals; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3))
        labels, vals, lo, hi = [], [], [], []
        for lhs, terms in self.equations.items():
            ci = self.model.get("confidence_intervals", {}).get(lhs, {})
            for t, c in terms.items():
                labels.append(f"{lhs}: {t}")
                vals.append(float(c))
                a, b = ci.get(t, (c, c))
                lo.append(float(c) - float(a))
                hi.append(float(b) - float(c))
        y = np.arange(len(vals))
        ax.barh(y, vals, xerr=[lo, hi] if vals else None, color="tab:blue")
        ax.set_yticks(y, labels)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("coefficient (physical units)")
        ax.set_title("identified" if self.identifiable else "not identifiable from these data")
        return ax


def default_equations(bundle) -> dict[str, list[str]]:
    """Left-hand sides and libraries chosen from the bundle's fields (:func:`~.library.default_library`)."""
    return default_library(bundle)


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
    pick = np.sort(rng.choice(total, min(total, max_samples), replace=False)) if total > max_samples \
        else np.arange(total)
    return {n: v.reshape((total,) + v.shape[1 + bundle.ndim:])[pick] for n, v in out.items()}, n_points, pick


def _rows(feats, lhs, lib, grid_shape, labels_grid, pick):
    """Regression rows of one equation: y (n,), G (n, m), block labels (n,), time index (n,), components d."""
    y = feats[lhs]
    d = y.shape[-1] if y.ndim > (1 if pick is not None else len(grid_shape)) else 1
    labels = labels_grid.reshape(-1) if pick is None else labels_grid.reshape(-1)[pick]
    tgrid = np.broadcast_to(np.arange(grid_shape[0]).reshape((-1,) + (1,) * (len(grid_shape) - 1)), grid_shape)
    times = tgrid.reshape(-1) if pick is None else tgrid.reshape(-1)[pick]
    G = np.stack([feats[n].reshape(len(labels), d) for n in lib], axis=-1)      # (n_centres, d, m)
    return y.reshape(len(labels), d), G, labels, times, d


def _fit_rows(G, y, terms, lib, rows, noise=None):
    """Least squares of ``terms`` on ``rows``; with ``noise`` (:class:`~.debias.NoiseRows` of those rows) corrected."""
    idx = [lib.index(t) for t in terms]
    if not idx:
        return {}
    if noise is not None:
        noise = NoiseRows(noise.bias_y, noise.bias_G[:, idx], noise.resp_y, noise.resp_G[..., idx])
    xi = corrected_lstsq(G[rows][:, idx], y[rows], noise)
    return dict(zip(terms, map(float, xi)))


def _noise_rows(bias, responses, lhs, lib, grid_shape, labels_grid, pick, sigma):
    """:class:`~.debias.NoiseRows` of one equation, rows flattened as ``_rows`` gives them (``(n * d,)``)."""
    by, bG, _, _, d = _rows(bias, lhs, lib, grid_shape, labels_grid, pick)
    ry, rG = [], []
    for resp in responses:
        y, G, _, _, _ = _rows(resp, lhs, lib, grid_shape, labels_grid, pick)
        ry.append(y.reshape(-1))
        rG.append(G.reshape(-1, len(lib)))
    return NoiseRows(by.reshape(-1), bG.reshape(-1, len(lib)), np.stack(ry), np.stack(rG), sigma)


def _flat_rows(rows, d):
    """Indices of the flattened ``(n * d)`` rows of the regression rows ``rows``."""
    return (np.asarray(rows)[:, None] * d + np.arange(d)).ravel()


def _forecast_window(nt: int, fraction: float = 0.25, max_frames: int = 40) -> int | None:
    frames = int(min(max_frames, max(4, round(fraction * nt))))
    return None if nt < 2 * frames else nt - frames


def _forecast(model_eqs, bundle, ref, start):
    from .integrate import forecast_error

    try:
        fe = forecast_error({"equations": model_eqs, "reference": ref}, bundle, start=start, max_substeps=256)
    except InputError as exc:
        return float("inf"), str(exc)
    err = max(float(np.mean(e[1:])) for e in fe["relative_l2"].values())
    return (err if np.isfinite(err) else float("inf")), None


def _noise_fraction(values: np.ndarray, start: int, vector: bool = False) -> float:
    """Forecast error that noise alone gives: robust noise std / pattern std over frames ``start:``.

    The noise std comes from the median absolute second difference along the last grid axis
    (``std(d2) = sqrt(6) sigma`` for white noise; the median ignores fronts and shocks).
    """
    v = np.asarray(values[start:], dtype=float)
    d2 = np.diff(v, n=2, axis=-2 if vector else -1)
    sigma = 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / np.sqrt(6)
    spread = float(np.std(v - v.mean(axis=tuple(range(1, v.ndim)), keepdims=True)))
    return sigma / max(spread, 1e-300)


HINTS = {"noise": "less noise (for particle data: more particles or a wider coarse-graining kernel)",
         "length": "a longer movie (more frames) or a larger field of view",
         "collinear": "data in which the collinear terms vary independently (other initial conditions, "
                      "a wider range of values)",
         "library": "a library that contains the right terms",
         "forecast": "a longer movie, or a library with the missing (e.g. stabilising) term"}


def discover_pde(bundle, equations=None, *, derivative: str = "weak", solver: str = "iht", pi_th: float = 0.8,
                 n_subsamples: int = 40, n_penalties: int | None = None, decades: float | None = None,
                 n_bootstrap: int = 200, half_width=None, stride=None, window: int | None = None,
                 polyorder: int | None = None, reference: dict | None = None, max_samples: int = 20000,
                 stochastic: bool | None = None, blocks=None, gain: float = 0.5, forecast: bool = True,
                 max_condition: float = 1e4, noise_correction: bool = True, max_interval: float = 0.3,
                 frame_correction: bool = True, seed=0) -> PDEDiscovery:
    """Learn a sparse PDE model from fields, check it and say whether the data identify it.

    Default selection (``decades=None``, see :mod:`napari_dynfit.models.selection`): stability
    paths from the largest normalised coefficient down to the noise floor, candidate models along
    them, the model chosen and refined term by term by its held-out weak residual over space-time
    blocks; then a forecast check (the selected model and every richer candidate are fitted without
    the last quarter of the movie and integrated over it: if the selected one fails where a richer
    one does not, the richer one is chosen and the switch reported), block-jackknife intervals,
    condition number and the identifiability verdict.

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
    n_subsamples : int
        Half-subsamples of stability selection.
    n_penalties : int, optional
        Penalties per decade of the path (default 8); with ``decades`` the grid size (default 20).
    decades : float, optional
        The old selection: a fixed grid over ``decades`` below the largest normalised coefficient,
        terms kept by their largest selection probability, row-bootstrap intervals, no checks.
    n_bootstrap : int
        Bootstrap resamples (``decades`` mode only).
    half_width, stride : int or tuple, optional
        Weak form: test-function half-width and centre spacing in grid points (``(t, *space)``);
        default spacing a third of the half-width.
    window, polyorder : int, optional
        Finite differences: polynomial window (smoothing) and degree.
    reference : dict, optional
        Reference values of ``dev(...)`` arguments; default the bundle means.
    stochastic : bool, optional
        Fields with intrinsic noise (coarse-grained particles): the Ito weak form, i.e. spatial
        test functions only, time derivatives as forward differences and the library at the
        earlier time (sets the time half-width to 0). A symmetric time window would bias the
        coefficients of such data towards zero. Default (``None``): on when the bundle says it was
        coarse-grained from particles (``attrs["source"]``, :data:`~napari_dynfit.geometry.COARSE_GRAINED`),
        the weak form is used and ``half_width`` gives no time window; ``model["method"]["stochastic_why"]``
        says what was decided.
    max_samples : int
        Largest number of regression rows the stability paths draw from (a random subset of the
        centres) and of grid points with pointwise derivatives; the held-out selection, coefficients
        and intervals of the weak form use every centre.
    blocks : tuple of int, optional
        Space-time blocks per axis ``(t, *space)`` for the held-out errors (default 4 in time,
        2 per space axis).
    gain : float
        Relative drop of the held-out squared error a richer model must achieve to be chosen
        (see :func:`~napari_dynfit.models.selection.select_on_path`).
    forecast : bool
        Run the forecast check (integrates candidate models over the last quarter of the frames).
    max_condition : float
        Condition number of the selected (normalised) library columns above which the model is
        reported as not identifiable (collinear terms).
    noise_correction : bool
        Correct the weak-form fits for white measurement noise (:mod:`napari_dynfit.models.debias`:
        noise level estimated from the data, its bias of the normal equations removed by simulated
        antithetic draws). Default on; it applies to the default weak form without ``stochastic``,
        and does nothing on clean data. ``result.noise`` says what was done.
    max_interval : float
        Largest relative half-width ``(hi - lo) / (2 |c|)`` of a kept coefficient's 95 %
        block-jackknife interval (0.3: the coefficient known to +-30 %); a wider one makes the model
        not identifiable (the data do not pin that coefficient down, although its sign may be
        clear). ``inf`` switches the check off.
    frame_correction : bool
        Ito form (``stochastic=True`` or a time half-width 0; not combined with the
        measurement-noise correction): refit the selected terms at the model's predicted midpoint of
        every frame interval (:func:`_frame_interval_correction`), which removes the ``O(dt)``
        bias of forward differences (``div(p)`` of free ABPs came out ``-0.972`` for ``-1`` at
        ``dt = 0.05``, mean of 20 seeds; its 95 % intervals missed -1 in 9 of them). Coefficients and
        intervals are those of the refit; ``model["diagnostics"]["frame_interval"]`` keeps the
        uncorrected ones. The refit also adds an unselected library term whose coefficient is clear
        (> 4 standard errors) and whose absence moves a selected coefficient beyond its interval
        (``frame_interval["added"]``, the selection's ``reason``, ``summary()``).
    seed : int
        Randomness of the point sample and subsamples.

    Returns
    -------
    PDEDiscovery
    """
    from ..fields.weak import WeakGrid, check_per_axis, weak_features
    from .selection import block_labels, jackknife_intervals, local_share, select_on_path

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
    legacy = decades is not None
    check_per_axis(bundle, half_width=half_width, stride=stride)  # a wrong option is an error, not "too little data"
    stochastic, stochastic_why = _particle_noise(bundle, stochastic, derivative, half_width)
    if stochastic:
        if derivative != "weak":
            raise InputError("stochastic=True needs derivative='weak'")
        hw = half_width if half_width is not None else [max(4, n // 8) for n in bundle.shape]
        hw = [int(hw)] * len(bundle.shape) if np.isscalar(hw) else list(hw)
        half_width = (0, *hw[1:])
    model = {"format": FORMAT, "equations": {}, "selection_probability": {}, "confidence_intervals": {},
             "library": {lhs: lib for lhs, lib in equations.items()}, "fields": sorted(bundle.fields),
             "axes": ["t", *bundle.space_axes], "reference": ref, "periodic": list(bundle.periodic),
             "method": {"derivative": derivative, "solver": solver, "pi_th": pi_th, "n_subsamples": n_subsamples,
                        "n_penalties": n_penalties, "decades": decades, "seed": seed,
                        "selection": "fixed grid" if legacy else "path to the noise floor + held-out blocks",
                        "half_width": half_width, "stride": stride, "window": window, "polyorder": polyorder,
                        "stochastic": stochastic, "stochastic_why": stochastic_why, "gain": gain, "forecast": forecast,
                        "noise_correction": noise_correction, "max_interval": max_interval,
                        "frame_correction": frame_correction},
             "diagnostics": {}, "stability_path": {}}
    # --- features ------------------------------------------------------------------------------
    blocks = tuple(blocks) if blocks is not None else (4,) + (2,) * bundle.ndim
    if derivative == "weak":
        grid_hw = None
        if stride is None and not legacy:
            try:
                g = WeakGrid.auto(bundle, max(1, max_derivative_order(all_names)), half_width=half_width)
            except InputError as exc:
                return _too_little(model, equations, str(exc))
            grid_hw = g.half_width
            stride = tuple(max(1, h // 3) for h in g.half_width)
            model["method"]["stride"] = list(stride)
        try:
            feats = weak_features(bundle, all_names, method="decoupled" if window is None else "finite",
                                  window=window, polyorder=polyorder, reference=ref, half_width=half_width,
                                  stride=stride)
        except InputError as exc:
            if "too small" in str(exc) or "too short" in str(exc):
                return _too_little(model, equations, str(exc))
            raise
        grid_shape = feats[next(iter(equations))].shape[: 1 + bundle.ndim]
        pick = None
        main_grid = WeakGrid.auto(bundle, max(1, max_derivative_order(all_names)), half_width=half_width,
                                  stride=stride)
        noise_info = _noise_info(bundle, equations, noise_correction and not legacy, stochastic,
                                 n_rows=int(np.prod(grid_shape)))
        if noise_info["applied"]:
            def feature_fn(b):
                return weak_features(b, all_names, method="decoupled" if window is None else "finite",
                                     window=window, polyorder=polyorder, reference=ref, half_width=half_width,
                                     stride=stride)
            draws = noise_draws(bundle, noise_info["sigma"], feature_fn, n_draws=noise_info["draws"], seed=seed)
        ht = (grid_hw or WeakGrid.auto(bundle, max(1, max_derivative_order(all_names)), half_width=half_width,
                                       stride=stride).half_width)[0]
        if not legacy and bundle.shape[0] < 2 * (2 * ht + 1):
            return _too_little(model, equations, f"the movie ({bundle.shape[0]} frames) is shorter than two "
                                                 f"independent test-function windows ({2 * ht + 1} frames each)")
        st = stride[0] if stride is not None and not np.isscalar(stride) else (stride or 1)
        def support_end(ti):                                 # first frame after the support of time index ti
            return ti * st + 2 * ht + 1 + (ht == 0)
    else:
        noise_info = _noise_info(bundle, equations, False, stochastic, why="pointwise derivatives: the correction "
                                                                          "is for the weak form")
        feats, grid_shape, pick = _pointwise_features(bundle, all_names, derivative, window, polyorder, ref,
                                                      max_samples, rng)
        w = max(5, window or 5)
        def support_end(ti):
            return ti + 2 * w + 1
    labels_grid = block_labels(grid_shape, blocks)
    results: dict = {}
    out = PDEDiscovery(model, results, noise=noise_info)
    model["diagnostics"]["noise"] = noise_info
    if legacy:
        for lhs, lib in equations.items():
            y, G, _, _, _ = _rows(feats, lhs, lib, grid_shape, labels_grid, pick)
            y, G = y.reshape(-1), G.reshape(-1, len(lib))
            if len(y) > max_samples:
                rows = np.sort(rng.choice(len(y), max_samples, replace=False))
                G, y = G[rows], y[rows]
            res = stability_selection(G, y, lib, solver=solver, n_subsamples=n_subsamples,
                                      n_penalties=n_penalties or 20, decades=decades, pi_th=pi_th,
                                      n_bootstrap=n_bootstrap, seed=rng)
            results[lhs] = res
            model["equations"][lhs] = res.coefficients
            model["selection_probability"][lhs] = dict(zip(lib, map(float, res.max_probability)))
            model["confidence_intervals"][lhs] = {k: list(v) for k, v in res.intervals.items()}
            model["diagnostics"][lhs] = {"relative_residual": res.residual, "n_samples": int(len(y))}
            model["stability_path"][lhs] = res.path_data()
        return out
    # --- default: path to the noise floor, held-out blocks --------------------------------------
    reasons, hints = [], []
    rows_of = {}
    for lhs, lib in equations.items():
        y, G, labels, times, d = _rows(feats, lhs, lib, grid_shape, labels_grid, pick)
        n_rows = y.shape[0]
        if n_rows * d < 4 * len(lib) or len(np.unique(labels)) < 2 or grid_shape[0] < 2:
            return _too_little(model, equations, f"{n_rows * d} regression rows ({grid_shape[0]} in time) for "
                                                 f"{len(lib)} candidate terms of {lhs}")
        sub = np.sort(rng.choice(n_rows, max_samples // d, replace=False)) if n_rows * d > max_samples \
            else np.arange(n_rows)
        # every row in the held-out selection and the fits (cheap: block Gram matrices); the stability
        # paths draw from the subset ``sub``. Coefficients from a subset scattered by +-20 % on the 2D
        # sample (10000 of its 313000 test-function centres) although all rows pin them to a few %.
        path_rows = _flat_rows(sub, d) if len(sub) < n_rows else None
        yy = y.reshape(-1)
        GG = G.reshape(-1, len(lib))
        ll = np.repeat(labels, d)
        nrows = None
        if noise_info["applied"]:
            nrows = _noise_rows(*draws, lhs, lib, grid_shape, labels_grid, pick, noise_info["sigma"])
        rescore = None
        if derivative == "weak" and not stochastic:          # particle fields: not validated there
            def rescore(sets, lhs=lhs):
                return _rescore_half(bundle, lhs, sets, main_grid, blocks, noise_info, max_samples, seed,
                                     method="decoupled" if window is None else "finite", window=window,
                                     polyorder=polyorder, reference=ref)
        sel = select_on_path(GG, yy, lib, ll, solver=solver, n_subsamples=n_subsamples,
                             per_decade=n_penalties or 8, pi_th=pi_th, gain=gain,
                             noise=nrows, rescore=rescore, path_rows=path_rows, seed=rng)
        results[lhs] = sel
        rows_of[lhs] = (y, G, times, d, nrows)
        model["selection_probability"][lhs] = dict(zip(lib, map(float, sel.max_probability())))
        model["stability_path"][lhs] = {"penalties": sel.penalties.tolist(), "pi_th": pi_th,
                                        "probabilities": {n: sel.probabilities[:, j].tolist()
                                                          for j, n in enumerate(lib)}}
    chosen = {lhs: r.chosen for lhs, r in results.items()}
    # --- forecast check --------------------------------------------------------------------------
    fc = {"frames": None, "error": None, "candidates": {}, "switched": []}
    start = _forecast_window(bundle.shape[0]) if forecast else None
    evolvable = all(parse_term(lhs).__class__.__name__ == "Field" and getattr(parse_term(lhs), "derivs", ()) == ("t",)
                    for lhs in equations)
    if start is not None and evolvable and all(c >= 0 for c in chosen.values()):
        fc["frames"] = int(bundle.shape[0] - start)
        fc["start_frame"] = int(start)

        def fitted(lhs, cand):
            y, G, times, d, nrows = rows_of[lhs]
            train = np.flatnonzero(support_end(times) <= start)
            lib = equations[lhs]
            if len(train) * d < 2 * max(1, len(cand.terms)):
                return dict(cand.coefficients)
            return _fit_rows(G[train].reshape(-1, len(lib)), y[train].reshape(-1), cand.terms, lib, slice(None),
                             None if nrows is None else nrows.subset(_flat_rows(train, d)))

        def run(choice):
            eqs = {lhs: fitted(lhs, results[lhs].candidates[c]) for lhs, c in choice.items()}
            return _forecast(eqs, bundle, ref, start)

        floor = max(_noise_fraction(bundle[parse_term(lhs).field], start,
                                    bundle.kinds[parse_term(lhs).field] == "vector") for lhs in equations)
        fail_at = 2 * floor + 0.01
        fc["noise_floor"] = float(floor)
        base_err, base_fail = run(chosen)
        fc["error"] = None if not np.isfinite(base_err) else base_err
        if base_fail:
            fc["failure"] = base_fail
        for lhs, r in results.items():
            cur = set(r.candidates[chosen[lhs]].terms)
            richer = [i for i, c in enumerate(r.candidates) if set(c.terms) > cur]
            if np.isfinite(base_err) and base_err <= fail_at:
                richer = []                   # the selected model forecasts to the noise: nothing to compare
            richer = sorted(richer, key=lambda i: r.candidates[i].cv_error)[:3]
            errs = {}
            for i in richer:
                trial = dict(chosen, **{lhs: i})
                errs[i] = run(trial)[0]
            fc["candidates"][lhs] = {" + ".join(r.candidates[i].terms): (e if np.isfinite(e) else None)
                                     for i, e in errs.items()}
            if errs:
                good = [i for i, e in errs.items() if e < 0.5 * base_err]
                i_best = min(good, key=lambda i: (len(r.candidates[i].terms), errs[i])) if good else None
                e_best = errs[i_best] if good else float("inf")
                if good:
                    old = " + ".join(r.candidates[chosen[lhs]].terms)
                    fc["switched"].append(
                        f"{lhs}: the selected model ({old}) forecasts the held-out frames with error "
                        f"{base_err:.3g}, the richer {' + '.join(r.candidates[i_best].terms)} with {e_best:.3g}: "
                        "chose the richer one")
                    chosen[lhs] = i_best
                    r.chosen = i_best
                    r.reason = "forecast check: " + fc["switched"][-1]
                    base_err = e_best
                    fc["error"] = e_best
    # --- Ito forward differences: refit the selected terms at the predicted frame midpoint -------
    if derivative == "weak" and main_grid.half_width[0] == 0:          # Ito form: forward differences
        model["diagnostics"]["frame_interval"] = _frame_interval_correction(
            bundle, results, rows_of, feats, main_grid, grid_shape, labels_grid,
            "switched off (frame_correction=False)" if not frame_correction else
            "not combined with the measurement-noise correction (not validated)" if noise_info["applied"] else "",
            library=equations, method="decoupled" if window is None else "finite", window=window, polyorder=polyorder,
            reference=ref)
    # --- coefficients, intervals, identifiability, where ----------------------------------------
    ident = {}
    for lhs, lib in equations.items():
        r = results[lhs]
        y, G, times, d, _ = rows_of[lhs]
        cand = r.selected
        info = {"noise_floor": r.noise_floor, "n_blocks": r.n_blocks, "reason": r.reason,
                "alternatives": r.alternatives,
                "steps": [list(s) for s in r.steps], "candidates": [c.to_json() for c in r.candidates],
                "chosen": r.chosen}
        model.setdefault("selection", {})[lhs] = info
        if cand is None:
            model["equations"][lhs] = {}
            model["confidence_intervals"][lhs] = {}
            reasons.append(f"{lhs}: no candidate term predicts held-out {lhs} better than nothing")
            hints += [HINTS["noise"], HINTS["library"]]
            ident[lhs] = {"held_out_relative_residual": 1.0}
            continue
        if noise_info["applied"] and derivative == "weak" and y.shape[0] <= NOISE_ROWS:     # few test functions
            two = _two_scale(cand, bundle, lhs, main_grid, blocks, noise_info, max_samples, seed,
                             method="decoupled" if window is None else "finite", window=window,
                             polyorder=polyorder, reference=ref)
            if two is not None:
                model["diagnostics"].setdefault("two_scale", {})[lhs] = two
        model["equations"][lhs] = dict(cand.coefficients)
        iv = jackknife_intervals(cand)
        model["confidence_intervals"][lhs] = {k: list(v) for k, v in iv.items()}
        idx = [lib.index(t) for t in cand.terms]
        Gs = G[..., idx].reshape(-1, len(idx))
        norms = np.linalg.norm(Gs, axis=0)
        cond = float(np.linalg.cond(Gs / np.where(norms > 0, norms, 1.0))) if len(idx) else 1.0
        resid = float(np.sqrt(cand.cv_error))
        ident[lhs] = {"held_out_relative_residual": resid, "condition_number": cond,
                      "intervals_exclude_zero": {k: bool(lo > 0 or hi < 0) for k, (lo, hi) in iv.items()},
                      "relative_half_width": {k: float((hi - lo) / 2 / max(abs(cand.coefficients[k]), 1e-300))
                                                  for k, (lo, hi) in iv.items()}}
        model["diagnostics"][lhs] = {"relative_residual": resid, "n_samples": int(y.size),
                                     "noise_floor": r.noise_floor}
        if cand.cv_error > 0.99:
            reasons.append(f"{lhs}: the selected terms predict only {max(0.0, 1 - cand.cv_error):.1%} of held-out "
                           f"{lhs} (squared)")
            hints += [HINTS["noise"], HINTS["library"]]
        cross = [f"{k} [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in iv.items() if lo <= 0 <= hi]
        if cross:
            reasons.append(f"{lhs}: coefficient interval crosses zero: " + ", ".join(cross))
            hints += [HINTS["length"], HINTS["noise"]]
        wide = [f"{k} {cand.coefficients[k]:.3g} [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in iv.items()
                if not lo <= 0 <= hi and (hi - lo) / 2 > max_interval * abs(cand.coefficients[k])]
        if wide:
            reasons.append(f"{lhs}: coefficient known only to more than +-{max_interval:.0%}: " + ", ".join(wide))
            hints += [HINTS["length"], HINTS["noise"]]
        if cond > max_condition:
            reasons.append(f"{lhs}: the selected terms are nearly collinear (condition number {cond:.3g})")
            hints.append(HINTS["collinear"])
        shares, where = local_share(G, cand.coefficients, lib)
        out.where[lhs] = where
        out.local_share[lhs] = {t: v.reshape(grid_shape) if pick is None else v for t, v in shares.items()}
    if fc["error"] is None and fc.get("failure"):
        reasons.append(f"the forecast of the held-out frames fails: {fc['failure']}")
        hints.append(HINTS["forecast"])
    elif fc["error"] is not None and fc["error"] > 1.0:
        reasons.append(f"the forecast of the held-out frames is worse than no pattern at all "
                       f"(relative error {fc['error']:.3g})")
        hints.append(HINTS["forecast"])
    out.identifiable = not reasons
    out.reasons = reasons
    out.hints = list(dict.fromkeys(hints))
    out.forecast = fc
    model["identifiability"] = {"identifiable": out.identifiable, "reasons": reasons, "hints": out.hints,
                                "equations": ident}
    model["where"] = out.where
    model["forecast"] = {k: v for k, v in fc.items()}
    return out


NOISE_DRAWS = 16          # antithetic pairs for up to NOISE_ROWS regression rows (centres)
NOISE_ROWS = 1000


def _n_draws(n_rows: int) -> int:
    """Simulated draws: 16 up to 1000 centres, fewer (>= 1) for more, whose sum averages the
    simulation error as well (its relative size ~ 1 / sqrt(draws x independent centres)); each draw
    costs two feature evaluations on the whole grid."""
    return NOISE_DRAWS if n_rows <= NOISE_ROWS else max(1, int(round(NOISE_DRAWS * NOISE_ROWS / n_rows)))


def _half_gram(bundle, lhs, names, grid, blocks, noise_info, max_samples, seed, **evaluate):
    """Block Gram matrices of ``lhs ~ names`` on test functions of half the size of ``grid``.

    Same power, blocks and noise correction as the main fit. Returns ``(bg, col, ynorm)``
    (:class:`~.selection._BlockGram` in normalised units and the scales) or None when the half-size
    grid is too small.
    """
    from ..fields.weak import WeakGrid, weak_features
    from .selection import _BlockGram, block_labels
    from .stability import normalise

    hw = tuple(h if h == 0 else max(2, h // 2) for h in grid.half_width)
    half = WeakGrid(hw, tuple(max(1, h // 3) for h in hw), grid.power)

    def feats(b):
        return weak_features(b, [lhs, *names], grid=half, **evaluate)

    try:
        F = feats(bundle)
    except InputError:
        return None
    shape = F[lhs].shape[: 1 + bundle.ndim]
    labels_grid = block_labels(shape, blocks)
    y, G, labels, _, d = _rows(F, lhs, names, shape, labels_grid, None)
    n = y.shape[0]
    sub = np.sort(np.random.default_rng(seed).choice(n, max_samples // d, replace=False)) if n * d > max_samples \
        else np.arange(n)
    y, G, labels = y[sub].reshape(-1), G[sub].reshape(-1, len(names)), np.repeat(labels[sub], d)
    if len(np.unique(labels)) < 2:
        return None
    noise = None
    if noise_info.get("applied"):
        draws = noise_draws(bundle, noise_info["sigma"], feats, n_draws=noise_info["draws"], seed=seed)
        noise = _noise_rows(*draws, lhs, names, shape, labels_grid, None, noise_info["sigma"]).subset(
            _flat_rows(sub, d))
        G, y = G - noise.bias_G, y - noise.bias_y
    Gn, yn, col, ynorm = normalise(G, y)
    return _BlockGram(Gn, yn, labels, None if noise is None else noise.normalised(col, ynorm)), col, ynorm


def _rescore_half(bundle, lhs, sets, grid, blocks, noise_info, max_samples, seed, **evaluate):
    """Held-out errors of the supports ``sets`` of ``lhs`` on half-size test functions (None: grid too small)."""
    names = list(dict.fromkeys(t for S in sets for t in S))
    out = _half_gram(bundle, lhs, names, grid, blocks, noise_info, max_samples, seed, **evaluate)
    if out is None:
        return None
    return [float(out[0].held_out(sorted(names.index(t) for t in S))[0].mean()) for S in sets]


def _two_scale(cand, bundle, lhs, grid, blocks, noise_info, max_samples, seed, **evaluate) -> dict | None:
    """Combine the candidate's coefficients with a fit on half-size test functions, per coefficient
    weighted by the inverse block-jackknife variance of each; updates ``cand`` (coefficients and
    per-block refits, so the intervals are those of the combination). Returns what was combined."""
    from .selection import jackknife_var

    out = _half_gram(bundle, lhs, list(cand.terms), grid, blocks, noise_info, max_samples, seed, **evaluate)
    if out is None:
        return None
    bg, col, ynorm = out
    idx = list(range(len(cand.terms)))
    folds_h = bg.held_out(idx)[1] * ynorm / col
    if folds_h.shape != cand.fold_coefficients.shape:
        return None
    x1 = np.array([cand.coefficients[t] for t in cand.terms])
    x2 = bg.fit(np.array(idx)) * ynorm / col

    w1 = 1 / np.maximum(jackknife_var(cand.fold_coefficients), 1e-300)
    w2 = 1 / np.maximum(jackknife_var(folds_h), 1e-300)
    a = w1 / (w1 + w2)
    info = {"default": dict(zip(cand.terms, map(float, x1))), "half_size": dict(zip(cand.terms, map(float, x2))),
            "weight_default": dict(zip(cand.terms, map(float, a)))}
    cand.coefficients = dict(zip(cand.terms, map(float, a * x1 + (1 - a) * x2)))
    cand.fold_coefficients = a * cand.fold_coefficients + (1 - a) * folds_h
    return info


def _frame_interval_correction(bundle, results, rows_of, feats, grid, grid_shape, labels_grid, off: str = "",
                               iterations: int = 3, library: dict | None = None, min_z: float = 4.0,
                               max_added: int = 2, **evaluate) -> dict:
    """Refit the selected terms of the Ito form at the model's predicted midpoint of each frame interval.

    The Ito target ``(u(t + dt) - u(t)) / dt`` is the mean of ``u_t`` over the interval, not its
    value at ``t``: ``E[(u(t + dt) - u(t)) / dt | u(t)] = F(u) + (dt / 2) DF(u)[F(u)] + O(dt^2)``
    for a drift ``F`` linear in the fields (the noise adds a curvature term for nonlinear ones).
    Regressing it on the library at ``t`` therefore biases the coefficients by ``O(dt)`` times the
    rates: for free ABPs ``rho_t = -v0 div(p)`` comes out as ``-v0 (1 - Dr dt / 2)``, ``-0.972`` for
    ``-1`` at ``dt = 0.05`` (mean of 20 seeds), and the bias does not shrink with more particles
    while the intervals do. This refit evaluates the library at the deterministic midpoint
    predictor ``u(t) + (dt / 2) F(u(t))`` (``F`` the selected model, pointwise derivatives): the
    explicit midpoint rule, second order in ``dt``, and still Ito (the predictor uses ``u(t)``
    only, so the increment's noise stays uncorrelated with the library). ``F`` depends on the
    coefficients, so the refit is repeated ``iterations`` times (each changes them by a factor
    ``~ rate x dt / 2`` less). The per-block refits (jackknife intervals) use the final midpoint
    features. Not applied (and said why) when a selected term reads a field without a learned
    equation (its midpoint is unknown) or to fields averaged over a time window (instrumented Ito
    features, not validated), nor when ``off`` gives a reason (switched off, measurement-noise correction).

    Missing terms (``library`` given): the frame bias of a small term can cancel (or mimic) the
    bias of another, so a term the selection left out can matter once the bias is gone (on
    ``dynfit demo``'s density stripe, ``Dt lap(rho)`` with ``Dt = 0.1``: without it the refit put
    ``div(p)`` at ``-1.058 [-1.087, -1.029]`` for ``-1``). After the refit every unselected term
    of the library is added to the refit model in turn (midpoint features); a term is adopted when
    its coefficient is clear (``|c / se| > min_z``, block-jackknife standard error) **and** adding
    it moves a selected coefficient by more than that coefficient's 95 % interval half-width (its
    absence biases the reported model beyond its stated uncertainty). Per equation the clearest such
    term is adopted, the refit repeated, at most ``max_added`` times; adopted terms are recorded in
    ``added`` and in the selection's ``reason``/``steps`` (candidate source ``"frame interval"``).
    An earlier adopted term that a later one explains away (no longer ``min_z`` standard errors from
    zero: near-collinear terms such as ``dev(rho)`` and ``lap(rho)`` on fields of a few Fourier modes,
    where the clearer one by ``z`` is not always the true one) is dropped again and not re-adopted
    (``dropped``; 1e5 free ABPs: ``dev(rho)`` adopted at 10 SE, 1.2 SE after ``lap(rho)``).

    Updates the selected candidates of ``results`` in place; returns the diagnostics
    (``applied``, ``why``, ``frame_interval``, ``uncorrected``, ``iterations``, ``last_change``,
    ``added``, ``dropped``, ``moved``: selected coefficients the refit moved by more than their interval half-width).
    """
    from scipy.stats import t as student

    from ..fields.bundle import FieldBundle
    from ..fields.weak import weak_features
    from .selection import Candidate, jackknife_var

    cands = {lhs: r.selected for lhs, r in results.items()}
    info = {"applied": False, "why": "", "frame_interval": float(bundle.dt),
            "uncorrected": {lhs: dict(c.coefficients) for lhs, c in cands.items() if c is not None},
            "added": [], "dropped": [], "moved": []}
    terms = sorted({t for c in cands.values() if c is not None for t in c.terms})
    field_of = {lhs: parse_term(lhs).field for lhs in cands}
    used = {f for t in terms for f in parse_term(t).fields()}
    missing = sorted(used - set(field_of.values()))
    attrs = getattr(bundle, "attrs", None) or {}
    if off:
        info["why"] = off
    elif not terms:
        info["why"] = "no selected terms"
    elif not all(getattr(parse_term(lhs), "derivs", ()) == ("t",) for lhs in cands):
        info["why"] = "a left-hand side is not a first time derivative of a field"
    elif missing:
        info["why"] = f"no learned equation for {', '.join(missing)}: its midpoint cannot be predicted"
    elif int(attrs.get("time_window", 0)) > 0 and attrs.get("windowed_fields"):
        info["why"] = "fields averaged over a time window (instrumented Ito features): not validated"
    if info["why"]:
        return info
    known = set(field_of.values())
    extra = {lhs: [t for t in (library or {}).get(lhs, []) if t not in (cands[lhs].terms if cands[lhs] else [])
                   and set(parse_term(t).fields()) <= known] for lhs in cands}
    extra = {lhs: v for lhs, v in extra.items() if v and cands[lhs] is not None}
    everything = sorted(set(terms) | {t for v in extra.values() for t in v})
    pointwise = evaluate_terms(bundle, everything, method="spectral" if any(bundle.periodic) else "finite",
                               reference=evaluate.get("reference"))
    coefs = {lhs: dict(c.coefficients) for lhs, c in cands.items() if c is not None}
    uncorrected = {lhs: dict(c) for lhs, c in coefs.items()}
    change = float("inf")

    def midpoint_fits(coefs, names):
        fields = dict(bundle.fields)
        for lhs, c in coefs.items():
            rhs = sum(v * pointwise[t] for t, v in c.items())
            fields[field_of[lhs]] = bundle[field_of[lhs]] + 0.5 * bundle.dt * rhs
        mid = FieldBundle(fields, bundle.coords, kinds=dict(bundle.kinds), periodic=bundle.periodic)
        F = weak_features(mid, names, grid=grid, **evaluate)
        new, folds = {}, {}
        for lhs, c in coefs.items():
            y, _, _, d, _ = rows_of[lhs]
            F[lhs] = feats[lhs]
            _, Gm, labels, _, _ = _rows(F, lhs, list(c), grid_shape, labels_grid, None)
            xi, fc = _block_refits(Gm.reshape(-1, len(c)), y.reshape(-1), np.repeat(labels, d))
            new[lhs], folds[lhs] = dict(zip(c, map(float, xi))), fc
        return new, folds, F

    def se_of(folds):
        return np.sqrt(jackknife_var(folds))

    def refit(lhs, names):
        """``(xi, folds)`` of ``names`` for ``lhs`` on the current midpoint features ``F``."""
        y, _, _, d, _ = rows_of[lhs]
        _, Gm, _, _, _ = _rows(F, lhs, names, grid_shape, labels_grid, None)
        return _block_refits(Gm.reshape(-1, len(names)), y.reshape(-1), np.repeat(labels_grid.reshape(-1), d))

    added_n = dict.fromkeys(coefs, 0)
    tried = {lhs: set() for lhs in coefs}          # terms adopted once (and maybe dropped again): not re-adopted
    while True:
        for it in range(iterations):
            last = it == iterations - 1
            new, folds, F = midpoint_fits(coefs, everything if last and extra else sorted({t for c in coefs.values()
                                                                                          for t in c}))
            change = max(abs(new[lhs][t] - coefs[lhs][t]) / max(abs(coefs[lhs][t]), 1e-300)
                         for lhs in coefs for t in coefs[lhs])
            coefs = new
        adopted = False
        for lhs, ex in extra.items():
            if added_n[lhs] >= max_added:
                continue
            K = len(np.unique(labels_grid))
            if K < 3:
                continue
            q = float(student.ppf(0.975, K - 1))
            sel = list(coefs[lhs])
            x0, se0 = np.array([coefs[lhs][t] for t in sel]), se_of(folds[lhs])
            best = None
            for t in ex:
                if t in coefs[lhs] or t in tried[lhs]:
                    continue
                xi, fc = refit(lhs, sel + [t])
                se = se_of(fc)
                z = float(abs(xi[-1]) / max(se[-1], 1e-300))
                shift = float(np.max(np.abs(xi[:-1] - x0) / np.maximum(q * se0, 1e-300)))
                if z > min_z and shift > 1.0 and (best is None or z > best[1]):
                    best = (t, z, shift, xi, fc)
            if best is None:
                continue
            t, z, shift, xi, fc = best
            info["added"].append({"lhs": lhs, "term": t, "coefficient": float(xi[-1]), "z": z,
                                  "shift_half_widths": shift,
                                  "before": dict(coefs[lhs]), "after": dict(zip(sel, map(float, xi[:-1])))})
            coefs[lhs] = dict(zip(sel + [t], map(float, xi)))
            tried[lhs].add(t)
            added_n[lhs] += 1
            adopted = True
            # an earlier adoption the new term explains away (near-collinear terms, e.g. dev(rho) and lap(rho)
            # on a few Fourier modes) is dropped again when it is no longer min_z standard errors from zero
            for old in [a["term"] for a in info["added"] if a["lhs"] == lhs and a["term"] != t]:
                names = list(coefs[lhs])                     # xi, fc are the fit of these names
                if old not in names:
                    continue
                j = names.index(old)
                z_old = float(abs(xi[j]) / max(se_of(fc)[j], 1e-300))
                if z_old < min_z:
                    keep = [k for k in names if k != old]
                    xi, fc = refit(lhs, keep)
                    info["dropped"].append({"lhs": lhs, "term": old, "z": z_old, "after": t})
                    coefs[lhs] = dict(zip(keep, map(float, xi)))
        if not adopted:
            break
    for lhs, c in coefs.items():
        r = results[lhs]
        if list(c) != list(cands[lhs].terms):
            mine = [a for a in info["added"] if a["lhs"] == lhs and a["term"] in c]
            y, _, _, d, _ = rows_of[lhs]
            labels = np.repeat(labels_grid.reshape(-1), d)
            _, Gm, _, _, _ = _rows(F, lhs, list(c), grid_shape, labels_grid, None)
            Gm, yy = Gm.reshape(-1, len(c)), y.reshape(-1)
            cv = np.array([np.sum((yy[labels == b] - Gm[labels == b] @ folds[lhs][k]) ** 2)
                           for k, b in enumerate(np.unique(labels))])
            ny = np.array([np.sum(yy[labels == b] ** 2) for b in np.unique(labels)])
            cv = cv / max(float(ny.mean()), 1e-300)
            new_c = Candidate(list(c), float("nan"), float(cv.mean()), cv, dict(c), folds[lhs], source="frame interval")
            r.candidates.append(new_c)
            r.chosen = len(r.candidates) - 1
            for a in mine:
                r.steps.append(("add", a["term"], float(cv.mean())))
            r.reason = (f"{r.reason}; frame-interval check: added " + ", ".join(
                f"{a['term']} ({a['coefficient']:.3g}, {a['z']:.1f} standard errors; without it "
                + ", ".join(f"{k} {a['before'][k]:.3g} -> {a['after'][k]:.3g}" for k in a["before"]) + ")"
                for a in mine) + ": its absence biased the refit beyond the intervals" + "".join(
                f"; {a['term']} adopted first, dropped after {a['after']} ({a['z']:.1f} standard errors then)"
                for a in info["dropped"] if a["lhs"] == lhs))
            cands[lhs] = new_c
        cands[lhs].coefficients = c
        cands[lhs].fold_coefficients = folds[lhs]
        K = len(folds[lhs])
        if K >= 2:
            hw = float(student.ppf(0.975, K - 1)) * se_of(folds[lhs])
            for j, t in enumerate(c):
                if t in uncorrected[lhs] and abs(c[t] - uncorrected[lhs][t]) > hw[j]:
                    info["moved"].append({"lhs": lhs, "term": t, "uncorrected": uncorrected[lhs][t],
                                          "corrected": c[t], "half_width": float(hw[j])})
    info.update(applied=True, iterations=iterations, last_change=change,
                why="Ito forward differences: library refitted at the predicted midpoint u + (dt/2) F(u)")
    return info


def _particle_noise(bundle, stochastic, derivative: str, half_width) -> tuple[bool, str]:
    """Whether to use the Ito weak form (``stochastic``) and why: the caller's choice, else on for fields
    coarse-grained from particles (their noise is the particles' own, part of the dynamics) unless the weak form
    is off or the caller asked for a time window."""
    from ..geometry import COARSE_GRAINED

    if stochastic is not None:
        return bool(stochastic), "given"
    source = (getattr(bundle, "attrs", None) or {}).get("source")
    if source != COARSE_GRAINED:
        return False, f"fields not coarse-grained from particles (source: {source or 'not stated'})"
    if derivative != "weak":
        return False, f"coarse-grained particles, but derivative={derivative!r} (the Ito form needs the weak form)"
    hw_t = None if half_width is None else (half_width if np.isscalar(half_width) else list(half_width)[0])
    if hw_t not in (None, 0):
        return False, f"coarse-grained particles, but a time half-width {hw_t} was asked for"
    return True, "fields coarse-grained from particles: their noise is part of the dynamics (Ito weak form)"


def _block_refits(G: np.ndarray, y: np.ndarray, labels: np.ndarray):
    """Least squares on all rows and without each block (label): ``(xi (m,), folds (K, m))``, through the
    selection's per-block Gram matrices (:class:`~.selection._BlockGram`, columns scaled to unit norm)."""
    from .selection import _BlockGram

    s = np.linalg.norm(G, axis=0)
    s = np.where(s > 0, s, 1.0)
    bg = _BlockGram(G / s, y, labels)
    idx = np.arange(G.shape[1])
    return bg.fit(idx) / s, np.stack([bg.fit(idx, leave_out=k) / s for k in range(len(bg.blocks))])


def _noise_info(bundle, equations, on: bool, stochastic: bool, why: str = "", n_rows: int = 0) -> dict:
    """Whether and how the fits are corrected for measurement noise (``PDEDiscovery.noise``)."""
    fields = sorted({f for lhs, lib in equations.items() for n in (lhs, *lib) for f in parse_term(n).fields()})
    info = {"applied": False, "sigma": {}, "relative": {}, "draws": 0, "why": why}
    if not on or stochastic:
        info["why"] = why or ("stochastic fields: their noise is part of the dynamics (Ito form)" if stochastic
                              else "switched off")
        return info
    sigma = noisy_fields(bundle, estimate_noise(bundle, fields))
    if not sigma:
        info["why"] = "no measurable white noise in the fields"
        return info
    rel = {f: s / max(float(np.nanstd(np.asarray(bundle[f], dtype=float))), 1e-300) for f, s in sigma.items()}
    return {"applied": True, "sigma": sigma, "relative": rel, "draws": _n_draws(n_rows),
            "why": "white measurement noise estimated from the fields' high-frequency content"}


def _too_little(model, equations, why) -> PDEDiscovery:
    """A not-identifiable result for data too small to fit and check a model."""
    model["equations"] = {lhs: {} for lhs in equations}
    reasons = [f"too little data: {why}"]
    hints = [HINTS["length"]]
    model["identifiability"] = {"identifiable": False, "reasons": reasons, "hints": hints, "equations": {}}
    return PDEDiscovery(model, {}, identifiable=False, reasons=reasons, hints=hints)


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
