"""`dynfit closure` end to end on tiny runs (our files and The Well's layout) and the closure widget."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    from napari_dynfit.report import torch_threads

    with torch_threads(1):  # small FFTs: more threads only contend
        yield

from napari_dynfit.cli import main  # noqa: E402


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_closure_cli_simulate_train_evaluate_estimate_well_layout(tmp_path, capsys):
    well = tmp_path / "am.hdf5"
    _run(["closure", "simulate", "-o", str(well), "--alpha", "-4", "--size", "8", "--angles", "16",
          "--t-end", "1.5", "--save-every", "0.25"], capsys)
    from napari_dynfit.io.well import well_info

    info = well_info(well)
    assert info.dataset_name == "active_matter" and {"concentration", "velocity", "D", "E"} <= set(info.fields)
    kin = tmp_path / "kin.npz"
    sim = json.loads(_run(["closure", "simulate", "-o", str(kin), "--alpha", "-4", "--size", "8", "--angles", "16",
                           "--t-end", "1.5", "--save-every", "0.25"], capsys).splitlines()[-1])
    # the initial perturbation of the benchmark's runs and stationary ensembles (not the solver's bare 0.01)
    import inspect

    from napari_dynfit.models.closure.stationary import kinetic_series

    assert sim["params"]["amplitude"] == inspect.signature(kinetic_series).parameters["amplitude"].default == 0.2
    net = tmp_path / "closure.npz"
    # tiny runs (t = 0..1.5) end before the default start (t = 10, past the initial instability): a one-line error
    assert main(["closure", "train", str(kin), "-o", str(tmp_path / "x.npz")]) == 2
    assert "simulate longer (--t-end) or give an earlier --t-start" in capsys.readouterr().err
    out = json.loads(_run(["closure", "train", str(kin), str(well), "-o", str(net), "--a-priori-epochs", "20",
                           "--a-posteriori-epochs", "2", "--t-start", "0"], capsys).splitlines()[-1])
    assert np.isfinite(out["a_priori_loss"]) and np.isfinite(out["a_posteriori_loss"])
    # moment data alone (the Well file): a posteriori only, and said so
    net2 = tmp_path / "closure2.npz"
    out = json.loads(_run(["closure", "train", str(well), "-o", str(net2), "--a-posteriori-epochs", "1",
                           "--t-start", "0"], capsys).splitlines()[-1])
    assert "skipped" in out["a_priori"]
    ev = json.loads(_run(["closure", "evaluate", str(kin), "--closure", str(net), "--horizon", "3", "--t-start", "0"],
                         capsys).splitlines()[-1])
    assert ev["closure_S_error"] < 0.5 and ev["bingham_S_error"] < 0.5
    assert ev["a_posteriori"]["bingham"]["blew_up"] is False
    ev = json.loads(_run(["closure", "evaluate", str(well), "--t-start", "2"], capsys).splitlines()[-1])
    assert ev["horizon"] == 4  # the default: to the end of the data (7 frames, from frame 2)
    assert "a_posteriori" in ev and "closure_S_error" not in ev  # no fourth moment in the Well layout
    est = _run(["closure", "estimate", str(well), "--epochs", "3", "--t-start", "0"], capsys)
    assert "estimated alpha" in est
    # bad input: a one-line error
    assert main(["closure", "train", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x.npz")]) != 0



def test_closure_train_at_default_frames_is_the_benchmarks_recipe(tmp_path, capsys):
    """By default `closure train` starts at t = 10 (frame 40 at the 0.25 interval) and trains exactly as the
    benchmark does (its closure_samples / fit_a_priori / fit_a_posteriori calls from frame 40): equal weights."""
    import torch

    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models.closure import train as T
    from napari_dynfit.models.closure.learned import LearnedClosure

    paths = [tmp_path / "run.npz"]
    _run(["closure", "simulate", "-o", str(paths[0]), "--size", "8", "--angles", "8", "--t-end", "10.75", "--dt",
          "0.025"], capsys)
    net = tmp_path / "closure.npz"
    out = json.loads(_run(["closure", "train", *map(str, paths), "-o", str(net), "--a-priori-epochs", "20",
                           "--a-posteriori-epochs", "2"], capsys).splitlines()[-1])
    assert out["first_t"] == [10.0]
    runs = [FieldBundle.load(p) for p in paths]
    ref = LearnedClosure(seed=0)  # the benchmark's lines, frame 40
    T.fit_a_priori(ref, T.closure_samples(runs, t_start=40), epochs=20)
    T.fit_a_posteriori(ref, runs, unroll_frames=2, epochs=2, t_start=40)
    got = LearnedClosure.load(net)
    for (name, w), w_ref in zip(got.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(w, w_ref), name
    # from frame 0 (the old default) the closure differs: the frames matter
    _run(["closure", "train", *map(str, paths), "-o", str(tmp_path / "c0.npz"), "--a-priori-epochs", "20",
          "--a-posteriori-epochs", "2", "--t-start", "0"], capsys)
    assert not all(torch.equal(a, b) for a, b in zip(LearnedClosure.load(tmp_path / "c0.npz").state_dict().values(),
                                                      ref.state_dict().values()))


def test_closure_simulate_warns_on_an_under_resolved_run(tmp_path, capsys):
    # 8 angles keep the harmonics |m| <= 2 only: Psi goes negative once the order passes 1/2 (by t = 10)
    assert main(["closure", "simulate", "-o", str(tmp_path / "a.npz"), "--size", "8", "--angles", "8", "--dt", "0.05",
                 "--t-end", "10", "--save-every", "0.5"]) == 0
    got = capsys.readouterr()
    out, err = json.loads(got.out.splitlines()[-1]), got.err
    assert out["positivity"]["under_resolved"] and out["positivity"]["negative_mass"] > 0.01
    assert err.count("\n") == 1 and "warning: Psi went negative" in err and "--angles 16 --size 16" in err
    # near the isotropic start (t = 0..1) Psi is a density: no warning
    assert main(["closure", "simulate", "-o", str(tmp_path / "b.npz"), "--size", "8", "--angles", "16", "--t-end", "1",
                 "--save-every", "0.5"]) == 0
    got = capsys.readouterr()
    assert json.loads(got.out.splitlines()[-1])["positivity"]["negative_mass"] == 0 and "warning" not in got.err


@pytest.mark.gui
def test_closure_widget_simulate_train_compare(make_napari_viewer, qtbot):
    from napari_dynfit._napari._closure_widget import ClosureWidget

    viewer = make_napari_viewer()
    w = ClosureWidget(viewer)
    w.size.setValue(8)
    w.t_end.setValue(1.5)
    w.simulate(block=True)
    assert w.bundle is not None and "order parameter s (1) [kinetic]" in [ly.name for ly in viewer.layers]
    w.epochs.setValue(10)
    w.post_epochs.setValue(1)
    w.frame.setValue(0)
    w.train(block=True)
    assert w.closure is not None and len(w.history) >= 10
    w.horizon.setValue(3)
    w.compare(block=True)
    names = {ly.name for ly in viewer.layers}
    # the value layers' names say what napari's (untitled) colour bar shows: the quantity and its unit
    assert {"order parameter s (1) [data]", "order parameter s (1) [Bingham]", "order parameter s (1) [learned]",
            "director (learned)", "closure error |q4 - q4_true| / c (1)"} <= names
    # the coarse runs sit beside the data, not on top of it
    tx = [viewer.layers[f"order parameter s (1) [{k}]"].translate[-1] for k in ("data", "Bingham", "learned")]
    assert tx[0] < tx[1] < tx[2]
    # geometry (issue 17): time axis labelled t; the director arrows sit on their image's grid points and times
    img, vec = viewer.layers["order parameter s (1) [learned]"], viewer.layers["director (learned)"]
    assert tuple(img.axis_labels) == tuple(vec.axis_labels) == ("t", "y", "x") and viewer.dims.axis_labels[0] == "t"
    centre = vec.data[:, 0] + vec.data[:, 1] / 2  # the arrows are centred on their grid point
    world = centre * vec.scale + vec.translate
    k = np.round((world - img.translate) / img.scale).astype(int)  # their pixel in the image
    np.testing.assert_allclose(k * img.scale + img.translate, world, atol=1e-9)
    assert set(np.unique(k[:, 0])) == set(range(img.data.shape[0]))
    # a re-run updates the layers in place (their place and the user's colours kept); the grid (another size:
    # another spacing), the arrows' width and the contrast follow the new run
    img, vec = viewer.layers["order parameter s (1) [kinetic]"], viewer.layers["director (kinetic)"]
    img.colormap, order, width = "gray", list(viewer.layers).index(img), vec.edge_width
    w.size.setValue(12)
    w.simulate(block=True)
    assert viewer.layers["order parameter s (1) [kinetic]"] is img and viewer.layers["director (kinetic)"] is vec
    assert list(viewer.layers).index(img) == order and len(viewer.layers) == len(names)
    assert img.colormap.name == "gray" and img.data.shape[1:] == (12, 12)
    h = w.bundle.spacing[-1]
    assert img.scale[-1] == pytest.approx(h) and vec.edge_width == pytest.approx(width * 8 / 12)
    assert tuple(img.contrast_limits) == pytest.approx((img.data.min(), img.data.max()))
    world = (vec.data[:, 0] + vec.data[:, 1] / 2) * vec.scale + vec.translate
    k = np.round((world - img.translate) / img.scale).astype(int)
    np.testing.assert_allclose(k * img.scale + img.translate, world, atol=1e-9)


@pytest.mark.gui
def test_reopened_project_closure_widget_updates_its_own_layers(make_napari_viewer, tmp_path):
    """The closure widget is docked beside the panel, not a step of it: a saved project still records its layers
    as its own, and a re-opened project's closure widget (docked before or after the project opens) updates them
    in place (it added ``"name [1]"`` beside them on each cycle); a user's layer of an output's name stays nobody's."""
    from napari_dynfit._napari._closure_widget import ClosureWidget, order_layer
    from napari_dynfit._napari._panel import DynFitPanel
    from napari_dynfit.project import Project

    def simulate(w):
        w.size.setValue(8)
        w.t_end.setValue(1.0)
        w.simulate(block=True)

    viewer = make_napari_viewer()
    panel = DynFitPanel(viewer)
    viewer.add_image(np.ones((2, 4, 4)), name=order_layer("kinetic"))  # the user's own layer of an output's name
    simulate(ClosureWidget(viewer))
    made = sorted(lay.name for lay in viewer.layers)
    assert made == ["director (kinetic)", order_layer("kinetic"), order_layer("kinetic") + " [1]"], made
    folder = tmp_path / "prj0"
    panel.save_project(folder)
    for cycle, docked_first in enumerate((False, True), start=1):
        viewer = make_napari_viewer()
        panel = DynFitPanel(viewer)
        w = ClosureWidget(viewer) if docked_first else None
        panel.open_project(folder)
        w = w or ClosureWidget(viewer)
        opened = {lay.name: lay for lay in viewer.layers}
        simulate(w)
        assert sorted(lay.name for lay in viewer.layers) == made, cycle  # no "name [n]" added by the re-run
        for name in ("director (kinetic)", order_layer("kinetic") + " [1]"):
            assert viewer.layers[name] is opened[name], (cycle, name)  # updated in place
        np.testing.assert_array_equal(viewer.layers[order_layer("kinetic")].data, 1.0)  # the user's, untouched
        folder = tmp_path / f"prj{cycle}"
        panel.save_project(folder)
    prj = Project(folder)
    owners = {prj.meta(n).get("layer_name"): prj.meta(n).get("owner") for n in prj.names}
    assert owners[order_layer("kinetic") + " [1]"] == {"step": "ClosureWidget", "slot": order_layer("kinetic")}
    assert owners["director (kinetic)"] == {"step": "ClosureWidget", "slot": "director (kinetic)"}, owners
    assert owners[order_layer("kinetic")] is None, owners  # the user's layer is nobody's
