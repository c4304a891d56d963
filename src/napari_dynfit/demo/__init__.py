"""The stages of ``dynfit demo``, in one place: one module per stage, each defining
``DEMO_STAGE = (order, title, function)`` where ``function(ctx)`` takes a
:class:`~napari_dynfit.report.DemoContext` (runs the stage on the embedded sample, adds to ``ctx.report``, leaves
artefacts in ``ctx.artefacts``). ``dynfit demo`` (:mod:`napari_dynfit.commands.demo`) runs them by ``order``.
"""

from __future__ import annotations

import importlib
import pkgutil


def demo_stages() -> list:
    """The ``(order, title, function)`` stages of the modules of this package, in order."""
    stages = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            stages.append(importlib.import_module(f"{__name__}.{info.name}").DEMO_STAGE)
    return sorted(stages, key=lambda s: s[0])
