"""Tracking: LAP linking with gaps, divisions and motion models, parameters estimated from the data, a quality
report; formats; metrics against ground truth; physical analysis (MSD and its fit with drift removal, van Hove
distributions, velocity autocorrelation)."""

from .analysis import (
                       MsdFit,
                       classify_immobile,
                       composition_bias,
                       compute_drift,
                       fit_msd,
                       mobility_populations,
                       msd,
                       subtract_drift,
                       van_hove,
                       velocity_autocorrelation,
)
from .formats import (
                       read_ctc,
                       read_label_movie,
                       read_trackmate_xml,
                       relabel_movie,
                       to_napari_tracks,
                       tracks_from_edges,
                       write_ctc,
)
from .io_formats import read_tracks, tracks_from_napari, write_tracks
from .lap import MOTIONS, LinkParams, link
from .metrics import TrackingMetrics, match_nodes, tracking_metrics
from .quality import TrackingQuality, tracking_quality

__all__ = ["msd", "fit_msd", "MsdFit", "classify_immobile", "composition_bias", "mobility_populations", "compute_drift", "subtract_drift", "van_hove", "velocity_autocorrelation",
           "MOTIONS", "LinkParams", "link", "TrackingQuality", "tracking_quality", "TrackingMetrics", "tracking_metrics", "match_nodes",
           "read_ctc", "write_ctc", "read_label_movie", "read_trackmate_xml", "relabel_movie", "to_napari_tracks",
           "tracks_from_edges", "read_tracks", "write_tracks", "tracks_from_napari"]
