"""Bayesian latent chemotactic field: issue 8's PINN problem sampled as a BPINN (issue 20).

:func:`latent_chemotaxis_pinn` builds the loss terms (track velocities against ``grad(phi)``, the
PDE residual ``phi_t - Dc lap(phi) + k phi - chi s``, ``phi = 0`` at the first frame) and the
spectral estimate of the coefficients. :func:`pinn_tasks` turns any :class:`~.train.PINN`'s loss
terms into BPINN likelihood tasks (one per loss; a vector term contributes all its components)
and its coefficients into physical parameters with log-normal priors centred at their current
values. :func:`bayesian_latent_field` then warms up (MAP + adaptive noise levels) and samples by
HMC, and returns the posterior mean and standard deviation of ``phi`` on the grid.

The noise level learned for the velocity task is the velocity noise per component; for the cell
diffusion coefficient ``D`` and frame interval ``dt`` the added noise is ``sqrt(2 D / dt)``.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import InputError
from .autodiff import TermEvaluator
from .bayes import BPINN, BPINNResult, Prior, Task
from .losses import PointLoss, ResidualLoss


class _Bound:
    """A network function with the attributes :class:`TermEvaluator` reads."""

    def __init__(self, net, f):
        self.ndim, self.space_axes, self.f = net.ndim, net.space_axes, f

    def __call__(self, x):
        return self.f(x)


def pinn_tasks(pinn, *, max_points: dict | None = None, coef_prior: float = 0.5, seed: int = 0, redraw: bool = True):
    """BPINN tasks and parameter priors from a PINN's loss terms and coefficients.

    Parameters
    ----------
    pinn : PINN
    max_points : dict of str -> int, optional
        Random subset size per loss name (full batch otherwise; HMC needs the full potential).
    coef_prior : float
        Standard deviation of the (log-)normal prior of each trainable coefficient around its
        current value; non-trainable coefficients stay fixed.
    seed : int
        Seed of the subsets.
    redraw : bool
        Give the tasks a ``redraw`` (:class:`~.bayes.Task`): a residual term's collocation points
        are redrawn uniformly in the box of its points, a subsampled data term draws a new subset
        (the warm-up fits fresh points at every step and measures the noise on points it has not
        fitted, :meth:`~.bayes.BPINN.warmup`).

    Returns
    -------
    tasks : list of Task
    priors : dict of str -> Prior
    """
    rng = np.random.default_rng(seed)
    max_points = dict(max_points or {})
    dev = pinn.device
    priors, fixed = {}, {}
    for name, c in pinn.coefficients.items():
        v = float(pinn._coef(name).detach())
        if c.trainable:
            priors[name] = Prior(float(np.log(v)) if c.positive else v, coef_prior, log=c.positive)
        else:
            fixed[name] = v
    net = pinn.network
    tasks = []
    for loss in pinn.losses:
        pts = np.asarray(loss.points, float)
        vals = None if isinstance(loss, ResidualLoss) else np.asarray(loss.values, float)
        m = max_points.get(loss.name)
        if m is not None and m < len(pts):
            sel = np.sort(rng.choice(len(pts), int(m), replace=False))
            pts = pts[sel]
            vals = None if vals is None else vals[sel]
        at = {"P": torch.as_tensor(pts, dtype=torch.float64, device=dev),
              "V": None if vals is None else torch.as_tensor(vals, dtype=torch.float64, device=dev)}
        new = _redraw(at, loss, len(pts), dev) if redraw else None
        if isinstance(loss, PointLoss):
            def res(f, th, at=at, term=loss.term):
                return (TermEvaluator(_Bound(net, f), at["P"], pinn.known, pinn.reference)(term) - at["V"]).reshape(-1)

            tasks.append(Task(loss.name, res, physics=loss.kind != "data", redraw=new))
        else:
            def res(f, th, at=at, loss=loss):
                ev = TermEvaluator(_Bound(net, f), at["P"], pinn.known, pinn.reference)
                r = ev(loss.lhs)
                for term, c in loss.rhs.items():
                    if isinstance(c, str):
                        key = c.lstrip("-")
                        val = th[key] if key in th else fixed[key]
                        val = -val if c.startswith("-") else val
                    else:
                        val = float(c)
                    r = r - val * ev(term)
                return r

            tasks.append(Task(loss.name, res, physics=True, redraw=new))
    return tasks, priors


def _redraw(at: dict, loss, n: int, dev):
    """``redraw(rng)`` for a task evaluated at ``at["P"]`` (and data ``at["V"]``): fresh points, or None."""
    pts = np.asarray(loss.points, float)
    if isinstance(loss, ResidualLoss):
        lo, hi = pts.min(axis=0), pts.max(axis=0)

        def new(rng):
            at["P"] = torch.as_tensor(rng.uniform(lo, hi, (n, pts.shape[1])), dtype=torch.float64, device=dev)
        return new
    if n >= len(pts):
        return None
    vals = np.asarray(loss.values, float)

    def new(rng):
        sel = np.sort(rng.choice(len(pts), n, replace=False))
        at["P"] = torch.as_tensor(pts[sel], dtype=torch.float64, device=dev)
        at["V"] = torch.as_tensor(vals[sel], dtype=torch.float64, device=dev)
    return new


def bayesian_latent_field(tracks, *, grid: int = 32, hidden=(32, 32), harmonics: int = 3, fourier_features: int = 4,
                          n_velocity: int = 1000, n_collocation: int = 2000, n_initial: int = 150,
                          weighting: str = "adaptive", sample_coefficients: bool = False, coef_prior: float = 0.5,
                          propagate_coefficients: bool = True, refit_steps: int = 50, sampler: str = "auto",
                          draws: int = 100, tune: int = 100,
                          chains: int = 2, num_steps: int = 10, warmup_steps: int = 1500, lbfgs_steps: int = 100,
                          device: str = "cpu",
                          seed: int = 0, callback=None, callback_state: bool = False, should_stop=None,
                          dt=None, box=None, source=None, initial_zero: bool = True, estimate: bool = True,
                          Dc: float = 0.5, k: float = 0.2, chi: float = 1.0):
    """Posterior of the chemotactic potential ``phi = chi c`` and of ``Dc``, ``k``, ``chi`` from tracks.

    Parameters
    ----------
    tracks : DataFrame
        2D tracks ``frame, track_id, y, x`` (``attrs`` may hold ``dt`` and ``box``).
    grid : int
        Grid points per spatial axis of the returned fields.
    hidden, harmonics, fourier_features
        Network (:class:`~.network.FieldNetwork`); smaller than the point-estimate default,
        since every HMC step evaluates the full potential.
    n_velocity, n_collocation, n_initial : int
        Velocity samples (random subset of the track midpoints), PDE collocation points and
        initial-condition points in the potential.
    weighting : {"adaptive", "fixed"}
        Task weights (:class:`~.bayes.BPINN`); ``"fixed"`` uses weight 1 for every task.
    sample_coefficients : bool
        Sample ``Dc``, ``k``, ``chi`` by HMC with the field (log-normal priors of log-std
        ``coef_prior`` around the spectral estimate); the warm-up keeps them at the estimate
        (fitted jointly the PDE residual is smallest for coefficients shrunk towards zero --
        measured on ``simulate_chemotaxis(seed=1)``: from the estimate (1.04, 0.52, 2.05) the
        warm-up went to Dc = 0.11, k = 0.17, chi = 0.36 and the field error to 69 %). Off by
        default: sampled with the output layer, ``chi`` drifted from 2.05 to 1.43 (R-hat 2.2) and
        the field error rose to 30 % (same case; the learned PDE noise, 0.016, outweighs the
        velocities). Without a known source and a periodic box there is no estimate and the
        coefficients are always fitted and sampled (from the guesses ``Dc``, ``k``, ``chi``).
    coef_prior : float
        Log-std of the coefficient priors.
    propagate_coefficients : bool
        With the spectral estimate and ``sample_coefficients`` off: each chain holds ``Dc``, ``k``,
        ``chi`` at its own draw from the estimate's Laplace posterior (log-normal, the covariance
        of the 3-parameter least-squares fit with the exact solution,
        :func:`~.chemotaxis.spectral_coefficients`) and samples the network given them, so the
        pooled field draws carry the coefficients' uncertainty (``parameter_draws`` of
        :meth:`~.bayes.BPINN.sample`: a cut posterior -- the coefficients are informed by the
        exact physics, not by the network's PDE residual). Off: the coefficients stay at the
        estimate and the bands hold only the network's output-layer uncertainty, which is
        5-10x too narrow (docs/pinn.md).
    refit_steps : int
        With ``propagate_coefficients`` and ``sampler="hmc"``: L-BFGS iterations that refit the
        whole network to each chain's coefficients before it samples (``refit_steps`` of
        :meth:`~.bayes.BPINN.sample`).
    sampler : {"auto", "gaussian", "hmc"}
        How the output layer is sampled given the hidden layers (:meth:`~.bayes.BPINN.sample`).
        ``"auto"``: ``"gaussian"`` with ``propagate_coefficients`` -- every one of the ``chains *
        draws`` posterior draws holds its own coefficient draw and an exact draw of the output
        layer given it (the residuals are linear in the output layer and in ``Dc``, ``k``,
        ``chi``; 200 coefficient draws by default, where one HMC chain per coefficient draw gave
        8 and bands that covered 3-88 % of the truth, docs/pinn.md) -- otherwise ``"hmc"``.
    draws, tune, chains, num_steps, warmup_steps : int
        Sampler settings (:meth:`~.bayes.BPINN.sample`).
    lbfgs_steps : int
        L-BFGS iterations per round of the warm-up (:meth:`~.bayes.BPINN.warmup`).
    device : {"cpu", "cuda", "auto"}
    seed : int
    callback : callable, optional
        ``callback(chain, i, total)`` after every HMC iteration (``callback_state``: also the
        current parameters, :meth:`~.bayes.BPINN.sample`).
    should_stop : callable, optional
        Stop: the draws so far are summarised.
    dt, box, source, initial_zero, estimate, Dc, k, chi
        The problem's data and guesses, as in :func:`~.chemotaxis.latent_chemotaxis_pinn`.

    Returns
    -------
    FieldBundle
        ``phi`` (posterior mean) and ``phi_std`` on the grid at the frame times; ``attrs["bpinn"]``
        holds parameter means, 95 % intervals, the weights and implied noise levels and diagnostics.
    BPINNResult
        Including the parameter draws ``samples`` and the field draws ``field_samples``.
    """
    from ...fields import FieldBundle
    from ...validate import check_latent_grid
    from .chemotaxis import latent_chemotaxis_pinn, latent_grid
    from .train import resolve_device

    if "frame" in getattr(tracks, "columns", ()) and len(tracks):  # before sampling (a bad table: the problem says so)
        check_latent_grid(grid, int(tracks["frame"].max() - tracks["frame"].min()) + 1, draws=int(chains) * int(draws))
    dev = resolve_device(device)
    prob = latent_chemotaxis_pinn(tracks, hidden=hidden, harmonics=harmonics, fourier_features=fourier_features,
                                  n_collocation=n_collocation, device=str(dev), seed=seed, weighting="fixed",
                                  dt=dt, box=box, source=source, initial_zero=initial_zero, estimate=estimate,
                                  Dc=Dc, k=k, chi=chi)
    estimated = not prob.coefficients_trained
    cut = estimated and not sample_coefficients and propagate_coefficients and prob.coefficient_covariance is not None
    if sampler not in ("auto", "gaussian", "hmc"):
        raise InputError(f"sampler '{sampler}' is not one of ('auto', 'gaussian', 'hmc')")
    if sampler == "auto":
        sampler = "gaussian" if cut else "hmc"
    if estimated and (sample_coefficients or cut):
        for c in prob.pinn.coefficients.values():
            c.trainable = True
    limits = {"velocity": n_velocity, "initial": n_initial}
    tasks, priors = pinn_tasks(prob.pinn, max_points=limits, coef_prior=coef_prior, seed=seed)
    draws_cut = None
    if cut:
        names = list(prob.initial_coefficients)
        log_mean = np.log([prob.initial_coefficients[n] for n in names])
        cov = np.asarray(prob.coefficient_covariance, dtype=float)
        for i, n in enumerate(names):
            priors[n] = Prior(float(log_mean[i]), float(np.sqrt(max(cov[i, i], 1e-300))), log=True)
        rng = np.random.default_rng(seed + 1)
        n_cut = int(chains) * (int(draws) if sampler == "gaussian" else 1)  # one per draw / per chain
        draws_cut = np.exp(rng.multivariate_normal(log_mean, cov, size=n_cut, method="eigh"))
        draws_cut = draws_cut[:, [names.index(n) for n in priors]]
    if not tasks:
        raise InputError("the latent-field problem has no loss terms")

    b = BPINN(prob.pinn.network, tasks, priors, weighting=weighting, device=str(dev))
    coords = latent_grid(prob, tracks, grid, dt)
    T, Y, X = np.meshgrid(coords["t"], coords["y"], coords["x"], indexing="ij")
    pts = np.column_stack([T.ravel(), Y.ravel(), X.ravel()])
    res: BPINNResult = b.sample(pts, draws=draws, tune=tune, chains=chains, num_steps=num_steps,
                                warmup_steps=warmup_steps, seed=seed, parameter_draws=draws_cut, refit_steps=refit_steps,
                                sampler=sampler,
                                # noise_tol=None: the fixed 4 rounds its figures were measured with (its tasks
                                # are redrawn, so each round's noise estimate fluctuates; docs/pinn.md)
                                warmup_options={"lbfgs_steps": lbfgs_steps, "fit_parameters": not estimated,
                                                "noise_tol": None},
                                callback=callback, callback_state=callback_state, should_stop=should_stop)
    shape = T.shape
    fields = {}
    for name in res.mean:
        fields[name] = res.mean[name].reshape(shape)
        fields[f"{name}_std"] = res.std[name].reshape(shape)
    res.field_samples = {k: v.reshape(v.shape[:2] + shape) for k, v in res.field_samples.items()}
    attrs = {"bpinn": {"mean": {k: float(v.mean()) for k, v in res.samples.items()},
                       "intervals": {k: list(v) for k, v in res.intervals.items()},
                       "weights": res.weights, "noise": res.noise, "weighting": weighting,
                       "diagnostics": res.diagnostics, "initial_coefficients": prob.initial_coefficients,
                       "coefficients_sampled": bool(priors) and not cut, "coefficients_propagated": bool(cut),
                       "sampler": sampler,
                       "coefficient_log_covariance": (None if prob.coefficient_covariance is None
                                                      else np.asarray(prob.coefficient_covariance).tolist())},
             "field": "phi = chi * c (chemotactic potential): posterior mean and standard deviation"}
    return FieldBundle(fields, coords, periodic=prob.periodic, attrs=attrs), res
