"""The Well reader/writer: schema, axis/component order, laziness, errors; cross-checked with the_well when installed."""

import json

import h5py
import numpy as np
import pytest

from napari_dynfit import InputError
from napari_dynfit.cli import main
from napari_dynfit.fields import FieldBundle
from napari_dynfit.io import (
    is_well_file,
    load_fields,
    read_well,
    well_info,
    write_well_file,
)
from napari_dynfit.io.well import swap_axis_order
from napari_dynfit.sim import active_matter_example, write_active_matter_example

BURGERS = None  #: path of the Burgers .mat file (set by the fixture below: published or generated)


@pytest.fixture(autouse=True, scope="module")
def _burgers_path(pdefind_mat):
    global BURGERS
    BURGERS = pdefind_mat("burgers")


@pytest.fixture(scope="module")
def am_file(tmp_path_factory):
    """A full-size active_matter-layout file: 2 trajectories, 256 x 256, 4 frames."""
    return write_active_matter_example(tmp_path_factory.mktemp("well") / "am.hdf5", n_trajectories=2,
                                       size=256, n_steps=4, seed=3)


def _raw_file(path):
    """A Well file written with h5py alone (independent of our writer), x-first as the spec says."""
    nx, ny, nt, ntraj = 6, 4, 5, 2
    x, y = np.arange(nx) * 0.5, np.arange(ny) * 2.0
    t = np.arange(nt) * 0.1
    X, Y = np.meshgrid(x, y, indexing="ij")  # file order (x, y)
    with h5py.File(path, "w") as f:
        f.attrs.update(dataset_name="raw", grid_type="cartesian", n_spatial_dims=2, n_trajectories=ntraj,
                       simulation_parameters=["nu"], nu=0.3)
        d = f.create_group("dimensions")
        d.attrs["spatial_dims"] = ["x", "y"]
        d.create_dataset("time", data=np.stack([t, t + 1.0])).attrs["sample_varying"] = True
        for name, c in (("x", x), ("y", y)):
            d.create_dataset(name, data=c).attrs["sample_varying"] = False
        bc = f.create_group("boundary_conditions")
        for name, kind, n in (("x_periodic", "PERIODIC", nx), ("y_wall", "WALL", ny)):
            g = bc.create_group(name)
            g.attrs.update(associated_dims=[name[0]], bc_type=kind, associated_fields=[],
                           sample_varying=False, time_varying=False)
            m = np.zeros(n, bool)
            m[[0, -1]] = True
            g.create_dataset("mask", data=m)
        s = f.create_group("scalars")
        s.attrs["field_names"] = ["nu", "energy"]
        s.create_dataset("nu", data=0.3).attrs.update(sample_varying=False, time_varying=False)
        s.create_dataset("energy", data=np.arange(ntraj * nt, dtype=float).reshape(ntraj, nt)).attrs.update(
            sample_varying=True, time_varying=True)
        g0 = f.create_group("t0_fields")
        g0.attrs["field_names"] = ["ramp", "profile", "bottom"]
        ramp = np.broadcast_to(X + 10 * np.arange(nt)[:, None, None], (ntraj, nt, nx, ny)) + 100 * np.arange(ntraj)[:, None, None, None]
        g0.create_dataset("ramp", data=ramp).attrs.update(dim_varying=[True, True], sample_varying=True, time_varying=True)
        # varies along y only, constant in time, shared by trajectories: stored as (y,)
        g0.create_dataset("profile", data=y ** 2).attrs.update(dim_varying=[False, True], sample_varying=False,
                                                                time_varying=False)
        g0.create_dataset("bottom", data=np.ones((ntraj, nx, ny))).attrs.update(
            dim_varying=[True, True], sample_varying=True, time_varying=False)
        g1 = f.create_group("t1_fields")
        g1.attrs["field_names"] = ["wind"]
        wind = np.zeros((ntraj, nt, nx, ny, 2))
        wind[..., 0] = 1.0  # pure x component
        wind[..., 1] = Y  # y component = y
        g1.create_dataset("wind", data=wind).attrs.update(dim_varying=[True, True], sample_varying=True, time_varying=True)
        g2 = f.create_group("t2_fields")
        g2.attrs["field_names"] = ["S"]
        S = np.zeros((ntraj, nt, nx, ny, 2, 2))
        S[..., 0, 1] = 5.0  # S_xy only
        g2.create_dataset("S", data=S).attrs.update(dim_varying=[True, True], sample_varying=True,
                                                    time_varying=True, symmetric=False, antisymmetric=False)
    return path


