"""The fused GPU tile kernel (numba-cuda), run on the CPU by numba's CUDA simulator, against pyapr and the CPU kernel.

The kernel source is the one that runs on a GPU; ``NUMBA_ENABLE_CUDASIM=1`` makes numba execute it thread by
thread on the CPU (slow, so the APRs here are small and one bank pass checks 3^d, 5^d and 7^d stencils at once).
"""

import functools
import os
import sys

import numba
import numpy as np
import pytest

if "numba.cuda" in sys.modules and not getattr(numba.config, "ENABLE_CUDASIM", 0):
    pytest.skip("numba.cuda was imported without the simulator in this process", allow_module_level=True)
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba.cuda is imported: the kernels run on the CPU
numba.config.reload_config()

from napari_dynfit.apr import convolve_tile as tile  # noqa: E402
from napari_dynfit.apr import to_apr  # noqa: E402
from napari_dynfit.apr.convert import pyapr_particles  # noqa: E402
from napari_dynfit.apr.convolve import convolve, correlate, level_stencils  # noqa: E402
from napari_dynfit.errors import InputError  # noqa: E402
from test_apr_grid import blobs  # noqa: E402

KS = (3, 5, 7)


def _convert(img, gt):
    return to_apr(img, rel_error=0.1, auto_parameters=False, gradient_smoothing=2.0,
                  sigma_threshold=50.0, gradient_threshold=gt)


@functools.cache
def _case(ndim):
    """Small APRs with >= 4 levels: 2D 64x64 (~700 particles), 3D 32^3 (~1300 particles)."""
    image = _convert(blobs((64, 64), 3, 1), 10.0) if ndim == 2 else _convert(blobs((32, 32, 32), 1, 1), 80.0)
    grid = image.grid
    assert len(np.unique(grid.levels)) >= 4
    return image, grid


@pytest.fixture(scope="module", params=[2, 3])
def case(request):
    return _case(request.param)


def _stencils(ndim):
    return [np.random.default_rng(k).uniform(0.05, 1.0, (k,) * ndim).astype(np.float32) for k in KS]


@pytest.fixture(scope="module")
def bank_result(case):
    """One bank pass on the simulated GPU: the 3^d, 5^d and 7^d stencils (asymmetric: checks the flip)."""
    image, grid = case
    stencils = _stencils(grid.ndim)
    per_level = [level_stencils(s, grid) for s in stencils]
    banks = [None if per_level[0][lv] is None else [p[lv] for p in per_level] for lv in range(grid.level_max + 1)]
    dgrid = tile.device_grid(grid)
    out = tile.to_host(tile.convolve_bank(dgrid, np.asarray(image.parts, np.float32), banks))
    return stencils, out


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_tree_means_on_device(case):
    image, grid = case
    values = np.asarray(image.parts, np.float32)
    frames = np.stack([values, 2 * values + 1])
    tree = tile.to_host(tile.tree_means(tile.device_grid(grid), frames))
    assert tree.shape == (2, grid.n_tree)
    ref = grid.tree_mean(values)
    assert _rel(tree[0], ref) < 1e-6
    assert _rel(tree[1], 2 * ref + 1) < 1e-6


def test_bank_matches_cpu_kernel(case, bank_result):
    image, grid = case
    stencils, out = bank_result
    assert out.shape == (1, len(KS), grid.n_particles) and out.dtype == np.float32
    for i, st in enumerate(stencils):
        assert _rel(out[0, i], convolve(grid, image.parts, st)) < 1e-5


def test_bank_matches_pyapr(case, bank_result):
    pyapr = pytest.importorskip("pyapr")
    image, grid = case
    stencils, out = bank_result
    for i, st in enumerate(stencils):
        ref = np.asarray(pyapr.filter.convolve(image.apr, pyapr_particles(image.parts), st))
        assert _rel(out[0, i], ref) < 1e-5, f"{st.shape}"


