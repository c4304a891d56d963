"""Re-make the screenshots of docs/gui.md: one PNG per step of the panel's walk on the 2D sample.

Usage (under Xvfb when there is no display; several minutes on a loaded 2-core machine)::

    xvfb-run -a python docs/make_screenshots.py [OUT_DIR] [PAGES]

``PAGES``: a comma-separated subset of ``apr,filter,track,pde,balance,pinn,flow,closure`` (default all).

The walk goes through the panel with its own layer choices and defaults, as a user does:

* pages 1-2 on a 128 µm, 50-frame piece of the sample (converting the whole 400-frame movie to the APR
  takes long and shows nothing more): ``step_apr.png`` (particle levels), ``step_filter.png`` (objects and
  centroids of one frame);
* pages 3-5 on the full sample (750 particles, 400 frames: what identifies the hydrodynamics):
  ``step_track.png`` (also ``screenshot.png``, the README's), ``step_pde.png`` (the learned model, the
  observed density and the model's forecast), ``step_balance.png``, ``step_pinn.png`` (a few training
  steps) and ``step_flow.png`` (the page before a fit), the last two with their warnings: the particle
  sample has no chemical field, its positions wrap around a periodic box;
* ``closure.png`` (docs/closures.md): the *Kinetic closures* widget after Simulate (``alpha = -4``, 32^2, t = 0..15;
  or the run in ``DYNFIT_CLOSURE_RUN``), Train and Compare: order parameter and director of the kinetic run and
  of the Bingham- and learned-closure moment models side by side, the closure error map and the spectra.

Each image is the whole window, with the step's page scrolled to its plot, reduced to at most 256
colours (and downscaled if needed) so that it stays under 200 KB.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_API", "pyqt6")

MAX_BYTES = 200_000
PAGES = ("apr", "filter", "track", "pde", "balance", "pinn", "flow", "closure")


def _process():
    import napari

    app = napari.qt.get_qapp()
    for _ in range(5):
        app.processEvents()


def _wait(busy) -> None:
    """Process events while ``busy()`` (a step's job still running in its worker)."""
    import time

    while busy():
        _process()
        time.sleep(0.05)


def save_png(img, path: Path, max_bytes: int = MAX_BYTES) -> Path:
    """Write an RGB(A) screenshot as a palette PNG under ``max_bytes`` (downscaled in steps of 10 % if needed),
    through a temporary file and a rename."""
    from PIL import Image

    from napari_dynfit._io import atomic_path

    im = Image.fromarray(img[..., :3])
    # fewer colours first (the noisy movie is what costs bytes), then smaller
    tries = [(1.0, 256), (1.0, 64), (1.0, 32)] + [(0.9 ** k, 32) for k in range(1, 8)]
    for scale, colors in tries:
        small = im if scale == 1.0 else im.resize((int(im.width * scale), int(im.height * scale)), Image.LANCZOS)
        pal = small.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        with atomic_path(path) as tmp:
            pal.save(tmp, format="PNG", optimize=True)
        if path.stat().st_size <= max_bytes:
            break
    print(f"{path} ({path.stat().st_size // 1000} KB, {small.width} x {small.height})")
    return path


def shot(viewer, path: Path, panel=None, widget=None) -> Path:
    """Screenshot of the window; the open page scrolled so that ``widget`` (e.g. a plot) shows."""
    if panel is not None:
        _process()
        page = panel.toolbox.currentWidget()
        area = page.parentWidget().parentWidget()  # QToolBox's scroll area
        bar = area.verticalScrollBar() if hasattr(area, "verticalScrollBar") else None
        if bar is not None:
            y = 0 if widget is None else widget.mapTo(page, widget.rect().topLeft()).y() - 40
            bar.setValue(max(0, min(bar.maximum(), y)))
    _process()
    return save_png(viewer.screenshot(canvas_only=False), path)


def _window(viewer, width: int, height: int):
    """Size ``viewer``'s Qt main window to ``width`` x ``height`` pixels with the layer-controls dock hidden (room
    for the layer list and the canvas); returns the window.

    napari has no public API for its main window's size or docks (``Window._qt_window`` and ``Window.qt_viewer``
    are private or deprecated), so the window is found as the plugin's jobs find it (the window of the public
    ``window.main_menu``: ``_jobs._viewer_window``) and the dock by the object name napari gives it."""
    from qtpy.QtWidgets import QDockWidget

    from napari_dynfit._napari._jobs import _viewer_window

    win = _viewer_window(viewer)
    if win is None:
        raise RuntimeError("napari's main window was not found (viewer.window.main_menu)")
    win.resize(width, height)
    for dock in win.findChildren(QDockWidget):
        if dock.objectName() == "layer controls":
            dock.setVisible(False)
    return win


def _dock_right(viewer, widget, name: str, width: int):
    """Dock ``widget`` on the right of ``viewer``'s window, ``width`` pixels wide (public ``add_dock_widget``;
    the width through the Qt main window, see :func:`_window`)."""
    from qtpy.QtCore import Qt

    from napari_dynfit._napari._jobs import _viewer_window

    dock = viewer.window.add_dock_widget(widget, name=name, area="right")
    _viewer_window(viewer).resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    return dock


def _viewer_with(sample, width=1400, height=1100):
    import napari

    from napari_dynfit._napari._panel import DynFitPanel
    from napari_dynfit._napari._sample_data import _layers

    viewer = napari.Viewer(show=True)
    _window(viewer, width, height)
    for data, meta, kind in _layers(sample):
        getattr(viewer, f"add_{kind}")(data, **meta)
    panel = DynFitPanel(viewer)
    _dock_right(viewer, panel, "DynFit panel", panel.DOCK_WIDTH + 30)
    return viewer, panel


def pages_1_2(out: Path, pages) -> None:
    """APR conversion and filter/segment on a piece of the sample."""
    from napari_dynfit._napari._panel import STEPS
    from napari_dynfit.sim.samples import active_particles_2d

    index = {s[2]: i for i, s in enumerate(STEPS)}
    viewer, panel = _viewer_with(active_particles_2d(seed=0, fov=128.0, frames=50))
    movie = viewer.layers["active_particles_2d"]
    viewer.layers.selection.active = movie
    conv = panel.step(index["AprConvertWidget"])
    conv.convert(sync=True)
    apr = viewer.layers[f"{movie.name} (APR)"]
    viewer.layers.selection.active = apr
    viewer.dims.set_current_step(0, 10)
    if "apr" in pages:
        conv._mode.value = "level"  # the "APR layer display" choice: particle levels
        apr.colormap, apr.contrast_limits, movie.visible = "turbo", (3, 7), False
        viewer.reset_view()
        shot(viewer, out / "step_apr.png", panel)
        conv._mode.value = "constant"
        apr.colormap, movie.visible = "gray", True
        apr.reset_contrast_limits()
    if "filter" in pages:
        filt = panel.step(index["AprFilterWidget"])
        viewer.dims.set_current_step(0, 0)
        filt.run(sync=True)
        shot(viewer, out / "step_filter.png", panel)
    viewer.close()


def pages_3_5(out: Path, pages) -> None:
    """Detect, track, fields and PDE, balance, latent field and flow on the full sample."""
    from napari_dynfit._napari._panel import STEPS
    from napari_dynfit.sim.samples import active_particles_2d

    index = {s[2]: i for i, s in enumerate(STEPS)}
    viewer, panel = _viewer_with(active_particles_2d(seed=0))
    movie = viewer.layers["active_particles_2d"]
    viewer.layers.selection.active = movie  # defaults from the data
    trk = panel.step(index["TrackWidget"])
    trk.detect(sync=True)
    trk.track(sync=True)
    _wait(lambda: panel.extra("MsdPlot").job.running)  # the MSD of the new tracks is computed in its worker
    viewer.dims.set_current_step(0, 30)
    viewer.reset_view()
    if "track" in pages:
        shot(viewer, out / "step_track.png", panel, panel.extra("MsdPlot").native)
        shot(viewer, out / "screenshot.png", panel, panel.extra("MsdPlot").native)
    if not {"pde", "balance", "pinn", "flow"} & set(pages):
        viewer.close()
        return
    pde = panel.step(index["PDEWidget"])
    glue = panel.extra("FieldsFromTracks")
    glue.run()
    pde.run(block=True)
    print(pde.verdict() or pde.model["equations"])
    viewer.dims.set_current_step(0, 100)
    if "pde" in pages:
        shot(viewer, out / "step_pde.png", panel, pde._canvas)
    if "balance" in pages and pde.identifiable is not False:
        bal = panel.step(index["BalanceWidget"])
        if "p_t" in list(bal._equation.choices):
            bal._equation.value = "p_t"
        bal.run(block=True)
        shot(viewer, out / "step_balance.png", panel, bal._canvas)
    if "pinn" in pages:
        pinn = panel.step(index["LatentFieldWidget"])
        pinn._steps.value, pinn._chunk.value, pinn._grid.value = 40, 20, 32
        pinn.train(block=True)
        shot(viewer, out / "step_pinn.png", panel)
    if "flow" in pages:
        flow = panel.step(index["FlowWidget"])
        flow.set_input(viewer.layers["detections"])
        panel.check_fit(STEPS[index["FlowWidget"]][0])
        shot(viewer, out / "step_flow.png", panel)  # the page and its warning (a fit takes minutes)
    viewer.close()


def page_closure(out: Path) -> None:
    """The Kinetic closures widget: simulate (or open ``DYNFIT_CLOSURE_RUN``), train, compare."""
    import napari

    from napari_dynfit._napari._closure_widget import ClosureWidget, order_layer

    viewer = napari.Viewer(show=True)
    _window(viewer, 1500, 1000)
    w = ClosureWidget(viewer)
    _dock_right(viewer, w, "Kinetic closures", 520)
    if os.environ.get("DYNFIT_CLOSURE_RUN"):
        w.path.setText(os.environ["DYNFIT_CLOSURE_RUN"])
    else:
        w.size.setValue(32)  # the module docstring's run (the widget's default grid is finer)
        w.t_end.setValue(15.0)
        w.simulate(block=True)
    w.post_epochs.setValue(2)
    w.train(block=True)
    w.compare(block=True)
    for name in (order_layer("kinetic"), "director (kinetic)"):  # the whole run, under the data's panel
        if name in viewer.layers:
            viewer.layers[name].visible = False
    # the last compared frame: dims.range is in world units (time), set_current_step takes a step index
    viewer.dims.set_point(0, viewer.dims.range[0].stop)
    viewer.reset_view()
    _process()
    save_png(viewer.screenshot(canvas_only=False), out / "closure.png")
    viewer.close()


def main(out_dir: str = "docs/images", pages: str = ",".join(PAGES)) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [p.strip() for p in pages.split(",") if p.strip()]
    unknown = set(chosen) - set(PAGES)
    if unknown:
        print(f"error: unknown pages {sorted(unknown)}; choose from {', '.join(PAGES)}", file=sys.stderr)
        return 2
    if {"apr", "filter"} & set(chosen):
        pages_1_2(out, chosen)
    if set(chosen) - {"apr", "filter", "closure"}:
        pages_3_5(out, chosen)
    if "closure" in chosen:
        page_closure(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
