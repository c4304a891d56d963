"""Tracking: LAP linking with gaps, divisions and motion models; formats; metrics against ground truth."""

from .lap import MOTIONS, LinkParams, link

__all__ = ["MOTIONS", "LinkParams", "link"]
