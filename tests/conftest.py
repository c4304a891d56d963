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


#: PDE-FIND's reference .mat files: $DYNFIT_PDEFIND_DATA or ../shared/data/pdefind next to the checkout (optional)
PDEFIND_DATA = os.environ.get("DYNFIT_PDEFIND_DATA") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "data", "pdefind")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a test module (small tensors: several threads spin against each other on a loaded
    machine), restored after its last test. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; module scope so that it is set before the
    module's own module-scoped fixtures that train (a function-scoped fixture would come after them), and torch is
    imported only here, so torch-free runs still collect."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def pdefind_mat(tmp_path_factory):
    """``name -> path`` of a PDE-FIND-layout ``.mat`` file (``burgers``, ``kdv``): the published file where
    ``PDEFIND_DATA`` exists, else one written from our own solver at PDE-FIND's parameters
    (:mod:`napari_dynfit.sim.pde_solutions`, equal to the published data to ~1e-5)."""
    from pathlib import Path

    import scipy.io

    from napari_dynfit.sim import pde_solutions

    made = {}

    def path(name: str) -> str:
        published = Path(PDEFIND_DATA) / f"{name}.mat"
        if published.exists():
            return str(published)
        if name not in made:
            b = pde_solutions.PDEFIND[name]()
            out = tmp_path_factory.mktemp("pdefind") / f"{name}.mat"
            scipy.io.savemat(out, {"usol": np.asarray(b.fields["u"]).T, "x": np.asarray(b.coords["x"])[None, :],
                                   "t": np.asarray(b.coords["t"])[:, None]})
            made[name] = str(out)
        return made[name]

    return path


def pytest_collection_modifyitems(config, items):
    """Slow tests (long must-show runs, minutes to an hour on 2 cores) get a 4 h per-test limit instead of the
    default suite's 900 s, so a busy machine cannot stop them before their assertions; a test's own
    ``@pytest.mark.timeout`` still wins."""
    for item in items:
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(4 * 3600))
