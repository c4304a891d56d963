"""Detection: sub-pixel scale-space blobs (particles) and label centroids/overlaps (cells)."""

from .blobs import detect_blobs, detect_movie
from .labels import check_labels, label_overlaps, label_table

__all__ = ["detect_blobs", "detect_movie", "check_labels", "label_overlaps", "label_table"]
