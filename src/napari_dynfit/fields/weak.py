"""Weak-form features: terms integrated against compactly supported test functions.

For a test function ``phi`` centred at ``c`` (a separable bump ``prod_a (1 - s_a^2)^q`` over time and
space, ``s_a`` the offset in units of the half-width) and a term ``T``, the feature is
``<phi_c, T> = integral phi(y - c) T(y) dy``. Derivatives are moved onto ``phi`` by integration by
parts wherever the term is a derivative of something we can evaluate without differentiating:

* ``u_t``, ``u_xx``, ``d_xy(f)``, ``grad(f)``, ``div(v)``, ``lap(f)``, ``grad(div(v))``:
  ``<phi, d^a f> = (-1)^|a| <d^a phi, f>``;
* ``u^k*u_x`` = ``d_x(u^(k+1))/(k+1)`` and likewise ``dev(rho)^k*grad(rho)``;
* every other term (``p.grad(p)``, ``u*u_xx``...) is evaluated pointwise with centre-free finite
  differences (``method="decoupled"``, no noise bias in products) and then integrated, which still
  averages its noise.

Noise in the data enters the features only through integrals of the data against smooth kernels,
which is why the weak form is the default for noisy fields (WSINDy, Messenger & Bortz 2021).
The integrals are separable correlations (:func:`scipy.ndimage.correlate1d`), evaluated on a
regular lattice of centres; periodic axes wrap, other axes keep the supports inside the domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class _Piece:
    coef: float
    alpha: tuple[int, ...]       # derivative counts per grid axis (t, *space)
    inner: object                # terms.Node evaluated pointwise
    comp: int | None             # component of a vector inner, None for scalars


def _pieces(node, comp, ndim, axis_of, field_kinds):
    """Integration-by-parts decomposition of one (component of a) term; see the module docstring."""
    from .terms import Deriv, Field, Op, Power, Product, term_kind

    zero = (0,) * (ndim + 1)

    def add(alpha, letters=(), axes=()):
        a = list(alpha)
        for L in letters:
            a[axis_of[L]] += 1
        for ax in axes:
            a[ax] += 1
        return tuple(a)

    if isinstance(node, Field) and node.derivs:
        base = Field(node.field)
        return [_Piece(1.0, add(zero, node.derivs), base, comp)]
    if isinstance(node, Deriv):
        return [_Piece(p.coef, add(p.alpha, node.derivs), p.inner, p.comp)
                for p in _pieces(node.arg, comp, ndim, axis_of, field_kinds)]
    if isinstance(node, Op) and node.op == "grad":
        return [_Piece(p.coef, add(p.alpha, axes=(1 + comp,)), p.inner, p.comp)
                for p in _pieces(node.arg, None, ndim, axis_of, field_kinds)]
    if isinstance(node, Op) and node.op == "div":
        return [_Piece(p.coef, add(p.alpha, axes=(1 + j,)), p.inner, p.comp)
                for j in range(ndim) for p in _pieces(node.arg, j, ndim, axis_of, field_kinds)]
    if isinstance(node, Op) and node.op == "lap":
        return [_Piece(p.coef, add(p.alpha, axes=(1 + j, 1 + j)), p.inner, p.comp)
                for j in range(ndim) for p in _pieces(node.arg, comp, ndim, axis_of, field_kinds)]
    if isinstance(node, Product):
        conservative = _power_times_derivative(node)
        if conservative is not None:
            base, k, deriv = conservative
            inner = Power(base, k + 1)
            if isinstance(deriv, Field):
                return [_Piece(1.0 / (k + 1), add(zero, deriv.derivs), inner, None)]
            return [_Piece(1.0 / (k + 1), add(zero, axes=(1 + comp,)), inner, None)]
    if term_kind(node, field_kinds) == "vector" and comp is None:
        raise InputError(f"'{node}' is a vector where a scalar is needed")
    return [_Piece(1.0, zero, node, comp)]


def _power_times_derivative(node):
    """``(base, k, deriv)`` if ``node`` is ``base^k * d(u)`` with ``base`` = ``u`` or ``dev(u)``, else None."""
    from .terms import Field, Op, Power

    def base_power(f):
        if isinstance(f, Power):
            return f.base, f.power
        return f, 1

    derivs = [f for f in node.factors if (isinstance(f, Field) and len(f.derivs) == 1 and f.derivs[0] != "t")
              or (isinstance(f, Op) and f.op == "grad" and isinstance(f.arg, Field) and not f.arg.derivs)]
    if len(derivs) != 1:
        return None
    deriv = derivs[0]
    u = deriv.field if isinstance(deriv, Field) else deriv.arg.field
    bases = [base_power(f) for f in node.factors if f is not deriv]
    allowed = {str(Field(u)), f"dev({u})"}
    if not bases or len({str(b) for b, _ in bases}) != 1 or str(bases[0][0]) not in allowed:
        return None
    return bases[0][0], sum(k for _, k in bases), deriv


def bump_kernel(half_width: int, deriv: int, spacing: float, power: int) -> np.ndarray:
    """Samples of ``d^deriv/dy^deriv`` of ``(1 - (y/H)^2)^power`` on ``2 half_width + 1`` grid points.

    ``H = half_width * spacing``; the result is multiplied by ``spacing`` (quadrature weight) and
    divided by the integral of the bump, so that features are weighted averages of the terms.
    ``power`` must exceed ``deriv`` (the bump's derivatives then vanish at the support's ends).
    """
    from numpy.polynomial import Polynomial

    if power <= deriv:
        raise InputError(f"test-function power {power} must exceed the derivative order {deriv}")
    s = np.arange(-half_width, half_width + 1) / half_width                  # in units of H
    poly = Polynomial([1.0, 0.0, -1.0]) ** power
    norm = poly.integ()(1.0) - poly.integ()(-1.0)                            # integral over s
    vals = poly.deriv(deriv)(s) if deriv else poly(s)
    h_phys = half_width * spacing
    return vals / h_phys ** deriv / norm / half_width                        # ds = dy / H; sum * (1/half_width)


def check_per_axis(bundle, **values) -> None:
    """Raise :class:`InputError` when a per-axis option (``half_width=``, ``stride=``) has neither one value nor
    one per axis of ``bundle`` (``(t, *space)``)."""
    n = len(bundle.shape)
    for name, value in values.items():
        if value is not None and not np.isscalar(value) and len(value) != n:
            axes = ", ".join(("t", *bundle.space_axes))
            raise InputError(f"{name} has {len(value)} values for fields with axes ({axes}): give one value or "
                             f"one per axis ({n}: t, then space)")


@dataclass
class WeakGrid:
    """Where and how the weak features are integrated.

    Attributes
    ----------
    half_width : tuple of int
        Test-function half-width in grid points per axis ``(t, *space)``. A time half-width of 0
        selects the Ito form for stochastic data: no integration in time, time derivatives as
        forward differences ``(f(t + dt) - f(t)) / dt`` and every other term at ``t``, so that
        the noise increment after ``t`` is uncorrelated with the library (a symmetric time window
        biases drift coefficients towards zero when the fields carry intrinsic noise).
    stride : tuple of int
        Distance between neighbouring centres in grid points per axis.
    power : int
        Exponent ``q`` of the bump ``(1 - s^2)^q``; must exceed the highest derivative order.
    """

    half_width: tuple[int, ...]
    stride: tuple[int, ...]
    power: int

    @classmethod
    def auto(cls, bundle, max_order: int, half_width=None, stride=None, power=None) -> WeakGrid:
        """Defaults from the grid: supports of about 1/8 of each axis (>= 4 points), 2/3 overlap."""
        shape = bundle.shape
        if half_width is None:
            half_width = [max(4, n // 8) for n in shape]
        elif np.isscalar(half_width):
            half_width = [int(half_width)] * len(shape)
        check_per_axis(bundle, half_width=half_width, stride=stride)
        half_width = tuple(int(min(h, (n - 1) // 2 if i == 0 or not bundle.periodic[i - 1] else n // 2))
                           for i, (h, n) in enumerate(zip(half_width, shape)))
        if stride is None:
            stride = [max(1, h * 2 // 3) for h in half_width]
        elif np.isscalar(stride):
            stride = [int(stride)] * len(shape)
        power = max_order + 2 if power is None else int(power)
        if min(half_width[1:]) < 2 or half_width[0] == 1:
            raise InputError(f"fields of shape {shape} are too small for weak-form test functions: "
                             "need at least 5 points along every axis (t and space)")
        return cls(tuple(half_width), tuple(int(s) for s in stride), power)

    def centres(self, bundle) -> list[np.ndarray]:
        """Indices of the test-function centres per axis."""
        out = []
        for i, (n, h, s) in enumerate(zip(bundle.shape, self.half_width, self.stride)):
            periodic = i > 0 and bundle.periodic[i - 1]
            if i == 0 and h == 0:
                out.append(np.arange(0, n - 1, s))
            else:
                out.append(np.arange(0, n, s) if periodic else np.arange(h, n - h, s))
            if len(out[-1]) == 0:
                raise InputError(f"axis {i} (length {n}) is too short for test functions of half-width {h}")
        return out


def _integrate(values: np.ndarray, alpha, grid: WeakGrid, bundle, centres) -> np.ndarray:
    from scipy.ndimage import correlate1d

    out = values
    spacings = (bundle.dt,) + bundle.spacing
    if grid.half_width[0] == 0:                      # Ito mode: forward differences in time
        if alpha[0] > 1:
            raise InputError("time half-width 0 (forward differences) allows first time derivatives only")
        out = (out[1:] - out[:-1]) / bundle.dt if alpha[0] == 1 else out[:-1]
    for ax in range(len(alpha)):
        if ax == 0 and grid.half_width[0] == 0:
            out = np.take(out, centres[0], axis=0)
            continue
        periodic = ax > 0 and bundle.periodic[ax - 1]
        w = bump_kernel(grid.half_width[ax], alpha[ax], spacings[ax], grid.power)
        out = correlate1d(out, w, axis=ax, mode="wrap" if periodic else "constant")
        out = np.take(out, centres[ax], axis=ax)
    moved = sum(alpha) - (alpha[0] if grid.half_width[0] == 0 else 0)
    sign = -1.0 if moved % 2 else 1.0
    return sign * out


def weak_features(bundle, names, *, grid: WeakGrid | None = None, method: str = "decoupled",
                  window: int | None = None, polyorder: int | None = None, reference: dict | None = None,
                  half_width=None, stride=None) -> dict[str, np.ndarray]:
    """Weak-form integrals of terms at a lattice of test-function centres.

    Parameters
    ----------
    bundle : FieldBundle
        Fields on a ``(t, *space)`` grid.
    names : iterable of str
        Terms (grammar of :mod:`napari_dynfit.fields.terms`), left-hand sides included.
    grid : WeakGrid, optional
        Test functions; default :meth:`WeakGrid.auto` with ``half_width``/``stride`` if given
        (grid points; an int applies to every axis, a tuple is ``(t, *space)``).
    method, window, polyorder, reference
        Pointwise evaluation of the parts that cannot be integrated by parts
        (see :func:`napari_dynfit.fields.terms.evaluate_terms`).

    Returns
    -------
    dict of str -> ndarray
        Scalar terms: shape ``(n_t_centres, *n_space_centres)``; vector terms: same plus ``(d,)``.
        In the Ito form for fields averaged over ``bundle.attrs["time_window"]`` frames, the first
        centres are dropped and the library is instrumented (:func:`_instrumented`).
    """
    from .terms import evaluate_terms, max_derivative_order, parse_term, term_kind

    names = list(names)
    max_order = max(1, max_derivative_order(names))
    if grid is None:
        grid = WeakGrid.auto(bundle, max_order, half_width=half_width, stride=stride)
    if grid.power <= max_order:
        raise InputError(f"test-function power {grid.power} must exceed the derivative order {max_order}")
    centres = grid.centres(bundle)
    axis_of = {"t": 0, **{a: 1 + i for i, a in enumerate(bundle.space_axes)}}
    ndim = bundle.ndim
    plan = {}
    inner_names = set()
    for n in names:
        node = parse_term(n)
        kind = term_kind(node, bundle.kinds)
        comps = range(ndim) if kind == "vector" else [None]
        plan[n] = [(c, _pieces(node, c, ndim, axis_of, bundle.kinds)) for c in comps]
        for _, pieces in plan[n]:
            inner_names |= {str(p.inner) for p in pieces}
    values = evaluate_terms(bundle, sorted(inner_names), method=method, window=window, polyorder=polyorder,
                            reference=reference)
    cache: dict = {}
    out = {}
    for n, comps in plan.items():
        parts = []
        for c, pieces in comps:
            acc = 0.0
            for p in pieces:
                key = (str(p.inner), p.comp, p.alpha)
                if key not in cache:
                    v = values[str(p.inner)]
                    v = v[..., p.comp] if p.comp is not None else v
                    cache[key] = _integrate(v, p.alpha, grid, bundle, centres)
                acc = acc + p.coef * cache[key]
            parts.append(acc)
        out[n] = parts[0] if comps[0][0] is None else np.stack(parts, axis=-1)
    attrs = getattr(bundle, "attrs", None) or {}
    window, windowed = int(attrs.get("time_window", 0)), set(attrs.get("windowed_fields", ()))
    if grid.half_width[0] == 0 and window > 0 and windowed:
        lag = -(-(window + 1) // grid.stride[0])  # window + 1 frames, in centres rounded up (see _instrumented)
        timed = {n for n, comps in plan.items() if any(p.alpha[0] > 0 for _, pieces in comps for p in pieces)}
        uses = {n: {f for _, pieces in comps for p in pieces for f in p.inner.fields()} for n, comps in plan.items()}
        shapes = {out[n].shape for n in out if uses[n] & windowed}
        out = _instrumented(out, timed, shapes, lag)
    return out


def _instrumented(out: dict, timed: set, shapes: set, lag: int) -> dict:
    """Ito features with windowed fields: the library projected on the library ``lag`` centres earlier.

    A field at time ``t`` that averages the motion over frames ``t - w/2 .. t + w/2`` (polarisation
    from displacements between frames: ``bundle.attrs["time_window"] = w``, the fields named in
    ``attrs["windowed_fields"]``) shares motion with the forward increment after ``t``, so the plain
    Ito regression of an equation that holds it is biased (measured on free ABPs from tracks:
    ``p_t = -0.29 p - 3.0 grad(rho)`` for ``-0.5 p - 4 grad(rho)``). Two-stage least squares with the
    library ``lag >= w + 1`` frames earlier as instruments (independent of the increment, correlated
    with the library through the slow dynamics; ``w`` frames earlier would still share the
    localisation error of the positions at ``t - w/2`` with the field at ``t``) removes that bias: in the equations of the kinds in
    ``shapes`` (scalar or vector: an equation's terms share its kind) each library term is replaced
    by its least-squares prediction from the lagged terms and every feature keeps the rows from
    ``lag`` on. Written here (not a library call): the rows are the weak-form lattice and the
    projection has to precede the sparse regression of any solver.
    """
    if any(len(v) <= lag + 1 for v in out.values()):
        raise InputError(f"too few frames for fields averaged over {lag} frames: need at least {lag + 3}")
    res = {}
    groups: dict = {}
    for n, v in out.items():
        if v.shape not in shapes:
            res[n] = v
        elif n in timed:
            res[n] = v[lag:]
        else:
            groups.setdefault(v.shape, []).append(n)
    for names in groups.values():
        X = np.stack([out[n][lag:].reshape(-1) for n in names], axis=1)
        Z = np.stack([out[n][:-lag].reshape(-1) for n in names], axis=1)
        scale = np.linalg.norm(Z, axis=0)
        Z = Z / np.where(scale > 0, scale, 1.0)
        B = np.linalg.lstsq(Z, X, rcond=None)[0]
        fit = Z @ B
        for i, n in enumerate(names):
            res[n] = fit[:, i].reshape(out[n][lag:].shape)
    return res
