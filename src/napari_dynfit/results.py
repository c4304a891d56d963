"""The shape every result of the package shares (``docs/api.md``): ``summary()``, ``to_dict()``, ``save(path)`` /
``load(path)``, ``plot(ax=None)``.

:class:`Result` is a small mixin for dataclass results:

* ``to_dict()``: the fields as JSON-compatible Python (arrays as nested lists, DataFrames as column lists,
  nested dataclasses as dicts); classes with a documented JSON form (``BalanceResult``...) override it;
* ``save(path)``: ``path`` (JSON: scalars, strings, lists, dicts) and, when there are arrays or tables, the
  arrays in ``<path without suffix>.npz`` beside it; each file is written to a temporary sibling and renamed
  into place (:func:`napari_dynfit._io.atomic_path`), so a crash never leaves half a result;
* ``load(path)``: the same object back (arrays, tables and nested results of this package included). Fields
  that are neither data nor results (a trained network, an APR grid) are not written: ``load`` gives None for
  them and ``summary()`` of the loaded object says what it can from the rest.

The JSON carries ``"format": "dynfit-result/1"`` and the class name; ``load`` refuses another class's file.
Only classes of :mod:`napari_dynfit` are rebuilt, so loading a file never imports arbitrary code.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from pathlib import Path

import numpy as np

from .errors import InputError

FORMAT = "dynfit-result/1"
__all__ = ["FORMAT", "Result", "json_text", "to_jsonable"]


def to_jsonable(obj):
    """``obj`` as JSON-compatible Python: arrays as lists, numpy scalars as numbers, DataFrames as
    ``{column: list}``, dataclasses as dicts of their fields, other objects as their ``repr``."""
    import pandas as pd

    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, pd.DataFrame):
        return {str(c): to_jsonable(obj[c].to_numpy()) for c in obj.columns}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict") and not isinstance(obj, Result):
            return to_jsonable(obj.to_dict())
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__float__"):  # 0-d tensors and other number-like objects
        return float(obj)
    return repr(obj)


def _finite_or_none(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    return obj


def json_text(obj, *, indent: int | None = None) -> str:
    """``obj`` as strict JSON text (RFC 8259), the one way commands print or write their JSON reports.

    Converted by :func:`to_jsonable`; NaN and infinities become ``null`` (Python's ``json`` would write ``NaN``,
    which strict parsers such as JavaScript's ``JSON.parse`` and many ``jq`` builds reject)."""
    return json.dumps(_finite_or_none(to_jsonable(obj)), indent=indent, allow_nan=False)


class _Encoder:
    """Split a value into JSON (with references) and the arrays for the ``.npz``."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, a: np.ndarray) -> dict:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = a
        return {"__array__": key}

    def __call__(self, obj):
        import pandas as pd

        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                return {"__list_array__": [self(v) for v in obj.tolist()]}
            return self._array(obj)
        if isinstance(obj, pd.DataFrame):
            cols = {}
            for c in obj.columns:
                v = obj[c].to_numpy()
                cols[str(c)] = self(v) if v.dtype != object else {"__list_array__": [self(x) for x in v.tolist()]}
            return {"__dataframe__": cols, "attrs": self(dict(obj.attrs))}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            cls = type(obj)
            if cls.__module__.split(".")[0] != "napari_dynfit":
                return {"__unsaved__": f"{cls.__module__}.{cls.__qualname__}"}
            return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                    "fields": {f.name: self(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
        if isinstance(obj, dict):
            if all(isinstance(k, str) for k in obj):
                return {"__dict__": {k: self(v) for k, v in obj.items()}}
            return {"__items__": [[self(k), self(v)] for k, v in obj.items()]}
        if isinstance(obj, tuple):
            return {"__tuple__": [self(v) for v in obj]}
        if isinstance(obj, list):
            return [self(v) for v in obj]
        if isinstance(obj, Path):
            return str(obj)
        return {"__unsaved__": f"{type(obj).__module__}.{type(obj).__qualname__}"}


def _class(name: str):
    module, _, qual = name.partition(":")
    if module.split(".")[0] != "napari_dynfit":
        raise InputError(f"result file names the class '{name}', which is not napari-dynfit's: not loading it")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _decode(obj, arrays):
    import pandas as pd

    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        return arrays[obj["__array__"]]
    if "__list_array__" in obj:
        out = np.empty(len(obj["__list_array__"]), dtype=object)
        out[:] = [_decode(v, arrays) for v in obj["__list_array__"]]
        return out
    if "__dataframe__" in obj:
        df = pd.DataFrame({c: _decode(v, arrays) for c, v in obj["__dataframe__"].items()})
        df.attrs = _decode(obj.get("attrs", {}), arrays) or {}
        return df
    if "__dataclass__" in obj:
        cls = _class(obj["__dataclass__"])
        values = {k: _decode(v, arrays) for k, v in obj["fields"].items()}
        if all(f.init for f in dataclasses.fields(cls)):
            try:
                return cls(**values)  # through __init__: __post_init__ derives and checks what it does
            except (TypeError, ValueError):
                pass
        inst = cls.__new__(cls)
        for k, v in values.items():
            object.__setattr__(inst, k, v)
        return inst
    if "__dict__" in obj:
        return {k: _decode(v, arrays) for k, v in obj["__dict__"].items()}
    if "__items__" in obj:
        return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in obj["__items__"]}
    if "__tuple__" in obj:
        return tuple(_decode(v, arrays) for v in obj["__tuple__"])
    if "__unsaved__" in obj:
        return None
    return {k: _decode(v, arrays) for k, v in obj.items()}


def _hashable(k):
    return tuple(_hashable(v) for v in k) if isinstance(k, (list, tuple)) else k


class Result:
    """Mixin of the dataclass results: ``to_dict``, ``save``, ``load``, ``summary``, ``plot`` (see the module)."""

    def to_dict(self) -> dict:
        """The fields as JSON-compatible Python (arrays as lists)."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def summary(self) -> str:
        """Text for people: one line per field (arrays by shape)."""
        lines = [type(self).__name__]
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = f"array {v.shape} {v.dtype}"
            elif hasattr(v, "shape") and hasattr(v, "columns"):
                v = f"table {v.shape[0]} rows: {', '.join(map(str, v.columns))}"
            elif isinstance(v, (dict, list)) and len(repr(v)) > 100:
                v = f"{type(v).__name__} of {len(v)}"
            lines.append(f"  {f.name}: {v}")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Draw the result into ``ax`` (a new figure's axes when None) and return the axes."""
        raise NotImplementedError(f"{type(self).__name__} has no plot")

    def save(self, path) -> Path:
        """Write the result to ``path`` (``.json``) and its arrays to ``<path>.npz`` beside it; returns ``path``."""
        from ._io import atomic_path

        path = Path(path).expanduser()
        if path.suffix.lower() != ".json":
            raise InputError(f"save a result as .json (its arrays go beside it as .npz), got '{path.name}'")
        enc = _Encoder()
        cls = type(self)
        doc = {"format": FORMAT, "class": f"{cls.__module__}:{cls.__qualname__}",
               "fields": {f.name: enc(getattr(self, f.name)) for f in dataclasses.fields(self)}}
        npz = path.with_suffix(".npz")
        if enc.arrays:
            with atomic_path(npz) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, **enc.arrays)
        doc["arrays"] = npz.name if enc.arrays else None
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(doc, indent=1, allow_nan=True))
        return path

    @classmethod
    def load(cls, path):
        """Read a result written by :meth:`save` (the ``.json``; its ``.npz`` is read from beside it)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise InputError(f"result file '{path}' does not exist")
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"'{path}' is not a result file ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InputError(f"'{path}' is not a {FORMAT} file: write it with the result's save()")
        kind = _class(doc["class"])
        if not (isinstance(kind, type) and issubclass(kind, cls)):
            raise InputError(f"'{path}' holds a {doc['class'].split(':')[-1]}, not a {cls.__name__}")
        arrays = {}
        if doc.get("arrays"):
            npz = path.parent / doc["arrays"]
            if not npz.is_file():
                raise InputError(f"'{npz}' (the arrays of '{path.name}') is missing: keep both files together")
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        return _decode({"__dataclass__": doc["class"], "fields": doc["fields"]}, arrays)
