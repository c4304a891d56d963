"""Tracks of beads diffusing in 3D and seen only while in focus: what a 2D movie of a suspension gives.

Each bead diffuses freely in a slab (reflecting walls at ``z = 0`` and ``z = height``) and a periodic field of
view; the tracker sees it while ``|z - z_focus| < depth / 2``, so tracks end when a bead leaves the focal plane and
a bead coming back starts a new track, with a localisation error per position. Sub-populations differ in their
diffusion coefficient (all three axes), so slow beads also stay longer in focus: the survivorship that biases an
ensemble MSD (:func:`napari_dynfit.track.composition_bias`). Used to calibrate that check
(``python -m napari_dynfit.bench.msd_composition``) and in its tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_beads_in_focus(n_beads: int = 400, frames: int = 100, *, D=(1.0,), fractions=(1.0,), dt: float = 1.0,
                            height: float = 40.0, depth: float = 8.0, z_focus: float | None = None,
                            field: float = 500.0, sigma: float = 0.3, min_length: int = 25,
                            seed=None) -> pd.DataFrame:
    """Simulated tracks ``track_id, frame, y, x, population`` (pixels; frames ``0 .. frames - 1``).

    Parameters
    ----------
    n_beads : int
        Beads in the slab (uniform start positions).
    frames : int
        Length of the movie (frames).
    D : sequence of float
        Diffusion coefficient of each sub-population (px^2 per time unit, the same along z, y and x).
    fractions : sequence of float
        Fraction of the beads in each sub-population (normalised).
    dt : float
        Frame interval (time units).
    height : float
        Slab height (px); beads reflect at ``z = 0`` and ``z = height``.
    depth : float
        Depth of focus (px): a bead is seen while within ``depth / 2`` of ``z_focus``.
    z_focus : float, optional
        Focal plane (px; default the middle of the slab).
    field : float
        Side of the periodic square field of view (px).
    sigma : float
        Localisation error per axis (px, Gaussian).
    min_length : int
        Runs in focus shorter than this are not returned (a tracker's ``filter_stubs``).
    seed : int or Generator, optional

    Returns
    -------
    DataFrame
        One track per run in focus; ``population`` is the index into ``D``.
    """
    rng = np.random.default_rng(seed)
    D = np.asarray(D, float)
    p = np.asarray(fractions, float)
    if D.ndim != 1 or D.shape != p.shape or np.any(D <= 0) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("D and fractions must be sequences of one positive value per sub-population")
    z_focus = height / 2 if z_focus is None else float(z_focus)
    kind = rng.choice(len(D), n_beads, p=p / p.sum())
    step = np.sqrt(2 * D[kind] * dt)[:, None]
    z = np.empty((n_beads, frames))
    z[:, 0] = rng.uniform(0, height, n_beads)
    dz = rng.normal(0, 1, (n_beads, frames - 1)) * step
    for k in range(1, frames):  # reflecting walls
        zk = z[:, k - 1] + dz[:, k - 1]
        zk = np.where(zk < 0, -zk, zk)
        z[:, k] = np.where(zk > height, 2 * height - zk, zk)
    xy = rng.uniform(0, field, (n_beads, 1, 2)) + np.cumsum(
        np.concatenate([np.zeros((n_beads, 1, 2)), rng.normal(0, 1, (n_beads, frames - 1, 2)) * step[:, :, None]],
                       axis=1), axis=1)
    xy = np.mod(xy, field) + rng.normal(0, sigma, xy.shape)
    seen = np.abs(z - z_focus) < depth / 2
    out, tid = [], 0
    for i in range(n_beads):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], seen[i].astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a < min_length:
                continue
            seg = xy[i, a:b]
            # a run that wraps across the periodic edge is cut there (a tracker would lose it)
            jumps = np.flatnonzero(np.abs(np.diff(seg, axis=0)).max(axis=1) > field / 2) + 1
            for s, e in zip(np.concatenate([[0], jumps]), np.concatenate([jumps, [len(seg)]])):
                if e - s >= min_length:
                    out.append(pd.DataFrame({"track_id": tid, "frame": np.arange(a + s, a + e), "y": seg[s:e, 0],
                                             "x": seg[s:e, 1], "population": int(kind[i])}))
                    tid += 1
    if not out:
        return pd.DataFrame({"track_id": [], "frame": [], "y": [], "x": [], "population": []})
    return pd.concat(out, ignore_index=True)
