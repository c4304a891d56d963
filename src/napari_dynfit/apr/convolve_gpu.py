"""GPU back end of the APR-native convolution, written in PyTorch.

Why PyTorch (not Triton or numba-cuda): the same code runs on a CUDA GPU and on the CPU, so CI checks
the GPU path against pyapr on every run without a GPU or a simulator (Triton's interpreter and
numba's CUDA simulator run kernels thread by thread and are too slow for test-size APRs, and neither
is installed with the package); torch is already a dependency for the learning side; and every step
below is a bulk tensor operation (scatter, nearest upsampling, gather, matrix-vector product) that
maps onto well-tuned CUDA kernels.

Algorithm (the level-by-level scheme of arXiv:2112.03592, with dense per-level work arrays):

1. tree values (mean of the finer particles) are reduced level by level with ``index_add_``;
2. from the coarsest level up, the level-L view ``V_L`` (shape of the level-L grid) is the nearest
   upsampling of ``V_{L-1}`` overwritten by the particles and tree nodes of level ``L``; every cell
   then holds exactly what the CPU kernel reads there (particle, tree mean, or covering coarser particle);
3. ``V_L`` is padded with the boundary rule (mirror or zeros) by index arrays, and the stencil is
   applied only at the particles of level ``L``: their ``kz*ky*kx`` neighbour values are gathered in
   chunks and multiplied with the flattened stencil.

Memory: ``V_level_max`` has the size of the pixel image (4 bytes per pixel; 4 GiB at 1024^3), which
fits an H100/H200. Work per level is one pass over the level grid plus ``k^3`` gathers per particle.
"""

from __future__ import annotations

import numpy as np

from .grid import AprGrid

__all__ = ["DeviceGrid", "device_grid", "convolve_torch", "convolve_tensors", "tree_mean_torch", "reconstruct_constant"]

_CHUNK = 1 << 24  # gathered values per chunk (64 MiB of float32)


def _mirror_index(n: int, h: int, reflect: bool, device):
    import torch

    i = torch.arange(-h, n + h, device=device)
    if not reflect:
        valid = (i >= 0) & (i < n)
        return i.clamp(0, n - 1), valid
    i = torch.where(i < 0, -i, i)
    i = torch.where(i >= n, 2 * (n - 1) - i, i)
    return i.clamp(0, n - 1), None


class DeviceGrid:
    """The arrays of an :class:`AprGrid` that the torch kernel needs, moved to ``device`` once.

    Build it once and pass it to :func:`convolve_torch` to keep host-to-device copies out of repeated calls.
    """

    def __init__(self, grid: AprGrid, device="cuda"):
        import torch

        self.grid = grid
        self.device = torch.device(device)
        self.coords = torch.as_tensor(grid.coords[:, 1:], device=self.device)
        self.tree_coords = torch.as_tensor(grid.tree_coords[:, 1:], device=self.device)
        self.parent = torch.as_tensor(grid.particle_parent, device=self.device)
        self.tree_parent = torch.as_tensor(grid.tree_parent, device=self.device)
        self.count = torch.as_tensor(grid.tree_child_count, device=self.device, dtype=torch.float32).clamp_min(1)


def device_grid(grid: AprGrid, device) -> DeviceGrid:
    """The :class:`DeviceGrid` of ``grid`` on ``device``, built once per grid and device (kept with the grid)."""
    import torch

    per_grid = grid.__dict__.setdefault("_device_grids", {})  # freed with the grid
    key = str(torch.device(device))
    if key not in per_grid:
        per_grid[key] = DeviceGrid(grid, device)
    return per_grid[key]


def tree_mean_torch(dgrid: DeviceGrid, vals):
    """Tree node values (mean of children) as a float32 tensor; equals :meth:`AprGrid.tree_mean`."""
    import torch

    grid = dgrid.grid
    sums = torch.zeros(grid.n_tree, device=dgrid.device, dtype=torch.float32)
    sums.index_add_(0, dgrid.parent, vals)
    tree = torch.zeros_like(sums)
    for level in range(grid.level_max - 1, -1, -1):
        t0, t1 = grid.tree_level_range(level)
        tree[t0:t1] = sums[t0:t1] / dgrid.count[t0:t1]
        if level > 0 and t1 > t0:
            sums.index_add_(0, dgrid.tree_parent[t0:t1], tree[t0:t1])
    return tree


