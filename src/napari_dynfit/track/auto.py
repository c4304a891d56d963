"""Tracking parameters estimated from the detections: what :func:`~napari_dynfit.track.link` uses for every
parameter the caller leaves out.

A first, conservative pass matches only *unambiguous* pairs between consecutive frames: mutual nearest neighbours
whose nearest distance is at most half the second-nearest one, on both sides (a division, whose two daughters sit
at about the same distance from the mother, is never such a pair). The pass is repeated with the positions shifted
by a local flow field (component-wise median displacement of the ``k`` nearest matched objects), so that matches
spread from slow regions (a colony's centre) to fast ones (its edge) over a few iterations
(:func:`pair_flow`); when fewer than half of the objects match without a shift, the most common displacement of
all pairs (:func:`global_shift`: a stage jump, a global drift) is tried as the starting shift. A first linking
pass with these estimates then gives every accepted link, and the motion model, the distance scale and the flow
field are estimated again from those (:func:`refine_params`), for a final pass (skipped when the model is the same,
not ``flow``, and the distance scales change by less than 10 %). From these matches:

* **motion model**: the median squared prediction error of each model on the matched steps: ``brownian`` (no
  motion), ``flow`` (the local field of the *other* matches of the same frame pair, leave-one-out) and ``velocity``
  (the object's previous step, on chains of two matches). A model other than ``brownian`` is chosen when it cuts
  that error by at least 30 %.
* **max_distance**: ``sqrt(chi2_d.ppf(0.9999)) sigma`` with ``sigma`` the per-axis scale of the chosen model's
  errors (from their median, which the truncation of the first pass biases low by up to ~10 % when the rms step
  per axis is a fifth of the neighbour distance, generated; the linking pass's re-estimate replaces it when the
  range moves by more than 10 %), at least 1.3 x the 99th percentile of those errors (heavy-tailed, e.g. one-dimensional, errors) and at least a quarter of the median
  nearest-neighbour distance; ``first_distance`` (steps of objects with no motion prediction yet under the
  velocity model) the same from the raw steps. Under the brownian model the squared steps are also fitted as a
  mixture of 1-3 step-scale populations (:func:`scale_mixture`: EM, number by BIC, each first-pass match truncated
  at its own ambiguity margin, the links of a linking pass at its range plus a chance component uniform over it);
  when at least two populations (components closer than ``MIX_SEP`` in scale pooled) hold ``MIX_SHARE`` (10 %) of
  the matches each, ``sigma`` is the fastest one's: static specks or stuck particles among diffusing ones otherwise
  pull the median, and the range, below the diffusing particles' steps. Generated data (``python -m
  napari_dynfit.bench.track_mixture``: 150 free particles of 3.9 px per axis among 60 static ones, 99.99 % step
  16.7 px): 16.3-16.6 px, where the median gave 12.8-14.5 px; 210 free particles alone: 16.4-16.6 px either way.
  10 % is the share below which a fast population is not told apart from chance links in the linking pass's
  re-estimate (12 free particles among 198 static ones, 4 % of the first-pass matches: found there, absorbed by the
  chance component there); components of a model's *prediction* errors (flow, velocity) are its failures
  (divisions, turns), not populations, and are not split (a rod colony's velocity errors hold a 22 % component of
  12 px: covering it doubled the range and cost LNK 0.08).
* **gap_frames** (after a linking pass without gap closing, :func:`estimate_gaps`): interior track ends that find
  a start ``g + 1`` frames later within ``CORE`` (half) x ``max_distance sqrt(g + 1)`` of their predicted position
  (about 90 % of true restarts in 2D, a quarter of the chance ones), compared with the number expected by chance from
  the density of starts; the largest ``g`` (up to 5) up to which every count is at least 3 and three times chance.
  Counted over the whole radius, chance restarts among false detections hid real ones (generated: 10 % missed and
  16 % false detections: no gap closing, link recall 0.85-0.87; now 1 frame, 0.91-0.92).
* **alternative_cost** (point detections under the brownian model, after the final linking pass, :func:`clutter_cost`): a link of length
  ``d`` beats "the source's detection is missing here and this one is a false detection or a new object" only while
  ``share N_d(d; sigma) (1 - q) > q lam``, with ``sigma`` and ``share`` the error scale behind ``max_distance`` and
  its population's share of the matches, ``lam`` the detections per frame and unit volume that start no track and
  ``q`` the fraction of detections that end one; so ``alternative_cost = 2 sigma^2 log(share (1 - q) / (q lam (2 pi
  sigma^2)^(d/2))) / max_distance^2``, at most 1 (the fixed cost before: any link shorter than ``max_distance``
  kept, however dense the false detections) and at least the 99 % coverage of the errors (``FLOOR``); when it is
  below 1 the pass is run again with it. Without false detections or track ends it is 1 and nothing changes. Only
  when ``max_distance`` is estimated too: a given range keeps its plain meaning (every link within it may be made,
  as trackpy's search range).
  Generated (``python -m napari_dynfit.bench.track_mixture``, docs/tracking.md): link precision up in every cluttered
  case (e.g. 100 false detections per frame: 0.81-0.82 -> 0.86-0.87, held-out seeds), recall unchanged; the cut
  drops the true steps beyond it (about 1 % at the floor), so the MSD of long tracks comes out a few percent low.
* **labels** (cells): ``divisions`` when unmatched objects split into two unmatched objects centred on them
  (``split candidates``: the midpoint of the two within ``max_distance / 2`` of the prediction) for at least 2 % of
  the objects, ``daughter_size`` the median of the daughters' size over their mother's, ``daughter_distance`` as
  ``max_distance`` from the daughters' offsets (from the mother's predicted centre +- its long half-axis),
  ``alternative_cost`` 1.5 x
  the 99th percentile of the full link cost (distance, overlap, size) of the matched pairs (at least 1, so that
  confident links are never dropped), ``division_cost`` 0 (the split evidence already decides divisions).

Each choice carries a one-line reason (:class:`Choice`); :func:`estimate_params` returns them with the parameters.
Everything here is our own code: no tracking library estimates its parameters from the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats
from scipy.spatial import cKDTree

RATIO = 0.5          # unambiguous: nearest distance <= RATIO x second-nearest, both ways
FLOW_K = 8           # neighbours of the local flow field
MAX_PAIRS = 40       # frame pairs used for the estimates (evenly spread)
GAIN = 0.7           # a motion model must cut the median squared error to this fraction of brownian's
COVER = 0.9999       # chi-square coverage of max_distance
MIX_K = 3            # largest number of step-scale populations fitted to the matched errors
MIX_SHARE = 0.1      # a population counts when it holds at least this share of the matches
MIX_SEP = 2.0        # fitted components closer than this factor in scale are one population
FLOOR = 0.99         # the clutter-aware alternative cost keeps at least this coverage of the link errors
CLUTTER_PASSES = 1   # linking passes that re-estimate the clutter-aware alternative cost
CORE = 0.5           # gap closing is tested on the restarts within this fraction of the gap's search radius
ORDER = ("motion", "max_distance", "first_distance", "drift_radius", "divisions", "daughter_size", "daughter_distance",
         "division_cost", "alternative_cost", "overlap_weight", "size_weight", "gap_frames", "gap_penalty")


@dataclass
class Choice:
    """One tracking parameter: its value, whether the user gave it, and why."""

    name: str
    value: object
    reason: str
    given: bool = False

    def line(self) -> str:
        v = f"{self.value:.4g}" if isinstance(self.value, float) else str(self.value)
        return f"{self.name} = {v}  ({'given' if self.given else self.reason})"


@dataclass
class AutoParams:
    """Parameters for :func:`~napari_dynfit.track.link` with their reasons.

    Attributes
    ----------
    params : dict
        Keyword arguments of :class:`~napari_dynfit.track.LinkParams`.
    choices : list of Choice
        One entry per estimated or given parameter, in print order.
    stats : dict
        Numbers behind the choices (median squared errors per model, scale, split candidates...).
    """

    params: dict
    choices: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def ordered(self) -> list:
        """The choices in a fixed order (motion and scales first, then labels, then gaps)."""
        rank = {n: k for k, n in enumerate(ORDER)}
        return sorted(self.choices, key=lambda c: rank.get(c.name, len(ORDER)))

    def summary(self) -> str:
        return "\n".join(c.line() for c in self.ordered())

    def to_dict(self) -> dict:
        return {"params": _plain(self.params), "choices": [_plain(asdict(c)) for c in self.ordered()],
                "stats": _plain(self.stats)}


def _plain(obj):
    """JSON types only (numpy scalars and arrays become Python numbers and lists)."""
    import json

    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


# ---------------------------------------------------------------------------------------------------------------
def _unambiguous(pa: np.ndarray, xb: np.ndarray):
    """Mutual nearest neighbours with a clear margin: ``(i, j)`` index arrays."""
    na, nb = len(pa), len(xb)
    if na == 0 or nb == 0:
        z = np.zeros(0, np.int64)
        return z, z
    k = 2 if nb > 1 else 1
    da, ja = cKDTree(xb).query(pa, k=k)
    db, ib = cKDTree(pa).query(xb, k=2 if na > 1 else 1)
    da, ja, db, ib = (a.reshape(len(a), -1) for a in (da, ja, db, ib))
    i = np.arange(na)
    j = ja[:, 0]
    ok = ib[j, 0] == i
    if k == 2:
        ok &= da[:, 0] <= RATIO * da[:, 1]
    if db.shape[1] == 2:
        ok &= db[j, 0] <= RATIO * db[j, 1]
    return i[ok], j[ok].astype(np.int64)


def _field(xs: np.ndarray, us: np.ndarray, xq: np.ndarray, k: int = FLOW_K, exclude_self: bool = False):
    """Component-wise median displacement of the ``k`` nearest matched objects at ``xq`` (n, d)."""
    if len(xs) == 0:
        return np.zeros_like(xq)
    kk = min(k + int(exclude_self), len(xs))
    if exclude_self and kk < 2:
        return np.zeros_like(xq)
    _, nb = cKDTree(xs).query(xq, k=kk)
    nb = nb.reshape(len(xq), -1)
    if exclude_self:
        nb = nb[:, 1:]
    return np.median(us[nb], axis=1)


def global_shift(xa: np.ndarray, xb: np.ndarray, *, max_points: int = 400, seed: int = 0) -> np.ndarray:
    """Most common displacement between two point sets (a stage jump, a global drift), shape (d,).

    Votes of all displacements ``xb[j] - xa[i]`` (up to ``max_points`` of each set, spread at random) in a
    histogram with bins of half the median nearest-neighbour distance of ``xb``, smoothed over one bin; the
    peak is refined by the mean of the votes within one bin of it. Correct correspondences pile up in one bin,
    while chance pairs spread over the cross-correlation of the two clouds.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    a = xa if len(xa) <= max_points else xa[rng.choice(len(xa), max_points, replace=False)]
    b = xb if len(xb) <= max_points else xb[rng.choice(len(xb), max_points, replace=False)]
    d = xa.shape[1]
    if len(a) == 0 or len(b) < 2:
        return np.zeros(d)
    h = 0.5 * float(np.median(cKDTree(xb).query(xb, k=2)[0][:, 1]))
    if not h > 0:
        return np.zeros(d)
    v = (b[None, :, :] - a[:, None, :]).reshape(-1, d)
    lo, hi = v.min(0), v.max(0)
    nbins = np.minimum(np.ceil((hi - lo) / h).astype(int) + 1, 400)
    hist, edges = np.histogramdd(v, bins=nbins, range=list(zip(lo, lo + nbins * h)))
    peak = np.unravel_index(np.argmax(ndimage.uniform_filter(hist, 3, mode="constant")), hist.shape)
    c = np.array([edges[k][peak[k]] + 0.5 * (edges[k][1] - edges[k][0]) for k in range(d)])
    near = np.all(np.abs(v - c) <= 1.5 * h, axis=1)
    return v[near].mean(0) if near.any() else c


