"""Accurate reference solutions of 1D PDEs, for testing and benchmarking PDE discovery.

Every generator returns a :class:`~napari_dynfit.fields.FieldBundle` with one scalar field ``u`` of
shape ``(t, x)`` and ``attrs["truth"]``, the equation in the term vocabulary of
:mod:`napari_dynfit.models.terms` (``{"u_t": {"u_xx": 0.1, "u": 1.0, "u^2": -1.0}}``).

* Periodic problems: pseudo-spectral ETDRK4 (Cox & Matthews 2002, with the contour-integral
  coefficients of Kassam & Trefethen 2005) on a grid ``refine`` times finer than the observed one,
  2/3-rule dealiasing, then subsampled in space and time;
* bounded problems (:func:`advection_diffusion_layer`): second-order finite differences on a fine
  grid, integrated with SciPy's stiff ``BDF`` solver (banded Jacobian), then subsampled.

Localized cases (a term matters only in a small part of space-time):
:func:`fisher_kpp_front` (pulled fronts), :func:`burgers_shock`, :func:`allen_cahn_front`,
:func:`advection_diffusion_layer`, :func:`zeldovich_front` (pushed combustion fronts). PDE-FIND's data sets, regenerated with its parameters:
:func:`burgers_pdefind`, :func:`kdv_pdefind`, :func:`ks_pdefind`.

Why our own: a few dozen lines of numpy give solutions accurate to ~1e-6, enough to test that
learned coefficients are within 5 %, without shipping data files.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..fields.bundle import FieldBundle


def add_noise(bundle: FieldBundle, level: float, seed=0, field: str = "u") -> FieldBundle:
    """Copy of ``bundle`` with Gaussian noise of standard deviation ``level * std(field)`` added."""
    u = np.asarray(bundle[field], dtype=float)
    rng = np.random.default_rng(seed)
    fields = dict(bundle.fields)
    fields[field] = u + level * u.std() * rng.standard_normal(u.shape)
    return FieldBundle(fields, dict(bundle.coords), periodic=bundle.periodic, attrs=dict(bundle.attrs))


def _etdrk4_coefficients(L: np.ndarray, h: float, n_contour: int = 32):
    r = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    LR = h * L[:, None] + r[None, :]
    E, E2 = np.exp(h * L), np.exp(h * L / 2)
    Q = h * np.mean((np.exp(LR / 2) - 1) / LR, axis=1)
    f1 = h * np.mean((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR ** 2)) / LR ** 3, axis=1)
    f2 = h * np.mean((2 + LR + np.exp(LR) * (-2 + LR)) / LR ** 3, axis=1)
    f3 = h * np.mean((-4 - 3 * LR - LR ** 2 + np.exp(LR) * (4 - LR)) / LR ** 3, axis=1)
    if np.isrealobj(L):
        E, E2, Q, f1, f2, f3 = (np.real(a) for a in (E, E2, Q, f1, f2, f3))
    return E, E2, Q, f1, f2, f3


def solve_periodic(u0, length: float, t_obs, linear, nonlinear, *, steps_per_frame: int = 20) -> np.ndarray:
    """ETDRK4 for ``u_t = L u + N(u)`` on a periodic interval.

    Parameters
    ----------
    u0 : ndarray, shape (n,)
        Initial values at ``x_j = j * length / n``.
    length : float
        Period.
    t_obs : ndarray, shape (nt,)
        Increasing output times, the first being the initial time.
    linear : callable
        ``linear(k) -> L(k)``, the Fourier symbol of the linear part (``k`` angular wavenumbers).
    nonlinear : callable
        ``nonlinear(u, k, to_hat) -> N_hat``: the nonlinear part in Fourier space from the real
        field ``u``; ``to_hat`` is the forward FFT.
    steps_per_frame : int
        Time steps between consecutive output times (uniform output spacing assumed).

    Returns
    -------
    ndarray, shape (nt, n)
    """
    u0 = np.asarray(u0, dtype=float)
    n = len(u0)
    t_obs = np.asarray(t_obs, dtype=float)
    k = 2 * np.pi * np.fft.fftfreq(n, length / n)
    dealias = np.abs(k) <= (2 / 3) * np.abs(k).max()
    L = np.asarray(linear(k)) * np.ones(n)
    h = (t_obs[1] - t_obs[0]) / steps_per_frame
    E, E2, Q, f1, f2, f3 = _etdrk4_coefficients(L, h)

    def N(v):
        return nonlinear(np.real(np.fft.ifft(v)), k, np.fft.fft) * dealias

    v = np.fft.fft(u0)
    out = np.empty((len(t_obs), n))
    out[0] = u0
    for i in range(1, len(t_obs)):
        for _ in range(steps_per_frame):
            Nv = N(v)
            a = E2 * v + Q * Nv
            Na = N(a)
            b = E2 * v + Q * Na
            Nb = N(b)
            c = E2 * a + Q * (2 * Nb - Nv)
            Nc = N(c)
            v = E * v + Nv * f1 + 2 * (Na + Nb) * f2 + Nc * f3
        out[i] = np.real(np.fft.ifft(v))
        if not np.isfinite(out[i]).all():
            raise InputError("the reference solver blew up: use more steps_per_frame")
    return out


def _periodic_bundle(u_fine, x_fine, t, refine_x, refine_t, truth, name):
    u = u_fine[::refine_t, ::refine_x]
    return FieldBundle({"u": u}, {"t": t[::refine_t], "x": x_fine[::refine_x]}, periodic=(True,),
                       attrs={"truth": truth, "generator": name})


def fisher_kpp_front(*, D: float = 0.2, r: float = 1.0, length: float = 60.0, n: int = 256, t_end: float = 12.0,
                     nt: int = 121, refine: int = 2) -> FieldBundle:
    """Fisher-KPP ``u_t = D u_xx + r u - r u^2`` from a central plateau: two fronts move outwards.

    Diffusion matters only in the fronts (width ~ ``sqrt(D/r)``, speed ``2 sqrt(D r)``); ahead of
    them ``u = 0`` and behind them ``u = 1``, where every term vanishes.
    """
    xf = np.arange(n * refine) * length / (n * refine)
    t = np.linspace(0.0, t_end, nt)
    w = 4 * np.sqrt(D / r)
    u0 = 0.5 * (np.tanh((xf - 0.4 * length) / w) - np.tanh((xf - 0.6 * length) / w))
    u = solve_periodic(u0, length, t, lambda k: -D * k ** 2 + r,
                       lambda u, k, fft: -r * fft(u * u), steps_per_frame=40)
    return _periodic_bundle(u, xf, t, refine, 1, {"u_t": {"u_xx": D, "u": r, "u^2": -r}}, "fisher_kpp_front")


def burgers_shock(*, nu: float = 0.02, length: float = 2 * np.pi, n: int = 256, t_end: float = 3.0,
                  nt: int = 121, refine: int = 4) -> FieldBundle:
    """Viscous Burgers ``u_t = -u u_x + nu u_xx`` from ``sin(x) + 0.5``: a shock of width ~ ``nu`` forms at t ~ 1.

    The viscous term matters only inside the moving shock.
    """
    xf = np.arange(n * refine) * length / (n * refine)
    t = np.linspace(0.0, t_end, nt)
    u0 = np.sin(2 * np.pi * xf / length) + 0.5
    u = solve_periodic(u0, length, t, lambda k: -nu * k ** 2,
                       lambda u, k, fft: -0.5j * k * fft(u * u), steps_per_frame=100)
    return _periodic_bundle(u, xf, t, refine, 1, {"u_t": {"u*u_x": -1.0, "u_xx": nu}}, "burgers_shock")


def allen_cahn_front(*, D: float = 0.05, r: float = 1.0, length: float = 20.0, n: int = 256, t_end: float = 10.0,
                     nt: int = 101, refine: int = 2) -> FieldBundle:
    """Bistable (Nagumo/Allen-Cahn) ``u_t = D u_xx + r u - r u^3`` with unequal phases: fronts move and annihilate.

    Initial data: domains of ``u = +-1`` of different widths plus a smooth bump; the reaction
    relaxes the bump, diffusion acts only in the interfaces (width ~ ``sqrt(2 D / r)``) that drift
    as curvature-free 1D fronts with exponentially small speed unless two come close.
    """
    xf = np.arange(n * refine) * length / (n * refine)
    t = np.linspace(0.0, t_end, nt)
    w = 3 * np.sqrt(2 * D / r)
    u0 = (np.tanh((xf - 0.15 * length) / w) - np.tanh((xf - 0.45 * length) / w)
          + np.tanh((xf - 0.55 * length) / w) - np.tanh((xf - 0.62 * length) / w) - 1.0
          + 0.6 * np.exp(-((xf - 0.85 * length) / (0.03 * length)) ** 2))
    u = solve_periodic(u0, length, t, lambda k: -D * k ** 2 + r,
                       lambda u, k, fft: -r * fft(u ** 3), steps_per_frame=40)
    return _periodic_bundle(u, xf, t, refine, 1, {"u_t": {"u_xx": D, "u": r, "u^3": -r}}, "allen_cahn_front")


def zeldovich_front(*, D: float = 0.2, r: float = 2.0, length: float = 40.0, n: int = 256, t_end: float = 12.0,
                    nt: int = 121, refine: int = 2) -> FieldBundle:
    """Zeldovich (combustion) fronts ``u_t = D u_xx + r u^2 - r u^3`` from a burning plateau and an ignition bump.

    The reaction ``r u^2 (1 - u)`` has no linear part, so the unburnt state ``u = 0`` is neutrally
    stable and the fronts are *pushed* (driven by the reaction inside them, speed ``sqrt(D r / 2)``)
    rather than pulled by the leading edge as Fisher-KPP's. Diffusion matters only in the fronts and
    in the bump (``u = 0.45``, width ``0.04 length``) that ignites, spreads and merges with the
    plateau's front. Why the bump and wider-than-travelling initial fronts: on the travelling profile
    ``1 / (1 + exp(sqrt(r / (2 D)) xi))`` the data obey ``u_t = (r / 2)(u - u^2)`` exactly, a model
    without diffusion that no method can tell apart from the truth.
    """
    xf = np.arange(n * refine) * length / (n * refine)
    t = np.linspace(0.0, t_end, nt)
    w = 3 * np.sqrt(2 * D / r)
    u0 = (0.5 * (np.tanh((xf - 0.2 * length) / w) - np.tanh((xf - 0.45 * length) / w))
          + 0.45 * np.exp(-((xf - 0.75 * length) / (0.04 * length)) ** 2))
    u = solve_periodic(u0, length, t, lambda k: -D * k ** 2,
                       lambda u, k, fft: r * fft(u * u * (1 - u)), steps_per_frame=40)
    return _periodic_bundle(u, xf, t, refine, 1, {"u_t": {"u_xx": D, "u^2": r, "u^3": -r}}, "zeldovich_front")


def advection_diffusion_layer(*, c: float = 1.0, D: float = 0.01, length: float = 1.0, n: int = 200,
                              t_end: float = 1.5, nt: int = 151, refine: int = 4) -> FieldBundle:
    """Advection-diffusion ``u_t = -c u_x + D u_xx`` on ``[0, length]`` with ``u(0) = 1``, ``u(length) = 0``.

    A smoothed step enters from the left, crosses the domain and piles up into an outflow boundary
    layer of width ~ ``D / c`` at ``x = length``: diffusion matters in the moving step and in the
    layer only. Finite differences on a grid ``refine`` times finer, BDF in time.
    """
    from scipy.integrate import solve_ivp
    from scipy.sparse import diags

    nf = (n - 1) * refine + 1
    xf = np.linspace(0.0, length, nf)
    h = xf[1] - xf[0]
    t = np.linspace(0.0, t_end, nt)
    w = 0.03 * length
    u0 = 0.5 * (1 - np.tanh((xf - 0.15 * length) / w))
    u0[-1] = 0.0
    m = nf - 2
    A = diags([np.full(m - 1, D / h ** 2 + c / (2 * h)), np.full(m, -2 * D / h ** 2),
               np.full(m - 1, D / h ** 2 - c / (2 * h))], [-1, 0, 1], format="csr")
    bc = np.zeros(m)
    bc[0] = (D / h ** 2 + c / (2 * h)) * 1.0          # u(0) = 1; u(length) = 0 adds nothing

    sol = solve_ivp(lambda _t, v: A @ v + bc, (0.0, t_end), u0[1:-1], t_eval=t, method="BDF",
                    jac=A, rtol=1e-8, atol=1e-10)
    if not sol.success:
        raise InputError(f"the reference solver failed: {sol.message}")
    u = np.empty((nt, nf))
    u[:, 1:-1] = sol.y.T
    u[:, 0], u[:, -1] = 1.0, 0.0
    return FieldBundle({"u": u[:, ::refine]}, {"t": t, "x": xf[::refine]}, periodic=(False,),
                       attrs={"truth": {"u_t": {"u_x": -c, "u_xx": D}}, "generator": "advection_diffusion_layer"})


def burgers_pdefind(*, refine: int = 2) -> FieldBundle:
    """PDE-FIND's Burgers data: ``u_t = -u u_x + 0.1 u_xx``, ``u0 = exp(-(x+2)^2)``, x in [-8, 8) (256), t in [0, 10] (101)."""
    n, length = 256, 16.0
    xf = -8.0 + np.arange(n * refine) * length / (n * refine)
    t = np.linspace(0.0, 10.0, 101)
    u = solve_periodic(np.exp(-(xf + 2) ** 2), length, t, lambda k: -0.1 * k ** 2,
                       lambda u, k, fft: -0.5j * k * fft(u * u), steps_per_frame=20)
    return _periodic_bundle(u, xf, t, refine, 1, {"u_t": {"u*u_x": -1.0, "u_xx": 0.1}}, "burgers_pdefind")


