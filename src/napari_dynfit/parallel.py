"""Scale-out: map per-frame (or per-item) work onto a Dask scheduler chosen by one string.

Every stage that works frame by frame (APR conversion, filtering, detection, per-trajectory field
work) calls :func:`map_frames` (or :func:`map_items`) with the user's ``scheduler``:

========================  ===================================================================
``"sync"``                serial, in this thread (the reference path; no Dask involved)
``"threads"``             Dask's threaded scheduler (numba / numpy / pyapr release the GIL)
``"processes"``           Dask's multiprocessing scheduler (pure-Python work)
``"local-cluster"``       a ``distributed.LocalCluster`` on this machine (one process per worker,
                          TCP on the loopback interface), started and closed around the call
``"tcp://HOST:PORT"``     an existing ``dask.distributed`` scheduler (any cluster: SSH, SLURM via
                          ``dask-jobqueue``, Kubernetes ...); also ``tls://``, ``ucx://``, ``inproc://``
a ``distributed.Client``  use this client as it is
========================  ===================================================================

Results are returned in input order and are identical to the serial path (each item is processed
by the same function on the same input). Memory: frames of lazy inputs (Zarr arrays, Dask arrays,
anything indexable that is not a numpy array) are read inside the task, on the worker, so a worker
holds only the frames it is working on besides the results; numpy inputs are sent one frame per
task. The local schedulers run one Dask graph of one task per frame (at most one running task per
worker); clusters get a sliding window of ``in_flight`` submitted tasks (default two per worker), so
the scheduler never holds the whole movie. Progress is reported per frame with
:func:`~napari_dynfit._progress.report` and a cancel request stops starting new work (running tasks
finish).

Worker processes (``"processes"``, ``"local-cluster"``) run their native libraries single-threaded
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS`` = 1, as
Dask's nanny does for OpenMP and BLAS): the parallelism is across frames, and nested thread pools
on shared cores only spin against each other.

Running on a cluster (SLURM with ``dask-jobqueue``)::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=8, memory="32GB", walltime="02:00:00")
    cluster.scale(jobs=4)
    # pass cluster.scheduler_address ("tcp://...") as scheduler= or --scheduler
    results = map_frames(detect_frame, movie, scheduler=cluster.scheduler_address)

or start ``dask scheduler`` on one node and ``dask worker tcp://HOST:8786`` on the others and use
``--scheduler tcp://HOST:8786``. Workers need the same Python environment (napari-dynfit installed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np

from ._progress import check_cancelled, progress_iter, report
from .errors import InputError

LOCAL_SCHEDULERS = ("sync", "threads", "processes")
SCHEDULER_HELP = ("sync, threads, processes, local-cluster, or the address of a running dask scheduler "
                  "(tcp://HOST:PORT)")

#: Environment of worker processes: native libraries single-threaded (see the module docstring).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def check_scheduler(scheduler) -> str:
    """Return the kind of ``scheduler``: ``"sync"``, ``"threads"``, ``"processes"``, ``"local-cluster"``,
    ``"address"`` or ``"client"``; raise :class:`InputError` for anything else."""
    if isinstance(scheduler, str):
        s = scheduler.strip().lower()
        if s in LOCAL_SCHEDULERS or s == "local-cluster":
            return s
        if "://" in s:
            return "address"
    else:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - distributed is a dependency
            Client = ()
        if isinstance(scheduler, Client):
            return "client"
    raise InputError(f"unknown scheduler {scheduler!r}: use {SCHEDULER_HELP}")


@contextlib.contextmanager
def get_client(scheduler="local-cluster", *, n_workers: int | None = None, threads_per_worker: int = 1,
               memory_limit="auto", timeout: str = "10s"):
    """Yield a ``distributed.Client`` for ``scheduler`` (``None`` for the local schedulers).

    Parameters
    ----------
    scheduler : str or distributed.Client
        See the module docstring. ``"local-cluster"`` starts a ``LocalCluster`` with ``n_workers``
        worker processes on 127.0.0.1 (TCP) and closes it on exit; an address connects to a running
        scheduler (which is left running); a client is yielded unchanged.
    n_workers : int, optional
        Worker processes of a local cluster (default: the number of CPU cores).
    threads_per_worker : int
        Threads per worker process of a local cluster.
    memory_limit : str or int
        Per-worker memory limit of a local cluster (Dask's syntax, e.g. ``"4GB"``).
    timeout : str
        How long to try to reach a scheduler address.
    """
    kind = check_scheduler(scheduler)
    if kind in LOCAL_SCHEDULERS:
        yield None
        return
    if kind == "client":
        yield scheduler
        return
    from distributed import Client

    if kind == "local-cluster":
        with local_cluster(n_workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler.strip(), timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the dask scheduler at {scheduler} ({exc.__class__.__name__}): start it "
                         "(`dask scheduler`) or check the address") from exc
    try:
        yield client
    finally:
        client.close()


def local_cluster(n_workers: int | None = None, *, threads_per_worker: int = 1, memory_limit="auto"):
    """A ``distributed.LocalCluster`` of worker processes on 127.0.0.1 (TCP), set up for per-frame work.

    Workers get :data:`WORKER_ENV` before they start (native libraries single-threaded). Dask's own
    default also sets ``MALLOC_TRIM_THRESHOLD_=65536``, which pins glibc's mmap threshold at 128 KiB:
    every frame-sized array is then a fresh ``mmap`` and its pages fault in again, and the APR + detection
    pipeline ran twice as slowly per frame (0.26 s vs 0.12 s for 256 x 256, measured); it is left unset.
    Use it as a context manager (it closes its workers on exit).
    """
    import os

    import dask
    from distributed import LocalCluster

    env = {**WORKER_ENV, "NUMBA_NUM_THREADS": str(threads_per_worker)}
    # distributed applies pre-spawn variables to *this* process's os.environ before spawning; put ours back
    # (numba refuses a changed NUMBA_NUM_THREADS once its threads run)
    saved = {k: os.environ.get(k) for k in env}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):  # read when the nannies are made
            return LocalCluster(n_workers=_n_workers(n_workers), threads_per_worker=threads_per_worker,
                                processes=True, host="127.0.0.1", protocol="tcp://", dashboard_address=None,
                                memory_limit=memory_limit, silence_logs=40)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _n_workers(n_workers) -> int:
    import dask

    if n_workers is None:
        return int(dask.system.CPU_COUNT)
    if not isinstance(n_workers, (int, np.integer)) or isinstance(n_workers, bool) or n_workers < 1:
        raise InputError(f"n_workers must be a positive integer, got {n_workers!r}")
    return int(n_workers)


def _apply(func, item, args, kwargs):
    return func(item, *args, **kwargs)


class _Lazy:
    """A lazy movie passed to the tasks as it is: Dask would compute a Dask array argument first."""

    def __init__(self, data):
        self.data = data

    def frame(self, index) -> np.ndarray:
        """``data[index]`` as a numpy array; Dask frames are computed in this thread (no nested pools)."""
        frame = self.data[index]
        if hasattr(frame, "compute"):
            frame = frame.compute(scheduler="sync")
        return np.asarray(frame)


def _apply_indexed(func, source: _Lazy, index, args, kwargs):
    """Read frame ``index`` of a lazy source where the task runs, then apply ``func``."""
    return func(source.frame(index), *args, **kwargs)


def map_items(func: Callable, items: Sequence, *, scheduler="threads", n_workers: int | None = None,
              args: tuple = (), kwargs: dict | None = None, in_flight: int | None = None,
              desc: str = "items") -> list:
    """Apply ``func(item, *args, **kwargs)`` to every item of a sequence with the chosen scheduler.

    Items are sent as they are (use :func:`map_frames` for arrays, which reads lazy frames on the
    workers). See :func:`map_frames` for the parameters; returns the results in input order.
    """
    return _map(func, len(items), lambda i: (_apply, (func, items[i], args, kwargs or {})),
                scheduler, n_workers, in_flight, desc)


def map_frames(func: Callable, movie, *, scheduler="threads", n_workers: int | None = None,
               args: tuple = (), kwargs: dict | None = None, in_flight: int | None = None,
               desc: str = "frames", index: bool = False) -> list:
    """Apply ``func(movie[t], *args, **kwargs)`` to every frame ``t`` of a movie, in parallel.

    Parameters
    ----------
    func : callable
        Per-frame function; must be picklable for ``"processes"`` and clusters (a module-level
        function or a ``functools.partial`` of one).
    movie : array-like, shape (t, ...)
        numpy array, Zarr array, Dask array or any object with ``len`` and ``movie[t]``, or what
        :func:`~napari_dynfit.pipeline.open_movie` returns (its ``.data``); non-numpy inputs are read frame
        by frame inside the tasks (on the workers).
    scheduler : str or distributed.Client
        ``"sync"``, ``"threads"``, ``"processes"``, ``"local-cluster"`` or a scheduler address
        (see the module docstring).
    n_workers : int, optional
        Parallel workers for the local schedulers and the local cluster (default: CPU cores).
    args, kwargs
        Extra arguments of ``func``.
    in_flight : int, optional
        Tasks submitted at once to a cluster (bounds the scheduler's memory); default twice the
        number of workers. The local schedulers run at most one task per worker anyway.
    desc : str
        Progress description.
    index : bool
        Call ``func(movie[t], t, *args, **kwargs)``: the frame index comes second (frame columns,
        error messages).

    Returns
    -------
    list
        ``[func(movie[0]), func(movie[1]), ...]``.
    """
    if not hasattr(movie, "shape") and hasattr(getattr(movie, "data", None), "shape"):
        movie = movie.data  # a MovieFile (open_movie): its lazy frames
    try:
        n = int(movie.shape[0]) if hasattr(movie, "shape") else len(movie)
    except (TypeError, IndexError):
        raise InputError(f"cannot map over frames of a {type(movie).__name__}: pass an array of shape (t, ...)") \
            from None
    kw = kwargs or {}

    def extra(i):
        return ((i,) + tuple(args)) if index else args

    if isinstance(movie, np.ndarray):
        def task(i):
            return _apply, (func, movie[i], extra(i), kw)
    else:
        lazy = _Lazy(movie)

        def task(i):
            return _apply_indexed, (func, lazy, i, extra(i), kw)
    return _map(func, n, task, scheduler, n_workers, in_flight, desc)


def _map(func, n, task, scheduler, n_workers, in_flight, desc) -> list:
    if not callable(func):
        raise InputError(f"func must be callable, got {type(func).__name__}")
    kind = check_scheduler(scheduler)
    if n == 0:
        return []
    if kind == "sync":
        out = []
        for i in progress_iter(range(n), desc=desc):
            fn, a = task(i)
            out.append(fn(*a))
        return out
    if kind in ("threads", "processes"):
        return _map_local(kind, task, n, _n_workers(n_workers), desc)
    with get_client(scheduler, n_workers=n_workers) as client:
        return _map_distributed(client, task, n, in_flight, desc)


def _map_local(kind, task, n, workers, desc) -> list:
    """One Dask graph (a task per item) on a thread or process pool; progress and cancel per task."""
    import dask

    done = 0

    def posttask(key, result, dsk, state, worker_id):
        nonlocal done
        done += 1
        report(done, n, desc)  # raises Cancelled: no new task starts, running ones finish

    tasks = [dask.delayed(fn, pure=False)(*a) for fn, a in map(task, range(n))]
    report(0, n, desc)
    # one pool for the whole map: Dask would otherwise start (and, for processes, spawn) one per call;
    # chunksize 1: one task per worker at a time, the next frame goes to the first worker free
    with _pool(kind, workers) as pool:
        return list(dask.compute(*tasks, scheduler=kind, pool=pool, chunksize=1,
                                 callbacks=[(None, None, None, posttask, None)]))  # dask's callback tuple


def _init_worker_process() -> None:
    """Initialiser of the ``"processes"`` pool: :data:`WORKER_ENV`, also for libraries already loaded."""
    import os

    os.environ.update(WORKER_ENV)
    from threadpoolctl import threadpool_limits

    from ._headless import die_with_parent

    die_with_parent()  # no orphan workers when the parent is killed; Ctrl-C is handled by the parent

    threadpool_limits(1)


def _pool(kind, workers):
    """The executor Dask's local scheduler runs on (processes are started with Dask's configured context)."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if kind == "threads":
        return ThreadPoolExecutor(workers)
    import multiprocessing

    import dask

    context = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker_process)


def _map_distributed(client, task, n, in_flight, desc) -> list:
    """Sliding window of futures: keep ``in_flight`` tasks submitted, collect results by index."""
    from distributed import as_completed

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = in_flight or 2 * workers
    results: list = [None] * n
    nxt = 0
    # (as_completed(with_results=True) would save a round trip per frame, but its concurrent gathers broke
    # tornado's write buffer in distributed 2026.8 under load: results are fetched one by one)
    pending = as_completed()
    index = {}

    def submit():
        nonlocal nxt
        fn, a = task(nxt)
        fut = client.submit(fn, *a, pure=False)
        index[fut.key] = nxt
        pending.add(fut)
        nxt += 1

    while nxt < min(n, window):
        submit()
    done = 0
    report(0, n, desc)
    try:
        for fut in pending:
            results[index.pop(fut.key)] = fut.result()
            fut.release()
            done += 1
            report(done, n, desc)
            if nxt < n:
                check_cancelled()
                submit()
    except BaseException:
        for fut in list(pending.futures):
            fut.cancel()
        raise
    return results
