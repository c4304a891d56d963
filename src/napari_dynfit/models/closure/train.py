"""Training, evaluation and parameter estimation for moment closures.

* :func:`closure_samples` / :func:`fit_a_priori`: regression of the eigenframe fourth harmonic ``m4(s)`` on
  kinetic snapshots (needs ``S``, i.e. kinetic data);
* :func:`fit_a_posteriori`: unrolled time stepping of the differentiable moment model against moment
  trajectories (``c`` and ``D`` only, so The Well's files can train it) - the stability-enforcing step;
* :func:`a_priori_error`, :func:`flow_statistics`, :func:`compare_statistics`: the paper's checks;
* :func:`estimate_parameters`: ``alpha`` (and ``zeta``) of a moment model fitted to moment data.

All loops report progress through :func:`napari_dynfit._progress.report` and can be cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ... import closure_defaults as _D
from ..._progress import report
from ...errors import InputError
from .kinetic import SuspensionParams
from .moment_model import MomentBlowUp, MomentSolver, _TensorParams, moments_from_state, state_from_moments
from .moments import bingham_closure, fourth_moment, harmonics, order_parameter


def suspension_params(bundle, **override) -> SuspensionParams:
    """Suspension parameters stored with a bundle (our kinetic runs or a Well file), with overrides."""
    meta = dict(bundle.attrs.get("kinetic") or {})
    well = bundle.attrs.get("well") or {}
    for src in (bundle.attrs.get("scalars"), well.get("scalars"), well.get("simulation_parameters")):
        for k, v in (src or {}).items():
            if np.ndim(v) == 0:
                meta.setdefault(k, v)
    names = {f for f in SuspensionParams.__dataclass_fields__}
    vals = {k: float(v) for k, v in meta.items() if k in names}
    if "L" in meta and "length" not in vals:
        vals["length"] = float(meta["L"])
    length = float(bundle.coords["x"][1] - bundle.coords["x"][0]) * len(bundle.coords["x"])
    vals.setdefault("length", length)
    vals.update({k: v for k, v in override.items() if v is not None})
    return SuspensionParams(**vals)


#: default time step of the moment model (time units) on grids of spacing ``MOMENT_DT_SPACING`` or coarser: the
#: Bingham-closed model is stable at it on our 32^2 kinetic runs (it blew up at 0.125); frames further apart are
#: split into ceil(dt_frame / dt) steps
MOMENT_DT = 0.05
#: grid spacing (length units; 10 / 32) at which ``MOMENT_DT`` was measured stable. On finer grids the step
#: shrinks in proportion (advective limit, ``dt ~ spacing``): on 64^2 data at ``alpha = -4.5`` and ``-6`` both
#: closures blew up at 0.05 and ran at 0.025 (docs/closures.md, *Resolved reference*)
MOMENT_DT_SPACING = 10.0 / 32


def substeps(dt_frame: float, steps_per_frame: int | None = None, *, spacing: float | None = None) -> int:
    """Moment-model steps per data frame: as given, else ``ceil(dt_frame / dt)`` with ``dt = MOMENT_DT``
    scaled down by ``spacing / MOMENT_DT_SPACING`` on grids finer than that (``spacing``: the grid spacing,
    length units; None: ``MOMENT_DT``)."""
    if steps_per_frame is not None:
        if steps_per_frame < 1:
            raise InputError(f"steps_per_frame must be >= 1, got {steps_per_frame}")
        return int(steps_per_frame)
    dt = MOMENT_DT * (min(1.0, spacing / MOMENT_DT_SPACING) if spacing else 1.0)
    return max(1, int(np.ceil(dt_frame / dt - 1e-9)))


def grid_substeps(dt_frame: float, steps_per_frame: int | None, params, n: int) -> int:
    """:func:`substeps` of the moment model on an ``n`` x ``n`` grid over the periodic box of ``params``
    (:class:`~.kinetic.SuspensionParams`; grid spacing ``params.length / n``): what every rollout uses.

    Parameters
    ----------
    dt_frame : float
        Time between data frames (time units).
    steps_per_frame : int or None
        Given steps per frame (kept), or None for the default of the grid.
    params : SuspensionParams
        The suspension; its ``length`` is the box side (length units).
    n : int
        Grid points per side.

    Returns
    -------
    int
        Moment-model steps per frame, >= 1.
    """
    return substeps(dt_frame, steps_per_frame, spacing=params.length / n)


def _moment_tensors(bundle, *, t_start: int = 0, device="cpu"):
    missing = [f for f in ("concentration", "D") if f not in bundle.fields]
    if missing:
        raise InputError(f"the fields need {missing} (concentration and the orientation tensor D) to train a closure")
    if bundle.ndim != 2:
        raise InputError(f"closures are 2D; these fields have {bundle.ndim} spatial axes")
    c = torch.as_tensor(bundle["concentration"][t_start:], dtype=torch.float64, device=device)
    D = torch.as_tensor(bundle["D"][t_start:], dtype=torch.float64, device=device)
    return c, D


@dataclass
class ClosureSamples:
    """Eigenframe samples ``(s, m4)`` of kinetic snapshots, with the suspension parameters of each."""

    s: torch.Tensor
    m4: torch.Tensor
    alpha: torch.Tensor
    zeta: torch.Tensor


def closure_samples(bundles, *, t_start: int = 0, max_samples: int = 20_000, seed: int = 0) -> ClosureSamples:
    """Collect ``(s, m4)`` pairs from kinetic bundles (fields ``S_cos4``, ``S_sin4`` needed)."""
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("s", "m4", "alpha", "zeta")}
    for b in bundles:
        if "S_cos4" not in b.fields:
            raise InputError("a-priori training needs the fourth moment (S_cos4, S_sin4): kinetic runs from "
                             "'dynfit closure simulate'; moment-only data (The Well) trains a posteriori")
        c, D = _moment_tensors(b, t_start=t_start)
        C2, S2 = harmonics(c, D)
        phi2 = torch.atan2(S2, C2)
        q4c = torch.as_tensor(b["S_cos4"][t_start:])
        q4s = torch.as_tensor(b["S_sin4"][t_start:])
        m4 = (q4c * torch.cos(2 * phi2) + q4s * torch.sin(2 * phi2)) / c
        s = order_parameter(c, D)
        p = suspension_params(b)
        out["s"].append(s.ravel())
        out["m4"].append(m4.ravel())
        out["alpha"].append(torch.full_like(s.ravel(), p.alpha))
        out["zeta"].append(torch.full_like(s.ravel(), p.zeta))
    cat = {k: torch.cat(v) for k, v in out.items()}
    n = len(cat["s"])
    if n > max_samples:
        idx = torch.as_tensor(rng.choice(n, max_samples, replace=False))
        cat = {k: v[idx] for k, v in cat.items()}
    return ClosureSamples(**cat)


def fit_a_priori(closure, samples: ClosureSamples, *, epochs: int = _D.A_PRIORI_EPOCHS, lr: float = _D.A_PRIORI_LR,
                 seed: int = 0, optimizer=None) -> list:
    """Least-squares fit of ``closure.m4`` to the samples (Adam, full batch). Returns the loss history.

    ``optimizer``: continue with this one (e.g. ``torch.optim.Adam(closure.parameters(), lr=lr)`` made once by the
    caller), so that training in chunks (the widget: a loss plot and Stop between chunks) equals one call; default
    a new Adam at ``lr``.
    """
    torch.manual_seed(seed)
    opt = optimizer if optimizer is not None else torch.optim.Adam(closure.parameters(), lr=lr)
    params = _TensorParams(None, samples.alpha, samples.zeta)  # per-sample alpha / zeta
    hist = []
    for ep in range(epochs):
        opt.zero_grad()
        loss = torch.mean((closure.m4(samples.s, params) - samples.m4) ** 2)
        loss.backward()
        opt.step()
        hist.append(float(loss.detach()))
        report(ep + 1, epochs, "closure a priori")
    return hist


def a_priori_error(closure, bundle, *, t_start: int = 0) -> float:
    """Relative Frobenius error of ``S`` over all snapshots: ``|S_closure - S| / |S|`` (sums over the grid)."""
    c, D = _moment_tensors(bundle, t_start=t_start)
    p = suspension_params(bundle)
    with torch.no_grad():
        q4c, q4s = closure(c, D, p)
        S_hat = fourth_moment(c, D, q4c, q4s)
        S = fourth_moment(c, D, torch.as_tensor(bundle["S_cos4"][t_start:]),
                          torch.as_tensor(bundle["S_sin4"][t_start:]))
    return float(torch.linalg.vector_norm(S_hat - S) / torch.linalg.vector_norm(S))


def a_priori_harmonic_error(closure, bundle, *, t_start: int = 0) -> float:
    """Relative error of the closed part alone, ``|q4_closure - q4| / |q4|`` (the isotropic part of ``S`` is exact)."""
    c, D = _moment_tensors(bundle, t_start=t_start)
    p = suspension_params(bundle)
    with torch.no_grad():
        q4c, q4s = closure(c, D, p)
    tc, ts = torch.as_tensor(bundle["S_cos4"][t_start:]), torch.as_tensor(bundle["S_sin4"][t_start:])
    return float(torch.sqrt(((q4c - tc) ** 2 + (q4s - ts) ** 2).sum() / (tc ** 2 + ts ** 2).sum()))


def closure_error_map(closure, bundle, frame: int) -> np.ndarray:
    """Per-pixel error of the closed part at one frame, ``|q4_closure - q4| / c`` (``(y, x)``, dimensionless)."""
    c, D = _moment_tensors(bundle)
    p = suspension_params(bundle)
    with torch.no_grad():
        q4c, q4s = closure(c[frame], D[frame], p)
    tc = torch.as_tensor(bundle["S_cos4"][frame])
    ts = torch.as_tensor(bundle["S_sin4"][frame])
    return (torch.sqrt((q4c - tc) ** 2 + (q4s - ts) ** 2) / c[frame]).numpy()


def rollout_moments(solver, state0: torch.Tensor, frames: int, steps_per_frame: int):
    """``(c, D, u)`` tensors of a moment-model run from ``state0`` (``(..., 3, n, n)``, leading batch axes
    allowed) saved every ``steps_per_frame`` steps: ``frames + 1`` frames on the leading axis, the first
    ``state0``'s. No gradients."""
    with torch.no_grad():
        traj = torch.cat([state0[None], solver.rollout(state0, frames * steps_per_frame, every=steps_per_frame)])
        cc, DD = moments_from_state(traj)
        u, _, _ = solver.flow(traj)
    return cc, DD, u


