"""One comparison of recorded with wanted settings (caches, checkpoints): what differs, in one line."""

import numpy as np

from napari_dynfit._settings import settings_mismatch


def test_matching_settings_say_nothing():
    rec = {"alpha": -4, "seeds": [5, 6], "branch": np.zeros((2, 3, 4, 4)), "closure": "ab" * 20, "extra": 1}
    want = {"alpha": -4.0, "seeds": (5, 6), "branch": np.zeros((2, 3, 4, 4)), "closure": np.asarray("ab" * 20)}
    assert settings_mismatch(rec, want) == ""  # 4 == 4.0, a list equals its tuple; unwanted keys are ignored
    assert settings_mismatch({}, {"solver_version": 1}, {"solver_version": 1}) == ""  # made before it was recorded


def test_each_difference_is_named_with_both_values():
    rec = {"alpha": -4.0, "seeds": [5, 6], "branch": np.zeros((2, 3, 4, 4)), "closure": "ab" * 20}
    want = {"alpha": -3.5, "seeds": [5, 7], "branch": np.ones((2, 3, 4, 4)), "closure": "cd" * 20,
            "solver_version": 2, "swim_speed": 1.0}
    got = settings_mismatch(rec, want, {"solver_version": 1})
    assert got == ("alpha = -4.0, now -3.5; seeds = [5, 6], now [5, 7]; branch differs (an array of shape "
                   "(2, 3, 4, 4)); closure = 'ababababab'..., now 'cdcdcdcdcd'...; solver_version = 1, now 2; "
                   "swim_speed unrecorded, now 1.0")
    assert settings_mismatch({"n": "32"}, {"n": 32}) == "n = '32', now 32"  # a string is not the number
    assert settings_mismatch({"s": [1, [2, 3]]}, {"s": [1, [2, 4]]}) == "s = [1, [2, 3]], now [1, [2, 4]]"


def test_nan_matches_itself_and_incomparable_values_differ_without_raising():
    """A setting holding NaN (e.g. a branch state with a NaN cell) is the same when given again, so its
    checkpoint is not refused as 'made with other settings'; an array against a ragged list differs (one line,
    no ValueError from the comparison)."""
    branch = np.zeros((2, 3, 4, 4))
    branch[0, 0, 1, 1] = np.nan
    assert settings_mismatch({"branch": branch, "x": float("nan")}, {"branch": branch.copy(), "x": np.nan}) == ""
    other = branch.copy()
    other[0, 0, 1, 1] = 0.0
    assert settings_mismatch({"branch": branch}, {"branch": other}) == "branch differs (an array of shape (2, 3, 4, 4))"
    assert settings_mismatch({"s": np.array([1, 2])}, {"s": [1, [2, 3]]}) == "s = [1, 2], now [1, [2, 3]]"
    assert settings_mismatch({"x": "nan"}, {"x": np.nan}) == "x = 'nan', now nan"  # a string is not the number
