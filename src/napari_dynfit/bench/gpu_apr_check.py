"""Device correctness check of issue 18 (run by ``benchmarks/gpu_apr_conv.sh`` on a GPU machine, no pyapr there).

The fused tile kernel (``apr/convolve_tile.py``) against our CPU kernel (``apr/convolve.py``, itself checked against
``pyapr.filter.convolve`` to 1e-5 in the test suite) on APRs built by our constructor: 2D and 3D, >= 4 levels,
3^d / 5^d / 7^d stencils in one bank pass, two frames, zero padding; then the device filters and segmentation
against their CPU paths. Prints one JSON object.
"""

import json
import sys
import time

import numpy as np

from napari_dynfit.apr import convolve_tile as tile
from napari_dynfit.apr.construct import construct_apr
from napari_dynfit.apr.convolve import convolve, correlate, level_stencils
from napari_dynfit.apr.filters import FILTERS


def blobs(shape, n, seed):
    """Gaussian spots (sigma 2 px, amplitude 1000) on 100 + noise, uint16 (numpy only)."""
    rng = np.random.default_rng(seed)
    axes = np.ogrid[tuple(slice(0, s) for s in shape)]
    img = np.full(shape, 100.0, np.float32)
    lo = np.minimum(3.0, (np.array(shape) - 1) / 2.0)  # a 2D image is (1, y, x): its z is 0
    for c in rng.uniform(lo, np.maximum(np.array(shape) - 3.0, lo), (n, len(shape))):
        img += 1000.0 * np.exp(-sum((a - ci) ** 2 for a, ci in zip(axes, c)) / 8.0).astype(np.float32)
    img += rng.normal(0, 3, shape).astype(np.float32)
    return img.clip(0, 65535).astype(np.uint16)


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def main():
    t_start = time.perf_counter()
    res = {"device": "simulator" if tile.is_simulator() else "cuda", "cases": []}
    shapes = {2: (1, 40, 48), 3: (16, 20, 24)} if tile.is_simulator() else {2: (1, 512, 600), 3: (96, 128, 112)}
    for ndim, shape in shapes.items():
        grid, parts, _ = construct_apr(blobs(shape, 6 * ndim, ndim), rel_error=0.1, gradient_smoothing=2.0,
                                       auto_parameters=False, gradient_threshold=10.0, sigma_threshold=50.0)
        values = parts.astype(np.float32)
        case = {"ndim": ndim, "shape": list(shape), "particles": grid.n_particles,
                "levels": int(len(np.unique(grid.levels)))}
        kshape = lambda k: (k,) * ndim  # noqa: E731
        stencils = [np.random.default_rng(k).uniform(0.05, 1, kshape(k)).astype(np.float32) for k in (3, 5, 7)]
        per = [level_stencils(s, grid) for s in stencils]
        banks = [None if per[0][lv] is None else [p[lv] for p in per] for lv in range(grid.level_max + 1)]
        frames = np.stack([values, values[::-1].copy()])
        out = tile.to_host(tile.convolve_bank(tile.device_grid(grid), frames, banks))
        case["max_rel_err_vs_cpu"] = {
            f"{k}^{ndim}": max(rel(out[0, i], convolve(grid, values, s)), rel(out[1, i], convolve(grid, frames[1], s)))
            for i, (k, s) in enumerate(zip((3, 5, 7), stencils))}
        z = np.random.default_rng(9).normal(size=kshape(5)).astype(np.float32)
        z -= z.mean()
        lz = level_stencils(z, grid, normalize=False, flip=False)
        zero = tile.to_host(tile.convolve_bank(tile.device_grid(grid), values, [None if s is None else [s] for s in lz],
                                               reflect=False))[0, 0]
        case["zero_padding_correlation_rel_err"] = rel(zero, correlate(grid, values, z, normalize=False, reflect=False))
        case["filters_rel_err"] = {}
        for name, fn in FILTERS.items():
            kw = {} if name == "gradient" else {"sigma": 1.0}
            case["filters_rel_err"][name] = rel(fn(grid, values, device="cuda", **kw), fn(grid, values, **kw))
        try:  # pandas and scikit-image (the CPU threshold) may be missing on a GPU machine
            from napari_dynfit.apr.segment import segment

            s_dev = segment(grid, values, method="otsu", device="cuda", min_size=4)
            s_cpu = segment(grid, values, method="otsu", device="cpu", min_size=4)
            case["segment"] = {"objects_cuda": int(s_dev.labels.max()), "objects_cpu": int(s_cpu.labels.max()),
                               "labels_equal": bool(np.array_equal(s_dev.labels, s_cpu.labels)),
                               "threshold_cuda": s_dev.threshold, "threshold_cpu": s_cpu.threshold}
        except ImportError as exc:
            case["segment"] = {"skipped": f"missing {exc.name}", "labels_equal": True}
        res["cases"].append(case)
    worst = max(max(c["max_rel_err_vs_cpu"].values()) for c in res["cases"])
    res["worst_rel_err"] = worst
    res["pass"] = bool(worst < 1e-5 and all(c["segment"]["labels_equal"] for c in res["cases"]))
    res["wall_s"] = time.perf_counter() - t_start
    print(json.dumps(res, indent=1))
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