def pair_flow(xa: np.ndarray, xb: np.ndarray, *, iterations: int = 6, k: int = FLOW_K):
    """Local displacement field between two frames from unambiguous matches (see the module docstring).

    Parameters
    ----------
    xa, xb : ndarray, shape (na, d), (nb, d)
        Positions in the two frames (physical units).

    Returns
    -------
    shift : ndarray, shape (na, d)
        Predicted displacement of every object of ``xa``.
    i, j : ndarray of int
        The unambiguous matches of the last iteration (``xa[i]`` -> ``xb[j]``).
    """
    shift = np.zeros_like(xa)
    i = j = np.zeros(0, np.int64)
    # a large common displacement (stage jump) defeats nearest neighbours: start from the most common shift when
    # few objects match without one and the shift matches more
    i0, _ = _unambiguous(xa, xb)
    if len(i0) < 0.5 * min(len(xa), len(xb)) and len(xa) > 2:
        g = global_shift(xa, xb)
        if len(_unambiguous(xa + g, xb)[0]) > 1.5 * len(i0):
            shift = np.broadcast_to(g, xa.shape).copy()
    for _ in range(iterations):
        ni, nj = _unambiguous(xa + shift, xb)
        if len(ni) == 0:
            break
        same = len(ni) == len(i) and np.array_equal(ni, i) and np.array_equal(nj, j)
        i, j = ni, nj
        shift = _field(xa[i], xb[j] - xa[i], xa, k)
        if same:
            break
    return shift, i, j


