"""Continuum fields: the :class:`FieldBundle` container, coarse-graining and derivatives.

``coarse_grain``, ``coarse_grain_table``, ``coarse_grain_particles`` (numba), ``derivative`` and
``weak_features`` are imported on first use, so that ``import napari_dynfit.fields`` stays light.
"""

from .bundle import FieldBundle

_LAZY = {
    "coarse_grain": ".coarse_grain", "coarse_grain_table": ".coarse_grain", "coarse_grain_particles": ".coarse_grain",
    "derivative": ".derivatives", "weak_features": ".weak", "read_pdefind_mat": ".matfile",
}

__all__ = ["FieldBundle", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