def test_reader_follows_schema_and_axis_order(tmp_path):
    p = _raw_file(tmp_path / "raw.hdf5")
    assert is_well_file(p)
    b = read_well(p, trajectory=1, t_start=1, t_stop=4)
    assert b.space_axes == ("y", "x") and b.shape == (3, 4, 6)
    np.testing.assert_allclose(b.coords["t"], 1.0 + np.array([0.1, 0.2, 0.3]))  # sample-varying time
    np.testing.assert_allclose(b.coords["x"], np.arange(6) * 0.5)
    np.testing.assert_allclose(b.coords["y"], np.arange(4) * 2.0)
    assert b.spacing == (2.0, 0.5) and b.dt == pytest.approx(0.1)
    assert b.periodic == (False, True)  # (y wall, x periodic) in our order
    # scalar: x varies along our last axis; trajectory and time window are honoured
    ramp = b["ramp"]
    np.testing.assert_allclose(ramp[0, 2, :], 100 + 10 + np.arange(6) * 0.5)
    np.testing.assert_allclose(ramp[:, 0, 0], 100 + 10 * np.arange(1, 4))
    # broadcast fields: dim_varying / time_varying / sample_varying false
    np.testing.assert_allclose(b["profile"][2, :, 3], (np.arange(4) * 2.0) ** 2)
    assert b["profile"].shape == (3, 4, 6) and b["bottom"].shape == (3, 4, 6)
    # vector: our component 0 is y, 1 is x
    np.testing.assert_allclose(b["wind"][..., 1], 1.0)
    np.testing.assert_allclose(b["wind"][0, :, 0, 0], np.arange(4) * 2.0)
    # tensor: file S_xy lands at our [x, y] = [1, 0]
    assert b["S"][..., 1, 0].min() == 5.0 and np.abs(b["S"][..., 0, 1]).max() == 0.0
    w = b.attrs["well"]
    assert w["scalars"]["nu"] == pytest.approx(0.3) and w["scalars"]["energy"] == [6.0, 7.0, 8.0]
    assert w["simulation_parameters"] == {"nu": 0.3}
    assert w["boundary_conditions"] == {"x": ["PERIODIC", "PERIODIC"], "y": ["WALL", "WALL"]}
    sub = read_well(p, fields=["wind"], t_step=2)
    assert list(sub.fields) == ["wind"] and sub.shape == (3, 4, 6)


def test_reader_errors(tmp_path):
    p = _raw_file(tmp_path / "raw.hdf5")
    with pytest.raises(InputError, match="out of range"):
        read_well(p, trajectory=2)
    with pytest.raises(InputError, match="available"):
        read_well(p, fields=["nope"])
    with pytest.raises(InputError, match="no frame"):
        read_well(p, t_start=50)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    assert not is_well_file(other)
    with pytest.raises(InputError, match="not in The Well format"):
        read_well(other)
    broken = tmp_path / "broken.hdf5"
    broken.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="cannot open"):
        well_info(broken)
    with h5py.File(p, "a") as f:
        f["t0_fields"].attrs["field_names"] = ["ramp", "ghost"]
    with pytest.raises(InputError, match="ghost"):
        read_well(p)


def test_swap_axis_order_is_an_involution(rng):
    a = rng.normal(size=(2, 3, 4, 5, 3, 3))
    assert np.array_equal(swap_axis_order(swap_axis_order(a, 3, 2, 1), 3, 2, 1), a)
    s = swap_axis_order(a, 3, 2, 1)
    assert s.shape == (2, 5, 4, 3, 3, 3) and s[1, 4, 2, 0, 0, 2] == a[1, 0, 2, 4, 2, 0]


