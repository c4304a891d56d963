"""Contrast pre-filters on the APR (apr/contrast.py): dark objects with bright halos on uneven illumination."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from napari_dynfit.apr import to_apr, write_apr
from napari_dynfit.apr.contrast import flatten, local_background
from napari_dynfit.apr.segment import segment
from napari_dynfit.detect.contrast import flatten as pixel_flatten
from napari_dynfit.detect.contrast import local_background as pixel_background
from napari_dynfit.errors import InputError

NOISE = 8.0


def _phase_like(seed, shape=(128, 160), n=25, sigma=2.0):
    """Dark spots (sigma 2 px) with bright halos on a tilted field (600 + 2 x + y), Gaussian noise 8; truth."""
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:
        p = rng.uniform(8, np.asarray(shape) - 8)
        if all(np.hypot(*(p - q)) >= 16 for q in pts):
            pts.append(p)
    pts = np.asarray(pts)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dark, halo = np.zeros(shape), np.zeros(shape)
    for y, x in pts:
        r2 = (yy - y) ** 2 + (xx - x) ** 2
        core = np.exp(-r2 / (2 * sigma ** 2))
        dark += core
        halo += np.exp(-r2 / (2 * (2 * sigma) ** 2)) - core  # a positive ring around each spot
    img = 600 + 2.0 * xx + 1.0 * yy - 300 * dark + 150 * halo + rng.normal(0, NOISE, shape)
    return img.clip(0, 65535).astype(np.uint16), pts


@pytest.fixture(scope="module")
def phase_apr():
    img, pts = _phase_like(0)
    return img, pts, to_apr(img)


def _recall(table, pts, max_dist=2.0):
    d = cdist(pts, table[["y", "x"]].to_numpy())
    return float((d.min(axis=1) <= max_dist).mean()), int((d.min(axis=0) > max_dist).sum())


def test_flatten_on_particles_matches_pixels_and_finds_dark_objects(phase_apr):
    img, pts, image = phase_apr
    grid, values = image.grid, np.asarray(image.parts, np.float32)
    flat, pol, skew = flatten(grid, values, 2.0)
    ref, ref_pol, ref_skew = pixel_flatten(img.astype(np.float32), 2.0)
    assert pol == ref_pol == "dark" and skew < -1 and ref_skew < -1
    c = np.round(grid.pixel_centers()[:, 1:]).astype(int)
    w = grid.cell_sizes()
    # the particle background equals the pixel one to within the noise (the APR's values are local means)
    assert np.sqrt(np.average((flat - ref[c[:, 0], c[:, 1]]) ** 2, weights=w)) < NOISE
    bg = local_background(grid, values, 20)
    yx = grid.pixel_centers()[:, 1:]
    err = np.abs(bg - (600 + 2 * yx[:, 1] + yx[:, 0]))  # the tilt (up to 440) is followed, not the spots (300)
    pixel_err = np.abs(pixel_background(img.astype(np.float32), 20) - (600 + 2 * np.mgrid[:128, :160][1]
                                                                       + np.mgrid[:128, :160][0]))
    # as good as the pixel version (whose block medians the halos bias by a few grey levels too)
    assert np.median(err) <= np.median(pixel_err[c[:, 0], c[:, 1]]) + NOISE / 4 < 15
    assert err.max() <= pixel_err.max() + NOISE
    # objects: every dark spot, halos excluded, once flattened; the raw particles give one bright blob
    res = segment(grid, flat, method="otsu", smooth_sigma=1.0, min_size=4)
    recall, extra = _recall(res.table, pts)
    assert recall >= 0.95 and extra <= 1
    raw = segment(grid, values, method="otsu", smooth_sigma=1.0, min_size=4)
    assert _recall(raw.table, pts)[0] < 0.2
    bright, pol_b, skew_b = flatten(grid, values, 2.0, "bright")
    assert pol_b == "bright" and skew_b is None
    np.testing.assert_allclose(bright, -flat, atol=1e-3)


def test_bright_fluorescence_is_left_bright(phase_apr):
    img, pts, _ = phase_apr
    inv = (img.max() + 100 - img.astype(np.int64)).astype(np.uint16)  # bright spots, dark rings
    image = to_apr(inv)
    flat, pol, skew = flatten(image.grid, np.asarray(image.parts), 2.0)
    assert pol == "bright" and skew > 1


def test_bad_arguments(phase_apr):
    _, _, image = phase_apr
    with pytest.raises(InputError, match="polarity"):
        flatten(image.grid, np.asarray(image.parts), 2.0, "black")
    with pytest.raises(InputError, match="one value or 2"):
        flatten(image.grid, np.asarray(image.parts), (2.0, 2.0, 2.0))


def test_cli_flatten_and_segment_dark_apr(tmp_path, phase_apr, capsys):
    from napari_dynfit.cli import main

    _, pts, image = phase_apr
    src = write_apr(image, tmp_path / "phase.apr")
    assert main(["segment", str(src), "-o", str(tmp_path / "obj.csv")]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["polarity"] == "dark"
    recall, extra = _recall(pd.read_csv(tmp_path / "obj.csv"), pts)
    assert recall >= 0.95 and extra <= 1
    assert main(["filter", str(src), "--flatten", "2", "-o", str(tmp_path / "flat.apr")]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["filter"] == "flatten" and info["polarity"] == "dark" and (tmp_path / "flat.apr").exists()