def simulate_moments(bundle, closure, *, t_start: int = 0, frames: int = 20, steps_per_frame: int | None = None):
    """Run the moment model with ``closure`` from frame ``t_start`` of ``bundle`` for ``frames`` frames.

    Returns
    -------
    FieldBundle
        ``concentration``, ``velocity``, ``D`` on the data's grid and frame times (``frames + 1`` frames,
        the first being the data's), periodic.
    """
    from ...fields import FieldBundle

    c, D = _moment_tensors(bundle, t_start=t_start)
    p = suspension_params(bundle)
    dt_frame = float(bundle.coords["t"][1] - bundle.coords["t"][0])
    steps_per_frame = grid_substeps(dt_frame, steps_per_frame, p, c.shape[-1])
    solver = MomentSolver(p, closure, n=c.shape[-1], dt=dt_frame / steps_per_frame)
    cc, DD, u = rollout_moments(solver, state_from_moments(c[0], D[0]), frames, steps_per_frame)
    t0 = float(bundle.coords["t"][t_start])
    return FieldBundle({"concentration": cc.numpy(), "velocity": u.numpy(), "D": DD.numpy()},
                       {"t": t0 + dt_frame * np.arange(frames + 1), "y": bundle.coords["y"], "x": bundle.coords["x"]},
                       {"concentration": "scalar", "velocity": "vector", "D": "tensor"}, (True, True),
                       {"moment_model": {"t_start": t_start, "steps_per_frame": steps_per_frame}})


