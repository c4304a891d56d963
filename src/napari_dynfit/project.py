"""Project folders: every artefact of a session in one folder, re-opened by the GUI or the CLI.

Layout (``dynfit demo`` writes the same folder, plus ``report.html``)::

    PROJECT/
      project.json          manifest: format, artefacts (name -> kind, path, metadata), parameters
      movie.zarr            images and label movies (Zarr arrays), axes (t, [z,] y, x)
      detections.parquet    tables (Parquet)
      fields.zarr           field bundles (see FieldBundle.to_zarr)
      model.json            models and other JSON documents

Every file is written atomically; the manifest is rewritten after each save, so a crash leaves
the previous consistent state.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_path
from .errors import InputError
from .fields.bundle import FieldBundle
from .tables import read_table, write_table

FORMAT = "dynfit-project/1"


def _to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


class Project:
    """A project folder.

    Parameters
    ----------
    root : str or Path
        The folder; created when missing. An existing ``project.json`` is read.
    """

    def __init__(self, root):
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        mf = self.root / "project.json"
        if mf.exists():
            try:
                self.manifest = json.loads(mf.read_text())
            except json.JSONDecodeError as exc:
                raise InputError(f"'{mf}' is not valid JSON ({exc}); restore it or start a new project folder") from exc
            if self.manifest.get("format") != FORMAT:
                raise InputError(f"'{mf}' is not a dynfit project manifest (format {self.manifest.get('format')!r})")
        else:
            self.manifest = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "artefacts": {},
                             "parameters": {}}

    # ------------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names of the saved artefacts."""
        return sorted(self.manifest["artefacts"])

    @property
    def parameters(self) -> dict:
        """Parameters of the steps run so far (``{step: {param: value}}``)."""
        return self.manifest["parameters"]

    def set_parameters(self, step: str, params: dict) -> None:
        """Record the parameters a step ran with."""
        self.manifest["parameters"][step] = _to_jsonable(params)
        self._write_manifest()

    @staticmethod
    def can_save(obj) -> bool:
        """Whether :meth:`save` knows how to store ``obj``."""
        return isinstance(obj, (FieldBundle, pd.DataFrame, np.ndarray, dict)) or hasattr(obj, "to_table")

    def save(self, name: str, obj, *, meta: dict | None = None) -> Path:
        """Save an artefact: ndarray -> Zarr, DataFrame -> Parquet, FieldBundle -> Zarr, dict -> JSON.

        Objects with a ``to_table()`` method (e.g. simulator trajectories) are saved as their table.
        ``meta`` (e.g. ``{"scale": [...], "layer_type": "labels"}``) is stored in the manifest.
        """
        if not name.replace("_", "").replace("-", "").isalnum():
            raise InputError(f"artefact name '{name}' must be letters, digits, '-' or '_'")
        if hasattr(obj, "to_table") and not isinstance(obj, pd.DataFrame):
            obj = obj.to_table()
        if isinstance(obj, FieldBundle):
            kind, path = "fields", self.root / f"{name}.zarr"
            obj.to_zarr(path)
        elif isinstance(obj, pd.DataFrame):
            kind, path = "table", self.root / f"{name}.parquet"
            write_table(obj, path)
        elif isinstance(obj, np.ndarray):
            import zarr

            kind, path = "array", self.root / f"{name}.zarr"
            with atomic_path(path, is_dir=True) as tmp:
                chunks = (1,) + obj.shape[1:] if obj.ndim >= 3 else obj.shape
                zarr.create_array(str(tmp), data=obj, chunks=chunks)
        elif isinstance(obj, dict):
            kind, path = "json", self.root / f"{name}.json"
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(_to_jsonable(obj), indent=2))
        else:
            raise InputError(f"cannot save artefact '{name}' of type {type(obj).__name__} in a project")
        self.manifest["artefacts"][name] = {"kind": kind, "path": path.name, "meta": _to_jsonable(meta or {})}
        self._write_manifest()
        return path

    def load(self, name: str):
        """Load an artefact saved by :meth:`save` (arrays are returned as lazy Zarr arrays)."""
        try:
            entry = self.manifest["artefacts"][name]
        except KeyError:
            raise InputError(f"project '{self.root}' has no artefact '{name}'; it has {self.names}") from None
        path = self.root / entry["path"]
        if not path.exists():
            raise InputError(f"artefact '{name}' is listed in project.json but '{path}' is missing")
        kind = entry["kind"]
        if kind == "fields":
            return FieldBundle.from_zarr(path)
        if kind == "table":
            return read_table(path, required=())
        if kind == "array":
            import zarr

            return zarr.open_array(str(path), mode="r")
        return json.loads(path.read_text())

    def meta(self, name: str) -> dict:
        """The metadata stored with an artefact."""
        return self.manifest["artefacts"][name].get("meta", {})

    def _write_manifest(self) -> None:
        with atomic_path(self.root / "project.json") as tmp:
            tmp.write_text(json.dumps(self.manifest, indent=2))