def test_options_and_frames_2d():
    """Zero padding, unnormalised zero-sum stencil, correlation; two frames in one launch."""
    image, grid = _case(2)
    values = np.asarray(image.parts, np.float32)
    st = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
    st -= st.mean()
    opts = dict(normalize=False, reflect=False)
    lv = level_stencils(st, grid, normalize=False, flip=False)
    banks = [None if s is None else [s] for s in lv]
    out = tile.to_host(tile.convolve_bank(tile.device_grid(grid), np.stack([values, values[::-1].copy()]), banks,
                                          reflect=False))
    assert _rel(out[0, 0], correlate(grid, values, st, **opts)) < 1e-5
    assert _rel(out[1, 0], correlate(grid, values[::-1].copy(), st, **opts)) < 1e-5


@pytest.mark.slow
def test_public_convolve_on_device():
    """``convolve(..., device="cuda")`` runs the tile kernel."""
    image, grid = _case(2)
    st = np.random.default_rng(1).uniform(size=(5, 5)).astype(np.float32)
    assert _rel(convolve(grid, image.parts, st, device="cuda"), convolve(grid, image.parts, st)) < 1e-5


def test_memory_within_three_times_particle_data(case):
    _, grid = case
    acc = tile.device_bytes(grid)
    assert acc["ratio_to_particle_data"] <= 3.0
    dgrid = tile.device_grid(grid)
    assert dgrid.nbytes == acc["structure"]  # the accounting is what the device holds
    fitted = tile._fit_tile((8, 8, 32), (3, 3, 3), 16)  # a 16-stencil 7^3 bank: smaller tiles fit 48 KiB
    assert fitted[0] < 8 and tile.shared_bytes(fitted, (3, 3, 3), 16) <= 46 * 1024


def test_device_errors(monkeypatch):
    with pytest.raises(InputError, match="device must be"):
        tile.use_device("gpu")
    monkeypatch.setattr(tile, "_available", lambda: False)
    with pytest.raises(InputError, match="needs an NVIDIA GPU"):
        tile.use_device("cuda")
    assert tile.use_device("auto") is False and tile.use_device("cpu") is False


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in ("gaussian", "log", "dog")]
                         + ["gradient"])
def test_filters_on_device_match_cpu(name):
    from napari_dynfit.apr import filters

    image, grid = _case(2)
    values = np.asarray(image.parts)
    fn = filters.FILTERS[name]
    kw = {} if name == "gradient" else {"sigma": 1.0}
    ours = fn(grid, values, device="cuda", **kw)
    ref = fn(grid, values, device="cpu", **kw)
    assert ours.shape == ref.shape == (grid.n_particles,) and ours.dtype == np.float32
    assert _rel(ours, ref) < 1e-5


@pytest.mark.parametrize("method", ["otsu", pytest.param(500.0, marks=pytest.mark.slow)])
def test_segmentation_on_device_matches_cpu(method):
    from napari_dynfit.apr.segment import segment

    image, grid = _case(2)
    values = np.asarray(image.parts)
    ours = segment(grid, values, method=method, smooth_sigma=1.0, min_size=2, device="cuda")
    ref = segment(grid, values, method=method, smooth_sigma=1.0, min_size=2, device="cpu")
    assert ours.threshold == pytest.approx(ref.threshold, rel=1e-6)
    assert ours.labels.max() >= 2  # the blobs are separate objects
    np.testing.assert_array_equal(ours.labels, ref.labels)
    assert _rel(ours.smoothed, ref.smoothed) < 1e-5
    np.testing.assert_allclose(ours.table["volume"], ref.table["volume"])


