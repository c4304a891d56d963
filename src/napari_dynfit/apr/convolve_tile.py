"""Fused tile kernel for APR-native convolution on a CUDA GPU (numba-cuda), the scheme of arXiv:2112.03592.

Scheme (Jonsson et al., "Parallel discrete convolutions on adaptive particle representations of images"):

* **Tree means on the device** (:func:`tree_means`): one launch per tree level, finest first; a thread per
  tree node finds its row by binary search in the tree row offsets and averages its 2x2(x2) children
  (particles and tree nodes one level finer, found by binary search in their rows). No parent arrays.
* **Convolution** (:func:`convolve_bank`): per level ``L``, the level-``L`` grid is cut into tiles of
  ``TZ x TY x TX`` cells; one thread block per tile (and per frame) runs four phases in shared memory:

  0. the particle index range of each tile row (binary search of the row), and its x extent;
  1. for every row of tile + halo, the x range that some tile particle's stencil window reaches;
  2. every needed tile + halo cell is assembled from the particles: the level-``L`` particle there, else the
     tree node (mean of the finer particles), else the coarser particle covering the cell (mirror or zero
     boundary on the level grid) -- exactly what :mod:`.convolve` (CPU) and LibAPR read;
  3. each thread takes tile particles and applies every stencil of the bank (restricted per level, in
     shared memory) to the tile, writing ``out[frame, stencil, particle]``.

  Empty tiles stop after phase 0, so work grows with the particles plus one row search per tile row.

Memory on the device: the structure as stored in :class:`~.grid.AprGrid` (row offsets int64, particle and
tree x uint16, level tables), the values ``(frames, n_particles)`` and tree means ``(frames, n_tree)``
float32, and the output ``(frames, stencils, n_particles)`` float32. Nothing has the size of the pixel image
(:func:`device_bytes` gives the exact accounting; the tile list is implicit in the launch grid).

Language (measured on this project's 2-core CI machine, no GPU): the kernel has to run on the CPU in CI
against the pyapr oracle. Same work (16 blocks x 64 threads, a 64-tap dot over a shared tile, 65,536
multiply-adds): numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``, numba 0.68) 1.5 s; Triton 3.5's
interpreter (``TRITON_INTERPRET=1``) 3.4 s, and ~1.5 ms per block-level operation whatever its width (25 s for
the same kernel at 512 lanes), against ~23 us per thread-level operation in the simulator. The tile kernel
is dominated by per-particle stencil loops and per-cell binary searches over small, sparse tiles, which is
where the simulator is cheaper; and the paper's scheme needs an addressable on-chip tile (shared memory,
indexed gathers), which numba-cuda has and Triton does not (its tiles are register blocks without indexed
gathers: the halo would go through a global scratch buffer). numba is already a dependency, numba-cuda
(the GPU target, ``[gpu]`` extra) is on the GPU machines, and Triton would add a 170 MB wheel. So: numba-cuda.

GPU throughput has not been measured (no device was lent to the session that wrote this); run
``benchmarks/gpu_apr_conv.sh`` on one.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import InputError
from .grid import AprGrid

__all__ = ["use_device", "is_simulator", "DeviceAprGrid", "device_grid", "tree_means", "convolve_bank",
           "convolve_levels", "PreparedBank", "device_bytes", "to_device", "to_host", "DEFAULT_TILE"]

#: Tile shape (z, y, x) in cells of a level grid and threads per block on a GPU.
DEFAULT_TILE = ((8, 8, 32), 256)
#: Tile shape and threads under the CPU simulator (tests): small, so blocks are cheap to simulate.
SIM_TILE = ((4, 16, 32), 2)
_MAX_STENCILS = 16

_EXTRA = "pip install 'napari-dynfit[gpu]'"


cuda = None  # numba.cuda, imported on first use; a module global so that the simulator can swap it in kernels


def _cuda():
    global cuda
    if cuda is None:
        try:
            from numba import cuda as module
        except ImportError as exc:  # pragma: no cover - numba is a dependency; numba-cuda is the [gpu] extra
            raise InputError(f"the GPU back end needs numba-cuda: {_EXTRA} ({exc})") from exc
        cuda = module
    return cuda


def is_simulator() -> bool:
    """True when numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1``): kernels run on the CPU."""
    import numba

    return bool(getattr(numba.config, "ENABLE_CUDASIM", 0)) or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _available() -> bool:
    if not is_simulator():  # without the NVIDIA driver, do not import numba.cuda (it would pin the non-simulated target)
        import ctypes

        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            return False
    try:
        return bool(_cuda().is_available())
    except Exception:  # noqa: BLE001 - a broken driver is "no GPU"
        return False


def use_device(device: str) -> bool:
    """Whether ``device`` (``"cpu" | "cuda" | "auto"``) runs on the GPU back end of this module.

    ``"cuda"`` without a usable GPU raises :class:`InputError` (one line); under numba's simulator
    (``NUMBA_ENABLE_CUDASIM=1``) ``"cuda"`` runs the same kernels on the CPU, ``"auto"`` stays on the CPU.
    """
    if device not in ("cpu", "cuda", "auto"):
        raise InputError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "cpu":
        return False
    ok = _available()
    if device == "cuda" and not ok:
        raise InputError("device 'cuda' needs an NVIDIA GPU with its driver and numba-cuda "
                         f"({_EXTRA}); none is usable here: use --device cpu")
    return ok and (device == "cuda" or not is_simulator())


# ----------------------------------------------------------------------------------- device kernels
_KERNELS: dict = {}


def _helpers():
    if "helpers" in _KERNELS:
        return _KERNELS["helpers"]
    import numba

    _cuda()
    i64 = numba.int64

    from .convolve import _lower_bound

    lower_bound = cuda.jit(device=True)(_lower_bound.py_func)  # the CPU kernel's search, compiled for the GPU

    # no builtin min/max in device code: numba 0.68's CUDA target fails to compile them (star-args overload)
    @cuda.jit(device=True)
    def smaller(a, b):
        return a if a < b else b

    @cuda.jit(device=True)
    def larger(a, b):
        return a if a > b else b

    @cuda.jit(device=True)
    def mirror(i, n, reflect):
        """:func:`.convolve._mirror` (mirror without repeating the edge; -1 outside with zero padding)."""
        if i >= 0 and i < n:
            return i
        if not reflect:
            return -1
        j = -i if i < 0 else i
        if j >= n:
            j = 2 * (n - 1) - j
        return 0 if j < 0 else (j if j < n else n - 1)

    @cuda.jit(device=True)
    def upper_bound(a, lo, hi, v):
        while lo < hi:
            mid = (lo + hi) >> 1
            if a[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        return lo

    @cuda.jit(device=True)
    def lookup(level, lmin, lmax, zs, ys, xs, shapes, offsets, px, row_start, t_offsets, tx, t_row_start,
               vals, tvals, f):
        """Level-``level`` view at cell (zs, ys, xs): particle, else tree mean, else covering coarser particle."""
        ny = shapes[level, 1]
        r = row_start[level] + zs * ny + ys
        e = offsets[r + 1]
        i = lower_bound(px, offsets[r], e, xs)
        if i < e and px[i] == xs:
            return vals[f, i]
        if level < lmax:
            r = t_row_start[level] + zs * ny + ys
            e = t_offsets[r + 1]
            j = lower_bound(tx, t_offsets[r], e, xs)
            if j < e and tx[j] == xs:
                return tvals[f, j]
        for d in range(1, level - lmin + 1):
            lv = level - d
            r = row_start[lv] + (zs >> d) * shapes[lv, 1] + (ys >> d)
            e = offsets[r + 1]
            xx = xs >> d
            i = lower_bound(px, offsets[r], e, xx)
            if i < e and px[i] == xx:
                return vals[f, i]
        return vals[f, 0] * 0.0

    @cuda.jit(device=True)
    def scatter(cells, o, xs, start, stop, a, b, vals, f):
        """``cells[o + xs[i]] = vals[f, i]`` for the entries of ``xs[start:stop]`` in ``[a, b]``; their count."""
        i = lower_bound(xs, start, stop, a)
        n = 0
        while i < stop and xs[i] <= b:
            cells[o + i64(xs[i])] = vals[f, i]
            n += 1
            i += 1
        return n

    @cuda.jit(device=True)
    def fill_row(cells, o, a, b, level, lmin, lmax, zs, ys, shapes, offsets, px, row_start, t_offsets, tx,
                 t_row_start, vals, tvals, f):
        """``cells[o + x] = `` level view of row (zs, ys) for ``a <= x <= b`` (particles, tree, coarser)."""
        if b < a:
            return
        need = b - a + 1
        ny = shapes[level, 1]
        r = row_start[level] + zs * ny + ys
        done = scatter(cells, o, px, offsets[r], offsets[r + 1], a, b, vals, f)
        if level < lmax and done < need:
            r = t_row_start[level] + zs * ny + ys
            done += scatter(cells, o, tx, t_offsets[r], t_offsets[r + 1], a, b, tvals, f)
        d = 1
        while done < need and d <= level - lmin:
            lv = level - d
            r = row_start[lv] + (zs >> d) * shapes[lv, 1] + (ys >> d)
            e = offsets[r + 1]
            i = lower_bound(px, offsets[r], e, a >> d)
            while i < e:
                c0 = i64(px[i]) << d
                if c0 > b:
                    break
                c1 = smaller(c0 + (1 << d) - 1, b)
                v = vals[f, i]
                for x in range(larger(c0, a), c1 + 1):
                    cells[o + x] = v
                done += c1 - larger(c0, a) + 1
                i += 1
            d += 1

    _KERNELS["helpers"] = (lower_bound, upper_bound, mirror, lookup, fill_row, smaller, larger)
    return _KERNELS["helpers"]


def _tree_kernel():
    if "tree" in _KERNELS:
        return _KERNELS["tree"]
    import numba

    _cuda()
    lower_bound, upper_bound = _helpers()[:2]

    @cuda.jit(device=True)
    def pair_sum(xs, start, stop, x, vals, f):
        """Sum and count of ``vals[f, i]`` over the entries of ``xs[start:stop]`` equal to ``x`` or ``x + 1``."""
        i = lower_bound(xs, start, stop, x)
        acc = 0.0
        n = 0
        while i < stop and xs[i] < x + 2:
            acc += vals[f, i]
            n += 1
            i += 1
        return acc, n

    @cuda.jit
    def tree_level(level, lmin, lmax, shapes, offsets, px, row_start, t_offsets, tx, t_row_start, vals, tvals,
                   t0, t1):
        """Tree nodes ``t0 <= t < t1`` of ``level``: mean of their children one level finer (frame = blockIdx.y)."""
        t = t0 + cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        f = cuda.blockIdx.y
        if t >= t1:
            return
        rs = t_row_start[level]
        r = upper_bound(t_offsets, rs, t_row_start[level + 1] + 1, t) - 1 - rs
        ny = shapes[level, 1]
        z = r // ny
        y = r - z * ny
        x = numba.int64(tx[t])
        cl = level + 1
        cnz = shapes[cl, 0]
        cny = shapes[cl, 1]
        acc = 0.0
        n = 0
        for dz in range(2):
            cz = 2 * z + dz
            if cz >= cnz:
                continue
            for dy in range(2):
                cy = 2 * y + dy
                if cy >= cny:
                    continue
                if cl >= lmin:
                    rr = row_start[cl] + cz * cny + cy
                    sm, k = pair_sum(px, offsets[rr], offsets[rr + 1], 2 * x, vals, f)
                    acc += sm
                    n += k
                if cl < lmax:
                    rr = t_row_start[cl] + cz * cny + cy
                    sm, k = pair_sum(tx, t_offsets[rr], t_offsets[rr + 1], 2 * x, tvals, f)
                    acc += sm
                    n += k
        tvals[f, t] = acc / (n if n > 0 else 1)

    _KERNELS["tree"] = tree_level
    return tree_level


def _conv_kernel(tile, threads, halo, n_stencils):
    """The fused tile kernel for tile ``(TZ, TY, TX)``, ``threads`` per block, stencil half sizes ``halo``."""
    key = ("conv", tile, threads, halo, n_stencils)
    if key in _KERNELS:
        return _KERNELS[key]
    import numba

    _cuda()
    lower_bound, _, mirror, lookup, fill_row, smaller, larger = _helpers()
    TZ, TY, TX = tile
    HZ, HY, HX = halo
    KZ, KY, KX = 2 * HZ + 1, 2 * HY + 1, 2 * HX + 1
    WY, WX = TY + 2 * HY, TX + 2 * HX
    NROW, NHROW = TZ * TY, (TZ + 2 * HZ) * WY
    NCELL, NK, NS, NT = NHROW * WX, KZ * KY * KX, n_stencils, threads
    NSK = NS * NK
    BIG = 1 << 30
    f32, i64, i32 = numba.float32, numba.int64, numba.int32

    @cuda.jit
    def conv_level(level, lmin, lmax, shapes, offsets, px, row_start, t_offsets, tx, t_row_start, vals, tvals,
                   stencils, reflect, ntx, nty, out):
        cells = cuda.shared.array(NCELL, f32)
        sten = cuda.shared.array(NSK, f32)
        p_start = cuda.shared.array(NROW, i64)
        p_stop = cuda.shared.array(NROW, i64)
        row_lo = cuda.shared.array(NROW, i32)
        row_hi = cuda.shared.array(NROW, i32)
        need_lo = cuda.shared.array(NHROW, i32)
        need_hi = cuda.shared.array(NHROW, i32)
        count = cuda.shared.array(1, i64)
        tid = cuda.threadIdx.x
        f = cuda.blockIdx.y
        b = cuda.blockIdx.x
        nz = shapes[level, 0]
        ny = shapes[level, 1]
        nx = shapes[level, 2]
        bx = b % ntx
        rest = b // ntx
        z0 = (rest // nty) * TZ
        y0 = (rest % nty) * TY
        x0 = bx * TX
        if tid == 0:
            count[0] = 0
        cuda.syncthreads()
        # phase 0: particles of each tile row and their x extent (tile-local, widened by the halo)
        for r in range(tid, NROW, NT):
            z = z0 + r // TY
            y = y0 + r % TY
            s = 0
            e = 0
            lo = BIG
            hi = -BIG
            if z < nz and y < ny:
                rr = row_start[level] + z * ny + y
                s = lower_bound(px, offsets[rr], offsets[rr + 1], x0)
                e = lower_bound(px, s, offsets[rr + 1], x0 + TX)
                if e > s:
                    lo = i64(px[s]) - x0 - HX
                    hi = i64(px[e - 1]) - x0 + HX
            if e > s:
                cuda.atomic.add(count, 0, e - s)
            p_start[r] = s
            p_stop[r] = e
            row_lo[r] = lo
            row_hi[r] = hi
        for i in range(tid, NSK, NT):
            sten[i] = stencils[i // NK, i % NK]
        cuda.syncthreads()
        if count[0] == 0:  # no particle of this level in the tile (uniform over the block)
            return
        # phase 1: x range needed in each row of tile + halo
        for q in range(tid, NHROW, NT):
            dz = q // WY - HZ
            dy = q % WY - HY
            lo = BIG
            hi = -BIG
            for a in range(larger(dz - HZ, 0), smaller(dz + HZ, TZ - 1) + 1):
                for c in range(larger(dy - HY, 0), smaller(dy + HY, TY - 1) + 1):
                    lo = smaller(lo, row_lo[a * TY + c])
                    hi = larger(hi, row_hi[a * TY + c])
            need_lo[q] = lo
            need_hi[q] = hi
        cuda.syncthreads()
        # phase 2: assemble the needed cells of tile + halo, one row per thread: the particles of the level,
        # the tree means, then the coarser particles (a partition of the row); x outside the grid by mirror
        for q in range(tid, NHROW, NT):
            lo = need_lo[q]
            hi = need_hi[q]
            if lo > hi:
                continue
            o = q * WX + HX - x0  # cells[o + x] holds global x
            zs = mirror(z0 + q // WY - HZ, nz, reflect)
            ys = mirror(y0 + q % WY - HY, ny, reflect)
            a = larger(x0 + lo, 0)
            b = smaller(x0 + hi, nx - 1)
            if zs < 0 or ys < 0:
                for x in range(x0 + lo, x0 + hi + 1):
                    cells[o + x] = 0.0
                continue
            fill_row(cells, o, a, b, level, lmin, lmax, zs, ys, shapes, offsets, px, row_start, t_offsets, tx,
                     t_row_start, vals, tvals, f)
            for x in range(x0 + lo, x0 + hi + 1):
                if x >= 0 and x < nx:
                    continue
                xs = mirror(x, nx, reflect)
                if xs < 0:
                    cells[o + x] = 0.0
                elif xs >= a and xs <= b:
                    cells[o + x] = cells[o + xs]
                else:
                    cells[o + x] = lookup(level, lmin, lmax, zs, ys, xs, shapes, offsets, px, row_start,
                                          t_offsets, tx, t_row_start, vals, tvals, f)
        cuda.syncthreads()
        # phase 3: every stencil of the bank at every particle of the tile
        for item in range(tid, NROW * TX, NT):
            r = item // TX
            p = p_start[r] + item % TX
            if p < p_stop[r]:
                base = ((r // TY) * WY + r % TY) * WX + (i64(px[p]) - x0)
                for s in range(NS):
                    acc = f32(0.0)
                    k = s * NK
                    for a in range(KZ):
                        for bb in range(KY):
                            o = base + (a * WY + bb) * WX
                            for cc in range(KX):
                                acc += sten[k] * cells[o + cc]
                                k += 1
                    out[f, s, p] = acc

    _KERNELS[key] = conv_level
    return conv_level


# ----------------------------------------------------------------------------------- device data
class DeviceAprGrid:
    """The structure arrays of an :class:`AprGrid` on the GPU (as stored: int64 row offsets, uint16 x).

    Parameters
    ----------
    grid : AprGrid
    tile : tuple of int, optional
        Tile ``(TZ, TY, TX)`` in level-grid cells (default :data:`DEFAULT_TILE`, :data:`SIM_TILE` under the
        simulator); 2D grids use ``TZ = 1``.
    threads : int, optional
        Threads per block.
    """

    def __init__(self, grid: AprGrid, tile=None, threads=None):
        cuda = _cuda()
        d_tile, d_threads = SIM_TILE if is_simulator() else DEFAULT_TILE
        tile = tuple(int(v) for v in (tile or d_tile))
        if grid.ndim == 2:
            tile = (1, tile[1], tile[2])
        self.grid, self.tile, self.threads = grid, tile, int(threads or d_threads)
        self.shapes = cuda.to_device(np.ascontiguousarray(grid.level_shapes, dtype=np.int64))
        self.offsets = cuda.to_device(np.ascontiguousarray(grid.offsets, dtype=np.int64))
        self.px = cuda.to_device(np.ascontiguousarray(grid.x, dtype=np.uint16))
        self.row_start = cuda.to_device(np.ascontiguousarray(grid.level_row_start, dtype=np.int64))
        self.t_offsets = cuda.to_device(np.ascontiguousarray(grid.tree_offsets, dtype=np.int64))
        self.tx = cuda.to_device(np.ascontiguousarray(grid.tree_x, dtype=np.uint16))
        self.t_row_start = cuda.to_device(np.ascontiguousarray(grid.tree_level_row_start, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the structure on the device."""
        return int(sum(a.nbytes for a in (self.shapes, self.offsets, self.px, self.row_start, self.t_offsets,
                                          self.tx, self.t_row_start)))

    def args(self):
        g = self.grid
        return (g.level_min, g.level_max, self.shapes, self.offsets, self.px, self.row_start, self.t_offsets,
                self.tx, self.t_row_start)


