"""Geometry everywhere: one time convention, periodic tracks split at the wrap, overlays on an image with non-unit
scale and non-zero translate line up with the truth, and a closed viewer stops its workers."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.geometry import Geometry, bundle_geometry, movie_geometry
from napari_dynfit.track.periodic import split_at_wraps


def test_movie_geometry_convention():
    kw = movie_geometry((0.2, 0.2), 0.5, origin=(10, 5), space_unit="um")
    assert kw == {"scale": (0.5, 0.2, 0.2), "translate": (0.0, 10.0, 5.0),
                  "units": ("second", "micrometer", "micrometer"), "axis_labels": ("t", "y", "x")}
    assert movie_geometry((1.0, 0.5, 0.5), None)["axis_labels"] == ("z", "y", "x")
    assert movie_geometry((1.0,), 1.0, time_unit="frame")["units"] == ("pixel", "pixel")
    g = Geometry((0.2, 0.2), (10, 5), 0.5, 1.0)
    pts = np.array([[3, 4, 7.5]])
    np.testing.assert_allclose(g.to_world(pts), [[2.5, 10.8, 6.5]])
    np.testing.assert_allclose(g.to_data(g.to_world(pts)), pts)


def test_bundle_geometry_puts_fields_at_their_times():
    from napari_dynfit.fields import FieldBundle

    t, y, x = np.arange(3) * 0.3 + 0.6, np.arange(4) * 2.0 + 1.0, np.arange(5) * 2.0 - 3.0
    b = FieldBundle({"rho": np.zeros((3, 4, 5))}, {"t": t, "y": y, "x": x})
    kw = bundle_geometry(b, space_unit="micrometer")
    np.testing.assert_allclose(kw["scale"], (0.3, 2.0, 2.0))
    np.testing.assert_allclose(kw["translate"], (0.6, 1.0, -3.0))
    assert kw["axis_labels"] == ("t", "y", "x") and kw["units"][1] == "micrometer"


def test_field_labels_carry_the_unit():
    """Value layers are named with their unit (napari's colour bar has no title): coarse-grained densities and
    velocities in the bundle's length and time units (pixels and frames without), other fields in arbitrary units."""
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.fields.coarse_grain import coarse_grain_particles
    from napari_dynfit.geometry import field_label, unit_symbol

    rng = np.random.default_rng(0)
    frame, pos = np.repeat(np.arange(2), 20), rng.uniform(0, 10, (40, 2))
    b = coarse_grain_particles(frame, pos, spacing=1.0, sigma=1.5, box=(10.0, 10.0),
                               velocities=rng.normal(size=(40, 2)), fields=("rho", "v"))
    assert field_label(b, "rho") == "rho (1/px²)" and field_label(b, "v") == "v (px/frame)"
    b.attrs.update(space_unit="micrometer", time_unit="second")  # as fields_kwargs records the tracks' units
    assert field_label(b, "rho") == "rho (1/µm²)" and field_label(b, "v", magnitude=True) == "|v| (µm/s)"
    b3 = coarse_grain_particles(frame, rng.uniform(0, 10, (40, 3)), spacing=2.0, sigma=3.0, box=(10.0,) * 3,
                                fields=("rho",))
    b3.attrs["space_unit"] = "um"
    assert field_label(b3, "rho") == "rho (1/µm³)"
    sim = FieldBundle({"u": np.zeros((2, 4))}, {"t": np.arange(2.0), "x": np.arange(4.0)}, attrs={"space_unit": "um"})
    assert field_label(sim, "u") == "u (a.u.)"  # a field whose value unit no file states
    assert (unit_symbol("um"), unit_symbol(None), unit_symbol("pixel", time=True), unit_symbol("minute")) == \
        ("µm", "px", "frame", "min")


def test_split_at_wraps_cuts_only_wrapping_steps():
    box = 10.0
    y = np.array([8.0, 9.0, 9.8, 0.5, 1.5, 2.0])  # wraps between rows 2 and 3
    x = np.array([5.0, 5.2, 5.1, 5.0, 4.9, 4.8])
    a = pd.DataFrame({"track_id": 7, "frame": np.arange(6), "y": y, "x": x, "parent_id": -1})
    b = pd.DataFrame({"track_id": 9, "frame": np.arange(2, 5), "y": [5.0, 5.1, 5.2], "x": [9.7, 0.1, 0.4],
                      "parent_id": 7})  # a daughter of 7 that wraps in x
    out = split_at_wraps(pd.concat([a, b]), [box, box])
    assert out["track_id"].nunique() == 4
    for _, piece in out.groupby("track_id"):
        assert np.all(np.abs(np.diff(piece[["y", "x"]].to_numpy(), axis=0)) < box / 2)
    assert out.groupby("particle_id")["segment"].max().to_dict() == {7: 1, 9: 1}
    first9 = out[(out["particle_id"] == 9) & (out["segment"] == 0)]
    last7 = out[out["particle_id"] == 7]["track_id"].max()
    assert (first9["parent_id"] == last7).all()  # lineage to the mother's last piece
    assert (out[(out["particle_id"] == 9) & (out["segment"] == 1)]["parent_id"] == -1).all()
    # not periodic along x: only the y wrap cuts
    assert split_at_wraps(pd.concat([a, b]), [box, None])["track_id"].nunique() == 3
    pd.testing.assert_frame_equal(split_at_wraps(a, None)[["frame", "y", "x"]], a[["frame", "y", "x"]])


def test_sample_truth_is_split_and_carries_geometry():
    from napari_dynfit._napari._sample_data import _layers
    from napari_dynfit.sim.samples import active_particles_2d

    sample = active_particles_2d(seed=0, fov=64.0, frames=40)
    (movie, mkw, _), (data, tkw, _) = _layers(sample)
    assert mkw["scale"] == tkw["scale"] == (sample.dt, *sample.spacing)
    assert mkw["units"] == ("second", "micrometer", "micrometer") and tkw["axis_labels"] == ("t", "y", "x")
    box_px = 64.0 / sample.spacing[0]
    steps = [np.abs(np.diff(data[data[:, 0] == k][:, 2:], axis=0)) for k in np.unique(data[:, 0])]
    assert max(s.max() for s in steps if len(s)) < box_px / 2
    # the pieces join back to the particles: as many particles as the simulation has
    assert tkw["features"]["particle_id"].nunique() == sample.truth["track_id"].nunique()
    assert len(np.unique(data[:, 0])) > sample.truth["track_id"].nunique()  # some particles wrapped in 40 frames


# ------------------------------------------------------------------------------------------------
# GUI: an image with scale (0.2, 0.2) µm and translate (10, 5) µm

SCALE, ORIGIN, DT = (0.2, 0.2), (10.0, 5.0), 0.5
HALF_PX = 0.5 * SCALE[0]


def _spots_movie(frames=8, shape=(64, 64), sigma=1.5):
    """Six well separated spots drifting 0.4 px per frame; truth in world coordinates ``(t, y, x)`` (s, µm)."""
    rng = np.random.default_rng(3)
    start = np.array([[14.3, 12.6], [14.8, 40.2], [32.1, 25.7], [48.6, 12.2], [47.9, 44.4], [30.4, 50.3]])
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    movie = np.zeros((frames, *shape))
    truth = []
    for t in range(frames):
        pos = start + t * np.array([0.4, 0.3])
        for p in pos:
            movie[t] += 200.0 * np.exp(-((yy - p[0]) ** 2 + (xx - p[1]) ** 2) / (2 * sigma ** 2))
            truth.append([t * DT, *(p * np.asarray(SCALE) + np.asarray(ORIGIN))])
    movie = rng.poisson(movie + 10.0).astype(np.uint16)
    return movie, np.array(truth)


def _world(layer, data=None):
    data = layer.data if data is None else data
    return np.array([layer.data_to_world(p) for p in np.asarray(data, float)])


def _nearest(world, truth):
    """Per truth row: the distance (µm) to the nearest row of ``world`` at the same time."""
    out = []
    for row in truth:
        same = world[np.isclose(world[:, 0], row[0])]
        out.append(np.min(np.linalg.norm(same[:, 1:] - row[1:], axis=1)) if len(same) else np.inf)
    return np.array(out)


@pytest.fixture
def scaled_movie(make_napari_viewer):
    viewer = make_napari_viewer()
    movie, truth = _spots_movie()
    geo = movie_geometry(SCALE, DT, origin=ORIGIN, space_unit="micrometer")
    image = viewer.add_image(movie, name="movie", **geo, metadata={"dt": DT})
    return viewer, image, truth


@pytest.mark.gui
def test_detections_tracks_fields_overlay_the_truth(scaled_movie, tmp_path):
    from napari_dynfit._napari._panel import FieldsFromTracks
    from napari_dynfit._napari._track_widget import TrackWidget

    viewer, image, truth = scaled_movie
    trk = TrackWidget(viewer)
    trk._image.value = image
    trk._sigma.value = 1.5
    trk.detect(sync=True)
    det = viewer.layers["detections"]
    assert det.ndim == 3 and len(det.data) == len(truth)
    assert _nearest(_world(det), truth).max() < HALF_PX  # within half a pixel, world coordinates
    trk._source.value = det
    trk.track(sync=True)
    tracks = viewer.layers["tracks"]
    assert len(np.unique(tracks.data[:, 0])) == 6
    assert _nearest(_world(tracks, tracks.data[:, 1:]), truth).max() < HALF_PX
    for lay in (det, tracks):  # same world, same units and labels as the image: napari renders with units
        assert [str(u) for u in lay.units] == [str(u) for u in image.units] and lay.axis_labels == image.axis_labels
        np.testing.assert_allclose(lay.scale, image.scale)
        np.testing.assert_allclose(lay.translate, image.translate)

    glue = FieldsFromTracks(viewer, lambda: tmp_path)
    glue._layer.value = tracks
    glue._auto.value, glue._grid.value, glue._kernel.value, glue._dt.value = False, SCALE[0], 0.4, DT
    assert glue.run() is not None, glue._status.value
    # the names say what napari's (untitled) colour bars show: densities in the movie's length unit
    assert "fields: |p| (1/µm²)" in viewer.layers
    rho = viewer.layers["fields: rho (1/µm²)"]
    assert [str(u) for u in rho.units] == [str(u) for u in image.units]
    for t in (0, 7):  # the density around each spot is centred on it (world coordinates)
        k = int(round(rho.world_to_data((t * DT, 0.0, 0.0))[0]))
        frame = np.asarray(rho.data[k], float)
        idx = np.argwhere(frame > 0)
        w = frame[frame > 0]
        world = _world(rho, np.c_[np.full(len(idx), k), idx])
        assert np.allclose(world[:, 0], t * DT)
        for spot in truth[np.isclose(truth[:, 0], t * DT)]:
            near = np.linalg.norm(world[:, 1:] - spot[1:], axis=1) < 1.0
            centre = (world[near, 1:] * w[near, None]).sum(axis=0) / w[near].sum()
            assert np.linalg.norm(centre - spot[1:]) < HALF_PX
    # a re-run on a coarser grid updates the same layer, its grid and contrast following the new fields
    glue._grid.value = 2 * SCALE[0]
    assert glue.run() is not None, glue._status.value
    assert viewer.layers["fields: rho (1/µm²)"] is rho and len([n for n in viewer.layers if "rho" in n.name]) == 1
    np.testing.assert_allclose(rho.scale[1:], glue.bundle.spacing[-2:])
    assert rho.scale[-1] == pytest.approx(2 * SCALE[0])
    assert tuple(rho.contrast_limits) == pytest.approx((float(np.min(rho.data)), float(np.max(rho.data))))


@pytest.mark.gui
def test_flow_vectors_and_latent_grid_overlay_the_points(scaled_movie, qtbot):
    from napari_dynfit._napari._flow_widget import FlowWidget
    from napari_dynfit._napari._pinn_widget import LatentFieldWidget

    viewer, image, truth = scaled_movie
    pix = (truth[:, 1:] - np.asarray(ORIGIN)) / np.asarray(SCALE)
    pts = viewer.add_points(np.c_[truth[:, 0] / DT, pix], name="cells", **movie_geometry(
        SCALE, DT, origin=ORIGIN, space_unit="micrometer"))
    w = FlowWidget(viewer)
    w.layer.setCurrentText("cells")
    assert w.dt.value() == pytest.approx(DT)  # time per frame from the layer's time axis
    snaps = w.snapshots()
    np.testing.assert_allclose(np.concatenate(snaps.samples), truth[:, 1:])  # fitted in world units
    # the drift arrows: bases at their world positions, directions kept, sized to the arrow grid
    base = np.array([[11.0, 6.0], [14.0, 12.0], [12.5, 9.0]])
    arrows = np.stack([base, np.array([[0.1, 0.0], [0.0, 0.2], [0.05, 0.05]])], axis=1)
    w._source = pts
    w._show_drift(arrows)
    vec = viewer.layers["PFI drift"]
    world = _world(vec, vec.data[:, 0])
    np.testing.assert_allclose(world, base, atol=1e-9)
    tips = _world(vec, vec.data[:, 0] + vec.data[:, 1]) - world
    cos = (tips * arrows[:, 1]).sum(1) / np.linalg.norm(tips, axis=1) / np.linalg.norm(arrows[:, 1], axis=1)
    assert np.allclose(cos, 1.0)
    spacing = np.sqrt(np.prod(np.ptp(base, axis=0)) / len(base))
    assert np.linalg.norm(tips, axis=1).max() == pytest.approx(0.9 * spacing)  # visible, not 0.1 s of drift
    assert [str(u) for u in vec.units] == ["micrometer"] * 2
    # a re-run over another layer (other pixels): the same layer, moved onto that layer's grid, the width kept
    # at its share of the arrow grid (in the new data units)
    width = vec.edge_width
    w._source = viewer.add_points(pts.data, name="cells 2", scale=(1.0, 2 * SCALE[0], 4 * SCALE[1]),
                                  translate=(0.0, 3.0, -2.0))
    w._show_drift(arrows)
    assert viewer.layers["PFI drift"] is vec and "PFI drift [1]" not in viewer.layers
    np.testing.assert_allclose(_world(vec, vec.data[:, 0]), base, atol=1e-9)
    assert vec.edge_width == pytest.approx(width / np.sqrt(8.0))

    # the latent field's grid (times frame * dt, world lengths) sits on the movie's time axis and space
    pinn = LatentFieldWidget(viewer)
    pinn._dt.value = DT
    pinn._source = pts
    coords = {"t": np.arange(8) * DT, "y": np.linspace(10, 23, 14), "x": np.linspace(5, 18, 14)}
    geo = pinn._geometry(coords)
    phi = viewer.add_image(np.zeros((8, 14, 14)), **geo)
    np.testing.assert_allclose(phi.data_to_world((3, 2, 5)), (3 * DT, coords["y"][2], coords["x"][5]))
    assert tuple(phi.axis_labels) == ("t", "y", "x")


@pytest.mark.gui
def test_closing_the_viewer_stops_and_joins_a_running_job(make_napari_viewer, qtbot):
    """A long job delivering live updates to a layer: closing the viewer cancels it, joins its thread, and no
    update reaches the dead layer (no exception in the event loop)."""
    import time

    from magicgui.widgets import Container, Label, PushButton

    from napari_dynfit._napari._jobs import StepJob
    from napari_dynfit._progress import progress_iter

    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((4, 8, 8)), name="live")
    run, stop, status = PushButton(text="Run"), PushButton(text="Stop"), Label()
    widget = Container(widgets=[run, stop, status])
    viewer.window.add_dock_widget(widget)
    job = StepJob(run, stop, status, viewer=viewer)
    shown = []

    def compute():
        for i in progress_iter(range(10**6), desc="long"):
            time.sleep(0.02)  # a live update every 20 ms, like a fit's chunks
            yield np.full((4, 8, 8), float(i))

    def show(item):
        shown.append(item[0, 0, 0])
        layer.data = item
        viewer.dims.set_point(0, 3)  # touches the viewer's dims, like the PINN widget's live overlay

    job.start(compute, on_yield=show)
    qtbot.waitUntil(lambda: len(shown) > 2, timeout=60_000)
    viewer.close()
    assert job.join(0)  # joined while closing
    n = len(shown)
    for _ in range(20):
        qtbot.wait(10)
    assert len(shown) == n  # nothing delivered after the close
    assert job.join(0) and not job.running  # the worker thread ended; its end was handled


