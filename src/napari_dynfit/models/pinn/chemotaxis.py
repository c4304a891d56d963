"""Latent chemotactic field from cell tracks.

Cells move with velocity ``chi grad c + noise`` while the unseen chemical obeys
``c_t = Dc lap(c) - k c + s``. Only ``phi = chi c`` (the chemotactic potential) is determined by
the tracks, and it obeys ``phi_t = Dc lap(phi) - k phi + chi s``. A field network ``phi(t, y, x)``
is fitted with

* ``velocity``: ``grad(phi)`` at the midpoints of consecutive track positions against the
  displacement velocities (the noise averages out in the least-squares fit);
* ``pde``: the residual of ``phi_t = Dc lap(phi) - k phi + chi s`` at random collocation points
  (coefficients below);
* ``initial``: ``phi = 0`` at the first frame (the chemical is released at ``t0``), optional.

The source ``s(y, x)`` is either known (a function or a gridded field; then ``chi`` is learned
and the absolute level of ``phi`` is determined) or learned as a second network output with
``s_t = 0`` (then ``chi`` is absorbed into ``s``; the spatial mean of ``phi`` is only fixed by the
initial condition and the decay rate, so a known source gives better absolute values).

Coefficients. Joint training of the field and the coefficients from a poor guess drifts slowly
(the coefficients first collapse towards zero, then climb back over thousands of steps; the mean
of ``phi`` follows them). With a known source in a periodic box and ``phi(t0) = 0`` the equation
is solved exactly mode by mode, so ``Dc``, ``k``, ``chi`` are first estimated by a 3-parameter
least-squares fit of that exact solution's gradient to the velocities
(:func:`spectral_coefficients`, seconds); the PINN then reconstructs the field with those
coefficients (optionally refining them, ``refine=True``). Otherwise (non-periodic domain or
learned source) the coefficients are trained jointly from the initial guesses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..._progress import check_cancelled
from ...errors import InputError
from ...tables import validate_table
from .losses import Coefficient, PointLoss, ResidualLoss
from .network import FieldNetwork
from .results import _options, _options_of
from .train import PINN


def track_velocities(tracks, *, dt: float | None = None, box=None):
    """Midpoints and displacement velocities of consecutive positions of each track (2D).

    Parameters
    ----------
    tracks : DataFrame
        Columns ``frame, track_id, y, x`` (physical units).
    dt : float, optional
        Frame interval (default ``tracks.attrs["dt"]``, else 1).
    box : (float, float), optional
        Periodic box ``(L_y, L_x)``: displacements use the nearest image (default
        ``tracks.attrs["box"]`` if present, else no wrapping).

    Returns
    -------
    points : ndarray, shape (M, 3)
        ``(t, y, x)`` midpoints (``t = (frame + 1/2) dt``), wrapped into the box.
    velocities : ndarray, shape (M, 2)
        ``(v_y, v_x)`` displacement / ``dt``.
    """
    tracks = validate_table(tracks, required=("frame", "track_id", "y", "x"), what="tracks table")
    if "z" in tracks.columns:
        raise InputError("latent chemotaxis fields are 2D: pass tracks with columns frame, track_id, y, x (no z)")
    dt = float(dt if dt is not None else tracks.attrs.get("dt", 1.0))
    if not dt > 0:
        raise InputError(f"frame interval dt must be > 0, got {dt}")
    box = box if box is not None else tracks.attrs.get("box")
    df = tracks.sort_values(["track_id", "frame"])
    tid = df["track_id"].to_numpy()
    fr = df["frame"].to_numpy()
    yx = df[["y", "x"]].to_numpy(dtype=float)
    ok = (tid[1:] == tid[:-1]) & (fr[1:] == fr[:-1] + 1)
    if not ok.any():
        raise InputError("no track has two consecutive frames: velocities cannot be estimated (link the detections first)")
    d = yx[1:] - yx[:-1]
    mid = yx[:-1] + 0.5 * d
    if box is not None:
        L = np.asarray(box, dtype=float)
        d = (d + L / 2) % L - L / 2
        mid = np.mod(yx[:-1] + 0.5 * d, L)
    t = (fr[:-1] + 0.5) * dt
    return np.column_stack([t, mid])[ok], (d / dt)[ok]


def grid_source(values, y, x, *, periodic: bool = True):
    """A torch function ``s(points)`` interpolating a gridded 2D source (bilinear).

    Parameters
    ----------
    values : ndarray, shape (ny, nx)
        Source on a regular grid.
    y, x : ndarray
        Grid coordinates (uniform spacing).
    periodic : bool
        Wrap around (period ``n * spacing``).
    """
    v = torch.as_tensor(np.asarray(values, dtype=float))
    y0, x0 = float(y[0]), float(x[0])
    hy, hx = float(y[1] - y[0]), float(x[1] - x[0])
    ny, nx = v.shape

    def s(points):
        fy = (points[:, 1] - y0) / hy
        fx = (points[:, 2] - x0) / hx
        iy, ix = torch.floor(fy), torch.floor(fx)
        wy, wx = fy - iy, fx - ix
        iy, ix = iy.long(), ix.long()
        vv = v.to(points.dtype).to(points.device)

        def at(a, b):
            if periodic:
                return vv[a % ny, b % nx]
            return vv[a.clamp(0, ny - 1), b.clamp(0, nx - 1)]

        return ((1 - wy) * (1 - wx) * at(iy, ix) + (1 - wy) * wx * at(iy, ix + 1)
                + wy * (1 - wx) * at(iy + 1, ix) + wy * wx * at(iy + 1, ix + 1))

    return s


def spectral_coefficients(points, velocities, source, box, *, t0: float = 0.0, Dc: float = 0.5, k: float = 0.2,
                          chi: float = 1.0, grid: int = 64, covariance: bool = False, dt: float | None = None):
    """Least-squares estimate of ``Dc``, ``k``, ``chi`` from velocities with the exact periodic solution.

    In a periodic box with a known time-independent source and ``phi(t0) = 0`` the potential is
    linear in ``chi`` and known in closed form for given ``Dc``, ``k``: each Fourier mode ``q``
    is ``phi_q(t) = chi s_q (1 - exp(-lam_q (t - t0))) / lam_q``, ``lam_q = Dc |q|^2 + k``. The three
    (log) coefficients are fitted by nonlinear least squares of ``grad(phi)`` at the track
    midpoints against the displacement velocities (Gauss-Newton / trust region, a few FFTs per
    evaluation). This is a 3-parameter fit with the physics exact, so it is robust to the track
    noise; :func:`latent_chemotaxis_pinn` uses it to start the coefficients of the joint PINN
    fit near their values (joint training from a poor guess drifts slowly, see ``docs/pinn.md``).

    Parameters
    ----------
    points : ndarray, shape (M, 3)
        ``(t, y, x)`` of the velocity samples (:func:`track_velocities`).
    velocities : ndarray, shape (M, 2)
        ``(v_y, v_x)``.
    source : callable
        Known source ``s(points) -> (N,)`` (torch, points ``(t, y, x)``); read at ``t0``.
    box : (float, float)
        Periodic box ``(L_y, L_x)``.
    t0 : float
        Time at which the chemical is released (``phi = 0``).
    Dc, k, chi : float
        Starting guesses.
    grid : int
        FFT grid points per axis.
    dt : float, optional
        Frame interval of the displacement velocities. Given: each velocity is compared with the
        model's displacement over its frame interval from the track's start position, one
        midpoint (RK2) step -- ``grad(phi)`` at ``t_mid`` and at the start position moved by
        ``dt / 2`` times ``grad(phi)`` there at the interval's start -- instead of ``grad(phi)`` at
        the observed midpoint. Why: the midpoint model's error (the observed midpoint is where the
        noisy path went, and the path averages a curved field) biases the best-determined
        combination of the coefficients by about 2 of its standard deviations, so the Laplace
        covariance was too narrow (squared Mahalanobis distance of the truth 7.4 on average over 21
        simulations, where a calibrated posterior gives 3; with the displacement model 2.6 over 14,
        docs/pinn.md).
        ``None``: the midpoint model.
    covariance : bool
        Also return the Laplace covariance of the log coefficients, ``s^2 (J^T J)^{-1}`` with ``J``
        the residuals' Jacobian at the optimum and ``s^2`` the mean squared residual (the velocity
        noise variance per component): their posterior given the velocities under flat priors on
        the logs (:func:`~.bayes_latent.bayesian_latent_field` propagates it into the field).

    Returns
    -------
    dict
        ``{"Dc", "k", "chi"}`` (physical units).
    ndarray, shape (3, 3)
        Only with ``covariance``: covariance of ``log (Dc, k, chi)``.
    """
    from scipy.ndimage import map_coordinates
    from scipy.optimize import least_squares

    L = np.asarray(box, dtype=float)
    yy, xx = (np.arange(grid) * L[i] / grid for i in range(2))
    Y, X = np.meshgrid(yy, xx, indexing="ij")
    grid_pts = torch.as_tensor(np.column_stack([np.full(Y.size, t0), Y.ravel(), X.ravel()]), dtype=torch.float64)
    with torch.no_grad():
        s = source(grid_pts)
    s_hat = np.fft.fft2(np.asarray(torch.as_tensor(s).detach().cpu(), dtype=float).reshape(Y.shape))
    QY, QX = np.meshgrid(*(2 * np.pi * np.fft.fftfreq(grid, d=L[i] / grid) for i in range(2)), indexing="ij")
    Q2 = QY**2 + QX**2
    times, which = np.unique(points[:, 0], return_inverse=True)
    groups = [np.flatnonzero(which == i) for i in range(len(times))]
    start = None if dt is None else points[:, 1:] - 0.5 * float(dt) * velocities

    def grad_phi(ph, yx):
        idx = np.mod(yx, L) / L * grid
        return np.column_stack([map_coordinates(np.real(np.fft.ifft2(1j * Q * ph)), [idx[:, 0], idx[:, 1]], order=3,
                                                mode="grid-wrap") for Q in (QY, QX)])

    def residual(logp):
        check_cancelled()  # a few FFTs per evaluation: Cancel stops the estimate between evaluations
        Dc_, k_, chi_ = np.exp(logp)
        lam = Dc_ * Q2 + k_

        def phi_hat(t):
            return chi_ * s_hat * (-np.expm1(-lam * max(t - t0, 0.0))) / lam

        pred = np.empty_like(velocities)
        for t, sel in zip(times, groups):
            if start is None:
                pred[sel] = grad_phi(phi_hat(t), points[sel, 1:])
            else:  # midpoint (RK2) step over the frame interval from the start position
                mid = start[sel] + 0.5 * dt * grad_phi(phi_hat(t - 0.5 * dt), start[sel])
                pred[sel] = grad_phi(phi_hat(t), mid)
        return (pred - velocities).ravel()

    fit = least_squares(residual, np.log([Dc, k, chi]), x_scale=1.0)
    coefs = dict(zip(("Dc", "k", "chi"), (float(v) for v in np.exp(fit.x))))
    if not covariance:
        return coefs
    return coefs, float(np.mean(fit.fun ** 2)) * np.linalg.pinv(fit.jac.T @ fit.jac)


@dataclass
class LatentFieldProblem:
    """What :func:`latent_chemotaxis_pinn` built: the PINN, the data and the starting coefficients."""

    pinn: PINN
    points: np.ndarray
    velocities: np.ndarray
    bounds: list
    periodic: tuple
    initial_coefficients: dict
    coefficients_trained: bool
    coefficient_covariance: np.ndarray | None = None


def latent_chemotaxis_pinn(tracks, *, dt=None, box=None, source=None, initial_zero: bool = True,
                           Dc: float = 0.5, k: float = 0.2, chi: float = 1.0, weighting: str = "inverse-dirichlet",
                           hidden=(64, 64, 64), harmonics: int = 4, fourier_features: int = 8,
                           fourier_scale: float = 1.0, n_collocation: int = 4000, batch_size: int = 1024,
                           lr: float = 5e-3, coef_lr: float = 5e-2, coef_delay: int = 500, estimate: bool = True,
                           refine: bool = False, device: str = "auto", seed: int = 0) -> LatentFieldProblem:
    """Build the PINN of the latent chemotactic potential ``phi = chi c`` from tracks.

    Parameters
    ----------
    tracks : DataFrame
        2D tracks ``frame, track_id, y, x`` in physical units.
    dt : float, optional
        Frame interval (default ``tracks.attrs["dt"]``).
    box : (float, float), optional
        Periodic box ``(L_y, L_x)``; without it the domain is the bounding box of the tracks and
        not periodic.
    source : callable, optional
        Known source ``s(points) -> (N,)`` (torch, points ``(t, y, x)``), e.g. :func:`grid_source`.
        ``None``: learned (a second output ``s`` with ``s_t = 0``).
    initial_zero : bool
        Impose ``phi = 0`` at the first frame.
    Dc, k, chi : float
        Initial guesses of the coefficients (physical units).
    weighting : str
        Loss weighting strategy (:mod:`.weighting`).
    hidden, harmonics, fourier_features, fourier_scale
        Network options (:class:`~.network.FieldNetwork`).
    n_collocation : int
        Residual collocation points (uniform in the space-time box).
    batch_size : int
        Points per step for each loss term.
    lr, coef_lr : float
        Adam learning rates of the network and of the (log) coefficients.
    coef_delay : int
        Adam steps before the coefficients start to move (:class:`~.train.PINN`).
    estimate : bool
        With a known source, a periodic ``box`` and ``initial_zero``, take the coefficients from
        :func:`spectral_coefficients` (instead of starting from ``Dc``, ``k``, ``chi``) and keep
        them fixed while the network learns the field, unless ``refine``.
    refine : bool
        After an estimate, train the coefficients jointly with the field too (``coef_lr``,
        ``coef_delay``). Off by default: measured on the simulated benchmark, joint training
        moves ``k`` away from the estimate (+1 % per 100 steps) while the field is not yet
        converged and makes the field worse (``docs/pinn.md``).
    device : {"auto", "cpu", "cuda"}
    seed : int
        Random seed.

    Raises
    ------
    Cancelled
        The installed cancel event (:func:`napari_dynfit._progress.progress_context`) was set: checked between
        the set-up stages and at each evaluation of the spectral estimate.
    """
    check_cancelled()
    pts, vel = track_velocities(tracks, dt=dt, box=box)
    check_cancelled()
    dt = float(dt if dt is not None else tracks.attrs.get("dt", 1.0))
    box = box if box is not None else tracks.attrs.get("box")
    t0 = float(tracks["frame"].min()) * dt
    t1 = float(tracks["frame"].max()) * dt
    estimated = bool(estimate and source is not None and box is not None and initial_zero)
    log_cov = None
    if estimated:
        est, log_cov = spectral_coefficients(pts, vel, source, box, t0=t0, Dc=Dc, k=k, chi=chi, covariance=True, dt=dt)
        Dc, k, chi = est.values()
    trainable = not estimated or refine
    check_cancelled()
    if box is not None:
        box = np.asarray(box, dtype=float)
        bounds = [(t0, t1), (0.0, box[0]), (0.0, box[1])]
        periodic = (True, True)
    else:
        lo, hi = tracks[["y", "x"]].min().to_numpy(float), tracks[["y", "x"]].max().to_numpy(float)
        bounds = [(t0, t1), (lo[0], hi[0]), (lo[1], hi[1])]
        periodic = (False, False)
    span = np.array([b - a for a, b in bounds[1:]])
    # phi varies by about |v| L / (2 pi) over the box; a quarter of that as the output scale starts the
    # network smooth (large initial outputs of the tanh MLP slow the fit down several-fold)
    scale = 0.25 * float(np.sqrt(np.mean(np.sum(vel**2, axis=1))) * span.mean() / (2 * np.pi))
    outputs = {"phi": "scalar"} if source is not None else {"phi": "scalar", "s": "scalar"}
    net = FieldNetwork(bounds, outputs, periodic=periodic, hidden=hidden, harmonics=harmonics,
                       fourier_features=fourier_features, fourier_scale=fourier_scale,
                       output_scale={"phi": scale, "s": scale / max(t1 - t0, 1e-12)}, seed=seed)
    rng = np.random.default_rng(seed)
    coll = np.column_stack([rng.uniform(lo, hi, n_collocation) for lo, hi in bounds])
    losses = [PointLoss("velocity", "grad(phi)", pts, vel, batch_size=batch_size)]
    coefs = {"Dc": Coefficient(Dc, trainable=trainable), "k": Coefficient(k, trainable=trainable)}
    if source is not None:
        coefs["chi"] = Coefficient(chi, trainable=trainable)
        rhs = {"lap(phi)": "Dc", "phi": "-k", "s": "chi"}
        known = {"s": source}
    else:
        rhs = {"lap(phi)": "Dc", "phi": "-k", "s": 1.0}
        known = None
    losses.append(ResidualLoss("pde", "phi_t", rhs, coll, batch_size=batch_size))
    if source is None:
        losses.append(ResidualLoss("steady source", "s_t", {}, coll, batch_size=batch_size))
    if initial_zero:
        n0 = min(2000, n_collocation)
        init = np.column_stack([np.full(n0, t0)] + [rng.uniform(lo, hi, n0) for lo, hi in bounds[1:]])
        losses.append(PointLoss("initial", "phi", init, np.zeros(n0), kind="initial", batch_size=batch_size))
    check_cancelled()
    pinn = PINN(net, losses, coefs, weighting=weighting, known=known, lr=lr, coef_lr=coef_lr,
                coef_delay=coef_delay, device=device, seed=seed)
    check_cancelled()
    return LatentFieldProblem(pinn, pts, vel, bounds, periodic, {"Dc": Dc, "k": k, "chi": chi}, trainable, log_cov)


def visited_mask(points, coords, radius: float, box=None) -> np.ndarray:
    """Grid points within ``radius`` of an observed cell position at the nearest frame time.

    Parameters
    ----------
    points : ndarray, shape (M, 3)
        Observed ``(t, y, x)``.
    coords : dict
        Grid ``"t"``, ``"y"``, ``"x"``.
    radius : float
        Distance (length units).
    box : (float, float), optional
        Periodic box (distances use the nearest image).

    Returns
    -------
    ndarray of bool, shape (nt, ny, nx)
    """
    from scipy.spatial import cKDTree

    t = np.asarray(coords["t"], float)
    Y, X = np.meshgrid(coords["y"], coords["x"], indexing="ij")
    grid = np.column_stack([Y.ravel(), X.ravel()])
    which = np.abs(points[:, :1] - t[None, :]).argmin(axis=1)
    mask = np.zeros((len(t),) + Y.shape, dtype=bool)
    for i in range(len(t)):
        sel = points[which == i, 1:]
        if len(sel) == 0:
            continue
        if box is not None:
            L = np.asarray(box, float)
            tree = cKDTree(np.mod(sel, L), boxsize=L)
            d, _ = tree.query(np.mod(grid, L))
        else:
            d, _ = cKDTree(sel).query(grid)
        mask[i] = (d <= radius).reshape(Y.shape)
    return mask


def fit_latent_field(tracks, *, steps: int = 1500, lbfgs_steps: int = 0, grid: int = 64, checkpoint=None,
                     callback=None, callback_every: int = 100, dt=None, box=None, source=None,
                     initial_zero: bool = True, Dc: float = 0.5, k: float = 0.2, chi: float = 1.0,
                     weighting: str = "inverse-dirichlet", hidden=(64, 64, 64), harmonics: int = 4,
                     fourier_features: int = 8, fourier_scale: float = 1.0, n_collocation: int = 4000,
                     batch_size: int = 1024, lr: float = 5e-3, coef_lr: float = 5e-2, coef_delay: int = 500,
                     estimate: bool = True, refine: bool = False, device: str = "auto", seed: int = 0):
    """Infer the chemotactic potential ``phi = chi c`` and ``Dc``, ``k`` (and ``chi``) from tracks.

    Parameters
    ----------
    tracks : DataFrame
        2D tracks ``frame, track_id, y, x`` (physical units; ``attrs`` may hold ``dt`` and ``box``).
    steps, lbfgs_steps : int
        Adam steps and L-BFGS iterations.
    grid : int
        Grid points per spatial axis of the returned fields.
    checkpoint : str or Path, optional
        Checkpoint file; training resumes from it when it exists.
    callback : callable, optional
        ``callback(pinn)`` every ``callback_every`` steps.
    dt, box, source, initial_zero, Dc, k, chi, weighting, hidden, harmonics, fourier_features, fourier_scale, \
