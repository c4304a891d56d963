"""Loss terms of a PINN: data fits, boundary/initial conditions and PDE residuals.

Every loss is a mean squared error over a set of points ``(N, 1 + d)``, columns
``(t, [z,] y, x)`` in physical units, optionally mini-batched:

* :class:`PointLoss`: a term of the fields (``"u"``, ``"grad(phi)"``, ``"u_x"``...) against target
  values at points. Data fits, Dirichlet/Neumann boundary and initial conditions are all of this
  form (their ``kind`` only labels them).
* :class:`ResidualLoss`: an equation ``lhs = sum_k c_k term_k`` in the project's term vocabulary
  (e.g. ``c_t = Dc lap(c) - k c + s``), evaluated at collocation points. Each coefficient is a
  number or the name of a trainable :class:`Coefficient` (``"-k"`` for minus it). Vector equations
  (``p_t = ...``) give one residual per component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import InputError
from ..terms import parse_term

KINDS = ("data", "boundary", "initial", "residual")


@dataclass
class Coefficient:
    """A scalar coefficient of a residual, trainable unless ``trainable=False``.

    Parameters
    ----------
    init : float
        Initial value (physical units).
    positive : bool
        Optimise ``log(value)`` (keeps it positive; steps are relative, whatever the units).
    trainable : bool
        Learn it (``False``: a known constant).
    """

    init: float
    positive: bool = True
    trainable: bool = True

    def __post_init__(self):
        if not np.isfinite(self.init) or (self.positive and self.init <= 0):
            raise InputError(f"coefficient initial value {self.init} must be finite (and > 0 when positive)")


def _as_points(points, ndim_plus_t=None) -> np.ndarray:
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or not 2 <= p.shape[1] <= 4 or len(p) == 0:
        raise InputError(f"points must be a non-empty (N, 1 + d) array of (t, [z,] y, x), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise InputError("points contain NaN or infinite coordinates: drop those rows")
    if ndim_plus_t is not None and p.shape[1] != ndim_plus_t:
        raise InputError(f"points have {p.shape[1]} columns but the network takes {ndim_plus_t} (t + space)")
    return p


@dataclass
class PointLoss:
    """Mean squared error of a term against targets at points.

    Parameters
    ----------
    name : str
        Name of the loss (shown in histories and plots).
    term : str
        Term of the fields to compare, e.g. ``"u"``, ``"grad(phi)"``, ``"u_x"``.
    points : ndarray, shape (N, 1 + d)
        Where, ``(t, [z,] y, x)`` in physical units.
    values : ndarray, shape (N,) or (N, d)
        Target values (scalar or vector terms).
    kind : {"data", "boundary", "initial"}
        Label only.
    batch_size : int, optional
        Points drawn at random per step (default all).
    """

    name: str
    term: str
    points: np.ndarray
    values: np.ndarray
    kind: str = "data"
    batch_size: int | None = None

    def __post_init__(self):
        parse_term(self.term)
        self.points = _as_points(self.points)
        self.values = np.asarray(self.values, dtype=float)
        if self.values.shape[0] != len(self.points) or self.values.ndim > 2:
            raise InputError(f"loss '{self.name}': {len(self.points)} points but values of shape {self.values.shape}")
        if not np.isfinite(self.values).all():
            raise InputError(f"loss '{self.name}': values contain NaN or infinite entries: drop those points")
        if self.kind not in KINDS[:3]:
            raise InputError(f"loss '{self.name}': kind must be one of {KINDS[:3]}")


@dataclass
class ResidualLoss:
    """Mean squared residual of ``lhs - sum_k c_k term_k`` at collocation points.

    Parameters
    ----------
    name : str
        Name of the loss.
    lhs : str
        Left-hand side term, e.g. ``"c_t"``.
    rhs : dict of str -> float or str
        Terms and their coefficients: a number, the name of a :class:`Coefficient` or ``"-name"``.
    points : ndarray, shape (N, 1 + d)
        Collocation points ``(t, [z,] y, x)``.
    batch_size : int, optional
        Points drawn at random per step (default all).
    """

    name: str
    lhs: str
    rhs: dict
    points: np.ndarray
    batch_size: int | None = None
    kind: str = field(default="residual", init=False)

    def __post_init__(self):
        parse_term(self.lhs)
        for t in self.rhs:
            parse_term(t)
        self.points = _as_points(self.points)

    def coefficient_names(self) -> set[str]:
        """Names of the coefficients the equation refers to."""
        return {c.lstrip("-") for c in self.rhs.values() if isinstance(c, str)}

    def equation(self, values: dict[str, float]) -> str:
        """The equation as text with the given coefficient values."""
        parts = []
        for term, c in self.rhs.items():
            v = float(c) if not isinstance(c, str) else (-1 if c.startswith("-") else 1) * values[c.lstrip("-")]
            parts.append(f"{v:+.4g} {term}")
        return f"{self.lhs} = " + " ".join(parts).lstrip("+")


def batch_indices(n: int, batch_size: int | None, gen: torch.Generator) -> torch.Tensor | None:
    """Random indices of one mini-batch (``None``: all points)."""
    if batch_size is None or batch_size >= n:
        return None
    return torch.randperm(n, generator=gen)[:batch_size]