def kdv_pdefind(*, refine: int = 1) -> FieldBundle:
    """PDE-FIND's KdV data: ``u_t = -6 u u_x - u_xxx``, x in [-30, 30) (512 points), t in [0, 20] (201 frames).

    Initial data: ``c1/2 sech^2(sqrt(c1)/2 (x + 20)) + c2/2 sech^2(sqrt(c2)/2 (x - 5))`` with
    ``c1 = 1``, ``c2 = 0.5``: a fast soliton overtaking a slow one.
    """
    n, length = 512, 60.0
    xf = -30.0 + np.arange(n * refine) * length / (n * refine)
    t = np.linspace(0.0, 20.0, 201)
    c1, c2 = 1.0, 0.5
    u0 = c1 / 2 / np.cosh(np.sqrt(c1) / 2 * (xf + 20)) ** 2 + c2 / 2 / np.cosh(np.sqrt(c2) / 2 * (xf - 5)) ** 2
    u = solve_periodic(u0, length, t, lambda k: 1j * k ** 3,
                       lambda u, k, fft: -3j * k * fft(u * u), steps_per_frame=40)
    return _periodic_bundle(u, xf, t, refine, 1, {"u_t": {"u*u_x": -6.0, "u_xxx": -1.0}}, "kdv_pdefind")


