"""Proliferating cells with lineage ground truth (for tracking tests with divisions and deaths).

Cells are spheres (disks in 2D) of one radius that diffuse in a closed box (reflecting walls) and
push overlapping neighbours apart. Between two frames every living cell divides with probability
``(b / (b + d)) (1 - exp(-(b + d)))`` and dies with probability ``(d / (b + d)) (1 - exp(-(b + d)))``
(``b = division_rate``, ``d = death_rate`` per frame: the exact probabilities of the first event of
two competing Poisson clocks within one frame). So the expected number of cells grows by the factor
``1 + (b - d) / (b + d) (1 - exp(-(b + d)))`` per frame (:func:`expected_growth_factor`), which
tends to ``exp(b - d)`` for small rates.

At a division the mother's track ends; two daughters with new ``track_id`` values and
``parent_id`` = the mother's id start on the next frame, ``daughter_distance`` apart along a
random direction through the mother's last position.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .._progress import progress_iter
from ..errors import InputError
from .abp import _as_box

_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}
MAX_CELLS = 200_000


def expected_growth_factor(division_rate: float, death_rate: float = 0.0) -> float:
    """Expected ratio of the number of cells on consecutive frames (see the module docstring)."""
    k = division_rate + death_rate
    if k == 0:
        return 1.0
    return 1.0 + (division_rate - death_rate) / k * -np.expm1(-k)


def _relax_overlaps(pos, radius, lo, hi, iterations=5):
    """Push overlapping spheres apart (half the overlap each), keeping them inside ``[lo, hi]``."""
    for _ in range(iterations):
        if len(pos) < 2:
            break
        pairs = cKDTree(pos).query_pairs(2 * radius, output_type="ndarray")
        if len(pairs) == 0:
            break
        d = pos[pairs[:, 1]] - pos[pairs[:, 0]]
        dist = np.linalg.norm(d, axis=1)
        dist = np.where(dist > 1e-9, dist, 1e-9)
        push = ((2 * radius - dist) / 2 / dist)[:, None] * d
        delta = np.zeros_like(pos)
        np.add.at(delta, pairs[:, 0], -push)
        np.add.at(delta, pairs[:, 1], push)
        pos += delta
        np.clip(pos, lo, hi, out=pos)
    return pos


def simulate_dividing_cells(
    n_initial: int,
    n_frames: int,
    *,
    dim: int = 3,
    box=(32.0, 48.0, 48.0),
    division_rate: float = 0.05,
    death_rate: float = 0.0,
    daughter_distance: float | None = None,
    diffusion: float = 0.1,
    radius: float = 2.5,
    seed=None,
    relax_iterations: int = 5,
) -> pd.DataFrame:
    """Simulate dividing (and dying) cells with their lineage.

    Parameters
    ----------
    n_initial : int
        Number of cells on frame 0.
    n_frames : int
        Number of frames.
    dim : {2, 3}
        Spatial dimension.
    box : float or sequence of float
        Size of the (closed) box per axis ``(z,) y, x``, physical units; a scalar gives a square/cube.
    division_rate, death_rate : float
        Rates per frame (see the module docstring for the per-frame probabilities).
    daughter_distance : float, optional
        Distance between the two daughters at birth (default ``1.2 * radius``, so their masks touch
        but hardly overlap; the overlap relaxation then pushes them to ``2 * radius``).
    diffusion : float
        Diffusion coefficient (length^2 per frame): each step adds ``sqrt(2 D) N(0, 1)`` per axis.
    radius : float
        Cell radius (physical units).
    seed : int or numpy.random.Generator, optional
        Random seed.
    relax_iterations : int
        Overlap-relaxation sweeps per frame (frame 0 gets four times as many); raise it for dense tissue in
        which cells touch without overlapping.

    Returns
    -------
    DataFrame
        ``track_id, frame, [z,] y, x, parent_id, radius``; ``track_id`` starts at 1 (so it can be
        used as a label value), ``parent_id`` is ``-1`` for cells present on frame 0. ``attrs`` holds
        ``box``, ``division_rate``, ``death_rate`` and ``units="physical"``.
    """
    if dim not in (2, 3):
        raise InputError(f"dim must be 2 or 3, got {dim}")
    for name, val in (("n_initial", n_initial), ("n_frames", n_frames)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
            raise InputError(f"{name} must be a positive integer, got {val!r}")
    for name, val in (("division_rate", division_rate), ("death_rate", death_rate), ("diffusion", diffusion)):
        if not np.isfinite(val) or val < 0:
            raise InputError(f"{name} must be >= 0 and finite, got {val}")
    if not np.isfinite(radius) or radius <= 0:
        raise InputError(f"radius must be > 0, got {radius}")
    if n_initial * expected_growth_factor(division_rate, death_rate) ** (n_frames - 1) > MAX_CELLS:
        raise InputError(f"the expected number of cells exceeds {MAX_CELLS}: "
                         "lower division_rate, n_initial or n_frames")
    box = _as_box(box, dim)
    if np.any(box <= 2 * radius):
        raise InputError(f"box {box.tolist()} is not larger than a cell (diameter {2 * radius}): enlarge the box")
    if daughter_distance is None:
        daughter_distance = 1.2 * radius
    if not np.isfinite(daughter_distance) or daughter_distance < 0:
        raise InputError(f"daughter_distance must be >= 0, got {daughter_distance}")
    rng = np.random.default_rng(seed)
    lo, hi = np.full(dim, radius), box - radius

    pos = lo + rng.random((n_initial, dim)) * (hi - lo)
    if not isinstance(relax_iterations, (int, np.integer)) or relax_iterations < 0:
        raise InputError(f"relax_iterations must be a non-negative integer, got {relax_iterations!r}")
    pos = _relax_overlaps(pos, radius, lo, hi, iterations=max(20, 4 * relax_iterations))
    ids = np.arange(1, n_initial + 1)
    parents = np.full(n_initial, -1)
    next_id = n_initial + 1
    k = division_rate + death_rate
    p_event = -np.expm1(-k)
    p_div = p_event * (division_rate / k if k > 0 else 0.0)

    rows = []
    for frame in progress_iter(range(n_frames), desc="cell simulation"):
        if frame > 0:
            u = rng.random(len(ids))
            divide = u < p_div
            die = (u >= p_div) & (u < p_event)
            keep = ~(divide | die)
            mothers = np.flatnonzero(divide)
            n_new = 2 * len(mothers)
            if len(mothers):
                direction = rng.standard_normal((len(mothers), dim))
                direction /= np.linalg.norm(direction, axis=1, keepdims=True)
                half = 0.5 * daughter_distance * direction
                new_pos = np.concatenate([pos[mothers] + half, pos[mothers] - half])
                new_parents = np.concatenate([ids[mothers], ids[mothers]])
            else:
                new_pos = np.empty((0, dim))
                new_parents = np.empty(0, dtype=int)
            new_ids = np.arange(next_id, next_id + n_new)
            next_id += n_new
            pos = np.concatenate([pos[keep], new_pos])
            ids = np.concatenate([ids[keep], new_ids])
            parents = np.concatenate([parents[keep], new_parents])
            if len(ids) == 0:
                break
            pos = pos + np.sqrt(2 * diffusion) * rng.standard_normal(pos.shape)
            # reflecting walls
            pos = np.where(pos < lo, 2 * lo - pos, pos)
            pos = np.where(pos > hi, 2 * hi - pos, pos)
            np.clip(pos, lo, hi, out=pos)
            pos = _relax_overlaps(pos, radius, lo, hi, iterations=relax_iterations)
        rows.append((np.full(len(ids), frame), ids.copy(), pos.copy(), parents.copy()))

    frames = np.concatenate([r[0] for r in rows]).astype(np.int64)
    data = {"track_id": np.concatenate([r[1] for r in rows]).astype(np.int64), "frame": frames}
    xyz = np.concatenate([r[2] for r in rows])
    for a, name in enumerate(_AXES[dim]):
        data[name] = xyz[:, a]
    data["parent_id"] = np.concatenate([r[3] for r in rows]).astype(np.int64)
    data["radius"] = np.full(len(frames), float(radius))
    df = pd.DataFrame(data)
    df.attrs.update(box=box.tolist(), division_rate=float(division_rate), death_rate=float(death_rate),
                    units="physical")
    return df


# ----------------------------------------------------------------------------------------------
# growing rods (bacteria)


def _rod_beads(pos, axis, length, width):
    """Centres of the spheres that tile each rod's core segment, spaced <= width / 3; (bead -> rod index, beads)."""
    core = np.maximum(length - width, 0.0)
    nb = np.maximum(np.ceil(core / (width / 3)).astype(int) + 1, 1)
    owner = np.repeat(np.arange(len(pos)), nb)
    start = np.concatenate([[0], np.cumsum(nb)[:-1]])
    k = np.arange(len(owner)) - start[owner]
    frac = np.where(nb[owner] > 1, k / np.maximum(nb[owner] - 1, 1) - 0.5, 0.0)
    beads = pos[owner] + (frac * core[owner])[:, None] * axis[owner]
    return owner, beads


