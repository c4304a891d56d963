"""Filters on APR particle values, built on the native convolution.

Every filter takes an :class:`~napari_dynfit.apr.grid.AprGrid` and one value per particle and
returns one float32 value per particle (a new APR layer on the same particles, never a pixel image).
Stencil sizes are odd and at most 7 per axis; on coarser levels the stencils are restricted (see
:mod:`napari_dynfit.apr.convolve`), so results approximate the pixel-image filter sampled at the
particles.

* :func:`gaussian_stencil` is ``pyapr.filter.get_gaussian_stencil`` (normalised 1D Gaussian, outer
  product), :func:`gaussian` convolves with it.
* :func:`log` is the scale-normalised Laplacian of Gaussian ``-sigma**2 * LoG`` (bright blobs of
  radius ``~sigma*sqrt(ndim)`` give positive peaks), :func:`dog` the difference of Gaussians.
* :func:`gradient_magnitude` uses central differences (or derivative-of-Gaussian stencils) per axis.
* :func:`custom` applies any stencil.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .convolve import MAX_STENCIL, convolve
from .grid import AprGrid

__all__ = ["gaussian_stencil", "log_stencil", "dog_stencil", "default_size",
           "gaussian", "log", "dog", "gradient_magnitude", "custom", "FILTERS"]


def default_size(sigma: float) -> int:
    """Odd stencil size covering about +-2 sigma, at most 7."""
    return int(min(MAX_STENCIL, 2 * math.ceil(2 * sigma) + 1))


def _size(sigma, size) -> int:
    if not np.isfinite(sigma) or sigma <= 0:
        raise InputError(f"sigma must be a positive number of pixels, got {sigma}")
    size = default_size(sigma) if size is None else int(size)
    if size < 3 or size % 2 == 0 or size > MAX_STENCIL:
        raise InputError(f"stencil size must be odd and between 3 and {MAX_STENCIL}, got {size}")
    return size


def _axes(ndim: int, size: int):
    x = np.arange(size) - size // 2
    return np.meshgrid(*([x] * ndim), indexing="ij")


def gaussian_stencil(sigma: float, size: int | None = None, ndim: int = 3) -> np.ndarray:
    """Normalised ``size**ndim`` Gaussian stencil (float32), as ``pyapr.filter.get_gaussian_stencil``."""
    size = _size(sigma, size)
    x = np.arange(size) - size // 2
    g = np.exp(-x ** 2 / (2.0 * sigma ** 2))
    g /= g.sum()
    out = g
    for _ in range(ndim - 1):
        out = np.multiply.outer(out, g)
    return out.astype(np.float32)


def log_stencil(sigma: float, size: int | None = None, ndim: int = 3) -> np.ndarray:
    """Scale-normalised, zero-sum ``-sigma**2 * Laplacian-of-Gaussian`` stencil (float32)."""
    size = _size(sigma, size)
    grids = _axes(ndim, size)
    r2 = sum(g.astype(np.float64) ** 2 for g in grids)
    g = np.exp(-r2 / (2 * sigma ** 2))
    g /= g.sum()
    lap = g * (r2 - ndim * sigma ** 2) / sigma ** 4
    lap -= lap.mean()
    return (-sigma ** 2 * lap).astype(np.float32)


def dog_stencil(sigma: float, ratio: float = 1.6, size: int | None = None, ndim: int = 3) -> np.ndarray:
    """Difference of normalised Gaussians ``G(sigma) - G(ratio*sigma)`` on one stencil (zero sum)."""
    if not ratio > 1:
        raise InputError(f"DoG ratio must be > 1, got {ratio}")
    size = _size(ratio * sigma, size)
    return (gaussian_stencil(sigma, size, ndim).astype(np.float64)
            - gaussian_stencil(ratio * sigma, size, ndim)).astype(np.float32)


def _nd(grid: AprGrid) -> int:
    return grid.ndim


def _apply(grid: AprGrid, values, stencils, normalize: bool, device: str, magnitude: bool = False) -> np.ndarray:
    """Convolve with each stencil (on the GPU: one bank pass, combined there); the magnitude over the bank if asked."""
    from .convolve_tile import use_device

    if use_device(device):
        from .convolve_tile import to_host
        from .filters_tile import filter_device

        out = to_host(filter_device(grid, grid.check_values(values), stencils, normalize=normalize,
                                    magnitude=magnitude))
        return out[0] if magnitude else out[0, 0]
    res = [convolve(grid, values, st, normalize=normalize) for st in stencils]
    if not magnitude:
        return res[0]
    return np.sqrt(sum(g * g for g in res)).astype(np.float32)


def gaussian(grid: AprGrid, values, sigma: float, *, size: int | None = None, device: str = "auto") -> np.ndarray:
    """Gaussian smoothing of particle values (``sigma`` in pixels, stencil ``size**ndim``)."""
    return _apply(grid, values, [gaussian_stencil(sigma, size, _nd(grid))], True, device)


def log(grid: AprGrid, values, sigma: float, *, size: int | None = None, device: str = "auto") -> np.ndarray:
    """Scale-normalised negative Laplacian of Gaussian; bright blobs give positive values."""
    return _apply(grid, values, [log_stencil(sigma, size, _nd(grid))], False, device)


def dog(grid: AprGrid, values, sigma: float, *, ratio: float = 1.6, size: int | None = None,
        device: str = "auto") -> np.ndarray:
    """Difference of Gaussians ``G(sigma) - G(ratio*sigma)`` (band-pass; blobs positive)."""
    return _apply(grid, values, [dog_stencil(sigma, ratio, size, _nd(grid))], False, device)


def _derivative_stencils(ndim: int, sigma: float | None, size: int | None) -> list[np.ndarray]:
    if sigma is None:
        d = np.array([0.5, 0.0, -0.5])  # convolution stencil of d/dx (flipped central difference)
        s = np.array([0.0, 1.0, 0.0])
    else:
        n = _size(sigma, size)
        x = np.arange(n) - n // 2
        s = np.exp(-x ** 2 / (2.0 * sigma ** 2))
        s /= s.sum()
        d = -x * s / sigma ** 2  # d/dx of the Gaussian (convolution stencil)
    out = []
    for axis in range(ndim):
        st = np.ones([1] * ndim)
        for a in range(ndim):
            shape = [1] * ndim
            shape[a] = len(s)
            st = st * (d if a == axis else s).reshape(shape)
        out.append(st.astype(np.float32))
    return out


def gradient_magnitude(grid: AprGrid, values, *, sigma: float | None = None, size: int | None = None,
                       device: str = "auto") -> np.ndarray:
    """Gradient magnitude (intensity per pixel); central differences, or derivative of Gaussian with ``sigma``."""
    return _apply(grid, values, _derivative_stencils(_nd(grid), sigma, size), False, device, magnitude=True)


def custom(grid: AprGrid, values, stencil, *, normalize: bool = False, device: str = "auto") -> np.ndarray:
    """Convolve with a user stencil ``(ky, kx)`` / ``(kz, ky, kx)`` (odd sizes up to 7)."""
    return convolve(grid, values, stencil, device=device, normalize=normalize)


#: Filter name -> function, for the CLI and the widget.
FILTERS = {"gaussian": gaussian, "log": log, "dog": dog, "gradient": gradient_magnitude}
