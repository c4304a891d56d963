"""Detection: sub-pixel blobs on rendered spots (simulator), split of unresolved pairs, label tables."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.detect import detect_blobs, detect_movie, label_overlaps, label_table
from napari_dynfit.errors import InputError
from napari_dynfit.sim import render_labels, render_movie
from napari_dynfit.track.metrics import match_nodes


def _random_spots(rng, n, shape, frames=1, min_sep=4.0):
    """Random points at least ``min_sep`` px apart (so each is resolvable), table in pixels."""
    rows = []
    for t in range(frames):
        pts = []
        while len(pts) < n:
            p = rng.uniform(3, np.array(shape) - 3)
            if all(np.linalg.norm(p - q) >= min_sep for q in pts):
                pts.append(p)
        pts = np.array(pts)
        cols = ["z", "y", "x"][-len(shape):]
        df = pd.DataFrame(pts, columns=cols)
        df.insert(0, "frame", t)
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def test_detects_rendered_spots_with_subpixel_accuracy(rng):
    truth = _random_spots(rng, 60, (128, 128), frames=3)
    movie, truth_px = render_movie(truth, (3, 128, 128), psf_sigma=1.5, snr=10, seed=1)
    det = detect_movie(movie, sigma=1.5)
    gi, pj = match_nodes(truth_px, det, match_distance=1.5)
    assert len(gi) / len(truth_px) >= 0.98
    assert len(pj) / len(det) >= 0.97
    err = np.linalg.norm(truth_px[["y", "x"]].to_numpy()[gi] - det[["y", "x"]].to_numpy()[pj], axis=1)
    assert np.median(err) <= 0.3
    assert set(det.columns) >= {"frame", "y", "x", "intensity", "size"}
    # integer positions would give a median error near 0.38 px: the refinement is what brings it down
    assert np.median(err) < 0.2


def test_subpixel_beats_integer_blob_log(rng):
    from skimage.feature import blob_log

    truth = _random_spots(rng, 40, (96, 96))
    movie, truth_px = render_movie(truth, (1, 96, 96), psf_sigma=1.5, snr=20, seed=2)
    ours = detect_blobs(movie[0], sigma=1.5)
    sk = blob_log(movie[0].astype(float), min_sigma=1.5, max_sigma=1.5, num_sigma=1, threshold=0.05 * movie.max())
    sk = pd.DataFrame({"frame": 0, "y": sk[:, 0], "x": sk[:, 1]})
    ours.insert(0, "frame", 0)
    errs = []
    for det in (ours, sk):
        gi, pj = match_nodes(truth_px, det, match_distance=1.5)
        errs.append(np.median(np.linalg.norm(truth_px[["y", "x"]].to_numpy()[gi] - det[["y", "x"]].to_numpy()[pj], axis=1)))
    assert errs[0] < 0.5 * errs[1]


def test_splits_two_unresolved_spots():
    truth = pd.DataFrame({"frame": [0, 0], "y": [30.0, 30.0], "x": [30.0, 32.4]})
    movie, truth_px = render_movie(truth, (1, 60, 60), psf_sigma=1.5, snr=30, seed=3)
    merged = detect_blobs(movie[0], sigma=1.5, split=False)
    split = detect_blobs(movie[0], sigma=1.5)
    assert len(merged) == 1
    assert len(split) == 2
    xs = np.sort(split["x"].to_numpy())
    np.testing.assert_allclose(xs, [30.0, 32.4], atol=0.4)


def test_dense_clusters_keep_their_spots(rng):
    """Pairs and triples of spots 3.8-4.5 px apart (2.5-3 sigma: separate maxima, refined positions within 2 sigma)
    stay separate: the one- vs two-spot test keeps them (merging every such pair kept 67 of 90)."""
    rows = []
    for i, (y, x) in enumerate([(y, x) for y in range(12, 100, 16) for x in range(12, 100, 16)]):
        a, d = rng.uniform(0, np.pi), 3.8 + 0.35 * (i % 3)
        rows += [(y, x), (y + d * np.sin(a), x + d * np.cos(a))]
        if i % 2:
            rows.append((y + d * np.sin(a + 1.2), x + d * np.cos(a + 1.2)))
    truth = pd.DataFrame(rows, columns=["y", "x"])
    truth.insert(0, "frame", 0)
    movie, truth_px = render_movie(truth, (1, 112, 112), psf_sigma=1.5, snr=15, seed=11)
    det = detect_blobs(movie[0], sigma=1.5)
    det.insert(0, "frame", 0)
    gi, pj = match_nodes(truth_px, det, match_distance=1.0)
    assert len(gi) >= 0.95 * len(truth)
    assert len(det) <= len(truth) + 2


def test_single_spots_are_not_split(rng):
    truth = _random_spots(rng, 40, (128, 128), min_sep=8.0)
    movie, _ = render_movie(truth, (1, 128, 128), psf_sigma=1.5, snr=10, seed=4)
    assert len(detect_blobs(movie[0], sigma=1.5)) == len(detect_blobs(movie[0], sigma=1.5, split=False)) == 40


def test_3d_anisotropic_spots(rng):
    pts = _random_spots(rng, 15, (20, 48, 48), min_sep=6.0)
    truth = pts.copy()
    truth["z"] *= 2.0
    truth[["y", "x"]] *= 0.5
    movie, truth_px = render_movie(truth, (1, 20, 48, 48), scale=(2.0, 0.5, 0.5), psf_sigma=(0.75, 1.5, 1.5),
                                   snr=15, seed=5)
    det = detect_movie(movie, sigma=1.5, spacing=(2.0, 0.5, 0.5))
    assert det.attrs["spacing"] == [2.0, 0.5, 0.5]
    gi, pj = match_nodes(truth_px, det, match_distance=1.5)
    assert len(gi) >= 14
    err = np.abs(truth_px[["z", "y", "x"]].to_numpy()[gi] - det[["z", "y", "x"]].to_numpy()[pj])
    assert np.median(err) < 0.3


def test_multiscale_reports_blob_size(rng):
    img = np.zeros((80, 80))
    yy, xx = np.mgrid[:80, :80]
    img += 50 * np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / (2 * 1.5 ** 2))
    img += 50 * np.exp(-((yy - 55) ** 2 + (xx - 55) ** 2) / (2 * 4.0 ** 2))
    img += rng.normal(0, 1, img.shape) + 100
    det = detect_blobs(img, sigma_range=(1.0, 5.0), num_sigma=6).sort_values("y")
    assert len(det) == 2
    assert det["size"].iloc[0] < 2.5 < det["size"].iloc[1]
    np.testing.assert_allclose(det[["y", "x"]].to_numpy(), [[20, 20], [55, 55]], atol=0.3)


def test_label_table_centroids_sizes_axes():
    truth = pd.DataFrame({"frame": [0, 0, 1], "track_id": [1, 2, 1], "y": [10.0, 30.0, 12.0],
                          "x": [10.0, 30.0, 11.0], "radius": [4.0, 6.0, 4.0]})
    labels = render_labels(truth, (2, 48, 48))
    tab = label_table(labels)
    assert list(tab.columns[:6]) == ["frame", "y", "x", "label", "size", "axis_y"]
    np.testing.assert_allclose(tab[["y", "x"]].to_numpy(), truth[["y", "x"]].to_numpy(), atol=0.05)
    np.testing.assert_allclose(tab["size"], np.pi * truth["radius"] ** 2, rtol=0.08)
    # a rod along x: the daughter offset points along x with length ~ L/4
    rod = np.zeros((1, 20, 60), int)
    rod[0, 8:12, 10:50] = 1
    t = label_table(rod)
    assert abs(t["axis_x"].iloc[0]) == pytest.approx(40 / np.sqrt(12), rel=0.02)
    assert abs(t["axis_y"].iloc[0]) < 1e-6


def test_label_overlaps_counts():
    a = np.zeros((10, 10), int)
    b = np.zeros((10, 10), int)
    a[2:6, 2:6] = 3
    b[4:8, 4:8] = 7
    la, lb, cnt = label_overlaps(a, b)
    assert la.tolist() == [3] and lb.tolist() == [7] and cnt.tolist() == [4]


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((2, 3, 4, 5, 6)), "dimensions"),
    (np.full((8, 8), np.nan), "NaN"),
])
def test_detect_bad_input(bad, msg):
    with pytest.raises(InputError, match=msg):
        detect_blobs(bad)


def test_label_table_bad_input():
    with pytest.raises(InputError, match="negative"):
        label_table(-np.ones((2, 4, 4), int))
    with pytest.raises(InputError, match="no labels"):
        label_table(np.zeros((2, 4, 4), int))
    with pytest.raises(InputError, match="non-integer"):
        label_table(np.full((2, 4, 4), 0.5))


@pytest.mark.slow
def test_simulator_active_particles_recall_and_error():
    """The issue's figure on the GUI sample (750 active particles that cluster, PSF sigma 1 px, SNR 10), detected at
    the sample's PSF sigma: recall >= 0.98 for the particles that are resolvable at all (no other within 2 PSF
    sigmas; ~6 % of the particles have one, half of them within 1.5 px), precision >= 0.97, median error <= 0.3 px.
    (At sigma 1.5 px, the old sample's PSF, recall was 0.87: 3-4.5 px pairs then make one blob.)"""
    from scipy.spatial import cKDTree

    from napari_dynfit.sim import active_particles_2d

    s = active_particles_2d(seed=0)
    psf = s.params["render"]["psf_sigma"]
    det = detect_movie(s.movie, sigma=psf)
    truth = s.truth.reset_index(drop=True)
    gi, pj = match_nodes(truth, det, match_distance=1.5)
    resolvable = np.zeros(len(truth), bool)
    for _, idx in truth.groupby("frame").indices.items():
        pts = truth[["y", "x"]].to_numpy()[idx]
        resolvable[idx] = cKDTree(pts).query(pts, 2)[0][:, 1] >= 2 * psf
    found = np.zeros(len(truth), bool)
    found[gi] = True
    err = np.linalg.norm(truth[["y", "x"]].to_numpy()[gi] - det[["y", "x"]].to_numpy()[pj], axis=1)
    print(f"recall {found.mean():.4f} (resolvable {found[resolvable].mean():.4f}, {resolvable.mean():.3f} of the "
          f"particles) precision {len(pj) / len(det):.4f} median error {np.median(err):.3f} px")
    assert found[resolvable].mean() >= 0.98
    assert len(pj) / len(det) >= 0.97
    assert np.median(err) <= 0.3


def test_dark_objects_auto_polarity(rng):
    """Dark spots on a bright, unevenly lit background (brightfield): auto finds them as well as bright ones."""
    truth = _random_spots(rng, 50, (128, 160), frames=2, min_sep=6.0)
    movie, truth_px = render_movie(truth, (2, 128, 160), psf_sigma=1.5, snr=10, background=400, seed=6)
    ramp = np.linspace(0, 300, 160)[None, None, :]  # illumination gradient
    dark = (movie.max() + 500 + ramp - movie).astype(np.float32)
    det = detect_movie(dark, sigma=1.5)
    assert det.attrs["polarity"] == "dark" and det.attrs["skewness"] < -0.2
    gi, pj = match_nodes(truth_px, det, match_distance=1.5)
    assert len(gi) / len(truth_px) >= 0.98 and len(pj) / len(det) >= 0.97
    assert (det["intensity"] > 0).all()
    err = np.linalg.norm(truth_px[["y", "x"]].to_numpy()[gi] - det[["y", "x"]].to_numpy()[pj], axis=1)
    assert np.median(err) < 0.2
    bright = detect_movie(movie, sigma=1.5)
    assert bright.attrs["polarity"] == "bright"
    # the wrong polarity finds the bright gaps between spots, not the spots
    wrong = detect_movie(dark, sigma=1.5, polarity="bright")
    assert len(match_nodes(truth_px, wrong, match_distance=1.5)[0]) < 0.2 * len(truth_px)
    with pytest.raises(InputError, match="polarity"):
        detect_blobs(dark[0], polarity="black")


def test_positions_inside_image_and_above_background(rng):
    """Spots cut by the border and pure noise: no position outside the image, no detection below background."""
    truth = pd.DataFrame({"frame": 0, "y": [0.3, 20.0, 39.6, 10.0], "x": [15.0, 0.2, 20.0, 39.7]})
    movie, _ = render_movie(truth, (1, 40, 40), psf_sigma=1.5, snr=15, seed=7)
    det = detect_blobs(movie[0], sigma=1.5)
    assert len(det) == 4
    assert ((det[["y", "x"]] >= 0) & (det[["y", "x"]] <= 39)).all().all()
    noise = rng.normal(100, 5, (64, 64))
    det = detect_blobs(noise, sigma=1.5, threshold_snr=2.0)
    assert (det["intensity"] > 0).all()


def test_clipped_background_does_not_lower_the_threshold(rng):
    """An 8-bit export with the background clipped to 0 (60 % of the pixels, a third in flat patches) around a
    hazy cell: the clipped pixels carry no noise and are left out of the noise estimates (before: the threshold
    collapsed and ~170 ripples of the haze became spots for 40 true ones)."""
    truth = _random_spots(rng, 40, (128, 128))
    movie, truth_px = render_movie(truth, (1, 128, 128), psf_sigma=1.5, snr=8, seed=3)
    yy, xx = np.mgrid[:128, :128]
    haze = 80 * np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / (2 * 30 ** 2))
    image = np.round(np.clip(movie[0] + haze + rng.normal(0, np.sqrt(haze)) - 130, 0, None))
    assert (image == 0).mean() > 0.5
    det = detect_blobs(image, sigma=1.5, polarity="bright")
    det.insert(0, "frame", 0)
    gi, pj = match_nodes(truth_px, det, match_distance=1.5)
    assert len(gi) / len(truth_px) >= 0.95
    assert len(pj) / len(det) >= 0.9


