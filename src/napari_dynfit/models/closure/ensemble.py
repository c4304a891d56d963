"""Ensemble a-posteriori checks: statistics of a chaotic stationary state against the kinetic theory's.

One kinetic run is one sample of a chaotic flow: its mean speed over a window of tens of time units still
moves by 5-20 % from window to window at our box size, so a single run cannot tell a 5 % closure error from
sampling noise. :func:`ensemble_check` compares ensemble averages instead: several kinetic runs of the same
suspension (different random initial perturbations), and for each closure one moment-model run per member
from that member's moments at frame ``t_start`` (matched initial moments), all statistics averaged over the
same frames. Each figure comes with the ensembles' own seed-to-seed spread, so that a reader sees what the
data can resolve.

The coarse runs of an ensemble are integrated together (a batch axis), which costs about as much as one run
on a small grid.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import InputError
from ...results import to_jsonable
from .moment_model import MomentSolver, state_from_moments
from .train import _moment_tensors, flow_statistics, grid_substeps, rollout_moments, suspension_params

#: targets of issue 19 (relative): mean speed and order parameter, worst spectrum shell up to half of k_max
TARGETS = {"mean_speed": 0.05, "order": 0.05, "spectrum": 0.10}


def _member_stats(c, D, u, length) -> dict:
    st = flow_statistics(np.asarray(c), np.asarray(D), np.asarray(u), length)
    return {"mean_speed": st["mean_speed"], "order": st["order"], "spectrum": st["spectrum"], "k": st["k"]}


def _coarse_runs(bundles, closure, *, t_start: int, frames: int, steps_per_frame: int | None):
    """Moment-model runs with ``closure`` from frame ``t_start`` of every bundle, batched.

    Returns a list (one per bundle) of ``(c, D, u)`` arrays over the ``frames + 1`` frames (the first the
    data's), or None where that member blew up.
    """
    p = suspension_params(bundles[0])
    dt_frame = float(bundles[0].coords["t"][1] - bundles[0].coords["t"][0])
    spf = grid_substeps(dt_frame, steps_per_frame, p, np.shape(bundles[0]["concentration"])[-1])
    states = []
    for b in bundles:
        c, D = _moment_tensors(b, t_start=t_start)
        states.append(state_from_moments(c[0], D[0]))
    solver = MomentSolver(p, closure, n=states[0].shape[-1], dt=dt_frame / spf)

    def run(state0):
        return tuple(x.numpy() for x in rollout_moments(solver, state0, frames, spf))

    try:
        c, D, u = run(torch.stack(states, dim=0))  # (t, member, ...)
        return [(c[:, i], D[:, i], u[:, i]) for i in range(len(bundles))]
    except FloatingPointError:  # find which member blew up
        out = []
        for st in states:
            try:
                out.append(run(st))
            except FloatingPointError:
                out.append(None)
        return out


def _summary(members: list) -> dict:
    """Ensemble mean and seed-to-seed spread (relative standard deviation of one member, relative standard
    error of the mean) of each statistic; spectra per shell."""
    out = {"members": len(members)}
    for key in ("mean_speed", "order", "spectrum"):
        vals = np.array([m[key] for m in members], dtype=float)
        mean = vals.mean(0)
        sd = vals.std(0, ddof=1) if len(members) > 1 else np.full_like(mean, np.nan)
        out[key] = mean
        out[key + "_rel_sd"] = sd / np.abs(mean)
        out[key + "_rel_se"] = sd / np.abs(mean) / np.sqrt(len(members))
        out[key + "_per_member"] = vals
    return out


def ensemble_statistics(bundles, *, first: int, last: int) -> dict:
    """Ensemble statistics of runs (kinetic, or anything with ``concentration``, ``D``, ``velocity``) over frames
    ``first..last`` (inclusive): mean speed, order parameter and spectrum, ensemble means with their spreads
    (as in :func:`ensemble_check`'s ``"kinetic"`` entry)."""
    members = []
    for b in bundles:
        c, D = _moment_tensors(b, t_start=first)
        n = last - first + 1
        if c.shape[0] < n:
            raise InputError(f"a run has {c.shape[0] + first} frames; frames {first}..{last} asked for")
        u = np.asarray(b["velocity"][first:last + 1])
        members.append(_member_stats(c[:n].numpy(), D[:n].numpy(), u, suspension_params(b).length))
    out = _summary(members)
    out["k"] = members[0]["k"]
    return to_jsonable(out)


def ensemble_check(bundles, closures: dict, *, t_start: int = 0, horizon_frames: int = 20, discard_frames: int = 0,
                   steps_per_frame: int | None = None, k_fraction: float = 0.5) -> dict:
    """Ensemble a-posteriori check of moment closures against kinetic runs of one suspension.

    Parameters
    ----------
    bundles : sequence of FieldBundle
        Kinetic runs of the same suspension and grid (``concentration``, ``D``, ``velocity``), e.g. different
        seeds of the initial perturbation; at least two (the spread needs them).
    closures : dict
        Name -> closure ``(c, D, params) -> (q4c, q4s)``.
    t_start : int
        Frame the moment-model runs start from (each from its own member's moments).
    horizon_frames : int
        Frames the moment model runs.
    discard_frames : int
        Frames after ``t_start`` left out of the statistics (both transients).
    steps_per_frame : int, optional
        Moment-model steps per frame (default from ``MOMENT_DT``).
    k_fraction : float
        Spectrum compared for shells ``1 .. k_fraction * (n / 2)``.

    Returns
    -------
    dict
        ``"kinetic"`` and per closure: ensemble means of the mean speed ``<|u|>`` (velocity units), the order
        parameter and the spectrum ``E(k)`` (per shell), each with ``*_rel_sd`` (seed-to-seed relative standard
        deviation of one member's time average) and ``*_rel_se`` (relative standard error of the ensemble mean);
        per closure also ``"rel_diff"`` (relative difference of the ensemble means: ``mean_speed``, ``order``,
        ``spectrum_max`` / ``spectrum_mean`` over the compared shells), ``"resolution"`` (two standard errors of
        that difference, kinetic and coarse ensembles combined: differences below it are not resolved), ``"met"``
        (each difference within :data:`TARGETS`) and ``"blew_up"`` (members that blew up, left out).
        ``"k"``: the shell wavenumbers (1 / length unit); ``"shells"``: the compared shells.
    """
    bundles = list(bundles)
    if len(bundles) < 2:
        raise InputError(f"an ensemble check needs at least two kinetic runs, got {len(bundles)}")
    params = [suspension_params(b) for b in bundles]
    if any(p != params[0] for p in params[1:]):
        raise InputError("the runs of an ensemble must share their suspension parameters")
    if not 0 <= discard_frames < horizon_frames:
        raise InputError(f"discard_frames must be in [0, {horizon_frames}), got {discard_frames}")
    for b in bundles:
        if len(b.coords["t"]) - t_start <= horizon_frames:
            raise InputError(f"every run needs more than {horizon_frames} frames after frame {t_start}")
    length = params[0].length
    sl = slice(1 + discard_frames, 1 + horizon_frames)
    kin = []
    for b in bundles:
        c, D = _moment_tensors(b, t_start=t_start)
        u = np.asarray(b["velocity"][t_start:t_start + 1 + horizon_frames])
        kin.append(_member_stats(c[sl].numpy(), D[sl].numpy(), u[sl], length))
    ref = _summary(kin)
    n_shells = len(ref["spectrum"]) - 1
    shells = slice(1, int(k_fraction * n_shells) + 1)
    out = {"k": kin[0]["k"], "shells": [shells.start, shells.stop - 1], "kinetic": ref,
           "frames": [t_start + sl.start, t_start + sl.stop - 1]}
    for name, cl in closures.items():
        runs = _coarse_runs(bundles, cl, t_start=t_start, frames=horizon_frames, steps_per_frame=steps_per_frame)
        ok = [i for i, r in enumerate(runs) if r is not None]
        res = {"blew_up": len(runs) - len(ok)}
        if len(ok) >= 2:
            st = _summary([_member_stats(runs[i][0][sl], runs[i][1][sl], runs[i][2][sl], length) for i in ok])
            # the kinetic ensemble restricted to the same members (matched initial moments)
            rk = ref if len(ok) == len(runs) else _summary([kin[i] for i in ok])
            rel = {k: float(abs(st[k] / rk[k] - 1)) for k in ("mean_speed", "order")}
            spec = np.abs(st["spectrum"][shells] / rk["spectrum"][shells] - 1)
            rel.update(spectrum_max=float(spec.max()), spectrum_mean=float(spec.mean()))
            comb = {k: 2 * float(np.hypot(st[k + "_rel_se"], rk[k + "_rel_se"])) for k in ("mean_speed", "order")}
            comb["spectrum"] = 2 * np.hypot(st["spectrum_rel_se"][shells], rk["spectrum_rel_se"][shells])
            comb["spectrum_at_worst"] = float(comb["spectrum"][int(spec.argmax())])
            comb["spectrum"] = comb["spectrum"].tolist()
            res.update(st, rel_diff=rel, resolution=comb,
                       met={"mean_speed": rel["mean_speed"] <= TARGETS["mean_speed"],
                            "order": rel["order"] <= TARGETS["order"],
                            "spectrum": rel["spectrum_max"] <= TARGETS["spectrum"]})
        out[name] = res
    return to_jsonable(out)


def realizability(bundle, *, t_start: int = 0, tol: float = 0.01) -> dict:
    """How much of a kinetic run's moments no distribution can have: a check of its resolution.

    Every distribution has ``m4 >= 2 s^2 - 1`` in the eigenframe of ``D`` (Jensen: ``cos 4x = 2 cos^2 2x - 1``),
    and every closure of :mod:`.learned` keeps to it. A spectral kinetic run whose distribution is too sharp
    for its grid, in space or in angle (Gibbs oscillations, ``Psi < 0``), breaks it where the order is high;
    its moments there are no reference for a realizable closure.

    Parameters
    ----------
    bundle : FieldBundle
        Kinetic run with ``S_cos4``, ``S_sin4``.
    t_start : int
        First frame used.
    tol : float
        Slack below the bound before a point counts.

    Returns
    -------
    dict
        ``unrealizable``: fraction of points (all frames) with ``m4 < 2 s^2 - 1 - tol``; ``deficit``: their mean
        ``2 s^2 - 1 - m4``; ``high_order``: fraction with ``s > 0.9``.
    """
    from .train import closure_samples

    smp = closure_samples([bundle], t_start=t_start, max_samples=np.iinfo(np.int64).max)
    s, m4 = smp.s.numpy(), smp.m4.numpy()
    gap = 2 * s * s - 1 - m4
    bad = gap > tol
    return {"unrealizable": float(bad.mean()), "deficit": float(gap[bad].mean()) if bad.any() else 0.0,
            "high_order": float((s > 0.9).mean())}


__all__ = ["TARGETS", "ensemble_check", "ensemble_statistics", "realizability"]
