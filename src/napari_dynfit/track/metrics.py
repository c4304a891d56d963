"""Tracking metrics against ground truth, as the field defines them: CTC DET/TRA/LNK, CHOTA, division F1.

Both the ground truth and the result are tracks tables (``track_id, frame, [z,] y, x, parent_id``), each
turned into a graph: nodes are rows; edges join consecutive rows of a track (also across gaps) and the last
row of a mother track to the first row of each daughter track.

**Matching** (which result node stands for which ground-truth node), two matchers:

* masks (``gt_labels`` and ``pred_labels`` given; :func:`match_masks`): the Cell Tracking Challenge's rule
  (Matula et al., PLoS ONE 2015): a result mask matches a ground-truth mask of the same frame when it covers
  *more than half* of the ground-truth mask's pixels. Each ground-truth object matches at most one result
  object, but one result object may cover several ground-truth objects (merged objects: "non-split" nodes).
  A row's mask is the pixels of its frame equal to its ``label`` column (tables from
  :func:`~napari_dynfit.track.formats.read_ctc` and :func:`~napari_dynfit.detect.label_table` carry it).
* points (:func:`match_points`): traccuracy's ``PointMatcher``: per frame, a one-to-one assignment
  minimising the summed Euclidean distance (positions times ``spacing``) over pairs within ``threshold``
  (inclusive), where leaving a ground-truth node unmatched costs ``threshold``.

**Figures** (weights of the CTC's AOGM: non-split node 5, false-negative node 10, false-positive node 1,
missing edge 1.5, extra edge 1, edge of wrong semantics 1):

* ``DET = 1 - min(AOGM_D, 10 N) / (10 N)``, ``AOGM_D = 5 NS + 10 FN + 1 FP`` over nodes (``N`` ground-truth
  nodes; ``NS`` the result nodes that cover several ground-truth nodes, as traccuracy counts them; the
  CTC's own evaluation counts the splits they need, covered objects minus one, the same for pairs).
* ``TRA = 1 - min(AOGM, AOGM_0) / AOGM_0`` with ``AOGM = AOGM_D + 1.5 FN_e + 1 FP_e + 1 WS_e`` and
  ``AOGM_0 = 10 N + 1.5 E`` (``E`` ground-truth edges). Edges are judged between result nodes that match
  exactly one ground-truth node: ``FP_e`` a result edge whose end points' ground-truth nodes are not linked,
  ``FN_e`` a ground-truth edge without that result edge, ``WS_e`` a result edge that is a division edge
  (its source has two or more successors) where the ground-truth one is not, or the reverse.
* ``LNK = 1 - min(AOGM_A, 1.5 E) / (1.5 E)`` with ``AOGM_A = 1.5 FN_e + 1 FP_e + 1 WS_e``.
* division recall / precision / F1 (traccuracy's ``DivisionMetrics``, frame buffer 0): a ground-truth
  division (a node with two or more successors) is correct when its matched result node divides and two of
  its edges are found in the result between matched nodes; recall = correct / ground-truth divisions,
  precision = correct / result divisions, F1 their harmonic mean (NaN when no division is correct, as
  traccuracy reports). traccuracy computes these only for one-to-one matchings; with merged objects we
  give what it computes with ``override_matcher=True``.
* ``CHOTA`` (Kaiser et al. 2024): HOTA over trajectories, a tracklet (the pieces between divisions) extended
  by its ancestors and descendants.
* ``link_recall = 1 - FN_e / E``, ``link_precision`` = result edges judged correct / result edges.

All figures equal traccuracy 0.4.3's (``CTCMatcher`` / ``PointMatcher``, ``CTCMetrics``,
``DivisionMetrics(max_frame_buffer=0)``, ``CHOTAMetric``) on the same inputs (``tests/test_track_metrics.py``).

Why our own rather than traccuracy: it builds networkx graphs node by node (minutes for 10^6 nodes) and is not
a dependency of the package; here the counting is vectorised (numpy, scipy.sparse).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
from scipy.spatial import KDTree

from ..errors import InputError
from ..tables import coord_columns, validate_table

MATCHERS = ("auto", "ctc", "point")


def _graph(df: pd.DataFrame):
    """Edges of a tracks table as row-index arrays ``(src, dst, is_division_edge)``."""
    tid = df["track_id"].to_numpy(np.int64)
    fr = df["frame"].to_numpy(np.int64)
    order = np.lexsort((fr, tid))
    same = tid[order][1:] == tid[order][:-1]
    src, dst = order[:-1][same], order[1:][same]
    first = order[np.insert(~same, 0, True)]
    last = order[np.append(~same, True)]
    ltid = tid[last]
    par = df["parent_id"].to_numpy(np.int64)[first] if "parent_id" in df.columns else np.full(len(first), -1)
    has = par >= 0
    pos = np.searchsorted(ltid, par[has])
    ok = (pos < len(ltid)) & (ltid[np.minimum(pos, len(ltid) - 1)] == par[has])
    psrc, pdst = last[pos[ok]], first[has][ok]
    s = np.concatenate([src, psrc])
    d = np.concatenate([dst, pdst])
    outdeg = np.bincount(s, minlength=len(df))
    is_div = outdeg[s] >= 2
    return s, d, is_div


def match_points(gt: pd.DataFrame, pred: pd.DataFrame, *, threshold: float, spacing=None):
    """traccuracy's ``PointMatcher``: one-to-one per frame within ``threshold`` (inclusive).

    Parameters
    ----------
    gt, pred : pandas.DataFrame
        Tables with ``frame`` and ``[z,] y, x`` (pixels).
    threshold : float
        Largest distance between matched points, in the units of ``spacing`` (pixels without it).
    spacing : sequence of float, optional
        Pixel size along ``([z,] y, x)``: positions are multiplied by it before measuring distances.

    Returns
    -------
    gt_rows, pred_rows : ndarray of int
        Matched row positions. Per frame the assignment minimises ``sum(distance + 0.1) + (threshold + 0.1)``
        per unmatched ground-truth point, in float32, with the same sparse matching scipy solves for
        traccuracy (so ties resolve alike).
    """
    cols = coord_columns(gt)
    if coord_columns(pred) != cols:
        raise InputError("ground truth and result have different dimensionality (2D vs 3D): compare like with like")
    sp = np.ones(len(cols)) if spacing is None else np.asarray(spacing, float)[-len(cols):]
    xg = gt[cols].to_numpy(float) * sp
    xp = pred[cols].to_numpy(float) * sp
    fg, fp = gt["frame"].to_numpy(), pred["frame"].to_numpy()
    gi_all, pj_all = [], []
    eta = float(threshold)
    for f in np.intersect1d(np.unique(fg), np.unique(fp)):
        g_idx, p_idx = np.flatnonzero(fg == f), np.flatnonzero(fp == f)
        n, m = len(g_idx), len(p_idx)
        dm = KDTree(xg[g_idx]).sparse_distance_matrix(KDTree(xp[p_idx]), max_distance=eta,
                                                      output_type="coo_matrix")
        if dm.nnz == 0:
            continue
        # each ground-truth row may go to its own sink at cost eta (soft threshold); +0.1 keeps zeros
        rows = np.concatenate([dm.row, np.arange(n)])
        cols_ = np.concatenate([dm.col, m + np.arange(n)])
        vals = np.concatenate([dm.data, np.full(n, eta)]).astype(np.float32)
        vals += np.float32(0.1)
        i, j = min_weight_full_bipartite_matching(sparse.coo_matrix((vals, (rows, cols_)), shape=(n, n + m)).tocsr())
        keep = j < m
        gi_all.append(g_idx[i[keep]])
        pj_all.append(p_idx[j[keep]])
    if not gi_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(gi_all), np.concatenate(pj_all)


def match_nodes(gt: pd.DataFrame, pred: pd.DataFrame, *, match_distance: float, spacing=None):
    """One-to-one matching of rows per frame within ``match_distance``: :func:`match_points`."""
    return match_points(gt, pred, threshold=match_distance, spacing=spacing)


def _row_of_label(df: pd.DataFrame, what: str):
    """Sorted keys ``frame * K + label`` of a table's rows and the row of each key."""
    if "label" not in df.columns:
        raise InputError(f"{what} table lacks the 'label' column that ties each row to its mask: read masks with "
                         "read_ctc / label_table, or compare points with matcher='point'")
    lab = df["label"].to_numpy(np.int64)
    fr = df["frame"].to_numpy(np.int64)
    return fr, lab


