"""Dock widget "PDE discovery": stability paths, the learned equations and observed vs simulated fields.

Choose a fields file (``.zarr``/``.npz`` bundles, The Well ``.hdf5``, PDE-FIND ``.mat``; a file a
layer was read from is proposed) and the options, then press "Discover". In a ``thread_worker`` the
widget fits the model (stability selection), draws the stability paths and the rendered
equations, and then integrates the learned model forward from the first frame: the simulated
fields appear frame by frame as "model: <field> (<unit>)" layers over the "observed: <field> (<unit>)" layers
(the norm ``|p|`` of a vector field; units: :func:`napari_dynfit.geometry.field_label`). A re-run updates these
layers in place: the model layers start empty (NaN) on the new fields' grid, so no frame of a previous model is
shown as this one's.
The model JSON can be saved with "Save model".
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox

from ..errors import DynfitError
from ._contract import StepContract
from ._jobs import StepJob
from ._layers import data_range, show_layer
from ._plots import make_canvas

#: what would help when a result does not say (fields from particles)
HINTS = ("more particles (a larger or denser field of view)", "a longer movie",
         "density gradients that relax during the movie")


def identifiability(result) -> tuple[bool, list, list]:
    """``(identifiable, reasons, hints)`` of a :class:`~napari_dynfit.models.pde.PDEDiscovery`
    (results without these attributes count as identifiable)."""
    return (bool(getattr(result, "identifiable", True)), list(getattr(result, "reasons", []) or []),
            list(getattr(result, "hints", []) or []))


#: layer keywords of the fields' grid (:func:`._geometry.fields_kwargs`): they follow a re-run's fields
GRID = ("scale", "translate", "units", "axis_labels")

#: fields files the PDE and balance steps read
FIELD_FILES = ("*.zarr", "*.npz", "*.mat", "*.hdf5", "*.h5")


class PDEWidget(StepContract, Container):
    """Learn a sparse PDE from fields and compare the model's forecast with the observations."""

    INPUTS = (("fields", "_fields", FIELD_FILES,
               "coarse-grain tracks into fields (above), or choose a fields file (.zarr, .npz, .hdf5, .mat)"),)
    PARAMS = {"particle_noise": "_stochastic"}
    OUTPUTS = (("observed: *", "Image"), ("model: *", "Image"))

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._fields = FileEdit(mode="r", label="fields file", value=self._layer_source() or "")
        self._derivative = ComboBox(choices=["weak", "finite", "spectral"], value="weak", label="derivatives")
        self._stochastic = CheckBox(value=False, text="particle (intrinsic) noise: Ito form (unticked: on for coarse-grained particles)")
        self._solver = ComboBox(choices=["iht", "stridge"], value="iht", label="solver")
        self._pi_th = FloatSpinBox(value=0.8, min=0.5, max=1.0, step=0.05, label="pi_th")
        from ..models.library import default_library

        # the scalar library's defaults of the core (and of `dynfit discover-pde`): powers <= 3, derivatives <= 3
        lib = inspect.signature(default_library).parameters
        self._max_power = SpinBox(value=lib["max_power"].default, min=0, max=5, label="max power")
        self._max_derivative = SpinBox(value=lib["max_derivative"].default, min=0, max=6, label="max derivative")
        self._seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        self._run = PushButton(text="Discover")
        self._stop = PushButton(text="Stop", enabled=False)
        self._save = FileEdit(mode="w", filter="*.json", label="save model to", value="")
        self._save_button = PushButton(text="Save model", enabled=False)
        self._status = Label(value="")
        self.extend([self._fields, self._derivative, self._stochastic, self._solver, self._pi_th, self._max_power,
                     self._max_derivative, self._seed, self._run, self._stop, self._save, self._save_button,
                     self._status])
        self._figure, self._canvas = make_canvas((4.0, 5.5), 380)
        self.native.layout().addWidget(self._canvas)
        self._job = StepJob(self._run, self._stop, self._status, viewer=self._viewer)
        self.model = None
        self.bundle = None
        #: whether the data pin the learned model down (``False``: ``reasons`` say why, ``hints`` what would help)
        self.identifiable = None
        self.reasons: list[str] = []
        self.hints: list[str] = []
        #: this run's model layers, stacks ``(t, [z,] y, x)`` and contrast limits, by field (:meth:`_reset_model`)
        self._model_layers: dict = {}
        self._model_stacks: dict = {}
        self._model_limits: dict = {}
        self._run.changed.connect(self.run)
        self._save_button.changed.connect(self.save)

    # --- set-up -----------------------------------------------------------------------------
    def _layer_source(self):
        for lay in self._viewer.layers:
            src = (getattr(lay, "metadata", None) or {}).get("source")
            if src and Path(src).suffix.lower() in (".zarr", ".npz", ".mat", ".hdf5", ".h5") and Path(src).exists():
                return src
        return None

    def _equations(self, bundle):
        from ..models.library import default_library

        return default_library(bundle, max_power=self._max_power.value, max_derivative=self._max_derivative.value)

    # --- running ----------------------------------------------------------------------------
    def compute(self):
        """Generator run in the worker: yields ``("model", bundle, model)`` then ``("frame", i, state)``."""
        from ..io.well import load_fields
        from ..models.integrate import iter_integrate
        from ..models.pde import discover_pde

        value = self._fields.value
        if not value or str(value) in ("", ".") or not Path(value).exists():
            raise DynfitError("choose a fields file (.zarr, .npz, The Well .hdf5, PDE-FIND .mat)")
        bundle = load_fields(self._fields.value)
        res = discover_pde(bundle, self._equations(bundle), derivative=self._derivative.value,
                           solver=self._solver.value, pi_th=self._pi_th.value,
                           stochastic=True if self._stochastic.value else None, seed=self._seed.value)
        yield "model", bundle, res.model, identifiability(res)
        if not identifiability(res)[0] or not all(res.model["equations"].values()):
            return  # no forecast of a model the data do not pin down
        for i, state in iter_integrate(res.model, bundle):
            yield "frame", i, state

    def set_fields(self, path, *, particles: bool = False) -> None:
        """Use the fields file ``path``; ``particles``: coarse-grained from particles (tracks), whose
        intrinsic noise needs the Ito weak form (the "particle noise" box is ticked)."""
        self._fields.value = path
        if particles:
            self._stochastic.value = True

    @property
    def fields_path(self):
        """The chosen fields file (``None`` when none is chosen)."""
        value = self._fields.value
        return None if not value or str(value) in ("", ".") else Path(value)

    def run(self, *_, block: bool = False) -> None:
        """Discover and simulate; with ``block`` in the calling thread (tests, scripts)."""
        self._job.start(self.compute, on_yield=self._show, busy="stability selection...", block=block)

    def stop(self, *_) -> None:
        """Cancel at the next progress step."""
        self._job.stop()

    def save(self, *_) -> None:
        """Write the learned model JSON to the chosen path."""
        from ..models.model_json import write_model

        if self.model is None or not self._save.value or str(self._save.value) in ("", "."):
            self._status.value = "nothing to save: discover a model and choose a file"
            return
        path = write_model(self.model, self._save.value)
        self._status.value = f"saved {path}"

    # --- display ----------------------------------------------------------------------------
    def _geometry(self) -> dict:
        """Layer kwargs of the fields' grid (physical time and lengths, units: napari_dynfit.geometry)."""
        from ._geometry import fields_kwargs

        return fields_kwargs(self.bundle)

    @staticmethod
    def _display(arr, ndim):
        return arr if arr.ndim == ndim else np.linalg.norm(arr, axis=-1)

    def _layer_name(self, kind: str, field: str, arr, ndim: int) -> str:
        """``"observed: rho (1/µm²)"``, ``"model: |p| (1/µm²)"``: the field, its norm where :meth:`_display` shows
        one, and its unit (napari's colour bar has no title)."""
        from ..geometry import field_label

        return f"{kind}: " + field_label(self.bundle, field, magnitude=np.ndim(arr) != ndim)

    def _show(self, item) -> None:
        kind = item[0]
        if kind == "model":
            _, bundle, model, (ok, reasons, hints) = item
            self.bundle, self.model = bundle, model
            if (model.get("method") or {}).get("stochastic") and not self._stochastic.value:
                self._stochastic.value = True    # decided from the fields (coarse-grained particles): shown
            self.identifiable, self.reasons, self.hints = ok, list(reasons), list(hints)
            self._draw_model(model)
            geo = self._geometry()
            for f in model["equations"]:
                field = f[:-2]
                name = self._layer_name("observed", field, bundle[field], 1 + bundle.ndim)
                data = self._display(bundle[field], 1 + bundle.ndim)
                show_layer(self._viewer, "image", data, name, owner=self, **geo, colormap="gray",
                           contrast_limits=data_range(data), refresh=("contrast_limits",) + GRID)
            self._reset_model(forecast=ok and all(model["equations"].values()))
            self._save_button.enabled = True
            self._status.value = "integrating the model forward..." if ok else self.verdict()
            self.made.emit(model)
            return
        _, i, state = item
        for field, arr in state.items():
            frame = self._display(arr, self.bundle.ndim)
            if field not in self._model_stacks:
                self._model_layer(field)
            stack = self._model_stacks[field]
            stack[i] = frame
            layer = self._model_layers[field]
            if layer not in self._viewer.layers:  # removed by the user while the model runs: shown again
                layer = self._model_layer(field, stack)
            layer.data = stack
            self._follow_contrast(field, frame)
        self._status.value = f"simulated frame {i + 1} of {self.bundle.shape[0]}"

    def _reset_model(self, forecast: bool) -> None:
        """Start this run's model layers empty (NaN) on the new fields' grid, so no frame of a previous model is
        shown as this one's: with a forecast for every field of the model, else (no forecast of a model the data
        do not pin down) only where a model layer of that name is already shown."""
        self._model_layers, self._model_stacks, self._model_limits = {}, {}, {}
        ndim = 1 + self.bundle.ndim
        for f in self.model["equations"]:
            field = f[:-2]
            name = self._layer_name("model", field, self.bundle[field], ndim)
            if forecast or self.made_layer(name, self._viewer.layers) is not None:  # its own, not a user's
                self._model_layer(field)

    def _model_layer(self, field: str, stack=None):
        """Show the model layer of ``field`` (update in place or add) with ``stack`` (default: NaN, the shape of
        the observed field as displayed) on the fields' grid, its contrast that of the observed field widened
        to the model's values so far (:meth:`_follow_contrast`); returns the layer and keeps it for the run."""
        ndim = 1 + self.bundle.ndim
        obs = self._display(self.bundle[field], ndim)
        if stack is None:
            stack = np.full(obs.shape, np.nan)
        limits = self._model_limits.get(field) or data_range(obs)
        name = self._layer_name("model", field, self.bundle[field], ndim)
        layer = show_layer(self._viewer, "image", stack, name, owner=self, **self._geometry(), colormap="magenta",
                           blending="additive", contrast_limits=limits, refresh=("contrast_limits",) + GRID)
        self._model_layers[field], self._model_stacks[field], self._model_limits[field] = layer, stack, limits
        return layer

    def _follow_contrast(self, field: str, frame) -> None:
        """Widen the model layer's contrast (and its slider's range) to a frame whose finite values leave it: a
        model that overshoots the observed range is shown, not clipped; otherwise the user's contrast is kept."""
        finite = np.asarray(frame, float)[np.isfinite(frame)]
        if finite.size == 0:
            return
        low, high = self._model_limits[field]
        new = (min(low, float(finite.min())), max(high, float(finite.max())))
        if new != (low, high):
            layer = self._model_layers[field]
            self._model_limits[field] = new
            layer.contrast_limits_range = new
            layer.contrast_limits = new

    def verdict(self) -> str:
        """One line for people: "not identifiable from these data: <reasons>; what would help: <hints>"
        (empty while the model is identifiable or not yet learned)."""
        if self.identifiable is not False:
            return ""
        hints = self.hints or list(HINTS)
        return (f"not identifiable from these data: {'; '.join(self.reasons) or 'no reason given'}; "
                f"what would help: {'; '.join(hints)}")

    def _draw_model(self, model) -> None:
        """The learned equations (wrapped, a few terms per line) over the stability paths, one panel per
        equation stacked (legends below): readable at the dock's width."""
        from ..models.pde_plots import plot_stability_paths
        from ._plots import tidy

        fig = self._figure
        fig.clear()
        eqs = list(model["equations"])
        if self.identifiable is False:  # the verdict instead of an equation the data do not support
            lines = textwrap.wrap(self.verdict(), 62)
            color = "tab:red"
        else:
            lines = [ln for lhs in eqs for ln in equation_lines(lhs, model["equations"][lhs])]
            color = "black"
        top_h = 0.2 * len(lines) + 0.1
        panel_h = 2.6
        width = fig.get_size_inches()[0]
        fig.set_size_inches(width, top_h + panel_h * len(eqs), forward=False)
        self._canvas.setFixedHeight(int(fig.get_size_inches()[1] * fig.dpi))
        gs = fig.add_gridspec(1 + len(eqs), 1, height_ratios=[top_h] + [panel_h] * len(eqs))
        top = fig.add_subplot(gs[0])
        top.axis("off")
        top.text(0.0, 1.0, "\n".join(lines), fontsize=8, va="top", ha="left", color=color, transform=top.transAxes)
        axes = [fig.add_subplot(gs[k + 1]) for k in range(len(eqs))]
        if eqs:
            plot_stability_paths(model, axes=axes)
            for ax in axes:
                ax.set_xlabel("penalty")
        tidy(fig)
        self._canvas.draw_idle()


def equation_lines(lhs: str, terms: dict, per_line: int = 3, digits: int = 3) -> list[str]:
    """Mathtext lines of one equation, at most ``per_line`` terms each (continuation lines indented), so a
    long equation wraps instead of running off the plot."""
    from ..models.terms import term_latex

    items = list(terms.items())
    if not items:
        return [f"${term_latex(lhs)} = 0$"]
    out = []
    for start in range(0, len(items), per_line):
        parts = []
        for i, (name, c) in enumerate(items[start:start + per_line]):
            sign = "-" if c < 0 else ("+" if (start + i) else "")
            mag = f"{abs(c):.{digits}g}"
            body = mag if name == "1" else f"{mag}\\,{term_latex(name)}"
            parts.append(f"{sign} {body}" if (start + i) else f"{sign}{body}")
        head = f"{term_latex(lhs)} = " if start == 0 else "\\quad "
        out.append(f"${head}{' '.join(parts)}$")
    return out
