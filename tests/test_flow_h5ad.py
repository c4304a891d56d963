"""AnnData ``.h5ad`` in and out of probability flow inference (h5py, no anndata): snapshots by a time key, and
``.h5ad -> flow -> .h5ad`` keeping every original field and adding ours."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch", reason="the learning stack: pip install 'napari-dynfit[learn]'")

from napari_dynfit.cli import main
from napari_dynfit.errors import InputError
from napari_dynfit.models.flow import fit_flow, read_snapshots
from napari_dynfit.models.flow.h5ad import read_h5ad_table, write_flow_h5ad
from napari_dynfit.sim.snapshots import simulate_ou_snapshots

pytestmark = pytest.mark.usefixtures("one_torch_thread")

B = np.array([[1.0, 1.5], [-1.0, 0.5]])
TIMES = [0.0, 0.25, 0.5]
STR = h5py.string_dtype("utf-8")


def _enc(node, kind, version="0.2.0"):
    node.attrs["encoding-type"] = kind
    node.attrs["encoding-version"] = version
    return node


def write_anndata_like(path, table: pd.DataFrame, rng) -> dict:
    """An AnnData file laid out as anndata >= 0.8 writes it: sparse X, categorical time labels ('day 0.25'), a
    string and a numeric obs column, obsm X_pca (the OU coordinates), a layer, nested uns."""
    n = len(table)
    genes = [f"g{i}" for i in range(5)]
    counts = rng.poisson(0.7, size=(n, 5)).astype(np.float32)
    import scipy.sparse as sp

    csr = sp.csr_matrix(counts)
    with h5py.File(path, "w") as f:
        _enc(f, "anndata", "0.1.0")
        x = _enc(f.create_group("X"), "csr_matrix", "0.1.0")
        x.attrs["shape"] = np.array([n, 5])
        x["data"], x["indices"], x["indptr"] = csr.data, csr.indices, csr.indptr
        obs = _enc(f.create_group("obs"), "dataframe")
        obs.attrs["_index"] = "_index"
        obs.attrs["column-order"] = np.array(["day", "batch", "n_counts"], dtype=object)
        _enc(obs.create_dataset("_index", data=np.array([f"cell{i}" for i in range(n)], dtype=object), dtype=STR),
             "string-array")
        day = _enc(obs.create_group("day"), "categorical")
        day.attrs["ordered"] = False
        _enc(day.create_dataset("categories", data=np.array([f"day {t:g}" for t in TIMES], dtype=object),
                                dtype=STR), "string-array")
        _enc(day.create_dataset("codes", data=np.searchsorted(TIMES, table["time"].to_numpy()).astype(np.int8)),
             "array")
        _enc(obs.create_dataset("batch", data=np.array(["a", "b"] * (n // 2), dtype=object), dtype=STR),
             "string-array")
        _enc(obs.create_dataset("n_counts", data=counts.sum(1)), "array")
        var = _enc(f.create_group("var"), "dataframe")
        var.attrs["_index"] = "_index"
        var.attrs["column-order"] = np.zeros(0)
        _enc(var.create_dataset("_index", data=np.array(genes, dtype=object), dtype=STR), "string-array")
        obsm = _enc(f.create_group("obsm"), "dict", "0.1.0")
        _enc(obsm.create_dataset("X_pca", data=table[["x0", "x1"]].to_numpy()), "array")
        layers = _enc(f.create_group("layers"), "dict", "0.1.0")
        _enc(layers.create_dataset("counts", data=counts), "array")
        uns = _enc(f.create_group("uns"), "dict", "0.1.0")
        _enc(uns.create_dataset("note", data="made by the test", dtype=STR), "string")
        params = _enc(uns.create_group("params"), "dict", "0.1.0")
        _enc(params.create_dataset("k", data=3.5), "numeric-scalar")
        for k in ("varm", "obsp", "varp"):
            _enc(f.create_group(k), "dict", "0.1.0")
    return {"counts": counts}


def _everything(path) -> dict:
    """Every dataset (values) and attribute of an HDF5 file, by path."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, node):
            out[name + "@attrs"] = {k: np.asarray(v).tolist() for k, v in node.attrs.items()}
            if isinstance(node, h5py.Dataset):
                v = node[()]
                out[name] = v.tolist() if hasattr(v, "tolist") else v
        f.visititems(visit)
        out["/@attrs"] = {k: np.asarray(v).tolist() for k, v in f.attrs.items()}
    return out


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    table = simulate_ou_snapshots(B, 0.5, TIMES, 200, mean0=np.array([2.0, 2.0]), seed=5)
    path = tmp_path_factory.mktemp("h5ad") / "cells.h5ad"
    write_anndata_like(path, table, np.random.default_rng(0))
    return path, table


