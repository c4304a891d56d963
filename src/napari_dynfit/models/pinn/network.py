"""The field network ``f(t, *space)``: an MLP on Fourier features of the normalised coordinates.

Inputs are points ``(N, 1 + d)`` in physical units, columns ``(t, [z,] y, x)``. Each coordinate is
mapped to ``[-1, 1]`` with the domain bounds. Periodic spatial axes enter only through integer
harmonics ``sin(2 pi n x / L), cos(2 pi n x / L)``, ``n = 1..harmonics``, so every output is exactly
periodic; the other axes (time included) enter raw and through random Fourier features
``sin(pi B z), cos(pi B z)`` with ``B ~ N(0, fourier_scale^2)`` (Tancik et al. 2020), which lets a
small tanh MLP represent fine scales. Outputs are named fields, scalar (one channel) or vector
(``d`` channels in axis order), each scaled by ``output_scale`` and shifted by ``output_offset``
so that the raw network works with order-one numbers whatever the physical units.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ...errors import InputError

SPACE_AXES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


class FieldNetwork(nn.Module):
    """MLP ``(t, *space) -> {field: value}`` with Fourier-feature inputs.

    Parameters
    ----------
    bounds : sequence of (float, float)
        ``(low, high)`` per input column ``(t, [z,] y, x)``, physical units. For periodic axes
        ``high - low`` is the period ``L``.
    outputs : dict of str -> str
        Field names and kinds, ``"scalar"`` or ``"vector"`` (``d`` components in axis order).
    periodic : sequence of bool, optional
        Periodicity per spatial axis (axis order). Default: none.
    hidden : sequence of int
        Widths of the hidden layers.
    fourier_features : int
        Number of random Fourier frequencies for the non-periodic inputs (0: raw inputs only).
    fourier_scale : float
        Standard deviation of the random frequencies (in cycles per half domain).
    harmonics : int
        Number of harmonics per periodic axis.
    output_scale, output_offset : dict of str -> float, optional
        Per-field affine map of the raw outputs (e.g. the data's standard deviation and mean).
    seed : int
        Seed of the initial weights and of the random frequencies.
    """

    def __init__(self, bounds, outputs, *, periodic=None, hidden=(64, 64, 64), fourier_features: int = 16,
                 fourier_scale: float = 1.0, harmonics: int = 4, output_scale=None, output_offset=None,
                 seed: int = 0):
        super().__init__()
        bounds = np.asarray(bounds, dtype=float)
        if bounds.ndim != 2 or bounds.shape[1] != 2 or not 2 <= bounds.shape[0] <= 4:
            raise InputError("bounds must be (low, high) pairs for t and 1-3 spatial axes, e.g. [(0, 1), (0, 1)]")
        if not np.all(bounds[:, 1] > bounds[:, 0]):
            raise InputError(f"every bound needs high > low, got {bounds.tolist()}: check the coordinates")
        self.ndim = bounds.shape[0] - 1
        self.space_axes = SPACE_AXES[self.ndim]
        periodic = tuple(bool(p) for p in (periodic if periodic is not None else (False,) * self.ndim))
        if len(periodic) != self.ndim:
            raise InputError(f"periodic has {len(periodic)} entries for {self.ndim} spatial axes")
        for name, kind in outputs.items():
            if kind not in ("scalar", "vector") or not name.isalnum() or not name[0].isalpha():
                raise InputError(f"output '{name}' of kind '{kind}': names are letters/digits, kinds scalar/vector")
        self.config = dict(bounds=bounds.tolist(), outputs=dict(outputs), periodic=list(periodic),
                           hidden=[int(h) for h in hidden], fourier_features=int(fourier_features),
                           fourier_scale=float(fourier_scale), harmonics=int(harmonics),
                           output_scale=dict(output_scale or {}), output_offset=dict(output_offset or {}),
                           seed=int(seed))
        gen = torch.Generator().manual_seed(int(seed))
        self.periodic = periodic
        self.register_buffer("low", torch.tensor(bounds[:, 0]))
        self.register_buffer("span", torch.tensor(bounds[:, 1] - bounds[:, 0]))
        self.free = [0] + [1 + i for i, p in enumerate(periodic) if not p]
        self.cyclic = [1 + i for i, p in enumerate(periodic) if p]
        self.register_buffer("B", torch.randn(len(self.free), int(fourier_features), generator=gen)
                             * float(fourier_scale))
        self.register_buffer("harm", torch.arange(1, int(harmonics) + 1, dtype=torch.float64))
        n_in = len(self.free) + 2 * int(fourier_features) + 2 * int(harmonics) * len(self.cyclic)
        self.channels = {}
        n_out = 0
        for name, kind in outputs.items():
            k = 1 if kind == "scalar" else self.ndim
            self.channels[name] = (n_out, n_out + k, kind)
            n_out += k
        layers: list[nn.Module] = []
        widths = [n_in, *[int(h) for h in hidden], n_out]
        for a, b in zip(widths[:-1], widths[1:]):
            lin = nn.Linear(a, b)
            nn.init.xavier_normal_(lin.weight, gain=5 / 3, generator=gen)
            nn.init.zeros_(lin.bias)
            layers += [lin, nn.Tanh()]
        self.mlp = nn.Sequential(*layers[:-1])
        scale = [float((output_scale or {}).get(n, 1.0)) for n, (a, b, _) in self.channels.items() for _ in range(b - a)]
        offset = [float((output_offset or {}).get(n, 0.0)) for n, (a, b, _) in self.channels.items() for _ in range(b - a)]
        self.register_buffer("out_scale", torch.tensor(scale))
        self.register_buffer("out_offset", torch.tensor(offset))

    @property
    def outputs(self) -> dict[str, str]:
        """Field names and kinds."""
        return {n: k for n, (_, _, k) in self.channels.items()}

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """Input features of ``points`` ``(N, 1 + d)`` (physical units)."""
        z = (points - self.low.to(points.dtype)) / self.span.to(points.dtype)  # in [0, 1]
        feats = []
        zf = 2.0 * z[:, self.free] - 1.0
        feats.append(zf)
        if self.B.shape[1]:
            proj = math.pi * zf @ self.B.to(points.dtype)
            feats += [torch.sin(proj), torch.cos(proj)]
        if self.cyclic:
            ang = 2.0 * math.pi * z[:, self.cyclic, None] * self.harm.to(points.dtype)
            feats += [torch.sin(ang).flatten(1), torch.cos(ang).flatten(1)]
        return torch.cat(feats, dim=1)

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """Evaluate the fields at ``points`` ``(N, 1 + d)``; scalars ``(N,)``, vectors ``(N, d)``."""
        raw = self.mlp(self.features(points)) * self.out_scale.to(points.dtype) + self.out_offset.to(points.dtype)
        return {n: raw[:, a] if kind == "scalar" else raw[:, a:b] for n, (a, b, kind) in self.channels.items()}

    @classmethod
    def from_config(cls, config: dict) -> FieldNetwork:
        """Rebuild a network (fresh weights) from :attr:`config`."""
        cfg = dict(config)
        return cls(cfg.pop("bounds"), cfg.pop("outputs"), **cfg)
