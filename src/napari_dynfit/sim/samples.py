"""The embedded samples: small simulated movies with ground truth (napari sample data, ``dynfit demo``).

Both are simulated on the fly from a seed (a few seconds), so nothing large ships with the package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .abp import simulate_abp
from .cells import simulate_dividing_cells
from .render import render_cells, render_movie


@dataclass
class Sample:
    """A simulated movie with its ground truth.

    Attributes
    ----------
    movie : ndarray of uint16, shape (t, [z,] y, x)
    truth : DataFrame
        Ground truth in pixel coordinates: ``track_id, frame, [z,] y, x, parent_id`` (+ model columns).
    labels : ndarray of int32 or None
        Ground-truth masks (label = ``track_id``), same shape as ``movie``; ``None`` for particles.
    spacing : tuple of float
        Physical pixel size per spatial axis ``(z,) y, x`` (micrometres).
    dt : float
        Frame interval (seconds for the particles; the cells' time unit is one frame).
    name : str
        Short name (layer names, file names).
    params : dict
        Parameters of the simulation and rendering.
    """

    movie: np.ndarray
    truth: pd.DataFrame
    labels: np.ndarray | None
    spacing: tuple
    dt: float
    name: str
    params: dict


#: Simulation parameters of :func:`active_particles_2d` (physical units: um, s).
ABP_2D = dict(n_particles=150, n_steps=490, dim=2, box=(128.0, 128.0), dt=0.01, v0=8.0, Dr=0.5, Dt=0.05,
              save_every=10)
#: Rendering of :func:`active_particles_2d`: 0.5 um pixels, 256 x 256.
ABP_2D_RENDER = dict(shape=(256, 256), scale=0.5, psf_sigma=1.5, snr=10.0, background=100.0, read_noise=2.0)
#: Simulation parameters of :func:`dividing_cells_3d` (um, rates per frame).
CELLS_3D = dict(n_initial=10, n_frames=25, dim=3, box=(32.0, 48.0, 48.0), division_rate=0.06, death_rate=0.0,
                diffusion=0.1, radius=2.5)
#: Rendering of :func:`dividing_cells_3d`: voxels 1.0 x 0.5 x 0.5 um, 32 x 96 x 96.
CELLS_3D_RENDER = dict(shape=(32, 96, 96), scale=(1.0, 0.5, 0.5), psf_sigma=(1.0, 1.5, 1.5), snr=10.0,
                       background=100.0, read_noise=2.0)


def active_particles_2d(seed: int = 0) -> Sample:
    """150 active Brownian particles, 50 frames of 256 x 256 pixels (0.5 um, 0.1 s), peak SNR 10.

    Speed 8 um/s (1.6 px per frame), persistence time ``1/Dr`` = 2 s (20 frames).
    """
    rng = np.random.default_rng(seed)
    traj = simulate_abp(**ABP_2D, seed=rng)
    table = traj.to_table()
    table["parent_id"] = -1
    movie, truth = render_movie(table, **ABP_2D_RENDER, seed=rng)
    return Sample(movie, truth, None, (0.5, 0.5), traj.frame_interval, "active_particles_2d",
                  dict(simulation=ABP_2D, render=ABP_2D_RENDER, seed=seed))


def dividing_cells_3d(seed: int = 0) -> Sample:
    """About 10 -> 40 dividing cells, 25 frames of 32 x 96 x 96 voxels, with masks and lineage."""
    rng = np.random.default_rng(seed)
    table = simulate_dividing_cells(**CELLS_3D, seed=rng)
    movie, labels, truth = render_cells(table, **CELLS_3D_RENDER, seed=rng)
    return Sample(movie, truth, labels, (1.0, 0.5, 0.5), 1.0, "dividing_cells_3d",
                  dict(simulation=CELLS_3D, render=CELLS_3D_RENDER, seed=seed))
