"""The equation-term vocabulary: parse term names and evaluate them on a :class:`FieldBundle`.

Every learned model, dominant balance and PINN residual names its terms with this grammar, so a
name written by one stage is understood by all others. Coefficients multiply whole terms; an
equation is ``lhs = sum_k c_k term_k`` with ``lhs`` itself a term (``u_t``, ``rho_t``, ``p_t``).

Grammar
-------
::

    term    := "1" | factor ("*" factor)*
    factor  := atom ["." atom] ["^" INT]
    atom    := FIELD ["_" DERIVS]              u, u_x, u_xx, rho_t, p_t, u_xy
             | OP "(" term ")"                 grad(rho), div(p), lap(p), dev(rho), grad(div(p))
             | "d_" DERIVS "(" term ")"        d_x(u^2), d_xx(u*u_x)
             | "|" term "|^" INT               |p|^2, |p|^4
             | "(" term ")"                    grouping, e.g. (u*v)^2

* ``FIELD`` is a field name of the bundle (letters and digits, starting with a letter, no ``_``).
* ``DERIVS`` are axis letters ``t``, ``z``, ``y``, ``x``; each letter is one derivative
  (``u_xxx`` is the third derivative in ``x``, ``u_tx`` a mixed derivative).
* ``OP`` is one of

  ``grad(s)``  gradient of a scalar -> vector (components in axis order);
  ``div(v)``   divergence of a vector -> scalar;
  ``lap(f)``   Laplacian of a scalar or (component-wise) a vector;
  ``dev(s)``   deviation ``s - s0`` of a scalar from its reference value ``s0`` (by default the mean
  over the whole bundle, otherwise ``reference[str(s)]``): vector libraries expand their
  density dependence around the mean density, ``dev(rho)*p`` instead of ``rho*p``, which is
  otherwise nearly collinear with ``p``.

* ``a.b`` is the dot product of two vectors; ``a.grad(f)`` is the directional derivative
  ``(a . grad) f`` of a scalar or (component-wise) of a vector ``f``, e.g. ``p.grad(p)``.
* ``|v|^n`` is the Euclidean norm of a vector to an even or odd integer power (``|p|^2*p``).
* ``^n`` on a scalar atom is a power (``u^2``, ``dev(rho)^2``); vectors cannot be raised to powers.
* A product may contain at most one vector factor; its kind (scalar/vector) is the term's kind.

Values are computed on the bundle's grid: scalar terms have shape ``(t, *space)``, vector terms
``(t, *space, d)``. Derivatives use the physical coordinates, so coefficients are in physical units.
Derivative methods (:mod:`napari_dynfit.fields.derivatives`): ``"finite"`` (local polynomial /
Savitzky-Golay differences, optionally smoothing with ``window``), ``"spectral"`` (Fourier on
periodic spatial axes, finite differences elsewhere). Weak-form integrals of the same terms are
computed by :mod:`napari_dynfit.fields.weak`.

Why our own: the vocabulary is the product (it ties PDE discovery, balances and PINNs together);
sympy would parse the algebra but not the vector operators, units and grid evaluation we need.
"""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

OPERATORS = ("grad", "div", "lap", "dev")
AXIS_LETTERS = ("t", "z", "y", "x")


# --- syntax tree ------------------------------------------------------------------------------
class Node:
    """Base class of parsed terms; ``str(node)`` is the canonical name."""

    def children(self) -> tuple[Node, ...]:
        """The sub-terms: the dataclass fields that hold a term or a tuple of terms, in order."""
        out: list[Node] = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Node):
                out.append(v)
            elif isinstance(v, tuple):
                out.extend(x for x in v if isinstance(x, Node))
        return tuple(out)

    def fields(self) -> set[str]:
        """Names of the bundle fields the term reads."""
        out: set[str] = set()
        for c in self.children():
            out |= c.fields()
        return out

    def max_derivative(self) -> int:
        """Largest total number of derivatives applied to any field along one path of the tree."""
        return max((c.max_derivative() for c in self.children()), default=0)

    @property
    def name(self) -> str:
        return str(self)


@dataclass(frozen=True)
class One(Node):
    """The constant term ``1``."""

    def __str__(self):
        return "1"


