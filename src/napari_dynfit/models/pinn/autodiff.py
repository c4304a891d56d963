"""Evaluate equation terms on a field network with torch autograd.

Term names follow the project's vocabulary (:mod:`napari_dynfit.models.terms`, parsed with its
:func:`~napari_dynfit.models.terms.parse_term`): ``c_t``, ``lap(c)``, ``u*u_x``, ``grad(rho)``,
``div(p)``, ``|p|^2*p``, ``p.grad(p)``, ``d_x(u^2)``, ``dev(rho)``... Here every factor is computed
from the network outputs at collocation points by automatic differentiation (exact derivatives
of the network), instead of finite differences on a grid. Sub-terms and gradients are cached per
evaluator, so ``grad(c)`` and ``lap(c)`` share the first derivatives of ``c``.

Fields that are not network outputs can be given as ``known`` torch functions of the points (e.g.
a known source ``s(x)``); they are differentiated the same way.
"""

from __future__ import annotations

import torch

from ...errors import InputError
from ..terms import Deriv, Dot, Field, Norm, One, Op, Power, Product, parse_term


class TermEvaluator:
    """Terms of the network fields at a fixed set of points.

    Parameters
    ----------
    network : FieldNetwork
        The field network; its outputs are the fields the terms may read.
    points : torch.Tensor, shape (N, 1 + d)
        Points ``(t, [z,] y, x)`` in physical units (a leaf tensor is created internally).
    known : dict of str -> callable, optional
        Extra fields as torch functions ``f(points) -> (N,)`` or ``(N, d)``.
    reference : dict of str -> float, optional
        Reference values of ``dev(...)`` arguments; default: the mean over the points.
    """

    def __init__(self, network, points: torch.Tensor, known=None, reference=None):
        self.X = points.detach().clone().requires_grad_(True)
        self.net = network
        self.out = network(self.X)
        self.known = dict(known or {})
        self.reference = dict(reference or {})
        self.d = network.ndim
        self.axis = {"t": 0, **{a: 1 + i for i, a in enumerate(network.space_axes)}}
        self.cache: dict[str, torch.Tensor] = {}
        self._grads: dict[str, torch.Tensor] = {}

    # --- derivatives ------------------------------------------------------------------------
    def _gradient(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """Full gradient ``(N, 1 + d)`` of a scalar-per-point tensor, cached by ``key``."""
        if key not in self._grads:
            if not value.requires_grad:
                self._grads[key] = torch.zeros_like(self.X)
            else:
                g = torch.autograd.grad(value.sum(), self.X, create_graph=True, allow_unused=True)[0]
                self._grads[key] = torch.zeros_like(self.X) if g is None else g
        return self._grads[key]

    def partial(self, key: str, value: torch.Tensor, letters) -> torch.Tensor:
        """Partial derivatives of ``value`` (scalar ``(N,)`` or vector ``(N, d)``) along ``letters``."""
        for letter in letters:
            if letter not in self.axis:
                raise InputError(f"derivative along '{letter}' but the network has axes {tuple(self.axis)}")
            if value.ndim == 2:
                value = torch.stack([self._gradient(f"{key}[{i}]", value[:, i])[:, self.axis[letter]]
                                     for i in range(value.shape[1])], dim=1)
            else:
                value = self._gradient(key, value)[:, self.axis[letter]]
            key = f"{key}_{letter}"
        return value

    # --- evaluation -------------------------------------------------------------------------
    def __call__(self, term) -> torch.Tensor:
        """Value of a term (name or parsed node): ``(N,)`` for scalars, ``(N, d)`` for vectors."""
        node = parse_term(term)
        key = str(node)
        if key not in self.cache:
            self.cache[key] = self._eval(node)
        return self.cache[key]

    def _scalar(self, node) -> torch.Tensor:
        v = self(node)
        if v.ndim != 1:
            raise InputError(f"'{node}' is a vector but a scalar is needed here")
        return v

    def _vector(self, node) -> torch.Tensor:
        v = self(node)
        if v.ndim != 2:
            raise InputError(f"'{node}' is a scalar but a vector is needed here")
        return v

    def _field(self, name: str) -> torch.Tensor:
        if name in self.out:
            return self.out[name]
        if name in self.known:
            return self.known[name](self.X)
        raise InputError(f"term uses field '{name}' but the network outputs {sorted(self.out)}"
                         + (f" and the known fields are {sorted(self.known)}" if self.known else ""))

    def _eval(self, node) -> torch.Tensor:
        if isinstance(node, One):
            return torch.ones(self.X.shape[0], dtype=self.X.dtype, device=self.X.device)
        if isinstance(node, Field):
            base = self._field(node.field)
            return self.partial(node.field, base, sorted(node.derivs, key="tzyx".index)) if node.derivs else base
        if isinstance(node, Deriv):
            return self.partial(str(node.arg), self(node.arg), node.derivs)
        if isinstance(node, Op):
            key = str(node.arg)
            if node.op == "grad":
                s = self._scalar(node.arg)
                return torch.stack([self.partial(key, s, a) for a in self.net.space_axes], dim=1)
            if node.op == "div":
                v = self._vector(node.arg)
                return sum(self.partial(f"{key}[{i}]", v[:, i], a) for i, a in enumerate(self.net.space_axes))
            if node.op == "lap":
                f = self(node.arg)
                return sum(self.partial(key, f, (a, a)) for a in self.net.space_axes)
            if node.op == "dev":
                s = self._scalar(node.arg)
                ref = self.reference.get(key)
                return s - (s.mean() if ref is None else float(ref))
        if isinstance(node, Norm):
            sq = (self._vector(node.arg) ** 2).sum(dim=1)
            return sq ** (node.power // 2) if node.power % 2 == 0 else torch.sqrt(sq) ** node.power
        if isinstance(node, Dot):
            left = self._vector(node.left)
            if isinstance(node.right, Op) and node.right.op == "grad":
                f = self(node.right.arg)
                key = str(node.right.arg)
                out = 0.0
                for i, a in enumerate(self.net.space_axes):
                    di = self.partial(key, f, a)
                    out = out + (left[:, i:i + 1] * di if di.ndim == 2 else left[:, i] * di)
                return out
            return (left * self._vector(node.right)).sum(dim=1)
        if isinstance(node, Power):
            return self._scalar(node.base) ** node.power
        if isinstance(node, Product):
            vals = [self(f) for f in node.factors]
            if sum(v.ndim == 2 for v in vals) > 1:
                raise InputError(f"'{node}' multiplies more than one vector; use a dot product 'a.b'")
            scalar = torch.ones(self.X.shape[0], dtype=self.X.dtype, device=self.X.device)
            vec = None
            for v in vals:
                if v.ndim == 2:
                    vec = v
                else:
                    scalar = scalar * v
            return scalar if vec is None else scalar[:, None] * vec
        raise InputError(f"cannot evaluate term '{node}' on a network")
