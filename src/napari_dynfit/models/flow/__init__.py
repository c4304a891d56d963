"""Probability flow inference: drift, noise and growth of a population from untracked snapshots.

``dX = f(X) dt + sqrt(2 D) dW`` (and a net growth rate ``g(X)``) is fitted to point clouds observed at a few times:

>>> from napari_dynfit.models.flow import read_snapshots, fit_flow
>>> snaps = read_snapshots("snapshots.csv")            # doctest: +SKIP
>>> model = fit_flow(snaps, diffusion=0.5)              # doctest: +SKIP
>>> model.drift(x), model.growth(x)                     # doctest: +SKIP

Modules: :mod:`.io` (snapshot sets), :mod:`.score` (time-conditioned denoising score matching),
:mod:`.sinkhorn` (geomloss Sinkhorn divergences, energy distance), :mod:`.pfi` (flow fitting, balanced and
unbalanced; default settings, offset test, held-out check), :mod:`.gaussian` (Gaussian moment fit of a linear
drift), :mod:`.select` (held-out comparison of linear drifts), :mod:`.evaluate` (scores against known truth) and :mod:`.layers` (napari layer data).
"""

from .io import Snapshots, read_snapshots, snapshots_from_table
from .pfi import FlowModel, fit_flow, infer_flow, load_flow
from .score import ScoreModel, annealed_langevin, fit_score

__all__ = ["Snapshots", "read_snapshots", "snapshots_from_table", "FlowModel", "fit_flow", "infer_flow",
           "load_flow", "ScoreModel", "fit_score", "annealed_langevin"]
