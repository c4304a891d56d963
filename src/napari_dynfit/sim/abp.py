"""Active Brownian particles (ABP) in a periodic 2D or 3D box, with optional alignment and quorum sensing.

Model (Euler-Maruyama, time step ``dt``), particle ``i`` with position ``r_i`` and unit orientation ``e_i``::

    d r_i = v_i e_i dt + sqrt(2 Dt) dW_i
    v_i   = v0                               (speed_density=None)
          = v0 * max(0, 1 - rho_i / rho_star) (speed_density=rho_star, a float)
          = f(rho_i)                         (speed_density=f, a callable on arrays)

2D, ``e_i = (sin th_i, cos th_i)`` in ``(y, x)`` order::

    d th_i = align * |m_i| sin(phi_i - th_i) dt + sqrt(2 Dr) dW_i

3D, rotational diffusion on the sphere (``<e(t).e(0)> = exp(-2 Dr t)``) and the same torque::

    d e_i = align * (m_i - (m_i.e_i) e_i) dt + rotational noise of strength Dr

where ``m_i`` is the mean orientation of the particles within ``align_radius`` of ``i`` (``i``
included; ``phi_i`` its angle) and ``rho_i`` is their number divided by the area ``pi R^2``
(volume ``4/3 pi R^3`` in 3D). This is the continuous-time Vicsek model; with ``align`` large
compared to ``Dr`` it orders, and near the transition it forms travelling density bands
(:func:`vicsek_bands_preset`). Without interactions the exact results are

* orientation autocorrelation ``<e(t).e(0)> = exp(-(d-1) Dr t)``;
* MSD ``2 d Dt t + 2 v0^2 tau^2 (t / tau + exp(-t / tau) - 1)`` with ``tau = 1 / ((d-1) Dr)``,
  i.e. ``4 Dt t + 2 v0^2 / Dr^2 (Dr t + exp(-Dr t) - 1)`` in 2D (:func:`abp_msd`).

Random numbers come from one :class:`numpy.random.Generator` (``seed``), so runs are reproducible
whatever the number of numba threads; the neighbour search (cell lists, parallel) is in
:mod:`._neighbours`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._progress import progress_iter
from ..errors import InputError

_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


@dataclass
class ParticleTrajectories:
    """Saved frames of a particle simulation (physical units).

    Attributes
    ----------
    positions : ndarray, shape (T, N, d)
        Positions wrapped into the box, ``0 <= positions < box``, axis order ``(z,) y, x``.
    unwrapped : ndarray, shape (T, N, d)
        Positions without periodic wrapping (for displacements and MSDs).
    orientations : ndarray, shape (T, N, d)
        Unit orientation vectors ``e_i``, same component order.
    velocities : ndarray, shape (T, N, d)
        Self-propulsion velocity ``v_i e_i`` at the saved time (the deterministic drift of ``r_i``;
        the thermal noise ``sqrt(2 Dt) dW`` is not included).
    times : ndarray, shape (T,)
        Time of each saved frame (``frame * dt * save_every``).
    box : ndarray, shape (d,)
        Periodic box size per axis.
    params : dict
        The simulation parameters (JSON-serialisable).
    """

    positions: np.ndarray
    unwrapped: np.ndarray
    orientations: np.ndarray
    velocities: np.ndarray
    times: np.ndarray
    box: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Number of spatial dimensions."""
        return self.positions.shape[2]

    @property
    def n_particles(self) -> int:
        """Number of particles ``N``."""
        return self.positions.shape[1]

    @property
    def frame_interval(self) -> float:
        """Time between saved frames."""
        return float(self.times[1] - self.times[0]) if len(self.times) > 1 else float(self.params.get("dt", 1.0))

    def to_table(self) -> pd.DataFrame:
        """One row per particle per frame: ``frame, track_id, [z,] y, x, p_[z,]y, p_x, v_[z,]y, v_x``.

        Coordinates are the wrapped positions in physical units; ``track_id`` is the particle index.
        ``attrs`` holds ``dt`` (frame interval), ``box`` and ``units="physical"``.
        """
        T, N, d = self.positions.shape
        axes = _AXES[d]
        cols = {
            "frame": np.repeat(np.arange(T, dtype=np.int64), N),
            "track_id": np.tile(np.arange(N, dtype=np.int64), T),
        }
        for k, a in enumerate(axes):
            cols[a] = self.positions[:, :, k].ravel()
        for k, a in enumerate(axes):
            cols[f"p_{a}"] = self.orientations[:, :, k].ravel()
        for k, a in enumerate(axes):
            cols[f"v_{a}"] = self.velocities[:, :, k].ravel()
        df = pd.DataFrame(cols)
        df.attrs.update(dt=self.frame_interval, box=[float(b) for b in self.box], units="physical")
        return df


