"""Linking: correct-link fractions on random particles, motion models, gap closing, divisions, cells."""

import numpy as np
import pandas as pd
import pytest

from _track_data import relabel_per_frame
from napari_dynfit.errors import InputError
from napari_dynfit.track import LinkParams, link
from napari_dynfit.track.metrics import tracking_metrics


def brownian(rng, n, frames, step_fraction, side=None, drop=0.0):
    """Particles placed at random, Brownian steps with mean ``step_fraction * 0.5 sqrt(area / N)``."""
    side = side or 10.0 * np.sqrt(n)
    nn = 0.5 * np.sqrt(side * side / n)
    mean_step = step_fraction * nn
    pos = rng.uniform(0, side, (n, 2)) + np.cumsum(rng.normal(0, mean_step / np.sqrt(np.pi / 2), (frames, n, 2)), 0)
    truth = pd.DataFrame({"track_id": np.tile(np.arange(1, n + 1), frames), "frame": np.repeat(np.arange(frames), n),
                          "y": pos[..., 0].ravel(), "x": pos[..., 1].ravel()})
    keep = rng.random(len(truth)) >= drop
    return truth, truth[keep][["frame", "y", "x"]], mean_step  # det keeps truth's index


def self_propelled(n, frames, step_fraction, seed=0):
    from napari_dynfit.sim import simulate_abp

    side = 10.0 * np.sqrt(n)
    step = step_fraction * 0.5 * np.sqrt(side * side / n)
    traj = simulate_abp(n, (frames - 1) * 10, dim=2, box=side, dt=0.1, v0=step, Dr=0.05, save_every=10, seed=seed)
    p = traj.unwrapped
    truth = pd.DataFrame({"track_id": np.tile(np.arange(1, n + 1), p.shape[0]),
                          "frame": np.repeat(np.arange(p.shape[0]), n), "y": p[..., 0].ravel(), "x": p[..., 1].ravel()})
    return truth, truth[["frame", "y", "x"]].copy(), step


def test_velocity_model_beats_brownian_for_self_propelled():
    truth, det, step = self_propelled(500, 15, 0.4)
    scores = {}
    for motion in ("brownian", "velocity"):
        m = tracking_metrics(truth, link(det, max_distance=2 * step, motion=motion), match_distance=1e-3)
        scores[motion] = m["link_recall"]
    assert scores["velocity"] >= 0.95
    assert scores["velocity"] > scores["brownian"] + 0.02
    # with no parameters given the velocity model is chosen from the data
    auto = link(det)
    assert next(c for c in auto.attrs["link_choices"] if c["name"] == "motion")["value"] == "velocity"
    assert tracking_metrics(truth, auto, match_distance=1e-3)["link_recall"] >= 0.95


def test_drift_model_follows_a_flow(rng):
    """Particles carried by a uniform flow much faster than their diffusion: drift beats Brownian."""
    n, frames = 400, 12
    side = 10.0 * np.sqrt(n)
    flow = np.array([2.5, 1.0])  # px per frame, half the nn distance
    pos = rng.uniform(0, side, (n, 2))
    steps = rng.normal(0, 0.4, (frames, n, 2)) + flow
    steps[0] = 0
    p = pos + np.cumsum(steps, 0)
    truth = pd.DataFrame({"track_id": np.tile(np.arange(1, n + 1), frames), "frame": np.repeat(np.arange(frames), n),
                          "y": p[..., 0].ravel(), "x": p[..., 1].ravel()})
    det = truth[["frame", "y", "x"]]
    rec = {m: tracking_metrics(truth, link(det, max_distance=3.5, motion=m), match_distance=1e-3)["link_recall"]
           for m in ("brownian", "drift")}
    assert rec["drift"] >= 0.97
    assert rec["drift"] > rec["brownian"] + 0.03


def test_gap_closing_recovers_missing_detections(rng):
    truth, det, step = brownian(rng, 300, 20, 0.1, drop=0.05)
    truth = truth.loc[det.index]  # ground truth of what was detected: its tracks skip the missing frames
    plain = tracking_metrics(truth, link(det, max_distance=4 * step, gap_frames=0), match_distance=1e-3)
    closed_tracks = link(det, max_distance=4 * step, gap_frames=2)
    closed = tracking_metrics(truth, closed_tracks, match_distance=1e-3)
    assert closed["link_recall"] > plain["link_recall"] + 0.03
    assert closed["link_recall"] >= 0.98  # the skip edges over the gaps are links of this ground truth
    # far fewer broken tracks
    assert closed_tracks["track_id"].nunique() < 1.2 * 300


def test_anisotropic_spacing_uses_physical_distances(rng):
    n, frames = 200, 8
    pos = rng.uniform(0, 100, (n, 3))
    steps = rng.normal(0, 0.5, (frames, n, 3))
    steps[0] = 0
    p = pos + np.cumsum(steps, 0)  # physical units, isotropic motion
    spacing = np.array([0.25, 1.0, 1.0])  # fine z sampling: z moves 4 pixels per physical unit
    truth = pd.DataFrame({"track_id": np.tile(np.arange(1, n + 1), frames), "frame": np.repeat(np.arange(frames), n),
                          "z": p[..., 0].ravel() / 0.25, "y": p[..., 1].ravel(), "x": p[..., 2].ravel()})
    det = truth[["frame", "z", "y", "x"]].copy()
    det.attrs["spacing"] = spacing.tolist()
    good = tracking_metrics(truth, link(det, max_distance=2.5), match_distance=1e-3)["link_recall"]
    pixel = tracking_metrics(truth, link(det, max_distance=2.5, spacing=[1, 1, 1]), match_distance=1e-3)["link_recall"]
    assert good >= 0.99
    assert good > pixel + 0.2


