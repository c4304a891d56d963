"""Ground-truth simulator: ABP physics against theory, lineage statistics, renderer accuracy, CLI."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from napari_dynfit import InputError
from napari_dynfit.cli import main
from napari_dynfit.sim import (
    abp_msd,
    amplitude_for_snr,
    expected_growth_factor,
    render_cells,
    render_labels,
    render_movie,
    simulate_abp,
    simulate_dividing_cells,
)
from napari_dynfit.sim._neighbours import NeighbourSums


# ---------------------------------------------------------------------------------------- ABP
@pytest.mark.parametrize("dim", [2, 3])
def test_free_abp_msd_and_orientation_autocorrelation_match_theory(dim):
    v0, Dr, Dt = 1.0, 1.0, 0.1
    tr = simulate_abp(20000, 300, dim=dim, box=40.0, dt=0.01, v0=v0, Dr=Dr, Dt=Dt, save_every=10, seed=3)
    t = tr.times
    disp = tr.unwrapped - tr.unwrapped[0]
    msd = (disp**2).sum(-1).mean(1)
    theory = abp_msd(t, v0=v0, Dr=Dr, Dt=Dt, dim=dim)
    np.testing.assert_allclose(msd[1:], theory[1:], rtol=0.05)
    corr = (tr.orientations * tr.orientations[0]).sum(-1).mean(1)
    expected = np.exp(-(dim - 1) * Dr * t)
    # statistical error of the mean ~ sqrt(0.5 / N) = 0.005: 5 % of the value is > 3 sigma above 0.3
    sel = expected > 0.3
    assert sel.sum() >= 6
    np.testing.assert_allclose(corr[sel], expected[sel], rtol=0.05)
    # the 2D closed form of the issue
    if dim == 2:
        closed = 4 * Dt * t + 2 * v0**2 / Dr**2 * (Dr * t + np.exp(-Dr * t) - 1)
        np.testing.assert_allclose(theory, closed, rtol=1e-12, atol=1e-12)


def test_abp_output_layout_and_reproducibility():
    a = simulate_abp(50, 20, dim=2, box=(10.0, 20.0), Dt=0.5, save_every=5, seed=7)
    b = simulate_abp(50, 20, dim=2, box=(10.0, 20.0), Dt=0.5, save_every=5, seed=7)
    np.testing.assert_array_equal(a.unwrapped, b.unwrapped)
    assert a.positions.shape == a.unwrapped.shape == a.orientations.shape == a.velocities.shape == (5, 50, 2)
    np.testing.assert_allclose(a.times, np.arange(5) * 0.05)
    assert np.all(a.positions >= 0) and np.all(a.positions < np.array([10.0, 20.0]))
    np.testing.assert_allclose(np.mod(a.unwrapped, a.box), a.positions, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(a.orientations, axis=-1), 1.0)
    np.testing.assert_allclose(a.velocities, a.orientations * a.params["v0"])
    df = a.to_table()
    assert list(df.columns) == ["frame", "track_id", "y", "x", "p_y", "p_x", "v_y", "v_x"]
    assert len(df) == 250 and df.attrs["dt"] == pytest.approx(0.05)
    row = df[(df.frame == 3) & (df.track_id == 11)].iloc[0]
    np.testing.assert_allclose([row.y, row.x, row.p_y, row.p_x], [*a.positions[3, 11], *a.orientations[3, 11]])
    df3 = simulate_abp(5, 2, dim=3, box=5.0, seed=0).to_table()
    assert list(df3.columns)[:5] == ["frame", "track_id", "z", "y", "x"] and "v_z" in df3.columns


@pytest.mark.parametrize("dim,box,radius", [(2, (9.0, 13.0), 1.3), (3, (6.0, 7.0, 11.0), 1.5), (2, (2.0, 3.0), 1.2)])
def test_cell_list_neighbour_sums_match_brute_force(dim, box, radius, rng):
    n = 400
    pos = rng.random((n, dim)) * np.asarray(box)
    ori = rng.standard_normal((n, dim))
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    box3 = np.ones(3)
    box3[3 - dim:] = box
    pos3 = np.zeros((n, 3))
    pos3[:, 3 - dim:] = pos
    ori3 = np.zeros((n, 3))
    ori3[:, 3 - dim:] = ori
    msum, count = NeighbourSums(box3, radius)(pos3, ori3)
    tree = cKDTree(pos, boxsize=box)
    for i, nb in enumerate(tree.query_ball_point(pos, radius)):
        assert count[i] == len(nb)
        np.testing.assert_allclose(msum[i, 3 - dim:], ori[nb].sum(0), atol=1e-9)


def test_density_dependent_speed_follows_local_density():
    rho_star, R, box = 0.8, 1.5, 20.0
    tr = simulate_abp(500, 3, box=box, v0=2.0, Dr=0.1, align_radius=R, speed_density=rho_star, seed=1)
    pos = tr.positions[-1]
    counts = np.array([len(nb) for nb in cKDTree(pos, boxsize=box).query_ball_point(pos, R)])
    expected = 2.0 * np.clip(1 - counts / (np.pi * R**2) / rho_star, 0, None)
    np.testing.assert_allclose(np.linalg.norm(tr.velocities[-1], axis=1), expected, atol=1e-9)
    # a callable speed law gets the same densities
    tr2 = simulate_abp(500, 3, box=box, align_radius=R, speed_density=lambda rho: 1.0 + rho, seed=1)
    pos2 = tr2.positions[-1]
    c2 = np.array([len(nb) for nb in cKDTree(pos2, boxsize=box).query_ball_point(pos2, R)])
    np.testing.assert_allclose(np.linalg.norm(tr2.velocities[-1], axis=1), 1.0 + c2 / (np.pi * R**2), atol=1e-9)


@pytest.mark.parametrize("dim", [2, 3])
def test_alignment_orders_the_swarm(dim):
    kw = dict(dim=dim, box=6.0, dt=0.02, v0=0.5, Dr=0.05, align_radius=1.5, save_every=100, seed=2)
    ordered = simulate_abp(300, 600, align=5.0, **kw)
    free = simulate_abp(300, 600, align=0.0, **kw)
    polar = lambda tr: np.linalg.norm(tr.orientations[-1].mean(0))  # noqa: E731
    assert polar(ordered) > 0.9
    assert polar(free) < 0.3


def test_abp_rejects_bad_input():
    with pytest.raises(InputError, match="dim"):
        simulate_abp(10, 10, dim=4)
    with pytest.raises(InputError, match="n_particles"):
        simulate_abp(-1, 10)
    with pytest.raises(InputError, match="box"):
        simulate_abp(10, 10, dim=3, box=(1.0, 2.0))
    with pytest.raises(InputError, match="dt"):
        simulate_abp(10, 10, dt=-0.1)
    with pytest.raises(InputError, match="positions0"):
        simulate_abp(10, 10, positions0=np.zeros((3, 2)))


# ---------------------------------------------------------------------------------------- cells
def test_division_and_death_counts_match_rates():
    b, d, n0, T = 0.08, 0.02, 300, 15
    df = simulate_dividing_cells(n0, T, dim=2, box=2000.0, division_rate=b, death_rate=d, radius=1.0,
                                 diffusion=0.5, seed=11)
    per_frame = df.groupby("frame").size().reindex(range(T), fill_value=0).to_numpy()
    at_risk = per_frame[:-1].sum()
    p_event = 1 - np.exp(-(b + d))
    p_div, p_die = p_event * b / (b + d), p_event * d / (b + d)
    mothers = df.loc[df.parent_id > 0, "parent_id"].unique()
    n_div = len(mothers)
    for observed, p in ((n_div, p_div), (None, p_die)):
        if observed is None:  # deaths: tracks that end before the last frame without daughters
            last = df.groupby("track_id")["frame"].max()
            observed = int(((last < T - 1) & ~last.index.isin(mothers)).sum())
        expected = p * at_risk
        assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - p)), (observed, expected)
    # expected growth: E[N_T-1] = n0 g^(T-1)
    g = expected_growth_factor(b, d)
    assert abs(per_frame[-1] / (n0 * g ** (T - 1)) - 1) < 0.1
    assert abs(g - (1 + p_div - p_die)) < 1e-12


def test_lineage_truth_is_consistent():
    df = simulate_dividing_cells(20, 12, dim=3, box=(30.0, 60.0, 60.0), division_rate=0.15, radius=2.0, seed=4)
    assert list(df.columns) == ["track_id", "frame", "z", "y", "x", "parent_id", "radius"]
    assert df.track_id.min() == 1 and not df.duplicated(["track_id", "frame"]).any()
    first = df.groupby("track_id")["frame"].min()
    last = df.groupby("track_id")["frame"].max()
    span = df.groupby("track_id").size()
    assert (span == last - first + 1).all()  # no gaps
    parents = df.drop_duplicates("track_id").set_index("track_id")["parent_id"]
    kids = parents[parents > 0]
    assert len(kids) > 0 and (kids.value_counts() == 2).all()
    for child, mother in kids.items():
        assert first[child] == last[mother] + 1
        m = df[(df.track_id == mother) & (df.frame == last[mother])][["z", "y", "x"]].to_numpy()[0]
        c = df[(df.track_id == child) & (df.frame == first[child])][["z", "y", "x"]].to_numpy()[0]
        assert np.linalg.norm(c - m) < 6 * 2.0  # daughters appear next to their mother
    lo = df[["z", "y", "x"]].min().to_numpy()
    hi = df[["z", "y", "x"]].max().to_numpy()
    assert np.all(lo >= 2.0 - 1e-9) and np.all(hi <= np.array([28.0, 58.0, 58.0]) + 1e-9)


def test_cells_reject_explosive_growth():
    with pytest.raises(InputError, match="expected number"):
        simulate_dividing_cells(1000, 200, division_rate=0.5)


# ---------------------------------------------------------------------------------------- renderer
def _centroids(movie, truth, half=3, search=2):
    """Background-subtracted intensity centroid in a (2 half + 1)^2 window around the local maximum."""
    errs = []
    for row in truth.itertuples():
        img = movie[row.frame].astype(float)
        cy, cx = int(round(row.y)), int(round(row.x))
        win = img[cy - search:cy + search + 1, cx - search:cx + search + 1]
        dy, dx = np.unravel_index(np.argmax(win), win.shape)
        py, px = cy - search + dy, cx - search + dx
        w = img[py - half:py + half + 1, px - half:px + half + 1] - np.median(img)
        w = np.clip(w, 0, None)
        yy, xx = np.mgrid[py - half:py + half + 1, px - half:px + half + 1]
        errs.append(np.hypot((w * yy).sum() / w.sum() - row.y, (w * xx).sum() / w.sum() - row.x))
    return np.array(errs)


def test_rendered_spots_are_located_by_centroid_within_0_3_px_at_snr_10(rng):
    # spots on a grid with random sub-pixel offsets (physical units, 0.25 um pixels)
    gy, gx = np.meshgrid(np.arange(10, 120, 14), np.arange(10, 120, 14), indexing="ij")
    n = gy.size
    rows = []
    for f in range(3):
        pix = np.stack([gy.ravel(), gx.ravel()], 1) + rng.uniform(-0.5, 0.5, (n, 2))
        rows.append(pd.DataFrame({"frame": f, "track_id": np.arange(n), "y": pix[:, 0] * 0.25, "x": pix[:, 1] * 0.25}))
    table = pd.concat(rows, ignore_index=True)
    movie, truth = render_movie(table, (128, 128), scale=0.25, psf_sigma=1.5, snr=10, seed=5)
    assert movie.dtype == np.uint16 and movie.shape == (3, 128, 128)
    np.testing.assert_allclose(truth[["y", "x"]].to_numpy(), table[["y", "x"]].to_numpy() / 0.25)
    assert truth.attrs["spacing"] == [0.25, 0.25]
    errs = _centroids(movie, truth)
    assert np.median(errs) < 0.3, np.median(errs)


def test_snr_definition_holds_at_the_spot_peak():
    n = 400
    table = pd.DataFrame({"frame": np.arange(n), "y": np.full(n, 8.0), "x": np.full(n, 8.0)})
    movie, _ = render_movie(table, (17, 17), psf_sigma=(2.0, 1.0), snr=10, background=50, read_noise=3, seed=1)
    peak = movie[:, 8, 8].astype(float)
    A = amplitude_for_snr(10, 50, 3)
    assert abs(peak.mean() - 50 - A) < 3 * np.sqrt(A + 59) / np.sqrt(n)
    measured = (peak.mean() - 50) / peak.std()
    assert abs(measured / 10 - 1) < 0.1
    # anisotropic PSF: the profile is wider along y (sigma 2) than along x (sigma 1)
    mean = movie.mean(0) - 50
    assert mean[8 + 2, 8] / mean[8, 8] == pytest.approx(np.exp(-0.5), rel=0.05)
    assert mean[8, 8 + 1] / mean[8, 8] == pytest.approx(np.exp(-0.5), rel=0.05)


def test_3d_render_and_labels_volume():
    table = pd.DataFrame({"frame": [0, 0], "track_id": [3, 9], "z": [8.0, 8.0], "y": [10.0, 30.0],
                          "x": [10.0, 30.0], "radius": [4.0, 4.0]})
    scale = (1.0, 0.5, 0.5)
    labels = render_labels(table, (1, 16, 80, 80), scale=scale)
    vol = np.prod(scale) * (labels == 3).sum()
    assert vol == pytest.approx(4 / 3 * np.pi * 4.0**3, rel=0.05)
    assert set(np.unique(labels)) == {0, 3, 9}
    zc, yc, xc = np.argwhere(labels[0] == 9).mean(0)
    assert (zc * 1.0, yc * 0.5, xc * 0.5) == pytest.approx((8.0, 30.0, 30.0), abs=0.1)
    movie, lab2, truth = render_cells(table, (16, 80, 80), scale=scale, snr=10, seed=0)
    np.testing.assert_array_equal(lab2, labels)
    inside = movie[labels > 0].mean()
    outside = movie[labels == 0].mean()
    assert inside > outside + 0.5 * amplitude_for_snr(10, 100, 2)
    spot, truth3 = render_movie(table, (16, 80, 80), scale=scale, psf_sigma=(1.0, 2.0, 2.0), amplitude=5000,
                                read_noise=0, seed=0)
    np.testing.assert_allclose(truth3[["z", "y", "x"]].to_numpy(), [[8, 20, 20], [8, 60, 60]])
    for z, y, x in ((8, 20, 20), (8, 60, 60)):
        box = spot[0, z - 2:z + 3, y - 2:y + 3, x - 2:x + 3]
        assert np.unravel_index(np.argmax(box), box.shape) == (2, 2, 2)
        assert abs(float(box[2, 2, 2]) - 5100) < 4 * np.sqrt(5100)


def test_render_rejects_bad_input():
    table = pd.DataFrame({"frame": [0], "y": [1.0], "x": [1.0]})
    with pytest.raises(InputError, match="shape"):
        render_movie(table, (1, 10, 10, 10, 10))
    with pytest.raises(InputError, match="non-positive"):
        render_movie(table, (0, 10))
    with pytest.raises(InputError, match="scale"):
        render_movie(table, (10, 10), scale=(1.0, 2.0, 3.0))
    with pytest.raises(InputError, match="NaN"):
        render_movie(table.assign(x=np.nan), (10, 10))
    with pytest.raises(InputError, match="radius"):
        render_labels(table.assign(track_id=1), (10, 10))


# ---------------------------------------------------------------------------------------- samples, CLI, demo
def test_samples_sizes_and_truth():
    from napari_dynfit.sim.samples import active_particles_2d, dividing_cells_3d

    s = active_particles_2d(seed=0, fov=96.0, frames=5)  # a piece: same density and rendering
    assert s.movie.shape == (5, 96, 96) and s.movie.dtype == np.uint16 and s.labels is None
    assert s.truth.track_id.nunique() == pytest.approx(750 * (96 / 384) ** 2, abs=3)
    assert s.spacing == (1.0, 1.0) and s.dt == pytest.approx(0.1) and s.params["periodic"]
    c = dividing_cells_3d(seed=0)
    assert c.movie.shape == c.labels.shape == (25, 32, 96, 96)
    assert (c.truth.parent_id > 0).any()
    # every truth row's centre lies inside its own mask
    r = c.truth.iloc[len(c.truth) // 2]
    assert c.labels[int(r.frame), int(round(r.z)), int(round(r.y)), int(round(r.x))] == r.track_id


def test_cli_simulate_writes_readable_outputs(tmp_path):
    from napari_dynfit.apr.io import read_pixels

    assert main(["simulate", "abp", "-o", str(tmp_path / "abp"), "--frames", "4", "--n-particles", "30",
                 "--shape", "64", "80"]) == 0
    px = read_pixels(tmp_path / "abp" / "movie.ome.zarr")
    assert px["axes"] == "tyx" and px["data"].shape == (4, 64, 80) and px["scale"] == [0.1, 0.5, 0.5]
    truth = pd.read_csv(tmp_path / "abp" / "truth.csv")
    assert {"frame", "track_id", "y", "x", "parent_id"} <= set(truth.columns)
    assert main(["simulate", "cells", "-o", str(tmp_path / "cells"), "--frames", "3", "--shape", "16", "40", "40",
                 "--format", "tiff"]) == 0
    lab = read_pixels(tmp_path / "cells" / "labels.tif")
    assert lab["axes"] == "tzyx" and lab["data"].shape == (3, 16, 40, 40) and lab["scale"][1:] == [1.0, 0.5, 0.5]


@pytest.mark.parametrize("argv,needle", [
    (["simulate", "abp", "-o", "{tmp}/missing/out"], "does not exist"),
    (["simulate", "abp", "-o", "{tmp}/o", "--shape", "-4", "10"], "positive"),
    (["simulate", "abp", "-o", "{tmp}/o", "--shape", "4", "10", "5"], "--shape"),
    (["simulate", "cells", "-o", "{tmp}/o", "--pixel-size", "1", "2"], "--pixel-size"),
    (["simulate", "cells", "-o", "{tmp}/o", "--radius", "-1"], "radius"),
    (["simulate", "abp", "-o", "{tmp}/o", "--n-particles", "0"], "positive"),
])
def test_cli_simulate_bad_input_is_one_line(argv, needle, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"dynfit simulate {argv[1]}: error:") and needle in err


def test_demo_stage_quick(tmp_path):
    from napari_dynfit.demo.sample import DEMO_STAGE
    from napari_dynfit.report import DemoContext, Report

    order, title, func = DEMO_STAGE
    ctx = DemoContext(out_dir=tmp_path, report=Report("t"), quick=True, seed=0)
    ctx.run_stage(title, func)
    assert order == 10 and ctx.artefacts["movie"].shape == (50, 192, 192)  # samples.DEMO_PIECE
    tr = ctx.artefacts["trajectories"]
    assert tr.n_particles >= 1000 and len(tr.times) >= 20
    # the stripe initial condition: density modulated along x
    h, _ = np.histogram(tr.positions[0, :, 1], bins=8, range=(0, tr.box[1]))
    assert h.max() > 3 * h.min()
    assert "<img" in ctx.report.to_html()


@pytest.mark.slow
def test_vicsek_preset_forms_travelling_bands():
    """The preset's last frames: density bands across x (contrast >> Poisson) moving along +x below v0."""
    from napari_dynfit.sim import vicsek_bands_preset

    tr = simulate_abp(**vicsek_bands_preset(seed=3))
    L, bins = tr.box[1], 64
    prof = np.array([np.histogram(p[:, 1], bins=bins, range=(0, L))[0] for p in tr.positions[-20:]], float)
    contrast = prof.std(1) / prof.mean(1)
    assert contrast.min() > 4 / np.sqrt(prof.mean())  # Poisson noise alone gives 1 / sqrt(mean)
    # the profile across y is flat: bands span the short axis
    prof_y = np.histogram(tr.positions[-1, :, 0], bins=16, range=(0, tr.box[0]))[0]
    assert prof_y.std() / prof_y.mean() < contrast[-1] / 2
    shifts = []
    for a, b in zip(prof[:-1], prof[1:]):
        cc = np.fft.irfft(np.fft.rfft(b - b.mean()) * np.conj(np.fft.rfft(a - a.mean())), n=bins)
        s = int(np.argmax(cc))
        shifts.append((s - bins if s > bins // 2 else s) * L / bins)
    speed = np.mean(shifts) / tr.frame_interval
    assert 0.4 * tr.params["v0"] < speed < tr.params["v0"]
    mean_dir = tr.orientations[-1].mean(0)
    assert mean_dir[1] > 0.3 and abs(mean_dir[0]) < 0.2  # ordered along +x
