"""``dynfit bench pinn-chemotaxis``: the latent chemotactic field of simulated cells (issue 8's figure)."""

from __future__ import annotations

from ..validate import int_range, nonneg_float, positive_int
from . import add_threads

NAME = "pinn-chemotaxis"
HELP = "latent chemotactic field from simulated tracks: rel. L2 of chi c, Dc, k, chi"


def add_arguments(p) -> None:
    p.add_argument("--steps", type=positive_int, default=1500, help="Adam steps (default 1500)")
    p.add_argument("--cells", type=positive_int, default=500, help="number of cells (default 500)")
    p.add_argument("--frames", type=int_range(2, None), default=31, help="number of frames (default 31, dt = 0.2)")
    p.add_argument("--noise", type=nonneg_float, default=0.002, help="cell diffusion coefficient D (default 0.002)")
    p.add_argument("--refine", action="store_true", help="also train the coefficients jointly with the field")
    p.add_argument("--no-estimate", action="store_true", help="train the coefficients from the default guesses "
                                                               "(no spectral estimate)")
    add_threads(p)
    p.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")


def run(args) -> dict:
    """The issue-8 chemotaxis figure: rel. L2 of chi c over the visited region, Dc, k, chi vs the truth."""
    import time

    import numpy as np
    import torch

    from ..models.pinn import latent_chemotaxis_pinn, visited_mask
    from ..sim.chemotaxis import simulate_chemotaxis

    torch.set_num_threads(args.threads)
    sim = simulate_chemotaxis(n_cells=args.cells, n_frames=args.frames, D=args.noise, seed=args.seed)
    t0 = time.perf_counter()
    prob = latent_chemotaxis_pinn(sim.to_table(), source=lambda X: sim.source_function(X[:, 1], X[:, 2]),
                                  estimate=not args.no_estimate, refine=args.refine, device="cpu", seed=0)
    t_est = time.perf_counter() - t0
    prob.pinn.fit(args.steps)
    t_fit = time.perf_counter() - t0 - t_est
    coords = {"t": sim.times, "y": sim.grid["y"], "x": sim.grid["x"]}
    phi = prob.pinn.predict_grid(coords)["phi"]
    mask = visited_mask(prob.points, coords, 0.5, box=sim.box)
    mask[0] = False  # phi = 0 at t = 0
    coefs = prob.pinn.coefficient_values()
    truth = {n: sim.params[n] for n in ("Dc", "k", "chi")}
    return {"rel_l2_chi_c": float(np.linalg.norm((phi - sim.phi)[mask]) / np.linalg.norm(sim.phi[mask])),
            "coefficients": coefs, "true": truth, "estimate": prob.initial_coefficients,
            "rel_error": {n: abs(coefs[n] / truth[n] - 1) for n in truth},
            "coefficients_trained": prob.coefficients_trained, "steps": args.steps,
            "estimate_s": t_est, "fit_s": t_fit, "cells": args.cells, "frames": args.frames, "D": args.noise}
