"""Temporal consistency of a label movie: what one frame's segmentation gets wrong that its neighbours show.

Cells persist from frame to frame and only divide (one becomes two), never fuse. A mask of frame ``t`` that holds
two cells which are separate objects in the frames before it is therefore two touching cells the segmentation
merged in that frame (a faint wall, a blur), not one cell: :func:`split_transient_merges` cuts it with the
neighbour frames' objects as seeds. Conversely, pieces of frame ``t`` that are one object in the frame before and
again in a frame after are one cell the segmentation cut for a frame or two, not a division:
:func:`join_transient_splits` joins them. An object nothing overlaps in the frames before and after is not a cell:
:func:`drop_isolated` removes it. The neighbours' objects are first moved by the local flow
between the frames (:func:`~napari_dynfit.track.auto.pair_flow` on the centroids, the tracker's own estimate),
since a growing colony's cells move by up to several cell widths per frame.

The passes compare each frame with its neighbours in time, so a frame without any object (a dropped or blank
frame of the acquisition, a frame the segmentation lost) is missing evidence, not an empty field: they run on the
frames that hold objects (:func:`present_frames`), each compared with its nearest such frames before and after
(the flow then spans the gap), and leave the empty frames as they are.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .labels import label_centroids

#: fraction of a neighbour frame's object (after the flow) that must lie inside a mask for it to count as held
INSIDE = 0.5
#: frames before a merge that must show its cells apart (one frame is not enough: a mother about to divide is
#: sometimes cut in two by the segmentation the frame before its daughters appear)
PAST = 2
#: later frames searched for the cells apart again (a merge lasting two frames is cut); 0: no later evidence needed
AHEAD = 2
#: earlier frames that suffice without a later frame showing the cells apart (a merge lasting to the movie's end)
PAST_ALONE = 3
#: dilation (px) that must connect the pieces of one cell :func:`join_transient_splits` joins (gaps up to twice
#: this; the U-Net's masks of touching cells are 1-2 px apart)
JOIN_GAP = 2
#: smallest piece of a split mask, as a fraction of the mask (a sliver is a misaligned seed, not a cell)
MIN_PIECE = 0.15


def present_frames(labels) -> np.ndarray | None:
    """Indices of the frames of ``labels`` (t, ...) that hold objects, or None when every frame does (or none
    does): the frames the temporal passes compare, the others being missing evidence (module docstring)."""
    full = np.array([np.asarray(f).any() for f in labels], bool)
    return None if full.all() or not full.any() else np.flatnonzero(full)


def on_present_frames(func, labels, dist=None, **kw):
    """``func(labels[, dist], **kw) -> (labels, count)`` (a temporal pass) on the frames of ``labels`` that hold
    objects (:func:`present_frames`), written back into a copy; the whole movie when every frame holds objects."""
    keep = present_frames(labels)
    if keep is None:
        return func(labels, *(() if dist is None else (dist,)), **kw)
    out = np.array(labels, dtype=np.int32, copy=True)
    sub, n = func(out[keep], *(() if dist is None else ([dist[t] for t in keep],)), **kw)
    out[keep] = sub
    return out, n


def doubling_frames(labels) -> float:
    """Frames over which the movie's segmented area doubles: ``ln 2 / median_t ln(A_{t+1} / A_t)``.

    ``A_t`` is the number of object pixels of frame ``t``; frame pairs with an empty frame are left out. For a
    growing colony in view this is the colony's doubling time in frames, i.e. how far apart the frames are in the
    cell cycle (generated colonies imaged at every frame: 7.6-10.5; the same imaged every third frame: 3.5-3.6).
    ``inf`` when the area does not grow (steady state, cells leaving the field, fewer than two frames).

    Parameters
    ----------
    labels : array_like of int, shape (t, y, x) or (t, z, y, x)

    Returns
    -------
    float
        Frames (``inf``: not growing).
    """
    area = np.array([np.count_nonzero(f) for f in labels], float)
    ok = (area[:-1] > 0) & (area[1:] > 0)
    if not ok.any():
        return float("inf")
    rate = float(np.median(np.log(area[1:][ok] / area[:-1][ok])))
    return float(np.log(2.0) / rate) if rate > 0 else float("inf")


def moved_objects(src: np.ndarray, dst: np.ndarray, via=()) -> tuple[np.ndarray, dict]:
    """Objects of frame ``src`` moved onto frame ``dst`` by the local flow between the two.

    Parameters
    ----------
    src, dst : ndarray of int, shape (y, x) or (z, y, x)
        Label frames (0 background).
    via : sequence of ndarray
        Frames between ``src`` and ``dst`` (in order from ``src``): the flow is chained through them (frame to
        frame, each step's field taken at the moved centroids), which follows motions larger than the objects'
        spacing better than one jump.

    Returns
    -------
    moved : ndarray of int32, shape of ``src``
        ``src``'s objects, each shifted by the flow at its centroid (rounded to whole pixels; pixels leaving the
        frame dropped, where two land on the same pixel one of them wins).
    shift : dict
        ``{label: shift (px, ndarray of shape (ndim,))}``.
    """
    frames = [src, *via, dst]
    return _Movie(frames).moved(0, len(frames) - 1)


class _Movie:
    """Per-frame centroids and frame-to-frame flows of a label movie, each computed once (until the frame changes)."""

    def __init__(self, frames):
        self.frames = frames
        self._c: dict = {}
        self._f: dict = {}

    def centroids(self, t):
        if t not in self._c:
            self._c[t] = label_centroids(self.frames[t])
        return self._c[t]

    def flow(self, s, u):
        """Shift of each object of frame ``s`` onto frame ``u`` (``pair_flow``), shape (n_s, ndim)."""
        from ..track.auto import pair_flow

        if (s, u) not in self._f:
            xa, xb = self.centroids(s)[1], self.centroids(u)[1]
            self._f[s, u] = pair_flow(xa, xb)[0] if len(xa) and len(xb) else np.zeros_like(xa)
        return self._f[s, u]

    def changed(self, t):
        self._c.pop(t, None)
        self._f = {k: v for k, v in self._f.items() if t not in k}

    def moved(self, s, t):
        """:func:`moved_objects` of frame ``s`` onto frame ``t``, the flow chained through the frames between."""
        from ..track.auto import _field

        src = self.frames[s]
        ids, x0 = self.centroids(s)
        x = x0.copy()
        d = 1 if t > s else -1
        for u in range(s, t, d):
            xa = self.centroids(u)[1]
            if len(x) and len(xa) and len(self.centroids(u + d)[1]):
                step = self.flow(u, u + d)
                x = x + (step if u == s else _field(xa, step, x))
        shift = x - x0
        step = np.zeros((int(src.max()) + 1, src.ndim), int)
        step[ids] = np.rint(shift).astype(int)
        moved = np.zeros(src.shape, np.int32)
        idx = np.nonzero(src)
        lab = src[idx]
        new = [i + step[lab, k] for k, i in enumerate(idx)]
        ok = np.all([(c >= 0) & (c < n) for c, n in zip(new, src.shape)], axis=0)
        moved[tuple(c[ok] for c in new)] = lab[ok]
        return moved, dict(zip(ids.tolist(), shift))


def held_objects(frame: np.ndarray, moved: np.ndarray, *, inside: float = INSIDE) -> dict:
    """``{label of frame: [labels of moved objects with at least inside of their pixels in it]}``."""
    both = (frame > 0) & (moved > 0)
    if not both.any():
        return {}
    size = np.bincount(moved.ravel())
    m = len(size)
    keys, cnt = np.unique(frame[both].astype(np.int64) * m + moved[both], return_counts=True)
    out: dict = {}
    for la, lb, c in zip((keys // m).tolist(), (keys % m).tolist(), cnt.tolist()):
        if c >= inside * size[lb]:
            out.setdefault(la, []).append(lb)
    return out


def _cut(obj: np.ndarray, seeds: list, relief: np.ndarray) -> np.ndarray | None:
    """Watershed of ``obj`` from ``seeds`` (boolean masks) on ``-relief``; None when a piece is a sliver."""
    from skimage.segmentation import watershed

    markers = np.zeros(obj.shape, np.int32)
    for k, s in enumerate(seeds, 1):
        core = ndimage.binary_erosion(s & obj)
        markers[core if core.any() else (s & obj)] = k
    if len(np.unique(markers[markers > 0])) != len(seeds):
        return None
    parts = watershed(-relief, markers, mask=obj)
    sizes = np.bincount(parts[obj], minlength=len(seeds) + 1)[1:]
    if sizes.min() < MIN_PIECE * obj.sum():
        return None
    return parts


def split_transient_merges(labels: np.ndarray, dist=None, *, inside: float = INSIDE,
                           past: int = PAST, ahead: int = AHEAD,
                           past_alone: int | None = PAST_ALONE) -> tuple[np.ndarray, int]:
    """Split masks that hold two or more cells which earlier frames show as separate objects.

    Why: cells do not fuse, so a mask of frame ``t`` holding (after the local flow) at least two objects of each
    of the ``past`` frames before it (each object with ``inside`` of its pixels in the mask) is touching cells
    merged by that frame's segmentation (a wall too faint in that frame), not one cell, when a later frame (within
    ``ahead`` frames, past frames that still show one object) shows them apart again, or when ``past_alone``
    earlier frames show them apart. A division never looks like this (its mother is one object before it). One
    earlier frame is not enough: the segmentation sometimes cuts a mother about to divide in two the frame before
    its daughters appear. The mask is cut by a watershed on ``-dist`` (the frame's distance-to-boundary map; the
    mask's own distance transform without one) seeded by the moved objects of the previous frame, or of the later
    frame when it holds fewer of them (the previous one may show a division of one of them) or as many covering
    more of the mask. Frames without objects are skipped (the earlier and later frames are the nearest that hold
    objects; module docstring). The movie is swept forwards, so a merge lasting several frames is cut frame after frame,
    each cut seeding the next. Cuts leaving a piece smaller than :data:`MIN_PIECE` of the mask (misaligned seeds)
    are not made. The frame counts (:data:`PAST`, :data:`AHEAD`, :data:`PAST_ALONE`) were chosen on generated
    phase-contrast movies under the rule that ``render_cells`` colonies, where the U-Net merges nothing, lose at
    most 0.005 of F1 (docs/tracking.md).

    Parameters
    ----------
    labels : ndarray of int, shape (t, y, x) or (t, z, y, x)
        Label movie, objects numbered per frame.
    dist : sequence of ndarray, optional
        Per-frame relief for the cut (e.g. the learned back end's normalised distance maps), shape of a frame.
    inside : float
        See above.
    past, ahead : int
        Earlier frames that must show the cells apart; later frames searched for them apart again.
    past_alone : int, optional
        Earlier frames that suffice without a later one (a merge lasting to the end of the movie); None: never.

    Returns
    -------
    labels : ndarray of int32
        A copy with the merged masks split (new labels appended per frame).
    n_split : int
        Masks split.
    """
    if present_frames(labels) is not None:  # frames without objects: compare the others across the gaps
        return on_present_frames(split_transient_merges, labels, dist, inside=inside, past=past, ahead=ahead,
                           past_alone=past_alone)
    labels = np.array(labels, dtype=np.int32, copy=True)
    n_split = 0
    n = len(labels)
    mov = _Movie(labels)
    for t in range(1, n):
        a = labels[t]
        if not a.any():
            continue

        def held_from(s):
            moved, _ = mov.moved(s, t)
            return moved, held_objects(a, moved, inside=inside)

        before = held_from(t - 1)
        cands = [la for la, v in before[1].items() if len(v) >= 2]
        apart = dict.fromkeys(cands, 1)  # consecutive earlier frames showing the cells apart
        for s in range(t - 2, t - max(past, past_alone or 0) - 1, -1):
            if s < 0 or not any(v == t - 1 - s for v in apart.values()):
                break
            held = held_from(s)[1]
            for la in apart:
                if apart[la] == t - 1 - s and len(held.get(la, ())) >= 2:
                    apart[la] += 1
        cands = [la for la in cands if apart[la] >= past]
        after = {}  # the first later frame (within `ahead`) where the mask holds more than one object
        for s in range(t + 1, min(t + ahead, n - 1) + 1):
            if not cands:
                break
            side = held_from(s)
            for la in cands:
                if la not in after and len(side[1].get(la, ())) != 1:
                    after[la] = side
        cands = [la for la in cands if (la in after and len(after[la][1].get(la, ())) >= 2)
                 or (past_alone is not None and apart[la] >= past_alone)]
        if not cands:
            continue
        boxes = ndimage.find_objects(a)
        relief = None if dist is None else np.asarray(dist[t], np.float32)
        new = int(a.max()) + 1
        for la in cands:
            sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in boxes[la - 1])
            obj = a[sl] == la
            opts = []
            later = [after[la]] if la in after and len(after[la][1].get(la, ())) >= 2 else []
            for moved, held in [before] + later:
                segs = [moved[sl] == lb for lb in held[la]]
                cover = sum(int((g & obj).sum()) for g in segs)
                opts.append((len(segs), -cover, segs))
            segs = min(opts, key=lambda o: o[:2])[2]
            r = relief[sl] if relief is not None else ndimage.distance_transform_edt(np.pad(obj, 1))[
                (slice(1, -1),) * obj.ndim]
            parts = _cut(obj, segs, r)
            if parts is None:
                continue
            sub = a[sl]
            for k in range(2, len(segs) + 1):
                sub[parts == k] = new
                new += 1
            n_split += 1
            mov.changed(t)
    return labels, n_split


def join_transient_splits(labels: np.ndarray, *, inside: float = INSIDE, ahead: int = AHEAD,
                          gap: int = JOIN_GAP) -> tuple[np.ndarray, int]:
    """Join objects that are one cell in the frame before and again in a frame after: a cell cut for a frame or two.

    Why: a cell that divides stays two cells, so two (or more) touching objects of frame ``t`` that each lie (at
    least ``inside`` of their pixels, after the local flow) in one object of frame ``t - 1`` *and* in one object of
    a frame within ``ahead`` after ``t`` are one cell the segmentation cut in those frames (a texture dip, a mother's
    constriction), not a division: the tracker would otherwise make a division of the cut and end one daughter
    when the pieces come together again. The pieces are joined when they lie within ``2 * gap`` pixels of each
    other (each dilated by ``gap``: one connected region); the pixels between them stay background. A division whose
    daughters the segmentation merges again in the next frames looks the same and is joined too (the daughters
    then appear when they stay apart), which the generated movies show to be the rarer case: of the divisions
    the tracker made on the tuning movies (seeds 7001-7006) with a daughter lasting at most two frames, 112 were
    not divisions and 18 were (docs/tracking.md). The movie is swept forwards, so a cut lasting two frames is
    joined in its first frame against the frame after it and then in its second frame against the joined one.
    Frames without objects are skipped (module docstring).

    Parameters
    ----------
    labels : ndarray of int, shape (t, y, x) or (t, z, y, x)
        Label movie, objects numbered per frame.
    inside : float
        See above.
    ahead : int
        Later frames searched for the pieces in one object again.
    gap : int
        Dilation (px) that must connect the pieces (see above; 0: pieces that touch).

    Returns
    -------
    labels : ndarray of int32
        A copy with the pieces joined (the frames that changed renumbered 1..n).
    n_joined : int
        Objects made from pieces.
    """
    if gap < 0:
        raise InputError(f"gap must be >= 0 px, got {gap}")
    if present_frames(labels) is not None:  # frames without objects: compare the others across the gaps
        return on_present_frames(join_transient_splits, labels, inside=inside, ahead=ahead, gap=gap)
    from skimage.segmentation import relabel_sequential

    labels = np.array(labels, dtype=np.int32, copy=True)
    n = len(labels)
    mov = _Movie(labels)
    n_joined = 0
    for t in range(1, n - 1):
        a = labels[t]
        if a.max() < 2:
            continue

        seen: dict = {}  # frame s -> its pieces, each frame's objects moved and compared once per frame t

        def pieces(s):
            """``[set of labels of frame t lying in one object of frame s]`` (sets of two or more)."""
            if s not in seen:
                held = held_objects(mov.moved(s, t)[0], a, inside=inside)
                seen[s] = [set(v) for v in held.values() if len(v) >= 2]
            return seen[s]

        joins = []
        for cut in pieces(t - 1):
            for s in range(t + 1, min(t + ahead, n - 1) + 1):
                again = max((cut & g for g in pieces(s)), key=len, default=set())
                if len(again) >= 2:
                    joins.append(sorted(again))
                    break
        done = set()  # labels of the objects made from pieces
        for group in joins:
            # a piece held by two cells of t - 1 (a tie at `inside`) is in two groups: once joined, it is not
            # a piece of the next group (a group left with one object is no join)
            m = np.isin(a, group)
            grown = ndimage.binary_dilation(m, iterations=gap) if gap > 0 else m  # iterations 0: until it fills
            if len(np.unique(a[m])) >= 2 and ndimage.label(grown)[1] == 1:
                a[m] = group[0]
                done.add(group[0])
        if done:
            n_joined += sum(1 for v in done if (a == v).any())  # a later group may have taken one in
            labels[t] = relabel_sequential(a)[0]
            mov.changed(t)
    return labels, n_joined


def drop_isolated(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Remove objects that nothing in the previous or the next frame overlaps, even after the flow.

    Why: cells persist from frame to frame (they move, grow and divide, but a daughter overlaps its mother's
    place), so an object of frame ``t`` that no object of frame ``t - 1`` *and* no object of frame ``t + 1`` overlaps
    by a single pixel, once moved by the local flow (:func:`moved_objects`), is background texture or debris the
    segmentation picked up in one frame (flickering noise of a sparse, noisy movie), which the tracker could
    only make a one-frame track of. Objects of the first and last frames (one neighbour only) are kept. Frames
    without objects are skipped: the neighbours are the nearest frames that hold objects (module docstring).

    Parameters
    ----------
    labels : ndarray of int, shape (t, y, x) or (t, z, y, x)

    Returns
    -------
    labels : ndarray of int32
        A copy without those objects (the frames that lost one renumbered 1..n).
    n_dropped : int
    """
    if present_frames(labels) is not None:  # frames without objects: compare the others across the gaps
        return on_present_frames(drop_isolated, labels)
    labels = np.asarray(labels)
    out = np.array(labels, dtype=np.int32, copy=True)
    n_dropped = 0
    mov = _Movie(labels)
    for t in range(1, len(labels) - 1):
        a = labels[t]
        if not a.any():
            continue
        seen = np.zeros(int(a.max()) + 1, bool)
        for s in (t - 1, t + 1):
            moved, _ = mov.moved(s, t)
            seen[a[(a > 0) & (moved > 0)]] = True
        present = np.zeros_like(seen)
        present[a[a > 0]] = True
        gone = present & ~seen
        if gone.any():
            from skimage.segmentation import relabel_sequential

            out[t] = relabel_sequential(np.where(gone[a], 0, a))[0]
            n_dropped += int(gone.sum())
    return out, n_dropped
