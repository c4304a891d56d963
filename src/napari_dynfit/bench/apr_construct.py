"""APR construction, ours (numba) vs pyapr 1.0.7, same images, same parameters, same thread count, one run.

For each image (2D and 3D sparse spots and dense cells from :mod:`napari_dynfit.sim.apr_images`, and any
``--image FILE.tif`` such as a real fluorescence frame) both back ends of :func:`napari_dynfit.apr.to_apr`
convert it with the defaults, and the script prints one JSON line per image and a summary:

* ``particles_ours`` / ``particles_pyapr`` and ``particle_ratio`` (ours / pyapr; the issue asks for +-10 %),
  ``identical`` (same levels, positions and values);
* ``psnr_ours`` / ``psnr_pyapr`` (dB, piecewise-constant reconstruction vs the image, peak = image max);
* ``condition_ours`` / ``condition_pyapr``: fraction of pixels above the intensity threshold with
  ``|I - I_hat| <= E * sigma`` (``sigma``: the construction's local intensity scale, the same array for both);
* ``time_ours_s`` / ``time_pyapr_s`` (best of ``--repeats`` interleaved runs after a warm-up) and
  ``time_ratio`` (ours / pyapr; the issue asks for <= 1).

Usage::

    python -m napari_dynfit.bench.apr_construct --threads 1
    python -m napari_dynfit.bench.apr_construct --threads 2 --image frame.tif --repeats 5

Timings on a shared machine are noisy; read the ratios of interleaved runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("QT_API", "pyqt6")

import numpy as np  # noqa: E402


def _images(args):
    from napari_dynfit.sim.apr_images import cells_image, spots_image

    s = args.scale
    out = {"spots2d": spots_image((512 * s, 512 * s), 60 * s * s, 1),
           "cells2d": cells_image((512 * s, 512 * s), 2, 150 * s * s),
           "spots3d": spots_image((64 * s, 160 * s, 160 * s), 80 * s ** 3, 3),
           "cells3d": cells_image((48 * s, 128 * s, 128 * s), 4, 60 * s ** 3)}
    for path in args.image or []:
        import tifffile

        img = np.squeeze(tifffile.imread(path))
        if img.ndim not in (2, 3):
            sys.exit(f"{path}: expected a 2D or 3D image, got shape {img.shape}")
        out[os.path.basename(path)] = img
    return out


def _best(fns, repeats):
    times = [[] for _ in fns]
    for r in range(repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t0 = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t0)
    return [min(t) for t in times]


def compare(name, img, args) -> dict:
    from napari_dynfit.apr import to_apr
    from napari_dynfit.apr.construct import local_intensity_scale_image

    ours, ref = to_apr(img, backend="numba"), to_apr(img, backend="pyapr")  # also the warm-up
    img3 = img if img.ndim == 3 else img[None]
    sigma = local_intensity_scale_image(img3).reshape(img.shape)
    fg = img > 0.0  # the default intensity threshold
    peak = float(img.max())
    res = {"image": name, "shape": list(img.shape), "threads": args.threads}
    for key, im in (("ours", ours), ("pyapr", ref)):
        err = im.reconstruct().astype(np.float64) - img
        res[f"particles_{key}"] = im.n_particles
        res[f"psnr_{key}"] = round(10 * np.log10(peak ** 2 / np.mean(err ** 2)), 3)
        res[f"condition_{key}"] = round(float(np.mean(np.abs(err[fg]) <= 0.1 * sigma[fg])), 5)
    res["particle_ratio"] = round(ours.n_particles / ref.n_particles, 5)
    res["psnr_diff_db"] = round(res["psnr_ours"] - res["psnr_pyapr"], 3)
    res["identical"] = bool(np.array_equal(ours.grid.offsets, ref.grid.offsets)
                            and np.array_equal(ours.grid.x, ref.grid.x) and np.array_equal(ours.parts, ref.parts))
    t_ours, t_pyapr = _best([lambda: to_apr(img, backend="numba"), lambda: to_apr(img, backend="pyapr")],
                            args.repeats)
    res.update(time_ours_s=round(t_ours, 4), time_pyapr_s=round(t_pyapr, 4), time_ratio=round(t_ours / t_pyapr, 3))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="threads for both (numba and pyapr's OpenMP)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds per back end, interleaved")
    ap.add_argument("--scale", type=int, default=1, help="image size multiplier")
    ap.add_argument("--image", action="append", help="extra 2D/3D TIFF (e.g. a real fluorescence frame)")
    args = ap.parse_args(argv)
    import numba
    from threadpoolctl import threadpool_limits

    from napari_dynfit._headless import headless_pyapr

    headless_pyapr()
    import pyapr  # noqa: F401  (loaded before the limits so that they reach its OpenMP runtime)

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    rows = []
    with threadpool_limits(limits=args.threads):
        for name, img in _images(args).items():
            rows.append(compare(name, img, args))
            print(json.dumps(rows[-1]), flush=True)
    summary = {"summary": True, "threads": args.threads,
               "particle_ratio_range": [min(r["particle_ratio"] for r in rows), max(r["particle_ratio"] for r in rows)],
               "psnr_diff_db_range": [min(r["psnr_diff_db"] for r in rows), max(r["psnr_diff_db"] for r in rows)],
               "condition_ours_minus_pyapr_min": min(r["condition_ours"] - r["condition_pyapr"] for r in rows),
               "time_ratio_range": [min(r["time_ratio"] for r in rows), max(r["time_ratio"] for r in rows)],
               "all_identical": all(r["identical"] for r in rows)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
