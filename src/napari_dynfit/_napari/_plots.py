"""Plots inside napari: embedded matplotlib canvases, and the mean squared displacement of tracks.

Every plot of the DynFit steps is a matplotlib ``Figure`` on a Qt canvas, kept as the widget's
``_figure`` attribute, so the panel's "Export plots" saves each as PNG and SVG. This module adds
the MSD plot of the tracking step (:class:`MsdPlot`): the MSD of the selected Tracks layer in
physical units (layer ``scale``, frame interval from the data defaults), with the active Brownian
particle theory overlaid when the layer's movie carries its simulation parameters (the samples do).
"""

from __future__ import annotations

import pandas as pd


def make_canvas(figsize=(4.5, 3.0), min_height: int = 220):
    """A matplotlib ``Figure`` and its Qt canvas (``FigureCanvasQTAgg``)."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumHeight(min_height)
    return fig, canvas


def plot_track_analysis(fig, fit, vacf: pd.DataFrame, *, units: str = "", time_units: str = ""):
    """MSD with its power-law fit (``fit``: :class:`napari_dynfit.track.MsdFit`) and the normalised velocity
    autocorrelation ``vacf`` side by side on ``fig`` (cleared)."""
    fig.clear()
    ax = fig.add_subplot(1, 2, 1)
    t, m = fit.table["t"].to_numpy(), fit.table["msd"].to_numpy()
    ax.loglog(t, m, "o", ms=3, label="tracks (drift removed)")
    ax.loglog(t, fit.prefactor * t ** fit.exponent, "k--", lw=1, label=f"fit: exponent {fit.exponent:.2f}")
    ax.set_xlabel(f"lag time{f' ({time_units})' if time_units else ''}")
    ax.set_ylabel(f"MSD{f' ({units}²)' if units else ''}")
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.plot(vacf["t"].to_numpy(), vacf["vacf"].to_numpy(), "o-", ms=3)
    ax2.axhline(0, color="k", lw=0.5)
    ax2.set_xlabel(f"lag time{f' ({time_units})' if time_units else ''}")
    ax2.set_ylabel("velocity autocorrelation (normalised)")
    fig.tight_layout()
    return ax, ax2


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
        from ..track import msd, tracks_from_napari

        # every displacement counts once; lags up to a quarter of the frames
        self.msd = msd(tracks_from_napari(layer), max_lag=None, weights="pairs")
        plot_msd(self._figure, self.msd, dt=dt or 1.0, theory=theory, label=layer.name)
        self._canvas.draw_idle()
        self._title.setText(f"MSD of '{layer.name}' ({len(self.msd)} lags)")
        return self.msd
