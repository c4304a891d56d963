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

#: widest a plot asks to be (px): it fits the panel's dock (``DynFitPanel.DOCK_WIDTH``) with margins
CANVAS_WIDTH = 400


def save_figure(fig, path, fmt: str | None = None):
    """Write ``fig`` to ``path`` (PNG, SVG or PDF by suffix or ``fmt``) through a temporary file and a rename,
    so a crash never leaves half a file; returns the path."""
    from pathlib import Path

    from .._io import atomic_path

    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight", dpi=150)
    return path


def make_canvas(figsize=(4.0, 3.0), min_height: int = 220):
    """A matplotlib ``Figure`` and its Qt canvas (``FigureCanvasQTAgg``) sized for the dock.

    The canvas asks for at most :data:`CANVAS_WIDTH` px and shrinks with the dock; the figure uses
    matplotlib's constrained layout (labels and legends never overlap). A small "Save" button in the
    canvas' top-right corner writes the plot as PNG/SVG (:func:`save_figure`).
    """
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure
    from qtpy.QtCore import QSize
    from qtpy.QtWidgets import QFileDialog, QSizePolicy, QToolButton

    class _Canvas(FigureCanvasQTAgg):
        def sizeHint(self):  # noqa: N802 (Qt)
            hint = super().sizeHint()
            return QSize(min(hint.width(), CANVAS_WIDTH), hint.height())

        def minimumSizeHint(self):  # noqa: N802 (Qt)
            return QSize(120, min_height)

        def resizeEvent(self, event):  # noqa: N802 (Qt)
            super().resizeEvent(event)
            self.save_button.move(self.width() - self.save_button.width() - 2, 2)

        def ask_save(self):
            path, _ = QFileDialog.getSaveFileName(self, "Save plot", "plot.png", "PNG (*.png);;SVG (*.svg);;PDF (*.pdf)")
            if path:
                save_figure(self.figure, path)

    fig = Figure(figsize=figsize, layout="constrained")
    canvas = _Canvas(fig)
    canvas.setMinimumHeight(min_height)
    canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    canvas.setFixedHeight(max(min_height, int(figsize[1] * fig.dpi)))
    btn = QToolButton(canvas)
    btn.setText("Save")
    btn.setToolTip("save this plot as PNG, SVG or PDF")
    btn.clicked.connect(canvas.ask_save)
    btn.adjustSize()
    canvas.save_button = btn
    return fig, canvas


