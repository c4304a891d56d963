"""Dock widget "Convert to APR": parameters, live preview on the current slice, stats, conversion.

The preview converts only what is on screen (the current plane; for 3D images a slab of planes
around it, so that the 3D gradient is close to that of the whole volume) and shows two layers,
the reconstruction and the particle level map, with the particle count and computational ratio.
"Convert" converts the whole layer in a worker thread (movies frame by frame, in parallel),
shows a lazy multiscale APR layer (``NAME (APR)``; a re-conversion updates the layer it made, never a layer of
the user's of that name) and, when a path is given, writes ``.apr`` / ``.aprmovie``.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox
from qtpy.QtCore import QTimer

from ..apr.convert import MODES
from ..apr.preview import preview_slice  # moved to the core
from ._apr_reader import apr_layers_from_result, is_apr_layer, set_apr_mode
from ._contract import StepContract
from ._geometry import layer_kwargs
from ._jobs import StepJob
from ._layers import show_layer

PREVIEW = "APR preview"
PREVIEW_LEVELS = "APR preview levels"


class AprConvertWidget(StepContract, Container):
    """Convert an image layer to the APR, with a live preview of the current slice."""

    INPUTS = (("image", "_layer", ("Image",), "open an image or movie (File > Open, or a sample)"),)
    PARAMS = {"movie": "_movie"}
    OUTPUTS = (("* (APR)", "Image"), ("* (APR) levels", "Image"), (PREVIEW, "Image"), (PREVIEW_LEVELS, "Image"))

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._layer = ComboBox(label="image", choices=self._image_layers)
        self._rel_error = FloatSpinBox(value=0.1, min=0.001, max=2.0, step=0.01, label="relative error E")
        self._ith = FloatSpinBox(value=0.0, min=0.0, max=1e9, label="intensity threshold")
        self._smoothing = FloatSpinBox(value=3.0, min=0.0, max=100.0, step=0.5, label="gradient smoothing")
        self._auto = CheckBox(value=True, text="automatic thresholds (Li)")
        self._grad_th = FloatSpinBox(value=10.0, min=0.0, max=1e9, label="gradient threshold", enabled=False)
        self._sigma_th = FloatSpinBox(value=10.0, min=0.0, max=1e9, label="sigma threshold", enabled=False)
        self._movie = CheckBox(value=False, text="first axis is time (movie)")
        self._slab = SpinBox(value=16, min=1, max=256, label="preview slab (3D)")
        self._preview = CheckBox(value=False, text="live preview on the current slice")
        self._stats = Label(value="")
        self._output = FileEdit(mode="w", filter="*.apr *.aprmovie", label="save to (optional)", value="")
        self._run = PushButton(text="Convert")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._mode = ComboBox(choices=MODES, value="constant", label="APR layer display",
                              tooltip="reconstruction of the selected APR layer: constant, smooth or particle level")
        self.extend([self._layer, self._rel_error, self._ith, self._smoothing, self._auto, self._grad_th,
                     self._sigma_th, self._movie, self._slab, self._preview, self._stats, self._output,
                     self._run, self._cancel, self._mode])

        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.update_preview)
        self._job = StepJob(self._run, self._cancel, self._stats, viewer=napari_viewer)
        self._preview_job = StepJob((), None, self._stats, viewer=napari_viewer, activity=False)

        for w in (self._rel_error, self._ith, self._smoothing, self._grad_th, self._sigma_th, self._slab):
            w.changed.connect(self._schedule_preview)
        self._auto.changed.connect(self._auto_changed)
        self._layer.changed.connect(self._layer_changed)
        self._preview.changed.connect(self._schedule_preview)
        self._movie.changed.connect(self._schedule_preview)
        self._run.changed.connect(self.convert)
        self._mode.changed.connect(self.set_display_mode)
        self._viewer_events = ((napari_viewer.layers.events.inserted, self._layer.reset_choices),
                               (napari_viewer.layers.events.removed, self._layer.reset_choices),
                               (napari_viewer.dims.events.current_step, self._schedule_preview),
                               (napari_viewer.layers.selection.events.active, self._show_layer_stats))
        for event, callback in self._viewer_events:
            event.connect(callback)
        self.native.destroyed.connect(self._disconnect)
        self._layer_changed()

    def _disconnect(self, *_):
        self._timer.stop()
        self._preview_job.close()
        for event, callback in self._viewer_events:
            event.disconnect(callback)

    # ------------------------------------------------------------------------------------------
    def _image_layers(self, _widget=None):
        from napari.layers import Image

        return [(lay.name, lay) for lay in self._viewer.layers  # not its own previews (a user's of that name: yes)
                if isinstance(lay, Image) and not self.made_as(lay, PREVIEW, PREVIEW_LEVELS)]

    def params(self) -> dict:
        """The conversion parameters set in the widget (keywords of ``to_apr``)."""
        auto = self._auto.value
        return {"rel_error": self._rel_error.value, "intensity_threshold": self._ith.value,
                "gradient_smoothing": self._smoothing.value, "auto_parameters": auto,
                "gradient_threshold": None if auto else self._grad_th.value,
                "sigma_threshold": None if auto else self._sigma_th.value}

    def _auto_changed(self):
        self._grad_th.enabled = self._sigma_th.enabled = not self._auto.value
        self._schedule_preview()

    def _layer_changed(self):
        layer = self._layer.value
        if layer is not None:
            labels = [str(a).lower() for a in getattr(layer, "axis_labels", ())]
            self._movie.value = layer.ndim == 4 or (layer.ndim == 3 and bool(labels) and labels[0] in ("t", "time"))
        self._schedule_preview()

    def _schedule_preview(self, *_):
        if self._preview.value:
            self._timer.start()

    def _layer_data(self, layer):
        return layer.data[0] if layer.multiscale else layer.data

    # ------------------------------------------------------------------------------------------
    def update_preview(self, sync: bool = False) -> None:
        """Recompute the preview of the current slice (in a worker unless ``sync``)."""
        layer = self._layer.value
        if layer is None:
            return
        data = self._layer_data(layer)
        index = np.round(layer.world_to_data(self._viewer.dims.point)).astype(int)
        index = index[-data.ndim:] if len(index) >= data.ndim else np.zeros(data.ndim, int)
        kwargs = {"is_movie": self._movie.value, "params": self.params(),
                  "spacing": list(layer.scale)[-(data.ndim - int(self._movie.value)):], "slab": self._slab.value}
        self._preview_job.start(lambda: preview_slice(data, index, **kwargs),
                                on_return=lambda res: self._show_preview(res, layer), busy="preview...", block=sync)

    def _show_preview(self, res: dict, layer) -> None:
        geo = layer_kwargs(layer, axes=2, time=False)  # one plane of the layer, in its world
        for name, arr, kw in ((PREVIEW, res["image"], {"colormap": layer.colormap.name,
                                                       "contrast_limits": layer.contrast_limits}),
                              (PREVIEW_LEVELS, res["levels"], {"colormap": "turbo", "opacity": 0.5,
                                                               "contrast_limits": [0, max(1, int(np.max(res["levels"], initial=0)))]})):
            # the plane's grid and contrast follow the layer previewed (another layer: another pixel size, range)
            show_layer(self._viewer, "image", arr, name, owner=self, **geo, **kw,
                       refresh=("scale", "translate", "contrast_limits"))
        st = res["stats"]
        self._stats.value = (f"preview: {st['particles']} particles, ratio {st['computational_ratio']:.1f}, "
                             f"memory saved {100 * st['memory_saved']:.0f} %")

    def _show_layer_stats(self, *_):
        layer = self._viewer.layers.selection.active
        meta = getattr(layer, "metadata", {}).get("apr") if layer is not None else None
        if meta:
            self._stats.value = (f"{layer.name}: {meta['particles']} particles, ratio "
                                 f"{meta['computational_ratio']:.1f}, memory saved {meta['memory_saved']}")

    def set_display_mode(self, mode: str | None = None) -> None:
        """Show the selected APR layer in ``mode`` (constant, smooth or level)."""
        layer = self._viewer.layers.selection.active
        if layer is not None and is_apr_layer(layer):
            set_apr_mode(layer, mode or self._mode.value)

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _convert_job(data, is_movie, params, spacing, frame_interval, output):
        from ..apr import to_apr, write_apr, write_apr_movie

        if is_movie:
            result = to_apr(data, movie=True, spacing=spacing, frame_interval=frame_interval, **params)
        else:
            result = to_apr(np.asarray(data), spacing=spacing, **params)
        path = None
        if output:
            path = write_apr_movie(result, output) if is_movie else write_apr(result, output)
        return result, path

    def convert(self, sync: bool = False) -> None:
        """Convert the whole selected layer (in the widget's job unless ``sync``) and add the APR layer."""
        layer = self._layer.value
        if layer is None:
            return
        data = self._layer_data(layer)
        is_movie = self._movie.value
        scale = list(layer.scale)
        out = self._output.value
        output = out if out is not None and str(out) not in ("", ".") else None
        if output is not None:
            from ..apr.io import check_apr_output

            check_apr_output(output, movie=is_movie)  # refused before converting, never renamed
        args = (data, is_movie, self.params(), scale[1:] if is_movie else scale, scale[0], output)
        name = layer.name
        self._job.start(lambda: self._convert_job(*args), on_return=lambda res: self._converted(res, name),
                        busy="converting...", block=sync)

    def _converted(self, res, name) -> None:
        result, path = res
        source = self._viewer.layers[name] if name in self._viewer.layers else None
        dt = (source.metadata or {}).get("dt") if source is not None else None  # keep the frame interval
        layers = []
        for data, kwargs, ltype in apr_layers_from_result(result, name):
            if source is not None and source.ndim == len(kwargs.get("scale", ())):
                kwargs.update(layer_kwargs(source))  # the movie's world: translate, units, axis labels too
            if dt is not None:
                kwargs["metadata"] = {**kwargs.get("metadata", {}), "dt": dt}
            # a re-conversion updates the layer this step made (its grid, contrast and APR metadata follow) and
            # keeps the display mode chosen for it
            lname = kwargs.pop("name")
            own = self.made_layer(lname, self._viewer.layers)
            mode = ((own.metadata or {}).get("apr") or {}).get("mode") if own is not None else None
            follow = tuple(k for k in ("scale", "translate", "contrast_limits") if k in kwargs)
            shown = show_layer(self._viewer, ltype, data, lname, owner=self, **kwargs, refresh=follow)
            if mode not in (None, "constant"):
                set_apr_mode(shown, mode)
            layers.append(shown)
        st = result.stats()
        self._stats.value = (f"{st['particles']} particles, ratio {st['computational_ratio']:.1f}, memory saved "
                             f"{100 * st['memory_saved']:.0f} %" + (f"; saved to {path}" if path else ""))
        # the layer, not the APR object: the panel moves later steps that read a same-named layer this step did not
        # make (a project's "img (APR)") onto it ("img (APR) [1]", StepContract.take_result)
        self.made.emit(layers[0] if layers else result)
