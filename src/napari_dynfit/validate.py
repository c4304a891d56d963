"""One validation layer for parameters: numbers (finite, ranges), consistent pairs, output paths, memory.

Two faces of the same checks:

* checkers for the API and the widgets, e.g. ``check_number(dt, "dt", minimum=0, open_min=True)``,
  raising :class:`~napari_dynfit.errors.InputError` with one line naming the value and the fix;
* ``argparse`` types for the CLI, e.g. ``p.add_argument("--dt", type=positive_float)``: a bad
  value is a one-line usage error (exit 2) before any work starts. Consistent pairs are declared
  with ``p.set_defaults(checks=[ordered("min_size", "max_size")])`` and run by the CLI after parsing.

Output paths are declared with ``type=output(".csv", ".parquet")`` (or ``kind="store"`` /
``"folder"``): the CLI checks them with :func:`napari_dynfit._io.check_output` before the command runs
and adds ``--overwrite`` to every command with an output.
"""

from __future__ import annotations

import argparse
import math
import os

from .errors import InputError

# ------------------------------------------------------------------------------------------------
# API checkers


def check_number(value, name: str, *, minimum=None, maximum=None, open_min: bool = False, open_max: bool = False,
                 integer: bool = False, allow_none: bool = False):
    """Return ``value`` (a finite number) after checking its range; raise :class:`InputError` otherwise.

    Parameters
    ----------
    value : int or float or None
    name : str
        How the message names the parameter (e.g. ``"--dt"`` or ``"dt"``).
    minimum, maximum : float, optional
        Bounds, inclusive unless ``open_min`` / ``open_max``.
    integer : bool
        Require an integral value.
    allow_none : bool
        ``None`` passes (an optional parameter).
    """
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be a finite number, got {value}")
    if integer and v != int(v):
        raise InputError(f"{name} must be a whole number, got {value}")
    lo_bad = minimum is not None and (v <= minimum if open_min else v < minimum)
    hi_bad = maximum is not None and (v >= maximum if open_max else v > maximum)
    if lo_bad or hi_bad:
        if maximum is None and minimum == 0 and open_min:
            raise InputError(f"{name} must be positive (> 0), got {value}")
        if maximum is None and integer and minimum == 1:
            raise InputError(f"{name} must be a positive whole number (>= 1), got {value}")
        def fmt(x):
            return str(x) if isinstance(x, int) else f"{x:g}"

        lo = "" if minimum is None else f"{'>' if open_min else '>='} {fmt(minimum)}"
        hi = "" if maximum is None else f"{'<' if open_max else '<='} {fmt(maximum)}"
        raise InputError(f"{name} must be {' and '.join(s for s in (lo, hi) if s)}, got {value}")
    return int(v) if integer else value


#: Largest latent-field output grid (points per spatial axis; ``dynfit latent-field --grid``, ``fit_latent_field``,
#: ``bayesian_latent_field``). The network is evaluated at frames x grid^2 points after training: ~2 us and
#: ~120 bytes a point on one CPU thread (docs/safety.md: 1024 on 31 frames took 69 s and 3.8 GB; 4096 would take
#: ~16 times that). Tracks resolve far less than 1024 points per axis (the widget's limit is 512).
MAX_LATENT_GRID = 1024
#: Peak memory per output point of the latent-field grid (bytes; measured, see docs/safety.md).
LATENT_GRID_BYTES = 130


def check_latent_grid(grid, n_frames: int, name: str = "grid", *, draws: int = 0) -> int:
    """Refuse a latent-field output grid above :data:`MAX_LATENT_GRID` or larger than the memory, before training.

    Parameters
    ----------
    grid : int
        Output grid points per spatial axis.
    n_frames : int
        Frames of the output (the tracks' first to last frame).
    name : str
        How the message names the parameter (``"--grid"`` on the command line).
    draws : int
        Posterior field draws kept at every point (the Bayesian latent field: chains x draws, float64 twice).

    Returns
    -------
    int
        ``grid``.
    """
    grid = check_number(grid, name, minimum=2, integer=True)
    if grid > MAX_LATENT_GRID:
        raise InputError(f"{name} {grid} is above the limit of {MAX_LATENT_GRID} points per axis (the field is "
                         f"evaluated at frames x {name}^2 points: minutes and tens of GB at 4096): use {name} "
                         f"{MAX_LATENT_GRID} or less (default 64)")
    check_memory(float(n_frames) * grid * grid * (LATENT_GRID_BYTES + 16 * max(int(draws), 0)),
                 f"the latent field on {n_frames} frames x {grid} x {grid} points",
                 f"lower {name}" + (" or the draws (chains x draws)" if draws else ""))
    return grid


def latent_grid_int(text):
    """An argparse type: a latent-field grid size, 2 .. :data:`MAX_LATENT_GRID` (see :func:`check_latent_grid`)."""
    value = int_range(2)(text)
    try:
        check_latent_grid(value, 1, "--grid")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("--grid ", "", 1)) from None
    return value


def check_spacing(spacing, n_axes: int, flag: str = "--spacing") -> None:
    """Raise :class:`InputError` when ``spacing`` gives more values than the data has spatial axes (the extra leading
    values were silently dropped: ``--spacing 1 5 9`` on a 2D movie used 5 x 9); ``None`` passes."""
    if spacing is None or not hasattr(spacing, "__len__"):
        return
    if len(spacing) > n_axes:
        axes = ("z", "y", "x")[-n_axes:] if 0 < n_axes <= 3 else ()
        raise InputError(f"{flag} gives {len(spacing)} values but the data has {n_axes} spatial axes "
                         f"({', '.join(axes)}): give one pixel size per axis")


