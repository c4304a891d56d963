"""Chemotactic cells steered by a diffusing chemical that the microscope does not see.

Model, in a periodic 2D box ``L_y x L_x`` (axis order ``y, x``)::

    c_t   = Dc lap(c) - k c + s(y, x),          c(y, x, 0) = 0
    d r_i = chi grad c(r_i, t) dt + sqrt(2 D) dW_i

The source ``s`` is a sum of periodic Gaussian spots (amplitude ``A_j``, width ``w``) switched on
at ``t = 0``. ``c`` is exact: each Fourier mode ``q`` of the grid evolves as
``c_q(t) = s_q (1 - exp(-lam_q t)) / lam_q`` with ``lam_q = Dc |q|^2 + k``. Cells move by
Euler-Maruyama with the gradient of ``c`` at their positions (spectral gradient on the grid,
cubic interpolation, periodic). Only the tracks are observable; the chemotactic potential
``phi = chi c`` obeys ``phi_t = Dc lap(phi) - k phi + chi s`` and is what the tracks determine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._progress import progress_iter
from ..errors import InputError


@dataclass
class ChemotaxisSimulation:
    """Tracks and the hidden chemical field of :func:`simulate_chemotaxis`.

    Attributes
    ----------
    positions : ndarray, shape (T, N, 2)
        Cell positions wrapped into the box, ``(y, x)``.
    times : ndarray, shape (T,)
        Frame times.
    box : ndarray, shape (2,)
        Box size ``(L_y, L_x)``.
    grid : dict of str -> ndarray
        Grid coordinates ``"y"``, ``"x"`` of the chemical field.
    c : ndarray, shape (T, ny, nx)
        Concentration at the frame times.
    source : ndarray, shape (ny, nx)
        Source ``s`` on the grid.
    params : dict
        ``Dc, k, chi, D, spots (list of (y, x, amplitude)), width, dt, ...`` (JSON-serialisable).
    """

    positions: np.ndarray
    times: np.ndarray
    box: np.ndarray
    grid: dict
    c: np.ndarray
    source: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def frame_interval(self) -> float:
        """Time between frames."""
        return float(self.times[1] - self.times[0])

    @property
    def phi(self) -> np.ndarray:
        """The chemotactic potential ``chi c``, shape ``(T, ny, nx)``."""
        return self.params["chi"] * self.c

    def source_function(self, y, x):
        """The source ``s(y, x)`` at arbitrary points (numpy or torch arrays, periodic)."""
        return source_spots(y, x, self.params["spots"], self.params["width"], self.box)

    def to_table(self) -> pd.DataFrame:
        """Tracks table ``frame, track_id, y, x`` (``attrs``: ``dt``, ``box``)."""
        T, N, _ = self.positions.shape
        df = pd.DataFrame({"frame": np.repeat(np.arange(T, dtype=np.int64), N),
                           "track_id": np.tile(np.arange(N, dtype=np.int64), T),
                           "y": self.positions[:, :, 0].ravel(), "x": self.positions[:, :, 1].ravel()})
        df.attrs.update(dt=self.frame_interval, box=[float(b) for b in self.box], units="physical")
        return df

    def field_bundle(self):
        """Ground truth as a :class:`~napari_dynfit.fields.FieldBundle`: ``c``, ``phi`` and ``s``."""
        from ..fields import FieldBundle

        s = np.broadcast_to(self.source, self.c.shape).copy()
        return FieldBundle({"c": self.c, "phi": self.phi, "s": s},
                           {"t": self.times, "y": self.grid["y"], "x": self.grid["x"]},
                           periodic=(True, True), attrs={"simulation": "chemotaxis", **self.params})


def source_spots(y, x, spots, width: float, box):
    """Periodic sum of Gaussian spots ``sum_j A_j exp(-|r - r_j|^2 / (2 w^2))`` (nearest images)."""
    lib = np
    try:
        import torch

        if isinstance(x, torch.Tensor):
            lib = torch
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    out = 0.0 * x
    Ly, Lx = float(box[0]), float(box[1])
    for (yj, xj, a) in spots:
        dy = (y - yj + Ly / 2) % Ly - Ly / 2
        dx = (x - xj + Lx / 2) % Lx - Lx / 2
        out = out + a * lib.exp(-(dy * dy + dx * dx) / (2 * width * width))
    return out


def simulate_chemotaxis(n_cells: int = 500, n_frames: int = 31, *, box=(10.0, 10.0), frame_interval: float = 0.2,
                        substeps: int = 20, Dc: float = 1.0, k: float = 0.5, chi: float = 2.0, D: float = 0.002,
                        spots=None, width: float = 1.2, grid: int = 64, seed: int = 0) -> ChemotaxisSimulation:
    """Simulate chemotactic cells in a hidden chemical field (model in the module docstring).

    Parameters
    ----------
    n_cells : int
        Number of cells, initially uniform in the box.
    n_frames : int
        Number of saved frames (the first at ``t = 0``).
    box : (float, float)
        Periodic box size ``(L_y, L_x)`` (length units).
    frame_interval : float
        Time between frames; each is integrated in ``substeps`` Euler-Maruyama steps.
    Dc, k : float
        Diffusion coefficient (length^2 / time) and decay rate (1 / time) of the chemical.
    chi : float
        Chemotactic sensitivity (length^2 / (time * concentration)).
    D : float
        Cell diffusion coefficient (length^2 / time). With the defaults, 0.002 gives a velocity
        noise per frame (0.14 per component) about as large as the chemotactic drift (rms 0.22);
        at 0.01 the noise is twice the drift and even
        the exact 3-parameter least-squares fit
        (:func:`~napari_dynfit.models.pinn.chemotaxis.spectral_coefficients`) misses ``Dc`` by
        20 % with 500 cells.
    spots : list of (y, x, amplitude), optional
        Source spots (concentration / time); default three spots of different strength.
    width : float
        Width of the source spots (length units).
    grid : int
        Grid points per axis of the chemical field.
    seed : int
        Random seed.
    """
    from scipy.ndimage import map_coordinates

    box = np.asarray(box, dtype=float).reshape(-1)
    if box.shape != (2,) or np.any(box <= 0):
        raise InputError(f"box must be two positive lengths (L_y, L_x), got {box.tolist()}")
    for name, v in dict(Dc=Dc, k=k, frame_interval=frame_interval, width=width).items():
        if not v > 0:
            raise InputError(f"{name} must be > 0, got {v}")
    if D < 0 or n_cells < 1 or n_frames < 2 or substeps < 1 or grid < 8:
        raise InputError("need D >= 0, n_cells >= 1, n_frames >= 2, substeps >= 1 and grid >= 8")
    if spots is None:
        spots = [(0.3 * box[0], 0.3 * box[1], 1.0), (0.7 * box[0], 0.55 * box[1], 0.7),
                 (0.35 * box[0], 0.8 * box[1], 0.5)]
    spots = [tuple(float(v) for v in s) for s in spots]
    rng = np.random.default_rng(seed)
    ys = np.arange(grid) * box[0] / grid
    xs = np.arange(grid) * box[1] / grid
    Y, X = np.meshgrid(ys, xs, indexing="ij")
    s = source_spots(Y, X, spots, width, box)
    s_hat = np.fft.fft2(s)
    qy = 2 * np.pi * np.fft.fftfreq(grid, d=box[0] / grid)
    qx = 2 * np.pi * np.fft.fftfreq(grid, d=box[1] / grid)
    QY, QX = np.meshgrid(qy, qx, indexing="ij")
    lam = Dc * (QY**2 + QX**2) + k

    def c_hat(t):
        return s_hat * (-np.expm1(-lam * t)) / lam

    def grad_c(t):
        ch = c_hat(t)
        return np.real(np.fft.ifft2(1j * QY * ch)), np.real(np.fft.ifft2(1j * QX * ch))

    h = frame_interval / substeps
    pos = rng.uniform(0, 1, size=(n_cells, 2)) * box
    out = np.empty((n_frames, n_cells, 2))
    c_frames = np.empty((n_frames, grid, grid))
    out[0] = pos
    c_frames[0] = 0.0
    for f in progress_iter(range(1, n_frames), desc="chemotaxis simulation"):
        for j in range(substeps):
            t = ((f - 1) * substeps + j) * h
            gy, gx = grad_c(t)
            idx = [pos[:, 0] / box[0] * grid, pos[:, 1] / box[1] * grid]
            vy = map_coordinates(gy, idx, order=3, mode="grid-wrap")
            vx = map_coordinates(gx, idx, order=3, mode="grid-wrap")
            pos = pos + chi * h * np.column_stack([vy, vx]) + np.sqrt(2 * D * h) * rng.standard_normal(pos.shape)
            pos = np.mod(pos, box)
        out[f] = pos
        c_frames[f] = np.real(np.fft.ifft2(c_hat(f * frame_interval)))
    params = dict(Dc=float(Dc), k=float(k), chi=float(chi), D=float(D), spots=[list(s) for s in spots],
                  width=float(width), frame_interval=float(frame_interval), substeps=int(substeps),
                  n_cells=int(n_cells), seed=int(seed), box=box.tolist())
    return ChemotaxisSimulation(out, np.arange(n_frames) * frame_interval, box, {"y": ys, "x": xs},
                                c_frames, s, params)
