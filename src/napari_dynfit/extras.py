"""Optional extras: which ``pip install 'napari-dynfit[EXTRA]'`` brings a missing module.

The core (files, APR, tracking, fields, PDE discovery, force balances) needs none of them. The learning
stack (PINNs, probability flow inference, GPU filters) needs ``[learn]`` (torch, geomloss); pyapr's
construction back end and graph-cut segmentation need ``[pyapr]`` (CPython 3.11 wheels only).
"""

from __future__ import annotations

#: top-level module name -> the extra that installs it
EXTRA_OF = {
    "torch": "learn",
    "geomloss": "learn",
    "pyro": "learn",
    "pyapr": "pyapr",
    "napari": "all",
    "geff": "all",
    "laptrack": "bench",
    "trackpy": "bench",
    "traccuracy": "bench",
}


def missing_extra(exc: BaseException) -> str | None:
    """The extra whose absence raised ``exc`` (a :class:`ModuleNotFoundError`), or None.

    Parameters
    ----------
    exc : BaseException
        Any exception; only a ``ModuleNotFoundError`` for a module of :data:`EXTRA_OF` (or a submodule) counts.
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    return EXTRA_OF.get(exc.name.split(".")[0])


def extra_message(exc: BaseException) -> str | None:
    """One line naming the missing module and the extra to install, or None if ``exc`` is not such a case."""
    extra = missing_extra(exc)
    if extra is None:
        return None
    module = exc.name.split(".")[0]
    return f"this needs {module}, which is not installed: pip install 'napari-dynfit[{extra}]'"
