"""Shared test set-up.

* ``QT_API=pyqt6`` before anything imports qtpy (pyapr imports a Qt binding at import time).
* Core tests never need Qt; GUI tests use napari's ``make_napari_viewer`` fixture under Xvfb
  (pytest-xvfb starts the X server).
"""

import os

os.environ.setdefault("QT_API", "pyqt6")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A seeded random generator (tests must be reproducible)."""
    return np.random.default_rng(12345)
