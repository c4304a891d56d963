"""Train the rod U-Net of ``method="learned"`` on generated phase-contrast colonies and write its weights.

Usage::

    python scripts/train_rod_unet.py                          # writes src/napari_dynfit/resources/rod_unet.npz
    python scripts/train_rod_unet.py -o W.npz --steps 200      # a shorter run elsewhere

Only generated data is used (:mod:`napari_dynfit.sim.phase`). The shipped weights are two runs: the defaults
here (seed 0, written as float16), then 1000 more steps from those weights on fresh colonies::

    python scripts/train_rod_unet.py -o stage1.npz
    python scripts/train_rod_unet.py --init stage1.npz --seed 1 --lr 1e-3

(``docs/tracking.md``: the second stage raised the generated movies' figures). CPU only; ``--threads`` sets
torch's threads. Checkpoints (``OUT.stepN.npz``) are written every ``--checkpoint`` steps when given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_dynfit.detect.learned import save_rod_model, state_of, train_rod_model

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "napari_dynfit" / "resources" / "rod_unet.npz"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default=str(DEFAULT_OUT))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--colonies", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint", type=int, default=0)
    ap.add_argument("--max-overlap", type=float, default=None,
                    help="leave out colony frames whose rods overlap more than this fraction")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--init", help="start from these weights (e.g. the shipped ones) instead of random ones")
    ap.add_argument("--wall-weight", type=float, default=1.0,
                    help="loss weight of the pixels within 2 px of a wall shared by two touching cells")
    ap.add_argument("--young-septa", action="store_true",
                    help="colonies with realistic young septa (shallow notch, faint wall on the daughters' first frames)")
    ap.add_argument("--septum-focus", type=float, default=0.0,
                    help="with --young-septa: fraction of the patches centred near a young septum")
    args = ap.parse_args(argv)
    out = Path(args.out)

    def log(rec, net):
        print(json.dumps(rec), flush=True)
        if args.checkpoint and rec["step"] % args.checkpoint == 0:
            save_rod_model(state_of(net), out.with_suffix(f".step{rec['step']}.npz"))

    state, history = train_rod_model(steps=args.steps, batch=args.batch, patch=args.patch,
                                     n_colonies=args.colonies, seed=args.seed, threads=args.threads, log=log,
                                     log_every=50, max_overlap=args.max_overlap, lr=args.lr, init=args.init,
                                     wall_weight=args.wall_weight, young_septa=args.young_septa,
                                     septum_focus=args.septum_focus)
    save_rod_model(state, out)
    print(json.dumps({"weights": str(out), "bytes": out.stat().st_size, "seconds": history[-1]["seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
