"""The issue's figures for probability flow inference (slow: minutes each on one CPU thread).

Run with ``pytest -m slow tests/test_flow_figures.py``; the same numbers are printed by
``python benchmarks/bench_pfi.py``.
"""

import pytest
import torch

from napari_dynfit.models.flow.bench import run_bistable, run_ou

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_ou_2d_drift_matrix():
    # dX = -B X dt + sqrt(2 D) dW, D = 0.5, 5 snapshots x 2000: the fitted A must approach -B
    assert run_ou(2, device="cpu")["rel_error_A_plus_B"] <= 0.05


def test_ou_10d_drift_matrix():
    assert run_ou(10, device="cpu")["rel_error_A_plus_B"] <= 0.10


def test_bistable_growth_unbalanced_beats_balanced():
    r = run_bistable(device="cpu")
    assert r["unbalanced"]["path_energy_distance"] <= 0.05
    assert r["unbalanced"]["fate_correlation"] >= 0.95
    assert r["balanced"]["fate_correlation"] < r["unbalanced"]["fate_correlation"]
