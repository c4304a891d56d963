"""Continuum fields: the :class:`FieldBundle` container, coarse-graining and derivatives."""

from .bundle import FieldBundle

__all__ = ["FieldBundle"]
