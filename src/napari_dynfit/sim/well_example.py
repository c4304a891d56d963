"""Synthetic trajectories in The Well's ``active_matter`` layout, with a known concentration law.

The Well's ``active_matter`` files (Maddu, Weady & Shelley 2024) hold 11 channels on a periodic
256 x 256 grid of side ``L = 10``: ``concentration`` (scalar), ``velocity`` (vector), the
orientation tensor ``D`` and the strain-rate tensor ``E`` (2 x 2 each). The real data are 51 GB
and their concentration obeys a kinetic theory we cannot write down term by term, so tests and
demos use this generator instead. It fills the same channels with fields of known physics:

* ``concentration`` ``c`` obeys Fisher-KPP reaction-diffusion, ``c_t = Dc lap(c) + r c - r c^2``,
  from a few seeded Gaussian colonies (fronts invading an empty domain), integrated with Strang
  splitting (exact heat flow in Fourier space, exact logistic growth), internal step ``dt/20``;
* ``velocity`` ``u`` is a divergence-free cellular flow, ``u = (d_y psi, -d_x psi)`` of a random
  smooth stream function ``psi`` that oscillates slowly in time;
* ``E = (grad u + grad u^T) / 2`` (computed spectrally, exact for the band-limited ``u``);
* ``D = (1 - s)/2 I + s n n^T`` with ``n = u/|u|`` and order ``s = |u|^2 / (|u|^2 + u0^2)``: a
  trace-1 orientation tensor whose principal axis is the flow direction.

The concentration is *not* coupled to the flow, so it can be learned from ``concentration`` alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fields import FieldBundle
from ..io.well import write_well_file

#: constant scalars of the real ``active_matter`` files (values used for our files' metadata)
ACTIVE_MATTER_SCALARS = {"L": 10.0, "zeta": 1.0, "alpha": -1.0}


def active_matter_example(*, size: int = 256, n_steps: int = 41, dt: float = 0.05, length: float = 10.0,
                          diffusivity: float = 0.1, growth: float = 1.0, n_colonies: int = 4,
                          flow_speed: float = 1.0, seed: int = 0) -> FieldBundle:
    """One trajectory with the ``active_matter`` channels and a Fisher-KPP concentration.

    Parameters
    ----------
    size : int
        Grid points per side (the Well: 256).
    n_steps : int
        Number of stored frames.
    dt : float
        Time between stored frames (time units).
    length : float
        Side of the periodic square domain (the Well: 10).
    diffusivity, growth : float
        ``Dc`` and ``r`` of ``c_t = Dc lap(c) + r c (1 - c)``.
    n_colonies : int
        Number of Gaussian seeds of the initial concentration.
    flow_speed : float
        Typical speed of the cellular flow.
    seed : int
        Random seed (colony positions, stream function).

    Returns
    -------
    FieldBundle
        ``concentration`` ``(t, y, x)``, ``velocity`` ``(t, y, x, 2)``, ``D`` and ``E``
        ``(t, y, x, 2, 2)`` in our component order (``0 = y``), periodic, float64;
        ``attrs["truth"]`` holds the concentration law.
    """
    if size < 8 or n_steps < 2 or dt <= 0 or length <= 0:
        raise InputError("need size >= 8, n_steps >= 2, dt > 0 and length > 0")
    rng = np.random.default_rng(seed)
    h = length / size
    x = np.arange(size) * h
    Y, X = np.meshgrid(x, x, indexing="ij")
    k = 2 * np.pi * np.fft.fftfreq(size, d=h)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    k2 = kx ** 2 + ky ** 2

    # concentration: Gaussian colonies, periodic images included
    c = np.zeros((size, size))
    width = 0.05 * length
    for cy, cx in rng.uniform(0, length, size=(n_colonies, 2)):
        dy = (Y - cy + length / 2) % length - length / 2
        dx = (X - cx + length / 2) % length - length / 2
        c += np.exp(-(dx ** 2 + dy ** 2) / (2 * width ** 2))
    c = np.clip(c, 0.0, 1.0)
    n_sub = 20
    h_t = dt / n_sub
    half_heat = np.exp(-diffusivity * k2 * h_t / 2)
    conc = np.empty((n_steps, size, size))
    conc[0] = c
    for i in range(1, n_steps):
        for _ in range(n_sub):
            c = np.fft.irfft2(np.fft.rfft2(c) * half_heat[:, : size // 2 + 1], s=c.shape)
            e = np.exp(growth * h_t)
            c = c * e / (1.0 - c + c * e)
            c = np.fft.irfft2(np.fft.rfft2(c) * half_heat[:, : size // 2 + 1], s=c.shape)
        conc[i] = c

    # cellular flow from a random band-limited stream function
    modes = [(my, mx) for my in range(-3, 4) for mx in range(-3, 4) if 0 < my * my + mx * mx <= 9]
    amp = rng.normal(size=len(modes)) + 1j * rng.normal(size=len(modes))
    t = np.arange(n_steps) * dt
    psi_hat0 = np.zeros((size, size), complex)
    for (my, mx), a in zip(modes, amp):
        psi_hat0[my % size, mx % size] += a
        psi_hat0[-my % size, -mx % size] += np.conj(a)
    grad = lambda f_hat, kk: np.real(np.fft.ifft2(1j * kk * f_hat))  # noqa: E731
    u0 = np.stack([-grad(psi_hat0, kx), grad(psi_hat0, ky)], axis=-1)  # (u_y, u_x)
    scale = flow_speed / np.sqrt(np.mean(np.sum(u0 ** 2, -1)))
    vel = np.empty((n_steps, size, size, 2))
    E = np.empty((n_steps, size, size, 2, 2))
    D = np.empty((n_steps, size, size, 2, 2))
    kvec = (ky, kx)
    for i, ti in enumerate(t):
        psi_hat = psi_hat0 * scale * np.cos(0.5 * ti)
        u = np.stack([-grad(psi_hat, kx), grad(psi_hat, ky)], axis=-1)
        vel[i] = u
        u_hat = [np.fft.fft2(u[..., a]) for a in range(2)]
        g = np.stack([np.stack([grad(u_hat[a], kvec[b]) for b in range(2)], -1) for a in range(2)], -2)
        E[i] = 0.5 * (g + np.swapaxes(g, -1, -2))
        speed2 = np.sum(u ** 2, -1)
        s = speed2 / (speed2 + flow_speed ** 2)
        n = u / np.sqrt(np.maximum(speed2, 1e-300))[..., None]
        D[i] = ((1 - s) / 2)[..., None, None] * np.eye(2) + s[..., None, None] * n[..., :, None] * n[..., None, :]
    truth = {"concentration": {"equation": "c_t = Dc lap(c) + r c - r c^2", "Dc": diffusivity, "r": growth},
             "generator": "napari_dynfit.io.well_example.active_matter_example", "seed": seed}
    return FieldBundle({"concentration": conc, "velocity": vel, "D": D, "E": E},
                       {"t": t, "y": x.copy(), "x": x.copy()},
                       {"concentration": "scalar", "velocity": "vector", "D": "tensor", "E": "tensor"},
                       (True, True), {"truth": truth})


def write_active_matter_example(path, *, n_trajectories: int = 1, seed: int = 0, **kwargs) -> Path:
    """Write an ``active_matter``-layout Well file of :func:`active_matter_example` trajectories.

    Parameters
    ----------
    path : str or Path
        Destination ``.hdf5``.
    n_trajectories : int
        Trajectories (seeds ``seed, seed + 1, ...``).
    **kwargs
        Passed to :func:`active_matter_example` (``size``, ``n_steps``, ``dt``, ``diffusivity``...).

    Returns
    -------
    Path
        The file; its root attribute ``dynfit_truth`` (JSON) records the concentration law.
    """
    import json

    if n_trajectories < 1:
        raise InputError("n_trajectories must be >= 1")
    bundles = [active_matter_example(seed=seed + i, **kwargs) for i in range(n_trajectories)]
    length = kwargs.get("length", 10.0)
    scalars = dict(ACTIVE_MATTER_SCALARS, L=length)
    return write_well_file(path, bundles, dataset_name="active_matter", scalars=scalars,
                           simulation_parameters=scalars,
                           root_attrs={"dynfit_truth": json.dumps(bundles[0].attrs["truth"])})
