"""Plots inside napari: embedded matplotlib canvases, and the mean squared displacement of tracks.

Every plot of the DynFit steps is a matplotlib ``Figure`` on a Qt canvas, kept as the widget's
``_figure`` attribute, so the panel's "Export plots" saves each as PNG and SVG. This module adds
the MSD plot of the tracking step (:class:`MsdPlot`): the MSD of the selected Tracks layer in
physical units (layer ``scale``, frame interval from the data defaults), with the active Brownian
particle theory overlaid when the layer's movie carries its simulation parameters (the samples do).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AXES = ("z", "y", "x")


def make_canvas(figsize=(4.5, 3.0), min_height: int = 220):
    """A matplotlib ``Figure`` and its Qt canvas (``FigureCanvasQTAgg``)."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumHeight(min_height)
    return fig, canvas


def tracks_layer_table(layer, *, physical: bool = True) -> pd.DataFrame:
    """Tracks table ``track_id, frame, [z,] y, x`` (+ ``parent_id``) from a napari Tracks layer.

    Coordinates are multiplied by the layer's spatial ``scale`` when ``physical`` (pixels -> um).
    """
    from ..errors import InputError

    data = np.asarray(layer.data, dtype=float)
    if data.ndim != 2 or data.shape[1] not in (4, 5) or len(data) == 0:
        raise InputError(f"layer '{layer.name}' is not a non-empty Tracks layer (track_id, t, [z,] y, x)")
    cols = list(AXES[-(data.shape[1] - 2):])
    df = pd.DataFrame(data[:, 2:], columns=cols)
    if physical:
        df[cols] *= np.asarray(layer.scale, float)[-len(cols):]
    df.insert(0, "frame", np.round(data[:, 1]).astype(np.int64))
    df.insert(0, "track_id", data[:, 0].astype(np.int64))
    parents = {int(k): int(v[0]) for k, v in (layer.graph or {}).items() if len(v)}
    df["parent_id"] = df["track_id"].map(parents).fillna(-1).astype(np.int64)
    return df


def track_msd(tracks: pd.DataFrame, *, max_lag: int | None = None) -> pd.DataFrame:
    """Time- and ensemble-averaged mean squared displacement of a tracks table.

    Parameters
    ----------
    tracks : DataFrame
        ``track_id, frame, [z,] y, x`` (units of the coordinates, e.g. um).
    max_lag : int, optional
        Largest lag in frames (default a quarter of the frames, at least 1).

    Returns
    -------
    DataFrame
        ``lag`` (frames), ``msd`` (coordinate units squared), ``n`` (displacements averaged); only
        displacements between detections of the same track exactly ``lag`` frames apart count.
    """
    cols = [c for c in AXES if c in tracks.columns]
    df = tracks[["track_id", "frame", *cols]]
    n_frames = int(df["frame"].max() - df["frame"].min() + 1)
    max_lag = max(1, n_frames // 4) if max_lag is None else int(max_lag)
    rows = []
    for lag in range(1, max_lag + 1):
        later = df.assign(frame=df["frame"] - lag)
        pair = df.merge(later, on=["track_id", "frame"], suffixes=("", "_2"))
        if len(pair) == 0:
            continue
        sq = sum((pair[f"{c}_2"].to_numpy() - pair[c].to_numpy()) ** 2 for c in cols)
        rows.append((lag, float(np.mean(sq)), len(pair)))
    return pd.DataFrame(rows, columns=["lag", "msd", "n"])


def abp_theory(layer_or_meta):
    """``t -> MSD`` of the simulated active Brownian particles, or ``None`` when the metadata lacks them."""
    meta = layer_or_meta if isinstance(layer_or_meta, dict) else (getattr(layer_or_meta, "metadata", None) or {})
    sim = (meta.get("params") or {}).get("simulation") or {}
    if not all(k in sim for k in ("v0", "Dr")):
        return None
    from ..sim import abp_msd

    return lambda t: abp_msd(t, v0=sim["v0"], Dr=sim["Dr"], Dt=sim.get("Dt", 0.0), dim=int(sim.get("dim", 2)))


def plot_msd(fig, msd: pd.DataFrame, *, dt: float = 1.0, units: str = "", theory=None, label: str = "tracks"):
    """Draw the MSD (log-log) on ``fig`` (cleared); ``theory(t)`` is drawn dashed when given."""
    fig.clear()
    ax = fig.add_subplot(1, 1, 1)
    t = msd["lag"].to_numpy() * dt
    ax.loglog(t, msd["msd"].to_numpy(), "o-", ms=3, label=label)
    if theory is not None and len(t):
        ax.loglog(t, theory(t), "k--", lw=1, label="theory (simulation)")
    ax.set_xlabel("lag time" + (" (frames)" if dt == 1.0 else ""))
    ax.set_ylabel(f"MSD{f' ({units}²)' if units else ''}")
    ax.set_title("mean squared displacement", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return ax


class MsdPlot:
    """MSD of a Tracks layer on an embedded canvas (``native``); the figure is ``_figure``."""

    def __init__(self):
        from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

        self.native = QWidget()
        layout = QVBoxLayout(self.native)
        layout.setContentsMargins(0, 0, 0, 0)
        self._title = QLabel("MSD: select a Tracks layer")
        layout.addWidget(self._title)
        self._figure, self._canvas = make_canvas()
        layout.addWidget(self._canvas)
        self.msd = None

    def update(self, layer, *, dt: float | None = None, theory=None) -> pd.DataFrame:
        """Recompute and redraw the MSD of the Tracks ``layer`` (``dt``: frame interval)."""
        self.msd = track_msd(tracks_layer_table(layer))
        plot_msd(self._figure, self.msd, dt=dt or 1.0, theory=theory, label=layer.name)
        self._canvas.draw_idle()
        self._title.setText(f"MSD of '{layer.name}' ({len(self.msd)} lags)")
        return self.msd
