"""Learned models: the term vocabulary, PDE discovery with stability selection, model JSON."""

import sys as _sys

from ..fields import terms

# The term grammar lives in ``napari_dynfit.fields.terms`` (the weak form below it needs it, and ``fields`` must
# not import ``models``); ``napari_dynfit.models.terms`` stays importable as the same module object.
_sys.modules[__name__ + ".terms"] = terms

from .balance import BalanceResult, dominant_balance
from .integrate import forecast_error, integrate_model
from .library import default_library, polynomial_library, vector_library
from .model_json import equation_latex, format_equation, format_model, read_model, validate_model, write_model
from .pde import PDEDiscovery, discover_pde
from .stability import stability_selection
from .terms import canonical, evaluate_terms, parse_term, term_kind, term_latex

__all__ = ["BalanceResult", "PDEDiscovery", "canonical", "default_library", "discover_pde", "dominant_balance", "equation_latex", "evaluate_terms", "forecast_error", "format_equation",
           "format_model", "integrate_model", "parse_term", "polynomial_library", "read_model",
           "stability_selection", "term_kind", "term_latex", "validate_model", "vector_library", "write_model"]
