"""The Well (Ohana et al. 2024, arXiv:2412.00568) HDF5 files <-> :class:`~napari_dynfit.fields.FieldBundle`.

The Well describes every dataset by its files' own metadata; this module reads that metadata
with h5py only (the ``the_well`` package, which pins fsspec and pulls torch, is not needed).

File schema (HDF5 groups, datasets and ``@attributes``)
-------------------------------------------------------
* root ``@dataset_name``, ``@grid_type``, ``@n_spatial_dims``, ``@n_trajectories``,
  ``@simulation_parameters`` (names of further root attributes holding the parameters);
* ``dimensions/`` with ``@spatial_dims`` (e.g. ``["x", "y"]``) and datasets ``time`` and one per
  spatial dimension (each with ``@sample_varying``: then it has a leading trajectory axis);
* ``boundary_conditions/<name>/`` with ``@bc_type`` (``PERIODIC``, ``WALL``, ``OPEN``),
  ``@associated_dims`` and a boolean ``mask`` over those dimensions (``True`` where the condition holds);
* ``scalars/`` with ``@field_names``; each dataset has ``@sample_varying`` and ``@time_varying``;
* ``t0_fields/``, ``t1_fields/``, ``t2_fields/`` (scalar, vector, rank-2 tensor fields) with
  ``@field_names``; each dataset has ``@dim_varying`` (one flag per spatial dimension),
  ``@sample_varying`` and ``@time_varying`` (an axis whose flag is false is absent from the data),
  tensors also ``@symmetric`` and ``@antisymmetric``. A fully varying field has shape
  ``(n_traj, n_t, d0, d1[, d2])`` followed by ``D`` (vectors) or ``D, D`` (tensors) components,
  where ``d0, d1, d2`` are the ``spatial_dims`` in order and component ``i`` is along ``spatial_dims[i]``.

Axis and component order (the one place where it is converted)
--------------------------------------------------------------
Our bundles use ``(t, [z,] y, x)``: the Well's spatial axes *reversed*. For cartesian files
(``spatial_dims = x, y[, z]``) this puts ``x`` last; for other grids (e.g. ``theta, phi``) the
file's last dimension becomes our ``y`` (2D) or ``z`` (3D) and its first our ``x``; the original
names are kept in ``bundle.attrs["well"]["axis_names"]`` (our order). Vector and tensor components
are reversed the same way, so component ``i`` is along our spatial axis ``i``. The conversion is
:func:`swap_axis_order`, which is its own inverse and is used by both the reader and the writer.

Periodicity per axis comes from the boundary conditions as in ``the_well``'s own loader: an axis
is periodic when a ``PERIODIC`` condition's mask is true at both of its ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_path, check_input_file
from ..errors import InputError
from ..fields import FieldBundle

WELL_SUFFIXES = (".hdf5", ".h5")
FIELD_GROUPS = ("t0_fields", "t1_fields", "t2_fields")
_KIND_OF_GROUP = {"t0_fields": "scalar", "t1_fields": "vector", "t2_fields": "tensor"}
_GROUP_OF_KIND = {v: k for k, v in _KIND_OF_GROUP.items()}
_OUR_SPACE = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


# --- small readers of h5py attribute values -------------------------------------------------
def _str(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.shape == ():
        return _str(value.item())
    return str(value)


def _strs(value) -> list[str]:
    """A list of names from a string, a bytes object or an array of either."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [_str(value)]
    return [_str(v) for v in np.atleast_1d(value)]


def _flag(attrs, key: str, default: bool) -> bool:
    return bool(attrs[key]) if key in attrs else default


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()] if value.ndim else _jsonable(value.item())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def swap_axis_order(arr, n_space: int, order: int, lead: int):
    """Convert between the Well's and our axis/component order (the operation is its own inverse).

    Parameters
    ----------
    arr : array_like
        ``lead`` leading axes (trajectory/time), then ``n_space`` spatial axes, then ``order``
        component axes of length ``n_space`` (0 scalar, 1 vector, 2 tensor).
    n_space, order, lead : int
        Numbers of spatial, component and leading axes.

    Returns
    -------
    ndarray
        A view with the spatial axes reversed and every component axis reversed
        (Well ``(..., x, y, [comp x, comp y])`` <-> ours ``(..., y, x, [comp y, comp x])``).
    """
    arr = np.asarray(arr)
    space = list(range(lead, lead + n_space))
    perm = list(range(lead)) + space[::-1] + list(range(lead + n_space, lead + n_space + order))
    out = np.transpose(arr, perm)
    if order:
        out = out[(Ellipsis,) + (slice(None, None, -1),) * order]
    return out


