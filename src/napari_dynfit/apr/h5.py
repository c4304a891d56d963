"""``.apr`` files in pyapr's HDF5 layout, written and read with h5py (no pyapr).

Layout (LibAPR ``APRFile``, linear access, one time point ``t``)::

    /ParticleRepr/t                    attributes: x_num, y_num, z_num, level_min, level_max,
                                       total_number_particles, x_num_L/y_num_L/z_num_L, the
                                       conversion parameters, name, githash, ...
    /ParticleRepr/t/particles          (n,)  particle values (uint8, uint16, float32...)
    /ParticleRepr/t/y_vec              (n,)  uint16, x coordinate of each particle on its level
    /ParticleRepr/t/xz_end_vec         (rows + 1,) uint64, cumulative particle count per row
    /ParticleRepr/t/Tree/...           the same three datasets for the tree (interior nodes)

Our ``(z, y, x)`` is LibAPR's ``(z, x, y)``: its ``y_num``/``y_vec`` (fastest) are our x. The
datasets are Blosc/zstd-compressed (HDF5 filter 32001, registered by :mod:`hdf5plugin`), as pyapr
writes them, so files written here open in pyapr and the reverse. The integer attributes are
written as clean uint64; LibAPR writes 32-bit values into 64-bit attributes, so readers mask the
low four bytes (:func:`attr_int`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .grid import AprGrid

ROOT = "ParticleRepr/t"
#: LibAPR's commit that pyapr 1.0.7 bundles (written as ``githash``, as pyapr does).
LIBAPR_GITHASH = "2e95a6264a4ed8e86d2140e0e34a10c01419e657"
_CHUNK = 1 << 18  # elements per HDF5 chunk: lazy readers decompress no more than this per slab

#: Conversion parameters stored as float32 attributes, with LibAPR's defaults.
PARAMETER_DEFAULTS = {"lambda": 3.0, "rel_error": 0.1, "grad_th": 5.0, "sigma_th": 0.0, "sigma_th_max": 0.0,
                      "I_th": 0.0, "dx": 1.0, "dy": 1.0, "dz": 1.0, "psfx": 2.0, "psfy": 2.0, "psfz": 2.0,
                      "noise_sd_estimate": 0.0, "background_intensity_estimate": 0.0}


def attr_int(attrs, name: str) -> int:
    """A LibAPR integer attribute (only the low 32 bits are meaningful)."""
    return int(np.ravel(attrs[name])[0]) & 0xFFFFFFFF


def _dataset(group, name: str, data: np.ndarray) -> None:
    import hdf5plugin

    data = np.ascontiguousarray(data)
    if data.size == 0:
        group.create_dataset(name, data=data, maxshape=(None,), chunks=(1,))
        return
    group.create_dataset(name, data=data, chunks=(min(len(data), _CHUNK),),
                         **hdf5plugin.Blosc(cname="zstd", clevel=2, shuffle=hdf5plugin.Blosc.SHUFFLE))


def _u64(value) -> np.ndarray:
    return np.asarray([value], dtype=np.uint64)


def write_h5(path, grid: AprGrid, parts: np.ndarray, tree_parts: np.ndarray, *, params: dict | None = None,
             root_attrs: dict | None = None) -> None:
    """Write an APR to ``path`` in pyapr's layout (with tree values).

    Parameters
    ----------
    path : str or Path
        Destination (overwritten).
    grid : AprGrid
        Access structure; its ``level_min``/``level_max`` must be LibAPR's for this shape
        (``1`` and ``max(1, ceil(log2(max(shape))))``), which pyapr recomputes on reading.
    parts : ndarray (n_particles,)
        Particle values (stored with their dtype).
    tree_parts : ndarray (n_tree,)
        Tree node values (stored with the particles' dtype, as pyapr does).
    params : dict, optional
        Conversion parameters (keys of :data:`PARAMETER_DEFAULTS`) stored as attributes.
    root_attrs : dict, optional
        String attributes of the file's root group (our ``dynfit`` metadata).
    """
    import h5py

    parts = np.asarray(parts)
    tree_parts = np.asarray(tree_parts)
    if tree_parts.dtype != parts.dtype:
        if parts.dtype.kind in "ui":
            tree_parts = np.rint(tree_parts).astype(parts.dtype)
        else:
            tree_parts = tree_parts.astype(parts.dtype)
    nz, ny, nx = grid.shape
    p = dict(PARAMETER_DEFAULTS)
    p.update(params or {})
    with h5py.File(Path(path), "w") as f:
        for key, val in (root_attrs or {}).items():
            f.attrs[key] = val
        t = f.create_group(ROOT)
        a = t.attrs
        # pyapr [z, x, y] = our [z, y, x]
        a["x_num"], a["y_num"], a["z_num"] = _u64(ny), _u64(nx), _u64(nz)
        a["level_min"], a["level_max"] = _u64(grid.level_min), _u64(grid.level_max)
        a["total_number_particles"] = _u64(grid.n_particles)
        a["time_steps"] = _u64(0)
        for level in range(grid.level_min, grid.level_max):
            lz, ly, lx = (int(v) for v in grid.level_shapes[level])
            a[f"x_num_{level}"] = np.asarray([ly], np.int32)
            a[f"y_num_{level}"] = np.asarray([lx], np.int32)
            a[f"z_num_{level}"] = np.asarray([lz], np.int32)
        for key, val in p.items():
            a[key] = np.asarray([val], np.float32)
        a["compress_type"] = np.asarray([0], np.int32)
        a["quantization_factor"] = np.asarray([0.5], np.float32)
        a["compress_background"] = np.asarray([1.0], np.float32)
        a["lzxy_order"] = np.asarray([1], np.int32)
        a["name"] = np.bytes_(b"no_name")
        a["githash"] = np.bytes_(LIBAPR_GITHASH.encode())
        _dataset(t, "particles", parts)
        _dataset(t, "y_vec", grid.x.astype(np.uint16))
        _dataset(t, "xz_end_vec", grid.offsets.astype(np.uint64))
        tree = t.create_group("Tree")
        ta = tree.attrs
        ta["total_number_particles"] = _u64(grid.n_tree)
        ta["compress_type"] = np.asarray([0], np.int32)
        ta["quantization_factor"] = np.asarray([0.5], np.float32)
        ta["compress_background"] = np.asarray([1.0], np.float32)
        ta["lzxy_order"] = np.asarray([1], np.int32)
        _dataset(tree, "particles", tree_parts)
        _dataset(tree, "y_vec", grid.tree_x.astype(np.uint16))
        _dataset(tree, "xz_end_vec", grid.tree_offsets.astype(np.uint64))


def read_parameters(path) -> dict:
    """The conversion parameters stored in an ``.apr`` file (float attributes; missing ones omitted)."""
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(Path(path), "r") as f:
        a = f[ROOT].attrs
        return {k: float(np.ravel(a[k])[0]) for k in PARAMETER_DEFAULTS if k in a}


def read_h5(path, *, tree: bool = True):
    """Read ``(grid, parts, tree_parts)`` from an ``.apr`` file; ``tree_parts`` is None when absent or not asked."""
    import h5py
    import hdf5plugin  # noqa: F401

    from .grid import read_particle_values

    grid = AprGrid.from_file(path)
    parts = read_particle_values(path)
    tree_parts = None
    if tree:
        with h5py.File(Path(path), "r") as f:
            if "Tree/particles" in f[ROOT] and f[ROOT]["Tree/particles"].shape[0] == grid.n_tree:
                tree_parts = f[ROOT]["Tree/particles"][()]
    return grid, parts, tree_parts
