"""The scripting API of issue 21: one device rule, one default library, one image reader, result objects,
explicit keywords."""

import numpy as np
import pandas as pd
import pytest

from napari_dynfit.errors import InputError


def test_one_device_rule(monkeypatch):
    pytest.importorskip("torch")  # the flow and PINN modules that share the rule need torch
    from napari_dynfit import device
    from napari_dynfit.apr import convolve
    from napari_dynfit.models.flow import _torch

    assert device.resolve_device("cpu") == "cpu"
    assert device.resolve_device() == ("cuda" if device.cuda_available() else "cpu")
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert device.resolve_device("auto") == "cpu"
    with pytest.raises(InputError, match="cuda"):
        device.resolve_device("cuda")
    with pytest.raises(InputError, match="'auto', 'cpu' or 'cuda'"):
        device.resolve_device("gpu")
    assert convolve.resolve_device is device.resolve_device is _torch.resolve_device


def test_one_default_library():
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models import default_library, polynomial_library, vector_library
    from napari_dynfit.models.pde import default_equations

    t, y, x = np.arange(4.0), np.arange(6.0), np.arange(5.0)
    scalar = FieldBundle({"u": np.zeros((4, 6, 5))}, {"t": t, "y": y, "x": x})
    assert default_library(scalar) == {"u_t": polynomial_library(["u"], axes=("y", "x"), max_power=3)}
    assert default_equations(scalar) == default_library(scalar)
    lib = default_library(scalar, max_power=1, max_derivative=2, extra=["u^5"])
    assert lib["u_t"][-1] == "u^5" and "u^2" not in lib["u_t"] and "u_xxx" not in lib["u_t"]
    active = FieldBundle({"rho": np.zeros((4, 6, 5)), "p": np.zeros((4, 6, 5, 2))}, {"t": t, "y": y, "x": x})
    assert default_library(active) == {"rho_t": vector_library(equation="rho", dim=2),
                                       "p_t": vector_library(equation="p", dim=2)}
    with pytest.raises(InputError, match="no scalar fields"):
        default_library(FieldBundle({"p": np.zeros((4, 6, 5, 2))}, {"t": t, "y": y, "x": x}))


def test_flow_twins_are_one_function():
    pytest.importorskip("torch")
    from napari_dynfit.models.flow import fit_flow, infer_flow

    assert infer_flow is fit_flow


def test_open_image_tiff_npy_and_folders(tmp_path):
    import tifffile

    from napari_dynfit._tiff import AmbiguousAxesError
    from napari_dynfit.io import ImageData, open_image

    movie = np.arange(3 * 2 * 8 * 9, dtype=np.uint16).reshape(3, 2, 8, 9)  # t, c, y, x
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"axes": "TCYX", "finterval": 0.5, "unit": "um"})
    for lazy in (False, True):
        img = open_image(tmp_path / "m.tif", lazy=lazy)
        assert isinstance(img, ImageData) and img.axes == "tcyx" and img.name == "m"
        assert img.scale == pytest.approx((0.5, 1.0, 0.25, 0.25)) and img.units == (None, None, "um", "um")
        np.testing.assert_array_equal(np.asarray([img.movie(channel=1)[t] for t in range(3)]), movie[:, 1])
        with pytest.raises(InputError, match="2 channels"):
            img.movie()
    np.save(tmp_path / "m.npy", movie[:, 0])
    with pytest.raises(AmbiguousAxesError):
        open_image(tmp_path / "m.npy")
    img = open_image(tmp_path / "m.npy", axes="tyx")
    assert img.axes == "tyx" and img.spacing == (1.0, 1.0) and img.movie().shape == (3, 8, 9)
    ctc = tmp_path / "ctc"
    ctc.mkdir()
    for t in (0, 2):  # frame 1 missing: an empty frame
        tifffile.imwrite(ctc / f"mask{t:03d}.tif", np.full((8, 9), t + 1, np.uint16))
    lab = open_image(ctc).movie()
    assert lab.shape == (3, 8, 9) and lab[1].max() == 0 and lab[2].min() == 3
    with pytest.raises(InputError, match="does not exist"):
        open_image(tmp_path / "missing.tif")