def test_one_bead_is_never_two(rng):
    """Brightfield-like beads (dark core, bright halo ring, wider than the blob sigma) are not split."""
    yy, xx = np.mgrid[:120, :120].astype(float)
    img = np.full((120, 120), 150.0)
    centres = [(y, x) for y in range(15, 110, 22) for x in range(15, 110, 22)]
    for y, x in centres:
        y, x = y + rng.uniform(-0.5, 0.5), x + rng.uniform(-0.5, 0.5)
        r2 = (yy - y) ** 2 + (xx - x) ** 2
        img += -40 * np.exp(-r2 / (2 * 2.2 ** 2)) + 15 * np.exp(-(np.sqrt(r2) - 4.5) ** 2 / 2)
    img += rng.normal(0, 1.5, img.shape)
    det = detect_blobs(img, sigma=1.5)
    assert det.attrs["polarity"] == "dark"
    assert len(det) == len(centres)
    from scipy.spatial import cKDTree

    assert len(cKDTree(det[["y", "x"]].to_numpy()).query_pairs(3.0)) == 0


def test_cli_detect_polarity_and_frames_folder(tmp_path, rng):
    import imageio.v3 as iio

    from napari_dynfit.cli import main

    truth = _random_spots(rng, 20, (64, 64), frames=3, min_sep=6.0)
    movie, truth_px = render_movie(truth, (3, 64, 64), psf_sigma=1.5, snr=12, seed=8)
    dark = (movie.max() + 10 - movie.astype(float)) / (movie.max() + 10) * 255
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(dark.astype(np.uint8)):
        iio.imwrite(folder / f"f_{t:03d}.png", np.repeat(frame[..., None], 3, axis=2))  # RGB
    assert main(["detect", str(folder), "-o", str(tmp_path / "d.csv")]) == 0
    det = pd.read_csv(tmp_path / "d.csv")
    gi, _ = match_nodes(truth_px, det, match_distance=1.5)
    assert len(gi) / len(truth_px) >= 0.95
    assert main(["detect", str(folder), "-o", str(tmp_path / "w.csv"), "--polarity", "bright"]) == 0
    assert len(match_nodes(truth_px, pd.read_csv(tmp_path / "w.csv"), match_distance=1.5)[0]) < 0.3 * len(truth_px)
