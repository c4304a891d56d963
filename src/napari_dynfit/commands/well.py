"""``dynfit well-info`` (what a Well file holds), ``dynfit well-export`` (one trajectory -> fields store) and
``dynfit well-example`` (write an ``active_matter``-layout file)."""

from __future__ import annotations

from ..results import json_text
from ..validate import finite_float, int_range, memory_check, nonneg_float, output, positive_float, positive_int
from ._field_source import add_field_source_arguments, field_names


def _info(args) -> int:
    from ..io.well import well_info

    info = well_info(args.file)
    if args.json:
        d = {k: v for k, v in vars(info).items() if k != "path"}
        d["path"] = str(info.path)
        print(json_text(d, indent=2))
    else:
        print(info.to_text())
    return 0


def _example(args) -> int:
    from ..sim.well_example import write_active_matter_example

    path = write_active_matter_example(args.output, n_trajectories=args.trajectories, seed=args.seed,
                                       size=args.size, n_steps=args.steps, dt=args.dt,
                                       diffusivity=args.diffusivity, growth=args.growth)
    print(path)
    return 0


def _export(args) -> int:
    from ..fields.bundle import fields_output_path
    from ..io.well import read_well

    fields_output_path(args.output)
    bundle = read_well(args.file, trajectory=args.trajectory, t_start=args.t_start, t_stop=args.t_stop,
                       t_step=args.t_step, fields=field_names(args))
    out = bundle.save(args.output)
    print(f"{out}: fields {list(bundle.fields)} on a grid {bundle.shape} (t, {', '.join(bundle.space_axes)})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("well-info", help="describe a The Well HDF5 file (fields, grid, boundaries)",
                       description="Print the metadata of a The Well HDF5 file: fields by tensor order, grid, "
                                   "time steps, trajectories, boundary conditions and parameters.")
    p.add_argument("file", help="The Well .hdf5/.h5 file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_info)

    p = sub.add_parser("well-export", help="one trajectory (a time window) of a Well file -> fields .zarr/.npz",
                       description="Read one trajectory of a The Well file (optionally a frame window and a subset "
                                   "of fields) and write it as a dynfit fields store, axes (t, [z,] y, x).")
    p.add_argument("file", help="The Well .hdf5/.h5 file")
    p.add_argument("-o", "--output", required=True, type=output(".zarr", ".npz", kind="auto"), help="FIELDS.zarr or FIELDS.npz")
    add_field_source_arguments(p)
    p.set_defaults(func=_export)

    p = sub.add_parser("well-example", help="write a synthetic file in The Well's active_matter layout",
                       description="Write an active_matter-layout Well file (concentration, velocity, D, E on a "
                                   "periodic grid) whose concentration obeys c_t = Dc lap(c) + r c - r c^2.")
    p.add_argument("-o", "--output", required=True, type=output(".hdf5", ".h5"), help="output .hdf5 file")
    p.add_argument("--size", type=int_range(4), default=256, help="grid points per side (default 256)")
    p.add_argument("--steps", type=int_range(2), default=41, help="stored frames (default 41)")
    p.add_argument("--dt", type=positive_float, default=0.05, help="time between frames (default 0.05)")
    p.add_argument("--trajectories", type=positive_int, default=1, help="number of trajectories (default 1)")
    p.add_argument("--diffusivity", type=nonneg_float, default=0.1, help="Dc of the concentration law (default 0.1)")
    p.add_argument("--growth", type=finite_float, default=1.0, help="r of the concentration law (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_example, checks=[memory_check(
        lambda a: 120.0 * a.trajectories * a.steps * a.size ** 2, "the example file", "reduce --size or --steps")])
