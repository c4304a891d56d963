"""Coarse-graining particles into continuum fields with a Gaussian kernel.

For particles ``i`` at ``x_i`` with unit orientations ``e_i`` and velocities ``v_i`` in a frame::

    rho(x) = sum_i K(x - x_i)                       number density (1 / length^d)
    p(x)   = sum_i e_i K(x - x_i)                   polarisation density
    v(x)   = sum_i v_i K(x - x_i) / rho(x)          mean velocity (0 where rho < 1e-9 max rho)
    Q(x)   = sum_i (e_i e_i - I/d) K(x - x_i)       nematic tensor density

with ``K`` a normalised Gaussian of standard deviation ``sigma``. Particles are first deposited on
the grid by linear (cloud-in-cell) weights, then smoothed by a Gaussian of variance
``sigma^2 - h^2/6`` per axis (the cloud-in-cell deposit adds ``f (1 - f) h^2`` for a particle at
fraction ``f`` of a cell, ``h^2/6`` on average), so the effective kernel has variance ``sigma^2`` on
average over positions (within ``h^2/12`` for every particle). Periodic axes smooth in Fourier space (exact periodic images);
bounded axes use :func:`scipy.ndimage.gaussian_filter` with zero padding (particles near an edge
lose the part of their kernel outside the domain). The deposit is one compiled (numba) pass over
all rows, so the cost is ``O(N T 2^d + T M log M)`` for ``M`` grid points; frames may hold
different numbers of particles.

Why our own: a kernel density on a grid with periodic images, tensor moments and per-frame
particle counts is short in numpy and is the product; no maintained library does exactly this.
"""

from __future__ import annotations

import numpy as np
from numba import njit as _njit

from .._progress import report
from ..errors import InputError
from ..geometry import COARSE_GRAINED
from .bundle import FieldBundle

FIELD_NAMES = ("rho", "p", "v", "Q")
_AXES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


def _deposit(frame_idx, pos, ori, vel, n_frames, origin, spacing, box, shape, periodic, n_cols):
    """Cloud-in-cell deposit onto ``(n_frames, *shape, n_cols)`` (values per cell volume).

    Columns: 1 (density), then ``ori`` (``d``), ``vel`` (``d``) and ``e e - I/d`` (``d*d``) where
    those arrays have rows (an empty array leaves its columns out).
    """
    d = pos.shape[1]
    pad = 3 - d
    shape3 = np.r_[np.ones(pad, np.int64), np.asarray(shape, np.int64)]
    out = np.zeros((n_frames, *shape3, n_cols))
    _cic(np.ascontiguousarray(frame_idx, dtype=np.int64), np.ascontiguousarray(pos, dtype=float),
         np.ascontiguousarray(ori, dtype=float), np.ascontiguousarray(vel, dtype=float),
         np.asarray(origin, float), np.asarray(spacing, float), np.asarray(box, float),
         np.asarray(periodic, np.bool_), shape3, out)
    return out.reshape((n_frames, *shape, n_cols)) / float(np.prod(spacing))


