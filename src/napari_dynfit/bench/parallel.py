"""Scale-out benchmark: a per-frame filter + detection over a 100-frame 2D movie, serial vs Dask schedulers.

Per frame: Gaussian-Laplace filter (sigma 1.5 px) and local maxima above a threshold (a LoG spot
detector made of scipy calls, standing in for the pipeline's per-frame stages). Prints JSON with
wall times, speedups against the serial path and whether every result is identical to it. The
machine's 2 cores are shared with other jobs: the speedups are noisy.

    python -m napari_dynfit.bench.parallel [--frames 100] [--size 512] [-o out.json]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
from scipy import ndimage

from napari_dynfit._io import emit_json
from napari_dynfit.parallel import map_frames
from napari_dynfit.sim import render_movie, simulate_abp


def detect(frame, sigma=1.5, threshold=20.0):
    """LoG spots: ``(n, 2)`` integer coordinates of local maxima of ``-LoG`` above ``threshold``."""
    log = -ndimage.gaussian_laplace(frame.astype(np.float64), sigma) * sigma**2
    peaks = (log == ndimage.maximum_filter(log, size=5)) & (log > threshold)
    return np.argwhere(peaks)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    L = args.size * 0.5
    traj = simulate_abp(int(args.size**2 / 400), (args.frames - 1) * 5, box=L, v0=4.0, save_every=5, seed=0)
    movie, _ = render_movie(traj.to_table(), (args.size, args.size), scale=0.5, snr=10, seed=0)
    func = functools.partial(detect)
    res = {"frames": args.frames, "size": args.size}
    t = time.perf_counter()
    ref = map_frames(func, movie, scheduler="sync")
    res["serial_s"] = time.perf_counter() - t
    runs = [("threads_1", "threads", 1), ("threads_2", "threads", 2), ("processes_2", "processes", 2),
            ("local_cluster_2", "local-cluster", 2)]
    for name, sched, n in runs:
        t = time.perf_counter()
        out = map_frames(func, movie, scheduler=sched, n_workers=n)
        res[f"{name}_s"] = time.perf_counter() - t
        res[f"{name}_identical"] = all(np.array_equal(a, b) for a, b in zip(ref, out))
        res[f"{name}_speedup_vs_serial"] = res["serial_s"] / res[f"{name}_s"]
    res["threads_2_vs_1"] = res["threads_1_s"] / res["threads_2_s"]
    emit_json(res, args.output, indent=2)


if __name__ == "__main__":
    main()
