"""Tracking metrics: exact values on hand-made cases and agreement with traccuracy 0.4.3."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.sim import render_labels
from napari_dynfit.track import link
from napari_dynfit.track.formats import read_ctc
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
    cols = [c for c in ("z", "y", "x") if c in df.columns]
    g = nx.DiGraph()
    for r, row in enumerate(df.itertuples()):
        g.add_node(r, t=int(row.frame), **{c: float(getattr(row, c)) for c in cols})
    s, d, _ = _graph(df)
    g.add_edges_from(zip(s.tolist(), d.tolist()))
    return TrackingGraph(g, location_keys=tuple(cols))


FIGURES = {"DET": ("CTCMetrics", "DET"), "TRA": ("CTCMetrics", "TRA"), "LNK": ("CTCMetrics", "LNK"),
           "fn_nodes": ("CTCMetrics", "fn_nodes"), "fp_nodes": ("CTCMetrics", "fp_nodes"),
           "ns_nodes": ("CTCMetrics", "ns_nodes"), "fn_edges": ("CTCMetrics", "fn_edges"),
           "fp_edges": ("CTCMetrics", "fp_edges"), "ws_edges": ("CTCMetrics", "ws_edges"),
           "CHOTA": ("CHOTAMetric", "CHOTA"), "division_f1": ("Div", "Division F1"),
           "division_recall": ("Div", "Division Recall"), "division_precision": ("Div", "Division Precision")}


def _oracle(g, p, matcher):
    """traccuracy 0.4.3's figures (divisions with ``override_matcher`` for many-to-one CTC matchings)."""
    from traccuracy.metrics import CHOTAMetric, CTCMetrics, DivisionMetrics

    m = matcher.compute_mapping(g, p)
    return {"CTCMetrics": CTCMetrics().compute(m).results, "CHOTAMetric": CHOTAMetric().compute(m).results,
            "Div": DivisionMetrics(max_frame_buffer=0).compute(
                m, override_matcher=m.matching_type != "one-to-one").results["Frame Buffer 0"]}


def _assert_equal_to_oracle(ours, by):
    for k, (metric, key) in FIGURES.items():
        want = by[metric][key]
        if np.isnan(want):
            assert np.isnan(ours[k]), k
        else:
            assert ours[k] == pytest.approx(want, abs=1e-9), k


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("spacing", [None, (1.0, 0.7)])
def test_agrees_with_traccuracy_points(rng, spacing):
    pytest.importorskip("traccuracy")
    from traccuracy.matchers import PointMatcher

    gt = lineage(rng, n_roots=12, frames=10)
    det = gt[["frame", "y", "x"]].copy()
    det[["y", "x"]] += rng.normal(0, 0.3, (len(det), 2))  # localisation error: distances matter
    det = det.drop(det.sample(frac=0.03, random_state=1).index)
    extra = gt.sample(6, random_state=2)[["frame", "y", "x"]] + [0, 7.0, -5.0]  # false positives
    pred = link(pd.concat([det, extra], ignore_index=True), max_distance=6, gap_frames=2, divisions=True)
    ours = tracking_metrics(gt, pred, match_distance=1.0, spacing=spacing)
    assert ours["matcher"] == "point"
    assert 0.3 < ours["LNK"] < 0.99 and ours["fp_nodes"] > 0 and ours["fn_nodes"] > 0  # many kinds of errors
    by = _oracle(_traccuracy_graph(gt), _traccuracy_graph(pred), PointMatcher(threshold=1.0, scale_factor=spacing))
    _assert_equal_to_oracle(ours, by)


def _disc_movie(rows, shape):
    """Label movie of discs from rows ``(label, frame, y, x, radius)``."""
    tab = pd.DataFrame(rows, columns=["track_id", "frame", "y", "x", "radius"])
    return render_labels(tab, shape)


