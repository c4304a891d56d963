"""Vicsek travelling bands: does the learned (rho, p) model reproduce the band speed?

For each seed: :func:`napari_dynfit.sim.vicsek_bands_preset` (4096 particles, box 32 x 128) runs
6000 steps (t = 600) until bands have formed, then 800 more steps are recorded every 4 steps
(frame interval 0.4, 201 frames). The particles are coarse-grained (Gaussian sigma = 2, spacing 1)
and averaged over y (the bands are perpendicular to x) into 1D fields ``rho(t, x)``,
``p(t, x)`` (x component); :func:`napari_dynfit.models.pde.discover_pde` learns ``rho_t`` and
``p_t`` from the isotropic (rho, p) library (Ito weak form, spatial half-width 4); the model is
integrated pseudo-spectrally from the first recorded frame over the whole window (80 time units)
and the band speed (mean frame-to-frame shift of the density profile, from the periodic
cross-correlation peak) is compared with the particles'.

    python -m napari_dynfit.bench.vicsek_pde --seeds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_dynfit._io import emit_json
from napari_dynfit.fields import FieldBundle
from napari_dynfit.fields.coarse_grain import coarse_grain
from napari_dynfit.models.integrate import integrate_model
from napari_dynfit.models.pde import discover_pde
from napari_dynfit.sim import simulate_abp, vicsek_bands_preset


def band_speed(rho: np.ndarray, dt: float) -> float:
    """Mean speed of a 1D profile ``rho(t, x)`` (grid units per time) from cross-correlation peaks."""
    F = np.fft.rfft(rho - rho.mean(axis=1, keepdims=True), axis=1)
    n = rho.shape[1]
    shifts = []
    for k in range(1, len(rho)):
        cc = np.fft.irfft(F[k] * np.conj(F[k - 1]), n=n)
        s = int(np.argmax(cc))
        a, b, c = cc[s - 1], cc[s], cc[(s + 1) % n]
        sh = s + 0.5 * (a - c) / (a - 2 * b + c)
        shifts.append(sh - n if sh > n / 2 else sh)
    return float(np.mean(shifts) / dt)


def bands_1d(seed: int) -> FieldBundle:
    pre = vicsek_bands_preset(seed=seed)
    pre.update(n_steps=6000, save_every=1000)
    formed = simulate_abp(**pre)
    pre.update(n_steps=800, save_every=4, positions0=formed.positions[-1], orientations0=formed.orientations[-1],
               seed=seed + 1000)
    traj = simulate_abp(**pre)
    b2 = coarse_grain(traj, spacing=1.0, sigma=2.0)
    return FieldBundle({"rho": b2["rho"].mean(axis=1), "p": b2["p"][..., 1].mean(axis=1)[..., None]},
                       {"t": b2.coords["t"], "x": b2.coords["x"]}, periodic=(True,),
                       attrs={"source": f"vicsek_bands_preset(seed={seed}), y-averaged"})


def learn(seed: int) -> dict:
    t0 = time.perf_counter()
    b = bands_1d(seed)
    t1 = time.perf_counter()
    res = discover_pde(b, stochastic=True, half_width=(0, 4), seed=seed)
    t2 = time.perf_counter()
    sim = integrate_model(res.model, b, start=0)
    t3 = time.perf_counter()
    dx = b.spacing[0]
    observed = band_speed(b["rho"], b.dt) * dx
    simulated = band_speed(sim["rho"], b.dt) * dx
    return {"seed": seed, "equations": res.model["equations"], "observed_band_speed": observed,
            "model_band_speed": simulated, "relative_error": abs(simulated / observed - 1),
            "peak_density_observed": float(b["rho"][-1].max()), "peak_density_model": float(sim["rho"][-1].max()),
            "simulate_and_coarse_grain_s": t1 - t0, "discover_s": t2 - t1, "integrate_s": t3 - t2}


def run(seeds: int = 3) -> dict:
    runs = [learn(s) for s in range(seeds)]
    return {"within_10pct": f"{sum(r['relative_error'] <= 0.1 for r in runs)}/{seeds}",
            "max_relative_error": max(r["relative_error"] for r in runs), "runs": runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("-o", "--output", help="also write the JSON here")
    args = p.parse_args(argv)
    emit_json(run(args.seeds), args.output, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