# --- a posteriori ----------------------------------------------------------------------------
def _windows(bundle, unroll_frames: int, t_start: int):
    c, D = _moment_tensors(bundle, t_start=t_start)
    state = state_from_moments(c, D)  # (t, 3, n, n)
    n_t = state.shape[0]
    if n_t <= unroll_frames:
        raise InputError(f"need more than {unroll_frames} frames after t_start to unroll; got {n_t}")
    return state


def fit_a_posteriori(closure, bundles, *, unroll_frames: int = _D.UNROLL_FRAMES, steps_per_frame: int | None = None,
                     epochs: int = _D.A_POSTERIORI_EPOCHS, lr: float = _D.A_POSTERIORI_LR, batch: int = 4,
                     t_start: int = 0, seed: int = 0) -> list:
    """Train ``closure`` by unrolling the moment model ``unroll_frames`` saved frames ahead.

    Defaults (``unroll_frames``, ``epochs``) are :mod:`napari_dynfit.closure_defaults`' (the benchmark's and
    ``dynfit closure train``'s: 2 frames, 20 epochs).

    Loss: mean squared difference of the state ``(c, D_xx - D_yy, 2 D_xy)`` along the unroll, normalised by
    the data's variance. Uses only ``concentration`` and ``D`` (moment data). A window whose unroll blows
    up is skipped (and counted as a failure in the history).
    """
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(closure.parameters(), lr=lr)
    data = []
    for b in bundles:
        st = _windows(b, unroll_frames, t_start)
        p = suspension_params(b)
        dt_frame = float(b.coords["t"][1] - b.coords["t"][0])
        spf = grid_substeps(dt_frame, steps_per_frame, p, st.shape[-1])
        solver = MomentSolver(p, closure, n=st.shape[-1], dt=dt_frame / spf)
        data.append((st, solver, spf))
    scale = torch.stack([st.var(dim=(0, 2, 3)) for st, _, _ in data]).mean(0).clamp(min=1e-12)
    hist = []
    for ep in range(epochs):
        opt.zero_grad()
        total, used = 0.0, 0
        for _ in range(batch):
            st, solver, spf = data[rng.integers(len(data))]
            i0 = int(rng.integers(0, st.shape[0] - unroll_frames))
            try:
                traj = solver.rollout(st[i0], unroll_frames * spf, every=spf)
            except FloatingPointError:
                continue
            err = ((traj - st[i0 + 1: i0 + 1 + unroll_frames]) ** 2).mean(dim=(0, 2, 3)) / scale
            loss = err.mean() / batch
            loss.backward()
            total += float(loss.detach())
            used += 1
        if used:
            opt.step()
        hist.append(total * batch / max(used, 1))
        report(ep + 1, epochs, "closure a posteriori")
    return hist


