"""Layer geometry: the one convention for ``scale``, ``translate``, ``units`` and ``axis_labels`` (Qt-free).

Every layer the plugin adds (readers, sample data, widgets) describes its axes the same way:

* **space**: data coordinates are pixels; ``scale`` is the pixel size and ``translate`` the world position of
  pixel 0 (``world = data * scale + translate``), ``units`` the length unit (e.g. ``"micrometer"``),
  ``axis_labels`` ``[z,] y, x``;
* **time** (the first axis of a movie, of points ``t, [z,] y, x`` and of tracks): data coordinates are **frame
  indices**; the world coordinate is **physical time**: ``scale[0] = dt`` (the frame interval in the time
  unit), ``translate[0]`` the time of frame 0 (usually 0), ``axis_labels[0] = "t"``, ``units[0]`` the time unit
  (``"second"`` unless the data say otherwise; napari's ``"pixel"``, i.e. frames, when the data carry no frame
  interval). ``metadata["dt"]`` repeats the frame interval for code that reads the frame interval of a layer.

So a layer made from another one copies its geometry (:func:`napari_dynfit._napari._geometry.layer_kwargs`), and
fields sampled at other times (e.g. coarse-grained fields every few frames) sit at their own physical times
(``scale[0]`` = their time step, ``translate[0]`` = their first time) and still line up with the movie.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the label of the time axis
TIME_LABEL = "t"
#: the unit of the time axis when the data have a frame interval but do not name its unit
DEFAULT_TIME_UNIT = "second"
#: napari's unit of an axis without a physical unit (pixels; frames on the time axis)
NO_UNIT = "pixel"
#: spatial axis labels, last axes first
SPACE_LABELS = ("z", "y", "x")

#: unit spellings of files and metadata -> the names napari (pint) understands
_UNIT_ALIASES = {"um": "micrometer", "µm": "micrometer", "micron": "micrometer", "microns": "micrometer",
                 "nm": "nanometer", "mm": "millimeter", "s": "second", "sec": "second", "ms": "millisecond",
                 "min": "minute", "h": "hour", "px": NO_UNIT, "pixels": NO_UNIT, "frame": NO_UNIT,
                 "frames": NO_UNIT}


def unit_name(unit) -> str | None:
    """A unit as napari names it (``"um"`` -> ``"micrometer"``); ``None`` stays ``None``."""
    if unit is None:
        return None
    u = str(unit).strip()
    return _UNIT_ALIASES.get(u, _UNIT_ALIASES.get(u.lower(), u)) or None


@dataclass(frozen=True)
class Geometry:
    """Axes of a layer under the plugin's convention (module docstring).

    Attributes
    ----------
    spacing : tuple of float
        Pixel size per spatial axis ``[z,] y, x`` (world length units per pixel).
    origin : tuple of float
        World position of pixel 0 per spatial axis (same units).
    dt : float or None
        Frame interval (time units per frame); ``None``: the layer has no time axis.
    t0 : float
        Time of frame 0 (time units).
    space_unit, time_unit : str or None
        Unit names (``None``: napari's ``"pixel"``; a known ``dt`` without unit gets ``"second"``).
    """

    spacing: tuple
    origin: tuple = ()
    dt: float | None = None
    t0: float = 0.0
    space_unit: str | None = None
    time_unit: str | None = None

    @property
    def ndim_space(self) -> int:
        return len(self.spacing)

    def kwargs(self) -> dict:
        """``scale``, ``translate``, ``units`` and ``axis_labels`` for a napari layer (time first when ``dt``)."""
        nd = self.ndim_space
        origin = tuple(float(o) for o in (self.origin or (0.0,) * nd))
        su = unit_name(self.space_unit) or NO_UNIT
        scale, translate = tuple(float(s) for s in self.spacing), origin
        units, labels = (su,) * nd, SPACE_LABELS[-nd:] if nd <= 3 else tuple(f"x{i}" for i in range(nd))
        if self.dt is not None:
            tu = unit_name(self.time_unit) or DEFAULT_TIME_UNIT
            scale, translate = (float(self.dt), *scale), (float(self.t0), *translate)
            units, labels = (tu, *units), (TIME_LABEL, *labels)
        return {"scale": scale, "translate": translate, "units": units, "axis_labels": tuple(labels)}

    def to_world(self, data) -> np.ndarray:
        """World coordinates of data coordinates ``(n, [1 +] ndim_space)`` (time first when ``dt``)."""
        kw = self.kwargs()
        return np.asarray(data, float) * np.asarray(kw["scale"]) + np.asarray(kw["translate"])

    def to_data(self, world) -> np.ndarray:
        """Data coordinates (pixels, frames) of world coordinates: the inverse of :meth:`to_world`."""
        kw = self.kwargs()
        return (np.asarray(world, float) - np.asarray(kw["translate"])) / np.asarray(kw["scale"])


def movie_geometry(spacing, dt=None, *, origin=None, space_unit=None, time_unit=None, t0: float = 0.0) -> dict:
    """Layer kwargs (``scale``, ``translate``, ``units``, ``axis_labels``) of a movie or a time-resolved layer.

    Parameters
    ----------
    spacing : sequence of float
        Pixel size per spatial axis ``[z,] y, x``.
    dt : float or None
        Frame interval; ``None``: no time axis (a single image). A time axis without a known interval: pass
        ``dt=1`` and ``time_unit="pixel"`` (frames).
    origin : sequence of float, optional
        World position of pixel 0 (default 0).
    space_unit, time_unit : str, optional
        Unit names (``"um"`` and ``"micrometer"`` both work).
    t0 : float
        Time of frame 0.
    """
    return Geometry(tuple(spacing), tuple(origin or ()), None if dt is None else float(dt), float(t0), space_unit,
                    time_unit).kwargs()


def bundle_geometry(bundle, *, space_unit=None, time_unit=None) -> dict:
    """Layer kwargs of the fields of a :class:`~napari_dynfit.fields.FieldBundle` (``t, [z,] y, x`` grids).

    Time: ``scale[0]`` = the bundle's time step ``dt``, ``translate[0]`` = its first time (physical, like the
    movie's time axis) plus ``attrs["time_origin"]`` (the world time of the core's time 0: the time of frame 0
    of the movie the fields were made from, 0 unless the movie starts later); space: the grid spacing and its
    first grid point. Units: the arguments, else
    ``attrs["space_unit"]`` / ``attrs["time_unit"]``, else napari's ``"pixel"`` (the bundle does not say).
    """
    axes = tuple(bundle.space_axes)
    units = getattr(bundle, "attrs", {}) or {}
    origin = tuple(float(bundle.coords[a][0]) for a in axes)
    t = np.asarray(bundle.coords["t"], float)
    t0 = float(t[0]) + float(units.get("time_origin", 0.0) or 0.0)
    return Geometry(tuple(float(s) for s in bundle.spacing), origin, float(bundle.dt), t0,
                    space_unit or units.get("space_unit"), time_unit or units.get("time_unit") or NO_UNIT).kwargs()


def axes_geometry(axes: str, scale, units, origin=None) -> dict:
    """Layer kwargs of an image whose axes a file names (``"tczyx"`` letters), under the convention.

    Parameters
    ----------
    axes : str
        One letter per axis among ``tczyx``; ``c`` is left out of the result (napari's ``channel_axis``).
    scale : sequence of float
        Per axis: pixel size, frame interval for ``t`` (1 where the file says nothing).
    units : sequence of str or None
        Per axis, as the file names them (``"micron"``, ``"µm"``, ``"s"``...); ``None``: none given.
    origin : sequence of float, optional
        Per axis: world position of pixel 0 / time of frame 0 (default 0).

    Returns
    -------
    dict
        ``scale``, ``translate``, ``units`` (napari's names; ``"pixel"`` where the file gives none; a frame interval
        other than 1 without a unit: seconds), ``axis_labels`` (the letters) and, with a ``t`` axis whose interval
        the file gives, ``dt``.
    """
    origin = tuple(origin or ()) or (0.0,) * len(axes)
    keep = [i for i, a in enumerate(axes) if a != "c"]
    out = {"scale": tuple(float(scale[i]) for i in keep), "translate": tuple(float(origin[i]) for i in keep),
           "axis_labels": tuple(axes[i] for i in keep)}
    names = []
    for i in keep:
        u = unit_name(units[i]) if units and units[i] else None
        if u is None and axes[i] == TIME_LABEL and float(scale[i]) != 1.0:
            u = DEFAULT_TIME_UNIT
        names.append(u or NO_UNIT)
        if axes[i] == TIME_LABEL and names[-1] != NO_UNIT:
            out["dt"] = float(scale[i])
    out["units"] = tuple(names)
    return out


# ----------------------------------------------------------------------------------------------
# value units in layer names (napari's colour bar has no title: the layer name says what the colours are)

#: short symbols of napari's unit names, for layer names
_SYMBOLS = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "meter": "m", "second": "s",
            "millisecond": "ms", "minute": "min", "hour": "h", "day": "d"}
_POWERS = {1: "", 2: "²", 3: "³"}
#: the unit of values the data do not state (a field read from a file that carries no value units)
ARBITRARY_UNIT = "a.u."
#: ``attrs["source"]`` of coarse-grained fields (:mod:`napari_dynfit.fields.coarse_grain`: every entry point)
COARSE_GRAINED = "coarse-grained particles"


def unit_symbol(unit, *, time: bool = False) -> str:
    """Short symbol of a unit for a layer name: ``"micrometer"`` / ``"um"`` -> ``"µm"``, ``"second"`` -> ``"s"``;
    no unit (None or napari's ``"pixel"``): ``"px"``, or ``"frame"`` on the time axis (``time=True``)."""
    name = unit_name(unit)
    if name is None or name == NO_UNIT:
        return "frame" if time else "px"
    return _SYMBOLS.get(name, name)


def field_unit(bundle, name: str) -> str:
    """Unit of the values of field ``name`` of a :class:`~napari_dynfit.fields.FieldBundle`, for a layer name.

    Coarse-grained fields (``attrs["source"]`` is :data:`COARSE_GRAINED`) have known units in the bundle's length
    and time units (``attrs["space_unit"]``, ``attrs["time_unit"]``; pixels and frames when absent): ``rho``,
    ``p`` and ``Q`` are densities (``"1/µm²"`` in 2D, ``"1/µm³"`` in 3D), ``v`` a velocity (``"µm/s"``). Other
    fields (simulations, The Well, PDE-FIND files: no value units stored): :data:`ARBITRARY_UNIT`.
    """
    attrs = getattr(bundle, "attrs", {}) or {}
    if attrs.get("source") == COARSE_GRAINED:
        space = unit_symbol(attrs.get("space_unit"))
        if name in ("rho", "p", "Q"):
            return f"1/{space}{_POWERS.get(len(bundle.space_axes), '^' + str(len(bundle.space_axes)))}"
        if name == "v":
            return f"{space}/{unit_symbol(attrs.get('time_unit'), time=True)}"
    return ARBITRARY_UNIT


def field_label(bundle, name: str, *, magnitude: bool = False) -> str:
    """Layer name of field ``name`` of ``bundle``: the quantity and its unit, ``"rho (1/µm²)"``; ``magnitude``:
    the field's norm (a vector field shown as one image), ``"|p| (1/µm²)"``."""
    return f"{f'|{name}|' if magnitude else name} ({field_unit(bundle, name)})"
