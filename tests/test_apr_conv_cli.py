"""``dynfit filter``, ``dynfit segment``, ``dynfit export-grid`` and ``dynfit bench apr-conv``."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.apr import to_apr, write_apr
from napari_dynfit.apr.filters import gaussian, log
from napari_dynfit.apr.grid import AprGrid, load_grid, read_particle_values
from napari_dynfit.cli import main
from test_apr_grid import blobs


@pytest.fixture(scope="module")
def apr_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "img.apr"
    image = to_apr(blobs((20, 48, 56), 5, 9), rel_error=0.1, auto_parameters=False, gradient_smoothing=2.0,
                   sigma_threshold=50.0, gradient_threshold=10.0)
    return write_apr(image, path)


def test_filter_cli(apr_file, tmp_path, capsys):
    grid, values = AprGrid.from_file(apr_file), read_particle_values(apr_file)
    out = tmp_path / "g.apr"
    assert main(["-q", "filter", str(apr_file), "--gaussian", "1.2", "--size", "5", "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["filter"] == "gaussian" and info["particles"] == grid.n_particles
    np.testing.assert_allclose(read_particle_values(out), gaussian(grid, values, 1.2, size=5), rtol=1e-6)
    assert main(["-q", "filter", str(apr_file), "--log", "1.5", "-o", str(out)]) == 2  # an existing output
    assert "--overwrite" in capsys.readouterr().err
    np.testing.assert_allclose(read_particle_values(out), gaussian(grid, values, 1.2, size=5), rtol=1e-6)
    assert main(["-q", "filter", str(apr_file), "--log", "1.5", "-o", str(out), "--overwrite"]) == 0
    np.testing.assert_allclose(read_particle_values(out), log(grid, values, 1.5), rtol=1e-5, atol=1e-3)
    stencil = tmp_path / "s.npy"
    np.save(stencil, np.ones((3, 3, 3)))
    assert main(["-q", "filter", str(apr_file), "--stencil", str(stencil), "--normalize", "-o", str(out),
                 "--overwrite"]) == 0
    assert main(["-q", "filter", str(apr_file), "--gradient", "-o", str(out), "--overwrite"]) == 0
    assert read_particle_values(out).min() >= 0


def test_filter_cli_errors(apr_file, tmp_path, capsys):
    out = str(tmp_path / "x.apr")
    assert main(["-q", "filter", str(apr_file), "--gaussian", "1", "--log", "1", "-o", out]) == 2
    assert "exactly one filter" in capsys.readouterr().err
    assert main(["-q", "filter", str(tmp_path / "missing.apr"), "--gaussian", "1", "-o", out]) == 2
    assert main(["-q", "filter", str(apr_file), "--gaussian", "1", "--size", "4", "-o", out]) == 2
    assert "odd" in capsys.readouterr().err
    assert not (tmp_path / "x.apr").exists()


def test_segment_and_export_cli(apr_file, tmp_path, capsys):
    table = tmp_path / "objects.csv"
    labels = tmp_path / "labels.apr"
    assert main(["-q", "segment", str(apr_file), "-o", str(table), "--labels", str(labels)]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    objects = pd.read_csv(table)
    assert info["objects"] == len(objects) == 5
    assert read_particle_values(labels).max() == 5
    npz = tmp_path / "grid.npz"
    assert main(["-q", "export-grid", str(apr_file), "-o", str(npz)]) == 0
    grid, values = load_grid(npz)
    np.testing.assert_array_equal(values, read_particle_values(apr_file))


def test_bench_cli(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pyapr")  # the benchmark's reference
    npz = tmp_path / "bench.npz"
    assert main(["-q", "bench", "apr-conv", "--size", "48", "--repeat", "1", "--save-grid", str(npz)]) == 0
    res = json.loads(capsys.readouterr().out)
    for key in ("ours_s", "pyapr_s", "scipy_s", "torch_conv3d_s", "speedup_vs_pyapr", "speedup_vs_scipy",
                "computational_ratio", "device"):
        assert key in res
    assert res["max_rel_error_vs_pyapr"] < 1e-5
    # the exported grid runs without pyapr (GPU machines): same particles, our kernel only
    monkeypatch.setitem(sys.modules, "pyapr", None)  # any `import pyapr` now fails
    assert main(["-q", "bench", "apr-conv", "--grid", str(npz), "--repeat", "1", "--no-scipy"]) == 0
    res2 = json.loads(capsys.readouterr().out)
    assert res2["particles"] == res["particles"] and "pyapr_s" not in res2


def test_bench_auto_on_a_gpu_machine_runs_the_device_bench(monkeypatch):
    """``--device auto`` where a GPU is seen is the tile-kernel bench (``--device cuda``), not a CPU run."""
    import napari_dynfit.device as device
    from napari_dynfit.bench import apr_conv, apr_conv_gpu

    seen = []
    monkeypatch.setattr(device, "resolve_device", lambda d="auto": "cuda" if d in ("auto", "cuda") else d)
    monkeypatch.setattr(apr_conv_gpu, "run_bench", lambda args: seen.append(args.device) or {"bench": "device"})

    class Args:
        device = "auto"

    assert apr_conv.run(Args()) == {"bench": "device"} and seen == ["cuda"]
