"""Model JSON: the on-disk form of a learned (or hand-written) PDE model.

Format ``dynfit-model/1``::

    {
      "format": "dynfit-model/1",
      "equations": {"u_t": {"u*u_x": -1.0, "u_xx": 0.1}},        # lhs -> {term: coefficient}
      "fields": ["u"],                                          # fields the terms read
      "axes": ["t", "x"],                                       # grid axes of those fields
      "reference": {"rho": 0.5},                                # values used by dev(...) terms
      "selection_probability": {"u_t": {"u*u_x": 1.0, ...}},   # max over penalties, every library term
      "confidence_intervals": {"u_t": {"u*u_x": [-1.02, -0.98]}},
      "library": {"u_t": ["u", "u_x", ...]},                   # candidate terms per equation
      "method": {...}, "diagnostics": {...}, "stability_path": {...}
    }

Term names follow :mod:`napari_dynfit.models.terms`; coefficients are in physical units (those of
the fields' coordinates). Only ``format`` and ``equations`` are required; a model written by hand
with just those is valid input to every consumer (dominant balance, PINN residuals, forward
integration).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._io import atomic_path, check_input_file
from ..errors import InputError
from ..validate import check_number
from .terms import canonical, term_fields

FORMAT = "dynfit-model/1"


def validate_model(model: dict) -> dict:
    """Check a model dict and return it with canonical term names and float coefficients.

    Raises
    ------
    InputError
        If ``format`` or ``equations`` is missing or malformed, or a term name does not parse.
    """
    if not isinstance(model, dict):
        raise InputError("a model must be a JSON object with 'format' and 'equations'")
    fmt = model.get("format", FORMAT)
    if fmt != FORMAT:
        raise InputError(f"model format '{fmt}' is not supported; expected '{FORMAT}'")
    eqs = model.get("equations")
    if not isinstance(eqs, dict) or not eqs:
        raise InputError("model has no 'equations': expected {\"u_t\": {\"u*u_x\": -1.0, ...}, ...}")
    out = dict(model)
    out["format"] = FORMAT
    clean = {}
    for lhs, terms in eqs.items():
        if not isinstance(terms, dict):
            raise InputError(f"equation '{lhs}' must map term names to coefficients")
        coefs = {}
        for name, c in terms.items():
            coefs[canonical(name)] = float(check_number(c, f"the coefficient of '{name}' in '{lhs}'"))
        clean[canonical(lhs)] = coefs
    out["equations"] = clean
    if "fields" not in out:
        out["fields"] = sorted(term_fields(list(clean) + [n for t in clean.values() for n in t]))
    return out


def write_model(model: dict, path) -> Path:
    """Validate ``model`` and write it as JSON (atomically)."""
    model = validate_model(model)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(model, indent=2, default=_jsonable))
    return path


def read_model(path) -> dict:
    """Read and validate a model JSON file."""
    p = check_input_file(path, suffixes=(".json",), what="model file")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read model '{p}' as JSON ({exc}): is the file complete?") from exc
    return validate_model(data)


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def format_equation(lhs: str, terms: dict[str, float], digits: int = 4) -> str:
    """Plain-text equation, e.g. ``u_t = -1.0 u*u_x + 0.1 u_xx`` (``0`` when there are no terms)."""
    parts = []
    for name, c in terms.items():
        mag = f"{abs(c):.{digits}g}"
        sign = "-" if c < 0 else "+"
        body = mag if name == "1" else f"{mag} {name}"
        parts.append((sign, body))
    if not parts:
        return f"{lhs} = 0"
    first_sign, first = parts[0]
    text = ("-" if first_sign == "-" else "") + first
    for sign, body in parts[1:]:
        text += f" {sign} {body}"
    return f"{lhs} = {text}"


def format_model(model: dict, digits: int = 4) -> str:
    """All equations of a model, one per line."""
    return "\n".join(format_equation(lhs, terms, digits) for lhs, terms in model["equations"].items())


def equation_latex(lhs: str, terms: dict[str, float], digits: int = 3) -> str:
    """Mathtext of one equation, e.g. ``$u_{t} = -1\\,u\\,u_{x} + 0.1\\,u_{xx}$``."""
    from .terms import term_latex

    parts = []
    for i, (name, c) in enumerate(terms.items()):
        sign = "-" if c < 0 else ("+" if i else "")
        mag = f"{abs(c):.{digits}g}"
        body = mag if name == "1" else f"{mag}\\,{term_latex(name)}"
        parts.append(f"{sign} {body}" if i else f"{sign}{body}")
    return f"${term_latex(lhs)} = {' '.join(parts) if parts else '0'}$"