def _write_ctc_folder(folder, masks, parents):
    """A valid CTC folder from a label movie: a label present in separate runs of frames becomes one CTC
    track per run (each later run a child of the earlier one); ``parents`` maps label -> mother label."""
    import tifffile

    folder.mkdir()
    masks = masks.copy()
    nxt = int(masks.max()) + 1
    pieces = {}
    for lab in np.unique(masks[masks > 0]).tolist():
        present = np.flatnonzero([(f == lab).any() for f in masks])
        pieces[lab] = []
        for k, run in enumerate(np.split(present, np.flatnonzero(np.diff(present) > 1) + 1)):
            new = lab
            if k:
                new, nxt = nxt, nxt + 1
                seg = masks[run[0]:run[-1] + 1]
                seg[seg == lab] = new
            pieces[lab].append((new, int(run[0]), int(run[-1])))
    lines = []
    for lab, ps in pieces.items():
        mother = pieces.get(parents.get(lab, 0))
        for k, (new, b, e) in enumerate(ps):
            par = ps[k - 1][0] if k else (mother[-1][0] if mother and mother[-1][2] < b else 0)
            lines.append((new, b, e, par))
    np.savetxt(folder / "res_track.txt", np.array(lines, np.int64), fmt="%d")
    for t, f in enumerate(masks):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", f.astype(np.uint16))
    return folder


def _cells_gt():
    """Ground truth: 8 frames; cell 2 divides into 3 and 4 at frame 4; 5/6 and 7/8 are close pairs."""
    rows = []
    for t in range(8):
        rows += [(1, t, 10, 8 + 2 * t, 4), (5, t, 50, 38, 4.5), (6, t, 50, 49, 4.5),
                 (7, t, 12, 46 + 0.5 * t, 4), (8, t, 24, 46 + 0.5 * t, 4)]
        rows += [(2, t, 32, 10 + t, 5)] if t < 4 else [(3, t, 27, 10 + t, 3.5), (4, t, 37, 10 + t, 3.5)]
    return rows, {3: 2, 4: 2}


def _cells_result(rows):
    """The ground truth with deliberate errors: a missed detection, a false positive, a swapped link, a missed
    division and two objects merged in two frames."""
    out, parents = [], {}
    for lab, t, y, x, r in rows:
        if lab == 1 and t == 3:
            continue  # missed detection (track 1 resumes after a gap)
        if lab in (7, 8) and t >= 4:
            lab = 15 - lab  # swapped link
        if lab == 3:
            lab = 2  # missed division: the mother continues into one daughter...
        if lab == 4:
            lab = 12  # ...and the other starts a new track without a parent
        if lab in (5, 6) and t in (5, 6):
            if lab == 5:
                out.append((5, t, 50, 43.5, 9.5))  # one mask over both cells
            continue
        out.append((lab, t, y, x, r * 1.1 if lab == 12 else r))
    out += [(20, t, 56, 8, 3) for t in (2, 3)]  # false positive
    return out, parents


@pytest.mark.filterwarnings("ignore")
def test_masks_with_every_error_kind_agree_with_traccuracy(tmp_path):
    pytest.importorskip("traccuracy")
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher

    rows, gpar = _cells_gt()
    gmov = _disc_movie(rows, (8, 64, 64))
    prow, ppar = _cells_result(rows)
    pmov = _disc_movie(prow, (8, 64, 64))
    _write_ctc_folder(tmp_path / "GT", gmov, gpar)
    _write_ctc_folder(tmp_path / "RES", pmov, ppar)
    gt, gl = read_ctc(tmp_path / "GT")
    pr, pl = read_ctc(tmp_path / "RES")
    ours = tracking_metrics(gt, pr, gt_labels=gl, pred_labels=pl)
    assert ours["matcher"] == "ctc"
    # the errors are there: 1 missed node, 1+1 false positives, 2 merges (non-split), a missed division
    assert ours["fn_nodes"] == 1 and ours["fp_nodes"] == 2 and ours["ns_nodes"] == ours["ns_splits"] == 2
    assert ours["gt_divisions"] == 1 and ours["tp_divisions"] == 0 and ours["fp_edges"] >= 2
    by = _oracle(load_ctc_data(str(tmp_path / "GT")), load_ctc_data(str(tmp_path / "RES")), CTCMatcher())
    _assert_equal_to_oracle(ours, by)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_masks_agree_with_traccuracy(tmp_path, seed):
    """Random lineages drawn as discs; the result shifts, shrinks, drops, merges and relabels masks."""
    pytest.importorskip("traccuracy")
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher

    rng = np.random.default_rng(seed)
    gt_tab = lineage(rng, n_roots=10, frames=8, p_div=0.2)
    rad = rng.uniform(2.5, 4.5, gt_tab["track_id"].max() + 1)
    rows = [(r.track_id, r.frame, r.y, r.x, rad[r.track_id]) for r in gt_tab.itertuples()]
    gmov = _disc_movie(rows, (8, 100, 100))
    par = dict(zip(gt_tab["track_id"], gt_tab["parent_id"]))
    pr_rows = []
    swap = {k: (k % 7) + 100 for k in range(1, 500)}
    for lab, t, y, x, r in rows:
        u = rng.random()
        if u < 0.05:
            continue  # missed
        if u < 0.15:
            y, x = y + rng.normal(0, 2.5), x + rng.normal(0, 2.5)  # shifted (may lose the match)
        if u > 0.9 and t > 3:
            lab = swap[lab]  # relabelled: wrong links, merges with other objects of that label
        r = r * rng.uniform(0.7, 1.3)
        pr_rows.append((lab, t, y, x, r))
    pr_rows += [(400 + k, int(rng.integers(8)), *rng.uniform(5, 95, 2), 3.0) for k in range(4)]
    pmov = _disc_movie(pr_rows, (8, 100, 100))
    pmov_par = {k: v for k, v in par.items() if v > 0}
    _write_ctc_folder(tmp_path / "GT", gmov, {k: v for k, v in par.items() if v > 0})
    _write_ctc_folder(tmp_path / "RES", pmov, pmov_par)
    gt, gl = read_ctc(tmp_path / "GT")
    pr, pl = read_ctc(tmp_path / "RES")
    ours = tracking_metrics(gt, pr, gt_labels=gl, pred_labels=pl)
    assert ours["fn_nodes"] > 0 and ours["fp_nodes"] > 0 and ours["fn_edges"] > 0
    by = _oracle(load_ctc_data(str(tmp_path / "GT")), load_ctc_data(str(tmp_path / "RES")), CTCMatcher())
    _assert_equal_to_oracle(ours, by)