def abp_msd(t, *, v0: float, Dr: float, Dt: float = 0.0, dim: int = 2):
    """Exact mean-squared displacement of free active Brownian particles.

    ``MSD(t) = 2 d Dt t + 2 v0^2 tau^2 (t / tau + exp(-t / tau) - 1)``, ``tau = 1 / ((d - 1) Dr)``.
    """
    t = np.asarray(t, dtype=float)
    if Dr <= 0:
        return 2 * dim * Dt * t + (v0 * t) ** 2
    tau = 1.0 / ((dim - 1) * Dr)
    return 2 * dim * Dt * t + 2 * v0**2 * tau**2 * (t / tau + np.expm1(-t / tau))


def _as_box(box, dim: int) -> np.ndarray:
    b = np.broadcast_to(np.asarray(box, dtype=float), (dim,)) if np.ndim(box) == 0 else np.asarray(box, dtype=float)
    if b.shape != (dim,):
        raise InputError(f"box has {b.size} entries for a {dim}D simulation: give one length or {dim} ((z,) y, x)")
    if not np.all(np.isfinite(b)) or np.any(b <= 0):
        raise InputError(f"box lengths must be positive and finite, got {b.tolist()}")
    return b.copy()


def _check_positive(name, value, *, allow_zero=False):
    ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise InputError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}")


