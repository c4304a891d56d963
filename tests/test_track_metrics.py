"""Tracking metrics: exact values on hand-made cases and agreement with traccuracy 0.4.3."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.track import link
from napari_dynfit.track.metrics import _graph, tracking_metrics


def lineage(rng, n_roots=15, frames=12, p_div=0.15):
    """Random lineage tree table (track_id, frame, y, x, parent_id)."""
    rows, tid = [], 0
    cells = []
    for _ in range(n_roots):
        tid += 1
        cells.append((tid, -1, rng.uniform(10, 90, 2)))
    for t in range(frames):
        for k, p, x in cells:
            rows.append((k, t, x[0], x[1], p))
        nxt = []
        for k, p, x in cells:
            if rng.random() < p_div and t < frames - 1:
                for s in (-1, 1):
                    tid += 1
                    nxt.append((tid, k, x + s * np.array([1.5, 0]) + rng.normal(0, 0.3, 2)))
            else:
                nxt.append((k, p, x + rng.normal(0, 1.5, 2)))
        cells = nxt
    return pd.DataFrame(rows, columns=["track_id", "frame", "y", "x", "parent_id"])


def test_perfect_result_scores_one(rng):
    gt = lineage(rng)
    m = tracking_metrics(gt, gt.sample(frac=1, random_state=1), match_distance=0.1)
    for k in ("link_precision", "link_recall", "DET", "TRA", "LNK", "CHOTA", "division_f1"):
        assert m[k] == pytest.approx(1.0), k


def test_hand_counted_errors():
    gt = pd.DataFrame({"track_id": [1, 1, 1, 2, 2, 2], "frame": [0, 1, 2, 0, 1, 2],
                       "y": [0.0, 0, 0, 10, 10, 10], "x": [0.0, 1, 2, 0, 1, 2], "parent_id": -1})
    pred = gt.copy()
    pred.loc[[2, 5], "track_id"] = [2, 1]  # swap at the last frame: 2 wrong edges, 2 missing edges
    pred = pred[pred.index != 4]  # and one missed detection
    m = tracking_metrics(gt, pred, match_distance=0.1)
    assert m["fn_nodes"] == 1 and m["fp_nodes"] == 0
    # gt edges: 4; found: (0->1) only (track 2 lost its middle node, track 1 swapped)
    assert m["fn_edges"] == 3
    assert m["link_recall"] == pytest.approx(1 / 4)
    assert m["DET"] == pytest.approx(1 - 10 / 60)
    # result edges between matched nodes: 0->1 (right), 1->5 (wrong), 3->2 (skip 0->2, wrong)
    assert m["fp_edges"] == 2
    assert m["LNK"] == pytest.approx(max(0.0, 1 - (2 * 1 + 3 * 1.5) / (4 * 1.5)))  # AOGM_A is capped at AOGM_A0
    assert m["TRA"] == pytest.approx(1 - (10 + 2 * 1 + 3 * 1.5) / (60 + 4 * 1.5))


def _traccuracy_graph(df):
    import networkx as nx
    from traccuracy import TrackingGraph

    df = df.reset_index(drop=True)
    g = nx.DiGraph()
    for r, row in enumerate(df.itertuples()):
        g.add_node(r, t=int(row.frame), y=float(row.y), x=float(row.x))
    s, d, _ = _graph(df)
    g.add_edges_from(zip(s.tolist(), d.tolist()))
    return TrackingGraph(g, location_keys=("y", "x"))


@pytest.mark.filterwarnings("ignore")
def test_agrees_with_traccuracy(rng):
    pytest.importorskip("traccuracy")
    from traccuracy._run_metrics import run_metrics
    from traccuracy.matchers import PointMatcher
    from traccuracy.metrics import CHOTAMetric, CTCMetrics, DivisionMetrics

    gt = lineage(rng, n_roots=12, frames=10)
    det = gt[["frame", "y", "x"]]
    det = det.drop(det.sample(frac=0.03, random_state=1).index)
    pred = link(det, max_distance=6, gap_frames=2, divisions=True)
    ours = tracking_metrics(gt, pred, match_distance=0.5)
    assert 0.3 < ours["LNK"] < 0.95 and 0.2 < ours["division_f1"] < 0.95  # a result with many kinds of errors
    res = run_metrics(_traccuracy_graph(gt), _traccuracy_graph(pred), matcher=PointMatcher(threshold=0.5),
                      metrics=[CTCMetrics(), DivisionMetrics(max_frame_buffer=0), CHOTAMetric()])
    res = res[0] if isinstance(res, tuple) else res
    by = {r["metric"]["name"]: r["results"] for r in res}
    for k in ("DET", "TRA", "LNK"):
        assert ours[k] == pytest.approx(by["CTCMetrics"][k], abs=1e-12), k
    assert ours["CHOTA"] == pytest.approx(by["CHOTAMetric"]["CHOTA"], abs=1e-12)
    div = by["DivisionMetrics"]["Frame Buffer 0"]
    assert ours["division_f1"] == pytest.approx(div["Division F1"], abs=1e-12)
    assert ours["division_recall"] == pytest.approx(div["Division Recall"], abs=1e-12)


def test_metrics_bad_input():
    from napari_dynfit.errors import InputError

    gt = pd.DataFrame({"track_id": [1], "frame": [0], "y": [0.0], "x": [0.0]})
    with pytest.raises(InputError, match="track_id"):
        tracking_metrics(gt, gt.drop(columns="track_id"))
    with pytest.raises(InputError, match="dimensionality"):
        tracking_metrics(gt, gt.assign(z=0.0))
