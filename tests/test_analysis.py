"""Track analysis (track.analysis): MSD, its fit with drift removal, van Hove, velocity autocorrelation, against
simulated truth (Brownian motion with known D, drift, active Brownian particles) and trackpy as the oracle."""

import json

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.errors import InputError
from napari_dynfit.track import compute_drift, fit_msd, msd, subtract_drift, van_hove, velocity_autocorrelation


def _brownian(rng, n=200, frames=60, D=0.5, dt=0.1, drift=0.0, dim=2, spacing=1.0, gaps=False):
    """Tracks (pixels) of Brownian particles of diffusion coefficient D (physical units) with a constant drift
    velocity; optionally with missing frames and tracks starting late."""
    steps = rng.normal(0, np.sqrt(2 * D * dt), (n, frames, dim)) + np.asarray(drift) * dt
    pos = np.cumsum(steps, axis=1) + rng.uniform(0, 100, (n, 1, dim))
    cols = ["z", "y", "x"][-dim:]
    rows = pd.DataFrame(pos.reshape(-1, dim) / spacing, columns=cols)
    rows.insert(0, "frame", np.tile(np.arange(frames), n))
    rows.insert(0, "track_id", np.repeat(np.arange(1, n + 1), frames))
    if gaps:
        keep = rng.uniform(size=len(rows)) > 0.1
        keep &= rows["frame"].to_numpy() >= rng.integers(0, frames // 3, n)[rows["track_id"].to_numpy() - 1]
        rows = rows[keep].reset_index(drop=True)
    return rows


def test_msd_recovers_diffusion_coefficient(rng):
    D, dt = 0.5, 0.1
    tracks = _brownian(rng, D=D, dt=dt, spacing=0.25)
    fit = fit_msd(tracks, dt=dt, spacing=(0.25, 0.25), max_lag=20)
    assert fit.exponent == pytest.approx(1.0, abs=0.05)
    assert fit.prefactor == pytest.approx(4 * D, rel=0.08)
    assert pytest.approx(D, rel=0.08) == fit.D
    tab = fit.table
    np.testing.assert_allclose(tab["t"], tab["lag"] * dt)
    np.testing.assert_allclose(tab["msd"].iloc[:5], 4 * D * tab["t"].iloc[:5], rtol=0.08)


def test_drift_removal_recovers_diffusion(rng):
    D, dt = 0.5, 0.1
    tracks = _brownian(rng, D=D, dt=dt, drift=(2.0, -3.0))
    raw = fit_msd(tracks, dt=dt, max_lag=30, drift=False)
    fit = fit_msd(tracks, dt=dt, max_lag=30)
    assert raw.exponent > 1.3  # ballistic drift dominates without removal
    assert fit.exponent == pytest.approx(1.0, abs=0.05)
    assert pytest.approx(D, rel=0.1) == fit.D
    drift = compute_drift(tracks)
    np.testing.assert_allclose(drift.iloc[-1].to_numpy(), np.array([2.0, -3.0]) * dt * 59, rtol=0.1)
    corrected = subtract_drift(tracks)
    assert pytest.approx(fit.D, rel=1e-9) == fit_msd(corrected, dt=dt, max_lag=30, drift=False).D


def test_3d_anisotropic_spacing(rng):
    D, dt = 0.2, 1.0
    tracks = _brownian(rng, D=D, dt=dt, dim=3)
    tracks["z"] /= 2.0  # voxels twice as deep
    fit = fit_msd(tracks, dt=dt, spacing=(2.0, 1.0, 1.0), max_lag=10)
    assert fit.dim == 3
    assert pytest.approx(D, rel=0.08) == fit.D


def test_matches_trackpy_emsd(rng):
    tp = pytest.importorskip("trackpy")
    tracks = _brownian(rng, n=40, frames=50, D=0.3, dt=1 / 24, drift=(1.0, 0.5), gaps=True)
    mpp, fps = 100 / 285.0, 24.0
    tpt = tracks.rename(columns={"track_id": "particle"})
    tpt = tpt[tpt.groupby("particle")["frame"].transform("size") >= 25]
    d = tp.compute_drift(tpt)
    em = tp.emsd(tp.subtract_drift(tpt.copy(), d), mpp, fps, max_lagtime=30)
    ours = msd(tracks, dt=1 / fps, spacing=(mpp, mpp), max_lag=30, min_length=25, drift=True)
    np.testing.assert_allclose(ours["t"], em.index.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours["msd"], em.to_numpy(), rtol=1e-9)
    pl = tp.utils.fit_powerlaw(em, plot=False)
    fit = fit_msd(tracks, dt=1 / fps, spacing=(mpp, mpp), max_lag=30, min_length=25)
    assert fit.exponent == pytest.approx(float(pl["n"].iloc[0]), rel=1e-9)
    assert fit.prefactor == pytest.approx(float(pl["A"].iloc[0]), rel=1e-9)
    ours_drift = compute_drift(tpt.rename(columns={"particle": "track_id"}))
    np.testing.assert_allclose(ours_drift.loc[d.index, ["y", "x"]].to_numpy(), d[["y", "x"]].to_numpy(), atol=1e-12)
    # every displacement counted once instead: the same to a few per cent, not identical
    pairs = msd(tracks, dt=1 / fps, spacing=(mpp, mpp), max_lag=30, min_length=25, drift=True, weights="pairs")
    np.testing.assert_allclose(pairs["msd"], em.to_numpy(), rtol=0.1)
    assert not np.allclose(pairs["msd"], em.to_numpy(), rtol=1e-6)


def test_van_hove_is_gaussian_for_brownian(rng):
    D, dt, lag = 0.5, 0.1, 3
    tracks = _brownian(rng, n=400, D=D, dt=dt)
    vh = van_hove(tracks, lag, bins=41)
    assert list(vh.columns) == ["dr", "y", "x", "all"]
    width = vh["dr"].diff().iloc[1]
    assert vh["all"].sum() * width == pytest.approx(1.0, rel=1e-6)
    var = 2 * D * lag * dt
    var_hist = float((vh["dr"] ** 2 * vh["all"]).sum() * width)
    assert var_hist == pytest.approx(var, rel=0.05)
    gauss = np.exp(-vh["dr"] ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)
    assert np.abs(vh["all"] - gauss).max() < 0.05 * gauss.max()


def test_abp_msd_and_velocity_autocorrelation():
    from napari_dynfit.sim import abp_msd, simulate_abp

    v0, Dr, Dt, dt_save = 1.0, 0.5, 0.05, 0.1
    traj = simulate_abp(300, 1500, box=100.0, dt=0.01, v0=v0, Dr=Dr, Dt=Dt, save_every=10, seed=3)
    tracks = traj.to_table()
    tracks[["y", "x"]] = traj.unwrapped.reshape(-1, 2)  # same row order (frame-major)
    tab = msd(tracks, dt=dt_save, max_lag=60)
    np.testing.assert_allclose(tab["msd"], abp_msd(tab["t"].to_numpy(), v0=v0, Dr=Dr, Dt=Dt), rtol=0.08)
    vacf = velocity_autocorrelation(tracks, dt=dt_save, max_lag=30)
    k = vacf["lag"].to_numpy()[1:]
    x = Dr * dt_save
    theory = v0 ** 2 * np.exp(-Dr * k * dt_save) * 2 * (np.cosh(x) - 1) / x ** 2
    np.testing.assert_allclose(vacf["vacf"].to_numpy()[1:], theory, atol=0.06 * v0 ** 2)
    # Brownian: uncorrelated after lag 0
    assert velocity_autocorrelation(tracks.assign(x=0.0, y=0.0), dt=dt_save, max_lag=2)["vacf"].abs().max() == 0


def test_analysis_bad_input(rng):
    tracks = _brownian(rng, n=3, frames=5)
    with pytest.raises(InputError, match="dt"):
        msd(tracks, dt=0)
    with pytest.raises(InputError, match="spacing"):
        msd(tracks, spacing=(1.0, -1.0))
    with pytest.raises(InputError, match="min_length"):
        msd(tracks, min_length=10)
    with pytest.raises(InputError, match="track_id"):
        msd(tracks.drop(columns="track_id"))
    with pytest.raises(InputError, match="lag"):
        van_hove(tracks, 0)


def test_cli_msd_van_hove_vacf(tmp_path, rng, capsys):
    import json

    from napari_dynfit.cli import main

    D, dt = 0.5, 0.1
    _brownian(rng, n=100, frames=40, D=D, dt=dt, drift=1.0, spacing=0.5).to_csv(tmp_path / "t.csv", index=False)
    assert main(["msd", str(tmp_path / "t.csv"), "--dt", str(dt), "--spacing", "0.5", "0.5", "--max-lag", "10",
                 "-o", str(tmp_path / "m.csv")]) == 0
    out = json.loads(capsys.readouterr().out.split("MSD table")[0])
    assert out["exponent"] == pytest.approx(1.0, abs=0.06)
    assert out["D"] == pytest.approx(D, rel=0.1)
    assert len(pd.read_csv(tmp_path / "m.csv")) == 10
    assert main(["van-hove", str(tmp_path / "t.csv"), "--lag", "2", "--spacing", "0.5", "0.5", "--drift"]) == 0
    vh = json.loads(capsys.readouterr().out)
    assert vh["variance_per_axis"] == pytest.approx(2 * D * 2 * dt, rel=0.1)
    assert main(["vacf", str(tmp_path / "t.csv"), "--dt", str(dt), "--max-lag", "3", "-o",
                 str(tmp_path / "v.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "v.csv").columns) == ["lag", "t", "vacf", "n"]
    assert main(["msd", str(tmp_path / "t.csv"), "--dt", "0"]) == 2


def _beads_and_specks(rng, *, D, sigma, n_mob=100, n_still=30, frames=80, min_len=25, drift=(0.0, 0.0),
                      specks_drift=False, rho=0.0):
    """Tracks (pixels, dt 1) of ``n_mob`` beads diffusing with coefficient D (px^2 / frame) for 25-80 frames and
    ``n_still`` fixed specks lasting the whole movie, all with Gaussian localisation noise ``sigma`` px per axis; a
    collective drift (px / frame) moves the beads, and the specks too when ``specks_drift`` (stuck on a drifting
    stage rather than features of the camera); ``rho``: the specks' noise is AR(1) with this correlation from frame
    to frame (a slowly wandering apparent position), same variance. Returns the table and the ids of the beads."""
    rows, drift = [], np.asarray(drift, float)
    for tid in range(n_mob + n_still):
        if tid < n_mob:
            n = int(rng.integers(min_len, frames + 1))
            f = np.arange(s := int(rng.integers(0, frames - n + 1)), s + n)
            walk = np.cumsum(np.vstack([np.zeros((1, 2)), rng.normal(0, np.sqrt(2 * D), (n - 1, 2))]), axis=0)
            p = walk + drift * f[:, None]
        else:
            f = np.arange(frames)
            p = drift * f[:, None] if specks_drift else np.zeros((frames, 2))
        noise = rng.normal(0, sigma, p.shape)
        if tid >= n_mob and rho:
            for i in range(1, len(noise)):
                noise[i] = rho * noise[i - 1] + np.sqrt(1 - rho ** 2) * noise[i]
        p = p + rng.uniform(0, 300, 2) + noise
        rows.append(pd.DataFrame({"track_id": tid, "frame": f, "y": p[:, 0], "x": p[:, 1]}))
    return pd.concat(rows, ignore_index=True), np.arange(n_mob)


@pytest.mark.parametrize("sigma,ratio,rho", [(0.1, 1.0, 0.0), (0.3, 4.0, 0.5), (0.2, 25.0, 0.0)])
def test_immobile_specks_are_left_out_of_the_fit(rng, sigma, ratio, rho):
    """Beads whose step variance per axis (2 D dt) is 2-50x the localisation variance, among 30 fixed specks: no
    bead is called immobile (at most one of 100 below 50x), the specks are (also with slowly wandering noise), and the fit equals the beads' own fit; keeping
    the specks flattens the MSD (the Princeton movie's failure)."""
    from napari_dynfit.track import classify_immobile

    D = ratio * sigma ** 2
    tracks, beads = _beads_and_specks(rng, D=D, sigma=sigma, rho=rho)
    cls = classify_immobile(tracks, min_length=25)
    assert cls.loc[beads, "immobile"].sum() <= (0 if ratio >= 25 else 1)
    assert cls["immobile"].drop(index=beads).mean() >= (0.9 if rho else 0.95)
    fit = fit_msd(tracks, max_lag=100, min_length=25)
    alone = fit_msd(tracks[tracks["track_id"].isin(beads)], max_lag=100, min_length=25)
    assert fit.n_tracks == 130 and len(fit.immobile) == cls["immobile"].sum() and fit.immobile_excluded
    assert fit.exponent == pytest.approx(alone.exponent, abs=0.02)
    assert fit.prefactor == pytest.approx(alone.prefactor, rel=0.03)
    assert pytest.approx(D, rel=0.1) == fit.D
    kept = fit_msd(tracks, max_lag=100, min_length=25, keep_immobile=True)
    assert kept.exponent < alone.exponent - 0.1 and not kept.immobile_excluded
    assert f"{len(fit.immobile)} of 130 tracks immobile" in fit.immobile_report()
    assert "excluded" in fit.immobile_report() and "kept" in kept.immobile_report()


@pytest.mark.parametrize("specks_drift,D", [(False, 0.2), (True, 0.05)])
def test_immobile_with_drift(rng, specks_drift, D):
    """A drifting population: camera features (still in the image) and particles stuck on the drifting stage
    (still relative to the drift, while the drift estimate's own error, a random walk of variance 2 D t / N for N
    beads, stays within the noise) are both immobile; the beads stay mobile and the fit recovers D."""
    from napari_dynfit.track import classify_immobile

    tracks, beads = _beads_and_specks(rng, D=D, sigma=0.2, drift=(0.3, -0.2), specks_drift=specks_drift)
    cls = classify_immobile(tracks, min_length=25)
    assert not cls.loc[beads, "immobile"].any()
    assert cls["immobile"].drop(index=beads).mean() >= 0.95
    fit = fit_msd(tracks, max_lag=100, min_length=25)
    alone = fit_msd(tracks[tracks["track_id"].isin(beads)], max_lag=100, min_length=25)
    assert fit.exponent == pytest.approx(alone.exponent, abs=0.02)  # < 1 at D = 0.05: the noise offset
    assert pytest.approx(D, rel=0.1) == fit.D


def test_all_immobile_is_said_not_fitted(rng, capsys, tmp_path):
    from napari_dynfit.cli import main
    from napari_dynfit.track import classify_immobile

    tracks, _ = _beads_and_specks(rng, D=0.1, sigma=0.2, n_mob=0, n_still=20)
    assert classify_immobile(tracks)["immobile"].all()
    with pytest.raises(InputError, match="all 20 tracks are immobile"):
        fit_msd(tracks)
    assert fit_msd(tracks, keep_immobile=True).exponent == pytest.approx(0.0, abs=0.1)  # flat: noise only
    tracks.to_csv(tmp_path / "t.csv", index=False)
    assert main(["msd", str(tmp_path / "t.csv")]) == 2
    assert "immobile" in capsys.readouterr().err
    assert main(["msd", str(tmp_path / "t.csv"), "--keep-immobile"]) == 0
    out = capsys.readouterr()
    assert "20 of 20 tracks immobile" in out.err and "kept in the fit" in out.err
    assert json.loads(out.out)["immobile"] == 20
    with pytest.raises(InputError, match="alpha"):
        classify_immobile(tracks, alpha=0.7)


@pytest.mark.parametrize("seed", [0, 1])
def test_composition_bias_zero_for_one_population(seed):
    """Beads of one diffusion coefficient seen while in focus (tracks end when a bead leaves the focal plane):
    track lengths vary, the mix does not, so the check stays silent and the exponent is Brownian."""
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus
    from napari_dynfit.track import composition_bias

    tr = simulate_beads_in_focus(2000, 100, D=(1.0,), height=100, depth=20, seed=seed)
    fit = fit_msd(tr, min_length=25)
    assert abs(fit.composition_bias) < 0.02 and fit.composition_ok
    assert fit.exponent == pytest.approx(1.0, abs=0.12)
    assert composition_bias(tr, min_length=25) == pytest.approx(fit.composition_bias, abs=1e-12)  # none immobile
    assert "stable" in fit.composition_report() and fit.as_dict()["exponent_identified"] is True
    assert fit.populations == () and fit.largest_population is None


@pytest.mark.parametrize("seed", [0, 1])
def test_composition_bias_flags_slow_population_that_stays_in_focus(seed, capsys, tmp_path):
    """30 % of the beads 10x slower (they also stay in focus longer): the ensemble exponent falls well below 1
    although every bead is Brownian; the check says so and the exponent with the mix held fixed is Brownian, as is
    the fast population's own."""
    from napari_dynfit.cli import main
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus

    tr = simulate_beads_in_focus(2000, 100, D=(1.0, 0.1), fractions=(0.7, 0.3), height=100, depth=20, seed=seed)
    fit = fit_msd(tr, min_length=25)
    free = fit_msd(tr[tr["population"] == 0], min_length=25)
    assert fit.exponent < 0.9 and free.exponent == pytest.approx(1.0, abs=0.1)
    assert fit.composition_bias < -0.1 and not fit.composition_ok
    assert fit.exponent_fixed_composition == pytest.approx(fit.exponent - fit.composition_bias)
    assert abs(fit.exponent_fixed_composition - free.exponent) < 0.05
    assert "WARNING" in fit.composition_report() and "slower" in fit.composition_report()
    big = fit.largest_population  # the flagged ensemble is split by mobility and each part fitted on its own
    assert len(fit.populations) >= 2 and big is fit.populations[0] and big.exponent == pytest.approx(1.0, abs=0.1)
    assert "fitted on its own" in fit.composition_report()
    assert f"largest mobility population: {big.exponent:.3f}, {big.n_tracks} tracks" in fit.composition_report(True)
    unsplit = fit_msd(tr, min_length=25, split_populations=False)
    assert unsplit.populations == () and "split_populations=False" in unsplit.composition_report()
    tr.drop(columns="population").to_csv(tmp_path / "t.csv", index=False)
    assert main(["msd", str(tmp_path / "t.csv"), "--min-length", "25"]) == 0
    out = capsys.readouterr()
    js = json.loads(out.out)
    assert "WARNING" in out.err and js["exponent_identified"] is False and len(js["populations"]) >= 2


def test_msd_pairs_weights_unchanged(rng):
    """``weights="pairs"``: every displacement counts once (the plain mean of all squared displacements)."""
    t = _brownian(rng, n=20, frames=15, gaps=True)
    tab = msd(t, max_lag=5, weights="pairs")
    for lag in (1, 5):
        later = t.assign(frame=t["frame"] - lag).merge(t, on=["track_id", "frame"], suffixes=("_2", ""))
        sq = (later["x_2"] - later["x"]) ** 2 + (later["y_2"] - later["y"]) ** 2
        assert tab.set_index("lag").loc[lag, "msd"] == pytest.approx(sq.mean(), rel=1e-12)
        assert tab.set_index("lag").loc[lag, "n"] == len(sq)


def test_mobility_populations_separate_fast_and_slow_beads():
    """Two populations 10x apart in D: the tracks' short-lag MSDs separate them (>= 95 % assigned to their own);
    one population stays one."""
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus
    from napari_dynfit.track import mobility_populations

    tr = simulate_beads_in_focus(2000, 100, D=(1.0, 0.1), fractions=(0.7, 0.3), height=100, depth=20, seed=3)
    lab = mobility_populations(tr, min_length=25)
    truth = tr.drop_duplicates("track_id").set_index("track_id").loc[lab.index, "population"]
    assert lab.nunique() == 2 and (lab.to_numpy() == truth.to_numpy()).mean() >= 0.95
    one = simulate_beads_in_focus(2000, 100, D=(1.0,), height=100, depth=20, seed=3)
    assert mobility_populations(one, min_length=25).nunique() == 1


def test_flagged_ensemble_with_a_population_of_two_frame_mislinks_still_fits():
    """A flagged ensemble (30 % of the beads 10x slower) plus 40 two-frame tracks with large jumps (mislinks):
    the mislinks form a mobility population of their own with a single lag, which has no exponent; the ensemble
    fit and the other populations' fits are still returned (the whole fit used to fail)."""
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus

    rng = np.random.default_rng(2)
    tr = simulate_beads_in_focus(2000, 100, D=(1.0, 0.1), fractions=(0.7, 0.3), height=100, depth=20, seed=3)
    first = int(tr["track_id"].max()) + 1
    start = rng.integers(0, 99, 40)
    jumps = [pd.DataFrame({"track_id": first + i, "frame": [f, f + 1],
                           "y": rng.uniform(0, 500) + np.array([0.0, rng.normal(0, 30)]),
                           "x": rng.uniform(0, 500) + np.array([0.0, rng.normal(0, 30)])}) for i, f in enumerate(start)]
    bad = pd.concat([tr.drop(columns="population"), *jumps], ignore_index=True)
    whole = fit_msd(bad, split_populations=False)
    fit = fit_msd(bad)
    assert not fit.composition_ok and fit.exponent == pytest.approx(whole.exponent, abs=1e-12)
    assert fit.populations and all(p.n_tracks > 2 and len(p.table) > 1 for p in fit.populations)
    assert fit.largest_population.exponent == pytest.approx(1.0, abs=0.1)


def test_flagged_ensemble_too_small_to_split_says_so():
    """15 tracks of the flagged mix: two populations of >= 10 tracks cannot be tested, so the report says there
    are too few tracks rather than that one log-normal fits best."""
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus

    tr = simulate_beads_in_focus(2000, 100, D=(1.0, 0.1), fractions=(0.7, 0.3), height=100, depth=20, seed=3)
    small = tr[tr["track_id"].isin(tr["track_id"].unique()[:15])]
    fit = fit_msd(small)
    assert not fit.composition_ok and fit.populations == () and fit.n_tracks == 15
    assert "too few tracks (15) to split" in fit.composition_report()
    assert "log-normal" not in fit.populations_report()


def test_tracks_on_every_other_frame_are_not_all_called_immobile():
    """Tracks kept on even frames only have no consecutive-frame step, so no von Neumann ratio: they are judged by
    their spread alone (they were all called immobile, and fit_msd refused them) and the fit is Brownian."""
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus

    tr = simulate_beads_in_focus(2000, 100, D=(1.0,), height=100, depth=20, seed=0)
    even = tr[tr["frame"] % 2 == 0]
    from napari_dynfit.track import classify_immobile

    cls = classify_immobile(even, min_length=13)
    assert len(cls) > 100 and cls["immobile"].sum() == 0
    still = even[even["track_id"] == even["track_id"].iloc[0]].assign(y=5.0, x=7.0)  # one stuck bead: still caught
    both = pd.concat([even[even["track_id"] != even["track_id"].iloc[0]], still])
    assert classify_immobile(both, min_length=13).loc[still["track_id"].iloc[0], "immobile"]
    fit = fit_msd(even, min_length=13)
    assert fit.exponent == pytest.approx(1.0, abs=0.12) and fit.composition_ok


def test_population_fits_reuse_the_ensemble_classification(monkeypatch):
    """A flagged mix (30 % of the beads 10x slower) plus 20 still specks, immobile ones kept: the mobility test
    runs once (the populations' fits keep every track and only report the immobile ones), and each population's
    fit equals fitting its tracks on their own (which tests them again)."""
    import napari_dynfit.track.analysis as A
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus

    rng = np.random.default_rng(0)
    tr = simulate_beads_in_focus(2000, 100, D=(1.0, 0.1), fractions=(0.7, 0.3), height=100, depth=20, seed=0)
    first = int(tr["track_id"].max()) + 1
    specks = [pd.DataFrame({"track_id": first + i, "frame": np.arange(80),
                            "y": rng.uniform(0, 500) + rng.normal(0, 0.3, 80),
                            "x": rng.uniform(0, 500) + rng.normal(0, 0.3, 80)}) for i in range(20)]
    tr = pd.concat([tr.drop(columns="population"), *specks], ignore_index=True)
    calls, parts = [], []
    classify, sub = A.classify_immobile, A._fit_msd
    monkeypatch.setattr(A, "classify_immobile", lambda *a, **k: calls.append(1) or classify(*a, **k))
    monkeypatch.setattr(A, "_fit_msd", lambda t, *a, **k: (parts.append(t) if not k["split_populations"] else None)
                        or sub(t, *a, **k))
    fit = fit_msd(tr, min_length=25, keep_immobile=True)
    assert len(calls) == 1 and not fit.composition_ok and len(fit.populations) == len(parts) == 3
    assert sum(len(p.immobile) for p in fit.populations) == len(fit.immobile) == 20
    monkeypatch.undo()
    for p, t in zip(fit.populations, parts):
        alone = fit_msd(t, min_length=25, keep_immobile=True, split_populations=False)
        assert (alone.exponent, alone.prefactor, alone.D, alone.offset, alone.n_tracks, alone.immobile) == (
            p.exponent, p.prefactor, p.D, p.offset, p.n_tracks, p.immobile)
        pd.testing.assert_frame_equal(alone.table, p.table, check_exact=True)


def test_exponent_interval_is_calibrated_on_repeated_movies():
    """``MsdFit.exponent_ci`` (tracks resampled with replacement) against the spread of the exponent over
    independent movies of the same Brownian particles (truth 1, no localisation error, so the fit is unbiased):
    it covers the truth in most movies and its width matches that spread."""
    est, lo, hi = [], [], []
    for seed in range(30):
        fit = fit_msd(_brownian(np.random.default_rng(seed), n=40, frames=30, gaps=True), dt=0.1, drift=False)
        est.append(fit.exponent)
        lo.append(fit.exponent_ci[0])
        hi.append(fit.exponent_ci[1])
    est, lo, hi = map(np.asarray, (est, lo, hi))
    covered = np.mean((lo <= 1.0) & (hi >= 1.0))
    assert 0.8 <= covered <= 1.0, covered
    ratio = np.median((hi - lo) / 2) / (1.96 * est.std(ddof=1))
    assert 0.6 <= ratio <= 1.5, ratio
    assert np.all(lo < est) and np.all(est < hi)


def test_exponent_interval_says_when_tracks_are_too_few(rng, tmp_path, capsys):
    from napari_dynfit.cli import main
    from napari_dynfit.track.analysis import MIN_BOOTSTRAP_TRACKS

    few = fit_msd(_brownian(rng, n=MIN_BOOTSTRAP_TRACKS - 1, frames=30), dt=0.1)
    assert np.isnan(few.exponent_ci).all() and not few.exponent_precise
    assert "too few" in few.precision_report() and few.precision_report().startswith("WARNING")
    many = fit_msd(_brownian(rng, n=400, frames=60), dt=0.1)
    # enough tracks, but no interval (resamples without two lags): the line must not call them too few
    import dataclasses

    degenerate = dataclasses.replace(many, exponent_ci=(np.nan, np.nan))
    assert "too few" not in degenerate.precision_report() and "two lags" in degenerate.precision_report()
    lo, hi = many.exponent_ci
    assert lo < many.exponent < hi and hi - lo < 0.1 and many.exponent_precise
    assert not many.precision_report().startswith("WARNING")
    path = tmp_path / "few.csv"
    _brownian(rng, n=12, frames=20).to_csv(path, index=False)
    assert main(["msd", str(path), "--dt", "0.1"]) == 0
    out = capsys.readouterr()
    js = json.loads(out.out)
    assert js["exponent_ci"][0] < js["exponent"] < js["exponent_ci"][1] and js["exponent_precise"] is False
    assert "95 % interval" in out.err and "pin the exponent down only to" in out.err