def _relax_rods(pos, axis, length, width, lo, hi, iterations=8):
    """Push overlapping rods (capsules) apart: beads along each rod repel, each rod moves as a rigid body.

    The overlap of every pair of beads of different rods closer than ``width`` is split between them; a
    rod's new centre is the mean of its moved beads and its new axis their principal direction (length
    kept). Rod centres stay inside ``[lo, hi]``.
    """
    for _ in range(iterations):
        if len(pos) < 2:
            break
        owner, beads = _rod_beads(pos, axis, length, width)
        pairs = cKDTree(beads).query_pairs(width, output_type="ndarray")
        if len(pairs):
            pairs = pairs[owner[pairs[:, 0]] != owner[pairs[:, 1]]]
        if len(pairs) == 0:
            break
        d = beads[pairs[:, 1]] - beads[pairs[:, 0]]
        dist = np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        push = ((width - dist) / 2 / dist)[:, None] * d
        delta = np.zeros_like(beads)
        np.add.at(delta, pairs[:, 0], -push)
        np.add.at(delta, pairs[:, 1], push)
        moved = beads + delta
        cnt = np.bincount(owner, minlength=len(pos)).astype(float)
        centre = np.stack([np.bincount(owner, moved[:, a], minlength=len(pos)) for a in range(pos.shape[1])], 1)
        centre /= cnt[:, None]
        rel = moved - centre[owner]
        cov = np.zeros((len(pos), pos.shape[1], pos.shape[1]))
        np.add.at(cov, owner, rel[:, :, None] * rel[:, None, :])
        _, vec = np.linalg.eigh(cov)
        new_axis = vec[:, :, -1]
        multi = cnt > 1
        new_axis = np.where((np.sum(new_axis * axis, 1) < 0)[:, None], -new_axis, new_axis)
        axis = np.where(multi[:, None], new_axis, axis)
        pos = np.clip(centre, lo, hi)
    return pos, axis


