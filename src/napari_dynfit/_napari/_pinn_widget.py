"""Dock widget "Latent field (PINN)": infer the hidden chemotactic field from a tracks layer.

Training runs in a ``thread_worker`` in chunks; after each chunk the inferred field
``phi = chi c`` is shown as an image layer over the movie (same world coordinates as the tracks)
and the loss and weight curves are redrawn. "Stop" cancels at the next step; with a checkpoint
file set, "Train" resumes from it.
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox

from ..errors import DynfitError
from ._contract import StepContract
from ._jobs import StepJob
from ._layers import data_range, show_layer
from ._plots import make_canvas

#: the latent field's image layer is ``f"{LAYER} ({unit})"`` (:meth:`LatentFieldWidget.layer_name`): napari's
#: colour bar has no title, so the name says what it shows; ``phi = chi c`` has ``grad(phi)`` = a velocity, so its
#: unit is length²/time of the tracks' world (``"latent field phi (µm²/s)"``)
LAYER = "latent field phi"
#: the posterior standard deviation of ``phi`` (Bayesian runs), in the same unit
STD_LAYER = "posterior std of phi"
#: progress description and number of stages of the set-up before training (reading tracks, building the PINN)
SETUP, SETUP_STAGES = "PINN set-up", 4


class LatentFieldWidget(StepContract, Container):
    """Infer ``phi = chi c`` and ``Dc``, ``k`` from a tracks layer; live overlay and training curves."""

    INPUTS = (("tracks", "_layer", ("Tracks", "Points"), "no tracks yet: Detect and Track on page 3"),)
    PARAMS = {"dt": "_dt", "periodic_box_y": "_box_y", "periodic_box_x": "_box_x"}
    OUTPUTS = ((f"{LAYER} (*)", "Image"),)
    NEEDS = ("chemical field",)

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._layer = ComboBox(label="tracks", choices=self._track_layers)
        self._dt = FloatSpinBox(value=1.0, min=1e-6, max=1e6, step=0.1, label="frame interval")
        self._box_y = FloatSpinBox(value=0.0, min=0.0, max=1e9, label="periodic box y (0: none)")
        self._box_x = FloatSpinBox(value=0.0, min=0.0, max=1e9, label="periodic box x (0: none)")
        self._weighting = ComboBox(choices=["inverse-dirichlet", "annealing", "fixed"], label="loss weights")
        # Adam steps: fit_latent_field's and `dynfit latent-field`'s default (the latent-chemotaxis figure's 1500;
        # with "Bayesian" the warm-up steps, as --steps of `dynfit latent-field --bayesian`); tests/test_pinn_widget.py
        self._steps = SpinBox(value=1500, min=10, max=1_000_000, step=100, label="Adam steps")
        self._chunk = SpinBox(value=100, min=10, max=10_000, step=10, label="refresh every (steps)")
        self._grid = SpinBox(value=48, min=8, max=512, label="grid points")
        self._checkpoint = FileEdit(mode="w", filter="*.pt", label="checkpoint (optional)", value="")
        self._status = Label(value="")
        self._run = PushButton(text="Train")
        self._stop = PushButton(text="Stop", enabled=False)
        self.extend([self._layer, self._dt, self._box_y, self._box_x, self._weighting, self._steps, self._chunk,
                     self._grid, self._checkpoint, self._run, self._stop, self._status])
        # Bayesian PINN (issue 20): posterior mean and std layers, parameter histograms, live draws
        self._bayesian = CheckBox(value=False, label="Bayesian (HMC: mean and std)")
        self._draws = SpinBox(value=100, min=2, max=100_000, step=10, label="posterior draws per chain")
        self._bayes_coefs = CheckBox(value=False, label="sample Dc, k, chi too")
        self.insert(self.index(self._run), self._bayesian)
        self.insert(self.index(self._run), self._draws)
        self.insert(self.index(self._run), self._bayes_coefs)
        self._draws_seen: dict = {}
        self._figure, self._canvas = make_canvas((4, 4), 260)
        self._figure.add_subplot(2, 1, 1)
        self._figure.add_subplot(2, 1, 2)
        # redrawn live while training: a fixed layout (constrained layout costs ~0.2 s of GUI-thread time per draw)
        self._figure.set_layout_engine(None)  # not "none": that keeps constrained's veto on subplots_adjust
        self._figure.subplots_adjust(left=0.16, right=0.97, top=0.93, bottom=0.12, hspace=0.55)
        self.native.layout().addWidget(self._canvas)
        self._job = StepJob(self._run, self._stop, self._status, viewer=self._viewer)
        self._lines: dict = {}
        self._source, self._fit_dt = None, 1.0
        self._run.changed.connect(self.train)
        napari_viewer.layers.events.inserted.connect(self._layer.reset_choices)
        napari_viewer.layers.events.removed.connect(self._layer.reset_choices)

    def _track_layers(self, _widget=None):
        """Tracks (and Points with ``track_id``) layers; never ground truth (the samples' truth is for checking)."""
        from ._defaults import input_layers

        return input_layers(self._viewer, ("Tracks", "Points"))

    # ------------------------------------------------------------------------------------------
    def _settings(self) -> dict:
        """The widget's values, read in the GUI thread before the worker starts."""
        ck = self._checkpoint.value if str(self._checkpoint.value) not in ("", ".") else None
        box = (self._box_y.value, self._box_x.value) if self._box_y.value > 0 and self._box_x.value > 0 else None
        return {"layer": self._layer.value, "dt": self._dt.value, "box": box, "weighting": self._weighting.value,
                "grid": self._grid.value, "steps": self._steps.value, "chunk": self._chunk.value, "checkpoint": ck}

    @staticmethod
    def _problem(settings):
        """The PINN problem and its display grid from the tracks layer (runs in the worker).

        The set-up reports its stages (:data:`SETUP` in the status label and the activity dock) and stops with
        :class:`~napari_dynfit.errors.Cancelled` at the next stage once Cancel is pressed (the core checks too:
        :func:`~napari_dynfit.models.pinn.chemotaxis.latent_chemotaxis_pinn`).
        """
        from .._progress import report

        report(0, SETUP_STAGES, SETUP)
        from ..models.pinn import latent_chemotaxis_pinn  # the first import of torch costs seconds
        from ..models.pinn.chemotaxis import latent_grid
        from ..track.io_formats import tracks_from_napari

        report(1, SETUP_STAGES, SETUP)
        layer = settings["layer"]
        if layer is None:
            raise DynfitError("add a Tracks layer (2D+t) first")
        tracks = tracks_from_napari(layer)  # world coordinates (scale, translate), as the overlay is drawn
        if "z" in tracks.columns:
            raise DynfitError(f"layer '{layer.name}' is 3D: the latent-field PINN takes 2D+t tracks")
        report(2, SETUP_STAGES, SETUP)
        prob = latent_chemotaxis_pinn(tracks, dt=settings["dt"], box=settings["box"],
                                      weighting=settings["weighting"], device="auto")
        report(3, SETUP_STAGES, SETUP)
        ck = settings["checkpoint"]
        if ck is not None and ck.exists() and ck.is_file():
            prob.pinn.load_checkpoint(ck)
        coords = latent_grid(prob, tracks, settings["grid"], settings["dt"])
        report(SETUP_STAGES, SETUP_STAGES, SETUP)
        return prob, coords

    @classmethod
    def training(cls, settings):
        """Generator run by the worker: build the problem, train in chunks, yield ``(pinn, phi grid, coords)``."""
        from .._progress import overall_total

        prob, coords = cls._problem(settings)
        pinn = prob.pinn
        steps, chunk = settings["steps"], settings["chunk"]
        while pinn.step < steps:
            with overall_total(steps, "PINN training"):  # the progress shows n/steps, not n/(end of this chunk)
                pinn.fit(min(steps, pinn.step + chunk), checkpoint=settings["checkpoint"], checkpoint_every=chunk)
            yield pinn, pinn.predict_grid(coords)["phi"], coords

    def train(self, *_, block: bool = False) -> None:
        """Start (or resume) training in the widget's job (everything, the set-up included, runs in the worker);
        with ``block`` run in the calling thread (tests, scripts)."""
        settings = self._settings()
        self._source = settings["layer"]  # the overlay is drawn in its world
        self._fit_dt = settings["dt"]  # and named in its units (layer_name)
        self._lines = {}
        if self._bayesian.value:
            settings.update(draws=self._draws.value, sample_coefficients=self._bayes_coefs.value)
            self._draws_seen = {}
            self._job.start(lambda: self.sampling(settings), on_yield=self._show_posterior,
                            busy="sampling the posterior...", block=block)
            return
        self._job.start(lambda: self.training(settings), on_yield=self._show, busy="training...", block=block)

    def sampling(self, settings):
        """Generator run by the worker: BPINN warm-up and HMC; live parameter draws, then mean/std fields.

        Stop ends the sampling and the draws so far are summarised and shown.
        """
        from .._progress import report

        report(0, SETUP_STAGES, SETUP)
        from ..models.pinn.bayes_latent import bayesian_latent_field  # the first import of torch costs seconds
        from ..track.io_formats import tracks_from_napari

        report(1, SETUP_STAGES, SETUP)
        layer = settings["layer"]
        if layer is None:
            raise DynfitError("add a Tracks layer (2D+t) first")
        tracks = tracks_from_napari(layer)
        if "z" in tracks.columns:
            raise DynfitError(f"layer '{layer.name}' is 3D: the latent-field PINN takes 2D+t tracks")
        job, every = self._job, max(1, settings["chunk"] // 10)

        def progress(chain, i, total, theta):
            if i % every == 0 or i == total - 1:
                job.deliver(("draw", chain, i, total, theta))

        bundle, res = bayesian_latent_field(
            tracks, dt=settings["dt"], box=settings["box"], grid=settings["grid"], draws=settings["draws"],
            tune=settings["draws"], warmup_steps=settings["steps"], lbfgs_steps=min(100, settings["steps"]),
            sample_coefficients=settings["sample_coefficients"],
            weighting="fixed" if settings["weighting"] == "fixed" else "adaptive", device="auto",
            callback=progress, callback_state=True, should_stop=job.cancel_event.is_set)
        yield ("final", bundle, res)

    def _show_posterior(self, item) -> None:
        if item[0] == "draw":
            _, chain, i, total, theta = item
            for k, v in theta.items():
                self._draws_seen.setdefault(k, []).append(v)
            self._status.value = f"chain {chain + 1}, iteration {i + 1}/{total}: " + ", ".join(
                f"{k}={v:.3g}" for k, v in theta.items())
            self._plot_histograms(self._draws_seen)
            return
        _, bundle, res = item
        geo = self._geometry(bundle.coords)  # the grid on the tracks' time axis and space, their units and labels
        for base, data, cmap in ((LAYER, bundle["phi"], "magma"), (STD_LAYER, bundle["phi_std"], "viridis")):
            show_layer(self._viewer, "image", data, self.layer_name(base), owner=self, **geo, colormap=cmap,
                       opacity=0.6, blending="additive", contrast_limits=data_range(data), refresh=("contrast_limits",))
        d = res.diagnostics
        self._status.value = (f"{d['draws']} draws x {d['chains']} chains" + (" (stopped)" if d["stopped"] else "")
                              + "; noise " + ", ".join(f"{k}={v:.3g}" for k, v in res.noise.items()))
        if res.samples:
            self._plot_histograms({k: v.reshape(-1) for k, v in res.samples.items()})

    def _plot_histograms(self, draws: dict) -> None:
        """Parameter posterior histograms (draws so far, tuning included while sampling)."""
        ax_a, ax_b = self._figure.axes
        for ax in (ax_a, ax_b):
            ax.clear()
        for ax, (name, vals) in zip((ax_a, ax_b, ax_b), draws.items()):
            ax.hist(vals, bins=20, alpha=0.6, label=name)
            ax.legend(fontsize=7)
        ax_b.set_xlabel("parameter value")
        self._canvas.draw_idle()

    def stop(self, *_) -> None:
        """Cancel the running training (a checkpoint, if set, keeps its state)."""
        self._job.stop()

    def _show(self, item) -> None:
        pinn, phi, coords = item
        self._coords = coords
        geo = self._geometry(coords)
        # phi is known up to a constant and its range moves while it trains (this runs at every update): the
        # contrast follows it (napari keeps an Image's limits when its data is replaced)
        layer = show_layer(self._viewer, "image", phi, self.layer_name(), owner=self, **geo, colormap="magma",
                           opacity=0.6, blending="additive", contrast_limits=data_range(phi),
                           refresh=("contrast_limits",))
        coefs = pinn.coefficient_values()
        self._status.value = f"step {pinn.step}: " + ", ".join(f"{k}={v:.3g}" for k, v in coefs.items())
        self._plot_curves(pinn)
        self.made.emit(layer)

    def layer_name(self, base: str = LAYER) -> str:
        """``"latent field phi (µm²/s)"``: ``base`` and the unit of ``phi``, length²/time in the world units of the
        tracks layer trained on (``grad(phi)`` is their velocity; :func:`._geometry.unit_symbols`)."""
        from ._geometry import unit_symbols

        space, time = unit_symbols(self._source, self._fit_dt)
        return f"{base} ({space}²/{time})"

    def _geometry(self, coords) -> dict:
        """The field grid in the tracks layer's world: space in its world units (the tracks were read in world
        coordinates), grid times ``frame * dt`` on its time axis; its units and axis labels."""
        from ._geometry import layer_kwargs, world_time

        source = self._source
        t = world_time(source, coords["t"][:2] if len(coords["t"]) > 1 else [coords["t"][0], coords["t"][0] + 1.0],
                       self._dt.value)
        kw = layer_kwargs(source) if source is not None and source.ndim == 3 else {}
        kw["scale"] = (float(t[1] - t[0]), coords["y"][1] - coords["y"][0], coords["x"][1] - coords["x"][0])
        kw["translate"] = (float(t[0]), coords["y"][0], coords["x"][0])
        return kw

    def _plot_curves(self, pinn) -> None:
        """Loss and weight curves; lines are updated in place (a full redraw would stall the event loop)."""
        ax_loss, ax_w = self._figure.axes
        wh = pinn.weight_history()
        curves = [(ax_loss, key[5:], pinn.history["step"], vals) for key, vals in pinn.history.items()
                  if key.startswith("loss:")]
        curves += [(ax_w, name, wh["step"], wh[name]) for name in pinn.weighting.names]
        if not self._lines:
            for ax in (ax_loss, ax_w):
                ax.clear()
                ax.set_yscale("log")
            ax_loss.set_ylabel("loss")
            ax_w.set_ylabel("weight")
            ax_w.set_xlabel("step")
        for ax, name, x, y in curves:
            # the training thread appends to the histories while this reads them: a step may be in "step" and not
            # yet in a loss (x one longer than y); draw the steps both have
            x, y = list(x), list(y)
            n = min(len(x), len(y))
            x, y = x[:n], y[:n]
            key = (id(ax), name)
            if key in self._lines:
                self._lines[key].set_data(x, y)
            else:
                (self._lines[key],) = ax.plot(x, y, label=name)
        for ax in (ax_loss, ax_w):
            ax.relim()
            ax.autoscale_view()
            if ax.get_legend() is None and ax.lines:
                ax.legend(fontsize=7)
        self._canvas.draw_idle()
