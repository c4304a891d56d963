"""Tracking: LAP linking with gaps, divisions and motion models; formats; metrics against ground truth."""

from .formats import (read_ctc, read_label_movie, read_trackmate_xml, relabel_movie, to_napari_tracks,
                      tracks_from_edges, write_ctc)
from .lap import MOTIONS, LinkParams, link
from .metrics import match_nodes, tracking_metrics

__all__ = ["MOTIONS", "LinkParams", "link", "tracking_metrics", "match_nodes", "read_ctc", "write_ctc",
           "read_label_movie", "read_trackmate_xml", "relabel_movie", "to_napari_tracks", "tracks_from_edges"]
