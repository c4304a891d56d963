"""``dynfit latent-field``, and ``dynfit denoise-field``."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..results import json_text
from ..validate import (
    MAX_LATENT_GRID,
    check_latent_grid,
    latent_grid_int,
    nonneg_int,
    output,
    positive_float,
    positive_int,
)

WEIGHTINGS = ("inverse-dirichlet", "annealing", "fixed")


def _add_training(p, steps: int, lr: float) -> None:
    """Training flags; ``steps`` and ``lr`` are the defaults of the core function the command calls."""
    p.add_argument("--steps", type=positive_int, default=steps, help=f"Adam steps (default {steps})")
    p.add_argument("--lbfgs", type=nonneg_int, default=0, help="L-BFGS iterations after Adam (default 0)")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="inverse-dirichlet",
                   help="loss weighting strategy (default inverse-dirichlet)")
    p.add_argument("--lr", type=positive_float, default=lr, help=f"Adam learning rate (default {lr:g})")
    p.add_argument("--checkpoint", help="checkpoint file: saved during training, resumed from when it exists")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--threads", type=nonneg_int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _threads(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _latent_field(args) -> int:
    import numpy as np

    from ..fields import FieldBundle
    from ..tables import read_table

    # the inputs first (no torch needed), then the learning stack: a bad input is reported as such
    # even where the [learn] extra is missing
    tracks = read_table(args.tracks, required=("frame", "track_id", "y", "x"))
    if args.dt is None and "dt" not in tracks.attrs:
        raise InputError("the tracks table does not store the frame interval: pass --dt (time per frame)")
    check_latent_grid(args.grid, int(tracks["frame"].max() - tracks["frame"].min()) + 1, "--grid",  # before training
                      draws=args.draws * args.chains if args.bayesian else 0)
    s = sb = None
    if args.source:
        sb = FieldBundle.load(args.source)
        if sb.ndim != 2:
            raise InputError(f"source fields '{args.source}' are {sb.ndim}D; a 2D (t, y, x) source is needed")
        s = sb[args.source_field]
    _threads(args)
    from ..models.pinn import fit_latent_field, grid_source

    source = None
    if sb is not None:
        source = grid_source(s[0] if s.ndim == 3 else s, sb.coords["y"], sb.coords["x"], periodic=args.box is not None)
    if args.bayesian:
        return _latent_field_bayesian(args, tracks, source)
    bundle, _ = fit_latent_field(tracks, steps=args.steps, lbfgs_steps=args.lbfgs, grid=args.grid,
                                 checkpoint=args.checkpoint, dt=args.dt, box=args.box, source=source,
                                 initial_zero=not args.no_initial, weighting=args.weighting, lr=args.lr,
                                 estimate=not args.no_estimate, refine=args.refine, device=args.device,
                                 seed=args.seed)
    bundle.to_zarr(args.output)
    info = bundle.attrs["pinn"]
    print(json_text({"output": str(args.output), "coefficients": info["coefficients"],
                      "initial_coefficients": info["initial_coefficients"],
                      "coefficients_trained": info["coefficients_trained"], "losses": info["losses"],
                      "weights": info["weights"]}))
    return 0 if np.isfinite(list(info["losses"].values())).all() else 1


def _latent_field_bayesian(args, tracks, source) -> int:
    """``dynfit latent-field --bayesian``: posterior mean/std of phi and parameter draws (BPINN, HMC)."""
    import numpy as np
    import pandas as pd

    from ..models.pinn.bayes_latent import bayesian_latent_field

    if args.checkpoint:
        raise InputError("--checkpoint is not supported with --bayesian (sampling is not resumable)")
    bundle, res = bayesian_latent_field(tracks, grid=args.grid, dt=args.dt, box=args.box, source=source,
                                        initial_zero=not args.no_initial, estimate=not args.no_estimate,
                                        weighting="fixed" if args.weighting == "fixed" else "adaptive",
                                        draws=args.draws, tune=args.tune, chains=args.chains,
                                        n_collocation=args.collocation,
                                        warmup_steps=args.steps, lbfgs_steps=args.lbfgs or min(100, args.steps),
                                        device=args.device, seed=args.seed)
    bundle.to_zarr(args.output)
    info = bundle.attrs["bpinn"]
    if args.samples:
        C, S = next(iter(res.samples.values())).shape
        table = pd.DataFrame({"chain": np.repeat(np.arange(C), S), "draw": np.tile(np.arange(S), C),
                              **{k: v.reshape(-1) for k, v in res.samples.items()}})
        from ..tables import write_table

        write_table(table, args.samples)  # atomic and part of the command's transaction (to_csv wrote in place)
    print(json_text({"output": str(args.output), "samples": args.samples, "mean": info["mean"],
                      "intervals": info["intervals"], "noise": info["noise"],
                      "acceptance": info["diagnostics"]["acceptance"], "rhat": info["diagnostics"]["rhat"],
                      "ess": info["diagnostics"]["ess"]}))
    return 0 if np.isfinite(bundle["phi"]).all() else 1


def _denoise_field(args) -> int:
    import numpy as np

    from ..fields import FieldBundle
    from ..models.model_json import validate_model
    from ..models.terms import term_fields

    # the inputs first (no torch needed), then the learning stack
    bundle = FieldBundle.load(args.fields)
    try:
        model = json.loads(Path(args.model).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read model JSON '{args.model}' ({exc}): write one with `dynfit discover-pde`") from exc
    eqs = validate_model(model)["equations"]
    mask = None
    if args.mask_field:
        mask = np.asarray(bundle[args.mask_field]) > 0
        bundle = bundle.select([n for n in bundle.fields if n != args.mask_field])
    missing = sorted(term_fields(list(eqs) + [t for rhs in eqs.values() for t in rhs]) - set(bundle.fields))
    if missing:
        raise InputError(f"the model's equations use fields {missing} that '{args.fields}' lacks "
                         f"(it has {sorted(bundle.fields)})")
    _threads(args)
    from ..models.pinn import denoise_fields

    out, _ = denoise_fields(bundle, model, steps=args.steps, lbfgs_steps=args.lbfgs, checkpoint=args.checkpoint,
                            mask=mask, learn_coefficients=args.learn_coefficients, weighting=args.weighting,
                            lr=args.lr, device=args.device, seed=args.seed)
    out.to_zarr(args.output)
    print(json_text({"output": str(args.output), **out.attrs["pinn"]}))
    return 0


def register(sub) -> None:
    p = sub.add_parser("latent-field", help="infer the hidden chemotactic field chi*c and Dc, k from 2D tracks (PINN)",
                       description="Fit a physics-informed network phi(t, y, x) = chi c to the track velocities "
                                   "(v = grad phi + noise) under phi_t = Dc lap(phi) - k phi + chi s; writes the "
                                   "field as a Zarr FieldBundle with the coefficients in its attrs.")
    p.add_argument("tracks", help="tracks table (.csv/.parquet) with frame, track_id, y, x in physical units")
    p.add_argument("-o", "--output", required=True, type=output(".zarr", kind="store"), help="output fields (.zarr)")
    p.add_argument("--dt", type=positive_float, help="frame interval (time units); default from the table's metadata")
    p.add_argument("--box", type=positive_float, nargs=2, metavar=("LY", "LX"), help="periodic box size (default: not periodic)")
    p.add_argument("--source", help="known source s(y, x) as fields (.zarr/.npz); default: learned")
    p.add_argument("--source-field", default="s", help="name of the source field (default s)")
    p.add_argument("--no-initial", action="store_true", help="do not impose phi = 0 at the first frame")
    p.add_argument("--no-estimate", action="store_true",
                   help="do not estimate Dc, k, chi by the spectral least-squares fit first (with --source and "
                        "--box the default is to estimate them and keep them fixed); train them from guesses")
    p.add_argument("--refine", action="store_true", help="train the estimated coefficients jointly with the field")
    p.add_argument("--grid", type=latent_grid_int, default=64,
                   help=f"output grid points per axis (default 64, at most {MAX_LATENT_GRID})")
    _add_training(p, 1500, 5e-3)  # fit_latent_field's (the latent-chemotaxis figure's) defaults
    b = p.add_argument_group("Bayesian PINN (--bayesian)")
    b.add_argument("--bayesian", action="store_true",
                   help="sample the posterior by HMC (BPINN, adaptive task weights; --weighting fixed: equal weights): "
                        "writes phi (posterior mean) and phi_std; --steps: warm-up Adam steps, --lbfgs: L-BFGS "
                        "iterations per warm-up round (default min(100, steps))")
    b.add_argument("--draws", type=positive_int, default=100, help="posterior draws per chain (default 100); with a known source and a periodic box each holds its own draw of Dc, k, chi (chains x draws of them)")
    b.add_argument("--tune", type=positive_int, default=100, help="HMC adaptation iterations per chain (default 100)")
    b.add_argument("--chains", type=positive_int, default=2, help="chains (default 2)")
    b.add_argument("--collocation", type=positive_int, default=2000,
                   help="PDE collocation points in the potential (default 2000; 400 under-determine the field)")
    b.add_argument("--samples", type=output(".csv"), help="write the parameter draws (chain, draw, Dc, k, chi) to this CSV")
    p.set_defaults(func=_latent_field)

    p = sub.add_parser("denoise-field", help="denoise/inpaint fields with a learned PDE as the physics loss (PINN)",
                       description="Fit a physics-informed network to coarse-grained fields under the equations of "
                                   "a model JSON; writes the smoothed, gap-filled fields (.zarr).")
    p.add_argument("fields", help="fields (.zarr/.npz)")
    p.add_argument("--model", required=True, help="model JSON with 'equations' (from dynfit discover-pde)")
    p.add_argument("-o", "--output", required=True, type=output(".zarr", kind="store"), help="output fields (.zarr)")
    p.add_argument("--mask-field", help="field that is > 0 where the data is observed (the rest is inpainted)")
    p.add_argument("--learn-coefficients", action="store_true", help="also refine the model's coefficients")
    _add_training(p, 2000, 2e-3)  # denoise_fields' defaults
    p.set_defaults(func=_denoise_field)
