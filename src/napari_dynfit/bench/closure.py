"""Learned closures vs Bingham (issue 19): a priori, a posteriori and parameter estimation, on kinetic runs.

Runs (cached in ``--cache``): kinetic simulations at ``alpha`` = -2, -3, -4, -5 (training) and -2.5, -3.5, -4.5
(held out, inside the range) and -6 (outside), ``zeta = 0.3``, ``closure_defaults.GRID``^2 x ``ANGLES`` angles
(64^2 x 64 since solver version 2; 32^2 x 32 before), ``t = 0..30`` saved every 0.25,
isotropic start plus 20 % perturbation; frames from ``t = 10`` (frame 40) on are used (past the initial
instability). Then (``--steps``, in this order; ``--closure`` skips the training):

1. ``a_priori``: learned closure fitted on the training runs' ``(s, m4)``; relative Frobenius error of ``S`` and
   of the closed harmonics on the held-out runs, learned vs Bingham;
2. ``a_posteriori``: training by unrolled time stepping (2 frames, moment data only);
3. ``check``: a posteriori on the held-out runs: the moment model from frame 40 for ``--horizon`` frames
   (default 80, i.e. 40x the unroll), mean ``|u|``, order parameter and velocity spectrum (k up to half the
   grid's maximum) vs the kinetic run over the same frames, learned vs Bingham;
4. ``ensemble``: the a-posteriori check on ensembles (``--seeds``, default 99, 101, 102, 103; ``t = 0..60``
   each, the missing ones integrated together): per held-out ``alpha`` (``--ensemble-alphas``), one moment-model
   run per kinetic member from its moments at ``t = 10``, statistics over ``t = 20..60``, ensemble means compared,
   each figure with the seed-to-seed spread and the resolution of the difference (two standard errors), and how
   much of the kinetic moments are unrealizable (resolution);
   ``angles``: is the reference converged? ``alpha = -4.5`` with twice the angles (``--angles-fine``; and
   ``--grid-fine`` points per side, default the reference's; seeds 99, 101, ``t = 0..40``) against the
   reference ensemble, statistics over ``t = 20..40``, and the realizability and positivity of each;
5. ``estimate``: parameter estimation, ``alpha`` of the held-out runs from their moment data (learned closure);
6. ``long`` (run after step 2): stationary windows, longer held-out runs (``alpha`` = -2.5, -3.5, seed 99,
   ``t = 0..60``); the moment model from ``t = 10`` to ``t = 60``, statistics over ``t = 20..60`` only (both
   transients discarded), with the kinetic run's own change between ``t = 20..40`` and ``t = 40..60`` (how
   stationary one window is);
8. ``stationary``: the a-posteriori targets on a long-window ensemble at one ``alpha`` (``--stationary-alpha``,
   default -2.5): 12 kinetic members (``STATIONARY_SEEDS``; those the ``ensemble`` step stored are read, the
   others batched to ``--stationary-t-end``, default 60, keeping per-frame statistics only), one moment-model
   run per member and closure from its moments at ``t = 10``, statistics over ``t = 20..t_end``, members paired
   (:func:`napari_dynfit.models.closure.stationary.stationary_comparison`); resumable (checkpoints in
   ``--cache``), so an interrupted run continues; ``--merge A.json B.json`` pools the members of several such
   runs (disjoint seeds: a GPU ensemble and more members from a CPU) and recomputes the figures;
7. ``active``: active learning over the training ``alpha`` (pool: the four training runs, start from
   ``alpha = -3``, two rounds adding the worst-covered ``alpha``), held-out a-priori errors after each round.

``--plot PNG`` draws the a-priori errors against ``alpha`` and the velocity spectra (of the ensembles when the
``ensemble`` step ran, else of the long runs).

Prints one JSON object (``--json``) or a text table; ``--out FILE`` is rewritten after every step. Usage::

    python -m napari_dynfit.bench.closure --cache /tmp/closure-runs --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from napari_dynfit import closure_defaults as D

TRAIN = (-2.0, -3.0, -4.0, -5.0)
HELD_OUT = (-2.5, -3.5, -4.5)
OUTSIDE = (-6.0,)
LONG = (-2.5, -3.5)
STEPS = ("a_priori", "a_posteriori", "long", "check", "ensemble", "angles", "estimate", "active", "stationary")
ENSEMBLE_SEEDS = (99, 101, 102, 103)
#: the stationary step's members (the first four are the ensemble step's runs)
STATIONARY_SEEDS = (99,) + tuple(range(101, 112))


def kinetic_settings(alpha: float, *, seed: int, n: int = D.GRID, n_theta: int = D.ANGLES) -> dict:
    """Everything that determines one of the benchmark's kinetic runs besides its duration, as
    :func:`~napari_dynfit.models.closure.kinetic.simulate_kinetic` records it in ``attrs["kinetic"]`` (physical
    parameters, grid, angles, time step, seed, amplitude, solver version)."""
    from dataclasses import asdict

    from napari_dynfit.models.closure.kinetic import SOLVER_VERSION, SuspensionParams

    return {**asdict(SuspensionParams(alpha=alpha, zeta=D.ZETA)), "n": n, "n_theta": n_theta, "dt": D.DT,
            "seed": int(seed), "amplitude": D.AMPLITUDE, "solver_version": SOLVER_VERSION}


def cached_run(path: Path, settings: dict, t_end: float, *, longer_ok: bool = False):
    """The kinetic run cached at ``path`` when it was made with exactly ``settings`` (:func:`kinetic_settings`;
    compared by :func:`napari_dynfit._settings.settings_mismatch`) and saved every ``D.SAVE_EVERY`` from ``t = 0`` to ``t_end`` (or beyond, with ``longer_ok``); else ``None``,
    with one line on stderr saying why it is recomputed (a stale entry is never reused)."""
    from napari_dynfit._settings import settings_mismatch
    from napari_dynfit.errors import InputError
    from napari_dynfit.fields import FieldBundle

    if not path.exists():
        return None
    try:
        b = FieldBundle.load(path)
    except (InputError, OSError, ValueError) as exc:
        return _stale(path, f"unreadable ({exc})")
    if b.attrs.get("generator") != "napari_dynfit.models.closure.kinetic.simulate_kinetic":
        return _stale(path, f"not a simulate_kinetic run ({b.attrs.get('generator')})")
    # runs that record no version were made by version 1
    if why := settings_mismatch(dict(b.attrs.get("kinetic") or {}), settings, {"solver_version": 1}):
        return _stale(path, f"made with other settings ({why})")
    t = np.asarray(b.coords["t"], float)
    want_t = np.arange(int(round(t_end / D.SAVE_EVERY)) + 1) * D.SAVE_EVERY
    if len(t) < len(want_t) or (len(t) > len(want_t) and not longer_ok) or not np.allclose(
            t[:len(want_t)], want_t, rtol=0, atol=1e-9):
        return _stale(path, f"frames t = {t[0]:g}..{t[-1]:g} ({len(t)}), now t = 0..{t_end:g} every "
                            f"{D.SAVE_EVERY:g} ({len(want_t)})")
    if b["concentration"].shape[1:] != (settings["n"],) * 2 or not all(np.isfinite(v).all() for v in b.fields.values()):
        return _stale(path, "wrong grid or non-finite values")
    return b


def run_positivity(bundle, start: int) -> dict | None:
    """Over the frames from ``start`` of a kinetic run: the share of ``int |Psi|`` on negative values (mean and
    worst frame), the smallest ``min Psi / max Psi``, the mean fractions of negative grid values and of points
    with ``D / c`` outside ``[0, 1]`` (from its ``attrs["positivity"]``), the extreme eigenvalues of ``D / c``,
    and the fractions of points with an unrealizable fourth harmonic and with order ``s > 0.9``
    (:func:`~napari_dynfit.models.closure.ensemble.realizability`); None for a run that records no positivity."""
    from napari_dynfit.models.closure.ensemble import realizability

    rec = (bundle.attrs or {}).get("positivity")
    if not rec or len(rec.get("negative_mass", ())) != len(bundle.coords["t"]):
        return None
    pos = {k: np.asarray(v, float)[start:] for k, v in rec.items()}
    lam = np.linalg.eigvalsh(np.asarray(bundle["D"])[start:]) / np.asarray(bundle["concentration"])[start:, ..., None]
    real = realizability(bundle, t_start=start)
    return {"negative_mass_mean": float(pos["negative_mass"].mean()), "negative_mass_max": float(pos["negative_mass"].max()),
            "min_ratio": float(pos["min_ratio"].min()), "negative_points": float(pos["negative_points"].mean()),
            "moments_outside": float(pos["moments_outside"].mean()), "eig_min": float(lam.min()),
            "eig_max": float(lam.max()), "unrealizable": real["unrealizable"], "high_order": real["high_order"]}


def _stale(path: Path, why: str) -> None:
    print(f"closure bench: recomputing the cached run {path.name}: {why}", file=sys.stderr)
    return None


def run_for(alpha: float, cache: Path, *, long: bool = False, device: str = "cpu"):
    """Kinetic run at ``alpha`` (cached; a cached file made with other settings is recomputed):
    ``t = 0..30``, or ``t = 0..60`` with seed 99 when ``long``."""
    from napari_dynfit.models.closure.kinetic import SuspensionParams, simulate_kinetic

    path = cache / f"kinetic_{'long_' if long else ''}alpha{alpha:+.2f}.npz"
    seed, t_end = (99, 60.0) if long else (int(round(abs(alpha) * 10)), D.T_END)
    b = cached_run(path, kinetic_settings(alpha, seed=seed), t_end)
    if b is not None:
        return b
    b = simulate_kinetic(SuspensionParams(alpha=alpha, zeta=D.ZETA), t_end=t_end, save_every=D.SAVE_EVERY,
                         n=D.GRID, n_theta=D.ANGLES, dt=D.DT, seed=seed, amplitude=D.AMPLITUDE, device=device)
    b.save(path)  # temporary file + rename
    return b


def ensemble_runs_for(alpha: float, seeds, cache: Path, *, t_end: float = 60.0, n: int = D.GRID,
                      n_theta: int = D.ANGLES, device: str = "cpu") -> list:
    """Kinetic runs at ``alpha``, one per initial-perturbation seed (cached; a cached file made with other
    settings is recomputed), ``t = 0..t_end`` saved every 0.25: the members of an a-posteriori ensemble. Missing
    members are integrated together (a batch axis). Seed 99 is the long run of the ``long`` step (same
    settings). ``n``, ``n_theta`` other than ``D.GRID``, ``D.ANGLES``: the convergence runs (``angles`` step)."""
    from napari_dynfit.models.closure.kinetic import SuspensionParams, simulate_kinetic_ensemble

    kind = "ens" if (n, n_theta) == (D.GRID, D.ANGLES) else f"n{n}_theta{n_theta}"
    paths = {s: cache / f"kinetic_{kind}_alpha{alpha:+.2f}_seed{s}.npz" for s in seeds}
    have = {s: cached_run(paths[s], kinetic_settings(alpha, seed=s, n=n, n_theta=n_theta), t_end) for s in seeds}
    missing = [s for s in seeds if have[s] is None]
    if missing:
        w0, c0 = time.perf_counter(), time.process_time()
        runs = simulate_kinetic_ensemble(SuspensionParams(alpha=alpha, zeta=D.ZETA), seeds=missing, t_end=t_end,
                                         save_every=D.SAVE_EVERY, n=n, n_theta=n_theta, dt=D.DT,
                                         amplitude=D.AMPLITUDE, device=device)
        cost = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0, "batch": len(missing),
                "load": os.getloadavg()[0]}
        for s, b in zip(missing, runs):
            b.attrs["runtime"] = cost
            b.save(paths[s])  # temporary file + rename
            have[s] = b
    return [have[s] for s in seeds]


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options (training defaults from :mod:`napari_dynfit.closure_defaults`, as the CLI's)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=None, help="folder for the kinetic runs (default: a temporary folder)")
    ap.add_argument("--horizon", type=int, default=80, help="a-posteriori frames (default 80 = 40x the unroll)")
    ap.add_argument("--a-priori-epochs", type=int, default=D.A_PRIORI_EPOCHS)
    ap.add_argument("--a-posteriori-epochs", type=int, default=D.A_POSTERIORI_EPOCHS)
    ap.add_argument("--unroll", type=int, default=D.UNROLL_FRAMES,
                    help=f"frames per a-posteriori unroll (default {D.UNROLL_FRAMES})")
    ap.add_argument("--check-alphas", default=None,
                    help="comma-separated alphas for the check step (default: held out and outside; the training "
                         "alphas to choose settings)")
    ap.add_argument("--seeds", default=",".join(map(str, ENSEMBLE_SEEDS)),
                    help="initial-perturbation seeds of the ensemble step's kinetic runs (t = 0..60 each)")
    ap.add_argument("--ensemble-alphas", default=None,
                    help="comma-separated alphas for the ensemble step (default: held out and outside)")
    ap.add_argument("--angles-fine", type=int, default=None,
                    help=f"angles of the angles step's finer runs (default twice the reference's, {2 * D.ANGLES})")
    ap.add_argument("--grid-fine", type=int, default=None,
                    help=f"grid of the angles step's finer runs (default the reference's, {D.GRID})")
    ap.add_argument("--stationary-alpha", default="-2.5",
                    help="alpha of the stationary step (comma-separated: several, one after the other)")
    ap.add_argument("--stationary-t-end", type=float, default=60.0, help="end of the stationary step's runs")
    ap.add_argument("--stationary-seeds", default=",".join(map(str, STATIONARY_SEEDS)),
                    help="seeds of the stationary step's kinetic members (ranges allowed: 99,101-170)")
    ap.add_argument("--stationary-batch", type=int, default=4,
                    help="members integrated together (one checkpoint each group; on a GPU give them all)")
    ap.add_argument("--device", default="cpu",
                    help="where the kinetic and moment-model runs are integrated: cpu, cuda or auto (training "
                         "stays on the CPU)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", default=None, help="JSON file rewritten after every step (what finished so far)")
    ap.add_argument("--plot", default=None, help="PNG of the a-priori errors and the long runs' spectra")
    ap.add_argument("--closure", default=None, help="start from this trained closure (.npz) instead of training")
    ap.add_argument("--save-closure", default=None, help="write the trained closure (.npz)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="pool the stationary members of these --out files (disjoint seeds, e.g. a GPU run and "
                         "more members from a CPU) per alpha found in all of them, print and --out the pooled "
                         "figures; runs nothing else")
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.merge:
        return merge_files(args.merge, args.out, as_json=args.json)
    steps = [x.strip() for x in args.steps.split(",") if x.strip()]
    if set(steps) - set(STEPS):
        ap.error(f"unknown steps {sorted(set(steps) - set(STEPS))}; choose from {', '.join(STEPS)}")
    import tempfile

    import torch

    from napari_dynfit._io import atomic_path
    from napari_dynfit.models.closure import train as T
    from napari_dynfit.models.closure.learned import LearnedClosure
    from napari_dynfit.models.closure.moments import bingham_closure

    torch.set_num_threads(1)
    cache = Path(args.cache or tempfile.mkdtemp(prefix="closure-runs-"))
    cache.mkdir(parents=True, exist_ok=True)
    out = {"horizon_frames": args.horizon, "unroll_frames": args.unroll, "steps": steps, "cpu_s": {}}

    def done(step, t0):
        out["cpu_s"][step] = time.process_time() - t0
        if args.out:
            with atomic_path(Path(args.out)) as tmp:
                Path(tmp).write_text(json.dumps(out, default=float))

    t0 = time.process_time()
    need_runs = bool(set(steps) - {"stationary"})  # the stationary step reads only its own runs
    runs = {a: run_for(a, cache, device=args.device) for a in TRAIN + HELD_OUT + OUTSIDE} if need_runs else {}
    done("simulate", t0)
    start = D.settled_frame(runs[TRAIN[0]].coords["t"]) if runs else 0  # frame 40: t = 10, past the instability
    if runs:  # how far each reference run is from a density (docs/closures.md, Resolved reference)
        out["kinetic_positivity"] = {str(a): run_positivity(b, start) for a, b in runs.items()}
    net = LearnedClosure.load(args.closure) if args.closure else LearnedClosure(seed=0)
    if "a_priori" in steps:
        t0 = time.process_time()
        if not args.closure:
            T.fit_a_priori(net, T.closure_samples([runs[a] for a in TRAIN], t_start=start),
                           epochs=args.a_priori_epochs)
        out["a_priori"] = {str(a): {"learned_S": T.a_priori_error(net, runs[a], t_start=start),
                                    "bingham_S": T.a_priori_error(bingham_closure, runs[a], t_start=start),
                                    "learned_q4": T.a_priori_harmonic_error(net, runs[a], t_start=start),
                                    "bingham_q4": T.a_priori_harmonic_error(bingham_closure, runs[a], t_start=start)}
                           for a in HELD_OUT + OUTSIDE}
        done("a_priori", t0)
    if "a_posteriori" in steps and not args.closure:
        t0 = time.process_time()
        T.fit_a_posteriori(net, [runs[a] for a in TRAIN], unroll_frames=args.unroll, epochs=args.a_posteriori_epochs,
                           t_start=start)
        if args.save_closure:
            net.save(args.save_closure)
        done("a_posteriori", t0)
    if "long" in steps:
        t0 = time.process_time()
        out["long_runs"] = {}
        for a in LONG:
            run = run_for(a, cache, long=True)
            horizon = len(run.coords["t"]) - start - 1
            out["long_runs"][str(a)] = T.posterior_check(
                run, {"learned": net, "bingham": bingham_closure}, t_start=start, horizon_frames=horizon,
                discard_frames=min(D.settle_frames(run.coords["t"], start), horizon - 2), spectra=True)
            done("long", t0)
    if "check" in steps:
        t0 = time.process_time()
        out["a_posteriori"] = {}
        for a in ([float(x) for x in args.check_alphas.split(",")] if args.check_alphas else HELD_OUT + OUTSIDE):
            out["a_posteriori"][str(a)] = T.posterior_check(runs[a], {"learned": net, "bingham": bingham_closure},
                                                            t_start=start, horizon_frames=args.horizon)
            done("check", t0)
    if "ensemble" in steps:
        from napari_dynfit.models.closure.ensemble import ensemble_check, realizability

        t0 = time.process_time()
        out["ensemble"] = {}
        seeds = [int(x) for x in args.seeds.split(",")]
        for a in ([float(x) for x in args.ensemble_alphas.split(",")] if args.ensemble_alphas
                  else HELD_OUT + OUTSIDE):
            members = ensemble_runs_for(a, seeds, cache)
            w0, c0 = time.perf_counter(), time.process_time()
            horizon = len(members[0].coords["t"]) - start - 1
            res = ensemble_check(members, {"learned": net, "bingham": bingham_closure}, t_start=start,
                                 horizon_frames=horizon,
                                 discard_frames=min(D.settle_frames(members[0].coords["t"], start), horizon - 2))
            res["seeds"] = seeds
            real = [realizability(m, t_start=start) for m in members]
            res["realizability"] = {k: float(np.mean([r[k] for r in real])) for k in real[0]}
            res["kinetic_runtime"] = [m.attrs.get("runtime") for m in members]
            res["check_runtime"] = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}
            out["ensemble"][str(a)] = res
            done("ensemble", t0)
    if "angles" in steps:  # is the default reference converged? (alpha = -4.5, t = 20..40, finer angles/grid)
        from napari_dynfit.models.closure.ensemble import ensemble_statistics, realizability
        from napari_dynfit.models.closure.kinetic import positivity_summary

        t0 = time.process_time()
        grid_fine, angles_fine = args.grid_fine or D.GRID, args.angles_fine or 2 * D.ANGLES
        fine = ensemble_runs_for(-4.5, (99, 101), cache, n=grid_fine, n_theta=angles_fine, t_end=40.0)
        coarse = ensemble_runs_for(-4.5, [int(x) for x in args.seeds.split(",")], cache)
        out["angles"] = {"coarse": [D.GRID, D.ANGLES], "fine": [grid_fine, angles_fine]}
        for name, members in (("coarse", coarse), ("fine", fine)):
            st = ensemble_statistics(members, first=80, last=160)
            st["realizability"] = [realizability(m, t_start=start) for m in members]
            st["positivity"] = [positivity_summary(m) for m in members]
            st.pop("spectrum_per_member")
            out["angles"][f"{name}_runs"] = st
        f, c = out["angles"]["fine_runs"], out["angles"]["coarse_runs"]
        out["angles"]["rel_diff"] = {k: abs(f[k] / c[k] - 1) for k in ("mean_speed", "order")}
        out["angles"]["resolution"] = {k: 2 * float(np.hypot(f[k + "_rel_se"], c[k + "_rel_se"]))
                                       for k in ("mean_speed", "order")}
        done("angles", t0)
    if "estimate" in steps:
        t0 = time.process_time()
        out["estimate_alpha"] = {}
        for a in HELD_OUT:
            v = T.estimate_parameters(runs[a].time_slice(start, start + D.ESTIMATE_FRAMES), closure=net,
                                      fit=("alpha",)).values["alpha"]
            out["estimate_alpha"][str(a)] = {"estimate": v, "rel_error": abs(v / a - 1)}
            done("estimate", t0)
    if "active" in steps:
        t0 = time.process_time()
        al_net = LearnedClosure(seed=0)
        al = T.active_learning(al_net, lambda a: runs[a], TRAIN, initial=(-3.0,), rounds=2,
                               epochs=args.a_priori_epochs, t_start=start)
        out["active_learning"] = {
            "trained_on": al.trained_on, "pool_errors": [{str(k): v for k, v in e.items()} for e in al.errors],
            "held_out_S": {str(a): T.a_priori_error(al_net, runs[a], t_start=start) for a in HELD_OUT + OUTSIDE}}
        done("active", t0)
    if "stationary" in steps:
        t0 = time.process_time()
        out["stationary"] = {}
        for alpha in [float(a) for a in args.stationary_alpha.split(",")]:
            w0 = time.perf_counter()
            res = stationary_step(alpha, parse_seeds(args.stationary_seeds), args.stationary_t_end, cache,
                                  {"learned": net, "bingham": bingham_closure}, batch=args.stationary_batch,
                                  device=args.device)
            out["stationary"][str(alpha)] = {**res, "wall_s": time.perf_counter() - w0, "device": args.device}
            done("stationary", t0)
    if args.plot:
        plot(out, args.plot)
    if args.json:
        print(json.dumps(out, default=float))
    else:
        for key in ("kinetic_positivity", "a_priori", "long_runs", "a_posteriori", "estimate_alpha", "active_learning"):
            if key in out:
                print(f"{key}: {json.dumps(out[key], default=float)}")
        for a, res in out.get("ensemble", {}).items():
            print(f"ensemble alpha {a}: " + ensemble_line(res))
        for a, res in out.get("stationary", {}).items():
            print(f"stationary alpha {a}: " + stationary_line(res))
    return 0


def merge_files(paths, out_path=None, *, as_json: bool = False) -> int:
    """``--merge``: pool the ``stationary`` results of several ``--out`` files alpha by alpha
    (:func:`napari_dynfit.models.closure.stationary.merge_comparisons`)."""
    from napari_dynfit._io import atomic_path
    from napari_dynfit.errors import InputError
    from napari_dynfit.models.closure.stationary import merge_comparisons

    found = []
    for p in paths:
        try:
            found.append(json.loads(Path(p).read_text()).get("stationary") or {})
        except (OSError, ValueError) as exc:
            raise InputError(f"--merge: cannot read {p} as a bench JSON file ({exc})") from None
        if not found[-1]:
            raise InputError(f"--merge: {p} holds no stationary results (run --steps stationary --out FILE)")
    alphas = [a for a in found[0] if all(a in f for f in found[1:])]
    if not alphas:
        raise InputError(f"--merge: no alpha is in every file ({[sorted(f) for f in found]})")
    out = {"merged_from": [str(p) for p in paths],
           "stationary": {a: merge_comparisons([f[a] for f in found]) for a in alphas}}
    if out_path:
        with atomic_path(Path(out_path)) as tmp:
            Path(tmp).write_text(json.dumps(out, default=float))
    if as_json:
        print(json.dumps(out, default=float))
    else:
        for a, res in out["stationary"].items():
            print(f"stationary alpha {a} (pooled from {len(paths)} files): " + stationary_line(res))
    return 0


def parse_seeds(text: str) -> list:
    """``"99,101-104"`` -> ``[99, 101, 102, 103, 104]`` (order kept, no repeats)."""
    seeds = []
    for part in (x.strip() for x in text.split(",") if x.strip()):
        lo, _, hi = part.partition("-")
        for s in (range(int(lo), int(hi) + 1) if hi else (int(lo),)):
            if s not in seeds:
                seeds.append(s)
    return seeds


def _seed_tag(seeds) -> str:
    """File-name part for a seed list: the seeds joined (up to 12), else first, last, count and a digest."""
    seeds = [int(x) for x in seeds]
    if len(seeds) <= 12:
        return "-".join(map(str, seeds))
    import hashlib

    digest = hashlib.sha1(",".join(map(str, seeds)).encode()).hexdigest()[:8]
    return f"{seeds[0]}-{seeds[-1]}n{len(seeds)}_{digest}"


def _t_last(path: Path) -> float:
    """Last frame time of a stored ``.npz`` run (``-inf`` when unreadable), without loading its fields."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return float(z["t"][-1])
    except Exception:  # noqa: BLE001 - any unreadable file is simply not used
        return float("-inf")


