"""Dock widget "APR filter & segment": native filters and segmentation of an APR layer.

The source is an APR image layer (opened from ``.apr`` / ``.aprmovie`` or made by "Convert to
APR"); for movies the current frame is used. The filter (Gaussian, LoG, DoG, gradient magnitude) and
the segmentation (threshold on the filtered values, connected particles, size filter) run on the
particles. The live preview shows the current plane of the filtered values and of the objects;
"Run" adds a lazy Labels layer (reconstructed slice by slice from the particle labels) and a
Points layer of the object centroids with the object table as features.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox
from qtpy.QtCore import QTimer

from ..errors import InputError
from ._contract import StepContract
from ._geometry import layer_kwargs
from ._jobs import StepJob
from ._layers import show_layer

PREVIEW = "APR filter preview"
PREVIEW_MASK = "APR objects preview"
FILTER_CHOICES = ("none", "gaussian", "log", "dog", "gradient")
THRESHOLD_CHOICES = ("otsu", "li", "value", "graphcut")


def apr_image_of_layer(layer, frame: int = 0):
    """The in-memory :class:`~napari_dynfit.apr.AprImage` behind an APR image layer (movie: ``frame``)."""
    from ..apr import read_apr

    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if hasattr(data, "_frame"):  # LazyAprMovie
        data = data._frame(int(np.clip(frame, 0, len(data) - 1)))
    src = getattr(data, "_src", None)
    if src is None:
        raise InputError(f"layer '{layer.name}' is not an APR layer; open a .apr file or use 'Convert to APR'")
    if hasattr(src, "image"):
        return src.image
    return read_apr(src.header["path"])


def run_filter_segment(image, params: dict) -> dict:
    """Filter and segment an :class:`AprImage` on its particles (Qt-free; used by the widget).

    ``params``: ``filter`` (one of :data:`FILTER_CHOICES`), ``sigma``, ``size`` (0 = from sigma), ``device``,
    ``threshold`` (one of :data:`THRESHOLD_CHOICES`), ``value``, ``smooth`` (sigma, 0 = none), ``min_size``,
    ``polarity`` (``"auto"``, ``"bright"`` or ``"dark"``: dark objects flattened and inverted first,
    :func:`~napari_dynfit.apr.contrast.objects_bright`, as ``dynfit segment IN.apr --polarity``; default bright).
    Returns ``grid``, ``filtered`` (values per particle), ``labels``, ``table`` and ``polarity`` (the one used).
    """
    from ..apr.contrast import objects_bright
    from ..apr.filter_segment import filter_and_segment

    method = float(params["value"]) if params["threshold"] == "value" else params["threshold"]
    values, polarity = objects_bright(image.grid, np.asarray(image.parts), params.get("polarity", "bright"))
    out = filter_and_segment(image.grid, values, filter=params["filter"], sigma=params["sigma"],
                             size=params.get("size") or None, threshold=method, smooth_sigma=params["smooth"] or None,
                             min_size=params["min_size"], device=params["device"]).to_dict()
    return {**out, "polarity": polarity}


class AprFilterWidget(StepContract, Container):
    """Filter and segment an APR layer natively, with a live preview of the current plane."""

    INPUTS = (("apr", "_layer", ("Image",), "no APR layer yet: convert the movie on page 1 (or open a .apr file)"),)
    PARAMS = {"spot_sigma": "_sigma"}
    OUTPUTS = (("* objects", "Labels"), ("* objects centroids", "Points"), (PREVIEW, "Image"), (PREVIEW_MASK, "Labels"))

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._layer = ComboBox(label="APR layer", choices=self._apr_layers)
        self._filter = ComboBox(label="filter", choices=FILTER_CHOICES, value="gaussian")
        self._sigma = FloatSpinBox(value=1.0, min=0.3, max=3.0, step=0.1, label="sigma (px)")
        self._size = SpinBox(value=0, min=0, max=7, step=1, label="stencil size (0: auto)")
        self._device = ComboBox(label="device", choices=("cpu", "cuda", "auto"), value="cpu")
        self._threshold = ComboBox(label="threshold", choices=THRESHOLD_CHOICES, value="otsu")
        self._value = FloatSpinBox(value=0.0, min=-1e9, max=1e9, label="threshold value")
        self._smooth = FloatSpinBox(value=0.0, min=0.0, max=3.0, step=0.5, label="smooth before threshold")
        self._min_size = FloatSpinBox(value=4.0, min=0.0, max=1e9, label="min object size (px)")
        self._polarity = ComboBox(label="objects (polarity)", choices=("auto", "bright", "dark"), value="auto")
        self._preview = CheckBox(value=False, text="live preview on the current slice")
        self._stats = Label(value="")
        self._run = PushButton(text="Run")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self.extend([self._layer, self._polarity, self._filter, self._sigma, self._size, self._device,
                     self._threshold, self._value, self._smooth, self._min_size, self._preview, self._stats,
                     self._run, self._cancel])
        self._cached = (None, None)  # (key, result): replaced as one, the jobs run in worker threads
        self._job = StepJob(self._run, self._cancel, self._stats, viewer=napari_viewer)
        self._preview_job = StepJob((), None, self._stats, viewer=napari_viewer, activity=False)
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.update_preview)
        for w in (self._layer, self._polarity, self._filter, self._sigma, self._size, self._device, self._threshold,
                  self._value, self._smooth, self._min_size, self._preview):
            w.changed.connect(self._schedule_preview)
        self._run.changed.connect(lambda: self.run())
        # follow the viewer: layer list changes refresh the choices, moving the slider refreshes the preview
        layer_events = napari_viewer.layers.events
        self._viewer_events = [(getattr(layer_events, n), self._layer.reset_choices) for n in ("inserted", "removed")]
        self._viewer_events.append((napari_viewer.dims.events.current_step, self._schedule_preview))
        for event, callback in self._viewer_events:
            event.connect(callback)
        self.native.destroyed.connect(self._unfollow_viewer)

    def _unfollow_viewer(self, *_):
        self._timer.stop()
        self._preview_job.close()
        while self._viewer_events:
            event, callback = self._viewer_events.pop()
            event.disconnect(callback)

    def _apr_layers(self, _widget=None):
        from napari.layers import Image

        out = []
        for lay in self._viewer.layers:
            data = lay.data[0] if isinstance(lay, Image) and lay.multiscale else getattr(lay, "data", None)
            if isinstance(lay, Image) and (hasattr(data, "_src") or hasattr(data, "_frame")):
                out.append((lay.name, lay))
        return out

    def params(self) -> dict:
        """The parameters set in the widget (see :func:`run_filter_segment`)."""
        return {"filter": self._filter.value, "sigma": self._sigma.value, "size": self._size.value,
                "device": self._device.value, "threshold": self._threshold.value, "value": self._value.value,
                "smooth": self._smooth.value, "min_size": self._min_size.value, "polarity": self._polarity.value}

    def _position(self, layer):
        """``(frame, z)`` of the current viewer position in the layer's data."""
        point = np.round(layer.world_to_data(self._viewer.dims.point)).astype(int)
        spatial = 3 if layer.ndim - (1 if self._is_movie(layer) else 0) == 3 else 2
        lead = list(point[: layer.ndim - 2]) if len(point) >= layer.ndim else [0] * (layer.ndim - 2)
        frame = int(lead[0]) if self._is_movie(layer) else 0
        z = int(lead[-1]) if spatial == 3 else 0
        return frame, z

    @staticmethod
    def _is_movie(layer) -> bool:
        data = layer.data[0] if layer.multiscale else layer.data
        return hasattr(data, "_frame")

    @property
    def _cache(self):
        """The last filter & segment result (``None`` before the first run)."""
        return self._cached[1]

    def _compute(self, layer, frame, params):
        """Filter and segment ``frame`` of ``layer`` (runs in a worker; the last result is reused)."""
        key = (layer.name, frame, tuple(sorted(params.items())))
        cached_key, cached = self._cached
        if key != cached_key:
            cached = run_filter_segment(apr_image_of_layer(layer, frame), params)
            self._cached = (key, cached)
        return cached

    def _schedule_preview(self, *_):
        if self._preview.value:
            self._timer.start()

    # ------------------------------------------------------------------------------------------
    def update_preview(self, sync: bool = False) -> None:
        """Show the current plane of the filtered values and of the objects (computed in a worker unless ``sync``)."""
        layer = self._layer.value
        if layer is None:
            return
        frame, z = self._position(layer)
        params = self.params()

        def compute():
            res = self._compute(layer, frame, params)
            grid = res["grid"]
            zz = int(np.clip(z, 0, grid.shape[0] - 1))
            return res, grid.plane(res["filtered"], zz), grid.plane(res["labels"], zz)

        self._preview_job.start(compute, on_return=lambda out: self._show_preview(layer, *out), busy="preview...",
                                block=sync)

    def _show_preview(self, layer, res, img, lab) -> None:
        geo = layer_kwargs(layer, axes=2, time=False)  # one plane of the layer, in its world
        # the plane's grid follows the layer previewed (another selected layer: another pixel size)
        show_layer(self._viewer, "image", img, PREVIEW, owner=self, **geo, colormap="magma",
                   refresh=("scale", "translate"))
        show_layer(self._viewer, "labels", lab, PREVIEW_MASK, owner=self, **geo, opacity=0.4,
                   refresh=("scale", "translate"))
        self._stats.value = self._summary(res)

    @staticmethod
    def _summary(res) -> str:
        thr = res["threshold"]
        pol = f" ({res['polarity']} objects)" if res.get("polarity") else ""
        return (f"{len(res['table'])} objects{pol}" + (f", threshold {thr:.4g}" if thr is not None else "")
                + f"; {res['grid'].n_particles} particles")

    def run(self, sync: bool = False) -> None:
        """Filter and segment the current frame in the widget's job (unless ``sync``); add lazy Labels and Points."""
        from ..apr.lazy import LazyAprArray

        layer = self._layer.value
        if layer is None:
            self._stats.value = "select an APR layer first"
            return
        frame, _ = self._position(layer)
        params = self.params()

        def compute():
            image = apr_image_of_layer(layer, frame)
            res = self._compute(layer, frame, params)
            from ..apr.filter_segment import label_particles

            return image, res, LazyAprArray(image.with_values(label_particles(res["labels"])))

        self._job.start(compute, on_return=lambda out: self._show_result(layer, *out), busy="filter & segment...",
                        block=sync)

    def _show_result(self, layer, image, res, lazy) -> None:
        geo = layer_kwargs(layer, axes=image.ndim, time=False)  # the frame's space, in the layer's world
        name = f"{layer.name} objects"
        table = res["table"]
        cols = [c for c in ("z", "y", "x") if c in table.columns]
        show_layer(self._viewer, "labels", lazy, name, owner=self, **geo)  # a re-run updates its layers
        points = show_layer(self._viewer, "points", table[cols].to_numpy(), f"{name} centroids", owner=self, **geo,
                            features=table, size=3, face_color="cyan")
        self._stats.value = self._summary(res)
        self.made.emit(points)
