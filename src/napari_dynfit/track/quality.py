"""Tracking quality report: what a linking run did, in numbers a user can check without ground truth.

:func:`~napari_dynfit.track.link` builds one after every run (``tracks.attrs["tracking_quality"]``,
:meth:`TrackingQuality.from_dict` turns it back into the object); the CLI prints :meth:`TrackingQuality.summary`,
the Track widget shows it. Warnings flag results that usually mean wrong parameters or input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

CAP_FRACTION = 0.75   # a link whose cost is >= this fraction of the alternative cost is "at the cap"
LENGTH_BINS = (1, 2, 3, 6, 11, 21, 51, 101)  # track-length histogram bin starts (frames)


@dataclass
class TrackingQuality:
    """Summary of one linking run.

    Attributes
    ----------
    n_detections, n_tracks, n_frames, n_links, n_gap_joins, n_divisions : int
        Counts (``n_links``: frame-to-frame links, including links to daughters).
    links_at_cap : float
        Fraction of links whose cost is at least ``CAP_FRACTION`` of the cost of a death plus a birth: many such
        links mean that the distance scale is too small or the motion model does not fit.
    displacement_edges, displacement_counts : list of float, list of int
        Histogram of link lengths (physical units; 20 bins up to ``max_distance`` x the largest cost ratio).
    displacement_median, displacement_q95 : float
        Median and 95th percentile of the link lengths.
    length_edges, length_counts : list of int
        Histogram of track lengths in frames (bin starts ``LENGTH_BINS``; last bin open).
    one_frame_fraction : float
        Fraction of tracks with a single detection.
    median_length : float
        Median track length (frames, first to last detection).
    divisions_per_frame : list of int
        Divisions whose daughters start on each frame (index = frame - first frame).
    params : dict
        The linking parameters used.
    warnings : list of str
        Signs of a wrong result, each with a suggestion.
    """

    n_detections: int
    n_tracks: int
    n_frames: int
    n_links: int
    n_gap_joins: int
    n_divisions: int
    links_at_cap: float
    displacement_edges: list
    displacement_counts: list
    displacement_median: float
    displacement_q95: float
    length_edges: list
    length_counts: list
    one_frame_fraction: float
    median_length: float
    divisions_per_frame: list
    params: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for a terminal or a status panel."""
        lines = [
            f"{self.n_tracks} tracks from {self.n_detections} detections in {self.n_frames} frames; "
            f"{self.n_links} links, {self.n_gap_joins} gap closings, {self.n_divisions} divisions",
            f"link length: median {self.displacement_median:.3g}, 95th percentile {self.displacement_q95:.3g} "
            f"(max distance {self.params.get('max_distance', float('nan')):.3g}); "
            f"{self.links_at_cap:.1%} of links near the cost cap",
            "track length (frames): " + ", ".join(
                f"{_bin_name(k, self.length_edges)}: {c}" for k, c in enumerate(self.length_counts) if c)
            + f"; median {self.median_length:.3g}, one-frame tracks {self.one_frame_fraction:.1%}",
        ]
        if self.n_divisions:
            dpf = np.asarray(self.divisions_per_frame)
            lines.append(f"divisions per frame: mean {dpf.mean():.3g}, max {int(dpf.max())} "
                         f"(frame {int(np.argmax(dpf))} from the first)")
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrackingQuality:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def tracking_quality(tracks) -> TrackingQuality:
    """The quality report :func:`~napari_dynfit.track.link` stored with ``tracks`` (``attrs["tracking_quality"]``)."""
    from ..errors import InputError

    if "tracking_quality" not in getattr(tracks, "attrs", {}):
        raise InputError("these tracks carry no quality report: make them with napari_dynfit.track.link")
    return TrackingQuality.from_dict(tracks.attrs["tracking_quality"])


def _bin_name(k, edges):
    lo = edges[k]
    if k + 1 == len(edges):
        return f">={lo}"
    hi = edges[k + 1] - 1
    return str(lo) if hi == lo else f"{lo}-{hi}"


