"""The moment model of the suspension (``c``, ``D``, ``u``) with a pluggable closure, differentiable in torch.

Taking moments of the kinetic equation (:mod:`.kinetic`, apolar ``v0 = 0``) gives, exactly,

``c_t = -div(u c) + d_t lap c``
``D_t = -div(u D) + G.D + D.G^T - 2 S:E + 4 zeta (D.D - S:D) - 4 d_r (D - c I / 2) + d_t lap D``

with the Stokes flow of :func:`.kinetic.solve_flow`; only the fourth moment ``S`` is unknown and comes from
a closure ``(c, D) -> (q4c, q4s)`` (:mod:`.moments`). The state is ``(c, a, b)`` with ``a = D_xx - D_yy``
and ``b = 2 D_xy`` (``D = c I / 2 + [[-a, b], [b, a]] / 2`` in ``(y, x)`` components), so that the
translational and rotational diffusion are diagonal and integrated exactly (integrating-factor Heun,
the scheme of the kinetic solver). Every step is a torch operation: gradients flow to the closure's
weights and to ``alpha`` / ``zeta`` (a-posteriori training and parameter estimation).
"""

from __future__ import annotations

import torch

from ...errors import InputError
from .kinetic import SuspensionParams, solve_flow
from .moments import contract4, fourth_moment
from .spectral import SpectralGrid

#: version of the moment model's numerics, recorded with its checkpoints
#: (:func:`~.stationary.moment_series`): bump it when a change alters the runs. Checkpoints that record none
#: were made by version 1.
MOMENT_VERSION = 1