def simulate_abp(
    n_particles: int,
    n_steps: int,
    *,
    dim: int = 2,
    box=100.0,
    dt: float = 0.01,
    v0: float = 1.0,
    Dr: float = 1.0,
    Dt: float = 0.0,
    align: float = 0.0,
    align_radius: float = 1.0,
    speed_density: float | Callable | None = None,
    save_every: int = 1,
    positions0=None,
    orientations0=None,
    seed=None,
) -> ParticleTrajectories:
    """Simulate active Brownian particles in a periodic box (see the module docstring for the model).

    Parameters
    ----------
    n_particles : int
        Number of particles ``N``.
    n_steps : int
        Number of integration steps; ``n_steps // save_every + 1`` frames are saved (the initial
        state included).
    dim : {2, 3}
        Spatial dimension.
    box : float or sequence of float
        Periodic box size per axis in axis order ``(z,) y, x`` (a scalar gives a square/cube).
    dt : float
        Integration time step.
    v0 : float
        Self-propulsion speed (length / time).
    Dr : float
        Rotational diffusion coefficient (1 / time).
    Dt : float
        Translational diffusion coefficient (length^2 / time).
    align : float
        Alignment strength (1 / time): torque toward the mean orientation of the neighbours.
    align_radius : float
        Radius ``R`` of the neighbourhood used for alignment and for the local density ``rho``.
    speed_density : float or callable, optional
        Density-dependent speed: a float ``rho_star`` gives ``v = v0 max(0, 1 - rho/rho_star)``;
        a callable maps the local density array (particles per unit area/volume) to speeds.
    save_every : int
        Save one frame every ``save_every`` steps.
    positions0 : ndarray, shape (N, d), optional
        Initial positions (default: uniform in the box).
    orientations0 : ndarray, shape (N, d), optional
        Initial orientations (normalised; default: uniform on the circle/sphere).
    seed : int or numpy.random.Generator, optional
        Random seed.

    Returns
    -------
    ParticleTrajectories
    """
    if dim not in (2, 3):
        raise InputError(f"dim must be 2 or 3, got {dim}")
    for name, val in (("n_particles", n_particles), ("n_steps", n_steps), ("save_every", save_every)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < (0 if name == "n_steps" else 1):
            kind = "non-negative" if name == "n_steps" else "positive"
            raise InputError(f"{name} must be a {kind} integer, got {val!r}")
    if n_particles * (n_steps // save_every + 1) * dim > 4e9 / 32:
        raise InputError("the saved trajectories would need more than 4 GB: reduce n_particles or n_steps, "
                         "or raise save_every")
    _check_positive("dt", dt)
    for name, val in (("v0", v0), ("Dr", Dr), ("Dt", Dt), ("align", align)):
        _check_positive(name, val, allow_zero=True)
    _check_positive("align_radius", align_radius)
    box = _as_box(box, dim)
    rng = np.random.default_rng(seed)
    N = int(n_particles)

    if positions0 is None:
        pos = rng.random((N, dim)) * box
    else:
        pos = np.array(positions0, dtype=float)
        if pos.shape != (N, dim) or not np.all(np.isfinite(pos)):
            raise InputError(f"positions0 must be a finite array of shape ({N}, {dim}), got shape {pos.shape}")
    if orientations0 is None:
        if dim == 2:
            th = rng.uniform(0, 2 * np.pi, N)
        else:
            e = rng.standard_normal((N, 3))
            e /= np.linalg.norm(e, axis=1, keepdims=True)
    else:
        e = np.array(orientations0, dtype=float)
        norm = np.linalg.norm(e, axis=1, keepdims=True) if e.ndim == 2 else None
        if e.shape != (N, dim) or not np.all(np.isfinite(e)) or np.any(norm == 0):
            raise InputError(f"orientations0 must be non-zero finite vectors of shape ({N}, {dim}), got {e.shape}")
        e = e / norm
        if dim == 2:
            th = np.arctan2(e[:, 0], e[:, 1])

    interacting = align > 0 or speed_density is not None
    if speed_density is not None and not callable(speed_density):
        _check_positive("speed_density (rho_star)", float(speed_density))
    if interacting:
        from ._neighbours import NeighbourSums

        box3 = np.ones(3)
        box3[3 - dim:] = box
        neighbours = NeighbourSums(box3, align_radius)
        pos3 = np.zeros((N, 3))
        ori3 = np.zeros((N, 3))
        nb_volume = np.pi * align_radius**2 if dim == 2 else 4.0 / 3.0 * np.pi * align_radius**3

    unwrapped = pos.copy()
    pos = np.mod(pos, box)
    T = n_steps // save_every + 1
    out_pos = np.empty((T, N, dim))
    out_unw = np.empty((T, N, dim))
    out_ori = np.empty((T, N, dim))
    out_vel = np.empty((T, N, dim))
    s_rot = np.sqrt(2 * Dr * dt)
    s_tr = np.sqrt(2 * Dt * dt)

    def orientation():
        return np.stack([np.sin(th), np.cos(th)], axis=1) if dim == 2 else e

    def interact(ori):
        """Local mean orientation (N, d), or None, and speeds (N,) or scalar."""
        if not interacting:
            return None, v0
        pos3[:, 3 - dim:] = pos
        ori3[:, 3 - dim:] = ori
        msum, count = neighbours(pos3, ori3)
        mean = msum[:, 3 - dim:] / count[:, None]
        if speed_density is None:
            speed = v0
        else:
            rho = count / nb_volume
            if callable(speed_density):
                speed = np.asarray(speed_density(rho), dtype=float)
                if speed.shape != (N,) or not np.all(np.isfinite(speed)):
                    raise InputError("speed_density(rho) must return finite speeds of the same shape as rho")
            else:
                speed = v0 * np.clip(1.0 - rho / float(speed_density), 0.0, None)
        return mean, speed

    def save(k, ori, speed):
        out_pos[k] = pos
        out_unw[k] = unwrapped
        out_ori[k] = ori
        out_vel[k] = ori * np.asarray(speed).reshape(-1, 1)

    ori = orientation()
    mean, speed = interact(ori)
    save(0, ori, speed)
    for step in progress_iter(range(1, n_steps + 1), desc="ABP simulation"):
        disp = (np.asarray(speed).reshape(-1, 1) * dt) * ori
        if Dt > 0:
            disp += s_tr * rng.standard_normal((N, dim))
        unwrapped += disp
        pos = np.mod(pos + disp, box)
        pos[pos >= box] = 0.0  # np.mod can round up to box for tiny negative values
        if dim == 2:
            dth = s_rot * rng.standard_normal(N) if Dr > 0 else np.zeros(N)
            if align > 0:
                # |m| sin(phi - th) = m_y cos th - m_x sin th
                dth += align * dt * (mean[:, 0] * ori[:, 1] - mean[:, 1] * ori[:, 0])
            th = th + dth
        else:
            de = np.zeros((N, 3))
            if Dr > 0:
                xi = rng.standard_normal((N, 3))
                de += s_rot * (xi - np.sum(xi * e, axis=1, keepdims=True) * e)
            if align > 0:
                de += align * dt * (mean - np.sum(mean * e, axis=1, keepdims=True) * e)
            # rotate e by the angle |de| toward de (a geodesic step on the sphere: the decay of
            # <e(t).e(0)> is exact to O(dt^2), unlike e + de followed by normalisation)
            ang = np.linalg.norm(de, axis=1, keepdims=True)
            safe = np.where(ang > 0, ang, 1.0)
            e = e * np.cos(ang) + de / safe * np.sin(ang)
            e /= np.linalg.norm(e, axis=1, keepdims=True)
        ori = orientation()
        mean, speed = interact(ori)
        if step % save_every == 0:
            save(step // save_every, ori, speed)

    params = dict(n_particles=N, n_steps=int(n_steps), dim=dim, box=box.tolist(), dt=dt, v0=v0, Dr=Dr, Dt=Dt,
                  align=align, align_radius=align_radius, save_every=int(save_every),
                  speed_density=(None if speed_density is None else
                                 "callable" if callable(speed_density) else float(speed_density)),
                  seed=seed if isinstance(seed, (int, np.integer, type(None))) else "generator")
    times = np.arange(T) * dt * save_every
    return ParticleTrajectories(out_pos, out_unw, out_ori, out_vel, times, box, params)


def vicsek_bands_preset(seed: int = 0) -> dict:
    """Keyword arguments of :func:`simulate_abp` that form travelling polar density bands in 2D.

    Continuous-time Vicsek model (``align = 1``, ``Dr = 0.21``, radius 1, speed 1, ``dt = 0.1``) at
    mean density 1 per unit area in an elongated periodic box ``32 x 128`` (4096 particles),
    started fully ordered along ``+x``. Just below the order-disorder transition the homogeneous
    ordered state is unstable: within ``t ~ 500`` (5000 steps) the particles gather into dense
    ordered bands perpendicular to ``x`` that travel along ``+x`` through a dilute disordered gas
    (the Vicsek band phase; Chate et al., PRE 77, 046113 (2008) for the discrete model).
    8000 steps take about 12 s of CPU; 161 frames are saved (every 50 steps, ``t = 5``).
    ``docs/simulator.md`` gives the measured band contrast and speed.

    Parameters
    ----------
    seed : int
        Seed of the run (initial positions and noise).

    Examples
    --------
    >>> traj = simulate_abp(**vicsek_bands_preset())          # doctest: +SKIP
    >>> density_along_x = np.histogram(traj.positions[-1, :, 1], bins=64)[0]   # doctest: +SKIP
    """
    box = (32.0, 128.0)
    n = int(box[0] * box[1])
    orientations0 = np.zeros((n, 2))
    orientations0[:, 1] = 1.0
    return dict(n_particles=n, n_steps=8000, dim=2, box=box, dt=0.1, v0=1.0, Dr=0.21, Dt=0.0, align=1.0,
                align_radius=1.0, save_every=50, orientations0=orientations0, seed=seed)