def assess(track_id, parent_id, frames, link_cost, displacement, gap_cost, params) -> TrackingQuality:
    """Quality report of a linking run.

    Parameters
    ----------
    track_id, parent_id, frames : ndarray of int, shape (n,)
        Per detection.
    link_cost : ndarray, shape (n_links,)
        Cost of each frame-to-frame link over ``alternative_cost``.
    displacement : ndarray, shape (n_links,)
        Length of each link (physical units).
    gap_cost : ndarray
        Costs (over ``alternative_cost``) of the gap closings made.
    params : LinkParams
        The parameters used.
    """
    p = asdict(params) if not isinstance(params, dict) else dict(params)
    n = len(track_id)
    uniq, inv = np.unique(track_id, return_inverse=True)
    n_tracks = len(uniq)
    fmin = np.full(n_tracks, np.iinfo(np.int64).max)
    fmax = np.full(n_tracks, np.iinfo(np.int64).min)
    np.minimum.at(fmin, inv, frames)
    np.maximum.at(fmax, inv, frames)
    length = fmax - fmin + 1
    count = np.bincount(inv, minlength=n_tracks)
    edges = list(LENGTH_BINS)
    lcounts = np.bincount(np.searchsorted(edges, length, side="right") - 1, minlength=len(edges))
    one = float(np.mean(count == 1)) if n_tracks else float("nan")
    # divisions: daughter tracks grouped by mother; each mother with >= 2 daughters is a division at the daughters'
    # first frame
    tpar = np.full(n_tracks, -1, np.int64)
    tpar[inv] = parent_id
    daughters = np.flatnonzero(tpar >= 0)
    f0 = int(frames.min()) if n else 0
    nfr = int(frames.max()) - f0 + 1 if n else 0
    dpf = np.zeros(max(nfr, 0), np.int64)
    n_div = 0
    if len(daughters):
        mothers, first_kid = np.unique(tpar[daughters], return_index=True)
        kids_per = np.bincount(np.searchsorted(mothers, tpar[daughters]), minlength=len(mothers))
        real = kids_per >= 2
        n_div = int(real.sum())
        np.add.at(dpf, fmin[daughters[first_kid[real]]] - f0, 1)
    disp = np.asarray(displacement, float)
    cost = np.asarray(link_cost, float)
    r = float(p.get("max_distance", np.nan))
    top = max(r * np.sqrt(max(float(p.get("alternative_cost", 1.0)), 1.0)), float(disp.max()) if len(disp) else r)
    hist, hedges = np.histogram(disp, bins=20, range=(0.0, top if top > 0 else 1.0))
    at_cap = float(np.mean(cost >= CAP_FRACTION)) if len(cost) else 0.0
    warnings = []
    if n_tracks and one > 0.5:
        warnings.append(f"{one:.0%} of tracks are one frame long: max_distance ({r:.3g}) may be too small for these "
                        "motions, or the detections flicker (try a larger --max-distance or --gap-frames)")
    if len(cost) >= 20 and at_cap > 0.05:
        warnings.append(f"{at_cap:.0%} of links cost nearly a death plus a birth: the distance scale or the motion "
                        "model does not fit (try --motion flow/velocity or a larger --max-distance)")
    if n_tracks and np.median(length) < 3 and nfr >= 5:
        warnings.append(f"median track length {np.median(length):.3g} frames in a {nfr}-frame movie: links are "
                        "being refused; check max_distance and the motion model")
    per_frame = np.bincount(frames - f0, minlength=max(nfr, 0)) if n else np.zeros(0, np.int64)
    growth = int(per_frame[-1] - per_frame[0]) if len(per_frame) else 0
    if p.get("divisions") and n_div > max(5, 1.5 * max(growth, 0) + 0.05 * n_tracks):
        warnings.append(f"{n_div} divisions but the number of objects grows by only {growth}: many divisions are "
                        "probably false (raise the division cost or check the segmentation)")
    if p.get("divisions") and n_div == 0 and nfr >= 5:
        warnings.append("divisions were allowed but none was found")
    return TrackingQuality(
        n_detections=int(n), n_tracks=int(n_tracks), n_frames=int(nfr), n_links=int(len(cost)),
        n_gap_joins=int(len(gap_cost)), n_divisions=n_div, links_at_cap=at_cap,
        displacement_edges=[float(v) for v in hedges], displacement_counts=[int(v) for v in hist],
        displacement_median=float(np.median(disp)) if len(disp) else float("nan"),
        displacement_q95=float(np.quantile(disp, 0.95)) if len(disp) else float("nan"),
        length_edges=edges, length_counts=[int(v) for v in lcounts], one_frame_fraction=one,
        median_length=float(np.median(length)) if n_tracks else float("nan"),
        divisions_per_frame=[int(v) for v in dpf],
        params={k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in p.items()},
        warnings=warnings)
