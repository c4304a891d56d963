"""``dynfit coarse-grain`` and ``dynfit discover-pde``.

    dynfit coarse-grain tracks.csv -o fields.zarr --spacing 0.5 --sigma 1.0 --box 20 20 --periodic
    dynfit discover-pde fields.zarr -o model.json --stochastic
    dynfit discover-pde burgers.mat -o model.json --max-derivative 4 --validate

``discover-pde`` prints the learned equations with where each term acts and the forecast check,
or, when the data cannot pin the model, "not identifiable from these data" with the reasons and
what would help (the model JSON still holds the best candidate, flagged under ``identifiability``).
"""

from __future__ import annotations

import sys

from ..errors import InputError
from ..validate import nonneg_int, odd_int, output, positive_float, positive_int, probability
from ._field_source import add_field_source_arguments, load_fields_from_args


def _cmd_coarse_grain(args) -> int:
    from ..fields.bundle import fields_output_path
    from ..fields.coarse_grain import coarse_grain_table
    from ..tables import read_table

    fields_output_path(args.output)
    df = read_table(args.tracks)
    if args.sigma is None:  # kernel = mean inter-particle distance, grid half of it (as the GUI)
        from ..fields.coarse_grain import auto_kernel

        args.sigma, auto_spacing = auto_kernel(df, box=args.box)
        args.spacing = args.spacing or auto_spacing
        print(f"kernel sigma {args.sigma:.4g} (mean inter-particle distance), grid spacing {args.spacing:.4g}")
    elif args.spacing is None:
        args.spacing = args.sigma / 2
    _check_grid_size(df, args)
    bundle = coarse_grain_table(df, spacing=args.spacing, sigma=args.sigma, box=args.box, periodic=args.periodic,
                                dt=args.dt, fields=tuple(args.fields), polarisation=args.polarisation,
                                fill_gaps=not args.no_fill_gaps)
    out = bundle.save(args.output)
    print(f"{out}: fields {sorted(bundle.fields)} on a grid {bundle.shape} (t, {', '.join(bundle.space_axes)})")
    return 0


def _check_grid_size(df, args) -> None:
    """Refuse, before any work, a grid whose fields do not fit the memory (or the output disk)."""
    import numpy as np

    from .._io import check_free_space
    from ..tables import coord_columns
    from ..validate import check_memory

    cols = coord_columns(df)
    d = len(cols)
    pos = df[cols].to_numpy(dtype=float)
    extent = (np.asarray(args.box, dtype=float) if args.box and len(args.box) == d
              else pos.max(0) - pos.min(0) + 8 * args.sigma)
    shape = [int(e / args.spacing) + 1 for e in extent]
    frames = int(df["frame"].max() - df["frame"].min()) + 1
    comps = {"rho": 1, "p": d, "v": d, "Q": d * d}
    n = float(np.prod(shape, dtype=float)) * frames * sum(comps[f] for f in args.fields)
    what = f"a grid of {' x '.join(map(str, shape))} x {frames} frames"
    check_memory(3 * 8 * n, what, "increase --spacing")
    check_free_space(args.output, 8 * n, what=what, fix="increase --spacing")


def _equations(bundle, args):
    from ..models.library import default_library

    return default_library(bundle, args.lhs, max_power=3 if args.max_power is None else args.max_power,
                           max_derivative=3 if args.max_derivative is None else args.max_derivative,
                           extra=args.terms or ())


def _cmd_discover(args) -> int:
    from ..models.integrate import forecast_error
    from ..models.model_json import format_model, write_model
    from ..models.pde import discover_pde

    bundle = load_fields_from_args(args.input, args, periodic=args.periodic)
    res = discover_pde(bundle, _equations(bundle, args), derivative=args.derivative, solver=args.solver,
                       pi_th=args.pi_th, n_subsamples=args.subsamples, n_penalties=args.penalties,
                       decades=args.decades, gain=args.gain, forecast=not args.no_forecast_check,
                       half_width=args.half_width if args.half_width is None or len(args.half_width) > 1
                       else args.half_width[0],
                       window=args.window, stochastic=args.stochastic,
                       noise_correction=not args.no_noise_correction,
                       frame_correction=not args.no_frame_correction, seed=args.seed)
    model = res.model
    model["source"] = str(args.input)
    if args.stochastic is None and model["method"]["stochastic"]:
        print(f"Ito weak form: {model['method']['stochastic_why']} (--no-stochastic to switch it off)",
              file=sys.stderr)
    failure = None
    validate = args.validate and all(model["equations"].values())      # nothing to integrate otherwise
    if validate:
        try:
            fe = forecast_error(model, bundle, start=0)
        except InputError as exc:          # an unstable or too stiff model is a result, not a usage error
            failure = str(exc)
            model["diagnostics"]["forecast_failed"] = failure
        else:
            model["diagnostics"]["forecast_relative_l2"] = {f: e[-1] for f, e in fe["relative_l2"].items()}
            model["diagnostics"]["forecast_time"] = fe["times"][-1] - fe["times"][0]
    write_model(model, args.output)
    print(res.summary() if args.decades is None else format_model(model))
    if failure:
        print(f"forecast failed: {failure}")
    elif validate:
        for f, e in model["diagnostics"]["forecast_relative_l2"].items():
            print(f"forecast of {f} over {model['diagnostics']['forecast_time']:.4g} time units: "
                  f"relative L2 error {e:.3g}")
    return 0


