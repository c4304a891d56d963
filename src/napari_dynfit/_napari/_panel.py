"""The DynFit panel: one dock widget that guides through the whole workflow.

Steps (each page is the step's own dock widget, built the first time its page is opened, so the
panel opens fast): APR conversion -> filter & segment -> detect & track -> fields & PDE model ->
dominant balance / latent field / snapshot flow. Every step reads the layers made by the steps
before it (the step widgets list the viewer's layers of the right type) and runs its long work in a
``thread_worker`` with progress and a Stop button.

The panel adds the glue between steps that the step widgets do not do themselves:

* **the step contract** (:mod:`._contract`): the panel drives its steps only through their public
  ``inputs()``, ``accepts()``, ``set_input()``, ``defaults()``, ``apply_defaults()``, ``makes()`` and the
  result signal ``made``; a step with nothing to take says what to do, a step whose method does not
  fit the data warns (:mod:`._fit_checks`);
* **defaults from the data** (:mod:`._defaults`): selecting a layer sets spacing-, frame-interval- and
  object-size-dependent parameters of the steps built so far (a step's output: only of the steps that
  read it; values changed by hand are kept), and selects the layer in the steps that can use it;
* **a readable view** (:mod:`._view`): a step's new layers arrive translucent, the other steps' image
  results are hidden;
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
from ._contract import StepContract
from ._layers import data_range, show_layer

#: layer keywords of the fields' grid: they follow a re-run's fields
GRID = ("scale", "translate", "units", "axis_labels")

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


class _Named:
    """A stand-in with just a name (to ask a step whether it makes a layer of that name)."""

    def __init__(self, name):
        self.name = name


def _compact(widget, width: int) -> None:
    """Let the widget's rows shrink to the dock: labels wrap, combo boxes do not size to their longest layer
    name (``width``: the dock's width, px)."""
    from qtpy.QtWidgets import QComboBox, QLabel, QSizePolicy

    for label in widget.findChildren(QLabel):  # status lines wrap instead of running off the page
        label.setWordWrap(True)
    for combo in widget.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)
        combo.setSizePolicy(QSizePolicy.Policy.Expanding, combo.sizePolicy().verticalPolicy())


def _step_text(labels: dict, cls_name: str) -> str:
    """The text of the label (hint or warning) on the page of the step whose widget class is ``cls_name``."""
    for title, _, cls, _ in STEPS:
        if cls == cls_name and title in labels:
            return labels[title].text()
    return ""


def _unwrap(layer):
    """The layer behind napari's ``PublicOnlyProxy`` (plugin widgets get a proxied viewer)."""
    return getattr(layer, "__wrapped__", layer)


_NOT_2D = "fields from tracks are 2D here; 3D tracks: use `dynfit coarse-grain`"


