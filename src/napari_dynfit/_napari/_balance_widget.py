"""Dock widget "Dominant balance": region map, balance table and equation-space scatter plots.

Pick a model JSON and a fields file (any format of :func:`napari_dynfit.io.load_fields`; a file a
layer was read from is proposed), the equation, optional term groups (``NAME=TERM,TERM; ...``:
physical terms summed from several model terms) and the clustering options, and press "Find
balances". The computation runs in a ``thread_worker``; the result is shown as a Labels layer
(balance index per grid point, world coordinates ``(t, [z,] y, x)`` as the Well reader's layers),
an uncertainty Image layer (hidden), a table of balances and scatter plots of equation space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, PushButton, SpinBox

from ..errors import DynfitError
from ._contract import StepContract
from ._jobs import StepJob
from ._layers import show_layer
from ._plots import make_canvas, tidy

REGIONS = "balance regions"
#: 1 - the posterior probability of the balance shown (dimensionless; the name says what the colour bar shows)
UNCERTAINTY = "balance uncertainty (1)"


class BalanceWidget(StepContract, Container):
    """Find the locally dominant balances of a model over fields and show them over the fields."""

    INPUTS = (("model", "_model", ("*.json",), "learn a model on page 4 (Discover), or choose a model JSON"),
              ("fields", "_fields", ("*.zarr", "*.npz", "*.mat", "*.hdf5", "*.h5"),
               "coarse-grain fields on page 4, or choose a fields file"))
    OUTPUTS = ((REGIONS, "Labels"), (UNCERTAINTY, "Image"))

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._model = FileEdit(mode="r", filter="*.json", label="model JSON", value="")
        self._fields = FileEdit(mode="r", label="fields file", value=self._layer_source() or "")
        self._equation = ComboBox(label="equation", choices=self._equations)
        self._groups = LineEdit(value="", label="term groups")
        self._groups.tooltip = ("physical terms made of several model terms, NAME=TERM,TERM; separated by ';', "
                                "e.g. alignment=p,rho*p")
        self._clusters = SpinBox(value=0, min=0, max=30, label="clusters (0: BIC)")
        self._tol = FloatSpinBox(value=0.15, min=0.0, max=1.0, step=0.01, label="dropped-term tolerance")
        self._quiet = FloatSpinBox(value=0.2, min=0.0, max=1.0, step=0.01, label="quiet fraction")
        self._seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        self._run = PushButton(text="Find balances")
        self._stop = PushButton(text="Stop", enabled=False)
        self._status = Label(value="")
        self.extend([self._model, self._fields, self._equation, self._groups, self._clusters, self._tol, self._quiet,
                     self._seed, self._run, self._stop, self._status])
        self._table = self._make_table()
        self.native.layout().addWidget(self._table)
        self._figure, self._canvas = make_canvas((4.0, 3.2), 300)
        self.native.layout().addWidget(self._canvas)
        self._job = StepJob(self._run, self._stop, self._status, viewer=self._viewer)
        self.result = None
        self._model.changed.connect(self._equation.reset_choices)
        self._run.changed.connect(self.run)

    # --- set-up -----------------------------------------------------------------------------
    def _layer_source(self):
        for lay in self._viewer.layers:
            src = (getattr(lay, "metadata", None) or {}).get("source")
            if src and Path(src).exists():
                return src
        return None

    def _equations(self, _widget=None):
        from ..models.model_json import read_model

        path = self._model.value if hasattr(self, "_model") else None
        if not path or not Path(path).is_file():
            return []
        try:
            return list(read_model(path)["equations"])
        except DynfitError:
            return []

    @staticmethod
    def _make_table():
        from qtpy.QtWidgets import QTableWidget

        table = QTableWidget(0, 3)
        table.setHorizontalHeaderLabels(["active terms", "fraction", "residual"])
        table.horizontalHeader().setStretchLastSection(True)
        table.setMinimumHeight(120)
        return table

    # --- running ----------------------------------------------------------------------------
    def compute(self):
        """Load the inputs and find the balances (runs in the worker thread)."""
        from ..io.well import load_fields
        from ..models.balance import dominant_balance, parse_groups
        from ..models.model_json import read_model

        if not self._model.value or not Path(self._model.value).is_file():
            raise DynfitError("choose a model JSON file (from dynfit discover-pde, or written by hand)")
        if not self._fields.value or not Path(self._fields.value).exists():
            raise DynfitError("choose a fields file (.zarr, .npz, The Well .hdf5, PDE-FIND .mat)")
        model = read_model(self._model.value)
        groups = parse_groups([g for g in str(self._groups.value).split(";") if g.strip()])
        bundle = load_fields(self._fields.value)
        res = dominant_balance(bundle, model, self._equation.value or None, groups=groups,
                               n_clusters=self._clusters.value or None, tol=self._tol.value,
                               quiet=self._quiet.value, seed=self._seed.value)
        return bundle, res

    def run(self, *_, block: bool = False) -> None:
        """Find the balances; with ``block`` in the calling thread (tests, scripts)."""
        self._job.start(self.compute, on_return=self._show, busy="clustering equation space...", block=block)

    def stop(self, *_) -> None:
        """Cancel at the next progress step."""
        self._job.stop()

    # --- display ----------------------------------------------------------------------------
    def _show(self, item) -> None:
        from qtpy.QtWidgets import QTableWidgetItem

        from ..models.balance import plot_equation_space

        bundle, res = item
        self.result = res
        from ._geometry import fields_kwargs

        geo = fields_kwargs(bundle)  # the fields' grid: physical time and lengths (napari_dynfit.geometry)
        labels = res.regions.astype(np.int32) + 1  # 0 stays transparent
        names = {i + 1: " + ".join(b.terms) or "no dynamics" for i, b in enumerate(res.balances)}
        # a re-run updates both layers in place; the region -> balance names are merged into the labels' metadata
        # and follow the fields' grid (a re-run on another fields file: another size, spacing or time axis)
        grid = tuple(k for k in ("scale", "translate", "units", "axis_labels") if k in geo)
        show_layer(self._viewer, "labels", labels, REGIONS, owner=self, **geo, opacity=0.5,
                   metadata={"balances": names}, refresh=grid)
        show_layer(self._viewer, "image", res.uncertainty, UNCERTAINTY, owner=self, **geo, colormap="magma",
                   visible=False, contrast_limits=(0.0, 1.0), refresh=grid)
        self._table.setRowCount(len(res.balances))
        for i, b in enumerate(res.balances):
            for j, text in enumerate((f"{i + 1}: {names[i + 1]}", f"{b.fraction:.3f}", f"{b.residual:.3g}")):
                self._table.setItem(i, j, QTableWidgetItem(text))
        plot_equation_space(res, fig=self._figure, max_pairs=3)
        self._figure.set_layout_engine("constrained")  # (a no-op: plot_equation_space keeps a figure's layout)
        axes = self._figure.axes
        grid = self._figure.add_gridspec(max(1, len(axes)), 1)  # one pair per row: readable at the dock's width
        for k, ax in enumerate(axes):
            ax.set_subplotspec(grid[k, 0])
        self._canvas.setFixedHeight(230 * max(1, len(axes)) + 60)
        tidy(self._figure)
        self._canvas.draw_idle()
        self._status.value = f"{len(res.balances)} balances from {res.n_clusters} clusters ({res.equation})"
        self.made.emit(res)
