"""npe2 sample data: the embedded simulated samples as napari layers (movie, ground-truth tracks, masks).

The ground-truth layers carry ``metadata["ground_truth"] = True``: they are there to check results
against, and the panel's steps never take them as input. A simulated periodic box is marked
``metadata["periodic"] = True`` (the fields step's default); its truth tracks are split where a particle wraps
around the box (:func:`napari_dynfit.track.periodic.split_at_wraps`: no line across the image; the feature
``particle_id`` joins the pieces). Geometry follows :mod:`napari_dynfit.geometry`: frames with
``scale[0] = dt`` (seconds; frames for the cells, which have no physical time), pixels with the pixel size in
micrometres, ``units`` and ``axis_labels`` set.
"""

from __future__ import annotations

import numpy as np

from ..geometry import NO_UNIT, movie_geometry

#: time unit of each sample's frame interval (the cells' frames have no physical time)
_TIME_UNIT = {"active_particles_2d": "second", "dividing_cells_3d": NO_UNIT}


def _geometry(sample) -> dict:
    """scale, translate, units and axis labels of every layer of ``sample`` (the plugin's convention)."""
    return movie_geometry(sample.spacing, sample.dt, space_unit="micrometer",
                          time_unit=_TIME_UNIT.get(sample.name, "second"))


def _tracks_layer(sample):
    """Ground truth as Tracks layer data ``(track_id, t, [z,] y, x)`` with the lineage ``graph``; a periodic
    sample's tracks are split at the wrap (``particle_id`` feature: the particle)."""
    import pandas as pd

    from ..tables import coord_columns
    from ..track.periodic import split_at_wraps

    truth = sample.truth.sort_values(["track_id", "frame"])
    cols = coord_columns(truth)
    if sample.params.get("periodic"):
        box_um = sample.params["simulation"]["box"]
        truth = split_at_wraps(truth, [b / s for b, s in zip(box_um, sample.spacing)])  # pixels
    else:
        truth = truth.assign(particle_id=truth["track_id"])
    data = truth[["track_id", "frame", *cols]].to_numpy(dtype=float)
    graph = {}
    if "parent_id" in truth.columns:
        firsts = truth.drop_duplicates("track_id")
        graph = {int(t): [int(p)] for t, p in zip(firsts["track_id"], firsts["parent_id"]) if p >= 0}
    feats = pd.DataFrame({"particle_id": truth["particle_id"].to_numpy(np.int64)})
    return (data, {"name": f"{sample.name} truth", "graph": graph, **_geometry(sample), "tail_length": 10,
                   "features": feats, "visible": False, "metadata": {**_meta(sample), "ground_truth": True}},
            "tracks")


def _meta(sample) -> dict:
    meta = {"dt": sample.dt}
    if sample.params.get("periodic"):
        meta["periodic"] = True
    return meta


def _layers(sample):
    geo = _geometry(sample)
    lo, hi = np.percentile(sample.movie[0], (0.5, 99.9))
    layers = [(sample.movie, {"name": sample.name, **geo, "contrast_limits": (float(lo), float(hi)),
                              "metadata": {**_meta(sample), "params": sample.params}}, "image")]
    if sample.labels is not None:
        layers.append((sample.labels, {"name": f"{sample.name} masks", **geo, "opacity": 0.4,
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
