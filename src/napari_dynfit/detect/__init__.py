"""Detection: sub-pixel scale-space blobs (particles), touching cells from raw images, label centroids/overlaps."""

from .blobs import detect_blobs, detect_movie, movie_polarity, resolve_spot_sigma
from .cells import CellSegmentation, match_segmentation, segment_cells, segment_movie
from .labels import check_labels, label_overlaps, label_table
from .size import SpotSize, estimate_movie_spot_sigma, estimate_spot_sigma

__all__ = ["detect_blobs", "detect_movie", "check_labels", "label_overlaps", "label_table", "segment_cells",
           "segment_movie", "match_segmentation", "CellSegmentation", "estimate_spot_sigma", "estimate_movie_spot_sigma",
           "SpotSize", "resolve_spot_sigma", "movie_polarity"]
