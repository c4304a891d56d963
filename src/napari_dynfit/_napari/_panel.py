"""The DynFit panel: one dock widget that guides through the whole workflow.

Steps (each page is the step's own dock widget, built the first time its page is opened, so the
panel opens fast): APR conversion -> filter & segment -> detect & track -> fields & PDE model ->
dominant balance / latent field / snapshot flow. Every step reads the layers made by the steps
before it (the step widgets list the viewer's layers of the right type) and runs its long work in a
``thread_worker`` with progress and a Stop button.

The header saves all layers of the session to a project folder (:mod:`._project_io`), re-opens
one, and exports the plots of the steps (PNG/SVG).
"""

from __future__ import annotations

import importlib
from pathlib import Path

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
    ("3. Detect & track", "_track_widget", "TrackingWidget",
     "movie or Labels -> detections (Points), tracks (Tracks)"),
    ("4. Fields & PDE model", "_pde_widget", "PdeWidget",
     "tracks -> coarse-grained fields -> learned PDE"),
    ("5a. Dominant balance", "_balance_widget", "BalanceWidget",
     "model + fields -> balance regions (Labels)"),
    ("5b. Latent field (PINN)", "_pinn_widget", "LatentFieldWidget",
     "tracks -> hidden chemical field (Image), Dc, k"),
    ("5c. Flow from snapshots", "_flow_widget", "FlowWidget",
     "detections (no tracks) -> drift field (Vectors), growth map"),
)


class DynFitPanel(QWidget):
    """Guided workflow panel (``Plugins > DynFit > DynFit panel``)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.steps: dict[str, QWidget | object] = {}
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
            self.toolbox.addItem(page, title)
            self._pages.append(page)
        layout.addWidget(self.toolbox)
        self.toolbox.currentChanged.connect(self.step)
        self._open_btn.clicked.connect(lambda: self._ask_folder(self.open_project))
        self._save_btn.clicked.connect(lambda: self._ask_folder(self.save_project))
        self._export_btn.clicked.connect(lambda: self._ask_folder(self.export_plots))
        self.step(0)

    # ------------------------------------------------------------------------------------------
    def step(self, index: int):
        """The widget of step ``index`` (built on first use) and show its page."""
        title, module, cls, _ = STEPS[index]
        if title not in self.steps:
            mod = importlib.import_module(f"{__package__}.{module}")
            widget = getattr(mod, cls)(self.viewer)
            self._pages[index].layout().addWidget(getattr(widget, "native", widget))
            self.steps[title] = widget
        if self.toolbox.currentIndex() != index:
            self.toolbox.setCurrentIndex(index)
        return self.steps[title]

    def _ask_folder(self, action) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder")
        if folder:
            action(folder)

    def save_project(self, folder) -> None:
        """Save every layer (and the edits made to Points/Labels) to the project ``folder``."""
        from ._project_io import save_viewer_project

        try:
            prj = save_viewer_project(self.viewer, folder)
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
        for title, widget in self.steps.items():
            fig = getattr(widget, "_figure", None)
            if fig is None:
                continue
            stem = "".join(ch if ch.isalnum() else "_" for ch in title).strip("_")
            for fmt in formats:
                with atomic_path(folder / f"{stem}.{fmt}") as tmp:
                    fig.savefig(tmp, format=fmt, bbox_inches="tight")
                out.append(folder / f"{stem}.{fmt}")
        self.status.setText(f"exported {len(out)} plot files to {folder}")
        return out