def stationary_step(alpha: float, seeds, t_end: float, cache: Path, closures: dict, *, branch_t: float = D.SETTLE_T,
                    first_t: float = 20.0, batch: int = 4, device: str = "cpu") -> dict:
    """Long-window paired ensemble at ``alpha`` (the ``stationary`` step). Members whose ``t = 0..t_end`` run
    is stored in ``cache`` (the ``ensemble`` step's files) are read; the others are integrated together to
    ``branch_t`` in groups of ``batch`` (one checkpoint each in ``cache``, so groups can also run in parallel
    processes), the moment-model runs go from there, then those kinetic members on to ``t_end``."""
    from napari_dynfit.models.closure.kinetic import SuspensionParams
    from napari_dynfit.models.closure.stationary import (
        concat_series,
        kinetic_series,
        moment_series,
        positivity_of_series,
        series_from_runs,
        stationary_comparison,
    )

    params = SuspensionParams(alpha=alpha, zeta=D.ZETA)
    stored = {s: cache / f"kinetic_ens_alpha{alpha:+.2f}_seed{s}.npz" for s in seeds}
    stored = {s: f for s, f in stored.items() if f.exists() and _t_last(f) >= t_end - 1e-9}  # long enough
    stored = {s: cached_run(f, kinetic_settings(alpha, seed=s), t_end, longer_ok=True) for s, f in stored.items()}
    stored = {s: b for s, b in stored.items() if b is not None}  # a stale one: the member is integrated here
    new = [s for s in seeds if s not in stored]
    groups = [new[i:i + batch] for i in range(0, len(new), batch)]  # integrated together, one checkpoint each
    kw = dict(branch_t=branch_t, save_every=D.SAVE_EVERY, n=D.GRID, n_theta=D.ANGLES, dt=D.DT, amplitude=D.AMPLITUDE,
              device=device, stale="restart")  # a checkpoint made with other settings is recomputed
    cks = [cache / f"stationary_alpha{alpha:+.2f}_seeds{_seed_tag(g)}_kinetic.npz" for g in groups]
    old = (series_from_runs([b.time_slice(0, int(round(t_end / D.SAVE_EVERY)) + 1) for b in stored.values()],
                            branch_t=branch_t) if stored else None)
    parts = [kinetic_series(params, g, t_end=branch_t, checkpoint=ck, **kw) for g, ck in zip(groups, cks)]
    kin = concat_series([old] + parts)
    stem = f"stationary_alpha{alpha:+.2f}_seeds{_seed_tag(kin['seeds'])}"
    coarse = {name: moment_series(params, cl, kin["branch"], t0=branch_t, t_end=t_end,
                                  checkpoint=cache / f"{stem}_{name}.npz", device=device, stale="restart")
              for name, cl in closures.items()}
    if new:
        parts = [kinetic_series(params, g, t_end=t_end, checkpoint=ck, **kw) for g, ck in zip(groups, cks)]
        kin = concat_series([old] + parts)
    res = stationary_comparison(kin, coarse, first_t=first_t, last_t=t_end)
    res["kinetic_positivity"] = positivity_of_series(kin, first_t, t_end)  # None: stored runs made before
    res["seeds"] = kin["seeds"].tolist()
    res["stored_members"] = len(stored)
    res["cpu_s"] = {"kinetic": kin["cpu_s"], **{name: c["cpu_s"] for name, c in coarse.items()}}
    res["cpu_s_per_member_unit"] = {  # of the runs made here (stored members cost nothing now)
        "kinetic": sum(float(p["cpu_s"]) / len(g) / float(p["t_run"]) for p, g in zip(parts, groups)) / max(len(groups), 1),
        **{name: c["cpu_s"] / len(kin["seeds"]) / (c["t_run"] - branch_t) for name, c in coarse.items()}}
    return res