def test_read_snapshots_by_time_key_and_basis(cells):
    path, table = cells
    df = read_h5ad_table(path, time_key="day", basis="X_pca")
    np.testing.assert_allclose(df["time"], table["time"])  # 'day 0.25' -> 0.25
    np.testing.assert_allclose(df[["X_pca_0", "X_pca_1"]], table[["x0", "x1"]])
    snaps = read_snapshots(path, time_column="day", basis="X_pca")
    assert snaps.times.tolist() == TIMES and [len(s) for s in snaps.samples] == [200, 200, 200]
    gene = read_h5ad_table(path, time_key="day")  # X (sparse) with the genes' names
    assert list(gene.columns) == ["time", "g0", "g1", "g2", "g3", "g4"]
    with h5py.File(path) as f:
        counts = f["layers/counts"][()]
    np.testing.assert_allclose(gene[["g0", "g1", "g2", "g3", "g4"]], counts)


def test_h5ad_flow_h5ad_keeps_every_field_and_adds_ours(cells, tmp_path):
    path, table = cells
    snaps = read_snapshots(path, time_column="day", basis="X_pca")
    model = fit_flow(snaps, 0.5, steps=5, score_kwargs={"steps": 20}, device="cpu", seed=0)
    out = write_flow_h5ad(model, tmp_path / "out.h5ad", source=path, time_key="day", basis="X_pca")
    before, after = _everything(path), _everything(out)
    changed = [k for k in before if k not in after or after[k] != before[k]]
    assert changed == []  # every original dataset and attribute, unchanged
    x = table[["x0", "x1"]].to_numpy()
    with h5py.File(out) as f:
        drift = f["obsm/pfi_drift"][()]
        vel = f["obsm/pfi_velocity"][()]
        doc = json.loads(f["uns/pfi/model"][()].decode())
        assert f["uns/pfi/basis"][()].decode() == "X_pca" and f["uns/pfi/time_key"][()].decode() == "day"
        assert "pfi_growth" not in f["obs"]
    # the drift written is the linear model's A x + b at each cell, in file order; the moment-started fit is
    # close to the truth -B
    A, b = np.asarray(doc["drift"]["A"]), np.asarray(doc["drift"]["b"])
    np.testing.assert_allclose(drift, x @ A.T + b, rtol=1e-4, atol=1e-4)
    assert np.linalg.norm(A + B) / np.linalg.norm(B) < 0.35
    assert vel.shape == x.shape and np.isfinite(vel).all()
    # run again on our own output: our keys are replaced, nothing piles up
    out2 = write_flow_h5ad(model, tmp_path / "out2.h5ad", source=out, time_key="day", basis="X_pca")
    again = _everything(out2)
    assert set(again) == set(after)


