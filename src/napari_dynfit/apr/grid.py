"""``AprGrid``: the APR access structure as plain numpy arrays.

An APR stores particles on a hierarchy of levels ``level_min .. level_max``. Level ``L`` is a grid of
cells of edge ``2 ** (level_max - L)`` pixels with shape ``ceil(shape / 2 ** (level_max - L))``.
Particles are stored in *rows*: all particles of one level with the same ``(z, y)`` lie in one row,
sorted by ``x``. The global particle order is ``(level, z, y, x)`` lexicographic, the order of
pyapr's ``LinearIterator`` and of the ``.apr`` file (``lzxy_order``).

``AprGrid`` holds exactly what native kernels need and nothing that needs pyapr:

* ``offsets``: ``(n_rows + 1,)`` cumulative particle counts over all rows of all levels (the file's
  ``xz_end_vec``); the particles of row ``r`` are ``offsets[r]:offsets[r + 1]`` and the rows of level
  ``L`` start at ``level_row_start[L]`` (row index ``level_row_start[L] + z * ny_L + y``).
* ``x``: ``(n_particles,)`` the x coordinate of each particle on its level grid (the file's ``y_vec``).
* the same two arrays for the *tree* (interior nodes at levels ``0 .. level_max - 1``: a tree node is a
  cell that is covered by finer particles); its values are the means of the finer particles
  (:meth:`AprGrid.tree_mean`), which is what a kernel reads where a neighbour cell is finer than the
  level it works on.

Axis order is ``(z, y, x)``; 2D images have ``z == 1``. pyapr names the same axes ``[z, x, y]``: its
``y`` (fastest) is our ``x``, its ``x`` our ``y``. The conversion happens here and only here.

Once built, a grid is saved and loaded with :meth:`AprGrid.to_npz` / :meth:`AprGrid.from_npz`
(optionally with particle values), so machines without pyapr can run the kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["AprGrid", "export_grid", "load_grid"]


def _level_shapes(shape: tuple[int, int, int], level_max: int) -> np.ndarray:
    """Grid shape ``(level_max + 1, 3)`` of every level ``0 .. level_max`` (row ``L`` = level ``L``)."""
    out = np.empty((level_max + 1, 3), dtype=np.int64)
    for level in range(level_max + 1):
        cell = 2 ** (level_max - level)
        out[level] = [math.ceil(n / cell) for n in shape]
    return out


def _row_starts(level_shapes: np.ndarray, first_level: int) -> np.ndarray:
    """Index of each level's first row in the row arrays; levels below ``first_level`` have no rows."""
    rows = level_shapes[:, 0] * level_shapes[:, 1]
    rows = np.where(np.arange(len(rows)) >= first_level, rows, 0)
    return np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)


