"""AnnData ``.h5ad`` files in and out of probability flow inference, with h5py only.

AnnData (``anndata``) is not a dependency (it pins ``pandas<3``); these functions read and write the on-disk
layout it defines (HDF5 groups with ``encoding-type`` attributes), so the files stay readable by
``anndata.read_h5ad`` and Scanpy:

* :func:`read_h5ad_table`: one row per cell, in file order: ``time`` from ``obs[time_key]`` (numbers, or
  categories / strings holding a number such as ``"day 2"``) and the coordinates from ``obsm[basis]`` (e.g.
  ``X_pca``) or ``X`` (dense or sparse CSR/CSC);
* :func:`write_flow_h5ad`: the input file copied whole (every group, dataset and attribute kept) with our results
  added: ``obsm["pfi_drift"]`` (drift ``f(x)`` at each cell, ``(n, d)``, coordinate units per time unit),
  ``obsm["pfi_velocity"]`` (probability-flow velocity ``f(x) - D grad log p_t(x)`` at the cell's own time),
  ``obs["pfi_growth"]`` (net growth rate ``g(x)`` per time unit, with a growth model) and ``uns["pfi"]`` (the model
  as JSON, the basis and the time key). Without an input file (a table or a Points layer) a new AnnData file is
  written with ``X`` = the coordinates and ``obs["time"]``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..._io import atomic_path, check_input_file
from ...errors import InputError

#: What :func:`write_flow_h5ad` adds (``obsm`` / ``obs`` / ``uns`` keys).
DRIFT_KEY, VELOCITY_KEY, GROWTH_KEY, UNS_KEY = "pfi_drift", "pfi_velocity", "pfi_growth", "pfi"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _str_dtype():
    import h5py

    return h5py.string_dtype("utf-8")


def _decode(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _open(path: Path):
    import h5py

    from ..._io import check_input_file

    path = check_input_file(path, what="AnnData .h5ad file", file=True)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"cannot open '{path}' as HDF5 ({' '.join(str(exc).split())[:120]}): is it an AnnData "
                         ".h5ad file?") from exc


def _column(obs, key: str, path: Path) -> np.ndarray:
    """An ``obs`` column as a numpy array (numbers, strings, or a categorical's values)."""
    node = obs[key]
    enc = _decode(node.attrs.get("encoding-type", ""))
    if enc == "categorical" or ("codes" in getattr(node, "keys", lambda: ())() and "categories" in node):
        cats = np.asarray(node["categories"][()])
        codes = np.asarray(node["codes"][()])
        if np.any(codes < 0):
            raise InputError(f"'{path.name}': obs['{key}'] has {int((codes < 0).sum())} cell(s) without a value: "
                             "give every cell a time or drop those cells")
        return cats[codes]
    if enc in ("nullable-integer", "nullable-boolean", "nullable-float") or "mask" in getattr(node, "keys", lambda: ())():
        vals, mask = np.asarray(node["values"][()], float), np.asarray(node["mask"][()], bool)
        vals[mask] = np.nan
        return vals
    if hasattr(node, "shape"):
        return np.asarray(node[()])
    raise InputError(f"'{path.name}': obs['{key}'] is stored as '{enc or 'unknown'}', not a column of values")


def _times(values: np.ndarray, key: str, path: Path) -> np.ndarray:
    """Numbers of a time column: numeric values, or strings holding one number (``"2.5"``, ``"day 2"``)."""
    if np.issubdtype(values.dtype, np.number) or values.dtype == bool:
        t = values.astype(float)
    else:
        labels = [_decode(v) for v in values]
        found = {s: _NUMBER.findall(s) for s in set(labels)}
        bad = sorted(s for s, m in found.items() if len(m) != 1)
        if bad:
            raise InputError(f"'{path.name}': obs['{key}'] values {bad[:4]} do not name one time each: store the "
                             "time as numbers (or labels such as 'day 2')")
        t = np.array([float(found[s][0]) for s in labels])
    if not np.all(np.isfinite(t)):
        raise InputError(f"'{path.name}': obs['{key}'] has NaN or infinite times: give every cell a time")
    return t


def _matrix(node, what: str, path: Path) -> np.ndarray:
    """A dense dataset or a CSR/CSC group as a dense float array."""
    enc = _decode(node.attrs.get("encoding-type", ""))
    if hasattr(node, "shape"):
        return np.asarray(node[()], float)
    if enc in ("csr_matrix", "csc_matrix"):
        import scipy.sparse as sp

        shape = tuple(int(s) for s in node.attrs["shape"])
        cls = sp.csr_matrix if enc == "csr_matrix" else sp.csc_matrix
        m = cls((node["data"][()], node["indices"][()], node["indptr"][()]), shape=shape)
        return np.asarray(m.toarray(), float)
    raise InputError(f"'{path.name}': {what} is stored as '{enc or 'unknown'}': expected a matrix")


def _index(group) -> list[str]:
    key = _decode(group.attrs.get("_index", "_index"))
    return [_decode(v) for v in group[key][()]] if key in group else []


def read_h5ad_table(path, *, time_key: str = "time", basis: str | None = None) -> pd.DataFrame:
    """One row per cell of an AnnData file: ``time`` and the coordinates, in file order.

    Parameters
    ----------
    path : str or Path
        The ``.h5ad`` file.
    time_key : str
        ``obs`` column of the snapshot time (numbers, or categories / strings holding one number each).
    basis : str, optional
        ``obsm`` key of the coordinates (e.g. ``"X_pca"``); default ``X`` (columns named after ``var``).

    Returns
    -------
    pandas.DataFrame
        ``time`` and ``d`` coordinate columns (``obsm`` basis: ``<basis>_0 ...``); ``attrs["obs_names"]`` is not
        set (cells stay in file order), ``attrs["basis"]`` is ``basis``.
    """
    p = check_input_file(path, suffixes=(".h5ad",), what="AnnData file")
    with _open(p) as f:
        if "obs" not in f or not hasattr(f["obs"], "keys"):
            raise InputError(f"'{p.name}' has no obs group: it is not an AnnData file written by anndata >= 0.7")
        obs = f["obs"]
        if time_key not in obs:
            cols = [k for k in obs.keys() if k != _decode(obs.attrs.get("_index", "_index"))]
            raise InputError(f"'{p.name}' has no obs column '{time_key}' (it has {cols[:8]}): name the time "
                             "column with --time-key")
        t = _times(_column(obs, time_key, p), time_key, p)
        if basis is None:
            if "X" not in f:
                raise InputError(f"'{p.name}' has no X matrix: name an obsm basis (e.g. X_pca) with --basis")
            x = _matrix(f["X"], "X", p)
            names = _index(f["var"]) if "var" in f else []
            if x.ndim == 2 and (len(names) != x.shape[1] or len(set(names)) != len(names) or "time" in names):
                names = [f"X_{i}" for i in range(x.shape[1])]
        else:
            if "obsm" not in f or basis not in f["obsm"]:
                keys = list(f["obsm"].keys()) if "obsm" in f else []
                raise InputError(f"'{p.name}' has no obsm['{basis}'] (it has {keys})")
            x = _matrix(f["obsm"][basis], f"obsm['{basis}']", p)
            names = [f"{basis}_{i}" for i in range(x.shape[1] if x.ndim == 2 else 0)]
    if x.ndim != 2 or x.shape[0] != len(t):
        raise InputError(f"'{p.name}': the coordinates have shape {x.shape} but obs has {len(t)} cells")
    if x.shape[1] > 50:
        raise InputError(f"'{p.name}': {x.shape[1]} coordinates per cell; flow inference needs a low-dimensional "
                         "basis: name one with --basis (e.g. X_pca with 2-10 components)")
    df = pd.DataFrame(x, columns=names)
    df.insert(0, "time", t)
    df.attrs["basis"] = basis
    return df


# ------------------------------------------------------------------------------------------------
# writing


def _array(group, key: str, data) -> None:
    if key in group:
        del group[key]
    ds = group.create_dataset(key, data=np.asarray(data))
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "0.2.0"


def _string(group, key: str, text: str) -> None:
    if key in group:
        del group[key]
    ds = group.create_dataset(key, data=text, dtype=_str_dtype())
    ds.attrs["encoding-type"] = "string"
    ds.attrs["encoding-version"] = "0.2.0"


def _strings(group, key: str, values) -> None:
    ds = group.create_dataset(key, data=np.array([str(v) for v in values], dtype=object), dtype=_str_dtype())
    ds.attrs["encoding-type"] = "string-array"
    ds.attrs["encoding-version"] = "0.2.0"


def _group(parent, key: str, enc: str = "dict", version: str = "0.1.0"):
    g = parent.require_group(key)
    if "encoding-type" not in g.attrs:
        g.attrs["encoding-type"] = enc
        g.attrs["encoding-version"] = version
    return g


def _dataframe(parent, key: str, index, columns: dict) -> None:
    g = parent.create_group(key)
    g.attrs["encoding-type"] = "dataframe"
    g.attrs["encoding-version"] = "0.2.0"
    g.attrs["_index"] = "_index"
    g.attrs["column-order"] = np.array(list(columns), dtype=object) if columns else np.zeros(0)
    _strings(g, "_index", index)
    for k, v in columns.items():
        _array(g, k, v)


def _new_anndata(f, x: np.ndarray, t: np.ndarray, names) -> None:
    f.attrs["encoding-type"] = "anndata"
    f.attrs["encoding-version"] = "0.1.0"
    _array(f, "X", x)
    _dataframe(f, "obs", [str(i) for i in range(len(x))], {"time": t})
    _dataframe(f, "var", list(names), {})
    for k in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
        _group(f, k)


def _add_obs_column(obs, key: str, values) -> None:
    _array(obs, key, values)
    order = [_decode(c) for c in np.atleast_1d(obs.attrs.get("column-order", np.zeros(0)))]
    if key not in order:
        obs.attrs["column-order"] = np.array(order + [key], dtype=object)


def write_flow_h5ad(model, path, *, source=None, time_key: str = "time", basis: str | None = None,
                    table: pd.DataFrame | None = None) -> Path:
    """Write the fitted flow's drift, velocity and growth per cell into an AnnData file.

    Parameters
    ----------
    model : napari_dynfit.models.flow.pfi.FlowModel
        The fitted model (its coordinates are those of the input).
    path : str or Path
        Output ``.h5ad`` (written atomically; it may not be ``source``).
    source : str or Path, optional
        The ``.h5ad`` the snapshots came from: copied whole, then our keys added (``obsm["pfi_drift"]``,
        ``obsm["pfi_velocity"]``, ``obs["pfi_growth"]``, ``uns["pfi"]``; earlier ones replaced).
    time_key, basis
        How the snapshots were read from ``source`` (:func:`read_h5ad_table`).
    table : pandas.DataFrame, optional
        Without ``source``: ``time`` and the model's coordinate columns, one row per cell; a new AnnData file is
        written (``X`` = coordinates, ``var`` = their names, ``obs["time"]``).
    """
    import h5py

    out = Path(path).expanduser()
    if not out.name.lower().endswith(".h5ad"):
        raise InputError(f"output '{out}' must end in .h5ad")
    if source is not None:
        src = check_input_file(source, suffixes=(".h5ad",), what="AnnData file")
        if src.resolve() == out.resolve():
            raise InputError(f"output '{out}' is the input file: write the results to a new .h5ad")
        cells = read_h5ad_table(src, time_key=time_key, basis=basis)
    elif table is not None:
        cells = table
    else:
        raise InputError("write_flow_h5ad needs the source .h5ad or the table of cells")
    cols = list(model.columns)
    if "time" not in cells.columns or any(c not in cells.columns for c in cols):
        raise InputError(f"the model's coordinates {cols} (and 'time') are not all in the cells' table "
                         f"{list(cells.columns)}: write with the source the model was fitted to")
    x = cells[cols].to_numpy(float)
    t = cells["time"].to_numpy(float)
    drift = model.drift(x)
    velocity = np.empty_like(x)
    for tk in np.unique(t):
        sel = t == tk
        velocity[sel] = model.velocity(x[sel], float(tk))
    growth = model.growth(x) if model.growth_net is not None else None
    with atomic_path(out) as tmp:
        if source is not None:
            shutil.copyfile(src, tmp)
        with h5py.File(tmp, "r+" if source is not None else "w") as f:
            if source is None:
                _new_anndata(f, x, t, cols)
            obsm = _group(f, "obsm")
            _array(obsm, DRIFT_KEY, drift)
            _array(obsm, VELOCITY_KEY, velocity)
            if growth is not None:
                _add_obs_column(f["obs"], GROWTH_KEY, growth)
            uns = _group(f, "uns")
            if UNS_KEY in uns:
                del uns[UNS_KEY]
            pfi = _group(uns, UNS_KEY)
            _string(pfi, "model", json.dumps(model.to_dict()))
            _string(pfi, "time_key", time_key if source is not None else "time")
            _string(pfi, "basis", basis or "X")
            _string(pfi, "convention", "dX = f(X) dt + sqrt(2 D) dW; pfi_drift = f(x); pfi_velocity = f(x) - "
                                       "D grad log p_t(x) at the cell's time; pfi_growth = g(x)")
    return out
