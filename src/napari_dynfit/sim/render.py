"""Render simulated objects into fluorescence microscopy movies with exact ground truth.

Two object models:

* :func:`render_movie`: point emitters imaged through an anisotropic Gaussian PSF (particles, spots);
* :func:`render_cells`: filled spheres/disks (cell nuclei) blurred by the PSF, together with the
  ground-truth label movie (:func:`render_labels`).

Image formation (both): ``counts = Poisson(background + signal) + Normal(0, read_noise)``, rounded
and clipped to ``[0, 65535]`` (uint16), one photo-electron per grey level.

**SNR** (both): the object's peak signal above background divided by the noise standard deviation at
that peak, ``SNR = A / sqrt(A + background + read_noise^2)``; for spots ``A`` is the amplitude of the
Gaussian at its centre (a spot centred on a pixel), for cells the plateau of a cell's interior. Given
``snr``, ``A`` solves this quadratic; giving ``amplitude`` sets ``A`` directly.

Coordinates: tables are in physical units; pixel ``i`` along an axis is centred on the physical
coordinate ``i * scale`` (as with a napari layer of that ``scale``), so the pixel coordinate of a
point is ``physical / scale``. The returned truth tables are in pixel coordinates.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
from scipy import ndimage

from .._progress import progress_iter
from ..errors import InputError
from ..tables import coord_columns


def amplitude_for_snr(snr: float, background: float, read_noise: float) -> float:
    """Peak amplitude ``A`` with ``A / sqrt(A + background + read_noise^2) = snr``."""
    if not np.isfinite(snr) or snr <= 0:
        raise InputError(f"snr must be > 0, got {snr}")
    var0 = background + read_noise**2
    return float(0.5 * (snr**2 + np.sqrt(snr**4 + 4 * snr**2 * var0)))


def _per_axis(value, d, name):
    v = np.asarray(value, dtype=float)
    v = np.full(d, float(v)) if v.ndim == 0 else v
    if v.shape != (d,) or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise InputError(f"{name} must be one positive number or {d} (one per axis (z,) y, x), "
                         f"got {np.ravel(value).tolist()}")
    return v


def _movie_shape(table, shape, d):
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    if len(shape) == d:
        shape = (int(table["frame"].max()) + 1,) + shape
    if len(shape) != d + 1:
        raise InputError(f"shape {shape} does not fit {d}D coordinates: give ({'z, ' if d == 3 else ''}y, x) "
                         f"or (t, {'z, ' if d == 3 else ''}y, x)")
    if any(s < 1 for s in shape):
        raise InputError(f"shape {shape} has non-positive sizes: every axis needs at least one pixel")
    if np.prod(shape, dtype=float) > 2**33:
        raise InputError(f"movie of shape {shape} would exceed 16 GB: render fewer frames or a smaller field of view")
    return shape


def _checked(table, d_required=None):
    from ..tables import validate_table

    table = validate_table(table, required=("frame",), what="object table")
    cols = coord_columns(table)
    if d_required is not None and len(cols) != d_required:
        raise InputError(f"table is {len(cols)}D but {d_required}D was asked for")
    return table, cols


def _noise(signal, background, read_noise, rng):
    counts = rng.poisson(signal + background).astype(np.float64)
    if read_noise > 0:
        counts += rng.normal(0.0, read_noise, size=counts.shape)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _setup(table, shape, scale, psf_sigma, amplitude, snr, background, read_noise, seed, *, default_sigma):
    """Validate the common rendering arguments; returns ``(table, cols, shape, scale, sigma, rng, amplitude)``."""
    table, cols = _checked(table)
    d = len(cols)
    shape = _movie_shape(table, shape, d)
    scale = _per_axis(scale, d, "scale")
    sigma = _per_axis(psf_sigma if psf_sigma is not None else default_sigma[d], d, "psf_sigma")
    if not np.isfinite(background) or background < 0:
        raise InputError(f"background must be >= 0, got {background}")
    if not np.isfinite(read_noise) or read_noise < 0:
        raise InputError(f"read_noise must be >= 0, got {read_noise}")
    amp = float(amplitude) if amplitude is not None else amplitude_for_snr(snr, background, read_noise)
    if not np.isfinite(amp) or amp < 0:
        raise InputError(f"amplitude must be >= 0, got {amplitude}")
    return table, cols, shape, scale, sigma, np.random.default_rng(seed), amp


def _truth_in_pixels(table, cols, scale, shape):
    """Copy of ``table`` with pixel coordinates, keeping rows inside the movie (half-pixel margin)."""
    truth = table.copy()
    pix = table[cols].to_numpy(dtype=float) / scale
    in_space = np.all((pix >= -0.5) & (pix < np.asarray(shape[1:]) - 0.5), axis=1)
    inside = (table["frame"].to_numpy() < shape[0]) & in_space
    truth[cols] = pix
    truth = truth[inside].reset_index(drop=True)
    truth.attrs = dict(table.attrs)
    truth.attrs.update(spacing=[float(s) for s in scale], units="pixels")
    return truth


@numba.njit(cache=True)
def _splat(img, coords, amps, sigma, half):
    """Add Gaussian spots (sampled at pixel centres) to ``img`` (Z, Y, X); ``sigma[0] == 0`` is 2D."""
    Z, Y, X = img.shape
    for n in range(coords.shape[0]):
        cz, cy, cx = coords[n, 0], coords[n, 1], coords[n, 2]
        z0 = max(int(np.floor(cz)) - half[0], 0)
        z1 = min(int(np.floor(cz)) + half[0] + 2, Z)
        y0 = max(int(np.floor(cy)) - half[1], 0)
        y1 = min(int(np.floor(cy)) + half[1] + 2, Y)
        x0 = max(int(np.floor(cx)) - half[2], 0)
        x1 = min(int(np.floor(cx)) + half[2] + 2, X)
        if sigma[0] == 0.0:
            z0, z1 = 0, 1
        for z in range(z0, z1):
            wz = 1.0 if sigma[0] == 0.0 else np.exp(-0.5 * ((z - cz) / sigma[0]) ** 2)
            for y in range(y0, y1):
                wy = wz * np.exp(-0.5 * ((y - cy) / sigma[1]) ** 2)
                for x in range(x0, x1):
                    img[z, y, x] += amps[n] * wy * np.exp(-0.5 * ((x - cx) / sigma[2]) ** 2)


def render_movie(table: pd.DataFrame, shape, *, scale=1.0, psf_sigma=None, amplitude: float | None = None,
                 snr: float = 10.0, background: float = 100.0, read_noise: float = 2.0, seed=None):
    """Render point emitters as a noisy fluorescence movie.

    Parameters
    ----------
    table : DataFrame
        ``frame, [z,] y, x`` in physical units (e.g. :meth:`ParticleTrajectories.to_table`), optional
        ``intensity`` (relative brightness, multiplies the amplitude).
    shape : tuple of int
        Movie shape ``(t, [z,] y, x)``, or the spatial shape only (then ``t = max(frame) + 1``).
    scale : float or sequence of float
        Physical size of one pixel, scalar or per axis ``(z,) y, x``.
    psf_sigma : float or sequence of float, optional
        Gaussian PSF standard deviation in pixels, per axis (anisotropic); default 1.5 px in y, x
        and 2.0 px in z.
    amplitude : float, optional
        Peak signal of a spot above background (grey levels); overrides ``snr``.
    snr : float
        Peak SNR (see the module docstring); 10 by default.
    background : float
        Mean background (grey levels = photo-electrons).
    read_noise : float
        Standard deviation of the Gaussian read noise (grey levels).
    seed : int or numpy.random.Generator, optional
        Random seed of the noise.

    Returns
    -------
    movie : ndarray of uint16, shape (t, [z,] y, x)
    truth : DataFrame
        The rows of ``table`` inside the movie, coordinates in pixels, plus ``amplitude`` (peak
        signal of each spot); ``attrs["spacing"]`` = ``scale`` per axis.
    """
    table, cols, shape, scale, sigma, rng, amp = _setup(
        table, shape, scale, psf_sigma, amplitude, snr, background, read_noise, seed,
        default_sigma={2: 1.5, 3: (2.0, 1.5, 1.5)})
    d = len(cols)

    truth = _truth_in_pixels(table, cols, scale, shape)
    rel = table["intensity"].to_numpy(dtype=float) if "intensity" in table.columns else np.ones(len(table))
    amps_all = amp * rel
    pix_all = table[cols].to_numpy(dtype=float) / scale
    frames = table["frame"].to_numpy()
    truth["amplitude"] = amp * (truth["intensity"].to_numpy(dtype=float) if "intensity" in truth.columns else 1.0)
    truth.attrs.update(snr=float(snr) if amplitude is None else None, background=float(background),
                       read_noise=float(read_noise), psf_sigma=sigma.tolist())

    sig3 = np.zeros(3)
    sig3[3 - d:] = sigma
    half = np.zeros(3, np.int64)
    half[3 - d:] = np.ceil(4 * sigma).astype(np.int64)
    space = shape[1:] if d == 3 else (1,) + tuple(shape[1:])
    order = np.argsort(frames, kind="stable")
    bounds = np.searchsorted(frames[order], np.arange(shape[0] + 1))
    movie = np.empty(shape, np.uint16)
    for t in progress_iter(range(shape[0]), desc="rendering"):
        sel = order[bounds[t]:bounds[t + 1]]
        signal = np.zeros(space)
        c3 = np.zeros((len(sel), 3))
        c3[:, 3 - d:] = pix_all[sel]
        _splat(signal, c3, amps_all[sel], sig3, half)
        movie[t] = _noise(signal.reshape(shape[1:]), background, read_noise, rng)
    return movie, truth


def render_labels(table: pd.DataFrame, shape, *, scale=1.0, radius=None, label_column: str = "track_id"):
    """Paint objects as filled ellipsoids (spheres/disks of their physical radius) into a label movie.

    Parameters
    ----------
    table : DataFrame
        ``frame, [z,] y, x`` (physical units), ``label_column`` (positive integers, the label values)
        and ``radius`` (physical) unless ``radius`` is given.
    shape : tuple of int
        ``(t, [z,] y, x)`` or the spatial shape.
    scale : float or sequence of float
        Physical pixel size per axis; a sphere of radius ``r`` has semi-axes ``r / scale`` pixels.
    radius : float, optional
        One radius for all objects (physical units).
    label_column : str
        Column holding the label value of each object (``track_id`` by default).

    Returns
    -------
    ndarray of int32, shape (t, [z,] y, x)
        0 is background; where objects overlap the later row wins.
    """
    table, cols = _checked(table)
    d = len(cols)
    shape = _movie_shape(table, shape, d)
    scale = _per_axis(scale, d, "scale")
    if label_column not in table.columns:
        raise InputError(f"table has no '{label_column}' column to use as label values")
    values = table[label_column].to_numpy()
    if np.any(values < 1) or np.any(values > np.iinfo(np.int32).max):
        raise InputError(f"label values in '{label_column}' must be positive int32 integers (0 is background)")
    if radius is None:
        if "radius" not in table.columns:
            raise InputError("table has no 'radius' column: pass radius=")
        radii = table["radius"].to_numpy(dtype=float)
    else:
        radii = np.full(len(table), float(radius))
    if not np.all(np.isfinite(radii)) or np.any(radii <= 0):
        raise InputError("radii must be positive and finite")
    labels = np.zeros(shape, np.int32)
    centres = table[cols].to_numpy(dtype=float) / scale
    frames = table["frame"].to_numpy()
    space = np.asarray(shape[1:])
    rods = _rod_columns(table, cols)
    for k in range(len(table)):
        t = frames[k]
        if t >= shape[0]:
            continue
        if rods is not None and rods[0][k] > 2 * radii[k]:
            _paint_capsule(labels[t], centres[k] * scale, rods[1][k], rods[0][k], radii[k], scale, values[k])
            continue
        semi = radii[k] / scale
        lo = np.maximum(np.floor(centres[k] - semi).astype(int), 0)
        hi = np.minimum(np.ceil(centres[k] + semi).astype(int) + 1, space)
        if np.any(hi <= lo):
            continue
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        inside = sum(((g - c) / s) ** 2 for g, c, s in zip(grids, centres[k], semi)) <= 1.0
        view = labels[(t,) + tuple(slice(a, b) for a, b in zip(lo, hi))]
        view[inside] = values[k]
    return labels


def _rod_columns(table, cols):
    """``(length, unit axes)`` of rod rows (``length`` and ``orient_*`` columns), else None."""
    names = ["length"] + [f"orient_{c}" for c in cols]
    if not all(n in table.columns for n in names):
        return None
    ax = table[[f"orient_{c}" for c in cols]].to_numpy(dtype=float)
    norm = np.linalg.norm(ax, axis=1, keepdims=True)
    length = table["length"].to_numpy(dtype=float)
    if not np.all(np.isfinite(length)) or np.any(norm == 0) or not np.all(np.isfinite(norm)):
        raise InputError("rod rows need a finite 'length' and a non-zero 'orient_*' axis")
    return length, ax / norm


def _paint_capsule(view, centre, axis, length, radius, scale, value):
    """Paint a capsule (segment of length ``length - 2 radius`` swept by a ball) into one frame, physical units."""
    space = np.asarray(view.shape)
    half = 0.5 * (length - 2 * radius) * np.abs(axis) + radius
    lo = np.maximum(np.floor((centre - half) / scale).astype(int), 0)
    hi = np.minimum(np.ceil((centre + half) / scale).astype(int) + 1, space)
    if np.any(hi <= lo):
        return
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    rel = [g * s - c for g, s, c in zip(grids, scale, centre)]
    along = np.clip(sum(r * a for r, a in zip(rel, axis)), -0.5 * (length - 2 * radius), 0.5 * (length - 2 * radius))
    inside = sum((r - along * a) ** 2 for r, a in zip(rel, axis)) <= radius ** 2
    view[tuple(slice(a, b) for a, b in zip(lo, hi))][inside] = value


def render_cells(table: pd.DataFrame, shape, *, scale=1.0, psf_sigma=None, amplitude: float | None = None,
                 snr: float = 10.0, background: float = 100.0, read_noise: float = 2.0, seed=None,
                 contrast: str = "fluorescence", halo: float = 0.0, halo_sigma: float | None = None, gap: bool = False,
                 texture: float = 0.0):
    """Render cells (filled spheres/disks of their ``radius``, or rods) as a noisy movie plus their label movie.

    Rows with ``length`` and ``orient_*`` columns (:func:`~napari_dynfit.sim.cells.simulate_rod_colony`) are
    capsules of that length (tip to tip) along that axis.

    Image formation: with ``m`` the cell mask (``gap``: minus the pixels where two cells
    touch, a two-pixel line as cell walls show; ``texture``: times a per-cell gain and a smooth random field),
    ``fluorescence`` gives ``background + A s`` and ``phase`` (phase contrast, dark cells with bright halos)
    ``background - A s`` with ``s = G_psf * m - halo max(G_halo * m - G_psf * m, 0)``: the halo is where the
    low-pass part of the phase-ring response (Yin, Kanade and Chen 2012) exceeds the sharp image, bright
    around and between cells. Noise as in :func:`render_movie`; in ``phase`` the signal is clipped at zero
    photo-electrons.

    Parameters
    ----------
    table : DataFrame
        ``frame, track_id, [z,] y, x, radius`` in physical units (:func:`simulate_dividing_cells`), optional
        ``length, orient_[z,] y, x`` for rods.
    shape, scale, amplitude, snr, background, read_noise, seed
        As in :func:`render_movie`; ``amplitude``/``snr`` refer to the plateau inside a cell.
    psf_sigma : float or sequence of float, optional
        Gaussian PSF standard deviation in pixels per axis (default 1 px).
    contrast : {"fluorescence", "phase"}
        Bright cells, or dark cells with halos.
    halo : float
        Halo strength relative to ``A`` (phase contrast; 0 = none).
    halo_sigma : float, optional
        Width of the halo kernel in pixels (default the mean cell radius in pixels).
    gap : bool
        Leave a two-pixel dark (fluorescence) / bright (phase) line where two cells touch.
    texture : float
        Relative standard deviation of the cells' brightness (per cell and a smooth field inside; 0 = uniform).

    Returns
    -------
    movie : ndarray of uint16, shape (t, [z,] y, x)
    labels : ndarray of int32, same shape
        Ground-truth masks; the label value is the cell's ``track_id``.
    truth : DataFrame
        ``table`` in pixel coordinates (rows inside the movie), ``attrs["spacing"]`` = ``scale``.
    """
    table, cols, shape, scale_v, sigma, rng, amp = _setup(
        table, shape, scale, psf_sigma, amplitude, snr, background, read_noise, seed, default_sigma={2: 1.0, 3: 1.0})
    if contrast not in ("fluorescence", "phase"):
        raise InputError(f"contrast must be 'fluorescence' or 'phase', got {contrast!r}")
    if not np.isfinite(halo) or halo < 0:
        raise InputError(f"halo must be >= 0, got {halo}")
    labels = render_labels(table, shape, scale=scale_v)
    if halo_sigma is None:
        halo_sigma = float(np.mean(table["radius"].to_numpy(dtype=float) / np.mean(scale_v))) if len(table) else 1.0
    movie = np.empty(shape, np.uint16)
    for t in progress_iter(range(shape[0]), desc="rendering cells"):
        mask = labels[t] > 0
        if gap:  # both cells give up the pixels where they touch another cell (a two-pixel wall line)
            cross = ndimage.generate_binary_structure(labels.ndim - 1, 1)
            other = np.where(mask, labels[t], np.iinfo(np.int32).max)
            mask &= (ndimage.maximum_filter(labels[t], footprint=cross) <= labels[t]) & \
                (ndimage.minimum_filter(other, footprint=cross) >= labels[t])
        m = mask.astype(np.float64)
        if texture > 0:  # per-cell brightness and a smooth random field inside the cells
            gain = np.clip(1 + 0.5 * texture * rng.standard_normal(int(labels[t].max()) + 1), 0.3, None)
            field = ndimage.gaussian_filter(rng.standard_normal(m.shape), 1.5)
            field *= texture / max(float(field.std()), 1e-12)
            m = m * np.clip(gain[labels[t]] + field, 0.1, None)
        sharp = ndimage.gaussian_filter(m, sigma, mode="constant")
        signal = sharp * amp
        if halo > 0:
            signal -= halo * amp * np.clip(ndimage.gaussian_filter(m, halo_sigma, mode="constant") - sharp, 0, None)
        if contrast == "phase":
            signal = np.clip(background - signal, 0, None) - background
        movie[t] = _noise(signal, background, read_noise, rng)
    truth = _truth_in_pixels(table, cols, scale_v, shape)
    truth.attrs.update(snr=float(snr) if amplitude is None else None, background=float(background),
                       read_noise=float(read_noise), psf_sigma=sigma.tolist())
    return movie, labels, truth