T0 = 2.0  # the movie's first frame is at 2 s (an OME-Zarr time translation)


def _time_axis_ok(viewer, t0):
    """The dims slider: the time axis starts at the movie's first frame and is labelled ``t`` (not napari's
    default ``-3``: a layer without labels or at another time would show there)."""
    rng = viewer.dims.range[0]
    assert rng.start == pytest.approx(t0), [(ly.name, ly.extent.world[:, 0]) for ly in viewer.layers]
    assert viewer.dims.axis_labels[0] == "t"
    sliders = viewer.window._qt_viewer.dims.slider_widgets
    assert sliders[0].axis_label.text() == "t"


@pytest.mark.gui
def test_time_axis_starts_at_the_movie_after_each_step(make_napari_viewer, qtbot, tmp_path):
    """After each step (detect, track, fields, PDE/balance fields read back, latent field, flow drift and
    trajectories) the time slider starts at the movie's first frame (issue 17: the screenshots' slider at -3)."""
    from napari_dynfit._napari._flow_widget import FlowWidget
    from napari_dynfit._napari._geometry import fields_kwargs
    from napari_dynfit._napari._panel import FieldsFromTracks
    from napari_dynfit._napari._pinn_widget import LatentFieldWidget
    from napari_dynfit._napari._track_widget import TrackWidget
    from napari_dynfit.fields import FieldBundle

    viewer = make_napari_viewer()
    movie, truth = _spots_movie()
    image = viewer.add_image(movie, name="movie", **movie_geometry(SCALE, DT, origin=ORIGIN, t0=T0,
                                                                   space_unit="micrometer"))
    _time_axis_ok(viewer, T0)
    trk = TrackWidget(viewer)
    trk._image.value, trk._sigma.value = image, 1.5
    trk.detect(sync=True)
    _time_axis_ok(viewer, T0)
    det = viewer.layers["detections"]
    assert _nearest(_world(det), truth + [T0, 0, 0]).max() < HALF_PX
    trk._source.value = det
    trk.track(sync=True)
    _time_axis_ok(viewer, T0)
    tracks = viewer.layers["tracks"]

    glue = FieldsFromTracks(viewer, lambda: tmp_path)
    glue._layer.value = tracks
    glue._auto.value, glue._grid.value, glue._kernel.value, glue._dt.value = False, SCALE[0], 0.4, DT
    path = glue.run()
    assert path is not None, glue._status.value
    _time_axis_ok(viewer, T0)
    back = fields_kwargs(FieldBundle.from_zarr(path))  # what the PDE and balance steps draw from the file
    assert back["translate"][0] == pytest.approx(T0) and back["axis_labels"][0] == "t"

    pinn = LatentFieldWidget(viewer)  # the latent field's grid (frame times * dt) on the movie's time axis
    pinn._dt.value, pinn._source = DT, tracks
    coords = {"t": np.arange(8) * DT, "y": np.linspace(10, 23, 14), "x": np.linspace(5, 18, 14)}
    viewer.add_image(np.zeros((8, 14, 14)), name="latent", **pinn._geometry(coords))
    _time_axis_ok(viewer, T0)

    flow = FlowWidget(viewer)
    flow.layer.setCurrentText("detections")
    flow._source = det
    base = np.array([[11.0, 6.0], [14.0, 12.0], [12.5, 9.0]])
    flow._show_drift(np.stack([base, np.full((3, 2), 0.1)], axis=1))
    _time_axis_ok(viewer, T0)
    times = np.repeat(np.arange(4) * DT / 2, 2)  # sampled paths: two per time, half a frame apart
    paths = np.c_[np.tile([0, 1], 4), np.zeros(8), 10 + times, 5 + times]
    data, kw = flow._trajectories(paths, times)
    viewer.add_tracks(data, name="paths", **kw)
    _time_axis_ok(viewer, T0)
    np.testing.assert_allclose(_world(viewer.layers["paths"], data[:, 1:])[:, 0], T0 + times)


