"""Dock widget: probability flow inference from a Points layer of untracked detections.

The Points layer's first coordinate is the frame (time = frame * dt, dt from the layer's time axis:
:mod:`napari_dynfit.geometry`); the others are positions, read in world coordinates (scale, translate). The layers
added are drawn in the Points layer's world (its scale, translate, units and axis labels), the drift arrows sized
to the grid of arrows. Training runs in a
``thread_worker``; every 10 steps the current drift field is drawn as a Vectors layer (live overlay); Cancel stops
the fit. At the end the growth map (with *growth*) and trajectories sampled from the learned SDE are added.

Instead of a Points layer the snapshots can come from an AnnData ``.h5ad`` file (time from ``obs[time key]``,
coordinates from ``obsm[basis]`` or ``X``); *Save .h5ad* writes the results back
(:func:`napari_dynfit.models.flow.h5ad.write_flow_h5ad`: the input file kept whole, drift and velocity per cell in
``obsm``, growth in ``obs``; for a Points layer a new AnnData file).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from qtpy import QtWidgets as qw

from ._contract import StepContract  # noqa: E402
from ._layers import data_range, show_layer  # noqa: E402


class FlowWidget(StepContract, qw.QWidget):
    """Fit ``dX = f(X) dt + sqrt(2 D) dW`` (+ growth) to the frames of a Points layer."""

    INPUTS = (("points", "layer", ("Points",), "no detections yet: Detect on page 3 (or open an AnnData .h5ad)"),)
    PARAMS = {"dt": "dt"}
    OUTPUTS = (("PFI *", "Vectors", "Image", "Tracks"),)
    NEEDS = ("drift",)

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model = None
        form = qw.QFormLayout(self)
        self.layer = qw.QComboBox()
        form.addRow("points (frame, [z,] y, x)", self.layer)
        self.h5ad = qw.QLineEdit(placeholderText="or an AnnData .h5ad file (instead of the points)")
        form.addRow("AnnData .h5ad", self.h5ad)
        self.time_key = qw.QLineEdit("time")
        form.addRow(".h5ad time key (obs)", self.time_key)
        self.basis = qw.QLineEdit(placeholderText="X")
        form.addRow(".h5ad basis (obsm)", self.basis)
        self.dt = qw.QDoubleSpinBox(minimum=1e-6, maximum=1e6, value=1.0, decimals=4)
        form.addRow("time per frame", self.dt)
        self.diffusion = qw.QDoubleSpinBox(minimum=0.0, maximum=1e6, value=0.5, decimals=4)
        form.addRow("diffusion D", self.diffusion)
        self.fit_d = qw.QCheckBox("fit D (isotropic)")
        form.addRow(self.fit_d)
        self.kind = qw.QComboBox()
        self.kind.addItems(["linear", "mlp"])
        form.addRow("drift model", self.kind)
        self.growth = qw.QCheckBox("learn growth (unbalanced)")
        form.addRow(self.growth)
        self.score_steps = qw.QSpinBox(minimum=10, maximum=100000, value=2000)
        form.addRow("score steps", self.score_steps)
        self.steps = qw.QSpinBox(minimum=0, maximum=100000, value=0)
        self.steps.setSpecialValueText("auto (linear 150, mlp 400)")
        form.addRow("flow steps", self.steps)
        row = qw.QHBoxLayout()
        self.run_btn = qw.QPushButton("Fit")
        self.cancel_btn = qw.QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.save_btn = qw.QPushButton("Save .h5ad")
        self.save_btn.setEnabled(False)
        row.addWidget(self.run_btn)
        row.addWidget(self.cancel_btn)
        row.addWidget(self.save_btn)
        form.addRow(row)
        self.status = qw.QLabel("")
        form.addRow(self.status)
        from ._jobs import StepJob

        self._job = StepJob(self.run_btn, self.cancel_btn, self.status, viewer=self.viewer)
        self.run_btn.clicked.connect(lambda: self.start())
        self.save_btn.clicked.connect(self._ask_save)
        self._snaps = None
        self._source = None  # the Points layer of the running/last fit (the geometry of the added layers)
        self._fit_dt = 1.0  # its frame interval (the spin box follows the chosen layer while the fit runs)
        self.layer.currentTextChanged.connect(self._take_dt)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    def _refresh(self, *_):
        current = self.layer.currentText()
        self.layer.clear()
        names = [ly.name for ly in self.viewer.layers if ly._type_string == "points" and ly.ndim >= 2]
        self.layer.addItems(names)
        if current in names:
            self.layer.setCurrentText(current)

    def _take_dt(self, name: str) -> None:
        """Time per frame from the chosen layer's time axis (``scale[0]``, or ``metadata["dt"]``)."""
        from ._geometry import time_axis

        if name and name in self.viewer.layers:
            dt = time_axis(self.viewer.layers[name])[0]
            if dt > 0:
                self.dt.setValue(dt)

    def _inputs(self) -> dict:
        """The widget's values and the Points layer's data in world coordinates (read in the GUI thread)."""
        inputs = {"h5ad": self.h5ad.text().strip(), "time_key": self.time_key.text().strip() or "time",
                  "basis": self.basis.text().strip() or None, "dt": self.dt.value(), "points": None}
        name = self.layer.currentText()
        if not inputs["h5ad"] and name and name in self.viewer.layers:
            layer = self.viewer.layers[name]
            # positions in world coordinates (scale, translate: physical units); the first axis stays the frame
            data = np.array(layer.data, dtype=float)
            if data.ndim == 2 and data.shape[1] >= 2:
                scale, translate = np.asarray(layer.scale, float), np.asarray(layer.translate, float)
                data[:, 1:] = data[:, 1:] * scale[1:] + translate[1:]
            inputs["points"] = data
            inputs["source"] = layer
        return inputs

    @staticmethod
    def _snapshots(inputs):
        """Snapshots from :meth:`_inputs` (runs in the worker: reading a ``.h5ad`` file may take a while)."""
        from ..errors import InputError
        from ..models.flow.io import snapshots_from_table

        if inputs["h5ad"]:
            from ..models.flow.io import read_snapshots

            return read_snapshots(inputs["h5ad"], time_column=inputs["time_key"], basis=inputs["basis"])
        data = inputs["points"]
        if data is None:
            raise InputError("no Points layer selected: add detections as a Points layer (frame, y, x)")
        if data.ndim != 2 or data.shape[1] < 2:
            raise InputError("the Points layer needs a frame coordinate and at least one position coordinate")
        names = {3: ["y", "x"], 4: ["z", "y", "x"]}.get(data.shape[1], [f"x{i}" for i in range(data.shape[1] - 1)])
        df = pd.DataFrame(data[:, 1:], columns=names)
        df.insert(0, "time", np.round(data[:, 0]) * inputs["dt"])
        return snapshots_from_table(df, columns=names)

    def snapshots(self):
        """The selected layer's points (world coordinates) grouped by frame, or the ``.h5ad`` file's snapshots
        (:class:`~napari_dynfit.models.flow.io.Snapshots`); runs in the calling thread."""
        return self._snapshots(self._inputs())

    def _settings(self) -> dict:
        return {"D": None if self.fit_d.isChecked() else self.diffusion.value(), "model": self.kind.currentText(),
                "growth": self.growth.isChecked(), "steps": self.steps.value() or None,
                "score_steps": self.score_steps.value()}

    def fit(self, snaps, *, callback=None, settings=None):
        """Score matching + flow fitting with the widget's settings (runs in the calling thread)."""
        from ..models.flow.pfi import fit_flow

        s = settings or self._settings()
        # fit_flow's defaults (the benchmarks' settings): steps and batch size by drift model, offset test, held-out
        # check of the refinement against the moment fit
        return fit_flow(snaps, s["D"], model=s["model"], growth=s["growth"], steps=s["steps"],
                        score_kwargs={"steps": s["score_steps"]}, callback=callback)

    def start(self, block: bool = False):
        """Start the fit in the widget's job: reading the snapshots, score matching and the flow fit all run in
        the worker; every 10 steps the drift is drawn (live overlay)."""
        inputs, settings = self._inputs(), self._settings()
        self._source, self._fit_dt = inputs.get("source"), inputs["dt"]

        def compute():  # imports too: the first import of torch costs seconds
            from .._progress import report
            from ..models.flow.layers import drift_vectors
            from ..models.flow.pfi import FLOW_DEFAULTS

            total = settings["steps"] or FLOW_DEFAULTS[settings["model"]]["steps"]
            snaps = self._snapshots(inputs)

            def live(step, model):
                self._job.deliver(drift_vectors(model, snaps))
                report(step + 1, total, "flow fit")

            return self.fit(snaps, callback=live, settings=settings), snaps

        self._job.start(compute, on_yield=self._show_drift, on_return=lambda res: self._finish(*res),
                        busy="score matching ...", block=block)

    def _show_drift(self, vectors):
        """Draw the drift (world coordinates ``(n, 2, k)``: ``y, x`` or ``z, y, x``) over the source layer's last
        ``k`` axes (its space), arrows sized to their grid."""
        from ._geometry import arrow_style, world_vectors

        vectors, width = arrow_style(vectors)
        k = vectors.shape[2]
        source = self._source if self._source is not None and self._source.ndim > k else None
        data, kw = world_vectors(source, vectors[:, 0], vectors[:, 1], axes=k)
        scale = np.asarray(kw.get("scale", (1.0,) * k), float)
        width = width / float(np.prod(scale) ** (1.0 / k))  # napari's width: data units (geometric mean pixel)
        # the width follows the arrow grid and the grid the source layer (a re-run on another layer: its pixels);
        # without a source (.h5ad) the arrows are in world coordinates (napari's default scale and translate)
        kw = {"scale": (1.0,) * k, "translate": (0.0,) * k, **kw}
        show_layer(self.viewer, "vectors", data, "PFI drift", owner=self, edge_color="orange", edge_width=width, **kw,
                   refresh=("edge_width", "scale", "translate"))

    def growth_name(self) -> str:
        """Name of the growth-rate layer with its unit, ``"PFI growth rate (1/s)"`` (napari's colour bar has no
        title): per unit of the snapshots' time, the Points layer's time unit (:func:`._geometry.unit_symbols`;
        an ``.h5ad`` file's time column has no unit: "time unit")."""
        from ._geometry import unit_symbols

        time = "time unit" if self._source is None else unit_symbols(self._source, self._fit_dt)[1]
        return f"PFI growth rate (1/{time})"

    def _finish(self, model, snaps):
        from ..models.flow.layers import drift_vectors, growth_map, tracks_data, trajectory_table
        from ._geometry import layer_kwargs

        self.model = model
        self._snaps = snaps
        self.save_btn.setEnabled(True)
        self._show_drift(drift_vectors(model, snaps))
        if model.growth_net is not None and snaps.dim >= 2:
            img, kw = growth_map(model, snaps)  # world grid: keep it, with the source's units and labels
            if self._source is not None and self._source.ndim > img.ndim:
                kw = {**layer_kwargs(self._source, axes=img.ndim), **kw}
            # a re-run: the same layer on the new grid, the contrast on the new rates (as a new layer's)
            show_layer(self.viewer, "image", img, self.growth_name(), owner=self, colormap="PiYG", opacity=0.6, **kw,
                       contrast_limits=data_range(img), refresh=("scale", "translate", "contrast_limits"))
        self.made.emit(model)
        table = trajectory_table(model, snaps, n_paths=100)
        data, kw = self._trajectories(tracks_data(table, snaps.columns), table["time"].to_numpy(float))
        show_layer(self.viewer, "tracks", data, "PFI trajectories", owner=self, **kw, refresh=("scale", "translate"))
        self.status.setText("done" + (f"; A = {np.round(model.A, 3).tolist()}" if model.kind == "linear" else "")
                            + "".join(f"; {v['reason']}" for v in model.selection.values())
                            + (f"; {model.uncertainty['reason']}" if model.uncertainty else "")
                            + (f"; {model.uncertainty['hint']}" if model.uncertainty.get("hint") else ""))

    def _trajectories(self, data, times):
        """Tracks data in the source's data coordinates: time in sub-frames (``scale[0]`` = the sampling step),
        space in the source's pixels; without a source layer (``.h5ad``) world coordinates."""
        from ._geometry import layer_kwargs, world_time

        steps = np.diff(np.unique(times))
        step = float(steps.min()) if steps.size else 1.0
        data = data.copy()
        data[:, 1] = np.round((times - times.min()) / step)
        if self._source is None or data.shape[1] - 2 != self._source.ndim - 1:
            return data, {"scale": (step, *[1.0] * (data.shape[1] - 2)), "translate": (float(times.min()),
                                                                                        *[0.0] * (data.shape[1] - 2))}
        kw = layer_kwargs(self._source)
        scale, translate = np.asarray(kw["scale"], float), np.asarray(kw["translate"], float)
        data[:, 2:] = (data[:, 2:] - translate[1:]) / scale[1:]
        t0, t1 = world_time(self._source, [times.min(), times.min() + step], self.dt.value())  # frame * dt -> world
        kw["scale"], kw["translate"] = (t1 - t0, *scale[1:]), (t0, *translate[1:])
        return data, kw

    def save_h5ad(self, path):
        """Write the fitted flow to the AnnData file ``path``: the input ``.h5ad`` copied whole plus
        ``obsm["pfi_drift"]``, ``obsm["pfi_velocity"]``, ``obs["pfi_growth"]`` and ``uns["pfi"]``; from a Points
        layer a new AnnData file (``X`` = positions, ``obs["time"]``). Returns the path (``None`` on error)."""
        from ..errors import DynfitError
        from ..models.flow.h5ad import write_flow_h5ad

        try:
            if self.model is None:
                raise DynfitError("fit first: there is no flow to save")
            src = self.h5ad.text().strip() or None
            out = write_flow_h5ad(self.model, path, source=src, time_key=self.time_key.text().strip() or "time",
                                  basis=self.basis.text().strip() or None,
                                  table=None if src else self._snaps.to_table())
        except DynfitError as exc:
            self._failed(exc)
            return None
        self.status.setText(f"saved {out}")
        return out

    def _ask_save(self, *_):
        path, _ = qw.QFileDialog.getSaveFileName(self, "Save flow as AnnData", "flow.h5ad", "AnnData (*.h5ad)")
        if path:
            self.save_h5ad(path if path.lower().endswith(".h5ad") else path + ".h5ad")

    def _failed(self, exc):
        self._job.show_error(exc)
