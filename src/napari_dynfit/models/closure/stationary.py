"""Long-window ensembles for the a-posteriori check: per-frame statistics streamed, paired comparisons.

:func:`~.ensemble.ensemble_check` keeps every frame of every run (fields), which limits ensembles to a few
members and 40-unit windows. Here the kinetic ensemble (:func:`kinetic_series`) and the moment-model runs
(:func:`moment_series`) keep only per-frame statistics (spatial mean speed, mean order parameter, shell
spectrum), so members can run long, batched, and resume from a checkpoint file. :func:`stationary_comparison`
then compares the models' stationary statistics over a window after a burn-in.

Statistics (why the standard errors are valid): each member is one independent realisation (its own random
initial perturbation), so the members' window averages are independent and identically distributed, whatever
the correlations in time inside a run: the standard error of an ensemble mean from the spread of those
averages needs no autocorrelation model. The moment-model run of member ``i`` starts from member ``i``'s
moments at the branch time (common initial conditions), so the pairs ``(K_i, C_i)`` are independent across
``i`` and the ratio of ensemble means ``R = mean(C) / mean(K)`` has the paired standard error
``sd(C_i - R K_i) / (sqrt(N) mean(K))`` (the ratio estimator's delta method); where kinetic and coarse runs
stay correlated (a slow state inherited from the branch point) pairing removes that shared variance, and
where they do not it costs nothing. Within-run batch means are reported only as a diagnostic: at our box
size a run's slow states outlive a 40-80 unit window, so a single run's autocorrelation understates the
seed-to-seed spread.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ... import closure_defaults as _D
from ..._settings import settings_mismatch
from ...device import resolve_device
from ...errors import InputError
from .ensemble import TARGETS
from .kinetic import SOLVER_VERSION, KineticSolver, SuspensionParams
from .moment_model import MOMENT_VERSION, MomentSolver, moments_from_state, state_from_moments
from .moments import order_parameter
from .train import grid_substeps, shell_spectrum


def frame_statistics(c: torch.Tensor, D: torch.Tensor, u: torch.Tensor, length: float) -> dict:
    """Per-frame statistics of ``c (..., n, n)``, ``D (..., n, n, 2, 2)``, ``u (..., n, n, 2)`` (on any device).

    Returns
    -------
    dict
        ``speed (...)`` spatial mean of ``|u|``, ``order (...)`` spatial mean of the scalar order parameter,
        ``spectrum (..., n // 2 + 1)`` shell kinetic-energy spectrum
        (:func:`~.train.shell_spectrum`), numpy.
    """
    speed = torch.sqrt((u ** 2).sum(-1)).mean((-2, -1))
    order = order_parameter(c, D).mean((-2, -1))
    return {"speed": speed.cpu().numpy(), "order": order.cpu().numpy(), "spectrum": shell_spectrum(u.cpu().numpy())}


#: :meth:`~.kinetic.KineticSolver.positivity`'s figures, kept per frame and member by :func:`kinetic_series`
POSITIVITY = ("min_ratio", "negative_mass", "negative_points", "moments_outside")


def _append(series: dict, st: dict, t: float) -> None:
    series["t"].append(t)
    for key in st:
        series[key].append(st[key])


def positivity_of_series(series: dict, first_t: float = -np.inf, last_t: float = np.inf) -> dict | None:
    """How far a kinetic ensemble's ``Psi`` was from a density over ``first_t..last_t`` (time units):
    ``negative_mass_mean`` (mean over frames and members), ``negative_mass_max``, ``min_ratio`` (smallest),
    ``negative_points_mean``, ``moments_outside_mean`` and ``moments_outside_max`` (see
    :meth:`~.kinetic.KineticSolver.positivity`); None when ``series`` records none (stored runs made before)."""
    pos = series.get("positivity")
    if not pos:
        return None
    w = _window(series, first_t, last_t)
    pick = {k: np.asarray(v, float)[w] for k, v in pos.items()}
    return {"negative_mass_mean": float(pick["negative_mass"].mean()),
            "negative_mass_max": float(pick["negative_mass"].max()), "min_ratio": float(pick["min_ratio"].min()),
            "negative_points_mean": float(pick["negative_points"].mean()),
            "moments_outside_mean": float(pick["moments_outside"].mean()),
            "moments_outside_max": float(pick["moments_outside"].max())}


def _stack(series: dict) -> dict:
    return {k: np.asarray(v) for k, v in series.items()}


#: what a checkpoint that records no such entry was made with (written before these were recorded)
_META_DEFAULTS = {"swim_speed": 0.0, "solver_version": 1}


def _load_checkpoint(path, meta: dict, stale: str = "raise"):
    """The checkpoint's data when it was made with exactly ``meta``; else ``stale = "raise"``: a one-line error
    naming what differs (:func:`~napari_dynfit._settings.settings_mismatch`; a user's file is never discarded),
    ``"restart"``: ``None`` (start afresh; the file is replaced, temporary file + rename, at the first save) with
    a line on stderr."""
    if stale not in ("raise", "restart"):
        raise InputError(f"stale must be 'raise' or 'restart', got {stale!r}")
    if path is None or not Path(path).exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            z = dict(f)
    except Exception as exc:  # noqa: BLE001 - damaged or not an npz
        why = f"cannot be read ({exc})"
    else:
        saved = {k[5:]: z[k] for k in z if k.startswith("meta_")}
        bad = settings_mismatch(saved, meta, _META_DEFAULTS)
        if not bad:
            return {k: v for k, v in z.items() if not k.startswith("meta_")}
        why = f"was made with other settings ({bad})"
    if stale == "raise":
        raise InputError(f"checkpoint {path} {why}; remove it or use another")
    print(f"checkpoint {Path(path).name} {why}: starting afresh", file=sys.stderr)
    return None


def closure_digest(closure) -> str:
    """Identity of a closure for checkpoints: its class, configuration and weights (a learned closure), or its
    qualified name (a function such as :func:`~.moments.bingham_closure`)."""
    h = hashlib.sha1()
    kind = type(closure)
    h.update(f"{kind.__module__}.{kind.__qualname__}".encode())
    if isinstance(closure, torch.nn.Module):
        h.update(json.dumps(getattr(closure, "config", None), sort_keys=True, default=str).encode())
        for name, v in sorted(closure.state_dict().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(v.detach().cpu().numpy()).tobytes())
    else:
        h.update(f"{getattr(closure, '__module__', '')}.{getattr(closure, '__qualname__', repr(closure))}".encode())
    return h.hexdigest()


def _save_checkpoint(path, meta: dict, data: dict) -> None:
    if path is None:
        return
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{f"meta_{k}": np.asarray(v) for k, v in meta.items()}, **data)
    tmp.replace(path)


def _integrate(start: int, total: int, per_chunk: int, advance, first, series: dict, cpu: float, checkpoint,
               meta: dict, t_end: float) -> tuple[dict, float]:
    """Record the first frame (``first()``, on a fresh start), run ``advance(start, stop) -> state dict`` chunk
    by chunk to ``total``, checkpointing after each chunk; returns the series up to ``t_end`` (arrays) and the
    CPU seconds spent so far (``cpu`` plus this call's)."""
    with torch.no_grad():
        if start == 0 and not series["t"]:
            first()
        while start < total:
            c0 = time.process_time()
            stop = min(total, start + per_chunk)
            state = advance(start, stop)
            start, cpu = stop, cpu + time.process_time() - c0
            _save_checkpoint(checkpoint, meta, {**_stack(series), **state, "cpu_s": cpu})
    out = _stack(series)
    keep = out["t"] <= t_end + 1e-9
    return {k: v[keep] for k, v in out.items()}, cpu


def kinetic_series(params: SuspensionParams, seeds, *, t_end: float, branch_t: float = _D.SETTLE_T,
                   save_every: float = _D.SAVE_EVERY, n: int = _D.GRID, n_theta: int = _D.ANGLES, dt: float = _D.DT,
                   amplitude: float = _D.AMPLITUDE, chunk: float = 10.0, checkpoint=None, device: str = "cpu",
                   stale: str = "raise") -> dict:
    """Kinetic ensemble (one member per seed, integrated together) keeping per-frame statistics only.

    Members start as in :func:`~.kinetic.simulate_kinetic_ensemble` (same seeds, same runs). With
    ``checkpoint`` (an ``.npz`` path) the state and the series are saved every ``chunk`` time units and a
    later call resumes from them (and extends to a larger ``t_end``); a checkpoint made with other settings
    (parameters, seeds, grid, angles, time step, amplitude, solver version) raises a one-line error
    (``stale="raise"``) or is started afresh and replaced (``stale="restart"``).

    Returns
    -------
    dict
        ``t (F,)`` frame times, ``speed``, ``order (F, M)``, ``spectrum (F, M, n // 2 + 1)`` (see
        :func:`frame_statistics`), ``positivity``: ``min_ratio``, ``negative_mass``, ``negative_points``,
        ``moments_outside`` ``(F, M)`` each (:meth:`~.kinetic.KineticSolver.positivity`: how far each member's
        ``Psi`` is from a density, as ``simulate_kinetic`` records in ``attrs["positivity"]``;
        :func:`positivity_of_series` summarises them), ``k`` shell wavenumbers (1 / length unit), ``branch (M, 3, n, n)`` the
        members' moment states (:func:`~.moment_model.state_from_moments`) at ``branch_t``, ``cpu_s`` CPU
        seconds spent so far (all calls) on the runs to ``t_run`` (where they have got to; the series stop at
        ``t_end``), ``seeds``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InputError("give at least one seed")
    solver = KineticSolver(params, n=n, n_theta=n_theta, dt=dt, device=device)
    every = max(1, int(round(save_every / dt)))
    per_chunk = max(every, int(round(chunk / dt)) // every * every)
    n_steps = int(round(t_end / dt))
    branch_step = int(round(branch_t / dt))
    if branch_step % every:
        raise InputError(f"branch_t must be a multiple of save_every, got {branch_t} and {save_every}")
    meta = {"alpha": params.alpha, "beta": params.beta, "zeta": params.zeta, "d_t": params.d_t,
            "d_r": params.d_r, "length": params.length, "swim_speed": params.swim_speed, "seeds": seeds, "n": n,
            "n_theta": n_theta, "dt": dt, "every": every, "amplitude": amplitude, "branch_step": branch_step,
            "solver_version": SOLVER_VERSION}
    ck = _load_checkpoint(checkpoint, meta, stale)
    series = {"t": [], "speed": [], "order": [], "spectrum": [], **{f"pos_{k}": [] for k in POSITIVITY}}
    if ck is not None:
        psi_hat = torch.as_tensor(ck["psi_hat"], device=solver.grid.k2.device)
        step, cpu = int(ck["step"]), float(ck["cpu_s"])
        branch = ck["branch"] if ck["branch"].size else None
        for key in series:
            series[key] = list(ck[key])
    else:
        psi0 = torch.stack([solver.initial_condition(seed=s, amplitude=amplitude) for s in seeds])
        psi_hat, step, cpu, branch = solver._fft(psi0), 0, 0.0, None

    def record(ph, i):
        nonlocal branch
        psi = solver._ifft(ph)
        u, _, _, mo = solver.flow(psi)
        st = frame_statistics(mo["c"], mo["D"], u, params.length)
        st.update({f"pos_{k}": v.cpu().numpy() for k, v in solver.positivity(psi).items()})
        _append(series, st, i * dt)
        if i == branch_step:
            branch = state_from_moments(mo["c"], mo["D"]).cpu().numpy()

    def advance(start, stop):
        nonlocal psi_hat
        for i in range(start + 1, stop + 1):
            psi_hat = solver.step(psi_hat)
            if i % every == 0 or i % 10 == 0:
                solver.check_finite(psi_hat, i * dt, what="the kinetic ensemble")
            if i % every == 0:
                record(psi_hat, i)
        return {"psi_hat": psi_hat.cpu().numpy(), "step": stop, "branch": branch if branch is not None else []}

    out, cpu = _integrate(step, n_steps, per_chunk, advance, lambda: record(psi_hat, 0), series, cpu, checkpoint,
                          meta, t_end)
    if branch is None:
        raise InputError(f"the runs end before the branch time {branch_t}")
    out["positivity"] = {k: out.pop(f"pos_{k}") for k in POSITIVITY}
    out.update(branch=branch, cpu_s=cpu, seeds=np.asarray(seeds), t_run=max(step, n_steps) * dt,
               k=np.arange(n // 2 + 1) * 2 * np.pi / params.length)
    return out


def series_from_runs(bundles, *, branch_t: float = _D.SETTLE_T) -> dict:
    """:func:`kinetic_series` of stored kinetic runs (e.g. :func:`~.kinetic.simulate_kinetic_ensemble`'s,
    same frame times): per-frame statistics from their fields, branch states at ``branch_t``."""
    from .train import _moment_tensors, suspension_params

    bundles = list(bundles)
    t = np.asarray(bundles[0].coords["t"], float)
    if any(not np.array_equal(np.asarray(b.coords["t"], float), t) for b in bundles[1:]):
        raise InputError("the stored runs must share their frame times")
    i0 = int(np.argmin(np.abs(t - branch_t)))
    if abs(t[i0] - branch_t) > 1e-9:
        raise InputError(f"no frame at the branch time {branch_t}")
    length = suspension_params(bundles[0]).length
    cs, Ds = zip(*(_moment_tensors(b) for b in bundles))
    c, D = torch.stack(cs, 1), torch.stack(Ds, 1)  # (F, M, ...)
    u = torch.stack([torch.as_tensor(np.asarray(b["velocity"]), dtype=torch.float64) for b in bundles], 1)
    out = frame_statistics(c, D, u, length)
    recs = [(b.attrs or {}).get("positivity") or {} for b in bundles]
    if all(len(r.get("negative_mass", ())) == len(t) for r in recs):  # runs made before record none
        out["positivity"] = {k: np.asarray([r[k] for r in recs], float).T for k in POSITIVITY}
    n = c.shape[-1]
    out.update(t=t, branch=state_from_moments(c[i0], D[i0]).numpy(), cpu_s=0.0, t_run=t[-1],
               seeds=np.asarray([(b.attrs.get("kinetic") or {}).get("seed", -1) for b in bundles]),
               k=np.arange(n // 2 + 1) * 2 * np.pi / length)
    return out


def concat_series(parts) -> dict:
    """Kinetic series of several ensembles (same frame times) as one: members appended."""
    parts = [p for p in parts if p is not None]
    n = min(len(p["t"]) for p in parts)
    if any(not np.allclose(p["t"][:n], parts[0]["t"][:n]) for p in parts):
        raise InputError("the ensembles must share their frame times")
    out = {key: np.concatenate([p[key][:n] for p in parts], 1) for key in ("speed", "order", "spectrum")}
    if all("positivity" in p for p in parts):
        out["positivity"] = {k: np.concatenate([p["positivity"][k][:n] for p in parts], 1) for k in POSITIVITY}
    out.update(t=parts[0]["t"][:n], branch=np.concatenate([p["branch"] for p in parts]),
               seeds=np.concatenate([p["seeds"] for p in parts]), cpu_s=sum(float(p["cpu_s"]) for p in parts),
               t_run=min(float(p["t_run"]) for p in parts),
               k=parts[0]["k"])
    return out


def moment_series(params: SuspensionParams, closure, branch: np.ndarray, *, t0: float, t_end: float,
                  save_every: float = 0.25, steps_per_frame: int | None = None, chunk: float = 10.0,
                  checkpoint=None, device: str = "cpu", stale: str = "raise") -> dict:
    """Moment-model runs with ``closure`` from the states ``branch (M, 3, n, n)`` at time ``t0`` to
    ``t_end``, batched, keeping per-frame statistics (as :func:`kinetic_series`).

    A member that blows up (non-finite, or orientation harmonics beyond ten times ``c``) is flagged in
    ``blew_up (M,)`` and its statistics are NaN from then on; the others go on. ``checkpoint`` as in
    :func:`kinetic_series` (give each closure its own file; one made with another closure, other weights or
    other settings is ``stale`` as there). ``device``: where the runs are integrated (a
    learned closure is copied there; the caller's stays where it is).
    """
    dev = resolve_device(device)
    if isinstance(closure, torch.nn.Module):
        closure = copy.deepcopy(closure).to(dev)
    n = branch.shape[-1]
    spf = grid_substeps(save_every, steps_per_frame, params, n)
    solver = MomentSolver(params, closure, n=n, dt=save_every / spf, device=dev)
    frames = int(round((t_end - t0) / save_every))
    per_chunk = max(1, int(round(chunk / save_every)))
    meta = {"alpha": params.alpha, "beta": params.beta, "zeta": params.zeta, "d_t": params.d_t,
            "d_r": params.d_r, "length": params.length, "spf": spf, "t0": t0, "every": save_every,
            "branch": branch, "closure": closure_digest(closure) if checkpoint is not None else "",
            "solver_version": MOMENT_VERSION}
    ck = _load_checkpoint(checkpoint, meta, stale)
    series = {"t": [], "speed": [], "order": [], "spectrum": []}
    start_state = torch.as_tensor(branch, dtype=torch.float64, device=dev)
    if ck is not None:
        state, frame, cpu, bad = (torch.as_tensor(ck["state"], device=dev), int(ck["frame"]), float(ck["cpu_s"]),
                                  ck["blew_up"])
        for key in series:
            series[key] = list(ck[key])
    else:
        state, frame, cpu, bad = start_state, 0, 0.0, np.zeros(len(branch), bool)

    def record(st, i):
        c, D = moments_from_state(st)
        u, _, _ = solver.flow(st)
        fs = frame_statistics(c, D, u, params.length)
        fs = {k: np.where(bad.reshape((-1,) + (1,) * (v.ndim - 1)), np.nan, v) for k, v in fs.items()}
        _append(series, fs, t0 + i * save_every)

    def advance(start, stop):
        nonlocal state, bad
        sh = solver.grid.fft(state)
        for i in range(start + 1, stop + 1):
            for _ in range(spf):
                sh = solver.step(sh)
            state = solver.grid.ifft(sh)
            c = state[:, 0].abs().amax((-2, -1))
            harm = torch.sqrt(state[:, 1] ** 2 + state[:, 2] ** 2).amax((-2, -1))
            ok = (torch.isfinite(state).flatten(1).all(1) & (harm <= 10 * c + 1e-9)).cpu().numpy()
            if (~ok & ~bad).any():
                bad = bad | ~ok
                state = torch.where(torch.as_tensor(bad, device=dev)[:, None, None, None], start_state, state)
                sh = solver.grid.fft(state)  # park the blown members on their start (statistics NaN)
            record(state, i)
        return {"state": state.cpu().numpy(), "frame": stop, "blew_up": bad}

    out, cpu = _integrate(frame, frames, per_chunk, advance, lambda: record(state, 0), series, cpu, checkpoint,
                          meta, t_end)
    out.update(blew_up=bad, cpu_s=cpu, t_run=t0 + max(frame, frames) * save_every)
    return out


def _window(series: dict, first_t: float, last_t: float) -> np.ndarray:
    t = series["t"]
    return (t >= first_t - 1e-9) & (t <= last_t + 1e-9)


def _ratio(K: np.ndarray, C: np.ndarray) -> tuple:
    """Relative difference ``mean(C) / mean(K) - 1`` and its paired and unpaired standard errors
    (members on the first axis)."""
    n = len(K)
    mk, mc = K.mean(0), C.mean(0)
    r = mc / mk
    paired = (C - r * K).std(0, ddof=1) / np.sqrt(n) / np.abs(mk)
    unpaired = np.abs(r) * np.hypot(C.std(0, ddof=1) / mc, K.std(0, ddof=1) / mk) / np.sqrt(n)
    return r - 1, paired, unpaired


def _verdict(diff: np.ndarray, res: np.ndarray, target: float) -> str:
    """``met`` when every ``|diff| + res <= target``, ``missed`` when some ``|diff| - res > target``, else
    ``unresolved``."""
    diff, res = np.abs(np.atleast_1d(diff)), np.atleast_1d(res)
    if np.all(diff + res <= target):
        return "met"
    if np.any(diff - res > target):
        return "missed"
    return "unresolved"


def integrated_time(x: np.ndarray, dt: float) -> float:
    """Integrated autocorrelation time of the series ``x (F,)`` (time units; Sokal's window ``5 tau``)."""
    x = np.asarray(x, float) - np.mean(x)
    n = len(x)
    if n < 4 or not x.var() > 0:
        return float("nan")
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[:n] / (x.var() * n)
    taus = 1 + 2 * np.cumsum(ac[1:])  # tau with the window m = 1, 2, ...
    stop = np.nonzero(np.arange(1, n) >= 5 * taus)[0]
    tau = taus[stop[0]] if len(stop) else taus[-1]
    return float(max(tau, 1.0) * dt)


def stationary_comparison(kinetic: dict, coarse: dict, *, first_t: float, last_t: float | None = None,
                          k_fraction: float = 0.5) -> dict:
    """Kinetic vs moment-model stationary statistics over ``first_t..last_t`` (time units), members paired.

    Parameters
    ----------
    kinetic : dict
        :func:`kinetic_series`.
    coarse : dict
        Closure name -> :func:`moment_series` from ``kinetic["branch"]`` (same members, same frame times).
    first_t, last_t : float
        Window (default: to the end of the shortest series); ``first_t`` after both transients.
    k_fraction : float
        Spectrum shells ``1 .. k_fraction * (n / 2)`` compared.

    Returns
    -------
    dict
        ``"window"``, ``"members"``, ``"shells"``, ``"k"``; ``"kinetic"``: ensemble means, the relative
        seed-to-seed sd of one member's window average, the integrated autocorrelation time of the members'
        speed (mean, time units), and ``"halves"``: the relative change of the ensemble-mean speed and order
        from the window's first to its second half with two paired standard errors (stationarity); per
        closure: ``"rel_diff"`` (signed, ``mean(C) / mean(K) - 1``: ``mean_speed``, ``order``, ``spectrum``
        per shell, ``spectrum_worst`` and the worst shell), ``"resolution"`` (two paired standard errors, the
        same keys), ``"resolution_unpaired"`` (two standard errors ignoring the pairing),
        ``"verdict"`` (``met`` / ``missed`` / ``unresolved`` against :data:`~.ensemble.TARGETS`: met when the
        difference plus its resolution is within the target, for the spectrum at every compared shell;
        missed when the difference minus its resolution is outside it), ``"blew_up"``, ``"members"``;
        ``"per_member"``: every member's window averages (what :func:`merge_comparisons` pools).
    """
    t_last = min([kinetic["t"][-1]] + [c["t"][-1] for c in coarse.values()])
    last_t = t_last if last_t is None else float(last_t)
    if last_t > t_last + 1e-9 or last_t <= first_t:
        raise InputError(f"window {first_t}..{last_t} is not inside the runs (they end at {t_last:g})")
    wk = _window(kinetic, first_t, last_t)
    dt = float(np.diff(kinetic["t"][:2])[0])
    m = kinetic["speed"].shape[1]
    half = wk.nonzero()[0]
    h1, h2 = half[: len(half) // 2], half[len(half) // 2:]
    kin = {key: kinetic[key][wk].mean(0) for key in ("speed", "order", "spectrum")}  # (M, ...)
    kin.update({f"{key}_half{i}": kinetic[key][h].mean(0) for key in ("speed", "order")
                for i, h in ((1, h1), (2, h2))})
    kin["tau_speed"] = np.array([integrated_time(kinetic["speed"][wk, i], dt) for i in range(m)])
    members = {"kinetic": kin}
    for name, cs in coarse.items():
        if len(cs["speed"][0]) != m:
            raise InputError(f"{name}: {len(cs['speed'][0])} members, the kinetic ensemble has {m}")
        wc = _window(cs, first_t, last_t)
        if wc.sum() != wk.sum():
            raise InputError(f"{name}: its frames do not match the kinetic runs' in {first_t}..{last_t}")
        bad = np.asarray(cs["blew_up"], bool)
        members[name] = {key: np.where(bad.reshape((-1,) + (1,) * (cs[key].ndim - 2)), np.nan, cs[key][wc].mean(0))
                         for key in ("speed", "order", "spectrum")}
        members[name]["blew_up"] = bad
    return compare_members(members, window=[first_t, last_t], k=kinetic["k"], k_fraction=k_fraction)


def compare_members(members: dict, *, window, k, k_fraction: float = 0.5) -> dict:
    """:func:`stationary_comparison`'s figures from every member's window averages.

    Parameters
    ----------
    members : dict
        ``"kinetic"``: ``speed``, ``order`` (M,), ``spectrum`` (M, S + 1), ``speed_half1``/``_half2``,
        ``order_half1``/``_half2`` (M,), ``tau_speed`` (M,, time units); per closure: ``speed``, ``order``,
        ``spectrum`` (NaN for members that blew up) and ``blew_up`` (M,) bool. A key missing from the kinetic
        entry (a pooled result of older runs that kept only the speed) leaves its figures out.
    window : (2,) float
        The averaging window (time units), reported.
    k : (S + 1,) float
        The spectrum's shell wavenumbers.
    k_fraction : float
        Spectrum shells ``1 .. k_fraction * S`` compared.
    """
    kin = {key: np.asarray(v, float) for key, v in members["kinetic"].items()}
    m = len(kin["speed"])
    k = np.asarray(k, float)
    shells = np.arange(1, int(k_fraction * (len(k) - 1)) + 1)
    has = {key for key in ("speed", "order", "spectrum") if key in kin}
    kout = {"mean_speed": float(kin["speed"].mean()),
            "mean_speed_rel_sd": float(kin["speed"].std(ddof=1) / kin["speed"].mean()),
            "speed_per_member": kin["speed"].tolist()}
    if "order" in has:
        kout.update(order=float(kin["order"].mean()), order_rel_sd=float(kin["order"].std(ddof=1) / kin["order"].mean()))
    if "spectrum" in has:
        kout.update(spectrum=kin["spectrum"].mean(0).tolist(),
                    spectrum_rel_sd=(kin["spectrum"].std(0, ddof=1) / kin["spectrum"].mean(0)).tolist())
    if "tau_speed" in kin:
        kout["tau_speed"] = float(np.nanmean(kin["tau_speed"]))
    if all(f"{key}_half{i}" in kin for key in ("speed", "order") for i in (1, 2)):
        halves = {}
        for key in ("speed", "order"):
            d, se, _ = _ratio(kin[f"{key}_half1"], kin[f"{key}_half2"])
            halves[key] = {"rel_change": float(d), "resolution": float(2 * se)}
        kout["halves"] = halves
    out = {"window": [float(w) for w in window], "members": m, "shells": [int(shells[0]), int(shells[-1])],
           "k": k.tolist(), "kinetic": kout}
    per_member = {"kinetic": {key: v.tolist() for key, v in kin.items()}}
    for name, cm in members.items():
        if name == "kinetic":
            continue
        bad = np.asarray(cm["blew_up"], bool)
        if len(bad) != m:
            raise InputError(f"{name}: {len(bad)} members, the kinetic ensemble has {m}")
        ok = ~bad
        cav = {key: np.asarray(cm[key], float)[ok] for key in has}
        per_member[name] = {**{key: np.asarray(cm[key], float).tolist() for key in has}, "blew_up": bad.tolist()}
        res = {"blew_up": int(bad.sum()), "members": int(ok.sum())}
        if ok.sum() >= 2:
            kav = {key: kin[key][ok] for key in has}
            diff, reso, unp, verdict = {}, {}, {}, {}
            for key, name_ in (("speed", "mean_speed"), ("order", "order")):
                if key in has:
                    d, se, su = _ratio(kav[key], cav[key])
                    diff[name_], reso[name_], unp[name_] = float(d), float(2 * se), float(2 * su)
                    verdict[name_] = _verdict(d, 2 * se, TARGETS[name_])
            res.update(mean_speed=float(cav["speed"].mean()), speed_per_member=cav["speed"].tolist())
            if "order" in has:
                res["order"] = float(cav["order"].mean())
            if "spectrum" in has:
                d, se, su = _ratio(kav["spectrum"][:, shells], cav["spectrum"][:, shells])
                worst = int(np.argmax(np.abs(d)))
                diff.update(spectrum=d.tolist(), spectrum_worst=float(d[worst]), worst_shell=int(shells[worst]))
                reso.update(spectrum=(2 * se).tolist(), spectrum_worst=float(2 * se[worst]))
                unp.update(spectrum=(2 * su).tolist(), spectrum_worst=float(2 * su[worst]))
                verdict["spectrum"] = _verdict(d, 2 * se, TARGETS["spectrum"])
                res["spectrum"] = cav["spectrum"].mean(0).tolist()
            res.update(rel_diff=diff, resolution=reso, resolution_unpaired=unp, verdict=verdict)
        out[name] = res
    out["per_member"] = per_member
    return out


def merge_comparisons(results: list, *, k_fraction: float = 0.5) -> dict:
    """Pool the members of several :func:`stationary_comparison` results (the same ``alpha``, window and
    closures, disjoint members: e.g. one ensemble run on a GPU and more members added on a CPU) and recompute
    every figure over all of them.

    A result written before ``"per_member"`` was stored holds only the members' mean speeds (kinetic and
    per closure, none blown up); pooled with it, only the mean-speed figures are recomputed.
    Raises :class:`InputError` if the windows, shells or closures differ or a seed appears twice.
    """
    if not results:
        raise InputError("merge_comparisons: no results given")
    parts = [_per_member(r) for r in results]
    first = results[0]
    names = set(parts[0]) - {"kinetic"}
    for r, p in zip(results[1:], parts[1:]):
        if not np.allclose(r["window"], first["window"]) or not np.allclose(r["k"], first["k"]):
            raise InputError(f"cannot pool: windows {first['window']} and {r['window']} (or their shells) differ")
        if set(p) - {"kinetic"} != names:
            raise InputError(f"cannot pool: closures {sorted(names)} and {sorted(set(p) - {'kinetic'})} differ")
    seeds = [s for r in results for s in r.get("seeds", [])]
    if len(seeds) != len(set(seeds)):
        raise InputError("cannot pool: some seeds appear in more than one result (each member once)")
    members = {}
    for name in ["kinetic", *sorted(names)]:
        keys = set.intersection(*(set(p[name]) for p in parts))
        members[name] = {key: np.concatenate([np.asarray(p[name][key]) for p in parts]) for key in keys}
    out = compare_members(members, window=first["window"], k=first["k"], k_fraction=k_fraction)
    if seeds:
        out["seeds"] = seeds
    return out


def _per_member(res: dict) -> dict:
    """A result's per-member window averages; for an older result, its stored mean speeds."""
    if "per_member" in res:
        return res["per_member"]
    names = [n for n, v in res.items() if isinstance(v, dict) and "speed_per_member" in v and n != "kinetic"]
    if any(res[n]["blew_up"] for n in names):
        raise InputError("cannot pool an older result in which members blew up (its members are not aligned)")
    return {"kinetic": {"speed": res["kinetic"]["speed_per_member"]},
            **{n: {"speed": res[n]["speed_per_member"], "blew_up": [False] * res["members"]} for n in names}}


__all__ = ["compare_members", "concat_series", "frame_statistics", "integrated_time", "kinetic_series",
           "merge_comparisons", "moment_series", "positivity_of_series", "series_from_runs",
           "stationary_comparison"]
