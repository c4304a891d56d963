"""Cell-list neighbour sums in a periodic box (numba, parallel over particles).

Written here rather than taken from a library because the simulator needs one fused, allocation-free
pass per time step (local orientation sum and neighbour count within a radius, minimum-image
periodic distances) for 10^5 particles; scipy's ``cKDTree`` with ``boxsize`` builds a tree and a
Python list of neighbours per particle every step, which is an order of magnitude slower.

Positions are always handled as three columns ``(z, y, x)``; 2D data uses a ``z`` column of zeros
with a box length of 1 and a single cell along ``z``.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _cell_index(pos, box, ncell):
    n = pos.shape[0]
    idx = np.empty(n, np.int64)
    for i in range(n):
        c = 0
        for a in range(3):
            k = int(pos[i, a] / box[a] * ncell[a])
            if k >= ncell[a]:
                k = ncell[a] - 1
            elif k < 0:
                k = 0
            c = c * ncell[a] + k
        idx[i] = c
    return idx


@numba.njit(cache=True)
def _build_cells(pos, box, ncell):
    """Counting sort of the particles by cell: ``(start (ncells + 1,), order (N,))``."""
    idx = _cell_index(pos, box, ncell)
    total = ncell[0] * ncell[1] * ncell[2]
    start = np.zeros(total + 1, np.int64)
    for c in idx:
        start[c + 1] += 1
    for c in range(total):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    order = np.empty(pos.shape[0], np.int64)
    for i in range(pos.shape[0]):
        c = idx[i]
        order[fill[c]] = i
        fill[c] += 1
    return start, order


def _sums_py(pos, orient, box, ncell, offsets, start, order, r2, msum, count):
    n = pos.shape[0]
    noff = offsets.shape[0]
    half = 0.5 * box
    for i in numba.prange(n):
        cz = min(int(pos[i, 0] / box[0] * ncell[0]), ncell[0] - 1)
        cy = min(int(pos[i, 1] / box[1] * ncell[1]), ncell[1] - 1)
        cx = min(int(pos[i, 2] / box[2] * ncell[2]), ncell[2] - 1)
        m0 = 0.0
        m1 = 0.0
        m2 = 0.0
        cnt = 0
        for o in range(noff):
            kz = (cz + offsets[o, 0] + ncell[0]) % ncell[0]
            ky = (cy + offsets[o, 1] + ncell[1]) % ncell[1]
            kx = (cx + offsets[o, 2] + ncell[2]) % ncell[2]
            c = (kz * ncell[1] + ky) * ncell[2] + kx
            for s in range(start[c], start[c + 1]):
                j = order[s]
                d2 = 0.0
                for a in range(3):
                    d = pos[j, a] - pos[i, a]
                    if d > half[a]:
                        d -= box[a]
                    elif d < -half[a]:
                        d += box[a]
                    d2 += d * d
                if d2 <= r2:
                    m0 += orient[j, 0]
                    m1 += orient[j, 1]
                    m2 += orient[j, 2]
                    cnt += 1
        msum[i, 0] = m0
        msum[i, 1] = m1
        msum[i, 2] = m2
        count[i] = cnt


# threads pay off only for large systems: below PARALLEL_MIN particles the serial kernel is faster
# (numba's thread start-up costs more than the work, and the cores may be shared)
PARALLEL_MIN = 20_000
_sums_parallel = numba.njit(parallel=True, cache=True)(_sums_py)
_sums_serial = numba.njit(cache=True)(_sums_py)


class NeighbourSums:
    """Sum of orientations and number of particles within ``radius`` of each particle (self included).

    Parameters
    ----------
    box : array of 3 floats
        Periodic box lengths along ``(z, y, x)``.
    radius : float
        Interaction radius (same units as ``box``).
    """

    def __init__(self, box, radius: float):
        self.box = np.asarray(box, dtype=np.float64)
        self.r2 = float(radius) ** 2
        ncell = np.maximum(np.floor(self.box / radius).astype(np.int64), 1)
        ncell[self.box <= 1.0 + 1e-12] = 1  # the flat z axis of 2D data (box length 1, all zeros)
        self.ncell = ncell
        # unique offsets per axis: with fewer than 3 cells the periodic neighbours coincide
        per_axis = [np.array([-1, 0, 1]) if k >= 3 else np.arange(k) for k in ncell]
        grid = np.meshgrid(*per_axis, indexing="ij")
        self.offsets = np.stack([g.ravel() for g in grid], axis=1).astype(np.int64)

    def __call__(self, pos3, orient3):
        """Return ``(msum (N, 3), count (N,))`` for wrapped positions ``pos3`` (N, 3) in ``[0, box)``."""
        start, order = _build_cells(pos3, self.box, self.ncell)
        n = pos3.shape[0]
        msum = np.empty((n, 3))
        count = np.empty(n, np.int64)
        kernel = _sums_parallel if n >= PARALLEL_MIN else _sums_serial
        kernel(pos3, orient3, self.box, self.ncell, self.offsets, start, order, self.r2, msum, count)
        return msum, count
