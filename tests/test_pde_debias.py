"""Measurement-noise correction of the weak-form fits (models/debias.py) against known truth."""

import numpy as np
import pytest

from napari_dynfit.fields.weak import weak_features
from napari_dynfit.models.debias import corrected_lstsq, estimate_noise, noise_draws
from napari_dynfit.models.pde import _noise_rows, discover_pde
from napari_dynfit.models.selection import block_labels
from napari_dynfit.sim import pde_solutions as ps

TERMS = ["u_xx", "u", "u^3"]


@pytest.fixture(scope="module")
def allen_cahn():
    return ps.allen_cahn_front()


def test_noise_level_is_estimated_from_the_data(allen_cahn):
    sd = float(allen_cahn["u"].std())
    assert estimate_noise(allen_cahn)["u"] < 1e-5 * sd                       # clean: nothing to correct
    for level in (0.01, 0.05, 0.1):
        est = estimate_noise(ps.add_noise(allen_cahn, level, seed=3))["u"]
        assert abs(est / (level * sd) - 1) < 0.05, level


def test_correction_removes_the_errors_in_variables_bias(allen_cahn):
    """Allen-Cahn u_t = 0.05 u_xx + u - u^3 at 5 % noise, the true terms fitted on weak features:
    plain least squares shrinks every coefficient (errors in variables); the corrected fit does not."""
    truth = allen_cahn.attrs["truth"]["u_t"]
    names = ["u_t", *TERMS]

    def feats(b):
        return weak_features(b, names, half_width=(12, 32), stride=(4, 10))

    plain, fixed = [], []
    for seed in range(4):
        b = ps.add_noise(allen_cahn, 0.05, seed=seed)
        F = feats(b)
        shape = F["u_t"].shape
        labels = block_labels(shape, (4, 2))
        rows = _noise_rows(*noise_draws(b, estimate_noise(b, ["u"]), feats, n_draws=8, seed=seed), "u_t", TERMS,
                           shape, labels, None, {})
        G = np.stack([F[t].ravel() for t in TERMS], axis=1)
        y = F["u_t"].ravel()
        rel = np.array([truth[t] for t in TERMS])
        plain.append(np.linalg.lstsq(G, y, rcond=None)[0] / rel - 1)
        fixed.append(corrected_lstsq(G, y, rows) / rel - 1)
    plain, fixed = np.mean(plain, axis=0), np.mean(fixed, axis=0)
    assert np.all(plain < -0.03)                                  # the known bias: all shrink
    assert np.all(np.abs(fixed) < 0.5 * np.abs(plain))            # corrected: at most half of it left
    assert np.all(np.abs(fixed) < 0.03)


def test_discover_pde_echoes_the_correction(allen_cahn):
    noisy = ps.add_noise(allen_cahn, 0.05, seed=0)
    on = discover_pde(noisy, {"u_t": TERMS + ["u^2"]}, forecast=False, n_subsamples=10, seed=0)
    off = discover_pde(noisy, {"u_t": TERMS + ["u^2"]}, forecast=False, n_subsamples=10, noise_correction=False,
                       seed=0)
    assert on.noise["applied"] and on.model["method"]["noise_correction"] is True
    assert abs(on.noise["relative"]["u"] - 0.05) < 0.005
    assert "noise correction: sigma(u)" in on.summary()
    assert not off.noise["applied"] and off.model["method"]["noise_correction"] is False
    truth = allen_cahn.attrs["truth"]["u_t"]
    err = {k: max(abs(r.equations["u_t"].get(t, 0) / v - 1) for t, v in truth.items()) for k, r in
           (("on", on), ("off", off))}
    assert err["on"] < err["off"]
    two = on.model["diagnostics"]["two_scale"]["u_t"]          # default and half-size fits combined
    for t, c in on.equations["u_t"].items():
        lo, hi = sorted((two["default"][t], two["half_size"][t]))
        assert lo - 1e-12 <= c <= hi + 1e-12 and 0 <= two["weight_default"][t] <= 1
    clean = discover_pde(allen_cahn, {"u_t": TERMS}, forecast=False, n_subsamples=10, seed=0)
    assert not clean.noise["applied"] and "no measurable" in clean.noise["why"]


def test_cli_switch(tmp_path, allen_cahn):
    import json

    from napari_dynfit.cli import main

    small = ps.add_noise(ps.allen_cahn_front(n=128, nt=51), 0.05, seed=1)
    path = tmp_path / "ac.npz"
    small.save(path)
    for flag, applied in (([], True), (["--no-noise-correction"], False)):
        out = tmp_path / f"m{len(flag)}.json"
        assert main(["discover-pde", str(path), "-o", str(out), "--no-forecast-check", "--subsamples", "10",
                     *flag]) == 0
        model = json.loads(out.read_text())
        assert model["method"]["noise_correction"] is applied
        assert model["diagnostics"]["noise"]["applied"] is applied