def match_masks(gt: pd.DataFrame, pred: pd.DataFrame, gt_labels, pred_labels):
    """The Cell Tracking Challenge's matching: a result mask matches a ground-truth mask it covers by > 50 %.

    Parameters
    ----------
    gt, pred : pandas.DataFrame
        Tables with ``frame`` and ``label`` (the mask label of the row in its frame).
    gt_labels, pred_labels : array_like of int, shape (t, [z,] y, x)
        Label movies of the same shape (frame ``f`` of a table is index ``f`` of its movie).

    Returns
    -------
    gt_rows, pred_rows : ndarray of int
        Matched row positions: each ground-truth row at most once; a result row may cover several.
    """
    gl, pl = np.asarray(gt_labels), np.asarray(pred_labels)
    if gl.shape != pl.shape:
        raise InputError(f"ground-truth masks {gl.shape} and result masks {pl.shape} differ in shape: "
                         "compare masks of the same movie")
    gfr, glab = _row_of_label(gt, "ground-truth")
    pfr, plab = _row_of_label(pred, "result")
    if glab.size and (gfr.max() >= len(gl) or pfr.size and pfr.max() >= len(pl)):
        raise InputError(f"a table has frames beyond the {len(gl)} frames of the masks: pass the matching masks")
    kmul = int(max(gl.max(initial=0), pl.max(initial=0), glab.max(initial=0), plab.max(initial=0))) + 1
    gkey, pkey = gfr * kmul + glab, pfr * kmul + plab
    go, po = np.argsort(gkey, kind="stable"), np.argsort(pkey, kind="stable")
    gks, pks = gkey[go], pkey[po]
    out_g, out_p = [], []
    for f in np.intersect1d(np.unique(gfr), np.unique(pfr)).tolist():
        g = gl[f].ravel().astype(np.int64)
        p = pl[f].ravel().astype(np.int64)
        fg = g > 0
        gs = np.bincount(g[fg], minlength=1)
        both = fg & (p > 0)
        pair, inter = np.unique(g[both] * kmul + p[both], return_counts=True)
        a, b = pair // kmul, pair % kmul
        ok = 2 * inter > gs[a]  # inter / |gt| > 0.5
        a, b = a[ok], b[ok]
        ig = np.searchsorted(gks, f * kmul + a)
        ip = np.searchsorted(pks, f * kmul + b)
        ig = np.minimum(ig, len(gks) - 1)
        ip = np.minimum(ip, len(pks) - 1)
        node = (gks[ig] == f * kmul + a) & (pks[ip] == f * kmul + b)  # only labels that are nodes
        out_g.append(go[ig[node]])
        out_p.append(po[ip[node]])
    if not out_g:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_g), np.concatenate(out_p)


