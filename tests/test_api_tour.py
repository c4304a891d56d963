"""docs/api.md's tour (movie -> APR -> detections -> tracks -> fields -> model -> balances -> latent field -> flow),
run as written on a small piece of the 2D sample."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def tour_code() -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- tour:begin -->\s*```python\n(.*?)```\s*<!-- tour:end -->", text, re.S)
    assert m, "docs/api.md lost its tour block (<!-- tour:begin --> ```python ... ``` <!-- tour:end -->)"
    return m.group(1)


def test_tour_uses_only_public_names():
    pytest.importorskip("torch")  # the tour imports the PINN and flow modules
    imports = re.findall(r"^from (\S+) import (.+)$", tour_code(), re.M)
    assert imports
    for module, names in imports:
        if not module.startswith("napari_dynfit"):
            continue
        assert not any(part.startswith("_") for part in module.split(".")), module
        mod = __import__(module, fromlist=["x"])
        for name in (n.strip() for n in names.split(",")):
            assert not name.startswith("_") and name in getattr(mod, "__all__", ()), f"{module}.{name} is not public"


@pytest.mark.slow
def test_tour_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("geomloss")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(tour_code(), str(DOC), "exec"), ns)  # noqa: S102 - the documented script, as a user runs it
    out = capsys.readouterr().out
    # the tracks against the simulator's truth: the tour's tracking is good on this sample
    assert ns["metrics"]["link_recall"] > 0.9 and ns["metrics"]["DET"] > 0.9, out
    # every stage produced its result and the files the tour saves are there
    assert set(ns["bundle"].fields) >= {"rho", "p"}
    assert {"rho_t", "p_t"} <= set(ns["pde"].model["equations"])
    assert ns["balances"].equation == "p_t" and len(ns["balances"].balances) >= 1
    assert "phi" in ns["latent"].fields.fields
    assert ns["flow"].A.shape == (2, 2)
    for name in ("pde.json", "pde.npz", "balances.json", "metrics.json", "latent.json", "flow/flow.pt"):
        assert (tmp_path / name).exists(), name
