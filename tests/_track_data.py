"""Generated tracking data with known truth for the tracking tests (not a test module).

* :func:`rod_colony`: a 2D colony of rod-shaped cells that grow, divide in halves along their long axis and are
  pushed outwards by the colony's growth (a radial flow that grows with the distance from the centre), rendered
  as a label movie (capsules; where two overlap the one painted later wins) with the lineage.
* :func:`static_and_free`: free Brownian particles among static ones (beads diffusing among specks stuck to the glass),
  optionally with missed and false detections; :func:`long_step_recall` scores the links of its long steps.
* :func:`relabel_per_frame`: give each frame's labels the values 1..n in a random order, so that the label values
  carry no identity across frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def relabel_per_frame(labels, seed=0):
    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    for t in range(labels.shape[0]):
        ids = np.unique(labels[t])
        ids = ids[ids > 0]
        lut = np.zeros(labels[t].max() + 1, labels.dtype)
        lut[ids] = rng.permutation(len(ids)) + 1
        out[t] = lut[labels[t]]
    return out


def _paint_capsule(img, value, c, u, half_len, half_w):
    r = half_len + half_w
    lo = np.maximum(np.floor(c - r).astype(int), 0)
    hi = np.minimum(np.ceil(c + r).astype(int) + 1, img.shape)
    if np.any(hi <= lo):
        return
    yy, xx = np.mgrid[lo[0]:hi[0], lo[1]:hi[1]]
    py, px = yy - c[0], xx - c[1]
    s = np.clip(py * u[0] + px * u[1], -half_len, half_len)
    d2 = (py - s * u[0]) ** 2 + (px - s * u[1]) ** 2
    view = img[lo[0]:hi[0], lo[1]:hi[1]]
    view[d2 <= half_w ** 2] = value


def _relax(pos, theta, ln, width, iterations=15):
    """Push overlapping rods apart: each rod is a chain of discs; overlaps move and turn the rods."""
    from scipy.spatial import cKDTree

    n_d = 7
    s = np.linspace(-0.5, 0.5, n_d)
    for _ in range(iterations):
        u = np.stack([np.sin(theta), np.cos(theta)], 1)
        off = (ln - width)[:, None, None] * s[None, :, None] * u[:, None, :]
        pts = (pos[:, None, :] + off).reshape(-1, 2)
        owner = np.repeat(np.arange(len(pos)), n_d)
        pairs = cKDTree(pts).query_pairs(width, output_type="ndarray")
        pairs = pairs[owner[pairs[:, 0]] != owner[pairs[:, 1]]]
        if len(pairs) == 0:
            return pos, theta
        d = pts[pairs[:, 1]] - pts[pairs[:, 0]]
        dist = np.maximum(np.linalg.norm(d, axis=1), 1e-6)
        push = ((width - dist) / 2 / dist)[:, None] * d
        f = np.zeros_like(pts)
        np.add.at(f, pairs[:, 0], -push)
        np.add.at(f, pairs[:, 1], push)
        f = f.reshape(len(pos), n_d, 2)
        pos = pos + f.mean(1)
        arm = off.reshape(len(pos), n_d, 2)
        torque = arm[..., 0] * f[..., 1] - arm[..., 1] * f[..., 0]
        inertia = np.maximum((arm ** 2).sum((1, 2)), 1e-6)
        theta = theta - np.clip(torque.sum(1) / inertia, -0.2, 0.2)
    return pos, theta


def rod_colony(seed=0, *, n_initial=3, n_frames=30, doubling=6.0, width=9.0, length=36.0, noise=1.0,
               size=(512, 512), drift=(0.0, 0.0), jump=None):
    """Growing colony of rods; returns ``(labels, truth)``.

    ``doubling`` is the cell-cycle time in frames; a cell of birth length ``length`` (pixels, tip to tip) divides at
    twice that (+- 20 %) into two halves. Every frame each centre moves with the colony's growth flow
    ``(x - centre) (2^(1/doubling) - 1) / 2`` (area doubles per cycle), ``drift`` (pixels per frame) and Gaussian
    noise of ``noise`` pixels per axis; orientations jitter by 0.05 rad; then overlapping rods push each other
    apart (disc chains, a few relaxation sweeps). ``jump = (frame, (dy, dx))`` moves everything by that much on
    that frame (a stage jump). ``truth`` holds the centroids of the
    rendered masks: ``track_id`` (= label value), ``frame, y, x, parent_id``.
    """
    rng = np.random.default_rng(seed)
    size = np.asarray(size, float)
    centre = size / 2
    g = np.log(2) / doubling
    pos = centre + rng.normal(0, length, (n_initial, 2))
    theta = rng.uniform(0, np.pi, n_initial)
    ln = length * np.exp(rng.uniform(0, np.log(2), n_initial))
    div_len = 2 * length * rng.uniform(0.8, 1.2, n_initial)
    ids = np.arange(1, n_initial + 1)
    parent = {int(i): -1 for i in ids}
    next_id = n_initial + 1
    labels = np.zeros((n_frames, int(size[0]), int(size[1])), np.int32)
    for t in range(n_frames):
        if t > 0:
            shift = np.asarray(drift, float) + (np.asarray(jump[1], float) if jump and t == jump[0] else 0.0)
            pos = pos + (pos - centre) * (np.exp(g / 2) - 1) + shift + rng.normal(0, noise, pos.shape)
            centre = centre + shift
            theta = theta + rng.normal(0, 0.05, len(theta))
            ln = ln * np.exp(g)
            div = ln >= div_len
            if div.any():
                k = np.flatnonzero(div)
                u = np.stack([np.sin(theta[k]), np.cos(theta[k])], 1)
                new_pos = np.concatenate([pos[k] + u * ln[k, None] / 4, pos[k] - u * ln[k, None] / 4])
                new_ids = np.arange(next_id, next_id + 2 * len(k))
                next_id += 2 * len(k)
                for m, a, b in zip(ids[k], new_ids[:len(k)], new_ids[len(k):]):
                    parent[int(a)] = parent[int(b)] = int(m)
                keep = ~div
                pos = np.concatenate([pos[keep], new_pos])
                theta = np.concatenate([theta[keep], np.tile(theta[k], 2) + rng.normal(0, 0.05, 2 * len(k))])
                ln = np.concatenate([ln[keep], np.tile(ln[k] / 2, 2)])
                div_len = np.concatenate([div_len[keep], 2 * length * rng.uniform(0.8, 1.2, 2 * len(k))])
                ids = np.concatenate([ids[keep], new_ids])
            pos, theta = _relax(pos, theta, ln, width)
        for k in rng.permutation(len(ids)):
            u = np.array([np.sin(theta[k]), np.cos(theta[k])])
            _paint_capsule(labels[t], ids[k], pos[k], u, max(ln[k] - width, 0) / 2, width / 2)
    from napari_dynfit.detect import label_table

    truth = label_table(labels)
    truth["track_id"] = truth["label"]
    # a cell hidden in some frames keeps its track; its daughters point to it
    truth["parent_id"] = [parent[int(i)] for i in truth["track_id"]]
    present = set(truth["track_id"].tolist())
    truth.loc[~truth["parent_id"].isin(present), "parent_id"] = -1
    return labels, truth[["track_id", "frame", "y", "x", "parent_id", "label", "size"]].reset_index(drop=True)


def static_and_free(rng, n_free, n_static, frames, sigma=3.9, *, jitter=0.3, size=(480, 640), drop=0.0,
                    clutter=0, static_drop=0.0):
    """Free Brownian particles (``sigma`` px per axis per frame, reflected at the edges) and static ones (positional
    jitter ``jitter`` per axis), like beads diffusing among specks stuck to the glass; ``drop``: missed detections,
    ``clutter``: uniform false detections per frame (not in the truth), ``static_drop``: further missed detections
    of the static ones only (faint specks that flicker)."""
    side = np.asarray(size, float)
    n = n_free + n_static
    steps = np.zeros((frames, n, 2))
    steps[1:, :n_free] = rng.normal(0, sigma, (frames - 1, n_free, 2))
    p0 = rng.uniform(0, 1, (n, 2)) * side
    p = np.mod(p0 + np.cumsum(steps, 0), 2 * side)
    p = np.where(p > side, 2 * side - p, p)
    p[:, n_free:] = p0[n_free:] + rng.normal(0, jitter, (frames, n_static, 2))
    truth = pd.DataFrame({"track_id": np.tile(np.arange(1, n + 1), frames), "frame": np.repeat(np.arange(frames), n),
                          "y": p[..., 0].ravel(), "x": p[..., 1].ravel()})
    truth = truth[rng.random(len(truth)) >= drop].reset_index(drop=True)
    if static_drop:
        faint = (truth["track_id"] > n_free).to_numpy() & (rng.random(len(truth)) < static_drop)
        truth = truth[~faint].reset_index(drop=True)
    det = truth[["frame", "y", "x"]]
    if clutter:
        fake = pd.DataFrame({"frame": np.repeat(np.arange(frames), clutter),
                             "y": rng.uniform(0, side[0], frames * clutter), "x": rng.uniform(0, side[1], frames * clutter)})
        det = pd.concat([det, fake], ignore_index=True)
    return truth, det.copy()


def long_step_recall(truth, tracks, longer_than):
    """Fraction of the true one-frame steps longer than ``longer_than`` that the tracks link (exact positions)."""
    key = [tuple(v) for v in tracks[["frame", "y", "x"]].to_numpy()]
    tid = dict(zip(key, tracks["track_id"]))
    hit = n = 0
    for _, g in truth.sort_values("frame").groupby("track_id"):
        v = g[["frame", "y", "x"]].to_numpy()
        for a, b in zip(v[:-1], v[1:]):
            if b[0] == a[0] + 1 and np.hypot(*(b[1:] - a[1:])) > longer_than:
                n += 1
                hit += tid.get(tuple(a), -1) == tid.get(tuple(b), -2)
    return hit / n, n
