"""Temporal consistency of label movies (detect/temporal.py) on generated colonies with known truth."""

import numpy as np
import pytest
from scipy import ndimage

from napari_dynfit.detect import match_segmentation
from napari_dynfit.detect.temporal import (
    doubling_frames,
    drop_isolated,
    join_transient_splits,
    moved_objects,
    split_transient_merges,
)
from napari_dynfit.sim.cells import simulate_rod_colony
from napari_dynfit.sim.render import render_labels


@pytest.fixture(scope="module")
def colony():
    """Truth masks of a growing, dividing rod colony (labels = track ids) on a stage drifting by (3, -2) px per
    frame (more than a third of a rod's width: overlap alone would mismatch)."""
    tab = simulate_rod_colony(6, 14, box=(160.0, 160.0), width=9, division_length=40, growth_rate=0.08, seed=3)
    lab = render_labels(tab, (14, 160, 160))
    return np.stack([np.roll(f, (3 * t - 20, 14 - 2 * t), axis=(0, 1)) for t, f in enumerate(lab)])


def _touching_pair(movie, t, lo, hi):
    """The two labels of frame ``t`` sharing the longest border among those present in frames lo..hi."""
    lab = movie[t]
    pairs = np.concatenate([np.stack([lab[:, :-1].ravel(), lab[:, 1:].ravel()]),
                            np.stack([lab[:-1, :].ravel(), lab[1:, :].ravel()])], axis=1)
    pairs = np.sort(pairs[:, (pairs[0] > 0) & (pairs[1] > 0) & (pairs[0] != pairs[1])], axis=0)
    u, n = np.unique(pairs, axis=1, return_counts=True)
    alive = set.intersection(*(set(np.unique(f).tolist()) for f in movie[lo:hi + 1]))
    n = np.where([a in alive and b in alive for a, b in u.T], n, 0)
    return tuple(int(v) for v in u[:, np.argmax(n)])


def _merge(movie, frames, pair):
    out = movie.copy()
    for t in frames:
        out[t][out[t] == pair[1]] = pair[0]
    return out


def test_truth_movie_is_left_alone(colony):
    out, n = split_transient_merges(colony)
    assert n == 0 and np.array_equal(out, colony)  # divisions (one mother, two daughters) are not merges


def test_moved_objects_follow_the_colony(colony):
    t = 12
    moved, shift = moved_objects(colony[t - 1], colony[t])
    assert np.allclose(np.median(list(shift.values()), axis=0), (3, -2), atol=0.5)
    assert match_segmentation(colony[t], moved)["mean_iou"] > 0.8
    assert match_segmentation(colony[t], colony[t - 1])["f1"] < 0.5


def _assert_truth_recovered(truth, out):
    """Every frame of ``out`` has the truth's objects (F1 1 at IoU 0.5) with a mean IoU above 0.95."""
    for t in range(len(truth)):
        m = match_segmentation(truth[t], out[t])
        assert m["f1"] == 1.0 and m["mean_iou"] > 0.95


@pytest.mark.parametrize("frames", [(10,), (10, 11)])
def test_merged_pair_split_back(colony, frames):
    pair = _touching_pair(colony, frames[0], frames[0] - 2, frames[-1] + 1)
    damaged = _merge(colony, frames, pair)  # the segmentation merges two touching rods for one or two frames
    out, n = split_transient_merges(damaged)
    assert n == len(frames)
    _assert_truth_recovered(colony, out)


def test_pair_apart_in_one_earlier_frame_only_stays_merged(colony):
    """Two objects in only one frame before (a rod cut in two by one frame's segmentation) are no evidence."""
    pair = _touching_pair(colony, 10, 7, 10)
    damaged = _merge(colony, (*range(9), 10), pair)  # apart in frame 9 only
    out, n = split_transient_merges(damaged)
    assert n == 0
    assert match_segmentation(colony[10], split_transient_merges(damaged, past=1)[0][10])["f1"] == 1.0


def test_one_frame_blobs_dropped_cells_kept(colony):
    out, n = drop_isolated(colony)
    assert n == 0 and np.array_equal(out, colony)  # every cell of a drifting, dividing colony is kept
    noisy = colony.copy()
    free = np.ones(colony.shape[1:], bool)
    for f in colony[5:8]:
        free &= f == 0
    cy, cx = np.unravel_index(np.argmax(ndimage.distance_transform_edt(np.pad(free, 1, constant_values=0))[1:-1, 1:-1]),
                              free.shape)
    noisy[6, cy - 2:cy + 3, cx - 2:cx + 3] = noisy[6].max() + 1  # a speck in one frame, nothing there before or after
    noisy[0, cy - 2:cy + 3, cx - 2:cx + 3] = noisy[0].max() + 1  # one in the first frame: kept (no frame before)
    out, n = drop_isolated(noisy)
    assert n == 1 and np.array_equal(out[0], noisy[0])
    m = match_segmentation(colony[6], out[6])
    assert m["f1"] == 1.0 and m["mean_iou"] == 1.0