def check_order(low, high, low_name: str, high_name: str, *, strict: bool = False) -> None:
    """Raise :class:`InputError` unless ``low <= high`` (``<`` with ``strict``); ``None`` values pass."""
    if low is None or high is None:
        return
    if low > high or (strict and low == high):
        raise InputError(f"{low_name} {low:g} is {'not below' if strict else 'larger than'} {high_name} {high:g}: "
                         f"{low_name} must be {'<' if strict else '<='} {high_name}")


# ------------------------------------------------------------------------------------------------
# argparse types


def _number_type(name: str, *, integer: bool = False, **bounds):
    def convert(text):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{'a whole number' if integer else 'a number'} is needed, "
                                             f"got {text!r}") from None
        try:
            check_number(value, "the value", integer=integer, **bounds)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("the value ", "", 1)) from None
        return value

    convert.__name__ = name
    return convert


finite_float = _number_type("finite_float")
positive_float = _number_type("positive_float", minimum=0, open_min=True)
nonneg_float = _number_type("nonneg_float", minimum=0)
#: a probability threshold in (0, 1]
probability = _number_type("probability", minimum=0, maximum=1, open_min=True)
#: a fraction in [0, 1]
fraction = _number_type("fraction", minimum=0, maximum=1)
positive_int = _number_type("positive_int", integer=True, minimum=1)
nonneg_int = _number_type("nonneg_int", integer=True, minimum=0)
#: a random seed: numpy's generators and legacy ``np.random.seed`` take 0 .. 2**32 - 1 (a negative one was a ValueError
#: deep in the work); the CLI gives every ``--seed`` / ``--*seeds`` option declared ``type=int`` this type
seed_int = _number_type("seed_int", integer=True, minimum=0, maximum=2**32 - 1)


def int_range(lo: int | None = None, hi: int | None = None):
    """An argparse type: a whole number in ``[lo, hi]``."""
    return _number_type(f"int_range({lo}, {hi})", integer=True, minimum=lo, maximum=hi)


def float_range(lo: float | None = None, hi: float | None = None, *, open_min: bool = False, open_max: bool = False):
    """An argparse type: a finite number in ``[lo, hi]`` (open ends on request)."""
    return _number_type(f"float_range({lo}, {hi})", minimum=lo, maximum=hi, open_min=open_min, open_max=open_max)


def odd_int(text):
    """An argparse type: a positive odd whole number (smoothing windows)."""
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"an odd number is needed, got {text}")
    return value


def ordered(low: str, high: str, *, strict: bool = False):
    """A post-parse check (``set_defaults(checks=[...])``): ``args.low <= args.high`` when both are given."""
    def check(args):
        check_order(getattr(args, low), getattr(args, high), "--" + low.replace("_", "-"),
                    "--" + high.replace("_", "-"), strict=strict)

    return check


def all_ordered(dest: str, *, strict: bool = True):
    """A post-parse check: the values of the list option ``args.dest`` (e.g. ``--sigma-range LOW HIGH``) increase."""
    def check(args):
        vals = getattr(args, dest)
        if vals:
            flag = "--" + dest.replace("_", "-")
            for a, b in zip(vals, vals[1:]):
                check_order(a, b, f"{flag} value", "the next value", strict=strict)

    return check


def run_checks(args) -> None:
    """Run the post-parse checks a parser declared with ``set_defaults(checks=[...])``."""
    for check in getattr(args, "checks", None) or ():
        check(args)


# ------------------------------------------------------------------------------------------------
# outputs


class OutputPath(str):
    """A path the command writes (a ``str``), tagged with its kind and accepted suffixes."""

    kind = "file"
    suffixes: tuple[str, ...] | None = None

    def __reduce__(self):
        return (str, (str(self),))


def output(*suffixes: str, kind: str = "file"):
    """An argparse type for an output path: ``kind`` is ``"file"``, ``"store"`` or ``"folder"`` (see
    :func:`napari_dynfit._io.check_output`); ``suffixes`` the accepted endings (none: any)."""
    def convert(text):
        if not text.strip():
            raise argparse.ArgumentTypeError("an output path is needed")
        out = OutputPath(text)
        out.kind = kind
        out.suffixes = tuple(suffixes) or None
        return out

    convert.__name__ = "output path"
    convert.suffixes, convert.kind = tuple(suffixes) or None, kind
    return convert


# ------------------------------------------------------------------------------------------------
# memory


def available_memory() -> int:
    """Bytes of memory available to a new allocation (psutil when installed, else ``os.sysconf``)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return 1 << 62


def check_memory(nbytes: float, what: str, fix: str) -> None:
    """Raise :class:`InputError` when ``nbytes`` exceed the available memory.

    Parameters
    ----------
    nbytes : float
        Estimated peak memory of the work.
    what : str
        The work, e.g. ``"a grid of 512 x 512 x 200 frames"``.
    fix : str
        The flag that reduces it, e.g. ``"increase --spacing"``.
    """
    from ._io import _fmt_bytes

    avail = available_memory()
    if nbytes > avail:
        raise InputError(f"{what} needs about {_fmt_bytes(nbytes)} of memory but {_fmt_bytes(avail)} are available: "
                         f"{fix}")


def memory_check(estimate, what: str, fix: str):
    """A post-parse check: ``estimate(args)`` bytes must fit the available memory (see :func:`check_memory`)."""
    def check(args):
        check_memory(float(estimate(args)), what, fix)

    return check
