"""Read 1D PDE solutions stored as MATLAB ``.mat`` files (the PDE-FIND data sets) into a FieldBundle."""

from __future__ import annotations

import numpy as np

from .._io import check_input_file
from ..errors import InputError
from .bundle import FieldBundle


def read_pdefind_mat(path, *, periodic: bool = True) -> FieldBundle:
    """Read ``usol``/``uu`` (space x time), ``x`` and ``t``/``tt`` from a PDE-FIND ``.mat`` file.

    Parameters
    ----------
    path : str or Path
        ``burgers.mat``, ``kdv.mat``, ``kuramoto_sivishinky.mat`` or any file with the same arrays.
    periodic : bool
        Whether ``x`` is periodic (true for the three PDE-FIND data sets).

    Returns
    -------
    FieldBundle
        One scalar field ``u`` with axes ``(t, x)`` (real part of complex data).
    """
    from scipy.io import loadmat

    p = check_input_file(path, suffixes=(".mat",), what="PDE-FIND .mat file")
    try:
        data = loadmat(str(p))
    except Exception as exc:
        raise InputError(f"cannot read '{p}' as a MATLAB file ({exc})") from exc
    key_u = next((k for k in ("usol", "uu", "u") if k in data), None)
    key_t = next((k for k in ("t", "tt") if k in data), None)
    if key_u is None or key_t is None or "x" not in data:
        raise InputError(f"'{p.name}' needs arrays 'usol' (or 'uu'), 'x' and 't' (or 'tt'); "
                         f"found {sorted(k for k in data if not k.startswith('__'))}")
    u = np.real(np.asarray(data[key_u])).astype(float)
    x = np.real(np.asarray(data["x"])).ravel().astype(float)
    t = np.real(np.asarray(data[key_t])).ravel().astype(float)
    if u.shape == (len(x), len(t)):
        u = u.T
    if u.shape != (len(t), len(x)):
        raise InputError(f"'{key_u}' has shape {u.shape}, which matches neither (x, t) = ({len(x)}, {len(t)}) "
                         "nor (t, x)")
    return FieldBundle({"u": u}, {"t": t, "x": x}, periodic=(periodic,), attrs={"source": p.name})