def test_results_save_and_load(tmp_path):
    pytest.importorskip("torch")  # the PINN result classes live in a torch package
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models.pinn.results import DenoiseResult, LatentFieldResult
    from napari_dynfit.track import TrackingMetrics

    rng = np.random.default_rng(0)
    b = FieldBundle({"u": rng.normal(size=(3, 5))}, {"t": np.arange(3.0), "x": np.linspace(0, 1, 5)},
                    attrs={"pinn": {"adam_steps": 7, "coefficients": {"D": 0.5}, "losses": {"data": 0.1}}})
    res = DenoiseResult(fields=b, pinn=object(), options={"steps": 7, "mask": np.ones(3, bool), "hidden": (8, 8)})
    fields, pinn = res  # the former (fields, pinn) pair
    assert fields is b and "D = 0.5" in res.summary()
    path = res.save(tmp_path / "r.json")
    back = DenoiseResult.load(path)
    np.testing.assert_array_equal(back.fields.fields["u"], b.fields["u"])
    assert back.pinn is None and back.options["hidden"] == (8, 8) and back.options["mask"].dtype == bool
    assert back.fields.attrs == b.attrs and back.to_dict()["options"]["steps"] == 7
    with pytest.raises(InputError, match="not a LatentFieldResult"):
        LatentFieldResult.load(path)
    (tmp_path / "r.npz").unlink()
    with pytest.raises(InputError, match="missing"):
        DenoiseResult.load(path)
    m = TrackingMetrics({"matcher": "point", "DET": 0.9, "LNK": float("nan"), "fn_nodes": np.int64(3)})
    back = TrackingMetrics.load(m.save(tmp_path / "m.json"))
    assert back["DET"] == 0.9 and np.isnan(back["LNK"]) and back["fn_nodes"] == 3 and "DET 0.900" in m.summary()


def test_link_takes_link_params_and_explicit_keywords():
    from napari_dynfit.track import LinkParams, link

    rng = np.random.default_rng(1)
    start = rng.uniform(0, 100, size=(20, 2))
    det = pd.DataFrame([{"frame": t, "y": y + 0.3 * t, "x": x} for t in range(5) for y, x in start])
    fixed = LinkParams(max_distance=2.0, gap_frames=0, motion="brownian")
    a = link(det, fixed)
    b = link(det, max_distance=2.0, gap_frames=0, motion="brownian", divisions=False, estimate=False)
    assert a["track_id"].nunique() == 20 and (a["track_id"].to_numpy() == b["track_id"].to_numpy()).all()
    assert a.attrs["link_params"]["max_distance"] == 2.0
    assert link(det, fixed, max_distance=0.1)["track_id"].nunique() == 100  # keywords override the set
    with pytest.raises(InputError, match="LinkParams"):
        link(det, {"max_distance": 2.0})
    with pytest.raises(TypeError):
        link(det, max_dist=2.0)  # a misspelt option is an error, not silently ignored


def test_pinn_estimators_take_explicit_keywords_and_echo_them():
    """``denoise_fields`` / ``fit_latent_field``: no pass-through ``**kwargs``; the builders' options with the builders'
    defaults; every option echoed in the result."""
    pytest.importorskip("torch")
    import inspect

    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models.pinn import denoise_fields, fields_pinn, fit_latent_field, latent_chemotaxis_pinn

    for estimator, builder in ((denoise_fields, fields_pinn), (fit_latent_field, latent_chemotaxis_pinn)):
        params = inspect.signature(estimator).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), estimator.__name__
        built = inspect.signature(builder).parameters
        shared = [n for n in built if built[n].kind is inspect.Parameter.KEYWORD_ONLY]
        assert shared and all(params[n].default == built[n].default for n in shared), estimator.__name__
    t, x = np.linspace(0, 1, 4), np.linspace(0, 2 * np.pi, 8, endpoint=False)
    bundle = FieldBundle({"u": np.sin(x)[None].repeat(4, 0)}, {"t": t, "x": x}, periodic=(True,))
    res = denoise_fields(bundle, {"equations": {"u_t": {"u_xx": 0.1}}}, steps=1, hidden=(4,), harmonics=1,
                         fourier_features=1, n_collocation=16, batch_size=8, device="cpu")
    assert res.options["hidden"] == (4,) and res.options["steps"] == 1 and res.options["lr"] == 2e-3
    assert set(res.options) == set(inspect.signature(denoise_fields).parameters) - {"bundle", "model"}
    with pytest.raises(TypeError):
        denoise_fields(bundle, {"equations": {"u_t": {"u_xx": 0.1}}}, step=1)  # misspelt: an error


