"""PDE discovery of equations with localized terms, default options; PDE-FIND's equations from our own solvers.

Data: :mod:`napari_dynfit.sim.pde_solutions` (pseudo-spectral ETDRK4 / BDF reference solutions,
subsampled), noise ``level * std(u) * N(0, 1)`` with seeds 0..n-1.

* ``localized``: Fisher-KPP fronts, a viscous Burgers shock, Allen-Cahn fronts, an
  advection-diffusion boundary layer and Zeldovich combustion fronts at 1 % and 5 % noise; ``discover_pde(bundle)`` with **no
  options** (default library, weak form, path to the noise floor, held-out blocks, forecast check).
  The old selection (``decades=1``, one decade of penalties) runs side by side as the anchor.
* ``pdefind``: Burgers, KdV, Kuramoto-Sivashinsky at PDE-FIND's parameters (our solvers) at 10 %
  noise with PDE-FIND's library (powers <= 2, derivatives <= 4, as ``napari_dynfit.bench.pdefind``).

Prints JSON: per case the number of seeds with the exact term set, the worst relative coefficient
error over those seeds, how many were said identifiable, mean time per fit.

    python -m napari_dynfit.bench.pde_localized --seeds 5 -o pde_localized.json
    python -m napari_dynfit.bench.pde_localized --markdown pde_localized.json      # the table of docs/pde.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_dynfit._io import emit_json
from napari_dynfit.models.library import polynomial_library
from napari_dynfit.models.pde import discover_pde
from napari_dynfit.sim import pde_solutions as ps


def score(found: dict, truth: dict) -> tuple[bool, float]:
    exact = set(found) == set(truth)
    err = max(abs(found.get(k, 0.0) / v - 1) for k, v in truth.items())
    return exact, float(err)


def case(bundle, noise: float, seeds: int, equations=None, anchor: bool = False, first_seed: int = 0) -> dict:
    truth = bundle.attrs["truth"]["u_t"]
    row = {"truth": truth, "seeds": [first_seed, first_seed + seeds - 1]}
    variants = {"ours": {}, "no_noise_correction": {"noise_correction": False}, "one_decade": {"decades": 1.0}}
    for who in ("ours", "no_noise_correction", "one_decade") if anchor else ("ours",):
        n_exact, errs, ident, secs, eqs = 0, [], 0, [], []
        for seed in range(first_seed, first_seed + seeds):
            b = ps.add_noise(bundle, noise, seed)
            t0 = time.perf_counter()
            res = discover_pde(b, equations, seed=seed, **variants[who])
            secs.append(time.perf_counter() - t0)
            found = res.equations["u_t"]
            exact, err = score(found, truth)
            n_exact += exact
            ident += res.identifiable
            if exact:
                errs.append(err)
            eqs.append({k: round(v, 5) for k, v in found.items()})
        row[who] = {"exact_sets": f"{n_exact}/{seeds}", "n_exact": n_exact,
                    "max_rel_coef_error_when_exact": max(errs) if errs else None,
                    "n_within_5pct": int(sum(e <= 0.05 for e in errs)),
                    "n_identifiable": ident, "equations": eqs, "mean_time_s": float(np.mean(secs))}
    return row


def run(noises=(0.01, 0.05), seeds=5, pdefind=True, localized=True, first_seed=0, anchor=True,
        names=None) -> dict:
    out = {"settings": "discover_pde(bundle) defaults; anchors: noise_correction=False, decades=1.0 (the previous "
                       "one-decade grid)", "results": {}}
    if localized:
        for name, gen in ps.LOCALIZED.items():
            if names and name not in names:
                continue
            clean = gen()
            for noise in noises:
                out["results"][f"{name}@{noise:g}"] = case(clean, noise, seeds, anchor=anchor, first_seed=first_seed)
    if pdefind:
        lib = {"u_t": polynomial_library(["u"], max_power=2, max_derivative=4)}
        for name, gen in ps.PDEFIND.items():
            if names and name not in names:
                continue
            out["results"][f"{name}@0.1"] = case(gen(), 0.1, seeds, equations=lib, first_seed=first_seed)
    return out


def markdown(out: dict) -> str:
    """The table of docs/pde.md from :func:`run`'s output (anchor columns where they were run)."""
    res = out["results"]
    anchors = any("one_decade" in r for r in res.values())
    head = "| equation, noise | seeds | exact set | coef. within 5 % | worst coef. error | identifiable | mean time |"
    sep = "|---|---|---|---|---|---|---|"
    if anchors:
        head += " no noise correction: within 5 % (worst) | one-decade grid: exact set |"
        sep += "---|---|"
    lines = [head, sep]
    for key, r in res.items():
        name, noise = key.split("@")
        o = r["ours"]
        n = len(o["equations"])
        worst = o["max_rel_coef_error_when_exact"]
        row = (f"| {name} {float(noise):.0%} | {r['seeds'][0]}-{r['seeds'][1]} | {o['n_exact']}/{n} | "
               f"{o['n_within_5pct']}/{n} | {'-' if worst is None else f'{worst:.1%}'} | {o['n_identifiable']}/{n} | "
               f"{o['mean_time_s']:.0f} s |")
        if anchors:
            if "one_decade" in r:
                a, b = r["no_noise_correction"], r["one_decade"]
                aw = a["max_rel_coef_error_when_exact"]
                row += (f" {a['n_within_5pct']}/{n} ({'-' if aw is None else f'{aw:.1%}'}) | "
                        f"{b['n_exact']}/{n} |")
            else:
                row += " | |"
        lines.append(row)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.05])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="noise seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--no-anchor", action="store_true", help="skip the anchors (no correction, one-decade grid)")
    ap.add_argument("--only", nargs="+", help="equations to run (names in LOCALIZED / PDEFIND)")
    ap.add_argument("--no-pdefind", action="store_true")
    ap.add_argument("--no-localized", action="store_true")
    ap.add_argument("-o", "--output", help="JSON file (default stdout)")
    ap.add_argument("--markdown", metavar="JSON", nargs="+", help="print the docs table of earlier outputs and exit")
    a = ap.parse_args(argv)
    if a.markdown:
        import json
        from pathlib import Path

        for path in a.markdown:
            print(markdown(json.loads(Path(path).read_text())) + "\n")
        return 0
    emit_json(run(tuple(a.noise), a.seeds, pdefind=not a.no_pdefind, localized=not a.no_localized,
                  first_seed=a.first_seed, anchor=not a.no_anchor, names=a.only), a.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
