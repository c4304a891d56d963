"""Regressions found by the bad-input audit of every ``dynfit`` command and reader (2026-12-05).

Each case: exit status 2, one line on stderr naming the problem and the fix, no traceback, no output written and
the input left byte-identical (``docs/safety.md``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.cli import main
from napari_dynfit.errors import InputError


def _tracks(n_tracks: int = 4, n_frames: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for tid in range(n_tracks):
        pos = rng.uniform(5, 25, 2)
        for f in range(n_frames):
            pos = pos + rng.normal(0, 0.5, 2)
            rows.append({"frame": f, "track_id": tid, "y": pos[0], "x": pos[1]})
    return pd.DataFrame(rows)


def _digest(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


def _refused(capsys, d: Path, argv) -> str:
    before = _digest(d)
    code = main(["-q", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and "error" in err[0] and "Traceback" not in err[0], err
    assert _digest(d) == before
    return err[0]


def test_absurd_frame_number_is_refused(tmp_path, capsys):
    """A frame number of 10^9 (a time stamp, a corrupt row) made msd build per-frame arrays of 10^9 frames and track
    loop over them (both ran for hours); now the table is refused naming the row and the limit."""
    from napari_dynfit.tables import MAX_FRAME, validate_table

    df = _tracks()
    df.loc[3, "frame"] = 10**9
    df.to_csv(tmp_path / "t.csv", index=False)
    df.drop(columns="track_id").to_csv(tmp_path / "d.csv", index=False)
    for argv in (["msd", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.csv")],
                 ["track", str(tmp_path / "d.csv"), "-o", str(tmp_path / "k.csv")]):
        line = _refused(capsys, tmp_path, argv)
        assert "row 4 (line 5), column 'frame'" in line and "1000000000" in line and "renumber" in line, line
    with pytest.raises(InputError, match="implausibly large"):
        validate_table(df)
    df.loc[3, "frame"] = MAX_FRAME  # the limit itself is accepted
    assert validate_table(df)["frame"].max() == MAX_FRAME


def test_duplicate_track_rows_are_refused(tmp_path, capsys):
    """Two rows of one track in one frame: msd refused them, but convert-tracks wrote a GEFF graph with 480 nodes
    for 240 positions and latent-field fitted them; every tracks reader now refuses them naming the first row."""
    from napari_dynfit.tables import validate_table

    df = _tracks()
    pd.concat([df, df.iloc[[7]]]).to_csv(tmp_path / "t.csv", index=False)
    for argv in (["convert-tracks", str(tmp_path / "t.csv"), str(tmp_path / "t.geff")],
                 ["msd", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.csv")]):
        line = _refused(capsys, tmp_path, argv)
        assert "row 25 (line 26) gives track 1 a second position in frame 1" in line, line
    with pytest.raises(InputError, match="second position"):
        validate_table(pd.concat([df, df.iloc[[0]]]), required=("frame", "track_id"))
    # detections (no track_id required) may share a frame and a position
    assert len(validate_table(pd.concat([df, df.iloc[[0]]]).drop(columns="track_id"))) == len(df) + 1


def test_nan_movie_is_named_by_the_size_estimate(tmp_path, capsys):
    """NaN pixels in every frame: detect said 'no spots in frames 1, 2, 3' (the size estimate turned the NaN into
    'no spots'); now it names the frame and the NaN, as detection itself does."""
    import tifffile

    from napari_dynfit.detect.size import estimate_movie_spot_sigma

    rng = np.random.default_rng(1)
    movie = rng.normal(100, 5, (4, 32, 32)).astype(np.float32)
    movie[:, 14:17, 14:17] += 200
    movie[:, 3:5, 3:5] = np.nan
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, metadata={"axes": "TYX"})
    line = _refused(capsys, tmp_path, ["detect", str(tmp_path / "m.tif"), "-o", str(tmp_path / "d.csv")])
    assert "frame 1 contains NaN or infinite values" in line, line
    with pytest.raises(InputError, match="frame 0: need a 2D or 3D image of at least 3 pixels"):
        estimate_movie_spot_sigma(np.ones((2, 2, 2)))
    movie[:, 3:5, 3:5] = 100  # the same movie without NaN: a size is found
    assert 1.0 < estimate_movie_spot_sigma(movie).sigma < 3.0


def test_tiff_larger_than_memory_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    """A TIFF whose pixels (and the float32 copy every command makes) exceed the available memory: detect and the
    napari pixel reader read a 100000 x 100000 TIFF whole (10 GB, minutes of swapping); now the size is checked from
    the header first. The memory is faked small here, the file is tiny."""
    import tifffile

    from napari_dynfit import validate
    from napari_dynfit.io import open_image

    movie = np.random.default_rng(0).integers(0, 100, (8, 64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, metadata={"axes": "TYX"})
    assert open_image(tmp_path / "m.tif").data.shape == (8, 64, 64)  # enough memory: read
    monkeypatch.setattr(validate, "available_memory", lambda: 150_000.0)  # 8 x 64 x 64 x (2 + 4) B = 196608 B
    with pytest.raises(InputError, match=r"8 x 64 x 64 uint16, read whole\) needs about 192 KB"):
        open_image(tmp_path / "m.tif")
    line = _refused(capsys, tmp_path, ["detect", str(tmp_path / "m.tif"), "-o", str(tmp_path / "d.csv")])
    assert "OME-Zarr" in line, line


def test_damaged_closure_file_is_refused(tmp_path):
    """A closure file cut in half was an internal error (BadZipFile, exit 1); one with a NaN weight was evaluated
    (closure errors NaN, exit 0). Both are now InputErrors naming the file and the fix."""
    pytest.importorskip("torch")
    from napari_dynfit.models.closure.learned import LearnedClosure

    good = LearnedClosure(hidden=4, seed=0).save(tmp_path / "c.npz")
    assert LearnedClosure.load(good).config == LearnedClosure(hidden=4).config
    data = good.read_bytes()
    (tmp_path / "half.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="is not a closure file written by dynfit.*dynfit closure train"):
        LearnedClosure.load(tmp_path / "half.npz")
    z = dict(np.load(good))
    z["w/net.0.weight"] = z["w/net.0.weight"].copy()
    z["w/net.0.weight"][0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **z)
    with pytest.raises(InputError, match=r"NaN or infinite weights \(net.0.weight\)"):
        LearnedClosure.load(tmp_path / "nan.npz")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(InputError, match="is a folder, not a file"):
        LearnedClosure.load(tmp_path / "dir.npz")
    z["w/net.0.weight"] = np.ones((2, 2))  # weights of another network
    np.savez(tmp_path / "shape.npz", **z)
    with pytest.raises(InputError, match="is not a closure file written by dynfit"):
        LearnedClosure.load(tmp_path / "shape.npz")


def test_folder_named_as_hdf5_and_empty_npy(tmp_path, capsys):
    """A folder named x.apr / x.h5 gave h5py's multi-line read dump as the message (napari readers, API); an empty
    .npy was an EOFError from open_image (the CLI caught it as a 0-byte file, the API did not)."""
    from napari_dynfit.apr.io import read_apr
    from napari_dynfit.io import load_fields, open_image

    for name, fn in (("x.apr", read_apr), ("x.h5", load_fields)):
        (tmp_path / name).mkdir()
        with pytest.raises(InputError, match=r"is a folder, not a file: pass the file itself") as err:
            fn(tmp_path / name)
        assert "\n" not in str(err.value)
    for argv in (["info", str(tmp_path / "x.apr")], ["export-grid", str(tmp_path / "x.apr"), "-o", str(tmp_path / "g.npz")]):
        line = _refused(capsys, tmp_path, argv)
        assert "is a folder, not a file" in line, line
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(InputError, match="cannot read .* as a numpy array .*is the file complete"):
        open_image(tmp_path / "e.npy", axes="tyx")


def test_well_reader_names_a_damaged_file(tmp_path):
    """A truncated or empty .h5 was declined by the Well reader (napari then says only that no reader was found);
    it is now taken and the reader raises the one-line reason. A valid HDF5 that is not a Well file is still
    declined (another plugin may read it)."""
    import h5py

    from napari_dynfit._napari._well_reader import get_reader
    from napari_dynfit.sim.well_example import write_active_matter_example

    good = tmp_path / "w.h5"
    write_active_matter_example(good, size=8, n_steps=3)
    data = good.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.h5").write_bytes(b"")
    for name in ("cut.h5", "empty.h5"):
        reader = get_reader(str(tmp_path / name))
        assert reader is not None
        with pytest.raises(InputError, match=r"cannot open .* as HDF5 .*is the file complete"):
            reader(str(tmp_path / name))
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.create_dataset("a", data=np.zeros(2))
    assert get_reader(str(tmp_path / "plain.h5")) is None
    assert get_reader(str(good)) is not None


def test_folder_named_h5ad(tmp_path):
    """A folder named x.h5ad: h5py's multi-line read dump, cut at 120 characters, was the message."""
    pytest.importorskip("torch")  # napari_dynfit.models.flow imports the learning stack
    from napari_dynfit.models.flow.h5ad import read_h5ad_table

    (tmp_path / "x.h5ad").mkdir()
    with pytest.raises(InputError, match="AnnData .h5ad file .* is a folder, not a file: pass the file itself"):
        read_h5ad_table(tmp_path / "x.h5ad")