def _closure_parts(res: dict, describe) -> list:
    """``describe(name, result)`` for the learned and Bingham closures of a check, or how many blew up."""
    return [describe(name, res.get(name, {})) if "rel_diff" in res.get(name, {})
            else f"{name}: {res.get(name, {}).get('blew_up', '?')} blew up" for name in ("learned", "bingham")]


def stationary_line(res: dict) -> str:
    """One line: each closure's signed differences +- their resolution (two paired standard errors) and
    verdicts (only the figures the result holds: a pool with older files has the mean speed alone)."""
    kin = res["kinetic"]

    def describe(name, r):
        d, e, v = r["rel_diff"], r["resolution"], r["verdict"]
        parts = [f"speed {d['mean_speed']:+.1%} +- {e['mean_speed']:.1%} ({v['mean_speed']})"]
        if "order" in d:
            parts.append(f"order {d['order']:+.1%} +- {e['order']:.1%} ({v['order']})")
        if "spectrum" in d:
            parts.append(f"spectrum worst shell {d['worst_shell']} {d['spectrum_worst']:+.1%} +- "
                         f"{e['spectrum_worst']:.1%} ({v['spectrum']})")
        return f"{name} ({r['blew_up']} blew up): " + ", ".join(parts)
    spread = f"speed {kin['mean_speed_rel_sd']:.1%}" + (f", order {kin['order_rel_sd']:.1%}" if "order_rel_sd" in kin
                                                        else "")
    return "; ".join([f"{res['members']} members, t = {res['window'][0]:g}..{res['window'][1]:g}; kinetic member "
                      f"sd: {spread}"] + _closure_parts(res, describe))


