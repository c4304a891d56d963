"""The Well active_matter layout through the CLI: PDE learning of the concentration law, then dominant balances."""

import json

import h5py
import numpy as np
import pytest

from napari_dynfit.cli import main
from napari_dynfit.io import read_well


@pytest.fixture(scope="module")
def am_256(tmp_path_factory):
    d = tmp_path_factory.mktemp("am")
    path = d / "active_matter.hdf5"
    assert main(["well-example", "-o", str(path), "--size", "256", "--steps", "41", "--seed", "0"]) == 0
    return path


def test_concentration_law_learned_through_cli(am_256, tmp_path):
    model_path = tmp_path / "model.json"
    assert main(["discover-pde", str(am_256), "-o", str(model_path), "--fields", "concentration"]) == 0
    model = json.loads(model_path.read_text())
    with h5py.File(am_256, "r") as f:
        assert f.attrs["dataset_name"] == "active_matter"
        law = json.loads(f.attrs["dynfit_truth"])["concentration"]
    eq = model["equations"]["concentration_t"]
    want = {"concentration": law["r"], "concentration^2": -law["r"],
            "concentration_yy": law["Dc"], "concentration_xx": law["Dc"]}
    assert set(eq) == set(want), eq
    for term, c in want.items():
        assert eq[term] == pytest.approx(c, rel=0.02), (term, eq[term])


@pytest.mark.slow
def test_balance_runs_on_active_matter_layout(am_256, tmp_path):
    model = tmp_path / "fkpp.json"
    model.write_text(json.dumps({"equations": {"concentration_t": {
        "concentration": 1.0, "concentration^2": -1.0, "lap(concentration)": 0.1}}}))
    out = tmp_path / "bal"
    assert main(["balance", str(model), str(am_256), "-o", str(out), "--fields", "concentration",
                 "--t-step", "8", "--derivative", "spectral"]) == 0
    table = json.loads((out / "balances.json").read_text())
    regions = np.load(out / "regions.npy")
    b = read_well(am_256, fields=["concentration"], t_step=8)
    assert regions.shape == b.shape == (6, 256, 256)
    sets = [tuple(x["terms"]) for x in table["balances"]]
    assert () in sets  # empty domain and saturated colonies: no dynamics
    c = b["concentration"]
    # the invading fronts: intermediate concentration; there the full reaction-diffusion balance acts
    front = (c > 0.3) & (c < 0.7)
    quiet = (c < 1e-3) | (c > 1 - 1e-3)
    main_front = sets[int(np.bincount(regions[front]).argmax())]
    assert "concentration_t" in main_front and "lap(concentration)" in main_front
    assert np.mean(regions[quiet] == sets.index(())) > 0.9
    assert np.mean(regions[front] == sets.index(())) < 0.1