def state_from_moments(c: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """``(..., n, n)`` and ``(..., n, n, 2, 2)`` -> state ``(..., 3, n, n)`` = ``(c, D_xx - D_yy, 2 D_xy)``."""
    return torch.stack([c, D[..., 1, 1] - D[..., 0, 0], 2 * D[..., 0, 1]], dim=-3)


def moments_from_state(state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`state_from_moments`."""
    c, a, b = state[..., 0, :, :], state[..., 1, :, :], state[..., 2, :, :]
    D = torch.stack([torch.stack([(c - a) / 2, b / 2], -1), torch.stack([b / 2, (c + a) / 2], -1)], -2)
    return c, D


class MomentSolver:
    """Integrator of the moment model.

    Parameters
    ----------
    params : SuspensionParams
        ``swim_speed`` must be 0 (the closure of the polar model needs odd moments too).
    closure : callable
        ``closure(c, D, params) -> (q4c, q4s)``, e.g. :func:`.moments.bingham_closure` or a
        :class:`~.learned.LearnedClosure`.
    n : int
        Grid points per side.
    dt : float
        Time step.
    device : str
    alpha, zeta : Tensor, optional
        Trainable replacements of ``params.alpha`` / ``params.zeta`` (parameter estimation).
    """

    def __init__(self, params: SuspensionParams, closure, *, n: int, dt: float, device="cpu",
                 alpha: torch.Tensor | None = None, zeta: torch.Tensor | None = None):
        if params.swim_speed:
            raise InputError("the moment model is for apolar suspensions (swim_speed = 0)")
        if not dt > 0:
            raise InputError(f"dt must be > 0, got {dt}")
        self.params, self.closure, self.dt, self.n = params, closure, float(dt), n
        self.grid = SpectralGrid(n, params.length, device=device)
        self.alpha = alpha
        self.zeta = zeta
        g = self.grid
        decay = torch.tensor([0.0, 4 * params.d_r, 4 * params.d_r], dtype=torch.float64, device=g.k2.device)
        self.lin = -params.d_t * g.k2[None] - decay[:, None, None]
        self.ef = torch.exp(self.lin * self.dt)

    def _params(self) -> SuspensionParams:
        p = self.params
        if self.alpha is None and self.zeta is None:
            return p
        return _TensorParams(p, self.alpha if self.alpha is not None else p.alpha,
                             self.zeta if self.zeta is not None else p.zeta)

    def closed_moments(self, state: torch.Tensor):
        """``c, D, S`` of a state (``S`` from the closure)."""
        c, D = moments_from_state(state)
        q4c, q4s = self.closure(c, D, self._params())
        return c, D, fourth_moment(c, D, q4c, q4s)

    def flow(self, state: torch.Tensor):
        """``u, G, E`` of a state."""
        c, D, S = self.closed_moments(state)
        return solve_flow(self.grid, self._params(), D, S)

    def _nonlinear(self, state_hat: torch.Tensor) -> torch.Tensor:
        g, pr = self.grid, self._params()
        state = g.ifft(state_hat * g.dealias)
        c, D, S = self.closed_moments(state)
        u, G, E = solve_flow(g, pr, D, S)
        rhs_D = G @ D + D @ G.transpose(-1, -2) - 2 * contract4(S, E) + 4 * pr.zeta * (D @ D - contract4(S, D))
        src = torch.stack([torch.zeros_like(c), rhs_D[..., 1, 1] - rhs_D[..., 0, 0], 2 * rhs_D[..., 0, 1]], -3)
        adv = [g.fft(u[..., i].unsqueeze(-3) * state) for i in range(2)]
        out = g.fft(src) - (1j * g.ky * adv[0] + 1j * g.kx * adv[1])
        return out * g.dealias

    def step(self, state_hat: torch.Tensor) -> torch.Tensor:
        """One integrating-factor Heun step on the spectral state ``(..., 3, n, n // 2 + 1)``."""
        h, ef = self.dt, self.ef
        k1 = self._nonlinear(state_hat)
        k2 = self._nonlinear(ef * (state_hat + h * k1))
        return ef * (state_hat + 0.5 * h * k1) + 0.5 * h * k2

    def rollout(self, state0: torch.Tensor, n_steps: int, *, every: int = 1) -> torch.Tensor:
        """Integrate ``n_steps`` steps from ``state0 (..., 3, n, n)``; returns ``(k, ..., 3, n, n)`` at
        steps ``every, 2 every, ...`` (differentiable; raises on blow-up)."""
        sh = self.grid.fft(state0)
        out = []
        for i in range(1, n_steps + 1):
            sh = self.step(sh)
            if i % every == 0:
                out.append(self.grid.ifft(sh))
        traj = torch.stack(out) if out else state0[None, ...][:0]
        bad = _first_unphysical(traj)
        if bad is not None:
            frame, why = bad
            raise MomentBlowUp(f"the moment model blew up {(frame + 1) * every * self.dt:.3g} time units into the "
                               f"run ({why}): the closure is unstable for this state or the time step (now "
                               f"{self.dt:g}) is too large; use a smaller time step (more steps per frame), a "
                               "shorter run or another closure (bingham)")
        return traj


class MomentBlowUp(InputError, FloatingPointError):
    """The moment model blew up (non-finite, or orientation harmonics far beyond their bound): a one-line error
    for a user (:class:`~napari_dynfit.errors.InputError`) that the checks still count as a blow-up
    (``except FloatingPointError``)."""


def _first_unphysical(traj: torch.Tensor) -> tuple[int, str] | None:
    """``(frame, why)`` of the first frame of ``traj (k, ..., 3, n, n)`` that is not finite, or whose orientation
    harmonics exceed the bound ``|(a, b)| <= c`` (with ``max |c|`` over the run, 10x slack for transients);
    ``None`` when all are physical."""
    with torch.no_grad():
        t = traj.detach()
        k = t.shape[0]
        if k == 0:
            return None
        finite = torch.isfinite(t.reshape(k, -1)).all(1)
        if not bool(finite.all()):
            return int(torch.nonzero(~finite)[0, 0]), "non-finite values"
        c = t[..., 0, :, :].abs().max()
        harm = torch.sqrt(t[..., 1, :, :] ** 2 + t[..., 2, :, :] ** 2).reshape(k, -1).amax(1)
        over = harm > 10 * c + 1e-9
        if bool(over.any()):
            return int(torch.nonzero(over)[0, 0]), "orientation order beyond ten times the concentration"
        return None


class _TensorParams:
    """``SuspensionParams`` with ``alpha`` / ``zeta`` replaced by (trainable or per-sample) tensors; with ``base``
    None it holds only ``alpha`` / ``zeta`` (all a closure reads)."""

    def __init__(self, base: SuspensionParams | None, alpha, zeta):
        if base is not None:
            self.__dict__.update(vars(base))
        self.alpha, self.zeta = alpha, zeta


def isotropic_state(n: int, *, device="cpu") -> torch.Tensor:
    """The isotropic state ``c = 1``, ``D = I / 2`` on an ``n x n`` grid."""
    s = torch.zeros((3, n, n), dtype=torch.float64, device=device)
    s[0] = 1.0
    return s


__all__ = ["MomentSolver", "isotropic_state", "moments_from_state", "state_from_moments"]