@dataclass(frozen=True)
class Field(Node):
    """A field with optional derivatives, e.g. ``u_xx`` -> ``Field("u", ("x", "x"))``."""

    field: str
    derivs: tuple[str, ...] = ()

    def __str__(self):
        return self.field + ("_" + "".join(self.derivs) if self.derivs else "")

    def fields(self):
        return {self.field}

    def max_derivative(self):
        return len(self.derivs)


@dataclass(frozen=True)
class Op(Node):
    """``grad``, ``div``, ``lap`` or ``dev`` applied to a term."""

    op: str
    arg: Node

    def __str__(self):
        return f"{self.op}({self.arg})"

    def max_derivative(self):
        return self.arg.max_derivative() + {"grad": 1, "div": 1, "lap": 2, "dev": 0}[self.op]


@dataclass(frozen=True)
class Deriv(Node):
    """Partial derivatives of a term, ``d_xx(u^2)``."""

    derivs: tuple[str, ...]
    arg: Node

    def __str__(self):
        return f"d_{''.join(self.derivs)}({self.arg})"

    def max_derivative(self):
        return self.arg.max_derivative() + len(self.derivs)


class _Formatter(string.Formatter):
    """``str.format`` with one more conversion, ``!w``: a sub-term in parentheses where it would bind loosely."""

    def convert_field(self, value, conversion):
        return _wrap(value) if conversion == "w" else super().convert_field(value, conversion)


def _node(name: str, doc: str, fmt: str, *fields: tuple[str, type]) -> type:
    """A frozen :class:`Node` dataclass ``name`` with ``fields`` (in order) whose ``str`` is ``fmt`` filled in with
    them (``{field!w}``: the sub-term wrapped by :func:`_wrap`); the generic node of the small operators below."""

    def __str__(self):
        return _Formatter().format(fmt, **{f: getattr(self, f) for f, _ in fields})

    cls = dataclasses.make_dataclass(name, list(fields), bases=(Node,), frozen=True,
                                     namespace={"__doc__": doc, "__str__": __str__})
    cls.__module__ = __name__
    return cls


Norm = _node("Norm", "``|v|^n``: Euclidean norm of a vector term to the power ``n``.", "|{arg}|^{power}",
             ("arg", Node), ("power", int))
Dot = _node("Dot", "``a.b`` (dot product) or ``a.grad(f)`` (directional derivative).", "{left!w}.{right!w}",
            ("left", Node), ("right", Node))
Power = _node("Power", "A scalar atom to an integer power, ``u^2``.", "{base!w}^{power}", ("base", Node), ("power", int))


@dataclass(frozen=True)
class Product(Node):
    """A product of factors, ``u*u_x``."""

    factors: tuple[Node, ...]

    def __str__(self):
        return "*".join(_wrap(f) if isinstance(f, Product) else str(f) for f in self.factors)


def _wrap(node: Node) -> str:
    return f"({node})" if isinstance(node, (Product, Power, Dot)) else str(node)


# --- parser -----------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<int>\d+)|(?P<name>[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z]+)?)|(?P<sym>[()*^|.]))")


def _tokenize(text: str) -> list[str]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InputError(f"cannot parse term '{text}' at '{text[pos:]}': see the grammar in "
                             "napari_dynfit.fields.terms (e.g. 'u*u_x', 'lap(rho)', '|p|^2*p')")
        out.append(m.group(m.lastgroup))
        pos = m.end()
    return out


