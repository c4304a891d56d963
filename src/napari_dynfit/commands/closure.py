"""``dynfit closure simulate|train|evaluate|estimate``: learned closures of active-suspension kinetic theory."""

from __future__ import annotations

import functools
import math

from .. import closure_defaults as D
from ..errors import InputError
from ..report import torch_threads
from ..results import json_text
from ..validate import (
    finite_float,
    int_range,
    memory_check,
    nonneg_float,
    nonneg_int,
    output,
    positive_float,
    positive_int,
)


def _threaded(command):
    """Run ``command(args)`` with ``args.threads`` torch threads (the solvers' small FFTs lose time to more)."""
    @functools.wraps(command)
    def run(args) -> int:
        with torch_threads(args.threads):
            return command(args)

    return run


def load_moments(path, *, trajectory: int = 0):
    """Moment data from our ``.npz``/``.zarr`` (kinetic runs) or a Well ``active_matter`` ``.hdf5`` (one trajectory:
    ``concentration``, ``D`` and, when present, ``velocity``)."""
    from ..fields import FieldBundle
    from ..io.well import is_well_file, read_well, well_info

    if not str(path).strip():
        raise InputError("no data file given: choose a kinetic run (.npz/.zarr) or a Well active_matter .hdf5")
    if str(path).lower().endswith((".hdf5", ".h5")) or is_well_file(path):
        have = well_info(path).fields
        names = [f for f in ("concentration", "D", "velocity") if f in have]
        return read_well(path, trajectory=trajectory, fields=names, dtype="float64")
    return FieldBundle.load(path)



def _start(bundle, t_start, name, *, need: int = 1) -> int:
    """First frame used: ``--t-start`` as given, else the first at ``t >= SETTLE_T`` (past the initial
    instability: frame 40 of our 0.25-interval runs and The Well's files, the benchmark's); a one-line error when
    fewer than ``need`` frames are left from it."""
    t = [float(v) for v in bundle.coords["t"]]
    start = D.settled_frame(t) if t_start is None else int(t_start)
    if len(t) - start < need:
        how = (f"--t-start {t_start}" if t_start is not None else
               f"the default --t-start (the first frame at t >= {D.SETTLE_T:g}, past the initial instability)")
        span = f"t = {t[0]:g}..{t[-1]:g}" if t else "no times"
        raise InputError(f"{name} has {len(t)} frames ({span}): {how} leaves {max(len(t) - start, 0)}, this needs "
                         f"{need}; simulate longer (--t-end) or give an earlier --t-start FRAME")
    return start


def _params(args):
    from ..models.closure.kinetic import SuspensionParams

    return SuspensionParams(alpha=args.alpha, beta=args.beta, zeta=args.zeta, d_t=args.d_t, d_r=args.d_r,
                            length=args.length)


@_threaded
def _simulate(args) -> int:
    import sys

    from ..models.closure.kinetic import positivity_summary, positivity_warning, simulate_kinetic

    bundle = simulate_kinetic(_params(args), t_end=args.t_end, save_every=args.save_every, n=args.size,
                              n_theta=args.angles, dt=args.dt, seed=args.seed, amplitude=args.amplitude,
                              device=args.device)
    positivity = positivity_summary(bundle)
    warning = positivity_warning(positivity, args.size, args.angles, args.dt)
    if warning:
        print(warning, file=sys.stderr)
    if str(args.output).lower().endswith((".hdf5", ".h5")):
        from ..io.well import write_well_file

        p = bundle.attrs["kinetic"]
        scalars = {"L": p["length"], "alpha": p["alpha"], "zeta": p["zeta"], "beta": p["beta"]}
        write_well_file(args.output, [bundle.select(["concentration", "velocity", "D", "E"])],
                        dataset_name="active_matter", scalars=scalars, simulation_parameters=scalars)
    else:
        bundle.save(args.output)
    print(json_text({"output": str(args.output), "frames": len(bundle.coords["t"]),
                     "grid": [args.size, args.size], "params": bundle.attrs["kinetic"], "positivity": positivity}))
    return 0


def _closure(path):
    from ..models.closure.learned import LearnedClosure
    from ..models.closure.moments import bingham_closure

    return bingham_closure if path in (None, "bingham") else LearnedClosure.load(path)