def device_grid(grid: AprGrid, tile=None, threads=None) -> DeviceAprGrid:
    """The :class:`DeviceAprGrid` of ``grid``, built once per grid and tile and kept with the grid."""
    per = grid.__dict__.setdefault("_tile_grids", {})
    key = (is_simulator(), tile, threads)
    if key not in per:
        per[key] = DeviceAprGrid(grid, tile, threads)
    return per[key]


def device_bytes(grid: AprGrid, frames: int = 1, stencils: int = 1) -> dict:
    """Device memory of one :func:`convolve_bank` call, in bytes, and the ratio to the particle data.

    ``particle_data`` is values + tree means + structure (what an APR is); the total adds the output.
    """
    structure = (grid.offsets.size + grid.tree_offsets.size) * 8 + (grid.n_particles + grid.n_tree) * 2 \
        + (grid.level_shapes.size + grid.level_row_start.size + grid.tree_level_row_start.size) * 8
    values = 4 * frames * grid.n_particles
    tree = 4 * frames * grid.n_tree
    out = 4 * frames * stencils * grid.n_particles
    data = structure + values + tree
    return {"structure": int(structure), "values": int(values), "tree": int(tree), "output": int(out),
            "particle_data": int(data), "total": int(data + out), "ratio_to_particle_data": (data + out) / data}