# --- metadata ----------------------------------------------------------------------------------
@dataclass
class WellInfo:
    """What a Well file holds, read from its metadata only (no field data).

    Attributes
    ----------
    path : Path
    dataset_name, grid_type : str
    n_spatial_dims, n_trajectories, n_steps : int
    spatial_dims : list of str
        Dimension names in the file's order (``["x", "y"]``); our axis order is the reverse.
    grid_shape : tuple of int
        Grid size in the file's order.
    fields : dict
        ``name -> {"kind", "time_varying", "sample_varying", "dim_varying", "symmetric"}``.
    scalars : dict
        ``name -> {"time_varying", "sample_varying"}``.
    boundary_conditions : dict
        ``dimension name -> [low end type, high end type]`` (``"PERIODIC"``, ``"WALL"``, ``"OPEN"``).
    periodic : tuple of bool
        Per spatial axis in **our** order.
    simulation_parameters : dict
        The root attributes named by ``@simulation_parameters``.
    """

    path: Path
    dataset_name: str
    grid_type: str
    n_spatial_dims: int
    n_trajectories: int
    n_steps: int
    spatial_dims: list[str]
    grid_shape: tuple[int, ...]
    fields: dict = field(default_factory=dict)
    scalars: dict = field(default_factory=dict)
    boundary_conditions: dict = field(default_factory=dict)
    periodic: tuple[bool, ...] = ()
    simulation_parameters: dict = field(default_factory=dict)

    def to_text(self) -> str:
        """A human-readable summary (used by ``dynfit well-info``)."""
        lines = [f"{self.path.name}: The Well dataset '{self.dataset_name}' ({self.grid_type} grid)",
                 f"  trajectories: {self.n_trajectories}, time steps: {self.n_steps}",
                 f"  spatial dims (file order): {', '.join(f'{d}={n}' for d, n in zip(self.spatial_dims, self.grid_shape))}"
                 f"; our axes: t, {', '.join(_OUR_SPACE[self.n_spatial_dims])}",
                 f"  periodic (our order): {list(self.periodic)}"]
        for name, f in self.fields.items():
            flags = ("" if f["time_varying"] else " constant in time") + ("" if f["sample_varying"] else " shared by trajectories")
            lines.append(f"  field {name}: {f['kind']}{flags}")
        for name, s in self.scalars.items():
            lines.append(f"  scalar {name}" + (" (time-varying)" if s["time_varying"] else ""))
        for name, v in self.simulation_parameters.items():
            lines.append(f"  parameter {name} = {v}")
        return "\n".join(lines)


def is_well_file(path) -> bool:
    """Whether ``path`` is an HDF5 file with The Well's groups (``dimensions`` and ``t0_fields``...)."""
    import h5py

    p = Path(path)
    if p.suffix.lower() not in WELL_SUFFIXES or not p.is_file():
        return False
    try:
        with h5py.File(p, "r") as f:
            return "dimensions" in f and all(g in f for g in FIELD_GROUPS) and "n_spatial_dims" in f.attrs
    except OSError:
        return False


def _open(path):
    import h5py

    p = check_input_file(path, suffixes=WELL_SUFFIXES, what="The Well file", file=True)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise InputError(f"cannot open '{p}' as HDF5 ({exc}): is the file complete?") from exc
    missing = [g for g in ("dimensions",) + FIELD_GROUPS if g not in f]
    if missing or "spatial_dims" not in f["dimensions"].attrs:
        f.close()
        what = f"groups {missing}" if missing else "dimensions/@spatial_dims"
        raise InputError(f"'{p.name}' is not in The Well format (missing {what}); "
                         "write such files with napari_dynfit.io.well.write_well_file")
    return p, f


