"""Generated phase-contrast rods (sim/phase.py): wall lines, young septa and movies, against painted truth."""

import numpy as np
import pandas as pd

from napari_dynfit.sim.phase import (
    YOUNG_NECK,
    _touching_lines,
    paint_young_septa,
    phase_colony_movie,
    render_phase,
    rod_colony_frames,
    young_pairs,
)
from napari_dynfit.sim.render import render_labels


def test_wall_lines_are_thick_pixels_into_each_cell():
    lab = np.zeros((20, 60), np.int32)
    lab[5:15, 5:30] = 1
    lab[5:15, 30:55] = 2  # touching tip to tip at x = 29 | 30
    for thick, cols in ((1, [29, 30]), (2, [28, 29, 30, 31])):
        wall, other = _touching_lines(lab, thick)
        assert np.array_equal(np.nonzero(wall.any(axis=0))[0], cols)
        assert (other[wall & (lab == 1)] == 2).all() and (other[wall & (lab == 2)] == 1).all()
        assert not wall[lab == 0].any()
    lone = np.zeros((20, 20), np.int32)
    lone[0:10, 0:10] = 1  # a cell on the image border has no wall
    assert not _touching_lines(lone, 2)[0].any()


def _pair_table(frame_of_birth=0, frame=0):
    rows = []
    for tid, x in ((2, 30.0), (3, 62.0)):  # daughters of 1, 32 px long, 10 px wide, tips just touching
        rows.append(dict(track_id=tid, frame=frame, y=20.0, x=x, parent_id=1, radius=5.0, length=32.0,
                         orient_y=0.0, orient_x=1.0))
    tab = pd.DataFrame(rows)
    if frame > frame_of_birth:
        born = tab.copy()
        born["frame"] = frame_of_birth
        tab = pd.concat([born, tab], ignore_index=True)
    return tab


def _neck(lab):
    """Half-width (px) of the union at its narrowest column between the two rods' centres."""
    widths = (lab[:, 35:58] > 0).sum(axis=0)
    return widths.min() / 2


def test_young_septum_is_a_shallow_notch_that_deepens():
    tab = _pair_table()
    plain = render_labels(tab[tab["frame"] == 0], (40, 100))[0]
    assert young_pairs(tab, 0) == [(2, 3, 0)]
    necks = {}
    for age in range(3):
        t = _pair_table(0, age)
        assert young_pairs(t, age) == [(2, 3, age)]
        lab = render_labels(t[t["frame"] == age].assign(frame=0), (40, 100))[0]
        done = paint_young_septa(lab, t[t["frame"] == age], young_pairs(t, age), np.random.default_rng(age))
        assert done == {(2, 3): age}
        assert set(np.unique(lab)) == {0, 2, 3} and (lab == 2).sum() > 0.4 * (lab > 0).sum()
        # the septum is straight: one column where the labels change, the same on every row
        change = [np.nonzero(np.diff(row[row > 0]))[0].size for row in lab if (row > 0).any()]
        assert max(change) == 1
        xs = {int(np.nonzero((row[:-1] == 2) & (row[1:] == 3))[0][0]) for row in lab if ((row == 2) & (np.roll(row, -1) == 3)).any()}
        assert len(xs) == 1
        necks[age] = _neck(lab)
        assert necks[age] >= YOUNG_NECK[age][0] * 5 - 1
    assert necks[0] > _neck(plain) + 1  # shallower than the rounded tips' own neck
    assert young_pairs(_pair_table(0, 3), 3) == []  # older pairs keep their tips


def test_young_septum_skips_pairs_side_by_side():
    tab = _pair_table()
    tab.loc[tab["track_id"] == 3, ["y", "x"]] = (31.0, 30.0)  # beside its sister, not tip to tip
    lab = render_labels(tab, (50, 100))[0]
    before = lab.copy()
    assert paint_young_septa(lab, tab, young_pairs(tab, 0), np.random.default_rng(0)) == {}
    assert np.array_equal(lab, before)


