"""Filter and segment APR particles in one call: the step ``dynfit filter`` / ``dynfit segment`` and the napari
"APR filter & segment" widget share.

* :func:`filter_values`: one named filter (``"none"``, ``"gaussian"``, ``"log"``, ``"dog"``, ``"gradient"``,
  ``"custom"``) on the particle values;
* :func:`filter_and_segment`: that filter, then :func:`~napari_dynfit.apr.segment.segment` (threshold, connected
  particles, size filter), returning a :class:`FilterSegmentation`;
* :func:`label_particles`: particle labels packed as the ``uint16`` particles of an ``.apr`` file (the format's
  integer type), with a one-line error above 65535 objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from .grid import AprGrid

__all__ = ["FILTER_NAMES", "FilterSegmentation", "filter_values", "filter_and_segment", "label_particles"]

FILTER_NAMES = ("none", "gaussian", "log", "dog", "gradient", "custom")


def filter_values(grid: AprGrid, values, name: str = "gaussian", *, sigma: float | None = None,
                  size: int | None = None, stencil=None, normalize: bool = False, device: str = "auto") -> np.ndarray:
    """Filter particle values natively on the APR.

    Parameters
    ----------
    grid : AprGrid
    values : ndarray, shape (n_particles,)
    name : {"none", "gaussian", "log", "dog", "gradient", "custom"}
        ``"none"`` returns the values as float32; ``"gradient"`` takes an optional ``sigma`` (pre-smoothing);
        ``"custom"`` needs ``stencil``.
    sigma : float, optional
        Filter scale in pixels (gaussian, log, dog; gradient: pre-smoothing, None or 0 for none).
    size : int, optional
        Stencil size (odd, default from ``sigma``).
    stencil : ndarray, optional
        ``"custom"``: the 2D/3D stencil (:func:`~napari_dynfit.apr.filters.custom`).
    normalize : bool
        ``"custom"``: normalise each level's stencil to sum 1.
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    ndarray of float32, shape (n_particles,)
    """
    from . import filters

    size = size or None
    if name == "none":
        return np.asarray(values, dtype=np.float32)
    if name == "custom":
        if stencil is None:
            raise InputError("filter 'custom' needs a stencil (a .npy array, --stencil FILE.npy)")
        return filters.custom(grid, values, stencil, normalize=normalize, device=device)
    if name == "gradient":
        return filters.gradient_magnitude(grid, values, sigma=sigma or None, size=size, device=device)
    if name not in filters.FILTERS:
        raise InputError(f"unknown filter {name!r}: use one of {', '.join(FILTER_NAMES)}")
    if sigma is None:
        raise InputError(f"filter {name!r} needs a sigma (pixels)")
    return filters.FILTERS[name](grid, values, sigma, size=size, device=device)


@dataclass
class FilterSegmentation:
    """What :func:`filter_and_segment` found.

    Attributes
    ----------
    grid : AprGrid
    filtered : ndarray of float32, shape (n_particles,)
        The filtered particle values.
    labels : ndarray of int, shape (n_particles,)
        Object label per particle (0: background).
    table : pandas.DataFrame
        One row per object (:func:`~napari_dynfit.apr.segment.object_table`: centroid in pixels, size...).
    threshold : float or None
        The threshold applied to the (smoothed) filtered values (None for the graph cut).
    options : dict
        The options of the call.
    """

    grid: AprGrid
    filtered: np.ndarray
    labels: np.ndarray
    table: pd.DataFrame
    threshold: float | None
    options: dict

    def summary(self) -> str:
        """One line: objects, threshold and particles."""
        thr = f", threshold {self.threshold:.4g}" if self.threshold is not None else ""
        return f"{len(self.table)} objects{thr}; {self.grid.n_particles} particles"

    def to_dict(self) -> dict:
        """``grid``, ``filtered``, ``labels``, ``table``, ``threshold`` as a dict (the widget's former result)."""
        return {"grid": self.grid, "filtered": self.filtered, "labels": self.labels, "table": self.table,
                "threshold": self.threshold}


def filter_and_segment(grid: AprGrid, values, *, filter: str = "none", sigma: float | None = 1.0,
                       size: int | None = None, threshold="otsu", smooth_sigma: float | None = 1.0,
                       min_size: float = 0, max_size: float | None = None, device: str = "auto", apr=None,
                       frame: int | None = None) -> FilterSegmentation:
    """Filter the particle values, then segment bright objects on the particles.

    Parameters
    ----------
    grid : AprGrid
    values : ndarray, shape (n_particles,)
    filter : {"none", "gaussian", "log", "dog", "gradient"}
        See :func:`filter_values`.
    sigma, size
        Filter scale and stencil size in pixels.
    threshold : {"otsu", "li", "graphcut"} or float
        Automatic threshold, pyapr's graph cut, or a fixed value.
    smooth_sigma : float or None
        Gaussian smoothing (pixels) of the filtered values before thresholding (None or 0: none).
    min_size, max_size : float
        Object volume limits in pixels.
    device : {"auto", "cpu", "cuda"}
    apr : pyapr.APR, optional
        For ``threshold="graphcut"`` (default: built from ``grid``).
    frame : int, optional
        Adds a ``frame`` column to the table.

    Returns
    -------
    FilterSegmentation
    """
    from .segment import segment

    opts = {"filter": filter, "sigma": sigma, "size": size, "threshold": threshold, "smooth_sigma": smooth_sigma,
            "min_size": min_size, "max_size": max_size, "device": device}
    filtered = filter_values(grid, values, filter, sigma=sigma, size=size, device=device)
    res = segment(grid, filtered, method=threshold, smooth_sigma=smooth_sigma or None, min_size=min_size,
                  max_size=max_size, device=device, apr=apr, frame=frame)
    return FilterSegmentation(grid, filtered, res.labels, res.table, res.threshold, opts)


def label_particles(labels) -> np.ndarray:
    """Particle labels as ``uint16`` (the integer particle type of ``.apr`` files and lazy Labels layers).

    Raises
    ------
    InputError
        More than 65535 objects.
    """
    labels = np.asarray(labels)
    if labels.size and labels.max() > 65535:
        raise InputError(f"{int(labels.max())} objects do not fit the uint16 particles of an .apr: raise the "
                         "threshold or the minimum size, or use the CSV table")
    return labels.astype(np.uint16)