def _boundaries(f, dims: list[str]) -> dict:
    """``dimension -> [low type, high type]``; ends without a condition are ``"OPEN"`` (as in the_well)."""
    out = {d: ["OPEN", "OPEN"] for d in dims}
    if "boundary_conditions" not in f:
        return out
    for bc in f["boundary_conditions"].values():
        kind = _str(bc.attrs.get("bc_type", "OPEN")).upper()
        assoc = _strs(bc.attrs.get("associated_dims"))
        mask = np.asarray(bc["mask"][()], dtype=bool) if "mask" in bc else None
        for i, d in enumerate(assoc):
            if d not in out:
                continue
            if mask is None or mask.ndim != len(assoc):
                ends = (True, True)
            else:
                m = np.moveaxis(mask, i, 0)
                agg = np.all if kind == "WALL" else np.any
                ends = (bool(agg(m[0])), bool(agg(m[-1])))
            for e in (0, 1):
                if ends[e]:
                    out[d][e] = kind
    return out


def _info(p: Path, f) -> WellInfo:
    dims = _strs(f["dimensions"].attrs["spatial_dims"])
    n = int(f.attrs.get("n_spatial_dims", len(dims)))
    if n != len(dims) or n not in _OUR_SPACE:
        raise InputError(f"'{p.name}': n_spatial_dims={n} but dimensions/@spatial_dims={dims}; "
                         "the file is inconsistent (1-3 spatial dimensions are supported)")
    for d in dims + ["time"]:
        if d not in f["dimensions"]:
            raise InputError(f"'{p.name}' has no coordinate dataset dimensions/{d}: the file is incomplete")
    grid = tuple(int(f["dimensions"][d].shape[-1]) for d in dims)
    fields = {}
    for g in FIELD_GROUPS:
        for name in _strs(f[g].attrs.get("field_names", [])):
            if name not in f[g]:
                raise InputError(f"'{p.name}': {g}/@field_names lists '{name}' but there is no such dataset")
            a = f[g][name].attrs
            fields[name] = {"kind": _KIND_OF_GROUP[g], "group": g,
                            "time_varying": _flag(a, "time_varying", True),
                            "sample_varying": _flag(a, "sample_varying", True),
                            "dim_varying": [bool(v) for v in np.atleast_1d(a.get("dim_varying", [True] * n))],
                            "symmetric": _flag(a, "symmetric", False)}
    scalars = {}
    if "scalars" in f:
        for name in _strs(f["scalars"].attrs.get("field_names", [])):
            if name in f["scalars"]:
                a = f["scalars"][name].attrs
                scalars[name] = {"time_varying": _flag(a, "time_varying", False),
                                 "sample_varying": _flag(a, "sample_varying", False)}
    bcs = _boundaries(f, dims)
    periodic = tuple(bcs[d] == ["PERIODIC", "PERIODIC"] for d in dims)[::-1]
    params = {name: _jsonable(f.attrs[name]) for name in _strs(f.attrs.get("simulation_parameters", []))
              if name in f.attrs}
    n_traj = int(f.attrs["n_trajectories"]) if "n_trajectories" in f.attrs else None
    if n_traj is None:
        first = next((f[v["group"]][k] for k, v in fields.items() if v["sample_varying"]), None)
        n_traj = int(first.shape[0]) if first is not None else 1
    return WellInfo(path=p, dataset_name=_str(f.attrs.get("dataset_name", p.stem)),
                    grid_type=_str(f.attrs.get("grid_type", "cartesian")), n_spatial_dims=n,
                    n_trajectories=n_traj, n_steps=int(f["dimensions"]["time"].shape[-1]),
                    spatial_dims=dims, grid_shape=grid, fields=fields, scalars=scalars,
                    boundary_conditions=bcs, periodic=periodic, simulation_parameters=params)


def well_info(path) -> WellInfo:
    """Read the metadata of a Well file (no field data is loaded).

    Parameters
    ----------
    path : str or Path
        An ``.hdf5`` / ``.h5`` file in The Well's schema.
    """
    p, f = _open(path)
    with f:
        return _info(p, f)