def tidy(fig, *, nbins: int = 4, fontsize: float = 7.0, legend_below: bool = True):
    """Make ``fig`` readable at dock width: at most ``nbins`` ticks per linear axis, small tick labels,
    legends below their axes (never over the data)."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    for ax in fig.axes:
        if not ax.axison:
            continue
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_major_locator(LogLocator(numticks=nbins + 1))
            else:
                axis.set_major_locator(MaxNLocator(nbins=nbins))
                fmt = axis.get_major_formatter()
                if hasattr(fmt, "set_powerlimits"):  # 1e-4 as an offset, not as long tick labels
                    fmt.set_powerlimits((-2, 3))
                    fmt.set_useMathText(True)
        ax.tick_params(labelsize=fontsize)
        ax.xaxis.label.set_fontsize(fontsize + 1)
        ax.yaxis.label.set_fontsize(fontsize + 1)
        ax.title.set_fontsize(fontsize + 2)
        leg = ax.get_legend()
        if leg is not None and legend_below:
            handles, labels = ax.get_legend_handles_labels()
            leg.remove()
            ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.28), fontsize=fontsize - 1,
                      ncol=min(3, max(1, len(labels))), frameon=False, handlelength=1.5, columnspacing=1.0)
    return fig


def plot_track_analysis(fig, fit, vacf: pd.DataFrame, *, units: str = "", time_units: str = "",
                        van_hove: pd.DataFrame | None = None):
    """MSD with its power-law fit (``fit``: :class:`napari_dynfit.track.MsdFit`; when its composition check flags
    the exponent, each mobility population's MSD and fit too) and the normalised velocity
    autocorrelation ``vacf`` side by side on ``fig`` (cleared); with ``van_hove`` (a
    :func:`napari_dynfit.track.van_hove` table) a third panel: the displacement density and the Gaussian of the
    same variance (Brownian motion)."""
    fig.clear()
    n = 2 if van_hove is None else 3
    ax = fig.add_subplot(1, n, 1)
    t, m = fit.table["t"].to_numpy(), fit.table["msd"].to_numpy()
    ax.loglog(t, m, "o", ms=3, label="tracks (drift removed)")
    flagged = not getattr(fit, "composition_ok", True)
    ax.loglog(t, fit.prefactor * t ** fit.exponent, "k--", lw=1,
              label=f"fit: exponent {fit.exponent:.2f}" + (" (not identified: mix)" if flagged else ""))
    for k, pop in enumerate(getattr(fit, "populations", ())):  # the flagged ensemble's mobility populations
        tp, mp = pop.table["t"].to_numpy(), pop.table["msd"].to_numpy()
        line, = ax.loglog(tp, mp, ".", ms=2, alpha=0.6)
        ax.loglog(tp, pop.prefactor * tp ** pop.exponent, "-", lw=1, color=line.get_color(),
                  label=f"population {k + 1} ({pop.n_tracks} tracks): {pop.exponent:.2f}")
    ax.set_xlabel(f"lag time{f' ({time_units})' if time_units else ''}")
    ax.set_ylabel(f"MSD{f' ({units}²)' if units else ''}")
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, n, 2)
    ax2.plot(vacf["t"].to_numpy(), vacf["vacf"].to_numpy(), "o-", ms=3)
    ax2.axhline(0, color="k", lw=0.5)
    ax2.set_xlabel(f"lag time{f' ({time_units})' if time_units else ''}")
    ax2.set_ylabel("VACF (normalised)")
    if van_hove is None:
        tidy(fig)
        return ax, ax2
    ax3 = fig.add_subplot(1, n, 3)
    dr, p = van_hove["dr"].to_numpy(), van_hove["all"].to_numpy()
    var = float((dr ** 2 * p).sum() * (dr[1] - dr[0])) if len(dr) > 1 else 0.0
    ax3.semilogy(dr, np.where(p > 0, p, np.nan), "o", ms=3, label=f"lag {van_hove.attrs.get('lag', 1)} frame(s)")
    if var > 0:
        ax3.semilogy(dr, np.exp(-dr ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var), "k--", lw=1, label="Gaussian")
    ax3.set_xlabel(f"displacement{f' ({units})' if units else ''}")
    ax3.set_ylabel("van Hove density")
    ax3.legend(fontsize=7)
    tidy(fig)
    return ax, ax2, ax3


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
    tidy(fig)
    return ax


class MsdPlot:
    """MSD of a Tracks layer on an embedded canvas (``native``); the figure is ``_figure``.

    The MSD is computed in the plot's job (:class:`._jobs.StepJob`: a worker thread, progress in the title and
    napari's activity dock; a newer update drops an older one's result): a layer of hundreds of thousands of
    points takes seconds, which the GUI thread must not wait for.
    """

    def __init__(self):
        from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

        from ._jobs import StepJob

        self.native = QWidget()
        layout = QVBoxLayout(self.native)
        layout.setContentsMargins(0, 0, 0, 0)
        self._title = QLabel("MSD: select a Tracks layer")
        layout.addWidget(self._title)
        self._figure, self._canvas = make_canvas()
        layout.addWidget(self._canvas)
        self.msd = None
        self.job = StepJob((), None, self._title)

    def update(self, layer, *, dt: float | None = None, theory=None, block: bool = False) -> pd.DataFrame | None:
        """Recompute and redraw the MSD of the Tracks ``layer`` (``dt``: frame interval) in the plot's job;
        with ``block`` in the calling thread, returning the MSD table (else ``None``: it arrives in :attr:`msd`).
        Immobile tracks are left out and counted, by the rule of :func:`~napari_dynfit.track.fit_msd` (the MSD fit
        of the Analyse button), unless every track is immobile."""
        from ..track import classify_immobile, msd, tracks_from_napari

        def compute():  # every displacement counts once; lags up to a quarter of the frames
            tracks = tracks_from_napari(layer)
            cls = classify_immobile(tracks)
            still = cls.index[cls["immobile"].to_numpy()]
            left_out = 0 < len(still) < len(cls)
            if left_out:
                tracks = tracks[~tracks["track_id"].isin(still)]
            return msd(tracks, max_lag=None, weights="pairs"), (len(still) if left_out else 0), len(cls)

        def show(result):
            table, n_still, n_tracks = result
            self.msd = table
            plot_msd(self._figure, table, dt=dt or 1.0, theory=theory, label=layer.name)
            self._canvas.draw_idle()
            note = f"; {n_still} of {n_tracks} tracks immobile, left out" if n_still else ""
            self._title.setText(f"MSD of '{layer.name}' ({len(table)} lags{note})")

        self.msd = None
        self.job.start(compute, on_return=show, busy=f"MSD of '{layer.name}'", block=block)
        return self.msd if block else None
