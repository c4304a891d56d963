"""Whether stored results were made with the settings wanted now: one comparison for every cache and checkpoint.

The closure bench's cached kinetic runs record their settings in the bundle's attributes, the stationary
checkpoints in ``meta_`` entries of an ``.npz``; both ask :func:`settings_mismatch` whether the recorded
settings (solver version, closure fingerprint and the rest) are the wanted ones, and what differs.
"""

from __future__ import annotations

import numpy as np

_MISSING = object()


def _same(a, b) -> bool:
    """Whether two settings' values are equal, compared as arrays; NaN equals NaN (a field or state that holds
    NaN is the same setting when given again); values that cannot be compared (a ragged list against an array)
    differ."""
    try:
        x, y = np.asarray(a), np.asarray(b)
        nan = x.dtype.kind in "fc" or y.dtype.kind in "fc"
        if nan and x.dtype.kind in "biufc" and y.dtype.kind in "biufc":
            return bool(np.array_equal(x, y, equal_nan=True))
        return bool(np.array_equal(x, y))
    except (TypeError, ValueError):  # ragged or incomparable values
        pass
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. an array against a ragged list: no single truth value
        return False


def _short(v) -> str:
    """A setting's value in a few characters (an array by its shape, a long string by its start)."""
    a = v if isinstance(v, np.ndarray) else np.asarray(v, dtype=object)
    if a.ndim == 0:
        v = a.item()
        return repr(v if len(v) <= 16 else v[:10]) + ("..." if len(v) > 16 else "") if isinstance(v, str) else f"{v}"
    return str(a.tolist()) if a.size <= 6 else f"an array of shape {a.shape}"


def settings_mismatch(recorded: dict, wanted: dict, defaults: dict | None = None) -> str:
    """What differs between the settings a stored result was made with and the wanted ones.

    Parameters
    ----------
    recorded : dict
        The settings stored with the result (values: numbers, strings, sequences or arrays).
    wanted : dict
        The settings wanted now; only these keys are compared (a recorded key not wanted is ignored).
    defaults : dict, optional
        What a result that records no entry for a key was made with (e.g. ``{"solver_version": 1}`` for files
        written before the version was recorded); a key neither recorded nor defaulted differs.

    Returns
    -------
    str
        ``""`` when every wanted setting matches (values compared as arrays: ``1 == 1.0``, a list equals the
        tuple of the same items, NaN equals NaN); else one line naming each differing setting with both values, e.g.
        ``"zeta = 1.0, now 0.3; solver_version = 1, now 2; branch differs (an array of shape (4, 3, 32, 32))"``.
    """
    defaults = defaults or {}
    diff = []
    for key, want in wanted.items():
        got = recorded[key] if key in recorded else defaults.get(key, _MISSING)
        if got is _MISSING:
            diff.append(f"{key} unrecorded, now {_short(want)}")
        elif not _same(got, want):
            was, now = _short(got), _short(want)
            diff.append(f"{key} = {was}, now {now}" if was != now else f"{key} differs ({now})")
    return "; ".join(diff)
