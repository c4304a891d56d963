"""Small torch helpers shared by the flow-inference modules (device choice, MLPs, seeding)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...device import resolve_device  # noqa: F401 (the one device rule; score.py and pfi.py import it from here)


def mlp(n_in: int, n_out: int, width: int = 128, depth: int = 3) -> nn.Sequential:
    """A fully connected network ``n_in -> width x depth -> n_out`` with SiLU activations."""
    layers: list[nn.Module] = []
    last = n_in
    for _ in range(depth):
        layers += [nn.Linear(last, width), nn.SiLU()]
        last = width
    layers.append(nn.Linear(last, n_out))
    return nn.Sequential(*layers)


def as_tensor(x, device, dtype=torch.float32) -> torch.Tensor:
    """``x`` (array or tensor) as a tensor on ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with ``seed`` (batches are drawn on the CPU for reproducibility)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