def _split_derivs(text: str, letters: str) -> tuple[str, ...]:
    bad = set(letters) - set(AXIS_LETTERS)
    if bad or not letters:
        raise InputError(f"'{text}': derivative letters must be among t, z, y, x (got '{letters}')")
    return tuple(letters)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expect: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expect is not None and tok != expect):
            want = f"'{expect}'" if expect else "more input"
            raise InputError(f"cannot parse term '{self.text}': expected {want}, got {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.product()
        if self.peek() is not None:
            raise InputError(f"cannot parse term '{self.text}': unexpected {self.peek()!r}")
        return node

    def product(self) -> Node:
        factors = [self.factor()]
        while self.peek() == "*":
            self.take()
            factors.append(self.factor())
        flat: list[Node] = []
        for f in factors:
            flat.extend(f.factors if isinstance(f, Product) else (f,))
        return flat[0] if len(flat) == 1 else Product(tuple(flat))

    def factor(self) -> Node:
        node = self.atom()
        if self.peek() == ".":
            self.take()
            node = Dot(node, self.atom())
        if self.peek() == "^":
            self.take()
            node = Power(node, self._int())
        return node

    def _int(self) -> int:
        tok = self.take()
        if not tok.isdigit():
            raise InputError(f"cannot parse term '{self.text}': expected an integer power, got {tok!r}")
        return int(tok)

    def atom(self) -> Node:
        tok = self.take()
        if tok == "|":
            inner = self.product()
            self.take("|")
            self.take("^")
            return Norm(inner, self._int())
        if tok == "(":
            inner = self.product()
            self.take(")")
            return inner
        if tok == "1":
            return One()
        if tok[0].isalpha():
            if self.peek() == "(":
                self.take("(")
                inner = self.product()
                self.take(")")
                if tok in OPERATORS:
                    return Op(tok, inner)
                if tok.startswith("d_"):
                    return Deriv(_split_derivs(tok, tok[2:]), inner)
                raise InputError(f"unknown operator '{tok}' in term '{self.text}'; "
                                 f"use one of {', '.join(OPERATORS)} or d_<axes>")
            if "_" in tok:
                name, letters = tok.split("_", 1)
                return Field(name, _split_derivs(tok, letters))
            return Field(tok)
        raise InputError(f"cannot parse term '{self.text}': unexpected {tok!r}")


def parse_term(name: str) -> Node:
    """Parse a term name into a syntax tree.

    Parameters
    ----------
    name : str
        A term such as ``"u*u_x"``, ``"u_xx"``, ``"lap(rho)"``, ``"|p|^2*p"``, ``"p.grad(p)"``.

    Returns
    -------
    Node
        The parsed term; ``str(node)`` is its canonical name (whitespace removed).

    Raises
    ------
    InputError
        If the name does not follow the grammar in the module docstring.
    """
    if isinstance(name, Node):
        return name
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"term name must be a non-empty string, got {name!r}")
    return _Parser(name).parse()


def canonical(name: str) -> str:
    """The canonical spelling of a term name (``"u * u_x"`` -> ``"u*u_x"``)."""
    return str(parse_term(name))


def term_fields(names) -> set[str]:
    """The bundle fields read by the given terms."""
    out: set[str] = set()
    for n in names:
        out |= parse_term(n).fields()
    return out


def max_derivative_order(names) -> int:
    """The highest derivative order appearing in the given terms."""
    return max((parse_term(n).max_derivative() for n in names), default=0)


