"""Default settings of the learned-closure workflow (issue 19), in one place.

``dynfit closure`` (:mod:`napari_dynfit.commands.closure`), the benchmark that makes the docs' figures
(:mod:`napari_dynfit.bench.closure`), the *Kinetic closures* widget and the core's function defaults
(:mod:`napari_dynfit.models.closure.train`) all read them, so that a user's default run is the benchmark's and
the two cannot drift apart. Torch-free and import-light: the CLI's parser reads them. What still differs on
purpose is listed in ``docs/closures.md`` (*Defaults*).
"""

from __future__ import annotations

# --- kinetic runs (dynfit closure simulate; the benchmark's training and check runs) -----------------------
#: active dipole stress (dimensionless, < 0 extensile): one of the benchmark's training values (-2, -3, -4, -5)
#: and the widget's. (The Well's files span -1 .. -5; ``SuspensionParams``' bare default -1 is The Well's.)
ALPHA = -4.0
#: steric alignment: The Well's 1-17 make the angular distribution sharper than our grids resolve (with 32
#: angles and dt 0.01, 1 runs, 2 blows up on a 16^2 grid, 5 and above blow up at every resolution tried: a
#: one-line error naming when); ``SuspensionParams``' bare default 1 is The Well's, for its files
ZETA = 0.3
#: grid points per side and orientation angles: the resolved reference (since 2026-12-05, kinetic solver version 2,
#: whose exact angular dealiasing keeps the harmonics ``|m| <= ANGLES / 2 - 2`` = 22). On 32^2 x 32 (version 1,
#: the 2/3 rule: ``|m| <= 10``) ``Psi`` went negative (0.2-3.7 % of its mass at alpha -2..-6, ``D / c`` outside
#: [0, 1] from alpha -4) and the statistics moved with the resolution (alpha -4.5: 26-47 % faster on 64^2 x 64);
#: 64^2 x 48 keeps it a density to ~0.1 % at about 4x the CPU (docs/closures.md, *Resolved reference*)
GRID = 64
ANGLES = 48
#: duration, saving interval and time step (time units): the benchmark's training and check runs, ``t = 0..30``
T_END = 30.0
SAVE_EVERY = 0.25
DT = 0.01
#: relative amplitude of the random perturbation of the isotropic start (the solver's bare default is 0.01)
AMPLITUDE = 0.2

# --- which frames are used --------------------------------------------------------------------------------
#: time (time units) of the initial instability from the perturbed isotropic start: training, checks and
#: estimates use the frames from the first at ``t >= SETTLE_T`` on (the benchmark's frame 40 at ``SAVE_EVERY``)
SETTLE_T = 10.0

# --- training and estimation -------------------------------------------------------------------------------
#: hidden units per layer of :class:`~napari_dynfit.models.closure.learned.LearnedClosure`
HIDDEN = 32
#: a-priori epochs (Adam, full batch) and a-posteriori epochs (unrolled time stepping, 4 windows each)
A_PRIORI_EPOCHS = 600
A_POSTERIORI_EPOCHS = 20
#: Adam learning rates, a priori and a posteriori
A_PRIORI_LR = 1e-2
A_POSTERIORI_LR = 3e-3
#: frames per a-posteriori unroll (2 frames = 0.5 time units at ``SAVE_EVERY``)
UNROLL_FRAMES = 2
#: parameter estimation: frames used from the start (the benchmark's frames 40..59) and most loss evaluations
ESTIMATE_FRAMES = 20
ESTIMATE_EPOCHS = 30


def settled_frame(t, settle: float = SETTLE_T) -> int:
    """Index of the first time in ``t`` at or after ``settle`` (``len(t)`` when the data end before it).

    Parameters
    ----------
    t : sequence of float
        Frame times (time units; our runs and The Well's files start at 0).
    settle : float
        Time units; default :data:`SETTLE_T`.
    """
    tol = 1e-9 * max(1.0, abs(settle))
    return next((i for i, v in enumerate(t) if float(v) >= settle - tol), len(t))


def settle_frames(t, start: int, settle: float = SETTLE_T) -> int:
    """Frames from ``start`` on within ``settle`` time units of it (the moment model's own transient from the
    data's state, left out of long-window statistics: 40 at ``SAVE_EVERY``); at most the frames there are."""
    t = [float(v) for v in t]
    return settled_frame([v - t[start] for v in t[start:]], settle) if start < len(t) else 0
