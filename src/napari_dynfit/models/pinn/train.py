"""Training of a physics-informed network: weighted losses, Adam then L-BFGS, checkpoints.

:class:`PINN` holds a :class:`~.network.FieldNetwork`, its loss terms (:mod:`.losses`), the
trainable PDE coefficients and a :class:`~.weighting.LossWeighting`. :meth:`PINN.fit` runs Adam
up to a total number of steps, then optionally L-BFGS (weights frozen at their last values), and
can be interrupted and resumed: with ``checkpoint=path`` the state (network, coefficients,
optimiser, weights, histories, random generator) is saved every ``checkpoint_every`` steps and
when the run is cancelled; :meth:`PINN.load_checkpoint` restores it into a PINN built for the same
problem, and the next :meth:`PINN.fit` continues where it stopped.

Runs on ``device="cpu"``, ``"cuda"`` or ``"auto"``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..._io import atomic_path
from ..._progress import report
from ...device import resolve_device
from ...errors import Cancelled, InputError
from .autodiff import TermEvaluator
from .losses import PointLoss, ResidualLoss, batch_indices
from .weighting import LossWeighting


class PINN:
    """A physics-informed network with weighted loss terms.

    Parameters
    ----------
    network : FieldNetwork
        The field network.
    losses : list of PointLoss or ResidualLoss
        Loss terms (unique names).
    coefficients : dict of str -> Coefficient, optional
        Coefficients referred to by the residuals (trainable or known).
    weighting : {"fixed", "annealing", "inverse-dirichlet"}
        Weighting strategy (:mod:`.weighting`).
    weights : dict of str -> float, optional
        Fixed weights (or initial weights of adaptive strategies).
    alpha : float
        Moving-average factor of adaptive weights.
    update_every : int
        Steps between weight updates.
    lr : float
        Adam learning rate of the network; it decays exponentially,
        ``lr * lr_decay ** (step / lr_decay_steps)`` (a function of the step only, so chunked or
        resumed training follows the same schedule).
    lr_decay, lr_decay_steps : float, int
        Decay factor of the learning rate per ``lr_decay_steps`` Adam steps.
    coef_lr : float
        Adam learning rate of the coefficients (of ``log(value)`` for positive ones).
    coef_delay : int
        Adam steps before the coefficients start to move (the network first fits the data; early
        coefficient updates chase a poorly fitted field and drift towards zero).
    known : dict of str -> callable, optional
        Known fields as torch functions of the points (:class:`~.autodiff.TermEvaluator`).
    reference : dict of str -> float, optional
        Reference values of ``dev(...)`` terms.
    device : {"auto", "cpu", "cuda"}
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.float64``.
    seed : int
        Seed of the mini-batch sampling.
    """

    def __init__(self, network, losses, coefficients=None, *, weighting: str = "inverse-dirichlet", weights=None,
                 alpha: float = 0.5, update_every: int = 5, lr: float = 1e-3, lr_decay: float = 0.1,
                 lr_decay_steps: int = 2000,
                 coef_lr: float = 1e-2, coef_delay: int = 0, known=None, reference=None, device: str = "auto",
                 dtype=torch.float32, seed: int = 0):
        self.device = torch.device(resolve_device(device))
        self.dtype = dtype
        self.network = network.to(device=self.device, dtype=dtype)
        self.losses = list(losses)
        names = [loss.name for loss in self.losses]
        if not names or len(set(names)) != len(names):
            raise InputError(f"loss terms need unique names, got {names}")
        self.coefficients = dict(coefficients or {})
        for loss in self.losses:
            if not isinstance(loss, (PointLoss, ResidualLoss)):
                raise InputError(f"loss terms must be PointLoss or ResidualLoss, got {type(loss).__name__}")
            if loss.points.shape[1] != network.ndim + 1:
                raise InputError(f"loss '{loss.name}' has points with {loss.points.shape[1]} columns; the network "
                                 f"takes {network.ndim + 1} (t + {network.ndim} spatial axes)")
            if isinstance(loss, ResidualLoss):
                missing = loss.coefficient_names() - set(self.coefficients)
                if missing:
                    raise InputError(f"residual '{loss.name}' uses undeclared coefficients {sorted(missing)}: "
                                     "pass them in coefficients={name: Coefficient(init)}")
        self.coef = nn.ParameterDict({
            n: nn.Parameter(torch.tensor(math.log(c.init) if c.positive else c.init, dtype=dtype, device=self.device),
                            requires_grad=c.trainable) for n, c in self.coefficients.items()})
        self.known = dict(known or {})
        self.reference = dict(reference or {})
        self._data = [(torch.as_tensor(loss.points, dtype=dtype, device=self.device),
                       torch.as_tensor(loss.values, dtype=dtype, device=self.device) if isinstance(loss, PointLoss)
                       else None) for loss in self.losses]
        self.weighting = LossWeighting(names, [loss.name for loss in self.losses if isinstance(loss, ResidualLoss)],
                                       strategy=weighting, fixed=weights, alpha=alpha, update_every=update_every)
        self.lr, self.lr_decay, self.lr_decay_steps = float(lr), float(lr_decay), max(1, int(lr_decay_steps))
        groups = [{"params": list(self.network.parameters()), "lr": self.lr}]
        trainable = [p for p in self.coef.values() if p.requires_grad]
        if trainable:
            groups.append({"params": trainable, "lr": float(coef_lr)})
        self.coef_lr = float(coef_lr)
        self.coef_delay = int(coef_delay)
        self.optimizer = torch.optim.Adam(groups)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.step = 0
        self.lbfgs_step = 0
        self.history: dict[str, list] = {"step": [], "total": [], **{f"loss:{n}": [] for n in names},
                                         **{f"coef:{n}": [] for n in self.coefficients}}

    # --- values -----------------------------------------------------------------------------
    def coefficient_values(self) -> dict[str, float]:
        """Current coefficient values (physical units)."""
        return {n: float(self._coef(n).detach()) for n in self.coefficients}

    def _coef(self, name: str) -> torch.Tensor:
        p = self.coef[name]
        return torch.exp(p) if self.coefficients[name].positive else p

    def _loss(self, i: int, idx=None) -> torch.Tensor:
        loss = self.losses[i]
        pts, vals = self._data[i]
        if idx is not None:
            pts = pts[idx]
            vals = None if vals is None else vals[idx]
        ev = TermEvaluator(self.network, pts, self.known, self.reference)
        if isinstance(loss, PointLoss):
            pred = ev(loss.term)
            if pred.shape != vals.shape:
                raise InputError(f"loss '{loss.name}': term '{loss.term}' has shape {tuple(pred.shape)[1:]} per "
                                 f"point but the values have {tuple(vals.shape)[1:]}")
            return torch.mean((pred - vals) ** 2)
        res = ev(loss.lhs)
        for term, c in loss.rhs.items():
            if isinstance(c, str):
                val = self._coef(c.lstrip("-"))
                val = -val if c.startswith("-") else val
            else:
                val = float(c)
            res = res - val * ev(term)
        return torch.mean(res ** 2)

    def compute_losses(self, fixed_batches=None) -> dict[str, torch.Tensor]:
        """The loss terms on one mini-batch each (or on ``fixed_batches``)."""
        out = {}
        for i, loss in enumerate(self.losses):
            idx = (fixed_batches[i] if fixed_batches is not None
                   else batch_indices(len(loss.points), loss.batch_size, self.gen))
            out[loss.name] = self._loss(i, idx)
        return out

    def _record(self, losses: dict[str, torch.Tensor], total: float) -> None:
        h = self.history
        h["step"].append(self.step + self.lbfgs_step)
        h["total"].append(float(total))
        for n, v in losses.items():
            h[f"loss:{n}"].append(float(v.detach()))
        for n, v in self.coefficient_values().items():
            h[f"coef:{n}"].append(v)

    # --- optimisation -----------------------------------------------------------------------
    def _adam_step(self, record: bool) -> None:
        groups = self.optimizer.param_groups
        groups[0]["lr"] = self.lr * self.lr_decay ** (self.step / self.lr_decay_steps)
        if len(groups) > 1:
            groups[1]["lr"] = self.coef_lr if self.step >= self.coef_delay else 0.0
        losses = self.compute_losses()
        params = [p for p in self.network.parameters() if p.requires_grad]
        if self.weighting.due(self.step):
            grads = {}
            for n, L in losses.items():
                gs = torch.autograd.grad(L, params, retain_graph=True, allow_unused=True)
                grads[n] = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                      for g, p in zip(gs, params)])
            self.weighting.update(self.step, grads)
        elif not self.weighting.adaptive and not self.weighting.history:
            self.weighting.record(self.step)
        w = self.weighting.weights
        total = sum(w[n] * L for n, L in losses.items())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if record:
            self._record(losses, float(total.detach()))
        self.step += 1

    def _lbfgs(self, iterations: int, record_every: int) -> None:
        params = [p for p in self.network.parameters() if p.requires_grad] + \
                 [p for p in self.coef.values() if p.requires_grad]
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=record_every, history_size=50,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)
        batches = [batch_indices(len(loss.points), loss.batch_size, self.gen) for loss in self.losses]
        w = dict(self.weighting.weights)

        def closure():
            opt.zero_grad(set_to_none=True)
            total = sum(w[n] * L for n, L in self.compute_losses(batches).items())
            total.backward()
            return total

        while self.lbfgs_step < iterations:
            report(self.lbfgs_step, iterations, "PINN L-BFGS")
            opt.step(closure)
            self.lbfgs_step += record_every
            losses = {n: v.detach() for n, v in self.compute_losses(batches).items()}
            self._record(losses, sum(w[n] * float(v) for n, v in losses.items()))
            if not math.isfinite(self.history["total"][-1]):
                raise InputError("L-BFGS diverged (non-finite loss): train longer with Adam first or skip L-BFGS")

    def fit(self, adam_steps: int, lbfgs_steps: int = 0, *, checkpoint=None, checkpoint_every: int = 500,
            record_every: int = 10, callback=None, callback_every: int = 100) -> PINN:
        """Train (or continue training) up to ``adam_steps`` Adam steps, then ``lbfgs_steps`` L-BFGS iterations.

        Parameters
        ----------
        adam_steps : int
            Total number of Adam steps (a resumed run continues from :attr:`step`).
        lbfgs_steps : int
            L-BFGS iterations after Adam, with the loss weights frozen (0: none).
        checkpoint : str or Path, optional
            File to save the training state to every ``checkpoint_every`` steps, at the end and when
            the run is cancelled.
        record_every : int
            Steps between entries of :attr:`history`.
        callback : callable, optional
            ``callback(pinn)`` every ``callback_every`` steps (e.g. to update a live view).

        Returns
        -------
        PINN
            ``self``.
        """
        if adam_steps < 0 or lbfgs_steps < 0:
            raise InputError("adam_steps and lbfgs_steps must be >= 0")
        self.network.train()
        try:
            while self.step < adam_steps:
                if self.step % 10 == 0:
                    report(self.step, adam_steps, "PINN training")
                self._adam_step(record=self.step % record_every == 0)
                if not math.isfinite(self.history["total"][-1] if self.history["total"] else 0.0):
                    raise InputError("training diverged (non-finite loss): lower lr or rescale the data")
                if checkpoint is not None and self.step % checkpoint_every == 0:
                    self.save_checkpoint(checkpoint)
                if callback is not None and self.step % callback_every == 0:
                    callback(self)
            report(adam_steps, adam_steps, "PINN training")
            if lbfgs_steps:
                self._lbfgs(lbfgs_steps, record_every)
                if callback is not None:
                    callback(self)
        except Cancelled:
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
            raise
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        return self

    # --- prediction -------------------------------------------------------------------------
    def predict(self, points, terms=None, batch: int = 8192) -> dict[str, np.ndarray]:
        """Network fields (or any ``terms``) at ``points`` ``(N, 1 + d)``, as numpy arrays."""
        pts = np.asarray(points, dtype=float)
        names = list(terms) if terms is not None else list(self.network.outputs)
        out: dict[str, list] = {n: [] for n in names}
        for a in range(0, len(pts), batch):
            x = torch.as_tensor(pts[a:a + batch], dtype=self.dtype, device=self.device)
            ev = TermEvaluator(self.network, x, self.known, self.reference)
            for n in names:
                out[n].append(ev(n).detach().cpu().numpy())
        return {n: np.concatenate(v) if v else np.zeros(0) for n, v in out.items()}

    def predict_grid(self, coords: dict, terms=None) -> dict[str, np.ndarray]:
        """Fields on a grid: ``coords`` has ``"t"`` and the spatial axes; arrays ``(t, *space[, d])``."""
        axes = ["t", *self.network.space_axes]
        missing = [a for a in axes if a not in coords]
        if missing:
            raise InputError(f"grid coordinates {missing} are missing; need {axes}")
        mesh = np.meshgrid(*[np.asarray(coords[a], float) for a in axes], indexing="ij")
        shape = mesh[0].shape
        vals = self.predict(np.stack([m.ravel() for m in mesh], axis=1), terms)
        return {n: v.reshape(shape + v.shape[1:]) for n, v in vals.items()}

    def weight_history(self) -> dict[str, np.ndarray]:
        """``{"step": (K,), name: (K,)}``: the recorded loss weights."""
        hist = self.weighting.history
        out = {"step": np.array([s for s, _ in hist], dtype=int)}
        for n in self.weighting.names:
            out[n] = np.array([w[n] for _, w in hist], dtype=float)
        return out

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume training (the loss data is not included)."""
        return {"format": "dynfit-pinn/1", "network_config": self.network.config,
                "network": self.network.state_dict(), "coef": self.coef.state_dict(),
                "optimizer": self.optimizer.state_dict(), "weighting": self.weighting.state_dict(),
                "history": self.history, "step": self.step, "lbfgs_step": self.lbfgs_step,
                "generator": self.gen.get_state(), "loss_names": self.weighting.names,
                "coefficients": {n: vars(c) for n, c in self.coefficients.items()}}

    def save_checkpoint(self, path) -> Path:
        """Write :meth:`state_dict` to ``path`` (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return path

    def load_checkpoint(self, path) -> PINN:
        """Restore a state saved by :meth:`save_checkpoint` (the PINN must be built for the same problem)."""
        p = Path(path)
        if not p.exists():
            raise InputError(f"checkpoint '{p}' does not exist: check the path")
        try:
            state = torch.load(p, map_location=self.device, weights_only=False)
        except Exception as exc:
            raise InputError(f"cannot read checkpoint '{p}' ({exc}): is it a dynfit PINN checkpoint?") from exc
        if not isinstance(state, dict) or state.get("format") != "dynfit-pinn/1":
            raise InputError(f"'{p}' is not a dynfit PINN checkpoint")
        if state["network_config"] != self.network.config or state["loss_names"] != self.weighting.names:
            raise InputError(f"checkpoint '{p}' was written for a different network or loss set: "
                             "rebuild the problem with the same options, or start without the checkpoint")
        saved = {n: bool(c.get("trainable", True)) for n, c in state.get("coefficients", {}).items()}
        if saved != {n: c.trainable for n, c in self.coefficients.items()}:
            raise InputError(f"checkpoint '{p}' was written with other coefficients or other trainable ones "
                             f"({saved}): rebuild the problem with the same options (e.g. --refine), or start "
                             "without the checkpoint")
        self.network.load_state_dict(state["network"])
        self.coef.load_state_dict(state["coef"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.weighting.load_state_dict(state["weighting"])
        self.history = state["history"]
        self.step, self.lbfgs_step = int(state["step"]), int(state["lbfgs_step"])
        self.gen.set_state(state["generator"])
        return self
