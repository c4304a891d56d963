"""Kinetic closures, trust and data safety: a blow-up stops with one line naming when, why and the fix (core, CLI;
nothing written over the user's file), the benchmark's cache never reuses a run made with other settings, and a
stationary checkpoint made with another closure is not resumed."""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_dynfit import closure_defaults as D  # noqa: E402
from napari_dynfit.errors import InputError  # noqa: E402
from napari_dynfit.fields import FieldBundle  # noqa: E402
from napari_dynfit.models.closure.kinetic import SuspensionParams, simulate_kinetic  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: a tiny run that blows up: steric alignment 17 (The Well's largest) on 8 angles, non-finite by t = 0.45
BLOWS = dict(n=8, n_theta=8, dt=0.01, t_end=2.0, amplitude=0.2)


def test_a_kinetic_blow_up_stops_with_the_time_the_cause_and_the_fix():
    with pytest.raises(InputError) as err:
        simulate_kinetic(SuspensionParams(alpha=-4, zeta=17), **BLOWS)
    msg = str(err.value)
    assert "\n" not in msg
    t = float(re.search(r"blew up at t = ([0-9.]+)", msg).group(1))
    assert 0.3 <= t <= 0.6  # NaN from t = 0.45 on (checked every 10 steps)
    for fix in ("numerical instability", "smaller zeta (now 17;", "smaller dt (now 0.01)", "n_theta, now 8"):
        assert fix in msg


def test_the_same_run_resolved_does_not_stop():
    b = simulate_kinetic(SuspensionParams(alpha=-4, zeta=0.3), **BLOWS)  # the defaults' zeta: no blow-up
    assert np.isfinite(b["velocity"]).all() and b.coords["t"][-1] == pytest.approx(2.0)


def test_cli_simulate_blow_up_is_one_line_and_leaves_the_users_file(tmp_path, capsys):
    from napari_dynfit.cli import main

    out = tmp_path / "run.npz"
    out.write_bytes(b"the user's own file")
    code = main(["closure", "simulate", "-o", str(out), "--overwrite", "--zeta", "17", "--size", "8", "--angles",
                 "8", "--t-end", "2", "--threads", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "blew up at t = " in err and "smaller zeta (now 17;" in err
    assert out.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]  # no temporary left behind


def test_moment_model_blow_up_names_when_and_is_still_counted_as_one():
    from napari_dynfit.models.closure.moment_model import MomentBlowUp, MomentSolver, isotropic_state
    from napari_dynfit.models.closure.moments import bingham_closure

    solver = MomentSolver(SuspensionParams(alpha=-4, zeta=0.3), bingham_closure, n=8, dt=0.05)
    state = isotropic_state(8)
    state[1] = 20.0  # an orientation harmonic 20x the concentration: no distribution has it
    with pytest.raises(MomentBlowUp, match=r"blew up 0\.1 time units into the run \(orientation") as err:
        solver.rollout(state, 4, every=2)
    assert isinstance(err.value, FloatingPointError) and isinstance(err.value, InputError)


# --- the benchmark's cache ---------------------------------------------------------------------------------
def _cached_bundle(alpha, seed, t_end, /, **change):
    """A stand-in for a cached benchmark run: the attributes and frames of one, the fields constant."""
    from napari_dynfit.bench.closure import kinetic_settings

    t = np.arange(int(round(t_end / D.SAVE_EVERY)) + 1) * D.SAVE_EVERY
    attrs = {"kinetic": {**kinetic_settings(alpha, seed=seed), **change},
             "generator": "napari_dynfit.models.closure.kinetic.simulate_kinetic"}
    x = np.arange(D.GRID) * 10.0 / D.GRID
    return FieldBundle({"concentration": np.ones((len(t), D.GRID, D.GRID))}, {"t": t, "y": x, "x": x.copy()},
                       {"concentration": "scalar"}, (True, True), attrs)


@pytest.fixture
def fake_simulations(monkeypatch):
    """Replace the kinetic simulator by a recorder returning a marked stand-in (the real runs take minutes)."""
    from napari_dynfit.models.closure import kinetic

    calls = []

    def fake(params, *, seeds, t_end, **kw):
        calls.append((params.alpha, params.zeta, tuple(seeds), t_end))
        out = []
        for s in seeds:
            b = _cached_bundle(params.alpha, s, t_end)
            b.attrs["fresh"] = True
            out.append(b)
        return out

    monkeypatch.setattr(kinetic, "simulate_kinetic_ensemble", fake)
    monkeypatch.setattr(kinetic, "simulate_kinetic",
                        lambda params, *, seed, **kw: fake(params, seeds=(seed,), **kw)[0])
    return calls


@pytest.mark.parametrize("change", [{"zeta": 1.0}, {"amplitude": 0.01}, {"seed": 7}, {"n_theta": 64},
                                    {"dt": 0.005}, {"solver_version": 0}, "frames"])
def test_bench_cache_entry_made_with_other_settings_is_recomputed(tmp_path, fake_simulations, change, capsys):
    from napari_dynfit.bench.closure import ensemble_runs_for, kinetic_settings, run_for

    stale = (_cached_bundle(-4.0, 40, D.T_END / 2) if change == "frames"
             else _cached_bundle(-4.0, 40, D.T_END, **change))
    stale.save(tmp_path / "kinetic_alpha-4.00.npz")
    b = run_for(-4.0, tmp_path)
    assert b.attrs.get("fresh") and fake_simulations == [(-4.0, D.ZETA, (40,), D.T_END)]
    err = capsys.readouterr().err
    assert "recomputing the cached run kinetic_alpha-4.00.npz" in err
    if change != "frames":  # names the setting that differs, with both values
        (key, was), = change.items()
        assert f"made with other settings ({key} = {was}, now {kinetic_settings(-4.0, seed=40)[key]})" in err
    assert FieldBundle.load(tmp_path / "kinetic_alpha-4.00.npz").attrs.get("fresh")  # replaced
    again = run_for(-4.0, tmp_path)  # the replaced entry now matches: reused
    assert again.attrs.get("fresh") and len(fake_simulations) == 1

    stale = _cached_bundle(-4.5, 99, 60.0, **({"zeta": 1.0} if change == "frames" else change))
    stale.save(tmp_path / "kinetic_ens_alpha-4.50_seed99.npz")
    _cached_bundle(-4.5, 101, 60.0).save(tmp_path / "kinetic_ens_alpha-4.50_seed101.npz")  # valid
    members = ensemble_runs_for(-4.5, (99, 101), tmp_path)
    assert fake_simulations[1] == (-4.5, D.ZETA, (99,), 60.0)
    assert members[0].attrs.get("fresh") and not members[1].attrs.get("fresh")


def test_bench_cache_entry_made_with_these_settings_is_reused(tmp_path, fake_simulations, capsys):
    from napari_dynfit.bench.closure import run_for
    from napari_dynfit.models.closure.kinetic import SOLVER_VERSION

    _cached_bundle(-4.0, 40, D.T_END).save(tmp_path / "kinetic_alpha-4.00.npz")
    b = run_for(-4.0, tmp_path)
    assert fake_simulations == [] and not b.attrs.get("fresh")
    old = _cached_bundle(-4.0, 40, D.T_END)
    del old.attrs["kinetic"]["solver_version"]  # runs cached before the version was recorded: version 1, whose
    old.save(tmp_path / "kinetic_alpha-4.00.npz")  # 2/3 angular dealiasing version 2 replaced: recomputed
    assert run_for(-4.0, tmp_path).attrs.get("fresh") and len(fake_simulations) == 1
    assert f"solver_version = 1, now {SOLVER_VERSION}" in capsys.readouterr().err and SOLVER_VERSION >= 2


def test_stationary_checkpoint_of_another_closure_is_not_resumed(tmp_path, capsys):
    from napari_dynfit.models.closure.learned import LearnedClosure
    from napari_dynfit.models.closure.moments import bingham_closure
    from napari_dynfit.models.closure.stationary import kinetic_series, moment_series

    P = SuspensionParams(alpha=-4.5, zeta=0.3)
    kin = kinetic_series(P, (5,), t_end=0.5, branch_t=0.5, save_every=0.25, n=16, n_theta=16, dt=0.025,
                         amplitude=0.2)
    ck = tmp_path / "m.npz"
    moment_series(P, bingham_closure, kin["branch"], t0=0.5, t_end=1.0, chunk=0.25, checkpoint=ck)
    net = LearnedClosure(seed=1)
    with torch.no_grad():
        net.net[-1].weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match=r"m\.npz was made with other settings \(closure = '[0-9a-f]{10}'\.\.\., "
                       r"now '[0-9a-f]{10}'\.\.\.\); remove it or use another$") as err:
        moment_series(P, net, kin["branch"], t0=0.5, t_end=1.0, chunk=0.25, checkpoint=ck)
    assert "\n" not in str(err.value)
    fresh = moment_series(P, net, kin["branch"], t0=0.5, t_end=1.0, checkpoint=ck, stale="restart")
    ref = moment_series(P, net, kin["branch"], t0=0.5, t_end=1.0)
    assert np.array_equal(fresh["speed"], ref["speed"]) and "starting afresh" in capsys.readouterr().err
    again = moment_series(P, net, kin["branch"], t0=0.5, t_end=1.0, checkpoint=ck)  # now it is the net's
    assert np.array_equal(again["speed"], ref["speed"])
