"""``dynfit infer-flow``: probability flow inference from snapshots (drift, noise, growth)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..results import json_text
from ..validate import float_range, nonneg_int, output, positive_float, positive_int


def _diffusion_arg(text: str):
    if text.lower() == "fit":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--diffusion '{text}' is not a number: give D (dX = f dt + sqrt(2 D) dW) or 'fit'") from None
    if not np.isfinite(value) or value < 0:
        raise InputError(f"--diffusion must be a finite number >= 0, got {text}")
    return value


def _cmd_infer(args) -> int:
    import sys
    from pathlib import Path

    import torch

    from .._io import atomic_path
    from ..models.flow.io import read_snapshots
    from ..models.flow.layers import trajectory_table
    from ..models.flow.pfi import fit_flow

    if args.threads:
        torch.set_num_threads(args.threads)
    snaps = read_snapshots(args.snapshots, columns=args.columns.split(",") if args.columns else None,
                           time_column=args.time_column, dt=args.dt, basis=args.basis)
    offset = {"auto": "auto", "yes": True, "no": False}[args.offset]
    model = fit_flow(snaps, _diffusion_arg(args.diffusion), model=args.model, init=args.init, growth=args.growth,
                     offset=offset, steps=args.steps, n_euler=args.euler_steps, integrator=args.integrator,
                     holdout=args.holdout, device=args.device, seed=args.seed,
                     score_kwargs={"steps": args.score_steps})
    for what, record in model.selection.items():  # how the offset and the refinement were chosen, one line each
        print(f"dynfit infer-flow: {what}: {record['reason']}", file=sys.stderr)
    if model.uncertainty:  # how well the snapshots pin A (sandwich covariance), or "not identifiable" and what would help
        u = model.uncertainty
        print(f"dynfit infer-flow: drift uncertainty: {u['reason']}" + (f"; {u['hint']}" if u["hint"] else ""),
              file=sys.stderr)
    out = Path(args.output)
    model.save(out)
    with atomic_path(out / "trajectories.csv") as tmp:
        trajectory_table(model, snaps, n_paths=args.n_paths, seed=args.seed).to_csv(tmp, index=False)
    if args.h5ad_out:
        from ..models.flow.h5ad import write_flow_h5ad

        src = args.snapshots if Path(args.snapshots).suffix.lower() == ".h5ad" else None
        write_flow_h5ad(model, args.h5ad_out, source=src, time_key=args.time_column or "time", basis=args.basis,
                        table=None if src else snaps.to_table())
    print(json_text({k: v for k, v in model.to_dict().items()
                      if k in ("drift", "diffusion", "growth", "drift_uncertainty")}))
    return 0


def register(sub) -> None:
    p = sub.add_parser("infer-flow", help="probability flow inference: drift (+ growth) from untracked snapshots",
                       description="Fit dX = f(X) dt + sqrt(2 D) dW (and a growth rate g(X) with --growth) to point "
                                   "clouds observed at a few times (no tracks). Writes OUT/flow.json (linear drift "
                                   "as {'drift': {'A', 'b'}}, f(x) = A x + b; 'selection': how the offset and "
                                   "the refinement were chosen; 'drift_uncertainty': standard errors of A and its 95 % "
                                   "bound from the snapshot counts), OUT/flow.pt (torch weights) and "
                                   "OUT/trajectories.csv (paths sampled from the learned SDE). Progress bars show "
                                   "the time left of each stage (score matching, flow fitting).")
    p.add_argument("snapshots", help="CSV/Parquet with a 'time' (or 'frame') column and coordinate columns "
                                     "(detections: frame, [z,] y, x), or AnnData .h5ad")
    p.add_argument("--diffusion", required=True,
                   help="diffusion coefficient D (units^2 / time), or 'fit' to fit an isotropic D")
    p.add_argument("--model", choices=("linear", "mlp"), default="linear", help="drift family (default linear)")
    p.add_argument("--init", choices=("moments", "zero"), default="moments",
                   help="linear drift with a given D: start from the Gaussian fit of the snapshots' means and "
                        "covariances (default) or from zero")
    p.add_argument("--growth", action="store_true", help="learn a growth rate g(x) (unbalanced PFI); the population "
                                                         "size at each time is the row count (or sum of 'weight')")
    p.add_argument("-o", "--output", required=True, type=output(kind="folder"), help="output folder (created)")
    p.add_argument("--columns", help="comma-separated coordinate columns (default: z,y,x / y,x or all numeric)")
    p.add_argument("--time-column", "--time-key", dest="time_column",
                   help="time column (default 'time', else 'frame'); for .h5ad the obs column (default 'time': "
                        "numbers, or labels holding one number such as 'day 2')")
    p.add_argument("--dt", type=positive_float, help="time per frame when time comes from 'frame' (default 1)")
    p.add_argument("--basis", help=".h5ad only: obsm key of the coordinates (default X)")
    p.add_argument("--h5ad-out", type=output(".h5ad"),
                   help="write an AnnData file: a .h5ad input copied whole plus obsm['pfi_drift'] (f at each cell), "
                        "obsm['pfi_velocity'], obs['pfi_growth'] (with --growth) and uns['pfi'] (the model); a "
                        "table input as a new AnnData file (X = coordinates, obs['time'])")
    p.add_argument("--offset", choices=("auto", "yes", "no"), default="auto",
                   help="linear drift f(x) = A x + b: fit b (yes), b = 0 (no), or b only when a likelihood-ratio "
                        "test on the snapshots' moments supports it (auto, default)")
    p.add_argument("--holdout", type=float_range(0, 1, open_max=True), default=0.25,
                   help="linear drift from the moments: fraction of each snapshot held out to check that the "
                        "refinement beats the moment fit (else the moment fit is kept; 0: no check; default 0.25)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="flow-fitting steps (default 150 for linear, 400 for mlp: the benchmarks' settings)")
    p.add_argument("--score-steps", type=positive_int, default=2000, help="score-matching steps (default 2000)")
    p.add_argument("--euler-steps", type=positive_int, default=3, help="integration steps per snapshot interval (default 3)")
    p.add_argument("--integrator", choices=("heun", "euler"), default="heun",
                   help="integrator of the probability flow (default heun: second order; euler: first order)")
    p.add_argument("--n-paths", type=positive_int, default=200, help="trajectories to sample (default 200)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--threads", type=nonneg_int, default=1,
                   help="torch CPU threads (default 1: the batches are small; 0: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd_infer)