class FieldsFromTracks(StepContract, Container):
    """Coarse-grain a Tracks layer into ``rho`` and ``p`` fields (physical units) for the PDE step.

    Grid spacing, kernel width and box are physical (layer ``scale``); the frame interval comes from
    the data defaults. By default the kernel is the tracks' mean inter-particle distance and the grid
    half of it (:func:`~napari_dynfit.fields.coarse_grain.auto_kernel`, shown in the spin boxes after a
    run; untick to use the spin boxes), and the frames that gap-closing links skipped are filled in
    (:func:`~napari_dynfit.fields.coarse_grain.fill_track_gaps`). The fields are written to
    ``fields.zarr`` in the panel's work folder and shown as Image layers ``fields: rho (UNIT)`` and
    ``fields: |p| (UNIT)`` (densities in the tracks' length unit, e.g. ``1/µm²``:
    :func:`napari_dynfit.geometry.field_label`).
    """

    INPUTS = (("tracks", "_layer", ("Tracks",), "no tracks yet: Detect and Track on page 3 (ground truth is offered "
                                                "only with 'ground truth too' ticked)"),)
    PARAMS = {"auto_kernel": "_auto", "grid": "_grid", "kernel": "_kernel", "box_y": "_box_y", "box_x": "_box_x",
              "periodic": "_periodic", "fill_gaps": "_fill", "dt": "_dt"}
    OUTPUTS = (("fields: *", "Image"),)

    def __init__(self, napari_viewer, workdir):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._workdir = workdir
        #: the layers other steps made that are not results to coarse-grain (the panel: the Track step's links
        #: preview), as a callable returning them
        self.previews = tuple
        self._truth = CheckBox(value=False, text="ground truth too")
        self._truth.tooltip = "offer ground-truth layers (to compare with the truth); never chosen by the panel"
        self._layer = ComboBox(label="tracks", choices=self._tracks_layers)
        self._grid = FloatSpinBox(value=4.0, min=1e-6, max=1e9, step=0.5, label="grid spacing")
        self._kernel = FloatSpinBox(value=8.0, min=1e-6, max=1e9, step=0.5, label="kernel sigma")
        self._auto = CheckBox(value=True, text="kernel, grid from the data")
        self._auto.tooltip = "kernel = the tracks' mean inter-particle distance, grid = half of it"
        self._fill = CheckBox(value=True, text="fill gaps of tracks")
        self._fill.tooltip = "interpolate the frames a gap-closing link skipped (a missed detection is not a hole)"
        self._box_y = FloatSpinBox(value=0.0, min=0.0, max=1e9, label="box y (0: data range)")
        self._box_x = FloatSpinBox(value=0.0, min=0.0, max=1e9, label="box x (0: data range)")
        self._periodic = CheckBox(value=False, text="periodic box")
        self._dt = FloatSpinBox(value=1.0, min=1e-9, max=1e9, step=0.1, label="frame interval")
        self._run = PushButton(text="Coarse-grain")
        self._run.tooltip = "coarse-grain the tracks into density and polarisation fields"
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._status = Label(value="")
        self._status.native.setWordWrap(True)
        self.extend([self._layer, self._truth, self._auto, self._grid, self._kernel, self._box_y, self._box_x,
                     self._periodic, self._fill, self._dt, self._run, self._cancel, self._status])
        self._auto.changed.connect(self._manual_grid)
        self._manual_grid()
        self.bundle = None
        self.path = None
        from ._jobs import StepJob

        self._job = StepJob(self._run, self._cancel, self._status, viewer=napari_viewer)
        self._run.changed.connect(lambda *_: self.run(block=False))  # the click: in the worker
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
        """Tracks layers to coarse-grain: never ground truth unless asked for, never a Track step's links preview
        (:attr:`previews`, and any layer a Track widget marked as its preview, e.g. of a standalone "Detect &
        track" dock; a user's layer of that name is offered)."""
        from ._defaults import input_layers
        from ._track_widget import PREVIEW_KEY

        marked = tuple(lay for lay in self._viewer.layers if (lay.metadata or {}).get(PREVIEW_KEY))
        return input_layers(self._viewer, ("Tracks",), ground_truth=bool(self._truth.value),
                            exclude=tuple(lay for lay in self.previews() if lay is not None) + marked)

    @property
    def tracks_layer(self):
        """The Tracks layer that :meth:`run` coarse-grains (``None``: nothing to coarse-grain)."""
        return self._layer.value

    def run(self, *_, block: bool = True):
        """Coarse-grain the selected tracks in the widget's job (the click: in its worker thread, with progress
        and Cancel; ``block``: in the calling thread); writes ``fields.zarr`` and adds the field layers.

        Returns the fields file path with ``block`` (``None`` on error), else ``None`` (the result arrives with
        the ``made`` signal).
        """
        from ..fields.coarse_grain import coarse_grain_table
        from ..track.io_formats import tracks_from_napari
        from ._geometry import fields_kwargs

        layer = self._layer.value
        self.path = None
        if layer is None:
            self._job.show_error(DynfitError("track first (page 3): no Tracks layer to coarse-grain (ground-truth "
                                             "layers are offered only with the box ticked)"))
            return None
        if int(layer.ndim) > 3:  # said at once (the worker checks the table too)
            self._job.show_error(DynfitError(_NOT_2D))
            return None
        box = (self._box_y.value, self._box_x.value) if self._box_y.value > 0 and self._box_x.value > 0 else None
        periodic = bool(self._periodic.value and box is not None)
        auto = bool(self._auto.value)
        kw = dict(spacing=None if auto else self._grid.value, sigma=None if auto else self._kernel.value, box=box,
                  periodic=periodic, dt=self._dt.value, fields=("rho", "p"), fill_gaps=bool(self._fill.value))
        path = Path(self._workdir()) / "fields.zarr"

        def compute():
            df = tracks_from_napari(layer)  # world coordinates: scale and translate
            if "z" in df.columns:
                raise DynfitError(_NOT_2D)
            bundle = coarse_grain_table(df, **kw)
            geo = fields_kwargs(bundle, layer)  # the fields' times and grid in the tracks' world (sets attrs)
            bundle.to_zarr(path)
            return bundle, geo, df["track_id"].nunique()

        self._job.start(compute, on_return=lambda res: self._show(*res, path, auto), busy="coarse-graining",
                        block=block)
        return self.path if block else None

    def _show(self, bundle, geo, n_tracks, path, auto) -> None:
        import numpy as np

        self.bundle, self.path = bundle, path
        if auto:  # show what the data gave (not a user edit)
            self.set_quietly("kernel", round(float(bundle.attrs["sigma"]), 4))
            self.set_quietly("grid", round(float(bundle.spacing[-1]), 4))
        from ..geometry import field_label

        # the names carry the quantity and its unit (napari's colour bar has no title), e.g. "fields: rho (1/µm²)"
        for field, arr in (("rho", bundle["rho"]), ("p", np.linalg.norm(bundle["p"], axis=-1))):
            name = "fields: " + field_label(bundle, field, magnitude=field == "p")
            # a re-run (another grid or kernel): the layer's grid and contrast follow the new fields
            show_layer(self._viewer, "image", arr, name, owner=self, **geo, colormap="viridis", opacity=0.5,
                       visible=field == "rho", contrast_limits=data_range(arr),
                       refresh=("contrast_limits", *(k for k in GRID if k in geo)))
        how = " (kernel = mean inter-particle distance)" if auto else ""
        filled = f", {bundle.attrs['filled_rows']} gap rows filled" if bundle.attrs.get("filled_rows") else ""
        self._status.value = (f"fields {bundle.shape[0]} x {bundle.shape[1]} x {bundle.shape[2]} from "
                              f"{n_tracks} tracks, kernel {bundle.attrs['sigma']:.3g}, grid "
                              f"{bundle.spacing[-1]:.3g}{how}{filled} -> {path.name}")
        self.made.emit(path)