@_threaded
def _train(args) -> int:
    import torch

    from ..models.closure.learned import LearnedClosure
    from ..models.closure.train import closure_samples, fit_a_posteriori, fit_a_priori

    need = args.unroll + 1 if args.a_posteriori_epochs else 1
    bundles = []
    for p in args.data:  # each from its own first frame (the default: t >= SETTLE_T)
        b = load_moments(p)
        bundles.append(b.time_slice(_start(b, args.t_start, p, need=need), None))
    net = LearnedClosure.load(args.init) if args.init else LearnedClosure(hidden=args.hidden, seed=args.seed)
    torch.manual_seed(args.seed)
    report = {"output": str(args.output), "first_t": [float(b.coords["t"][0]) for b in bundles]}
    kinetic = [b for b in bundles if "S_cos4" in b.fields]
    if args.a_priori_epochs and kinetic:
        hist = fit_a_priori(net, closure_samples(kinetic), epochs=args.a_priori_epochs)
        report["a_priori_loss"] = hist[-1]
    elif args.a_priori_epochs and not args.a_posteriori_epochs:
        raise InputError("none of the inputs has the fourth moment (kinetic runs): use --a-posteriori-epochs "
                         "to train from moment data (c, D) alone")
    elif args.a_priori_epochs:
        report["a_priori"] = "skipped: no input carries the fourth moment (moment data train a posteriori only)"
    if args.a_posteriori_epochs:
        hist = fit_a_posteriori(net, bundles, unroll_frames=args.unroll, epochs=args.a_posteriori_epochs,
                                seed=args.seed)
        report["a_posteriori_loss"] = hist[-1]
    net.save(args.output)
    print(json_text(report))
    return 0


@_threaded
def _evaluate(args) -> int:
    from ..models.closure.moments import bingham_closure
    from ..models.closure.train import a_priori_error, a_priori_harmonic_error, posterior_check

    closure = _closure(args.closure)
    bundle = load_moments(args.data)
    check = "velocity" in bundle.fields
    start = _start(bundle, args.t_start, args.data, need=(args.horizon or 2) + 1 if check else 1)
    horizon = args.horizon or len(bundle.coords["t"]) - start - 1  # default: to the end of the data
    out = {"data": str(args.data), "t_start": start, "first_t": float(bundle.coords["t"][start])}
    if "S_cos4" in bundle.fields:
        for name, cl in (("closure", closure), ("bingham", bingham_closure)):
            out[f"{name}_S_error"] = a_priori_error(cl, bundle, t_start=start)
            out[f"{name}_q4_error"] = a_priori_harmonic_error(cl, bundle, t_start=start)
    if check:
        out["horizon"] = horizon
        out["a_posteriori"] = posterior_check(bundle, {"closure": closure, "bingham": bingham_closure},
                                              t_start=start, horizon_frames=horizon)
    print(json_text(out))
    return 0


@_threaded
def _ensemble(args) -> int:
    from ..models.closure.ensemble import ensemble_check
    from ..models.closure.moments import bingham_closure

    bundles = [load_moments(p) for p in args.data]
    closures = {"closure": _closure(args.closure), "bingham": bingham_closure}
    start = max(_start(b, args.t_start, p, need=(args.horizon or 2) + 1) for b, p in zip(bundles, args.data))
    horizon = args.horizon or min(len(b.coords["t"]) for b in bundles) - start - 1
    discard = D.settle_frames(bundles[0].coords["t"], start) if args.discard is None else args.discard
    if args.discard is None and discard >= horizon:
        raise InputError(f"the runs have {horizon} frames after the start (frame {start}): the default --discard "
                         f"(the {D.SETTLE_T:g} time units after it, {discard} frames) leaves none for the statistics; "
                         "give --discard FRAMES or longer runs")
    res = ensemble_check(bundles, closures, t_start=start, horizon_frames=horizon, discard_frames=discard)
    out = {"data": [str(p) for p in args.data], "t_start": start, "discard": discard, "frames": res["frames"],
           "shells": res["shells"]}
    for name in ("kinetic", *closures):
        r = res[name]
        keep = ("mean_speed", "mean_speed_rel_sd", "order", "order_rel_sd", "members")
        out[name] = {k: r[k] for k in keep if k in r}
        out[name].update({k: r[k] for k in ("rel_diff", "resolution", "met", "blew_up") if k in r})
    print(json_text(out))
    return 0