def convolve_torch(grid, values, stencils: list, *, reflect: bool = True, device="cuda",
                   tree_values=None) -> np.ndarray:
    """Apply per-level correlation ``stencils`` (from :func:`.convolve.level_stencils`) with torch.

    Parameters
    ----------
    grid : AprGrid or DeviceGrid
        A :class:`DeviceGrid` skips the copies of the structure to the device.
    values : ndarray or torch.Tensor, shape (n_particles,)
    stencils : list of ndarray
        Entry ``L`` is the ``(kz, ky, kx)`` float32 stencil of level ``L``.
    reflect : bool
        Mirror boundary (True) or zeros.
    device : str or torch.device
        ``"cuda"`` on a GPU; ``"cpu"`` runs the same code on the CPU (tests, CI). Ignored for a DeviceGrid.
    tree_values : ndarray, shape (n_tree,), optional
        Precomputed tree means.

    Returns
    -------
    ndarray of float32, shape (n_particles,)
    """
    dgrid = grid if isinstance(grid, DeviceGrid) else device_grid(grid, device)
    return convolve_tensors(dgrid, values, stencils, reflect, tree_values).cpu().numpy()


def convolve_tensors(dgrid: DeviceGrid, values, stencils, reflect=True, tree_values=None):
    """:func:`convolve_torch` on device tensors: returns a float32 tensor on ``dgrid.device``."""
    import torch

    device, grid = dgrid.device, dgrid.grid
    if not torch.is_tensor(values):
        values = np.asarray(values, dtype=np.float32)
    vals = torch.as_tensor(values, device=device).to(torch.float32)
    if tree_values is None:
        tvals = tree_mean_torch(dgrid, vals)
    else:
        tvals = torch.as_tensor(np.asarray(tree_values, dtype=np.float32), device=device)
    out = torch.empty(grid.n_particles, device=device, dtype=torch.float32)
    for level, view in _level_views(dgrid, vals, tvals):
        p0, p1 = grid.level_range(level)
        if p1 > p0:
            out[p0:p1] = _apply_level(view, dgrid.coords[p0:p1], stencils[level], reflect, device)
    return out


def _level_views(dgrid: DeviceGrid, vals, tvals):
    """Yield ``(level, V_level)``: the level grid holding particle, tree mean or covering coarser particle."""
    import torch

    grid = dgrid.grid
    view = None
    for level in range(grid.level_min, grid.level_max + 1):
        nz, ny, nx = (int(v) for v in grid.level_shapes[level])
        if view is None:
            view = torch.zeros((nz, ny, nx), device=dgrid.device, dtype=torch.float32)
        else:
            up = view
            if up.shape[0] < nz:
                up = up.repeat_interleave(2, dim=0)
            view = up.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)[:nz, :ny, :nx].contiguous()
        p0, p1 = grid.level_range(level)
        c = dgrid.coords[p0:p1]
        view[c[:, 0], c[:, 1], c[:, 2]] = vals[p0:p1]
        if level < grid.level_max and tvals is not None:
            t0, t1 = grid.tree_level_range(level)
            tc = dgrid.tree_coords[t0:t1]
            view[tc[:, 0], tc[:, 1], tc[:, 2]] = tvals[t0:t1]
        yield level, view


def reconstruct_constant(grid, values, device="cpu") -> np.ndarray:
    """Piecewise-constant pixel image ``(nz, ny, nx)`` of particle values (each pixel takes its particle's value)."""
    dgrid = grid if isinstance(grid, DeviceGrid) else DeviceGrid(grid, device)
    import torch

    vals = torch.as_tensor(np.asarray(values, dtype=np.float32), device=dgrid.device)
    view = None
    for _, view in _level_views(dgrid, vals, None):
        pass
    return view.cpu().numpy()


def _apply_level(view, c, stencil, reflect: bool, device):
    import torch

    kz, ky, kx = stencil.shape
    hz, hy, hx = kz // 2, ky // 2, kx // 2
    iz, vz = _mirror_index(view.shape[0], hz, reflect, device)
    iy, vy = _mirror_index(view.shape[1], hy, reflect, device)
    ix, vx = _mirror_index(view.shape[2], hx, reflect, device)
    padded = view.index_select(0, iz).index_select(1, iy).index_select(2, ix)
    if not reflect:
        mask = vz[:, None, None] & vy[None, :, None] & vx[None, None, :]
        padded = padded * mask
    pz, py, px = padded.shape
    flat = padded.reshape(-1)
    dz, dy, dx = torch.meshgrid(torch.arange(kz, device=device), torch.arange(ky, device=device),
                                torch.arange(kx, device=device), indexing="ij")
    offs = ((dz * py + dy) * px + dx).reshape(-1)
    weights = torch.as_tensor(np.ascontiguousarray(stencil).reshape(-1), device=device)
    base = (c[:, 0] * py + c[:, 1]) * px + c[:, 2]
    step = max(1, _CHUNK // len(offs))
    res = torch.empty(len(base), device=device, dtype=torch.float32)
    for s in range(0, len(base), step):
        idx = base[s:s + step, None] + offs[None, :]
        res[s:s + step] = flat[idx] @ weights
    return res
