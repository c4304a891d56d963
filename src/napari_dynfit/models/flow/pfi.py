"""Probability flow inference (PFI) from snapshots, balanced or with growth (unbalanced PFI).

Model: each individual follows ``dX = f(X) dt + sqrt(2 D) dW`` and, with growth, divides/dies at a net rate
``g(X)``. The population density ``p_t`` then obeys ``dp/dt = -div(p f) + div(D grad p) + g p``, which is
transport of ``p`` by the *probability-flow velocity*

    ``u_t(x) = f(x) - D grad log p_t(x)``

with masses growing along the characteristics as ``m' = g(x) m`` (Maddu et al. arXiv:2410.07501,
arXiv:2310.02366; unbalanced: arXiv:2505.13197). Given the score ``grad log p_t`` (:mod:`.score`), ``f`` (and ``g``)
are found by integrating the characteristics from each snapshot to the next with a few Euler steps and matching
the result to the next snapshot with a Sinkhorn divergence (balanced; unbalanced when masses change), plus the
regulariser ``lambda * integral (|u|^2 + alpha g^2) dm dt`` (kinetic energy and growth energy).

Drift models: ``"linear"`` (``f(x) = A x + b``, the OU family) or ``"mlp"``. ``D`` is given (scalar or matrix)
or fitted (isotropic) along with the drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..._io import atomic_path
from ..._progress import progress_iter
from ...errors import InputError
from ._torch import as_tensor, mlp, resolve_device, seeded_generator
from .gaussian import drift_uncertainty, gaussian_mle_drift, moment_fit
from .io import Snapshots
from .score import ScoreModel, fit_score
from .select import compare_heldout, split_snapshots
from .sinkhorn import sinkhorn_loss

__all__ = ["FlowModel", "LinearDrift", "MLPDrift", "GrowthNet", "fit_flow", "infer_flow", "load_flow"]


class LinearDrift(nn.Module):
    """``f(x) = A x + b`` with ``A`` ``(d, d)`` and ``b`` ``(d,)`` (start: zero); ``offset=False`` keeps ``b = 0``
    (the OU family around the origin)."""

    def __init__(self, d: int, offset: bool = True):
        super().__init__()
        self.A = nn.Parameter(torch.zeros(d, d))
        self.b = nn.Parameter(torch.zeros(d), requires_grad=offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.A.T + self.b


class _Standardised(nn.Module):
    """An MLP on standardised inputs ``(x - mean) / std`` whose output is scaled by ``out_scale``."""

    def __init__(self, d: int, n_out: int, mean, std, out_scale, width: int, depth: int):
        super().__init__()
        self.net = mlp(d, n_out, width, depth)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.register_buffer("out_scale", torch.as_tensor(out_scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std) * self.out_scale


class MLPDrift(_Standardised):
    """A neural drift ``f(x)``; outputs in units of (data std) / (snapshot time span)."""

    def __init__(self, d: int, mean, std, velocity_scale, width: int = 64, depth: int = 3):
        super().__init__(d, d, mean, std, velocity_scale, width, depth)


class GrowthNet(_Standardised):
    """A neural net growth rate ``g(x)`` (per unit time; net division minus death rate)."""

    def __init__(self, d: int, mean, std, rate_scale, width: int = 64, depth: int = 2):
        super().__init__(d, 1, mean, std, rate_scale, width, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[:, 0]


@dataclass
class FlowModel:
    """A fitted stochastic model ``dX = f(X) dt + sqrt(2 D) dW`` with optional growth ``g(X)``.

    Attributes
    ----------
    drift_net : LinearDrift or MLPDrift
    growth_net : GrowthNet or None
    diffusion : ndarray, shape (d, d)
        The diffusion matrix ``D``.
    score : ScoreModel
        ``grad log p_t`` of the population density used to build the probability flow.
    columns : tuple of str
        Coordinate names (axis order).
    times : ndarray
        Snapshot times the model was fitted to.
    history : list of float
        Training loss every 10 steps.
    selection : dict
        How :func:`fit_flow` chose the offset and between the refined drift and the Gaussian moment fit
        (empty when it made no choice); see :func:`fit_flow`.
    uncertainty : dict
        Linear drift with a given ``D``, no growth: how well the snapshots pin ``A``
        (:func:`~.gaussian.drift_uncertainty`: standard errors, expected relative error, 95 % bound, verdict
        "identifiable" / "not identifiable"); empty otherwise.
    """

    drift_net: nn.Module
    growth_net: nn.Module | None
    diffusion: np.ndarray
    score: ScoreModel
    columns: tuple
    times: np.ndarray
    history: list = field(default_factory=list)
    selection: dict = field(default_factory=dict)
    uncertainty: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``"linear"`` or ``"mlp"``."""
        return "linear" if isinstance(self.drift_net, LinearDrift) else "mlp"

    @property
    def dim(self) -> int:
        """Number of coordinates ``d``."""
        return len(self.columns)

    def _eval(self, net, x) -> np.ndarray:
        dev = next(net.parameters()).device
        with torch.no_grad():
            return net(as_tensor(np.atleast_2d(x), dev)).cpu().numpy().astype(float)

    def drift(self, x) -> np.ndarray:
        """``f(x)`` at the points ``x`` ``(n, d)``; returns ``(n, d)`` (data units per time unit)."""
        return self._eval(self.drift_net, x)

    def growth(self, x) -> np.ndarray:
        """Net growth rate ``g(x)`` ``(n,)`` (per time unit); zeros for a balanced model."""
        x = np.atleast_2d(x)
        if self.growth_net is None:
            return np.zeros(len(x))
        return self._eval(self.growth_net, x)

    def velocity(self, x, t: float) -> np.ndarray:
        """Probability-flow velocity ``u_t(x) = f(x) - D grad log p_t(x)`` ``(n, d)``."""
        dev = self.score.mean.device
        xt = as_tensor(np.atleast_2d(x), dev)
        with torch.no_grad():
            s = self.score(xt, t).cpu().numpy()
        return self.drift(x) - s @ self.diffusion.T

    @property
    def A(self) -> np.ndarray:
        """Drift matrix of a linear model."""
        return self.drift_net.A.detach().cpu().numpy().astype(float)

    @property
    def b(self) -> np.ndarray:
        """Drift offset of a linear model."""
        return self.drift_net.b.detach().cpu().numpy().astype(float)

    def sample_paths(self, x0, times, *, n_substeps: int = 20, seed: int = 0) -> np.ndarray:
        """Trajectories of the learned SDE (Euler-Maruyama) from the points ``x0`` ``(n, d)``.

        Parameters
        ----------
        x0 : array, shape (n, d)
            Starting points at ``times[0]``.
        times : sequence of float
            Times at which positions are recorded (increasing).
        n_substeps : int
            Euler-Maruyama steps between consecutive recorded times.
        seed : int
            Random seed of the noise.

        Returns
        -------
        ndarray, shape (n, len(times), d)
        """
        rng = np.random.default_rng(seed)
        x = np.array(x0, dtype=float, copy=True)
        L = np.linalg.cholesky(2.0 * self.diffusion + 1e-12 * np.eye(self.dim))
        out = [x.copy()]
        for t0, t1 in zip(times[:-1], times[1:]):
            h = (t1 - t0) / n_substeps
            for _ in range(n_substeps):
                x = x + self.drift(x) * h + np.sqrt(h) * rng.normal(size=x.shape) @ L.T
            out.append(x.copy())
        return np.stack(out, axis=1)

    def to_dict(self) -> dict:
        """JSON-ready description; linear drifts as ``{"drift": {"A": ..., "b": ...}}`` (``f(x) = A x + b``)."""
        out = {"model": "probability flow inference", "convention": "dX = f(X) dt + sqrt(2 D) dW",
               "drift_model": self.kind, "columns": list(self.columns), "times": [float(t) for t in self.times],
               "diffusion": self.diffusion.tolist(), "growth": self.growth_net is not None,
               "final_loss": float(self.history[-1]) if self.history else None}
        if self.selection:
            out["selection"] = self.selection
        if self.uncertainty:
            out["drift_uncertainty"] = self.uncertainty
        if self.kind == "linear":
            out["drift"] = {"A": self.A.tolist(), "b": self.b.tolist()}
        return out

    def save(self, out_dir) -> Path:
        """Write ``flow.json`` and ``flow.pt`` (torch weights of drift, growth and score) into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "flow.json") as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))
        state = {"drift": self.drift_net.state_dict(), "kind": self.kind, "dim": self.dim,
                 "drift_arch": _arch(self.drift_net), "growth": None, "growth_arch": None,
                 "score": self.score.state(), "diffusion": self.diffusion, "columns": list(self.columns),
                 "times": np.asarray(self.times), "selection": self.selection, "uncertainty": self.uncertainty}
        if self.growth_net is not None:
            state["growth"] = self.growth_net.state_dict()
            state["growth_arch"] = _arch(self.growth_net)
        with atomic_path(out / "flow.pt") as tmp:
            torch.save(state, tmp)
        return out

    # --- the package's result protocol (docs/api.md) -----------------------------------------------------------
    @classmethod
    def load(cls, path) -> FlowModel:
        """Read a model written by :meth:`save` (:func:`load_flow`)."""
        return load_flow(path)

    def predict(self, x) -> np.ndarray:
        """The drift ``f(x)`` at points ``x`` of shape ``(n, d)`` (units of the coordinates per time)."""
        return self.drift(x)

    def simulate(self, x0, times, *, n_substeps: int = 20, seed: int = 0) -> np.ndarray:
        """Sample paths of the fitted SDE from ``x0`` at ``times`` (:meth:`sample_paths`)."""
        return self.sample_paths(x0, times, n_substeps=n_substeps, seed=seed)

    def summary(self) -> str:
        """Text for people: the drift (``A``, ``b`` when linear), ``D``, growth, how the fit chose."""
        lines = [f"probability flow inference, {self.kind} drift in ({', '.join(self.columns)})"
                 + (", with growth" if self.growth_net is not None else "")]
        if self.kind == "linear":
            lines.append(f"  A = {np.array2string(self.A, precision=4)}")
            lines.append(f"  b = {np.array2string(self.b, precision=4)}")
        lines.append(f"  D = {np.array2string(np.asarray(self.diffusion), precision=4)}")
        if self.uncertainty.get("verdict"):
            lines.append(f"  drift: {self.uncertainty['verdict']}")
        for k, v in self.selection.items():
            if isinstance(v, dict) and v.get("reason"):
                lines.append(f"  {k}: {v['reason']}")
        return "\n".join(lines)

    def plot(self, ax=None, *, dims=(0, 1), n: int = 15):
        """Arrows of the drift in the plane of coordinates ``dims`` (the others at the score's mean), over the
        mean +- 2 standard deviations of the snapshots; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        d = self.dim  # the score standardises globally (d,) or per snapshot (K, d): average over snapshots
        m = self.score.mean.detach().cpu().numpy()
        s = np.broadcast_to(self.score.std.detach().cpu().numpy(), m.shape)
        mean, std = m.reshape(-1, d).mean(0).astype(float), s.reshape(-1, d).mean(0).astype(float)
        i, j = dims[0], dims[1] if self.dim > 1 else dims[0]
        gi = np.linspace(mean[i] - 2 * std[i], mean[i] + 2 * std[i], n)
        gj = np.linspace(mean[j] - 2 * std[j], mean[j] + 2 * std[j], n)
        G = np.tile(mean, (n * n, 1))
        G[:, i], G[:, j] = np.repeat(gi, n), np.tile(gj, n)
        f = self.drift(G)
        ax.quiver(G[:, i], G[:, j], f[:, i], f[:, j], angles="xy")
        ax.set_xlabel(self.columns[i])
        ax.set_ylabel(self.columns[j])
        ax.set_title("drift f(x)")
        return ax


def _arch(net: nn.Module):
    if isinstance(net, LinearDrift):
        return None
    lin = [m for m in net.net if isinstance(m, nn.Linear)]
    return lin[0].out_features, len(lin) - 1


def load_flow(path) -> FlowModel:
    """Load a model written by :meth:`FlowModel.save` (the folder or its ``flow.pt``)."""
    p = Path(path)
    p = p / "flow.pt" if p.is_dir() else p
    if not p.exists():
        raise InputError(f"'{p}' does not exist: give the folder written by 'dynfit infer-flow'")
    state = torch.load(p, map_location="cpu", weights_only=False)
    d = state["dim"]
    if state["kind"] == "linear":
        drift = LinearDrift(d)
    else:
        width, depth = state["drift_arch"]
        drift = MLPDrift(d, np.zeros(d), np.ones(d), np.ones(d), width, depth)
    drift.load_state_dict(state["drift"])
    growth = None
    if state["growth"] is not None:
        width, depth = state["growth_arch"]
        growth = GrowthNet(d, np.zeros(d), np.ones(d), 1.0, width, depth)
        growth.load_state_dict(state["growth"])
    return FlowModel(drift_net=drift, growth_net=growth, diffusion=np.asarray(state["diffusion"]),
                     score=ScoreModel.from_state(state["score"]), columns=tuple(state["columns"]),
                     times=np.asarray(state["times"]), selection=state.get("selection") or {},
                     uncertainty=state.get("uncertainty") or {})


def _diffusion_matrix(diffusion, d: int) -> np.ndarray:
    D = np.asarray(diffusion, dtype=float)
    if D.ndim == 0:
        D = D * np.eye(d)
    if D.shape != (d, d) or not np.allclose(D, D.T) or np.any(np.linalg.eigvalsh(D) < -1e-12):
        raise InputError(f"diffusion must be a non-negative scalar or a symmetric positive semi-definite "
                         f"{d}x{d} matrix; got shape {D.shape}")
    return D


def _linear_start(init, snapshots: Snapshots, diffusion, offset: bool):
    """``(A, b)`` a linear drift starts from (``None``: zero), from ``fit_flow``'s ``init``."""
    d = snapshots.dim
    if isinstance(init, str):
        if init == "zero" or diffusion is None:
            return None
        return gaussian_mle_drift(snapshots, _diffusion_matrix(diffusion, d), offset=offset)
    A0, b0 = (np.asarray(v, dtype=float) for v in init)
    if A0.shape != (d, d) or b0.shape != (d,):
        raise InputError(f"init (A, b) must have shapes ({d}, {d}) and ({d},); got {A0.shape} and {b0.shape}")
    return A0, b0


#: Score-matching settings of the benchmarks (``fit_score``'s own defaults are larger and ~5x slower).
SCORE_DEFAULTS = {"steps": 2000, "width": 64, "batch_size": 256}
#: Flow-fitting steps and Sinkhorn batch size by drift model: the benchmarks' settings (2D OU, ``dynfit bench pfi
#: --case ou2``: 150 steps of 256 points; bistable with growth: 400 steps of 500 points). A tensorized Sinkhorn
#: divergence costs ~n^2: 256-point batches make a linear fit ~4x faster than 500 (the refinement only has to
#: beat the moment fit it starts from, see ``holdout``).
FLOW_DEFAULTS = {"linear": {"steps": 150, "batch_size": 256}, "mlp": {"steps": 400, "batch_size": 500}}


def fit_flow(snapshots: Snapshots, diffusion=None, *, score: ScoreModel | None = None, model: str = "linear",
             growth: bool = False, offset="auto", init="moments", steps: int | None = None, lr: float | None = None,
             n_euler: int = 3, integrator: str = "heun", batch_size: int | None = None,
             blur: float = 0.05, reach: float = 5.0, kinetic_weight: float = 1e-3, growth_weight: float = 0.01,
             mass_weight: float = 10.0, width: int = 64, depth: int = 3, holdout: float = 0.25,
             intervals_per_step: int | None = 16, score_kwargs: dict | None = None, device: str = "auto", seed: int = 0, callback=None) -> FlowModel:
    """Fit the drift (and growth, and optionally an isotropic ``D``) to snapshots by probability flow inference.

    Parameters
    ----------
    snapshots : Snapshots
        ``K >= 2`` point clouds; with ``growth=True`` their ``masses`` are the population sizes to match.
    diffusion : float or array (d, d), optional
        The diffusion matrix ``D`` (``dX = f dt + sqrt(2 D) dW``). ``None`` fits an isotropic ``D = delta I``.
    score : ScoreModel, optional
        A fitted score; by default one is fitted with :func:`~.score.fit_score` (``score_kwargs``).
    model : {"linear", "mlp"}
        Drift family: ``f(x) = A x + b`` or a neural network.
    offset : {"auto", True, False}
        Linear model only: fit ``b`` (``False``: ``f(x) = A x``, an OU process centred on the origin).
        ``"auto"`` (with a given ``D`` and no growth): fit ``b`` only when the data support it, by the
        likelihood-ratio test of the Gaussian moment fits with and without ``b`` (chi-square with ``d`` degrees
        of freedom, 1 % level; an unneeded ``b`` trades off against ``A`` and can triple the drift error);
        otherwise ``"auto"`` fits ``b``.
    init : {"moments", "zero"} or (A, b)
        Linear model only. ``"moments"`` (with a given ``D``): start ``A``, ``b`` from the Gaussian
        maximum-likelihood fit of the snapshots' means and covariances (:func:`~.gaussian.gaussian_mle_drift`;
        exact for OU data, a start for others); ``"zero"``: from zero; or a given start ``(A (d, d), b (d,))``
        (e.g. that fit, computed already). From zero the fit can stall in a wrong basin when the drift rotates
        quickly (10D OU: 0.6 relative error even with the exact score, 0.07 from the moments). A drift not
        started from zero is refined with a smaller default step.
    growth : bool
        Learn a growth rate ``g(x)`` and match masses with an unbalanced Sinkhorn divergence.
    steps : int, optional
        Adam steps; default 150 for the linear drift, 400 for the MLP (the benchmarks' settings).
    lr : float, optional
        Learning rate (cosine-decayed); default 3e-3 for the MLP, for the linear model 5e-3 from the moments
        (a refinement) and 0.05 from zero.
    n_euler : int
        Integration steps of the probability flow per snapshot interval.
    integrator : {"euler", "heun"}
        Explicit Euler (first order, one evaluation per step) or Heun (second order, two evaluations): with few
        steps Euler biases fast drifts by about ``h A^2 / 2``; Heun removes that bias.
    batch_size : int, optional
        Points drawn per snapshot per step; default 256 for the linear drift, 500 for the MLP.
    blur : float
        Sinkhorn blur, as a fraction of the data's mean standard deviation.
    reach : float
        Unbalanced Sinkhorn reach (fraction of the data's mean standard deviation); only with ``growth``. It must
        exceed the distances cells travel: below them, destroying mass and creating it elsewhere is cheaper than
        moving it, and growth absorbs what the drift should explain.
    kinetic_weight, growth_weight : float
        ``lambda`` and ``alpha`` of the regulariser ``lambda * integral (|u|^2 + alpha g^2)`` (``u`` and ``g`` in
        units of data std per snapshot span).
    width, depth : int
        MLP size of the neural drift / growth.
    holdout : float
        Safeguard of a linear drift started from the moments (given ``D``, no growth): this fraction of every
        snapshot's points is held out; the score, the moment fit and the refinement use the rest, and the
        refined drift is kept only when it predicts the held-out points better than its starting point by a
        clear margin (:func:`~.select.compare_heldout`); otherwise the result is the Gaussian moment fit of
        all the points. ``model.selection`` records the choice and the figures. ``0`` turns the safeguard off
        (the refinement of all the points is returned).
    intervals_per_step : int or None
        With more snapshot intervals than this, each step integrates the flow over a random subset of this many
        intervals (a new subset every step; the loss is rescaled to the sum over all intervals), so a step costs
        the same however many snapshots there are: on the GUI sample's 400 frames of ~750 positions, all 399
        intervals made a step of the linear fit take 41 s instead of 0.84 s (one CPU core, same load;
        docs/flow.md). With at most
        this many intervals (the benchmarks have 4) every step uses all of them and draws exactly what it did
        before this option existed. ``None``: always all.
    score_kwargs : dict, optional
        Passed to :func:`~.score.fit_score` when ``score`` is not given, on top of :data:`SCORE_DEFAULTS`
        (the benchmarks' settings: 2000 steps, width 64, batches of 256).
    device : {"auto", "cpu", "cuda"}
    seed : int
    callback : callable, optional
        ``callback(step, model)`` every 10 steps (e.g. a GUI refresh); the model is the current state.

    Returns
    -------
    FlowModel
    """
    if integrator not in ("euler", "heun"):
        raise InputError(f"integrator '{integrator}' is not known: use 'euler' or 'heun'")
    if isinstance(init, str) and init not in ("moments", "zero"):
        raise InputError(f"init '{init}' is not known: use 'moments', 'zero' or an (A, b) pair")
    if model not in ("linear", "mlp"):
        raise InputError(f"model '{model}' is not known: use 'linear' or 'mlp'")
    if offset not in ("auto", True, False):
        raise InputError(f"offset '{offset}' is not known: use 'auto', True or False")
    if not 0 <= holdout < 1:
        raise InputError(f"holdout must be a fraction in [0, 1), got {holdout}")
    if intervals_per_step is not None and int(intervals_per_step) < 1:
        raise InputError(f"intervals_per_step must be at least 1 (or None for all), got {intervals_per_step}")
    if len(snapshots.times) < 2:
        raise InputError("flow inference needs at least two snapshots")
    steps = FLOW_DEFAULTS[model]["steps"] if steps is None else int(steps)
    batch_size = FLOW_DEFAULTS[model]["batch_size"] if batch_size is None else int(batch_size)
    score_kwargs = {**SCORE_DEFAULTS, **(score_kwargs or {})}
    kw = dict(score=score, model=model, growth=growth, init=init, steps=steps, lr=lr, n_euler=n_euler,
              integrator=integrator, batch_size=batch_size, blur=blur, reach=reach, kinetic_weight=kinetic_weight,
              growth_weight=growth_weight, mass_weight=mass_weight, width=width, depth=depth,
              intervals_per_step=intervals_per_step, score_kwargs=score_kwargs, device=device, seed=seed, callback=callback)
    gaussian = model == "linear" and diffusion is not None and not growth  # the moment fit describes the data
    selection: dict = {}
    full_fit = None  # the Gaussian moment fit of all the points
    if offset == "auto":
        offset = True
        if gaussian:
            offset, selection["offset"], full_fit = _offset_test(snapshots, _diffusion_matrix(diffusion,
                                                                                              snapshots.dim))
    if not (gaussian and holdout > 0 and isinstance(init, str) and init == "moments"):
        result = _fit_flow_core(snapshots, diffusion, offset=offset, **kw)
        result.selection = selection
        if gaussian:
            result.uncertainty = _uncertainty(snapshots, diffusion, full_fit, offset)
        return result
    D = _diffusion_matrix(diffusion, snapshots.dim)
    full_fit = full_fit or moment_fit(snapshots, D, offset=offset)
    fit_part, held = split_snapshots(snapshots, holdout, seed)
    start = gaussian_mle_drift(fit_part, D, offset=offset)
    result = _fit_flow_core(fit_part, diffusion, offset=offset, **dict(kw, init=start))
    test = compare_heldout((result.A, result.b), start, D, held, seed=seed)
    kept = "refined" if test["better"] else "moments"
    selection["refinement"] = {
        "kept": kept, "heldout_fraction": holdout, "criterion": "held-out negative log predictive density",
        **{k: test[k] for k in ("difference", "sd", "z")}, "refined_A": result.A.tolist(),
        "refined_b": result.b.tolist(),
        "reason": ("the refined drift predicts the held-out points better than the moment fit (z = "
                   f"{test['z']:.2f})" if kept == "refined" else
                   f"the refinement does not predict the held-out points clearly better (z = {test['z']:.2f}, "
                   "needs < -2.33): kept the Gaussian moment fit of all points")}
    if kept == "moments":
        with torch.no_grad():
            result.drift_net.A.copy_(torch.as_tensor(full_fit.A))
            result.drift_net.b.copy_(torch.as_tensor(full_fit.b))
    result.selection = selection
    result.uncertainty = _uncertainty(snapshots, D, full_fit, offset)
    return result


def _uncertainty(snapshots: Snapshots, diffusion, fit, offset: bool) -> dict:
    """:func:`~.gaussian.drift_uncertainty` of the moment fit of all the points (``fit``; computed if ``None``)."""
    D = _diffusion_matrix(diffusion, snapshots.dim)
    return drift_uncertainty(snapshots, D, fit=fit if fit is not None else moment_fit(snapshots, D, offset=offset))


def _offset_test(snapshots: Snapshots, D: np.ndarray, level: float = 0.01):
    """Likelihood-ratio test of an offset ``b`` on the Gaussian moment fits; returns ``(offset, record, fit)``
    with the chosen :class:`~.gaussian.MomentFit`."""
    from scipy.stats import chi2

    fit0 = moment_fit(snapshots, D, offset=False)
    fit1 = moment_fit(snapshots, D, offset=True)
    n = sum(len(x) for x in snapshots.samples)
    stat = max(n * (fit0.loss - fit1.loss), 0.0)
    p = float(chi2.sf(stat, snapshots.dim))
    fitted = p < level
    record = {"fitted": bool(fitted), "test": "likelihood ratio (Gaussian moment fits)", "statistic": float(stat),
              "p_value": p, "b_if_fitted": fit1.b.tolist(),
              "reason": (f"the data support an offset (p = {p:.2g} < {level})" if fitted else
                         f"no offset: the data do not support one (p = {p:.2g} >= {level})")}
    return fitted, record, (fit1 if fitted else fit0)


def _fit_flow_core(snapshots: Snapshots, diffusion, *, score, model, growth, offset, init, steps, lr, n_euler,
                   integrator, batch_size, blur, reach, kinetic_weight, growth_weight, mass_weight, width, depth,
                   score_kwargs, device, seed, callback, intervals_per_step=None) -> FlowModel:
    """The probability-flow fit itself (:func:`fit_flow` without the offset test and the held-out safeguard)."""
    dev = resolve_device(device)
    d = snapshots.dim
    if score is None:
        score = fit_score(snapshots, device=str(dev), seed=seed, **score_kwargs)
    score.to(dev)
    torch.manual_seed(seed)
    gen = seeded_generator(seed + 1)
    allx = np.concatenate(snapshots.samples)
    mean, std = allx.mean(axis=0), allx.std(axis=0) + 1e-12
    length = float(np.mean(std))
    span = float(snapshots.times[-1] - snapshots.times[0])
    fit_d = diffusion is None
    start = _linear_start(init, snapshots, diffusion, offset) if model == "linear" else None
    if model == "linear":
        drift_net: nn.Module = LinearDrift(d, offset)
        if start is not None:
            with torch.no_grad():
                drift_net.A.copy_(torch.as_tensor(start[0]))
                drift_net.b.copy_(torch.as_tensor(start[1]))
    else:
        drift_net = MLPDrift(d, mean, std, std / span, width, depth)
    drift_net.to(dev)
    growth_net = GrowthNet(d, mean, std, 1.0 / span, width, max(depth - 1, 1)).to(dev) if growth else None
    drift_params = [p for p in drift_net.parameters() if p.requires_grad]
    params = list(growth_net.parameters()) if growth_net is not None else []
    if fit_d:
        log_delta = torch.tensor(float(np.log(0.1 * length**2 / span)), device=dev, requires_grad=True)
        params.append(log_delta)
    else:
        D_fixed = as_tensor(_diffusion_matrix(diffusion, d), dev)
    # a drift started from the moments is refined with a small step; growth and D are learned from scratch
    lr_other = lr if lr is not None else (3e-3 if model == "mlp" else 0.05)
    lr = lr if lr is not None else (3e-3 if model == "mlp" else (0.05 if start is None else 5e-3))
    opt = torch.optim.Adam([{"params": drift_params, "lr": lr}] + ([{"params": params}] if params else []),
                           lr=lr_other)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * i / steps)))
    loss_fn = sinkhorn_loss(blur * length, reach=reach * length if growth else None)
    data = [as_tensor(x, dev) for x in snapshots.samples]
    times = [float(t) for t in snapshots.times]
    masses = [float(m) for m in snapshots.masses]
    v_unit2 = (length / span) ** 2
    result = FlowModel(drift_net=drift_net, growth_net=growth_net, diffusion=np.eye(d), score=score,
                       columns=tuple(snapshots.columns), times=np.asarray(snapshots.times))

    def current_D() -> torch.Tensor:
        return torch.exp(log_delta) * torch.eye(d, device=dev) if fit_d else D_fixed

    def batch(k: int) -> torch.Tensor:
        n = data[k].shape[0]
        if n <= batch_size:
            return data[k]
        return data[k][torch.randperm(n, generator=gen)[:batch_size].to(dev)]

    def rates(x: torch.Tensor, t: float, D: torch.Tensor):
        u = drift_net(x) - score(x, t) @ D.T
        g = growth_net(x) if growth_net is not None else torch.zeros(x.shape[0], device=dev)
        return u, g

    n_int = len(data) - 1
    subset = intervals_per_step is not None and n_int > int(intervals_per_step)
    for step in progress_iter(range(steps), desc="probability flow inference"):
        D = current_D()
        total = torch.zeros((), device=dev)
        # every interval (the draws of the code before intervals_per_step), or a random subset of them
        ks = (torch.randperm(n_int, generator=gen)[:int(intervals_per_step)].sort().values.tolist() if subset
              else range(n_int))
        for k in ks:
            x = batch(k)
            logm = torch.zeros(x.shape[0], device=dev)
            h = (times[k + 1] - times[k]) / n_euler
            reg = torch.zeros((), device=dev)
            for j in range(n_euler):
                t = times[k] + j * h
                u, g = rates(x, t, D)
                w = torch.exp(logm) / x.shape[0]  # mass per particle: the regulariser integrates over the population
                energy = (u**2).sum(1) / v_unit2 + growth_weight * (g * span) ** 2
                reg = reg + h / span * (w * energy).sum()
                if integrator == "heun":
                    u2, g2 = rates(x + h * u, t + h, D)
                    u, g = 0.5 * (u + u2), 0.5 * (g + g2)
                x = x + h * u
                logm = logm + h * g
            y = batch(k + 1)
            if growth_net is not None:
                a = masses[k] / x.shape[0] * torch.exp(logm)
                b = torch.full((y.shape[0],), masses[k + 1] / y.shape[0], device=dev)
                # relative to the target's mass: otherwise the late, large populations drown the early intervals
                fit = loss_fn(a, x, b, y) / masses[k + 1]
                # the debiased unbalanced divergence pins the total mass only through eps (m_a - m_b)^2 / 2, far
                # too weakly: match the observed population size explicitly (log ratio, scale-free)
                total = total + mass_weight * torch.log(a.sum() / masses[k + 1]) ** 2
            else:
                fit = loss_fn(x, y)
            total = total + fit / length**2 + kinetic_weight * reg
        if subset:
            total = total * (n_int / len(ks))
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        if step % 10 == 0 or step == steps - 1:
            result.history.append(float(total.detach()))
            result.diffusion = current_D().detach().cpu().numpy().astype(float)
            if callback is not None:
                callback(step, result)
    result.diffusion = current_D().detach().cpu().numpy().astype(float)
    return result


#: The same function as :func:`fit_flow` (score estimation + flow fitting in one call), under the name the
#: package's first examples used; new code should call :func:`fit_flow`.
infer_flow = fit_flow
