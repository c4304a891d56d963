"""Kinetic theory of a 2D active suspension (Saintillan-Shelley with steric alignment), pseudo-spectral in torch.

The distribution ``Psi(x, theta, t)`` of rod-like particles (orientation ``p = (sin theta, cos theta)``,
components ``(y, x)``) obeys

``d_t Psi + div_x(x_dot Psi) + d_theta(theta_dot Psi) = 0`` with
``x_dot = v0 p + u - d_t grad_x log Psi`` and
``theta_dot = p_perp . (G + 2 zeta D) . p - d_r d_theta log Psi``,

``G = grad u`` (``G_ij = d u_i / d x_j``; slender rods: Jeffery's orbit with shape factor 1), ``zeta`` the
strength of steric alignment, ``D = int p p Psi``. The flow solves Stokes, ``-lap u + grad q = div Sigma``,
``div u = 0``, with the particle stress ``Sigma = alpha D + beta S : E - 2 zeta beta (D . D - S : D)``
(``alpha < 0``: extensile/pushers; ``beta S:E`` the rods' constraint stress, solved by fixed-point
iteration since it depends on ``u``). Nondimensionalisation and parameters follow The Well's
``active_matter`` set (``L = 10``, ``beta = 0.8``, ``alpha`` in -1..-5, ``zeta`` in 1..17); ``v0 = 0`` there
(apolar), which is the default.

Discretisation: Fourier in ``x, y`` and ``theta`` (``n x n x n_theta`` points), 2/3 dealiasing in ``x, y``,
exact dealiasing in ``theta`` (harmonics ``|m| <= n_theta / 2 - 2``: ``theta`` enters the nonlinear terms only
through ``theta_dot``, which holds the harmonics 0 and +-2, so a product with ``Psi`` reaches ``|m| + 2`` and
aliases onto no kept harmonic; the 2/3 rule there, solver version 1, dropped a third of the harmonics for
nothing), integrating-factor Heun (RK2) steps with the translational and rotational diffusion exact.

Linear theory about the isotropic state ``Psi = 1 / (2 pi)`` (apolar, exact, checked in the tests):
a perturbation ``~ exp(i k . x)`` in the shear harmonic grows at
``sigma = -(alpha - zeta beta / 2) / (4 (1 + beta / 8)) + zeta - 4 d_r - d_t k^2``, the normal harmonic
at ``zeta - 4 d_r - d_t k^2`` and every other harmonic ``m`` decays at ``d_r m^2 + d_t k^2``
(:func:`isotropic_growth_rates`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ... import closure_defaults as _D
from ..._progress import report
from ...device import resolve_device
from ...errors import InputError
from .moments import contract4, fourth_moment
from .spectral import SpectralGrid

#: version of the kinetic solver's numerics, recorded with every run (``attrs["kinetic"]["solver_version"]``) and
#: checkpoint: bump it when a change alters the runs, so that cached runs and checkpoints made before are
#: recomputed (:mod:`napari_dynfit.bench.closure`) or refused. Runs that record none were made by version 1.
#: Version 2 (2026-12-05): exact angular dealiasing (``|m| <= n_theta / 2 - 2``; version 1: the 2/3 rule, ``|m| <
#: n_theta / 3``), so every run changes (by rounding-level amounts only where ``Psi`` is smooth in ``theta``).
SOLVER_VERSION = 2

#: a run is flagged as under-resolved (``dynfit closure simulate`` warns) when the negative values of ``Psi`` carry
#: more than this fraction of ``int |Psi|`` at any saved frame (:meth:`KineticSolver.positivity`). Set from the
#: benchmark's eight runs (``docs/closures.md``, *Negative Psi*): those below it (``alpha = -2``, ``-2.5``: 0.54 %
#: and 0.93 % at their worst frame) keep ``D / c`` inside ``[0, 1]`` and an unrealizable ``m4`` at <= 1.6 % of the
#: points; those above it (``alpha <= -3``: 1.5-4.6 %) have unrealizable ``m4`` at 5-17 % of the points and, from
#: ``alpha = -4``, ``D / c`` outside ``[0, 1]``.
NEGATIVE_MASS_WARN = 0.01

#: a run whose ``|Psi|`` exceeds this many times its initial maximum has run away (numerical instability: a
#: resolved run stays within about ten times; float64 overflows only at 1e308)
RUNAWAY = 1e6


def angular_mask(n_theta: int, *, rule: str = "exact", device=None) -> torch.Tensor:
    """Which angular harmonics a kinetic run keeps, ``(n_theta,)`` float64 0/1 in FFT order.

    ``"exact"`` (the solver's, version 2): ``|m| <= n_theta / 2 - 2``. The nonlinear terms are products of
    ``Psi`` with ``theta``-independent fields (the flow) and with ``theta_dot = p_perp . A . p``, which holds the
    harmonics 0 and +-2 only (``A`` does not depend on ``theta``), so from kept harmonics ``|m| <= M`` they
    reach ``|m| <= M + 2``; on ``n_theta`` points ``M + 2`` aliases onto ``M + 2 - n_theta``, which is not kept
    when ``2 M + 2 < n_theta``. The moments ``D`` (harmonics 0, +-2) and the fourth harmonics are exact
    quadratures for the same reason. ``"2/3"``: ``|m| < n_theta / 3`` (version 1; kept to reproduce it).
    """
    m = torch.fft.fftfreq(n_theta, d=1.0 / n_theta, dtype=torch.float64, device=device).abs()
    if rule == "exact":
        keep = m <= n_theta // 2 - 2
    elif rule == "2/3":
        keep = m < 2.0 / 3.0 * (n_theta / 2)
    else:
        raise InputError(f"rule must be 'exact' or '2/3', got {rule!r}")
    return keep.to(torch.float64)


def blow_up_message(what: str, t: float, why: str, params: SuspensionParams, n_theta: int, dt: float) -> str:
    """One line for a kinetic run that blew up at time ``t``: what, when, the likely cause and the fix.

    Measured (``docs/closures.md``, *Resolution*): with 32 angles and ``dt = 0.01`` runs at ``zeta = 1`` stay
    finite to ``t = 30`` (32^2 and 64^2 grids); ``zeta = 2`` on a 16^2 grid blows up at ``t = 4.8`` (a smaller
    ``dt`` or a 32^2 grid avoids it, more angles do not); ``zeta >= 5`` blew up by ``t = 2`` at every
    resolution tried."""
    return (f"{what} blew up at t = {t:.3g} ({why}): a numerical instability, the orientation distribution got "
            f"sharper than this discretisation resolves; use a smaller zeta (now {params.zeta:g}; the defaults' "
            f"0.3 and zeta = 1 run, 5 and above blew up at every resolution tried), or a smaller dt (now {dt:g}), "
            f"a finer grid or more angles (--angles / n_theta, now {n_theta})")



@dataclass
class SuspensionParams:
    """Physical parameters of the suspension (dimensionless, The Well's scaling).

    Parameters
    ----------
    alpha : float
        Active dipole stress (negative: extensile/pushers drive flows).
    beta : float
        Constraint stress of the rods.
    zeta : float
        Steric alignment strength.
    d_t, d_r : float
        Translational and rotational diffusivities.
    swim_speed : float
        Self-propulsion ``v0`` (0: apolar particles, as in The Well).
    length : float
        Side of the periodic square domain.
    """

    alpha: float = -1.0
    beta: float = 0.8
    zeta: float = 1.0
    d_t: float = 0.05
    d_r: float = 0.05
    swim_speed: float = 0.0
    length: float = 10.0

    def __post_init__(self):
        for name in ("d_t", "d_r", "length"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise InputError(f"{name} must be a positive finite number, got {getattr(self, name)}")
        for name in ("alpha", "beta", "zeta", "swim_speed"):
            if not math.isfinite(getattr(self, name)):
                raise InputError(f"{name} must be finite, got {getattr(self, name)}")
        if self.beta < 0 or self.zeta < 0:
            raise InputError("beta and zeta must be >= 0")


def isotropic_growth_rates(params: SuspensionParams, k: float) -> dict:
    """Exact linear growth rates (1 / time) about the isotropic state for wavenumber ``k`` (apolar)."""
    p = params
    shear = -(p.alpha - p.zeta * p.beta / 2) / (4 * (1 + p.beta / 8)) + p.zeta - 4 * p.d_r - p.d_t * k * k
    normal = p.zeta - 4 * p.d_r - p.d_t * k * k
    return {"shear": shear, "normal": normal, "concentration": -p.d_t * k * k}


def particle_stress(params: SuspensionParams, D, S, E):
    """``alpha D + beta S:E - 2 zeta beta (D.D - S:D)``, shapes ``(..., 2, 2)``."""
    out = params.alpha * D
    if params.beta:
        out = out + params.beta * (contract4(S, E) - 2 * params.zeta * (D @ D - contract4(S, D)))
    return out


def solve_flow(grid: SpectralGrid, params: SuspensionParams, D, S, *, iterations: int = 6):
    """Flow ``u (..., n, n, 2)``, gradient ``G`` and strain rate ``E`` for given ``D`` and ``S``.

    The constraint stress ``beta S:E`` depends on ``u``; a fixed-point iteration converges geometrically
    (factor about ``beta / 8`` near isotropy, ``beta / 4`` when aligned).
    """
    E = torch.zeros_like(D)
    u = G = None
    for _ in range(iterations if params.beta else 1):
        u, G = grid.stokes(particle_stress(params, D, S, E))
        E = 0.5 * (G + G.transpose(-1, -2))
    return u, G, E


def positivity_summary(bundle) -> dict | None:
    """The worst saved frame of a kinetic run's ``attrs["positivity"]`` (:func:`simulate_kinetic`), or None for a
    run that records none (made before it was recorded, or not by :func:`simulate_kinetic`).

    Returns
    -------
    dict
        ``min_ratio`` (smallest ``min Psi / max Psi``), ``negative_mass``, ``negative_points``,
        ``moments_outside`` (largest over the frames), ``t`` (time units) of the largest ``negative_mass``, and
        ``under_resolved``: whether ``negative_mass`` exceeds :data:`NEGATIVE_MASS_WARN`.
    """
    rec = (bundle.attrs or {}).get("positivity")
    if not rec or not rec.get("negative_mass"):
        return None
    neg = np.asarray(rec["negative_mass"], float)
    worst = int(np.argmax(neg))
    t = np.asarray(bundle.coords["t"], float)
    out = {"min_ratio": float(np.min(rec["min_ratio"]))}
    out.update({k: float(np.max(rec[k])) for k in ("negative_mass", "negative_points", "moments_outside")})
    out["t"] = float(t[worst]) if worst < len(t) else float("nan")
    out["under_resolved"] = bool(out["negative_mass"] > NEGATIVE_MASS_WARN)
    return out


def positivity_warning(summary: dict | None, n: int, n_theta: int, dt: float) -> str | None:
    """One line for a run whose ``Psi`` went negative beyond :data:`NEGATIVE_MASS_WARN` (else None), naming
    the figures and the fixes (``n``, ``n_theta``, ``dt``: the run's grid, angles and time step)."""
    if not summary or not summary["under_resolved"]:
        return None
    return (f"warning: Psi went negative: its negative values carry up to {100 * summary['negative_mass']:.1f} % "
            f"of int |Psi| (t = {summary['t']:g}; min Psi / max Psi {summary['min_ratio']:.2f}; D / c outside [0, 1] "
            f"at {100 * summary['moments_outside']:.1f} % of the points), above {100 * NEGATIVE_MASS_WARN:g} %: the "
            f"run is under-resolved in angle and space together, its moments D, S not quite a distribution's; refine "
            f"both (--angles {2 * n_theta} --size {2 * n}, now {n_theta} and {n}: more angles alone remove about "
            f"half of it, a finer grid alone none, a smaller dt (now {dt:g}) none; docs/closures.md, Negative Psi)")


class KineticSolver:
    """Pseudo-spectral solver of the kinetic equation.

    Parameters
    ----------
    params : SuspensionParams
    n : int
        Grid points per side (even).
    n_theta : int
        Angles on ``[0, 2 pi)`` (even).
    dt : float
        Time step.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    def __init__(self, params: SuspensionParams, *, n: int = _D.GRID, n_theta: int = _D.ANGLES, dt: float = _D.DT,
                 device: str = "cpu"):
        if n < 8 or n % 2 or n_theta < 8 or n_theta % 2:
            raise InputError(f"need even n >= 8 and even n_theta >= 8, got n={n}, n_theta={n_theta}")
        if not dt > 0:
            raise InputError(f"dt must be > 0, got {dt}")
        self.params, self.n, self.n_theta, self.dt = params, n, n_theta, float(dt)
        dev = resolve_device(device)
        self.grid = SpectralGrid(n, params.length, device=dev)
        g = self.grid
        theta = torch.arange(n_theta, dtype=torch.float64, device=dev) * (2 * math.pi / n_theta)
        self.theta = theta
        self.dtheta = 2 * math.pi / n_theta
        self.p = torch.stack([torch.sin(theta), torch.cos(theta)], -1)  # (n_theta, 2) (y, x)
        self.p_perp = torch.stack([torch.cos(theta), -torch.sin(theta)], -1)  # d p / d theta
        self.pp = self.p[:, :, None] * self.p[:, None, :]
        self.w4 = (torch.cos(4 * theta), torch.sin(4 * theta))
        m = torch.fft.fftfreq(n_theta, d=1.0 / n_theta, dtype=torch.float64, device=dev)  # integers
        self.m = m[:, None, None]
        lin = -params.d_t * g.k2[None] - params.d_r * self.m ** 2
        self.lin = lin
        self.ef = torch.exp(lin * self.dt)
        self.dealias = g.dealias[None] * angular_mask(n_theta, device=dev)[:, None, None]

    # --- moments --------------------------------------------------------------------------
    def moments(self, psi: torch.Tensor) -> dict:
        """``c (..., n, n)``, ``D (..., n, n, 2, 2)``, ``S (..., n, n, 2, 2, 2, 2)``, ``q4c``, ``q4s`` of
        ``psi (..., n_theta, n, n)`` (leading axes: independent runs)."""
        w = self.dtheta
        c, D = psi.sum(-3) * w, torch.einsum("...tyx,tij->...yxij", psi, self.pp) * w
        q4c, q4s = (torch.einsum("...tyx,t->...yx", psi, wt) * w for wt in self.w4)
        return {"c": c, "D": D, "S": fourth_moment(c, D, q4c, q4s), "q4c": q4c, "q4s": q4s}

    def flow(self, psi: torch.Tensor):
        """``(u, G, E, moments)`` for ``psi``."""
        mo = self.moments(psi)
        u, G, E = solve_flow(self.grid, self.params, mo["D"], mo["S"])
        return u, G, E, mo

    def positivity(self, psi: torch.Tensor) -> dict:
        """How far ``psi (..., n_theta, n, n)`` is from a probability density: a check of the resolution.

        The exact ``Psi`` stays non-negative; a spectral one that is sharper than its grid resolves, in angle or
        in space, oscillates below zero (Gibbs), and then its moments ``D``, ``S`` need not be those of any
        distribution.

        Returns
        -------
        dict of Tensor, each with ``psi``'s leading axes (independent runs)
            ``min_ratio``: ``min Psi / max Psi`` (``>= 0`` for a density); ``negative_mass``: the share of
            ``int |Psi|`` on negative values, ``int max(-Psi, 0) / int |Psi|`` (0 for a density, at most 1/2 while
            the particle number is positive); ``negative_points``: fraction of the ``(theta, y, x)`` grid values
            below zero; ``moments_outside``: fraction of the ``(y, x)`` points where an eigenvalue of ``D / c``
            lies outside ``[0, 1]`` by more than ``1e-9`` (or ``c <= 0``), impossible for a density.
        """
        dims = (-3, -2, -1)
        lo, hi = psi.amin(dims), psi.amax(dims)
        neg = (-psi).clamp(min=0).sum(dims)
        w = self.dtheta
        c = psi.sum(-3) * w
        dyy = torch.einsum("...tyx,t->...yx", psi, self.pp[:, 0, 0]) * w
        dxy = torch.einsum("...tyx,t->...yx", psi, self.pp[:, 0, 1]) * w
        lam_min = 0.5 * c - torch.sqrt((dyy - 0.5 * c) ** 2 + dxy ** 2)  # smaller eigenvalue of D (tr D = c)
        outside = (c <= 0) | (lam_min < -1e-9 * c.abs())
        return {"min_ratio": lo / hi, "negative_mass": neg / psi.abs().sum(dims),
                "negative_points": (psi < 0).to(psi.dtype).mean(dims),
                "moments_outside": outside.to(psi.dtype).mean((-2, -1))}

    # --- time stepping --------------------------------------------------------------------
    def _fft(self, f):
        return torch.fft.rfftn(f, dim=(-3, -2, -1))

    def _ifft(self, f_hat):
        return torch.fft.irfftn(f_hat, s=(self.n_theta, self.n, self.n), dim=(-3, -2, -1))

    def _nonlinear(self, psi_hat: torch.Tensor) -> torch.Tensor:
        g, pr = self.grid, self.params
        psi = self._ifft(psi_hat * self.dealias)
        u, G, _, mo = self.flow(psi)
        vel = u.unsqueeze(-4) + pr.swim_speed * self.p[:, None, None, :]  # (..., n_theta, n, n, 2)
        A = G + 2 * pr.zeta * mo["D"]
        thdot = torch.einsum("ti,...yxij,tj->...tyx", self.p_perp, A, self.p)
        fy, fx = self._fft(vel[..., 0] * psi), self._fft(vel[..., 1] * psi)
        ft = self._fft(thdot * psi)
        out = -(1j * g.ky[None] * fy + 1j * g.kx[None] * fx + 1j * self.m * ft)
        return out * self.dealias

    def step(self, psi_hat: torch.Tensor) -> torch.Tensor:
        """One integrating-factor Heun step on the spectral state."""
        h, ef = self.dt, self.ef
        k1 = self._nonlinear(psi_hat)
        pred = ef * (psi_hat + h * k1)
        k2 = self._nonlinear(pred)
        return ef * (psi_hat + 0.5 * h * k1) + 0.5 * h * k2

    def check_finite(self, psi_hat: torch.Tensor, t: float, *, psi: torch.Tensor | None = None,
                     bound: float | None = None, what: str = "the kinetic simulation") -> None:
        """Raise :class:`~napari_dynfit.errors.InputError` (:func:`blow_up_message`) when the spectral state has
        non-finite values, or ``|psi|`` (the state in real space, where given) exceeds ``bound``."""
        if not bool(torch.isfinite(psi_hat).all()):
            why = "non-finite values"
        elif psi is not None and bound is not None and float(psi.abs().max()) > bound:
            why = f"|Psi| beyond {RUNAWAY:.0e} times its initial maximum"
        else:
            return
        raise InputError(blow_up_message(what, t, why, self.params, self.n_theta, self.dt))

    def initial_condition(self, *, seed: int = 0, amplitude: float = 0.01, modes: int = 4) -> torch.Tensor:
        """Isotropic state ``1 / (2 pi)`` plus a random smooth perturbation (spatial modes ``<= modes``,
        angular harmonics 1..4), normalised to mean concentration 1."""
        rng = np.random.default_rng(seed)
        g = self.grid
        x = g.coords()
        Y, X = torch.meshgrid(x, x, indexing="ij")
        th = self.theta[:, None, None]
        pert = torch.zeros((self.n_theta, self.n, self.n), dtype=torch.float64, device=x.device)
        k0 = 2 * math.pi / self.params.length
        for _ in range(8):
            ky, kx = rng.integers(-modes, modes + 1, size=2)
            harm = int(rng.integers(0, 5)) if self.params.swim_speed else int(2 * rng.integers(0, 3))
            ph1, ph2 = rng.uniform(0, 2 * math.pi, 2)
            pert = pert + torch.cos(k0 * (ky * Y + kx * X) + ph1) * torch.cos(harm * th + ph2)
        pert = pert / pert.abs().max()
        return (1.0 + amplitude * pert) / (2 * math.pi)

    def run(self, psi0: torch.Tensor, t_end: float, *, save_every: float | None = None
            ) -> tuple[np.ndarray, list[dict]]:
        """Integrate from ``psi0`` to ``t_end`` and return the save times and moment snapshots.

        Parameters
        ----------
        psi0 : Tensor ``(..., n_theta, n, n)``
            Leading axes: independent runs (an ensemble), integrated together.
        t_end : float
        save_every : float, optional
            Interval between saved snapshots (rounded to whole steps; default every step).

        Progress and cancellation go through :func:`napari_dynfit._progress.report` (install a callback or
        cancel event with ``progress_context``).

        Returns
        -------
        times : ndarray ``(k,)``
        snapshots : list of dict
            :meth:`moments` (without the full ``S``: ``q4c``, ``q4s`` fix it) plus ``u`` and ``E`` per saved time,
            as numpy arrays (with ``psi0``'s leading axes), and ``positivity`` (:meth:`positivity`, numpy).
        """
        n_steps = int(round(t_end / self.dt))
        every = max(1, int(round((save_every or self.dt) / self.dt)))
        check = min(every, 10)  # steps between checks for non-finite values (the blow-up time to 10 steps)
        psi_hat = self._fft(psi0)
        times, snaps = [], []
        bound = RUNAWAY * float(psi0.abs().max())

        def save(i, ph):
            psi = self._ifft(ph)
            self.check_finite(ph, i * self.dt, psi=psi, bound=bound)
            u, _, E, mo = self.flow(psi)
            snap = {k: v.detach().cpu().numpy() for k, v in mo.items() if k != "S"}
            snap["u"], snap["E"] = u.detach().cpu().numpy(), E.detach().cpu().numpy()
            snap["positivity"] = {k: v.detach().cpu().numpy() for k, v in self.positivity(psi).items()}
            times.append(i * self.dt)
            snaps.append(snap)

        with torch.no_grad():
            save(0, psi_hat)
            for i in range(1, n_steps + 1):
                psi_hat = self.step(psi_hat)
                if i % every == 0 or i == n_steps:
                    save(i, psi_hat)
                elif i % check == 0:
                    self.check_finite(psi_hat, i * self.dt)
                report(i, n_steps, "kinetic simulation")
        return np.asarray(times), snaps


def simulate_kinetic(params: SuspensionParams | None = None, *, t_end: float = 20.0, save_every: float = 0.25,
                     n: int = _D.GRID, n_theta: int = _D.ANGLES, dt: float = _D.DT, seed: int = 0,
                     amplitude: float = 0.01, device: str = "cpu"):
    """Simulate the kinetic theory and return its moments as a :class:`~napari_dynfit.fields.FieldBundle`.

    Parameters
    ----------
    params : SuspensionParams, optional
        Default: The Well's ``alpha = -1, beta = 0.8, zeta = 1``.
    t_end, save_every, dt : float
        Duration, saving interval and time step (time units).
    n, n_theta : int
        Spatial points per side and angles (default ``closure_defaults.GRID`` and ``ANGLES``: the resolved
        setting, ``Psi`` >= 0 to well under 1 % of its mass at ``zeta = 0.3``, ``alpha`` -2..-6).
    seed, amplitude
        Random initial perturbation of the isotropic state.
    device : str

    Returns
    -------
    FieldBundle
        ``concentration (t, y, x)``, ``velocity (t, y, x, 2)``, ``D`` and ``E (t, y, x, 2, 2)`` (The Well's
        channels) and the fourth harmonics ``S_cos4``, ``S_sin4`` (scalars; the full ``S`` is
        :func:`~napari_dynfit.models.closure.moments.fourth_moment`), periodic; ``attrs["kinetic"]`` holds the
        parameters and the grid, ``attrs["positivity"]`` how far ``Psi`` was from a density at each saved frame
        (lists over the frames of :meth:`KineticSolver.positivity`'s figures; :func:`positivity_summary` reads
        them).
    """
    return simulate_kinetic_ensemble(params, seeds=(seed,), t_end=t_end, save_every=save_every, n=n,
                                     n_theta=n_theta, dt=dt, amplitude=amplitude, device=device)[0]


def simulate_kinetic_ensemble(params: SuspensionParams | None = None, *, seeds=(0, 1), t_end: float = 20.0,
                              save_every: float = 0.25, n: int = _D.GRID, n_theta: int = _D.ANGLES, dt: float = _D.DT,
                              amplitude: float = 0.01, device: str = "cpu") -> list:
    """Several runs of one suspension from different random initial perturbations (``seeds``), integrated
    together (a batch axis: on a small grid several runs cost little more than one).

    Same parameters and return fields as :func:`simulate_kinetic`; returns one bundle per seed, each equal to
    ``simulate_kinetic(..., seed=seed)``. A blow-up of any member stops all.
    """
    from ...fields import FieldBundle

    params = params or SuspensionParams()
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InputError("give at least one seed")
    solver = KineticSolver(params, n=n, n_theta=n_theta, dt=dt, device=device)
    psi0 = torch.stack([solver.initial_condition(seed=s, amplitude=amplitude) for s in seeds])
    times, snaps = solver.run(psi0, t_end, save_every=save_every)
    x = solver.grid.coords().cpu().numpy()
    out = []
    for i, seed in enumerate(seeds):
        stack = lambda key: np.stack([s[key][i] for s in snaps])  # noqa: E731
        fields = {"concentration": stack("c"), "velocity": stack("u"), "D": stack("D"), "E": stack("E"),
                  "S_cos4": stack("q4c"), "S_sin4": stack("q4s")}
        attrs = {"kinetic": {**asdict(params), "n": n, "n_theta": n_theta, "dt": dt, "seed": seed,
                             "amplitude": amplitude, "solver_version": SOLVER_VERSION},
                 "positivity": {k: [float(snap["positivity"][k][i]) for snap in snaps]
                                for k in snaps[0]["positivity"]},
                 "generator": "napari_dynfit.models.closure.kinetic.simulate_kinetic"}
        out.append(FieldBundle(fields, {"t": times, "y": x, "x": x.copy()},
                               {"concentration": "scalar", "velocity": "vector", "D": "tensor", "E": "tensor",
                                "S_cos4": "scalar", "S_sin4": "scalar"}, (True, True), attrs))
    return out
