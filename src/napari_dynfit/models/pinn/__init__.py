"""Physics-informed neural networks: latent fields, field denoising and loss weighting.

* :class:`FieldNetwork` -- MLP ``f(t, *space)`` with Fourier features (exactly periodic on
  periodic axes).
* :class:`PointLoss`, :class:`ResidualLoss`, :class:`Coefficient` -- data, boundary/initial and
  PDE residual losses written in the project's term vocabulary (:mod:`napari_dynfit.models.terms`).
* :class:`PINN` -- training with ``"fixed"``, ``"annealing"`` or ``"inverse-dirichlet"`` loss
  weights, Adam then L-BFGS, checkpoints (stop/resume), CPU or GPU.
* :func:`fit_latent_field` -- the chemotactic potential ``chi c`` and ``Dc``, ``k`` from tracks.
* :func:`denoise_fields` -- denoise/inpaint coarse-grained fields under a learned PDE.
"""

from .chemotaxis import (
                         LatentFieldProblem,
                         fit_latent_field,
                         grid_source,
                         latent_chemotaxis_pinn,
                         spectral_coefficients,
                         track_velocities,
                         visited_mask,
)
from .denoise import denoise_fields, fields_pinn, summary
from .losses import Coefficient, PointLoss, ResidualLoss
from .network import FieldNetwork
from .results import DenoiseResult, LatentFieldResult
from .train import PINN, resolve_device
from .weighting import STRATEGIES, LossWeighting

__all__ = [
                         "PINN",
                         "STRATEGIES",
                         "Coefficient",
                         "DenoiseResult",
                         "LatentFieldResult",
                         "FieldNetwork",
                         "LatentFieldProblem",
                         "LossWeighting",
                         "PointLoss",
                         "ResidualLoss",
                         "denoise_fields",
                         "fields_pinn",
                         "fit_latent_field",
                         "grid_source",
                         "latent_chemotaxis_pinn",
                         "resolve_device",
                         "spectral_coefficients",
                         "summary",
                         "track_velocities",
                         "visited_mask",
]
