"""Dock widget: probability flow inference from a Points layer of untracked detections.

The Points layer's first coordinate is the frame (time = frame * dt); the others are positions. Training runs in a
``thread_worker``; every 10 steps the current drift field is drawn as a Vectors layer (live overlay); Cancel stops
the fit. At the end the growth map (with *growth*) and trajectories sampled from the learned SDE are added.

Instead of a Points layer the snapshots can come from an AnnData ``.h5ad`` file (time from ``obs[time key]``,
coordinates from ``obsm[basis]`` or ``X``); *Save .h5ad* writes the results back
(:func:`napari_dynfit.models.flow.h5ad.write_flow_h5ad`: the input file kept whole, drift and velocity per cell in
``obsm``, growth in ``obs``; for a Points layer a new AnnData file).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                            QLineEdit, QPushButton, QSpinBox, QWidget)


class _Live(QObject):
    drift = Signal(object)
    progress = Signal(int, int)


class FlowWidget(QWidget):
    """Fit ``dX = f(X) dt + sqrt(2 D) dW`` (+ growth) to the frames of a Points layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model = None
        self._worker = None
        self._cancel = threading.Event()
        self._live = _Live()
        self._live.drift.connect(self._show_drift)
        self._live.progress.connect(lambda done, total: self.status.setText(f"step {done} / {total}"))
        form = QFormLayout(self)
        self.layer = QComboBox()
        form.addRow("points (frame, y, x)", self.layer)
        self.h5ad = QLineEdit(placeholderText="or an AnnData .h5ad file (instead of the points)")
        form.addRow("AnnData .h5ad", self.h5ad)
        self.time_key = QLineEdit("time")
        form.addRow(".h5ad time key (obs)", self.time_key)
        self.basis = QLineEdit(placeholderText="X")
        form.addRow(".h5ad basis (obsm)", self.basis)
        self.dt = QDoubleSpinBox(minimum=1e-6, maximum=1e6, value=1.0, decimals=4)
        form.addRow("time per frame", self.dt)
        self.diffusion = QDoubleSpinBox(minimum=0.0, maximum=1e6, value=0.5, decimals=4)
        form.addRow("diffusion D", self.diffusion)
        self.fit_d = QCheckBox("fit D (isotropic)")
        form.addRow(self.fit_d)
        self.kind = QComboBox()
        self.kind.addItems(["linear", "mlp"])
        form.addRow("drift model", self.kind)
        self.growth = QCheckBox("learn growth (unbalanced)")
        form.addRow(self.growth)
        self.score_steps = QSpinBox(minimum=10, maximum=100000, value=2000)
        form.addRow("score steps", self.score_steps)
        self.steps = QSpinBox(minimum=0, maximum=100000, value=0)
        self.steps.setSpecialValueText("auto (linear 150, mlp 400)")
        form.addRow("flow steps", self.steps)
        row = QHBoxLayout()
        self.run_btn = QPushButton("Fit")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.save_btn = QPushButton("Save .h5ad")
        self.save_btn.setEnabled(False)
        row.addWidget(self.run_btn)
        row.addWidget(self.cancel_btn)
        row.addWidget(self.save_btn)
        form.addRow(row)
        self.status = QLabel("")
        form.addRow(self.status)
        self.run_btn.clicked.connect(self.start)
        self.cancel_btn.clicked.connect(self._cancel.set)
        self.save_btn.clicked.connect(self._ask_save)
        self._snaps = None
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

    def snapshots(self):
        """The selected layer's points grouped by frame (:class:`~napari_dynfit.models.flow.io.Snapshots`)."""
        from ..errors import InputError
        from ..models.flow.io import snapshots_from_table

        if self.h5ad.text().strip():
            from ..models.flow.io import read_snapshots

            return read_snapshots(self.h5ad.text().strip(), time_column=self.time_key.text().strip() or "time",
                                  basis=self.basis.text().strip() or None)
        name = self.layer.currentText()
        if not name:
            raise InputError("no Points layer selected: add detections as a Points layer (frame, y, x)")
        data = np.asarray(self.viewer.layers[name].data, dtype=float)
        if data.shape[1] < 2:
            raise InputError("the Points layer needs a frame coordinate and at least one position coordinate")
        names = {3: ["y", "x"], 4: ["z", "y", "x"]}.get(data.shape[1], [f"x{i}" for i in range(data.shape[1] - 1)])
        df = pd.DataFrame(data[:, 1:], columns=names)
        df.insert(0, "time", np.round(data[:, 0]) * self.dt.value())
        return snapshots_from_table(df, columns=names)

    def fit(self, snaps, *, callback=None):
        """Score matching + flow fitting with the widget's settings (runs in the calling thread)."""
        from ..models.flow.pfi import fit_flow

        # fit_flow's defaults (the benchmarks' settings): steps and batch size by drift model, offset test, held-out
        # check of the refinement against the moment fit
        return fit_flow(snaps, None if self.fit_d.isChecked() else self.diffusion.value(), model=self.kind.currentText(),
                        growth=self.growth.isChecked(), steps=self.steps.value() or None,
                        score_kwargs={"steps": self.score_steps.value()}, callback=callback)

    def start(self):
        """Start the fit in a background worker."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from .._progress import progress_context
        from ..errors import Cancelled, DynfitError
        from ..models.flow.layers import drift_vectors

        try:
            snaps = self.snapshots()
        except Exception as exc:  # shown to the user, not raised into Qt
            show_error(str(exc))
            return
        self._cancel.clear()
        from ..models.flow.pfi import FLOW_DEFAULTS

        total = self.steps.value() or FLOW_DEFAULTS[self.kind.currentText()]["steps"]

        def live(step, model):
            self._live.drift.emit(drift_vectors(model, snaps))
            self._live.progress.emit(step + 1, total)

        @thread_worker
        def work():
            try:
                with progress_context(None, self._cancel):
                    return self.fit(snaps, callback=live)
            except (DynfitError, Cancelled) as exc:  # expected outcomes: reported in the widget, not raised
                return (exc,)  # a tuple: superqt re-raises a returned exception instance

        self._worker = work()
        self._worker.returned.connect(lambda result: self._finish(result, snaps))
        self._worker.errored.connect(self._failed)
        self._worker.finished.connect(self._done)
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status.setText("score matching ...")
        self._worker.start()

    def _show_drift(self, vectors):
        if "PFI drift" in self.viewer.layers:
            self.viewer.layers["PFI drift"].data = vectors
        else:
            self.viewer.add_vectors(vectors, name="PFI drift", edge_color="orange", edge_width=0.05)

    def _finish(self, model, snaps):
        from ..models.flow.layers import drift_vectors, growth_map, tracks_data, trajectory_table

        if isinstance(model, tuple):
            self._failed(model[0])
            return
        self.model = model
        self._snaps = snaps
        self.save_btn.setEnabled(True)
        self._show_drift(drift_vectors(model, snaps))
        if model.growth_net is not None and snaps.dim >= 2:
            img, kw = growth_map(model, snaps)
            self.viewer.add_image(img, name="PFI growth", colormap="PiYG", opacity=0.6, **kw)
        table = trajectory_table(model, snaps, n_paths=100)
        self.viewer.add_tracks(tracks_data(table, snaps.columns), name="PFI trajectories")
        self.status.setText("done" + (f"; A = {np.round(model.A, 3).tolist()}" if model.kind == "linear" else "")
                            + "".join(f"; {v['reason']}" for v in model.selection.values())
                            + (f"; {model.uncertainty['reason']}" if model.uncertainty else "")
                            + (f"; {model.uncertainty['hint']}" if model.uncertainty.get("hint") else ""))

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
        path, _ = QFileDialog.getSaveFileName(self, "Save flow as AnnData", "flow.h5ad", "AnnData (*.h5ad)")
        if path:
            self.save_h5ad(path if path.lower().endswith(".h5ad") else path + ".h5ad")

    def _failed(self, exc):
        from napari.utils.notifications import show_error

        from ..errors import Cancelled

        self.status.setText("cancelled" if isinstance(exc, Cancelled) else f"error: {exc}")
        if not isinstance(exc, Cancelled):
            show_error(str(exc))

    def _done(self):
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
