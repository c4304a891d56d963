"""The "Detect & track" widget: detect, track Points and Labels, re-link after edits, live preview."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.sim import render_labels, render_movie

pytestmark = pytest.mark.gui


def _movie(rng):
    n, frames = 12, 5
    pos = rng.uniform(8, 56, (n, 2))
    rows = []
    for t in range(frames):
        rows.append(pd.DataFrame({"track_id": np.arange(1, n + 1), "frame": t, "y": pos[:, 0], "x": pos[:, 1]}))
        pos = pos + rng.normal(0, 0.3, pos.shape)
    return render_movie(pd.concat(rows), (frames, 64, 64), psf_sigma=1.5, snr=15, seed=0)


def test_detect_track_edit_relink(make_napari_viewer, rng):
    from napari_dynfit._napari._track_widget import PREVIEW, TrackWidget

    viewer = make_napari_viewer()
    movie, truth = _movie(rng)
    viewer.add_image(movie, name="movie")
    w = TrackWidget(viewer)
    w._image.value = viewer.layers["movie"]
    assert w._sigma.value == 0  # estimate, as `dynfit detect`'s default --sigma auto
    w.detect(sync=True)
    pts = viewer.layers["detections"]
    assert len(pts.data) == len(truth)
    est = float(w._status.value.split("blob sigma ")[1].split(" px estimated")[0])
    assert est == pytest.approx(1.5, rel=0.15)  # the rendered PSF sigma
    w._source.value = pts
    w._max_distance.value = 2.5
    w.track(sync=True)
    tracks = viewer.layers["tracks"]
    assert len(np.unique(tracks.data[:, 0])) == 12
    # annotation round trip: delete one track's point in the middle frame, re-link with gap closing
    ids = tracks.data[:, 0]
    victim = tracks.data[(ids == ids[0]) & (tracks.data[:, 1] == 2)][0, 1:]
    keep = ~np.all(np.isclose(pts.data, victim), axis=1)
    pts.data = pts.data[keep]
    w._gaps.value = 0
    w.track(sync=True)
    assert len(np.unique(viewer.layers["tracks"].data[:, 0])) == 13  # the track is broken without gap closing
    w._gaps.value = 1
    w.track(sync=True)
    assert len(np.unique(viewer.layers["tracks"].data[:, 0])) == 12
    # live preview of the frames around the current one
    w._window.value = 1
    viewer.dims.set_current_step(0, 2)
    w.update_preview(sync=True)
    prev = viewer.layers[PREVIEW].data
    assert set(np.unique(prev[:, 1])) == {1, 2, 3}
    # detect and track on another image of another pixel size: the same layers, on that image's grid
    fine = viewer.add_image(movie, name="fine", scale=(1.0, 0.5, 0.25), translate=(0.0, 3.0, -2.0))
    w._image.value = fine
    w.detect(sync=True)
    w._source.value = pts
    w.track(sync=True)
    for layer in (pts, tracks):
        assert viewer.layers[layer.name] is layer
        np.testing.assert_allclose(layer.scale, (1.0, 0.5, 0.25))
        np.testing.assert_allclose(layer.translate, (0.0, 3.0, -2.0))


def test_track_labels_layer(make_napari_viewer):
    from napari_dynfit._napari._track_widget import TrackWidget

    viewer = make_napari_viewer()
    truth = pd.DataFrame({"track_id": [1, 1, 1, 2, 2, 2], "frame": [0, 1, 2, 0, 1, 2],
                          "y": [10.0, 11, 12, 30, 30, 31], "x": [10.0, 10, 11, 30, 31, 31], "radius": 4.0})
    labels = render_labels(truth, (3, 48, 48))
    viewer.add_labels(np.where(labels > 0, 3 - labels, 0), name="cells")
    w = TrackWidget(viewer)
    w._source.value = viewer.layers["cells"]
    w.track(sync=True)
    rel = viewer.layers["cells tracked"].data
    # each cell keeps one id through time
    a, b = rel[:, 11, 10], rel[:, 30, 30]
    assert len(set(a)) == 1 and len(set(b)) == 1 and a[0] != b[0] and a[0] > 0 and b[0] > 0


def test_dark_polarity_and_track_analysis(make_napari_viewer, rng):
    """Dark spots found with polarity auto (reported in the status); MSD & VACF of a tracks layer of Brownian
    particles recover D and an uncorrelated velocity."""
    from napari_dynfit._napari._track_widget import TrackWidget
    from napari_dynfit.track.formats import to_napari_tracks

    viewer = make_napari_viewer()
    movie, truth = _movie(rng)
    viewer.add_image((movie.max() + 50 - movie).astype(np.float32), name="dark")
    w = TrackWidget(viewer)
    w._image.value = viewer.layers["dark"]
    w.detect(sync=True)
    assert len(viewer.layers["detections"].data) == len(truth)
    assert "dark objects" in w._status.value
    D, dt, n, frames = 0.4, 0.5, 150, 40
    steps = rng.normal(0, np.sqrt(2 * D * dt), (n, frames, 2))
    pos = np.cumsum(steps, axis=1)
    tracks = pd.DataFrame({"track_id": np.repeat(np.arange(1, n + 1), frames), "frame": np.tile(np.arange(frames), n),
                           "y": pos[..., 0].ravel() / 0.2, "x": pos[..., 1].ravel() / 0.2, "parent_id": -1})
    data, _, graph = to_napari_tracks(tracks)
    viewer.add_tracks(data, name="tracks", scale=(1, 0.2, 0.2), metadata={"dt": dt})
    w.analyse(sync=True)
    fit, vacf = w.analysis
    assert pytest.approx(D, rel=0.1) == fit.D
    assert abs(vacf["vacf"].iloc[1]) < 0.1 and vacf["vacf"].iloc[0] == pytest.approx(1.0)
    vh = w.van_hove  # one-frame displacements: a Gaussian of variance 2 D dt per axis, drawn in a third panel
    assert float((vh["dr"] ** 2 * vh["all"]).sum() * (vh["dr"].iloc[1] - vh["dr"].iloc[0])) == pytest.approx(
        2 * D * dt, rel=0.1)
    assert len(w._analysis_figure.axes) == 3
    assert "MSD exponent" in w._status.value
    assert "ensemble mix stable" in w._status.value and fit.composition_ok  # one population: no warning


def test_labels_estimated_and_report_shown(make_napari_viewer):
    """Defaults (auto) on a growing colony: divisions found from the masks; the panel lists the choices and the
    quality report, and the Tracks layer keeps them."""
    from _track_data import relabel_per_frame, rod_colony
    from napari_dynfit._napari._track_widget import TrackWidget

    viewer = make_napari_viewer()
    lab, truth = rod_colony(7, n_frames=14, doubling=5.0)
    viewer.add_labels(relabel_per_frame(lab, 7), name="colony")
    w = TrackWidget(viewer)
    w._source.value = viewer.layers["colony"]
    assert w.params()["max_distance"] is None and w.params()["divisions"] is None
    w.track(sync=True)
    text = w._report.value
    assert "divisions = True" in text and "daughter_size" in text and "tracks from" in text
    meta = viewer.layers["tracks"].metadata["tracking"]
    assert meta["link_params"]["divisions"] is True and meta["tracking_quality"]["n_divisions"] > 0
    w._divisions.value = "off"
    w.track(sync=True)
    assert "divisions = False  (given)" in w._report.value


def test_segment_cells_then_track(make_napari_viewer):
    """*Segment cells* on a raw phase-contrast rod movie (generated: touching, growing, dividing rods) gives the
    masks ``dynfit segment`` gives (the same core call and defaults), close to the truth, makes them the tracking
    source, and *Track* follows them with divisions."""
    from napari_dynfit._napari._track_widget import TrackWidget
    from napari_dynfit.detect import match_segmentation, segment_movie
    from napari_dynfit.sim.cells import simulate_rod_colony
    from napari_dynfit.sim.render import render_cells

    tab = simulate_rod_colony(4, 12, box=(96.0, 96.0), width=10, division_length=44, growth_rate=0.08, seed=1)
    movie, truth, _ = render_cells(tab, (96.0, 96.0), seed=101, contrast="phase", amplitude=70, halo=4.0,
                                   halo_sigma=2, gap=True, texture=0.15)
    viewer = make_napari_viewer()
    viewer.add_image(movie, name="movie")
    w = TrackWidget(viewer)
    w._image.value = viewer.layers["movie"]
    w.segment(sync=True)
    cells = viewer.layers["movie cells"]
    np.testing.assert_array_equal(cells.data, segment_movie(movie).labels)
    f1 = np.mean([match_segmentation(truth[t], cells.data[t])["f1"] for t in range(len(movie))])
    assert f1 >= 0.9 and "objects in 12 frames" in w._status.value
    assert w._source.value is cells
    w.track(sync=True)
    tracks = viewer.layers["tracks"].data
    assert len(np.unique(tracks[:, 0])) >= len(np.unique(truth[0])) - 1  # at least the first frame's cells
    assert "movie cells tracked" in viewer.layers
    viewer.layers.remove("movie")
    w.segment(sync=True)  # no image left to segment: a clear message, no exception
    assert "choose an image layer" in w._status.value


def test_msd_uses_the_cli_and_core_max_lag(make_napari_viewer, rng):
    """The widget's MSD fit is `dynfit msd`'s (fit_msd's defaults: lags up to 100 frames), also on a movie longer
    than that (it used every lag when opened on its own)."""
    import inspect

    from napari_dynfit._napari._track_widget import TrackWidget
    from napari_dynfit.cli import build_parser
    from napari_dynfit.track import fit_msd
    from napari_dynfit.track.formats import to_napari_tracks
    from napari_dynfit.track.io_formats import tracks_from_napari

    viewer = make_napari_viewer()
    n, frames, dt = 30, 160, 0.5
    pos = np.cumsum(rng.normal(0, 1.0, (n, frames, 2)), axis=1)
    tracks = pd.DataFrame({"track_id": np.repeat(np.arange(1, n + 1), frames), "frame": np.tile(np.arange(frames), n),
                           "y": pos[..., 0].ravel(), "x": pos[..., 1].ravel(), "parent_id": -1})
    data, _, _ = to_napari_tracks(tracks)
    viewer.add_tracks(data, name="tracks", metadata={"dt": dt})
    w = TrackWidget(viewer)
    w.analyse(sync=True)
    fit = w.analysis[0]
    args = build_parser().parse_args(["msd", "tracks.csv"])
    assert args.max_lag == inspect.signature(fit_msd).parameters["max_lag"].default == 100
    assert fit.table["lag"].max() == args.max_lag < frames - 1
    ref = fit_msd(tracks_from_napari(viewer.layers["tracks"]), dt=dt, max_lag=args.max_lag)
    assert fit.exponent == pytest.approx(ref.exponent) and fit.prefactor == pytest.approx(ref.prefactor)


def test_widget_starts_at_the_cli_and_core_defaults(make_napari_viewer, tmp_path):
    """Opened on its own, Detect and Track use `dynfit detect` / `dynfit track`'s defaults (detect_movie's and
    link's): blob sigma estimated, threshold 5 x noise, split, polarity auto; every link parameter estimated."""
    import inspect

    from napari_dynfit._napari._track_widget import TrackWidget
    from napari_dynfit.cli import build_parser
    from napari_dynfit.detect import detect_movie
    from napari_dynfit.track import link

    w = TrackWidget(make_napari_viewer())
    parser = build_parser()
    det = parser.parse_args(["detect", "movie.tif", "-o", str(tmp_path / "d.csv")])
    core = inspect.signature(detect_movie).parameters
    assert det.sigma is None is core["sigma"].default is (w._sigma.value or None)  # --sigma auto: estimated
    assert w._snr.value == det.threshold_snr == core["threshold_snr"].default
    assert w._split.value is (not det.no_split) is core["split"].default
    assert w._polarity.value == det.polarity == core["polarity"].default
    trk = parser.parse_args(["track", "d.csv", "-o", str(tmp_path / "t.csv")])
    lcore = inspect.signature(link).parameters
    params = w.params()
    for name in ("max_distance", "gap_frames", "divisions", "motion", "alternative_cost"):
        assert params[name] is None is getattr(trk, name) is lcore[name].default, name


def test_analyse_reads_the_tracks_layer_not_another_kind_named_tracks(make_napari_viewer, rng):
    """A Points layer called "tracks" is not analysed: Track's Tracks layer ("tracks [1]") is, and without one the
    error is one line; the tracks table's features arrive on the Tracks layer."""
    from napari_dynfit._napari._track_widget import TrackWidget
    from napari_dynfit.track import fit_msd
    from napari_dynfit.track.io_formats import tracks_from_napari

    viewer = make_napari_viewer()
    n, frames = 30, 20
    pos = rng.uniform(10, 190, (n, 2)) + np.cumsum(rng.normal(0, 0.3, (frames, n, 2)), axis=0)
    viewer.add_points(np.c_[np.repeat(np.arange(frames), n), pos.reshape(-1, 2)], name="cells")
    viewer.add_points(np.zeros((3, 3)), name="tracks")  # e.g. the user's own annotations
    w = TrackWidget(viewer)
    w.analyse(sync=True)
    assert w._status.value == "error: no Tracks layer 'tracks' ('tracks' is a Points layer): press Track first"
    assert w.analysis is None
    w._source.value = viewer.layers["cells"]
    w._max_distance.value = 3.0
    w.track(sync=True)
    made = viewer.layers["tracks [1]"]
    assert type(made).__name__ == "Tracks" and len(np.unique(made.data[:, 0])) == n
    np.testing.assert_array_equal(made.features["parent_id"], -1)  # features: one row per data row
    # the step's output is the layer it made, not the user's Points called "tracks" (the panel's styling and defaults)
    assert w.makes(made) and not w.makes(viewer.layers["tracks"])
    made.name = "my tracks"  # still the one analysed (and the step's) after a rename
    assert w.makes(made)
    w.analyse(sync=True)
    assert w.analysis is not None, w._status.value
    ref = fit_msd(tracks_from_napari(made), dt=1.0)
    fit = w.analysis[0]
    assert fit.exponent == pytest.approx(ref.exponent) and pytest.approx(ref.D) == fit.D
    # the table's numeric columns are the layer's features, in its (track_id, frame) row order
    table = pd.DataFrame({"track_id": [2, 2, 1, 1], "frame": [1, 0, 1, 0], "y": [5.0, 4, 3, 2], "x": 1.0,
                          "parent_id": -1, "speed": [0.4, 0.3, 0.2, 0.1]})
    shown = w._show_tracks(table, viewer.layers["cells"], "tracks")  # the step's tracks, renamed "my tracks"
    assert shown is made and len(viewer.layers) == 3 and made.name == "my tracks"
    np.testing.assert_allclose(shown.features["speed"], [0.1, 0.2, 0.3, 0.4])
    assert tracks_from_napari(shown)["speed"].tolist() == [0.1, 0.2, 0.3, 0.4]


def test_detect_leaves_the_users_detections_alone_and_updates_its_own(make_napari_viewer, rng):
    """The user's own Points layer called "detections" keeps its data and style; Detect shows its points as
    "detections [1]", makes them the tracking source (the user's layer was the only one, so it was chosen) and a
    re-run (another threshold) updates that layer in place."""
    from napari_dynfit._napari._track_widget import TrackWidget

    viewer = make_napari_viewer()
    movie, truth = _movie(rng)
    viewer.add_image(movie, name="movie")
    mine = viewer.add_points(np.array([[0.0, 3.0, 3.0], [1.0, 4.0, 4.0]]), name="detections", size=9,
                             face_color="yellow")
    w = TrackWidget(viewer)
    w._image.value = viewer.layers["movie"]
    w.detect(sync=True)
    made = viewer.layers["detections [1]"]
    assert made is not mine and len(made.data) == len(truth) and w.makes(made)
    assert w._source.value is made  # Track links the new detections, not the user's layer chosen before
    made.opacity = 0.4
    w._snr.value = 100.0  # a higher threshold: fewer points, shown in the step's own layer
    w.detect(sync=True)
    assert viewer.layers["detections [1]"] is made and len(made.data) < len(truth) and made.opacity == 0.4
    assert len(viewer.layers) == 3
    np.testing.assert_array_equal(mine.data, [[0.0, 3.0, 3.0], [1.0, 4.0, 4.0]])
    assert mine.size[0] == 9 and tuple(mine.face_color[0]) == (1.0, 1.0, 0.0, 1.0)
