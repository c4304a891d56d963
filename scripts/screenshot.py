"""Produce the README screenshots: napari (under Xvfb when there is no display) with the 2D sample.

Usage::

    xvfb-run -a python scripts/screenshot.py            # writes docs/images/*.png

It opens the "Active particles (2D+t)" sample, docks the DynFit panel and saves a screenshot of the
whole window. Run it after changing the widgets so the README shows what the code does now.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_API", "pyqt6")


def main(out_dir: str = "docs/images") -> int:
    import napari

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open_sample("napari-dynfit", "active_particles_2d")
    try:
        viewer.window.add_plugin_dock_widget("napari-dynfit", "DynFit panel")
    except Exception as exc:  # the panel is optional for the first screenshot
        print(f"no DynFit panel docked: {exc}", file=sys.stderr)
    viewer.dims.set_current_step(0, 10)
    napari.qt.get_qapp().processEvents()
    path = out / "screenshot.png"
    viewer.screenshot(str(path), canvas_only=False)
    print(path)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
