"""The DynFit panel: one dock widget that guides through the whole workflow.

Steps (each page is the step's own dock widget, built the first time its page is opened, so the
panel opens fast): APR conversion -> filter & segment -> detect & track -> fields & PDE model ->
dominant balance / latent field / snapshot flow. Every step reads the layers made by the steps
before it (the step widgets list the viewer's layers of the right type) and runs its long work in a
``thread_worker`` with progress and a Stop button.

The panel adds the glue between steps that the step widgets do not do themselves:

* **defaults from the data** (:mod:`._defaults`): selecting a layer sets spacing-, frame-interval- and
  object-size-dependent parameters of every step built so far, and selects the layer in the steps
  that can use it;
* **fields from tracks** (:class:`FieldsFromTracks`, on the page of step 4): coarse-grains the
  selected Tracks layer into density and polarisation fields, shows them, and hands the fields file
  to the PDE step;
* the learned model and its fields are handed to the dominant-balance step when its page opens;
* the **MSD plot** of the tracks (:class:`._plots.MsdPlot`) on the page of step 3.

The header saves all layers of the session, plus the fields and the learned model, to a project
folder (:mod:`._project_io`), re-opens one, and exports the plots of the steps (PNG/SVG).
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
)
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import DynfitError

#: ``(title, module in napari_dynfit._napari, class, what it reads -> what it makes)``
STEPS = (
    ("1. Convert to APR", "_apr_convert_widget", "AprConvertWidget",
     "Image layer -> lazy multiscale APR layer"),
    ("2. Filter & segment on the APR", "_apr_filter_widget", "AprFilterWidget",
     "APR layer -> filtered APR layer, Labels, object Points"),
    ("3. Detect & track", "_track_widget", "TrackWidget",
     "movie or Labels -> detections (Points), tracks (Tracks)"),
    ("4. Fields & PDE model", "_pde_widget", "PDEWidget",
     "tracks -> coarse-grained fields -> learned PDE"),
    ("5a. Dominant balance", "_balance_widget", "BalanceWidget",
     "model + fields -> balance regions (Labels)"),
    ("5b. Latent field (PINN)", "_pinn_widget", "LatentFieldWidget",
     "tracks -> hidden chemical field (Image), Dc, k"),
    ("5c. Flow from snapshots", "_flow_widget", "FlowWidget",
     "detections (no tracks) -> drift field (Vectors), growth map"),
)


def _unwrap(layer):
    """The layer behind napari's ``PublicOnlyProxy`` (plugin widgets get a proxied viewer)."""
    return getattr(layer, "__wrapped__", layer)


