"""Produce the README screenshots: napari (under Xvfb when there is no display) with the 2D sample.

Usage::

    xvfb-run -a python scripts/screenshot.py            # writes docs/images/*.png
    xvfb-run -a python scripts/screenshot.py docs/images pde   # only step_pde.png (detect on the movie)

It opens the "Active particles (2D+t)" sample, docks the DynFit panel and runs the workflow through
the panel's step widgets (the same calls their buttons make, in the calling thread), saving a
screenshot of the whole window after the main steps:

* ``screenshot.png``: detections and tracks over the movie, the tracking page with the MSD plot;
* ``step_apr.png``: the APR layer (particle levels) with the conversion page;
* ``step_pde.png``: coarse-grained density, the learned PDE with its stability paths;
* ``step_balance.png``: the dominant-balance regions over the fields.

Run it after changing the widgets so the README shows what the code does now (a few minutes: the
sample has 750 particles x 400 frames). It prints the learned equations.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_API", "pyqt6")


def _shot(viewer, path: Path, panel=None, top=None) -> None:
    """Screenshot of the window; with ``panel``, its open page is scrolled to the bottom (the plots),
    or so that the top of the widget ``top`` shows."""
    import napari

    if panel is not None:
        napari.qt.get_qapp().processEvents()
        area = panel.toolbox.currentWidget().parentWidget().parentWidget()  # QToolBox's scroll area
        bar = area.verticalScrollBar() if hasattr(area, "verticalScrollBar") else None
        if bar is not None:
            bar.setValue(bar.maximum())
            if top is not None:
                page = panel.toolbox.currentWidget()
                bar.setValue(min(bar.maximum(), top.mapTo(page, top.rect().topLeft()).y() - 10))
    for _ in range(3):
        napari.qt.get_qapp().processEvents()
    viewer.screenshot(str(path), canvas_only=False)
    print(path)


def _pde_shot(viewer, panel, index, out: Path) -> int:
    """Page 4 with the panel's own choices and defaults: fields from the tracks, Discover; step_pde.png."""
    pde = panel.step(index["PDEWidget"])
    glue = panel.extra("FieldsFromTracks")
    glue.run()
    pde.run(block=True)
    print(pde.verdict() or pde.model["equations"])
    for lay in viewer.layers:  # observed density (gray) and the model's forecast (magenta) from frame 0
        lay.visible = lay.name in ("observed: rho", "model: rho")
    viewer.layers.selection.active = viewer.layers["observed: rho"]
    viewer.reset_view()
    viewer.dims.set_current_step(0, 100)
    _shot(viewer, out / "step_pde.png", panel, top=pde._canvas)
    return 0


def main(out_dir: str = "docs/images", only: str = "") -> int:
    import napari

    from napari_dynfit._napari._panel import STEPS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1250)
    try:
        viewer.open_sample("napari-dynfit", "active_particles_2d")
        dock, panel = viewer.window.add_plugin_dock_widget("napari-dynfit", "DynFit panel")
    except KeyError:  # the plugin is not registered (a source tree on PYTHONPATH): what the menu does
        from napari_dynfit._napari._panel import DynFitPanel
        from napari_dynfit._napari._sample_data import active_particles_2d

        for data, meta, kind in active_particles_2d():
            getattr(viewer, f"add_{kind}")(data, **meta)
        panel = DynFitPanel(viewer)
        dock = viewer.window.add_dock_widget(panel, name="DynFit panel", area="right")
    movie = viewer.layers["active_particles_2d"]
    viewer.layers["active_particles_2d truth"].visible = False
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([dock], [620], Qt.Orientation.Horizontal)
    index = {s[2]: i for i, s in enumerate(STEPS)}
    viewer.layers.selection.active = movie  # defaults from the data: spacing, dt, spot size
    if only == "pde":  # page 3 on the raw movie, then page 4
        trk = panel.step(index["TrackWidget"])
        trk.detect(sync=True)
        trk.track(sync=True)
        return _pde_shot(viewer, panel, index, out)

    conv = panel.step(index["AprConvertWidget"])
    conv.convert(sync=True)
    apr = viewer.layers[f"{movie.name} (APR)"]
    viewer.layers.selection.active = apr
    conv._mode.value = "level"  # the "APR layer display" choice
    apr.colormap = "turbo"
    apr.contrast_limits = (3, 8)  # particle levels of a 256 x 256 image: 8 = pixel resolution
    movie.visible = False
    viewer.dims.set_current_step(0, 10)
    _shot(viewer, out / "step_apr.png", panel)
    conv._mode.value = "constant"
    apr.colormap = "gray"

    trk = panel.step(index["TrackWidget"])
    viewer.layers.selection.active = apr
    trk.detect(sync=True)
    viewer.layers.selection.active = viewer.layers["detections"]
    trk.track(sync=True)
    panel.update_msd(viewer.layers["tracks"])
    viewer.dims.set_current_step(0, 30)
    _shot(viewer, out / "screenshot.png", panel)
    _pde_shot(viewer, panel, index, out)

    bal = panel.step(index["BalanceWidget"])
    bal._equation.value = "p_t" if "p_t" in list(bal._equation.choices) else bal._equation.value
    bal.run(block=True)
    viewer.layers["observed: rho"].visible = True
    viewer.layers["model: rho"].visible = False
    _shot(viewer, out / "step_balance.png", panel)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
