"""Scale-out helper: every scheduler gives the serial results; a 2-worker LocalCluster over TCP on loopback."""

import functools
import threading

import numpy as np
import pytest
from scipy import ndimage

from napari_dynfit import Cancelled, InputError
from napari_dynfit._progress import progress_context
from napari_dynfit.parallel import check_scheduler, get_client, map_frames, map_items
from napari_dynfit.sim import render_movie, simulate_abp

# module-level callables from installed packages: picklable by reference for worker processes
SMOOTH = functools.partial(ndimage.gaussian_filter, sigma=1.5)


@pytest.fixture(scope="module")
def movie():
    traj = simulate_abp(40, 90, box=32.0, v0=2.0, Dt=0.1, save_every=10, seed=0)
    mov, _ = render_movie(traj.to_table(), (64, 64), scale=0.5, snr=10, seed=0)
    return mov  # (10, 64, 64) uint16


def _peaks(frame):
    return ndimage.label(ndimage.gaussian_filter(frame.astype(float), 1.5) > 140)


def test_local_cluster_two_workers_tcp_loopback_matches_serial(movie, tmp_path):
    from distributed import LocalCluster

    serial = map_frames(SMOOTH, movie, scheduler="sync")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tcp://",
                      dashboard_address=None, silence_logs=40) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        with get_client(address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
        par = map_frames(SMOOTH, movie, scheduler=address, in_flight=3)
        for a, b in zip(serial, par):
            np.testing.assert_array_equal(a, b)
        # a lazy Zarr movie is read frame by frame on the workers
        import zarr

        z = zarr.create_array(str(tmp_path / "m.zarr"), data=movie, chunks=(1, 64, 64))
        lazy = map_frames(ndimage.center_of_mass, z, scheduler=address)
        assert lazy == [ndimage.center_of_mass(f) for f in movie]
        # worker pids differ: the work really ran on two processes
        pids = map_items(_getpid, list(range(8)), scheduler=address)
        assert len(set(pids)) == 2


def _getpid(_):
    import os

    return os.getpid()


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_local_schedulers_match_serial(movie, scheduler):
    serial = [SMOOTH(f) for f in movie]
    par = map_frames(SMOOTH, movie, scheduler=scheduler, n_workers=2)
    assert len(par) == len(serial)
    for a, b in zip(serial, par):
        np.testing.assert_array_equal(a, b)


def test_local_cluster_string_and_extra_arguments(movie):
    serial = [ndimage.gaussian_filter(f, 1.0, mode="wrap") for f in movie[:4]]
    par = map_frames(ndimage.gaussian_filter, movie[:4], scheduler="local-cluster", n_workers=2,
                     args=(1.0,), kwargs={"mode": "wrap"})
    for a, b in zip(serial, par):
        np.testing.assert_array_equal(a, b)


def test_progress_and_cancel(movie):
    seen = []
    with progress_context(lambda d, n, s: seen.append((d, n))):
        map_frames(SMOOTH, movie, scheduler="threads", n_workers=2, in_flight=2)
    assert seen[-1] == (10, 10)
    ev = threading.Event()
    ev.set()
    with progress_context(None, ev), pytest.raises(Cancelled):
        map_frames(SMOOTH, movie, scheduler="sync")


def test_bad_scheduler_input():
    with pytest.raises(InputError, match="unknown scheduler"):
        check_scheduler("gpu-farm")
    with pytest.raises(InputError, match="n_workers"):
        map_frames(SMOOTH, np.zeros((2, 4, 4)), scheduler="threads", n_workers=0)
    with pytest.raises(InputError, match="cannot reach"), get_client("tcp://127.0.0.1:9", timeout="1s"):
        pass
    with pytest.raises(InputError, match="callable"):
        map_frames(None, np.zeros((2, 4, 4)))
    assert map_frames(SMOOTH, np.zeros((0, 4, 4))) == []


def test_local_cluster_leaves_the_parent_environment_alone():
    """distributed applies its pre-spawn variables to the parent; numba then refuses a changed NUMBA_NUM_THREADS."""
    import os

    from napari_dynfit.parallel import WORKER_ENV, local_cluster

    before = {k: os.environ.get(k) for k in WORKER_ENV}
    with local_cluster(1):
        assert {k: os.environ.get(k) for k in WORKER_ENV} == before
    assert {k: os.environ.get(k) for k in WORKER_ENV} == before


def test_map_frames_takes_an_opened_movie_file(movie, tmp_path):
    """``map_frames(func, open_movie(path))`` maps over the file's frames (it said "cannot map over frames of a
    MovieFile" and gave no hint that ``.data`` was wanted)."""
    import tifffile

    from napari_dynfit.pipeline import open_movie

    path = tmp_path / "m.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    got = map_frames(SMOOTH, open_movie(path), scheduler="sync")
    want = [SMOOTH(frame) for frame in movie]
    assert len(got) == len(movie) and all(np.allclose(a, b) for a, b in zip(got, want))