@pytest.mark.parametrize("command", ["msd", "coarse-grain"])
def test_ctrl_c_in_the_middle_of_a_write(command, tmp_path, capsys, monkeypatch):
    """KeyboardInterrupt raised while the output is being written (half a CSV on disk; a Zarr store written but not
    yet marked): exit 130, 'interrupted' (msd's summary lines come before it), the previous output (replaced with --overwrite) byte-identical, no temporary,
    the input untouched."""
    _tracks(n_tracks=6, n_frames=12).to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / ("m.csv" if command == "msd" else "f.zarr")
    argv = ["-q", command, str(tmp_path / "t.csv"), "-o", str(out)]
    if command == "coarse-grain":
        argv += ["--spacing", "4", "--sigma", "4"]
    assert main(argv) == 0
    capsys.readouterr()
    before = _digest(tmp_path)

    if command == "msd":
        _interrupt_csv_writes_halfway(monkeypatch)
    else:
        def interrupt(folder):
            raise KeyboardInterrupt

        monkeypatch.setattr("napari_dynfit._io.write_marker", interrupt)
    assert main([*argv, "--overwrite"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"dynfit {command}: interrupted" and "Traceback" not in err, err
    assert _digest(tmp_path) == before


def test_seeds_and_bench_counts_are_range_checked(tmp_path, capsys):
    """--seed -1 was an internal error (numpy's ValueError, exit 1) in every command with a seed; bench pfi --jobs 0
    and --threads -1 were internal errors; bench pinn-weighting --eps -1 and pinn-chemotaxis --steps 0 ran. All are
    now usage errors naming the option, before any work."""
    import argparse

    from napari_dynfit.cli import _walk, build_parser

    seeds = [a for p in _walk(build_parser()) for a in p._actions if a.dest == "seed" or a.dest.endswith("seeds")]
    assert len(seeds) >= 10 and all(a.type is not int for a in seeds)
    cases = [(["simulate", "abp", "-o", str(tmp_path / "s"), "--seed", "-1"], "--seed"),
             (["balance", "m.json", "f.zarr", "-o", str(tmp_path / "b"), "--seed", "-1"], "--seed"),
             (["bench", "bpinn", "-o", str(tmp_path / "b.json"), "--seeds", "1", "-2"], "--seeds"),
             (["bench", "pfi", "-o", str(tmp_path / "p.json"), "--jobs", "0"], "--jobs"),
             (["bench", "pfi", "-o", str(tmp_path / "p.json"), "--threads", "-1"], "--threads"),
             (["bench", "pinn-weighting", "-o", str(tmp_path / "w.json"), "--eps", "-1"], "--eps"),
             (["bench", "pinn-chemotaxis", "-o", str(tmp_path / "c.json"), "--steps", "0"], "--steps")]
    for argv, flag in cases:
        line = _refused(capsys, tmp_path, argv)
        assert f"argument {flag}" in line, line
    with pytest.raises(argparse.ArgumentTypeError, match="4294967295"):
        seeds[0].type("4294967296")
    assert seeds[0].type("4294967295") == 2**32 - 1


def test_spacing_with_more_values_than_axes_is_refused(tmp_path, capsys):
    """--spacing 1 5 9 on 2D data: the leading value was silently dropped (detect used 5 x 9, msd y=2, x=3); now an
    error naming the axes. One value per axis still works."""
    from napari_dynfit.validate import check_spacing

    _tracks().to_csv(tmp_path / "t.csv", index=False)
    line = _refused(capsys, tmp_path, ["msd", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.csv"),
                                       "--spacing", "1", "2", "3"])
    assert "--spacing gives 3 values but the data has 2 spatial axes (y, x)" in line, line
    assert main(["-q", "msd", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.csv"), "--spacing", "2", "3"]) == 0
    check_spacing(None, 2)
    check_spacing((0.5, 0.2, 0.2), 3)
    with pytest.raises(InputError, match="2 values but the data has 1 spatial axes"):
        check_spacing([1, 1], 1)


def test_closure_run_too_long_to_save_and_nan_rod_merge(tmp_path, capsys):
    """closure simulate --t-end 1e9 started a run whose saved frames need hundreds of TB (it ran until killed); now
    refused from the flags. segment --rod-merge nan was accepted (type float)."""
    line = _refused(capsys, tmp_path, ["closure", "simulate", "-o", str(tmp_path / "c.npz"), "--t-end", "1e9"])
    assert "saving this run" in line and "raise --save-every" in line, line
    line = _refused(capsys, tmp_path, ["segment", str(tmp_path / "x.apr"), "-o", str(tmp_path / "s.csv"),
                                       "--rod-merge", "nan"])
    assert "--rod-merge" in line, line


def test_pipe_or_device_as_input_is_refused(tmp_path, capsys):
    """A FIFO named t.csv blocked msd forever (nobody writes to it); a t.csv linked to /dev/zero was read until memory
    ran out. Both are now refused before reading."""
    import os

    if not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"):
        pytest.skip("needs POSIX FIFOs and /dev/zero")
    os.mkfifo(tmp_path / "f.csv")
    (tmp_path / "z.csv").symlink_to("/dev/zero")
    for name in ("f.csv", "z.csv"):
        line = _refused(capsys, tmp_path, ["msd", str(tmp_path / name), "-o", str(tmp_path / "m.csv")])
        assert "is not a regular file or folder (a pipe, socket or device)" in line, line


def test_latent_field_samples_written_atomically(tmp_path, capsys, monkeypatch):
    """latent-field --bayesian --samples wrote its CSV in place with to_csv: Ctrl-C during that write left half a file
    where the previous samples were (--overwrite). It now goes through write_table (temporary + rename, in the
    command's transaction): the previous samples and fields survive byte-identical."""
    pytest.importorskip("torch")
    _tracks(n_tracks=6, n_frames=8).to_csv(tmp_path / "t.csv", index=False)
    argv = ["-q", "latent-field", str(tmp_path / "t.csv"), "-o", str(tmp_path / "f.zarr"), "--dt", "1", "--bayesian",
            "--draws", "4", "--tune", "2", "--chains", "1", "--steps", "2", "--grid", "8", "--collocation", "64",
            "--samples", str(tmp_path / "s.csv")]
    assert main(argv) == 0
    capsys.readouterr()
    before = _digest(tmp_path)
    _interrupt_csv_writes_halfway(monkeypatch)
    assert main([*argv, "--overwrite"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "dynfit latent-field: interrupted"
    assert _digest(tmp_path) == before


def test_ctc_masks_shape_and_size_checked(tmp_path, capsys):
    """convert-tracks to a CTC folder: --shape with 3 sizes for 2D tracks was an internal error (numpy broadcast);
    --shape 100000 100000 or --radius 1e6 ended in a MemoryError (a generic line). Each now names the option."""
    df = _tracks()
    df["track_id"] += 1  # CTC ids start at 1
    df.to_csv(tmp_path / "t.csv", index=False)
    for extra, needle in ((["--shape", "5", "64", "64"], "has 3 axes but the tracks have 2 (y, x)"),
                          (["--shape", "100000000", "100000000"], "give a smaller --shape"),
                          (["--shape", "64", "64", "--radius", "1e7"], "give a smaller --radius")):
        line = _refused(capsys, tmp_path, ["convert-tracks", str(tmp_path / "t.csv"), str(tmp_path / "ctc"), *extra])
        assert needle in line, line
    assert main(["-q", "convert-tracks", str(tmp_path / "t.csv"), str(tmp_path / "ctc"), "--shape", "64", "64"]) == 0
    assert len(list((tmp_path / "ctc").glob("mask*.tif"))) == 6


def _interrupt_csv_writes_halfway(monkeypatch):
    """Make every ``DataFrame.to_csv`` write its file, cut it to half and raise KeyboardInterrupt (Ctrl-C in the
    middle of a write)."""
    original = pd.DataFrame.to_csv

    def half_then_interrupt(self, path=None, *args, **kwargs):
        original(self, path, *args, **kwargs)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_interrupt)


def test_latent_field_grid_is_capped_before_training(tmp_path, capsys, monkeypatch):
    """``latent-field --grid 4096`` was accepted and ran for minutes (the field is evaluated at frames x grid^2
    points after training, ~65 GB for 31 frames). Now a grid above ``MAX_LATENT_GRID`` is refused by the parser and
    the API, and a grid the memory cannot hold is refused after reading the table, before any training."""
    from napari_dynfit import validate
    from napari_dynfit.validate import MAX_LATENT_GRID, check_latent_grid

    _tracks(n_tracks=6, n_frames=8).to_csv(tmp_path / "t.csv", index=False)
    base = ["latent-field", str(tmp_path / "t.csv"), "-o", str(tmp_path / "f.zarr"), "--dt", "1"]
    line = _refused(capsys, tmp_path, [*base, "--grid", "4096"])
    assert f"limit of {MAX_LATENT_GRID} points per axis" in line and f"use --grid {MAX_LATENT_GRID} or less" in line
    with pytest.raises(InputError, match=f"grid 4096 is above the limit of {MAX_LATENT_GRID}"):
        check_latent_grid(4096, 8)
    assert check_latent_grid(MAX_LATENT_GRID, 8) == MAX_LATENT_GRID  # the limit itself is accepted
    # 8 frames x 64 x 64 points x 130 B = 4.3 MB: refused when less memory is available, naming the fix
    monkeypatch.setattr(validate, "available_memory", lambda: 1e6)
    line = _refused(capsys, tmp_path, [*base, "--grid", "64"])
    assert "8 frames x 64 x 64 points needs about" in line and "lower --grid" in line, line
    line = _refused(capsys, tmp_path, [*base, "--grid", "64", "--bayesian"])
    assert "lower --grid or the draws" in line, line


def test_latent_field_api_refuses_a_huge_grid_before_training(monkeypatch):
    torch = pytest.importorskip("torch")  # noqa: F841
    from napari_dynfit.models.pinn import fit_latent_field
    from napari_dynfit.models.pinn.bayes_latent import bayesian_latent_field
    from napari_dynfit.models.pinn.train import PINN

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(PINN, "fit", no_training)
    tracks = _tracks(n_tracks=6, n_frames=8)
    for fit in (fit_latent_field, bayesian_latent_field):
        with pytest.raises(InputError, match="grid 4096 is above the limit"):
            fit(tracks, grid=4096, dt=1.0)
