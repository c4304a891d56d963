"""Shared options of the commands that read fields (``discover-pde``, ``balance``, ``well-export``).

``--fields`` (names, space- or comma-separated), ``--trajectory``, ``--t-start``, ``--t-stop``,
``--t-step``; any format :func:`napari_dynfit.io.well.load_fields` reads (The Well ``.hdf5``,
``.zarr``/``.npz`` bundles, PDE-FIND ``.mat``).
"""

from __future__ import annotations

from ..validate import nonneg_int, positive_int


def add_field_source_arguments(parser) -> None:
    """Add the field-selection and time-window options to ``parser``."""
    parser.add_argument("--fields", nargs="+", default=None,
                        help="fields to use, space- or comma-separated (default all)")
    parser.add_argument("--trajectory", type=nonneg_int, default=0, help="The Well files: trajectory index (default 0)")
    parser.add_argument("--t-start", type=nonneg_int, default=0, help="first frame (default 0)")
    parser.add_argument("--t-stop", type=nonneg_int, default=None, help="stop frame, exclusive (default: last)")
    parser.add_argument("--t-step", type=positive_int, default=1, help="frame step (default 1)")


def field_names(args) -> list[str] | None:
    """The ``--fields`` names as a list (``None``: all)."""
    if not args.fields:
        return None
    return [name for item in args.fields for name in item.split(",") if name]


def load_fields_from_args(path, args, *, periodic=None):
    """Load the fields file ``path`` with the options of :func:`add_field_source_arguments`."""
    from ..io.well import load_fields

    return load_fields(path, fields=field_names(args), trajectory=args.trajectory, t_start=args.t_start,
                       t_stop=args.t_stop, t_step=args.t_step, periodic=periodic)