@_njit(cache=True)
def _cic(frame, pos, ori, vel, origin, spacing, box, periodic, shape3, out):
    n, d = pos.shape
    pad = 3 - d
    has_ori = ori.shape[0] == n
    has_vel = vel.shape[0] == n
    want_q = out.shape[-1] > 1 + (d if has_ori else 0) + (d if has_vel else 0)
    k = out.shape[-1]
    w = np.zeros(k)
    base = np.zeros(3, np.int64)
    frac = np.zeros(3)
    for i in range(n):
        for a in range(3):
            base[a] = 0
            frac[a] = 0.0
        for a in range(d):
            x = pos[i, a] - origin[a]
            if periodic[a]:
                x = x % box[a]
            g = x / spacing[a]
            b = np.floor(g)
            base[pad + a] = np.int64(b)
            frac[pad + a] = g - b
        w[0] = 1.0
        j = 1
        if has_ori:
            for a in range(d):
                w[j] = ori[i, a]
                j += 1
        if has_vel:
            for a in range(d):
                w[j] = vel[i, a]
                j += 1
        if want_q:
            for a in range(d):
                for b2 in range(d):
                    w[j] = ori[i, a] * ori[i, b2] - (1.0 / d if a == b2 else 0.0)
                    j += 1
        f = frame[i]
        for c0 in range(2 if pad == 0 else 1):
            i0 = base[0] + c0
            w0 = (frac[0] if c0 else 1.0 - frac[0]) if pad == 0 else 1.0
            if pad == 0:
                if periodic[0]:
                    i0 %= shape3[0]
                elif i0 < 0 or i0 >= shape3[0]:
                    continue
            for c1 in range(2 if pad <= 1 else 1):
                i1 = base[1] + c1
                w1 = (frac[1] if c1 else 1.0 - frac[1]) if pad <= 1 else 1.0
                if pad <= 1:
                    if periodic[1 - pad]:
                        i1 %= shape3[1]
                    elif i1 < 0 or i1 >= shape3[1]:
                        continue
                for c2 in range(2):
                    i2 = base[2] + c2
                    w2 = frac[2] if c2 else 1.0 - frac[2]
                    if periodic[d - 1]:
                        i2 %= shape3[2]
                    elif i2 < 0 or i2 >= shape3[2]:
                        continue
                    ww = w0 * w1 * w2
                    for c in range(k):
                        out[f, i0, i1, i2, c] += ww * w[c]


def _smooth(arr, sigma, spacing, periodic):
    """Gaussian smoothing of ``(t, *space, k)`` along the space axes (FFT on periodic ones)."""
    from scipy.ndimage import gaussian_filter1d

    d = len(spacing)
    for a in range(d):
        s = np.sqrt(max(sigma ** 2 - spacing[a] ** 2 / 6.0, 0.0)) / spacing[a]   # grid units
        if s == 0:
            continue
        ax = 1 + a
        if periodic[a]:
            n = arr.shape[ax]
            k = 2 * np.pi * np.fft.rfftfreq(n)
            shape = [1] * arr.ndim
            shape[ax] = len(k)
            arr = np.fft.irfft(np.fft.rfft(arr, axis=ax) * np.exp(-0.5 * (k * s) ** 2).reshape(shape), n=n, axis=ax)
        else:
            arr = gaussian_filter1d(arr, s, axis=ax, mode="constant", truncate=4.0)
    return arr