# ---------------------------------------------------------------------------------------------------------------
def _sample_pairs(frames: np.ndarray) -> list:
    """Consecutive frame pairs to estimate from: all, or MAX_PAIRS spread evenly (in runs of two for chains)."""
    pairs = [(a, b) for a, b in zip(frames[:-1], frames[1:]) if b == a + 1]
    if len(pairs) <= MAX_PAIRS:
        return pairs
    starts = np.linspace(0, len(pairs) - 2, MAX_PAIRS // 2).astype(int)
    keep = sorted(set(starts.tolist()) | set((starts + 1).tolist()))
    return [pairs[k] for k in keep]


def _chi_scale(msq: float, d: int) -> float:
    """Per-axis sigma from the median of squared d-dimensional Gaussian errors."""
    return float(np.sqrt(msq / stats.chi2.median(d)))


def _nn_median(x: np.ndarray, fr: np.ndarray, frames) -> float:
    out = []
    for f in frames[: min(len(frames), 20)]:
        p = x[fr == f]
        if len(p) > 1:
            out.append(cKDTree(p).query(p, k=2)[0][:, 1])
    return float(np.median(np.concatenate(out))) if out else float("nan")


def estimate_params(x: np.ndarray, fr: np.ndarray, *, given: dict, cells=None, cost_fn=None) -> AutoParams:
    """Estimate every :class:`~napari_dynfit.track.LinkParams` field missing from ``given``.

    Parameters
    ----------
    x : ndarray, shape (n, d)
        Positions, physical units, rows sorted by frame.
    fr : ndarray of int, shape (n,)
        Frame of every row.
    given : dict
        Parameters the caller set (they win; they are reported as given).
    cells : object, optional
        The linker's label data (sizes, masks) for label input.
    cost_fn : callable, optional
        ``cost_fn(params, fa, fb, src, tgt, pred, has_pred) -> (i, j, c_link, c_daughter)``: the linker's pair
        costs, used to
        size ``alternative_cost`` for label input.

    Returns
    -------
    AutoParams
    """
    d = x.shape[1]
    frames, starts = np.unique(fr, return_index=True)
    ends = np.append(starts[1:], len(fr))
    rows = dict(zip(frames.tolist(), zip(starts.tolist(), ends.tolist())))
    out = AutoParams(params={})
    st = out.stats
    nn = _nn_median(x, fr, frames)
    st["nn_distance"] = nn
    st["detections"] = int(len(fr))
    st["frames"] = int(len(frames))

    # ---- first pass: unambiguous matches per frame pair, local flow, chains for the velocity model
    raw, flow_err, vel_err, raw_chain, margin, margin_f = [], [], [], [], [], []
    matches = {}
    prev_step = np.zeros_like(x)  # each detection's matched step into it
    has_step = np.zeros(len(x), bool)
    for fa, fb in _sample_pairs(frames):
        a0, a1 = rows[fa]
        b0, b1 = rows[fb]
        xa, xb = x[a0:a1], x[b0:b1]
        shift, i, j = pair_flow(xa, xb)
        if len(i) == 0:
            continue
        u = xb[j] - xa[i]
        matches[(fa, fb)] = (i + a0, j + b0, shift)
        raw.append((u ** 2).sum(1))
        margin.append(_margin(xa + shift, xb, i, j))
        if len(i) > 2:
            loo = _field(xa[i], u, xa[i], exclude_self=True)
            flow_err.append(((u - loo) ** 2).sum(1))
            margin_f.append(margin[-1])
        chain = has_step[i + a0]
        if chain.any():
            vel_err.append(((u[chain] - prev_step[i[chain] + a0]) ** 2).sum(1))
            raw_chain.append((u[chain] ** 2).sum(1))
        prev_step[j + b0] = u
        has_step[j + b0] = True
    n_match = int(sum(len(v[0]) for v in matches.values()))
    st["first_pass_matches"] = n_match
    if n_match < 5:
        out.stats["warning"] = "too few unambiguous matches to estimate from: defaults used"
        _fallback(out, given)
        return out
    cat = (lambda v: np.concatenate(v) if v else np.zeros(0))
    r = _motion_and_scale(out, given, d, nn, cat(raw), cat(flow_err), cat(vel_err), cat(raw_chain),
                          f"{n_match} unambiguous first-pass matches",
                          trunc={"brownian": cat(margin), "flow": cat(margin_f)})

    # ---- label costs and divisions
    if cells is not None:
        _estimate_cells(out, x, rows, matches, cells, given, cost_fn, r)
    else:
        if "divisions" in given:
            out.choices.append(Choice("divisions", given["divisions"], "", True))
        else:
            out.params["divisions"] = False
            out.choices.append(Choice("divisions", False, "point detections: divisions are only inferred from masks "
                                                          "(give divisions=True / --divisions to allow them)"))

    return out


def _set(out: AutoParams, choice: Choice) -> None:
    """Add a choice, replacing an earlier one of the same name (refinement)."""
    out.choices = [c for c in out.choices if c.name != choice.name] + [choice]
    if not choice.given:
        out.params[choice.name] = choice.value


def _margin(pa: np.ndarray, xb: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Squared distance up to which each unambiguous match ``pa[i] -> xb[j]`` could have been found, shape (m,).

    A match is kept only when its distance is at most ``RATIO`` x the distance to the second-nearest object, both
    ways; those second-nearest distances belong to the *other* objects, so each match is a draw from the error
    distribution truncated at ``(RATIO x min(second-nearest distances))^2`` (:func:`scale_mixture`'s ``trunc``).
    """
    inf = np.full(len(i), np.inf)
    da = cKDTree(xb).query(pa[i], k=2)[0][:, 1] if len(xb) > 1 else inf
    db = cKDTree(pa).query(xb[j], k=2)[0][:, 1] if len(pa) > 1 else inf
    return (RATIO * np.minimum(da, db)) ** 2


def _mixture_em(q, d, trunc, s0, window2=None, iters: int = 100, tol: float = 1e-6):
    """EM of a scale mixture of chi-square distributions on right-truncated draws, optionally with a chance
    component uniform in the ball of squared radius ``window2`` (see :func:`scale_mixture`). Returns the variances,
    the weights (the chance one last when present), the log-likelihood and the shares of the draws."""
    from scipy import special

    h = 0.5 * d
    fin = np.isfinite(trunc)
    any_fin = bool(fin.any())
    tq = trunc[fin]
    s = np.asarray(s0, float).copy()
    k = len(s)
    uni = window2 is not None
    pi = np.full(k + uni, 1.0 / (k + uni))
    c = (h - 1) * np.log(q)[:, None] - h * np.log(2.0) - special.gammaln(h)
    if uni:  # density of q for points uniform in the ball
        cu = np.where(q <= window2, np.log(h) + (h - 1) * np.log(q) - h * np.log(window2), -np.inf)[:, None]

    def logdens(s, pi):
        lf = c - 0.5 * q[:, None] / s - h * np.log(s)
        return (np.concatenate([lf, cu], 1) if uni else lf) + np.log(np.maximum(pi, 1e-300))

    ll_old = -np.inf
    for _ in range(iters):
        logf = logdens(s, pi)
        m = logf.max(1, keepdims=True)
        dens = np.exp(logf - m)
        tot = dens.sum(1, keepdims=True)
        rk = dens / tot
        nk = rk.sum(0)
        sq = (rk[:, :k] * q[:, None]).sum(0)
        ll = float((np.log(tot[:, 0]) + m[:, 0]).sum())
        if any_fin:
            # the draws lost beyond each match's truncation, as missing data (McLachlan & Jones 1988)
            z = 0.5 * tq[:, None] / s
            if d == 2:  # closed forms of the two incomplete gamma functions
                ez = np.exp(-z)
                fk, beyond = 1 - ez, (1 + z) * ez
            else:
                fk, beyond = special.gammainc(h, z), special.gammaincc(h + 1, z)
            g = np.maximum(fk @ pi[:k] + (pi[k] if uni else 0.0), 1e-300)
            ll -= float(np.log(g).sum())
            nk[:k] += (pi[:k] * (1 - fk) / g[:, None]).sum(0)
            sq = sq + (pi[:k] * s * d * beyond / g[:, None]).sum(0)
        pi = nk / nk.sum()
        s = np.maximum(sq / (d * np.maximum(nk[:k], 1e-300)), 1e-30 * s.max())
        if ll - ll_old <= tol * abs(ll):
            break
        ll_old = ll
    logf = logdens(s, pi)
    rk = np.exp(logf - logf.max(1, keepdims=True))
    rk /= rk.sum(1, keepdims=True)
    return s, pi, ll, rk.mean(0)


def scale_mixture(sq: np.ndarray, d: int, trunc=None, max_k: int = MIX_K, max_n: int = 10000) -> list:
    """Step-scale populations of squared d-dimensional errors: scale mixtures of chi-square distributions.

    Each population ``k`` has Gaussian errors of ``sigma_k`` per axis, so ``sq / sigma_k^2 ~ chi2_d``; the mixture
    of 1..``max_k`` populations is fitted by EM (maximum likelihood), each match optionally right-truncated at its
    own ``trunc`` (the first pass only finds steps shorter than its ambiguity margin, :func:`_margin`; the links of a
    linking pass are shorter than its ``max_distance``): the draws lost beyond the truncation are treated as missing
    data, so ``sigma_k`` and the population weights are those before the selection. Our own small code: no library
    estimates linking ranges, and this is some 40 lines of EM on one-dimensional data.

    Parameters
    ----------
    sq : ndarray, shape (n,)
        Squared errors (physical units^2).
    d : int
        Dimensions of the errors.
    trunc : ndarray, shape (n,) or float, optional
        Squared truncation of each draw (``inf``: none; draws above their truncation are taken as untruncated).
    max_k : int
        Largest number of populations.
    max_n : int
        At most this many draws (evenly spaced) are used.

    Returns
    -------
    list of dict
        One fit per number of populations ``K`` (up to the first that does not lower the BIC): ``sigma`` (per axis,
        ascending), ``weight`` (before truncation), ``share`` (of the matches: mean responsibility), ``chance``
        (share of the chance component, 0 without one), ``chance_weight``, ``window2`` (its squared radius, None
        without one), ``loglik`` and ``bic``.
    """
    sq = np.asarray(sq, float)
    t = np.full(len(sq), np.inf) if trunc is None else np.broadcast_to(np.asarray(trunc, float), sq.shape).copy()
    if len(sq) > max_n:
        keep = np.linspace(0, len(sq) - 1, max_n).astype(int)
        sq, t = sq[keep], t[keep]
    pos = sq[sq > 0]
    if len(pos) < 2:
        return []
    q = np.maximum(sq, 1e-6 * float(np.median(pos)))
    # one truncation for all (a linking pass's range): chance links, uniform in that ball, are one more component
    w2 = float(t[0]) if np.isfinite(t[0]) and np.all(t == t[0]) else None
    t = np.where(t >= q, t, np.inf)
    n = len(q)
    fits = []
    for k in range(1, max_k + 1):
        if n < 10 * k:
            break
        s0 = np.quantile(q, (np.arange(k) + 0.5) / k) / stats.chi2.median(d)
        s, pi, ll, share = _mixture_em(q, d, t, s0, w2)
        o = np.argsort(s)
        fits.append(dict(K=k, sigma=np.sqrt(s[o]), weight=pi[:k][o], share=share[:k][o], loglik=ll,
                         chance=float(share[k]) if w2 is not None else 0.0,
                         chance_weight=float(pi[k]) if w2 is not None else 0.0, window2=w2,
                         bic=-2 * ll + (2 * k - 1 + (w2 is not None)) * np.log(n)))
        if k > 1 and fits[-1]["bic"] >= fits[-2]["bic"]:
            break  # one more population did not help: nor will two more
    return fits


def _not_chance(fit: dict, sq: np.ndarray, d: int) -> np.ndarray:
    """Probability that each squared error is not a chance link under a fit of :func:`scale_mixture`."""
    if not fit.get("chance_weight"):
        return np.ones(len(sq))
    h = 0.5 * d
    q = np.maximum(sq, 1e-300)[:, None]
    s = fit["sigma"] ** 2
    f = (fit["weight"] * stats.chi2.pdf(q / s, d) / s).sum(1)
    w2 = fit["window2"]
    fu = np.where(sq <= w2, fit["chance_weight"] * h * q[:, 0] ** (h - 1) / w2 ** h, 0.0)
    return f / np.maximum(f + fu, 1e-300)


def _weighted_quantile(v: np.ndarray, w: np.ndarray, p: float) -> float:
    o = np.argsort(v)
    cw = np.cumsum(w[o])
    return float(v[o][min(np.searchsorted(cw, p * cw[-1]), len(v) - 1)])


def _fast_population(errs, d, trunc, window=None):
    """Per-axis scale of the fastest step population when the errors are a mixture of populations; else None.

    The number of components is chosen by BIC (:func:`scale_mixture`); components closer than ``MIX_SEP`` in scale are
    one population (a non-Gaussian population is fitted by several nearby components; their pooled variance is its
    scale); components whose ``sqrt(chi2_d.ppf(COVER))`` range exceeds 1.5 x ``window`` (the largest distance the
    errors could take: the range of the linking pass they come from) are not resolved by the data (chance links
    spread over the whole window) and do not count. The errors are a mixture when at least two populations hold
    ``MIX_SHARE`` of the matches each; the fastest of those is returned. Returns ``(sigma or None, reason, the BIC
    best fit or None)``.
    """
    fits = scale_mixture(errs, d, trunc)
    if not fits:
        return None, "", None
    best = min(fits, key=lambda f: f["bic"])
    if best["K"] < 2:
        return None, "", best
    sig, w, sh = best["sigma"], best["weight"], best["share"]
    ok = np.ones(len(sig), bool)
    if window is not None and np.isfinite(window):
        ok = np.sqrt(stats.chi2.ppf(COVER, d)) * sig <= 1.5 * window
    groups = []  # [variance x weight, weight, share] per population, slowest first
    last = None
    for k in np.flatnonzero(ok):
        if last is None or sig[k] >= MIX_SEP * last:
            groups.append([0.0, 0.0, 0.0])
        groups[-1][0] += w[k] * sig[k] ** 2
        groups[-1][1] += w[k]
        groups[-1][2] += sh[k]
        last = sig[k]
    pops = [(float(np.sqrt(v / max(ww, 1e-300))), float(s_)) for v, ww, s_ in groups if s_ >= MIX_SHARE]
    if len(pops) < 2:
        return None, "", best
    best = {**best, "fast_share": pops[-1][1]}
    scales = " / ".join(f"{v:.3g}" for v, _ in pops)
    why = (f"{len(pops)} populations of step scale {scales} per axis; covering the faster "
           f"({pops[-1][1]:.0%} of matches)")
    return pops[-1][0], why, best


def _motion_and_scale(out, given, d, nn, raw, flow_err, vel_err, raw_chain, source: str, trunc=None) -> float:
    """Choose the motion model and the distance scales from squared prediction errors (see the module docstring);
    ``trunc`` maps a model to the squared truncation of its errors (:func:`scale_mixture`). Returns
    ``max_distance``."""
    cover = float(np.sqrt(stats.chi2.ppf(COVER, d)))
    m_b = float(np.median(raw))
    m_f = float(np.median(flow_err)) if len(flow_err) >= 3 else np.inf
    m_v = float(np.median(vel_err)) if len(vel_err) >= 10 else np.inf
    m_bc = float(np.median(raw_chain)) if len(raw_chain) >= 10 else m_b
    out.stats.update(median_sq_step=m_b, median_sq_flow_error=m_f, median_sq_velocity_error=m_v)
    scale = {"brownian": _chi_scale(m_b, d), "flow": _chi_scale(m_f, d) if np.isfinite(m_f) else np.inf,
             "velocity": _chi_scale(m_v, d) if np.isfinite(m_v) else np.inf}
    out.stats["sigma"] = scale
    rel = {"flow": m_f / max(m_b, 1e-30), "velocity": m_v / max(m_bc, 1e-30)}
    if "motion" in given:
        motion = given["motion"]
        _set(out, Choice("motion", motion, "", True))
    else:
        best = min(rel, key=rel.get)
        motion = best if rel[best] <= GAIN else "brownian"
        why = (f"rms error per axis: brownian {scale['brownian']:.3g}, flow {scale['flow']:.3g}, velocity "
               f"{scale['velocity']:.3g} on {source}")
        _set(out, Choice("motion", motion, why))
    out.params["motion"] = motion
    errs = {"brownian": raw, "flow": flow_err if np.isfinite(m_f) else None,
            "velocity": vel_err if np.isfinite(m_v) else None}
    key = motion if errs.get(motion) is not None else "brownian"
    sig = scale[key]
    fast, mix_why = None, ""
    if key == "brownian":  # populations of different mobility; a motion model's large errors are its failures
        tk = (trunc or {}).get(key)
        fast, mix_why, fit = _fast_population(errs[key], d, tk, np.sqrt(tk) if np.isscalar(tk) else None)
        if fit is not None:
            out.stats["step_populations"] = {k: fit[k] for k in ("K", "sigma", "share", "weight", "chance")}
    out.stats["link_sigma"], out.stats["link_sigma_share"] = sig, 1.0
    if fast is not None:
        sig = fast
        out.stats["link_sigma"], out.stats["link_sigma_share"] = sig, float(fit["fast_share"])
        # the mixture describes the errors' tail; chance links (uniform over the pass's range) are left out of it
        tail = 1.3 * float(np.sqrt(_weighted_quantile(errs[key], _not_chance(fit, errs[key], d), 0.99)))
    else:
        out.stats.pop("step_populations", None)
        tail = 1.3 * float(np.sqrt(np.quantile(errs[key], 0.99)))
    floor = 0.25 * nn if np.isfinite(nn) else 0.0
    r = max(cover * sig, tail, floor)
    if "max_distance" in given:
        r = float(given["max_distance"])
        _set(out, Choice("max_distance", r, "", True))
    else:
        why = (f"{cover:.2f} x the {key} error scale {sig:.3g} per axis (covers {COVER:.2%} of Gaussian errors)"
               + (f"; {mix_why}" if fast is not None else "")
               + (f", raised to 1.3 x their 99th percentile {tail / 1.3:.3g} (heavy tail)" if r == tail else "")
               + (f", raised to a quarter of the median neighbour distance {nn:.3g}" if r == floor else ""))
        _set(out, Choice("max_distance", r, why))
    out.params["max_distance"] = r
    if motion == "velocity":
        r0 = max(cover * scale["brownian"], 1.3 * float(np.sqrt(np.quantile(raw, 0.99))), floor)
        if "first_distance" in given:
            _set(out, Choice("first_distance", given["first_distance"], "", True))
        else:
            _set(out, Choice("first_distance", r0, f"same for a track's first step (no velocity yet): raw step scale "
                                                   f"{scale['brownian']:.3g} per axis"))
    else:
        out.params.pop("first_distance", None)
        out.choices = [c for c in out.choices if c.name != "first_distance" or c.given]
    return r


def refine_params(out: AutoParams, x, fr, frames, bounds, prev, mother, given) -> dict:
    """Second estimate from the links of a first linking pass (continuations only, not divisions): motion model and
    distance scales as in :func:`estimate_params` but on every accepted link; returns the flow field per frame
    (``{frame: shift of its rows}``) computed from those links, for the ``flow`` model."""
    d = x.shape[1]
    raw, flow_err, vel_err, raw_chain = [], [], [], []
    flows = {}
    for fa, fb in zip(frames[:-1], frames[1:]):
        if fb != fa + 1:
            continue
        a0, a1 = bounds[fa]
        b0, b1 = bounds[fb]
        tgt = np.arange(b0, b1)
        tl = tgt[prev[tgt] >= 0]
        if len(tl) < 1:
            continue
        sl = prev[tl]
        u = x[tl] - x[sl]
        xs = x[sl]
        raw.append((u ** 2).sum(1))
        if len(tl) > 2:
            flow_err.append(((u - _field(xs, u, xs, exclude_self=True)) ** 2).sum(1))
        # sources: the field of their neighbours' links (not their own)
        pos_of = np.full(a1 - a0, -1)
        pos_of[sl - a0] = np.arange(len(sl))
        kk = min(FLOW_K + 1, len(xs))
        _, nb = cKDTree(xs).query(x[a0:a1], k=kk)
        nb = nb.reshape(a1 - a0, -1)
        if kk > 1:
            drop_self = nb == pos_of[:, None]
            # keep the first kk - 1 neighbours that are not the source itself
            order = np.argsort(drop_self, axis=1, kind="stable")[:, :kk - 1]
            nb = np.take_along_axis(nb, order, 1)
        flows[fa] = np.median(u[nb], axis=1)
        has = prev[sl] >= 0
        if has.any():
            up = x[sl[has]] - x[prev[sl[has]]]
            vel_err.append(((u[has] - up) ** 2).sum(1))
            raw_chain.append((u[has] ** 2).sum(1))
    cat = (lambda v: np.concatenate(v) if v else np.zeros(0))
    raw = cat(raw)
    if len(raw) < 5:
        return flows
    nn = out.stats.get("nn_distance", float("nan"))
    # the pass only linked within max_distance of its own model's prediction
    r_pass = float(given.get("max_distance", out.params.get("max_distance", np.inf)))
    motion_pass = given.get("motion", out.params.get("motion"))
    _motion_and_scale(out, given, d, nn, raw, cat(flow_err), cat(vel_err), cat(raw_chain),
                      f"{len(raw)} links of a first linking pass", trunc={motion_pass: r_pass ** 2})
    return flows


def _fallback(out: AutoParams, given: dict) -> None:
    from .lap import LinkParams

    dflt = LinkParams()
    for name in ("motion", "max_distance", "divisions"):
        if name in given:
            out.choices.append(Choice(name, given[name], "", True))
        else:
            out.params[name] = getattr(dflt, name)
            out.choices.append(Choice(name, getattr(dflt, name), "default: " + out.stats["warning"]))


def _estimate_cells(out, x, rows, matches, cells, given, cost_fn, r) -> None:
    """Divisions, daughter size, alternative and division costs from label data (see the module docstring)."""
    size = cells.size
    d = x.shape[1]
    ratios, offsets, n_src, n_split = [], [], 0, 0
    for (fa, fb), (gi, gj, shift) in matches.items():
        a0, a1 = rows[fa]
        b0, b1 = rows[fb]
        n_src += a1 - a0
        un_a = np.setdiff1d(np.arange(a0, a1), gi)
        un_b = np.setdiff1d(np.arange(b0, b1), gj)
        if len(un_a) == 0 or len(un_b) < 2:
            continue
        pred = x[un_a] + shift[un_a - a0]
        dist, nb = cKDTree(x[un_b]).query(pred, k=2)
        mid = 0.5 * (x[un_b][nb[:, 0]] + x[un_b][nb[:, 1]])
        ok = (np.linalg.norm(mid - pred, axis=1) <= 0.5 * r) & (dist[:, 1] <= 2 * r)
        # each target used once
        used = set()
        for k in np.flatnonzero(ok):
            pair = (int(nb[k, 0]), int(nb[k, 1]))
            if pair[0] in used or pair[1] in used:
                continue
            used.update(pair)
            n_split += 1
            ratios.append(0.5 * (size[un_b[pair[0]]] + size[un_b[pair[1]]]) / size[un_a[k]])
            o = cells.axis[un_a[k]] if cells.axis is not None else np.zeros(d)
            for b in pair:
                diff = x[un_b[b]] - pred[k]
                offsets.append(min(((diff - o) ** 2).sum(), ((diff + o) ** 2).sum()))
    rate = n_split / max(n_src, 1)
    out.stats.update(split_candidates=n_split, split_rate=rate)
    if "divisions" in given:
        divisions = bool(given["divisions"])
        out.choices.append(Choice("divisions", divisions, "", True))
    else:
        divisions = rate >= 0.02 and n_split >= 3
        out.choices.append(Choice("divisions", divisions, f"{n_split} objects split into two centred on them "
                                                          f"({rate:.1%} of objects per frame; threshold 2 %)"))
    out.params["divisions"] = divisions
    if "daughter_size" in given:
        out.choices.append(Choice("daughter_size", given["daughter_size"], "", True))
    elif divisions and len(ratios) >= 3:
        ds = float(np.median(ratios))
        out.params["daughter_size"] = ds
        out.choices.append(Choice("daughter_size", ds, f"median daughter/mother size of {len(ratios)} split "
                                                       "candidates"))
    if "daughter_distance" in given:
        out.choices.append(Choice("daughter_distance", given["daughter_distance"], "", True))
    elif divisions and len(offsets) >= 6:
        cover = float(np.sqrt(stats.chi2.ppf(COVER, d)))
        offsets = np.asarray(offsets)
        sig = _chi_scale(float(np.median(offsets)), d)
        rd = max(cover * sig, 1.3 * float(np.sqrt(np.quantile(offsets, 0.99))), r)
        out.params["daughter_distance"] = rd
        out.choices.append(Choice("daughter_distance", rd, f"daughters' distance from the mother's predicted centre "
                                                           f"(+- its long half-axis) in {len(offsets) // 2} split "
                                                           f"candidates: scale {sig:.3g} per axis"))
    if "division_cost" in given:
        out.choices.append(Choice("division_cost", given["division_cost"], "", True))
    elif divisions:
        out.params["division_cost"] = 0.0
        out.choices.append(Choice("division_cost", 0.0, "divisions are frequent in these data (split candidates)"))
    if "alternative_cost" in given:
        out.choices.append(Choice("alternative_cost", given["alternative_cost"], "", True))
    elif cost_fn is not None and matches:
        from .lap import LinkParams

        trial = LinkParams(**{**out.params, **given, "alternative_cost": 1e6})
        costs = []
        for (fa, fb), (gi, gj, shift) in matches.items():
            a0, a1 = rows[fa]
            b0, b1 = rows[fb]
            src, tgt = np.arange(a0, a1), np.arange(b0, b1)
            pred = x[src] + (shift if trial.motion == "flow" else 0.0)
            i, j, c_link, _ = cost_fn(trial, fa, fb, src, tgt, pred, np.full(len(src), trial.motion != "velocity"))
            key = dict(zip(zip(i.tolist(), j.tolist()), c_link.tolist()))
            costs.extend(key.get((a - a0, b - b0), np.nan) for a, b in zip(gi.tolist(), gj.tolist()))
        costs = np.asarray(costs)
        costs = costs[np.isfinite(costs)]
        if len(costs) >= 5:
            q = float(np.quantile(costs, 0.99))
            alt = max(1.0, 1.5 * q)
            out.params["alternative_cost"] = alt
            out.choices.append(Choice("alternative_cost", alt, f"1.5 x the 99th percentile ({q:.3g}) of the link cost "
                                                               f"of {len(costs)} first-pass matches (at least 1)"))
    out.stats["daughter_ratios"] = [float(v) for v in ratios[:50]]


def _box_volume(x: np.ndarray) -> float:
    """Volume of the bounding box of positions ``x (n, d)`` (physical units^d): the area over which chance
    restarts and false detections are spread."""
    return float(np.prod(np.maximum(x.max(0) - x.min(0), 1e-9)))


def clutter_cost(x, fr, prev, has_succ, r, sigma, share=1.0) -> tuple[float, str, dict]:
    """``alternative_cost`` of point detections from the density of detections that start no track (see the module
    docstring): a link at distance ``d`` is kept while it is more likely than "the source's detection is missing here
    and this one is a false detection or a new object".

    Parameters
    ----------
    x : ndarray, shape (n, d)
        Positions (physical units), rows sorted by frame; ``fr`` their frames.
    prev : ndarray of int, shape (n,)
        Each row's predecessor in a linking pass (-1: none).
    has_succ : ndarray of bool, shape (n,)
        Whether each row has a successor in that pass.
    r : float
        ``max_distance`` (physical units).
    sigma : float
        Per-axis scale of the link errors (physical units) and ``share``: the fraction of links of that scale (the
        fastest population's share of matches, 1 for one population).

    Returns
    -------
    alternative_cost : float
        ``2 sigma^2 L / r^2`` with ``L = log(share (1 - q) / (q lam (2 pi sigma^2)^(d/2)))``, ``lam`` the detections
        per frame and unit volume (bounding box) that have no predecessor after the first frame, ``q`` the
        fraction of detections before the last frame with no successor; clipped to ``[chi2_d.ppf(FLOOR) sigma^2 /
        r^2, 1]`` (1, today's cost, when nothing starts or ends inside the movie).
    reason : str
    stats : dict
        ``clutter_density`` (``lam``), ``end_fraction`` (``q``), ``link_cutoff`` (``sqrt(alternative_cost) r``).
    """
    import math

    d = x.shape[1]
    f0, f1 = fr.min(), fr.max()
    volume = _box_volume(x)
    later, earlier = fr > f0, fr < f1
    n_frames = len(np.unique(fr))
    lam = float(((prev < 0) & later).sum()) / max(n_frames - 1, 1) / volume
    q = float((~has_succ & earlier).sum()) / max(int(earlier.sum()), 1)
    st = {"clutter_density": lam, "end_fraction": q}
    unit = f"length^{d}"
    if lam <= 0 or q <= 0 or not sigma > 0:
        st["link_cutoff"] = r
        return 1.0, "every detection continues a track: no false detections to avoid", st
    lik = share * (1 - q) / (q * lam * (2 * math.pi * sigma ** 2) ** (d / 2))
    alt = 2 * sigma ** 2 * math.log(max(lik, 1.0)) / r ** 2
    floor = float(stats.chi2.ppf(FLOOR, d)) * sigma ** 2 / r ** 2
    alt = float(min(max(alt, floor), 1.0))
    st["link_cutoff"] = math.sqrt(alt) * r
    why = (f"{lam * 1000:.3g} detections per 1000 {unit} per frame start no track, {q:.1%} end none: links beyond "
           f"{math.sqrt(alt) * r:.3g} (error scale {sigma:.3g}) are less likely than a missed plus a false detection"
           + (" (at least the 99 % error)" if alt == floor and floor < 1 else "")
           + (" (at most max_distance)" if alt == 1.0 else ""))
    return alt, why, st


def estimate_gaps(x, fr, ends, begins, step, r, *, max_gap: int = 5) -> tuple[int, str]:
    """Gap-closing range from the interior track ends and starts of a linking pass without gap closing.

    Parameters
    ----------
    x : ndarray, shape (n, d)
        Positions (physical units); ``fr`` their frames.
    ends, begins : ndarray of int
        Rows that end a track before the last frame / start one after the first frame.
    step : ndarray, shape (n, d)
        Predicted one-frame displacement of every row.
    r : float
        ``max_distance``.

    Returns
    -------
    gap_frames : int
        The largest ``g <= max_gap`` such that for every gap up to ``g`` at least 3 ends (and three times the number
        expected by chance from the density of starts) have a start ``g + 1`` frames later within
        ``CORE r sqrt(g + 1)`` of their prediction; ends and starts paired at a shorter gap (within ``r sqrt(g + 1)``)
        are not counted again.
    reason : str
    """
    import math

    d = x.shape[1]
    if len(ends) == 0 or len(begins) == 0:
        return 0, "every track runs to the movie's end or starts on its first frame: nothing to close"
    volume = _box_volume(x)
    fe, fb = fr[ends], fr[begins]
    free_e = np.ones(len(ends), bool)
    free_b = np.ones(len(begins), bool)
    best, why, first = 0, "", None
    for g in range(1, max_gap + 1):
        rad = r * math.sqrt(g + 1)
        core = CORE * rad
        ball = math.pi ** (d / 2) / math.gamma(d / 2 + 1) * core ** d
        hit = chance = 0.0
        for f in np.unique(fe[free_e]):
            bk = np.flatnonzero(free_b & (fb == f + g + 1))
            if len(bk) == 0:
                continue
            ek = np.flatnonzero(free_e & (fe == f))
            dist, nb = cKDTree(x[begins[bk]]).query(x[ends[ek]] + step[ends[ek]] * (g + 1), k=1)
            hit += float((dist <= core).sum())
            chance += len(ek) * -math.expm1(-len(bk) * ball / volume)
            ok = dist <= rad
            free_e[ek[ok]] = False  # ends and starts explained by a shorter gap are not counted again
            free_b[bk[nb[ok]]] = False
        if first is None:
            first = (hit, chance)
        if hit >= 3 and hit >= 3 * chance:
            best = g
            why = (f"{int(hit)} track ends restart within {core:.3g} after {g} missing frame(s) (chance "
                   f"{chance:.3g}); checked up to {max_gap}")
        else:
            break
    if best == 0:
        why = (f"{len(ends)} interior track ends, {int(first[0])} restart within {CORE:g} x {r * math.sqrt(2):.3g} "
               f"after one missing frame (chance {first[1]:.3g}): no gap closing")
    return best, why