def register(sub) -> None:
    c = sub.add_parser("coarse-grain", help="tracks/detections table -> fields (rho, p, v, Q) on a grid",
                       description="Coarse-grain a table (frame, [z,] y, x [, track_id, p_y, p_x]) with a Gaussian "
                                   "kernel into fields on a regular grid (Zarr or npz).")
    c.add_argument("tracks", help="table file (.csv/.parquet) with frame, [z,] y, x columns")
    c.add_argument("-o", "--output", required=True, type=output(".zarr", ".npz", kind="auto"),
                   help="FIELDS.zarr or FIELDS.npz")
    c.add_argument("--spacing", type=positive_float,
                   help="grid spacing (coordinate units; default half the kernel)")
    c.add_argument("--sigma", type=positive_float,
                   help="kernel standard deviation (coordinate units; default the mean inter-particle distance)")
    c.add_argument("--no-fill-gaps", action="store_true",
                   help="do not fill the frames that gap-closing links skipped (default: interpolate them)")
    c.add_argument("--box", type=positive_float, nargs="+", help="domain size per axis (needed with --periodic)")
    c.add_argument("--periodic", action="store_true", help="periodic domain (default bounded)")
    c.add_argument("--dt", type=positive_float, help="frame interval (default: the table's, else 1)")
    c.add_argument("--fields", nargs="+", default=["rho", "p"], choices=["rho", "p", "v", "Q"],
                   help="fields to compute (default rho p)")
    c.add_argument("--polarisation", choices=["auto", "orientation", "velocity"], default="auto",
                   help="source of p: orientation columns p_y, p_x or track velocities (default auto)")
    c.set_defaults(func=_cmd_coarse_grain)

    d = sub.add_parser("discover-pde", help="fields -> sparse PDE model (model JSON) by stability selection",
                       description="Learn a sparse PDE from fields (.zarr/.npz) or a PDE-FIND .mat file with "
                                   "library regression and stability selection; writes MODEL.json.")
    d.add_argument("input", help="FIELDS.zarr, FIELDS.npz or a .mat file (usol/uu, x, t/tt)")
    d.add_argument("-o", "--output", required=True, type=output(".json"), help="MODEL.json")
    add_field_source_arguments(d)
    d.add_argument("--lhs", nargs="+", help="left-hand sides, e.g. u_t (default: one per field)")
    d.add_argument("--max-power", type=nonneg_int, help="scalar library: highest monomial degree (default 3)")
    d.add_argument("--max-derivative", type=nonneg_int, help="scalar library: highest derivative order (default 3)")
    d.add_argument("--terms", nargs="+", help="extra user-defined terms, e.g. 'u^3' 'd_x(u^3)'")
    d.add_argument("--derivative", choices=["weak", "finite", "spectral"], default="weak",
                   help="weak form (noise-robust, default) or pointwise derivatives")
    st = d.add_mutually_exclusive_group()
    st.add_argument("--stochastic", action="store_true", default=None,
                    help="fields with intrinsic noise: Ito weak form (default: on for fields coarse-grained from "
                         "particles, e.g. by `dynfit coarse-grain`)")
    st.add_argument("--no-stochastic", dest="stochastic", action="store_false", default=None,
                    help="symmetric weak form even for fields coarse-grained from particles")
    d.add_argument("--half-width", type=positive_int, nargs="+", help="weak form: test-function half-width in grid "
                   "points (one value, or t then space axes)")
    d.add_argument("--window", type=odd_int, help="finite differences: smoothing window (odd)")
    d.add_argument("--solver", choices=["iht", "stridge"], default="iht", help="sparse solver (default iht)")
    d.add_argument("--pi-th", type=probability, default=0.8, help="selection probability threshold (default 0.8)")
    d.add_argument("--subsamples", type=positive_int, default=40, help="B, half-subsamples (default 40)")
    d.add_argument("--penalties", type=positive_int, help="penalties per decade of the path (default 8; with --decades "
                   "the grid size, default 20)")
    d.add_argument("--decades", type=positive_float, help="old selection: a fixed penalty grid this many decades below the "
                   "largest coefficient, no held-out choice and no checks (default: the path down to the noise floor)")
    d.add_argument("--gain", type=probability, default=0.5, help="relative drop of the held-out error a richer model "
                   "must achieve (default 0.5)")
    d.add_argument("--no-forecast-check", action="store_true", help="skip the forecast check (integrating the "
                   "candidate models over the last quarter of the frames)")
    d.add_argument("--no-noise-correction", action="store_true", help="do not correct the weak-form fits for white "
                   "measurement noise (estimated from the fields; default: corrected, see docs/pde.md)")
    d.add_argument("--no-frame-correction", action="store_true", help="--stochastic: keep the plain Ito fit (default: "
                   "the selected terms refitted at the predicted frame midpoint, which removes the O(frame "
                   "interval) bias of forward differences, and a left-out term added when its absence moves a "
                   "refitted coefficient beyond its interval, see docs/pde.md)")
    d.add_argument("--periodic", type=lambda s: s.lower() in ("1", "yes", "true"), default=None,
                   help="override periodicity (yes/no); .mat files default to yes")
    d.add_argument("--validate", action="store_true", help="integrate the model from the first frame and report "
                   "the forecast error at the last frame")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.set_defaults(func=_cmd_discover)