def coarse_grain_particles(frame: np.ndarray, positions: np.ndarray, *, spacing, sigma: float, box=None,
                           origin=None, shape=None, periodic=True, orientations=None, velocities=None,
                           times=None, fields=("rho", "p")) -> FieldBundle:
    """Coarse-grain particles given as flat arrays (one row per particle per frame).

    Parameters
    ----------
    frame : ndarray of int, shape (n,)
        Frame index of each row (``0 .. T-1``; frames without particles give empty fields).
    positions : ndarray, shape (n, d)
        Positions in physical units, axis order ``(z,) y, x``.
    spacing : float or sequence of float
        Grid spacing per axis (physical units).
    sigma : float
        Kernel standard deviation (physical units).
    box : sequence of float, optional
        Domain size per axis; with ``periodic`` the positions are wrapped into ``[origin, origin + box)``.
        Default: the positions' range (plus ``4 sigma`` margins on bounded axes).
    origin : sequence of float, optional
        Lower corner of the domain (default 0 for periodic axes, ``min - 4 sigma`` otherwise).
    shape : sequence of int, optional
        Grid points per axis (default ``round(box / spacing)``).
    periodic : bool or sequence of bool
        Periodicity per axis.
    orientations, velocities : ndarray, shape (n, d), optional
        Unit orientations (for ``p`` and ``Q``) and velocities (for ``v``).
    times : ndarray, shape (T,), optional
        Frame times (default ``0, 1, 2, ...``).
    fields : sequence of {"rho", "p", "v", "Q"}
        Fields to compute (``rho`` is always included).

    Returns
    -------
    FieldBundle
        ``rho`` ``(T, *space)``, ``p``/``v`` ``(T, *space, d)``, ``Q`` ``(T, *space, d, d)``;
        ``attrs`` record ``sigma`` and the particle count per frame.
    """
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 2 or pos.shape[1] not in (1, 2, 3):
        raise InputError(f"positions must have shape (n, d) with d in 1..3, got {pos.shape}")
    if len(pos) == 0:
        raise InputError("no particles to coarse-grain: the table is empty")
    if not np.isfinite(pos).all():
        raise InputError("positions contain NaN/inf: drop those rows first")
    frame = np.asarray(frame, dtype=np.int64).ravel()
    if frame.shape[0] != pos.shape[0] or frame.min() < 0:
        raise InputError("frame must hold one non-negative index per position row")
    d = pos.shape[1]
    unknown = set(fields) - set(FIELD_NAMES)
    if unknown:
        raise InputError(f"unknown fields {sorted(unknown)}; choose from {FIELD_NAMES}")
    fields = ["rho"] + [f for f in fields if f != "rho"]
    if ("p" in fields or "Q" in fields) and orientations is None:
        raise InputError("fields 'p'/'Q' need orientations (or use velocities via coarse_grain_table)")
    if "v" in fields and velocities is None:
        raise InputError("field 'v' needs velocities")
    if sigma <= 0:
        raise InputError(f"sigma must be positive, got {sigma}")
    spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (d,)).copy()
    if (spacing <= 0).any():
        raise InputError(f"spacing must be positive, got {spacing}")
    periodic = tuple(np.broadcast_to(np.asarray(periodic, dtype=bool), (d,)).tolist())
    lo, hi = pos.min(0), pos.max(0)
    margin = 4 * sigma
    if origin is None:
        origin = np.where(periodic, 0.0, lo - margin)
    origin = np.broadcast_to(np.asarray(origin, dtype=float), (d,)).copy()
    if box is None:
        if any(periodic):
            raise InputError("periodic coarse-graining needs the box size: pass box=(Ly, Lx)")
        box = hi + margin - origin
    box = np.broadcast_to(np.asarray(box, dtype=float), (d,)).copy()
    if shape is None:
        # periodic: n cells tile the box exactly; bounded: nodes cover [origin, origin + box]
        shape = np.where(periodic, np.maximum(np.round(box / spacing), 1),
                         np.floor(box / spacing + 1e-9) + 1).astype(int)
        spacing = np.where(periodic, box / shape, spacing)
    shape = tuple(int(s) for s in shape)
    if np.prod(shape) * (frame.max() + 1) > 2e8:
        raise InputError(f"grid {shape} x {frame.max() + 1} frames is too large: increase the spacing")
    n_frames = int(frame.max()) + 1 if times is None else len(times)
    if frame.max() >= n_frames:
        raise InputError(f"frame index {frame.max()} but only {n_frames} times given")
    empty = np.zeros((0, d))
    ori = np.asarray(orientations, dtype=float) if ("p" in fields or "Q" in fields) else empty
    vel = np.asarray(velocities, dtype=float) if "v" in fields else empty
    for name, arr in (("orientations", ori), ("velocities", vel)):
        if len(arr) and arr.shape != pos.shape:
            raise InputError(f"{name} must have the shape of positions {pos.shape}, got {arr.shape}")
    n_cols = 1 + (d if "p" in fields else 0) + (d if "v" in fields else 0) + (d * d if "Q" in fields else 0)
    if "Q" in fields and "p" not in fields:
        raise InputError("field 'Q' needs 'p' as well (both come from the orientations)")
    report(0, 2, "coarse-graining")
    dep = _deposit(frame, pos, ori, vel, n_frames, origin, spacing, box, shape, periodic, n_cols)
    report(1, 2, "coarse-graining")
    dep = _smooth(dep, sigma, spacing, periodic)
    report(2, 2, "coarse-graining")
    out = {"rho": dep[..., 0]}
    j = 1
    if "p" in fields:
        out["p"] = dep[..., j:j + d]
        j += d
    if "v" in fields:
        mom = dep[..., j:j + d]
        j += d
        rho = out["rho"]
        ok = rho > 1e-9 * max(rho.max(), 1e-300)
        out["v"] = np.where(ok[..., None], mom / np.where(ok, rho, 1.0)[..., None], 0.0)
    if "Q" in fields:
        out["Q"] = dep[..., j:j + d * d].reshape(dep.shape[:-1] + (d, d))
    axes = _AXES[d]
    coords = {"t": np.arange(n_frames, dtype=float) if times is None else np.asarray(times, dtype=float)}
    for a, name in enumerate(axes):
        coords[name] = origin[a] + spacing[a] * np.arange(shape[a])
    counts = np.bincount(frame, minlength=n_frames)
    return FieldBundle(out, coords, periodic=periodic,
                       attrs={"sigma": float(sigma), "particles_per_frame": counts.tolist(),
                              "box": box.tolist(), "source": COARSE_GRAINED})


