"""``dynfit demo`` end to end (quick sizes) and project folders."""

import json

import numpy as np
import pandas as pd
import pytest

from napari_dynfit import InputError
from napari_dynfit.cli import main
from napari_dynfit.fields import FieldBundle
from napari_dynfit.project import Project


def test_project_roundtrip(tmp_path, rng):
    prj = Project(tmp_path / "p")
    movie = rng.integers(0, 1000, (3, 8, 9)).astype(np.uint16)
    df = pd.DataFrame({"frame": [0, 1], "y": [1.0, 2.0], "x": [3.0, 4.0]})
    fb = FieldBundle({"rho": rng.random((3, 4, 5))}, {"t": np.arange(3.0), "y": np.arange(4.0), "x": np.arange(5.0)})
    prj.save("movie", movie, meta={"scale": [1, 1]})
    prj.save("detections", df)
    prj.save("fields", fb)
    prj.save("model", {"equations": {"rho_t": {"lap(rho)": 0.5}}})
    again = Project(tmp_path / "p")
    assert again.names == ["detections", "fields", "model", "movie"]
    np.testing.assert_array_equal(np.asarray(again.load("movie")), movie)
    pd.testing.assert_frame_equal(again.load("detections"), df)
    np.testing.assert_array_equal(again.load("fields")["rho"], fb["rho"])
    assert again.load("model")["equations"]["rho_t"]["lap(rho)"] == 0.5
    assert again.meta("movie") == {"scale": [1, 1]}
    with pytest.raises(InputError, match="no artefact"):
        again.load("tracks")
    (tmp_path / "p" / "project.json").write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON"):
        Project(tmp_path / "p")


def test_demo_quick_writes_report_and_project(tmp_path):
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--quick", "-o", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "<h1>napari-dynfit demo report</h1>" in html
    timings = json.loads((out / "timings.json").read_text())
    from napari_dynfit.commands.demo import demo_stages

    assert list(timings) == [title for _, title, _ in demo_stages()]
    assert len(timings) >= 1
    assert Project(out).names  # the stages left artefacts in the project


def test_demo_requires_output(capsys):
    assert main(["demo"]) == 2  # usage errors are one line and an exit status, like every other error
    assert capsys.readouterr().err.count("\n") == 1