def _reach(n: int, src: np.ndarray, dst: np.ndarray) -> sparse.csr_matrix:
    """``R[i, j] = 1`` when ``j`` is reachable from ``i`` (itself included) in a DAG."""
    step = sparse.coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n)).tocsr()
    step.data[:] = 1
    reach = sparse.identity(n, format="csr")
    front = reach
    for _ in range(n):
        front = (front @ step).tocsr()
        front.data[:] = 1
        front = front - front.multiply(reach)
        front.eliminate_zeros()
        if front.nnz == 0:
            break
        reach = reach + front
    return reach.tocsr()


def _tracklets(n: int, s: np.ndarray, d: np.ndarray):
    """Tracklet of every node (connected pieces between divisions) and the trajectory matrix of tracklets."""
    outdeg = np.bincount(s, minlength=n)
    keep = outdeg[s] < 2
    adj = sparse.coo_matrix((np.ones(int(keep.sum())), (s[keep], d[keep])), shape=(n, n))
    k, tl = connected_components(adj, directed=True, connection="weak")
    ts, td = tl[s], tl[d]
    cross = ts != td
    r = _reach(k, ts[cross], td[cross])
    traj = r + r.T
    traj.data[:] = 1
    return k, tl, traj.tocsr()


def _chota(ng, npd, gs, gd, ps, pdd, gi, pj, fn_mask, fp_mask) -> float:
    """CHOTA from the matching (``gi``, ``pj``) and the unmatched nodes."""
    kg, tg, trg = _tracklets(ng, gs, gd)
    kp, tp_, trp = _tracklets(npd, ps, pdd)
    fn_t = np.bincount(tg[fn_mask], minlength=kg).astype(float)
    fp_t = np.bincount(tp_[fp_mask], minlength=kp).astype(float)
    ov = sparse.coo_matrix((np.ones(len(gi)), (tg[gi], tp_[pj])), shape=(kg, kp)).tocsr()
    ov.sum_duplicates()
    gsum = trg @ (np.asarray(ov.sum(axis=1)).ravel() + fn_t)
    psum = trp @ (np.asarray(ov.sum(axis=0)).ravel() + fp_t)
    tpa_m = (trg @ ov @ trp).tocsr()
    coo = ov.tocoo()
    tpa = np.asarray(tpa_m[coo.row, coo.col]).ravel()
    fpa = psum[coo.col] - tpa
    fna = gsum[coo.row] - tpa
    total = float(np.sum(coo.data * tpa / (tpa + fpa + fna)))
    union = fp_t.sum() + fn_t.sum() + len(gi)
    return float(np.sqrt(total / union)) if union > 0 else float("nan")


