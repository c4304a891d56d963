"""The field bundle: named arrays on a regular space-time grid, with coordinates and periodicity.

Every stage that produces or consumes continuum fields (coarse-graining, The Well reader, PDE
learning, dominant balance, PINNs) exchanges a :class:`FieldBundle`.

Array layout
------------
* scalar field: shape ``(t, *space)`` where ``space`` is ``(x,)``, ``(y, x)`` or ``(z, y, x)``;
* vector field: shape ``(t, *space, d)``; component ``i`` is along spatial axis ``i`` in axis order,
  i.e. ``(..., 0)`` is the ``y`` component and ``(..., 1)`` the ``x`` component in 2D;
* tensor field: shape ``(t, *space, d, d)``, same component order.

Coordinates are 1D arrays in physical units (``coords["t"]``, ``coords["y"]``, ...). Storage is
Zarr (a group with one array per field, coordinates under ``coords/`` and attributes as JSON) or
``.npz`` (one array per field plus ``t``, ``x``, ...; kinds inferred from shapes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_path, check_input_file, check_zarr_chunks, read_zarr_array
from ..errors import InputError

KINDS = ("scalar", "vector", "tensor")
_SPACE_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


def fields_output_path(path) -> Path:
    """``path`` as a Path after checking it names a ``.zarr`` or ``.npz`` output (call it before long work)."""
    p = Path(path)
    if p.suffix.lower() not in (".zarr", ".npz"):
        raise InputError(f"output '{p}' must end in .zarr or .npz")
    return p


@dataclass
class FieldBundle:
    """Named fields on a shared ``(t, *space)`` grid.

    Parameters
    ----------
    fields : dict of str -> ndarray
        Field arrays, see the module docstring for shapes.
    coords : dict of str -> ndarray
        ``"t"`` and one entry per spatial axis (``"x"``; ``"y", "x"``; ``"z", "y", "x"``), physical units.
    kinds : dict of str -> str, optional
        ``"scalar"``, ``"vector"`` or ``"tensor"`` per field; inferred from shapes when omitted.
    periodic : tuple of bool, optional
        Periodicity per spatial axis (axis order). Default: not periodic.
    attrs : dict, optional
        Free metadata (source file, units, simulation parameters). Must be JSON-serialisable.
    """

    fields: dict[str, np.ndarray]
    coords: dict[str, np.ndarray]
    kinds: dict[str, str] = field(default_factory=dict)
    periodic: tuple[bool, ...] | None = None
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        if "t" not in self.coords:
            raise InputError("field bundle needs a time coordinate 't'")
        space = [a for a in ("z", "y", "x") if a in self.coords]
        if len(space) == 0:
            raise InputError("field bundle needs spatial coordinates ('x'; 'y','x'; or 'z','y','x')")
        if tuple(space) != _SPACE_NAMES[len(space)]:
            raise InputError(f"spatial coordinates {space} must be one of {list(_SPACE_NAMES.values())}")
        self.coords = {k: np.asarray(v, dtype=float).ravel() for k, v in self.coords.items()}
        shape = self.shape
        if not self.fields:
            raise InputError("field bundle has no fields")
        for name, arr in list(self.fields.items()):
            arr = np.asarray(arr)
            self.fields[name] = arr
            if arr.shape[: len(shape)] != shape:
                raise InputError(
                    f"field '{name}' has shape {arr.shape}; expected {shape} (t, *space) followed by components"
                )
            extra = arr.shape[len(shape):]
            kind = self.kinds.get(name) or {0: "scalar", 1: "vector", 2: "tensor"}.get(len(extra))
            if kind not in KINDS:
                raise InputError(f"field '{name}' has {len(extra)} component axes; at most 2 (tensor) are allowed")
            self.kinds[name] = kind
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                raise InputError(f"field '{name}' contains NaN or infinite values: fill or crop them first")
        if self.periodic is None:
            self.periodic = (False,) * self.ndim
        self.periodic = tuple(bool(p) for p in self.periodic)
        if len(self.periodic) != self.ndim:
            raise InputError(f"periodic has {len(self.periodic)} entries for {self.ndim} spatial axes")

    # --- geometry -------------------------------------------------------------------------
    @property
    def space_axes(self) -> tuple[str, ...]:
        """Spatial axis names in axis order, e.g. ``("y", "x")``."""
        return tuple(a for a in ("z", "y", "x") if a in self.coords)

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return len(self.space_axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape ``(nt, *space)``."""
        return (len(self.coords["t"]),) + tuple(len(self.coords[a]) for a in self.space_axes)

    @property
    def dt(self) -> float:
        """Time step (assumes a uniform time grid)."""
        t = self.coords["t"]
        return float(t[1] - t[0]) if len(t) > 1 else 1.0

    @property
    def spacing(self) -> tuple[float, ...]:
        """Grid spacing per spatial axis (physical units)."""
        return tuple(float(self.coords[a][1] - self.coords[a][0]) if len(self.coords[a]) > 1 else 1.0
                     for a in self.space_axes)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.fields[name]
        except KeyError:
            raise InputError(f"no field '{name}' in the bundle; available: {sorted(self.fields)}") from None

    def select(self, names) -> FieldBundle:
        """A bundle with only the named fields (arrays shared, not copied)."""
        return FieldBundle({n: self[n] for n in names}, dict(self.coords), {n: self.kinds[n] for n in names},
                           self.periodic, dict(self.attrs))

    def time_slice(self, start: int | None = None, stop: int | None = None) -> FieldBundle:
        """A bundle restricted to frames ``start:stop``."""
        sl = slice(start, stop)
        coords = dict(self.coords)
        coords["t"] = self.coords["t"][sl]
        return FieldBundle({k: v[sl] for k, v in self.fields.items()}, coords, dict(self.kinds),
                           self.periodic, dict(self.attrs))

    # --- storage --------------------------------------------------------------------------
    def to_zarr(self, path) -> Path:
        """Write the bundle as a Zarr group (atomically)."""
        import zarr

        path = Path(path)
        with atomic_path(path, is_dir=True) as tmp:
            root = zarr.open_group(str(tmp), mode="w")
            for name, arr in self.fields.items():
                root.create_array(name, data=np.ascontiguousarray(arr))
            cg = root.create_group("coords")
            for name, arr in self.coords.items():
                cg.create_array(name, data=arr)
            root.attrs["dynfit"] = json.dumps({"kinds": self.kinds, "periodic": list(self.periodic),
                                              "attrs": self.attrs, "format": "dynfit-fields/1"})
        return path

    def to_npz(self, path) -> Path:
        """Write the bundle as ``.npz``: one array per field, coordinates ``t``, ``x``...; metadata as JSON."""
        path = Path(path)
        meta = json.dumps({"kinds": self.kinds, "periodic": list(self.periodic), "attrs": self.attrs})
        clash = set(self.fields) & (set(self.coords) | {"_dynfit_meta"})
        if clash:
            raise InputError(f"field names {sorted(clash)} clash with coordinate names: rename the fields")
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **self.fields, **self.coords, _dynfit_meta=np.array(meta))
        return path

    @classmethod
    def from_npz(cls, path) -> FieldBundle:
        """Read a bundle written by :meth:`to_npz`, or any ``.npz`` with field arrays plus ``t`` and ``x`` [, ``y``, ``z``]."""
        p = check_input_file(path, suffixes=(".npz",), what="fields file")
        try:
            data = dict(np.load(p, allow_pickle=False))
        except Exception as exc:
            raise InputError(f"cannot read '{p}' as .npz ({exc}): is the file complete?") from exc
        meta = json.loads(str(data.pop("_dynfit_meta"))) if "_dynfit_meta" in data else {}
        coords = {k: data.pop(k) for k in ("t", "z", "y", "x") if k in data}
        if "t" not in coords or "x" not in coords:
            raise InputError(f"'{p.name}' needs coordinate arrays 't' and 'x' (and 'y', 'z' for 2D/3D) beside the fields")
        return cls(data, coords, meta.get("kinds", {}), meta.get("periodic"), meta.get("attrs", {}))

    @classmethod
    def from_zarr(cls, path) -> FieldBundle:
        """Read a bundle written by :meth:`to_zarr` (arrays are loaded into memory)."""
        import zarr

        p = check_input_file(path, what="Zarr fields store")
        try:
            root = zarr.open_group(str(p), mode="r")
            meta = json.loads(root.attrs["dynfit"])
        except Exception as exc:
            raise InputError(f"'{p}' is not a dynfit fields store ({exc}); write one with `dynfit coarse-grain`") from exc
        check_zarr_chunks(p)  # a missing chunk of a dynfit store is damage, never zeros
        try:
            coords = {k: read_zarr_array(root["coords"][k], p) for k in root["coords"].array_keys()}
        except KeyError as exc:
            raise InputError(f"'{p}' has no coordinates group 'coords': write the store with `dynfit coarse-grain`") from exc
        fields = {k: read_zarr_array(root[k], p) for k in root.array_keys()}
        return cls(fields, coords, meta.get("kinds", {}), meta.get("periodic"), meta.get("attrs", {}))

    def save(self, path) -> Path:
        """Write the bundle as ``.zarr`` or ``.npz`` (dispatch on the suffix, see :func:`fields_output_path`)."""
        p = fields_output_path(path)
        return self.to_npz(p) if p.suffix.lower() == ".npz" else self.to_zarr(p)

    @classmethod
    def load(cls, path) -> FieldBundle:
        """Read a bundle from ``.zarr`` or ``.npz`` (dispatch on the suffix)."""
        p = Path(path)
        if p.suffix.lower() == ".npz":
            return cls.from_npz(p)
        if p.suffix.lower() == ".zarr" or p.is_dir():
            return cls.from_zarr(p)
        raise InputError(f"'{p}' is neither a .zarr store nor a .npz file of fields")