def test_faint_young_wall_and_fixed_optics():
    tab = _pair_table()
    lab = render_labels(tab, (40, 100))[0]
    paint_young_septa(lab, tab, young_pairs(tab, 0), np.random.default_rng(0))
    opt = {}
    a = render_phase(lab, 1, optics=opt)
    assert {"psf", "halo", "noise", "gamma", "background"} <= set(opt)
    assert np.array_equal(a, render_phase(lab, 1))  # recording the optics changes nothing
    b = render_phase(lab, 2, optics=dict(opt))  # same optics, new noise
    assert not np.array_equal(a, b) and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.8
    # the wall line: brighter than the cells' inside with the image's wall, fainter when the pair is young
    opt_wall = dict(opt, wall_level=1.0, wall_px=1, texture=0.0, gain_spread=0.0, noise=0.0, clip_low=0.0,
                    clip_high=0.0, gamma=1.0, eight_bit=False)
    wall = _touching_lines(lab, 1)[0]
    old = render_phase(lab, 3, optics=dict(opt_wall))
    young = render_phase(lab, 3, optics=dict(opt_wall), septa={(2, 3): 0})
    inside = (lab > 0) & ~wall
    rise_old = old[wall].mean() - old[inside].mean()
    rise_young = young[wall].mean() - young[inside].mean()
    assert rise_old > 0 and rise_young < rise_old


def test_colony_frames_with_young_septa():
    labs, septa = rod_colony_frames(5, size=192, width=10.0, aspect=4.5, n_frames=3, young_septa=True)
    assert len(labs) == len(septa) == 3 and any(septa)
    for lab, sp in zip(labs, septa):
        for (a, b), age in sp.items():
            assert 0 <= age < len(YOUNG_NECK) and (lab == a).any() and (lab == b).any()
    plain = rod_colony_frames(5, size=192, width=10.0, aspect=4.5, n_frames=3)
    assert all((p > 0).sum() <= (q > 0).sum() for p, q in zip(plain, labs))  # only necks were filled


def test_phase_colony_movie_truth():
    images, labels, truth = phase_colony_movie(11, size=160, n_frames=12)
    assert images.shape == labels.shape == (12, 160, 160) and images.dtype == np.float32
    assert len(truth) == sum(len(np.unique(f)) - 1 for f in labels)
    kids = truth[truth["parent_id"] > 0]
    assert len(kids) and set(kids["parent_id"]) <= set(truth["track_id"])  # every mother is in the truth
    # one draw of optics: the background level stays put from frame to frame
    bg = [float(np.median(im[lab == 0])) for im, lab in zip(images, labels)]
    assert np.ptp(bg[:6]) < 0.1


def test_septum_focus_centres_patches_on_young_septa():
    from napari_dynfit.detect.learned import _sample

    tab = _pair_table()
    lab = np.zeros((200, 200), np.int32)
    lab[:40, :100] = render_labels(tab, (40, 100))[0]
    sp = paint_young_septa(lab, tab, young_pairs(tab, 0), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    hits = [_sample([(lab, sp)], rng, 48, septum_focus=1.0)[1] for _ in range(10)]
    assert all(fg.sum() > 200 for fg in hits)  # every patch holds the pair (the septum near its middle)
    rng = np.random.default_rng(1)
    plain = [_sample([(lab, sp)], rng, 48)[1] for _ in range(10)]
    assert sum(fg.sum() > 200 for fg in plain) < 8  # uniform patches mostly miss it


def test_wall_lines_do_not_wrap_round_the_image_border():
    lab = np.zeros((30, 60), np.int32)
    lab[5:15, :] = 1  # a rod across the whole width
    lab[15:25, 0:20] = 2  # touching it below at the left border
    lab[15:25, 40:60] = 3  # and at the right border
    wall, other = _touching_lines(lab, 2)
    left, right = wall[:, :18] & (lab[:, :18] == 1), wall[:, 42:] & (lab[:, 42:] == 1)
    assert left.sum() == right.sum() == 2 * 18  # two rows deep
    assert (other[:, :18][left] == 2).all() and (other[:, 42:][right] == 3).all()
