"""Dock widget: learned closures of active-suspension kinetic theory (:mod:`napari_dynfit.models.closure`).

*Simulate* runs the kinetic theory (or *Open* reads a kinetic run / a Well ``active_matter`` file); *Train*
fits a learned closure (a priori when the data carry the fourth moment, then a posteriori by unrolled
time stepping), drawing the loss live, and *Stop* keeps the closure trained so far; *Compare* runs the
moment model with the learned and the Bingham closure from the chosen frame and shows, side by side,
the order parameter and director field of the data and of the coarse runs, the closure error map and the
velocity spectra. All computation is in the core; this module only wires it to napari.
"""

from __future__ import annotations

import numpy as np
from qtpy import QtWidgets as qw

from .. import closure_defaults as D
from ..geometry import bundle_geometry
from ..report import torch_threads
from ._contract import LayerOwner, dock_owner
from ._jobs import StepJob
from ._layers import data_range, show_layer

#: the closure error map's layer: per-pixel ``|q4_closure - q4| / c`` (dimensionless; the names of the value layers
#: carry the quantity and its unit because napari's colour bar has no title)
CLOSURE_ERROR = "closure error |q4 - q4_true| / c (1)"


def order_layer(label: str) -> str:
    """Name of the order-parameter image of run ``label`` (``"data"``, ``"Bingham"``...): the scalar order
    parameter ``s`` of the second moment (0..1, dimensionless), ``"order parameter s (1) [data]"``."""
    return f"order parameter s (1) [{label}]"


def _order_and_director(bundle):
    import torch

    from ..models.closure.moments import director

    s, n = director(torch.as_tensor(bundle["concentration"]), torch.as_tensor(bundle["D"]))
    return s.numpy(), n.numpy()


def _director_vectors(s, n, spacing, stride):
    """Napari Vectors data ``(k, 2, 3)`` (t, y, x) of the director at every ``stride``-th point, length ~ s."""
    t, ny, nx = s.shape
    tt, yy, xx = np.meshgrid(np.arange(t), np.arange(0, ny, stride), np.arange(0, nx, stride), indexing="ij")
    sel = (tt, yy, xx)
    length = 0.9 * stride * spacing * s[sel]
    pos = np.stack([tt, yy * spacing, xx * spacing], -1).reshape(-1, 3).astype(float)
    vec = np.concatenate([np.zeros_like(length)[..., None], (n[sel] * length[..., None])], -1).reshape(-1, 3)
    return np.stack([pos - vec / 2, vec], 1)