def _edge_lookup(keys: np.ndarray, query: np.ndarray):
    """Position in ``keys`` of each query key, and whether it is there."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    pos = np.minimum(np.searchsorted(sk, query), max(len(sk) - 1, 0))
    found = (sk[pos] == query) if len(sk) else np.zeros(len(query), bool)
    return order[pos], found


class TrackingMetrics(dict):
    """What :func:`tracking_metrics` returns: the figures as a dict (keys as documented there) with the methods of
    the package's results (``docs/api.md``): :meth:`summary`, :meth:`to_dict`, :meth:`save`, :meth:`load`,
    :meth:`plot`."""

    SCORES = ("DET", "TRA", "LNK", "CHOTA", "link_precision", "link_recall", "division_f1")

    def summary(self) -> str:
        """One line of scores and one of error counts."""
        scores = ", ".join(f"{k} {self[k]:.3f}" for k in self.SCORES if k in self)
        errors = ", ".join(f"{k} {self[k]}" for k in ("fn_nodes", "fp_nodes", "fn_edges", "fp_edges", "ws_edges")
                           if k in self)
        return f"tracking metrics ({self.get('matcher')} matching): {scores}\n  errors: {errors}"

    def to_dict(self) -> dict:
        """A plain dict of plain numbers."""
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.items()}

    def save(self, path):
        """Write the figures as JSON (temporary file, then renamed); returns the path."""
        import json
        from pathlib import Path

        from .._io import atomic_path

        path = Path(path).expanduser()
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps({"format": "dynfit-tracking-metrics/1", **self.to_dict()}, indent=1))
        return path

    @classmethod
    def load(cls, path) -> TrackingMetrics:
        """Read figures written by :meth:`save`."""
        import json
        from pathlib import Path

        try:
            doc = json.loads(Path(path).expanduser().read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read tracking metrics from '{path}' ({exc})") from exc
        if doc.pop("format", None) != "dynfit-tracking-metrics/1":
            raise InputError(f"'{path}' is not a tracking-metrics file: write it with TrackingMetrics.save")
        return cls(doc)

    def plot(self, ax=None):
        """The scores (0-1) as bars; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 2.5))
        keys = [k for k in self.SCORES if k in self]
        ax.bar(keys, [self[k] for k in keys], color="tab:green")
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis="x", rotation=45)
        ax.set_title(f"tracking metrics ({self.get('matcher')} matching)")
        return ax


