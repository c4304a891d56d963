"""Per-frame pipeline benchmark: APR conversion + APR-native Gaussian + detection, 1 vs 2 workers.

A 100-frame 2D movie of active particles (simulator, 256 x 256, ground truth known) is written to a
Zarr array with one frame per chunk and processed with :func:`napari_dynfit.pipeline.process_movie`:

* serially (``scheduler="sync"``: the reference result);
* on a warm ``LocalCluster`` of 1 and of 2 single-threaded worker processes (TCP on loopback, the
  Zarr frames read on the workers), runs interleaved and repeated, best and median times;
* on Dask's thread pool with 1 and 2 threads (the same interleaving), to show how much the kernels
  release the GIL;
* once each on cold ``"local-cluster"`` and ``"processes"`` schedulers (start-up included).

Memory: each worker's peak resident set during a run (``VmHWM`` of ``/proc/PID/status``, reset through
``/proc/PID/clear_refs``, on Linux; elsewhere ``ru_maxrss`` of ``resource.getrusage``, the worker's peak since
it started, an upper bound; ``worker_peak_method`` says which) minus its resident set just before the run
(warm worker, ``gc.collect()`` and, with glibc, ``malloc_trim(0)``), compared with the same quantity for a
one-frame movie processed the same way (one frame's working set, task machinery included). Without either
(Windows) the bench stops with one line before running anything.

The machine's cores are shared: the load average before and after is printed, and the speed-up is
the ratio of best times of interleaved runs (the median ratio is printed too). Where the kernel
divides the CPU between sessions (``sched_autogroup``), a busy machine gives one session about the same
share whatever its number of workers, so the CPU seconds of the busiest worker per run are reported as
well (workers together, and the client + scheduler process): they do not depend on the neighbours,
show the parallel overhead (``cluster_cpu_2_vs_1``) and give the wall time on 2 dedicated cores
(``dedicated_2_cores_speedup_estimate``: 1 worker = its CPU time; 2 workers = all CPU time / 2).

    python -m napari_dynfit.bench.pipeline [--frames 100] [--size 256] [--repeat 3] [--gaussian 1.0] [-o out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

#: where Linux keeps this process's memory figures (``VmRSS``, ``VmHWM``) and the switch that resets its peak
_PROC = Path("/proc/self")
#: how each worker's peak resident set is measured (:func:`peak_method`)
PEAK_METHODS = {"proc": "VmHWM of /proc/PID/status, reset before each run through /proc/PID/clear_refs",
                "rusage": "ru_maxrss of resource.getrusage: the worker's peak since it started (cannot be reset; "
                          "an upper bound on a run's peak)"}


def _vm(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in bytes (Linux)."""
    for line in (_PROC / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in {_PROC / 'status'}")


def peak_method() -> str:
    """How this system lets the bench measure a process's peak resident set: ``"proc"`` (Linux: the peak is
    reset before each run) or ``"rusage"`` (``resource.getrusage``, elsewhere: the lifetime peak, an upper
    bound), see :data:`PEAK_METHODS`; one-line ``SystemExit`` when neither is available (Windows)."""
    try:
        (_PROC / "clear_refs").write_text("5")
        _vm("VmHWM")
        return "proc"
    except (OSError, RuntimeError):
        pass
    try:
        import resource  # noqa: F401 - POSIX only

        import psutil  # noqa: F401 - the resident set before a run (a dependency of distributed)
    except ImportError:
        raise SystemExit("the pipeline bench measures the workers' peak memory through Linux's /proc/self/status "
                         "or resource.getrusage (with psutil); neither is available on this system "
                         f"({sys.platform})") from None
    return "rusage"


def _rss(method: str) -> int:
    """This process's resident set now (bytes)."""
    if method == "proc":
        return _vm("VmRSS")
    import psutil

    return int(psutil.Process().memory_info().rss)


def _reset_peak(method: str = "proc", dask_worker=None) -> int:
    """Free what can be freed, reset the peak resident set (``method`` ``"proc"``); return the resident set now
    (the baseline, bytes)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    if method == "proc":
        (_PROC / "clear_refs").write_text("5")
    return _rss(method)


def _warm_up(movie, kw, dask_worker=None) -> None:
    from napari_dynfit.pipeline import process_movie

    process_movie(movie, scheduler="sync", **kw)


def _peak(method: str = "proc", dask_worker=None) -> int:
    """This process's peak resident set (bytes): since the last :func:`_reset_peak` (``"proc"``) or since it
    started (``"rusage"``)."""
    if method == "proc":
        return _vm("VmHWM")
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def _movie(frames: int, size: int, seed: int = 0):
    from napari_dynfit.sim import render_movie, simulate_abp
    from napari_dynfit.sim.samples import ABP_2D, ABP_2D_RENDER

    box = size * ABP_2D_RENDER["scale"]
    n = int(round(ABP_2D["n_particles"] * (size / ABP_2D_RENDER["shape"][0]) ** 2))
    traj = simulate_abp(n, (frames - 1) * ABP_2D["save_every"], dim=2, box=(box, box), dt=ABP_2D["dt"],
                        v0=ABP_2D["v0"], Dr=ABP_2D["Dr"], Dt=ABP_2D["Dt"], save_every=ABP_2D["save_every"], seed=seed)
    table = traj.to_table()
    render = {k: v for k, v in ABP_2D_RENDER.items() if k != "shape"}
    return render_movie(table, (frames, size, size), seed=seed, **render)


def _identical(a, b) -> bool:
    return a.detections.equals(b.detections) and a.frames.equals(b.frames)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved timed runs per configuration")
    ap.add_argument("--gaussian", type=float, default=1.0, help="APR-native Gaussian sigma (px)")
    ap.add_argument("--rel-error", type=float, default=0.1)
    ap.add_argument("--no-cold", action="store_true", help="skip the cold processes / local-cluster runs")
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="distributed")

    import zarr
    from distributed import Client

    from napari_dynfit.parallel import local_cluster
    from napari_dynfit.pipeline import process_movie
    from napari_dynfit.track.metrics import match_nodes

    mem = peak_method()  # before anything runs: a system without a way to measure stops here, in one line
    print(f"pipeline bench: worker peak memory from {PEAK_METHODS[mem]}", file=sys.stderr)
    res = {"frames": args.frames, "frame_shape": [args.size, args.size], "gaussian_sigma": args.gaussian,
           "rel_error": args.rel_error, "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(),
           "worker_peak_method": PEAK_METHODS[mem]}
    movie, truth = _movie(args.frames, args.size)
    kw = dict(convert={"rel_error": args.rel_error}, filter={"sigma": args.gaussian} if args.gaussian > 0 else None)
    tmp = tempfile.TemporaryDirectory()
    lazy = zarr.create_array(str(Path(tmp.name) / "movie.zarr"), data=movie, chunks=(1, args.size, args.size))
    one_frame = zarr.create_array(str(Path(tmp.name) / "frame.zarr"), data=movie[-1:], chunks=(1, args.size, args.size))

    t = time.perf_counter()
    ref = process_movie(lazy, scheduler="sync", **kw)
    res["serial_s"] = time.perf_counter() - t
    gi, pj = match_nodes(truth, ref.detections, match_distance=1.5)
    res["detections"] = len(ref.detections)
    res["recall"] = len(gi) / len(truth)
    res["precision"] = len(pj) / max(len(ref.detections), 1)
    res["particles_per_frame"] = float(ref.frames["particles"].mean())

    clusters = {}
    try:
        for n in (1, 2):
            cluster = local_cluster(n)
            client = Client(cluster)
            client.run(_warm_up, one_frame, kw)  # imports, numba caches, Zarr reading, on every worker
            ones = []
            for _ in range(2):  # a one-frame movie: one frame's working set
                base = client.run(_reset_peak, mem)
                process_movie(one_frame, scheduler=client, **kw)
                peak = client.run(_peak, mem)
                ones.append(max(peak[a] - base[a] for a in base))
            clusters[n] = (cluster, client, ones)
        working_set = [w for c in clusters.values() for w in c[2]]
        res["one_frame_working_set_mb"] = statistics.median(working_set) / 2**20

        times = {f"cluster_{n}": [] for n in (1, 2)} | {f"threads_{n}": [] for n in (1, 2)}
        peaks = {1: [], 2: []}
        cpu = {1: [], 2: []}  # per run: CPU seconds of all workers together, and of this (client + scheduler) process
        same = True
        for _ in range(args.repeat):
            for n in (1, 2):
                cluster, client, _ = clusters[n]
                base = client.run(_reset_peak, mem)
                cpu0, main0 = client.run(time.process_time), time.process_time()
                t = time.perf_counter()
                out = process_movie(lazy, scheduler=client, **kw)
                times[f"cluster_{n}"].append(time.perf_counter() - t)
                cpu1, main1 = client.run(time.process_time), time.process_time()
                cpu[n].append((sum(cpu1[a] - cpu0[a] for a in cpu0), main1 - main0))
                peak = client.run(_peak, mem)
                peaks[n].extend(peak[a] - base[a] for a in base)
                same &= _identical(ref, out)
            for n in (1, 2):
                t = time.perf_counter()
                out = process_movie(movie, scheduler="threads", workers=n, **kw)
                times[f"threads_{n}"].append(time.perf_counter() - t)
                same &= _identical(ref, out)
    finally:
        for cluster, client, *_ in clusters.values():
            client.close()
            cluster.close()
    for name, ts in times.items():
        res[f"{name}_best_s"] = min(ts)
        res[f"{name}_median_s"] = statistics.median(ts)
        res[f"{name}_all_s"] = ts
    for kind in ("cluster", "threads"):
        res[f"{kind}_speedup_2_vs_1"] = res[f"{kind}_1_best_s"] / res[f"{kind}_2_best_s"]
        res[f"{kind}_speedup_2_vs_1_median"] = statistics.median(
            a / b for a, b in zip(times[f"{kind}_1"], times[f"{kind}_2"]))
    res["cluster_2_vs_serial"] = res["serial_s"] / res["cluster_2_best_s"]
    # CPU seconds do not depend on how the shared cores are divided between sessions. On 2 dedicated cores,
    # 1 worker takes its CPU time (client + scheduler on the other core); 2 workers and the client share both
    # cores: (workers' CPU + client CPU) / 2, assuming the frames are spread evenly (they are handed out
    # one at a time to whichever worker is free)
    for n in (1, 2):
        res[f"cluster_{n}_workers_cpu_s"] = statistics.median(c[0] for c in cpu[n])
        res[f"cluster_{n}_client_scheduler_cpu_s"] = statistics.median(c[1] for c in cpu[n])
    res["cluster_cpu_2_vs_1"] = res["cluster_2_workers_cpu_s"] / res["cluster_1_workers_cpu_s"]
    res["dedicated_2_cores_speedup_estimate"] = (
        max(res["cluster_1_workers_cpu_s"], res["cluster_1_client_scheduler_cpu_s"])
        / ((res["cluster_2_workers_cpu_s"] + res["cluster_2_client_scheduler_cpu_s"]) / 2))
    for n in (1, 2):
        res[f"cluster_{n}_worker_peak_mb"] = max(peaks[n]) / 2**20
        res[f"cluster_{n}_peak_vs_one_frame"] = max(peaks[n]) / statistics.median(working_set)
    if not args.no_cold:
        for sched in ("local-cluster", "processes"):
            t = time.perf_counter()
            out = process_movie(lazy, scheduler=sched, workers=2, **kw)
            res[f"cold_{sched}_2_s"] = time.perf_counter() - t
            same &= _identical(ref, out)
    res["identical"] = bool(same)
    res["load_average_after"] = os.getloadavg()
    tmp.cleanup()
    text = json.dumps(res, indent=2)
    print(text)
    if args.output:
        from napari_dynfit._io import atomic_path

        with atomic_path(args.output) as out_path:
            out_path.write_text(text)
    return res


if __name__ == "__main__":
    main()
