"""Object size from an image: the scale of its strongest spots.

* :func:`estimate_spot_sigma`: one image (2D or 3D), bright or dark objects;
* :func:`estimate_movie_spot_sigma`: a movie, the one rule shared by ``dynfit detect`` (``--sigma auto``, the
  default), :func:`napari_dynfit.detect.detect_movie` / :func:`~napari_dynfit.detect.detect_blobs` with
  ``sigma=None`` (the default) and the napari panel (the blob sigma of detection and the filter sigma of the APR
  segmentation): the median over the frames at 1/4, 1/2 and 3/4 of the movie, for the objects' polarity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

__all__ = ["SpotSize", "estimate_movie_spot_sigma", "estimate_spot_sigma"]

_SIGN = {"bright": 1.0, "dark": -1.0}


def _scales(frame, spacing, sigmas, n_spots: int, max_size: int) -> dict:
    """Best LoG scale (pixels of the x axis) of the strongest bright and dark spots of one image: ``{"bright": s
    or an error message, "dark": ...}`` from one stack of responses (dark spots are the minima of the same
    response, so both polarities cost one pass)."""
    from scipy import ndimage as ndi

    from .blobs import _log_response

    img = np.asarray(frame, dtype=np.float32)
    if img.ndim not in (2, 3) or min(img.shape) < 3:
        raise InputError(f"need a 2D or 3D image of at least 3 pixels per axis to estimate the object size, got shape "
                         f"{img.shape}: pass a larger image or set the object size by hand (CLI --sigma)")
    if not np.isfinite(img).all():
        raise InputError("contains NaN or infinite values: replace them (e.g. np.nan_to_num) first")
    if img.ndim == 3:
        max_size = min(max_size, 64)  # 20 scales of a 64^3 crop: well under a second
    crop = tuple(slice(max(0, (n - max_size) // 2), max(0, (n - max_size) // 2) + max_size) for n in img.shape)
    img = img[crop]
    img = np.ascontiguousarray((img - np.median(img)) / (img.std() + 1e-12), np.float32)
    sigmas = np.geomspace(1.0, 12.0, 20) if sigmas is None else np.asarray(sigmas, float)
    rel = np.ones(img.ndim) if spacing is None else float(spacing[-1]) / np.asarray(spacing, float)[-img.ndim:]
    resp = np.stack([_log_response(img, s * rel, -(s ** 2)) for s in sigmas])
    out = {}
    for pol, sign in _SIGN.items():
        r = sign * resp
        best = r.max(axis=0)
        peaks = (best == ndi.maximum_filter(best, size=3)) & (best > 0.5 * best.max())
        idx = np.flatnonzero(peaks)
        if best.max() <= 0 or len(idx) == 0:
            out[pol] = f"no {pol} spots in the image: set the object size by hand"
            continue
        top = idx[np.argsort(best.ravel()[idx])[::-1][:n_spots]]
        out[pol] = float(np.median(_peak_scale(r.reshape(len(sigmas), -1)[:, top], sigmas)))
    return out


def _peak_scale(resp: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Scale of the maximum of each column of ``resp`` (scales x spots): the best grid scale refined by a parabola
    through it and its two neighbours in ``log(scale)`` (the grid's 14 % steps would otherwise quantise the size;
    at the ends of the grid, the end scale)."""
    k = resp.argmax(axis=0)
    ls = np.log(sigmas)
    out = ls[k].astype(float)
    inner = (k > 0) & (k < len(sigmas) - 1)
    if len(sigmas) >= 3 and inner.any():
        j, ki = np.flatnonzero(inner), k[inner]
        a, b, c = resp[ki - 1, j], resp[ki, j], resp[ki + 1, j]
        curv = a - 2 * b + c
        delta = np.where(curv < 0, 0.5 * (a - c) / np.where(curv < 0, curv, -1.0), 0.0)
        delta = np.clip(delta, -0.5, 0.5)
        step = np.where(delta < 0, ls[ki] - ls[ki - 1], ls[ki + 1] - ls[ki])
        out[j] = ls[ki] + delta * step
    return np.exp(out)


def estimate_spot_sigma(frame, *, spacing=None, sigmas=None, n_spots: int = 30, max_size: int = 256,
                        polarity: str = "bright") -> float:
    """Object size as a Gaussian sigma (pixels of the last axis) from the strongest spots of one image.

    The image (a central crop of at most ``max_size`` pixels per axis) is filtered with the
    scale-normalised Laplacian of Gaussian ``-s^2 LoG_s`` at geometrically spaced scales from 1 px
    (finer scales answer to pixel noise, e.g. the shot noise inside bright cells, more than to
    objects). Spots are the (at most ``n_spots``) strongest local maxima of the response over scales
    (minima for dark objects) that reach half the strongest; at each the best scale is read and the
    median returned. For a Gaussian spot of width ``sigma`` the normalised response peaks at
    ``s = sigma``; for a ball of radius ``r`` at ``r / sqrt(3)`` (3D). Measured: the 2D sample's spots
    (sigma 1.5 px) 1.48 px, the 3D sample's cells (r = 5 px) 2.85 px.

    Parameters
    ----------
    frame : array_like, shape ([z,] y, x)
    spacing : sequence of float, optional
        Pixel size per axis; anisotropic voxels get per-axis scales (``s * spacing[-1] / spacing[i]``).
    sigmas : sequence of float, optional
        Candidate scales in pixels (default 1-12 px, 20 steps).
    n_spots : int
        Number of strongest spots used.
    max_size : int
        Crop size per axis (the estimate needs a few dozen spots, not the whole image; at most 64
        for 3D images).
    polarity : {"bright", "dark"}
        Objects brighter (fluorescence) or darker (brightfield beads) than the background.

    Returns
    -------
    float
        The spot sigma in pixels of the ``x`` axis.
    """
    if polarity not in _SIGN:
        raise InputError(f"polarity must be 'bright' or 'dark' here, got {polarity!r}")
    s = _scales(frame, spacing, sigmas, n_spots, max_size)[polarity]
    if isinstance(s, str):
        raise InputError(s)
    return s


