"""``dynfit bench apr-conv --device cuda``: the fused tile kernel timed with CUDA events against cuDNN ``conv3d``
and the previous torch path on the same card, in one run, plus a size sweep (``benchmarks/gpu_apr_conv.sh``).

Synthetic APRs come from our own constructor's pulling scheme (:func:`synthetic_grid`): a resolution function
asking for the finest level on thin shells around random spheres and the coarsest elsewhere; the number of
spheres sets the computational ratio (pixels per particle). No pixel image is made, so 2048^3
pixel-equivalent APRs build in host memory proportional to ``(N / 2)**3`` bytes.

Figures (all per stencil and frame): ``pixel_equiv_gpix_s`` = pixels of the original image / kernel time;
``peak_gpu_mem_bytes`` = device memory taken by the structure, values, tree means and output (drop of the
driver's free memory at the peak; ``accounted_bytes`` is :func:`.convolve_tile.device_bytes`).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from ..apr.grid import AprGrid
from ..errors import InputError

__all__ = ["synthetic_grid", "run_bench", "parse_sweep"]


def synthetic_grid(n: int, spheres: int, seed: int = 0, ndim: int = 3) -> AprGrid:
    """APR structure of an ``n**ndim`` image: finest resolution on shells around ``spheres`` random spheres.

    Parameters
    ----------
    n : int
        Edge of the pixel-equivalent image.
    spheres : int
        Number of spheres (radius ``n / 32 .. n / 12`` pixels); more spheres, more particles.
    seed : int

    Returns
    -------
    AprGrid
        Built by :func:`.construct.pulling_scheme` / :func:`.construct.grid_from_masks` (a valid APR).
    """
    from ..apr.construct import apr_levels, grid_from_masks, particle_masks, pulling_scheme

    shape = (n,) * ndim if ndim == 3 else (1, n, n)
    level_min, level_max = apr_levels(shape)
    m = [max(1, -(-s // 2)) for s in shape]  # the grid of level_max - 1
    level_map = np.full(m, level_min, np.int16)
    rng = np.random.default_rng(seed)
    for _ in range(int(spheres)):
        r = rng.uniform(n / 32, n / 12) / 2  # in level_max - 1 cells
        c = [rng.uniform(0, s) for s in m]
        lo = [max(0, int(ci - r - 2)) for ci in c]
        hi = [min(s, int(ci + r + 3)) for ci, s in zip(c, m)]
        axes = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        dist = np.sqrt(sum((ax - ci) ** 2 for ax, ci in zip(axes, c)))
        box = level_map[tuple(slice(a, b) for a, b in zip(lo, hi))]
        np.maximum(box, np.where(np.abs(dist - r) < 1.0, level_max, level_min).astype(np.int16), out=box)
    tree = pulling_scheme(level_map, level_min, level_max)
    masks = particle_masks(tree, level_min, level_max)
    return grid_from_masks(masks, shape, level_min, level_max)


def spheres_for_ratio(n: int, ratio: float) -> int:
    """Sphere count giving about ``ratio`` pixels per particle on an ``n**3`` image.

    Measured (seed 0): ratio ~ C * n / spheres with C = 3.2 .. 4.5 for n = 128 .. 512 and ratios 8 .. 116; the
    bench reports the ratio it got.
    """
    return max(1, int(round(4.0 * n / ratio)))


def parse_sweep(text: str) -> list[tuple[int, float]]:
    """``"256:10,512:30"`` -> ``[(256, 10.0), (512, 30.0)]`` (edge ``N`` and computational ratio)."""
    out = []
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        try:
            n, r = item.split(":")
            out.append((int(n), float(r)))
        except ValueError:
            raise InputError(f"--sweep items are N:RATIO (e.g. 256:10,1024:30), got {item!r}") from None
        if out[-1][0] < 16 or out[-1][1] <= 1:
            raise InputError(f"--sweep N must be >= 16 and RATIO > 1, got {item!r}")
    return out


# ----------------------------------------------------------------------------------------------- timing
def _free_bytes():
    """Free device memory in bytes (None under the simulator)."""
    from ..apr import convolve_tile as tile

    try:
        return int(tile._cuda().current_context().get_memory_info()[0])
    except Exception:  # noqa: BLE001 - the simulator has no memory info
        return None


def _flush():
    from ..apr import convolve_tile as tile

    try:
        tile._cuda().current_context().deallocations.clear()
    except Exception:  # noqa: BLE001
        pass


def _between_events(fn, repeat: int, e0, e1) -> float:
    """Mean seconds per call of ``fn`` between two CUDA events (numba's and torch's have the same methods)."""
    e0.record()
    for _ in range(repeat):
        fn()
    e1.record()
    e1.synchronize()
    return e0.elapsed_time(e1) / 1e3 / repeat


def _time_s(fn, repeat: int, sim: bool) -> float:
    """Mean seconds per call of ``fn`` after a warm-up call, by CUDA events (wall time under the simulator)."""
    from ..apr import convolve_tile as tile

    cuda = tile._cuda()
    fn()  # compiles, warms caches
    cuda.synchronize()
    if sim:
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        return (time.perf_counter() - t0) / repeat
    return _between_events(fn, repeat, cuda.event(timing=True), cuda.event(timing=True))


def _torch_time_s(fn, repeat: int) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    return _between_events(fn, repeat, torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))


def measure(grid: AprGrid, values, stencil, *, repeat: int = 5, frames: int = 1, n_stencils: int = 1,
            end_to_end: bool = False, keep_output: bool = False) -> dict:
    """Time the tile kernel (tree means + convolution, data resident) on ``grid``; figures per stencil and frame."""
    from ..apr import convolve_tile as tile
    from ..apr.convolve import level_stencils

    cuda = tile._cuda()
    sim = tile.is_simulator()
    _flush()
    free0 = _free_bytes()
    pixels = float(np.prod(grid.shape))
    host = np.ascontiguousarray(np.broadcast_to(np.asarray(values, np.float32), (frames, grid.n_particles)))
    dgrid = tile.DeviceAprGrid(grid)
    dvals = tile.to_device(host)
    per = level_stencils(stencil, grid)
    bank = tile.PreparedBank(grid, [None if s is None else [s] * n_stencils for s in per])
    out = cuda.device_array((frames, n_stencils, grid.n_particles), np.float32)
    dtree = tile.tree_means(dgrid, dvals)
    tree_buf = cuda.device_array_like(dtree)
    full = _time_s(lambda: tile.convolve_bank(dgrid, dvals, bank, out=out, tree_out=tree_buf), repeat, sim)  # noqa: F821
    kernel = _time_s(lambda: tile.convolve_bank(dgrid, dvals, bank, dtree=dtree, out=out), repeat, sim)  # noqa: F821
    free1 = _free_bytes()
    work = pixels * frames * n_stencils
    res = {"shape": list(grid.shape), "particles": grid.n_particles, "tree_nodes": grid.n_tree,
           "computational_ratio": round(grid.computational_ratio, 2), "levels": [grid.level_min, grid.level_max],
           "frames": frames, "stencils": n_stencils, "stencil": list(np.shape(stencil)),
           "time_s": full, "pixel_equiv_gpix_s": work / full / 1e9,
           "kernel_only_s": kernel, "kernel_only_gpix_s": work / kernel / 1e9,
           "ns_per_particle": full / (grid.n_particles * frames * n_stencils) * 1e9}
    acc = tile.device_bytes(grid, frames, n_stencils)
    res["accounted_bytes"] = acc["total"]
    res["particle_data_bytes"] = acc["particle_data"]
    if free0 is not None and free1 is not None:
        res["peak_gpu_mem_bytes"] = free0 - free1
        res["peak_mem_ratio_to_particle_data"] = (free0 - free1) / acc["particle_data"]
    else:
        res["peak_gpu_mem_bytes"] = acc["total"]  # simulator: the accounting
        res["peak_mem_ratio_to_particle_data"] = acc["ratio_to_particle_data"]
    if end_to_end:
        result = np.empty((frames, n_stencils, grid.n_particles), np.float32)

        def e2e():
            tile.convolve_bank(dgrid, tile.to_device(host), bank).copy_to_host(result)  # noqa: F821

        res["end_to_end_s"] = _time_s(e2e, max(1, repeat // 2), sim)
        res["end_to_end_gpix_s"] = work / res["end_to_end_s"] / 1e9
    if keep_output:
        res["_output"] = tile.to_host(out)[0, 0]
    del dgrid, dvals, out, dtree, bank, tree_buf
    _flush()
    return res


def _cudnn(shape, stencil, repeat: int) -> dict:
    """cuDNN ``conv3d`` (torch, cudnn.benchmark) on a float32 image of ``shape``: data resident."""
    import torch

    torch.backends.cudnn.benchmark = True
    k = stencil.shape[0]
    x = torch.rand((1, 1) + tuple(shape), device="cuda")
    w = torch.as_tensor(np.ascontiguousarray(stencil[::-1, ::-1, ::-1]), device="cuda")[None, None]
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        t = _torch_time_s(lambda: torch.nn.functional.conv3d(x, w, padding=k // 2), repeat)  # noqa: F821
    res = {"time_s": t, "gpix_s": float(np.prod(shape)) / t / 1e9,
           "peak_gpu_mem_bytes": int(torch.cuda.max_memory_allocated())}
    del x, w
    torch.cuda.empty_cache()
    return res


def _torch_path(grid: AprGrid, values, stencil, repeat: int):
    """The previous torch back end (:mod:`.convolve_gpu`, dense per-level arrays): time, memory, output."""
    import torch

    from ..apr.convolve import level_stencils
    from ..apr.convolve_gpu import DeviceGrid, convolve_tensors

    dgrid = DeviceGrid(grid, "cuda")
    vals = torch.as_tensor(np.asarray(values, np.float32), device="cuda")
    stencils = level_stencils(stencil, grid)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        t = _torch_time_s(lambda: convolve_tensors(dgrid, vals, stencils), repeat)  # noqa: F821
        out = convolve_tensors(dgrid, vals, stencils).cpu().numpy()
    res = {"time_s": t, "gpix_s": float(np.prod(grid.shape)) / t / 1e9,
           "peak_gpu_mem_bytes": int(torch.cuda.max_memory_allocated())}
    del dgrid, vals
    torch.cuda.empty_cache()
    return res, out


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def _gpu_name() -> str:
    from ..apr import convolve_tile as tile

    name = tile._cuda().get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def run_bench(args) -> dict:
    """``dynfit bench apr-conv --device cuda``: headline case, cuDNN, the torch path and the size sweep."""
    from ..apr import convolve_tile as tile
    from ..apr.convolve import convolve
    from ..apr.filters import gaussian_stencil
    from ..apr.grid import load_grid

    start = time.perf_counter()
    tile.use_device("cuda")  # one clear line without a GPU
    sim = tile.is_simulator()
    stencil = gaussian_stencil(args.sigma, args.stencil_size, 3)
    res = {"device": "cuda", "simulated": sim, "gpu_name": "numba CUDA simulator (CPU)" if sim else _gpu_name(),
           "kernel": "fused tile kernel, numba-cuda (apr/convolve_tile.py)", "repeat": args.repeat}
    dg_tile, dg_threads = tile.SIM_TILE if sim else tile.DEFAULT_TILE
    res["tile"], res["threads_per_block"] = list(dg_tile), dg_threads
    if args.grid:
        grid, values = load_grid(args.grid)
        if values is None:
            raise InputError(f"{args.grid} has no particle values; export it without --no-values")
        res["source"] = str(args.grid)
    else:
        t0 = time.perf_counter()
        grid = synthetic_grid(args.size, spheres_for_ratio(args.size, args.ratio), seed=0)
        values = np.random.default_rng(0).random(grid.n_particles, dtype=np.float32)
        res["source"] = f"synthetic {args.size}^3, target ratio {args.ratio}"
        res["build_s"] = time.perf_counter() - t0
        _note(f"built the synthetic {args.size}^3 APR ({grid.n_particles} particles) in {res['build_s']:.0f} s", start)
    if grid.ndim != 3:
        raise InputError("the GPU benchmark needs a 3D APR (its stencil is 3D); pass a 3D --grid")
    head = measure(grid, values, stencil, repeat=args.repeat, end_to_end=True, keep_output=True)
    ours = head.pop("_output")
    res.update(head)
    _note("headline " + json.dumps({k: res[k] for k in ("source", "particles", "computational_ratio", "time_s",
                                                         "pixel_equiv_gpix_s", "end_to_end_gpix_s",
                                                         "peak_mem_ratio_to_particle_data") if k in res},
                                    default=float), start)
    if args.frames > 1 or args.stencils > 1:
        batch = measure(grid, values, stencil, repeat=args.repeat, frames=args.frames, n_stencils=args.stencils)
        res["batched"] = {k: batch[k] for k in ("frames", "stencils", "time_s", "pixel_equiv_gpix_s",
                                                "peak_gpu_mem_bytes", "peak_mem_ratio_to_particle_data")}
        _note("batched " + json.dumps(res["batched"], default=float), start)
    if args.check:
        res["max_rel_error_vs_cpu"] = _rel(ours, convolve(grid, values, stencil))
    if not sim:
        import torch

        if torch.cuda.is_available():
            res["cudnn_conv3d"] = _cudnn(grid.shape, stencil, min(args.repeat, 3))
            res["speedup_vs_cudnn"] = res["pixel_equiv_gpix_s"] / res["cudnn_conv3d"]["gpix_s"]
            _note(f"cuDNN conv3d {res['cudnn_conv3d']['gpix_s']:.1f} Gpixel/s", start)
            if not args.no_torch_path:
                tp, tout = _torch_path(grid, values, stencil, min(args.repeat, 3))
                tp["max_rel_error_vs_tile_kernel"] = _rel(tout, ours)
                res["torch_path"] = tp
                res["speedup_vs_torch_path"] = res["pixel_equiv_gpix_s"] / tp["gpix_s"]
        else:
            res["cudnn_conv3d"] = "skipped: torch has no CUDA here"
    res["targets"] = {"pixel_equiv_gpix_s>=250": res["pixel_equiv_gpix_s"] >= 250,
                      "speedup_vs_cudnn>=30": isinstance(res.get("speedup_vs_cudnn"), float)
                      and res["speedup_vs_cudnn"] >= 30,
                      "peak_mem<=3x_particle_data": res["peak_mem_ratio_to_particle_data"] <= 3}
    res["sweep"] = _sweep(args, stencil, start)
    res["wall_s"] = time.perf_counter() - start
    return res


def _note(msg: str, start: float) -> None:
    """One progress line on stderr (elapsed seconds first): a run stopped by a time limit keeps what it measured."""
    print(f"apr-conv cuda [{time.perf_counter() - start:.0f} s]: {msg}", file=sys.stderr, flush=True)


def _sweep(args, stencil, start: float) -> list:
    """Synthetic APRs of the ``--sweep`` sizes and ratios (skipped when the time budget would run out)."""
    rows = []
    last = None  # (n, seconds) of the last build, to predict the next
    for n, ratio in parse_sweep(args.sweep):
        left = args.budget_s - (time.perf_counter() - start)
        predicted = 3.0 + (last[1] * (n / last[0]) ** 3.4 if last else 0.0)
        if predicted > left:
            rows.append({"n": n, "target_ratio": ratio, "skipped": f"time budget ({left:.0f} s left, "
                                                                  f"~{predicted:.0f} s needed)"})
            continue
        t0 = time.perf_counter()
        grid = synthetic_grid(n, spheres_for_ratio(n, ratio), seed=1)
        build = time.perf_counter() - t0
        last = (n, build)
        values = np.random.default_rng(1).random(grid.n_particles, dtype=np.float32)
        m = measure(grid, values, stencil, repeat=max(1, args.repeat // 2))
        rows.append({"n": n, "target_ratio": ratio, "build_s": build,
                     **{k: m[k] for k in ("particles", "computational_ratio", "time_s", "pixel_equiv_gpix_s",
                                          "ns_per_particle", "peak_gpu_mem_bytes",
                                          "peak_mem_ratio_to_particle_data")}})
        del grid, values
    return rows