def test_3d_dividing_cells_from_relabelled_masks():
    """Simulator's 3D dividing cells, masks relabelled per frame, no parameters given: division F1 >= 0.95."""
    from napari_dynfit.detect import label_table
    from napari_dynfit.sim import dividing_cells_3d

    s = dividing_cells_3d(seed=0)
    rel = relabel_per_frame(s.labels)
    det = label_table(rel, spacing=s.spacing)
    tracks = link(det, labels=rel)
    choices = {c["name"]: c["value"] for c in tracks.attrs["link_choices"]}
    assert choices["divisions"] is True
    assert 0.8 <= choices["daughter_size"] <= 1.2  # spheres divide into spheres of the same size
    m = tracking_metrics(s.truth, tracks, match_distance=1.0, spacing=s.spacing)
    assert m["gt_divisions"] >= 20
    assert m["division_f1"] >= 0.95
    assert m["LNK"] >= 0.98
    # without divisions allowed, no division is found
    m0 = tracking_metrics(s.truth, link(det, max_distance=6.0, labels=rel, alternative_cost=2.0, divisions=False),
                          match_distance=1.0, spacing=s.spacing)
    assert m0["pred_divisions"] == 0 and m0["tp_divisions"] == 0 and np.isnan(m0["division_f1"])  # traccuracy: NaN


def test_point_divisions(rng):
    """Centroids only: a mother splits into two daughters 3 px apart, isolated from others."""
    rows = []
    tid = 0
    for k in range(20):
        c = np.array([20.0 * (k // 5), 20.0 * (k % 5)]) + 10
        tid += 1
        m = tid
        for t in range(4):
            rows.append((m, t, *(c + rng.normal(0, 0.2, 2)), -1))
        for s in (-1, 1):
            tid += 1
            for t in range(4, 8):
                rows.append((tid, t, *(c + s * np.array([1.5, 0]) + rng.normal(0, 0.2, 2)), m))
    truth = pd.DataFrame(rows, columns=["track_id", "frame", "y", "x", "parent_id"])
    tracks = link(truth[["frame", "y", "x"]], max_distance=4.0, divisions=True)
    m = tracking_metrics(truth, tracks, match_distance=1e-3)
    assert m["division_f1"] == 1.0
    assert m["LNK"] == 1.0


def test_output_keeps_columns_and_order(rng):
    _, det, step = brownian(rng, 50, 5, 0.1)
    det["intensity"] = rng.random(len(det))
    tracks = link(det.sample(frac=1, random_state=0), max_distance=4 * step)
    assert "intensity" in tracks.columns
    assert len(tracks) == len(det)
    assert (tracks.groupby("track_id")["frame"].apply(lambda f: f.is_monotonic_increasing)).all()


@pytest.mark.parametrize("kwargs, msg", [
    (dict(max_distance=-1), "max_distance"),
    (dict(motion="ballistic"), "motion"),
    (dict(gap_frames=1.5), "gap_frames"),
    (dict(daughter_size=0), "daughter_size"),
])
def test_bad_parameters(kwargs, msg):
    with pytest.raises(InputError, match=msg):
        LinkParams(**kwargs)


def test_bad_tables():
    with pytest.raises(InputError, match="empty"):
        link(pd.DataFrame({"frame": [], "y": [], "x": []}))
    with pytest.raises(InputError, match="NaN"):
        link(pd.DataFrame({"frame": [0, 1], "y": [1.0, np.nan], "x": [1.0, 2.0]}))
    with pytest.raises(InputError, match="label"):
        link(pd.DataFrame({"frame": [0, 1], "y": [1.0, 1.0], "x": [1.0, 2.0]}), labels=np.ones((2, 4, 4), int))


@pytest.mark.slow
def test_issue_figures_random_particles():
    """The issue's linking figures at full size: Brownian 0.15 >= 0.975; self-propelled 0.4: velocity >= 0.95,
    above Brownian, and at least laptrack's and trackpy's accuracy on the same detections."""
    from napari_dynfit.bench import tracking as bench

    res = bench.accuracy(n=1000, frames=30)
    b = res["brownian_0.15"]
    assert b["ours"]["correct_link_fraction"] >= 0.975
    assert b["ours_defaults"]["correct_link_fraction"] >= 0.975  # no parameters given
    sp = res["self_propelled_0.4"]
    ours = sp["ours_velocity"]["correct_link_fraction"]
    assert ours >= 0.95
    assert ours > sp["ours_brownian"]["correct_link_fraction"] + 0.02
    assert sp["ours_defaults"]["correct_link_fraction"] >= 0.95  # no parameters given: the velocity model is chosen
    for other in ("laptrack", "trackpy", "trackpy_velocity_predict"):
        assert ours >= sp[other]["correct_link_fraction"] - 1e-9


@pytest.mark.slow
def test_real_ctc_bacteria_from_relabelled_masks():
    """Real CTC ground truth (bacteria movie, fetched outside the repository), masks relabelled per frame, no
    parameters given: set DYNFIT_CTC_TRA to its TRA folder."""
    import os

    from napari_dynfit.detect import label_table
    from napari_dynfit.track.formats import read_ctc

    path = os.environ.get("DYNFIT_CTC_TRA")
    if not path or not os.path.isdir(path):
        pytest.skip("set DYNFIT_CTC_TRA to a CTC TRA folder (man_track.txt + masks)")
    gt, labels = read_ctc(path)
    rel = relabel_per_frame(labels)
    tracks = link(label_table(rel), labels=rel)  # no parameters: all estimated from the masks
    m = tracking_metrics(gt, tracks, match_distance=0.5)
    print({k: m[k] for k in ("LNK", "TRA", "CHOTA", "division_f1")})
    assert m["LNK"] >= 0.90
    assert m["division_f1"] >= 0.85
