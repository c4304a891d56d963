"""PDE discovery on the PDE-FIND data sets with noise: napari-dynfit vs PySINDy, side by side.

For each data set (Burgers, KdV, Kuramoto-Sivashinsky), noise level and seed, the same noisy field
``u + noise * std(u) * N(0, 1)`` goes to

* ours: :func:`napari_dynfit.models.pde.discover_pde` (weak form, IHT-d stability selection,
  library ``u^k * d^m u`` with k <= 2, m <= 4 — the same library as PySINDy's below);
* PySINDy (the anchor, ``pip install pysindy``): ``WeakPDELibrary`` (polynomial degree 2,
  derivative order 4, K test functions) with ``STLSQ`` (normalised columns).

Prints JSON on stdout: per data set and noise, the number of seeds with the exact term set, the
worst relative coefficient error over seeds with the exact set, the learned equations and wall
times (timings on a shared 2-core machine are noisy); and on stderr both equations side by side
for every seed.

    python -m napari_dynfit.bench.pdefind --noise 0.1 0.2 --seeds 5 -o pdefind.json
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from napari_dynfit._io import emit_json
from napari_dynfit.fields import FieldBundle
from napari_dynfit.fields.matfile import read_pdefind_mat
from napari_dynfit.models.library import polynomial_library
from napari_dynfit.models.pde import discover_pde

#: PDE-FIND's published .mat files: $DYNFIT_PDEFIND_DATA or ../shared/data/pdefind next to the checkout; without them
#: the same data come from our own solvers (napari_dynfit.sim.pde_solutions)
DATA = Path(os.environ.get("DYNFIT_PDEFIND_DATA") or Path(__file__).resolve().parents[4] / "shared/data/pdefind")
TRUTH = {
    "burgers": {"u*u_x": -1.0, "u_xx": 0.1},
    "kdv": {"u*u_x": -6.0, "u_xxx": -1.0},
    "kuramoto_sivishinky": {"u*u_x": -1.0, "u_xx": -1.0, "u_xxxx": -1.0},
}


def noisy(bundle: FieldBundle, noise: float, seed: int) -> FieldBundle:
    u = bundle["u"]
    rng = np.random.default_rng(seed)
    un = u + noise * u.std() * rng.standard_normal(u.shape)
    return FieldBundle({"u": un}, dict(bundle.coords), periodic=bundle.periodic)


def score(found: dict, truth: dict) -> tuple[bool, float]:
    exact = set(found) == set(truth)
    err = max(abs(found.get(k, 0.0) / v - 1) for k, v in truth.items())
    return exact, float(err)


def ours(b: FieldBundle, seed: int) -> dict:
    lib = polynomial_library(["u"], axes=("x",), max_power=2, max_derivative=4)
    return discover_pde(b, {"u_t": lib}, seed=seed).equations["u_t"]


def _pysindy_name(name: str) -> str:
    """PySINDy feature names in our vocabulary: ``uu_11`` -> ``u*u_xx``, ``u^2u_1`` -> ``u^2*u_x``."""
    m = re.fullmatch(r"(u\^\d|u)?(?:u_(1+))?", name)
    if m is None:
        return name
    mono, der = m.group(1), m.group(2)
    parts = [mono] if mono else []
    if der:
        parts.append("u_" + "x" * len(der))
    return "*".join(parts)


def pysindy(b: FieldBundle, K: int, threshold: float) -> dict:
    import pysindy as ps

    u = b["u"].T[..., None]                                     # (x, t, 1)
    X, T = np.meshgrid(b.coords["x"], b.coords["t"], indexing="ij")
    with warnings.catch_warnings():            # PySINDy 2.1 deprecation warnings about is_uniform
        warnings.simplefilter("ignore")
        lib = ps.WeakPDELibrary(function_library=ps.PolynomialLibrary(degree=2, include_bias=False),
                                derivative_order=4, spatiotemporal_grid=np.stack([X, T], -1), is_uniform=True, K=K)
        opt = ps.STLSQ(threshold=threshold, alpha=1e-5, normalize_columns=True)
        model = ps.SINDy(feature_library=lib, optimizer=opt)
        model.fit(u, t=b.dt, feature_names=["u"])
    coefs = model.coefficients()[0]
    return {_pysindy_name(n): float(c) for n, c in zip(model.get_feature_names(), coefs) if c != 0}


def run(noises=(0.1, 0.2), seeds=5, K=200, threshold=0.05, datasets=tuple(TRUTH)) -> dict:
    out = {"anchor": "pysindy " + __import__("pysindy").__version__ if _has_pysindy() else "pysindy missing",
           "settings": {"ours": "discover_pde(derivative='weak', solver='iht', pi_th=0.8, B=40, M=20)",
                        "pysindy": f"WeakPDELibrary(degree 2, derivative_order 4, K={K}) + "
                                   f"STLSQ(threshold={threshold}, alpha=1e-5, normalize_columns=True)"},
           "results": {}, "data": {}}
    for name in datasets:
        if (DATA / f"{name}.mat").exists():
            clean = read_pdefind_mat(DATA / f"{name}.mat")
            out["data"][name] = "PDE-FIND's .mat file"
        else:
            from napari_dynfit.sim.pde_solutions import PDEFIND

            clean = PDEFIND[name]()
            out["data"][name] = "our solver at PDE-FIND's parameters (no .mat file here)"
        truth = TRUTH[name]
        for noise in noises:
            row = {"truth": truth}
            for who in ("ours", "pysindy"):
                if who == "pysindy" and not _has_pysindy():
                    continue
                exact_n, errs, eqs, secs = 0, [], [], []
                for seed in range(seeds):
                    b = noisy(clean, noise, seed)
                    t0 = time.perf_counter()
                    np.random.seed(seed)            # PySINDy places its test functions with np.random
                    found = ours(b, seed) if who == "ours" else pysindy(b, K, threshold)
                    secs.append(time.perf_counter() - t0)
                    exact, err = score(found, truth)
                    exact_n += exact
                    if exact:
                        errs.append(err)
                    eqs.append({k: round(v, 5) for k, v in found.items()})
                row[who] = {"exact_sets": f"{exact_n}/{seeds}", "n_exact": exact_n,
                            "max_rel_coef_error_when_exact": max(errs) if errs else None,
                            "equations": eqs, "mean_time_s": float(np.mean(secs))}
            out["results"][f"{name}@{noise:g}"] = row
    return out


def side_by_side(res: dict) -> str:
    """A plain-text table: per data set, noise and seed, our equation and PySINDy's."""
    def eq(d):
        return " ".join(f"{v:+.4g} {k}" for k, v in d.items()) or "0"

    lines = []
    for key, row in res["results"].items():
        lines.append(f"== {key}: ours {row['ours']['exact_sets']} exact"
                     + (f", PySINDy {row['pysindy']['exact_sets']}" if "pysindy" in row else ""))
        for seed, ours_eq in enumerate(row["ours"]["equations"]):
            other = eq(row["pysindy"]["equations"][seed]) if "pysindy" in row else "-"
            lines.append(f"  seed {seed}: ours    u_t = {eq(ours_eq)}")
            lines.append(f"          PySINDy u_t = {other}")
    return "\n".join(lines)


def _has_pysindy() -> bool:
    try:
        import pysindy  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--K", type=int, default=200, help="PySINDy test functions")
    p.add_argument("--threshold", type=float, default=0.05, help="PySINDy STLSQ threshold")
    p.add_argument("--datasets", nargs="+", default=list(TRUTH), choices=list(TRUTH))
    p.add_argument("-o", "--output", help="also write the JSON here")
    args = p.parse_args(argv)
    res = run(tuple(args.noise), args.seeds, args.K, args.threshold, tuple(args.datasets))
    emit_json(res, args.output, indent=1)
    print(side_by_side(res), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
