"""Preview of an APR conversion: convert only the plane on screen (and a slab of neighbours in 3D).

Used by the napari "Convert to APR" widget for its live preview; usable from scripts to try conversion
parameters on one plane of a large image before converting it all.
"""

from __future__ import annotations

import numpy as np

__all__ = ["preview_slice"]


def preview_slice(data, index, *, is_movie: bool, params: dict, spacing=None, slab: int = 16) -> dict:
    """Convert the plane at ``index`` (with a slab of neighbours for 3D) and reconstruct it.

    Parameters
    ----------
    data : array_like
        The layer data ``([t,] [z,] y, x)`` (full resolution).
    index : sequence of int
        Data index of the current position, one per axis of ``data``.
    is_movie : bool
        Whether the first axis is time.
    params : dict
        :func:`~napari_dynfit.apr.to_apr` conversion parameters.
    spacing : sequence of float, optional
        Spatial pixel size.
    slab : int
        Planes converted around the current one for 3D frames.

    Returns
    -------
    dict
        ``image`` and ``levels`` (2D arrays of the current plane) and ``stats`` of the converted part.
    """
    from .convert import to_apr
    from .lazy import LazyAprArray

    lead = [int(i) for i in index[:-2]]
    frame_nd = data.ndim - (1 if is_movie else 0)
    key = []
    if is_movie:
        key.append(int(np.clip(lead[0], 0, data.shape[0] - 1)))
    z_in_slab = None
    if frame_nd == 3:
        nz = data.shape[-3]
        z = int(np.clip(lead[-1], 0, nz - 1))
        z0 = max(0, min(z - slab // 2, nz - slab))
        z1 = min(nz, z0 + slab)
        key.append(slice(z0, z1))
        z_in_slab = z - z0
    part = np.asarray(data[tuple(key)])
    sp = None if spacing is None else list(spacing)[-part.ndim:]
    image = to_apr(part, spacing=sp, **params)
    plane = (z_in_slab,) if z_in_slab is not None else (Ellipsis,)
    rec = np.asarray(LazyAprArray(image, 0, "constant")[plane])
    lev = np.asarray(LazyAprArray(image, 0, "level")[plane])
    return {"image": rec, "levels": lev, "stats": image.stats()}
