"""Learned models: the term vocabulary, PDE discovery with stability selection, model JSON."""

from .model_json import format_equation, format_model, read_model, validate_model, write_model
from .terms import canonical, evaluate_terms, parse_term, term_kind

__all__ = ["canonical", "evaluate_terms", "format_equation", "format_model", "parse_term", "read_model",
           "term_kind", "validate_model", "write_model"]