class DynFitPanel(QWidget):
    """Guided workflow panel (``Plugins > DynFit > DynFit panel``).

    The panel talks to its steps only through the step contract (:mod:`._contract`): ``inputs()``,
    ``accepts()``, ``set_input()``, ``defaults()``, ``apply_defaults()``, ``makes()`` and the ``made`` (result)
    signal.
    """

    #: the dock's default width (px): every step page fits it without horizontal scrolling (tested)
    DOCK_WIDTH = 440

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.steps: dict[str, QWidget | object] = {}
        #: glue widgets shown on a step's page (title -> list), built with the step
        self.extras: dict[str, list] = {}
        self._extra_by_name: dict[str, object] = {}
        self.defaults = None
        self._sizes: dict[int, float] = {}
        self._workdir = None
        self._hints: dict[str, QLabel] = {}
        self._warnings: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        self._open_btn = QPushButton("Open…")
        self._open_btn.setToolTip("open a project folder")
        self._save_btn = QPushButton("Save…")
        self._save_btn.setToolTip("save all layers, fields and the model to a project folder")
        self._export_btn = QPushButton("Export plots…")
        self._export_btn.setToolTip("save every plot of the steps as PNG and SVG")
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
            lab = QLabel(hint)
            lab.setWordWrap(True)
            QVBoxLayout(page).addWidget(lab)
            self.toolbox.addItem(page, title.replace("&", "&&"))  # a single & marks a shortcut in Qt
            self._pages.append(page)
        layout.addWidget(self.toolbox, 1)  # the pages take the dock's height
        from qtpy.QtWidgets import QSizePolicy

        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)  # napari adds no stretch
        self.toolbox.currentChanged.connect(self.step)
        self._seen = {id(_unwrap(lay)) for lay in napari_viewer.layers}
        self._fresh: set[int] = set()
        import weakref

        self._styled = weakref.WeakSet()  # the steps' layers styled as results (once: then the user's)
        napari_viewer.layers.events.inserted.connect(self._layer_added)
        napari_viewer.layers.events.removed.connect(self._update_hints)
        napari_viewer.layers.selection.events.active.connect(self._layer_selected)
        self.destroyed.connect(lambda *_: self._unfollow(napari_viewer))
        from ._jobs import StepJob

        # reading and writing a project (a movie, fields) in a worker: the buttons wait, the GUI does not
        self._io_job = StepJob((self._open_btn, self._save_btn), None, self.status, viewer=napari_viewer)
        self._open_btn.clicked.connect(lambda: self._ask_folder(lambda f: self.open_project(f, block=False)))
        self._save_btn.clicked.connect(lambda: self._ask_folder(lambda f: self.save_project(f, block=False)))
        self._export_btn.clicked.connect(lambda: self._ask_folder(self.export_plots))
        self.step(0)
        self._layer_selected()  # defaults from the layer already selected when the panel opens

    def sizeHint(self):  # noqa: N802 (Qt)
        from qtpy.QtCore import QSize

        return QSize(self.DOCK_WIDTH, super().sizeHint().height())

    # ------------------------------------------------------------------------------------------
    def _unfollow(self, viewer):
        for event, cb in ((viewer.layers.selection.events.active, self._layer_selected),
                          (viewer.layers.events.inserted, self._layer_added),
                          (viewer.layers.events.removed, self._update_hints),
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
                self._build_page(title, widget, index)
                self.steps[title] = widget
                self.claim_layers()  # the layers a project records as this step's (or its glue's)
                new = [widget, *self.extras.get(title, [])]
                self._select(new, _unwrap(self.viewer.layers.selection.active), newest=True)
                if self.defaults is not None:
                    self._apply_defaults(new)
        if self.toolbox.currentIndex() != index:
            self.toolbox.setCurrentIndex(index)
        self._hand_over(title)
        self._update_hints()
        self.check_fit(title)
        return self.steps[title]

    def _build_page(self, title, widget, index) -> None:
        """The step's page: what to do when no layer fits, a warning line, the glue before/after the step."""
        from qtpy.QtWidgets import QSizePolicy

        from ._plots import MsdPlot

        layout = self._pages[index].layout()
        hint, warn = QLabel(""), QLabel("")
        for lab in (hint, warn):
            lab.setWordWrap(True)
            lab.setVisible(False)
            layout.addWidget(lab)
        hint.setStyleSheet("color: #4aa3ff;")
        warn.setStyleSheet("color: #ffa500; font-weight: bold;")
        self._hints[title], self._warnings[title] = hint, warn
        extras = []
        if "fields" in widget.inputs() and "model" not in widget.inputs():  # the PDE step: fields from tracks
            glue = FieldsFromTracks(self.viewer, self.workdir)
            glue.previews = self._track_previews
            glue.made.connect(self._fields_made)
            extras.append(glue)
            self._extra_by_name["FieldsFromTracks"] = glue
            layout.addWidget(glue.native)
        native = getattr(widget, "native", widget)
        native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(native)
        if widget.makes(_Named("tracks")):  # the tracking step: the MSD of its tracks below it
            plot = MsdPlot()
            extras.append(plot)
            self._extra_by_name["MsdPlot"] = plot
            layout.addWidget(plot.native)
            self.viewer.layers.events.inserted.connect(self._tracks_added)
        if hasattr(widget, "made"):
            widget.made.connect(lambda item, _t=title: self._step_result(_t, item))
        layout.addStretch(1)  # a short page keeps its rows together at the top
        for w in [widget, *extras]:
            _compact(getattr(w, "native", w), self.DOCK_WIDTH)
            if hasattr(w, "user_set"):
                w.user_set()  # from now on, hand edits are recorded (and kept by the defaults)
        self.extras[title] = extras

    def extra(self, name: str):
        """The glue widget ``name`` (``"FieldsFromTracks"``, ``"MsdPlot"``) if built."""
        return self._extra_by_name.get(name)

    def _track_previews(self) -> tuple:
        """The Track step's links preview layer while it is in the viewer (none when the step is not built)."""
        from ._track_widget import PREVIEW

        trk = self.step_widget("TrackWidget")
        return (trk.made_layer(PREVIEW, self.viewer.layers),) if trk is not None else ()

    def step_widget(self, cls_name: str):
        """The built widget of the step whose ``STEPS`` entry names class ``cls_name`` (``None``: not built)."""
        for title, _, cls, _ in STEPS:
            if cls == cls_name:
                return self.steps.get(title)
        return None

    def _fields_made(self, path) -> None:
        pde = self.step_widget("PDEWidget")
        if pde is not None and pde.set_input(path):
            pde.apply_defaults({"particle_noise": True}, force=True)  # coarse-grained particles: Ito weak form

    def _step_result(self, title, item) -> None:
        """A step made something: hand it on (model -> balance), style a layer its name did not say was a result
        (``"tracks [1]"``: the step knows it only once added) and refresh the hints."""
        import napari.layers

        if isinstance(_unwrap(item), napari.layers.Layer) and _unwrap(item) not in self._styled:
            self._style_result(_unwrap(item))
        widget = self.steps.get(title)
        if isinstance(_unwrap(item), napari.layers.Layer) and hasattr(widget, "made_as"):
            self._follow_result(widget, _unwrap(item))
        if widget is not None and widget is self.step_widget("PDEWidget"):
            balance = self.step_widget("BalanceWidget")
            if balance is not None:
                self._hand_over(next(t for t, w in self.steps.items() if w is balance))
        self._update_hints()

    def _follow_result(self, maker, layer) -> None:
        """``maker`` showed ``layer``: every other step (and glue widget) that read a same-named layer ``maker``
        did not make reads ``layer`` instead (:meth:`._contract.StepContract.take_result`)."""
        for title, step in self.steps.items():
            for w in [step, *self.extras.get(title, [])]:
                if w is not None and w is not maker and hasattr(w, "take_result"):
                    w.take_result(maker, layer)

    def _hand_over(self, title) -> None:
        """Feed a step the files of the steps before it (model and fields for the balance step)."""
        widget = self.steps.get(title)
        pde = self.step_widget("PDEWidget")
        if widget is None or pde is None or widget is pde or "model" not in widget.inputs():
            return
        if pde.model is not None and pde.identifiable is not False:  # no balances of a model the data do not pin
            from ..models.model_json import write_model

            widget.set_input(write_model(pde.model, self.workdir() / "model.json"))
            if pde.fields_path is not None:
                widget.set_input(pde.fields_path)

    # --- what to do, and whether the method fits the data --------------------------------------
    def _update_hints(self, *_):
        for title, widget in self.steps.items():
            lab = self._hints.get(title)
            if widget is None or lab is None:
                continue
            missing = [m for w in [widget, *self.extras.get(title, [])] if hasattr(w, "missing_inputs")
                       for m in w.missing_inputs()]
            lab.setText("\n".join(f"→ {m}" for m in missing))
            lab.setVisible(bool(missing))

    def hint(self, cls_name: str) -> str:
        """The "what to do" line shown on the page of step ``cls_name`` (empty: every input has a choice)."""
        return _step_text(self._hints, cls_name)

    def check_fit(self, title) -> str:
        """Check that the step's method fits its input data (``NEEDS``); shows and logs a warning."""
        from ._fit_checks import fit_warnings

        widget = self.steps.get(title)
        lab = self._warnings.get(title)
        if widget is None or lab is None or not getattr(widget, "NEEDS", ()):
            return ""
        layers = [lay for lay in self.viewer.layers]
        current = [v for v in widget.current_inputs().values() if v is not None]
        inputs = []
        for v in current:
            if isinstance(v, str) and v in self.viewer.layers:
                v = self.viewer.layers[v]
            inputs.append(_unwrap(v))
        text = " ".join(fit_warnings(widget.NEEDS, inputs, layers))
        if text and text != lab.property("warning"):  # logged once per new warning
            import logging

            logging.getLogger("napari_dynfit").warning("%s: %s", title, text)
        lab.setProperty("warning", text)
        lab.setText(f"⚠ {text}" if text else "")
        lab.setVisible(bool(text))
        return text

    def warning(self, cls_name: str) -> str:
        """The method-does-not-fit warning shown on the page of step ``cls_name`` (empty: none)."""
        return _step_text(self._warnings, cls_name)

    def _tracks_added(self, event) -> None:
        layer = _unwrap(event.value)
        if type(layer).__name__ == "Tracks":
            layer.events.data.connect(lambda *_: self.update_msd(layer))
            self.update_msd(layer)

    def update_msd(self, layer=None, *, block: bool = False):
        """Redraw the MSD plot of ``layer`` (default: the newest Tracks layer) in the plot's worker; with ``block``
        in the calling thread, returning the MSD table."""
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
            return plot.update(layer, dt=dt, theory=abp_theory(source) if source is not None else None, block=block)
        except DynfitError as exc:
            self.status.setText(f"MSD: {exc}")
            return None

    def _movie_layer(self):
        for lay in self.viewer.layers:
            if type(_unwrap(lay)).__name__ == "Image" and (lay.metadata or {}).get("params"):
                return lay
        return None

    # --- a readable view ---------------------------------------------------------------------
    def maker(self, layer):
        """The built step (or glue widget) that makes ``layer`` (by its name), else ``None``."""
        for title, widget in self.steps.items():
            for w in [widget, *self.extras.get(title, [])]:
                if w is not None and hasattr(w, "makes") and w.makes(layer):
                    return w
        return None

    def _style_result(self, layer) -> None:
        """A step's new layer: translucent/additive with its own colormap, and the image results of the other
        steps hidden, so the movie stays visible under at most one step's results."""
        from ._view import hide_other_results, style_result

        maker = self.maker(layer)
        if maker is None:
            return
        self._styled.add(_unwrap(layer))
        style_result(layer, list(self.viewer.layers))
        if type(layer).__name__ == "Image" and ": " in layer.name:  # one field per kind of a step's results shown
            prefix = layer.name.split(": ")[0] + ": "
            if any(lay.visible and lay.name.startswith(prefix) and _unwrap(lay) is not layer
                   and self.maker(lay) is maker for lay in self.viewer.layers):
                layer.visible = False
        hide_other_results(self.viewer, layer, lambda lay: self.maker(lay), maker)

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

        layer = _unwrap(event.value)
        self._style_result(layer)
        key = id(layer)
        self._fresh.add(key)
        QTimer.singleShot(0, lambda: self._fresh.discard(key))
        self._update_hints()

    def use_layer(self, layer, select: bool = True) -> list[str]:
        """Take the data defaults from ``layer`` and (``select``) make it the input of every step that can
        use it.

        A layer a step made (its output) gives its defaults only to the steps that take it as input: selecting
        one step's output never changes another step's settings. Values changed by hand are kept.
        """
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
        own = None
        if self.maker(layer) is not None:  # a step's output: only the steps that read it, only what it says
            widgets = [w for w in widgets if hasattr(w, "accepts") and w.accepts(layer)]
            import dataclasses

            own = dataclasses.replace(self.defaults, spot_sigma=d.spot_sigma)  # the object size only its own
        done = self._apply_defaults(widgets, own)
        if done:
            self.status.setText(f"defaults from '{layer.name}': " + ", ".join(dict.fromkeys(done)))
        for title in self.steps:
            self.check_fit(title)
        return done

    @staticmethod
    def _select(widgets, layer, newest: bool = False) -> None:
        """Choose ``layer`` as input in every widget that offers it (else, with ``newest``, the newest
        layer offered that is not ground truth: the product of the step before)."""
        from ._defaults import is_ground_truth

        for w in widgets:
            if not hasattr(w, "set_input"):
                continue
            if layer is not None and w.set_input(layer):
                continue
            if newest:  # the product of the step before: never ground truth
                viewer = getattr(w, "_viewer", None) or getattr(w, "viewer", None)
                for slot in w.inputs():
                    for lay in reversed(list(viewer.layers) if viewer is not None else []):
                        if not is_ground_truth(lay) and w.set_input(lay, slot=slot):
                            break

    def _apply_defaults(self, widgets, defaults=None) -> list[str]:
        from ._defaults import apply_defaults

        done = []
        for w in widgets:
            done += apply_defaults(w, defaults or self.defaults)
        return done

    def _ask_folder(self, action) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder")
        if folder:
            action(folder)

    def save_project(self, folder, *, block: bool = True) -> None:
        """Save every layer (and the edits made to Points/Labels) to the project ``folder``; written in the
        panel's I/O job (``block``: in the calling thread)."""
        from types import SimpleNamespace

        from ._project_io import save_viewer_project

        glue = self.extra("FieldsFromTracks")
        pde = self.step_widget("PDEWidget")
        extra = {"fields": glue.bundle if glue is not None else None,
                 "model": pde.model if pde is not None else None}
        snapshot = SimpleNamespace(layers=list(self.viewer.layers))  # the layers as they are at the click
        owners = self.layer_owners(snapshot.layers)

        def compute():
            try:
                return save_viewer_project(snapshot, folder, extra={k: v for k, v in extra.items() if v is not None},
                                           owners=owners)
            except OSError as exc:
                raise DynfitError(f"could not save the project: {exc}") from exc

        self._io_job.start(compute, busy="saving the project",
                           on_return=lambda prj: self.status.setText(f"saved {len(prj.names)} artefacts to "
                                                                     f"{prj.root}"), block=block)

    def open_project(self, folder, *, block: bool = True) -> None:
        """Add the layers of a project folder (e.g. a ``dynfit demo`` output) to the viewer; read in the panel's
        I/O job (``block``: in the calling thread), the layers added in the GUI thread."""
        from ._project_io import project_layers

        def compute():
            try:
                return project_layers(folder)
            except OSError as exc:
                raise DynfitError(f"could not open the project: {exc}") from exc

        def add(layers):
            for data, kwargs, kind in layers:
                getattr(self.viewer, f"add_{kind}")(data, **kwargs)
            self.claim_layers()  # a re-run of a step updates the layer the project records as its own
            self.status.setText(f"opened {len(layers)} layers from {folder}")

        self._io_job.start(compute, busy="opening the project", on_return=add, block=block)

    def _layer_owner_widgets(self) -> list:
        """The built steps and glue widgets that show layers (:class:`._contract.LayerOwner`), and the widgets
        docked beside the panel in its viewer that do (the closure widget: :func:`._contract.docked_owners`)."""
        from ._contract import docked_owners

        widgets = [w for w in self.steps.values() if w is not None]
        widgets += [w for extras in self.extras.values() for w in extras]
        widgets += [w for w in docked_owners(self.viewer) if w not in widgets]
        return [w for w in widgets if hasattr(w, "slot_of")]

    def layer_owners(self, layers) -> dict:
        """``{layer name: {"step": widget class name, "slot": name}}`` of the ``layers`` a step (or glue widget)
        of the panel made: what a saved project records (:func:`._project_io.save_viewer_project`)."""
        out = {}
        for layer in layers:
            for w in self._layer_owner_widgets():
                slot = w.slot_of(_unwrap(layer))
                if slot is not None:
                    out[layer.name] = {"step": type(w).__name__, "slot": slot}
                    break
        return out

    def claim_layers(self) -> int:
        """Give the built steps the viewer's layers a project records as theirs (``metadata[OWNER_KEY]``): a
        re-run then updates such a layer instead of adding ``"name [1]"`` beside it. Returns how many were
        claimed (a step that already has a live layer under that name keeps it)."""
        from ._project_io import claim_recorded

        return claim_recorded(self._layer_owner_widgets(), self.viewer.layers)

    def export_plots(self, folder, formats=("png", "svg")) -> list[Path]:
        """Save the matplotlib figures of the steps built so far as PNG and SVG files in ``folder``."""
        from ._plots import save_figure

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
                out.append(save_figure(fig, folder / f"{stem}.{fmt}", fmt))
        self.status.setText(f"exported {len(out)} plot files to {folder}")
        return out