@_threaded
def _estimate(args) -> int:
    from ..models.closure.train import estimate_parameters

    bundle = load_moments(args.data)
    start = _start(bundle, args.t_start, args.data, need=D.UNROLL_FRAMES + 1)
    part = bundle.time_slice(start, start + args.frames if args.frames else None)
    res = estimate_parameters(part, closure=_closure(args.closure), fit=tuple(args.fit), epochs=args.epochs)
    print(res.summary())
    print(json_text({"values": res.values, "loss": res.loss, "frames": [start, start + len(part.coords["t"])]}))
    return 0


#: help of the --t-start options
START_HELP = ("{what} (default: the first at t >= " + f"{D.SETTLE_T:g}" + ", past the initial instability from the "
              "perturbed isotropic start: frame 40 of runs saved every 0.25, as the benchmark; 0 = from the first)")


def register(sub) -> None:
    top = sub.add_parser("closure", help="learned closures of active-suspension kinetic theory (simulate, train, "
                                         "evaluate, estimate)",
                         description="Kinetic simulations of a 2D active suspension, learned rotation-equivariant "
                                     "closures of its moment model, their checks, and parameter estimation.")
    subs = top.add_subparsers(dest="closure_command", metavar="ACTION", required=True)
    threads = dict(type=nonneg_int, default=1, help="torch CPU threads (default 1: the solvers' small FFTs lose "
                                                    "time to more; 0 = torch's choice)")

    p = subs.add_parser("simulate", help="run the kinetic theory; write its moments (.npz/.zarr, or .hdf5 in The "
                                         "Well's active_matter layout)")
    p.add_argument("-o", "--output", required=True, type=output(".npz", ".zarr", ".hdf5", ".h5", kind="auto"),
                   help="moments file")
    p.add_argument("--alpha", type=finite_float, default=D.ALPHA,
                   help=f"active stress (< 0 extensile; default {D.ALPHA:g}, inside the closure benchmark's training "
                        "range -2..-5, as the widget; The Well's files span -1..-5)")
    p.add_argument("--zeta", type=nonneg_float, default=D.ZETA,
                   help=f"steric alignment (default {D.ZETA:g}, the benchmark's; 1 runs, The Well's larger values "
                        "blow up: 2 on a 16^2 grid unless --dt is smaller, 5 and above at every resolution tried)")
    p.add_argument("--beta", type=nonneg_float, default=0.8, help="constraint stress (default 0.8)")
    p.add_argument("--d-t", type=positive_float, default=0.05, help="translational diffusivity (default 0.05)")
    p.add_argument("--d-r", type=positive_float, default=0.05, help="rotational diffusivity (default 0.05)")
    p.add_argument("--length", type=positive_float, default=10.0, help="periodic box side (default 10)")
    p.add_argument("--size", type=int_range(8, 1024), default=D.GRID, help=f"grid points per side (default {D.GRID})")
    p.add_argument("--angles", type=int_range(8, 512), default=D.ANGLES,
                   help=f"orientation angles (default {D.ANGLES}: with the default grid Psi stays a density to ~0.1 %% at "
                        "zeta 0.3, alpha -2..-6; 32 angles on a 32^2 grid are ~4x faster but Psi goes negative from "
                        "|alpha| ~ 3, and a warning says so)")
    p.add_argument("--t-end", type=positive_float, default=D.T_END,
                   help=f"duration (default {D.T_END:g}, the benchmark's training and check runs; the other "
                        f"closure commands use the frames from t = {D.SETTLE_T:g} on by default)")
    p.add_argument("--save-every", type=positive_float, default=D.SAVE_EVERY,
                   help=f"saving interval (default {D.SAVE_EVERY:g})")
    p.add_argument("--dt", type=positive_float, default=D.DT, help=f"time step (default {D.DT:g})")
    p.add_argument("--seed", type=int, default=0, help="initial perturbation seed (default 0)")
    p.add_argument("--amplitude", type=positive_float, default=D.AMPLITUDE,
                   help="relative amplitude of the initial perturbation of the isotropic state (default 0.2, as the "
                        "closure benchmark's and the widget's runs and stationary.kinetic_series)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--threads", **threads)
    # the saved frames: 13 float64 per grid point (concentration, velocity, D, E, S_cos4, S_sin4)
    p.set_defaults(func=_simulate, checks=[memory_check(
        lambda a: (math.floor(a.t_end / a.save_every) + 2) * a.size ** 2 * 13 * 8, "saving this run (--t-end / --save-every frames)",
        "shorten --t-end or raise --save-every")])

    p = subs.add_parser("train", help="train a learned closure (a priori on kinetic runs, a posteriori by unrolled "
                                      "time stepping on moment data)")
    p.add_argument("data", nargs="+", help="kinetic runs (.npz/.zarr) or Well active_matter files (.hdf5)")
    p.add_argument("-o", "--output", required=True, type=output(".npz"), help="closure file (.npz)")
    p.add_argument("--init", help="start from this closure file")
    p.add_argument("--hidden", type=int_range(2, 512), default=D.HIDDEN, help=f"hidden units (default {D.HIDDEN})")
    p.add_argument("--a-priori-epochs", type=nonneg_int, default=D.A_PRIORI_EPOCHS,
                   help=f"a-priori epochs (default {D.A_PRIORI_EPOCHS}, the benchmark's)")
    p.add_argument("--a-posteriori-epochs", type=nonneg_int, default=D.A_POSTERIORI_EPOCHS,
                   help=f"unrolled epochs (default {D.A_POSTERIORI_EPOCHS}, the benchmark's)")
    p.add_argument("--unroll", type=int_range(1, 100), default=D.UNROLL_FRAMES,
                   help=f"frames unrolled (default {D.UNROLL_FRAMES}, the benchmark's)")
    p.add_argument("--t-start", type=nonneg_int, default=None, help=START_HELP.format(what="first frame used"))
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", **threads)
    p.set_defaults(func=_train)

    p = subs.add_parser("evaluate", help="a-priori error of S and a-posteriori statistics against the data")
    p.add_argument("data", help="kinetic run (.npz/.zarr) or Well file (.hdf5)")
    p.add_argument("--closure", default="bingham", help="closure file (.npz) or 'bingham' (default; compared with "
                                                        "Bingham either way)")
    p.add_argument("--t-start", type=nonneg_int, default=None, help=START_HELP.format(what="first frame used"))
    p.add_argument("--horizon", type=nonneg_int, default=0,
                   help="a-posteriori frames (default 0: to the end of the data, as the benchmark's check: 80 frames "
                        "of a default run)")
    p.add_argument("--threads", **threads)
    p.set_defaults(func=_evaluate)

    p = subs.add_parser("ensemble", help="a-posteriori statistics of an ensemble of kinetic runs (one suspension, "
                                         "several seeds) against moment-model runs from their moments, with the "
                                         "ensembles' own spread")
    p.add_argument("data", nargs="+", help="kinetic runs of one suspension (.npz/.zarr or Well .hdf5), two or more")
    p.add_argument("--closure", default="bingham", help="closure file (.npz) or 'bingham' (default; compared with "
                                                        "Bingham either way)")
    p.add_argument("--t-start", type=nonneg_int, default=None,
                   help=START_HELP.format(what="frame the moment models start from"))
    p.add_argument("--horizon", type=nonneg_int, default=0, help="frames run (default 0: to the end of the runs)")
    p.add_argument("--discard", type=nonneg_int, default=None,
                   help=f"frames after the start left out of the statistics (both transients; default: those of the "
                        f"{D.SETTLE_T:g} time units after it, 40 at 0.25, as the benchmark)")
    p.add_argument("--threads", **threads)
    p.set_defaults(func=_ensemble)

    p = subs.add_parser("estimate", help="fit alpha (and zeta) of the moment model to moment data")
    p.add_argument("data", help="kinetic run (.npz/.zarr) or Well file (.hdf5)")
    p.add_argument("--closure", default="bingham", help="closure file (.npz) or 'bingham' (default)")
    p.add_argument("--fit", nargs="+", choices=("alpha", "zeta"), default=["alpha"], help="parameters (default alpha)")
    p.add_argument("--epochs", type=positive_int, default=D.ESTIMATE_EPOCHS,
                   help=f"most loss evaluations of the fit (default {D.ESTIMATE_EPOCHS})")
    p.add_argument("--t-start", type=nonneg_int, default=None, help=START_HELP.format(what="first frame used"))
    p.add_argument("--frames", type=nonneg_int, default=D.ESTIMATE_FRAMES,
                   help=f"frames used from the start (default {D.ESTIMATE_FRAMES}, the benchmark's frames 40-59; "
                        "0 = to the end)")
    p.add_argument("--threads", **threads)
    p.set_defaults(func=_estimate)
