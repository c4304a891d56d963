"""Track analysis (track.analysis): MSD, its fit with drift removal, van Hove, velocity autocorrelation, against
simulated truth (Brownian motion with known D, drift, active Brownian particles) and trackpy as the oracle."""

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