@dataclass(frozen=True, eq=False)
class AprGrid:
    """Access structure of an APR (particles and tree) as numpy arrays.

    Parameters
    ----------
    shape : tuple of int
        Pixel shape ``(nz, ny, nx)`` of the original image (``nz == 1`` in 2D).
    level_min, level_max : int
        Level range of the APR (pyapr's ``level_min()``, ``level_max()``).
    offsets : ndarray of int64, shape (n_rows + 1,)
        Cumulative particle count per row, levels ``level_min .. level_max``, rows ``(z, y)``.
    x : ndarray of uint16, shape (n_particles,)
        x coordinate of each particle on its level grid.
    tree_offsets : ndarray of int64, shape (n_tree_rows + 1,)
        Same as ``offsets`` for the tree, levels ``0 .. level_max - 1``.
    tree_x : ndarray of uint16, shape (n_tree,)
        x coordinate of each tree node on its level grid.
    """

    shape: tuple[int, int, int]
    level_min: int
    level_max: int
    offsets: np.ndarray
    x: np.ndarray
    tree_offsets: np.ndarray
    tree_x: np.ndarray

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise InputError(f"AprGrid shape must be (nz, ny, nx) with positive sizes, got {self.shape}; "
                             "pass (1, ny, nx) for a 2D image")
        if not 0 <= self.level_min <= self.level_max:
            raise InputError(f"AprGrid levels must satisfy 0 <= level_min <= level_max, got "
                             f"{self.level_min}, {self.level_max}; rebuild the grid from the .apr file")
        want = int(self.level_row_start[-1]) + 1
        want_tree = int(self.tree_level_row_start[-1]) + 1
        if len(self.offsets) != want or len(self.tree_offsets) != want_tree:
            raise InputError(
                f"AprGrid row arrays have {len(self.offsets)} / {len(self.tree_offsets)} entries but shape "
                f"{self.shape} with levels {self.level_min}..{self.level_max} needs {want} / {want_tree}; "
                "the file is corrupt or was written by another pyapr layout: re-export it")
        if int(self.offsets[-1]) != len(self.x) or int(self.tree_offsets[-1]) != len(self.tree_x):
            raise InputError(f"AprGrid offsets end at {int(self.offsets[-1])} / {int(self.tree_offsets[-1])} "
                             f"but there are {len(self.x)} / {len(self.tree_x)} coordinates; the file is "
                             "truncated or corrupt: re-export it")

    # ------------------------------------------------------------------ geometry
    @property
    def ndim(self) -> int:
        """2 for images with ``nz == 1``, else 3."""
        return 2 if self.shape[0] == 1 else 3

    @cached_property
    def level_shapes(self) -> np.ndarray:
        """``(level_max + 1, 3)`` int64: grid shape ``(nz, ny, nx)`` of each level (index = level)."""
        return _level_shapes(self.shape, self.level_max)

    @cached_property
    def level_row_start(self) -> np.ndarray:
        """``(level_max + 2,)`` int64: first row of each level in :attr:`offsets` (levels < level_min: none)."""
        return _row_starts(self.level_shapes, self.level_min)

    @cached_property
    def tree_level_row_start(self) -> np.ndarray:
        """``(level_max + 1,)`` int64: first row of each tree level ``0 .. level_max - 1``."""
        return _row_starts(self.level_shapes[: self.level_max], 0)

    @property
    def n_particles(self) -> int:
        return len(self.x)

    @property
    def n_tree(self) -> int:
        return len(self.tree_x)

    @property
    def computational_ratio(self) -> float:
        """Pixels of the original image per particle."""
        return float(np.prod(self.shape)) / max(self.n_particles, 1)

    def level_range(self, level: int) -> tuple[int, int]:
        """Particle index range ``[start, stop)`` of ``level``."""
        rs = self.level_row_start
        return int(self.offsets[rs[level]]), int(self.offsets[rs[level + 1]])

    def tree_level_range(self, level: int) -> tuple[int, int]:
        """Tree node index range ``[start, stop)`` of tree ``level`` (``0 <= level < level_max``)."""
        rs = self.tree_level_row_start
        return int(self.tree_offsets[rs[level]]), int(self.tree_offsets[rs[level + 1]])

    # ------------------------------------------------------------ coordinates
    def _coords(self, offsets, x, row_start, levels) -> np.ndarray:
        counts = np.diff(offsets)
        lev = np.empty(len(x), dtype=np.int64)
        zz = np.empty(len(x), dtype=np.int64)
        yy = np.empty(len(x), dtype=np.int64)
        for level in levels:
            r0, r1 = row_start[level], row_start[level + 1]
            p0, p1 = offsets[r0], offsets[r1]
            ny = self.level_shapes[level, 1]
            rows = np.repeat(np.arange(r1 - r0, dtype=np.int64), counts[r0:r1])
            lev[p0:p1] = level
            zz[p0:p1] = rows // ny
            yy[p0:p1] = rows % ny
        return np.stack([lev, zz, yy, x.astype(np.int64)], axis=1)

    @cached_property
    def coords(self) -> np.ndarray:
        """``(n_particles, 4)`` int64 ``(level, z, y, x)`` of every particle, in storage order."""
        return self._coords(self.offsets, self.x, self.level_row_start,
                            range(self.level_min, self.level_max + 1))

    @cached_property
    def tree_coords(self) -> np.ndarray:
        """``(n_tree, 4)`` int64 ``(level, z, y, x)`` of every tree node, in storage order."""
        return self._coords(self.tree_offsets, self.tree_x, self.tree_level_row_start,
                            range(self.level_max))

    @property
    def levels(self) -> np.ndarray:
        """``(n_particles,)`` level of every particle."""
        return self.coords[:, 0]

    def pixel_centers(self) -> np.ndarray:
        """``(n_particles, 3)`` float64 particle-cell centres ``(z, y, x)`` in pixels of the original image."""
        c = self.coords
        size = 2.0 ** (self.level_max - c[:, 0])
        centers = (c[:, 1:] + 0.5) * size[:, None] - 0.5
        # cells cut by the image border are centred on their in-image part
        upper = np.minimum((c[:, 1:] + 1) * size[:, None], np.asarray(self.shape)) - 1
        lower = c[:, 1:] * size[:, None]
        centers = np.minimum(centers, (lower + upper) / 2)
        if self.ndim == 2:
            centers[:, 0] = 0.0
        return centers

    def cell_sizes(self) -> np.ndarray:
        """``(n_particles,)`` float64 pixel volume (area in 2D) of each particle cell, cut at the border."""
        c = self.coords
        size = 2 ** (self.level_max - c[:, 0])
        lo = c[:, 1:] * size[:, None]
        hi = np.minimum(lo + size[:, None], np.asarray(self.shape))
        return np.prod(hi - lo, axis=1).astype(np.float64)

    def plane(self, values, z: int = 0) -> np.ndarray:
        """Piecewise-constant pixel plane ``(ny, nx)`` at depth ``z`` of per-particle ``values``.

        Only the particles whose cells cut plane ``z`` are read; used for previews and label slices.
        """
        values = np.asarray(values)
        if not 0 <= z < self.shape[0]:
            raise InputError(f"plane z={z} is outside the image (nz={self.shape[0]})")
        out = np.zeros(self.shape[1:], dtype=values.dtype)
        for level in range(self.level_min, self.level_max + 1):
            d = self.level_max - level
            nz, ny, nx = (int(v) for v in self.level_shapes[level])
            rs = self.level_row_start[level] + (z >> d) * ny
            p0, p1 = int(self.offsets[rs]), int(self.offsets[rs + ny])
            if p1 == p0:
                continue
            rows = np.repeat(np.arange(ny), np.diff(self.offsets[rs:rs + ny + 1]))
            small = np.zeros((ny, nx), dtype=values.dtype)
            hit = np.zeros((ny, nx), dtype=bool)
            small[rows, self.x[p0:p1]] = values[p0:p1]
            hit[rows, self.x[p0:p1]] = True
            s = 2 ** d
            up = np.repeat(np.repeat(small, s, 0), s, 1)[: self.shape[1], : self.shape[2]]
            mask = np.repeat(np.repeat(hit, s, 0), s, 1)[: self.shape[1], : self.shape[2]]
            out[mask] = up[mask]
        return out

    # ------------------------------------------------------------------- tree
    def _cell_keys(self, coords: np.ndarray) -> np.ndarray:
        """Monotone int64 key of ``(level, z, y, x)`` rows (storage order of particles and tree)."""
        shapes = self.level_shapes
        cells = np.prod(shapes, axis=1)
        start = np.concatenate([[0], np.cumsum(cells)])
        lv = coords[:, 0]
        s = shapes[lv]
        return start[lv] + (coords[:, 1] * s[:, 1] + coords[:, 2]) * s[:, 2] + coords[:, 3]

    @cached_property
    def _tree_keys(self) -> np.ndarray:
        return self._cell_keys(self.tree_coords)

    def _parent_index(self, coords: np.ndarray) -> np.ndarray:
        parent = coords.copy()
        parent[:, 0] -= 1
        parent[:, 1:] //= 2
        keys = self._cell_keys(parent)
        idx = np.searchsorted(self._tree_keys, keys)
        idx = np.minimum(idx, max(self.n_tree - 1, 0))
        if self.n_tree == 0 or not np.array_equal(self._tree_keys[idx], keys):
            raise InputError("AprGrid tree does not contain the parents of all particles; the tree arrays "
                             "are missing or corrupt: write the .apr file with its tree (pyapr write_tree=True)")
        return idx

    @cached_property
    def particle_parent(self) -> np.ndarray:
        """``(n_particles,)`` int64 index of each particle's parent tree node (level - 1)."""
        return self._parent_index(self.coords)

    @cached_property
    def tree_parent(self) -> np.ndarray:
        """``(n_tree,)`` int64 index of each tree node's parent (-1 for level 0)."""
        out = np.full(self.n_tree, -1, dtype=np.int64)
        t0 = self.tree_level_range(0)[1]
        if self.n_tree > t0:
            out[t0:] = self._parent_index(self.tree_coords[t0:])
        return out

    @cached_property
    def tree_child_count(self) -> np.ndarray:
        """``(n_tree,)`` float64 number of children (particles and tree nodes) of each tree node."""
        count = np.bincount(self.particle_parent, minlength=self.n_tree).astype(np.float64)
        has = self.tree_parent >= 0
        count += np.bincount(self.tree_parent[has], minlength=self.n_tree)
        return count

    def tree_mean(self, values: np.ndarray) -> np.ndarray:
        """Tree node values: the mean of the children, filled from the finest level up.

        Parameters
        ----------
        values : ndarray, shape (n_particles,)
            Particle values.

        Returns
        -------
        ndarray of float32, shape (n_tree,)
            Value of each tree node (equals pyapr's ``fill_tree_mean``).
        """
        values = self.check_values(values)
        sums = np.bincount(self.particle_parent, weights=values, minlength=self.n_tree)
        tree = np.zeros(self.n_tree, dtype=np.float64)
        for level in range(self.level_max - 1, -1, -1):
            t0, t1 = self.tree_level_range(level)
            tree[t0:t1] = sums[t0:t1] / np.maximum(self.tree_child_count[t0:t1], 1)
            if level > 0:
                parent = self.tree_parent[t0:t1]
                sums += np.bincount(parent, weights=tree[t0:t1], minlength=self.n_tree)
        return tree.astype(np.float32)

    def check_values(self, values, name: str = "values") -> np.ndarray:
        """Return ``values`` as a 1D array with one entry per particle, or raise :class:`InputError`."""
        values = np.asarray(values)
        if values.ndim != 1 or len(values) != self.n_particles:
            raise InputError(f"{name} must have one value per particle ({self.n_particles},), got shape "
                             f"{values.shape}; use the particle values read with this APR")
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise InputError(f"{name} contain NaN or infinite values; replace them (e.g. np.nan_to_num) first")
        return values

    # ------------------------------------------------------------- construction
    @classmethod
    def from_file(cls, path) -> AprGrid:
        """Read the access structure from a pyapr ``.apr`` (HDF5) file without reading particle values.

        The file must contain the linear access (``xz_end_vec``, ``y_vec``) and the tree, which pyapr
        writes by default.
        """
        import h5py
        import hdf5plugin  # noqa: F401  (registers the Blosc filter pyapr compresses with)

        from .._io import check_input_file
        from .h5 import attr_int

        path = check_input_file(path, what="APR file", file=True)
        try:
            with h5py.File(path, "r") as f:
                t = _time_group(f, path)
                attrs = t.attrs

                nz, ny, nx = attr_int(attrs, "z_num"), attr_int(attrs, "x_num"), attr_int(attrs, "y_num")  # pyapr [z, x, y]
                level_min, level_max = attr_int(attrs, "level_min"), attr_int(attrs, "level_max")
                if "xz_end_vec" not in t or "Tree" not in t or "xz_end_vec" not in t["Tree"]:
                    raise InputError(f"{path} lacks the linear access structure or the tree; rewrite it with "
                                     "pyapr.io.write(..., write_linear=True, write_tree=True)")
                offsets = t["xz_end_vec"][()].astype(np.int64)
                x = t["y_vec"][()].astype(np.uint16)
                tree_offsets = t["Tree"]["xz_end_vec"][()].astype(np.int64)
                tree_x = t["Tree"]["y_vec"][()].astype(np.uint16)
        except (OSError, KeyError) as exc:
            raise InputError(f"cannot read APR structure from {path} ({exc}); the file is truncated or not a "
                             "pyapr .apr file: re-export it") from exc
        return cls((nz, ny, nx), level_min, level_max, offsets, x, tree_offsets, tree_x)

    @classmethod
    def from_apr(cls, apr) -> AprGrid:
        """Build the grid of an in-memory ``pyapr.APR`` (its structure is written to a temporary file).

        pyapr exposes the per-particle coordinates only one call per particle; its file writer exports the
        same arrays in bulk, so the structure goes through a temporary HDF5 file (no particle values).
        """
        import tempfile

        from .convert import _pyapr

        pyapr = _pyapr()  # one line naming the extra when pyapr is missing
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "grid.apr"
            pyapr.io.write_apr(str(path), apr, write_linear=True, write_tree=True)
            return cls.from_file(path)

    def to_npz(self, path, values: np.ndarray | None = None) -> None:
        """Save the grid (and optionally particle values) as ``.npz``; loading needs only numpy."""
        from .._io import atomic_path

        arrays = dict(shape=np.asarray(self.shape, dtype=np.int64),
                      levels=np.asarray([self.level_min, self.level_max], dtype=np.int64),
                      offsets=self.offsets, x=self.x, tree_offsets=self.tree_offsets, tree_x=self.tree_x)
        if values is not None:
            arrays["values"] = self.check_values(values)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def from_npz(cls, path) -> AprGrid:
        """Load a grid written by :meth:`to_npz` (use :func:`load_grid` to also get the values)."""
        return load_grid(path)[0]


