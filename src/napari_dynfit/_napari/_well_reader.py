"""npe2 reader for The Well HDF5 files: scalar fields as Images, vectors as Vectors, orientation tensors as directors.

Layers (trajectory 0, all frames; world axes ``(t, [z,] y, x)`` in physical units via ``scale``):

* every scalar field -> an Image layer named after the field;
* every vector field -> a Vectors layer (arrows on a grid subsampled to about
  ``VECTOR_GRID`` points per side; projections in physical units per unit time, drawn with a
  common length factor so that the fastest arrow spans one subsampling cell), coloured by magnitude;
* orientation / nematic tensors (names in :data:`DIRECTOR_TENSORS`, e.g. ``active_matter``'s ``D``)
  -> a Vectors layer of the principal axis (headless lines centred on the grid points, length
  proportional to the eigenvalue gap, i.e. the local order);
* other tensors (e.g. the strain rate ``E``) -> one Image layer per independent component,
  named with the file's axis names (``E_xx``, ``E_xy``, ``E_yy``).
"""

from __future__ import annotations

import numpy as np

from ..io.well import is_well_file, read_well

#: tensor fields shown as director fields (principal axis of a symmetric orientation tensor)
DIRECTOR_TENSORS = ("D", "Q")
#: target number of arrows per side in Vectors layers
VECTOR_GRID = 32


def get_reader(path):
    """npe2 reader hook: a reader function for a Well file, ``None`` for anything else."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return read_well_layers if is_well_file(path) or _damaged_hdf5(path) else None


def _damaged_hdf5(path) -> bool:
    """A ``.h5`` / ``.hdf5`` file that h5py cannot open (empty, truncated, not HDF5): no reader can show it, so this
    one takes it and says why (``read_well``'s one-line error) instead of napari's "no reader found"."""
    from pathlib import Path

    import h5py

    from ..io.well import WELL_SUFFIXES

    p = Path(path)
    if p.suffix.lower() not in WELL_SUFFIXES or not p.is_file():
        return False
    try:
        with h5py.File(p, "r"):
            return False
    except OSError:
        return True


def read_well_layers(path) -> list:
    """Layer data tuples for trajectory 0 of a Well file (see the module docstring)."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    bundle = read_well(path)
    return well_layer_data(bundle)


def _grid_points(bundle, stride: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Index coordinates ``(n, 1 + ndim)`` of the subsampled grid for every frame, and the slices used."""
    shape = bundle.shape
    sl = (slice(None),) + tuple(slice(stride // 2, None, stride) for _ in shape[1:])
    idx = np.meshgrid(*[np.arange(n)[s] for n, s in zip(shape, sl)], indexing="ij")
    return np.stack([i.ravel() for i in idx], axis=-1).astype(float), sl


def well_layer_data(bundle) -> list:
    """Napari layer data tuples ``(data, kwargs, layer_type)`` for a bundle read from a Well file."""
    nd = bundle.ndim
    from ..geometry import bundle_geometry, field_label, field_unit

    axis_names = bundle.attrs.get("well", {}).get("axis_names", list(bundle.space_axes))
    name_of = bundle.attrs.get("well", {}).get("dataset_name", "")
    base = {**bundle_geometry(bundle), "metadata": {"dataset": name_of, "source": bundle.attrs.get("source")}}
    stride = max(1, max(bundle.shape[1:]) // VECTOR_GRID)
    spacing = np.asarray(bundle.spacing)
    layers = []
    for name, kind in bundle.kinds.items():
        arr = np.asarray(bundle[name])
        if kind == "scalar":
            # image names carry the unit (napari's colour bar has no title); Well files store none: "a.u."
            layers.append((arr, dict(base, name=field_label(bundle, name), colormap="viridis"), "image"))
        elif kind == "vector":
            pos, sl = _grid_points(bundle, stride)
            v = arr[sl].reshape(-1, nd)  # physical units (our component order)
            mag = np.linalg.norm(v, axis=-1)
            vmax = float(mag.max()) or 1.0
            proj = np.zeros_like(pos)
            proj[:, 1:] = v / spacing * (stride / vmax)  # index units; longest arrow = one cell
            data = np.stack([pos, proj], axis=1)
            layers.append((data, dict(base, name=name, features={"magnitude": mag}, edge_color="magnitude",
                                      edge_colormap="plasma", edge_width=max(0.15 * stride, 1.0),
                                      vector_style="triangle"), "vectors"))
        elif kind == "tensor" and name in DIRECTOR_TENSORS:
            pos, sl = _grid_points(bundle, stride)
            t = arr[sl].reshape(-1, nd, nd)
            t = 0.5 * (t + np.swapaxes(t, -1, -2))
            w, vecs = np.linalg.eigh(t)
            n = vecs[..., -1]  # principal axis, our component order
            order = w[:, -1] - w[:, -2]
            omax = float(order.max()) or 1.0
            n_idx = n / spacing  # the physical direction in index units
            n_idx /= np.linalg.norm(n_idx, axis=-1, keepdims=True)
            half = (0.45 * stride * order / omax)[:, None] * n_idx
            start = pos.copy()
            start[:, 1:] -= half
            proj = np.zeros_like(pos)
            proj[:, 1:] = 2 * half
            data = np.stack([start, proj], axis=1)
            layers.append((data, dict(base, name=f"{name} director", features={"order": order},
                                      edge_color="order", edge_colormap="gray",
                                      edge_width=max(0.15 * stride, 1.0),
                                      vector_style="line"), "vectors"))
        else:
            for i in range(nd):
                for j in range(i if bundle.attrs.get("well", {}).get("symmetric", {}).get(name) else 0, nd):
                    label = f"{name}_{axis_names[i]}{axis_names[j]} ({field_unit(bundle, name)})"
                    layers.append((arr[..., i, j], dict(base, name=label, colormap="coolwarm"), "image"))
    return layers