class ClosureWidget(LayerOwner, qw.QWidget):
    """Simulate, train and compare moment closures."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.bundle = None
        self.closure = None
        self.history = []
        form = qw.QFormLayout(self)
        self.path = qw.QLineEdit(placeholderText="kinetic run (.npz/.zarr) or Well active_matter file (.hdf5)")
        open_btn = qw.QPushButton("Open...")
        open_btn.clicked.connect(self._choose)
        row = qw.QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(open_btn)
        form.addRow("data", row)
        self.alpha = qw.QDoubleSpinBox(minimum=-20.0, maximum=20.0, value=D.ALPHA, decimals=2)
        form.addRow("alpha (simulate)", self.alpha)
        self.zeta = qw.QDoubleSpinBox(minimum=0.0, maximum=20.0, value=D.ZETA, decimals=2)
        form.addRow("zeta (simulate)", self.zeta)
        self.size = qw.QSpinBox(minimum=8, maximum=256, value=D.GRID, singleStep=8)
        form.addRow("grid (simulate)", self.size)
        # shorter than the CLI's and the benchmark's 30 (interactive); its frames 40-80 are past the transient
        self.t_end = qw.QDoubleSpinBox(minimum=0.5, maximum=1000.0, value=20.0)
        form.addRow("duration (simulate)", self.t_end)
        self.epochs = qw.QSpinBox(minimum=1, maximum=100000, value=D.A_PRIORI_EPOCHS)
        form.addRow("a-priori epochs", self.epochs)
        self.post_epochs = qw.QSpinBox(minimum=0, maximum=10000, value=D.A_POSTERIORI_EPOCHS)
        form.addRow("a-posteriori epochs", self.post_epochs)
        self.frame = qw.QSpinBox(minimum=0, maximum=100000, value=round(D.SETTLE_T / D.SAVE_EVERY))
        form.addRow("compare from frame", self.frame)
        self.horizon = qw.QSpinBox(minimum=2, maximum=10000, value=20)
        form.addRow("compare frames", self.horizon)
        buttons = qw.QHBoxLayout()
        self.sim_btn = qw.QPushButton("Simulate")
        self.train_btn = qw.QPushButton("Train")
        self.compare_btn = qw.QPushButton("Compare")
        self.stop_btn = qw.QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        for b in (self.sim_btn, self.train_btn, self.compare_btn, self.stop_btn):
            buttons.addWidget(b)
        form.addRow(buttons)
        self.status = qw.QLabel("")
        self.status.setWordWrap(True)
        form.addRow(self.status)
        from ._plots import make_canvas

        self._fig, self._canvas = make_canvas()
        form.addRow(self._canvas)
        self._job = StepJob([self.sim_btn, self.train_btn, self.compare_btn], self.stop_btn, self.status,
                            viewer=self.viewer)
        self.sim_btn.clicked.connect(lambda: self.simulate())
        self.train_btn.clicked.connect(lambda: self.train())
        self.compare_btn.clicked.connect(lambda: self.compare())
        # the panel's projects record the layers this widget makes as its own; the layers an opened project
        # records as this widget's are its own again, so a re-run updates them instead of adding "name [1]"
        from ._project_io import claim_recorded

        dock_owner(self)
        claim_recorded([self], self.viewer.layers)

    # --- actions --------------------------------------------------------------------------
    def _choose(self):
        path, _ = qw.QFileDialog.getOpenFileName(self, "Kinetic run or Well file", "",
                                              "Fields (*.npz *.zarr *.hdf5 *.h5)")
        if path:
            self.path.setText(path)
            self.bundle = None

    def _load(self):
        if self.bundle is None:
            from ..commands.closure import load_moments

            self.bundle = load_moments(self.path.text().strip())
        return self.bundle

    def simulate(self, *, block: bool = False):
        from ..models.closure.kinetic import SuspensionParams, simulate_kinetic

        params = SuspensionParams(alpha=self.alpha.value(), zeta=self.zeta.value())
        n, t_end = self.size.value(), self.t_end.value()

        def compute():
            with torch_threads(1):
                return simulate_kinetic(params, t_end=t_end, save_every=D.SAVE_EVERY, n=n, n_theta=D.ANGLES,
                                        amplitude=D.AMPLITUDE)

        self._job.start(compute, on_return=self._simulated, busy="simulating the kinetic theory", block=block)

    def _simulated(self, bundle):
        self.bundle = bundle
        self.path.setText("")
        self._show_data(bundle, "kinetic")
        from ..models.closure.kinetic import positivity_summary, positivity_warning

        k = bundle.attrs["kinetic"]
        warning = positivity_warning(positivity_summary(bundle), k["n"], k["n_theta"], k["dt"])
        self.status.setText(f"kinetic run: {len(bundle.coords['t'])} frames on {bundle.shape[1]}^2"
                            + (f"; {warning}" if warning else ""))

    def train(self, *, block: bool = False):
        from ..models.closure.learned import LearnedClosure
        from ..models.closure.train import closure_samples, fit_a_posteriori, fit_a_priori

        epochs, post, t_start = self.epochs.value(), self.post_epochs.value(), min(self.frame.value(), 10**9)
        net = self.closure or LearnedClosure()
        self.closure = net  # Stop keeps what was trained so far
        self.history = []

        def compute():
            bundle = self._load()
            t0 = min(t_start, len(bundle.coords["t"]) - 3)
            if "S_cos4" in bundle.fields:
                import torch

                samples = closure_samples([bundle], t_start=t0)
                chunk = max(1, epochs // 20)
                opt = torch.optim.Adam(net.parameters(), lr=D.A_PRIORI_LR)  # one optimizer: chunks = one run
                for done in range(0, epochs, chunk):
                    with torch_threads(1):
                        hist = fit_a_priori(net, samples, epochs=min(chunk, epochs - done), optimizer=opt)
                    yield ("a priori", hist)
            if post:
                with torch_threads(1):
                    hist = fit_a_posteriori(net, [bundle], epochs=post, t_start=t0)
                yield ("a posteriori", hist)
            return net

        self._job.start(compute, on_yield=self._loss, on_return=self._trained, busy="training the closure",
                        block=block)

    def _loss(self, item):
        stage, hist = item
        self.history.extend(hist)
        ax = self._axes()
        ax.semilogy(self.history, color="C0")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(f"closure training ({stage})")
        self._draw()

    def _trained(self, net):
        self.closure = net
        self.status.setText(f"closure trained ({len(self.history)} epochs, last loss {self.history[-1]:.3g})"
                            if self.history else "closure trained")

    def compare(self, *, block: bool = False):
        from ..models.closure.moments import bingham_closure
        from ..models.closure.train import closure_error_map, flow_statistics, simulate_moments, suspension_params

        closure = self.closure
        frame, frames = self.frame.value(), self.horizon.value()

        def compute():
            bundle = self._load()
            t0 = min(frame, len(bundle.coords["t"]) - frames - 1)
            if t0 < 0:
                from ..errors import InputError

                raise InputError(f"the data have {len(bundle.coords['t'])} frames; compare needs more than {frames}")
            with torch_threads(1):
                runs = {"Bingham": simulate_moments(bundle, bingham_closure, t_start=t0, frames=frames)}
                if closure is not None:
                    runs["learned"] = simulate_moments(bundle, closure, t_start=t0, frames=frames)
            length = suspension_params(bundle).length
            window = bundle.time_slice(t0, t0 + frames + 1)
            stats = {"data": flow_statistics(window["concentration"], window["D"], window["velocity"], length)
                     if "velocity" in window.fields else None}
            for name, run in runs.items():
                stats[name] = flow_statistics(run["concentration"], run["D"], run["velocity"], length)
            err = closure_error_map(closure, bundle, t0) if closure is not None and "S_cos4" in bundle.fields else None
            return window, runs, stats, err

        self._job.start(compute, on_return=self._compared, busy="running the moment model", block=block)

    def _compared(self, result):
        window, runs, stats, err = result
        width = window.shape[-1] * window.spacing[-1]
        self._show_data(window, "data", offset=0.0)
        for i, (name, run) in enumerate(runs.items(), start=1):
            self._show_data(run, name, offset=1.1 * width * i)
        if err is not None:
            # the data's geometry, placed below the data's panel (not on top of it)
            geo = {k: tuple(v)[-err.ndim:] for k, v in bundle_geometry(window).items()}
            geo["translate"] = (*geo["translate"][:-2], geo["translate"][-2] + 1.1 * window.shape[-2] * window.spacing[-2],
                                geo["translate"][-1])
            self._replace_image(CLOSURE_ERROR, err, geo, colormap="magma")
        ax = self._axes()
        for name, st in stats.items():
            if st is not None:
                ax.loglog(st["k"][1:], st["spectrum"][1:], label=f"{name}: <|u|> {st['mean_speed']:.3g}, "
                                                            f"<s> {st['order']:.3g}")
        ax.set_xlabel("wavenumber k")
        ax.set_ylabel("E(k)")
        ax.legend()
        self._draw()
        self.status.setText("side by side: data | " + " | ".join(runs))

    # --- plot and layers -----------------------------------------------------------------
    def _axes(self):
        self._fig.clear()
        return self._fig.add_subplot()

    def _draw(self):
        from ._plots import tidy

        tidy(self._fig)
        self._canvas.draw_idle()

    # --- layers ---------------------------------------------------------------------------
    def _replace_image(self, name, data, geo: dict, colormap="viridis"):
        """Show ``data`` in the image layer ``name``, in place on a re-run (its place in the layer list and the
        user's colours kept); ``geo``: its scale, translate, units and axis labels. The grid (a new run: another
        size, time step or panel offset) and the contrast (the new values' range, as a new layer's) follow the
        data."""
        return show_layer(self.viewer, "image", data, name, owner=self, **geo, colormap=colormap,
                          contrast_limits=data_range(data), refresh=("scale", "translate", "contrast_limits"))

    def _show_data(self, bundle, label, offset: float = 0.0):
        """Order parameter (image) and director (vectors) of ``bundle`` on its time axis and grid (the plugin's
        geometry convention: frames with ``scale[0]`` = the bundle's time step), ``offset`` along x (side by side)."""
        s, n = _order_and_director(bundle)
        h = bundle.spacing[-1]
        geo = bundle_geometry(bundle)
        geo["translate"] = (*geo["translate"][:-1], geo["translate"][-1] + offset)
        self._replace_image(order_layer(label), s, geo, colormap="viridis")
        vec = _director_vectors(s, n, h, max(1, s.shape[-1] // 16))  # (frame, y, x): frames, world lengths
        # time in frames like the image, space in world lengths from the first grid point (the image's translate);
        # in place on a re-run, the grid and the width (a share of the grid spacing) following the new run
        vgeo = {**geo, "scale": (geo["scale"][0], 1.0, 1.0)}
        show_layer(self.viewer, "vectors", vec, f"director ({label})", owner=self, edge_width=0.05 * h * 4,
                   edge_color="white", vector_style="line", **vgeo, refresh=("edge_width", "scale", "translate"))
