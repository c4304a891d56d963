"""Physical analysis of tracks: drift, mean squared displacement (MSD) and its power-law fit, van Hove
distributions, velocity autocorrelation.

All functions take a tracks table ``track_id, frame, [z,] y, x`` (as returned by :func:`napari_dynfit.track.link`;
coordinates in pixels) and return physical units: lengths are multiplied by ``spacing`` (per axis ``(z,) y, x``;
default ``tracks.attrs["spacing"]`` or 1) and lags by the frame interval ``dt``.

Definitions follow trackpy (Allan et al.), so results can be compared with it directly:

* drift (:func:`compute_drift`): the cumulative sum over frames of the mean displacement, between consecutive
  frames, of the particles present in both (``trackpy.compute_drift``);
* ensemble MSD (:func:`msd`): at each lag the mean of the squared displacements of all pairs of positions of
  the same track that many frames apart (``weights="pairs"``), or, as ``trackpy.emsd``, the mean of the tracks'
  MSDs weighted by their effective number of independent measurements (Qian, Sheetz & Elson 1991, eq. B4;
  ``weights="independent"``, the default: overlapping displacements of one long track count less);
* immobile tracks (:func:`classify_immobile`): no significant serial correlation of the positions (von Neumann's
  ratio test) relative to the camera or to the drift; left out of :func:`fit_msd` by default and counted;
* power-law fit (:func:`fit_msd`): least squares of ``log MSD = log A + n log t`` (``trackpy.utils.fit_powerlaw``),
  plus a linear fit ``MSD = 2 d D t + c`` over the first lags for the diffusion coefficient ``D`` (``c`` absorbs
  the localisation error, ``4 sigma_loc^2`` in 2D).

Written here (numpy/pandas, a few lines each) rather than importing trackpy, so that the core keeps its small
dependency set and works on 3D tracks with anisotropic spacing and lineage columns; trackpy is the oracle of the
tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError
from ..tables import coord_columns, validate_table


def _prepared(tracks: pd.DataFrame, spacing, *, min_length: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """``track_id, frame, coords`` in physical units, sorted, tracks shorter than ``min_length`` frames dropped."""
    df = validate_table(tracks, required=("frame", "track_id"), what="tracks")
    cols = coord_columns(df)
    sp = spacing if spacing is not None else tracks.attrs.get("spacing")
    sp = np.ones(len(cols)) if sp is None else np.asarray(sp, float).ravel()[-len(cols):]
    if sp.shape != (len(cols),) or not np.all(np.isfinite(sp)) or (sp <= 0).any():
        raise InputError(f"spacing must hold {len(cols)} positive numbers (one per axis {', '.join(cols)}), "
                         f"got {spacing}")
    out = df[["track_id", "frame", *cols]].copy()
    out[cols] = out[cols].to_numpy(float) * sp
    if out.duplicated(["track_id", "frame"]).any():
        raise InputError("tracks have two positions of one track in one frame: pass a tracks table (one row per "
                         "track and frame)")
    if min_length > 0:
        n = out.groupby("track_id")["frame"].transform("size")
        out = out[n >= min_length]
    if len(out) == 0:
        raise InputError(f"no track has {min_length} or more positions: lower min_length")
    return out.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True), cols


def _check_dt(dt) -> float:
    dt = float(dt)
    if not np.isfinite(dt) or dt <= 0:
        raise InputError(f"dt (frame interval) must be a positive number, got {dt}")
    return dt


def compute_drift(tracks: pd.DataFrame, *, spacing=None, smoothing: int = 0) -> pd.DataFrame:
    """Collective drift of the tracks per frame.

    Parameters
    ----------
    tracks : DataFrame
        ``track_id, frame, [z,] y, x`` (pixels).
    spacing : sequence of float, optional
        Pixel size per axis (default ``tracks.attrs["spacing"]`` or 1).
    smoothing : int
        Rolling mean over this many frames of the frame-to-frame drift (0: none).

    Returns
    -------
    DataFrame
        Index ``frame`` (every frame from the first to the last), columns ``[z,] y, x``: the drift in physical
        units, 0 at the first frame.
    """
    df, cols = _prepared(tracks, spacing)
    return _drift(df, cols, smoothing)


def _drift(df: pd.DataFrame, cols: list[str], smoothing: int = 0) -> pd.DataFrame:
    nxt = df.assign(frame=df["frame"] - 1)
    pair = df.merge(nxt, on=["track_id", "frame"], suffixes=("", "_1"))
    step = pd.DataFrame({c: pair[f"{c}_1"].to_numpy() - pair[c].to_numpy() for c in cols})
    step["frame"] = pair["frame"].to_numpy() + 1  # displacement from frame f - 1 to frame f
    frames = np.arange(df["frame"].min(), df["frame"].max() + 1)
    mean = step.groupby("frame")[cols].mean().reindex(frames).fillna(0.0)
    if smoothing > 0:
        mean = mean.rolling(int(smoothing), min_periods=1).mean()
    mean.iloc[0] = 0.0
    out = mean.cumsum()
    out.index.name = "frame"
    return out


def subtract_drift(tracks: pd.DataFrame, drift: pd.DataFrame | None = None, *, spacing=None) -> pd.DataFrame:
    """``tracks`` with the drift (default :func:`compute_drift`) subtracted from the positions.

    The result keeps the units of ``tracks`` (the drift, physical, is divided by ``spacing``) and all its columns.
    """
    df, cols = _prepared(tracks, spacing)
    sp = np.asarray(spacing if spacing is not None else tracks.attrs.get("spacing") or np.ones(len(cols)),
                    float).ravel()[-len(cols):]
    d = _drift(df, cols) if drift is None else drift
    out = tracks.copy()
    shift = d.reindex(out["frame"].to_numpy()).fillna(0.0)[cols].to_numpy() / sp
    out[cols] = out[cols].to_numpy(float) - shift
    return out


def _independent(n, t):
    """Effective number of independent MSD measurements of a track of ``n`` frames at lag ``t`` (Qian et al. 1991,
    eq. B4, as trackpy's ``_msd_N``)."""
    n, t = np.asarray(n, float), np.asarray(t, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > n / 2, 1 / (1 + ((n - t) ** 3 + 5 * t - 4 * (n - t) ** 2 * t - n) / (6 * (n - t) * t ** 2)),
                        6 * (n - t) ** 2 * t / (2 * n - t + 4 * n * t ** 2 - 5 * t ** 3))


def _pairs(df: pd.DataFrame, lag: int) -> pd.DataFrame:
    later = df.assign(frame=df["frame"] - lag)
    return df.merge(later, on=["track_id", "frame"], suffixes=("", "_2"))


def msd(tracks: pd.DataFrame, *, dt: float = 1.0, spacing=None, max_lag: int | None = 100, min_length: int = 0,
        drift: bool = False, weights: str = "independent") -> pd.DataFrame:
    """Ensemble mean squared displacement by lag.

    Parameters
    ----------
    tracks : DataFrame
        ``track_id, frame, [z,] y, x`` (pixels).
    dt : float
        Frame interval (time units, e.g. s).
    spacing : sequence of float, optional
        Pixel size per axis (default ``tracks.attrs["spacing"]`` or 1).
    max_lag : int, optional
        Largest lag in frames (default 100, as trackpy; None: a quarter of the frames spanned).
    min_length : int
        Drop tracks with fewer positions (trackpy's ``filter_stubs``).
    drift : bool
        Subtract the collective drift (:func:`compute_drift`, computed on the kept tracks) first.
    weights : {"independent", "pairs"}
        ``"independent"``: the tracks' MSDs weighted by their effective numbers of independent measurements
        (``trackpy.emsd``); ``"pairs"``: every displacement counts once.

    Returns
    -------
    DataFrame
        ``lag`` (frames), ``t`` (``lag * dt``), ``msd`` (physical units squared, summed over axes) and ``n``
        (displacements averaged); only lags with at least one displacement.
    """
    tab, _ = _msd_with_parts(tracks, dt=dt, spacing=spacing, max_lag=max_lag, min_length=min_length, drift=drift,
                             weights=weights)
    return tab


def _msd_with_parts(tracks, *, dt, spacing, max_lag, min_length, drift, weights) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`msd` and its parts: one row per track and lag, ``track_id, lag, mean`` (the track's mean squared
    displacement at that lag), ``size`` (its displacements) and ``w`` (its weight in the ensemble average)."""
    dt = _check_dt(dt)
    if weights not in ("independent", "pairs"):
        raise InputError(f"weights must be 'independent' or 'pairs', got {weights!r}")
    df, cols = _prepared(tracks, spacing, min_length=min_length)
    if drift:
        d = _drift(df, cols)
        df[cols] = df[cols].to_numpy() - d.reindex(df["frame"].to_numpy())[cols].to_numpy()
    span = int(df["frame"].max() - df["frame"].min())
    max_lag = max(1, (span + 1) // 4) if max_lag is None else int(max_lag)
    if max_lag < 1:
        raise InputError(f"max_lag must be at least 1 frame, got {max_lag}")
    parts = []
    for lag in range(1, min(max_lag, span) + 1):
        pair = _pairs(df, lag)
        if len(pair):
            sq = sum((pair[f"{c}_2"].to_numpy() - pair[c].to_numpy()) ** 2 for c in cols)
            parts.append(pd.DataFrame({"track_id": pair["track_id"].to_numpy(), "lag": lag, "sq": sq}))
    if not parts:
        raise InputError("no track has two positions: the MSD needs tracks spanning at least two frames")
    per = pd.concat(parts).groupby(["track_id", "lag"])["sq"].agg(["mean", "size"]).reset_index()
    if weights == "pairs":
        per["w"] = per["size"].astype(float)
    else:  # trackpy.emsd: weights N_eff(length, lag) * positions / length, rescaled over the defined lags
        g = df.groupby("track_id")["frame"]
        info = pd.DataFrame({"length": g.max() - g.min() + 1, "npos": g.size()})
        per = per.join(info, on="track_id")
        per["w"] = _independent(per["length"], per["lag"]) * per["npos"] / per["length"]
        total = {tid: float(np.sum(_independent(n, np.arange(1, min(max_lag, n - 1) + 1)))) * k / n
                 for tid, n, k in zip(info.index, info["length"], info["npos"])}
        per["w"] *= per["track_id"].map(total) / per.groupby("track_id")["w"].transform("sum")
        per = per.drop(columns=["length", "npos"])
    per["wm"] = per["w"] * per["mean"]
    agg = per.groupby("lag")[["wm", "w", "size"]].sum()
    tab = pd.DataFrame({"msd": agg["wm"] / agg["w"], "n": agg["size"]}).reset_index()
    tab.insert(1, "t", tab["lag"] * dt)
    tab["n"] = tab["n"].astype(np.int64)
    return tab[["lag", "t", "msd", "n"]], per.drop(columns=["wm"])


#: A track whose positional variance (summed over axes) is at most this many times the localisation variance
#: ``d sigma^2`` (from the mobile tracks' MSD intercept) is immobile (:func:`classify_immobile`).
SPREAD_NOISE = 2.0
#: Uncorrelated tracks (von Neumann test) are immobile only within this many times ``d sigma^2`` (a short diffusing
#: track can look uncorrelated by chance; still objects up to ~2.2x noisier than the rest are still caught).
SPREAD_WHITE = 5.0

#: Tracks with fewer positions are not tested for mobility by :func:`classify_immobile` (always kept).
MIN_TEST_POSITIONS = 10


def _von_neumann(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Per track: positions ``n``, von Neumann ratio ``eta`` (mean squared displacement between consecutive frames
    over the positions' variance, summed over axes; 2 for positions scattered independently about a fixed point) and
    its standard score ``z`` under that null hypothesis."""
    g = df.groupby("track_id", sort=True)
    n = g.size()
    var = sum(g[c].var(ddof=1) for c in cols)
    step = _pairs(df, 1)
    sq = sum((step[f"{c}_2"].to_numpy() - step[c].to_numpy()) ** 2 for c in cols)
    delta = pd.Series(sq).groupby(step["track_id"].to_numpy()).mean().reindex(n.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = (delta / var).to_numpy(float)
        sd = np.sqrt(4.0 * (n - 2) / ((n ** 2 - 1) * len(cols))).to_numpy(float)
        z = (eta - 2.0) / sd
    return pd.DataFrame({"n": n.to_numpy(), "variance": var.to_numpy(float), "eta": eta, "z": z}, index=n.index)


def classify_immobile(tracks: pd.DataFrame, *, spacing=None, min_length: int = 0,
                      alpha: float = 0.001) -> pd.DataFrame:
    """Tracks whose motion is consistent with localisation noise about a fixed point: stuck particles, static
    features of the camera or the sample.

    A track is **immobile** when its positions, in the image frame **or** after removing the collective drift
    (:func:`compute_drift` of the tracks that move in the image frame), either stay within the localisation noise
    (positional variance summed over axes <= :data:`SPREAD_NOISE` x ``d sigma^2``, ``sigma^2`` per axis from the
    intercept ``2 d sigma^2`` of a linear fit to the MSD of the other tracks over lags 1-4; skipped when that
    intercept is not positive, e.g. with strong motion blur), or show no significant serial correlation
    (within :data:`SPREAD_WHITE` x ``d sigma^2`` when ``sigma`` is known):
    the von Neumann ratio ``eta`` = (mean squared displacement between consecutive frames) / (variance of the
    positions about their mean), summed over axes, is 2 for independent scatter (noise) about a fixed point and
    falls towards ``6 / n`` for a diffusing track of ``n`` positions whose steps exceed the noise. The test is
    one-sided, at level ``alpha``, with the ratio's normal approximation (mean 2, variance
    ``4 (n - 2) / ((n^2 - 1) d)`` over ``d`` axes; von Neumann 1941). The first test catches still objects whose
    apparent position wanders slowly (correlated noise: a changing background, passing neighbours), the second
    still objects noisier than the rest. Testing both frames catches stuck objects on
    a drifting stage (still relative to the drift) and camera features (still relative to the camera). The
    correlation test needs no noise estimate: each track is its own reference. Tracks of fewer than
    :data:`MIN_TEST_POSITIONS` positions are not tested (``immobile`` False); a track without two positions in
    consecutive frames (e.g. every other frame kept) has no ratio and is judged by its spread alone. A particle
    caged in a region it explores faster than the frame interval also looks uncorrelated and is classified
    immobile.

    Parameters
    ----------
    tracks : DataFrame
        ``track_id, frame, [z,] y, x`` (pixels).
    spacing, min_length
        As in :func:`msd`.
    alpha : float
        Level of the correlation test: the probability of calling a still track (white noise) mobile by that
        test; small, because a still track kept lasts the whole movie and flattens the MSD at long lags. On
        simulated tracks (100 beads of 25-80 positions and 30 still specks of 80, 4 movies per case; ``2 D dt``
        = step variance per axis, ``sigma^2`` = localisation variance): beads called immobile 5 / 400 at
        ``2 D dt = sigma^2``, 1 / 400 at 2 and 8 ``sigma^2``; still tracks kept 0 / 120 (white noise), 1-2 / 120
        with noise correlated over ~10 frames.

    Returns
    -------
    DataFrame
        Index ``track_id``; ``n`` (positions), ``eta_camera``, ``eta_drift`` (the ratios in both frames),
        ``immobile`` (bool).
    """
    from scipy.stats import norm

    if not 0 < alpha < 0.5:
        raise InputError(f"alpha must lie between 0 and 0.5, got {alpha}")
    df, cols = _prepared(tracks, spacing, min_length=min_length)
    crit = float(norm.ppf(alpha))
    raw = _von_neumann(df, cols)
    testable = raw["n"].to_numpy() >= MIN_TEST_POSITIONS

    def still(vn):  # no motion at all, or no significant correlation (no ratio, NaN: no consecutive frames, untested)
        return testable & ((vn["variance"].to_numpy() <= 0) | (vn["z"].to_numpy() >= crit))

    still_raw = still(raw)
    moving = raw.index[~still_raw]
    vd, still_drift, cor = raw, still_raw, df
    if len(moving):
        d = _drift(df[df["track_id"].isin(moving)], cols)
        cor = df.copy()
        cor[cols] = cor[cols].to_numpy() - d.reindex(cor["frame"].to_numpy()).fillna(0.0)[cols].to_numpy()
        vd = _von_neumann(cor, cols)
        still_drift = still(vd)
    immobile = still_raw | still_drift
    mobile = raw.index[testable & ~immobile]
    if len(mobile):  # localisation variance from the mobile tracks' MSD intercept (2 d sigma^2 over lags 1-4)
        lags = np.arange(1, 5)
        sub = cor[cor["track_id"].isin(mobile)]
        m = [np.mean(sum((p[f"{c}_2"].to_numpy() - p[c].to_numpy()) ** 2 for c in cols)) if len(p := _pairs(sub, k))
             else np.nan for k in lags]
        ok = np.isfinite(m)
        noise = np.polyfit(lags[ok], np.asarray(m)[ok], 1)[1] / 2 if ok.sum() >= 2 else np.nan
        if noise > 0:  # scatter within SPREAD_NOISE x the noise variance; uncorrelated only within SPREAD_WHITE x
            spread = np.minimum(raw["variance"].to_numpy(), vd["variance"].to_numpy())
            immobile = testable & ((spread <= SPREAD_NOISE * noise) | (immobile & (spread <= SPREAD_WHITE * noise)))
    return pd.DataFrame({"n": raw["n"], "eta_camera": raw["eta"], "eta_drift": vd["eta"].to_numpy(),
                         "immobile": immobile}, index=raw.index)


@dataclass
class MsdFit:
    """Result of :func:`fit_msd`.

    ``exponent`` and ``prefactor``: ``MSD = prefactor * t**exponent`` (prefactor in length^2 / time^exponent);
    ``D``: diffusion coefficient from ``MSD = 2 d D t + offset`` over the first lags (length^2 / time), with
    ``offset`` (length^2; ``2 d sigma_loc^2`` for a localisation error ``sigma_loc`` per axis); ``dim``: ``d``;
    ``table``: the MSD (:func:`msd`); ``n_tracks``: tracks of at least ``min_length`` positions;
    ``immobile``: track ids classified immobile (:func:`classify_immobile`; empty when not tested);
    ``immobile_excluded``: whether they were left out of the fit;
    ``composition_bias``: how much of ``exponent`` comes from *which* tracks reach each lag rather than from how
    each track's MSD grows (:func:`composition_bias`; 0 when not computed); ``exponent_fixed_composition``: the
    exponent with each track's short-lag amplitude factored out (the exponent of a population whose mix does not
    change with the lag; NaN when not computed); ``populations``: when the composition check flags the exponent,
    the fits (:class:`MsdFit`) of the tracks' mobility populations (:func:`mobility_populations`), most mobile
    first; empty when not flagged or when the tracks form one population; a population that cannot be fitted on
    its own (e.g. two-frame tracks: one lag) is left out; ``split_tried``: whether that split was attempted (False
    when not flagged or with ``split_populations=False``); ``exponent_ci`` and ``prefactor_ci``: 95 % intervals
    from resampling the tracks with replacement (:func:`_bootstrap_powerlaw`; NaN when fewer than
    :data:`MIN_BOOTSTRAP_TRACKS` tracks: the data cannot give an interval).
    """

    exponent: float
    prefactor: float
    D: float
    offset: float
    dim: int
    table: pd.DataFrame = field(repr=False)
    n_tracks: int = 0
    immobile: tuple = ()
    immobile_excluded: bool = False
    composition_bias: float = 0.0
    exponent_fixed_composition: float = float("nan")
    populations: tuple = ()
    split_tried: bool = False
    exponent_ci: tuple = (float("nan"), float("nan"))
    prefactor_ci: tuple = (float("nan"), float("nan"))

    @property
    def exponent_precise(self) -> bool:
        """Whether the exponent's 95 % interval lies within :data:`COMPOSITION_TOLERANCE` of it on both sides (the
        tracks pin the exponent down to the tolerance); False when there is no interval (too few tracks)."""
        lo, hi = self.exponent_ci
        return bool(np.isfinite(lo) and np.isfinite(hi) and hi - self.exponent <= COMPOSITION_TOLERANCE
                    and self.exponent - lo <= COMPOSITION_TOLERANCE)

    def precision_report(self) -> str:
        """One line: the exponent and prefactor with their 95 % intervals over resampled tracks."""
        lo, hi = self.exponent_ci
        if not (np.isfinite(lo) and np.isfinite(hi)):
            why = (f"too few (< {MIN_BOOTSTRAP_TRACKS}) for an interval" if self.n_fitted < MIN_BOOTSTRAP_TRACKS
                   else "resamples of them do not span two lags (too short) for an interval")
            return (f"WARNING: exponent {self.exponent:.3f} from {self.n_fitted} tracks: {why}; the data cannot say "
                    "how precise it is")
        plo, phi = self.prefactor_ci
        line = (f"exponent {self.exponent:.3f} (95 % interval {lo:.3f} to {hi:.3f}), prefactor {self.prefactor:.4g} "
                f"({plo:.4g} to {phi:.4g}), from {self.n_fitted} tracks resampled with replacement")
        if not self.exponent_precise:
            line = (f"WARNING: {line}: these tracks pin the exponent down only to {lo - self.exponent:+.3f} / "
                    f"{hi - self.exponent:+.3f}, wider than +-{COMPOSITION_TOLERANCE} (more or longer tracks narrow it)")
        return line

    @property
    def n_fitted(self) -> int:
        """Tracks in the fit (immobile ones left out when excluded)."""
        return self.n_tracks - (len(self.immobile) if self.immobile_excluded else 0)

    @property
    def composition_ok(self) -> bool:
        """Whether the ensemble's mix of tracks changes too little over the fitted lags to move the exponent by
        :data:`COMPOSITION_TOLERANCE` (then the exponent describes the tracks' motion, not their mix)."""
        return not abs(self.composition_bias) >= COMPOSITION_TOLERANCE

    def as_dict(self) -> dict:
        return {"exponent": self.exponent, "prefactor": self.prefactor, "D": self.D, "offset": self.offset,
                "dim": self.dim, "lags": int(len(self.table)), "tracks": self.n_tracks,
                "immobile": len(self.immobile), "immobile_excluded": self.immobile_excluded,
                "composition_bias": self.composition_bias,
                "exponent_fixed_composition": self.exponent_fixed_composition,
                "exponent_identified": self.composition_ok,
                "exponent_ci": list(self.exponent_ci), "prefactor_ci": list(self.prefactor_ci),
                "exponent_precise": self.exponent_precise,
                "populations": [{"tracks": p.n_tracks, "exponent": p.exponent, "prefactor": p.prefactor, "D": p.D,
                                 "exponent_ci": list(p.exponent_ci), "prefactor_ci": list(p.prefactor_ci)}
                                for p in self.populations]}

    @property
    def largest_population(self) -> MsdFit | None:
        """The fit of the mobility population with the most tracks (None when there are no populations)."""
        return max(self.populations, key=lambda p: p.n_tracks) if self.populations else None

    def composition_report(self, brief: bool = False) -> str:
        """One line: whether the exponent reflects how the tracks move or which tracks reach the long lags
        (``brief``: a few words, for a status line)."""
        b = self.composition_bias
        if brief:
            return (f"ensemble mix stable (composition bias {b:+.3f})" if self.composition_ok else
                    f"WARNING: exponent set by which tracks reach the long lags (composition bias {b:+.3f}; "
                    f"{self.exponent_fixed_composition:.3f} with the mix held fixed"
                    + (f"; largest mobility population: {self.largest_population.exponent:.3f}, "
                       f"{self.largest_population.n_tracks} tracks)" if self.populations else ")"))
        if self.composition_ok:
            return (f"ensemble mix stable over the fitted lags (composition bias {b:+.3f}, tolerance "
                    f"{COMPOSITION_TOLERANCE})")
        how = "slower" if b < 0 else "faster"
        return (f"WARNING: the exponent {self.exponent:.3f} reflects which tracks reach the long lags, not only how "
                f"the particles move: those tracks move {how} at short lags than the whole ensemble (composition bias "
                f"{b:+.3f}); with each track's short-lag amplitude held fixed the exponent is "
                f"{self.exponent_fixed_composition:.3f}. The tracks mix populations (e.g. slow, faint or hindered "
                "particles that stay longer in view) or the linking keeps some better than others (a search range "
                "too small for the fast ones). " + self.populations_report())

    def populations_report(self) -> str:
        """One sentence: the mobility populations' fits (or that the tracks form one population)."""
        if not self.populations:
            if self.composition_ok:
                return ""
            if not self.split_tried:
                return "Not split into mobility populations (split_populations=False)"
            fitted = self.n_fitted
            why = (f"too few tracks ({fitted}) to split into two" if fitted < 2 * MIN_POPULATION_TRACKS else
                   "one log-normal fits the tracks' short-lag MSDs best")
            return (f"No separate mobility populations of >= {MIN_POPULATION_TRACKS} tracks each ({why}): select "
                    "the particles by another property (e.g. brightness) before reading an exponent")
        fits = "; ".join(f"{p.n_tracks} tracks: exponent {p.exponent:.3f}, prefactor {p.prefactor:.4g}"
                         for p in self.populations)
        return f"Each mobility population fitted on its own (by short-lag MSD, most mobile first): {fits}"

    def immobile_report(self) -> str:
        """One line: how many tracks were classified immobile and what was done with them."""
        k = len(self.immobile)
        if not k:
            return f"0 of {self.n_tracks} tracks immobile"
        what = ("excluded from the fit (keep them: keep_immobile=True, --keep-immobile)" if self.immobile_excluded
                else "kept in the fit")
        return (f"{k} of {self.n_tracks} tracks immobile (they do not move beyond localisation noise: stuck "
                f"particles or static features) {what}")


def fit_msd(tracks: pd.DataFrame, *, dt: float = 1.0, spacing=None, max_lag: int | None = 100, min_length: int = 0,
            drift: bool = True, weights: str = "independent", linear_lags: int = 10,
            keep_immobile: bool = False, immobile_alpha: float = 0.001, split_populations: bool = True) -> MsdFit:
    """Power-law fit of the ensemble MSD of the mobile tracks, after removing the drift (trackpy's
    ``subtract_drift``, ``emsd`` and ``fit_powerlaw``).

    Immobile tracks (:func:`classify_immobile`: stuck particles, static camera features) are left out by default:
    lasting the whole movie at a constant MSD, they flatten the ensemble MSD at long lags. How many were left out
    is in the result (``immobile``, :meth:`MsdFit.immobile_report`).

    Parameters
    ----------
    tracks, dt, spacing, max_lag, min_length, weights
        As in :func:`msd`.
    drift : bool
        Subtract the collective drift first (default True; computed on the tracks fitted).
    linear_lags : int
        Lags used by the linear fit that gives ``D`` and the offset.
    keep_immobile : bool
        Fit all tracks, immobile ones included (they are still counted).
    immobile_alpha : float
        Level of the mobility test (``alpha`` of :func:`classify_immobile`).
    split_populations : bool
        When the composition check flags the exponent (:attr:`MsdFit.composition_ok` False), also fit each mobility
        population (:func:`mobility_populations`) on its own (``MsdFit.populations``; one that cannot be fitted
        is left out).

    Returns
    -------
    MsdFit

    Raises
    ------
    InputError
        When every tested track is immobile (nothing diffuses; ``keep_immobile=True`` fits them anyway).
    """
    cls = classify_immobile(tracks, spacing=spacing, min_length=min_length, alpha=immobile_alpha)
    return _fit_msd(tracks, cls, dt=dt, spacing=spacing, max_lag=max_lag, min_length=min_length, drift=drift,
                    weights=weights, linear_lags=linear_lags, keep_immobile=keep_immobile,
                    split_populations=split_populations)


def _fit_msd(tracks: pd.DataFrame, cls: pd.DataFrame, *, dt, spacing, max_lag, min_length, drift, weights,
             linear_lags, keep_immobile, split_populations) -> MsdFit:
    """:func:`fit_msd` with the tracks' mobility classification ``cls`` (:func:`classify_immobile`) given: a
    population's sub-fit keeps every track and only reports the immobile ones, so it takes the ensemble's
    classification of its tracks instead of testing them again."""
    still = tuple(int(i) if isinstance(i, (int, np.integer)) else i for i in cls.index[cls["immobile"].to_numpy()])
    n_tracks = len(cls)
    if still and not keep_immobile:
        if len(still) == n_tracks:
            raise InputError(f"all {n_tracks} tracks are immobile (no motion beyond localisation noise): nothing "
                             "diffuses to fit; keep_immobile=True (--keep-immobile) fits them anyway")
        tracks = tracks[~tracks["track_id"].isin(still)]
    tab, per = _msd_with_parts(tracks, dt=dt, spacing=spacing, max_lag=max_lag, min_length=min_length, drift=drift,
                               weights=weights)
    dim = len(coord_columns(tracks))
    ok = tab["msd"].to_numpy() > 0
    if ok.sum() < 2:
        raise InputError("the MSD has fewer than two positive lags: tracks are too short or do not move")
    logt = np.log(tab["t"].to_numpy()[ok])
    n, loga = np.polyfit(logt, np.log(tab["msd"].to_numpy()[ok]), 1)
    n_ci, a_ci = _bootstrap_powerlaw(per, tab["lag"].to_numpy()[ok], logt)
    lin = tab.iloc[:max(2, int(linear_lags))]
    slope, offset = np.polyfit(lin["t"].to_numpy(), lin["msd"].to_numpy(), 1) if len(lin) >= 2 else (np.nan, np.nan)
    amp = _amplitudes(per)
    bias = _composition_slope(per, amp, tab["lag"].to_numpy()[ok], logt)
    pops = ()
    if split_populations and abs(bias) >= COMPOSITION_TOLERANCE:
        label = _populations(amp, n_tracks_min=MIN_POPULATION_TRACKS)
        if label.nunique() > 1:
            fits = []
            for k in sorted(label.unique()):
                try:
                    ids = label.index[label == k]
                    fits.append(_fit_msd(tracks[tracks["track_id"].isin(ids)], cls.loc[cls.index.isin(ids)], dt=dt,
                                         spacing=spacing, max_lag=max_lag, min_length=min_length, drift=drift,
                                         weights=weights, linear_lags=linear_lags, keep_immobile=True,
                                         split_populations=False))
                except InputError:  # no exponent of its own (e.g. two-frame tracks, mislinks: one lag): left out
                    continue
            pops = tuple(fits)
    return MsdFit(float(n), float(np.exp(loga)), float(slope / (2 * dim)), float(offset), dim, tab, n_tracks, still,
                  bool(still) and not keep_immobile, bias, float(n - bias) if np.isfinite(bias) else float("nan"),
                  pops, bool(split_populations and abs(bias) >= COMPOSITION_TOLERANCE), n_ci, a_ci)


#: Track resamples behind :attr:`MsdFit.exponent_ci`.
BOOTSTRAP = 500
#: Fewer tracks give no interval (a resample of a handful of tracks does not describe the spread of the tracks a
#: new movie would give).
MIN_BOOTSTRAP_TRACKS = 10


def _bootstrap_powerlaw(per: pd.DataFrame, lags: np.ndarray, logt: np.ndarray, *, n_boot: int = BOOTSTRAP,
                        seed: int = 0) -> tuple[tuple, tuple]:
    """95 % percentile intervals of the power law's exponent and prefactor when the tracks are resampled with
    replacement (the tracks are the independent units: the lags of one track are correlated, so a fit's residuals
    say nothing about its precision).

    Each resample reweights every track's MSD parts (``per`` of :func:`_msd_with_parts`: its mean at each lag and
    its weight) by how often it was drawn, recomputes the ensemble MSD at ``lags`` and fits ``log MSD`` against
    ``logt`` as :func:`fit_msd` does. The drift subtracted before is not recomputed per resample (it is the
    ensemble's, a small part of each track's motion when there are many tracks). Written here because it is one
    matrix product over the parts the fit already holds (scipy.stats.bootstrap would refit from the tracks).
    Returns ``((lo, hi), (lo, hi))``; NaN when fewer than :data:`MIN_BOOTSTRAP_TRACKS` tracks.
    """
    nan = (float("nan"), float("nan"))
    p = per[per["lag"].isin(lags)]
    tids, ti = np.unique(p["track_id"].to_numpy(), return_inverse=True)
    nt = len(tids)
    if nt < MIN_BOOTSTRAP_TRACKS or len(lags) < 2:
        return nan, nan
    li = np.searchsorted(lags, p["lag"].to_numpy())
    w = np.zeros((nt, len(lags)))
    wm = np.zeros((nt, len(lags)))
    np.add.at(w, (ti, li), p["w"].to_numpy())
    np.add.at(wm, (ti, li), (p["w"] * p["mean"]).to_numpy())
    rng = np.random.default_rng(seed)
    slopes, icepts = [], []
    for b0 in range(0, n_boot, 100):  # chunks keep the count matrix small for large track tables
        counts = rng.multinomial(nt, np.full(nt, 1 / nt), size=min(100, n_boot - b0)).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log((counts @ wm) / (counts @ w))
        m = np.isfinite(y)
        k = m.sum(1)
        x = np.where(m, logt[None, :], 0.0)
        y = np.where(m, y, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            xm, ym = x.sum(1) / k, y.sum(1) / k
            sxx = (m * (x - xm[:, None]) ** 2).sum(1)
            slope = (m * (x - xm[:, None]) * (y - ym[:, None])).sum(1) / sxx
        good = (k >= 2) & (sxx > 0)
        slopes.append(slope[good])
        icepts.append((ym - slope * xm)[good])
    slopes, icepts = np.concatenate(slopes), np.concatenate(icepts)
    if len(slopes) < n_boot // 2:
        return nan, nan
    q = [2.5, 97.5]
    return tuple(float(v) for v in np.percentile(slopes, q)), tuple(float(v) for v in np.exp(np.percentile(icepts, q)))


#: Lags (frames) over which each track's short-lag amplitude is averaged by :func:`composition_bias`.
AMPLITUDE_LAGS = 4
#: A composition bias at least this large (in exponent units) makes :func:`fit_msd`'s exponent a property of the
#: tracks' mix, not of their motion (:attr:`MsdFit.composition_ok`); the tolerance the exponents of issue 22's
#: real-movie comparisons are held to.
COMPOSITION_TOLERANCE = 0.05


def _amplitudes(per: pd.DataFrame) -> pd.Series:
    """Each track's short-lag amplitude: its MSD averaged over lags 1 to :data:`AMPLITUDE_LAGS` (``per``: the parts
    of :func:`_msd_with_parts`), by ``track_id``."""
    return per[per["lag"] <= AMPLITUDE_LAGS].groupby("track_id")["mean"].mean()


def _composition_slope(per: pd.DataFrame, amp: pd.Series, lags: np.ndarray, logt: np.ndarray) -> float:
    """Slope of ``log M(lag)`` against ``log t`` over ``lags``, ``M`` = the ensemble-weighted mean of the
    contributing tracks' short-lag amplitudes ``amp`` (see :func:`composition_bias`); NaN when undefined."""
    p = per.assign(a=per["track_id"].map(amp))
    p = p[p["a"].notna() & (p["a"] > 0)]
    p = p.assign(wa=p["w"] * p["a"])
    agg = p.groupby("lag")[["wa", "w"]].sum()
    m = (agg["wa"] / agg["w"]).reindex(lags).to_numpy()
    good = np.isfinite(m) & (m > 0)
    if good.sum() < 2:
        return float("nan")
    return float(np.polyfit(logt[good], np.log(m[good]), 1)[0])


def composition_bias(tracks: pd.DataFrame, *, dt: float = 1.0, spacing=None, max_lag: int | None = 100,
                     min_length: int = 0, drift: bool = True, weights: str = "independent") -> float:
    """How much of the ensemble MSD's power-law exponent comes from *which* tracks reach each lag.

    The ensemble MSD at lag ``t`` averages only the tracks that last longer than ``t``. When the population is
    mixed and the slow particles stay longer in view (stuck or hindered near a wall, out of focus and faint, or
    simply not leaving the field), the long lags are carried by them and the fitted exponent falls below that of
    every sub-population: survivorship, not subdiffusion. Each track ``i`` gets a short-lag amplitude ``a_i``, the
    mean of its own MSD over lags 1 to :data:`AMPLITUDE_LAGS`; ``M(t)`` is the average of ``a_i`` with the same
    weights as the ensemble MSD at lag ``t``. For a population whose tracks share one MSD shape up to their
    amplitude, ``MSD(t) / M(t)`` has that shape, so the slope of ``log M`` against ``log t`` over the fitted lags
    is what the mix adds to the exponent (negative: the tracks reaching long lags are the slower ones). Written
    here: the ensemble MSD's own weights are needed, and no tracking library reports it.

    Parameters
    ----------
    tracks, dt, spacing, max_lag, min_length, drift, weights
        As in :func:`msd` (``drift`` default True, as :func:`fit_msd`). All tracks are used (:func:`fit_msd`
        leaves immobile ones out first).

    Returns
    -------
    float
        The bias in exponent units (the exponent with each track's amplitude held fixed is the fitted exponent
        minus it); NaN when fewer than two lags have a positive MSD.
    """
    tab, per = _msd_with_parts(tracks, dt=dt, spacing=spacing, max_lag=max_lag, min_length=min_length, drift=drift,
                               weights=weights)
    ok = tab["msd"].to_numpy() > 0
    return _composition_slope(per, _amplitudes(per), tab["lag"].to_numpy()[ok], np.log(tab["t"].to_numpy()[ok]))


#: Most mobility populations :func:`mobility_populations` separates.
MAX_POPULATIONS = 3
#: A mobility population needs at least this many tracks (fewer cannot give an exponent).
MIN_POPULATION_TRACKS = 10


def _populations(amp: pd.Series, *, n_tracks_min: int = MIN_POPULATION_TRACKS,
                 max_populations: int = MAX_POPULATIONS) -> pd.Series:
    """Population of each track (0 = most mobile) from its short-lag amplitude ``amp`` (:func:`_amplitudes`; see
    :func:`mobility_populations`)."""
    from sklearn.mixture import GaussianMixture

    amp = amp[amp > 0]
    x = np.log(amp.to_numpy())[:, None]
    best, label = np.inf, np.zeros(len(x), int)
    for k in range(1, max_populations + 1):
        if len(x) < k * n_tracks_min:
            break
        gm = GaussianMixture(k, n_init=5, random_state=0).fit(x)
        lab = gm.predict(x)
        if np.bincount(lab, minlength=k).min() < n_tracks_min:
            continue
        bic = gm.bic(x)
        if bic < best:
            rank = np.argsort(np.argsort(-gm.means_.ravel()))  # 0 = the largest mean amplitude
            best, label = bic, rank[lab]
    return pd.Series(label, index=amp.index, name="population")


def mobility_populations(tracks: pd.DataFrame, *, spacing=None, min_length: int = 0, drift: bool = True,
                         max_populations: int = MAX_POPULATIONS,
                         min_tracks: int = MIN_POPULATION_TRACKS) -> pd.Series:
    """Tracks grouped by how far they move at short lags: the populations of a mixed ensemble.

    Each track's short-lag amplitude (its MSD averaged over lags 1 to :data:`AMPLITUDE_LAGS`, drift removed) is
    taken on a log scale and fitted by Gaussian mixtures of 1 to ``max_populations`` components
    (scikit-learn's ``GaussianMixture``, 5 starts, fixed seed); the number of populations is the one of lowest BIC
    among the mixtures whose every component holds at least ``min_tracks`` tracks, and each track goes to its most
    probable component. One population (all 0) when the amplitudes form one log-normal. Used by :func:`fit_msd`
    when its composition check flags the ensemble exponent (each population then gets its own fit).

    Parameters
    ----------
    tracks, spacing, min_length, drift
        As in :func:`msd`.
    max_populations : int
        Largest number of populations tried.
    min_tracks : int
        Smallest population (tracks).

    Returns
    -------
    Series
        Index ``track_id``, values 0 (most mobile) to ``k - 1``; tracks without a positive short-lag MSD are absent.
    """
    _, per = _msd_with_parts(tracks, dt=1.0, spacing=spacing, max_lag=AMPLITUDE_LAGS, min_length=min_length,
                             drift=drift, weights="pairs")
    return _populations(_amplitudes(per), n_tracks_min=int(min_tracks), max_populations=int(max_populations))


def van_hove(tracks: pd.DataFrame, lag: int = 1, *, spacing=None, bins=50, drift: bool = False,
             min_length: int = 0) -> pd.DataFrame:
    """Van Hove distribution (self part): the histogram of displacements over ``lag`` frames along each axis.

    Parameters
    ----------
    tracks, spacing, min_length, drift
        As in :func:`msd`.
    lag : int
        Lag in frames.
    bins : int or sequence of float
        Number of bins (over the range of all displacements, symmetric about 0) or the bin edges (physical
        units).

    Returns
    -------
    DataFrame
        ``dr`` (bin centres, physical units), one column per axis (``[z,] y, x``: probability density of the
        displacement along that axis) and ``all`` (density of the displacements of all axes pooled); for
        Brownian motion a Gaussian of variance ``2 D t``.
    """
    lag = int(lag)
    if lag < 1:
        raise InputError(f"lag must be at least 1 frame, got {lag}")
    df, cols = _prepared(tracks, spacing, min_length=min_length)
    if drift:
        d = _drift(df, cols)
        df[cols] = df[cols].to_numpy() - d.reindex(df["frame"].to_numpy())[cols].to_numpy()
    pair = _pairs(df, lag)
    if len(pair) == 0:
        raise InputError(f"no track has two positions {lag} frames apart: use a smaller lag")
    disp = {c: pair[f"{c}_2"].to_numpy() - pair[c].to_numpy() for c in cols}
    pooled = np.concatenate(list(disp.values()))
    if np.ndim(bins) == 0:
        r = max(float(np.abs(pooled).max()), 1e-12)
        edges = np.linspace(-r, r, int(bins) + 1)
    else:
        edges = np.asarray(bins, float)
    out = pd.DataFrame({"dr": 0.5 * (edges[1:] + edges[:-1])})
    for c in cols:
        out[c] = np.histogram(disp[c], edges, density=True)[0]
    out["all"] = np.histogram(pooled, edges, density=True)[0]
    out.attrs["lag"] = lag
    out.attrs["n"] = int(len(pair))
    return out


def velocity_autocorrelation(tracks: pd.DataFrame, *, dt: float = 1.0, spacing=None, max_lag: int | None = 100,
                             min_length: int = 0, drift: bool = False, normalize: bool = False) -> pd.DataFrame:
    """Ensemble velocity autocorrelation ``C(k) = <v(t) . v(t + k dt)>``.

    Velocities are finite differences over one frame, ``v(t) = (r(t + dt) - r(t)) / dt``, of consecutive positions
    of a track; the average runs over all tracks and times with both velocities defined.

    Parameters
    ----------
    tracks, dt, spacing, max_lag, min_length, drift
        As in :func:`msd` (``max_lag`` in frames, from 0).
    normalize : bool
        Divide by ``C(0)``.

    Returns
    -------
    DataFrame
        ``lag`` (frames, from 0), ``t`` (``lag * dt``), ``vacf`` ((length / time)^2, or 1 at lag 0 when
        normalised) and ``n`` (products averaged). For active Brownian particles of speed ``v0`` and rotational
        diffusion ``Dr`` in 2D, ``C(k) = v0^2 e^{-Dr k dt} 2 (cosh(Dr dt) - 1) / (Dr dt)^2`` for ``k >= 1``; for
        Brownian motion ``C(k) = 0`` for ``k >= 1``.
    """
    dt = _check_dt(dt)
    df, cols = _prepared(tracks, spacing, min_length=min_length)
    if drift:
        d = _drift(df, cols)
        df[cols] = df[cols].to_numpy() - d.reindex(df["frame"].to_numpy())[cols].to_numpy()
    step = _pairs(df, 1)
    vel = pd.DataFrame({"track_id": step["track_id"].to_numpy(), "frame": step["frame"].to_numpy()})
    vcols = [f"v{c}" for c in cols]
    for c, v in zip(cols, vcols):
        vel[v] = (step[f"{c}_2"].to_numpy() - step[c].to_numpy()) / dt
    if len(vel) == 0:
        raise InputError("no track has two consecutive positions: velocities need consecutive frames")
    span = int(df["frame"].max() - df["frame"].min())
    max_lag = max(1, (span + 1) // 4) if max_lag is None else int(max_lag)
    rows = []
    for lag in range(min(max_lag, span) + 1):
        pair = vel.merge(vel.assign(frame=vel["frame"] - lag), on=["track_id", "frame"], suffixes=("", "_2"))
        if len(pair):
            prod = sum(pair[v].to_numpy() * pair[f"{v}_2"].to_numpy() for v in vcols)
            rows.append((lag, lag * dt, float(prod.mean()), len(pair)))
    out = pd.DataFrame(rows, columns=["lag", "t", "vacf", "n"])
    if normalize and len(out) and out["vacf"].iloc[0] != 0:
        out["vacf"] /= out["vacf"].iloc[0]
    return out
