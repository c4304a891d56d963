"""The GUI walk-through of ``docs/gui.md`` on the 2D sample, headless: the figures of the walk re-measured.

Does what the panel does with its defaults, without Qt: the sample *Active particles (2D+t)*
(:func:`napari_dynfit.sim.samples.active_particles_2d`, one seed each), object size from the movie
(:func:`napari_dynfit.detect.size.estimate_movie_spot_sigma`, the panel's and ``dynfit detect``'s rule), *Detect* (:func:`~napari_dynfit.detect.detect_movie` with the Track page's defaults),
*Track* (:func:`~napari_dynfit.track.link`, every parameter estimated), *Coarse-grain tracks ->
fields* (:func:`~napari_dynfit.fields.coarse_grain.coarse_grain_table` with the fields step's
defaults: kernel and grid from the data, gaps of tracks filled, periodic box of the sample) and
*Discover* (:func:`~napari_dynfit.models.pde.discover_pde`, Ito weak form, the PDE page's defaults).
Prints JSON: per seed the learned ``rho_t`` and ``p_t``, whether they hold exactly the sample's terms,
the relative coefficient errors against ``-v0``, ``-Dr``, ``-v0/2``, and the verdict.

    python -m napari_dynfit.bench.sample_walk --seeds 3 4 5
    python -m napari_dynfit.bench.sample_walk --seeds 3 --fov 128 --frames 50   # the too-small sample
    python -m napari_dynfit.bench.sample_walk --seeds 3 --truth                  # ground-truth tracks

``--cache DIR`` keeps each seed's tracks (``tracks-<seed>-<fov>-<frames>.parquet``) so that the fields
and model steps can be re-run alone (detection and tracking of the full sample take minutes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_dynfit._io import emit_json
from napari_dynfit.sim.samples import ABP_2D


def tracks_of(seed: int, *, fov=None, frames=None, truth: bool = False, cache: str | None = None):
    """Tracks table (``track_id, frame, y, x`` in um) of the sample as the panel makes it, and its metadata."""
    import pandas as pd

    from napari_dynfit.detect import detect_movie
    from napari_dynfit.detect.size import estimate_movie_spot_sigma
    from napari_dynfit.sim.samples import active_particles_2d
    from napari_dynfit.track import link

    key = f"{'truth' if truth else 'tracks'}-{seed}-{fov}-{frames}"
    path = Path(cache) / f"{key}.parquet" if cache else None
    timings = {}
    if path is not None and path.exists():
        df = pd.read_parquet(path)
        meta = dict(df.attrs)
        return df, meta, timings
    t0 = time.perf_counter()
    s = active_particles_2d(seed, fov=fov, frames=frames)
    timings["sample_s"] = time.perf_counter() - t0
    spacing = np.asarray(s.spacing, float)
    meta = {"dt": float(s.dt), "box": [float(n * sp) for n, sp in zip(s.movie.shape[1:], spacing)],
            "particles": int(s.params["simulation"]["n_particles"]), "frames": int(s.movie.shape[0])}
    if truth:
        df = s.truth[["track_id", "frame", "y", "x"]].copy()
    else:
        t0 = time.perf_counter()
        sigma = round(estimate_movie_spot_sigma(s.movie, spacing=tuple(spacing), warn=False).sigma, 2)  # as the panel
        det = detect_movie(s.movie, sigma=sigma, threshold_snr=5.0, split=True, spacing=list(spacing),
                           polarity="auto")
        timings["detect_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tr = link(det[["frame", "y", "x"]].copy(), spacing=list(spacing))
        timings["track_s"] = time.perf_counter() - t0
        df = tr[["track_id", "frame", "y", "x"]].copy()
        meta.update(spot_sigma=float(sigma), detections=int(len(det)))
    df[["y", "x"]] = df[["y", "x"]].to_numpy(float) * spacing
    df.attrs.update(meta)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path)
    return df, meta, timings


def walk(seed: int, *, fov=None, frames=None, truth: bool = False, cache: str | None = None) -> dict:
    """One seed of the walk: tracks -> fields (panel defaults) -> Discover (panel defaults)."""
    from napari_dynfit.fields.coarse_grain import coarse_grain_table
    from napari_dynfit.models.pde import default_equations, discover_pde

    df, meta, timings = tracks_of(seed, fov=fov, frames=frames, truth=truth, cache=cache)
    t0 = time.perf_counter()
    bundle = coarse_grain_table(df, box=tuple(meta["box"]), periodic=True, dt=meta["dt"], fields=("rho", "p"))
    timings["fields_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = discover_pde(bundle, default_equations(bundle), stochastic=True, seed=0)
    timings["discover_s"] = time.perf_counter() - t0
    eq = res.equations
    v0, Dr = ABP_2D["v0"], ABP_2D["Dr"]
    truth_eq = {"rho_t": {"div(p)": -v0}, "p_t": {"p": -Dr, "grad(rho)": -v0 / 2}}
    exact = all(set(eq.get(lhs, {})) == set(t) for lhs, t in truth_eq.items())
    errors = {f"{lhs} {k}": abs(eq[lhs][k] / c - 1) for lhs, t in truth_eq.items() for k, c in t.items()
              if k in eq.get(lhs, {})}
    return {"seed": seed, "particles": meta["particles"], "frames": meta["frames"], "tracks": "truth" if truth else
            "detected+linked", "tracks_n": int(df["track_id"].nunique()), "kernel_sigma": bundle.attrs.get("sigma"),
            "grid_spacing": list(bundle.spacing), "identifiable": bool(res.identifiable), "reasons": res.reasons,
            "rho_t": eq.get("rho_t"), "p_t": eq.get("p_t"), "exact_terms": bool(exact),
            "relative_errors": errors, "max_relative_error": max(errors.values()) if exact else None,
            "intervals": res.model.get("confidence_intervals"),
            "relative_half_widths": {lhs: e.get("relative_half_width") for lhs, e in
                                     res.model.get("identifiability", {}).get("equations", {}).items()}, **timings}


def run(seeds, *, fov=None, frames=None, truth: bool = False, cache: str | None = None) -> dict:
    runs = [walk(s, fov=fov, frames=frames, truth=truth, cache=cache) for s in seeds]
    ok = [r for r in runs if r["identifiable"] and r["exact_terms"]]
    return {"truth": {"rho_t": {"div(p)": -ABP_2D["v0"]}, "p_t": {"p": -ABP_2D["Dr"], "grad(rho)": -ABP_2D["v0"] / 2}},
            "identifiable_with_exact_terms": f"{len(ok)}/{len(runs)}",
            "max_relative_error": max((r["max_relative_error"] for r in ok), default=None), "runs": runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    p.add_argument("--fov", type=float, help="side of a smaller piece of the sample (um)")
    p.add_argument("--frames", type=int, help="frames of a shorter piece")
    p.add_argument("--truth", action="store_true", help="ground-truth tracks instead of detection + linking")
    p.add_argument("--cache", help="folder for the tracks of each seed (re-runs skip detection and tracking)")
    p.add_argument("-o", "--output", help="also write the JSON here")
    args = p.parse_args(argv)
    emit_json(run(args.seeds, fov=args.fov, frames=args.frames, truth=args.truth, cache=args.cache),
              args.output, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
