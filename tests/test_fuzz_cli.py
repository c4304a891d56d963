"""Fuzz the CLI with a generated catalogue of bad inputs, flags and outputs (issue 23).

Every case must end with exit status 2 and one line on stderr (no traceback), write nothing (no
output, no temporary file) and leave every file that existed before byte-identical.

The catalogue is the product of the commands (``COMMANDS``) with the bad inputs of their input
type (``BAD_INPUTS``), the bad outputs (``BAD_OUTPUTS``) and the bad flags (``BAD_FLAGS``). A
representative subset runs by default; the full matrix is marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.cli import main

# --------------------------------------------------------------------------------------------------
# valid inputs, written once


def _tracks() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for tid in range(6):
        pos = rng.uniform(5, 25, 2)
        for f in range(5):
            pos = pos + rng.normal(0, 0.5, 2)
            rows.append({"frame": f, "track_id": tid, "y": pos[0], "x": pos[1], "parent_id": -1})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """A folder with one valid input of each type the commands read."""
    import tifffile

    from napari_dynfit.commands.simulate import write_image
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.sim.well_example import write_active_matter_example

    d = tmp_path_factory.mktemp("valid")
    _tracks().to_csv(d / "in.csv", index=False)
    t, y, x = np.arange(4) * 0.1, np.arange(8) * 0.5, np.arange(8) * 0.5
    rho = 1 + 0.1 * np.sin(x)[None, None, :] * np.exp(-t)[:, None, None] * np.ones((4, 8, 8))
    FieldBundle({"rho": rho}, {"t": t, "y": y, "x": x}).to_zarr(d / "in.zarr")
    (d / "model.json").write_text(json.dumps({"equations": {"rho_t": {"lap(rho)": 0.1}}}))
    movie = (np.random.default_rng(1).random((5, 32, 32)) * 100).astype(np.uint16)
    tifffile.imwrite(d / "in.tif", movie, imagej=True, metadata={"axes": "TYX"})
    np.save(d / "in.npy", movie)
    write_image(movie, d / "in.ome.zarr", spacing=(1.0, 1.0), dt=1.0)
    write_active_matter_example(d / "in.h5", size=8, n_steps=3)
    return d


#: command -> (argv with {IN} / {OUT} / {MODEL}, input type, output name)
COMMANDS = {
    "coarse-grain": (["coarse-grain", "{IN}", "-o", "{OUT}", "--spacing", "2", "--sigma", "2"], "csv", "out.zarr"),
    "track": (["track", "{IN}", "-o", "{OUT}"], "csv", "out.csv"),
    "latent-field": (["latent-field", "{IN}", "-o", "{OUT}", "--dt", "1", "--steps", "2"], "csv", "out.zarr"),
    "infer-flow": (["infer-flow", "{IN}", "--diffusion", "fit", "-o", "{OUT}", "--steps", "2"], "csv", "out"),
    "discover-pde": (["discover-pde", "{IN}", "-o", "{OUT}"], "zarr", "out.json"),
    "balance": (["balance", "{MODEL}", "{IN}", "-o", "{OUT}"], "zarr", "out"),
    "denoise-field": (["denoise-field", "{IN}", "--model", "{MODEL}", "-o", "{OUT}", "--steps", "2"], "zarr",
                      "out.zarr"),
    "detect": (["detect", "{IN}", "-o", "{OUT}"], "tif", "out.csv"),
    "process": (["process", "{IN}", "-o", "{OUT}", "--scheduler", "sync"], "tif", "out.csv"),
    "detect-zarr": (["detect", "{IN}", "-o", "{OUT}"], "ome.zarr", "out.csv"),
    "process-zarr": (["process", "{IN}", "-o", "{OUT}", "--scheduler", "sync"], "ome.zarr", "out.csv"),
    "process-npy": (["process", "{IN}", "--axes", "tyx", "-o", "{OUT}", "--scheduler", "sync"], "npy", "out.csv"),
    "convert": (["convert", "{IN}", "-o", "{OUT}"], "tif", "out.aprmovie"),
    "well-export": (["well-export", "{IN}", "-o", "{OUT}"], "h5", "out.zarr"),
    "well-info": (["well-info", "{IN}"], "h5", None),
    "info": (["info", "{IN}"], "apr", None),
    "filter": (["filter", "{IN}", "--gaussian", "1", "-o", "{OUT}"], "apr", "out.apr"),
    "segment": (["segment", "{IN}", "-o", "{OUT}"], "apr", "out.csv"),
    "reconstruct": (["reconstruct", "{IN}", "-o", "{OUT}"], "apr", "out.tif"),
    "export-grid": (["export-grid", "{IN}", "-o", "{OUT}"], "apr", "out.npz"),
    "simulate": (["simulate", "abp", "-o", "{OUT}", "--frames", "2", "--shape", "16", "16"], None, "out"),
    "well-example": (["well-example", "-o", "{OUT}", "--size", "8", "--steps", "3"], None, "out.h5"),
    "demo": (["demo", "--quick", "-o", "{OUT}"], None, "out"),
}


def _truncate(p: Path) -> None:
    if p.is_dir():
        return
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _zarr_chunk(p: Path, *, corrupt: bool) -> None:
    meta = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".dynfit")
    chunk = next(f for f in sorted(p.rglob("*")) if f.is_file() and f.name not in meta)
    if corrupt:
        chunk.write_bytes(b"\x00garbage\xff" * 3)
    else:
        chunk.unlink()


def _csv_edit(line: int, column: str, value: str):
    def edit(p: Path) -> None:
        lines = p.read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[line].split(",")
        cells[header.index(column)] = value
        lines[line] = ",".join(cells)
        p.write_text("\n".join(lines) + "\n")

    return edit


def _truncate_row(p: Path) -> None:
    text = p.read_text()
    p.write_text(text[: text.rstrip().rfind(",")])  # the last row loses its last cell


def _tiff_frames(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 3 * 32 * 32 * 2 - 10])  # 5 declared frames, fewer stored


#: input type -> {case: mutation of a valid copy (None: the input is missing)}
BAD_INPUTS = {
    "csv": {"missing": None, "empty": lambda p: p.write_bytes(b""), "garbage": lambda p: p.write_bytes(b"\x00\xff\x00"),
            "truncated-row": _truncate_row, "non-numeric": _csv_edit(3, "x", "abc"),
            "huge": _csv_edit(4, "y", "1e300"), "nan": _csv_edit(2, "x", "nan")},
    "zarr": {"missing": None, "missing-chunk": lambda p: _zarr_chunk(p, corrupt=False),
             "corrupt-chunk": lambda p: _zarr_chunk(p, corrupt=True),
             "no-metadata": lambda p: (p / "zarr.json").unlink()},
    "tif": {"missing": None, "empty": lambda p: p.write_bytes(b""), "garbage": lambda p: p.write_bytes(b"II*\x00junk"),
            "truncated-series": _tiff_frames},
    "ome.zarr": {"missing-chunk": lambda p: _zarr_chunk(p, corrupt=False),
                 "corrupt-chunk": lambda p: _zarr_chunk(p, corrupt=True)},
    "npy": {"empty": lambda p: p.write_bytes(b""), "truncated": _truncate,
            "garbage": lambda p: p.write_bytes(b"\x93NUMPY garbage")},
    "h5": {"missing": None, "empty": lambda p: p.write_bytes(b""), "truncated": _truncate},
    "apr": {"missing": None, "empty": lambda p: p.write_bytes(b""), "garbage": lambda p: p.write_bytes(b"\x89HDF\r\n"),
            "truncated": _truncate},
}

#: bad outputs: name -> function(case dir, output name, input path) -> output argument (may create files)
def _out_foreign_dir(d: Path, name: str, inp):
    p = d / name
    p.mkdir()
    (p / "keep.txt").write_text("the user's file")
    return str(p)


def _out_parent_is_file(d: Path, name: str, inp):
    (d / "afile").write_text("x")
    return str(d / "afile" / name)


def _out_wrong_suffix(d: Path, name: str, inp):
    return str(d / (Path(name).stem + ".txt")) if Path(name).suffix else None


def _out_same_as_input(d: Path, name: str, inp):
    return str(inp) if inp is not None and Path(inp).suffix == Path(name).suffix else None


def _out_unwritable(d: Path, name: str, inp):
    return f"/proc/dynfit-fuzz/{name}" if Path("/proc/self").exists() else None


def _out_existing_file(d: Path, name: str, inp):
    p = d / name
    p.write_text("the user's earlier result")
    return str(p)


BAD_OUTPUTS = {"foreign-dir": _out_foreign_dir, "parent-is-file": _out_parent_is_file,
               "wrong-suffix": _out_wrong_suffix, "same-as-input": _out_same_as_input, "unwritable": _out_unwritable,
               "existing-file": _out_existing_file}

#: bad flags per command (appended to a valid command line)
BAD_FLAGS = {
    "coarse-grain": [["--spacing", "nan"], ["--sigma", "0"], ["--box", "0", "0", "--periodic"], ["--dt", "-1"],
                     ["--spacing", "1e-9"]],
    "track": [["--max-distance", "-1"], ["--gap-frames", "-2"], ["--max-distance", "inf"],
              ["--ctc-out", "CTC", "--shape", "100000", "100000", "100000"]],
    "latent-field": [["--grid", "0"], ["--lr", "nan"], ["--box", "0", "5"]],
    "infer-flow": [["--dt", "-1"], ["--steps", "0"], ["--n-paths", "-3"]],
    "discover-pde": [["--pi-th", "2"], ["--subsamples", "0"], ["--penalties", "-1"], ["--t-step", "0"],
                     ["--window", "4"]],
    "balance": [["--tol", "nan"], ["--max-clusters", "0"], ["--quiet", "2"]],
    "denoise-field": [["--lr", "-1"], ["--steps", "0"]],
    "detect": [["--threshold-snr", "nan"], ["--sigma", "0"], ["--sigma-range", "3", "1"], ["--workers", "0"]],
    "process": [["--channel", "5"], ["--rel-error", "0"], ["--threshold-snr", "nan"], ["--spacing", "-1"]],
    "convert": [["--rel-error", "nan"], ["--spacing", "0"]],
    "segment": [["--min-size", "10", "--max-size", "5"], ["--smooth", "-1"]],
    "filter": [["--gaussian", "nan"], ["--size", "4"]],
    "simulate": [["--frames", "0"], ["--snr", "nan"], ["--pixel-size", "0"]],
    "well-example": [["--size", "100000"], ["--dt", "0"], ["--size", "0"]],
    "well-export": [["--t-step", "0"], ["--trajectory", "-1"]],
}


# --------------------------------------------------------------------------------------------------
# running a case


def _snapshot(d: Path) -> dict:
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _setup(valid: Path, d: Path, kind: str | None, mutate) -> Path | None:
    if kind is None:
        return None
    src = valid / f"in.{kind}"
    dst = d / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
    if mutate is not None:
        mutate(dst)
    return dst


@pytest.fixture(scope="module")
def apr_file(valid):
    """A valid small ``.apr`` (pyapr conversion of one frame)."""
    import tifffile

    frame = tifffile.imread(valid / "in.tif")[0]
    tifffile.imwrite(valid / "frame.tif", frame)
    assert main(["-q", "convert", str(valid / "frame.tif"), "-o", str(valid / "in.apr")]) == 0
    return valid / "in.apr"


def _argv(cmd: str, d: Path, inp, out, valid: Path, extra=()):
    template, _, _ = COMMANDS[cmd]
    argv = []
    for a in template:
        a = a.replace("{MODEL}", str(valid / "model.json"))
        if "{IN}" in a:
            a = str(inp)
        if "{OUT}" in a:
            a = str(out)
        argv.append(a)
    return ["-q", *argv, *[x.replace("CTC", str(d / "ctc")) for x in extra]]


def _run_case(capsys, d: Path, argv, before: dict, *, expect=2):
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == expect, (argv, captured.err)
    assert len(err) == 1 and "error" in err[0], (argv, err)
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    after = _snapshot(d)
    assert after == before, (argv, set(after) ^ set(before))
    return err[0]


def _prepare(valid, tmp_path, cmd, kind_case=None):
    template, kind, out_name = COMMANDS[cmd]
    d = tmp_path / "case"
    d.mkdir()
    mutate = None
    if kind_case is not None:
        mutate = BAD_INPUTS[kind][kind_case]
        if mutate is None:
            return d, d / f"in.{kind}", out_name
    inp = _setup(valid, d, kind, mutate)
    return d, inp, out_name


def _need_apr(request, cmd):
    if COMMANDS[cmd][1] == "apr":
        request.getfixturevalue("apr_file")


# --------------------------------------------------------------------------------------------------
# the catalogue

INPUT_CASES = [(cmd, case) for cmd, (_, kind, _) in COMMANDS.items() if kind for case in BAD_INPUTS[kind]]
OUTPUT_CASES = [(cmd, case) for cmd, (_, kind, out) in COMMANDS.items() if out for case in BAD_OUTPUTS]
FLAG_CASES = [(cmd, i) for cmd, flags in BAD_FLAGS.items() for i in range(len(flags))]

#: the default (fast) subset: the issue's examples and one case of each kind
FAST_INPUT = {("coarse-grain", "truncated-row"), ("coarse-grain", "non-numeric"), ("coarse-grain", "huge"),
              ("discover-pde", "missing-chunk"), ("discover-pde", "corrupt-chunk"), ("balance", "missing-chunk"),
              ("detect", "truncated-series"), ("convert", "truncated-series"), ("track", "empty"),
              ("well-export", "truncated"), ("denoise-field", "corrupt-chunk"),
              ("detect-zarr", "corrupt-chunk"), ("process-npy", "truncated")}
FAST_OUTPUT = {("coarse-grain", "foreign-dir"), ("denoise-field", "same-as-input"), ("track", "parent-is-file"),
               ("detect", "wrong-suffix"), ("discover-pde", "unwritable"), ("simulate", "parent-is-file"),
               ("infer-flow", "foreign-dir"), ("well-example", "foreign-dir"), ("track", "existing-file"),
               ("discover-pde", "existing-file"), ("coarse-grain", "existing-file")}
FAST_FLAGS = {("infer-flow", 0), ("latent-field", 0), ("discover-pde", 0), ("discover-pde", 1), ("detect", 0),
              ("detect", 2), ("coarse-grain", 2), ("coarse-grain", 4), ("well-example", 0), ("track", 3),
              ("process", 0)}


def _mark(cases, fast):
    return [c if c in fast else pytest.param(*c, marks=pytest.mark.slow) for c in cases]


@pytest.mark.parametrize("cmd,case", _mark(INPUT_CASES, FAST_INPUT))
def test_bad_input(cmd, case, valid, tmp_path, capsys, request):
    _need_apr(request, cmd)
    if cmd == "infer-flow":  # its snapshots are read by torch's modules; the PINN commands check input first
        pytest.importorskip("torch")
    d, inp, out_name = _prepare(valid, tmp_path, cmd, case)
    out = d / out_name if out_name else None
    before = _snapshot(d)
    line = _run_case(capsys, d, _argv(cmd, d, inp, out, valid), before)
    assert inp.name in line or "input" in line, line


@pytest.mark.parametrize("cmd,case", _mark(OUTPUT_CASES, FAST_OUTPUT))
def test_bad_output(cmd, case, valid, tmp_path, capsys, request):
    _need_apr(request, cmd)
    d, inp, out_name = _prepare(valid, tmp_path, cmd)
    out = BAD_OUTPUTS[case](d, out_name, inp)
    if out is None:
        pytest.skip(f"{case} does not apply to {cmd}")
    before = _snapshot(d)
    line = _run_case(capsys, d, _argv(cmd, d, inp, out, valid), before)
    if case == "existing-file":
        assert out in line and ("--overwrite" in line or "folder" in line), line


@pytest.mark.parametrize("cmd,i", _mark(FLAG_CASES, FAST_FLAGS))
def test_bad_flag(cmd, i, valid, tmp_path, capsys, request):
    _need_apr(request, cmd)
    d, inp, out_name = _prepare(valid, tmp_path, cmd)
    before = _snapshot(d)
    flag = BAD_FLAGS[cmd][i]
    line = _run_case(capsys, d, _argv(cmd, d, inp, d / out_name, valid, flag), before)
    assert any(f.lstrip("-").split("-")[0] in line for f in flag if f.startswith("--")) or "memory" in line, line


def test_overwrite_replaces_only_our_store(valid, tmp_path, capsys):
    """--overwrite replaces a store dynfit wrote, never a folder of the user's; output == input needs it."""
    d = tmp_path
    shutil.copy2(valid / "in.csv", d / "in.csv")
    argv = ["-q", "coarse-grain", str(d / "in.csv"), "-o", str(d / "f.zarr"), "--spacing", "2", "--sigma", "2"]
    assert main(argv) == 0
    assert (d / "f.zarr" / ".dynfit").exists()
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    (d / "user.zarr").mkdir()
    (d / "user.zarr" / "x.txt").write_text("keep")
    assert main([*argv[:-6], "-o", str(d / "user.zarr"), "--spacing", "2", "--sigma", "2", "--overwrite"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert (d / "user.zarr" / "x.txt").read_text() == "keep"
    assert not [p for p in d.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_existing_output_files_need_overwrite(valid, tmp_path, capsys):
    """An existing output file, and an existing side output (track's TRACKS.tracking.json), is refused before any
    work with one line naming the path and --overwrite; with --overwrite both are replaced."""
    shutil.copy2(valid / "in.csv", tmp_path / "in.csv")
    out, report = tmp_path / "t.csv", tmp_path / "t.tracking.json"
    argv = ["-q", "track", str(tmp_path / "in.csv"), "-o", str(out)]
    for existing in (out, report):
        for p in (out, report):
            p.unlink(missing_ok=True)
        existing.write_text("earlier result")
        before = _snapshot(tmp_path)
        line = _run_case(capsys, tmp_path, argv, before)
        assert str(existing) in line and "--overwrite" in line, line
    out.write_text("earlier result")
    assert main([*argv, "--overwrite"]) == 0
    capsys.readouterr()
    assert out.read_text() != "earlier result" and report.read_text() != "earlier result"
    assert json.loads(report.read_text())["output"] == str(out)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_failed_command_leaves_no_half_outputs(valid, tmp_path, capsys):
    """track writes the tracks, then --eval fails: the tracks file must not stay behind."""
    shutil.copy2(valid / "in.csv", tmp_path / "in.csv")
    (tmp_path / "gt.csv").write_text("frame,y,x\n0,1,1\n")  # no track_id: the evaluation fails
    before = _snapshot(tmp_path)
    code = main(["-q", "track", str(tmp_path / "in.csv"), "-o", str(tmp_path / "sub" / "t.csv"),
                 "--eval", str(tmp_path / "gt.csv")])
    assert code == 2
    assert _snapshot(tmp_path) == before  # neither t.csv nor the folder 'sub' it created


def test_stale_temporaries_are_cleaned(valid, tmp_path, capsys):
    """Temporaries left by a killed run (dead pid) next to the output go at the next run; a live one stays."""
    from napari_dynfit._io import clean_stale

    shutil.copy2(valid / "in.csv", tmp_path / "in.csv")
    dead = tmp_path / ".t.tmp-999999999-abcdef.csv"  # no such pid
    dead.write_text("half")
    old = tmp_path / ".t.csv.old-999999999-abcdef"
    old.write_text("old")
    live = tmp_path / f".t.tmp-{os.getppid()}-abcdef.csv"
    live.write_text("in progress")
    assert main(["-q", "track", str(tmp_path / "in.csv"), "-o", str(tmp_path / "t.csv")]) == 0
    assert not dead.exists() and not old.exists() and live.exists()
    assert (tmp_path / "t.csv").exists()
    assert clean_stale(tmp_path / "t.csv") == []


def test_validation_layer_for_the_api():
    """The checkers behind the CLI types, for API and widgets: one-line InputError naming the parameter."""
    from napari_dynfit.errors import InputError
    from napari_dynfit.validate import check_memory, check_number, check_order

    assert check_number(0.5, "pi_th", minimum=0, maximum=1, open_min=True) == 0.5
    for bad, kw in [(float("nan"), {}), (float("inf"), {}), (0, {"minimum": 0, "open_min": True}),
                    (-1, {"minimum": 0}), (2, {"maximum": 1}), (1.5, {"integer": True}), ("abc", {})]:
        with pytest.raises(InputError, match="dt"):
            check_number(bad, "dt", **kw)
    check_order(1, 2, "--min-size", "--max-size")
    with pytest.raises(InputError, match="--min-size 10 is larger than --max-size 5"):
        check_order(10, 5, "--min-size", "--max-size")
    with pytest.raises(InputError, match="reduce --size"):
        check_memory(1e30, "the image", "reduce --size")
    check_memory(1, "a byte", "nothing")
