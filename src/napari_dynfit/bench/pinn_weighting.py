"""``dynfit bench pinn-weighting``: the multi-scale 2D Poisson PINN under each loss weighting (:mod:`.poisson`)."""

from __future__ import annotations

from ..validate import nonneg_float, positive_float, positive_int
from . import add_threads

NAME = "pinn-weighting"
HELP = "multi-scale 2D Poisson PINN: inverse-Dirichlet vs fixed vs annealing loss weights"


def add_arguments(p) -> None:
    p.add_argument("--steps", type=positive_int, default=2000, help="Adam steps per strategy (default 2000)")
    p.add_argument("--high", type=positive_float, default=6.0, help="high-frequency mode, in units of pi (default 6)")
    p.add_argument("--eps", type=nonneg_float, default=0.01, help="amplitude of the high-frequency mode (default 0.01)")
    add_threads(p)
    p.add_argument("--seed", type=int, default=0)


def run(args) -> dict:
    import torch

    from .poisson import poisson_benchmark

    torch.set_num_threads(args.threads)
    return poisson_benchmark(steps=args.steps, high=args.high, eps=args.eps, seed=args.seed)