class _LinearFlow:
    """A flow model as the layer helpers use it: drift ``f(x) = A (x - c)``, growth ``g(x) = x . w``."""

    def __init__(self, A, c, w):
        self.A, self.c, self.w = np.asarray(A, float), np.asarray(c, float), np.asarray(w, float)

    def drift(self, x):
        return (np.asarray(x, float) - self.c) @ self.A.T

    def growth(self, x):
        return np.asarray(x, float) @ self.w


@pytest.mark.gui
def test_flow_vectors_in_3d_overlay_the_points(make_napari_viewer):
    """3D detections (t, z, y, x) with anisotropic voxels and an origin: the drift arrows are 3D (z, y, x), at
    their world positions with their world directions, in the points' units and labels; the growth map too."""
    from napari_dynfit._napari._flow_widget import FlowWidget
    from napari_dynfit._napari._geometry import layer_kwargs
    from napari_dynfit.models.flow.layers import drift_vectors, growth_map

    spacing, origin = (1.0, 0.2, 0.2), (3.0, 10.0, 5.0)
    rng = np.random.default_rng(1)
    world = np.c_[rng.uniform(3, 13, 400), rng.uniform(10, 20, 400), rng.uniform(5, 15, 400)]
    frames = np.repeat(np.arange(4), 100)
    geo = movie_geometry(spacing, DT, origin=origin, space_unit="micrometer")
    viewer = make_napari_viewer()
    pts = viewer.add_points(np.c_[frames, (world - origin) / spacing], name="cells", **geo)
    w = FlowWidget(viewer)
    w.layer.setCurrentText("cells")
    snaps = w.snapshots()
    assert snaps.dim == 3 and tuple(snaps.columns) == ("z", "y", "x")
    np.testing.assert_allclose(np.concatenate(snaps.samples), world)  # fitted in world units (µm)
    model = _LinearFlow([[-1.0, 0.5, 0.0], [0.0, -1.0, 0.3], [0.2, 0.0, -1.0]], world.mean(0), [0.1, -0.2, 0.3])
    vec = drift_vectors(model, snaps)
    assert vec.shape == (8 ** 3, 2, 3)
    for a in range(3):  # a grid over all three axes, not a (z, y) slice drawn as (y, x)
        assert len(np.unique(vec[:, 0, a])) == 8
    np.testing.assert_allclose(vec[:, 1], model.drift(vec[:, 0]) * 0.1)
    w._source = pts
    w._show_drift(vec)
    lay = viewer.layers["PFI drift"]
    assert lay.ndim == 3 and tuple(lay.axis_labels) == ("z", "y", "x")
    assert [str(u) for u in lay.units] == ["micrometer"] * 3
    bases = _world(lay, lay.data[:, 0])
    np.testing.assert_allclose(bases, vec[:, 0], atol=1e-9)
    tips = _world(lay, lay.data[:, 0] + lay.data[:, 1]) - bases
    cos = (tips * vec[:, 1]).sum(1) / np.linalg.norm(tips, axis=1) / np.linalg.norm(vec[:, 1], axis=1)
    assert np.allclose(cos, 1.0)

    img, kw = growth_map(model, snaps)
    assert img.shape == (24, 24, 24)
    growth = viewer.add_image(img, name="PFI growth", **{**layer_kwargs(pts, axes=3), **kw})
    idx = np.array([[0, 0, 0], [5, 17, 3], [23, 23, 23]])
    np.testing.assert_allclose(img[tuple(idx.T)], model.growth(_world(growth, idx)))
    assert tuple(growth.axis_labels) == ("z", "y", "x")
