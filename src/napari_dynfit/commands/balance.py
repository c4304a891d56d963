"""``dynfit balance MODEL.json FIELDS -o OUTDIR``: locally dominant balances."""

from __future__ import annotations

from pathlib import Path

from ..validate import fraction, nonneg_float, odd_int, output, positive_int
from ._field_source import add_field_source_arguments, load_fields_from_args


def _cmd(args) -> int:
    from ..models.balance import dominant_balance, parse_groups, plot_equation_space, write_balances
    from ..models.model_json import format_equation, read_model

    model = read_model(args.model)
    groups = parse_groups(args.group)
    bundle = load_fields_from_args(args.fields_file, args)
    res = dominant_balance(bundle, model, args.equation, groups=groups, method=args.derivative, window=args.window,
                           n_clusters=args.clusters, max_clusters=args.max_clusters, max_samples=args.max_samples,
                           tol=args.tol, quiet=args.quiet, seed=args.seed)
    jpath, rpath = write_balances(res, args.output)
    if args.plot:
        from .._io import atomic_path

        fig = plot_equation_space(res)
        with atomic_path(Path(args.output) / "equation_space.png") as tmp:
            fig.savefig(tmp, dpi=100)
    print(format_equation(res.equation, model["equations"][res.equation]))
    for name, members in res.groups.items():
        print(f"{name} = {' + '.join(members)}")
    print(res.table().to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(jpath)
    print(rpath)
    return 0


def register(sub) -> None:
    p = sub.add_parser("balance", help="locally dominant balances of a PDE model over fields",
                       description="Evaluate every term of a model equation on the fields, cluster equation space "
                                   "(Gaussian mixture), find each region's active terms (sparse PCA) and write "
                                   "OUTDIR/balances.json and OUTDIR/regions.npy (balance index per grid point, "
                                   "axes (t, [z,] y, x) as the fields).")
    p.add_argument("model", help="model JSON (dynfit discover-pde output or written by hand)")
    p.add_argument("fields_file", metavar="FIELDS",
                   help="fields: .zarr/.npz bundle, The Well .hdf5/.h5, or a PDE-FIND .mat file")
    p.add_argument("-o", "--output", required=True, type=output(kind="folder"), help="output folder (created)")
    p.add_argument("--equation", default=None, help="which equation (its lhs, e.g. p_t); default the first")
    p.add_argument("--group", action="append", default=[], metavar="NAME=TERM,TERM",
                   help="sum model terms into one physical term, e.g. --group 'alignment=p,rho*p' "
                        "(repeatable; the balances then name the group)")
    add_field_source_arguments(p)
    p.add_argument("--derivative", choices=("finite", "spectral"), default="finite",
                   help="derivatives of the terms (default finite)")
    p.add_argument("--window", type=odd_int, default=None, help="finite differences: smoothing window (odd)")
    p.add_argument("--clusters", type=positive_int, default=None, help="mixture components (default: by BIC)")
    p.add_argument("--max-clusters", type=positive_int, default=8, help="largest number tried by BIC (default 8)")
    p.add_argument("--max-samples", type=positive_int, default=20000, help="points used to fit the mixture (default 20000)")
    p.add_argument("--tol", type=nonneg_float, default=0.15, help="largest dropped-term residual (default 0.15)")
    p.add_argument("--quiet", type=fraction, default=0.2,
                   help="clusters with all terms below this fraction of the largest are 'no dynamics' (default 0.2)")
    p.add_argument("--plot", action="store_true", help="also write OUTDIR/equation_space.png")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd)