def _time_group(f, path):
    if "ParticleRepr" not in f or not len(f["ParticleRepr"].keys()):
        raise InputError(f"{path} is not a pyapr .apr file (no ParticleRepr group); convert the image first")
    return f["ParticleRepr"][sorted(f["ParticleRepr"].keys())[0]]


def load_grid(path) -> tuple[AprGrid, np.ndarray | None]:
    """Load ``(grid, values)`` from an ``.npz`` written by :func:`export_grid` / :meth:`AprGrid.to_npz`.

    ``values`` is None when the file holds no particle values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"grid file {path} does not exist; export it with `dynfit export-grid IN.apr -o {path}`")
    try:
        with np.load(path) as d:
            grid = AprGrid(tuple(int(v) for v in d["shape"]), int(d["levels"][0]), int(d["levels"][1]),
                           d["offsets"].astype(np.int64), d["x"].astype(np.uint16),
                           d["tree_offsets"].astype(np.int64), d["tree_x"].astype(np.uint16))
            values = d["values"] if "values" in d else None
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path} is not an AprGrid .npz ({exc}); re-export it with export_grid") from exc
    return grid, values


def export_grid(apr_path, out_path, *, with_values: bool = True) -> AprGrid:
    """Write the ``AprGrid`` (and the particle values) of an ``.apr`` file to ``out_path`` (``.npz``).

    The ``.npz`` is what a machine without pyapr (e.g. a GPU node) needs to run the native kernels and
    ``dynfit bench apr-conv --grid FILE.npz``.
    """
    grid = AprGrid.from_file(apr_path)
    values = read_particle_values(apr_path) if with_values else None
    grid.to_npz(out_path, values)
    return grid


def read_particle_values(path, name: str = "particles") -> np.ndarray:
    """Read the particle values dataset ``name`` of an ``.apr`` file as a numpy array (storage order)."""
    import h5py
    import hdf5plugin  # noqa: F401

    try:
        with h5py.File(path, "r") as f:
            t = _time_group(f, path)
            if name not in t:
                raise InputError(f"{path} has no particle dataset {name!r}; available: "
                                 f"{[k for k in t.keys() if k not in ('Tree', 'xz_end_vec', 'y_vec')]}")
            return t[name][()]
    except OSError as exc:
        raise InputError(f"cannot read particles from {path} ({exc}); the file is truncated: re-export it") from exc