def coarse_grain(traj, *, spacing: float, sigma: float, fields=("rho", "p"), frames=None) -> FieldBundle:
    """Coarse-grain simulator output (:class:`napari_dynfit.sim.ParticleTrajectories`).

    Parameters
    ----------
    traj : ParticleTrajectories
        ``positions``/``orientations``/``velocities`` ``(T, N, d)``, ``times``, periodic ``box``.
    spacing, sigma : float
        Grid spacing and kernel width (physical units).
    fields : sequence of str
        Any of ``"rho"``, ``"p"`` (from orientations), ``"v"``, ``"Q"``.
    frames : slice or array of int, optional
        Frames to use (default all).

    Returns
    -------
    FieldBundle
        Periodic fields on the simulation box.
    """
    sel = slice(None) if frames is None else frames
    pos = np.asarray(traj.positions)[sel]
    T, N, d = pos.shape
    frame = np.repeat(np.arange(T), N)
    ori = np.asarray(traj.orientations)[sel].reshape(T * N, d)
    vel = np.asarray(traj.velocities)[sel].reshape(T * N, d)
    return coarse_grain_particles(frame, pos.reshape(T * N, d), spacing=spacing, sigma=sigma, box=traj.box,
                                  periodic=True, orientations=ori, velocities=vel,
                                  times=np.asarray(traj.times)[sel], fields=fields)


def auto_kernel(df, *, box=None) -> tuple[float, float]:
    """Kernel width and grid spacing from the data: ``(sigma, spacing)`` in the coordinates' units.

    ``sigma`` is the mean inter-particle distance ``(V / n)^(1/d)`` (``V`` the volume of ``box`` or,
    without it, of the coordinates' range; ``n`` the mean number of rows per frame) and ``spacing`` is
    half of it. A kernel of about one inter-particle distance averages a few particles per kernel
    (so the fields are smooth enough for derivatives) while keeping the pattern's scales; measured on
    the 2D sample's walk-through (``napari_dynfit.bench.sample_walk``), it pins the coefficients
    closer than a kernel set from the field of view (``extent / 16``), which on the full sample is
    1.7 inter-particle distances.

    Parameters
    ----------
    df : pandas.DataFrame
        ``frame, [z,] y, x`` rows (detections or tracks).
    box : sequence of float, optional
        Domain size per axis (default the coordinates' range).

    Returns
    -------
    sigma, spacing : float
    """
    from ..tables import coord_columns

    axes = coord_columns(df)
    if len(df) == 0:
        raise InputError("the table is empty: nothing to coarse-grain")
    pos = df[list(axes)].to_numpy(dtype=float)
    size = np.asarray(box, dtype=float) if box is not None else pos.max(0) - pos.min(0)
    size = np.broadcast_to(size, (len(axes),))
    if not np.all(size > 0):
        raise InputError(f"the particles span no {len(axes)}D volume (extent {size.tolist()}): pass the box")
    per_frame = len(df) / df["frame"].nunique()
    sigma = float((np.prod(size) / per_frame) ** (1.0 / len(axes)))
    return sigma, sigma / 2


