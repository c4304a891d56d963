"""Browse an ``.apr`` file in a napari viewer (offscreen on Xvfb) and print the timings as JSON.

The viewer's side of ``python -m napari_dynfit.bench.apr_io --napari`` (the ``apr-napari-1024`` figure), run as a child
process: ``python -m napari_dynfit._napari._apr_browse [--slices N] PATH``. It lives in the GUI layer because it
drives a viewer; the benchmark itself (the file, the other children, the summary) is in :mod:`napari_dynfit.bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # kB -> GB (Linux)


def _browse_napari(path: str, n_slices: int) -> None:
    """Child process: open in a napari viewer (on Xvfb) and browse with the dims slider."""
    display = None
    if not os.environ.get("DISPLAY"):
        from pyvirtualdisplay import Display

        display = Display(visible=False, size=(1024, 768))
        display.start()
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    app.processEvents()
    rss_before = _peak_rss_gb()

    def open_first_slice():
        t0 = time.perf_counter()
        layer = viewer.open(path, plugin="napari-dynfit")[0]
        app.processEvents()
        np.asarray(layer._slice.image.raw)
        return layer, time.perf_counter() - t0

    # cold: the first layer of a fresh napari (napari initialises its unit registry, ~1.4 s here)
    layer, t_cold = open_first_slice()
    viewer.layers.clear()
    app.processEvents()
    layer, t_first = open_first_slice()  # napari already up: the cost of opening the APR itself
    nz = layer.data[0].shape[0]
    rng = np.random.default_rng(0)
    times = []
    viewer.camera.zoom *= 4  # zoom in: full-resolution tiles
    app.processEvents()
    for z in rng.integers(0, nz, n_slices):
        t = time.perf_counter()
        viewer.dims.set_point(0, float(z) * layer.scale[0])
        app.processEvents()
        times.append(time.perf_counter() - t)
    levels_seen = layer.data_level
    viewer.dims.ndisplay = 3
    t = time.perf_counter()
    app.processEvents()
    t3d = time.perf_counter() - t
    print(json.dumps({"first_slice_s": t_first, "first_slice_cold_s": t_cold, "slice_s_median": float(np.median(times)),
                      "slice_s_max": float(np.max(times)), "data_level_zoomed": int(levels_seen),
                      "view3d_level": int(layer.data_level), "view3d_s": t3d,
                      "rss_gb_before_open": rss_before, "peak_rss_gb": _peak_rss_gb()}))
    viewer.close()
    if display is not None:
        display.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("path", help=".apr file")
    p.add_argument("--slices", type=int, default=20, help="z slices browsed")
    args = p.parse_args(argv)
    _browse_napari(args.path, args.slices)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
