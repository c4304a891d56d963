"""Figures of PDE discovery: stability paths and observed vs simulated fields (matplotlib, no Qt)."""

from __future__ import annotations

import numpy as np


def plot_stability_paths(model: dict, lhs=None, axes=None):
    """Selection probability of every library term against the penalty, one panel per equation.

    Parameters
    ----------
    model : dict
        Model JSON with ``"stability_path"`` (as written by :func:`~napari_dynfit.models.pde.discover_pde`).
    lhs : sequence of str, optional
        Equations to show (default all).
    axes : sequence of matplotlib Axes, optional
        Where to draw (one per equation); a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    paths = model.get("stability_path", {})
    names = list(lhs or paths)
    if axes is None:
        fig, axes = plt.subplots(1, max(1, len(names)), figsize=(5.5 * max(1, len(names)), 4), squeeze=False)
        axes = axes[0]
    else:
        fig = axes[0].figure
    for ax, eq in zip(axes, names):
        data = paths[eq]
        pen = np.asarray(data["penalties"])
        selected = set(model["equations"].get(eq, {}))
        for term, prob in data["probabilities"].items():
            style = dict(lw=2.2) if term in selected else dict(lw=0.8, ls="--", alpha=0.6)
            ax.semilogx(pen, prob, label=term, **style)
        ax.axhline(data.get("pi_th", 0.8), color="k", lw=0.8, ls=":")
        ax.set_xlabel("penalty (normalised threshold)")
        ax.set_ylabel("selection probability")
        ax.set_title(eq)
        ax.set_ylim(-0.02, 1.02)
        ax.invert_xaxis()
        ax.legend(fontsize=7, ncol=2)
    return fig


def plot_observed_vs_simulated(observed, simulated, field: str, frames=None, component: int | None = None):
    """Observed and simulated snapshots side by side (2D/3D: middle slice; 1D: curves over x).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    nt = simulated.shape[0]
    frames = list(frames) if frames is not None else sorted({0, nt // 2, nt - 1})
    start = int(simulated.attrs.get("start_frame", 0))

    def pick(arr):
        a = arr if component is None or arr.ndim == observed.ndim else arr[..., component]
        if a.ndim > observed.ndim:
            a = np.linalg.norm(a, axis=-1)
        while a.ndim > 2:
            a = a[a.shape[0] // 2]
        return a

    if observed.ndim == 1:
        fig, ax = plt.subplots(figsize=(7, 4))
        x = observed.coords["x"]
        for k, f in enumerate(frames):
            c = f"C{k}"
            ax.plot(x, observed[field][start + f], color=c, lw=1, label=f"observed t={simulated.coords['t'][f]:.3g}")
            ax.plot(x, simulated[field][f], color=c, lw=2, ls="--", label="model")
        ax.legend(fontsize=7)
        ax.set_xlabel("x")
        ax.set_ylabel(field)
        return fig
    fig, axes = plt.subplots(2, len(frames), figsize=(3.2 * len(frames), 6), squeeze=False)
    for k, f in enumerate(frames):
        o, s = pick(observed[field][start + f]), pick(simulated[field][f])
        lo, hi = min(o.min(), s.min()), max(o.max(), s.max())
        axes[0, k].imshow(o, vmin=lo, vmax=hi)
        axes[1, k].imshow(s, vmin=lo, vmax=hi)
        axes[0, k].set_title(f"observed t={simulated.coords['t'][f]:.3g}")
        axes[1, k].set_title("model")
        for a in axes[:, k]:
            a.set_xticks([])
            a.set_yticks([])
    return fig
