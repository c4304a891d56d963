"""SIGINT / SIGTERM at random moments of long commands (issue 23).

Each run: the command is started as a subprocess (``python -m napari_dynfit.cli``), a signal is sent
after a random delay, and then: exit status 130 (SIGINT) / 143 (SIGTERM) - or 0 when the command
finished first -, at most one line on stderr and no traceback, no temporary file left, no worker
process left, and the previous output byte-identical unless the command completed.

The default suite runs one SIGINT; the Dask-worker test and the full set (five commands x both signals x
``DYNFIT_SIGNAL_REPEATS`` runs, default 4) is marked slow.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import napari_dynfit

psutil = pytest.importorskip("psutil")

SRC = str(Path(napari_dynfit.__file__).resolve().parents[1])


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("signal_inputs")
    rng = np.random.default_rng(0)
    n, frames = 400, 30
    pos = np.cumsum(rng.normal(0, 0.3, (frames, n, 2)), axis=0) + rng.uniform(0, 60, (1, n, 2))
    df = pd.DataFrame({"frame": np.repeat(np.arange(frames), n), "track_id": np.tile(np.arange(n), frames),
                       "y": pos[..., 0].ravel(), "x": pos[..., 1].ravel(), "parent_id": -1})
    df.to_csv(d / "tracks.csv", index=False)
    np.save(d / "movie.npy", (rng.random((24, 96, 96)) * 100).astype(np.float32))
    return d


#: name -> (argv with {D} for the inputs folder and {OUT} for the output, output name)
COMMANDS = {
    "process": (["process", "{D}/movie.npy", "--axes", "tyx", "-o", "{OUT}", "--scheduler", "processes",
                 "--workers", "2", "--overwrite"], "det.csv"),
    "simulate": (["simulate", "abp", "-o", "{OUT}", "--frames", "60", "--n-particles", "300", "--overwrite"], "sim"),
    "coarse-grain": (["coarse-grain", "{D}/tracks.csv", "-o", "{OUT}", "--spacing", "0.5", "--sigma", "1",
                      "--overwrite"], "f.zarr"),
    "track": (["track", "{D}/tracks.csv", "-o", "{OUT}", "--gap-frames", "2", "--motion", "velocity",
                "--overwrite"], "t.csv"),
    "infer-flow": (["infer-flow", "{D}/tracks.csv", "--diffusion", "fit", "-o", "{OUT}", "--steps", "10",
                    "--score-steps", "10", "--threads", "1", "--overwrite"], "flow"),
}


def _previous(out: Path) -> None:
    """A previous output (made by hand: a file, or a folder dynfit wrote, with a known content)."""
    if out.suffix in (".csv", ".json"):
        out.write_text("previous output\n")
    else:
        out.mkdir()
        (out / ".dynfit").write_text("{}\n")
        (out / "previous.txt").write_text("previous output\n")


def _tree(p: Path) -> dict:
    if p.is_file():
        return {"": p.read_bytes()}
    return {str(f.relative_to(p)): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}


def _interrupt(name, sig, delay, inputs, tmp_path):
    argv, out_name = COMMANDS[name]
    work = tmp_path / f"run-{sig.name}-{delay:.2f}".replace(".", "_")
    work.mkdir()
    out = work / out_name
    _previous(out)
    before = _tree(out)
    argv = [a.replace("{D}", str(inputs)).replace("{OUT}", str(out)) for a in argv]
    proc = subprocess.Popen([sys.executable, "-m", "napari_dynfit.cli", "-q", *argv], cwd=work, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    end = time.monotonic() + delay
    kids = set()
    while time.monotonic() < end and proc.poll() is None:
        try:
            kids |= {c.pid for c in ps.children(recursive=True)}
        except psutil.Error:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        for p in [ps, *[psutil.Process(k) for k in kids if psutil.pid_exists(k)]]:
            try:
                p.kill()
            except psutil.Error:
                pass
        proc.communicate()
        raise AssertionError(f"the command did not end within 180 s of its {sig.name}") from None
    code = proc.returncode
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert code in (0, 128 + sig), (code, err)
    if code != 0:
        assert len(lines) == 1 and ("interrupted" in lines[0] or "terminated" in lines[0]), lines
        assert _tree(out) == before, "the previous output was changed by an interrupted run"
    leftovers = [p.name for p in work.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert not leftovers, leftovers
    deadline = time.monotonic() + 10
    alive = kids
    while alive and time.monotonic() < deadline:
        alive = {k for k in kids if psutil.pid_exists(k) and psutil.Process(k).status() != psutil.STATUS_ZOMBIE}
        time.sleep(0.2)
    assert not alive, f"orphan worker processes {alive}"
    return code


@pytest.mark.slow
def test_sigterm_ends_dask_workers_and_keeps_previous_output(inputs, tmp_path):
    """Wait for the worker processes of ``dynfit process``, then SIGTERM: 143, workers gone, output kept."""
    argv, out_name = COMMANDS["process"]
    out = tmp_path / out_name
    _previous(out)
    argv = [a.replace("{D}", str(inputs)).replace("{OUT}", str(out)) for a in argv]
    proc = subprocess.Popen([sys.executable, "-m", "napari_dynfit.cli", "-q", *argv], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    kids = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        kids = [c for c in ps.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
        if len(kids) >= 2:
            break
        time.sleep(0.1)
    if proc.poll() is not None:
        pytest.skip("the command finished before its workers were seen")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == ["dynfit process: terminated"]
    assert out.read_text() == "previous output\n"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    time.sleep(1)
    assert not [k.pid for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]


def test_sigint_during_coarse_grain(inputs, tmp_path):
    random.seed(1)
    _interrupt("coarse-grain", signal.SIGINT, 4.0 + 3 * random.random(), inputs, tmp_path)


REPEATS = int(os.environ.get("DYNFIT_SIGNAL_REPEATS", "4"))
_DURATION: dict = {}


def _duration(name, inputs, tmp_path) -> float:
    """Wall time of one uninterrupted run (only to spread the signal moments over the run)."""
    if name not in _DURATION:
        argv, out_name = COMMANDS[name]
        out = tmp_path / "full" / out_name
        out.parent.mkdir()
        argv = [a.replace("{D}", str(inputs)).replace("{OUT}", str(out)) for a in argv]
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "napari_dynfit.cli", "-q", *argv], cwd=out.parent, env=_env(),
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr
        _DURATION[name] = time.monotonic() - t0
    return _DURATION[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_at_random_moments(name, sig, inputs, tmp_path):
    """Every repeat runs (a failure does not hide the later ones); the runs are summed up in the failure message
    and, when ``DYNFIT_SIGNAL_LOG`` names a file, one JSON line per run is appended there."""
    import json
    import traceback

    rng = random.Random(f"{name}-{sig}")
    span = _duration(name, inputs, tmp_path)
    codes, failures = [], []
    for i in range(REPEATS):
        delay = rng.uniform(0.05, 0.9) * span
        try:
            codes.append(_interrupt(name, sig, delay, inputs, tmp_path))
            problem = None
        except Exception as exc:  # noqa: BLE001 - a hung run (TimeoutExpired) counts as a failure too
            problem = " ".join(traceback.format_exception_only(exc)[-1].split())[:400]
            failures.append(f"run {i} at {delay:.2f} s: {problem}")
        if os.environ.get("DYNFIT_SIGNAL_LOG"):
            with open(os.environ["DYNFIT_SIGNAL_LOG"], "a") as log:
                log.write(json.dumps({"command": name, "signal": sig.name, "run": i, "delay_s": round(delay, 2),
                                      "span_s": round(span, 2), "code": codes[-1] if problem is None else None,
                                      "failure": problem}) + "\n")
    assert not failures, f"{len(failures)} of {REPEATS} runs failed: " + " | ".join(failures)
    if REPEATS >= 3:
        assert any(c != 0 for c in codes), "every run finished before its signal: nothing was tested"


_GUI_CHECK = ("gui = sorted(m for m in sys.modules if m.split('.')[0] in ('PyQt5', 'PyQt6', 'PySide2', 'PySide6', "
              "'pyqtgraph', 'qtpy') or m == 'matplotlib.pyplot')\n")


def test_headless_pyapr_loads_no_gui_toolkit():
    """pyapr imported the way the CLI imports it loads no Qt, pyqtgraph or matplotlib.pyplot."""
    pytest.importorskip("pyapr")
    script = ("import sys\nfrom napari_dynfit._headless import headless_pyapr\nheadless_pyapr()\nimport pyapr\n"
              "assert callable(pyapr.converter.get_apr) and callable(pyapr.io.read)\n" + _GUI_CHECK + "print(gui)\n")
    res = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "[]", (res.stdout, res.stderr)


@pytest.mark.slow
def test_headless_commands_import_no_gui_toolkit(tmp_path):
    """convert loads no Qt, pyqtgraph or matplotlib.pyplot, and no pyapr (our construction is the default)."""
    import tifffile

    tifffile.imwrite(tmp_path / "img.tif", (np.random.default_rng(0).random((32, 32)) * 100).astype(np.uint16))
    script = ("import sys\n"
              "from napari_dynfit.cli import main\n"
              f"code = main(['-q', 'convert', {str(tmp_path / 'img.tif')!r}, '-o', {str(tmp_path / 'img.apr')!r}])\n"
              + _GUI_CHECK +
              "print(code, 'pyapr' in sys.modules, gui)\n")
    res = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=300)
    assert res.stdout.split("\n")[-2] == "0 False []", (res.stdout, res.stderr)