def fill_track_gaps(df, *, box=None, periodic=False):
    """Tracks with the frames a gap-closing link skipped filled in by linear interpolation.

    A particle missed by detection in a frame is still there: leaving its row out makes a hole in
    that frame's density (and polarisation), which the PDE step reads as dynamics. Rows are added for
    every missing frame between two rows of a track (positions interpolated, with minimum images on
    periodic axes, then wrapped into the box); other columns are copied from the row before the gap.

    Parameters
    ----------
    df : pandas.DataFrame
        ``track_id, frame, [z,] y, x`` (+ other columns).
    box : sequence of float, optional
        Domain size per axis (needed for periodic axes).
    periodic : bool or sequence of bool
        Periodicity per axis.

    Returns
    -------
    pandas.DataFrame
        ``df`` with the added rows (sorted by track and frame; ``attrs["filled_rows"]`` counts them).
    """
    import pandas as pd

    from ..tables import coord_columns

    axes = list(coord_columns(df))
    d = len(axes)
    order = np.lexsort((df["frame"].to_numpy(), df["track_id"].to_numpy()))
    srt = df.iloc[order].reset_index(drop=True)
    tid = srt["track_id"].to_numpy()
    fr = srt["frame"].to_numpy(dtype=np.int64)
    step = np.diff(fr)
    gap = np.flatnonzero((tid[1:] == tid[:-1]) & (step > 1))
    out_attrs = dict(df.attrs)
    if len(gap) == 0:
        srt.attrs = {**out_attrs, "filled_rows": 0}
        return srt
    missing = step[gap] - 1
    src = np.repeat(gap, missing)                                   # row before each gap, once per missing frame
    k = np.concatenate([np.arange(1, m + 1) for m in missing])      # 1 .. missing
    frac = (k / np.repeat(step[gap], missing))[:, None]
    pos = srt[axes].to_numpy(dtype=float)
    delta = pos[src + 1] - pos[src]
    per = np.broadcast_to(np.asarray(periodic, dtype=bool), (d,))
    if per.any():
        if box is None:
            raise InputError("filling gaps of tracks in a periodic box needs the box size")
        L = np.broadcast_to(np.asarray(box, dtype=float), (d,))
        delta = np.where(per, delta - L * np.round(delta / np.where(per, L, 1.0)), delta)
    new_pos = pos[src] + frac * delta
    if per.any():
        new_pos = np.where(per, np.mod(new_pos, np.where(per, L, 1.0)), new_pos)
    added = srt.iloc[src].copy()
    added["frame"] = (fr[src] + k).astype(srt["frame"].dtype)
    added[axes] = new_pos
    out = pd.concat([srt, added], ignore_index=True)
    order = np.lexsort((out["frame"].to_numpy(), out["track_id"].to_numpy()))
    out = out.iloc[order].reset_index(drop=True)
    out.attrs = {**out_attrs, "filled_rows": int(len(added))}
    return out


