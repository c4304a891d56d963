"""Score ``grad log p_t(x)`` of the population density at every time, from snapshots.

Time-conditioned, noise-conditional denoising score matching (NCSN, Song & Ermon 2019; as used by probability
flow inference, Maddu et al. arXiv:2410.07501):

* one network ``s(x, t, sigma) = net(z, tau, log sigma) / sigma`` for all snapshots (``z`` the standardised
  coordinates, ``tau`` the standardised time), so the score is also defined between snapshots;
* noise levels on a geometric schedule ``sigma_i = sigma_max (sigma_min / sigma_max)^(i / (L - 1))``; the loss
  of one sample is ``|sigma s(x + sigma eps) + eps|^2`` (the ``sigma^2``-weighted DSM loss);
* each sample is noised with ``+eps`` and ``-eps`` (antithetic pair): this cancels the leading noise of the
  regression target at small ``sigma`` and makes the score there far more accurate for the same cost;
* the snapshots' losses are balanced with inverse-Dirichlet weights (Maddu et al. 2022): snapshot ``k`` gets
  weight ``max_j std(grad L_j) / std(grad L_k)`` (moving average), so no snapshot dominates the gradient;
* the score at the data is read at ``sigma_min``; :func:`annealed_langevin` samples the learned densities
  (annealed Langevin dynamics down the schedule) to check them against the data.

Written here (not taken from a library) because the time conditioning and the snapshot balancing are the
product: generic score-matching packages model one static distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..._progress import progress_iter
from ...errors import InputError
from ._torch import as_tensor, mlp, resolve_device, seeded_generator
from .io import Snapshots

__all__ = ["ScoreModel", "fit_score", "annealed_langevin"]


@dataclass
class ScoreModel:
    """A fitted time-dependent score ``grad_x log p_t(x)`` in the data's units.

    Attributes
    ----------
    net : torch.nn.Module
        Maps ``(z, tau, log sigma)`` (``d + 2`` features) to ``sigma`` times the score of the standardised data.
    mean, std : torch.Tensor, shape (d,) or (K, d)
        Standardisation of the coordinates (``z = (x - mean) / std``): one for all times, or one per snapshot
        (``standardise="snapshot"``), linearly interpolated in time between the snapshot times ``snap_times``.
    t_mean, t_std : float
        Standardisation of time.
    sigmas : ndarray, shape (L,)
        Noise levels (standardised units), largest first.
    history : list of float
        Training loss (weighted sum over snapshots) every 10 steps.
    """

    net: torch.nn.Module
    mean: torch.Tensor
    std: torch.Tensor
    t_mean: float
    t_std: float
    sigmas: np.ndarray
    history: list = field(default_factory=list)
    snap_times: np.ndarray | None = None

    @property
    def sigma_min(self) -> float:
        """Smallest noise level (standardised units): the level at which :meth:`__call__` reads the score."""
        return float(self.sigmas[-1])

    def _features(self, z: torch.Tensor, t, sigma: float) -> torch.Tensor:
        n = z.shape[0]
        tt = torch.as_tensor(t, dtype=z.dtype, device=z.device)
        tau = ((tt - self.t_mean) / self.t_std).reshape(-1, 1).expand(n, 1)
        ls = torch.full((n, 1), float(np.log(sigma)), dtype=z.dtype, device=z.device)
        return torch.cat([z, tau, ls], dim=1)

    def score_standardised(self, z: torch.Tensor, t, sigma: float) -> torch.Tensor:
        """Score of the noised, standardised density at noise level ``sigma``; ``z`` is ``(n, d)``."""
        return self.net(self._features(z, t, sigma)) / sigma

    def standardisation(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std ``(d,)`` (scalar ``t``) or ``(n, d)`` (``t`` of shape ``(n,)``) used at time ``t``."""
        if self.mean.ndim == 1:
            return self.mean, self.std
        T = torch.as_tensor(np.asarray(self.snap_times), dtype=self.mean.dtype, device=self.mean.device)
        tt = torch.as_tensor(t, dtype=self.mean.dtype, device=self.mean.device).reshape(-1)
        k = torch.searchsorted(T, tt).clamp(1, len(T) - 1)
        w = ((tt - T[k - 1]) / (T[k] - T[k - 1])).clamp(0, 1)[:, None]
        m = self.mean[k - 1] * (1 - w) + self.mean[k] * w
        s = self.std[k - 1] * (1 - w) + self.std[k] * w
        return (m[0], s[0]) if torch.as_tensor(t).ndim == 0 else (m, s)

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        """``grad_x log p_t(x)`` at the points ``x`` ``(n, d)`` (data units); ``t`` a scalar or ``(n,)`` times.

        Differentiable with respect to ``x``.
        """
        mean, std = self.standardisation(t)
        z = (x - mean) / std
        return self.score_standardised(z, t, self.sigma_min) / std

    def to(self, device) -> ScoreModel:
        """Move the model to ``device`` (in place); returns ``self``."""
        self.net.to(device)
        self.mean = self.mean.to(device)
        self.std = self.std.to(device)
        return self

    def state(self) -> dict:
        """Everything needed to rebuild the model (for ``torch.save``)."""
        return {"net": self.net.state_dict(), "mean": self.mean.cpu(), "std": self.std.cpu(),
                "t_mean": self.t_mean, "t_std": self.t_std, "sigmas": self.sigmas.tolist(),
                "arch": _arch(self.net),
                "snap_times": None if self.snap_times is None else np.asarray(self.snap_times).tolist()}

    @classmethod
    def from_state(cls, state: dict) -> ScoreModel:
        """Inverse of :meth:`state`."""
        net = mlp(*state["arch"])
        net.load_state_dict(state["net"])
        times = state.get("snap_times")
        return cls(net=net, mean=state["mean"], std=state["std"], t_mean=state["t_mean"], t_std=state["t_std"],
                   sigmas=np.asarray(state["sigmas"]), snap_times=None if times is None else np.asarray(times))


