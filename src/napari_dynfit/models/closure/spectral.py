"""Periodic 2D pseudo-spectral operators in torch, shared by the kinetic and the moment solvers.

Axis order is ``(..., y, x)`` and vector/tensor components follow it (component 0 is ``y``), as in
:class:`~napari_dynfit.fields.FieldBundle`. The velocity gradient is ``G[..., i, j] = d u_i / d x_j``.

Written here rather than taken from a library: the closure training differentiates through every
operator (torch autograd), on CPU and GPU, and the operators are a few lines each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class SpectralGrid:
    """A periodic square grid of ``n x n`` points on ``[0, length)^2``.

    Parameters
    ----------
    n : int
        Points per side (even).
    length : float
        Side of the domain (length units).
    device, dtype
        Where and in which precision the wavenumbers live.
    """

    n: int
    length: float
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float64

    def __post_init__(self):
        h = self.length / self.n
        ky = 2 * math.pi * torch.fft.fftfreq(self.n, d=h, dtype=self.dtype, device=self.device)
        kx = 2 * math.pi * torch.fft.rfftfreq(self.n, d=h, dtype=self.dtype, device=self.device)
        self.ky, self.kx = torch.meshgrid(ky, kx, indexing="ij")  # (n, n // 2 + 1)
        self.k2 = self.kx ** 2 + self.ky ** 2
        self.inv_k2 = torch.where(self.k2 > 0, 1.0 / torch.where(self.k2 > 0, self.k2, 1.0), 0.0)
        kmax_y = ky.abs().max()
        # 2/3 rule: keep |k| below 2/3 of the largest resolved wavenumber on each axis
        self.dealias = ((self.ky.abs() < 2.0 / 3.0 * kmax_y) & (self.kx.abs() < 2.0 / 3.0 * kmax_y)).to(self.dtype)
        self.kvec = (self.ky, self.kx)

    @property
    def spacing(self) -> float:
        """Grid spacing (length units)."""
        return self.length / self.n

    def coords(self) -> torch.Tensor:
        """Grid coordinates ``(n,)`` (length units)."""
        return torch.arange(self.n, dtype=self.dtype, device=self.device) * self.spacing

    # --- transforms -------------------------------------------------------------------------
    def fft(self, f: torch.Tensor) -> torch.Tensor:
        """rfft2 over the last two axes ``(y, x)``."""
        return torch.fft.rfft2(f)

    def ifft(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`fft`."""
        return torch.fft.irfft2(f_hat, s=(self.n, self.n))

    def grad(self, f: torch.Tensor) -> torch.Tensor:
        """Gradient ``(..., n, n) -> (..., n, n, 2)`` (components ``y, x``)."""
        f_hat = self.fft(f)
        return torch.stack([self.ifft(1j * k * f_hat) for k in self.kvec], dim=-1)

    def div(self, v: torch.Tensor) -> torch.Tensor:
        """Divergence of a vector field ``(..., n, n, 2) -> (..., n, n)``."""
        return self.ifft(sum(1j * k * self.fft(v[..., i]) for i, k in enumerate(self.kvec)))

    def laplacian(self, f: torch.Tensor) -> torch.Tensor:
        """Laplacian ``(..., n, n) -> (..., n, n)``."""
        return self.ifft(-self.k2 * self.fft(f))

    # --- Stokes -----------------------------------------------------------------------------
    def stokes(self, stress: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity and its gradient from ``-lap(u) + grad(q) = div(stress)``, ``div(u) = 0``.

        Parameters
        ----------
        stress : Tensor
            Stress ``(..., n, n, 2, 2)``.

        Returns
        -------
        u : Tensor
            ``(..., n, n, 2)``, zero mean.
        G : Tensor
            ``(..., n, n, 2, 2)``, ``G[..., i, j] = d u_i / d x_j``.
        """
        s_hat = [[self.fft(stress[..., i, j]) for j in range(2)] for i in range(2)]
        f_hat = [sum(1j * self.kvec[j] * s_hat[i][j] for j in range(2)) for i in range(2)]
        # project out the pressure: u_hat = (I - k k / k^2) f_hat / k^2
        kf = sum(self.kvec[i] * f_hat[i] for i in range(2)) * self.inv_k2
        u_hat = [(f_hat[i] - self.kvec[i] * kf) * self.inv_k2 for i in range(2)]
        u = torch.stack([self.ifft(uh) for uh in u_hat], dim=-1)
        G = torch.stack([torch.stack([self.ifft(1j * self.kvec[j] * u_hat[i]) for j in range(2)], dim=-1)
                         for i in range(2)], dim=-2)
        return u, G
