"""``dynfit bench bpinn``: the Bayesian PINN cases of issue 20 (:mod:`.bpinn_cases`)."""

from __future__ import annotations

from ..validate import nonneg_int, positive_int
from . import add_threads

NAME = "bpinn"
HELP = "Bayesian PINN (issue 20): Sobolev, multi-scale Lotka-Volterra, latent chemotaxis; adaptive vs fixed weights"


def add_arguments(p) -> None:
    p.add_argument("--case", action="append", choices=("sobolev", "lotka-volterra", "chemotaxis"),
                   help="case to run (repeatable; default all three)")
    p.add_argument("--seeds", type=int, nargs="+", help="noise seeds of the Lotka-Volterra case (default 0 1 2 3 4)")
    p.add_argument("--sobolev-seeds", type=int, nargs="+",
                   help="noise seeds of the Sobolev case (default 0 1 2; --quick: 0)")
    p.add_argument("--chemotaxis-seeds", type=int, nargs="+",
                   help="simulation seeds of the chemotaxis case (default 1 2 3; tuned on 10-14)")
    p.add_argument("--draws", type=positive_int, default=100, help="posterior draws per chain (default 100)")
    p.add_argument("--tune", type=nonneg_int, default=100, help="HMC adaptation iterations per chain (default 100)")
    p.add_argument("--quick", action="store_true", help="one seed per case, 40 draws and 40 tuning iterations")
    add_threads(p)


def run(args) -> dict:
    from .bpinn_cases import bench_run

    return bench_run(args)