def test_pde_and_balance_results_round_trip(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from napari_dynfit.models import BalanceResult, PDEDiscovery, discover_pde, dominant_balance
    from napari_dynfit.sim.pde_solutions import burgers_pdefind

    u = burgers_pdefind()
    res = discover_pde(u, n_bootstrap=20, n_subsamples=10)
    assert res.equations["u_t"] == pytest.approx({"u*u_x": -1.0, "u_xx": 0.1}, rel=0.05)
    back = PDEDiscovery.load(res.save(tmp_path / "pde.json"))
    assert back.equations == res.equations and back.identifiable and back.summary() == res.summary()
    assert type(back.results["u_t"]) is type(res.results["u_t"])
    sim = back.simulate(u, start=0, stop=6)
    err = np.abs(sim.fields["u"] - u.fields["u"][:6]).max() / np.abs(u.fields["u"]).max()
    assert err < 0.05, err
    assert res.plot().get_title() == "identified"
    bal = dominant_balance(u, res.model, n_clusters=3, max_samples=3000, n_scatter=500)
    bb = BalanceResult.load(bal.save(tmp_path / "bal.json"))
    np.testing.assert_array_equal(bb.regions, bal.regions)
    assert bb.to_dict() == bal.to_dict() and "u_t" in bb.summary()
    bal.plot()


def test_result_plots_and_flow_protocol():
    torch = pytest.importorskip("torch")
    import types

    import matplotlib

    matplotlib.use("Agg")
    from napari_dynfit.fields import FieldBundle
    from napari_dynfit.models.flow.pfi import FlowModel, LinearDrift
    from napari_dynfit.models.pinn import LatentFieldResult
    from napari_dynfit.track import TrackingMetrics

    assert TrackingMetrics({"matcher": "point", "DET": 0.9, "LNK": 0.8}).plot().get_title().startswith("tracking")
    b = FieldBundle({"phi": np.ones((3, 4, 5))}, {"t": np.arange(3.0), "y": np.arange(4.0), "x": np.arange(5.0)})
    assert LatentFieldResult(fields=b).plot().get_title() == "phi, frame -1"
    net = LinearDrift(2)
    with torch.no_grad():
        net.A.copy_(torch.tensor([[-1.0, 0.0], [0.0, -2.0]]))
    score = types.SimpleNamespace(mean=torch.zeros(3, 2), std=torch.ones(2))
    fm = FlowModel(net, None, np.eye(2), score, ("y", "x"), np.arange(3.0))
    x = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(fm.predict(x), [[-1.0, -2.0]], atol=1e-6)  # f(x) = A x + b
    assert fm.simulate(np.zeros((4, 2)), [0.0, 1.0]).shape == (4, 2, 2)
    assert "A = [[-1." in fm.summary() and fm.plot().get_xlabel() == "y"


def test_json_text_is_strict_json():
    """Commands print their reports with ``json_text``: NaN and infinities become null (a strict parser such as
    JavaScript's ``JSON.parse`` rejects Python's ``NaN``), numpy numbers become plain numbers."""
    import json

    from napari_dynfit.results import json_text

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    text = json_text({"a": float("nan"), "b": [np.float32(1.5), np.inf, -np.inf], "c": np.array([1.0, np.nan]),
                      "d": {"e": np.int64(3)}, 4: (1, 2)}, indent=1)
    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [1.5, None, None], "c": [1.0, None],
                                                       "d": {"e": 3}, "4": [1, 2]}


def test_cli_msd_json_parses_strictly(tmp_path):
    import json
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    rows = [(tid, f, *xy) for tid in range(12) for f, xy in enumerate(np.cumsum(rng.normal(size=(30, 2)), 0))]
    path = tmp_path / "tracks.csv"
    pd.DataFrame(rows, columns=["track_id", "frame", "y", "x"]).to_csv(path, index=False)
    r = subprocess.run([sys.executable, "-m", "napari_dynfit.cli", "msd", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert out["tracks"] == 12 and 0.7 < out["exponent"] < 1.3
