"""``dynfit bench apr-conv --device cuda``: the fused tile kernel timed with CUDA events against cuDNN ``conv3d``,
the previous torch path and our CPU kernel, in one run, plus a size sweep (``benchmarks/gpu_apr_conv.sh``).

Synthetic APRs come from our own constructor's pulling scheme (:func:`synthetic_grid`): a resolution function
asking for the finest level on thin shells around random spheres and the coarsest elsewhere; the number of
spheres sets the computational ratio (pixels per particle). No pixel image is made, so 2048^3
pixel-equivalent APRs build in host memory proportional to ``(N / 2)**3`` bytes.

Figures (all per stencil and frame): ``pixel_equiv_gpix_s`` = pixels of the original image / ``time_s``, the
mean CUDA-event time of one call (tree means + convolution, data resident on the device); ``peak_gpu_mem_bytes``
= device memory taken by the structure, values, tree means and output (drop of the driver's free memory at the
peak; ``accounted_bytes`` is :func:`.convolve_tile.device_bytes`).

Stages, in this order (:data:`STAGES`); the JSON (``-o``) is rewritten after each one, with ``"status"`` naming
the stage running (``"complete"`` at the end), so a run stopped by a time limit keeps what it measured:

``build`` (the synthetic APR, or ``--grid``) and ``headline`` (``time_s``, ``pixel_equiv_gpix_s``, memory) always
run; then ``kernel_only``, ``end_to_end``, ``cpu`` (our CPU kernel on the same grid and values, every core, one
call: anchor and validation), ``cudnn``, ``torch_path``, ``batched`` and ``sweep`` each run only when their
predicted cost (:func:`predict_s`, from the constants below) fits in what is left of ``--budget-s``; a skipped
stage is listed under ``"skipped"`` with the reason, a failing one under ``"errors"`` (the run goes on), and
``"stages_s"`` / ``"predicted_s"`` give each stage's measured and predicted seconds.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from ..apr.grid import AprGrid
from ..errors import InputError

__all__ = ["synthetic_grid", "run_bench", "parse_sweep", "predict_s", "STAGES"]

#: The stages of :func:`run_bench`, in the order they run.
STAGES = ("build", "headline", "kernel_only", "end_to_end", "cpu", "cudnn", "torch_path", "batched", "sweep")

# Cost model of the stages for the time budget (seconds). Host-side constants measured on the project's 2-core
# development machine (one thread, load 1-4, 2026-12-04; docs/apr_filters.md): synthetic_grid 0.34 s at 256^3,
# 3.0 s at 512^3, 29 s at 1024^3 (single-threaded numba/numpy, so no faster on a 16-core GPU host); the host
# index (AprGrid.coords + parent index, needed by the torch path and --check) 4.1 s for 4.3M particles and 30 s
# for 36.6M; the CPU kernel 130-190 ns per particle on one thread, 18 s to compile with a cold cache.
# The device constants are bounds from the kernels' PTX compile time (~1 s per kernel on the CPU) and the
# H200 session's check (55 s for all of gpu_apr_check, compilation included); cuDNN is a guess until measured.
BUILD_S_PER_PIXEL = 3.0e-8
INDEX_S_PER_PARTICLE = 9.0e-7
CPU_S_PER_PARTICLE = 2.0e-7
CPU_COMPILE_S = 20.0
GPU_COMPILE_S = 10.0
CUDNN_S = 30.0
TIMING_CAP_S = 10.0  # at most this long per timing loop: fewer repeats when one call is slow (repeat_used)


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


def predict_s(stage: str, *, pixels: float, particles: float = 0.0, threads: int = 1, call_s: float = 0.0,
              calls: int = 0, index_built: bool = False, build_s_per_pixel: float = BUILD_S_PER_PIXEL) -> float:
    """Predicted seconds of one stage (an upper bound for a GPU host), from the constants of this module.

    Parameters
    ----------
    stage : str
        ``"build"``, ``"cpu"``, ``"check_index"``, ``"cudnn"``, ``"torch_path"``, ``"batched"`` or
        ``"sweep_item"``; the device timing stages cost ``calls * call_s``.
    pixels, particles : float
        Pixels of the image and particles of its APR.
    threads : int
        CPU threads of the CPU kernel.
    call_s : float
        Seconds of one device call (the headline's ``time_s``, scaled by the work).
    calls : int
        Device calls of the stage.
    index_built : bool
        The host index (``AprGrid.particle_parent``) exists already.
    build_s_per_pixel : float
        Synthetic build seconds per pixel (this run's own build when it made one).
    """
    index = 0.0 if index_built else particles * INDEX_S_PER_PARTICLE
    device = calls * call_s
    if stage == "build":
        return build_s_per_pixel * pixels
    if stage == "cpu":
        return CPU_COMPILE_S + particles * CPU_S_PER_PARTICLE / max(1, threads // 2)
    if stage == "check_index":
        return index
    if stage == "cudnn":
        return CUDNN_S + device
    if stage == "torch_path":
        return index + 15.0 + device
    if stage == "batched":
        return GPU_COMPILE_S + device
    if stage == "sweep_item":
        return 2.0 + 1.2 * build_s_per_pixel * pixels + device
    return device


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


def _mean_s(fn, n: int, sim: bool) -> float:
    """Mean seconds per call of ``fn`` over ``n`` calls: CUDA events (wall time under the simulator)."""
    from ..apr import convolve_tile as tile

    cuda = tile._cuda()
    if sim:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n
    return _between_events(fn, n, cuda.event(timing=True), cuda.event(timing=True))


def _timed(fn, repeat: int, sim: bool, cap_s: float = TIMING_CAP_S) -> tuple[float, int, float]:
    """``(mean seconds per call, calls timed, first call's wall seconds)`` of ``fn``.

    The first call compiles the kernels and warms the caches (wall time, synchronised: ``first_call_s``); one
    timed call then sets how many of ``repeat`` calls fit in ``cap_s`` (at least one), and those are timed.
    """
    from ..apr import convolve_tile as tile

    cuda = tile._cuda()
    t0 = time.perf_counter()
    fn()
    cuda.synchronize()
    first = time.perf_counter() - t0
    one = _mean_s(fn, 1, sim)
    n = int(max(1, min(repeat, cap_s // max(one, 1e-9))))
    if n == 1:
        return one, 1, first
    return _mean_s(fn, n, sim), n, first


def _torch_time_s(fn, repeat: int) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    return _between_events(fn, repeat, torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))


class _DeviceCase:
    """The device arrays of one timed case: structure, ``frames`` copies of the values, a bank of ``n_stencils``
    copies of ``stencil`` (restricted per level), tree means and output; ``free0`` before they were made."""

    def __init__(self, grid: AprGrid, values, stencil, frames: int = 1, n_stencils: int = 1):
        from ..apr import convolve_tile as tile
        from ..apr.convolve import level_stencils

        cuda = tile._cuda()
        _flush()
        self.free0 = _free_bytes()
        self.grid, self.frames, self.n_stencils = grid, frames, n_stencils
        self.work = float(np.prod(grid.shape)) * frames * n_stencils
        self.host = np.ascontiguousarray(np.broadcast_to(np.asarray(values, np.float32), (frames, grid.n_particles)))
        self.dgrid = tile.DeviceAprGrid(grid)
        self.dvals = tile.to_device(self.host)
        per = level_stencils(stencil, grid)
        self.bank = tile.PreparedBank(grid, [None if s is None else [s] * n_stencils for s in per])
        self.out = cuda.device_array((frames, n_stencils, grid.n_particles), np.float32)
        self.tree = cuda.device_array((frames, max(grid.n_tree, 1)), np.float32)
        self.result = None

    def full(self):
        """Tree means + convolution, data resident (the headline's call)."""
        from ..apr import convolve_tile as tile

        tile.convolve_bank(self.dgrid, self.dvals, self.bank, out=self.out, tree_out=self.tree)

    def kernel(self):
        """The convolution alone, on the tree means of the last :meth:`full` call."""
        from ..apr import convolve_tile as tile

        tile.convolve_bank(self.dgrid, self.dvals, self.bank, dtree=self.tree, out=self.out)

    def end_to_end(self):
        """Values to the device, tree means + convolution (new output), result to the host."""
        from ..apr import convolve_tile as tile

        if self.result is None:
            self.result = np.empty((self.frames, self.n_stencils, self.grid.n_particles), np.float32)
        tile.convolve_bank(self.dgrid, tile.to_device(self.host), self.bank).copy_to_host(self.result)

    def memory(self) -> dict:
        """Device memory now (all arrays alive) against :func:`.convolve_tile.device_bytes`."""
        from ..apr import convolve_tile as tile

        free1 = _free_bytes()
        acc = tile.device_bytes(self.grid, self.frames, self.n_stencils)
        res = {"accounted_bytes": acc["total"], "particle_data_bytes": acc["particle_data"]}
        if self.free0 is not None and free1 is not None:
            res["peak_gpu_mem_bytes"] = self.free0 - free1
            res["peak_mem_ratio_to_particle_data"] = (self.free0 - free1) / acc["particle_data"]
        else:
            res["peak_gpu_mem_bytes"] = acc["total"]  # simulator: the accounting
            res["peak_mem_ratio_to_particle_data"] = acc["ratio_to_particle_data"]
        return res

    def release(self):
        self.dgrid = self.dvals = self.bank = self.out = self.tree = self.result = None
        _flush()


def _grid_info(grid: AprGrid) -> dict:
    return {"shape": list(grid.shape), "particles": grid.n_particles, "tree_nodes": grid.n_tree,
            "computational_ratio": round(grid.computational_ratio, 2), "levels": [grid.level_min, grid.level_max]}


def measure(grid: AprGrid, values, stencil, *, repeat: int = 5, frames: int = 1, n_stencils: int = 1) -> dict:
    """Time the tile kernel (tree means + convolution, data resident) on ``grid``; figures per stencil and frame."""
    from ..apr import convolve_tile as tile

    case = _DeviceCase(grid, values, stencil, frames, n_stencils)
    try:
        t, n, first = _timed(case.full, repeat, tile.is_simulator())
        mem = case.memory()
    finally:
        case.release()
    return {**_grid_info(grid), "frames": frames, "stencils": n_stencils, "time_s": t,
            "pixel_equiv_gpix_s": case.work / t / 1e9, "ns_per_particle": t / (grid.n_particles * frames * n_stencils)
            * 1e9, "repeat_used": n, "first_call_s": first, **mem}


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


def _targets(res: dict) -> None:
    if "pixel_equiv_gpix_s" not in res:
        return
    sp = res.get("speedup_vs_cudnn")
    res["targets"] = {"pixel_equiv_gpix_s>=250": bool(res["pixel_equiv_gpix_s"] >= 250),
                      "speedup_vs_cudnn>=30": None if sp is None else bool(sp >= 30),
                      "peak_mem<=3x_particle_data": bool(res["peak_mem_ratio_to_particle_data"] <= 3)}


# ----------------------------------------------------------------------------------------------- stages
class _Run:
    """The record of one run: stages in order against the time budget, the JSON rewritten after each."""

    def __init__(self, args):
        self.start = time.perf_counter()
        self.budget = float(args.budget_s)
        self.output = getattr(args, "output", None)
        self.res = {"status": "starting", "budget_s": self.budget, "stages_s": {}, "predicted_s": {},
                    "skipped": {}, "errors": {}}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()

    def note(self, msg: str) -> None:
        """One progress line on stderr (elapsed seconds first)."""
        print(f"apr-conv cuda [{self.elapsed():.0f} s]: {msg}", file=sys.stderr, flush=True)

    def write(self) -> None:
        """Rewrite the JSON (``-o``) now: it survives a later failure or kill of the command."""
        self.res["wall_s"] = self.elapsed()
        _targets(self.res)
        if self.output:
            from .._io import keep_json

            keep_json(self.res, self.output)

    def skip(self, name: str, why: str) -> None:
        self.res["skipped"][name] = why
        self.note(f"{name} skipped: {why}")

    def fits(self, name: str, predicted: float) -> bool:
        """Whether ``predicted`` seconds fit in the budget left (else ``name`` is listed as skipped)."""
        self.res["predicted_s"][name] = round(float(predicted), 1)
        left = self.left()
        if predicted <= left:
            return True
        self.skip(name, f"time budget (~{predicted:.0f} s predicted, {max(left, 0.0):.0f} s left of "
                        f"--budget-s {self.budget:g})")
        return False

    def stage(self, name: str, fn, predicted: float | None = None, required: bool = False):
        """Run ``fn()`` as stage ``name`` (skipped when ``predicted`` does not fit, unless ``required``).

        A stage that raises is listed under ``"errors"`` and the run goes on (a required one stops it); the JSON is
        written before (``"status": "running NAME"``) and after the stage, also when a signal stops it.
        """
        res = self.res
        if predicted is not None:
            if required:
                res["predicted_s"][name] = round(float(predicted), 1)
            elif not self.fits(name, predicted):
                self.write()
                return None
        res["status"] = f"running {name}"
        self.write()
        t0 = time.perf_counter()
        try:
            out = fn()
            res["status"] = f"after {name}"
            return out
        except Exception as exc:
            res["status"] = f"failed in {name}"
            if required:
                raise
            res["errors"][name] = f"{type(exc).__name__}: {exc}"[:300]
            self.note(f"{name} failed: {res['errors'][name]}")
            return None
        except BaseException as exc:  # a signal (time limit) or Ctrl-C: keep what was measured
            res["status"] = f"stopped in {name} ({type(exc).__name__})"
            raise
        finally:
            res["stages_s"][name] = round(time.perf_counter() - t0, 3)
            try:
                self.write()
            except OSError as exc:
                self.note(f"could not write {self.output}: {exc}")


def run_bench(args) -> dict:
    """``dynfit bench apr-conv --device cuda``: the stages of :data:`STAGES` within ``args.budget_s``."""
    from ..apr import convolve_tile as tile
    from ..apr.filters import gaussian_stencil
    from ..apr.grid import load_grid

    run = _Run(args)
    res = run.res
    tile.use_device("cuda")  # one clear line without a GPU
    sim = tile.is_simulator()
    stencil = gaussian_stencil(args.sigma, args.stencil_size, 3)
    res.update({"device": "cuda", "simulated": sim,
                "gpu_name": "numba CUDA simulator (CPU)" if sim else _gpu_name(),
                "kernel": "fused tile kernel, numba-cuda (apr/convolve_tile.py)", "repeat": args.repeat})
    d_tile, d_threads = tile.SIM_TILE if sim else tile.DEFAULT_TILE
    res["tile"], res["threads_per_block"] = list(d_tile), d_threads
    st = {}

    def build():
        if args.grid:
            grid, values = load_grid(args.grid)
            if values is None:
                raise InputError(f"{args.grid} has no particle values; export it without --no-values")
            res["source"] = str(args.grid)
        else:
            t0 = time.perf_counter()
            grid = synthetic_grid(args.size, spheres_for_ratio(args.size, args.ratio), seed=0)
            values = np.random.default_rng(0).random(grid.n_particles, dtype=np.float32)
            res["source"] = f"synthetic {args.size}^3, target ratio {args.ratio:g}"
            res["build_s"] = time.perf_counter() - t0
            st["build_rate"] = res["build_s"] / float(args.size) ** 3
        if grid.ndim != 3:
            raise InputError("the GPU benchmark needs a 3D APR (its stencil is 3D); pass a 3D --grid")
        st["grid"], st["values"] = grid, values
        res.update(_grid_info(grid))
        run.note(f"{res['source']}: {grid.n_particles} particles, comp. ratio {grid.computational_ratio:.1f}")

    pixels = float(args.size) ** 3 if not args.grid else 0.0
    run.stage("build", build, None if args.grid else predict_s("build", pixels=pixels), required=True)
    grid, values = st["grid"], st["values"]
    pixels, n = float(np.prod(grid.shape)), grid.n_particles

    def headline():
        case = st["case"] = _DeviceCase(grid, values, stencil)
        t, used, first = _timed(case.full, args.repeat, sim)
        res.update({"frames": 1, "stencils": 1, "stencil": list(np.shape(stencil)), "time_s": t,
                    "pixel_equiv_gpix_s": pixels / t / 1e9, "ns_per_particle": t / n * 1e9, "repeat_used": used,
                    "first_call_s": first, **case.memory()})
        st["ours"], st["tree"] = tile.to_host(case.out)[0, 0], tile.to_host(case.tree)[0]  # the timed call's output
        run.note("headline " + json.dumps({k: res[k] for k in ("source", "particles", "computational_ratio",
                                                                "time_s", "pixel_equiv_gpix_s", "first_call_s",
                                                                "peak_mem_ratio_to_particle_data")}, default=float))

    run.stage("headline", headline, required=True)
    case, call_s = st["case"], res["time_s"]

    def kernel_only():
        t, _, _ = _timed(case.kernel, args.repeat, sim)
        res["kernel_only_s"], res["kernel_only_gpix_s"] = t, pixels / t / 1e9

    def end_to_end():
        t, _, _ = _timed(case.end_to_end, max(1, args.repeat // 2), sim)
        res["end_to_end_s"], res["end_to_end_gpix_s"] = t, pixels / t / 1e9

    run.stage("kernel_only", kernel_only, (2 + args.repeat) * call_s)
    run.stage("end_to_end", end_to_end, (2 + args.repeat // 2) * (call_s + 1e-9 * 12 * n))
    ours, tree_dev = st["ours"], st["tree"]
    case.release()

    def cpu():
        import numba

        from ..apr.convolve import convolve

        threads = int(numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(threads)
        t0 = time.perf_counter()
        small = synthetic_grid(32, 4)
        convolve(small, np.ones(small.n_particles, np.float32), stencil, device="cpu",
                 tree_values=np.zeros(small.n_tree, np.float32))
        compile_s = time.perf_counter() - t0
        if args.check:  # the tree means of the host (the index is built outside the timing)
            tree = grid.tree_mean(values)
            res["max_rel_error_tree_means"] = _rel(tree_dev, tree)
        else:
            tree = tree_dev
        t0 = time.perf_counter()
        cpu_out = convolve(grid, values, stencil, device="cpu", tree_values=tree)
        t = time.perf_counter() - t0
        res["cpu_kernel"] = {"time_s": t, "calls": 1, "threads": threads, "compile_s": compile_s,
                             "gpix_s": pixels / t / 1e9,
                             "tree_means": "host (AprGrid.tree_mean, --check)" if args.check else "from the GPU"}
        res["max_rel_error_vs_cpu"] = _rel(ours, cpu_out)
        if "kernel_only_s" in res:
            res["speedup_vs_cpu_kernel"] = t / res["kernel_only_s"]
        run.note(f"CPU kernel ({threads} threads) {t:.2f} s, max rel. error {res['max_rel_error_vs_cpu']:.1e}")

    if args.no_cpu:
        run.skip("cpu", "--no-cpu")
    else:
        import numba

        p = predict_s("cpu", pixels=pixels, particles=n, threads=int(numba.config.NUMBA_NUM_THREADS))
        if args.check:
            p += predict_s("check_index", pixels=pixels, particles=n)
        run.stage("cpu", cpu, p)

    def cudnn():
        import torch

        if not torch.cuda.is_available():
            raise InputError("torch has no CUDA here")
        res["cudnn_conv3d"] = _cudnn(grid.shape, stencil, min(args.repeat, 3))
        res["speedup_vs_cudnn"] = res["pixel_equiv_gpix_s"] / res["cudnn_conv3d"]["gpix_s"]
        run.note(f"cuDNN conv3d {res['cudnn_conv3d']['gpix_s']:.1f} Gpixel/s")

    def torch_path():
        tp, tout = _torch_path(grid, values, stencil, min(args.repeat, 3))
        tp["max_rel_error_vs_tile_kernel"] = _rel(tout, ours)
        res["torch_path"] = tp
        res["speedup_vs_torch_path"] = res["pixel_equiv_gpix_s"] / tp["gpix_s"]
        run.note(f"torch path {tp['gpix_s']:.1f} Gpixel/s")

    if sim:
        run.skip("cudnn", "simulator (no cuDNN)")
        run.skip("torch_path", "simulator")
    else:
        run.stage("cudnn", cudnn, predict_s("cudnn", pixels=pixels, calls=5, call_s=call_s))
        if args.no_torch_path:
            run.skip("torch_path", "--no-torch-path")
        else:
            built = "particle_parent" in grid.__dict__
            run.stage("torch_path", torch_path, predict_s("torch_path", pixels=pixels, particles=n, calls=6,
                                                          call_s=50 * call_s, index_built=built))

    if args.frames > 1 or args.stencils > 1:
        def batched():
            b = measure(grid, values, stencil, repeat=args.repeat, frames=args.frames, n_stencils=args.stencils)
            res["batched"] = {k: b[k] for k in ("frames", "stencils", "time_s", "pixel_equiv_gpix_s", "repeat_used",
                                                "peak_gpu_mem_bytes", "peak_mem_ratio_to_particle_data")}
            run.note("batched " + json.dumps(res["batched"], default=float))

        fs = args.frames * args.stencils
        run.stage("batched", batched, predict_s("batched", pixels=pixels, calls=2 + args.repeat, call_s=fs * call_s))

    if parse_sweep(args.sweep):
        rate = st.get("build_rate", BUILD_S_PER_PIXEL)
        run.stage("sweep", lambda: _sweep(args, stencil, run, rate, pixels / call_s))
    res["status"] = "complete"
    run.write()
    return res


def _sweep(args, stencil, run: _Run, build_rate: float, pixels_per_s: float) -> None:
    """Synthetic APRs of the ``--sweep`` sizes and ratios, each skipped when its prediction exceeds the budget left
    (``res["sweep"]``, rewritten after each size)."""
    rows = run.res.setdefault("sweep", [])
    repeat = max(1, args.repeat // 2)
    for n, ratio in parse_sweep(args.sweep):
        px = float(n) ** 3
        predicted = predict_s("sweep_item", pixels=px, calls=3 + repeat, call_s=px / pixels_per_s,
                              build_s_per_pixel=build_rate)
        left = run.left()
        if predicted > left:
            rows.append({"n": n, "target_ratio": ratio, "skipped": f"time budget ({left:.0f} s left, "
                                                                  f"~{predicted:.0f} s predicted)"})
            run.write()
            continue
        t0 = time.perf_counter()
        grid = synthetic_grid(n, spheres_for_ratio(n, ratio), seed=1)
        build = time.perf_counter() - t0
        values = np.random.default_rng(1).random(grid.n_particles, dtype=np.float32)
        m = measure(grid, values, stencil, repeat=repeat)
        rows.append({"n": n, "target_ratio": ratio, "build_s": build, "predicted_s": round(predicted, 1),
                     "wall_s": time.perf_counter() - t0,
                     **{k: m[k] for k in ("particles", "computational_ratio", "time_s", "pixel_equiv_gpix_s",
                                          "ns_per_particle", "peak_gpu_mem_bytes",
                                          "peak_mem_ratio_to_particle_data")}})
        run.note(f"sweep {n}^3 ratio {m['computational_ratio']:.0f}: {m['pixel_equiv_gpix_s']:.1f} Gpixel/s")
        run.write()
        del grid, values
