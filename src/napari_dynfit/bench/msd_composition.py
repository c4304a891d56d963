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
the fast population's own exponent (mean +- sd over seeds).
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
        rows.append((fit.exponent, fit.composition_bias, fit.exponent_fixed_composition, free.exponent, fit.n_tracks))
    r = np.array(rows)
    return {"exponent": [r[:, 0].mean(), r[:, 0].std()], "bias": [r[:, 1].mean(), r[:, 1].std()],
            "flagged": int(np.sum(np.abs(r[:, 1]) >= COMPOSITION_TOLERANCE)), "runs": len(r),
            "fixed_composition": [r[:, 2].mean(), r[:, 2].std()], "fast_population": [r[:, 3].mean(), r[:, 3].std()],
            "tracks": float(r[:, 4].mean())}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="simulated movies per case (default 20)")
    add_json(ap)
    args = ap.parse_args(argv)
    say = say_for(args)
    out = {}
    say("| case | ensemble exponent | composition bias | flagged | exponent, mix held fixed | fast population's own |")
    say("|---|---|---|---|---|---|")
    for name, kw in CASES.items():
        f = out[name] = run_case(kw, range(args.seeds))
        say(f"| {name} | {f['exponent'][0]:.3f} +- {f['exponent'][1]:.3f} | {f['bias'][0]:+.3f} +- {f['bias'][1]:.3f} "
            f"| {f['flagged']}/{f['runs']} | {f['fixed_composition'][0]:.3f} +- {f['fixed_composition'][1]:.3f} | "
            f"{f['fast_population'][0]:.3f} +- {f['fast_population'][1]:.3f} |")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