class FieldsFromTracks(Container):
    """Coarse-grain a Tracks layer into ``rho`` and ``p`` fields (physical units) for the PDE step.

    Grid spacing, kernel width and box are physical (layer ``scale``); the frame interval comes from
    the data defaults. By default the kernel is the tracks' mean inter-particle distance and the grid
    half of it (:func:`~napari_dynfit.fields.coarse_grain.auto_kernel`, shown in the spin boxes after a
    run; untick to use the spin boxes), and the frames that gap-closing links skipped are filled in
    (:func:`~napari_dynfit.fields.coarse_grain.fill_track_gaps`). The fields are written to
    ``fields.zarr`` in the panel's work folder and shown as Image layers ``fields: rho`` and
    ``fields: |p|``.
    """

    def __init__(self, napari_viewer, workdir, on_fields=None):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._workdir = workdir
        self._on_fields = on_fields
        self._truth = CheckBox(value=False, text="offer ground-truth layers (to compare with the truth)")
        self._layer = ComboBox(label="tracks", choices=self._tracks_layers)
        self._grid = FloatSpinBox(value=4.0, min=1e-6, max=1e9, step=0.5, label="grid spacing")
        self._kernel = FloatSpinBox(value=8.0, min=1e-6, max=1e9, step=0.5, label="kernel sigma")
        self._auto = CheckBox(value=True, text="kernel and grid from the data (mean inter-particle distance)")
        self._fill = CheckBox(value=True, text="fill gaps of tracks (frames a gap-closing link skipped)")
        self._box_y = FloatSpinBox(value=0.0, min=0.0, max=1e9, label="box y (0: data range)")
        self._box_x = FloatSpinBox(value=0.0, min=0.0, max=1e9, label="box x (0: data range)")
        self._periodic = CheckBox(value=False, text="periodic box")
        self._dt = FloatSpinBox(value=1.0, min=1e-9, max=1e9, step=0.1, label="frame interval")
        self._run = PushButton(text="Coarse-grain tracks -> fields")
        self._status = Label(value="")
        self.extend([self._layer, self._truth, self._auto, self._grid, self._kernel, self._box_y, self._box_x,
                     self._periodic, self._fill, self._dt, self._run, self._status])
        self._auto.changed.connect(self._manual_grid)
        self._manual_grid()
        self.bundle = None
        self.path = None
        self._run.changed.connect(self.run)
        self._truth.changed.connect(self._layer.reset_choices)
        self._events = ((napari_viewer.layers.events.inserted, self._layer.reset_choices),
                        (napari_viewer.layers.events.removed, self._layer.reset_choices))
        for ev, cb in self._events:
            ev.connect(cb)
        self.native.destroyed.connect(self._disconnect)

    def _disconnect(self, *_):
        for ev, cb in self._events:
            ev.disconnect(cb)

    def _manual_grid(self, *_):
        """The grid and kernel spin boxes are inputs only without "from the data"."""
        self._grid.enabled = self._kernel.enabled = not self._auto.value

    def _tracks_layers(self, _widget=None):
        """Tracks layers to coarse-grain: never ground truth unless asked for, never the links preview."""
        from ._defaults import input_layers

        return input_layers(self._viewer, ("Tracks",), ground_truth=bool(self._truth.value),
                            exclude=("links preview",))

    @property
    def tracks_layer(self):
        """The Tracks layer that :meth:`run` coarse-grains (``None``: nothing to coarse-grain)."""
        return self._layer.value

    def run(self, *_):
        """Coarse-grain the selected tracks; returns the fields file path (``None`` on error)."""
        from ..fields.coarse_grain import coarse_grain_table
        from ..track.io_formats import tracks_from_napari

        layer = self._layer.value
        try:
            if layer is None:
                raise DynfitError("track first (page 3): no Tracks layer to coarse-grain (ground-truth layers "
                                  "are offered only with the box ticked)")
            df = tracks_from_napari(layer)  # world coordinates: scale and translate
            if "z" in df.columns:
                raise DynfitError("fields from tracks are 2D here; 3D tracks: use `dynfit coarse-grain`")
            box = (self._box_y.value, self._box_x.value) if self._box_y.value > 0 and self._box_x.value > 0 else None
            periodic = bool(self._periodic.value and box is not None)
            auto = bool(self._auto.value)
            bundle = coarse_grain_table(df, spacing=None if auto else self._grid.value,
                                        sigma=None if auto else self._kernel.value, box=box, periodic=periodic,
                                        dt=self._dt.value, fields=("rho", "p"), fill_gaps=bool(self._fill.value))
        except DynfitError as exc:
            self._status.value = f"error: {exc}"
            return None
        self.bundle = bundle
        if auto:  # show what the data gave
            self._kernel.value = round(float(bundle.attrs["sigma"]), 4)
            self._grid.value = round(float(bundle.spacing[-1]), 4)
        from ._geometry import fields_kwargs

        geo = fields_kwargs(bundle, layer)  # the fields' times and grid in the tracks' world (napari_dynfit.geometry)
        self.path = Path(self._workdir()) / "fields.zarr"
        bundle.to_zarr(self.path)
        import numpy as np

        for name, arr in (("fields: rho", bundle["rho"]), ("fields: |p|", np.linalg.norm(bundle["p"], axis=-1))):
            if name in self._viewer.layers:
                self._viewer.layers[name].data = arr
            else:
                self._viewer.add_image(arr, name=name, **geo, colormap="viridis",
                                       opacity=0.5, visible=name.endswith("rho"))
        how = " (kernel = mean inter-particle distance)" if auto else ""
        filled = f", {bundle.attrs['filled_rows']} gap rows filled" if bundle.attrs.get("filled_rows") else ""
        self._status.value = (f"fields {bundle.shape[0]} x {bundle.shape[1]} x {bundle.shape[2]} from "
                              f"{df['track_id'].nunique()} tracks, kernel {bundle.attrs['sigma']:.3g}, grid "
                              f"{bundle.spacing[-1]:.3g}{how}{filled} -> {self.path.name}")
        if self._on_fields is not None:
            self._on_fields(self.path)
        return self.path


