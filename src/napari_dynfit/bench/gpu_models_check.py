"""Device check of the learning models (run by ``benchmarks/gpu_session.sh`` on a GPU machine; no pyapr there).

Issue 19: the kinetic solver (Saintillan-Shelley, 32^2 x 32 angles) and the moment model with the learned and
Bingham closures, the same initial state integrated on the CPU and on ``--device`` (float64), agreement and time
per step for one member and for a batch. Issue 20: a small Bayesian latent field (chemotaxis, output-layer
sampler) on both devices from the same seed: finite posterior, agreement of the posterior mean, wall time.
Prints one JSON object; ``--quick`` shrinks everything (a dry run on the CPU: ``--device cpu --quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def kinetic_check(device: str, *, steps: int, batch: tuple) -> dict:
    """Kinetic and moment-model steps on the CPU and on ``device``: max relative difference, ms per step."""
    import torch

    from napari_dynfit.models.closure.kinetic import KineticSolver, SuspensionParams
    from napari_dynfit.models.closure.learned import LearnedClosure
    from napari_dynfit.models.closure.moment_model import MomentSolver, state_from_moments
    from napari_dynfit.models.closure.moments import bingham_closure

    params = SuspensionParams(alpha=-3.0, zeta=0.3)
    out = {}
    finals = {}
    agree_steps = max(steps // 4, 5)
    for dev in ("cpu", device):
        solver = KineticSolver(params, n=32, n_theta=32, dt=0.01, device=dev)
        psi0 = torch.stack([solver.initial_condition(seed=s, amplitude=0.2) for s in range(max(batch))])
        with torch.no_grad():  # agreement: 4 members, the same steps on both devices
            ph = solver._fft(psi0[:4])
            for _ in range(agree_steps):
                ph = solver.step(ph)
            finals[dev] = solver.moments(solver._ifft(ph))
        times = {}
        for m in (batch if dev != "cpu" else batch[:2]):  # the CPU only for the small batches (time)
            n = steps if dev != "cpu" else max(steps // 10, 3)
            with torch.no_grad():
                ph = solver._fft(psi0[:m])
                for _ in range(3):  # warm-up (FFT plans, kernels)
                    ph = solver.step(ph)
                _sync(dev)
                t0 = time.perf_counter()
                for _ in range(n):
                    ph = solver.step(ph)
                _sync(dev)
            times[m] = 1e3 * (time.perf_counter() - t0) / n
        out[f"kinetic_ms_per_step_{dev}"] = {f"members_{m}": v for m, v in times.items()}
    out["kinetic_agreement_steps"] = agree_steps
    out["kinetic_rel_diff_c"] = _rel(finals[device]["c"].cpu(), finals["cpu"]["c"])
    out["kinetic_rel_diff_D"] = _rel(finals[device]["D"].cpu(), finals["cpu"]["D"])
    state0 = state_from_moments(finals["cpu"]["c"], finals["cpu"]["D"])
    for name, closure in (("bingham", bingham_closure), ("learned", LearnedClosure(seed=3))):
        if name == "learned":  # a non-trivial network (the untrained one is Bingham)
            with torch.no_grad():
                closure.net[-1].weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
        res = {}
        for dev in ("cpu", device):
            cl = closure.to(dev) if name == "learned" else closure
            ms = MomentSolver(params, cl, n=32, dt=0.05, device=dev)
            sh = ms.grid.fft(state0.to(dev))
            sh = ms.step(sh)
            _sync(dev)
            t0 = time.perf_counter()
            with torch.no_grad():
                for _ in range(max(steps // 10, 3)):
                    sh = ms.step(sh)
            _sync(dev)
            res[dev] = (1e3 * (time.perf_counter() - t0) / max(steps // 10, 3), ms.grid.ifft(sh).cpu())
        out[f"moment_{name}_ms_per_step"] = {dev: v[0] for dev, v in res.items()}
        out[f"moment_{name}_rel_diff"] = _rel(res[device][1], res["cpu"][1])
    return out


def bpinn_check(device: str, *, quick: bool) -> dict:
    """A small chemotaxis posterior on the CPU and on ``device`` (same seed): finite, mean agreement, time."""
    from napari_dynfit.models.pinn import grid_source
    from napari_dynfit.models.pinn.bayes_latent import bayesian_latent_field
    from napari_dynfit.sim.chemotaxis import simulate_chemotaxis

    sim = simulate_chemotaxis(n_cells=60 if quick else 150, n_frames=6 if quick else 8, substeps=4, grid=32, seed=1)
    fb = sim.field_bundle()
    source = grid_source(fb["s"][0], fb.coords["y"], fb.coords["x"], periodic=True)
    kw = dict(grid=16, dt=sim.frame_interval, box=(10.0, 10.0), source=source, draws=5 if quick else 20,
              tune=5 if quick else 20, chains=2, n_collocation=300 if quick else 600,
              warmup_steps=30 if quick else 150, lbfgs_steps=10 if quick else 20, seed=0)
    out, means = {}, {}
    for dev in ("cpu", device):
        t0 = time.perf_counter()
        bundle, _ = bayesian_latent_field(sim.to_table(), device=dev, **kw)
        out[f"bpinn_wall_s_{dev}"] = time.perf_counter() - t0
        means[dev] = np.asarray(bundle["phi"])
        out[f"bpinn_finite_{dev}"] = bool(np.isfinite(bundle["phi"]).all() and np.isfinite(bundle["phi_std"]).all())
        out[f"bpinn_std_mean_{dev}"] = float(np.mean(bundle["phi_std"]))
    truth = np.asarray(fb["phi"])
    out["bpinn_mean_rel_diff_device_vs_cpu"] = float(np.linalg.norm(means[device] - means["cpu"])
                                                     / max(np.linalg.norm(means["cpu"]), 1e-300))
    out["bpinn_truth_shape"] = list(truth.shape)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-bpinn", action="store_true")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, min(4, (os.cpu_count() or 1) // 4)))  # a few, never oversubscribed
    res = {"device": args.device, "torch": torch.__version__,
           "card": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}
    t0 = time.perf_counter()
    try:
        res.update(kinetic_check(args.device, steps=20 if args.quick else 200,
                                   batch=(1, 4) if args.quick else (1, 4, 64, 128)))
    except Exception as exc:  # noqa: BLE001 - a device check reports what broke and goes on
        res["kinetic_error"] = f"{type(exc).__name__}: {exc}"
    if not args.skip_bpinn:
        try:
            res.update(bpinn_check(args.device, quick=args.quick))
        except Exception as exc:  # noqa: BLE001
            res["bpinn_error"] = f"{type(exc).__name__}: {exc}"
    res["wall_s"] = time.perf_counter() - t0
    ok = [res.get(k, 1.0) < 1e-6 for k in ("kinetic_rel_diff_c", "moment_bingham_rel_diff", "moment_learned_rel_diff")]
    res["pass"] = bool(all(ok) and "kinetic_error" not in res and "bpinn_error" not in res
                       and all(v for k, v in res.items() if k.startswith("bpinn_finite")))
    print(json.dumps(res, indent=1, default=float))
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