def test_frames_without_objects_are_skipped_not_compared(colony):
    """A blank frame (dropped by the acquisition, lost by the segmentation) is missing evidence: the passes
    compare each frame with the nearest frames that hold objects, across the gap, and leave the blank as it is."""
    gappy = colony.copy()
    gappy[[7, 9]] = 0  # frame 8 between two blank frames: its cells were all "isolated" frame to frame
    out, n = drop_isolated(gappy)
    assert n == 0 and np.array_equal(out, gappy)
    pair = _touching_pair(colony, 11, 8, 12)
    damaged = _merge(colony, (11,), pair)
    damaged[10] = 0  # the frame before the merge is blank: the evidence is two frames back
    out, n = split_transient_merges(damaged)
    assert n == 1 and not out[10].any()
    m = match_segmentation(colony[11], out[11])
    assert m["f1"] == 1.0 and m["mean_iou"] > 0.95


def _cut_rod(movie, frames):
    """Cut the longest rod alive in ``frames`` across its middle (a 2-px line) in those frames: the
    segmentation's mistake on one cell for a frame or two. Returns the damaged movie and the rod's label."""
    alive = set.intersection(*(set(np.unique(movie[t]).tolist()) - {0} for t in range(frames[0] - 1, min(frames[-1] + 2, len(movie)))))
    lab = max(alive, key=lambda v: int((movie[frames[0]] == v).sum()))
    out = movie.copy()
    for t in frames:
        f = out[t]
        yy, xx = np.nonzero(f == lab)
        c = np.array([yy.mean(), xx.mean()])
        u = np.linalg.svd(np.stack([yy, xx], 1) - c, full_matrices=False)[2][0]  # long axis
        s = (np.stack([yy, xx], 1) - c) @ u
        f[yy[np.abs(s) < 1.0], xx[np.abs(s) < 1.0]] = 0
        f[yy[s >= 1.0], xx[s >= 1.0]] = f.max() + 1
    return out, lab


def test_truth_movie_has_no_cut_to_join(colony):
    out, n = join_transient_splits(colony)
    assert n == 0 and np.array_equal(out, colony)  # a division's daughters stay two cells: nothing to join


@pytest.mark.parametrize("frames", [(9,), (9, 10)])
def test_rod_cut_for_a_frame_or_two_is_joined(colony, frames):
    damaged, _ = _cut_rod(colony, frames)
    for t in frames:
        assert match_segmentation(colony[t], damaged[t])["f1"] < 1.0
    out, n = join_transient_splits(damaged)
    assert n == len(frames)
    _assert_truth_recovered(colony, out)


def test_rod_cut_to_the_end_is_a_division_not_joined(colony):
    """Pieces that never come together again are two cells (as a division looks): left as they are."""
    frames = tuple(range(9, len(colony)))
    damaged, _ = _cut_rod(colony, frames)
    out, n = join_transient_splits(damaged)
    assert n == 0 and np.array_equal(out, damaged)


def test_doubling_frames_of_a_growing_colony(colony):
    """The colony grows at 0.08 per frame (rods lengthen; area doubles in ~ln 2 / 0.08 = 8.7 frames at most):
    imaged every third frame it doubles in a third as many frames; a still or empty movie does not double."""
    d1, d3 = doubling_frames(colony), doubling_frames(colony[::3])
    assert 5 < d1 < 20 and d3 == pytest.approx(d1 / 3, rel=0.25)
    assert doubling_frames(np.repeat(colony[:1], 4, axis=0)) == np.inf
    assert doubling_frames(np.zeros((3, 8, 8), int)) == np.inf


def test_piece_held_by_two_cells_is_joined_once_and_counted_once():
    """A piece lying exactly half in each of two cells of the frame before is held by both (``inside`` 0.5), so
    it is in two join groups: it joins one of them, and the count is the objects made from pieces (was one per
    group, 2 here)."""
    lab = np.zeros((3, 30, 60), np.int32)
    lab[0, 10:20, 5:25], lab[0, 10:20, 25:45] = 1, 2  # two cells
    lab[1, 10:20, 5:15], lab[1, 10:20, 15:35], lab[1, 10:20, 35:45] = 1, 3, 2  # piece 3: half in each
    lab[2, 10:20, 5:45] = 1  # one object in the frame after
    out, n = join_transient_splits(lab)
    sizes = np.bincount(out[1].ravel())[1:]
    assert n == 1 and sorted(sizes.tolist()) == [100, 300]  # pieces 1 and 3 joined, piece 2 left as it is
    assert np.array_equal(out[0], lab[0]) and np.array_equal(out[2], lab[2])


@pytest.mark.parametrize("gap", [0, 1, 2])
def test_pieces_joined_up_to_twice_the_gap_apart(gap):
    """Each piece dilated by ``gap`` px: pieces up to ``2 * gap`` px apart are joined, farther ones not (0: pieces
    that touch; scipy dilates a mask given 0 iterations until it fills the frame, which joined any pieces)."""
    for cut, joined in ((2 * gap, True), (2 * gap + 1, False)):
        lab = np.zeros((3, 30, 70), np.int32)
        lab[:, 10:20, 10:55] = 1
        lab[1, 10:20, 29:29 + cut] = 0
        lab[1, 10:20, 29 + cut:55] = 2
        out, n = join_transient_splits(lab, gap=gap)
        assert n == int(joined) and out[1].max() == (1 if joined else 2)
    if gap == 0:
        from napari_dynfit.errors import InputError

        with pytest.raises(InputError, match="gap must be >= 0"):
            join_transient_splits(lab, gap=-1)
