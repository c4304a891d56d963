"""Calibration of the MSD composition check (:func:`napari_dynfit.track.composition_bias`, reported by
:func:`napari_dynfit.track.fit_msd`) on simulated beads seen while in focus.

Usage::

    python -m napari_dynfit.bench.msd_composition [--seeds 20] [--json]

Each case simulates 2000 beads diffusing in a slab 100 px high, seen while within 10 px of the focal plane, for
100 frames (:func:`napari_dynfit.sim.beads_in_focus.simulate_beads_in_focus`; tracks of >= 25 positions, ~500 per
movie, localisation error 0.3 px): one population (D 0.5, 1 or 2 px^2/frame), where the check must stay silent,
and mixtures with a slower population (which also stays in focus longer), where the ensemble exponent falls below
every population's own. Printed per case: the fitted exponent, the composition bias, how often it reaches the
tolerance (:data:`napari_dynfit.track.analysis.COMPOSITION_TOLERANCE`), the exponent with the mix held fixed and
the fast population's own exponent (mean +- sd over seeds); how often the flagged tracks split into mobility
populations (:func:`napari_dynfit.track.mobility_populations`) and the largest population's exponent, with the
share of its tracks that are truly from the fast population.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from . import add_json, say_for

CASES = {
    "one population, D 0.5": dict(D=(0.5,)),
    "one population, D 1": dict(D=(1.0,)),
    "one population, D 2": dict(D=(2.0,)),
    "15 % 10x slower": dict(D=(1.0, 0.1), fractions=(0.85, 0.15)),
    "30 % 10x slower": dict(D=(1.0, 0.1), fractions=(0.7, 0.3)),
    "30 % 3x slower": dict(D=(1.0, 1 / 3), fractions=(0.7, 0.3)),
}


def run_case(kw: dict, seeds) -> dict:
    """Figures of one case over ``seeds`` (see the module docstring)."""
    from napari_dynfit.sim.beads_in_focus import simulate_beads_in_focus
    from napari_dynfit.track import fit_msd
    from napari_dynfit.track.analysis import COMPOSITION_TOLERANCE

    rows = []
    for s in seeds:
        tr = simulate_beads_in_focus(2000, 100, height=100, depth=20, seed=int(s), **kw)
        fit = fit_msd(tr, min_length=25)
        free = fit_msd(tr[tr["population"] == 0], min_length=25) if len(kw["D"]) > 1 else fit
        big = fit.largest_population
        rows.append((fit.exponent, fit.composition_bias, fit.exponent_fixed_composition, free.exponent, fit.n_tracks,
                     len(fit.populations), big.exponent if big else np.nan,
                     _purity(tr, fit) if big else np.nan))
    r = np.array(rows)
    split = r[:, 5] > 1
    return {"exponent": [r[:, 0].mean(), r[:, 0].std()], "bias": [r[:, 1].mean(), r[:, 1].std()],
            "flagged": int(np.sum(np.abs(r[:, 1]) >= COMPOSITION_TOLERANCE)), "runs": len(r),
            "fixed_composition": [r[:, 2].mean(), r[:, 2].std()], "fast_population": [r[:, 3].mean(), r[:, 3].std()],
            "tracks": float(r[:, 4].mean()), "split": int(split.sum()),
            "largest_population": [float(np.nanmean(r[split, 6])), float(np.nanstd(r[split, 6]))] if split.any()
            else None, "purity": float(np.nanmean(r[split, 7])) if split.any() else None}


def _purity(tr, fit) -> float:
    """Fraction of the largest mobility population's tracks that belong to simulated population 0 (the fast)."""
    from napari_dynfit.track import mobility_populations

    lab = mobility_populations(tr[~tr["track_id"].isin(fit.immobile)], min_length=25)
    big = np.bincount(lab.to_numpy()).argmax()
    ids = lab.index[lab == big]
    return float((tr.drop_duplicates("track_id").set_index("track_id").loc[ids, "population"] == 0).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="simulated movies per case (default 20)")
    add_json(ap)
    args = ap.parse_args(argv)
    say = say_for(args)
    out = {}
    say("| case | ensemble exponent | composition bias | flagged | exponent, mix held fixed | fast population's own "
        "| split into mobility populations | largest population's exponent (its tracks from the fast population) |")
    say("|---|---|---|---|---|---|---|---|")
    for name, kw in CASES.items():
        f = out[name] = run_case(kw, range(args.seeds))
        say(f"| {name} | {f['exponent'][0]:.3f} +- {f['exponent'][1]:.3f} | {f['bias'][0]:+.3f} +- {f['bias'][1]:.3f} "
            f"| {f['flagged']}/{f['runs']} | {f['fixed_composition'][0]:.3f} +- {f['fixed_composition'][1]:.3f} | "
            f"{f['fast_population'][0]:.3f} +- {f['fast_population'][1]:.3f} | {f['split']}/{f['runs']} | "
            + (f"{f['largest_population'][0]:.3f} +- {f['largest_population'][1]:.3f} ({100 * f['purity']:.0f} %) |"
               if f["largest_population"] else "- |"))
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