def _is_device(a) -> bool:
    return hasattr(a, "copy_to_host") or hasattr(a, "__cuda_array_interface__")


def to_device(a):
    """Copy a host array to the device (numba device array); device arrays (numba, CuPy, torch) pass through."""
    cuda = _cuda()
    if hasattr(a, "copy_to_host"):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    return cuda.to_device(np.ascontiguousarray(a))


def to_host(a) -> np.ndarray:
    """Copy a device array to the host."""
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def _frames(dvals, n: int):
    if not _is_device(dvals):
        v = np.asarray(dvals, dtype=np.float32)
        dvals = to_device(v[None] if v.ndim == 1 else v)
    else:
        dvals = to_device(dvals)
    if dvals.ndim == 1:
        dvals = dvals.reshape(1, dvals.shape[0])
    if dvals.ndim != 2 or dvals.shape[1] != n:
        raise InputError(f"values must have shape (n_particles,) or (frames, n_particles) with n_particles={n}, "
                         f"got {tuple(dvals.shape)}")
    return dvals


def tree_means(dgrid: DeviceAprGrid, dvals, out=None):
    """Tree means of particle values on the device.

    Parameters
    ----------
    dgrid : DeviceAprGrid
    dvals : device or host array, shape (frames, n_particles) or (n_particles,), float32
    out : device array of float32, shape (frames, n_tree), optional

    Returns
    -------
    device array of float32, shape (frames, n_tree)
        Equals :meth:`AprGrid.tree_mean` frame by frame (float32 sums: ~1e-7 relative).
    """
    cuda = _cuda()
    grid = dgrid.grid
    dvals = _frames(dvals, grid.n_particles)
    frames = dvals.shape[0]
    tvals = cuda.device_array((frames, max(grid.n_tree, 1)), dtype=np.float32) if out is None else out
    kern = _tree_kernel()
    for level in range(grid.level_max - 1, -1, -1):
        t0, t1 = grid.tree_level_range(level)
        if t1 > t0:
            n_thr = min(dgrid.threads, 256)
            kern[((t1 - t0 + n_thr - 1) // n_thr, frames), n_thr](level, *dgrid.args(), dvals, tvals, t0, t1)
    return tvals


def _bank(level_banks, level: int):
    """``(NS, KZ*KY*KX)`` float32 stencils of ``level``, zero-padded (centred) to the largest, and the half sizes."""
    bank = [np.asarray(st, dtype=np.float32) for st in level_banks[level]]
    kz, ky, kx = (max(s.shape[a] for s in bank) for a in range(3))
    padded = np.zeros((len(bank), kz, ky, kx), np.float32)
    for i, s in enumerate(bank):
        oz, oy, ox = ((k - n) // 2 for k, n in zip((kz, ky, kx), s.shape))
        padded[i, oz:oz + s.shape[0], oy:oy + s.shape[1], ox:ox + s.shape[2]] = s
    return padded.reshape(len(bank), -1), (kz // 2, ky // 2, kx // 2)


_SHARED_LIMIT = 46 * 1024  # bytes of static shared memory per block (48 KiB, less a margin)


def shared_bytes(tile, halo, n_stencils: int) -> int:
    """Static shared memory of one block of the tile kernel, in bytes."""
    (tz, ty, tx), (hz, hy, hx) = tile, halo
    rows, halo_rows = tz * ty, (tz + 2 * hz) * (ty + 2 * hy)
    cells = halo_rows * (tx + 2 * hx)
    return 4 * (cells + n_stencils * (2 * hz + 1) * (2 * hy + 1) * (2 * hx + 1)) + 24 * rows + 8 * halo_rows + 8


def _fit_tile(tile, halo, n_stencils: int):
    """``tile`` with its z (then y) extent halved until the block's shared memory fits."""
    tz, ty, tx = tile
    while shared_bytes((tz, ty, tx), halo, n_stencils) > _SHARED_LIMIT and max(tz, ty) > 1:
        if tz >= ty:
            tz = max(1, tz // 2)
        else:
            ty = max(1, ty // 2)
    if shared_bytes((tz, ty, tx), halo, n_stencils) > _SHARED_LIMIT:
        raise InputError(f"a bank of {n_stencils} stencils of half sizes {halo} does not fit a block's shared "
                         "memory; split the bank")
    return tz, ty, tx


class PreparedBank:
    """Per-level stencil banks on the device (zero-padded to the level's largest stencil), built once.

    Parameters
    ----------
    grid : AprGrid
    level_banks : list
        Entry ``L`` (``level_min <= L <= level_max``) is a list of ``NS`` ``(kz, ky, kx)`` correlation stencils
        (from :func:`.convolve.level_stencils`, one per filter of the bank); sizes odd, at most 7.
    """

    def __init__(self, grid: AprGrid, level_banks):
        self.n_stencils = len(level_banks[grid.level_max])
        if not 1 <= self.n_stencils <= _MAX_STENCILS:
            raise InputError(f"a stencil bank holds 1..{_MAX_STENCILS} stencils, got {self.n_stencils}; split the bank")
        self.levels = {}
        for level in range(grid.level_min, grid.level_max + 1):
            flat, halo = _bank(level_banks, level)
            self.levels[level] = (_cuda().to_device(flat), halo)


def convolve_bank(dgrid: DeviceAprGrid, dvals, level_banks, *, reflect: bool = True, dtree=None, out=None,
                  tree_out=None):
    """Apply a bank of per-level correlation stencils to particle values on the device, in one pass per level.

    Parameters
    ----------
    dgrid : DeviceAprGrid
    dvals : device or host array, shape (frames, n_particles) or (n_particles,), float32
    level_banks : list or PreparedBank
        Per level, the list of ``NS`` correlation stencils (see :class:`PreparedBank`), or the prepared bank.
    reflect : bool
        Mirror boundary (True) or zeros.
    dtree : device array, shape (frames, n_tree), optional
        Tree means (default: :func:`tree_means` on the device).
    out : device array, shape (frames, NS, n_particles), optional
    tree_out : device array, shape (frames, n_tree), optional
        Where to compute the tree means when ``dtree`` is not given.

    Returns
    -------
    device array of float32, shape (frames, NS, n_particles)
    """
    cuda = _cuda()
    grid = dgrid.grid
    dvals = _frames(dvals, grid.n_particles)
    frames = dvals.shape[0]
    bank = level_banks if isinstance(level_banks, PreparedBank) else PreparedBank(grid, level_banks)
    if dtree is None:
        dtree = tree_means(dgrid, dvals, tree_out)
    if out is None:
        out = cuda.device_array((frames, bank.n_stencils, grid.n_particles), dtype=np.float32)
    for level in range(grid.level_max, grid.level_min - 1, -1):
        p0, p1 = grid.level_range(level)
        if p1 == p0:
            continue
        flat, halo = bank.levels[level]
        tz, ty, tx = _fit_tile(dgrid.tile, halo, bank.n_stencils)
        nz, ny, nx = (int(v) for v in grid.level_shapes[level])
        ntx, nty, ntz = math.ceil(nx / tx), math.ceil(ny / ty), math.ceil(nz / tz)
        kern = _conv_kernel((tz, ty, tx), dgrid.threads, halo, bank.n_stencils)
        kern[(ntx * nty * ntz, frames), dgrid.threads](level, *dgrid.args(), dvals, dtree, flat, bool(reflect),
                                                        ntx, nty, out)
    return out


def convolve_levels(grid: AprGrid, values, level_stencil_list, *, reflect: bool = True,
                    tree_values=None) -> np.ndarray:
    """One per-level stencil set (from :func:`.convolve.level_stencils`) on the GPU; host in, host out.

    Returns
    -------
    ndarray of float32, shape (n_particles,)
    """
    dgrid = device_grid(grid)
    banks = [None if s is None else [s] for s in level_stencil_list]
    dtree = None
    if tree_values is not None:
        dtree = to_device(np.asarray(tree_values, np.float32)[None])
    return to_host(convolve_bank(dgrid, np.asarray(values, np.float32), banks, reflect=reflect, dtree=dtree))[0, 0]