@dataclass
class ActiveLearningResult:
    """What :func:`active_learning` trained on and the held-out errors along the way."""

    trained_on: list
    errors: list  # per round: {alpha: relative S error of the closure} over the candidates
    runs: dict = field(default_factory=dict)


def active_learning(closure, simulate, candidates, *, initial, rounds: int = 2, per_round: int = 1,
                    epochs: int = 300, t_start: int = 0) -> ActiveLearningResult:
    """Cover a parameter range with one closure: train, find the worst candidate, simulate it, add it, repeat.

    Parameters
    ----------
    closure : LearnedClosure
        Trained in place (a priori); its inputs must include the varied parameter.
    simulate : callable
        ``simulate(alpha) -> FieldBundle`` (a kinetic run with ``S_cos4``, ``S_sin4``); called once per parameter.
    candidates : sequence of float
        ``alpha`` values the closure must cover.
    initial : sequence of float
        ``alpha`` values trained on first.
    rounds, per_round : int
        Acquisition rounds and parameters added per round (largest a-priori error first).
    epochs : int
        A-priori epochs per round.

    Notes
    -----
    The acquisition scores a candidate by the current closure's a-priori error on its kinetic run, so every
    candidate is simulated once (cheap next to the paper's sweeps at our grid sizes); training uses only the
    runs acquired so far.
    """
    runs: dict = {}

    def run(a):
        if a not in runs:
            runs[a] = simulate(a)
        return runs[a]

    trained = list(initial)
    errors = []
    for rnd in range(rounds + 1):
        fit_a_priori(closure, closure_samples([run(a) for a in trained], t_start=t_start), epochs=epochs)
        err = {a: a_priori_error(closure, run(a), t_start=t_start) for a in candidates}
        errors.append(err)
        if rnd == rounds:
            break
        new = [a for a in sorted(err, key=err.get, reverse=True) if a not in trained][:per_round]
        if not new:
            break
        trained += new
    return ActiveLearningResult(trained, errors, runs)