# --- evaluation -------------------------------------------------------------------------------
class _Evaluator:
    """Evaluate nodes on a bundle, caching every sub-term by its canonical name."""

    def __init__(self, bundle, method: str, reference: dict | None, deriv_options: dict):
        from .derivatives import derivative

        self.bundle = bundle
        self.d = bundle.ndim
        self.axis_index = {"t": 0, **{a: 1 + i for i, a in enumerate(bundle.space_axes)}}
        self.reference = dict(reference or {})
        self.cache: dict[str, np.ndarray] = {}
        self._derivative = derivative
        self.method = method
        self.deriv_options = deriv_options

    # kinds from array rank
    def kind(self, arr: np.ndarray) -> str:
        extra = arr.ndim - (1 + self.d)
        return {0: "scalar", 1: "vector"}.get(extra, "tensor")

    def deriv(self, arr: np.ndarray, letters) -> np.ndarray:
        for letter, count in _count(letters).items():
            if letter not in self.axis_index:
                raise InputError(f"derivative along '{letter}' but the fields have axes "
                                 f"{('t',) + self.bundle.space_axes}")
            arr = self._derivative(arr, self.axis_index[letter], count, bundle=self.bundle,
                                   method=self.method, **self.deriv_options)
        return arr

    def grad_component(self, arr, i):
        return self.deriv(arr, (self.bundle.space_axes[i],))

    def __call__(self, node: Node) -> np.ndarray:
        key = str(node)
        if key not in self.cache:
            self.cache[key] = self._eval(node)
        return self.cache[key]

    def _need(self, node: Node, kind: str) -> np.ndarray:
        val = self(node)
        if self.kind(val) != kind:
            raise InputError(f"'{node}' is a {self.kind(val)} but a {kind} is needed here")
        return val

    def _eval(self, node: Node) -> np.ndarray:
        b = self.bundle
        if isinstance(node, One):
            return np.ones(b.shape)
        if isinstance(node, Field):
            if node.field not in b.fields:
                raise InputError(f"term uses field '{node.field}' but the bundle has {sorted(b.fields)}")
            base = np.asarray(b.fields[node.field], dtype=float)
            if b.kinds[node.field] == "tensor":
                raise InputError(f"tensor field '{node.field}' cannot be used in terms; use its components")
            return self.deriv(base, node.derivs) if node.derivs else base
        if isinstance(node, Deriv):
            return self.deriv(self(node.arg), node.derivs)
        if isinstance(node, Op):
            if node.op == "grad":
                s = self._need(node.arg, "scalar")
                return np.stack([self.grad_component(s, i) for i in range(self.d)], axis=-1)
            if node.op == "div":
                v = self._need(node.arg, "vector")
                return sum(self.grad_component(v[..., i], i) for i in range(self.d))
            if node.op == "lap":
                f = self(node.arg)
                return sum(self.deriv(f, (a, a)) for a in b.space_axes)
            if node.op == "dev":
                s = self._need(node.arg, "scalar")
                ref = self.reference.get(str(node.arg))
                return s - (float(np.mean(s)) if ref is None else float(ref))
        if isinstance(node, Norm):
            v = self._need(node.arg, "vector")
            sq = np.sum(v * v, axis=-1)
            return sq ** (node.power // 2) if node.power % 2 == 0 else np.sqrt(sq) ** node.power
        if isinstance(node, Dot):
            left = self._need(node.left, "vector")
            right = node.right
            if isinstance(right, Op) and right.op == "grad":
                f = self(right.arg)
                out = 0.0
                for i in range(self.d):
                    li = left[..., i]
                    di = self.grad_component(f, i)
                    out = out + (li[..., None] * di if di.ndim > li.ndim else li * di)
                return out
            r = self._need(right, "vector")
            return np.sum(left * r, axis=-1)
        if isinstance(node, Power):
            return self._need(node.base, "scalar") ** node.power
        if isinstance(node, Product):
            vals = [self(f) for f in node.factors]
            kinds = [self.kind(v) for v in vals]
            if sum(k != "scalar" for k in kinds) > 1:
                raise InputError(f"'{node}' multiplies more than one vector; use a dot product 'a.b'")
            out = np.ones(b.shape)
            vec = None
            for v, k in zip(vals, kinds):
                if k == "scalar":
                    out = out * v
                else:
                    vec = v
            return out if vec is None else out[..., None] * vec
        raise InputError(f"cannot evaluate term '{node}'")


def _count(letters) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in letters:
        out[a] = out.get(a, 0) + 1
    return out


def evaluate_terms(bundle, names, *, method: str = "finite", reference: dict | None = None,
                   window: int | None = None, polyorder: int | None = None) -> dict[str, np.ndarray]:
    """Evaluate terms on the grid of a field bundle.

    Parameters
    ----------
    bundle : FieldBundle
        Fields on a ``(t, *space)`` grid; derivatives use its physical coordinates and periodicity.
    names : iterable of str
        Term names (grammar in the module docstring), including time derivatives such as ``"u_t"``.
    method : {"finite", "spectral", "decoupled"}
        ``"finite"``: local polynomial (Savitzky-Golay) derivatives, exact central differences with
        the default ``window``; ``"spectral"``: Fourier derivatives along periodic spatial axes
        (finite differences along time and non-periodic axes); ``"decoupled"``: centre-free
        stencils (no noise bias in products, see :mod:`napari_dynfit.fields.derivatives`).
    reference : dict, optional
        Reference values of ``dev(...)`` arguments by canonical name, e.g. ``{"rho": 0.5}``
        (a model JSON stores them under ``"reference"``). Default: the mean over the bundle.
    window, polyorder : int, optional
        Finite differences only: points of the local polynomial fit (odd) and its degree. A window
        wider than the stencil smooths noise (PDE-FIND's polynomial differentiation).

    Returns
    -------
    dict of str -> ndarray
        Keyed by the names as given; scalar terms ``(t, *space)``, vector terms ``(t, *space, d)``.
    """
    opts = {k: v for k, v in (("window", window), ("polyorder", polyorder)) if v is not None}
    ev = _Evaluator(bundle, method, reference, opts)
    return {n: ev(parse_term(n)) for n in names}


def term_kind(name, field_kinds: dict[str, str]) -> str:
    """``"scalar"`` or ``"vector"``: the kind of a term, from the kinds of the fields it reads.

    Parameters
    ----------
    name : str or Node
        The term.
    field_kinds : dict of str -> str
        ``FieldBundle.kinds`` (or any mapping of field name to ``"scalar"``/``"vector"``).
    """
    def kind(node: Node) -> str:
        if isinstance(node, One):
            return "scalar"
        if isinstance(node, Field):
            if node.field not in field_kinds:
                raise InputError(f"term uses field '{node.field}' but the fields are {sorted(field_kinds)}")
            return field_kinds[node.field]
        if isinstance(node, Deriv):
            return kind(node.arg)
        if isinstance(node, Op):
            inner = kind(node.arg)
            want = {"grad": "scalar", "div": "vector", "dev": "scalar"}.get(node.op)
            if want is not None and inner != want:
                raise InputError(f"{node.op}() needs a {want} argument, '{node.arg}' is a {inner}")
            return {"grad": "vector", "div": "scalar", "dev": "scalar", "lap": inner}[node.op]
        if isinstance(node, Norm):
            return "scalar"
        if isinstance(node, Dot):
            if isinstance(node.right, Op) and node.right.op == "grad":
                return kind(node.right.arg)
            return "scalar"
        if isinstance(node, Power):
            return "scalar"
        kinds = [kind(f) for f in node.factors]
        if kinds.count("vector") > 1:
            raise InputError(f"'{node}' multiplies more than one vector; use a dot product 'a.b'")
        return "vector" if "vector" in kinds else "scalar"

    return kind(parse_term(name))


_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "kappa", "lambda", "mu", "nu",
          "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Phi", "Psi",
          "Omega"}