# --- reading -----------------------------------------------------------------------------------
def _coord(dset, traj: int) -> np.ndarray:
    sample = _flag(dset.attrs, "sample_varying", False) and dset.ndim > 1
    return np.asarray(dset[traj] if sample else dset[()], dtype=float).ravel()


def read_well(path, *, trajectory: int = 0, t_start: int = 0, t_stop: int | None = None, t_step: int = 1,
              fields=None, dtype=None) -> FieldBundle:
    """Read one trajectory (a time window of it) of a Well file as a field bundle.

    Only the requested slab is read from disk (h5py hyperslab selection), so a window of a large
    file costs only its own size in memory.

    Parameters
    ----------
    path : str or Path
        An ``.hdf5`` / ``.h5`` file in The Well's schema.
    trajectory : int
        Trajectory (sample) index, ``0 <= trajectory < n_trajectories``.
    t_start, t_stop, t_step : int
        Frame window ``t_start:t_stop:t_step`` (indices into ``dimensions/time``).
    fields : iterable of str, optional
        Field names as in the file (``"concentration"``, ``"velocity"``, ``"D"``...); default all.
    dtype : numpy dtype, optional
        Cast the fields to this type (default: keep the file's, float32 in the Well).

    Returns
    -------
    FieldBundle
        Scalars ``(t, [z,] y, x)``, vectors ``(..., d)``, tensors ``(..., d, d)`` in our axis and
        component order (see the module docstring); coordinates ``t``, ``[z,] y, x`` from
        ``dimensions/``; ``periodic`` from the boundary conditions; ``attrs["well"]`` holds the
        dataset name, grid type, trajectory, file dimension names, scalars and simulation parameters.
        Fields constant in time or in some spatial dimension are broadcast (read-only views).
    """
    p, f = _open(path)
    with f:
        info = _info(p, f)
        if not 0 <= trajectory < info.n_trajectories:
            raise InputError(f"trajectory {trajectory} is out of range: '{p.name}' has "
                             f"{info.n_trajectories} trajectories (0..{info.n_trajectories - 1})")
        if t_step < 1:
            raise InputError(f"t_step must be >= 1 (got {t_step})")
        window = slice(t_start, t_stop, t_step)
        t_all = _coord(f["dimensions"]["time"], trajectory)
        t = t_all[window]
        if len(t) == 0:
            raise InputError(f"time window {t_start}:{t_stop}:{t_step} selects no frame of the "
                             f"{len(t_all)} in '{p.name}': choose t_start < {len(t_all)}")
        names = list(info.fields) if fields is None else list(fields)
        unknown = [nm for nm in names if nm not in info.fields]
        if unknown or not names:
            raise InputError(f"'{p.name}' has no field(s) {unknown or names}; available: {list(info.fields)}")
        n = info.n_spatial_dims
        out, kinds = {}, {}
        for name in names:
            meta = info.fields[name]
            out[name] = _read_field(f[meta["group"]][name], meta, n, info.grid_shape, trajectory, window, len(t))
            if dtype is not None:
                out[name] = out[name].astype(dtype)
            kinds[name] = meta["kind"]
        space = _OUR_SPACE[n]
        coords = {"t": t}
        for ours, theirs in zip(space, info.spatial_dims[::-1]):
            coords[ours] = _coord(f["dimensions"][theirs], trajectory)
        scalars = {}
        if "scalars" in f:
            for name, s in info.scalars.items():
                d = f["scalars"][name]
                idx = (trajectory,) if s["sample_varying"] and d.ndim > 0 else ()
                if s["time_varying"]:
                    idx = idx + (window,)
                scalars[name] = _jsonable(np.asarray(d[idx] if idx else d[()]))
        attrs = {"source": str(p), "well": {
            "dataset_name": info.dataset_name, "grid_type": info.grid_type, "trajectory": trajectory,
            "t_window": [t_start, t_stop, t_step], "axis_names": info.spatial_dims[::-1],
            "boundary_conditions": info.boundary_conditions, "scalars": scalars,
            "simulation_parameters": info.simulation_parameters,
            "symmetric": {k: v["symmetric"] for k, v in info.fields.items() if v["kind"] == "tensor" and k in names}}}
    return FieldBundle(out, coords, kinds, info.periodic, attrs)


