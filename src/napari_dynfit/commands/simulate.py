"""``dynfit simulate {abp,cells}``: simulated fluorescence movies with ground truth.

Writes into the output folder ``DIR``:

* ``movie.ome.zarr`` (OME-NGFF 0.4, one scale level, axes ``t, [z,] y, x`` with the physical pixel
  size and frame interval) or ``movie.tif`` (ImageJ hyperstack with spacing, resolution and
  ``finterval``) with ``--format tiff``;
* ``labels.ome.zarr`` / ``labels.tif`` (cells only): ground-truth masks, label = ``track_id``;
* ``truth.csv``: ground truth in pixel coordinates (``track_id, frame, [z,] y, x, parent_id`` ...);
* ``simulation.json``: every parameter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import atomic_path
from ..errors import InputError
from ..results import json_text
from ..tables import write_table
from ..validate import finite_float, nonneg_float, output, positive_float, positive_int


def write_image(array, path, *, spacing, dt: float, fmt: str = "zarr", name: str = "image") -> Path:
    """Write a ``(t, [z,] y, x)`` movie as OME-Zarr (NGFF 0.4) or an ImageJ TIFF, atomically.

    Parameters
    ----------
    array : ndarray, shape (t, [z,] y, x)
    path : str or Path
        Destination (``.ome.zarr`` / ``.zarr`` directory or ``.tif``).
    spacing : sequence of float
        Physical pixel size per spatial axis ``(z,) y, x`` (micrometres).
    dt : float
        Frame interval.
    fmt : {"zarr", "tiff"}
    name : str
        Image name stored in the metadata.
    """
    path = Path(path)
    d = array.ndim - 1
    axes = "tzyx"[-array.ndim:] if d == 3 else "tyx"
    if fmt == "zarr":
        import zarr

        with atomic_path(path, is_dir=True) as tmp:
            grp = zarr.open_group(str(tmp), mode="w", zarr_format=2)
            chunks = (1,) + array.shape[1:]
            grp.create_array("0", data=array, chunks=chunks)
            units = [{"name": "t", "type": "time", "unit": "second"}] + [
                {"name": a, "type": "space", "unit": "micrometer"} for a in axes[1:]]
            grp.attrs["multiscales"] = [{
                "version": "0.4", "name": name, "axes": units,
                "datasets": [{"path": "0", "coordinateTransformations": [
                    {"type": "scale", "scale": [float(dt), *map(float, spacing)]}]}],
            }]
        return path
    if fmt == "tiff":
        import tifffile

        if array.dtype not in (np.uint8, np.uint16, np.float32):
            if np.issubdtype(array.dtype, np.integer) and array.min() >= 0 and array.max() <= 65535:
                array = array.astype(np.uint16)  # ImageJ TIFF has no int32 (labels)
            else:
                raise InputError(f"ImageJ TIFF cannot store {array.dtype} values in [{array.min()}, {array.max()}]: "
                                 "use --format zarr")
        meta = {"axes": axes.upper(), "unit": "um", "finterval": float(dt)}
        if d == 3:
            meta["spacing"] = float(spacing[0])
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, array, imagej=True, metadata=meta,
                             resolution=(1.0 / float(spacing[-1]), 1.0 / float(spacing[-2])))
        return path
    raise InputError(f"unknown format '{fmt}': use 'zarr' or 'tiff'")


def _output_dir(path) -> Path:
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"output '{out}' is a file: give a folder path to -o")
    if not out.parent.exists():
        raise InputError(f"the parent folder of '{out}' does not exist: create it first or choose another -o")
    out.mkdir(exist_ok=True)
    return out


def _spatial(values, dim, what, default=None):
    if values is None:
        values = default[-dim:]
    vals = list(values)
    if len(vals) == 1:
        vals = vals * dim
    if len(vals) != dim:
        raise InputError(f"{what} has {len(vals)} values for --dim {dim}: give 1 or {dim} ((z) y x)")
    return vals


def _geometry(args, count, count_flag, default_shape, default_spacing):
    """Shape, pixel size, PSF, output folder, physical box and generator from the common options."""
    dim = args.dim
    shape = _spatial(args.shape, dim, "--shape", default_shape)
    if any(s < 1 for s in shape) or args.frames < 1 or count < 1:
        raise InputError(f"sizes must be positive (--shape, --frames, {count_flag})")
    spacing = [float(s) for s in _spatial(args.pixel_size, dim, "--pixel-size", default_spacing)]
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise InputError(f"--pixel-size must be positive, got {spacing}")
    psf = _spatial(args.psf_sigma, dim, "--psf-sigma") if args.psf_sigma else None
    out = _output_dir(args.output)
    box = [n * s for n, s in zip(shape, spacing)]
    return dim, shape, spacing, psf, out, box, np.random.default_rng(args.seed)


def _write_outputs(out: Path, movie, truth, labels, spacing, dt, fmt, params) -> list[Path]:
    ext = ".ome.zarr" if fmt == "zarr" else ".tif"
    written = [write_image(movie, out / f"movie{ext}", spacing=spacing, dt=dt, fmt=fmt, name="movie")]
    if labels is not None:
        written.append(write_image(labels, out / f"labels{ext}", spacing=spacing, dt=dt, fmt=fmt, name="labels"))
    written.append(write_table(truth, out / "truth.csv"))
    with atomic_path(out / "simulation.json") as tmp:
        tmp.write_text(json_text(params, indent=2))
    written.append(out / "simulation.json")
    return written


def _cmd_abp(args) -> int:
    from ..sim import render_movie, simulate_abp

    dim, shape, spacing, psf, out, box, rng = _geometry(args, args.n_particles, "--n-particles",
                                                        (64, 256, 256), (0.5, 0.5, 0.5))
    traj = simulate_abp(args.n_particles, (args.frames - 1) * args.save_every, dim=dim, box=box, dt=args.dt,
                        v0=args.v0, Dr=args.Dr, Dt=args.Dt, align=args.align, align_radius=args.align_radius,
                        speed_density=args.rho_star, save_every=args.save_every, seed=rng)
    table = traj.to_table()
    table["parent_id"] = -1
    movie, truth = render_movie(table, tuple(shape), scale=spacing, psf_sigma=psf, snr=args.snr,
                                background=args.background, read_noise=args.read_noise, seed=rng)
    params = dict(model="abp", simulation=traj.params, spacing=spacing, shape=shape, psf_sigma=truth.attrs["psf_sigma"],
                  snr=args.snr, background=args.background, read_noise=args.read_noise, seed=args.seed)
    for p in _write_outputs(out, movie, truth, None, spacing, traj.frame_interval, args.format, params):
        print(p)
    return 0


def _cmd_cells(args) -> int:
    from ..sim import render_cells, simulate_dividing_cells

    dim, shape, spacing, psf, out, box, rng = _geometry(args, args.n_initial, "--n-initial",
                                                        (32, 96, 96), (1.0, 0.5, 0.5))
    table = simulate_dividing_cells(args.n_initial, args.frames, dim=dim, box=box, division_rate=args.division_rate,
                                    death_rate=args.death_rate, daughter_distance=args.daughter_distance,
                                    diffusion=args.diffusion, radius=args.radius, seed=rng)
    movie, labels, truth = render_cells(table, tuple(shape), scale=spacing, psf_sigma=psf, snr=args.snr,
                                        background=args.background, read_noise=args.read_noise, seed=rng)
    params = dict(model="cells", n_initial=args.n_initial, frames=args.frames, dim=dim, box=box,
                  division_rate=args.division_rate, death_rate=args.death_rate,
                  daughter_distance=args.daughter_distance, diffusion=args.diffusion, radius=args.radius,
                  spacing=spacing, shape=shape, psf_sigma=truth.attrs["psf_sigma"], snr=args.snr,
                  background=args.background,
                  read_noise=args.read_noise, seed=args.seed)
    for p in _write_outputs(out, movie, truth, labels, spacing, 1.0, args.format, params):
        print(p)
    return 0


def _common(p, *, dim, frames, shape, pixel) -> None:
    p.add_argument("-o", "--output", required=True, type=output(kind="folder"),
                   help="output folder (created; its parent must exist)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=dim, help=f"spatial dimension (default {dim})")
    p.add_argument("--frames", type=positive_int, default=frames, help=f"number of frames (default {frames})")
    p.add_argument("--shape", type=positive_int, nargs="+",
                   help=f"image size in pixels, (z) y x or one value for all axes (default {shape})")
    p.add_argument("--pixel-size", type=positive_float, nargs="+",
                   help=f"physical pixel size (um), one value or one per axis (default {pixel})")
    p.add_argument("--psf-sigma", type=positive_float, nargs="+", help="PSF standard deviation in pixels, one or per axis")
    p.add_argument("--snr", type=positive_float, default=10.0, help="peak signal / noise std at the peak (default 10)")
    p.add_argument("--background", type=nonneg_float, default=100.0, help="background level, photo-electrons (default 100)")
    p.add_argument("--read-noise", type=nonneg_float, default=2.0, help="Gaussian read noise std (default 2)")
    p.add_argument("--format", choices=("zarr", "tiff"), default="zarr", help="movie format (default OME-Zarr)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def register(sub) -> None:
    p = sub.add_parser("simulate", help="simulate a fluorescence movie with ground truth (particles or cells)",
                       description="Simulate active particles or dividing cells, render a noisy fluorescence movie "
                                   "and write it (OME-Zarr or TIFF) with the ground truth (truth.csv).")
    ssub = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    a = ssub.add_parser("abp", help="active Brownian particles (optional alignment, density-dependent speed)")
    _common(a, dim=2, frames=50, shape="256 256 (2D), 64 256 256 (3D)", pixel=0.5)
    a.add_argument("--n-particles", type=positive_int, default=150, help="number of particles (default 150)")
    a.add_argument("--dt", type=positive_float, default=0.01, help="integration time step, s (default 0.01)")
    a.add_argument("--save-every", type=positive_int, default=10, help="steps per frame (default 10)")
    a.add_argument("--v0", type=finite_float, default=8.0, help="self-propulsion speed, um/s (default 8)")
    a.add_argument("--Dr", type=nonneg_float, default=0.5, help="rotational diffusion, 1/s (default 0.5)")
    a.add_argument("--Dt", type=nonneg_float, default=0.05, help="translational diffusion, um^2/s (default 0.05)")
    a.add_argument("--align", type=finite_float, default=0.0, help="alignment strength, 1/s (default 0: none)")
    a.add_argument("--align-radius", type=positive_float, default=2.0, help="alignment / density radius, um (default 2)")
    a.add_argument("--rho-star", type=positive_float, help="density-dependent speed v0 (1 - rho/rho_star), particles/um^d")
    a.set_defaults(func=_cmd_abp)
    c = ssub.add_parser("cells", help="dividing cells with lineage and ground-truth masks")
    _common(c, dim=3, frames=25, shape="32 96 96", pixel="1.0 0.5 0.5")
    c.add_argument("--n-initial", type=positive_int, default=10, help="cells on the first frame (default 10)")
    c.add_argument("--division-rate", type=nonneg_float, default=0.06, help="divisions per cell per frame (default 0.06)")
    c.add_argument("--death-rate", type=nonneg_float, default=0.0, help="deaths per cell per frame (default 0)")
    c.add_argument("--daughter-distance", type=positive_float, help="daughters' distance at birth, um (default 1.2 radius)")
    c.add_argument("--diffusion", type=nonneg_float, default=0.1, help="diffusion, um^2 per frame (default 0.1)")
    c.add_argument("--radius", type=positive_float, default=2.5, help="cell radius, um (default 2.5)")
    c.set_defaults(func=_cmd_cells)
