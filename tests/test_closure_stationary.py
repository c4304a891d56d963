"""Long-window a-posteriori ensembles (models.closure.stationary): streamed statistics equal the stored runs',
checkpoints resume exactly, the paired comparison reads known differences right."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_dynfit.errors import InputError  # noqa: E402
from napari_dynfit.models.closure.kinetic import SuspensionParams, simulate_kinetic_ensemble  # noqa: E402
from napari_dynfit.models.closure.moments import bingham_closure  # noqa: E402
from napari_dynfit.models.closure.stationary import (  # noqa: E402
    concat_series,
    integrated_time,
    kinetic_series,
    merge_comparisons,
    moment_series,
    positivity_of_series,
    series_from_runs,
    stationary_comparison,
)
from napari_dynfit.models.closure.train import flow_statistics, simulate_moments  # noqa: E402

P = SuspensionParams(alpha=-4.5, zeta=0.3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")

KW = dict(save_every=0.25, n=16, n_theta=16, dt=0.025, amplitude=0.2)


def test_streamed_statistics_equal_the_stored_runs_and_resume_exactly(tmp_path):
    runs = simulate_kinetic_ensemble(P, seeds=(5, 6), t_end=1.5, **KW)
    ck = tmp_path / "kin.npz"
    kinetic_series(P, (5, 6), t_end=1.0, branch_t=0.5, chunk=0.5, checkpoint=ck, **KW)  # stops at t = 1
    kin = kinetic_series(P, (5, 6), t_end=1.5, branch_t=0.5, chunk=0.5, checkpoint=ck, **KW)  # resumes
    assert np.allclose(kin["t"], np.arange(7) * 0.25)
    for i, b in enumerate(runs):
        st = flow_statistics(b["concentration"][2:], b["D"][2:], b["velocity"][2:], P.length)
        assert kin["speed"][2:, i].mean() == pytest.approx(st["mean_speed"], rel=1e-12)
        assert kin["order"][2:, i].mean() == pytest.approx(st["order"], rel=1e-12)
        assert np.allclose(kin["spectrum"][2:, i].mean(0), st["spectrum"], rtol=1e-10, atol=0)
        # positivity per frame and member, as simulate_kinetic records it, kept across the resume
        for key, per_frame in b.attrs["positivity"].items():
            assert np.allclose(kin["positivity"][key][:, i], per_frame, rtol=1e-12, atol=1e-15), key
    assert kin["positivity"]["min_ratio"].shape == (7, 2) and (kin["positivity"]["min_ratio"] > 0).all()
    summ = positivity_of_series(kin, 0.5)
    assert summ["min_ratio"] == pytest.approx(kin["positivity"]["min_ratio"][2:].min(), rel=1e-12)
    assert summ["negative_mass_mean"] == pytest.approx(kin["positivity"]["negative_mass"][2:].mean(), abs=1e-15)
    stored = series_from_runs(runs, branch_t=0.5)  # the same from stored runs, and through concat_series
    both = concat_series([stored, kin])
    assert np.allclose(both["positivity"]["min_ratio"], np.concatenate([kin["positivity"]["min_ratio"]] * 2, 1))
    for b in runs:
        del b.attrs["positivity"]  # runs made before it was recorded: none, and a pool with them none
    assert "positivity" not in series_from_runs(runs, branch_t=0.5) and positivity_of_series(
        concat_series([series_from_runs(runs, branch_t=0.5), kin])) is None
    mom = moment_series(P, bingham_closure, kin["branch"], t0=0.5, t_end=1.5, chunk=0.5,
                        checkpoint=tmp_path / "m.npz")
    ref = simulate_moments(runs[1], bingham_closure, t_start=2, frames=4)
    st = flow_statistics(ref["concentration"], ref["D"], ref["velocity"], P.length)
    assert mom["speed"][:, 1].mean() == pytest.approx(st["mean_speed"], rel=1e-10)
    assert not mom["blew_up"].any()
    with pytest.raises(InputError, match=r"kin\.npz was made with other settings \(seeds = \[5, 6\], now \[5, 7\]\); "
                       "remove it or use another$"):  # the user's checkpoint is refused, not replaced
        kinetic_series(P, (5, 7), t_end=1.5, branch_t=0.5, checkpoint=ck, **KW)


def test_a_blown_member_is_flagged_and_the_others_go_on():
    kin = kinetic_series(P, (5, 6), t_end=0.5, branch_t=0.5, **KW)
    branch = kin["branch"].copy()
    branch[1, 1] = 20 * branch[1, 0]  # an orientation harmonic 20x the concentration: no distribution has it
    mom = moment_series(P, bingham_closure, branch, t0=0.5, t_end=1.0)
    assert mom["blew_up"].tolist() == [False, True]
    assert np.isfinite(mom["speed"][1:, 0]).all() and np.isnan(mom["speed"][1:, 1]).all()


def test_moment_series_leaves_the_callers_closure_where_it_is_and_device_auto_runs():
    from napari_dynfit.models.closure.learned import LearnedClosure

    kin = kinetic_series(P, (5,), t_end=0.5, branch_t=0.5, **KW)
    net = LearnedClosure(seed=1)
    with torch.no_grad():
        net.net[-1].weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    ref = moment_series(P, net, kin["branch"], t0=0.5, t_end=1.0)
    auto = moment_series(P, net, kin["branch"], t0=0.5, t_end=1.0, device="auto")  # the GPU where there is one
    assert next(net.parameters()).device.type == "cpu"
    assert np.allclose(auto["speed"], ref["speed"], rtol=1e-9) and not ref["blew_up"].any()
    with pytest.raises(InputError, match="device"):
        moment_series(P, net, kin["branch"], t0=0.5, t_end=1.0, device="tpu")


def test_bench_seed_lists_and_file_names():
    from napari_dynfit.bench.closure import _seed_tag, parse_seeds

    assert parse_seeds("99, 101-103,99") == [99, 101, 102, 103]
    many = parse_seeds("99,101-227")
    assert len(many) == 128 and many[:2] == [99, 101] and many[-1] == 227
    tag = _seed_tag(many)
    assert len(tag) < 40 and tag != _seed_tag(many[:-1]) and tag.startswith("99-227n128")
    assert _seed_tag([99, 101]) == "99-101"  # short lists as before (existing caches stay valid)


def _series(values, frames=40):
    """Series with member ``i`` constant at ``values[i]`` (speed, order, every shell)."""
    v = np.asarray(values, float)
    return {"t": np.arange(frames) * 0.25, "speed": np.tile(v, (frames, 1)), "order": np.tile(v / 2, (frames, 1)),
            "spectrum": np.tile(v[None, :, None], (frames, 1, 17)), "k": np.arange(17.0), "blew_up": np.zeros(len(v))}


def test_paired_comparison_reads_known_differences():
    rng = np.random.default_rng(0)
    k = 1 + 0.2 * rng.standard_normal(12)  # members' stationary values, 20 % seed-to-seed spread
    kin = _series(k)
    res = stationary_comparison(kin, {"close": _series(1.03 * k), "far": _series(1.2 * k),
                                      "noisy": _series(k * (1 + 0.1 * rng.standard_normal(12)))}, first_t=2.0)
    close = res["close"]
    assert close["rel_diff"]["mean_speed"] == pytest.approx(0.03) and close["rel_diff"]["order"] == pytest.approx(0.03)
    assert close["resolution"]["mean_speed"] == pytest.approx(0, abs=1e-12)  # perfectly paired: no noise left
    assert close["resolution_unpaired"]["mean_speed"] > 0.1  # unpaired, the 20 % spread swamps 3 %
    assert close["verdict"] == {"mean_speed": "met", "order": "met", "spectrum": "met"}
    assert res["far"]["verdict"]["mean_speed"] == "missed"
    assert res["noisy"]["verdict"]["mean_speed"] == "unresolved"  # 2 s.e. of 10 % / sqrt(12) ~ 6 %
    assert res["shells"] == [1, 8] and res["members"] == 12
    assert res["kinetic"]["halves"]["speed"]["rel_change"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(InputError, match="not inside"):
        stationary_comparison(kin, {"close": _series(k)}, first_t=2.0, last_t=50.0)


def test_integrated_time_of_an_ar1_series():
    rng = np.random.default_rng(1)
    phi, x = 0.8, np.zeros(20000)
    for i in range(1, len(x)):
        x[i] = phi * x[i - 1] + rng.standard_normal()
    assert integrated_time(x, 1.0) == pytest.approx((1 + phi) / (1 - phi), rel=0.15)  # 9 frames


@pytest.mark.slow
def test_a_posteriori_ensemble_at_alpha_minus_2_5(tmp_path):
    """Issue 19's a-posteriori figures on the bench's paired ensemble (``stationary`` step: 12 kinetic runs at
    ``alpha = -2.5``, ``t = 0..60``, the default-trained closure; about 35 CPU-minutes on one thread at the
    32^2 x 32 reference, ~1-2 CPU-hours at today's 64^2 x 48 (solver version 2), less with
    ``DYNFIT_CLOSURE_CACHE`` naming a folder of the bench's cached runs). Asserts what that ensemble resolved at
    32^2 x 32; not yet re-run at 64^2 x 48 (docs/closures.md, What is not done)."""
    import json
    import os
    from pathlib import Path

    from napari_dynfit.bench import closure as bench

    cache = Path(os.environ.get("DYNFIT_CLOSURE_CACHE") or tmp_path / "runs")
    out = tmp_path / "bench.json"
    assert bench.main(["--cache", str(cache), "--steps", "a_priori,a_posteriori,stationary", "--out", str(out)]) == 0
    res = json.loads(out.read_text())["stationary"]["-2.5"]
    assert res["members"] == 12 and res["window"] == [20.0, 60.0]
    for name in ("learned", "bingham"):
        assert res[name]["blew_up"] == 0  # no blow-up over 50 time units (100x the training unroll)
    # the learned closure's order parameter within 5 % of the kinetic theory's, resolved (difference + 2 paired
    # s.e.); measured +1.6 % +- 1.8 % (docs/closures.md); Bingham's +3.7 % +- 1.7 % is not resolved
    r = res["learned"]
    assert abs(r["rel_diff"]["order"]) + r["resolution"]["order"] <= 0.05 and r["verdict"]["order"] == "met"


def _split(series, idx):
    """The members ``idx`` of a :func:`_series`-like dict."""
    return {key: (v[:, idx] if key in ("speed", "order", "spectrum") else v[idx] if key == "blew_up" else v)
            for key, v in series.items()}


def test_pooled_members_give_the_figures_of_one_run_over_all_of_them():
    rng = np.random.default_rng(2)
    k = 1 + 0.2 * rng.standard_normal(20)
    kin = _series(k) | {"speed": _series(k)["speed"] * (1 + 0.05 * rng.standard_normal((40, 20)))}
    close = _series(k * (1 + 0.05 * rng.standard_normal(20)))
    bad = close["blew_up"].copy()
    bad[3] = 1  # one member blew up in the first part
    close["blew_up"] = bad
    whole = stationary_comparison(kin, {"close": close}, first_t=2.0)
    a, b = np.arange(0, 7), np.arange(7, 20)  # e.g. one part run on a GPU, more members on a CPU
    parts = [stationary_comparison(_split(kin, i), {"close": _split(close, i)}, first_t=2.0) | {"seeds": i.tolist()}
             for i in (a, b)]
    pooled = merge_comparisons(parts)
    assert pooled["members"] == 20 and pooled["close"]["blew_up"] == 1 and pooled["seeds"] == list(range(20))
    assert pooled["close"]["verdict"] == whole["close"]["verdict"]
    for key in ("rel_diff", "resolution", "resolution_unpaired"):
        for name, v in whole["close"][key].items():
            assert pooled["close"][key][name] == pytest.approx(v, rel=1e-12), (key, name)
    for name, v in whole["kinetic"]["halves"].items():
        assert pooled["kinetic"]["halves"][name] == pytest.approx(v, rel=1e-12)
    assert parts[0]["close"]["resolution"]["mean_speed"] > pooled["close"]["resolution"]["mean_speed"]
    # an older result kept only the members' mean speeds: pooled with it, the speed alone is recomputed
    old = {key: v for key, v in stationary_comparison(_split(kin, a), {"close": _series(k[a])}, first_t=2.0).items()
           if key != "per_member"} | {"seeds": a.tolist()}
    new = stationary_comparison(_split(kin, b), {"close": _series(k[b])}, first_t=2.0) | {"seeds": b.tolist()}
    mixed = merge_comparisons([old, new])
    assert set(mixed["close"]["rel_diff"]) == {"mean_speed"} and mixed["members"] == 20
    ref = stationary_comparison(kin, {"close": _series(k)}, first_t=2.0)["close"]
    for key in ("rel_diff", "resolution"):
        assert mixed["close"][key]["mean_speed"] == pytest.approx(ref[key]["mean_speed"], rel=1e-12)
    with pytest.raises(InputError, match="more than one"):
        merge_comparisons([parts[0], parts[0]])
    other = stationary_comparison(_split(kin, b), {"close": _split(close, b)}, first_t=3.0) | {"seeds": [99]}
    with pytest.raises(InputError, match="windows"):
        merge_comparisons([parts[0], other])


def test_bench_merge_pools_out_files(tmp_path, capsys):
    import json

    from napari_dynfit.bench import closure as bench

    rng = np.random.default_rng(3)
    k = 1 + 0.2 * rng.standard_normal(10)
    files = []
    for i, idx in enumerate((np.arange(4), np.arange(4, 10))):
        res = stationary_comparison(_split(_series(k), idx), {"learned": _series(1.02 * k[idx])}, first_t=2.0)
        files.append(tmp_path / f"part{i}.json")
        files[-1].write_text(json.dumps({"stationary": {"-2.5": res | {"seeds": idx.tolist()}}}))
    out = tmp_path / "pooled.json"
    assert bench.main(["--merge", *map(str, files), "--out", str(out)]) == 0
    pooled = json.loads(out.read_text())["stationary"]["-2.5"]
    assert pooled["members"] == 10 and pooled["learned"]["rel_diff"]["mean_speed"] == pytest.approx(0.02)
    assert "pooled from 2 files" in capsys.readouterr().out
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(InputError, match="no stationary results"):
        bench.main(["--merge", str(files[0]), str(tmp_path / "empty.json")])