@dataclass
class SpotSize:
    """The object size of a movie (:func:`estimate_movie_spot_sigma`).

    Attributes
    ----------
    sigma : float
        Blob sigma in pixels of the finest axis (the unit of ``detect_blobs(sigma=...)``).
    polarity : str
        ``"bright"`` or ``"dark"``: the objects measured.
    skewness : float or None
        The skewness that decided the polarity (``polarity="auto"``; None when it was given).
    frames : list of int
        The frames measured.
    per_frame : list of float
        Their estimates (pixels of the finest axis; frames without spots are left out and noted).
    notes : list of str
        Frames whose estimate failed, and why.
    """

    sigma: float
    polarity: str
    skewness: float | None = None
    frames: list = field(default_factory=list)
    per_frame: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        """One line: the value and where it came from."""
        each = " / ".join(f"{s:.2f}" for s in self.per_frame)
        frames = ", ".join(str(t) for t in self.frames)
        what = "frame" if len(self.frames) == 1 else "median over frames"
        return (f"sigma {self.sigma:.2f} px (auto: scale of the strongest {self.polarity} spots, {what} {frames}: "
                f"{each} px)")

    def to_dict(self) -> dict:
        """JSON-compatible values."""
        return {"sigma": float(self.sigma), "polarity": self.polarity, "skewness": self.skewness,
                "frames": [int(t) for t in self.frames], "per_frame": [float(s) for s in self.per_frame],
                "notes": list(self.notes)}


def estimate_movie_spot_sigma(movie, *, spacing=None, polarity: str = "auto", warn: bool = True) -> SpotSize:
    """Object size of a movie: the one rule of ``dynfit detect``, ``detect_movie(sigma=None)`` and the napari panel.

    :func:`estimate_spot_sigma` on the frames at 1/4, 1/2 and 3/4 of the movie, median over them (one frame's
    estimate can lock onto pixel noise: 1.0 px instead of 2.5-2.85 px on frames 12 and 24 of the 3D cells
    sample). Bright and dark spots are measured from the same filter responses; ``polarity="auto"`` then decides
    which the objects are (:func:`napari_dynfit.detect.blobs.movie_polarity`: the skewness of the
    background-flattened frames) at the larger of the two sizes, because the background blocks must be larger
    than the objects whichever polarity they have (a 25 px bright particle would be flattened away by blocks
    sized for 1.5 px dark noise features).

    Parameters
    ----------
    movie : array_like, shape (t, [z,] y, x)
        Any object indexable by frame (numpy, dask, zarr, lazily reconstructed APR frames); a single image
        as ``image[None]``.
    spacing : sequence of float, optional
        Pixel size along ``([z,] y, x)`` (anisotropic voxels).
    polarity : {"auto", "bright", "dark"}
        The objects' polarity, or ``"auto"`` to decide it here.
    warn : bool
        Warn when the polarity is ambiguous (then ``"bright"``).

    Returns
    -------
    SpotSize
        ``sigma`` (pixels of the finest axis), the polarity, per-frame values and notes; ``summary()`` is one
        line saying where the value came from.

    Raises
    ------
    InputError
        When no frame has spots of the polarity (set the size by hand).
    """
    from .contrast import check_polarity

    check_polarity(polarity)
    n = int(movie.shape[0])
    if n == 0:
        raise InputError("the movie has no frames")
    frames = sorted({n * k // 4 for k in (1, 2, 3)})
    per, nd = {}, 2
    for t in frames:
        img = np.asarray(movie[t])
        nd = img.ndim
        try:
            per[t] = _scales(img, spacing, None, 30, 256)
        except InputError as exc:  # the frame itself is unusable (NaN, too small): no size hides that
            raise InputError(f"frame {t} {exc}" if str(exc).startswith("contains") else f"frame {t}: {exc}") from exc
    skew = None
    if polarity == "auto":
        from .blobs import movie_polarity

        found = [v for d in per.values() for v in d.values() if not isinstance(v, str)]
        if not found:
            raise InputError(f"no spots in frames {', '.join(map(str, frames))}: set the object size by hand "
                             "(CLI --sigma)")
        polarity, skew = movie_polarity(movie, sigma=float(max(found)), spacing=spacing, warn=warn)
    vals = {t: d[polarity] for t, d in per.items()}
    notes = [f"frame {t}: {v}" for t, v in vals.items() if isinstance(v, str)]
    ok = {t: v for t, v in vals.items() if not isinstance(v, str)}
    if not ok:
        raise InputError(f"no {polarity} spots in frames {', '.join(map(str, frames))}: set the object size by hand "
                         "(CLI --sigma)")
    to_finest = 1.0 if spacing is None else float(spacing[-1]) / float(np.min(np.asarray(spacing, float)[-nd:]))
    per_frame = [v * to_finest for v in ok.values()]
    return SpotSize(sigma=float(np.median(per_frame)), polarity=polarity, skewness=skew, frames=list(ok),
                    per_frame=per_frame, notes=notes)