class DynFitPanel(QWidget):
    """Guided workflow panel (``Plugins > DynFit > DynFit panel``)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.steps: dict[str, QWidget | object] = {}
        #: glue widgets shown on a step's page (title -> list), built with the step
        self.extras: dict[str, list] = {}
        self.defaults = None
        self._sizes: dict[int, float] = {}
        self._workdir = None
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        self._open_btn = QPushButton("Open project…")
        self._save_btn = QPushButton("Save project…")
        self._export_btn = QPushButton("Export plots…")
        for b in (self._open_btn, self._save_btn, self._export_btn):
            head.addWidget(b)
        layout.addLayout(head)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.toolbox = QToolBox()
        self._pages = []
        for title, _, _, hint in STEPS:
            page = QWidget()
            QVBoxLayout(page).addWidget(QLabel(hint))
            self.toolbox.addItem(page, title.replace("&", "&&"))  # a single & marks a shortcut in Qt
            self._pages.append(page)
        layout.addWidget(self.toolbox)
        self.toolbox.currentChanged.connect(self.step)
        self._seen = {id(_unwrap(lay)) for lay in napari_viewer.layers}
        self._fresh: set[int] = set()
        napari_viewer.layers.events.inserted.connect(self._layer_added)
        napari_viewer.layers.selection.events.active.connect(self._layer_selected)
        self.destroyed.connect(lambda *_: self._unfollow(napari_viewer))
        self._open_btn.clicked.connect(lambda: self._ask_folder(self.open_project))
        self._save_btn.clicked.connect(lambda: self._ask_folder(self.save_project))
        self._export_btn.clicked.connect(lambda: self._ask_folder(self.export_plots))
        self.step(0)
        self._layer_selected()  # defaults from the layer already selected when the panel opens

    # ------------------------------------------------------------------------------------------
    def _unfollow(self, viewer):
        for event, cb in ((viewer.layers.selection.events.active, self._layer_selected),
                          (viewer.layers.events.inserted, self._layer_added),
                          (viewer.layers.events.inserted, self._tracks_added)):
            try:
                event.disconnect(cb)
            except (TypeError, RuntimeError, ValueError):
                pass

    def workdir(self) -> Path:
        """Folder for the files handed between steps (fields, model): a temporary folder of the session."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="dynfit-panel-"))
        return self._workdir

    def step(self, index: int):
        """The widget of step ``index`` (built on first use) and show its page; ``None`` if unavailable."""
        title, module, cls, _ = STEPS[index]
        if title not in self.steps:
            try:
                mod = importlib.import_module(f"{__package__}.{module}")
                widget = getattr(mod, cls)(self.viewer)
            except (ImportError, AttributeError) as exc:
                self._pages[index].layout().addWidget(QLabel(f"not available in this installation: {exc}"))
                self.steps[title] = None
            else:
                self._build_extras(title, widget, index)
                self.steps[title] = widget
                new = [widget, *self.extras.get(title, [])]
                self._select(new, _unwrap(self.viewer.layers.selection.active), newest=True)
                if self.defaults is not None:
                    self._apply_defaults(new)
        if self.toolbox.currentIndex() != index:
            self.toolbox.setCurrentIndex(index)
        self._hand_over(title)
        return self.steps[title]

    def _build_extras(self, title, widget, index) -> None:
        layout = self._pages[index].layout()
        extras = []
        if type(widget).__name__ == "PDEWidget":
            extras.append(FieldsFromTracks(self.viewer, self.workdir, on_fields=self._fields_made))
            layout.addWidget(extras[-1].native)
        layout.addWidget(getattr(widget, "native", widget))
        if type(widget).__name__ == "TrackWidget":
            from ._plots import MsdPlot

            extras.append(MsdPlot())
            layout.addWidget(extras[-1].native)
            self.viewer.layers.events.inserted.connect(self._tracks_added)
        self.extras[title] = extras

    def extra(self, cls_name: str):
        """The glue widget of class ``cls_name`` (``FieldsFromTracks``, ``MsdPlot``) if built."""
        for extras in self.extras.values():
            for w in extras:
                if type(w).__name__ == cls_name:
                    return w
        return None

    def _fields_made(self, path) -> None:
        pde = self._built("PDEWidget")
        if pde is not None:
            pde.set_fields(path, particles=True)  # coarse-grained particles: Ito weak form

    def _built(self, cls_name: str):
        for widget in self.steps.values():
            if type(widget).__name__ == cls_name:
                return widget
        return None

    def _hand_over(self, title) -> None:
        """Feed a step the products of the steps before it (model and fields files for the balance step)."""
        widget = self.steps.get(title)
        pde = self._built("PDEWidget")
        if (type(widget).__name__ == "BalanceWidget" and pde is not None and pde.model is not None
                and pde.identifiable is not False):  # no balances of a model the data do not pin down
            from ..models.model_json import write_model

            path = write_model(pde.model, self.workdir() / "model.json")
            widget._model.value = path
            if pde.fields_path is not None:
                widget._fields.value = pde.fields_path
            widget._equation.reset_choices()

    def _tracks_added(self, event) -> None:
        layer = _unwrap(event.value)
        if type(layer).__name__ == "Tracks":
            layer.events.data.connect(lambda *_: self.update_msd(layer))
            self.update_msd(layer)

    def update_msd(self, layer=None):
        """Redraw the MSD plot of ``layer`` (default: the newest Tracks layer); returns the MSD table."""
        from ._plots import abp_theory

        plot = self.extra("MsdPlot")
        if plot is None:
            return None
        if layer is None:
            tracks = [lay for lay in self.viewer.layers if type(_unwrap(lay)).__name__ == "Tracks"]
            if not tracks:
                return None
            layer = _unwrap(tracks[-1])
        source = self._movie_layer()
        d = self.defaults
        dt = (layer.metadata or {}).get("dt") or (d.dt if d is not None else None)
        try:
            return plot.update(layer, dt=dt, theory=abp_theory(source) if source is not None else None)
        except DynfitError as exc:
            self.status.setText(f"MSD: {exc}")
            return None

    def _movie_layer(self):
        for lay in self.viewer.layers:
            if type(_unwrap(lay)).__name__ == "Image" and (lay.metadata or {}).get("params"):
                return lay
        return None

    # ------------------------------------------------------------------------------------------
    def _layer_selected(self, *_):
        layer = _unwrap(self.viewer.layers.selection.active)
        if layer is None or type(layer).__name__ not in ("Image", "Labels", "Points", "Tracks"):
            return
        # napari selects every new layer: a step's output must not become the input of the step
        # that made it (re-running it after an edit of its input), so the activation of a layer as it
        # is added only gives defaults; selecting it later (after another layer) selects it as input
        key = id(layer)
        new = key in self._fresh or key not in self._seen
        self._seen.add(key)
        self.use_layer(layer, select=not new)

    def _layer_added(self, event) -> None:
        """A layer is being added: until the event loop runs again, its activation is napari's, not the user's."""
        from qtpy.QtCore import QTimer

        key = id(_unwrap(event.value))
        self._fresh.add(key)
        QTimer.singleShot(0, lambda: self._fresh.discard(key))

    def use_layer(self, layer, select: bool = True) -> list[str]:
        """Take the data defaults from ``layer``, set them in every built step and (``select``) make it
        the input of every step that can use it."""
        from ._defaults import data_defaults

        layer = _unwrap(layer)
        try:
            # the object size is estimated once per layer (a LoG scale space of one frame)
            d = data_defaults(layer, estimate_size=id(layer) not in self._sizes)
            if d.spot_sigma is not None:
                self._sizes[id(layer)] = d.spot_sigma
            d.spot_sigma = self._sizes.get(id(layer))
        except (ValueError, TypeError, IndexError) as exc:
            self.status.setText(f"no defaults from '{layer.name}': {exc}")
            return []
        self.defaults = d.merged(self.defaults)
        widgets = [w for t, w in self.steps.items() if w is not None]
        widgets += [w for extras in self.extras.values() for w in extras]
        if select:
            self._select(widgets, layer)
        done = self._apply_defaults(widgets)
        if done:
            self.status.setText(f"defaults from '{layer.name}': " + ", ".join(dict.fromkeys(done)))
        return done

    @staticmethod
    def _select(widgets, layer, newest: bool = False) -> None:
        """Choose ``layer`` as input in every widget that offers it (else, with ``newest``, the newest
        layer offered that is not ground truth: the product of the step before)."""
        from ._defaults import is_ground_truth

        for w in widgets:
            names = getattr(w, "layer", None)  # plain Qt widgets list layer names (FlowWidget)
            if layer is not None and hasattr(names, "findText") and names.findText(layer.name) >= 0:
                names.setCurrentIndex(names.findText(layer.name))
            for attr in ("_layer", "_image", "_source"):
                combo = getattr(w, attr, None)
                if combo is None or not hasattr(combo, "choices"):
                    continue
                choices = list(combo.choices)
                if layer is not None and layer in choices:
                    combo.value = layer
                elif newest:  # the product of the step before: never ground truth
                    made = [c for c in choices if not is_ground_truth(c)]
                    if made:
                        combo.value = made[-1]

    def _apply_defaults(self, widgets) -> list[str]:
        from ._defaults import apply_defaults

        done = []
        for w in widgets:
            done += apply_defaults(w, self.defaults)
        return done

    def _ask_folder(self, action) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder")
        if folder:
            action(folder)

    def save_project(self, folder) -> None:
        """Save every layer (and the edits made to Points/Labels) to the project ``folder``."""
        from ._project_io import save_viewer_project

        glue = self.extra("FieldsFromTracks")
        pde = self._built("PDEWidget")
        extra = {"fields": glue.bundle if glue is not None else None,
                 "model": pde.model if pde is not None else None}
        try:
            prj = save_viewer_project(self.viewer, folder, extra={k: v for k, v in extra.items() if v is not None})
        except (DynfitError, OSError) as exc:
            self.status.setText(f"could not save the project: {exc}")
            return
        self.status.setText(f"saved {len(prj.names)} artefacts to {prj.root}")

    def open_project(self, folder) -> None:
        """Add the layers of a project folder (e.g. a ``dynfit demo`` output) to the viewer."""
        from ._project_io import open_project

        try:
            added = open_project(self.viewer, folder)
        except (DynfitError, OSError) as exc:
            self.status.setText(f"could not open the project: {exc}")
            return
        self.status.setText(f"opened {len(added)} layers from {folder}")

    def export_plots(self, folder, formats=("png", "svg")) -> list[Path]:
        """Save the matplotlib figures of the steps built so far as PNG and SVG files in ``folder``."""
        from .._io import atomic_path

        out = []
        folder = Path(folder)
        figures = []
        for title, widget in self.steps.items():
            figures.append((title, getattr(widget, "_figure", None)))
            figures += [(f"{title} {type(w).__name__}", getattr(w, "_figure", None)) for w in self.extras.get(title, [])]
        for title, fig in figures:
            if fig is None or not fig.axes:
                continue
            stem = "".join(ch if ch.isalnum() else "_" for ch in title).strip("_")
            for fmt in formats:
                with atomic_path(folder / f"{stem}.{fmt}") as tmp:
                    fig.savefig(tmp, format=fmt, bbox_inches="tight")
                out.append(folder / f"{stem}.{fmt}")
        self.status.setText(f"exported {len(out)} plot files to {folder}")
        return out
