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
  contrast (septa of just-divided cells are often faint);
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
                      n_frames: int = 6, max_overlap: float | None = None) -> list[np.ndarray]:
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

    Returns
    -------
    list of ndarray of int32, shape (size, size)
        Truth masks (0 background), daughters touching tip to tip.
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
    return [lab[t] for t in picks]


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


def _touching_lines(lab: np.ndarray, thick: int) -> np.ndarray:
    """Pixels of a cell next to a different cell (the wall line), ``thick`` px into each cell."""
    out = np.zeros(lab.shape, bool)
    cur = lab
    for _ in range(thick):
        mx = ndimage.maximum_filter(cur, size=3)
        mn = ndimage.minimum_filter(np.where(cur > 0, cur, np.iinfo(np.int32).max), size=3)
        out |= (lab > 0) & ((mx != lab) & (mx > 0) | (mn != lab) & (mn < np.iinfo(np.int32).max))
        cur = np.where(out, 0, lab)
    return out


def render_phase(lab: np.ndarray, seed=None, *, width: float | None = None) -> np.ndarray:
    """One phase-contrast image of a label frame with randomly drawn optics, background and noise.

    Parameters
    ----------
    lab : ndarray of int, shape (y, x)
        Cell masks (0 background).
    seed : int or numpy.random.Generator, optional
    width : float, optional
        Rod width (px), sets the halo kernel; default estimated from the masks' distance transform.

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
    walls = _touching_lines(lab, int(rng.integers(1, 3)))
    m[walls] *= 1 - rng.uniform(0.0, 1.0)
    n = int(lab.max()) + 1
    gain = np.clip(1 + rng.uniform(0, 0.25) * rng.standard_normal(n), 0.4, None)
    field = ndimage.gaussian_filter(rng.standard_normal(lab.shape), rng.uniform(1, 4))
    field *= rng.uniform(0, 0.45) / max(float(field.std()), 1e-12)
    m = m * np.clip(gain[lab] + field, 0.1, None)
    psf = rng.uniform(0.6, 2.0)
    sharp = ndimage.gaussian_filter(m, psf)
    low = ndimage.gaussian_filter(m, rng.uniform(0.4, 1.5) * r + psf)
    amp = rng.uniform(0.3, 1.2)
    signal = -amp * sharp + rng.uniform(0.2, 3.0) * amp * np.clip(low - sharp, 0, None)
    # background: smooth shading, specks and rings
    shade = ndimage.zoom(rng.standard_normal((4, 4)), np.array(lab.shape) / 4, order=3)[:lab.shape[0], :lab.shape[1]]
    bg = 1 + rng.uniform(0, 0.3) * shade / max(float(np.abs(shade).max()), 1e-12)
    clutter = np.zeros(lab.shape)
    for _ in range(rng.poisson(3)):
        y, x = rng.uniform(0, lab.shape[0]), rng.uniform(0, lab.shape[1])
        yy, xx = np.ogrid[:lab.shape[0], :lab.shape[1]]
        rr = np.hypot(yy - y, xx - x)
        s = rng.uniform(1, 1.5 * r)
        if rng.random() < 0.5:  # speck
            clutter += rng.uniform(-0.4, 0.3) * np.exp(-0.5 * (rr / s) ** 2)
        else:  # ring
            clutter += rng.uniform(-0.15, 0.15) * np.exp(-0.5 * ((rr - 2 * s) / 1.5) ** 2)
    img = bg * (1 + signal) + clutter
    noise = rng.standard_normal(lab.shape) * rng.uniform(0.005, 0.08)
    if rng.random() < 0.5:
        noise = ndimage.gaussian_filter(noise, rng.uniform(0.5, 1.2)) * 1.5
    img = img + noise
    # contrast stretch with saturation, gamma, optional 8-bit
    lo = np.percentile(img, rng.uniform(0, 20) if rng.random() < 0.6 else 0)
    hi = np.percentile(img, 100 - rng.uniform(0, 2))
    img = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1) ** rng.uniform(0.6, 1.7)
    if rng.random() < 0.5:
        img = np.round(img * 255) / 255
    return img.astype(np.float32)


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
