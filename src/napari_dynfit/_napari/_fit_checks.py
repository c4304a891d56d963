"""Does a step's method fit the data? Checks run before a step runs; a failed check is a warning, not an error.

Each step declares what its method needs (``NEEDS`` of :class:`._contract.StepContract`):

* ``"chemical field"`` (the latent-field PINN, chemotaxis ``dX = chi grad c dt + ...``): the movie the
  tracks come from must not be a simulation without one. A simulated sample carries its parameters
  (``metadata["params"]["simulation"]``); when they name no chemotactic coupling (``chi``, ``chemotaxis``)
  the field the PINN infers can only fit noise.
* ``"drift"`` (the snapshot flow, ``dX = f(X) dt + sqrt(2D) dW``): the snapshots must move. When the
  mean and spread of the positions stay within their sampling noise over the movie
  (:func:`snapshot_change`), there is no transport for ``f`` to learn (a stationary cloud: only
  ``D grad log p``); positions that wrap around a periodic box (``metadata["periodic"]``) break the
  open-space model.

Qt-free (numpy only).
"""

from __future__ import annotations

import numpy as np

#: parameters that mark a simulation with a chemical field
CHEMOTAXIS_KEYS = ("chi", "chemotaxis", "chemotactic", "Dc", "c0")


def _inner(layer):
    return getattr(layer, "__wrapped__", layer)


def _simulation(layers) -> dict | None:
    """The simulation parameters a sample's movie carries (``None``: not a simulation, or unknown)."""
    for lay in layers:
        meta = getattr(_inner(lay), "metadata", None) or {}
        sim = (meta.get("params") or {}).get("simulation") if isinstance(meta.get("params"), dict) else None
        if isinstance(sim, dict) and sim:
            return sim
    return None


def snapshot_change(points: np.ndarray) -> float:
    """How much a cloud of points moves over a movie, in units of its sampling noise.

    Parameters
    ----------
    points : ndarray, shape (n, 1 + d)
        Rows ``frame, coordinates`` (any units).

    Returns
    -------
    float
        The largest z-score over the axes of the change, first third of the frames against the last third,
        of the mean (standard error ``sqrt(var_a / n_a + var_b / n_b)``) and of the variance (standard error
        ``sqrt(2) var / sqrt(n)`` per third). Below about 4: no change beyond noise.
    """
    pts = np.asarray(points, float)
    frames = np.unique(np.round(pts[:, 0]))
    if len(frames) < 3:
        return float("inf")
    k = max(1, len(frames) // 3)
    a = pts[np.isin(np.round(pts[:, 0]), frames[:k])][:, 1:]
    b = pts[np.isin(np.round(pts[:, 0]), frames[-k:])][:, 1:]
    if len(a) < 5 or len(b) < 5:
        return float("inf")
    va, vb = a.var(axis=0), b.var(axis=0)
    z_mean = np.abs(a.mean(0) - b.mean(0)) / np.sqrt(va / len(a) + vb / len(b) + 1e-300)
    z_var = np.abs(va - vb) / np.sqrt(2 * va ** 2 / len(a) + 2 * vb ** 2 / len(b) + 1e-300)
    return float(max(z_mean.max(), z_var.max()))


def fit_warnings(needs, inputs, layers) -> list[str]:
    """One line per need of the method that the data do not meet.

    Parameters
    ----------
    needs : sequence of str
        ``"chemical field"``, ``"drift"``.
    inputs : sequence of napari layers
        The step's current inputs.
    layers : sequence of napari layers
        All layers of the viewer (a sample's movie carries its simulation parameters).
    """
    out = []
    sim = _simulation([*inputs, *layers])
    if "chemical field" in needs and sim is not None and not any(k in sim for k in CHEMOTAXIS_KEYS):
        out.append("the movie's simulation has no chemical field (no chemotactic coupling in its parameters): "
                   "the latent field can only fit noise; its Dc, k mean nothing here.")
    if "drift" in needs:
        for lay in inputs:
            lay = _inner(lay)
            if type(lay).__name__ != "Points":
                continue
            data = np.asarray(lay.data, float)
            if data.ndim != 2 or data.shape[1] < 2:
                continue
            periodic = any((getattr(_inner(x), "metadata", None) or {}).get("periodic") for x in [lay, *layers])
            z = snapshot_change(data)
            if z < 4.0:
                out.append(f"the snapshots do not move (mean and spread change by {z:.1f} sampling errors over "
                           f"the movie): there is no drift to learn, only noise.")
            if periodic:
                out.append("the positions wrap around a periodic box: the flow model assumes open space.")
    return out
