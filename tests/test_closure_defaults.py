"""`dynfit closure`'s defaults are the closure benchmark's (the settings its docs figures were measured with) and the
core's function defaults: one source, ``napari_dynfit.closure_defaults``, so they cannot drift apart."""

import inspect
from types import SimpleNamespace

import numpy as np
import pytest

from napari_dynfit import closure_defaults as D
from napari_dynfit.bench import closure as bench
from napari_dynfit.cli import build_parser
from napari_dynfit.errors import InputError


def _defaults(*argv):
    return build_parser().parse_args(["closure", *argv])


#: the benchmark's time axis: t = 0..30 saved every 0.25 (121 frames), and its 60-unit ensemble runs
BENCH_T = np.arange(121) * 0.25
LONG_T = np.arange(241) * 0.25


def test_cli_defaults_are_the_benchmarks():
    ref = bench.build_parser().parse_args([])
    train = _defaults("train", "run.npz", "-o", "closure.npz")
    # the settings docs/closures.md's figures were measured with (a priori 600, a posteriori 20 of 2-frame unrolls)
    assert (train.a_priori_epochs, train.a_posteriori_epochs, train.unroll) == (600, 20, 2)
    assert (ref.a_priori_epochs, ref.a_posteriori_epochs, ref.unroll) == (600, 20, 2)
    sim = _defaults("simulate", "-o", "run.npz")
    # the benchmark's runs: zeta 0.3, 64^2 x 48 angles (the resolved reference, solver version 2; 32^2 x 32
    # before), t = 0..30 every 0.25, dt 0.01, 20 % perturbation; alpha one of its training values
    assert (sim.zeta, sim.size, sim.angles, sim.t_end, sim.save_every, sim.dt, sim.amplitude) == (
        0.3, 64, 48, 30.0, 0.25, 0.01, 0.2)
    settings = inspect.signature(bench.kinetic_settings).parameters  # (calling it imports torch)
    assert (settings["n"].default, settings["n_theta"].default) == (sim.size, sim.angles)
    assert sim.alpha in bench.TRAIN
    # frames: every command starts, by default, at t = 10 (the benchmark's frame 40), not at frame 0
    for cmd in (train, _defaults("evaluate", "run.npz"), _defaults("estimate", "run.npz"),
                _defaults("ensemble", "a.npz", "b.npz")):
        assert cmd.t_start is None
    assert D.settled_frame(np.arange(0, sim.t_end + 1e-9, sim.save_every)) == 40
    # evaluate runs to the end of the data: on a default run, the benchmark's 80-frame check
    ev = _defaults("evaluate", "run.npz")
    assert ev.horizon == 0 and len(BENCH_T) - D.settled_frame(BENCH_T) - 1 == ref.horizon == 80
    # ensemble: statistics after the 10 time units past the start (the benchmark's 40 frames: t = 20..60)
    assert _defaults("ensemble", "a.npz", "b.npz").discard is None and D.settle_frames(LONG_T, 40) == 40
    # estimate: the benchmark's frames 40..59, 30 loss evaluations
    est = _defaults("estimate", "run.npz")
    assert (est.frames, est.epochs) == (D.ESTIMATE_FRAMES, D.ESTIMATE_EPOCHS) == (20, 30)


def test_default_start_is_the_first_frame_after_the_transient_and_short_data_get_one_line():
    from napari_dynfit.commands.closure import _start

    def run(t):
        return SimpleNamespace(coords={"t": t})

    assert _start(run(BENCH_T), None, "run.npz", need=3) == 40
    assert _start(run(np.arange(61) * 0.5), None, "run.npz") == 20  # t = 10 whatever the saving interval
    assert _start(run(BENCH_T), 5, "run.npz") == 5
    assert _start(run(np.arange(11) * 0.25 + 12.0), None, "late.npz") == 0  # data that start after the transient
    with pytest.raises(InputError, match=r"short\.npz has 21 frames \(t = 0\.\.5\).*leaves 0.*--t-end"):
        _start(run(np.arange(21) * 0.25), None, "short.npz")
    with pytest.raises(InputError, match="--t-start 119 leaves 2, this needs 3"):
        _start(run(BENCH_T), 119, "run.npz", need=3)


def test_core_function_defaults_are_the_clis():
    pytest.importorskip("torch")
    from napari_dynfit.models.closure import train as T
    from napari_dynfit.models.closure.learned import LearnedClosure
    from napari_dynfit.models.closure.stationary import kinetic_series

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    train = _defaults("train", "run.npz", "-o", "closure.npz")
    assert default(T.fit_a_priori, "epochs") == train.a_priori_epochs
    assert default(T.fit_a_posteriori, "epochs") == train.a_posteriori_epochs  # was 60 in the core, 40 in the CLI
    assert default(T.fit_a_posteriori, "unroll_frames") == train.unroll
    assert default(T.estimate_parameters, "unroll_frames") == train.unroll
    assert default(T.estimate_parameters, "epochs") == _defaults("estimate", "run.npz").epochs
    assert LearnedClosure().config["hidden"] == train.hidden
    sim = _defaults("simulate", "-o", "run.npz")
    assert [default(kinetic_series, k) for k in ("amplitude", "n", "n_theta", "save_every", "dt", "branch_t")] == [
        sim.amplitude, sim.size, sim.angles, sim.save_every, sim.dt, D.SETTLE_T]
    from napari_dynfit.models.closure.kinetic import KineticSolver, simulate_kinetic, simulate_kinetic_ensemble

    for fn in (simulate_kinetic, simulate_kinetic_ensemble, KineticSolver.__init__):  # the resolved grid
        assert [default(fn, k) for k in ("n", "n_theta", "dt")] == [sim.size, sim.angles, sim.dt]
    assert (default(T.fit_a_priori, "lr"), default(T.fit_a_posteriori, "lr")) == (D.A_PRIORI_LR, D.A_POSTERIORI_LR)


def test_a_priori_training_in_chunks_with_one_optimizer_equals_one_run():
    """The widget trains in chunks (a live loss plot, Stop): with one optimizer they are the CLI's single run."""
    torch = pytest.importorskip("torch")
    from napari_dynfit.models.closure import train as T
    from napari_dynfit.models.closure.learned import LearnedClosure

    s = torch.linspace(0.05, 0.95, 200, dtype=torch.float64)
    samples = T.ClosureSamples(s=s, m4=s ** 2, alpha=torch.full_like(s, -4.0), zeta=torch.full_like(s, 0.3))
    whole, chunked, restarted = LearnedClosure(), LearnedClosure(), LearnedClosure()
    T.fit_a_priori(whole, samples, epochs=60)
    opt = torch.optim.Adam(chunked.parameters(), lr=D.A_PRIORI_LR)
    for _ in range(3):
        T.fit_a_priori(chunked, samples, epochs=20, optimizer=opt)
        T.fit_a_priori(restarted, samples, epochs=20)  # a new Adam each chunk (the widget before 2026-12-05)
    w = [torch.cat([p.ravel() for p in n.parameters()]) for n in (whole, chunked, restarted)]
    assert torch.equal(w[0], w[1])
    assert not torch.allclose(w[0], w[2])
