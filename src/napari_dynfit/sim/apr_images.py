"""Test images for APR construction: sparse spots and dense cells, 2D or 3D, uint16, from a seed.

Used by the construction tests and ``napari_dynfit.bench.apr_construct`` (ours vs pyapr on the same images).
"""

from __future__ import annotations

import numpy as np


def spots_image(shape, n: int = 25, seed: int = 0, background: float = 30.0) -> np.ndarray:
    """Sparse Gaussian spots (sigma 1.5-4 px, amplitude 200-2000) on Poisson background ``background``; uint16."""
    rng = np.random.default_rng(seed)
    img = rng.poisson(background, size=shape).astype(np.float32)
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij", sparse=True)
    for _ in range(n):
        c = [rng.uniform(0, s) for s in shape]
        r2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        img += rng.uniform(200, 2000) * np.exp(-r2 / (2 * rng.uniform(1.5, 4) ** 2))
    return np.clip(img, 0, 65535).astype(np.uint16)


def cells_image(shape, seed: int = 0, n_cells: int = 60) -> np.ndarray:
    """Dense, touching cells (Voronoi tiles of brightness 300-1500, dim 1-px borders, blurred 1.5 px, Gaussian
    noise of SD 15): a confluent monolayer; uint16."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, bool)
    seeds[tuple(rng.integers(0, s, n_cells) for s in shape)] = True
    _, idx = ndimage.distance_transform_edt(~seeds, return_indices=True)
    label = np.ravel_multi_index(tuple(idx), shape)
    bright = rng.uniform(300, 1500, label.max() + 1)[label]
    edge = ndimage.morphological_gradient(label, size=3) > 0
    img = ndimage.gaussian_filter(np.where(edge, 80.0, bright), 1.5) + rng.normal(0, 15, shape)
    return np.clip(img, 0, 65535).astype(np.uint16)