# --- statistics ------------------------------------------------------------------------------
def shell_spectrum(u: np.ndarray) -> np.ndarray:
    """Kinetic energy per wavenumber shell of each frame of ``u (..., n, n, 2)``: shape ``(..., n // 2 + 1)``.

    Shell ``j`` sums ``0.5 |u_hat(k)|^2`` (``u_hat`` the FFT over the grid divided by ``n^2``) over the
    wavevectors with ``rint(|k|) = j`` (``k`` in grid units).
    """
    u = np.asarray(u)
    n = u.shape[-2]
    e = 0.5 * (np.abs(np.fft.fft2(u, axes=(-3, -2)) / n ** 2) ** 2).sum(-1)  # (..., n, n)
    k = np.fft.fftfreq(n, d=1.0 / n)
    shells = np.rint(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).astype(int).ravel()
    onehot = np.zeros((n * n, n // 2 + 1))
    keep = shells <= n // 2
    onehot[np.flatnonzero(keep), shells[keep]] = 1.0
    return (e.reshape(*e.shape[:-2], n * n) @ onehot)


def velocity_spectrum(u: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Shell-averaged kinetic energy spectrum ``E(k)`` of ``u (t, n, n, 2)``, averaged over time
    (:func:`shell_spectrum` of each frame); ``k`` in rad per length unit of the box ``length``."""
    spec = shell_spectrum(u).mean(0)
    return np.arange(len(spec)) * 2 * np.pi / length, spec


def flow_statistics(c: np.ndarray, D: np.ndarray, u: np.ndarray, length: float) -> dict:
    """Mean speed ``<|u|>``, mean scalar order parameter ``<s>`` and the velocity spectrum over the frames."""
    s = order_parameter(torch.as_tensor(c), torch.as_tensor(D)).numpy()
    k, spec = velocity_spectrum(u, length)
    return {"mean_speed": float(np.sqrt((u ** 2).sum(-1)).mean()), "order": float(s.mean()),
            "k": k, "spectrum": spec}


def compare_statistics(ref: dict, other: dict, *, k_fraction: float = 0.5) -> dict:
    """Relative differences: mean speed, order parameter, and the worst spectrum error for ``k`` up to
    ``k_fraction`` of the largest grid wavenumber (shell 1 upwards)."""
    kmax = int(k_fraction * (len(ref["spectrum"]) - 1))
    sl = slice(1, kmax + 1)
    spec_err = np.abs(other["spectrum"][sl] - ref["spectrum"][sl]) / ref["spectrum"][sl]
    return {"mean_speed": abs(other["mean_speed"] / ref["mean_speed"] - 1),
            "order": abs(other["order"] / ref["order"] - 1),
            "spectrum_max": float(spec_err.max()), "spectrum_mean": float(spec_err.mean())}


def posterior_check(bundle, closures: dict, *, t_start: int = 0, horizon_frames: int = 20,
                    steps_per_frame: int | None = None, k_fraction: float = 0.5, discard_frames: int = 0,
                    spectra: bool = False) -> dict:
    """A-posteriori check: run the moment model with each closure from frame ``t_start`` for ``horizon_frames``
    frames and compare mean speed, order parameter and velocity spectrum with the data's over the same frames.

    Parameters
    ----------
    discard_frames : int
        Frames after ``t_start`` left out of the statistics (of the data and of the runs alike): the moment
        model's own transient from the data's state, so that long runs compare their stationary parts.
    spectra : bool
        Also return the wavenumbers ``k`` (1 / length unit) and the spectra (lists).

    Returns
    -------
    dict
        Per closure name: :func:`compare_statistics` plus ``"blew_up"``; and ``"data"`` statistics with
        ``"halves"`` (two frames or more): the data's own relative change of mean speed and order parameter
        between the first and the second half of the compared frames (how far one window's statistics are
        from stationary).
    """
    c, D = _moment_tensors(bundle, t_start=t_start)
    if c.shape[0] <= horizon_frames:
        raise InputError(f"need more than {horizon_frames} frames after t_start for the a-posteriori check")
    if not 0 <= discard_frames < horizon_frames:
        raise InputError(f"discard_frames must be in [0, {horizon_frames}), got {discard_frames}")
    p = suspension_params(bundle)
    sl = slice(1 + discard_frames, 1 + horizon_frames)
    u = np.asarray(bundle["velocity"][t_start:t_start + 1 + horizon_frames])
    ref = flow_statistics(c[sl].numpy(), D[sl].numpy(), u[sl], p.length)
    out = {"data": {k: ref[k] for k in ("mean_speed", "order")}}
    half = (horizon_frames - discard_frames) // 2
    if half:
        h1, h2 = (flow_statistics(c[sl][part].numpy(), D[sl][part].numpy(), u[sl][part], p.length)
                  for part in (slice(None, half), slice(half, None)))
        out["data"]["halves"] = {k: abs(h2[k] / h1[k] - 1) for k in ("mean_speed", "order")}
    if spectra:
        out["data"].update(k=ref["k"].tolist(), spectrum=ref["spectrum"].tolist())
    for name, cl in closures.items():
        try:
            run = simulate_moments(bundle, cl, t_start=t_start, frames=horizon_frames, steps_per_frame=steps_per_frame)
            st = flow_statistics(run["concentration"][sl], run["D"][sl], run["velocity"][sl], p.length)
        except FloatingPointError:
            out[name] = {"blew_up": True}
            continue
        out[name] = {"blew_up": False, "mean_speed_value": st["mean_speed"], "order_value": st["order"],
                     **compare_statistics(ref, st, k_fraction=k_fraction)}
        if spectra:
            out[name]["spectrum"] = st["spectrum"].tolist()
    return out


# --- parameter estimation -------------------------------------------------------------------
#: loss given to a trial value of the parameter fit at which the moment model blows up, as a multiple of the
#: largest loss met so far (finite, so the strong-Wolfe line search interpolates back instead of failing)
BLOWN_LOSS = 1e3


@dataclass
class ParameterEstimate:
    """Fitted suspension parameters and the fit's history."""

    values: dict
    loss: float
    history: list = field(default_factory=list)

    def summary(self) -> str:
        vals = ", ".join(f"{k} = {v:.4g}" for k, v in self.values.items())
        return f"estimated {vals} (unroll loss {self.loss:.3g})"


def estimate_parameters(bundle, *, closure=None, fit=("alpha",), initial: dict | None = None,
                        unroll_frames: int = _D.UNROLL_FRAMES, steps_per_frame: int | None = None,
                        epochs: int = _D.ESTIMATE_EPOCHS, windows: int = 8,
                        t_start: int = 0) -> ParameterEstimate:
    """Fit ``alpha`` (and ``zeta``) of the moment model to moment data by unrolled time stepping.

    Parameters
    ----------
    bundle : FieldBundle
        ``concentration`` and ``D`` over time (kinetic runs or a Well file).
    closure : callable, optional
        Default: Bingham.
    fit : tuple of str
        Parameters to fit (``"alpha"``, ``"zeta"``); the others come from the bundle's metadata.
    initial : dict, optional
        Starting values (default ``alpha = -1``, ``zeta`` from the metadata).
    unroll_frames, steps_per_frame : int
        Frames unrolled per window and solver steps per frame.
    epochs : int
        Most loss evaluations of the L-BFGS fit (strong Wolfe line search; the loss is deterministic: a
        smooth function of one or two parameters).
    windows : int
        Unroll windows, evenly spaced over the frames.
    t_start : int
        First frame used.
    """
    bad = set(fit) - {"alpha", "zeta"}
    if bad or not fit:
        raise InputError(f"fit must name 'alpha' and/or 'zeta', got {list(fit)}")
    closure = closure or bingham_closure
    st = _windows(bundle, unroll_frames, t_start)
    base = suspension_params(bundle)
    init = {"alpha": -1.0, "zeta": base.zeta} | dict(initial or {})
    theta = {k: torch.tensor(float(init[k]), dtype=torch.float64, requires_grad=True) for k in fit}
    dt_frame = float(bundle.coords["t"][1] - bundle.coords["t"][0])
    steps_per_frame = grid_substeps(dt_frame, steps_per_frame, base, st.shape[-1])
    solver = MomentSolver(base, closure, n=st.shape[-1], dt=dt_frame / steps_per_frame,
                          alpha=theta.get("alpha"), zeta=theta.get("zeta"))
    if hasattr(closure, "parameters"):
        for w in closure.parameters():
            w.requires_grad_(False)
    scale = st.var(dim=(0, 2, 3)).clamp(min=1e-12)
    starts = np.unique(np.linspace(0, st.shape[0] - unroll_frames - 1, min(windows, st.shape[0] - unroll_frames))
                       .round().astype(int))
    opt = torch.optim.LBFGS(list(theta.values()), lr=1.0, max_iter=epochs, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-12)
    hist, tried = [], []

    def loss_fn():
        opt.zero_grad()
        tried.append({k: float(v.detach()) for k, v in theta.items()})
        loss = 0.0
        try:
            for i0 in starts:
                traj = solver.rollout(st[i0], unroll_frames * steps_per_frame, every=steps_per_frame)
                loss = loss + (((traj - st[i0 + 1: i0 + 1 + unroll_frames]) ** 2).mean(dim=(0, 2, 3)) / scale).mean()
        except MomentBlowUp:
            # a trial value of the line search (which can step far: L-BFGS with a strong-Wolfe search) for which
            # the moment model blows up: a loss far above the start's and no gradient, so the search backs off
            # towards the last good value (measured: alpha = -4.5 on 64^2 data, docs/closures.md); at the start
            # value there is nothing to back off to: the one-line error stands
            if not hist:
                raise
            hist.append(float("inf"))
            report(min(len(hist), epochs), epochs, "parameter estimation")
            return torch.tensor(BLOWN_LOSS * max(h for h in hist if np.isfinite(h)), dtype=torch.float64)
        loss = loss / len(starts)
        loss.backward()
        hist.append(float(loss.detach()))
        report(min(len(hist), epochs), epochs, "parameter estimation")
        return loss

    opt.step(loss_fn)
    finite = [h for h in hist if np.isfinite(h)]
    last = hist[-1] if np.isfinite(hist[-1]) else min(finite)
    values = {k: float(v.detach()) for k, v in theta.items()}
    if not all(np.isfinite(v) for v in values.values()):
        raise InputError(f"parameter estimation failed: the fit reached non-finite values {values} (tried "
                         f"{len(tried)} values; the moment model blew up at {hist.count(float('inf'))})")
    return ParameterEstimate(values, last, hist)


__all__ = ["ActiveLearningResult", "ClosureSamples", "active_learning", "ParameterEstimate", "a_priori_error", "a_priori_harmonic_error", "closure_samples",
           "closure_error_map", "compare_statistics", "estimate_parameters", "fit_a_posteriori", "posterior_check", "fit_a_priori", "flow_statistics",
           "simulate_moments", "suspension_params", "velocity_spectrum"]
