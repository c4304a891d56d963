"""Optional extras: a missing one is named in one line (CLI, exit 2) and skips only the demo stages that need it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.cli import main
from napari_dynfit.extras import extra_message, missing_extra
from napari_dynfit.report import DemoContext, Report


def _without(monkeypatch, module):
    """Make ``import module`` raise ModuleNotFoundError, as on a machine without it."""
    for name in [n for n in sys.modules if n == module or n.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)


def test_missing_extra_names_the_extra():
    assert missing_extra(ModuleNotFoundError("x", name="torch")) == "learn"
    assert missing_extra(ModuleNotFoundError("x", name="geomloss.utils")) == "learn"
    assert missing_extra(ModuleNotFoundError("x", name="pyapr")) == "pyapr"
    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None
    assert missing_extra(ValueError("torch")) is None
    assert "pip install 'napari-dynfit[learn]'" in extra_message(ModuleNotFoundError("x", name="torch"))


def test_core_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['geomloss'] = None; sys.modules['pyapr'] = None; "
            "import napari_dynfit, napari_dynfit.cli, napari_dynfit.apr, napari_dynfit.track, napari_dynfit.fields, "
            "napari_dynfit.commands.demo; print('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_demo_stage_without_extra_is_skipped_and_reported(monkeypatch, tmp_path):
    _without(monkeypatch, "torch")
    ctx = DemoContext(out_dir=tmp_path, report=Report("r"))

    def needs_torch(c):
        import torch  # noqa: F401

    def plain(c):
        c.artefacts["x"] = 1

    ctx.run_stage("Learned", needs_torch)
    ctx.run_stage("Plain", plain)
    assert list(ctx.skipped) == ["Learned"] and "[learn]" in ctx.skipped["Learned"]
    assert ctx.artefacts == {"x": 1}
    assert "Skipped: this needs torch" in ctx.report.to_html()

    def broken(c):
        import napari_dynfit_no_such_module  # noqa: F401

    with pytest.raises(ModuleNotFoundError):  # a module that no extra brings is a real error
        ctx.run_stage("Broken", broken)


def test_cli_without_torch_names_the_extra(monkeypatch, tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "snaps.csv"
    pd.DataFrame({"time": np.repeat([0, 1], 20), "y": rng.normal(size=40), "x": rng.normal(size=40)}).to_csv(path)
    _without(monkeypatch, "torch")
    status = main(["infer-flow", str(path), "--diffusion", "0.1", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == ["dynfit infer-flow: error: this needs torch, which is not installed: "
                   "pip install 'napari-dynfit[learn]'"]


def test_pinn_commands_check_their_input_before_the_learn_extra(monkeypatch, tmp_path, capsys):
    from napari_dynfit.fields import FieldBundle

    _without(monkeypatch, "torch")
    for name in [n for n in sys.modules if n.startswith("napari_dynfit.models.pinn")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, so that it meets the missing torch

    def run(argv):
        status = main(argv)
        return status, capsys.readouterr().err.strip()

    tracks = tmp_path / "tracks.csv"
    pd.DataFrame({"frame": [0, 1], "track_id": [1, 1], "y": [0.0, 1.0], "x": [0.0, 1.0]}).to_csv(tracks, index=False)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"frame": [0, 1], "y": [0.0, 1.0]}).to_csv(bad, index=False)
    out = str(tmp_path / "out.zarr")
    status, err = run(["latent-field", str(bad), "-o", out, "--dt", "1"])
    assert status == 2 and "torch" not in err and "track_id" in err, err
    status, err = run(["latent-field", str(tracks), "-o", out])                       # no frame interval
    assert status == 2 and "--dt" in err and "torch" not in err, err
    status, err = run(["latent-field", str(tracks), "-o", out, "--dt", "1"])          # valid input: now the extra
    assert status == 2 and "pip install 'napari-dynfit[learn]'" in err, err

    fields = tmp_path / "f.npz"
    FieldBundle({"u": np.zeros((3, 8))}, {"t": np.arange(3.0), "x": np.arange(8.0)}).to_npz(fields)
    model = tmp_path / "model.json"
    for text, expect in (("{not json", "cannot read model JSON"), ('{"equations": {}}', "equations"),
                         ('{"equations": {"v_t": {"v_xx": 0.1}}}', "['v']")):
        model.write_text(text)
        status, err = run(["denoise-field", str(fields), "--model", str(model), "-o", out])
        assert status == 2 and expect in err and "torch" not in err, err
    model.write_text('{"equations": {"u_t": {"u_xx": 0.1}}}')
    status, err = run(["denoise-field", str(fields), "--model", str(model), "-o", out])
    assert status == 2 and "pip install 'napari-dynfit[learn]'" in err, err