def _arch(net: torch.nn.Sequential) -> tuple[int, int, int, int]:
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    return lin[0].in_features, lin[-1].out_features, lin[0].out_features, len(lin) - 1


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> np.ndarray:
    """``n_levels`` noise levels from ``sigma_max`` down to ``sigma_min`` on a geometric progression."""
    return np.geomspace(sigma_max, sigma_min, n_levels)


def fit_score(snapshots: Snapshots, *, n_levels: int = 10, sigma_min: float = 0.05, sigma_max: float = 1.0,
              steps: int = 3000, batch_size: int = 512, lr: float = 2e-3, width: int = 128, depth: int = 3,
              reweight_every: int = 50, standardise: str = "global", snapshots_per_step: int | None = 16,
              device: str = "auto", seed: int = 0) -> ScoreModel:
    """Fit one time-conditioned, noise-conditional score network to all snapshots.

    Parameters
    ----------
    snapshots : Snapshots
        The data (``K`` times, ``d`` coordinates).
    n_levels : int
        Number of noise levels ``L`` of the geometric schedule.
    sigma_min, sigma_max : float
        Smallest and largest noise level, in units of the data's standard deviation (per coordinate).
    steps : int
        Adam steps (cosine-decayed learning rate).
    batch_size : int
        Samples drawn per snapshot per step.
    lr : float
        Initial learning rate.
    width, depth : int
        Hidden layer width and number of hidden layers.
    reweight_every : int
        Steps between updates of the inverse-Dirichlet snapshot weights (0: equal weights).
    standardise : {"global", "snapshot"}
        Standardise the coordinates with the mean and std of all snapshots together, or of each snapshot
        (interpolated in time between them). ``"snapshot"`` suits populations that move far compared with their
        width: with one global scale each snapshot is then a narrow cloud, comparable to ``sigma_min``.
    snapshots_per_step : int or None
        With more snapshots than this, each step draws ``batch_size`` samples from each of a random subset of
        this many snapshots (a new subset every step; the loss is rescaled to the sum over all snapshots, and the
        inverse-Dirichlet weights of the subset are updated), so a step costs the same however many snapshots
        there are: on the GUI sample's 400 frames of ~750 positions, all of them made a step take 4.9 s instead
        of 0.11 s (one CPU core, same load; docs/flow.md). With at most this many snapshots (the benchmarks have 5) every step uses
        all of them and draws exactly what it did before this option existed. ``None``: always all.
    device : {"auto", "cpu", "cuda"}
        Where to train.
    seed : int
        Seeds the network initialisation and the batches.

    Returns
    -------
    ScoreModel
    """
    if not 0 < sigma_min < sigma_max:
        raise InputError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    if standardise not in ("global", "snapshot"):
        raise InputError(f"standardise '{standardise}' is not known: use 'global' or 'snapshot'")
    if snapshots_per_step is not None and int(snapshots_per_step) < 1:
        raise InputError(f"snapshots_per_step must be at least 1 (or None for all), got {snapshots_per_step}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    gen = seeded_generator(seed)
    if standardise == "global":
        allx = np.concatenate(snapshots.samples)
        mean = allx.mean(axis=0)
        std = allx.std(axis=0) + 1e-12
        data = [as_tensor((x - mean) / std, dev) for x in snapshots.samples]
    else:
        mean = np.stack([x.mean(axis=0) for x in snapshots.samples])
        std = np.stack([x.std(axis=0) for x in snapshots.samples]) + 1e-12
        data = [as_tensor((x - m) / s, dev) for x, m, s in zip(snapshots.samples, mean, std)]
    t_mean = float(np.mean(snapshots.times))
    t_std = float(np.std(snapshots.times)) or 1.0
    times = [float(t) for t in snapshots.times]
    d = snapshots.dim
    net = mlp(d + 2, d, width, depth).to(dev)
    model = ScoreModel(net=net, mean=as_tensor(mean, dev), std=as_tensor(std, dev), t_mean=t_mean, t_std=t_std,
                       sigmas=geometric_sigmas(sigma_max, sigma_min, n_levels),
                       snap_times=None if standardise == "global" else np.asarray(times))
    log_sig = torch.as_tensor(np.log(model.sigmas), dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.02)
    K = len(data)
    weights = torch.ones(K, device=dev)

    subset = snapshots_per_step is not None and int(snapshots_per_step) < K

    def snapshot_losses(ks) -> list[torch.Tensor]:
        losses = []
        for k in ks:
            idx = torch.randint(0, data[k].shape[0], (batch_size,), generator=gen).to(dev)
            z = data[k][idx]
            lvl = torch.randint(0, len(log_sig), (batch_size,), generator=gen)
            sig = log_sig[lvl].exp().to(dev).unsqueeze(1)
            eps = torch.randn(z.shape, generator=gen).to(dev)
            tau = torch.full((batch_size, 1), (times[k] - t_mean) / t_std, device=dev)
            # antithetic pairs (x + sigma eps, x - sigma eps) cancel the O(sigma) noise of the DSM target
            zz = torch.cat([z + sig * eps, z - sig * eps])
            ee = torch.cat([eps, -eps])
            ss = torch.cat([sig, sig])
            out = net(torch.cat([zz, torch.cat([tau, tau]), ss.log()], dim=1))
            losses.append(((out + ee) ** 2).sum(dim=1).mean())
        return losses

    for step in progress_iter(range(steps), desc="score matching"):
        if not subset:  # every snapshot, every step (the draws of the code before snapshots_per_step)
            losses = snapshot_losses(range(K))
            if reweight_every and step % reweight_every == 0 and K > 1:
                weights = _inverse_dirichlet(losses, net, weights)
            loss = sum(w * l for w, l in zip(weights, losses))
        else:  # a random subset of snapshots: the cost of a step does not grow with K
            ks = torch.randperm(K, generator=gen)[:int(snapshots_per_step)].sort().values
            losses = snapshot_losses(ks.tolist())
            if reweight_every and step % reweight_every == 0:
                # the subset's weights, renormalised to keep their sum (the others are not touched)
                w_old = weights[ks]
                weights[ks] = _inverse_dirichlet(losses, net, w_old) * (w_old.sum() / len(ks))
            w = weights[ks]
            loss = sum(wk * lk for wk, lk in zip(w, losses)) * (K / len(ks))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 10 == 0:
            model.history.append(float(loss.detach()))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return model


def _inverse_dirichlet(losses, net, previous: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Inverse-Dirichlet weights ``max_j std(grad L_j) / std(grad L_k)``, averaged with the previous ones."""
    params = [p for p in net.parameters() if p.requires_grad]
    stds = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        flat = torch.cat([g.reshape(-1) for g in grads if g is not None])
        stds.append(flat.std())
    stds = torch.stack(stds).detach()
    new = stds.max() / (stds + 1e-12)
    w = alpha * previous + (1 - alpha) * new
    return w * len(w) / w.sum()


@torch.no_grad()
def annealed_langevin(model: ScoreModel, t: float, n_samples: int, *, steps_per_level: int = 100,
                      step_size: float = 2e-5, seed: int = 0) -> np.ndarray:
    """Sample the learned density at time ``t`` with annealed Langevin dynamics.

    Starts from a standard Gaussian (standardised units, scaled to ``sigma_max``) and runs ``steps_per_level``
    Langevin steps ``z += a/2 s + sqrt(a) xi`` at each noise level with ``a = step_size (sigma / sigma_min)^2``.

    Returns
    -------
    ndarray, shape (n_samples, d)
        Samples in the data's units.
    """
    dev = model.mean.device
    gen = seeded_generator(seed)
    d = model.mean.shape[-1]
    sig_max = float(model.sigmas[0])
    z = (torch.randn((n_samples, d), generator=gen) * np.sqrt(1.0 + sig_max**2)).to(dev)
    for sigma in progress_iter(model.sigmas, desc="annealed Langevin"):
        a = step_size * (sigma / model.sigma_min) ** 2
        for _ in range(steps_per_level):
            s = model.score_standardised(z, t, float(sigma))
            z = z + 0.5 * a * s + np.sqrt(a) * torch.randn(z.shape, generator=gen).to(dev)
    mean, std = model.standardisation(t)
    x = z * std + mean
    return x.cpu().numpy()
