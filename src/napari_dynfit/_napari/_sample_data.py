"""npe2 sample data: the embedded simulated samples as napari layers (movie, ground-truth tracks, masks).

The ground-truth layers carry ``metadata["ground_truth"] = True``: they are there to check results
against, and the panel's steps never take them as input. A simulated periodic box is marked
``metadata["periodic"] = True`` (the fields step's default).
"""

from __future__ import annotations

import numpy as np


def _tracks_layer(sample):
    """Ground truth as Tracks layer data ``(track_id, t, [z,] y, x)`` with the lineage ``graph``."""
    from ..tables import coord_columns

    truth = sample.truth.sort_values(["track_id", "frame"])
    cols = coord_columns(truth)
    data = truth[["track_id", "frame", *cols]].to_numpy(dtype=float)
    graph = {}
    if "parent_id" in truth.columns:
        firsts = truth.drop_duplicates("track_id")
        graph = {int(t): [int(p)] for t, p in zip(firsts["track_id"], firsts["parent_id"]) if p >= 0}
    scale = (1.0, *sample.spacing)
    return (data, {"name": f"{sample.name} truth", "graph": graph, "scale": scale, "tail_length": 10,
                   "visible": False, "metadata": {**_meta(sample), "ground_truth": True}}, "tracks")


def _meta(sample) -> dict:
    meta = {"dt": sample.dt}
    if sample.params.get("periodic"):
        meta["periodic"] = True
    return meta


def _layers(sample):
    scale = (1.0, *sample.spacing)
    lo, hi = np.percentile(sample.movie[0], (0.5, 99.9))
    layers = [(sample.movie, {"name": sample.name, "scale": scale, "contrast_limits": (float(lo), float(hi)),
                              "metadata": {**_meta(sample), "params": sample.params}}, "image")]
    if sample.labels is not None:
        layers.append((sample.labels, {"name": f"{sample.name} masks", "scale": scale, "opacity": 0.4,
                                       "metadata": {**_meta(sample), "ground_truth": True}}, "labels"))
    layers.append(_tracks_layer(sample))
    return layers


def active_particles_2d():
    """Active particles (2D+t): movie + ground-truth tracks."""
    from ..sim.samples import active_particles_2d as make

    return _layers(make(seed=0))


def dividing_cells_3d():
    """Dividing cells (3D+t): movie + ground-truth masks + lineage tracks."""
    from ..sim.samples import dividing_cells_3d as make

    return _layers(make(seed=0))
