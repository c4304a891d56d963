"""Coarse-graining, derivatives and weak-form features (napari_dynfit.fields)."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.errors import InputError
from napari_dynfit.fields import FieldBundle
from napari_dynfit.fields.coarse_grain import auto_kernel, coarse_grain_particles, coarse_grain_table, fill_track_gaps
from napari_dynfit.fields.derivatives import decoupled_weights, derivative
from napari_dynfit.fields.weak import weak_features


def _periodic_gaussian(y, x, y0, x0, sigma, L):
    dy = (y[:, None] - y0 + L / 2) % L - L / 2
    dx = (x[None, :] - x0 + L / 2) % L - L / 2
    return np.exp(-(dy ** 2 + dx ** 2) / (2 * sigma ** 2)) / (2 * np.pi * sigma ** 2)


def test_single_particle_matches_periodic_gaussian():
    pos = np.array([[3.3, 9.7]])           # near the x edge: the kernel wraps
    e = np.array([[0.6, 0.8]])
    b = coarse_grain_particles(np.zeros(1, int), pos, spacing=0.25, sigma=0.8, box=(10, 10), periodic=True,
                               orientations=e, fields=("rho", "p", "Q"))
    K = _periodic_gaussian(b.coords["y"], b.coords["x"], 3.3, 9.7, 0.8, 10.0)
    assert np.abs(b["rho"][0] - K).max() < 0.01 * K.max()
    assert b["rho"][0].sum() * 0.25 ** 2 == pytest.approx(1.0, rel=1e-9)
    assert np.abs(b["p"][0, ..., 1] - 0.8 * K).max() < 0.01 * K.max()
    assert np.abs(b["Q"][0, ..., 0, 1] - 0.48 * K).max() < 0.01 * K.max()
    assert np.allclose(np.trace(b["Q"][0], axis1=-2, axis2=-1), 0, atol=1e-12)
    assert b.periodic == (True, True)


def test_many_particles_density_and_variable_counts(rng):
    counts = [500, 800, 0, 300]
    frames = np.concatenate([np.full(n, f) for f, n in enumerate(counts)])
    pos = rng.uniform(0, 20, (len(frames), 2))
    b = coarse_grain_particles(frames, pos, spacing=0.5, sigma=1.0, box=(20, 20), periodic=True,
                               orientations=np.tile([[1.0, 0.0]], (len(frames), 1)))
    mass = b["rho"].sum(axis=(1, 2)) * 0.25
    assert np.allclose(mass, counts)
    assert b.attrs["particles_per_frame"] == counts
    assert np.allclose(b["p"][..., 0], b["rho"])     # all orientations along y


def test_bounded_domain_keeps_mass_away_from_edges():
    pos = np.array([[5.0], [2.0]])
    b = coarse_grain_particles(np.array([0, 0]), pos, spacing=0.1, sigma=0.3, periodic=False, fields=("rho",))
    assert b.coords["x"][0] == pytest.approx(2.0 - 1.2)
    assert b.coords["x"][-1] >= 5.0 + 1.2 - 1e-9
    assert b["rho"].sum() * 0.1 == pytest.approx(2.0, rel=1e-3)


def test_table_velocities_from_tracks():
    # two tracks moving at constant velocity (vy, vx) = (0.5, -1.0) per unit time, dt = 0.5 per frame
    rows = []
    for tid, (y0, x0) in enumerate([(5.0, 15.0), (12.0, 8.0)]):
        for f in range(6):
            rows.append({"frame": f, "track_id": tid, "y": y0 + 0.25 * f, "x": x0 - 0.5 * f})
    df = pd.DataFrame(rows)
    b = coarse_grain_table(df, spacing=0.5, sigma=1.0, dt=0.5, fields=("rho", "p", "v"))
    m = b["rho"] > 0.05 * b["rho"].max()
    assert np.allclose(b["v"][..., 0][m], 0.5) and np.allclose(b["v"][..., 1][m], -1.0)
    unit = np.array([0.5, -1.0]) / np.hypot(0.5, 1.0)
    assert np.allclose(b["p"][m], b["rho"][m][:, None] * unit)
    assert np.allclose(b.coords["t"], np.arange(6) * 0.5)


@pytest.mark.parametrize("bad,match", [
    (pd.DataFrame({"frame": [], "y": [], "x": []}), "empty"),
    (pd.DataFrame({"frame": [0], "y": [np.nan], "x": [1.0]}), "NaN"),
])
def test_table_errors(bad, match):
    with pytest.raises(InputError, match=match):
        coarse_grain_table(bad, spacing=1.0, sigma=1.0, fields=("rho",))


def test_periodic_needs_box():
    with pytest.raises(InputError, match="box"):
        coarse_grain_particles(np.zeros(3, int), np.ones((3, 2)), spacing=1, sigma=1, periodic=True, fields=("rho",))


def _bundle1d(u, periodic=True, L=2 * np.pi):
    n = u.shape[1]
    x = np.arange(n) * L / n
    return FieldBundle({"u": u}, {"t": np.linspace(0, 1, u.shape[0]), "x": x}, periodic=(periodic,))


def test_spectral_and_decoupled_derivatives():
    n = 64
    x = np.arange(n) * 2 * np.pi / n
    u = np.tile(np.sin(3 * x), (4, 1))
    b = _bundle1d(u)
    assert np.allclose(derivative(u, 1, 2, bundle=b, method="spectral"), -9 * u, atol=1e-10)
    d2 = derivative(u, 1, 2, bundle=b, method="decoupled")
    h = x[1] - x[0]                              # truncation error (5/12) h^2 d4u
    assert np.abs(d2 + 9 * u).max() == pytest.approx(5 / 12 * h ** 2 * 81, rel=0.05)
    for order in (1, 2, 3, 4):
        w = decoupled_weights(order)
        assert w[len(w) // 2] == 0
        k = np.arange(len(w)) - len(w) // 2
        assert np.isclose((w * k ** order).sum(), np.prod(np.arange(1, order + 1)))


def test_decoupled_products_carry_no_noise_bias(rng):
    """E[eta * D2 eta] = w0 sigma^2 with the standard stencil, 0 with the centre-free one."""
    eta = rng.standard_normal((50, 400))
    b = _bundle1d(eta, L=400.0)                                  # h = 1
    std = np.mean(eta * derivative(eta, 1, 2, bundle=b, method="finite"))
    dec = np.mean(eta * derivative(eta, 1, 2, bundle=b, method="decoupled"))
    assert std == pytest.approx(-2.0, abs=0.05)
    assert abs(dec) < 0.02


def test_weak_integration_by_parts_matches_direct_quadrature():
    nt, n = 41, 128
    t = np.linspace(0, 1, nt)
    x = np.arange(n) * 2 * np.pi / n
    T, X = np.meshgrid(t, x, indexing="ij")
    u = np.sin(X - T) + 0.3 * np.cos(2 * X + T)
    ux = np.cos(X - T) - 0.6 * np.sin(2 * X + T)
    uxx = -np.sin(X - T) - 1.2 * np.cos(2 * X + T)
    ut = -np.cos(X - T) - 0.3 * np.sin(2 * X + T)
    b = FieldBundle({"u": u, "a": ux, "c": uxx, "e": ut}, {"t": t, "x": x}, periodic=(True,))
    f = weak_features(b, ["u*u_x", "u*a", "u_xx", "c", "u_t", "e", "u^2*u_x", "u^2*a"], half_width=(8, 16))
    for ibp, direct in [("u*u_x", "u*a"), ("u_xx", "c"), ("u_t", "e"), ("u^2*u_x", "u^2*a")]:
        scale = np.abs(f[direct]).max()
        assert np.abs(f[ibp] - f[direct]).max() < 1e-3 * scale, ibp


def test_weak_vector_terms_shapes_and_ito_mode(rng):
    nt, n = 12, 24
    rho = 1 + 0.1 * rng.standard_normal((nt, n, n))
    p = 0.1 * rng.standard_normal((nt, n, n, 2))
    c = np.arange(n) * 0.5
    b = FieldBundle({"rho": rho, "p": p}, {"t": np.arange(nt) * 0.1, "y": c, "x": c}, periodic=(True, True))
    f = weak_features(b, ["rho_t", "div(p)", "p_t", "grad(rho)", "p.grad(p)"], half_width=(0, 4, 4), stride=(1, 4, 4))
    assert f["rho_t"].shape == (nt - 1, 6, 6)
    assert f["p_t"].shape == (nt - 1, 6, 6, 2)
    # Ito mode: forward differences in time, the other terms at the earlier frame
    kw = dict(half_width=(0, 4, 4), stride=(1, 4, 4))
    now = weak_features(b, ["rho"], **kw)["rho"]                       # frames 0 .. nt-2
    later = weak_features(b.time_slice(1, None), ["rho"], **kw)["rho"]  # frames 1 .. nt-2
    assert np.allclose(f["rho_t"][:-1], (later - now[:-1]) / 0.1)


def test_three_d_and_one_d_single_particle():
    # cloud-in-cell adds f(1 - f) h^2 of variance for a particle at fraction f of a cell, h^2/6 on
    # average (the value the smoothing subtracts): place the particle where f(1 - f) = 1/6
    f = 0.5 - np.sqrt(1 / 12)
    z0, y0, x0 = 2.0 + 0.5 * f, 5.5 + 0.5 * (1 - f), 9.5 + 0.5 * f
    b = coarse_grain_particles(np.zeros(1, int), np.array([[z0, y0, x0]]), spacing=0.5, sigma=1.0,
                               box=(8, 12, 10), periodic=True, orientations=np.array([[0.0, 0.0, 1.0]]))
    assert b.space_axes == ("z", "y", "x") and b.shape == (1, 16, 24, 20)
    z, y, x = (b.coords[a] for a in ("z", "y", "x"))
    dz = (z - z0 + 4) % 8 - 4
    dy = (y - y0 + 6) % 12 - 6
    dx = (x - x0 + 5) % 10 - 5
    K = np.exp(-(dz[:, None, None] ** 2 + dy[None, :, None] ** 2 + dx[None, None, :] ** 2) / 2) / (2 * np.pi) ** 1.5
    assert np.abs(b["rho"][0] - K).max() < 0.01 * K.max()
    assert np.allclose(b["p"][0, ..., 2], b["rho"][0]) and np.allclose(b["p"][0, ..., :2], 0)
    one = coarse_grain_particles(np.array([0, 1]), np.array([[3.0], [7.0]]), spacing=0.1, sigma=0.5, box=(10,),
                                 periodic=True, fields=("rho",))
    assert one.shape == (2, 100)
    assert np.argmax(one["rho"][0]) == 30 and np.argmax(one["rho"][1]) == 70


def test_untracked_detections_give_density(rng):
    df = pd.DataFrame({"frame": np.repeat([0, 1, 2], 200), "y": rng.uniform(0, 30, 600), "x": rng.uniform(0, 30, 600)})
    b = coarse_grain_table(df, spacing=1.0, sigma=1.5, fields=("rho",))
    assert set(b.fields) == {"rho"} and b.periodic == (False, False)
    mass = b["rho"].sum(axis=(1, 2)) * 1.0
    assert np.allclose(mass, 200, rtol=1e-3)       # the 4-sigma margins keep the whole kernel inside
    with pytest.raises(InputError, match="track_id"):
        coarse_grain_table(df, spacing=1.0, sigma=1.5, fields=("rho", "v"))


def test_auto_kernel_is_the_mean_interparticle_distance(rng):
    """400 particles per frame in a 100 x 100 box: mean distance sqrt(100^2 / 400) = 5, grid 2.5."""
    n, T = 400, 3
    df = pd.DataFrame({"frame": np.repeat(np.arange(T), n), "y": rng.uniform(0, 100, n * T),
                       "x": rng.uniform(0, 100, n * T)})
    assert auto_kernel(df, box=(100.0, 100.0)) == pytest.approx((5.0, 2.5))
    b = coarse_grain_table(df, box=(100.0, 100.0), periodic=True, fields=("rho",))  # the default
    assert b.attrs["sigma"] == pytest.approx(5.0) and b.spacing == pytest.approx((2.5, 2.5))
    assert coarse_grain_table(df, sigma=4.0, box=(100.0, 100.0), periodic=True, fields=("rho",)).spacing == \
        pytest.approx((2.0, 2.0))  # a given kernel alone: grid half of it
    with pytest.raises(InputError, match="volume"):
        auto_kernel(pd.DataFrame({"frame": [0, 1], "y": [1.0, 1.0], "x": [2.0, 2.0]}))


def test_fill_track_gaps_interpolates_skipped_frames_across_the_periodic_edge():
    """A track seen at frames 0, 3 (crossing x = 10 of a periodic box) and 4: frames 1, 2 filled on the
    straight (minimum-image) path; the density then holds one particle in every frame."""
    df = pd.DataFrame({"track_id": [7, 7, 7, 8, 8], "frame": [0, 3, 4, 0, 1], "y": [2.0, 5.0, 6.0, 1.0, 1.0],
                       "x": [9.0, 0.5, 1.0, 3.0, 3.0], "parent_id": -1})
    out = fill_track_gaps(df, box=(10.0, 10.0), periodic=True)
    assert out.attrs["filled_rows"] == 2 and len(out) == 7
    t7 = out[out["track_id"] == 7].set_index("frame")
    assert list(t7.index) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(t7.loc[[1, 2], ["y", "x"]].to_numpy(), [[3.0, 9.5], [4.0, 0.0]], atol=1e-12)
    assert (t7["parent_id"] == -1).all()
    b = coarse_grain_table(df.iloc[:3], spacing=1.0, sigma=1.0, box=(10.0, 10.0), periodic=True, fields=("rho",))
    assert b.attrs["filled_rows"] == 2
    np.testing.assert_allclose(b["rho"].sum(axis=(1, 2)), 1.0)
    assert coarse_grain_table(df.iloc[:3], spacing=1.0, sigma=1.0, box=(10.0, 10.0), periodic=True,
                              fields=("rho",), fill_gaps=False)["rho"][1].sum() == 0


def test_cli_coarse_grain_takes_the_kernel_from_the_data(tmp_path, rng, capsys):
    """`dynfit coarse-grain` without --sigma/--spacing: kernel = mean inter-particle distance (5), grid 2.5."""
    from napari_dynfit.cli import main

    n, T = 400, 3
    df = pd.DataFrame({"frame": np.repeat(np.arange(T), n), "y": rng.uniform(0, 100, n * T),
                       "x": rng.uniform(0, 100, n * T)})
    df.to_csv(tmp_path / "det.csv", index=False)
    out = tmp_path / "f.zarr"
    assert main(["coarse-grain", str(tmp_path / "det.csv"), "-o", str(out), "--box", "100", "100", "--periodic",
                 "--fields", "rho"]) == 0
    assert "mean inter-particle distance" in capsys.readouterr().out
    b = FieldBundle.load(out)
    assert b.attrs["sigma"] == pytest.approx(5.0) and b.spacing == pytest.approx((2.5, 2.5))
