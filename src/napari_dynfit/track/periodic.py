"""Tracks in a periodic box: split at the wrap so that no drawn segment crosses the box.

A particle that leaves a periodic box on one side comes back on the other; its wrapped positions jump by about
one box length between two frames, and a tracks layer draws that jump as a line across the image.
:func:`split_at_wraps` cuts a track wherever a step exceeds half the box along a periodic axis (no real step
can: the minimum-image displacement is at most half the box) and gives every piece a new ``track_id``; the
piece keeps the particle in ``particle_id`` and its place in ``segment`` (0, 1, ...), so the whole particle is
one ``groupby("particle_id")`` away. Lineage (``parent_id``) stays on the first piece of a daughter and points
to the **last** piece of its mother.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..tables import coord_columns


def split_at_wraps(tracks: pd.DataFrame, box) -> pd.DataFrame:
    """Split tracks wherever a step jumps by more than half the periodic box.

    Parameters
    ----------
    tracks : DataFrame
        ``track_id, frame, [z,] y, x`` (+ ``parent_id`` and any other columns), coordinates in the units of
        ``box`` (pixels or physical, the same for both).
    box : float or sequence of float or None
        Box length per spatial axis ``[z,] y, x`` (a scalar: every axis); ``None``, 0 or ``inf`` on an axis:
        that axis is not periodic.

    Returns
    -------
    DataFrame
        The same rows sorted by ``track_id, frame``, with new ``track_id`` (pieces numbered from 0 in order
        of the original ids), ``particle_id`` (the original ``track_id``) and ``segment`` (the piece's index
        along its particle); ``parent_id`` remapped to the mother's last piece. ``attrs`` are kept.
    """
    if "track_id" not in tracks.columns or "frame" not in tracks.columns:
        raise InputError("tracks need 'track_id' and 'frame' columns to be split at the periodic box")
    cols = coord_columns(tracks)
    nd = len(cols)
    if box is None:
        box = [np.inf] * nd
    box = np.broadcast_to(np.asarray(box, float), (nd,)).copy() if np.ndim(box) == 0 else np.asarray(box, float)
    if box.shape != (nd,):
        raise InputError(f"the periodic box has {box.size} lengths for {nd} spatial axes ({', '.join(cols)})")
    box[~np.isfinite(box) | (box <= 0)] = np.inf
    df = tracks.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)
    tid = df["track_id"].to_numpy()
    xyz = df[cols].to_numpy(float)
    same = np.zeros(len(df), bool)
    same[1:] = tid[1:] == tid[:-1]
    jump = np.zeros(len(df), bool)
    jump[1:] = np.any(np.abs(np.diff(xyz, axis=0)) > box / 2, axis=1)
    start = ~same | jump  # a new piece begins here
    new_id = np.cumsum(start) - 1
    out = df.copy()
    out["particle_id"] = tid
    first_of_track = ~same
    seg = np.cumsum(start) - 1
    seg_first = np.maximum.accumulate(np.where(first_of_track, seg, 0))
    out["segment"] = (seg - seg_first).astype(np.int64)
    out["track_id"] = new_id.astype(np.int64)
    if "parent_id" in out.columns:
        last_piece = out.groupby("particle_id")["track_id"].max()
        first_piece = out["segment"].to_numpy() == 0
        par = out["parent_id"].to_numpy()
        mapped = pd.Series(par).map(last_piece).fillna(-1).to_numpy(np.int64)
        out["parent_id"] = np.where(first_piece & (par >= 0), mapped, -1).astype(np.int64)
    out.attrs = dict(tracks.attrs)
    return out