def test_cli_device_cuda(tmp_path, capsys, monkeypatch):
    """``dynfit filter/segment --device cuda``: the device path (simulated here), and one clear line without a GPU."""
    from napari_dynfit.apr import write_apr
    from napari_dynfit.apr.filters import gaussian
    from napari_dynfit.apr.grid import read_particle_values
    from napari_dynfit.cli import main

    image, grid = _case(2)
    src = write_apr(image, tmp_path / "img.apr")
    out = tmp_path / "g.apr"
    assert main(["-q", "filter", str(src), "--gaussian", "1", "--device", "cuda", "-o", str(out)]) == 0
    assert _rel(read_particle_values(out), gaussian(grid, image.parts, 1.0)) < 1e-5
    monkeypatch.setattr(tile, "_available", lambda: False)
    capsys.readouterr()
    assert main(["-q", "segment", str(src), "--device", "cuda", "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs an NVIDIA GPU" in err[0] and "--device cpu" in err[0]


def test_synthetic_grid_ratio_and_structure():
    """The benchmark's synthetic APRs: valid structure (tree covers the particles), ratio near the asked one."""
    from napari_dynfit.bench.apr_conv_gpu import parse_sweep, spheres_for_ratio, synthetic_grid

    grid = synthetic_grid(64, spheres_for_ratio(64, 30.0), seed=1)
    assert len(np.unique(grid.levels)) >= 4
    assert 10 < grid.computational_ratio < 90
    assert grid.particle_parent.shape == (grid.n_particles,)  # every particle has its parent in the tree
    assert parse_sweep("256:10, 512:30") == [(256, 10.0), (512, 30.0)]
    with pytest.raises(InputError, match="N:RATIO"):
        parse_sweep("256")


@pytest.mark.slow
def test_bench_cli_dry_run(tmp_path):
    """``dynfit bench apr-conv --device cuda`` end to end under the simulator (timings meaningless)."""
    import json

    from napari_dynfit.cli import main

    out = tmp_path / "b.json"
    assert main(["-q", "bench", "apr-conv", "--device", "cuda", "--size", "32", "--repeat", "1", "--check",
                 "--sweep", "32:60", "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["simulated"] and res["max_rel_error_vs_cpu"] < 1e-5
    assert res["peak_mem_ratio_to_particle_data"] <= 3 and len(res["sweep"]) == 1


def test_bench_json_headline_first_within_a_tiny_budget(tmp_path):
    """``--budget-s`` tiny: the build and the headline still run and are written; every later stage is skipped
    with its reason (the sweep size too); the figure is the image's pixels over the timed call."""
    import json

    from napari_dynfit.cli import main

    out = tmp_path / "b.json"
    assert main(["-q", "bench", "apr-conv", "--device", "cuda", "--size", "16", "--repeat", "1", "--budget-s",
                 "0.001", "--frames", "2", "--sweep", "16:20", "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["status"] == "complete" and res["simulated"]
    assert res["pixel_equiv_gpix_s"] == pytest.approx(16 ** 3 / res["time_s"] / 1e9)
    assert res["particles"] > 0 and res["repeat_used"] == 1
    assert set(res["stages_s"]) == {"build", "headline", "sweep"}
    assert {"kernel_only", "end_to_end", "cpu", "batched"} <= set(res["skipped"])
    assert all("time budget" in res["skipped"][k] for k in ("kernel_only", "end_to_end", "cpu", "batched"))
    assert "kernel_only_s" not in res and "cpu_kernel" not in res and "batched" not in res
    assert len(res["sweep"]) == 1 and "time budget" in res["sweep"][0]["skipped"]
    from napari_dynfit.bench.figures import FIGURES  # the README row reads the keys this JSON has

    row = next(f for f in FIGURES if f.name == "apr-conv-gpu").measure(res)
    assert row.startswith(f"{res['pixel_equiv_gpix_s']:.0f} Gpixel/s (numba CUDA simulator (CPU); ")


def test_bench_json_kept_when_a_stage_fails_and_when_killed(tmp_path, monkeypatch):
    """A failing later stage is recorded and the run goes on; SIGTERM (a session's time limit) in a later stage
    stops the command, and the JSON on disk still holds the headline (not rolled back with the command's outputs)."""
    import json
    import signal

    from napari_dynfit.bench import apr_conv_gpu as bench
    from napari_dynfit.cli import main

    def broken(self):
        raise RuntimeError("kernel-only failed")

    def killed(self):
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(bench._DeviceCase, "kernel", broken)
    monkeypatch.setattr(bench._DeviceCase, "end_to_end", killed)
    out = tmp_path / "b.json"
    assert main(["-q", "bench", "apr-conv", "--device", "cuda", "--size", "16", "--repeat", "1", "--no-cpu",
                 "-o", str(out)]) == 128 + signal.SIGTERM
    res = json.loads(out.read_text())
    assert res["status"] == "stopped in end_to_end (Terminated)"
    assert res["pixel_equiv_gpix_s"] == pytest.approx(16 ** 3 / res["time_s"] / 1e9)
    assert "RuntimeError: kernel-only failed" in res["errors"]["kernel_only"] and "kernel_only_s" not in res
    assert list(res["stages_s"]) == ["build", "headline", "kernel_only", "end_to_end"]
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temporary left