def ks_pdefind(*, refine: int = 1) -> FieldBundle:
    """PDE-FIND's Kuramoto-Sivashinsky data: ``u_t = -u u_x - u_xx - u_xxxx``, ``u0 = cos(x/16)(1 + sin(x/16))``.

    x in (0, 32 pi] (1024 points), t in [0, 100] (251 frames).
    """
    n, length = 1024, 32 * np.pi
    xf = np.arange(1, n * refine + 1) * length / (n * refine)
    t = np.linspace(0.0, 100.0, 251)
    u0 = np.cos(xf / 16) * (1 + np.sin(xf / 16))
    u = solve_periodic(u0, length, t, lambda k: k ** 2 - k ** 4,
                       lambda u, k, fft: -0.5j * k * fft(u * u), steps_per_frame=40)
    return _periodic_bundle(u, xf, t, refine, 1, {"u_t": {"u*u_x": -1.0, "u_xx": -1.0, "u_xxxx": -1.0}},
                            "ks_pdefind")


LOCALIZED = {"fisher_kpp": fisher_kpp_front, "burgers_shock": burgers_shock, "allen_cahn": allen_cahn_front,
             "advection_diffusion_layer": advection_diffusion_layer, "zeldovich": zeldovich_front}
PDEFIND = {"burgers": burgers_pdefind, "kdv": kdv_pdefind, "kuramoto_sivishinky": ks_pdefind}
