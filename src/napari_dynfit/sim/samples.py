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


#: Simulation parameters of :func:`active_particles_2d` (physical units: um, s): free active Brownian
#: particles in a periodic box, released from a density pattern (:func:`patterned_positions`).
ABP_2D = dict(n_particles=750, n_steps=3990, dim=2, box=(384.0, 384.0), dt=0.01, v0=8.0, Dr=0.5, Dt=0.05,
              save_every=10)
#: Initial density of :func:`active_particles_2d`: ``1 + amplitude cos(2 pi y / L) cos(2 pi x / L)``.
ABP_2D_PATTERN = dict(amplitude=0.9)
#: Rendering of :func:`active_particles_2d`: 1 um pixels, 384 x 384.
ABP_2D_RENDER = dict(shape=(384, 384), scale=1.0, psf_sigma=1.0, snr=10.0, background=100.0, read_noise=2.0)
#: The piece of the 2D sample that ``dynfit demo`` images, detects and tracks (same density and
#: rendering; about 190 particles, 50 frames of 192 x 192 pixels): the demo's field learning uses
#: its own particles (:func:`demo_trajectories`), so its tracking stage stays short.
DEMO_PIECE = dict(fov=192.0, frames=50)
#: Simulation parameters of :func:`dividing_cells_3d` (um, rates per frame).
CELLS_3D = dict(n_initial=10, n_frames=25, dim=3, box=(32.0, 48.0, 48.0), division_rate=0.06, death_rate=0.0,
                diffusion=0.1, radius=2.5)
#: Rendering of :func:`dividing_cells_3d`: voxels 1.0 x 0.5 x 0.5 um, 32 x 96 x 96.
CELLS_3D_RENDER = dict(shape=(32, 96, 96), scale=(1.0, 0.5, 0.5), psf_sigma=(1.0, 1.5, 1.5), snr=10.0,
                       background=100.0, read_noise=2.0)


def patterned_positions(n: int, box, amplitude: float, rng) -> np.ndarray:
    """``n`` positions ``(y, x)`` in ``[0, Ly) x [0, Lx)`` with density ``~ 1 + amplitude cos(2 pi y / Ly)
    cos(2 pi x / Lx)`` (rejection sampling; ``amplitude`` in ``[0, 1]``)."""
    L = np.broadcast_to(np.asarray(box, float), (2,))
    out, have = [], 0
    while have < n:
        c = rng.uniform(0, 1, (n, 2)) * L
        pattern = np.cos(2 * np.pi * c[:, 0] / L[0]) * np.cos(2 * np.pi * c[:, 1] / L[1])
        keep = rng.uniform(0, 1 + amplitude, n) < 1 + amplitude * pattern
        out.append(c[keep])
        have += int(keep.sum())
    return np.concatenate(out)[:n]


def active_particles_2d(seed: int = 0, *, fov: float | None = None, frames: int | None = None) -> Sample:
    """Free active Brownian particles released from a density pattern, imaged at peak SNR 10.

    Default: 750 particles in a periodic 384 x 384 um box, 400 frames of 384 x 384 pixels (1 um,
    0.1 s, 118 MB), speed 8 um/s, persistence time ``1/Dr`` = 2 s (20 frames), persistence length 16 um.
    The particles start with random orientations from the density ``1 + 0.9 cos(2 pi y / L)
    cos(2 pi x / L)``, which relaxes during the movie; so the coarse-grained density ``rho`` and
    polarisation ``p`` follow, and identify, the free-ABP hydrodynamics

        rho_t = -v0 div(p)              (-8 um/s)
        p_t   = -Dr p - (v0/2) grad(rho)  (-0.5 /s, -4 um/s)

    (plus ``Dt lap`` terms too small to detect and ``v0 div(Q)``, about 2 % at this pattern's
    wavelength). The size is what the panel's walk-through needs to recover these terms from the
    tracks (``docs/gui.md``); the 150 particles of earlier versions could not.

    Parameters
    ----------
    seed : int
        Random seed (simulation and noise).
    fov : float, optional
        Side of the field of view and periodic box in um (default 384); the particle number scales
        with its area (same density), the pattern's wavelength is the box.
    frames : int, optional
        Number of frames (default 400).
    """
    sim = dict(ABP_2D)
    render = dict(ABP_2D_RENDER)
    if fov is not None:
        side = ABP_2D["box"][0]
        sim["n_particles"] = int(round(ABP_2D["n_particles"] * (fov / side) ** 2))
        sim["box"] = (float(fov), float(fov))
        render["shape"] = (int(round(fov / render["scale"])),) * 2
    if frames is not None:
        sim["n_steps"] = (int(frames) - 1) * sim["save_every"]
    rng = np.random.default_rng(seed)
    pos0 = patterned_positions(sim["n_particles"], sim["box"], ABP_2D_PATTERN["amplitude"], rng)
    traj = simulate_abp(**sim, positions0=pos0, seed=rng)
    table = traj.to_table()
    table["parent_id"] = -1
    movie, truth = render_movie(table, **render, seed=rng)
    spacing = (render["scale"],) * 2
    return Sample(movie, truth, None, spacing, traj.frame_interval, "active_particles_2d",
                  dict(simulation=sim, pattern=ABP_2D_PATTERN, render=render, seed=seed, periodic=True))


def dividing_cells_3d(seed: int = 0) -> Sample:
    """About 10 -> 40 dividing cells, 25 frames of 32 x 96 x 96 voxels, with masks and lineage."""
    rng = np.random.default_rng(seed)
    table = simulate_dividing_cells(**CELLS_3D, seed=rng)
    movie, labels, truth = render_cells(table, **CELLS_3D_RENDER, seed=rng)
    return Sample(movie, truth, labels, (1.0, 0.5, 0.5), 1.0, "dividing_cells_3d",
                  dict(simulation=CELLS_3D, render=CELLS_3D_RENDER, seed=seed))


def demo_trajectories(*, quick: bool, seed: int = 0):
    """Free (non-interacting) ABPs started from a sinusoidal density stripe, for the field-learning stages.

    The density relaxes by ``rho_t = -v0 div(p) + Dt lap(rho)`` and the polarisation by
    ``p_t = -(v0/2) grad(rho) - Dr p + Dt lap(p)`` (2D), so the coarse-grained fields have known
    equations. Sizes: 4 000 particles x 41 frames (quick) or 20 000 x 101 frames.
    """
    n, frames = (4000, 41) if quick else (20000, 101)
    L = 32.0
    rng = np.random.default_rng(seed)
    # inverse-CDF sampling of rho(x) ~ 1 + 0.8 cos(2 pi x / L) along x, uniform along y
    grid = np.linspace(0.0, L, 2049)
    cdf = grid + 0.8 * L / (2 * np.pi) * np.sin(2 * np.pi * grid / L)
    x = np.interp(rng.random(n) * L, cdf, grid)
    pos0 = np.stack([rng.random(n) * L, x], axis=1)
    return simulate_abp(n, (frames - 1) * 10, dim=2, box=L, dt=0.01, v0=1.0, Dr=1.0, Dt=0.1,
                        save_every=10, positions0=pos0, seed=rng)
