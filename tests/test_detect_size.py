"""The object size estimated from the data: one rule for ``dynfit detect --sigma auto`` (the default),
``detect_movie(sigma=None)`` and the napari panel (:func:`napari_dynfit.detect.size.estimate_movie_spot_sigma`)."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_dynfit.cli import main
from napari_dynfit.detect import detect_blobs, detect_movie, resolve_spot_sigma
from napari_dynfit.detect.size import estimate_movie_spot_sigma
from napari_dynfit.errors import InputError
from napari_dynfit.sim import render_movie
from napari_dynfit.tables import read_table
from napari_dynfit.track.metrics import match_nodes


def _movie(psf_sigma, n, size, spacing, frames=4, snr=15, seed=0):
    """Spots on a grid ``spacing`` px apart (jittered, moving a little), rendered with a Gaussian PSF."""
    rng = np.random.default_rng(seed)
    g = np.arange(spacing, size - spacing / 2, spacing)
    grid = np.array([(y, x) for y in g for x in g])[:n]
    rows = [pd.DataFrame({"frame": t, "y": grid[:, 0] + rng.normal(0, 1, len(grid)),
                          "x": grid[:, 1] + rng.normal(0, 1, len(grid))}) for t in range(frames)]
    movie, truth = render_movie(pd.concat(rows, ignore_index=True), (frames, size, size), psf_sigma=psf_sigma,
                                snr=snr, seed=seed)
    return movie, truth


def _cli_detect(tmp_path, movie, *flags):
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, metadata={"axes": "TYX"})
    out = tmp_path / f"d{len(flags)}.csv"
    assert main(["detect", str(tmp_path / "m.tif"), "-o", str(out), *flags]) == 0
    return read_table(out)


def test_cli_default_sizes_large_blobs(tmp_path, capsys):
    """Blobs of sigma 6 px: the default (auto) finds one detection per blob where a fixed 1.5 px over-splits."""
    movie, truth = _movie(6.0, 9, 150, 45)
    det = _cli_detect(tmp_path, movie)
    line = [s for s in capsys.readouterr().out.splitlines() if s.startswith("sigma")]
    assert len(line) == 1 and "auto" in line[0] and "bright" in line[0]  # the estimate and where it came from
    assert len(det) == len(truth)  # one per blob
    gi, pj = match_nodes(truth, det, match_distance=2.0)
    assert len(gi) == len(truth)
    assert det["size"].median() == pytest.approx(6.0, rel=0.15)
    fixed = _cli_detect(tmp_path, movie, "--sigma", "1.5")
    assert len(fixed) > 1.3 * len(truth)  # the old default: maxima inside the blobs
    assert "sigma 1.50 px (given)" in capsys.readouterr().out


def test_default_keeps_small_spots(tmp_path):
    """Diffraction-limited spots (sigma 1.5 px): the estimate is ~1.5 and every spot is found once."""
    movie, truth = _movie(1.5, 36, 96, 14, frames=3)
    det = _cli_detect(tmp_path, movie)
    assert det["size"].median() == pytest.approx(1.5, rel=0.15)  # the sigma used
    gi, pj = match_nodes(truth, det, match_distance=1.5)
    assert len(gi) >= 0.97 * len(truth) and len(pj) >= 0.97 * len(det)


def test_dark_blobs_and_api_default():
    """Dark objects are measured on their own side (polarity decided with the size); the Python API's default is the
    same rule and records it; a given sigma is used as given."""
    movie, truth = _movie(4.0, 9, 120, 36, frames=3)
    dark = movie.max() + 10.0 - movie
    est = estimate_movie_spot_sigma(dark)
    assert est.polarity == "dark" and est.skewness < 0 and est.sigma == pytest.approx(4.0, rel=0.15)
    assert est.frames == [0, 1, 2] and len(est.per_frame) == 3 and "dark" in est.summary()
    # the shared rule (detect_movie, process_movie): estimated with the polarity, or a given size kept as given
    assert resolve_spot_sigma(dark) == (est.sigma, "dark", est.skewness, est.summary())
    assert resolve_spot_sigma(dark, 3) == (3.0, "auto", None, "given")
    assert resolve_spot_sigma(dark, None, (2.0, 5.0), polarity="dark") == (None, "dark", None, "given (sigma_range)")
    det = detect_movie(dark, n_workers=1)
    assert det.attrs["sigma"] == pytest.approx(est.sigma) and det.attrs["polarity"] == "dark"
    assert det.attrs["sigma_choice"] == est.summary()
    assert len(match_nodes(truth, det, match_distance=2.0)[0]) == len(truth) == len(det)
    one = detect_blobs(dark[1])  # one image: the same rule on that frame
    assert one.attrs["polarity"] == "dark" and one.attrs["sigma"] == pytest.approx(4.0, rel=0.15)
    given = detect_movie(dark, sigma=3.0, n_workers=1)
    assert given.attrs["sigma"] == 3.0 and given.attrs["sigma_choice"] == "given"


def test_no_spots_is_one_clear_error():
    with pytest.raises(InputError, match="object size by hand"):
        estimate_movie_spot_sigma(np.zeros((3, 32, 32)))
