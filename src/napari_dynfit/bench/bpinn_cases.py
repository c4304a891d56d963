"""The BPINN benchmark cases of issue 20 (``dynfit bench bpinn``, slow tests, ``docs/pinn.md``).

* :func:`sobolev_case` -- Sobolev training of a multi-scale function from noisy value, first- and
  second-derivative data (three tasks whose magnitudes span 2.6 orders): the adaptive-weight BPINN
  beside the analytically epsilon-optimal weights and fixed equal weights;
* :func:`lotka_volterra_case` -- the inverse Lotka-Volterra problem with parameters two orders of
  magnitude apart and noisy population counts: posterior means and 95 % intervals of the four
  rates, adaptive beside fixed equal weights.

Each returns a JSON-serialisable dict (errors, intervals, learned noise levels, diagnostics,
seconds). All randomness comes from ``seed``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..models.pinn.bayes import BPINN, MLP, Prior, Task, derivative


def _shared(fn):
    """``fn(f)`` evaluated once per network function ``f`` (the tasks of one potential share it)."""
    cache = {"f": None, "v": None}

    def get(f):
        if cache["f"] is not f:
            cache["f"], cache["v"] = f, fn(f)
        return cache["v"]

    return get


# f(x) = sin(2 pi x) + A sin(2 pi W x) on [0, 1]: a slow mode and a fast one
SOBOLEV_W, SOBOLEV_A = 5.0, 0.1


def sobolev_function(x, order: int = 0):
    """``d^order/dx^order`` of ``sin(2 pi x) + A sin(2 pi W x)`` (``W = 10``, ``A = 0.1``)."""
    x = np.asarray(x, dtype=float)
    out = 0.0
    for a, w in ((1.0, 1.0), (SOBOLEV_A, SOBOLEV_W)):
        k = 2 * np.pi * w
        out = out + a * k ** order * np.sin(k * x + order * np.pi / 2)
    return out


def _rms_analytic(order: int) -> float:
    # mean of sin^2 over whole periods on [0, 1] is 1/2 and the two modes are orthogonal
    return float(np.sqrt(sum(0.5 * (a * (2 * np.pi * w) ** order) ** 2 for a, w in ((1.0, 1.0), (SOBOLEV_A, SOBOLEV_W)))))


def sobolev_case(seed: int = 0, *, n: int = 80, rel_noise: float = 0.01, hidden=(32, 32), draws: int = 100,
                 tune: int = 100, chains: int = 2, warmup_steps: int = 1500, num_steps: int = 20,
                 weightings=("adaptive", "epsilon-optimal", "equal")) -> dict:
    """Sobolev training of ``f = sin(2 pi x) + 0.1 sin(20 pi x)`` from noisy ``f``, ``f'``, ``f''``.

    Each task's data has Gaussian noise of ``rel_noise`` times that task's RMS (0.7, 6.3 and 281 for
    ``f``, ``f'``, ``f''``), so the tasks' scales span 2.6 orders of magnitude. Weightings:

    * ``"adaptive"``: :class:`~.bayes.BPINN` ``weighting="adaptive"`` (noise levels learned in warm-up);
    * ``"epsilon-optimal"``: ``lambda_k = 1 / (epsilon s_k)^2`` with ``s_k`` the task's analytic RMS
      and ``epsilon = rel_noise`` -- every task fitted to the same relative error; here also the
      true noise levels, i.e. the exact Bayesian weights (the baseline);
    * ``"equal"``: ``lambda_k = 1``.

    Parameters
    ----------
    seed : int
        Noise seed (the network initialisation is fixed).
    n : int
        Data points per task (uniform on [0, 1]).
    rel_noise : float
        Noise standard deviation relative to each task's RMS.
    hidden : tuple of int
        Hidden layer widths of the tanh MLP.
    draws, tune, chains, warmup_steps, num_steps : int
        Sampler settings (:meth:`~.bayes.BPINN.sample`).
    weightings : sequence of str

    Returns
    -------
    dict
        Per weighting: ``rel_l2`` (posterior mean of ``f`` against the truth on 400 test points),
        ``coverage95`` (fraction of test points inside the pointwise 95 % band), ``noise`` (learned
        or used, per task) and the true noise, ``acceptance``, ``seconds``; ``ratio_adaptive``
        and ``ratio_equal`` (``rel_l2`` over the epsilon-optimal one).
    """
    rng = np.random.default_rng(seed)
    x = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
    sig = {f"d{k}": rel_noise * _rms_analytic(k) for k in range(3)}
    ys = {f"d{k}": torch.as_tensor(sobolev_function(x[:, 0].numpy(), k) + sig[f"d{k}"] * rng.standard_normal(n))
          for k in range(3)}
    xt = np.linspace(0, 1, 400)[:, None]
    truth = sobolev_function(xt[:, 0])

    derivs = _shared(lambda net: derivative(net, x, 2))

    def task(k):
        return lambda net, th: derivs(net)[k] - ys[f"d{k}"]

    out = {"seed": seed, "true_noise": sig, "n": n, "rel_noise": rel_noise, "hidden": list(hidden)}
    for name in weightings:
        t0 = time.perf_counter()
        tasks = [Task(f"d{k}", task(k)) for k in range(3)]
        if name == "epsilon-optimal":
            for t in tasks:
                t.weight = 1.0 / sig[t.name] ** 2
        b = BPINN(MLP((0, 1), hidden, seed=0), tasks, weighting="adaptive" if name == "adaptive" else "fixed")
        res = b.sample(xt, draws=draws, tune=tune, chains=chains, warmup_steps=warmup_steps, num_steps=num_steps,
                       seed=seed)
        samples = res.field_samples["u"].reshape(-1, len(xt))
        lo, hi = np.percentile(samples, [2.5, 97.5], axis=0)
        out[name] = {"rel_l2": float(np.linalg.norm(res.mean["u"] - truth) / np.linalg.norm(truth)),
                     "coverage95": float(np.mean((truth >= lo) & (truth <= hi))),
                     "noise": res.noise, "acceptance": res.diagnostics["acceptance"],
                     "divergences": res.diagnostics["divergences"], "seconds": time.perf_counter() - t0}
    if "epsilon-optimal" in out:
        ref = out["epsilon-optimal"]["rel_l2"]
        for name in ("adaptive", "equal"):
            if name in out:
                out[f"ratio_{name}"] = out[name]["rel_l2"] / ref
    return out


# Lotka-Volterra: x' = alpha x - beta x y, y' = delta x y - gamma y
LV_TRUE = {"alpha": 1.0, "beta": 0.01, "delta": 0.02, "gamma": 1.0}
LV_X0 = (40.0, 20.0)


def lotka_volterra_data(seed: int = 0, *, n: int = 60, t_end: float = 10.0, rel_noise: float = 0.03):
    """Noisy ``(prey, predator)`` counts at ``n`` times on ``[0, t_end]``.

    Returns ``t (n,)``, ``clean (n, 2)``, ``noisy (n, 2)``; the noise standard deviation is
    ``rel_noise`` times each species' mean.
    """
    from scipy.integrate import solve_ivp

    p = LV_TRUE

    def rhs(_, u):
        return [p["alpha"] * u[0] - p["beta"] * u[0] * u[1], p["delta"] * u[0] * u[1] - p["gamma"] * u[1]]

    t = np.linspace(0, t_end, n)
    sol = solve_ivp(rhs, (0, t_end), LV_X0, t_eval=t, rtol=1e-10, atol=1e-10)
    clean = sol.y.T
    sigma = rel_noise * clean.mean(axis=0)
    noisy = clean + sigma * np.random.default_rng(seed).standard_normal(clean.shape)
    return t, clean, noisy, sigma


def lotka_volterra_reference(seed: int = 0, *, n: int = 60, t_end: float = 10.0, rel_noise: float = 0.03) -> dict:
    """The rates' posterior of the exact ODE model (no network), for comparison with the BPINN.

    Least squares of the ODE solution (log rates and the two initial values free, the known noise
    levels) with the Laplace approximation at the optimum (flat priors on the logs). Its central 95 %
    intervals are what a calibrated BPINN should approach; they miss the truth on some noise seeds,
    as calibrated intervals do (each covers with 95 % probability).

    Returns
    -------
    dict
        ``mean`` (median rates), ``log_sd``, ``interval`` (95 %), ``covered`` per rate, ``z`` (the truth's
        deviation in posterior standard deviations).
    """
    from scipy.integrate import solve_ivp
    from scipy.optimize import least_squares

    t, _, noisy, sigma = lotka_volterra_data(seed, n=n, t_end=t_end, rel_noise=rel_noise)

    def residual(p):
        a, b, d, g, x0, y0 = np.exp(p)
        sol = solve_ivp(lambda _, u: [a * u[0] - b * u[0] * u[1], d * u[0] * u[1] - g * u[1]], (0, t_end),
                        [x0, y0], t_eval=t, rtol=1e-9, atol=1e-9)
        return ((sol.y.T - noisy) / sigma).ravel()

    fit = least_squares(residual, np.log([*LV_TRUE.values(), *LV_X0]))
    sd = np.sqrt(np.diag(np.linalg.inv(fit.jac.T @ fit.jac)))
    out = {"mean": {}, "log_sd": {}, "interval": {}, "covered": {}, "z": {}}
    for i, (k, v) in enumerate(LV_TRUE.items()):
        m = float(fit.x[i])
        out["mean"][k] = float(np.exp(m))
        out["log_sd"][k] = float(sd[i])
        out["interval"][k] = [float(np.exp(m - 1.96 * sd[i])), float(np.exp(m + 1.96 * sd[i]))]
        out["z"][k] = float((np.log(v) - m) / sd[i])
        out["covered"][k] = bool(abs(out["z"][k]) <= 1.96)
    return out


def lotka_volterra_case(seed: int = 0, *, n: int = 60, t_end: float = 10.0, rel_noise: float = 0.03,
                        n_collocation: int = 100, hidden=(32, 32), draws: int = 100, tune: int = 100,
                        chains: int = 2, warmup_steps: int = 2000, num_steps: int = 20, guess: float = 2.0,
                        weightings=("adaptive", "equal")) -> dict:
    """Inverse multi-scale Lotka-Volterra problem: rates from noisy population counts.

    ``x' = alpha x - beta x y``, ``y' = delta x y - gamma y`` with ``alpha = gamma = 1``,
    ``beta = 0.01``, ``delta = 0.02`` (two orders of magnitude apart), ``(x, y)(0) = (40, 20)``.
    A two-output MLP (outputs scaled by the data means) fits four tasks: the two species' data and
    the two ODE residuals at ``n_collocation`` points. Rates have log-normal priors centred at
    ``guess`` times the truth's order of magnitude (a factor ``guess`` off) with log-std 1.

    Parameters
    ----------
    seed : int
        Noise seed.
    guess : float
        Factor between the prior median and the true rate.
    weightings : sequence of {"adaptive", "equal"}

    Returns
    -------
    dict
        Per weighting: posterior ``mean``, 95 % ``interval``, ``rel_error`` and ``covered`` per rate,
        the learned ``noise`` per task and the true data noise, diagnostics and ``seconds``.
    """
    t, _, noisy, sigma = lotka_volterra_data(seed, n=n, t_end=t_end, rel_noise=rel_noise)
    tt = torch.as_tensor(t, dtype=torch.float64)[:, None]
    yy = torch.as_tensor(noisy, dtype=torch.float64)
    tc = torch.linspace(0, t_end, n_collocation, dtype=torch.float64)[:, None]
    scale = noisy.mean(axis=0)

    at_coll = _shared(lambda net: derivative(net, tc, 1))
    at_data = _shared(lambda net: net(tt))

    def ode(j):
        def r(net, th):
            u, du = at_coll(net)
            x, y = u[:, 0], u[:, 1]
            if j == 0:
                return du[:, 0] - (th["alpha"] * x - th["beta"] * x * y)
            return du[:, 1] - (th["delta"] * x * y - th["gamma"] * y)
        return r

    def data(j):
        return lambda net, th: at_data(net)[:, j] - yy[:, j]

    out = {"seed": seed, "true": LV_TRUE, "true_noise": {"prey": float(sigma[0]), "predator": float(sigma[1])},
           "rel_noise": rel_noise, "n": n, "hidden": list(hidden),
           "reference": lotka_volterra_reference(seed, n=n, t_end=t_end, rel_noise=rel_noise)}
    for name in weightings:
        t0 = time.perf_counter()
        tasks = [Task("prey", data(0)), Task("predator", data(1)), Task("ode_prey", ode(0), physics=True),
                 Task("ode_predator", ode(1), physics=True)]
        priors = {k: Prior(float(np.log(guess * v)), 1.0, log=True) for k, v in LV_TRUE.items()}
        b = BPINN(MLP((0, t_end), hidden, seed=0, d_out=2, scale=scale), tasks, priors,
                  weighting="adaptive" if name == "adaptive" else "fixed")
        res = b.sample(None, draws=draws, tune=tune, chains=chains, warmup_steps=warmup_steps,
                       num_steps=num_steps, seed=seed)
        mean = {k: float(v.mean()) for k, v in res.samples.items()}
        out[name] = {"mean": mean, "interval": {k: list(v) for k, v in res.intervals.items()},
                     "rel_error": {k: abs(mean[k] / LV_TRUE[k] - 1) for k in LV_TRUE},
                     "covered": {k: bool(res.intervals[k][0] <= LV_TRUE[k] <= res.intervals[k][1]) for k in LV_TRUE},
                     "noise": res.noise, "acceptance": res.diagnostics["acceptance"],
                     "ess": res.diagnostics["ess"], "rhat": res.diagnostics["rhat"],
                     "divergences": res.diagnostics["divergences"], "seconds": time.perf_counter() - t0}
        ref = out["reference"]["interval"]
        out[name]["z"] = {k: float((np.log(LV_TRUE[k]) - np.log(v).mean()) / np.log(v).std()) for k, v in res.samples.items()}
        out[name]["width_vs_reference"] = {k: (v[1] - v[0]) / (ref[k][1] - ref[k][0]) for k, v in res.intervals.items()}
        out[name]["all_within_5pct"] = all(v <= 0.05 for v in out[name]["rel_error"].values())
        out[name]["all_covered"] = all(out[name]["covered"].values())
    return out


def chemotaxis_case(seed: int = 1, *, cells: int = 500, frames: int = 31, D: float = 0.002, grid: int = 32,
                    draws: int = 25, tune: int = 25, chains: int = 8, warmup_steps: int = 1500,
                    weighting: str = "adaptive", **kwargs) -> dict:
    """Latent chemotactic potential (issue 8's case) with posterior uncertainty.

    ``simulate_chemotaxis(seed=seed)`` (500 cells, 31 frames, ``Dc = 1``, ``k = 0.5``, ``chi = 2``,
    cell diffusion ``D``) with the known source; :func:`~.bayes_latent.bayesian_latent_field`.
    Figures over the grid points within 0.5 of a cell at each frame, ``t > 0`` (issue 8's mask):
    ``rel_l2`` of the posterior mean of ``chi c``, ``coverage95`` (fraction of those points whose
    pointwise 95 % interval holds the truth), the learned velocity noise against the added
    ``sqrt(2 D / dt)``, and the parameters' means and intervals.

    Parameters
    ----------
    seed : int
        Simulation seed.
    cells, frames : int
    D : float
        Cell diffusion coefficient (the velocity noise).
    grid : int
        Grid points per axis of the evaluation (the simulation's grid is subsampled to it).
    draws, tune, chains, warmup_steps : int
        Sampler settings; each chain holds its own draw of the coefficients from the spectral
        estimate's posterior (``propagate_coefficients``), hence more, shorter chains.
    weighting : {"adaptive", "fixed"}
    **kwargs
        Passed to :func:`~.bayes_latent.bayesian_latent_field`.
    """
    from ..models.pinn.bayes_latent import bayesian_latent_field
    from ..models.pinn.chemotaxis import visited_mask
    from ..sim.chemotaxis import simulate_chemotaxis

    t0 = time.perf_counter()
    sim = simulate_chemotaxis(n_cells=cells, n_frames=frames, D=D, seed=seed)
    tracks = sim.to_table()
    bundle, res = bayesian_latent_field(tracks, source=lambda X: sim.source_function(X[:, 1], X[:, 2]), grid=grid,
                                        draws=draws, tune=tune, chains=chains, warmup_steps=warmup_steps,
                                        weighting=weighting, seed=0, **kwargs)
    step = max(1, len(sim.grid["y"]) // grid)
    truth = sim.phi[:, ::step, ::step]
    coords = bundle.coords
    if truth.shape != bundle["phi"].shape or not np.allclose(coords["y"], sim.grid["y"][::step]):
        raise ValueError("evaluation grid does not match the simulation grid: use a divisor of its size")
    from ..models.pinn.chemotaxis import track_velocities

    pts, _ = track_velocities(tracks)
    mask = visited_mask(pts, coords, 0.5, box=sim.box)
    mask[0] = False
    fs = res.field_samples["phi"].reshape((-1,) + truth.shape)
    lo, hi = np.percentile(fs, [2.5, 97.5], axis=0)
    mean = bundle["phi"]
    added = float(np.sqrt(2 * D / sim.frame_interval))
    learned = float(res.noise["velocity"])
    truth_p = {n: sim.params[n] for n in ("Dc", "k", "chi")}
    return {"seed": seed, "cells": cells, "frames": frames, "D": D, "grid": grid, "weighting": weighting,
            "rel_l2": float(np.linalg.norm((mean - truth)[mask]) / np.linalg.norm(truth[mask])),
            "coverage95": float(np.mean(((truth >= lo) & (truth <= hi))[mask])),
            "mean_std_over_rms": float(bundle["phi_std"][mask].mean() / np.sqrt(np.mean(truth[mask] ** 2))),
            "velocity_noise": learned, "velocity_noise_added": added, "noise_ratio": learned / added,
            "noise": res.noise, "parameters": {k: float(v.mean()) for k, v in res.samples.items()},
            "intervals": {k: list(v) for k, v in res.intervals.items()}, "true": truth_p,
            "acceptance": res.diagnostics["acceptance"], "divergences": res.diagnostics["divergences"],
            "ess": res.diagnostics["ess"], "rhat": res.diagnostics["rhat"],
            "field_diagnostics": {k: v for k, v in res.diagnostics.items() if k.startswith(("rhat_", "ess_field"))},
            "chains": res.diagnostics["chains"], "draws": res.diagnostics["draws"],
            "coefficients_propagated": bundle.attrs["bpinn"]["coefficients_propagated"],
            "seconds": time.perf_counter() - t0}


def _md_table(out: dict) -> str:
    rows = ["| case | weighting | figure | runtime |", "|---|---|---|---|"]
    sob = out.get("sobolev")
    if sob:
        for r in sob:
            for w in ("adaptive", "epsilon-optimal", "equal"):
                if w in r:
                    ratio = r.get(f"ratio_{w}")
                    extra = f" ({ratio:.2f}x eps-optimal)" if ratio is not None else ""
                    rows.append(f"| Sobolev seed {r['seed']} | {w} | rel. L2 {r[w]['rel_l2']:.2e}{extra} | "
                                f"{r[w]['seconds']:.0f} s |")
    for r in out.get("lotka_volterra", []):
        for w in ("adaptive", "equal"):
            if w in r:
                e = ", ".join(f"{k} {100 * v:.1f} %" for k, v in r[w]["rel_error"].items())
                cov = sum(r[w]["covered"].values())
                ref = r.get("reference")
                extra = ""
                if ref:
                    wr = r[w]["width_vs_reference"].values()
                    extra = (f" (exact-ODE posterior: {sum(ref['covered'].values())}/4; widths "
                             f"{min(wr):.2f}-{max(wr):.2f}x its)")
                rows.append(f"| Lotka-Volterra seed {r['seed']} | {w} | {e}; {cov}/4 covered{extra} | "
                            f"{r[w]['seconds']:.0f} s |")
    for r in out.get("chemotaxis", []):
        rows.append(f"| chemotaxis seed {r['seed']} | {r['weighting']} | rel. L2 {r['rel_l2']:.3f}, coverage "
                    f"{100 * r['coverage95']:.1f} % ({r.get('chains', 2)} chains), velocity noise {r['velocity_noise']:.3f} "
                    f"(added {r['velocity_noise_added']:.3f}) | {r['seconds']:.0f} s |")
    return "\n".join(rows)


def bench_run(args) -> dict:
    """``dynfit bench bpinn``: the three cases of issue 20; JSON with a ``markdown`` table."""
    import os

    torch.set_num_threads(max(1, int(args.threads)))
    cases = args.case or ["sobolev", "lotka-volterra", "chemotaxis"]
    draws, tune = (40, 40) if args.quick else (args.draws, args.tune)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2, 3, 4])
    out = {"draws": draws, "tune": tune, "chains": 2, "threads": int(args.threads),
           "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if "sobolev" in cases:
        out["sobolev"] = [sobolev_case(s, draws=draws, tune=tune) for s in args.sobolev_seeds]
    if "lotka-volterra" in cases:
        out["lotka_volterra"] = [lotka_volterra_case(s, draws=draws, tune=tune) for s in seeds]
        ad = [r["adaptive"] for r in out["lotka_volterra"]]
        out["lotka_volterra_summary"] = {"seeds": seeds, "all_within_5pct": sum(r["all_within_5pct"] for r in ad),
                                         "all_covered": sum(r["all_covered"] for r in ad),
                                         "reference_all_covered": sum(all(r["reference"]["covered"].values())
                                                                      for r in out["lotka_volterra"])}
    if "chemotaxis" in cases:
        # 8 chains, one coefficient draw each, with the draws of 2 chains of the other cases in total
        out["chemotaxis"] = [chemotaxis_case(s, draws=max(draws // 4, 5), tune=max(tune // 4, 5), chains=8)
                             for s in (getattr(args, "chemotaxis_seeds", None) or [1, 2, 3])]
    out["markdown"] = _md_table(out)
    return out
