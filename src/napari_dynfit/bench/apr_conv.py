"""``dynfit bench apr-conv``: our APR-native convolution vs pyapr, scipy.ndimage and torch ``conv3d`` on the same
image and stencil, in one process (``--device cuda``: :mod:`.apr_conv_gpu`)."""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import InputError
from ..validate import int_range, memory_check, odd_int, output, positive_float, positive_int

NAME = "apr-conv"
HELP = "APR-native Gaussian convolution: ours vs pyapr, scipy.ndimage and torch conv3d"


def blob_image(n: int, seed: int = 0, ndim: int = 3) -> np.ndarray:
    """Sparse Gaussian blobs on a flat background, uint16 ``(n,)*ndim``: an APR with computational ratio >= 30."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = (n,) * ndim
    density = 100_000 if ndim == 3 else 2_000
    pts = np.zeros(shape, np.float32)
    idx = rng.integers(0, n, (max(1, n ** ndim // density), ndim))
    pts[tuple(idx.T)] = 1000.0 * (2 * np.pi * 4) ** (ndim / 2)
    img = 100 + ndimage.gaussian_filter(pts, 2.0) + rng.normal(0, 3, shape)
    return img.clip(0, 65535).astype(np.uint16)


def _best(fn, repeat: int) -> float:
    return _race([fn], repeat)[0]


def _race(fns, repeat: int) -> list[float]:
    """Best wall time of each function over ``repeat`` rounds, run in turns (shared, noisy machines)."""
    best = [math.inf] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def add_arguments(p) -> None:
    p.add_argument("--size", type=int_range(16), default=160, help="image edge N (N^3 pixels; default 160)")
    p.add_argument("--stencil-size", type=odd_int, default=5, help="Gaussian stencil size K (K^3; default 5)")
    p.add_argument("--sigma", type=positive_float, default=1.0, help="Gaussian sigma (pixels)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads for ours, pyapr and torch (default 1)")
    p.add_argument("--repeat", type=positive_int, default=7, help="timed rounds, ours and pyapr in turns (best is reported)")
    p.add_argument("--grid", help="use this exported AprGrid .npz (with values) instead of converting an image; "
                                  "for machines without pyapr")
    p.add_argument("--save-grid", type=output(".npz"), help="write the benchmark APR's grid and values to this .npz")
    p.add_argument("--no-scipy", action="store_true", help="skip scipy.ndimage (slow for large N)")
    # --device cuda: the fused tile kernel vs cuDNN conv3d, the torch path and our CPU kernel (:mod:`.apr_conv_gpu`)
    p.add_argument("--ratio", type=positive_float, default=30.0, help="cuda: target computational ratio of the "
                                                                      "synthetic APR (default 30)")
    p.add_argument("--sweep", default="", help="cuda: sizes and ratios N:RATIO,... (e.g. 256:10,512:30,1024:300)")
    p.add_argument("--frames", type=positive_int, default=1, help="cuda: also time this many frames in one pass")
    p.add_argument("--stencils", type=positive_int, default=1, help="cuda: also time a bank of this many stencils")
    p.add_argument("--budget-s", type=positive_float, default=240.0,
                   help="cuda: seconds for the whole run (default 240): the build and the headline always run, every "
                        "later stage (anchors, batch, sweep sizes) only when its predicted cost fits in what is left")
    p.add_argument("--check", action="store_true", help="cuda: the CPU kernel takes the tree means of the host "
                                                        "(AprGrid.tree_mean; ~30 s more at 1024^3) instead of the GPU's")
    p.add_argument("--no-cpu", action="store_true", help="cuda: skip our CPU kernel (anchor and validation; every "
                                                         "core, one call)")
    p.add_argument("--no-torch-path", action="store_true", help="cuda: skip the previous torch back end")
    p.set_defaults(checks=[memory_check(lambda a: (1.0 if a.device == "cuda" else 40.0) * a.size ** 3,
                                        "the benchmark image", "reduce --size")])


def run(args) -> dict:
    from ..device import resolve_device

    if args.device == "cuda" or resolve_device(args.device) == "cuda":  # "auto" on a GPU machine too
        from .apr_conv_gpu import run_bench  # the fused tile kernel, CUDA events, cuDNN, the torch path, our CPU kernel

        args.device = "cuda"
        return run_bench(args)
    import numba
    from threadpoolctl import threadpool_limits

    from ..apr.convolve import convolve
    from ..apr.filters import gaussian_stencil
    from ..apr.grid import AprGrid, load_grid

    if args.threads < 1 or args.size < 16 or args.repeat < 1:
        raise InputError("--threads and --repeat must be >= 1 and --size >= 16")
    device = "cpu"
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    stencil = gaussian_stencil(args.sigma, args.stencil_size, 3)
    result = {"device": device, "threads": args.threads, "stencil": list(stencil.shape)}
    apr = parts = img = None
    if args.grid:
        grid, values = load_grid(args.grid)
        if values is None:
            raise InputError(f"{args.grid} has no particle values; export it without --no-values")
    else:
        from ..apr.convert import _pyapr

        pyapr = _pyapr()
        img = blob_image(args.size)
        params = pyapr.APRParameters()
        params.auto_parameters = False
        params.rel_error, params.gradient_smoothing = 0.1, 2.0
        params.sigma_th, params.grad_th = 100.0, 50.0
        apr, parts = pyapr.converter.get_apr(img, params=params, verbose=False)
        grid, values = AprGrid.from_apr(apr), np.asarray(parts)
    if args.save_grid:
        grid.to_npz(args.save_grid, values)
    result.update(shape=list(grid.shape), particles=grid.n_particles,
                  computational_ratio=round(grid.computational_ratio, 2))
    pixels = float(np.prod(grid.shape))

    with threadpool_limits(limits=args.threads):
        def ours():
            return convolve(grid, values, stencil)

        ours_out = ours()  # compiles the kernels
        if apr is not None:
            from ..apr.convert import _pyapr

            pyapr = _pyapr()
            ref = np.asarray(pyapr.filter.convolve(apr, parts, stencil))
            result["ours_s"], result["pyapr_s"] = _race(
                [ours, lambda: pyapr.filter.convolve(apr, parts, stencil)], args.repeat)
            result["speedup_vs_pyapr"] = result["pyapr_s"] / result["ours_s"]
            result["max_rel_error_vs_pyapr"] = float(np.abs(ours_out - ref).max() / np.abs(ref).max())
        else:
            result["ours_s"] = _best(ours, args.repeat)
        result["gpixel_per_s"] = pixels / result["ours_s"] / 1e9
        if img is None:
            from ..apr.convolve_gpu import reconstruct_constant

            img = reconstruct_constant(grid, values)
        pix = np.asarray(img, dtype=np.float32)
        if not args.no_scipy:
            from scipy import ndimage

            result["scipy_s"] = _best(lambda: ndimage.convolve(pix, stencil, mode="mirror"), 1)
            result["speedup_vs_scipy"] = result["scipy_s"] / result["ours_s"]
        import torch

        torch.set_num_threads(args.threads)
        timg = torch.as_tensor(pix)[None, None]
        tker = torch.as_tensor(np.ascontiguousarray(stencil[::-1, ::-1, ::-1]))[None, None]

        def conv3d():
            return torch.nn.functional.conv3d(timg, tker, padding=args.stencil_size // 2)

        with torch.no_grad():
            conv3d()
            result["torch_conv3d_s"] = _best(conv3d, min(args.repeat, 3))
        result["speedup_vs_torch_conv3d"] = result["torch_conv3d_s"] / result["ours_s"]
    return result


