"""``dynfit detect`` / ``dynfit track`` end to end on simulated movies, and the demo stage."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_dynfit.cli import main
from napari_dynfit.sim import render_labels, render_movie
from napari_dynfit.tables import read_table


@pytest.fixture
def particle_movie(tmp_path, rng):
    n, frames = 25, 6
    # spots at least 4 px (> 2 PSF sigmas, the resolution limit) apart: this checks detect -> track -> eval, not
    # the splitting of unresolved pairs (tests/test_detect.py)
    pos = np.empty((0, 2))
    while len(pos) < n:
        p = rng.uniform(8, 56, 2)
        if not len(pos) or np.hypot(*(pos - p).T).min() >= 4.0:
            pos = np.vstack([pos, p])
    rows = []
    for t in range(frames):
        rows.append(pd.DataFrame({"track_id": np.arange(1, n + 1), "frame": t, "y": pos[:, 0], "x": pos[:, 1]}))
        pos = pos + rng.normal(0, 0.3, pos.shape)
    truth = pd.concat(rows, ignore_index=True)
    movie, truth_px = render_movie(truth, (frames, 64, 64), psf_sigma=1.5, snr=15, seed=0)
    tifffile.imwrite(tmp_path / "movie.tif", movie, imagej=True, metadata={"axes": "TYX"})
    truth_px["parent_id"] = -1
    truth_px.to_csv(tmp_path / "truth.csv", index=False)
    return tmp_path


def test_detect_then_track_with_eval_and_ctc(particle_movie, capsys):
    d = particle_movie
    assert main(["detect", str(d / "movie.tif"), "-o", str(d / "det.csv")]) == 0
    det = read_table(d / "det.csv")
    assert {"frame", "y", "x", "intensity", "size"} <= set(det.columns)
    capsys.readouterr()
    rc = main(["track", str(d / "det.csv"), "-o", str(d / "tracks.parquet"), "--max-distance", "2.5",
               "--gap-frames", "1", "--eval", str(d / "truth.csv"), "--ctc-out", str(d / "ctc"), "--shape", "64", "64"])
    assert rc == 0
    out = capsys.readouterr().out
    metrics = json.loads(out[out.index("{"):])
    assert metrics["DET"] > 0.95 and metrics["LNK"] > 0.9
    tracks = read_table(d / "tracks.parquet")
    assert tracks["track_id"].nunique() <= 30
    assert (d / "ctc" / "res_track.txt").exists() and len(list((d / "ctc").glob("mask*.tif"))) == 6


def test_track_label_movie_and_ctc_eval(tmp_path, capsys):
    truth = pd.DataFrame({"track_id": [1, 1, 1, 2, 2, 2], "frame": [0, 1, 2, 0, 1, 2],
                          "y": [10.0, 11, 12, 30, 30, 31], "x": [10.0, 10, 11, 30, 31, 31], "radius": 4.0})
    labels = render_labels(truth, (3, 48, 48))
    tifffile.imwrite(tmp_path / "labels.tif", np.where(labels > 0, 3 - labels, 0).astype(np.uint16),
                     imagej=True, metadata={"axes": "TYX"})
    truth.assign(parent_id=-1).to_csv(tmp_path / "truth.csv", index=False)
    rc = main(["track", str(tmp_path / "labels.tif"), "-o", str(tmp_path / "t.csv"), "--max-distance", "5",
               "--ctc-out", str(tmp_path / "res"), "--labels-out", str(tmp_path / "rel.tif"),
               "--eval", str(tmp_path / "truth.csv"), "--match-distance", "0.5"])
    assert rc == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["TRA"] == 1.0
    rel = tifffile.imread(tmp_path / "rel.tif")
    assert set(np.unique(rel)) == {0, 1, 2}
    # the CTC result folder is itself a valid ground truth / input
    assert main(["track", str(tmp_path / "res"), "-o", str(tmp_path / "t2.csv"), "--max-distance", "5",
                 "--eval", str(tmp_path / "res")]) == 0


@pytest.mark.parametrize("argv, msg", [
    (["track", "missing.csv", "-o", "x.csv"], "does not exist"),
    (["track", "{d}/bad.csv", "-o", "{d}/x.csv"], "lacks the column"),
    (["track", "{d}/ok.csv", "-o", "{d}/x.txt"], ".csv or .parquet"),
    (["track", "{d}/ok.csv", "-o", "{d}/x.csv", "--max-distance", "-3"], "max-distance"),
    (["detect", "{d}/ok.csv", "-o", "{d}/x.csv"], "TIFF"),
])
def test_cli_errors_exit_2(tmp_path, capsys, argv, msg):
    pd.DataFrame({"y": [1.0], "x": [2.0]}).to_csv(tmp_path / "bad.csv", index=False)
    pd.DataFrame({"frame": [0, 1], "y": [1.0, 1.0], "x": [2.0, 2.0]}).to_csv(tmp_path / "ok.csv", index=False)
    assert main([a.format(d=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dynfit {argv[0]}: error:") and msg in err


def test_demo_stage(tmp_path):
    from napari_dynfit.demo import track
    from napari_dynfit.report import DemoContext, Report
    from napari_dynfit.sim import active_particles_2d

    ctx = DemoContext(out_dir=tmp_path, report=Report("t"), quick=True)
    order, title, func = track.DEMO_STAGE
    assert order == 40
    func(ctx)  # nothing from the simulation stage: skipped cleanly
    assert "tracks" not in ctx.artefacts
    from napari_dynfit.sim.samples import DEMO_PIECE

    s = active_particles_2d(seed=0, **DEMO_PIECE)  # what the demo's simulation stage makes
    ctx.artefacts.update(sample=s, movie=s.movie, truth=s.truth)
    func(ctx)
    table = ctx.artefacts["tracking_metrics"]
    assert set(table["motion model"]) == {"brownian", "velocity"}
    assert (table["TRA"] > 0.9).all()
    assert (tmp_path / "tracks.csv").exists() and (tmp_path / "detections.csv").exists()
    assert ctx.artefacts["tracks"]["frame"].max() == 14


def test_detect_on_apr_movie(tmp_path):
    """Detection on an APR movie (lazy reconstruction per frame) finds the rendered spots."""
    from napari_dynfit.apr import to_apr, write_apr_movie
    from napari_dynfit.track.metrics import match_nodes

    rng = np.random.default_rng(0)
    truth = pd.DataFrame({"frame": np.repeat([0, 1], 20), "y": rng.uniform(5, 59, 40), "x": rng.uniform(5, 59, 40)})
    movie, truth_px = render_movie(truth, (2, 64, 64), psf_sigma=1.5, snr=15, seed=0)
    path = write_apr_movie(to_apr(movie, movie=True), tmp_path / "m.aprmovie")
    assert main(["detect", str(path), "-o", str(tmp_path / "det.csv")]) == 0
    det = read_table(tmp_path / "det.csv")
    gi, pj = match_nodes(truth_px, det, match_distance=1.0)
    assert len(gi) >= 36 and len(pj) >= len(det) - 2
