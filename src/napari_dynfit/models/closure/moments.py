"""Orientation moments of a 2D apolar suspension and the closures of the fourth moment.

Conventions
-----------
Orientation ``p = (sin theta, cos theta)`` in component order ``(y, x)`` (``theta`` measured from the
``x`` axis). Moments of the distribution ``Psi(x, theta)``: ``c = int Psi``, ``D = int p p Psi``
(trace ``c``), ``S = int p p p p Psi``. In 2D the fully symmetric ``S`` is fixed by ``c``, ``D`` and two
numbers, the fourth angular harmonics ``q4c = int cos(4 theta) Psi`` and ``q4s = int sin(4 theta) Psi``
(:func:`fourth_moment`). A *closure* gives ``(q4c, q4s)`` from ``(c, D)``.

Rotation equivariance: in the eigenframe of ``D`` (angle ``phi``) the normalised second harmonic is
``s = lambda_1 - lambda_2`` of ``D / c`` (the scalar order parameter) and a closure that commutes
with rotations and reflections must set ``<cos 4(theta - phi)> = m4(s)`` and ``<sin 4(theta - phi)> = 0``.
So every equivariant local closure is one scalar function ``m4(s)``; rotated back to the lab frame,
``q4c = c m4(s) (C2^2 - S2^2) / s^2`` and ``q4s = c m4(s) 2 C2 S2 / s^2`` with ``C2 = (D_xx - D_yy) / c``,
``S2 = 2 D_xy / c``. This is how the learned closure is equivariant by construction.

Bingham: ``Psi ~ exp(B : p p)`` is a von Mises law in ``2 theta`` with concentration ``kappa``:
``s = I1(kappa) / I0(kappa)`` and ``m4 = I2(kappa) / I0(kappa)`` (exact for 2D), tabulated here once.
Realizability (a distribution exists) requires ``2 s^2 - 1 <= m4 <= 1``.
"""

from __future__ import annotations

import numpy as np
import torch

_EPS = 1e-12


def harmonics(c: torch.Tensor, D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised second harmonics ``C2 = <cos 2 theta>`` and ``S2 = <sin 2 theta>`` from ``c, D``.

    Parameters
    ----------
    c : Tensor ``(...)``
    D : Tensor ``(..., 2, 2)``, components ``(y, x)``.
    """
    cc = torch.clamp(c, min=_EPS)
    return (D[..., 1, 1] - D[..., 0, 0]) / cc, 2 * D[..., 0, 1] / cc


def order_parameter(c: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Scalar order parameter ``s`` (difference of the eigenvalues of ``D / c``), in ``[0, 1]``."""
    C2, S2 = harmonics(c, D)
    return torch.sqrt(C2 ** 2 + S2 ** 2 + _EPS ** 2)


def director(c: torch.Tensor, D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order parameter ``s (...)`` and director ``n (..., 2)`` (unit, components ``(y, x)``; the principal axis
    of ``D``, defined up to sign)."""
    C2, S2 = harmonics(c, D)
    phi = 0.5 * torch.atan2(S2, C2)  # angle from the x axis
    return torch.sqrt(C2 ** 2 + S2 ** 2), torch.stack([torch.sin(phi), torch.cos(phi)], -1)


def fourth_moment(c: torch.Tensor, D: torch.Tensor, q4c: torch.Tensor, q4s: torch.Tensor) -> torch.Tensor:
    """The full fourth moment ``S`` ``(..., 2, 2, 2, 2)`` from ``c, D`` and the fourth harmonics.

    Parameters
    ----------
    c, q4c, q4s : Tensor ``(...)``
    D : Tensor ``(..., 2, 2)``

    Notes
    -----
    With ``a = D_xx - D_yy`` and ``b = 2 D_xy``: ``S_xxxx = (3c + 4a + q4c) / 8``, ``S_yyyy = (3c - 4a + q4c) / 8``,
    ``S_xxyy = (c - q4c) / 8``, ``S_xxxy = (2b + q4s) / 8``, ``S_xyyy = (2b - q4s) / 8``; contracting two
    indices gives back ``D``.
    """
    a = D[..., 1, 1] - D[..., 0, 0]
    b = 2 * D[..., 0, 1]
    # value by the number of x indices (component 1) among the four
    by_nx = [(3 * c - 4 * a + q4c) / 8, (2 * b - q4s) / 8, (c - q4c) / 8, (2 * b + q4s) / 8,
             (3 * c + 4 * a + q4c) / 8]
    out = torch.empty(c.shape + (2, 2, 2, 2), dtype=c.dtype, device=c.device)
    for i in range(2):
        for j in range(2):
            for k in range(2):
                for m in range(2):
                    out[..., i, j, k, m] = by_nx[i + j + k + m]
    return out


def fourth_harmonics_from_m4(c: torch.Tensor, D: torch.Tensor, m4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab-frame ``(q4c, q4s)`` of an equivariant closure with eigenframe value ``m4(s)``."""
    C2, S2 = harmonics(c, D)
    s2 = C2 ** 2 + S2 ** 2
    g = m4 / torch.clamp(s2, min=_EPS)
    g = torch.where(s2 > 1e-10, g, torch.zeros_like(g))
    return c * g * (C2 ** 2 - S2 ** 2), c * g * 2 * C2 * S2


def contract4(S: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``(S : A)_ij = S_ijkl A_kl`` for ``S (..., 2, 2, 2, 2)`` and ``A (..., 2, 2)``."""
    return torch.einsum("...ijkl,...kl->...ij", S, A)


# --- Bingham --------------------------------------------------------------------------------
_TABLE: dict = {}


def _bingham_table(dtype, device):
    key = (dtype, str(device))
    if key not in _TABLE:
        from scipy.special import ive

        kappa = np.concatenate([np.linspace(0, 20, 4001)[:-1], np.geomspace(20, 2e4, 2000)])
        i0 = ive(0, kappa)
        s = ive(1, kappa) / i0
        m4 = ive(2, kappa) / i0
        _TABLE[key] = (torch.as_tensor(s, dtype=dtype, device=device),
                       torch.as_tensor(m4, dtype=dtype, device=device))
    return _TABLE[key]


def bingham_m4(s: torch.Tensor) -> torch.Tensor:
    """Bingham (von Mises) eigenframe fourth harmonic ``m4(s)`` (piecewise linear in a fine table; differentiable)."""
    ts, tm = _bingham_table(s.dtype, s.device)
    s = torch.clamp(s, 0.0, float(ts[-1]))
    idx = torch.clamp(torch.searchsorted(ts, s.detach().contiguous()), 1, len(ts) - 1)
    s0, s1 = ts[idx - 1], ts[idx]
    w = (s - s0) / (s1 - s0)
    return tm[idx - 1] * (1 - w) + tm[idx] * w


def bingham_closure(c: torch.Tensor, D: torch.Tensor, params=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Bingham closure: ``(q4c, q4s)`` from ``(c, D)`` (exact for a von Mises distribution in 2D; ``params`` unused)."""
    return fourth_harmonics_from_m4(c, D, bingham_m4(order_parameter(c, D)))
