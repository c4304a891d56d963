"""Randomised phase-contrast images of rod colonies, for training and testing a segmentation model.

:func:`rod_colony_frames` simulates colonies (:func:`~napari_dynfit.sim.cells.simulate_rod_colony`) over a
range of rod widths and aspect ratios and paints their truth masks, with the daughters of a division touching
tip to tip (a neck where their rounded tips meet, as a septum) rather than leaving a gap.
:func:`render_phase` turns one label frame into a phase-contrast image with randomly drawn optics and
acquisition (each drawn per call from the ranges below):

* dark cells: the mask (with a per-cell gain of 0-25 % spread and a smooth texture of 0-45 % spread and
  1-4 px grain: the granular, dark-spotted interiors of bacteria) blurred by a Gaussian PSF of 0.6-2 px
  (phase-dark signal ``A G_psf * m`` with ``A`` 0.3-1.2 of the background);
* a bright halo: ``h A max(G_halo * m - G_psf * m, 0)`` with ``h`` 0.2-3 and a halo kernel of 0.4-1.5 rod
  radii (Yin, Kanade and Chen 2012: the low-pass part of the phase-ring response), bright around a colony
  and between touching cells;
* the wall where two cells touch: a one- or two-pixel line brighter than the cells by 0-100 % of the cell
  contrast (septa of just-divided cells are often faint); with ``young_septa`` (:func:`paint_young_septa`) a
  just-divided pair's junction is a shallow notch that deepens over three frames, its wall fainter still;
* a background shaded by a smooth field (0-30 %), with dark and bright specks and rings (debris, dust);
* Gaussian noise (0.5-8 % of the background), an optional blur of the noise, a random gamma (0.6-1.7) and
  clipping of the darkest / brightest 0-20 % / 0-2 % of the grey levels (saturated cells, contrast-stretched
  8-bit movies), optional 8-bit quantisation.

Nothing here is fitted to a real movie; the ranges are generic for phase-contrast bacteria (see
``docs/tracking.md`` for what was seen of the real movie used as a check).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .cells import simulate_rod_colony
from .render import _paint_capsule, render_labels

#: rod widths (px) and division length / width drawn for the training colonies
WIDTH_RANGE = (7.0, 20.0)
ASPECT_RANGE = (3.5, 8.0)
#: largest fraction of the rods' area a kept frame may lose to overlapping rods
MAX_OVERLAP = 0.05


def rod_colony_frames(seed, *, size: int = 256, width: float | None = None, aspect: float | None = None,
                      n_frames: int = 6, max_overlap: float | None = None, young_septa: bool = False):
    """Label frames of one simulated rod colony, from sparse to confluent.

    Parameters
    ----------
    seed : int or numpy.random.Generator
    size : int
        Frame side (px, one pixel = one physical unit).
    width : float, optional
        Rod width (px); default drawn uniformly in :data:`WIDTH_RANGE`.
    aspect : float, optional
        Mean division length / width; default drawn uniformly in :data:`ASPECT_RANGE`.
    n_frames : int
        Frames returned, evenly spread over the colony's growth to about 85 % cover, up to the last frame
        whose rods overlap by at most ``max_overlap``.
    max_overlap : float, optional
        Largest fraction of the painted area covered by two or more rods in a kept frame (the relaxation of a
        crowded box of long thin rods does not always converge, and a rod painted over another is truth no
        image can show). None keeps all frames (as the shipped weights were trained); the held-out checks use
        :data:`MAX_OVERLAP`.
    young_septa : bool
        Paint the septa of just-divided pairs as real young septa look (:func:`paint_young_septa`: a shallow
        notch that deepens over the daughters' first three frames) and also return those pairs, for
        :func:`render_phase`'s faint young walls.

    Returns
    -------
    list of ndarray of int32, shape (size, size)
        Truth masks (0 background), daughters touching tip to tip.
    list of dict
        Only with ``young_septa``: per frame, ``{(a, b): age}`` of the young sister pairs (labels ``a < b``,
        age in frames since their division, 0 on their first frame).
    """
    rng = np.random.default_rng(seed)
    w = float(rng.uniform(*WIDTH_RANGE)) if width is None else float(width)
    a = float(rng.uniform(*ASPECT_RANGE)) if aspect is None else float(aspect)
    div = min(a * w, 0.8 * size)
    if div < 2 * w:
        raise InputError(f"size {size} is too small for rods of width {w}")
    box = (float(size), float(size))
    growth = 0.1
    # grow until about 85 % of the box is covered: area per rod ~ 0.75 div * w
    n0 = int(rng.integers(2, 6))
    n_full = 0.85 * size * size / (0.75 * div * w)
    frames = int(np.clip(np.log(max(n_full / n0, 1.5)) / growth, 4, 60))
    tab = simulate_rod_colony(n0, frames, box=box, width=w, division_length=div, growth_rate=growth,
                              diffusion=0.05, seed=rng, relax_iterations=30)
    # daughters are born a quarter width apart: lengthen every rod by 0-0.3 widths so that they touch
    tab = tab.copy()
    tab["length"] = tab["length"] + w * rng.uniform(0.2, 0.35)
    lab = render_labels(tab, (frames, size, size))
    # frames whose rods overlap (relaxation not converged in a crowded box) have truth no image can show
    # (a rod painted over another): keep frames up to the first one where overlaps cover > max_overlap
    last = frames - 1
    for t in range(2, frames if max_overlap is not None else 0):
        if _overlap_fraction(tab[tab["frame"] == t], (size, size)) > max_overlap:
            last = t - 1
            break
    picks = np.unique(np.linspace(last // 4, last, n_frames).round().astype(int))
    if not young_septa:
        return [lab[t] for t in picks]
    septa = [paint_young_septa(lab[t], tab[tab["frame"] == t], young_pairs(tab, t), rng) for t in picks]
    return [lab[t] for t in picks], septa


#: a just-divided pair's septum (``young_septa``): the neck's half-width as a fraction of the rod radius, drawn per
#: pair on the daughters' first, second and third frame (a shallow notch that deepens; older pairs keep the tips'
#: own neck), and the largest visibility of its wall line relative to the image's other walls on those frames
YOUNG_NECK = ((0.75, 1.0), (0.5, 0.9), (0.25, 0.7))
YOUNG_WALL = (0.3, 0.6, 0.9)


def young_pairs(tab, frame: int) -> list[tuple[int, int, int]]:
    """Sister rods of ``frame`` born fewer than ``len(YOUNG_NECK)`` frames before it: ``(a, b, age)``, ``a < b``."""
    born = tab.groupby("track_id")["frame"].min()
    rows = tab[(tab["frame"] == frame) & (tab["parent_id"] > 0)]
    out = []
    for _, g in rows.groupby("parent_id"):
        if len(g) != 2:
            continue
        a, b = sorted(int(v) for v in g["track_id"])
        age = frame - int(born[a])
        if age < len(YOUNG_NECK):
            out.append((a, b, age))
    return out


def paint_young_septa(lab: np.ndarray, rows, pairs, rng) -> dict:
    """Repaint the junction of young sister rods tip to tip in one label frame as a young septum, in place.

    The two rods' inner cap centres are joined by a bridge of half-width ``f`` rod radii (``f`` drawn from
    :data:`YOUNG_NECK` for the pair's age: 0.75-1 on the daughters' first frame, a notch of a quarter radius at
    most), and the union near the junction is cut by a straight septum through the middle of the two cap centres,
    normal to the line joining the rods. Real just-divided bacteria show such a shallow notch and a faint line for
    a frame or two (the septum closes and the poles round over several frames), not two rounded tips.

    Parameters
    ----------
    lab : ndarray of int32, shape (y, x)
        The frame (``render_labels`` of ``rows``), modified in place.
    rows : DataFrame
        That frame's rods (``simulate_rod_colony`` columns, lengths as painted).
    pairs : list of (a, b, age)
        From :func:`young_pairs`.
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``{(a, b): age}`` of the pairs repainted (pairs that do not lie tip to tip are left alone).
    """
    rows = rows.set_index("track_id")
    out = {}
    yy, xx = np.ogrid[:lab.shape[0], :lab.shape[1]]
    for a, b, age in pairs:
        if a not in rows.index or b not in rows.index:
            continue
        ra, rb = rows.loc[a], rows.loc[b]
        r = float(ra["radius"])
        ca, cb = np.array([ra["y"], ra["x"]]), np.array([rb["y"], rb["x"]])
        ua, ub = np.array([ra["orient_y"], ra["orient_x"]]), np.array([rb["orient_y"], rb["orient_x"]])
        d = cb - ca
        if np.linalg.norm(d) < 1e-6:
            continue
        u = d / np.linalg.norm(d)
        if abs(ua @ u) < 0.8 or abs(ub @ u) < 0.8:
            continue  # pushed side by side: not a septum tip to tip
        ka = ca + np.sign(ua @ u) * ua * max(float(ra["length"]) / 2 - r, 0)
        kb = cb - np.sign(ub @ u) * ub * max(float(rb["length"]) / 2 - r, 0)
        if np.linalg.norm(kb - ka) > 2 * r + 1:
            continue  # the tips do not touch
        f = float(rng.uniform(*YOUNG_NECK[age]))
        p = (ka + kb) / 2
        seg = kb - ka
        sl = float(seg @ seg)
        rel_y, rel_x = yy - ka[0], xx - ka[1]
        tpar = np.clip((rel_y * seg[0] + rel_x * seg[1]) / max(sl, 1e-9), 0, 1)
        bridge = (rel_y - tpar * seg[0]) ** 2 + (rel_x - tpar * seg[1]) ** 2 <= (f * r) ** 2
        near = (yy - p[0]) ** 2 + (xx - p[1]) ** 2 <= (1.5 * r) ** 2
        region = near & (bridge & (lab == 0) | (lab == a) | (lab == b))
        side = (yy - p[0]) * u[0] + (xx - p[1]) * u[1] < 0
        lab[region & side] = a
        lab[region & ~side] = b
        out[(a, b)] = int(age)
    return out


def _overlap_fraction(rows, shape) -> float:
    """Fraction of the painted area of one frame's rods covered by two or more rods."""
    count = np.zeros(shape, np.int32)
    for _, row in rows.iterrows():
        view = np.zeros(shape, np.int32)
        _paint_capsule(view, np.array([row["y"], row["x"]]), np.array([row["orient_y"], row["orient_x"]]),
                       row["length"], row["radius"], np.ones(2), 1)
        count += view
    covered = np.count_nonzero(count)
    return float(np.count_nonzero(count > 1) / covered) if covered else 0.0


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` moved by ``(dy, dx)`` pixels with zeros shifted in (``np.roll`` would wrap the far border round)."""
    out = np.zeros_like(a)
    h, w = a.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = a[max(-dy, 0):h + min(-dy, 0),
                                                                  max(-dx, 0):w + min(-dx, 0)]
    return out


def _touching_lines(lab: np.ndarray, thick: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a cell next to a different cell (the wall line), ``thick`` px into each cell.

    Returns
    -------
    wall : ndarray of bool, shape of ``lab``
    other : ndarray of int, shape of ``lab``
        On ``wall``, the label of the cell across the wall (0 elsewhere).
    """
    lab = np.asarray(lab)
    big = np.iinfo(np.int32).max  # labels are int32 (an int64 maximum overflows in the minimum filter)
    lab32 = lab.astype(np.int32)
    mx = ndimage.maximum_filter(lab32, size=3)
    mn = ndimage.minimum_filter(np.where(lab32 > 0, lab32, big), size=3)
    fg = lab32 > 0
    up, down = fg & (mx != lab32), fg & (mn != lab32) & (mn < big)
    wall = up | down
    other = np.where(up, mx, np.where(down, mn, 0))
    for _ in range(thick - 1):  # one more pixel into the same cell per step
        grow = ndimage.binary_dilation(wall) & fg & ~wall
        if not grow.any():
            break
        # the neighbour across: taken from a wall pixel of the same cell next to it
        o_same = np.zeros_like(other)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                sh_lab = _shift(lab32, dy, dx)
                sh_wall = _shift(wall, dy, dx)
                sh_other = _shift(other, dy, dx)
                take = grow & sh_wall & (sh_lab == lab32) & (o_same == 0)
                o_same[take] = sh_other[take]
        grow &= o_same > 0
        other = np.where(grow, o_same, other)
        wall = wall | grow
    return wall, other


def render_phase(lab: np.ndarray, seed=None, *, width: float | None = None, septa: dict | None = None,
                 optics: dict | None = None) -> np.ndarray:
    """One phase-contrast image of a label frame with randomly drawn optics, background and noise.

    Parameters
    ----------
    lab : ndarray of int, shape (y, x)
        Cell masks (0 background).
    seed : int or numpy.random.Generator, optional
    width : float, optional
        Rod width (px), sets the halo kernel; default estimated from the masks' distance transform.
    septa : dict, optional
        ``{(a, b): age}`` young sister pairs (:func:`rod_colony_frames` with ``young_septa``): their wall line is
        fainter, a fraction drawn per pair up to :data:`YOUNG_WALL` ``[age]`` of the image's wall contrast.
    optics : dict, optional
        The optics, background and acquisition drawn for this image are stored in this dict when they are not
        in it yet, and taken from it when they are: pass one dict for all frames of a movie to draw them once
        (the cells' gains and texture and the noise stay drawn per frame).

    Returns
    -------
    ndarray of float32, shape (y, x)
        Grey levels in [0, 1] (background around 0.3-0.7, cells darker, halos brighter).
    """
    rng = np.random.default_rng(seed)
    lab = np.asarray(lab)
    fg = lab > 0
    if width is None:
        d = ndimage.distance_transform_edt(fg)
        width = 2 * float(np.percentile(d[d > 0], 95)) if fg.any() else 10.0
    r = width / 2
    m = fg.astype(np.float64)
    fixed = optics if optics is not None else {}

    def pick(name, draw):  # a draw of the optics, or the value ``optics`` holds (then stored there)
        if name not in fixed:
            fixed[name] = draw()
        return fixed[name]

    walls, other = _touching_lines(lab, int(pick("wall_px", lambda: rng.integers(1, 3))))
    wall_level = pick("wall_level", lambda: rng.uniform(0.0, 1.0))
    if septa:
        level = np.full(walls.shape, wall_level)
        for (a, b), age in septa.items():
            pair = walls & (((lab == a) & (other == b)) | ((lab == b) & (other == a)))
            level[pair] = wall_level * rng.uniform(0, YOUNG_WALL[min(age, len(YOUNG_WALL) - 1)])
        m[walls] *= 1 - level[walls]
    else:
        m[walls] *= 1 - wall_level
    n = int(lab.max()) + 1
    gain = np.clip(1 + pick("gain_spread", lambda: rng.uniform(0, 0.25)) * rng.standard_normal(n), 0.4, None)
    field = ndimage.gaussian_filter(rng.standard_normal(lab.shape), pick("grain", lambda: rng.uniform(1, 4)))
    field *= pick("texture", lambda: rng.uniform(0, 0.45)) / max(float(field.std()), 1e-12)
    m = m * np.clip(gain[lab] + field, 0.1, None)
    psf = pick("psf", lambda: rng.uniform(0.6, 2.0))
    sharp = ndimage.gaussian_filter(m, psf)
    low = ndimage.gaussian_filter(m, pick("halo_width", lambda: rng.uniform(0.4, 1.5)) * r + psf)
    amp = pick("amp", lambda: rng.uniform(0.3, 1.2))
    signal = -amp * sharp + pick("halo", lambda: rng.uniform(0.2, 3.0)) * amp * np.clip(low - sharp, 0, None)
    # background: smooth shading, specks and rings
    bg = pick("background", lambda: _background(lab.shape, rng))
    clutter = pick("clutter", lambda: _clutter(lab.shape, r, rng))
    img = bg * (1 + signal) + clutter
    noise = rng.standard_normal(lab.shape) * pick("noise", lambda: rng.uniform(0.005, 0.08))
    if pick("noise_blurred", lambda: rng.random() < 0.5):
        noise = ndimage.gaussian_filter(noise, pick("noise_blur", lambda: rng.uniform(0.5, 1.2))) * 1.5
    img = img + noise
    # contrast stretch with saturation, gamma, optional 8-bit
    lo = np.percentile(img, pick("clip_low", lambda: rng.uniform(0, 20) if rng.random() < 0.6 else 0))
    hi = np.percentile(img, 100 - pick("clip_high", lambda: rng.uniform(0, 2)))
    img = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1) ** pick("gamma", lambda: rng.uniform(0.6, 1.7))
    if pick("eight_bit", lambda: rng.random() < 0.5):
        img = np.round(img * 255) / 255
    return img.astype(np.float32)


def _background(shape, rng) -> np.ndarray:
    """Smooth shading of the background (0-30 %)."""
    shade = ndimage.zoom(rng.standard_normal((4, 4)), np.array(shape) / 4, order=3)[:shape[0], :shape[1]]
    return 1 + rng.uniform(0, 0.3) * shade / max(float(np.abs(shade).max()), 1e-12)


def _clutter(shape, r, rng) -> np.ndarray:
    """Dark and bright specks and rings (debris, dust) of up to 1.5 rod radii."""
    clutter = np.zeros(shape)
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    for _ in range(rng.poisson(3)):
        y, x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        rr = np.hypot(yy - y, xx - x)
        s = rng.uniform(1, 1.5 * r)
        if rng.random() < 0.5:  # speck
            clutter += rng.uniform(-0.4, 0.3) * np.exp(-0.5 * (rr / s) ** 2)
        else:  # ring
            clutter += rng.uniform(-0.15, 0.15) * np.exp(-0.5 * ((rr - 2 * s) / 1.5) ** 2)
    return clutter


def phase_colony_images(seed, *, size: int = 256, n_frames: int = 6, **kwargs):
    """Phase-contrast images and truth masks of one colony (:func:`rod_colony_frames` + :func:`render_phase`).

    Frames with overlapping rods are left out (``max_overlap`` :data:`MAX_OVERLAP` unless given).

    Returns
    -------
    images : ndarray of float32, shape (n, size, size)
    labels : ndarray of int32, shape (n, size, size)
    """
    rng = np.random.default_rng(seed)
    kwargs.setdefault("max_overlap", MAX_OVERLAP)
    labs = rod_colony_frames(rng, size=size, n_frames=n_frames, **kwargs)
    imgs = [render_phase(lab, rng) for lab in labs]
    return np.stack(imgs), np.stack(labs)


def phase_colony_movie(seed, *, size: int = 320, n_frames: int = 30, width_range=(9.0, 16.0),
                       young_septa: bool = True):
    """A phase-contrast movie of one growing colony with its truth masks and lineage (one draw of optics).

    The colony (:func:`~napari_dynfit.sim.cells.simulate_rod_colony`, rod width drawn in ``width_range``, division
    length 3.5-8 widths, length x 1.105 per frame) starts sparse and ends about 85 % confluent; daughters touch tip
    to tip (with ``young_septa``, a young septum on their first three frames: :func:`paint_young_septa`). Every
    frame is rendered by :func:`render_phase` with the same optics, background and acquisition (drawn once).

    Returns
    -------
    images : ndarray of float32, shape (n_frames, size, size)
    labels : ndarray of int32, shape (n_frames, size, size)
        Truth masks, label = track id.
    truth : DataFrame
        ``track_id, frame, y, x, label, parent_id`` (pixels; ``parent_id`` -1 for the first cells), one row per
        painted mask.
    """
    from ..detect.labels import label_table

    rng = np.random.default_rng(seed)
    w = float(rng.uniform(*width_range))
    div = min(float(rng.uniform(*ASPECT_RANGE)) * w, 0.8 * size)
    growth = 0.1
    n_full = 0.85 * size * size / (0.75 * div * w)
    n0 = max(2, int(round(n_full / np.exp(growth * (n_frames - 1)))))
    box = (float(size), float(size))
    tab = simulate_rod_colony(n0, n_frames, box=box, width=w, division_length=div, growth_rate=growth,
                              diffusion=0.05, seed=rng, relax_iterations=30)
    tab = tab.copy()
    tab["length"] = tab["length"] + w * rng.uniform(0.2, 0.35)
    labels = render_labels(tab, (n_frames, size, size))
    optics, images = {}, []
    for t in range(n_frames):
        septa = paint_young_septa(labels[t], tab[tab["frame"] == t], young_pairs(tab, t), rng) if young_septa \
            else None
        images.append(render_phase(labels[t], rng, width=w, septa=septa, optics=optics))
    truth = label_table(labels)[["frame", "y", "x", "label"]].copy()
    parent = tab.groupby("track_id")["parent_id"].first()
    truth["track_id"] = truth["label"].astype(np.int64)
    truth["parent_id"] = parent.reindex(truth["track_id"]).fillna(-1).astype(np.int64).to_numpy()
    return np.stack(images), labels, truth
