"""Partial derivatives of fields on a regular grid: local polynomial (finite) and spectral.

* ``"finite"``: Savitzky-Golay derivatives (:func:`scipy.signal.savgol_filter`). With the default,
  minimal window the fit interpolates the points and gives the usual central differences
  (``[-1/2, 0, 1/2]``, ``[1, -2, 1]``, five-point stencils for third and fourth derivatives); a wider
  ``window`` smooths noise the way PDE-FIND's polynomial differentiation does. Periodic axes wrap,
  other axes fit the polynomial to the edge windows (no padding artefacts).
* ``"spectral"``: Fourier derivatives along periodic spatial axes (exact for band-limited fields);
  time and non-periodic axes fall back to ``"finite"``.
* ``"decoupled"``: finite differences whose stencil leaves out the centre point (a polynomial
  through the ``2 ceil(order/2) + 2`` nearest neighbours). A product such as ``u*u_xx`` of noisy
  data then has no noise bias (``E[eta_i (D eta)_i] = 0``), unlike the standard stencil whose
  centre weight ``w_0`` adds ``w_0 sigma^2`` per grid point. The weak form evaluates the parts it
  cannot integrate by parts this way.

Weak-form (integrated) derivatives live in :mod:`napari_dynfit.fields.weak`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

METHODS = ("finite", "spectral", "decoupled")


def _axis_info(bundle, axis: int) -> tuple[float, bool, int]:
    """Spacing, periodicity and length of grid axis ``axis`` (0 = time)."""
    if axis == 0:
        return bundle.dt, False, bundle.shape[0]
    name = bundle.space_axes[axis - 1]
    return bundle.spacing[axis - 1], bool(bundle.periodic[axis - 1]), len(bundle.coords[name])


def default_window(order: int) -> int:
    """The smallest odd number of points that determines an ``order``-th derivative."""
    return order + 1 if (order + 1) % 2 == 1 else order + 2


def finite_derivative(arr: np.ndarray, axis: int, order: int, spacing: float, *, periodic: bool = False,
                      window: int | None = None, polyorder: int | None = None) -> np.ndarray:
    """``order``-th derivative along ``axis`` by local polynomial fits.

    Parameters
    ----------
    arr : ndarray
        Values on a uniform grid along ``axis``.
    axis : int
        Array axis to differentiate.
    order : int
        Derivative order (>= 1).
    spacing : float
        Grid spacing along ``axis`` (physical units).
    periodic : bool
        Wrap around the ends (otherwise polynomial fits to the edge windows).
    window : int, optional
        Odd number of points per fit; default the minimal stencil (no smoothing).
    polyorder : int, optional
        Degree of the fits; default ``window - 1`` for the minimal stencil, otherwise
        ``max(order + 1, 3)`` capped at ``window - 1``.

    Returns
    -------
    ndarray
        Same shape as ``arr``.
    """
    from scipy.signal import savgol_filter

    w = default_window(order) if window is None else int(window)
    w = max(w, default_window(order))
    if w % 2 == 0:
        w += 1
    if polyorder is None:
        polyorder = w - 1 if w == default_window(order) else min(w - 1, max(order + 1, 3))
    if polyorder < order or polyorder >= w:
        raise InputError(f"polyorder {polyorder} must be >= derivative order {order} and < window {w}")
    n = arr.shape[axis]
    if n < w:
        raise InputError(f"axis of length {n} is too short for a {order}-th derivative with a {w}-point "
                         "window: use more frames/grid points or a smaller window")
    return savgol_filter(np.asarray(arr, dtype=float), w, polyorder, deriv=order, delta=spacing, axis=axis,
                         mode="wrap" if periodic else "interp")


def spectral_derivative(arr: np.ndarray, axis: int, order: int, spacing: float) -> np.ndarray:
    """``order``-th derivative along a periodic ``axis`` by FFT (Nyquist mode dropped for odd orders)."""
    n = arr.shape[axis]
    k = 2 * np.pi * np.fft.rfftfreq(n, d=spacing)
    mult = (1j * k) ** order
    if order % 2 == 1 and n % 2 == 0:
        mult[-1] = 0.0
    shape = [1] * arr.ndim
    shape[axis] = len(k)
    f = np.fft.rfft(np.asarray(arr, dtype=float), axis=axis)
    return np.fft.irfft(f * mult.reshape(shape), n=n, axis=axis)


def decoupled_weights(order: int) -> np.ndarray:
    """Stencil on offsets ``-m..m`` (centre weight 0) of the ``order``-th derivative, unit spacing."""
    m = order // 2 + 1
    offsets = np.array([k for k in range(-m, m + 1) if k != 0], dtype=float)
    V = np.vander(offsets, len(offsets), increasing=True).T          # rows: powers 0..2m-1
    rhs = np.zeros(len(offsets))
    rhs[order] = float(np.prod(np.arange(1, order + 1)))
    w = np.linalg.solve(V, rhs)
    return np.insert(w, m, 0.0)


def decoupled_derivative(arr: np.ndarray, axis: int, order: int, spacing: float, *,
                         periodic: bool = False) -> np.ndarray:
    """``order``-th derivative along ``axis`` with a centre-free stencil (see the module docstring).

    Non-periodic axes use the standard polynomial stencils (:func:`finite_derivative`) on the
    ``order // 2 + 1`` points next to each end.
    """
    from scipy.ndimage import correlate1d

    w = decoupled_weights(order) / spacing ** order
    m = len(w) // 2
    if arr.shape[axis] < len(w):
        raise InputError(f"axis of length {arr.shape[axis]} is too short for a {len(w)}-point stencil")
    out = correlate1d(np.asarray(arr, dtype=float), w, axis=axis, mode="wrap" if periodic else "nearest")
    if not periodic:
        edge = finite_derivative(arr, axis, order, spacing)
        for sl in (slice(0, m), slice(arr.shape[axis] - m, None)):
            index = (slice(None),) * axis + (sl,)
            out[index] = edge[index]
    return out


def derivative(arr: np.ndarray, axis: int, order: int, *, bundle, method: str = "finite",
               window: int | None = None, polyorder: int | None = None) -> np.ndarray:
    """Derivative of an array on a bundle's grid.

    Parameters
    ----------
    arr : ndarray
        Shape ``(t, *space)`` or ``(t, *space, d)`` (grid axes first).
    axis : int
        Grid axis: 0 is time, ``1 + i`` the ``i``-th spatial axis in axis order.
    order : int
        Derivative order.
    bundle : FieldBundle
        Supplies spacing (physical units) and periodicity.
    method : {"finite", "spectral", "decoupled"}
        See the module docstring.
    window, polyorder : int, optional
        Passed to :func:`finite_derivative`.
    """
    if method not in METHODS:
        raise InputError(f"unknown derivative method '{method}'; use one of {', '.join(METHODS)} "
                         "(or the weak form in napari_dynfit.fields.weak)")
    if order == 0:
        return np.asarray(arr, dtype=float)
    h, periodic, _ = _axis_info(bundle, axis)
    if method == "spectral" and periodic:
        return spectral_derivative(arr, axis, order, h)
    if method == "decoupled":
        return decoupled_derivative(arr, axis, order, h, periodic=periodic)
    return finite_derivative(arr, axis, order, h, periodic=periodic, window=window, polyorder=polyorder)
