"""The package skeleton: CLI, manifest, safe writes, progress/cancel, tables, field bundles."""

import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from napari_dynfit import Cancelled, InputError
from napari_dynfit._io import atomic_path
from napari_dynfit._progress import progress_context, progress_iter
from napari_dynfit.cli import main
from napari_dynfit.fields import FieldBundle
from napari_dynfit.tables import read_table, validate_table, write_table


def test_npe2_manifest_validates_with_imports():
    try:  # the widgets import Qt: napari users bring a binding ([all] adds PyQt6)
        import qtpy  # noqa: F401
    except Exception:  # noqa: BLE001 - qtpy raises its own error when no binding is installed
        pytest.skip("no Qt binding installed")
    res = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-dynfit", "--imports"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "simulate"):
        assert cmd in out


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    dest = tmp_path / "result.txt"
    dest.write_text("precious")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert dest.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]
    with atomic_path(dest) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new"


def test_progress_and_cancel():
    seen = []
    with progress_context(lambda d, n, s: seen.append((d, n))):
        assert list(progress_iter(range(3), desc="x")) == [0, 1, 2]
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    ev = threading.Event()
    out = []
    with progress_context(None, ev), pytest.raises(Cancelled):
        for i in progress_iter(range(10)):
            out.append(i)
            if i == 2:
                ev.set()
    assert out == [0, 1, 2]


def test_tables_validate_and_roundtrip(tmp_path):
    df = pd.DataFrame({"frame": [0, 1], "y": [1.5, 2.5], "x": [3.0, 4.0]})
    for name in ("t.csv", "t.parquet"):
        write_table(df, tmp_path / name)
        back = read_table(tmp_path / name)
        np.testing.assert_allclose(back[["y", "x"]].to_numpy(), df[["y", "x"]].to_numpy())
    with pytest.raises(InputError, match="NaN"):
        validate_table(df.assign(x=[np.nan, 1.0]))
    with pytest.raises(InputError, match="empty"):
        validate_table(df.iloc[:0])
    with pytest.raises(InputError, match="column"):
        validate_table(df.drop(columns="frame"))


def test_field_bundle_roundtrip(tmp_path, rng):
    t = np.arange(4) * 0.1
    y = np.arange(5) * 0.5
    x = np.arange(6) * 0.5
    fb = FieldBundle({"rho": rng.random((4, 5, 6)), "p": rng.random((4, 5, 6, 2))},
                     {"t": t, "y": y, "x": x}, periodic=(True, True), attrs={"src": "test"})
    assert fb.kinds == {"rho": "scalar", "p": "vector"}
    assert fb.spacing == (0.5, 0.5) and fb.dt == pytest.approx(0.1)
    for back in (FieldBundle.load(fb.to_zarr(tmp_path / "f.zarr")), FieldBundle.load(fb.to_npz(tmp_path / "f.npz"))):
        np.testing.assert_array_equal(back["p"], fb["p"])
        assert back.periodic == (True, True) and back.kinds == fb.kinds and back.attrs == {"src": "test"}
    with pytest.raises(InputError, match="shape"):
        FieldBundle({"rho": np.zeros((4, 5))}, {"t": t, "y": y, "x": x})
    with pytest.raises(InputError, match="NaN"):
        FieldBundle({"rho": np.full((4, 5, 6), np.nan)}, {"t": t, "y": y, "x": x})