def simulate_rod_colony(
    n_initial: int,
    n_frames: int,
    *,
    dim: int = 2,
    box=(128.0, 128.0),
    width: float = 10.0,
    division_length: float = 48.0,
    growth_rate: float = 0.1,
    diffusion: float = 0.05,
    seed=None,
    relax_iterations: int = 30,
) -> pd.DataFrame:
    """Simulate a growing, dividing colony of rod-shaped cells (bacteria) with their lineage.

    Rods are capsules of one ``width`` (physical units) whose length grows exponentially at ``growth_rate``
    per frame. A rod divides once its length reaches its own division length (``division_length`` x a
    factor uniform in [0.9, 1.1], drawn at birth): its track ends and two daughters of half its length (minus
    a quarter width each, the septum) start on the next frame at its two halves, same axis (tilted by a few
    degrees). Rods diffuse (``sqrt(2 D)`` per axis and frame, rotation ``sqrt(2 D) / length`` rad) and push
    each other apart as rigid capsules, so a dense colony forms with rods touching side by side and end to end.

    Parameters
    ----------
    n_initial, n_frames : int
        Rods on frame 0 and number of frames.
    dim : {2, 3}
        Spatial dimension.
    box : float or sequence of float
        Box size per axis ``(z,) y, x`` (physical units); rod centres stay inside.
    width : float
        Rod diameter.
    division_length : float
        Mean length (tip to tip) at division; rods start between half and all of it.
    growth_rate : float
        Exponential growth rate of the length per frame.
    diffusion : float
        Diffusion coefficient of the rod centres (length^2 per frame).
    seed : int or numpy.random.Generator, optional
    relax_iterations : int
        Overlap-relaxation sweeps per frame (stops early once no two rods overlap). With 8 sweeps (the
        earlier fixed value) a confluent colony kept a third of its rods more than 15 % under a neighbour.

    Returns
    -------
    DataFrame
        ``track_id, frame, [z,] y, x, parent_id, radius, length, orient_[z,] y, x``: ``radius`` is half the
        width, ``length`` tip to tip, ``orient_*`` the unit axis; :func:`~napari_dynfit.sim.render.render_cells`
        and :func:`~napari_dynfit.sim.render.render_labels` paint such rows as capsules.
    """
    if dim not in (2, 3):
        raise InputError(f"dim must be 2 or 3, got {dim}")
    for name, val in (("n_initial", n_initial), ("n_frames", n_frames)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
            raise InputError(f"{name} must be a positive integer, got {val!r}")
    for name, val in (("width", width), ("division_length", division_length)):
        if not np.isfinite(val) or val <= 0:
            raise InputError(f"{name} must be > 0, got {val}")
    if division_length < 2 * width:
        raise InputError(f"division_length {division_length} must be at least twice the width {width}")
    for name, val in (("growth_rate", growth_rate), ("diffusion", diffusion)):
        if not np.isfinite(val) or val < 0:
            raise InputError(f"{name} must be >= 0 and finite, got {val}")
    if n_initial * np.exp(growth_rate * (n_frames - 1)) > MAX_CELLS:
        raise InputError(f"the expected number of cells exceeds {MAX_CELLS}: lower growth_rate, n_initial or n_frames")
    if not isinstance(relax_iterations, (int, np.integer)) or isinstance(relax_iterations, bool) \
            or relax_iterations < 0:
        raise InputError(f"relax_iterations must be a non-negative integer, got {relax_iterations!r}")
    box = _as_box(box, dim)
    if np.any(box <= division_length):
        raise InputError(f"box {box.tolist()} must be longer than division_length {division_length} on every axis")
    rng = np.random.default_rng(seed)
    lo, hi = np.full(dim, width), box - width

    def unit(n):
        v = rng.standard_normal((n, dim))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    pos = lo + rng.random((n_initial, dim)) * (hi - lo)
    axis = unit(n_initial)
    target = division_length * rng.uniform(0.9, 1.1, n_initial)
    length = target * rng.uniform(0.5, 1.0, n_initial)
    pos, axis = _relax_rods(pos, axis, length, width, lo, hi, iterations=max(30, relax_iterations))
    ids = np.arange(1, n_initial + 1)
    parents = np.full(n_initial, -1)
    next_id = n_initial + 1
    rows = []
    for frame in progress_iter(range(n_frames), desc="rod colony simulation"):
        if frame > 0:
            length = length * np.exp(growth_rate)
            divide = length >= target
            mothers = np.flatnonzero(divide)
            keep = ~divide
            if len(mothers):
                half = (length[mothers] / 2 - width / 4)
                off = (length[mothers] / 4)[:, None] * axis[mothers]
                new_pos = np.concatenate([pos[mothers] + off, pos[mothers] - off])
                tilt = axis[np.concatenate([mothers, mothers])] + 0.05 * rng.standard_normal((2 * len(mothers), dim))
                new_axis = tilt / np.linalg.norm(tilt, axis=1, keepdims=True)
                new_len = np.concatenate([half, half])
                new_target = division_length * rng.uniform(0.9, 1.1, 2 * len(mothers))
                new_ids = np.arange(next_id, next_id + 2 * len(mothers))
                next_id += 2 * len(mothers)
                pos = np.concatenate([pos[keep], new_pos])
                axis = np.concatenate([axis[keep], new_axis])
                length = np.concatenate([length[keep], new_len])
                target = np.concatenate([target[keep], new_target])
                parents = np.concatenate([parents[keep], ids[mothers], ids[mothers]])
                ids = np.concatenate([ids[keep], new_ids])
            step = np.sqrt(2 * diffusion)
            pos = np.clip(pos + step * rng.standard_normal(pos.shape), lo, hi)
            turn = axis + (step / length)[:, None] * rng.standard_normal(axis.shape)
            axis = turn / np.linalg.norm(turn, axis=1, keepdims=True)
            pos, axis = _relax_rods(pos, axis, length, width, lo, hi, iterations=relax_iterations)
        rows.append((np.full(len(ids), frame), ids.copy(), pos.copy(), parents.copy(), length.copy(), axis.copy()))

    data = {"track_id": np.concatenate([r[1] for r in rows]).astype(np.int64),
            "frame": np.concatenate([r[0] for r in rows]).astype(np.int64)}
    xyz = np.concatenate([r[2] for r in rows])
    ori = np.concatenate([r[5] for r in rows])
    names = _AXES[dim]
    for a, name in enumerate(names):
        data[name] = xyz[:, a]
    data["parent_id"] = np.concatenate([r[3] for r in rows]).astype(np.int64)
    data["radius"] = np.full(len(data["frame"]), width / 2)
    data["length"] = np.concatenate([r[4] for r in rows])
    for a, name in enumerate(names):
        data[f"orient_{name}"] = ori[:, a]
    df = pd.DataFrame(data)
    df.attrs.update(box=box.tolist(), growth_rate=float(growth_rate), width=float(width), units="physical")
    return df