def test_growth_written_to_obs_and_cli(cells, tmp_path, capsys):
    path, _ = cells
    out = tmp_path / "g.h5ad"
    rc = main(["-q", "infer-flow", str(path), "--time-key", "day", "--basis", "X_pca", "--diffusion", "0.5",
               "--growth", "--steps", "5", "--score-steps", "20", "--n-paths", "4", "--threads", "1", "--device", "cpu",
               "-o", str(tmp_path / "run"), "--h5ad-out", str(out)])
    assert rc == 0
    with h5py.File(out) as f:
        order = [c.decode() if isinstance(c, bytes) else c for c in f["obs"].attrs["column-order"]]
        assert order == ["day", "batch", "n_counts", "pfi_growth"]
        growth = f["obs/pfi_growth"][()]
        assert growth.shape == (600,) and np.isfinite(growth).all()
    # the output may not be the input
    capsys.readouterr()
    assert main(["-q", "infer-flow", str(path), "--time-key", "day", "--diffusion", "0.5", "-o",
                 str(tmp_path / "r2"), "--h5ad-out", str(path)]) == 2
    assert "error" in capsys.readouterr().err


def test_table_input_writes_a_new_anndata_file(tmp_path):
    table = simulate_ou_snapshots(B, 0.5, TIMES, 100, mean0=np.array([2.0, 2.0]), seed=1)
    src = tmp_path / "snaps.csv"
    table.to_csv(src, index=False)
    out = tmp_path / "new.h5ad"
    assert main(["-q", "infer-flow", str(src), "--diffusion", "0.5", "--steps", "3", "--score-steps", "10",
                 "--n-paths", "2", "--threads", "1", "--device", "cpu", "-o", str(tmp_path / "run"),
                 "--h5ad-out", str(out)]) == 0
    back = read_h5ad_table(out)
    np.testing.assert_allclose(back[["time", "x0", "x1"]], table[["time", "x0", "x1"]])
    with h5py.File(out) as f:
        assert f.attrs["encoding-type"] == "anndata" and f["obsm/pfi_drift"].shape == (300, 2)


@pytest.mark.parametrize("case, match", [
    ("not_hdf5", "cannot open"), ("no_time", "no obs column 'time'"), ("no_basis", "no obsm\\['X_umap'\\]"),
    ("bad_labels", "do not name one time"), ("missing_time", "without a value"),
])
def test_bad_h5ad_one_line_errors(cells, tmp_path, case, match):
    path, _ = cells
    p = tmp_path / "bad.h5ad"
    kw = {"time_key": "day"}
    if case == "not_hdf5":
        p.write_text("not hdf5")
    else:
        p.write_bytes(path.read_bytes())
        with h5py.File(p, "r+") as f:
            cats = f["obs/day/categories"]
            codes = f["obs/day/codes"]
            if case == "bad_labels":
                cats[0] = "early"
            if case == "missing_time":
                codes[0] = -1
        if case == "no_time":
            kw = {}
        if case == "no_basis":
            kw["basis"] = "X_umap"
    with pytest.raises(InputError, match=match) as info:
        read_h5ad_table(p, **kw)
    assert "\n" not in str(info.value)


@pytest.mark.gui
def test_flow_widget_reads_and_writes_h5ad(make_napari_viewer, cells, tmp_path, qtbot):
    from napari_dynfit._napari._flow_widget import FlowWidget

    path, table = cells
    viewer = make_napari_viewer()
    w = FlowWidget(viewer)
    w.h5ad.setText(str(path))
    w.time_key.setText("day")
    w.basis.setText("X_pca")
    w.score_steps.setValue(20)
    w.steps.setValue(5)
    snaps = w.snapshots()
    assert snaps.times.tolist() == TIMES and snaps.columns == ("X_pca_0", "X_pca_1")
    assert not w.save_btn.isEnabled()
    w.start()
    qtbot.waitUntil(lambda: w.run_btn.isEnabled(), timeout=120000)
    assert w.model is not None and w.save_btn.isEnabled()
    out = w.save_h5ad(tmp_path / "w.h5ad")
    before, after = _everything(path), _everything(out)
    assert all(after.get(k) == v for k, v in before.items())
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["obsm/pfi_drift"][()], w.model.drift(table[["x0", "x1"]].to_numpy()), rtol=1e-5)
    # the output may not be the input: one line in the status, nothing written
    assert w.save_h5ad(path) is None and w.status.text().startswith("error:")
