"""A learned, rotation-equivariant, realizable, local closure of the fourth moment.

Every local closure that commutes with rotations and reflections is one scalar function ``m4(s)`` of the
order parameter (:mod:`.moments`), so the network learns that function and the lab-frame ``S`` follows by
rotation: equivariance holds by construction, not by data augmentation. The network is a residual on the
Bingham closure in logit space between the realizability bounds ``2 s^2 - 1 <= m4 <= 1``:

``m4 = lo + (1 - lo) sigmoid(logit_B(s) + s^2 f(s, alpha, zeta))``, ``lo = 2 s^2 - 1``,

so an untrained network *is* Bingham, ``m4(0) = 0`` (the isotropic state has no preferred frame) and no
weight can produce an unrealizable ``S``. ``f`` is a small MLP; the suspension parameters are inputs so
one network covers a parameter range (active learning, :mod:`.train`). Written here because the
equivariant parametrisation is the product; the network itself is plain torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ... import closure_defaults as _D
from ..._io import atomic_path, check_input_file
from ...errors import InputError
from .moments import bingham_m4, fourth_harmonics_from_m4, order_parameter

#: scales of the parameter inputs (The Well's ranges: alpha -1..-5, zeta 1..17)
PARAM_SCALE = {"alpha": 5.0, "zeta": 10.0}


class LearnedClosure(torch.nn.Module):
    """Equivariant closure ``(c, D, params) -> (q4c, q4s)``.

    Parameters
    ----------
    hidden : int
        Units per hidden layer.
    layers : int
        Hidden layers.
    param_inputs : tuple of str
        Suspension parameters fed to the network (subset of ``("alpha", "zeta")``).
    seed : int
        Initial weights (the last layer starts at zero: the closure starts as Bingham).
    """

    def __init__(self, hidden: int = _D.HIDDEN, layers: int = 2, param_inputs=("alpha", "zeta"), seed: int = 0):
        super().__init__()
        bad = set(param_inputs) - set(PARAM_SCALE)
        if bad:
            raise InputError(f"unknown parameter inputs {sorted(bad)}; choose from {sorted(PARAM_SCALE)}")
        self.config = {"hidden": int(hidden), "layers": int(layers), "param_inputs": list(param_inputs),
                       "seed": int(seed)}
        gen = torch.Generator().manual_seed(seed)
        dims = [1 + len(param_inputs)] + [hidden] * layers + [1]
        mods = []
        for i in range(len(dims) - 1):
            lin = torch.nn.Linear(dims[i], dims[i + 1], dtype=torch.float64)
            with torch.no_grad():
                bound = (6.0 / (dims[i] + dims[i + 1])) ** 0.5
                lin.weight.uniform_(-bound, bound, generator=gen)
                lin.bias.zero_()
                if i == len(dims) - 2:
                    lin.weight.zero_()
            mods += [lin, torch.nn.Tanh()]
        self.net = torch.nn.Sequential(*mods[:-1])

    def m4(self, s: torch.Tensor, params=None) -> torch.Tensor:
        """Eigenframe fourth harmonic for order parameters ``s`` (any shape)."""
        s = torch.clamp(s, 0.0, 1.0 - 1e-9)
        lo = 2 * s * s - 1
        frac = torch.clamp((bingham_m4(s) - lo) / (1 - lo), 1e-9, 1 - 1e-9)
        feats = [s]
        for name in self.config["param_inputs"]:
            val = getattr(params, name) if params is not None else 0.0
            val = torch.as_tensor(val, dtype=s.dtype, device=s.device)
            feats.append(torch.broadcast_to(val / PARAM_SCALE[name], s.shape))
        z = torch.logit(frac) + s * s * self.net(torch.stack(feats, -1))[..., 0]
        return lo + (1 - lo) * torch.sigmoid(z)

    def forward(self, c: torch.Tensor, D: torch.Tensor, params=None):
        return fourth_harmonics_from_m4(c, D, self.m4(order_parameter(c, D), params))

    # --- files ------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the closure to ``path`` (``.npz``: weights plus the configuration as JSON), atomically."""
        p = Path(path)
        if p.suffix.lower() != ".npz":
            raise InputError(f"closure file '{p}' must end in .npz")
        arrays = {f"w/{k}": v.detach().cpu().numpy() for k, v in self.state_dict().items()}
        arrays["config"] = np.array(json.dumps(self.config))
        with atomic_path(p) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        return p

    @classmethod
    def load(cls, path) -> LearnedClosure:
        """Read a closure written by :meth:`save`."""
        p = check_input_file(path, what="closure file", file=True)
        import zipfile

        fix = "train one with dynfit closure train"
        try:
            with np.load(p, allow_pickle=False) as z:
                config = json.loads(str(z["config"]))
                state = {k[2:]: torch.as_tensor(z[k]) for k in z.files if k.startswith("w/")}
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:  # EOFError: empty file
            msg = " ".join(str(exc).split()) or "empty file"
            raise InputError(f"'{p}' is not a closure file written by dynfit ({msg}): {fix}") from None
        bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise InputError(f"closure file '{p}' holds NaN or infinite weights ({bad[0]}): it is damaged or its "
                             f"training diverged; {fix}")
        try:
            obj = cls(**config)
            obj.load_state_dict(state)
        except (TypeError, ValueError, RuntimeError) as exc:  # config or weights that do not fit the network
            msg = " ".join(str(exc).split())[:200]
            raise InputError(f"'{p}' is not a closure file written by dynfit ({msg}): {fix}") from None
        return obj