n_collocation, batch_size, lr, coef_lr, coef_delay, estimate, refine, device, seed
        The problem, network and training of :func:`latent_chemotaxis_pinn` (same meanings and defaults).

    Returns
    -------
    LatentFieldResult
        ``fields``: ``phi`` (and the learned ``s``) at the frame times on a ``grid x grid`` mesh;
        ``attrs["pinn"]`` holds the coefficients, their starting values (the spectral estimate when
        one was made), whether they were trained, the final losses and weights; ``problem``: the PINN and the
        velocity data; ``options``: every option of the call (``callback`` aside). Unpacks as ``fields, problem``.
    """
    options = _options(locals(), ("tracks", "callback"))  # first: locals() is the call's arguments only here
    from pathlib import Path

    from ...fields import FieldBundle
    from ...validate import check_latent_grid
    from .denoise import summary

    if "frame" in getattr(tracks, "columns", ()) and len(tracks):  # before training (a bad table: the problem says so)
        check_latent_grid(grid, int(tracks["frame"].max() - tracks["frame"].min()) + 1)

    prob = latent_chemotaxis_pinn(tracks, **_options_of(latent_chemotaxis_pinn, options))
    if checkpoint is not None and Path(checkpoint).exists():
        prob.pinn.load_checkpoint(checkpoint)
    prob.pinn.fit(steps, lbfgs_steps, checkpoint=checkpoint, callback=callback, callback_every=callback_every)
    coords = latent_grid(prob, tracks, grid, dt)
    vals = prob.pinn.predict_grid(coords)
    bundle = FieldBundle(vals, coords, periodic=prob.periodic,
                         attrs={"pinn": {**summary(prob.pinn), "initial_coefficients": prob.initial_coefficients,
                                         "coefficients_trained": prob.coefficients_trained},
                                "field": "phi = chi * c (chemotactic potential)"})
    from .results import LatentFieldResult

    return LatentFieldResult(fields=bundle, problem=prob, options=options)


def latent_grid(prob: LatentFieldProblem, tracks, grid: int, dt=None) -> dict:
    """Grid coordinates of the latent field: the frame times and ``grid`` points per spatial axis."""
    dt = float(dt if dt is not None else tracks.attrs.get("dt", 1.0))
    frames = np.arange(int(tracks["frame"].min()), int(tracks["frame"].max()) + 1)
    coords = {"t": frames * dt}
    for (lo, hi), a, per in zip(prob.bounds[1:], ("y", "x"), prob.periodic):
        coords[a] = lo + (hi - lo) * np.arange(grid) / grid if per else np.linspace(lo, hi, grid)
    return coords