def coarse_grain_table(df, *, spacing=None, sigma: float | None = None, box=None, periodic=False,
                       dt: float | None = None, fields=("rho", "p"), polarisation: str = "auto",
                       fill_gaps: bool = True) -> FieldBundle:
    """Coarse-grain a detections/tracks table (``frame, [z,] y, x`` + optional orientation columns).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per particle per frame. Orientation columns ``p_y, p_x`` (``p_z``) are used for
        ``p``/``Q`` when present; otherwise, with ``track_id``, orientations are the normalised
        velocities from displacements between consecutive frames of each track.
    spacing, sigma : float, optional
        Grid spacing and kernel width (physical units of the coordinates). Default (either left
        out): :func:`auto_kernel`, kernel = mean inter-particle distance, grid = half of it (a given
        one is kept; a given ``sigma`` alone gets ``spacing = sigma / 2``).
    box : sequence of float, optional
        Domain size (needed for periodic axes); default the data range.
    periodic : bool or sequence of bool
        Periodicity per axis.
    dt : float, optional
        Frame interval (default ``df.attrs["dt"]`` or 1).
    fields : sequence of str
        Any of ``"rho"``, ``"p"``, ``"v"``, ``"Q"``.
    polarisation : {"auto", "orientation", "velocity"}
        Source of ``e_i``.
    fill_gaps : bool
        With ``track_id``: add the frames that gap-closing links skipped (:func:`fill_track_gaps`),
        so that a particle missed in a frame still counts there.

    Returns
    -------
    FieldBundle
        With ``attrs["time_window"] = 2`` and ``attrs["windowed_fields"]`` (``p``, ``Q``, ``v``) when
        those come from displacements: at frame ``t`` they average the motion between frames
        ``t - 1`` and ``t + 1``, which the Ito regression of
        :func:`~napari_dynfit.fields.weak.weak_features` takes into account.
    """
    from ..tables import coord_columns, validate_table

    validate_table(df, required=("frame",))
    axes = coord_columns(df)
    if len(df) == 0:
        raise InputError("the table is empty: nothing to coarse-grain")
    dt = float(dt if dt is not None else df.attrs.get("dt", 1.0))
    filled = 0
    if fill_gaps and "track_id" in df.columns:
        df = fill_track_gaps(df, box=box, periodic=periodic)
        filled = df.attrs["filled_rows"]
    if sigma is None:
        sigma, auto_spacing = auto_kernel(df, box=box)
        spacing = auto_spacing if spacing is None else spacing
    elif spacing is None:
        spacing = sigma / 2
    frame = df["frame"].to_numpy(dtype=np.int64)
    f0 = frame.min()
    pos = df[list(axes)].to_numpy(dtype=float)
    ori_cols = [f"p_{a}" for a in axes]
    need_dir = "p" in fields or "Q" in fields or "v" in fields
    ori = vel = None
    windowed = False  # a field from displacements between frames
    has_ori = all(c in df.columns for c in ori_cols)
    if need_dir:
        if polarisation in ("auto", "orientation") and has_ori:
            ori = df[ori_cols].to_numpy(dtype=float)
            ori = ori / np.maximum(np.linalg.norm(ori, axis=1, keepdims=True), 1e-12)
        elif polarisation == "orientation":
            raise InputError(f"no orientation columns {ori_cols} in the table; use polarisation='velocity'")
        vcols = [f"v_{a}" for a in axes]
        if all(c in df.columns for c in vcols):
            vel = df[vcols].to_numpy(dtype=float)
        elif "track_id" in df.columns:
            vel = _track_velocities(df, axes, dt, box, periodic)
            windowed = "v" in fields or ori is None
        elif "v" in fields or ori is None:
            raise InputError("velocities need a 'track_id' column (link the detections first) or v_* columns")
        if ori is None:
            ori = vel / np.maximum(np.linalg.norm(vel, axis=1, keepdims=True), 1e-12)
    times = (np.arange(frame.max() - f0 + 1) + f0) * dt
    bundle = coarse_grain_particles(frame - f0, pos, spacing=spacing, sigma=sigma, box=box, periodic=periodic,
                                    orientations=ori, velocities=vel, times=times, fields=fields)
    bundle.attrs["filled_rows"] = int(filled)
    if windowed:
        # p (and v) at frame t come from the positions at t - 1 and t + 1 (see fields.weak, Ito form)
        bundle.attrs["time_window"] = 2
        bundle.attrs["windowed_fields"] = [f for f in ("p", "Q", "v") if f in fields and (f == "v" or not has_ori)]
    return bundle


def _track_velocities(df, axes, dt, box, periodic):
    """Central-difference velocities per track (one-sided at track ends; minimum-image if periodic)."""
    d = len(axes)
    order = np.lexsort((df["frame"].to_numpy(), df["track_id"].to_numpy()))
    tid = df["track_id"].to_numpy()[order]
    fr = df["frame"].to_numpy()[order].astype(float)
    pos = df[list(axes)].to_numpy(dtype=float)[order]
    per = np.broadcast_to(np.asarray(periodic, dtype=bool), (d,))
    L = np.broadcast_to(np.asarray(box if box is not None else np.inf, dtype=float), (d,))

    def diff(a, b, fa, fb):
        delta = b - a
        delta = np.where(per, delta - L * np.round(delta / np.where(per, L, 1.0)), delta)
        return delta / ((fb - fa)[:, None] * dt)

    vel = np.zeros_like(pos)
    same_next = np.r_[tid[1:] == tid[:-1], False]
    same_prev = np.r_[False, tid[1:] == tid[:-1]]
    nxt = np.r_[pos[1:], pos[-1:]]
    prv = np.r_[pos[:1], pos[:-1]]
    fn = np.r_[fr[1:], fr[-1:]]
    fp = np.r_[fr[:1], fr[:-1]]
    both = same_next & same_prev
    vel[both] = diff(prv[both], nxt[both], fp[both], fn[both])
    only_n = same_next & ~same_prev
    vel[only_n] = diff(pos[only_n], nxt[only_n], fr[only_n], fn[only_n])
    only_p = same_prev & ~same_next
    vel[only_p] = diff(prv[only_p], pos[only_p], fp[only_p], fr[only_p])
    out = np.empty_like(vel)
    out[order] = vel
    return out