def _read_field(dset, meta, n: int, grid: tuple[int, ...], traj: int, window: slice, nt: int) -> np.ndarray:
    order = {"scalar": 0, "vector": 1, "tensor": 2}[meta["kind"]]
    idx = ()
    if meta["sample_varying"]:
        idx += (traj,)
    if meta["time_varying"]:
        idx += (window,)
    data = np.asarray(dset[idx] if idx else dset[()])
    if not meta["time_varying"]:
        data = data[None]
    dimv = meta["dim_varying"]
    if len(dimv) != n:
        raise InputError(f"field '{dset.name}' has @dim_varying={dimv} for {n} spatial dimensions: the file is inconsistent")
    # insert length-1 axes for dimensions the field does not vary along, then broadcast
    for i, varying in enumerate(dimv):
        if not varying:
            data = np.expand_dims(data, 1 + i)
    want = (data.shape[0],) + tuple(grid) + (n,) * order
    try:
        data = np.broadcast_to(data, (nt,) + want[1:]) if not meta["time_varying"] else np.broadcast_to(data, want)
    except ValueError:
        raise InputError(f"field '{dset.name}' has shape {dset.shape}, which does not fit the grid {grid} "
                         f"with {order} component axes of length {n}: the file is inconsistent") from None
    return swap_axis_order(data, n, order, lead=1)


def load_fields(path, *, fields=None, trajectory: int = 0, t_start: int = 0, t_stop: int | None = None,
                t_step: int = 1, periodic: bool | None = None) -> FieldBundle:
    """Load fields from any supported file, dispatching on the suffix.

    Parameters
    ----------
    path : str or Path
        ``.hdf5`` / ``.h5`` (The Well: one trajectory, a time window), ``.zarr`` / ``.npz``
        (our field bundles, see :class:`~napari_dynfit.fields.FieldBundle`) or ``.mat``
        (PDE-FIND 1D data: ``usol``/``uu``, ``x``, ``t``/``tt``; field ``u``).
    fields : iterable of str, optional
        Keep only these fields (default all).
    trajectory, t_start, t_stop, t_step : int
        Trajectory and frame window ``t_start:t_stop:t_step`` (applied to every format).
    periodic : bool, optional
        Override the periodicity of every spatial axis (default: the file's; ``.mat`` files periodic).

    Returns
    -------
    FieldBundle
    """
    p = Path(path)
    suffix = p.suffix.lower()
    names = None if fields is None else [s for s in fields]
    if suffix in WELL_SUFFIXES:
        bundle = read_well(p, trajectory=trajectory, t_start=t_start, t_stop=t_stop, t_step=t_step, fields=names)
    else:
        if trajectory != 0:
            raise InputError(f"'{p.name}' holds a single trajectory; drop the trajectory option")
        if suffix == ".mat":
            from ..fields.matfile import read_pdefind_mat

            bundle = read_pdefind_mat(p)
        else:
            bundle = FieldBundle.load(p)
        if names is not None:
            bundle = bundle.select(names)
        if (t_start, t_stop, t_step) != (0, None, 1):
            sl = slice(t_start, t_stop, t_step)
            coords = dict(bundle.coords)
            coords["t"] = bundle.coords["t"][sl]
            if len(coords["t"]) == 0:
                raise InputError(f"time window {t_start}:{t_stop}:{t_step} selects no frame of '{p.name}'")
            bundle = FieldBundle({k: v[sl] for k, v in bundle.fields.items()}, coords, dict(bundle.kinds),
                                 bundle.periodic, dict(bundle.attrs))
    if periodic is not None:
        bundle.periodic = (bool(periodic),) * bundle.ndim
    return bundle


