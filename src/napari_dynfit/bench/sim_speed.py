"""Simulator benchmark: ABP speed (10^5 particles x 100 steps), neighbour search vs scipy, Vicsek bands.

Prints JSON. Wall times depend on what else runs on the machine; CPU times (``*_cpu_s``) are the
process's own. The anchor for the neighbour search is scipy's ``cKDTree`` with a periodic
``boxsize`` (``query_ball_point`` + per-particle sums), the obvious library alternative to our numba
cell lists; it is timed on a few steps of the same system and extrapolated per step.

Usage::

    python -m napari_dynfit.bench.sim_speed [-o result.json] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
from scipy.spatial import cKDTree

from napari_dynfit._io import emit_json
from napari_dynfit.sim import simulate_abp, vicsek_bands_preset
from napari_dynfit.sim._neighbours import NeighbourSums


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _band_stats(tr, bins=64):
    L = tr.box[1]
    prof = np.array([np.histogram(p[:, 1], bins=bins, range=(0, L))[0] for p in tr.positions], dtype=float)
    shifts = []
    for k in range(len(prof) - 20, len(prof) - 1):
        a, b = prof[k] - prof[k].mean(), prof[k + 1] - prof[k + 1].mean()
        cc = np.fft.irfft(np.fft.rfft(b) * np.conj(np.fft.rfft(a)), n=bins)
        s = int(np.argmax(cc))
        shifts.append((s - bins if s > bins // 2 else s) * L / bins)
    return {
        "band_contrast_std_over_mean": float(prof[-1].std() / prof[-1].mean()),
        "poisson_contrast": float(1 / np.sqrt(prof[-1].mean())),
        "band_peak_over_mean": float(prof[-1].max() / prof[-1].mean()),
        "band_speed_over_v0": float(np.mean(shifts) / tr.frame_interval / tr.params["v0"]),
        "polar_order": float(np.linalg.norm(tr.orientations[-1].mean(0))),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output")
    ap.add_argument("--quick", action="store_true", help="10^4 particles instead of 10^5, no bands run")
    args = ap.parse_args(argv)
    n = 10_000 if args.quick else 100_000
    res = {"numba_threads": numba.get_num_threads(), "n_particles": n, "n_steps": 100}
    simulate_abp(100, 2, align=1.0, box=10.0, seed=0)  # compile (cached on disk after the first run)
    simulate_abp(30_000, 1, align=1.0, box=100.0, seed=0)  # the parallel kernel too

    cases = {
        "abp2d_free": dict(dim=2, box=316.0),
        "abp2d_align_density": dict(dim=2, box=316.0, align=1.0, speed_density=3.0),
        "abp3d_free": dict(dim=3, box=46.0),
        "abp3d_align": dict(dim=3, box=46.0, align=1.0),
    }
    for name, kw in cases.items():
        _, wall, cpu = _timed(lambda kw=kw: simulate_abp(n, 100, seed=1, **kw))
        res[f"{name}_wall_s"], res[f"{name}_cpu_s"] = wall, cpu

    # neighbour search per step: ours vs cKDTree(boxsize) on the same 2D system
    rng = np.random.default_rng(0)
    box = 316.0
    pos = rng.random((n, 2)) * box
    th = rng.uniform(0, 2 * np.pi, n)
    ori = np.stack([np.sin(th), np.cos(th)], 1)
    pos3, ori3 = np.zeros((n, 3)), np.zeros((n, 3))
    pos3[:, 1:], ori3[:, 1:] = pos, ori
    ns = NeighbourSums(np.array([1.0, box, box]), 1.0)
    ns(pos3, ori3)
    reps = 10
    (msum, count), wall, _ = _timed(lambda: [ns(pos3, ori3) for _ in range(reps)][-1])
    res["neighbours_ours_per_step_s"] = wall / reps

    def kdtree_step():
        tree = cKDTree(pos, boxsize=box)
        nb = tree.query_ball_point(pos, 1.0)
        cnt = np.fromiter((len(x) for x in nb), int, n)
        idx = np.concatenate(nb)
        owner = np.repeat(np.arange(n), cnt)
        m = np.zeros((n, 2))
        np.add.at(m, owner, ori[idx])
        return m, cnt

    (m_ref, c_ref), wall, _ = _timed(lambda: [kdtree_step() for _ in range(2)][-1])
    res["neighbours_ckdtree_per_step_s"] = wall / 2
    res["neighbours_speedup_vs_ckdtree"] = res["neighbours_ckdtree_per_step_s"] / res["neighbours_ours_per_step_s"]
    res["neighbours_identical_to_ckdtree"] = bool(np.array_equal(count, c_ref) and np.allclose(msum[:, 1:], m_ref))

    if not args.quick:
        tr, wall, cpu = _timed(lambda: simulate_abp(**vicsek_bands_preset(seed=0)))
        res["vicsek_bands_wall_s"], res["vicsek_bands_cpu_s"] = wall, cpu
        res.update({f"vicsek_{k}": v for k, v in _band_stats(tr).items()})

    emit_json(res, args.output, indent=2)
    return res


if __name__ == "__main__":
    main()
