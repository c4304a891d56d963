"""Tracking metrics against ground truth: link precision/recall, CTC DET/TRA/LNK, CHOTA, division F1.

Both the ground truth and the result are tracks tables (``track_id, frame, [z,] y, x, parent_id``). Each
table becomes a graph: nodes are rows; edges join consecutive rows of a track (also across gaps) and the
last row of a mother track to the first row of each daughter track. Nodes are matched one-to-one per
frame by minimum total squared distance within ``match_distance`` (for label input, centroids of the
same masks coincide). The definitions follow the Cell Tracking Challenge (AOGM weights: false negative
node 10, false positive node 1, missing edge 1.5, extra edge 1, wrong edge semantics 1), CHOTA
(Kaiser et al. 2024: HOTA with trajectories extended to ancestors and descendants) and division F1 as in
``traccuracy`` (a division is correct when the mother and both daughters match, with no frame
tolerance); ``tests/test_track_metrics.py`` checks our numbers against traccuracy 0.4.3.

Why our own rather than traccuracy: it builds networkx graphs node by node (minutes for 10^6 nodes),
matches points only on integer coordinates, and is not a dependency of the package.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix

from ..errors import InputError
from ..tables import coord_columns, validate_table
from .lap import _assign, _pairs


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


def match_nodes(gt: pd.DataFrame, pred: pd.DataFrame, *, match_distance: float, spacing=None):
    """One-to-one matching of rows per frame within ``match_distance``; returns ``(gt_rows, pred_rows)``."""
    cols = coord_columns(gt)
    if coord_columns(pred) != cols:
        raise InputError("ground truth and result have different dimensionality (2D vs 3D): compare like with like")
    sp = np.ones(len(cols)) if spacing is None else np.asarray(spacing, float)[-len(cols):]
    xg = gt[cols].to_numpy(float) * sp
    xp = pred[cols].to_numpy(float) * sp
    fg, fp = gt["frame"].to_numpy(), pred["frame"].to_numpy()
    gi_all, pj_all = [], []
    for f in np.intersect1d(np.unique(fg), np.unique(fp)):
        g_idx, p_idx = np.flatnonzero(fg == f), np.flatnonzero(fp == f)
        i, j, d = _pairs(xg[g_idx], xp[p_idx], match_distance)
        alt = match_distance ** 2
        parent, _ = _assign(len(g_idx), len(p_idx), i, j, d ** 2, None, 0.5 * alt, 0.5 * alt)
        ok = parent >= 0
        gi_all.append(g_idx[parent[ok]])
        pj_all.append(p_idx[ok])
    if not gi_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(gi_all), np.concatenate(pj_all)


def _chota(gt_tid, pred_tid, gt_par, pred_par, gi, pj) -> float:
    """CHOTA from tracklet overlaps; tracklets are track ids, trajectories add ancestors and descendants."""
    def trajectories(tids, parents):
        uniq = np.unique(tids)
        idx = {t: k for k, t in enumerate(uniq.tolist())}
        par = {}
        for t, p in zip(tids.tolist(), parents.tolist()):
            if p >= 0 and p in idx:
                par[idx[t]] = idx[p]
        children = {}
        for c, p in par.items():
            children.setdefault(p, []).append(c)
        traj = []
        for k in range(len(uniq)):
            s = {k}
            a = k
            while a in par:
                a = par[a]
                s.add(a)
            stack = [k]
            while stack:
                for c in children.get(stack.pop(), []):
                    s.add(c)
                    stack.append(c)
            traj.append(np.array(sorted(s)))
        return uniq, idx, traj

    ug, gidx, gtraj = trajectories(gt_tid, gt_par)
    up, pidx, ptraj = trajectories(pred_tid, pred_par)
    gk = np.searchsorted(ug, gt_tid)
    pk = np.searchsorted(up, pred_tid)
    fn = np.bincount(gk, minlength=len(ug)).astype(float)
    fp = np.bincount(pk, minlength=len(up)).astype(float)
    np.subtract.at(fn, gk[gi], 1)
    np.subtract.at(fp, pk[pj], 1)
    ov = coo_matrix((np.ones(len(gi)), (gk[gi], pk[pj])), shape=(len(ug), len(up))).tocsr()
    ov.sum_duplicates()
    row_sum = np.asarray(ov.sum(axis=1)).ravel()
    col_sum = np.asarray(ov.sum(axis=0)).ravel()
    total = 0.0
    coo = ov.tocoo()
    for i, j, v in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist()):
        gi_t, pj_t = gtraj[i], ptraj[j]
        if len(gi_t) == 1 and len(pj_t) == 1:
            tpa = v
        else:
            tpa = ov[gi_t][:, pj_t].sum()
        gsum = row_sum[gi_t].sum() + fn[gi_t].sum()
        psum = col_sum[pj_t].sum() + fp[pj_t].sum()
        fpa, fna = psum - tpa, gsum - tpa
        total += v * tpa / (tpa + fpa + fna)
    union = fp.sum() + fn.sum() + len(gi)
    return float(np.sqrt(total / union)) if union > 0 else float("nan")


def tracking_metrics(gt: pd.DataFrame, pred: pd.DataFrame, *, match_distance: float = 2.0,
                     spacing=None) -> dict:
    """Compare a tracks table with ground truth.

    Parameters
    ----------
    gt, pred : pandas.DataFrame
        Tracks tables (``track_id, frame, [z,] y, x`` and optionally ``parent_id``), pixels.
    match_distance : float
        Largest distance (physical units of ``spacing``) between matched detections.
    spacing : sequence of float, optional
        Pixel size along ``(z,) y, x``.

    Returns
    -------
    dict
        ``link_precision, link_recall`` (fraction of result/true links that are right), ``DET, TRA, LNK``
        (Cell Tracking Challenge), ``CHOTA``, ``division_precision, division_recall, division_f1`` (NaN when
        there are no divisions in either table), the error counts and sizes.
    """
    gt = validate_table(gt, required=("frame", "track_id"), what="ground truth")
    pred = validate_table(pred, required=("frame", "track_id"), what="result")
    gt, pred = gt.reset_index(drop=True), pred.reset_index(drop=True)
    if "parent_id" not in gt.columns:
        gt["parent_id"] = -1
    if "parent_id" not in pred.columns:
        pred["parent_id"] = -1
    ng, npd = len(gt), len(pred)
    gi, pj = match_nodes(gt, pred, match_distance=match_distance, spacing=spacing)
    g2p = np.full(ng, -1, np.int64)
    p2g = np.full(npd, -1, np.int64)
    g2p[gi], p2g[pj] = pj, gi
    gs, gd, gdiv = _graph(gt)
    ps, pdd, pdiv = _graph(pred)
    gkey = gs * ng + gd
    gsem = dict(zip(gkey.tolist(), gdiv.tolist()))
    # result edges between matched nodes
    tp_nodes = (p2g[ps] >= 0) & (p2g[pdd] >= 0)
    mapped = p2g[ps[tp_nodes]] * ng + p2g[pdd[tp_nodes]]
    in_gt = np.isin(mapped, gkey)
    fp_edges = int((~in_gt).sum())
    sem = np.array([gsem[k] for k in mapped[in_gt].tolist()], bool)
    ws_edges = int((sem != pdiv[tp_nodes][in_gt]).sum())
    correct_pred_links = int(in_gt.sum())
    # ground-truth edges recovered
    ok_nodes = (g2p[gs] >= 0) & (g2p[gd] >= 0)
    pkey = ps * npd + pdd
    found = np.zeros(len(gs), bool)
    found[ok_nodes] = np.isin(g2p[gs[ok_nodes]] * npd + g2p[gd[ok_nodes]], pkey)
    fn_edges = int((~found).sum())
    fn_nodes, fp_nodes = ng - len(gi), npd - len(pj)
    n_edges = len(gs)
    aogm_d = 10 * fn_nodes + 1 * fp_nodes
    aogm_a = 1 * fp_edges + 1.5 * fn_edges + 1 * ws_edges
    det = 1 - min(aogm_d, 10 * ng) / (10 * ng)
    tra0 = 10 * ng + 1.5 * n_edges
    tra = 1 - min(aogm_d + aogm_a, tra0) / tra0
    lnk = 1 - min(aogm_a, 1.5 * n_edges) / (1.5 * n_edges) if n_edges else float("nan")
    # divisions
    def divs(s, d, n):
        deg = np.bincount(s, minlength=n)
        nodes = np.flatnonzero(deg >= 2)
        kids = {k: set(d[s == k].tolist()) for k in nodes.tolist()}
        return kids
    gdivs, pdivs = divs(gs, gd, ng), divs(ps, pdd, npd)
    tp_div = wc_div = 0
    matched_pred_divs = set()
    for gnode, kids in gdivs.items():
        pnode = g2p[gnode]
        if pnode < 0 or pnode not in pdivs:
            continue
        matched_pred_divs.add(pnode)
        if {int(g2p[k]) for k in kids} == pdivs[pnode] and len(kids) == 2:
            tp_div += 1
        else:
            wc_div += 1
    fn_div = len(gdivs) - tp_div
    fp_div = len(pdivs) - len(matched_pred_divs) + wc_div
    denom = 2 * tp_div + fp_div + fn_div
    chota = _chota(gt["track_id"].to_numpy(), pred["track_id"].to_numpy(), gt["parent_id"].to_numpy(),
                   pred["parent_id"].to_numpy(), gi, pj)
    return {
        "link_precision": correct_pred_links / len(ps) if len(ps) else float("nan"),
        "link_recall": 1 - fn_edges / n_edges if n_edges else float("nan"),
        "DET": float(det), "TRA": float(tra), "LNK": float(lnk), "CHOTA": chota,
        "division_precision": tp_div / (tp_div + fp_div) if tp_div + fp_div else float("nan"),
        "division_recall": tp_div / (tp_div + fn_div) if tp_div + fn_div else float("nan"),
        "division_f1": 2 * tp_div / denom if denom else float("nan"),
        "gt_nodes": ng, "pred_nodes": npd, "gt_edges": n_edges, "pred_edges": len(ps),
        "fn_nodes": fn_nodes, "fp_nodes": fp_nodes, "fn_edges": fn_edges, "fp_edges": fp_edges,
        "ws_edges": ws_edges, "gt_divisions": len(gdivs), "pred_divisions": len(pdivs), "tp_divisions": tp_div,
    }