def test_active_matter_layout_file(am_file):
    info = well_info(am_file)
    assert info.dataset_name == "active_matter" and info.n_spatial_dims == 2 and info.n_trajectories == 2
    assert info.grid_shape == (256, 256) and info.periodic == (True, True)
    assert {k: v["kind"] for k, v in info.fields.items()} == {
        "concentration": "scalar", "velocity": "vector", "D": "tensor", "E": "tensor"}
    assert set(info.scalars) == {"L", "zeta", "alpha"}
    with h5py.File(am_file, "r") as f:  # 11 channels, x-first storage
        shapes = {k: f[g][k].shape for g in ("t0_fields", "t1_fields", "t2_fields") for k in f[g]}
        assert shapes == {"concentration": (2, 4, 256, 256), "velocity": (2, 4, 256, 256, 2),
                          "D": (2, 4, 256, 256, 2, 2), "E": (2, 4, 256, 256, 2, 2)}
        assert sum(int(np.prod(s[4:])) for s in shapes.values()) == 11
        assert f["t2_fields"]["D"].attrs["symmetric"] and f["t2_fields"]["E"].attrs["symmetric"]
        truth = json.loads(f.attrs["dynfit_truth"])["concentration"]
    b = read_well(am_file, trajectory=1)
    ref = active_matter_example(size=256, n_steps=4, seed=4)
    for k in ref.fields:
        np.testing.assert_allclose(b[k], ref[k], atol=1e-5 * np.abs(ref[k]).max())
    assert truth["Dc"] == 0.1 and truth["r"] == 1.0
    # physics in our axis order: div u = 0, E = sym grad u, D's principal axis is the flow direction
    u = b["velocity"].astype(float)
    h = b.spacing[0]
    d_y = lambda f: (np.roll(f, -1, 1) - np.roll(f, 1, 1)) / (2 * h)  # noqa: E731
    d_x = lambda f: (np.roll(f, -1, 2) - np.roll(f, 1, 2)) / (2 * h)  # noqa: E731
    div = d_y(u[..., 0]) + d_x(u[..., 1])
    assert np.abs(div).max() < 1e-2 * np.abs(d_x(u[..., 1])).max()
    np.testing.assert_allclose(b["E"][..., 1, 1], d_x(u[..., 1]), atol=2e-3 * np.abs(b["E"]).max())
    np.testing.assert_allclose(b["E"][..., 0, 1], 0.5 * (d_x(u[..., 0]) + d_y(u[..., 1])),
                               atol=2e-3 * np.abs(b["E"]).max())
    w, v = np.linalg.eigh(b["D"].astype(float))
    speed = np.linalg.norm(u, axis=-1)
    fast = speed > 0.5 * speed.max()
    cos = np.abs(np.sum(v[..., -1] * u, -1))[fast] / speed[fast]
    assert cos.min() > 0.999


def test_write_well_file_roundtrip_3d_and_errors(tmp_path, rng):
    coords = {"t": np.arange(3) * 0.5, "z": np.arange(4.0), "y": np.arange(5.0), "x": np.arange(6.0)}
    b = FieldBundle({"rho": rng.normal(size=(3, 4, 5, 6)), "p": rng.normal(size=(3, 4, 5, 6, 3))}, coords,
                    periodic=(False, True, True))
    p = write_well_file(tmp_path / "b.hdf5", b, dataset_name="blob3d")
    with h5py.File(p, "r") as f:
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y", "z"]
        assert f["t1_fields"]["p"].shape == (1, 3, 6, 5, 4, 3)
        np.testing.assert_allclose(f["t1_fields"]["p"][0, 1, 2, 3, 0, 0], b["p"][1, 0, 3, 2, 2], rtol=1e-6)
    r = read_well(p)
    assert r.periodic == (False, True, True)
    np.testing.assert_allclose(r["p"], b["p"], rtol=1e-6, atol=1e-6)
    with pytest.raises(InputError, match="share"):
        write_well_file(tmp_path / "c.hdf5", [b, b.select(["rho"])], dataset_name="x")
    assert not (tmp_path / "c.hdf5").exists()


def test_load_fields_dispatch(tmp_path, am_file):
    b = load_fields(am_file, fields=["concentration"], trajectory=1, t_start=1)
    assert list(b.fields) == ["concentration"] and b.shape == (3, 256, 256)
    u = load_fields(BURGERS)
    assert u.shape == (101, 256) and u.periodic == (True,)
    assert u.coords["x"][0] == pytest.approx(-8.0) and u.dt == pytest.approx(0.1)
    npz = u.to_npz(tmp_path / "u.npz")
    v = load_fields(npz, t_start=10, t_stop=20)
    np.testing.assert_allclose(v["u"], u["u"][10:20])
    with pytest.raises(InputError, match="single trajectory"):
        load_fields(npz, trajectory=1)


