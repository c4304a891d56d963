"""A small learned back end for rod-shaped cells in phase contrast, trained only on generated images.

A compact U-Net (4 levels, 8-32 channels, 75 k parameters) maps a normalised image to two maps: the
cell foreground and each cell's distance to its own boundary divided by that cell's largest distance (1 on a
rod's axis, 0 at its edge and at a wall or septum shared with a neighbour; a flow-free cousin of Omnipose's
distance field). Instances: the seeds are the connected parts where the distance map exceeds 0.5 (a touching
pair, side by side or tip to tip, has its seeds cut apart by the wall between them), grown by a watershed on
the distance map inside the foreground; touching objects that are one rod cut in two (no wall or septum dip
between them, their union one rod wide) then rejoin (:func:`merge_rod_fragments`, the classic back end's merge).

Training (:func:`train_rod_model`) uses only :mod:`napari_dynfit.sim.phase` images: random colonies, optics,
backgrounds and noise, a fresh random rendering for every sample. The shipped weights
(``resources/rod_unet.npz``, float16) are written by ``scripts/train_rod_unet.py``: the defaults here, then
1000 more steps from those weights on fresh colonies (``init``, seed 1, ``lr`` 1e-3).
torch is needed (the ``[learn]`` extra) and imported only when this back end runs.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError

CHANNELS = (8, 16, 32, 32)
WEIGHTS = "rod_unet.npz"
SEED_LEVEL = 0.5
FG_LEVEL = 0.5
#: smallest dip of the distance map (peak of each part minus the saddle between them) that splits an object of one
#: frame along the cut its two successors show in the next frame (:func:`split_late_divisions`), per test-time
#: augmentation ``tta`` (averaged maps are smoother: single rods dip less at texture spots); chosen on generated
#: phase-contrast movies and ``render_cells`` colonies (docs/tracking.md)
SEPTUM_DIP = {1: 0.15, 4: 0.10, 8: 0.10}
#: :func:`split_late_divisions` runs only on movies whose segmented area takes at least this many frames to double
#: (:func:`~napari_dynfit.detect.temporal.doubling_frames`): its premise, a septum seen at most a frame late, needs
#: frames close together in the cell cycle; on sparser movies a "one frame late" cut falls on a mother well before
#: its division. Between the generated colonies imaged at every frame (7.6-10.5) and every third frame (3.5-3.6),
#: chosen on those (docs/tracking.md)
LATE_MIN_DOUBLING = 5.0
#: fragments of one rod rejoin (:func:`merge_rod_fragments`) when the distance map's highest point on their shared
#: boundary is at least this fraction of the smaller of their two peaks (0: off). Off by default: 0.5 won every
#: generated check but lost on the real bacteria movie (young daughters rejoined; docs/tracking.md)
ROD_MERGE = 0.0


def _torch():
    try:
        import torch
    except ImportError:
        raise InputError("method='learned' needs torch (pip install 'napari-dynfit[learn]')") from None
    return torch


def build_unet(channels=CHANNELS):
    """The U-Net as a ``torch.nn.Module``: 1 input channel, 2 output logits (foreground, distance)."""
    torch = _torch()
    nn = torch.nn

    def block(a, b):
        return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                             nn.Conv2d(b, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            c = list(channels)
            self.down = nn.ModuleList([block(1, c[0])] + [block(c[i], c[i + 1]) for i in range(len(c) - 1)])
            self.up = nn.ModuleList([block(c[i + 1] + c[i], c[i]) for i in range(len(c) - 1)])
            self.head = nn.Conv2d(c[0], 2, 1)

        def forward(self, x):
            skips = []
            for i, blk in enumerate(self.down):
                x = blk(x if i == 0 else torch.nn.functional.max_pool2d(x, 2))
                skips.append(x)
            for i in range(len(self.up) - 1, -1, -1):
                x = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                x = self.up[i](torch.cat([x, skips[i]], 1))
            return self.head(x)

    return UNet()


def normalise(image: np.ndarray) -> np.ndarray:
    """``(image - median) / (p99.5 - p0.5)`` as float32 (the model's input scale)."""
    img = np.asarray(image, dtype=np.float32)
    lo, med, hi = np.percentile(img, [0.5, 50, 99.5])
    return ((img - float(med)) / max(float(hi - lo), 1e-6)).astype(np.float32)


def targets(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training targets of a label frame: foreground and per-cell normalised distance to the cell's boundary.

    Returns
    -------
    fg, dist : ndarray of float32, shape of ``lab``
        ``dist`` is 0 outside cells and on the pixels touching another cell, 1 on each cell's most inner pixels.
    """
    lab = np.asarray(lab)
    fg = lab > 0
    mx = ndimage.maximum_filter(lab, size=3)
    mn = ndimage.minimum_filter(np.where(fg, lab, np.iinfo(lab.dtype).max), size=3)
    inner = fg & (mx == lab) & (mn == lab)
    d = ndimage.distance_transform_edt(inner)
    n = int(lab.max())
    dmax = np.zeros(n + 1)
    if n:
        dmax[1:] = ndimage.maximum(d, lab, np.arange(1, n + 1))
    dist = np.where(fg, d / np.maximum(dmax[lab], 1e-9), 0.0)
    return fg.astype(np.float32), np.clip(dist, 0, 1).astype(np.float32)


def wall_weights(lab: np.ndarray, weight: float) -> np.ndarray:
    """Per-pixel loss weights: ``weight`` on the wall between two touching cells (each cell's pixels next to the
    other, 1 px on each side), else 1.

    The walls between touching cells (a young septum, two rods side by side) are a few percent of the pixels yet
    decide whether two cells are one mask; weighting them up is the classic U-Net remedy (Ronneberger, Fischer and
    Brox 2015, who weight the gaps between touching cells).

    Returns
    -------
    ndarray of float32, shape of ``lab``
    """
    lab = np.asarray(lab)
    w = np.ones(lab.shape, np.float32)
    if weight != 1:
        big = np.iinfo(lab.dtype).max
        mx = ndimage.maximum_filter(lab, size=3)
        mn = ndimage.minimum_filter(np.where(lab > 0, lab, big), size=3)
        w[(lab > 0) & ((mx != lab) | (mn != lab))] = weight
    return w


def _sample(bank, rng, patch, wall_weight=1.0, septum_focus=0.0):
    from ..sim.phase import render_phase

    lab = bank[int(rng.integers(len(bank)))]
    septa = None
    if isinstance(lab, tuple):  # (labels, {(a, b): age} young sister pairs)
        lab, septa = lab
    y = int(rng.integers(0, lab.shape[0] - patch + 1))
    x = int(rng.integers(0, lab.shape[1] - patch + 1))
    if septa and septum_focus > 0 and rng.random() < septum_focus:  # a patch around a young septum
        a, b = list(septa)[int(rng.integers(len(septa)))]
        wall = np.argwhere((lab == a) & (ndimage.maximum_filter(lab == b, size=3)))
        if len(wall):
            cy, cx = wall[int(rng.integers(len(wall)))]
            y = int(np.clip(cy - rng.integers(patch // 4, 3 * patch // 4), 0, lab.shape[0] - patch))
            x = int(np.clip(cx - rng.integers(patch // 4, 3 * patch // 4), 0, lab.shape[1] - patch))
    lab = lab[y:y + patch, x:x + patch]
    k = int(rng.integers(4))
    lab = np.rot90(lab, k)
    if rng.random() < 0.5:
        lab = lab[:, ::-1]
    lab = np.ascontiguousarray(lab)
    img = normalise(render_phase(lab, rng, septa=septa))
    img = img * rng.uniform(0.8, 1.25) + rng.uniform(-0.1, 0.1)
    fg, dist = targets(lab)
    return img.astype(np.float32), fg, dist, wall_weights(lab, wall_weight)


def colony_bank(n_colonies: int, seed: int = 0, *, size: int = 256, n_frames: int = 4,
                max_overlap: float | None = None, young_septa: bool = False) -> list:
    """Truth label frames of ``n_colonies`` generated rod colonies (:func:`~napari_dynfit.sim.phase.rod_colony_frames`).

    With ``young_septa`` each entry is ``(labels, {(a, b): age})`` (young sister pairs, for their faint walls).
    """
    from ..sim.phase import rod_colony_frames

    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(n_colonies):
        if young_septa:
            labs, septa = rod_colony_frames(rng, size=size, n_frames=n_frames, max_overlap=max_overlap,
                                            young_septa=True)
            bank += list(zip(labs, septa))
        else:
            bank += rod_colony_frames(rng, size=size, n_frames=n_frames, max_overlap=max_overlap)
    return bank


def train_rod_model(*, steps: int = 1500, batch: int = 8, patch: int = 128, n_colonies: int = 40, seed: int = 0,
                    lr: float = 2e-3, channels=CHANNELS, threads: int | None = None, bank=None,
                    log_every: int = 100, log=None, max_overlap: float | None = None, init=None,
                    wall_weight: float = 1.0, young_septa: bool = False,
                    septum_focus: float = 0.0) -> tuple[dict, list[dict]]:
    """Train the rod U-Net on generated phase-contrast colonies (CPU is enough).

    Parameters
    ----------
    steps, batch, patch : int
        Optimiser steps (Adam, cosine-decayed learning rate ``lr``), images per step, patch side (px, multiple of 8).
    n_colonies : int
        Colonies simulated for the truth bank (4 frames each, 256 x 256 px), unless ``bank`` is given.
    seed : int
        Seeds the colonies, the renderings and torch.
    threads : int, optional
        torch CPU threads.
    bank : list of ndarray, optional
        Truth label frames to sample from (default :func:`colony_bank`).
    max_overlap : float, optional
        Leave out colony frames whose rods overlap more (see :func:`~napari_dynfit.sim.phase.rod_colony_frames`).
    log : callable, optional
        Called as ``log(record, net)`` with each logged ``{"step", "loss", "seconds"}`` record.
    init : dict or path, optional
        Start from these weights (:func:`load_rod_model`'s argument) instead of a random initialisation.
    wall_weight : float
        Loss weight of the pixels within 2 px of a wall shared by two touching cells (:func:`wall_weights`).
    young_septa : bool
        Colonies with realistic young septa (:func:`~napari_dynfit.sim.phase.paint_young_septa`: a shallow notch
        and a faint wall line on the daughters' first frames).
    septum_focus : float
        With ``young_septa``: the fraction of the patches centred near a young septum (a random pair of the frame;
        frames without one give a random patch), else patches are placed uniformly.

    Returns
    -------
    state : dict
        ``{name: ndarray}`` weights (float32), loadable by :func:`load_rod_model`.
    history : list of dict
        Logged ``step, loss, seconds``.
    """
    torch = _torch()
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    if patch % 2 ** (len(channels) - 1):
        raise InputError(f"patch must be a multiple of {2 ** (len(channels) - 1)}, got {patch}")
    rng = np.random.default_rng(seed + 1)
    if bank is None:
        bank = colony_bank(n_colonies, seed, size=max(256, patch), max_overlap=max_overlap,
                           young_septa=young_septa)
    if init is None:
        net = build_unet(channels)
    else:
        net = load_rod_model(init)
        channels = tuple(int(net.down[i][0].out_channels) for i in range(len(net.down)))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=min(0.3, max(0.1, 3 / steps)))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    history, t0, run = [], time.perf_counter(), []
    net.train()
    for step in range(1, steps + 1):
        data = [_sample(bank, rng, patch, wall_weight, septum_focus) for _ in range(batch)]
        x, fg, dist, w = (torch.from_numpy(np.stack([d[i] for d in data])[:, None]) for i in range(4))
        out = net(x)
        loss = bce(out[:, :1], fg, weight=w) + 2 * bce(out[:, 1:], dist, weight=w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run.append(loss.item())
        if step % log_every == 0 or step == steps:
            rec = {"step": step, "loss": float(np.mean(run)), "seconds": time.perf_counter() - t0}
            run = []
            history.append(rec)
            if log:
                log(rec, net)
    return state_of(net, channels), history


def state_of(net, channels=CHANNELS) -> dict:
    """``{name: ndarray}`` weights of a U-Net (plus its ``channels``)."""
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    state["channels"] = np.asarray(channels)
    return state


def save_rod_model(state: dict, path) -> Path:
    """Write weights as float16 ``.npz`` (integer buffers kept as they are), atomically.

    Parameters
    ----------
    state : dict
        Name -> array, as :func:`state_of` returns.
    path : str or Path
        Output file; ``.npz`` is appended when the name does not end in it (as :func:`numpy.savez_compressed`
        does). The weights go to a temporary file renamed onto ``path`` once complete: an existing file is
        replaced whole or not at all.

    Returns
    -------
    Path
        The file written.
    """
    import os

    from .._io import atomic_path

    path = Path(path).expanduser()
    if not path.name.endswith(".npz"):
        path = path.with_name(path.name + ".npz")
    out = {k.replace(".", "/"): (v.astype(np.float16) if v.dtype.kind == "f" else v) for k, v in state.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **out)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def load_rod_model(path=None):
    """The U-Net with the weights of ``path`` (default: the shipped ``resources/rod_unet.npz``), in eval mode."""
    torch = _torch()
    if path is None:
        ref = resources.files("napari_dynfit") / "resources" / WEIGHTS
        with resources.as_file(ref) as p:
            return load_rod_model(p)
    if isinstance(path, dict):
        state = path
    else:
        if not Path(path).exists():
            raise InputError(f"no model weights at {path}")
        with np.load(path) as z:
            state = {k.replace("/", "."): z[k] for k in z.files}
    channels = tuple(int(c) for c in state.get("channels", CHANNELS))
    net = build_unet(channels)
    sd = {}
    for k, v in state.items():
        if k != "channels":
            v = np.asarray(v)
            sd[k] = torch.from_numpy(np.ascontiguousarray(v.astype(np.float32) if v.dtype.kind == "f" else v))
    net.load_state_dict(sd)
    net.eval()
    return net


#: Test-time augmentation of the learned back end by default: the number of dihedral transforms of the image
#: whose maps are averaged (1: none, 4: the flips, 8: flips and transposes); see :func:`predict_maps`. 4 with the
#: late-division dip 0.10 was chosen on generated tuning movies (docs/tracking.md, "Test-time augmentation").
TTA = 4
#: The allowed ``tta`` values.
TTA_CHOICES = (1, 4, 8)


def _dihedral(tta: int) -> list[tuple[int, bool]]:
    """``(quarter turns, mirrored)`` of the ``tta`` transforms (a value :func:`check_tta` returned): 1 identity;
    4 the flips (id, up-down, left-right, both = a half turn); 8 all of the square's symmetries."""
    if tta == 1:
        return [(0, False)]
    if tta == 4:
        return [(0, False), (0, True), (2, True), (2, False)]
    return [(k, m) for k in range(4) for m in (False, True)]


def check_tta(tta) -> int:
    """``tta`` as an int in :data:`TTA_CHOICES` (``None``: :data:`TTA`); a clear error otherwise."""
    if tta is None:
        return TTA
    if isinstance(tta, bool) or not isinstance(tta, (int, np.integer)) or int(tta) not in TTA_CHOICES:
        raise InputError(f"tta must be one of {', '.join(map(str, TTA_CHOICES))} (transforms averaged), got {tta!r}")
    return int(tta)


def predict_maps(image, net, *, tile: int = 512, tta: int | None = None,
                 flips: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Foreground probability and normalised distance maps of one 2D image.

    Parameters
    ----------
    image : ndarray, shape (y, x)
    net : torch.nn.Module
        From :func:`load_rod_model`.
    tile : int
        Tiles of this side (px, with a 32 px overlap) bound the memory.
    tta : {1, 4, 8}, optional
        Test-time augmentation: the network runs on this many dihedral transforms of each tile (4: the flips;
        8: also the transposes), each output is transformed back and the probabilities are averaged
        (``tta`` x the time). Default :data:`TTA`.
    flips : bool, optional
        Old spelling: ``True`` is ``tta=4``, ``False`` ``tta=1``.

    Returns
    -------
    fg, dist : ndarray of float32, shape (y, x)
    """
    torch = _torch()
    if flips is not None and tta is None:
        tta = 4 if flips else 1
    variants = _dihedral(check_tta(tta))
    img = normalise(image)
    h, w = img.shape
    m = 8
    pad = ((0, -h % m), (0, -w % m))
    x = np.pad(img, pad, mode="reflect")
    out = np.zeros((2,) + x.shape, np.float32)
    weight = np.zeros(x.shape, np.float32)
    step, ov = tile - 64, 32
    ys = list(range(0, max(x.shape[0] - tile, 0) + 1, step))
    xs = list(range(0, max(x.shape[1] - tile, 0) + 1, step))
    if ys[-1] + tile < x.shape[0]:
        ys.append(x.shape[0] - tile)
    if xs[-1] + tile < x.shape[1]:
        xs.append(x.shape[1] - tile)
    with torch.no_grad():
        for y0 in ys:
            for x0 in xs:
                sl = (slice(y0, y0 + tile), slice(x0, x0 + tile))
                t = torch.from_numpy(np.ascontiguousarray(x[sl]))[None, None]
                acc = 0
                for k, mirror in variants:
                    tt = torch.flip(t, (3,)) if mirror else t
                    r = torch.sigmoid(net(torch.rot90(tt, k, (2, 3)) if k else tt))
                    r = torch.rot90(r, -k, (2, 3)) if k else r
                    acc = acc + (torch.flip(r, (3,)) if mirror else r)
                prob = (acc / len(variants))[0].numpy()
                wy = np.ones(prob.shape[1], np.float32)
                wx = np.ones(prob.shape[2], np.float32)
                if y0 > 0:
                    wy[:ov] = 1e-3
                if x0 > 0:
                    wx[:ov] = 1e-3
                if y0 + tile < x.shape[0]:
                    wy[-ov:] = 1e-3
                if x0 + tile < x.shape[1]:
                    wx[-ov:] = 1e-3
                ww = wy[:, None] * wx[None, :]
                out[(slice(None),) + sl] += prob * ww
                weight[sl] += ww
    out /= weight
    return out[0, :h, :w], out[1, :h, :w]


def instances(fg: np.ndarray, dist: np.ndarray, *, seed_level: float = SEED_LEVEL, fg_level: float = FG_LEVEL,
              min_size: int = 12) -> np.ndarray:
    """Cells from the two maps: seeds where ``dist > seed_level``, watershed on ``-dist`` inside ``fg > fg_level``."""
    from skimage.segmentation import watershed

    mask = fg > fg_level
    seeds, n = ndimage.label((dist > seed_level) & mask)
    if n:
        sizes = np.bincount(seeds.ravel())
        small = sizes < min_size
        small[0] = False
        seeds[small[seeds]] = 0
    lab = watershed(-dist, seeds, mask=mask)
    if lab.max():
        sizes = np.bincount(lab.ravel())
        lab[(sizes < min_size)[lab]] = 0
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(lab)[0].astype(np.int32)


def merge_rod_fragments(labels: np.ndarray, dist: np.ndarray, *, constriction: float | None = None,
                        width: float | None = None) -> np.ndarray:
    """Rejoin touching objects of one frame that are one rod cut in two, under the classic rod shape prior.

    The classic back end's greedy merge (:func:`napari_dynfit.detect.cells._merge`), with the U-Net's normalised
    distance map as the landscape: two touching objects join, highest saddle first, when the map's highest point on
    their shared boundary is at least ``constriction`` x the smaller of their two peaks (no wall or septum between
    them: the map is 0 on a wall shared by two cells) and their union is still one rod (width from its second
    moments at most :data:`~napari_dynfit.detect.cells.ROD_MAX_WIDTH` rod widths, so two rods side by side never
    join and a rod is never joined across).

    Parameters
    ----------
    labels : ndarray of int, shape (y, x)
    dist : ndarray, shape (y, x)
        Normalised distance map (:func:`predict_maps`), in [0, 1].
    constriction : float, optional
        Default :data:`ROD_MERGE`; 0 returns ``labels`` unchanged.
    width : float, optional
        Rod width, pixels; default the median width of the objects (second moments).

    Returns
    -------
    ndarray of int32, shape (y, x)
    """
    from .cells import _merge, _object_width

    c = ROD_MERGE if constriction is None else float(constriction)
    lab = np.asarray(labels, dtype=np.int32)
    if c <= 0 or lab.max() < 2:
        return lab
    w = _object_width(lab, "rods") if width is None else float(width)
    return _merge(lab, np.asarray(dist, np.float64), "rods", w, None, c, 0)


def split_late_divisions(labels: np.ndarray, dist, *, dip: float | None = None, inside: float = 0.5,
                         persist: bool = True, min_doubling: float | None = None,
                         doubling: float | None = None) -> tuple[np.ndarray, int]:
    """Split objects whose two successors already show the septum: a division the image shows one frame late.

    A just-divided pair of rods often looks like one rod for a frame or two (the septum is faint), so the masks
    divide a frame or more after the cells did. Going backwards through the movie, an object of frame ``t`` that
    holds two touching objects of frame ``t + 1`` (each with at least ``inside`` of its pixels inside it) is cut
    along their boundary (each pixel to the nearer successor) when the distance map of frame ``t`` dips there: the
    largest distance on the cut is at least ``dip`` below the peak of each part. A split propagates further back
    only while that dip is there. With ``persist``, the two successors must also lead to two different objects in
    frame ``t + 2`` (when there is one): a cut the next frame merges again is not a division. The pass needs
    frames close together in the cell cycle: on a movie whose segmented area doubles in fewer than
    ``min_doubling`` frames (:func:`~napari_dynfit.detect.temporal.doubling_frames`; a sparse time-lapse) nothing
    is split.

    Parameters
    ----------
    labels : ndarray of int, shape (t, y, x)
        Label movie (objects numbered per frame).
    dist : sequence of ndarray, shape (t, y, x)
        Normalised distance maps of the frames (:func:`predict_maps`), in [0, 1].
    dip, inside : float
        See above (``dip`` in units of the normalised distance; default :data:`SEPTUM_DIP` of the default
        :data:`TTA`, read at the call).
    persist : bool
        See above.
    min_doubling : float, optional
        Frames (default :data:`LATE_MIN_DOUBLING`; 0: always run).
    doubling : float, optional
        The movie's doubling time in frames, ``doubling_frames(labels)`` (``inf``: not growing), when the caller
        has it already (:func:`~napari_dynfit.detect.segment_movie` reports it); default: computed here.

    Returns
    -------
    labels : ndarray of int32, shape (t, y, x)
        A copy with the split objects (new labels appended per frame).
    n_split : int
        Objects split.
    """
    from .temporal import doubling_frames, held_objects

    if dip is None:
        dip = SEPTUM_DIP[TTA]
    labels = np.array(labels, dtype=np.int32, copy=True)
    n_split = 0
    if doubling is None:
        doubling = doubling_frames(labels)
    if doubling < (LATE_MIN_DOUBLING if min_doubling is None else float(min_doubling)):
        return labels, n_split  # frames too far apart in the cell cycle for a division seen one frame late
    for t in range(len(labels) - 2, -1, -1):
        a, b = labels[t], labels[t + 1]
        succ = held_objects(a, b, inside=inside)
        if not succ:
            continue
        d = np.asarray(dist[t], np.float32)
        boxes = ndimage.find_objects(a)
        new = int(a.max()) + 1
        for la, lbs in succ.items():
            if len(lbs) != 2:
                continue
            sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in boxes[la - 1])
            obj = a[sl] == la
            b1, b2 = b[sl] == lbs[0], b[sl] == lbs[1]
            if not (ndimage.binary_dilation(b1, iterations=2) & b2).any():
                continue  # the two successors do not touch: not one rod cut in two
            if persist and t + 2 < len(labels):  # daughters stay apart: the next frame keeps them separate
                c = labels[t + 2]
                n1 = np.bincount(c[b == lbs[0]], minlength=1)
                n2 = np.bincount(c[b == lbs[1]], minlength=1)
                n1[0] = n2[0] = 0
                if not n1.any() or not n2.any() or n1.argmax() == n2.argmax():
                    continue
            near1 = ndimage.distance_transform_edt(~b1) < ndimage.distance_transform_edt(~b2)
            p1, p2 = obj & near1, obj & ~near1
            if min(p1.sum(), p2.sum()) < 0.25 * obj.sum():
                continue
            cut = (ndimage.binary_dilation(p1) & p2) | (ndimage.binary_dilation(p2) & p1)
            dd = d[sl]
            if min(dd[p1].max(), dd[p2].max()) - dd[cut].max() >= dip:
                a[sl][p2] = new
                new += 1
                n_split += 1
    return labels, n_split


def segment_rods_learned(image, *, model=None, tta: int | None = None, keep_dist: bool = False,
                         rod_merge: float | None = None) -> tuple[np.ndarray, dict]:
    """Label image of rod-shaped cells of one 2D phase-contrast frame with the learned model.

    Parameters
    ----------
    image : ndarray, shape (y, x)
    model : torch.nn.Module or path, optional
        Default: the shipped weights.
    tta : {1, 4, 8}, optional
        Test-time augmentation (:func:`predict_maps`; ``tta`` x the network's time); default :data:`TTA`.
    keep_dist : bool
        Also return the distance map (``info["dist"]``, float16; for :func:`split_late_divisions`).
    rod_merge : float, optional
        ``constriction`` of :func:`merge_rod_fragments` (default :data:`ROD_MERGE`; 0: off).

    Returns
    -------
    labels : ndarray of int32, shape (y, x)
    info : dict
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise InputError(f"method='learned' segments 2D frames; got an image of {img.ndim} dimensions")
    net = model if hasattr(model, "forward") else load_rod_model(model)
    tta = check_tta(tta)
    fg, dist = predict_maps(img, net, tta=tta)
    lab = instances(fg, dist)
    n0 = int(lab.max())
    rod_merge = ROD_MERGE if rod_merge is None else float(rod_merge)
    if not 0 <= rod_merge <= 1:
        raise InputError(f"rod_merge must be in [0, 1] (0: off), got {rod_merge}")
    lab = merge_rod_fragments(lab, dist, constriction=rod_merge)
    info = {"method": "learned", "rod_merge": rod_merge, "rod_fragments_merged": n0 - int(lab.max()), "polarity": "dark", "kind": "rods", "tta": tta, "n_objects": int(lab.max())}
    if keep_dist:
        info["dist"] = dist.astype(np.float16)
    return lab, info