# --- writing -----------------------------------------------------------------------------------
def write_well_file(path, trajectories, *, dataset_name: str, scalars: dict | None = None,
                    simulation_parameters: dict | None = None, grid_type: str = "cartesian",
                    boundary_types: dict | None = None, root_attrs: dict | None = None) -> Path:
    """Write field bundles as one Well file (one bundle per trajectory), in the exact schema.

    Parameters
    ----------
    path : str or Path
        Destination ``.hdf5`` (written atomically).
    trajectories : FieldBundle or list of FieldBundle
        Trajectories sharing fields, kinds and grid. Scalar fields go to ``t0_fields``, vectors to
        ``t1_fields``, tensors to ``t2_fields`` (``@symmetric`` set when every frame is symmetric),
        converted to the Well's axis/component order by :func:`swap_axis_order`.
    dataset_name : str
        ``@dataset_name`` (e.g. ``"active_matter"``).
    scalars : dict of str -> float, optional
        Constant, trajectory-independent scalars (``scalars/``), e.g. ``{"L": 10.0}``.
    simulation_parameters : dict of str -> float, optional
        Root attributes listed in ``@simulation_parameters``.
    grid_type : str
        ``@grid_type``.
    boundary_types : dict, optional
        ``our axis name -> "PERIODIC" | "WALL" | "OPEN"``; default from ``bundle.periodic``
        (periodic axes ``PERIODIC``, others ``WALL``).
    root_attrs : dict, optional
        Further root attributes (strings or numbers).

    Returns
    -------
    Path
    """
    import h5py

    bundles = [trajectories] if isinstance(trajectories, FieldBundle) else list(trajectories)
    if not bundles:
        raise InputError("no trajectories to write: pass at least one FieldBundle")
    ref = bundles[0]
    for b in bundles[1:]:
        if b.shape != ref.shape or set(b.fields) != set(ref.fields) or b.kinds != ref.kinds:
            raise InputError("all trajectories must share fields, kinds and grid shape; write them to separate files")
    n = ref.ndim
    ours = ref.space_axes
    theirs = list(ours[::-1])
    boundary_types = dict(boundary_types or {})
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        params = dict(simulation_parameters or {})
        for k, v in params.items():
            f.attrs[k] = v
        f.attrs["simulation_parameters"] = list(params)
        f.attrs["dataset_name"] = dataset_name
        f.attrs["grid_type"] = grid_type
        f.attrs["n_spatial_dims"] = n
        f.attrs["n_trajectories"] = len(bundles)
        for k, v in (root_attrs or {}).items():
            f.attrs[k] = v
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = theirs
        d = dims.create_dataset("time", data=ref.coords["t"].astype(np.float32))
        d.attrs["sample_varying"] = False
        for name in theirs:
            d = dims.create_dataset(name, data=ref.coords[name].astype(np.float32))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False
        bcs = f.create_group("boundary_conditions")
        for i, name in enumerate(ours):
            kind = boundary_types.get(name, "PERIODIC" if ref.periodic[i] else "WALL").upper()
            g = bcs.create_group(f"{name}_{kind.lower()}")
            g.attrs["associated_dims"] = [name]
            g.attrs["associated_fields"] = []
            g.attrs["bc_type"] = kind
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            mask = np.zeros(len(ref.coords[name]), dtype=bool)
            mask[[0, -1]] = True
            g.create_dataset("mask", data=mask)
            g.create_dataset("values", data=np.zeros(int(mask.sum()), dtype=np.float32))
        sg = f.create_group("scalars")
        sg.attrs["field_names"] = list(scalars or {})
        for k, v in (scalars or {}).items():
            d = sg.create_dataset(k, data=np.float32(v))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False
        for g_name in FIELD_GROUPS:
            g = f.create_group(g_name)
            names = [k for k in ref.fields if _GROUP_OF_KIND[ref.kinds[k]] == g_name]
            g.attrs["field_names"] = names
            order = FIELD_GROUPS.index(g_name)
            for name in names:
                data = np.stack([swap_axis_order(b[name], n, order, lead=1) for b in bundles]).astype(np.float32)
                chunks = (1, 1) + data.shape[2:]
                d = g.create_dataset(name, data=data, chunks=chunks)
                d.attrs["dim_varying"] = [True] * n
                d.attrs["sample_varying"] = True
                d.attrs["time_varying"] = True
                if order == 2:
                    sym = all(np.allclose(b[name], np.swapaxes(b[name], -1, -2)) for b in bundles)
                    anti = all(np.allclose(b[name], -np.swapaxes(b[name], -1, -2)) for b in bundles)
                    d.attrs["symmetric"] = bool(sym)
                    d.attrs["antisymmetric"] = bool(anti)
    return path

