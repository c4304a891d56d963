"""Hydrodynamics learned from non-interacting active Brownian particles (ABPs).

Simulates ``N`` ABPs (v0 = 1, Dr = 1, Dt = 0.05, periodic box L = 20) from a density-modulated
start ``rho ~ 1 + 0.6 cos(2 pi x / L) cos(2 pi y / L)`` with isotropic orientations, coarse-grains
them (Gaussian kernel sigma = 1, grid spacing 0.5, frames every 0.05 for t in [0, 10]) and learns
``rho_t`` and ``p_t`` with :func:`napari_dynfit.models.pde.discover_pde` (isotropic (rho, p)
library, Ito weak form: spatial test functions of half-width 5 grid points, forward differences in
time). The exact hydrodynamics of the kernel fields are

    rho_t = -v0 div(p) + Dt lap(rho)
    p_t   = -Dr p - (v0/2) grad(rho) + Dt lap(p) - v0 div(Q)

(Q, the nematic tensor, is not in the library). Prints JSON: per seed the learned equations, whether
``rho_t = -v0 div(p) [+ Dt lap(rho)]`` and ``p_t = -Dr p - (v0/2) grad(rho)`` were found with every
coefficient within 10 %, and timings (noisy: shared 2-core machine).

    python -m napari_dynfit.bench.abp_pde --particles 20000 --seeds 5
    python -m napari_dynfit.bench.abp_pde --particles 100000 --seeds 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_dynfit._io import emit_json
from napari_dynfit.fields.coarse_grain import coarse_grain
from napari_dynfit.models.pde import discover_pde
from napari_dynfit.sim.abp import simulate_abp

V0, DR, DT_TRANS, L = 1.0, 1.0, 0.05, 20.0


def modulated_positions(n: int, rng, amplitude: float = 0.6) -> np.ndarray:
    """``n`` positions in ``[0, L)^2`` with density ``~ 1 + amplitude cos(2 pi x/L) cos(2 pi y/L)``."""
    out, have = [], 0
    while have < n:
        c = rng.uniform(0, L, (n, 2))
        keep = rng.uniform(0, 1 + amplitude, n) < 1 + amplitude * np.cos(2 * np.pi * c[:, 1] / L) * np.cos(
            2 * np.pi * c[:, 0] / L)
        out.append(c[keep])
        have += int(keep.sum())
    return np.concatenate(out)[:n]


def learn(n_particles: int, seed: int, t_end: float = 10.0) -> dict:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    traj = simulate_abp(n_particles, int(round(t_end / 0.005)), box=L, dt=0.005, v0=V0, Dr=DR, Dt=DT_TRANS,
                        save_every=10, positions0=modulated_positions(n_particles, rng), seed=seed)
    t1 = time.perf_counter()
    fields = coarse_grain(traj, spacing=0.5, sigma=1.0)
    t2 = time.perf_counter()
    res = discover_pde(fields, half_width=(0, 5, 5), max_samples=10 ** 6, seed=seed)
    t3 = time.perf_counter()
    eq = res.equations
    rho, p = eq["rho_t"], eq["p_t"]
    ok_rho = set(rho) in ({"div(p)"}, {"div(p)", "lap(rho)"}) and abs(rho["div(p)"] / -V0 - 1) <= 0.1
    ok_p = (set(p) == {"p", "grad(rho)"} and abs(p["p"] / -DR - 1) <= 0.1
            and abs(p["grad(rho)"] / (-V0 / 2) - 1) <= 0.1)
    dt_found = "lap(rho)" in rho and abs(rho["lap(rho)"] / DT_TRANS - 1) <= 0.5
    return {"seed": seed, "rho_t": rho, "p_t": p, "rho_ok": bool(ok_rho), "p_ok": bool(ok_p),
            "both_ok": bool(ok_rho and ok_p), "Dt_lap_rho_found": bool("lap(rho)" in rho),
            "Dt_estimate": rho.get("lap(rho)"), "Dt_within_50pct": bool(dt_found),
            "intervals": res.model["confidence_intervals"],
            "simulate_s": t1 - t0, "coarse_grain_s": t2 - t1, "discover_s": t3 - t2}


def run(n_particles: int = 20000, seeds: int = 5) -> dict:
    runs = [learn(n_particles, s) for s in range(seeds)]
    return {"particles": n_particles, "truth": {"v0": V0, "Dr": DR, "Dt": DT_TRANS},
            "both_equations_within_10pct": f"{sum(r['both_ok'] for r in runs)}/{seeds}",
            "lap_rho_found": f"{sum(r['Dt_lap_rho_found'] for r in runs)}/{seeds}", "runs": runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--particles", type=int, default=20000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("-o", "--output", help="also write the JSON here")
    args = p.parse_args(argv)
    emit_json(run(args.particles, args.seeds), args.output, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