def tracking_metrics(gt: pd.DataFrame, pred: pd.DataFrame, *, match_distance: float = 2.0,
                     spacing=None, gt_labels=None, pred_labels=None, matcher: str = "auto") -> dict:
    """Compare a tracks table with ground truth (see the module docstring for the definitions).

    Parameters
    ----------
    gt, pred : pandas.DataFrame
        Tracks tables (``track_id, frame, [z,] y, x`` and optionally ``parent_id``; ``label`` for masks), pixels.
    match_distance : float
        Point matching: largest distance (units of ``spacing``) between matched detections (inclusive).
    spacing : sequence of float, optional
        Pixel size along ``([z,] y, x)`` for point matching.
    gt_labels, pred_labels : array_like of int, shape (t, [z,] y, x), optional
        The masks of both: with both, the CTC mask matching is used (``matcher="auto"``).
    matcher : {"auto", "ctc", "point"}
        ``"auto"``: ``"ctc"`` when both label movies are given, else ``"point"``.

    Returns
    -------
    TrackingMetrics
        A dict: ``DET, TRA, LNK`` (Cell Tracking Challenge), ``CHOTA``, ``division_precision, division_recall,
        division_f1``, ``link_precision, link_recall``, the ``matcher`` used, the error counts
        (``fn_nodes, fp_nodes, ns_nodes, fn_edges, fp_edges, ws_edges``; ``ns_splits`` the CTC's count of
        non-split errors, covered objects minus one per merged node) and sizes. NaN where a figure is
        undefined (no ground-truth edges for LNK, no divisions or no correct division for division F1).
    """
    if matcher not in MATCHERS:
        raise InputError(f"matcher must be one of {MATCHERS}, got {matcher!r}")
    gt = validate_table(gt, required=("frame", "track_id"), what="ground truth")
    pred = validate_table(pred, required=("frame", "track_id"), what="result")
    gt, pred = gt.reset_index(drop=True), pred.reset_index(drop=True)
    if coord_columns(pred) != coord_columns(gt):
        raise InputError("ground truth and result have different dimensionality (2D vs 3D): compare like with like")
    if "parent_id" not in gt.columns:
        gt["parent_id"] = -1
    if "parent_id" not in pred.columns:
        pred["parent_id"] = -1
    if matcher == "auto":
        matcher = "ctc" if gt_labels is not None and pred_labels is not None else "point"
    if matcher == "ctc":
        if gt_labels is None or pred_labels is None:
            raise InputError("matcher='ctc' needs the masks of both (gt_labels and pred_labels)")
        gi, pj = match_masks(gt, pred, gt_labels, pred_labels)
    else:
        gi, pj = match_points(gt, pred, threshold=match_distance, spacing=spacing)
    ng, npd = len(gt), len(pred)
    gs, gd, _ = _graph(gt)
    ps, pdd, _ = _graph(pred)
    n_edges = len(gs)

    # --- nodes (CTC): a result node covering several ground-truth nodes is non-split
    cnt_p = np.bincount(pj, minlength=npd)
    g_hit = np.zeros(ng, bool)
    g_hit[gi] = True
    tp_p = cnt_p == 1
    fn_nodes, fp_nodes = int(ng - g_hit.sum()), int((cnt_p == 0).sum())
    ns_nodes = int((cnt_p > 1).sum())  # traccuracy counts merged result nodes (CTC: covered objects - 1)
    ns_splits = int((cnt_p[cnt_p > 1] - 1).sum())  # the CTC's count: the splits the merged nodes need
    one = tp_p[pj]
    p2g = np.full(npd, -1, np.int64)
    g2p = np.full(ng, -1, np.int64)  # ground truth -> its result node when that covers only it
    p2g[pj[one]], g2p[gi[one]] = gi[one], pj[one]

    # --- edges (CTC): judged in the result graph induced by the one-to-one matched nodes
    def intertrack(s, d, n):
        return (np.bincount(s, minlength=n)[s] >= 2) | (np.bincount(d, minlength=n)[d] >= 2)

    g_inter, p_inter = intertrack(gs, gd, ng), intertrack(ps, pdd, npd)
    ind = tp_p[ps] & tp_p[pdd]
    pos, in_gt = _edge_lookup(gs * ng + gd, p2g[ps[ind]] * ng + p2g[pdd[ind]])
    fp_edges = int((~in_gt).sum())
    ws_edges = int((g_inter[pos[in_gt]] != p_inter[ind][in_gt]).sum())
    correct_pred_links = int(in_gt.sum())
    pkey = ps * npd + pdd
    ok = (g2p[gs] >= 0) & (g2p[gd] >= 0)
    found = np.zeros(n_edges, bool)
    found[ok] = _edge_lookup(pkey, g2p[gs[ok]] * npd + g2p[gd[ok]])[1]
    fn_edges = int(n_edges - found.sum())

    aogm_d = 5 * ns_nodes + 10 * fn_nodes + 1 * fp_nodes
    aogm_a = 1 * fp_edges + 1.5 * fn_edges + 1 * ws_edges
    det = 1 - min(aogm_d, 10 * ng) / (10 * ng)
    tra0 = 10 * ng + 1.5 * n_edges
    tra = 1 - min(aogm_d + aogm_a, tra0) / tra0
    lnk = 1 - min(aogm_a, 1.5 * n_edges) / (1.5 * n_edges) if n_edges else float("nan")

    # --- divisions (traccuracy's DivisionMetrics, frame buffer 0, on every matched pair)
    g2p_all = np.full(ng, -1, np.int64)
    g2p_all[gi] = pj
    g_out, p_out = np.bincount(gs, minlength=ng), np.bincount(ps, minlength=npd)
    tp_edge = (g2p_all[gs] >= 0) & (g2p_all[gd] >= 0)
    tp_edge[tp_edge] = _edge_lookup(pkey, g2p_all[gs[tp_edge]] * npd + g2p_all[gd[tp_edge]])[1]
    gdiv = np.flatnonzero(g_out >= 2)
    pdiv_mask = p_out >= 2
    cand = g2p_all[gdiv]
    valid = cand >= 0
    valid[valid] = pdiv_mask[cand[valid]]
    first = np.zeros(len(gdiv), bool)  # a result division is judged once (for the first ground truth on it)
    if valid.any():
        _, idx = np.unique(cand[valid], return_index=True)
        first[np.flatnonzero(valid)[idx]] = True
    n_correct = np.bincount(gs[tp_edge], minlength=ng)[gdiv]
    tp_div = int((first & (n_correct == 2)).sum())
    wc_div = int((first & (n_correct != 2)).sum())
    n_gdiv, n_pdiv = len(gdiv), int(pdiv_mask.sum())
    rec = tp_div / n_gdiv if n_gdiv else float("nan")
    prec = tp_div / n_pdiv if n_pdiv else float("nan")
    f1 = 2 * (rec * prec) / (rec + prec) if rec + prec != 0 else float("nan")

    chota = _chota(ng, npd, gs, gd, ps, pdd, gi, pj, ~g_hit, cnt_p == 0)
    return TrackingMetrics({
        "matcher": matcher,
        "DET": float(det), "TRA": float(tra), "LNK": float(lnk), "CHOTA": chota,
        "division_precision": prec, "division_recall": rec, "division_f1": f1,
        "link_precision": correct_pred_links / len(ps) if len(ps) else float("nan"),
        "link_recall": 1 - fn_edges / n_edges if n_edges else float("nan"),
        "gt_nodes": ng, "pred_nodes": npd, "gt_edges": n_edges, "pred_edges": len(ps),
        "fn_nodes": fn_nodes, "fp_nodes": fp_nodes, "ns_nodes": ns_nodes, "ns_splits": ns_splits,
        "fn_edges": fn_edges, "fp_edges": fp_edges, "ws_edges": ws_edges,
        "gt_divisions": n_gdiv, "pred_divisions": n_pdiv, "tp_divisions": tp_div, "wc_divisions": wc_div,
    })