def ensemble_line(res: dict) -> str:
    """One line per alpha: each closure's relative differences (+- the resolution) and the kinetic spread."""
    kin = res["kinetic"]

    def describe(name, r):
        d, e = r["rel_diff"], r["resolution"]
        return (f"{name}: speed {d['mean_speed']:.1%} +- {e['mean_speed']:.1%}, order {d['order']:.1%} +- "
                f"{e['order']:.1%}, spectrum {d['spectrum_max']:.1%} +- {e['spectrum_at_worst']:.1%}")
    return "; ".join([f"kinetic {kin['members']} runs, member sd: speed {kin['mean_speed_rel_sd']:.1%}, order "
                      f"{kin['order_rel_sd']:.1%}"] + _closure_parts(res, describe))


def plot(out: dict, path) -> None:
    """A-priori S error against alpha (learned, Bingham) and the long runs' velocity spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longs = out.get("long_runs", {})
    ens = out.get("ensemble", {})
    if ens:  # ensemble spectra (kinetic mean with two standard errors) replace the single long runs
        longs = {a: {"data": {"k": v["k"], "spectrum": v["kinetic"]["spectrum"],
                              "band": 2 * np.asarray(v["kinetic"]["spectrum_rel_se"])},
                     **{n: {"spectrum": v[n]["spectrum"]} for n in ("learned", "bingham") if "spectrum" in v[n]}}
                 for a, v in ens.items()}
    if "a_priori" not in out:
        return
    fig, axes = plt.subplots(1, 1 + len(longs), figsize=(4.2 * (1 + len(longs)), 3.6), layout="constrained")
    axes = np.atleast_1d(axes)
    alphas = sorted((float(a) for a in out["a_priori"]), reverse=True)
    for key, lab, mk in (("learned_S", "learned", "o-"), ("bingham_S", "Bingham", "s--")):
        axes[0].plot(alphas, [out["a_priori"][str(a)][key] for a in alphas], mk, label=lab)
    axes[0].axvspan(min(TRAIN), max(TRAIN), color="0.9", label="trained range")
    axes[0].set(xlabel="alpha", ylabel="relative error of S (held out)", title="a priori")
    axes[0].legend(fontsize=8)
    for ax, (a, v) in zip(axes[1:], longs.items()):
        k = np.asarray(v["data"]["k"])
        for name, style in (("data", "k-"), ("learned", "C0o-"), ("bingham", "C1s--")):
            if "spectrum" in v.get(name, {}):
                ax.loglog(k[1:], np.asarray(v[name]["spectrum"])[1:], style, ms=3,
                          label="kinetic" if name == "data" else name)
        if "band" in v["data"]:
            e = np.asarray(v["data"]["spectrum"])
            lo = np.clip(1 - np.asarray(v["data"]["band"]), 0.1, None)  # a log axis: floor the band at e / 10
            ax.fill_between(k[1:], (e * lo)[1:], (e * (1 + v["data"]["band"]))[1:], color="0.8",
                            label="kinetic +- 2 s.e.")
        ax.axvline(k[len(k) // 2], color="0.6", lw=0.8)
        title = f"alpha {float(a):g}, t = 20..60" + (f", {len(ens[a]['seeds'])} seeds" if ens else "")
        ax.set(xlabel="k", ylabel="E(k)", title=title)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    from napari_dynfit.errors import InputError

    try:
        sys.exit(main())
    except InputError as exc:  # one line, as the CLI prints it
        sys.exit(f"error: {exc}")