def term_latex(name) -> str:
    """LaTeX (matplotlib mathtext) for a term: ``"u*u_x"`` -> ``u\\,u_{x}``, ``"lap(rho)"`` -> ``\\nabla^2 \\rho``."""

    def sym(f):
        return "\\" + f if f in _GREEK else f

    def tex(node) -> str:
        if isinstance(node, One):
            return "1"
        if isinstance(node, Field):
            return sym(node.field) + ("_{" + "".join(node.derivs) + "}" if node.derivs else "")
        if isinstance(node, Op):
            arg = tex(node.arg)
            if not isinstance(node.arg, (Field, One)):
                arg = f"({arg})"
            return {"grad": "\\nabla ", "div": "\\nabla\\cdot ", "lap": "\\nabla^2 ", "dev": "\\delta "}[node.op] + arg
        if isinstance(node, Deriv):
            return "\\partial_{" + "".join(node.derivs) + "}(" + tex(node.arg) + ")"
        if isinstance(node, Norm):
            return f"|{tex(node.arg)}|^{{{node.power}}}"
        if isinstance(node, Dot):
            if isinstance(node.right, Op) and node.right.op == "grad":
                right = tex(node.right.arg)
                return f"({tex(node.left)}\\cdot\\nabla) {right}"
            return f"{tex(node.left)}\\cdot {tex(node.right)}"
        if isinstance(node, Power):
            base = tex(node.base)
            if isinstance(node.base, (Product, Power, Dot, Op)) or (isinstance(node.base, Field) and node.base.derivs):
                base = f"({base})"
            return f"{base}^{{{node.power}}}"
        return "\\,".join(tex(f) for f in node.factors)

    return tex(parse_term(name))