def test_cli_well_info_and_example(tmp_path, capsys):
    out = tmp_path / "ex.hdf5"
    assert main(["well-example", "-o", str(out), "--size", "32", "--steps", "3", "--trajectories", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["well-info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dataset_name"] == "active_matter" and info["grid_shape"] == [32, 32]
    assert info["n_trajectories"] == 2 and info["n_steps"] == 3
    assert main(["well-info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "active_matter" in text and "trajectories: 2" in text and "field D: tensor" in text
    assert main(["well-info", str(tmp_path / "missing.hdf5")]) == 2
    capsys.readouterr()
    npz = tmp_path / "c.npz"
    assert main(["well-export", str(out), "-o", str(npz), "--fields", "concentration,velocity", "--trajectory", "1",
                 "--t-start", "1"]) == 0
    b = load_fields(npz)
    ref = read_well(out, trajectory=1, t_start=1, fields=["concentration", "velocity"])
    assert b.kinds == {"concentration": "scalar", "velocity": "vector"} and b.periodic == (True, True)
    np.testing.assert_array_equal(b["velocity"], ref["velocity"])
    assert main(["well-export", str(out), "-o", str(tmp_path / "c.txt")]) == 2


# --- cross-checks with the_well's own code (optional extra) ---------------------------------------
def test_the_well_dummy_writer_is_read(tmp_path):
    dummy = pytest.importorskip("the_well.utils.dummy_data")
    p = tmp_path / "dummy.hdf5"
    dummy.write_dummy_data(str(p))
    b = read_well(p, trajectory=1)
    assert b.shape == (10, 32, 32) and b.kinds == {"constant_field": "scalar", "field": "vector"}
    with h5py.File(p, "r") as f:
        raw_v = f["t1_fields"]["field"][1]  # (t, x, y, [x, y])
        raw_c = f["t0_fields"]["constant_field"][1]  # (x, y), constant in time
    np.testing.assert_array_equal(b["field"][..., 1], raw_v[..., 0].transpose(0, 2, 1))
    np.testing.assert_array_equal(b["field"][..., 0], raw_v[..., 1].transpose(0, 2, 1))
    np.testing.assert_array_equal(b["constant_field"][7], raw_c.T)
    assert b.attrs["well"]["scalars"]["a"] == 0.25 and len(b.attrs["well"]["scalars"]["time_varying_scalar"]) == 10


def test_the_well_dataset_reads_our_file(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("einops")
    data = pytest.importorskip("the_well.data")
    d = tmp_path / "train"
    d.mkdir()
    write_active_matter_example(d / "am.hdf5", size=32, n_steps=3, seed=1)
    ds = data.WellDataset(path=str(d), n_steps_input=1, n_steps_output=1, use_normalization=False)
    md = ds.metadata
    # the published active_matter layout (the_well's datasets/active_matter/active_matter.yaml)
    assert md.dataset_name == "active_matter" and md.spatial_resolution == (32, 32)
    assert md.field_names == {0: ["concentration"], 1: ["velocity_x", "velocity_y"],
                              2: ["D_xx", "D_xy", "D_yx", "D_yy", "E_xx", "E_xy", "E_yx", "E_yy"]}
    assert md.constant_scalar_names == ["L", "zeta", "alpha"] and md.boundary_condition_types == ["PERIODIC"]
    sample = ds[1]  # trajectory 0, input frame 1
    x = sample["input_fields"][0].numpy()  # (x, y, 11)
    b = read_well(d / "am.hdf5")
    ours = {"concentration": b["concentration"][1], "velocity_x": b["velocity"][1, ..., 1],
            "velocity_y": b["velocity"][1, ..., 0], "D_xy": b["D"][1, ..., 1, 0], "E_yy": b["E"][1, ..., 0, 0]}
    names = [n for i in range(3) for n in md.field_names[i]]
    for name, arr in ours.items():
        np.testing.assert_allclose(x[..., names.index(name)], arr.T, rtol=1e-6, atol=1e-7)
    assert (sample["boundary_conditions"].numpy() == 2).all()  # PERIODIC on both ends of both axes
    grid = sample["space_grid"].numpy()
    np.testing.assert_allclose(grid[3, 5], [b.coords["x"][3], b.coords["y"][5]], rtol=1e-6)


def test_load_fields_periodic_override(am_file):
    assert load_fields(am_file, fields=["concentration"], t_stop=1, periodic=False).periodic == (False, False)
    assert load_fields(BURGERS, periodic=False).periodic == (False,)
