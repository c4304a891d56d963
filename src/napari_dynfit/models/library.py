"""Candidate-term libraries for sparse PDE discovery (names in the :mod:`.terms` vocabulary).

* :func:`polynomial_library`: PDE-FIND's scalar library, monomials of the fields up to
  ``max_power`` times one spatial derivative (every multi-index up to ``max_derivative``, mixed
  derivatives included) in any dimension: ``u``, ``u^2``, ``u_x``, ``u*u_x``, ``u^2*u_xx``, ``u_xy``...
* :func:`vector_library`: isotropic terms for a density ``rho`` and a polarisation (or velocity)
  field ``p``, Toner-Tu style. Vector terms share one coefficient across components by
  construction (one name, one column). The density enters products through ``dev(rho)`` (deviation
  from the mean), which removes the near-collinearity of ``rho*p`` with ``p``.

* :func:`default_library`: the library every front end starts from (``discover_pde``'s default, ``dynfit pde
  discover``, the PDE widget), chosen from the bundle's fields.

User-defined terms are just more names: pass ``extra=[...]`` or any list of names to
:func:`napari_dynfit.models.pde.discover_pde`.
"""

from __future__ import annotations

from itertools import combinations_with_replacement, product

from ..errors import InputError
from .terms import canonical


def _derivative_suffixes(axes, max_derivative: int) -> list[str]:
    out = []
    for order in range(1, max_derivative + 1):
        for combo in combinations_with_replacement(axes, order):
            out.append("".join(combo))
    return out


def polynomial_library(fields=("u",), *, axes=("x",), max_power: int = 2, max_derivative: int = 3,
                       constant: bool = False, extra=()) -> list[str]:
    """Monomials of scalar fields times single derivatives (PDE-FIND's library).

    Parameters
    ----------
    fields : sequence of str
        Scalar field names.
    axes : sequence of str
        Spatial axes to differentiate along (``("x",)``, ``("y", "x")``...).
    max_power : int
        Highest total degree of the monomial factor.
    max_derivative : int
        Highest derivative order (total, mixed derivatives included).
    constant : bool
        Include the constant term ``"1"``.
    extra : sequence of str
        User-defined terms appended at the end (validated).

    Returns
    -------
    list of str
        Term names, e.g. for one field in 1D with the defaults:
        ``u, u^2, u_x, u*u_x, u^2*u_x, u_xx, u*u_xx, u^2*u_xx, u_xxx, u*u_xxx, u^2*u_xxx``.
    """
    if max_power < 0 or max_derivative < 0:
        raise InputError("max_power and max_derivative must be >= 0")
    monomials = [""]
    for deg in range(1, max_power + 1):
        for combo in combinations_with_replacement(fields, deg):
            parts = []
            for f in dict.fromkeys(combo):
                k = combo.count(f)
                parts.append(f if k == 1 else f"{f}^{k}")
            monomials.append("*".join(parts))
    derivs = [""] + [f"{f}_{s}" for s in _derivative_suffixes(axes, max_derivative) for f in fields]
    names = ["1"] if constant else []
    for d, m in product(derivs, monomials):
        if not d and not m:
            continue
        names.append("*".join(x for x in (m, d) if x))
    names += [canonical(e) for e in extra]
    return list(dict.fromkeys(names))


def vector_library(rho: str = "rho", p: str = "p", *, equation: str = "p", order: int = 2, dim: int = 2,
                   extra=()) -> list[str]:
    """Isotropic (rho, p) terms for the density equation (``equation="rho"``) or the polarisation one.

    Parameters
    ----------
    rho, p : str
        Names of the scalar density and the vector polarisation/velocity field.
    equation : {"rho", "p"}
        Which equation the library is for (scalar or vector terms).
    order : int
        Highest derivative order (1 or 2).
    dim : int
        Spatial dimension. In 1D the terms that coincide are dropped: ``div(p)*p`` and
        ``grad(|p|^2)`` equal ``p.grad(p)`` (up to a factor 2) and ``grad(div(p))`` equals ``lap(p)``.
    extra : sequence of str
        User-defined terms appended at the end.

    Returns
    -------
    list of str
        For ``"rho"``: ``dev(rho), div(p), div(dev(rho)*p), |p|^2`` and with ``order >= 2``
        ``lap(rho)``. For ``"p"``: ``p, dev(rho)*p, dev(rho)^2*p, |p|^2*p, grad(rho),
        dev(rho)*grad(rho)`` and with ``order >= 2`` ``lap(p), grad(div(p)), p.grad(p), div(p)*p,
        grad(|p|^2)``.
    """
    r, d = f"dev({rho})", f"{rho}"
    if equation == "rho":
        names = [r, f"div({p})", f"div({r}*{p})", f"|{p}|^2"]
        if order >= 2:
            names += [f"lap({d})"]
    elif equation == "p":
        names = [p, f"{r}*{p}", f"{r}^2*{p}", f"|{p}|^2*{p}", f"grad({d})", f"{r}*grad({d})"]
        if order >= 2:
            names += [f"lap({p})", f"{p}.grad({p})"]
            if dim > 1:
                names += [f"grad(div({p}))", f"div({p})*{p}", f"grad(|{p}|^2)"]
    else:
        raise InputError(f"equation must be 'rho' or 'p', got {equation!r}")
    names += [canonical(e) for e in extra]
    return list(dict.fromkeys(canonical(n) for n in names))


def default_library(bundle, lhs=None, *, max_power: int = 3, max_derivative: int = 3, extra=()) -> dict[str, list[str]]:
    """Left-hand sides and their candidate terms chosen from a bundle's fields: the one default library.

    A bundle with a scalar ``rho`` and a vector ``p`` gets the isotropic (rho, p) libraries of :func:`vector_library`
    for ``rho_t`` and ``p_t``; otherwise every scalar field ``u`` gets ``u_t`` with the PDE-FIND library of
    :func:`polynomial_library` (powers <= 3, so that bistable reactions ``u - u^3`` are in it; derivatives <= 3).

    Parameters
    ----------
    bundle : FieldBundle
        The fields (only their names, kinds, dimension and axes are read).
    lhs : sequence of str, optional
        Left-hand sides to build libraries for (default: as above). ``rho_t`` / ``p_t`` get the vector libraries
        when ``p`` is a vector field; any other one the scalar library of all scalar fields.
    max_power, max_derivative : int
        Scalar library: highest monomial degree and highest derivative order.
    extra : sequence of str
        User-defined terms appended to every library.

    Returns
    -------
    dict of str -> list of str
        ``{lhs: [term, ...]}``, the ``equations`` argument of :func:`~napari_dynfit.models.pde.discover_pde`.

    Raises
    ------
    InputError
        No ``lhs`` given and the bundle has neither (rho, p) nor a scalar field.
    """
    kinds = bundle.kinds
    scalars = [n for n, k in kinds.items() if k == "scalar"]
    vector = kinds.get("p") == "vector"
    if lhs is None:
        if kinds.get("rho") == "scalar" and vector:
            lhs = ["rho_t", "p_t"]
        elif scalars:
            lhs = [f"{s}_t" for s in scalars]
        else:
            raise InputError(f"no scalar fields in the bundle ({sorted(kinds)}); name the equations and "
                             "library explicitly")
    out = {}
    for name in lhs:
        if name in ("rho_t", "p_t") and vector:
            out[name] = vector_library(equation=name[:-2], dim=bundle.ndim, extra=extra)
        else:
            out[name] = polynomial_library(scalars, axes=bundle.space_axes, max_power=max_power,
                                           max_derivative=max_derivative, extra=extra)
    return out