def test_metrics_bad_input():
    from napari_dynfit.errors import InputError

    gt = pd.DataFrame({"track_id": [1], "frame": [0], "y": [0.0], "x": [0.0]})
    with pytest.raises(InputError, match="track_id"):
        tracking_metrics(gt, gt.drop(columns="track_id"))
    with pytest.raises(InputError, match="dimensionality"):
        tracking_metrics(gt, gt.assign(z=0.0))


@pytest.mark.filterwarnings("ignore")
def test_cli_eval_on_masks_uses_ctc_matching(tmp_path, capsys):
    """``dynfit track MASKS --eval GT_FOLDER``: CTC matching, figures equal traccuracy's on the written result."""
    pytest.importorskip("traccuracy")
    import json

    import tifffile
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher

    from napari_dynfit.cli import main

    rows, gpar = _cells_gt()
    _write_ctc_folder(tmp_path / "GT", _disc_movie(rows, (8, 64, 64)), gpar)
    prow, _ = _cells_result(rows)
    tifffile.imwrite(tmp_path / "masks.tif", _disc_movie(prow, (8, 64, 64)).astype(np.uint16), imagej=True,
                     metadata={"axes": "TYX"})
    assert main(["track", str(tmp_path / "masks.tif"), "-o", str(tmp_path / "t.csv"), "--divisions",
                 "--ctc-out", str(tmp_path / "RES"), "--eval", str(tmp_path / "GT")]) == 0
    out = capsys.readouterr().out
    ours = json.loads(out[out.index("{"):])
    assert ours["matcher"] == "ctc" and ours["ns_nodes"] == 2  # the merged pair, seen as CTC sees it
    by = _oracle(load_ctc_data(str(tmp_path / "GT")), load_ctc_data(str(tmp_path / "RES")), CTCMatcher())
    _assert_equal_to_oracle({k: np.nan if v is None else v for k, v in ours.items()}, by)


def test_cli_bad_eval_fails_before_writing(tmp_path, capsys):
    import tifffile

    from napari_dynfit.cli import main

    rows, _ = _cells_gt()
    tifffile.imwrite(tmp_path / "masks.tif", _disc_movie(rows, (8, 64, 64)).astype(np.uint16), imagej=True,
                     metadata={"axes": "TYX"})
    outs = [tmp_path / "t.csv", tmp_path / "RES", tmp_path / "rel.tif"]
    for gt, msg in ((tmp_path / "nowhere", "does not exist"), (tmp_path / "masks.tif", "table file")):
        assert main(["track", str(tmp_path / "masks.tif"), "-o", str(outs[0]), "--ctc-out", str(outs[1]),
                     "--labels-out", str(outs[2]), "--eval", str(gt)]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
        assert not any(p.exists() for p in outs)
