"""``dynfit msd``, ``dynfit van-hove``, ``dynfit vacf``: physical analysis of a tracks table
(:mod:`napari_dynfit.track.analysis`).

* ``dynfit msd TRACKS.csv --dt 0.0417 --spacing 0.351 0.351``: ensemble MSD with the drift removed, its power-law
  fit (exponent, prefactor) and diffusion coefficient printed as JSON, immobile tracks left out (counted in one line
  on stderr; ``--keep-immobile`` fits them too); ``-o MSD.csv`` writes the MSD table;
* ``dynfit van-hove TRACKS.csv --lag 5 -o VH.csv``: displacement distributions over ``lag`` frames;
* ``dynfit vacf TRACKS.csv --dt ... -o VACF.csv``: velocity autocorrelation.
"""

from __future__ import annotations

import sys

from ..results import json_text
from ..tables import TABLE_SUFFIXES, read_table, write_table
from ..validate import nonneg_int, output, positive_float, positive_int


def _common(p, *, dt: bool = True) -> None:
    p.add_argument("tracks", help="tracks table (.csv or .parquet): track_id, frame, (z,) y, x in pixels")
    if dt:
        p.add_argument("--dt", type=positive_float, default=1.0, help="frame interval, e.g. seconds (default 1: frames)")
    p.add_argument("--spacing", type=positive_float, nargs="+",
                   help="pixel size along (z) y x, e.g. um (default: the table's attrs, else 1)")
    p.add_argument("--min-length", type=nonneg_int, default=0, help="drop tracks with fewer positions (default 0)")
    p.add_argument("-o", "--output", type=output(*TABLE_SUFFIXES), help="write the table (.csv or .parquet)")


def _spacing(args, tracks=None):
    if args.spacing and tracks is not None:
        from ..tables import coord_columns
        from ..validate import check_spacing

        check_spacing(args.spacing, len(coord_columns(tracks)))
    return args.spacing if args.spacing else None


def _cmd_msd(args) -> int:
    from ..track.analysis import fit_msd

    tracks = read_table(args.tracks, required=("frame", "track_id"))
    fit = fit_msd(tracks, dt=args.dt, spacing=_spacing(args, tracks), max_lag=args.max_lag, min_length=args.min_length,
                  drift=not args.no_drift, weights=args.weights, keep_immobile=args.keep_immobile)
    print(fit.immobile_report(), file=sys.stderr)
    print(fit.precision_report(), file=sys.stderr)
    print(fit.composition_report(), file=sys.stderr)
    print(json_text({**fit.as_dict(), "drift_removed": not args.no_drift}, indent=2))
    if args.output:
        write_table(fit.table, args.output)
        print(f"MSD table ({len(fit.table)} lags) -> {args.output}")
    return 0


def _cmd_van_hove(args) -> int:
    from ..track.analysis import van_hove

    tracks = read_table(args.tracks, required=("frame", "track_id"))
    vh = van_hove(tracks, args.lag, spacing=_spacing(args, tracks), bins=args.bins, drift=args.drift,
                  min_length=args.min_length)
    var = float((vh["dr"] ** 2 * vh["all"]).sum() * (vh["dr"].iloc[1] - vh["dr"].iloc[0])) if len(vh) > 1 else 0.0
    print(json_text({"lag": args.lag, "displacements": vh.attrs["n"], "variance_per_axis": var}, indent=2))
    if args.output:
        write_table(vh, args.output)
        print(f"van Hove distribution ({len(vh)} bins) -> {args.output}")
    return 0


def _cmd_vacf(args) -> int:
    from ..track.analysis import velocity_autocorrelation

    tracks = read_table(args.tracks, required=("frame", "track_id"))
    tab = velocity_autocorrelation(tracks, dt=args.dt, spacing=_spacing(args, tracks), max_lag=args.max_lag,
                                   min_length=args.min_length, drift=args.drift, normalize=args.normalize)
    print(tab.head(11).to_string(index=False))
    if args.output:
        write_table(tab, args.output)
        print(f"velocity autocorrelation ({len(tab)} lags) -> {args.output}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("msd", help="mean squared displacement of tracks: power-law fit with drift removal",
                       description="Ensemble MSD of a tracks table (trackpy's emsd definition), the drift removed, "
                                   "and its power-law fit MSD = prefactor * t^exponent; prints JSON.")
    _common(p)
    p.add_argument("--max-lag", type=positive_int, default=100, help="largest lag in frames (default 100)")
    p.add_argument("--no-drift", action="store_true", help="keep the collective drift")
    p.add_argument("--keep-immobile", action="store_true",
                   help="fit immobile tracks too (default: tracks that do not move beyond localisation noise, e.g. "
                        "stuck particles or static features, are left out and counted on stderr)")
    p.add_argument("--weights", choices=("independent", "pairs"), default="independent",
                   help="tracks weighted by their independent measurements (trackpy, default) or every "
                        "displacement once")
    p.set_defaults(func=_cmd_msd)

    v = sub.add_parser("van-hove", help="displacement distribution (van Hove self part) of tracks at one lag",
                       description="Histogram (probability density) of the displacements over LAG frames per axis.")
    _common(v, dt=False)
    v.add_argument("--lag", type=positive_int, default=1, help="lag in frames (default 1)")
    v.add_argument("--bins", type=positive_int, default=50, help="number of bins (default 50)")
    v.add_argument("--drift", action="store_true", help="remove the collective drift first")
    v.set_defaults(func=_cmd_van_hove)

    c = sub.add_parser("vacf", help="velocity autocorrelation of tracks",
                       description="Ensemble velocity autocorrelation <v(t).v(t+lag)> of frame-to-frame velocities.")
    _common(c)
    c.add_argument("--max-lag", type=positive_int, default=100, help="largest lag in frames (default 100)")
    c.add_argument("--drift", action="store_true", help="remove the collective drift first")
    c.add_argument("--normalize", action="store_true", help="divide by the value at lag 0")
    c.set_defaults(func=_cmd_vacf)
