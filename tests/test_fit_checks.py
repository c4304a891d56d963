"""Method-fits-the-data checks of the panel's steps (Qt-free)."""

import numpy as np


def _cloud(rng, means, n=400):
    return np.concatenate([np.column_stack([np.full(n, t), rng.normal(m, 1.0, (n, 2))]) for t, m in enumerate(means)])


def test_snapshot_change_tells_moving_from_stationary(rng):
    from napari_dynfit._napari._fit_checks import snapshot_change

    assert snapshot_change(_cloud(rng, [0.0] * 9)) < 4.0  # a stationary cloud: no drift to learn
    assert snapshot_change(_cloud(rng, np.linspace(0.0, 1.0, 9))) > 10.0  # the mean moves one sd
    assert snapshot_change(_cloud(rng, [0.0, 0.0])) == np.inf  # too few frames: no verdict


def test_fit_warnings_name_what_is_missing(rng):
    from types import SimpleNamespace

    from napari_dynfit._napari._fit_checks import fit_warnings

    class Points(SimpleNamespace):
        pass

    movie = SimpleNamespace(metadata={"params": {"simulation": {"v0": 8.0, "Dr": 0.5}}, "periodic": True})
    pts = Points(data=_cloud(rng, [0.0] * 9), metadata={})
    warned = " ".join(fit_warnings(("chemical field",), [], [movie]))
    assert "no chemical field" in warned
    chemo = SimpleNamespace(metadata={"params": {"simulation": {"chi": 2.0, "Dc": 0.1}}})
    assert fit_warnings(("chemical field",), [], [chemo]) == []
    warned = " ".join(fit_warnings(("drift",), [pts], [movie, pts]))
    assert "do not move" in warned and "periodic box" in warned
    moving = Points(data=_cloud(rng, np.linspace(0.0, 2.0, 9)), metadata={})
    assert fit_warnings(("drift",), [moving], [moving]) == []
