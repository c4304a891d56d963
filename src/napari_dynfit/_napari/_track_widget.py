"""Dock widget "Detect & track": blobs from an image, links from Points or Labels, live preview of links.

* **Detect** runs :func:`~napari_dynfit.detect.detect_movie` on an image layer ``(t, [z,] y, x)`` and adds a
  Points layer ``detections`` (``intensity`` and ``size`` as features).
* **Segment cells** runs :func:`~napari_dynfit.detect.segment_movie` (what ``dynfit segment`` runs, with its
  defaults: the back end chosen from the movie, touching cells cut, the temporal passes) on the same image layer
  and adds the Labels layer ``NAME cells``, which becomes the tracking source (Track then follows the cells,
  divisions included); the back end, its reason and any note (e.g. a pass skipped) are shown in the status line.
* **Track** links the selected Points layer (or the masks of a Labels layer) with
  :func:`~napari_dynfit.track.link` and adds a Tracks layer with the lineage graph; for Labels it also adds the
  masks relabelled with their track ids. Editing the Points/Labels (add, move, delete points; paint, erase,
  split masks) and pressing Track again re-links from the edited layer: the annotation round trip.
* **Live preview** re-links a few frames around the current one whenever a parameter, the frame or the
  source layer's data changes, and shows those links as the ``links preview`` Tracks layer.
* Parameters left at *auto* (motion, divisions) or 0 / -1 (max distance, alternative cost / gap frames) are
  estimated from the data (:mod:`napari_dynfit.track.auto`); after Track the panel lists every parameter with its
  reason and the quality report (:mod:`napari_dynfit.track.quality`), also kept in the Tracks layer's
  ``metadata["tracking"]``.
Long work runs in the widget's :class:`~._jobs.StepJob` (progress in the widget and the activity dock, Cancel).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox
from qtpy.QtCore import QTimer

from ..errors import DynfitError, InputError
from ._contract import StepContract
from ._geometry import layer_kwargs, time_axis
from ._jobs import StepJob
from ._layers import show_layer

PREVIEW = "links preview"
#: layer metadata key marking a Track step's links preview (any Track widget's, panel or standalone dock)
PREVIEW_KEY = "dynfit_preview"
AXES = ("z", "y", "x")


def points_to_table(data: np.ndarray) -> pd.DataFrame:
    """Points layer data ``(n, 1 + ndim)`` rows ``t, [z,] y, x`` -> detections table."""
    data = np.asarray(data, float)
    if data.ndim != 2 or data.shape[1] not in (3, 4):
        raise InputError("the Points layer must have a time axis and 2 or 3 spatial axes (t, [z,] y, x)")
    if len(data) == 0:
        raise InputError("the Points layer is empty: detect or add points first")
    cols = list(AXES[-(data.shape[1] - 1):])
    df = pd.DataFrame(data[:, 1:], columns=cols)
    df.insert(0, "frame", np.round(data[:, 0]).astype(np.int64))
    return df


def table_to_points(df: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """Detections/tracks table -> Points layer data and features."""
    cols = [c for c in AXES if c in df.columns]
    data = df[["frame"] + cols].to_numpy(float)
    features = {c: df[c].to_numpy() for c in df.columns if c not in ("frame", *cols)}
    return data, features


def _track_job(source_kind, data, params, frames=None):
    """Link a Points table or a Labels movie; ``frames`` limits to a window (preview)."""
    from ..detect import label_table
    from ..track import link

    labels = None
    if source_kind == "labels":
        labels = np.asarray(data)
        if frames is not None:
            labels = labels[frames[0]:frames[1] + 1]
        det = label_table(labels)
    else:
        det = points_to_table(data)
        if frames is not None:
            det = det[(det["frame"] >= frames[0]) & (det["frame"] <= frames[1])]
            det = det.assign(frame=det["frame"] - frames[0])
    tracks = link(det, labels=labels, **params)
    if frames is not None:
        tracks["frame"] += frames[0]
    return tracks, labels


class TrackWidget(StepContract, Container):
    """Detect particles, link Points/Labels into tracks, preview links live."""

    INPUTS = (("image", "_image", ("Image",), "open a movie (Image t, [z,] y, x) to detect in"),
              ("source", "_source", ("Points", "Labels"),
               "nothing to track yet: press Detect (detections of every frame) or open a segmentation movie"))
    PARAMS = {"spot_sigma": "_sigma"}
    OUTPUTS = (("detections", "Points"), ("tracks", "Tracks"), (PREVIEW, "Tracks"), ("* tracked", "Labels"),
               ("* cells", "Labels"))

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._image = ComboBox(label="image (detect)", choices=self._layers_of("Image"))
        self._sigma = FloatSpinBox(value=0.0, min=0.0, max=50.0, step=0.1, label="blob sigma (px, 0: estimate)")
        self._snr = FloatSpinBox(value=5.0, min=1.0, max=100.0, step=0.5, label="threshold (x noise)")
        self._split = CheckBox(value=True, text="split unresolved pairs")
        self._polarity = ComboBox(choices=["auto", "bright", "dark"], value="auto", label="objects (polarity)")
        self._detect = PushButton(text="Detect")
        self._segment = PushButton(text="Segment cells")
        self._source = ComboBox(label="points / labels (track)", choices=self._trackable)
        self._max_distance = FloatSpinBox(value=0.0, min=0.0, max=1e4, step=0.5, label="max distance (0: estimate)")
        self._gaps = SpinBox(value=-1, min=-1, max=50, label="gap frames (-1: estimate)")
        self._divisions = ComboBox(choices=["auto", "on", "off"], value="auto", label="divisions")
        self._motion = ComboBox(choices=["auto", "brownian", "velocity", "drift", "flow"], value="auto",
                                label="motion model")
        self._alt = FloatSpinBox(value=0.0, min=0.0, max=100.0, step=0.1, label="alternative cost (0: estimate)")
        self._preview = CheckBox(value=False, text="live preview of links (frames around the current one)")
        self._window = SpinBox(value=3, min=1, max=50, label="preview frames")
        self._track = PushButton(text="Track")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._status = Label(value="")
        self._report = Label(value="", label="report")
        if hasattr(self._report.native, "setWordWrap"):
            self._report.native.setWordWrap(True)  # reasons are long lines
        self._analyse = PushButton(text="MSD && velocity autocorrelation")
        self.extend([self._image, self._sigma, self._snr, self._split, self._polarity, self._detect, self._segment,
                     self._source,
                     self._max_distance, self._gaps, self._divisions, self._motion, self._alt, self._preview,
                     self._window, self._track, self._cancel, self._status, self._report, self._analyse])
        self._analyse.changed.connect(lambda: self.analyse())  # in the job's worker
        self._analysis_figure = self._analysis_canvas = None
        self.analysis = self.van_hove = None  # (MSD fit, VACF) and the van Hove table of the last analysis
        self._tracks_layer = None  # the Tracks layer Track made last (analysed while it is in the viewer)
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.update_preview)
        self._job = StepJob((self._detect, self._segment, self._track), self._cancel, self._status,
                            viewer=napari_viewer)
        self._preview_job = StepJob((), None, self._status, viewer=napari_viewer, activity=False)
        self._watched = None
        for w in (self._max_distance, self._gaps, self._divisions, self._motion, self._alt, self._window,
                  self._preview):
            w.changed.connect(self._schedule_preview)
        self._source.changed.connect(self._watch_source)
        self._detect.changed.connect(lambda: self.detect())
        self._segment.changed.connect(lambda: self.segment())
        self._track.changed.connect(lambda: self.track())
        self._events = ((napari_viewer.layers.events.inserted, self._reset),
                        (napari_viewer.layers.events.removed, self._reset),
                        (napari_viewer.dims.events.current_step, self._schedule_preview))
        for ev, cb in self._events:
            ev.connect(cb)
        self.native.destroyed.connect(self._disconnect)
        self._watch_source()
        self._reset()

    # ------------------------------------------------------------------------------------------
    def _layers_of(self, *kinds):
        def choices(_widget=None):
            return [(lay.name, lay) for lay in self._viewer.layers  # the links preview: this step's, not a user's
                    if type(lay).__name__ in kinds and not self.made_as(lay, PREVIEW)]
        return choices

    def _trackable(self, _widget=None):
        """Time-resolved Points/Labels that are not ground truth (not one frame's centroids)."""
        from ._defaults import input_layers

        own = self.made_layer(PREVIEW, self._viewer.layers)
        return input_layers(self._viewer, ("Points", "Labels"), time_resolved=True, exclude=(own,) if own else ())

    #: shown while no layer can be tracked
    NOTHING_TO_TRACK = ("nothing to track yet: press Detect (detections of every frame) or open a segmentation "
                        "movie (Labels t, [z,] y, x)")

    def _reset(self, *_):
        self._image.reset_choices()
        self._source.reset_choices()
        if not self._source.choices:
            self._status.value = self.NOTHING_TO_TRACK
        elif self._status.value == self.NOTHING_TO_TRACK:
            self._status.value = ""

    def _disconnect(self, *_):
        self._timer.stop()
        self._preview_job.close()
        for ev, cb in self._events:
            ev.disconnect(cb)
        self._unwatch()

    def _unwatch(self):
        if self._watched is not None:
            self._watched.events.data.disconnect(self._schedule_preview)
            self._watched = None

    def _watch_source(self, *_):
        """Re-run the preview when the user edits the source layer (annotation round trip)."""
        self._unwatch()
        layer = self._source.value
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self._schedule_preview)
        self._schedule_preview()

    def params(self) -> dict:
        """Keyword arguments of :func:`~napari_dynfit.track.link` set in the widget (None: estimate)."""
        layer = self._source.value
        spacing = list(layer.scale[1:]) if layer is not None else None
        return {"max_distance": self._max_distance.value or None,
                "gap_frames": None if self._gaps.value < 0 else self._gaps.value,
                "divisions": {"auto": None, "on": True, "off": False}[self._divisions.value],
                "motion": None if self._motion.value == "auto" else self._motion.value,
                "alternative_cost": self._alt.value or None, "spacing": spacing}

    def report_text(self, tracks: pd.DataFrame) -> str:
        """The parameters used (given or estimated, with reasons) and the quality report of a tracks table."""
        from ..track.quality import TrackingQuality

        lines = [f"{c['name']} = {c['value']:.4g}" if isinstance(c["value"], float) else f"{c['name']} = {c['value']}"
                 for c in tracks.attrs.get("link_choices", [])]
        reasons = {c["name"]: ("given" if c["given"] else c["reason"]) for c in tracks.attrs.get("link_choices", [])}
        lines = [f"{ln}  ({reasons[ln.split(' = ')[0]]})" for ln in lines]
        if "tracking_quality" in tracks.attrs:
            lines.append(TrackingQuality.from_dict(tracks.attrs["tracking_quality"]).summary())
        return "\n".join(lines)

    def _source_args(self):
        layer = self._source.value
        if layer is None:
            raise InputError("no time-resolved Points or Labels layer to track: press Detect first (or open a "
                             "segmentation movie t, [z,] y, x); one frame's centroids and ground truth are not offered")
        kind = "labels" if type(layer).__name__ == "Labels" else "points"
        return layer, kind, layer.data

    # ------------------------------------------------------------------------------------------
    def _run(self, fn, args, on_done, sync, preview: bool = False):
        """Run ``fn(*args)`` in the widget's job (the preview in its own job: a newer preview drops an older one)."""
        job = self._preview_job if preview else self._job
        job.start(lambda: fn(*args), on_return=on_done, block=sync,
                  busy="linking the preview..." if preview else "working...")

    def _failed(self, exc):
        self._job.show_error(exc)

    def detect(self, sync: bool = False) -> None:
        """Detect blobs in every frame of the chosen image layer; adds the ``detections`` Points layer."""
        from ..detect import detect_movie

        layer = self._image.value
        if layer is None:
            self._failed(InputError("choose an image layer (t, [z,] y, x) to detect in"))
            return
        data = layer.data[0] if layer.multiscale else layer.data
        kw = dict(sigma=self._sigma.value or None, threshold_snr=self._snr.value, split=self._split.value,
                  spacing=list(layer.scale[1:]), polarity=self._polarity.value)  # 0: estimated, as `dynfit detect`

        def done(det):
            pts, feats = table_to_points(det)
            geo = layer_kwargs(layer)  # the image's grid: a re-run on another image moves the points onto its grid
            points = show_layer(self._viewer, "points", pts, "detections", owner=self, features=pd.DataFrame(feats),
                                **geo, metadata={"dt": time_axis(layer)[0]},
                                size=2 * float(det.attrs.get("sigma") or self._sigma.value or 1.5),
                                border_color="red", face_color="transparent", refresh=tuple(geo))
            self._source.reset_choices()
            self.take_result(self, points)  # Track links these, not a project's or user's layer "detections"
            skew = det.attrs.get("skewness")
            how = f", auto: skewness {skew:+.2f}" if skew is not None else ""
            size = det.attrs.get("sigma")
            size = "" if size is None or self._sigma.value else f"; blob sigma {size:.2f} px estimated"
            self._status.value = (f"{len(det)} detections in {det['frame'].nunique()} frames "
                                  f"({det.attrs.get('polarity')} objects{how}{size})")
            self.made.emit(points)

        self._run(lambda: detect_movie(data, **kw), (), done, sync)

    def segment(self, sync: bool = False) -> None:
        """Segment the cells of every frame of the chosen image layer with :func:`~napari_dynfit.detect.segment_movie`
        (its defaults, as ``dynfit segment``; the widget's polarity; frames in parallel threads; a single 2D frame
        with :func:`~napari_dynfit.detect.segment_cells`); adds or updates the Labels layer ``NAME cells`` and makes
        it the tracking source."""
        from ..detect import segment_cells, segment_movie

        layer = self._image.value
        if layer is None:
            self._failed(InputError("choose an image layer (t, [z,] y, x) to segment"))
            return
        data = layer.data[0] if layer.multiscale else layer.data
        polarity = self._polarity.value
        spacing = list(layer.scale[1:]) if data.ndim == 4 else None  # anisotropic 3D frames

        def run():
            if data.ndim == 2:
                return segment_cells(np.asarray(data), polarity=polarity)
            return segment_movie(data, polarity=polarity, spacing=spacing)

        def done(res):
            cells = show_layer(self._viewer, "labels", res.labels, f"{layer.name} cells", owner=self,
                               **layer_kwargs(layer), opacity=0.5)
            info = res.info
            n = info["objects"]
            n_obj = int(sum(n)) if isinstance(n, list) else int(n)
            frames = len(n) if isinstance(n, list) else 1
            note = f"; {info['note']}" if info.get("note") else ""
            self._status.value = (f"{n_obj} objects in {frames} frame{'s' * (frames > 1)} "
                                  f"({info.get('method')}: {info.get('method_reason', 'given')}){note}")
            self._source.reset_choices()
            if data.ndim > 2:
                self._source.value = cells
            self.made.emit(cells)

        self._run(run, (), done, sync)

    def track(self, sync: bool = False) -> None:
        """Link the whole source layer; adds the ``tracks`` Tracks layer (and relabelled masks for Labels)."""
        try:
            layer, kind, data = self._source_args()
            params = self.params()
        except DynfitError as exc:
            self._failed(exc)
            return

        def done(res):
            shown = self._show_tracks(res[0], layer, "tracks")
            self._tracks_layer = shown  # "tracks [1]" when a layer of another kind is called "tracks"
            tracks, labels = res
            if labels is not None:
                from ..track.formats import relabel_movie

                show_layer(self._viewer, "labels", relabel_movie(labels, tracks), f"{layer.name} tracked", owner=self,
                           **layer_kwargs(layer))
            n_div = int((tracks.groupby("track_id")["parent_id"].first() >= 0).sum())
            self._status.value = f"{tracks['track_id'].nunique()} tracks, {n_div} daughter tracks"
            self._report.value = self.report_text(tracks)
            shown.metadata["tracking"] = {
                k: tracks.attrs.get(k) for k in ("link_params", "link_choices", "tracking_quality")}
            self.made.emit(shown)

        self._run(_track_job, (kind, data, params), done, sync)

    def tracks_layer(self):
        """The Tracks layer :meth:`analyse` reads: the one Track made last while it is in the viewer (renamed or
        not), else the Tracks layer named ``tracks`` (e.g. opened from a file).

        Raises
        ------
        InputError
            If there is neither (a layer of another kind called ``tracks`` is not used).
        """
        import napari.layers

        made = self._tracks_layer
        if made is not None and made in self._viewer.layers:
            return made
        named = self._viewer.layers["tracks"] if "tracks" in self._viewer.layers else None
        if isinstance(named, napari.layers.Tracks):
            return named
        other = f" ('tracks' is a {type(named).__name__} layer)" if named is not None else ""
        raise InputError(f"no Tracks layer 'tracks'{other}: press Track first")

    def analyse(self, sync: bool = False) -> None:
        """MSD (power-law fit, drift removed), velocity autocorrelation and van Hove distribution (one frame, drift
        removed; kept in ``self.van_hove``) of the Tracks layer :meth:`tracks_layer`, in physical units (layer
        scale; frame interval ``metadata["dt"]`` or 1), drawn below the widget. Computed in the widget's job
        (``sync``: in the calling thread)."""
        from ..track import fit_msd, van_hove, velocity_autocorrelation
        from ..track.io_formats import tracks_from_napari
        from ._plots import make_canvas, plot_track_analysis

        try:
            layer = self.tracks_layer()
        except DynfitError as exc:
            self._failed(exc)
            return
        dt, _, time_unit = time_axis(layer)

        def compute():
            tab = tracks_from_napari(layer)
            return (fit_msd(tab, dt=dt),  # fit_msd's defaults, as `dynfit msd` (lags up to 100 frames)
                    velocity_autocorrelation(tab, dt=dt, max_lag=20, drift=True, normalize=True),
                    van_hove(tab, 1, bins=41, drift=True))

        def done(res):
            fit, vacf, vh = res
            if self._analysis_figure is None:
                self._analysis_figure, self._analysis_canvas = make_canvas(figsize=(6, 3))
                self.native.layout().addWidget(self._analysis_canvas)
            plot_track_analysis(self._analysis_figure, fit, vacf, time_units="" if time_unit == "pixel" else time_unit,
                                van_hove=vh)
            self._analysis_canvas.draw_idle()
            self.analysis, self.van_hove = (fit, vacf), vh
            lo, hi = fit.exponent_ci
            ci = f" (95 % interval {lo:.3f}-{hi:.3f})" if np.isfinite(lo) else " (too few tracks for an interval)"
            self._status.value = (f"MSD exponent {fit.exponent:.3f}{ci}, prefactor {fit.prefactor:.4g}, "
                                  f"D {fit.D:.4g} (drift removed); {fit.immobile_report()}; "
                                  f"{fit.composition_report(brief=True)}")

        self._run(compute, (), done, sync)

    def _show_tracks(self, tracks: pd.DataFrame, layer, name: str):
        """Show ``tracks`` (a tracks table) as the Tracks layer ``name`` over ``layer``; returns the layer. The
        table's numeric columns other than ids and coordinates (``parent_id``, the detections' features...) are the
        layer's features, one row per data row (napari adds ``track_id``; "color by" offers them)."""
        from ..track.formats import to_napari_tracks

        data, props, graph = to_napari_tracks(tracks)
        geo = layer_kwargs(layer)  # the source's grid: tracks of another source are drawn on that one's
        return show_layer(self._viewer, "tracks", data, name, owner=self, graph=graph,
                          features=pd.DataFrame(props, index=pd.RangeIndex(len(data))),
                          **geo, tail_length=10, refresh=tuple(geo),
                          # a preview says so: other steps (the panel's fields step) never coarse-grain a Track
                          # step's preview, also one of a Detect & track dock opened on its own
                          metadata={"dt": time_axis(layer)[0], **({PREVIEW_KEY: True} if name == PREVIEW else {})})

    # ------------------------------------------------------------------------------------------
    def _schedule_preview(self, *_):
        if self._preview.value:
            self._timer.start()

    def update_preview(self, sync: bool = False) -> None:
        """Link the frames around the current one and show them as the ``links preview`` layer."""
        try:
            layer, kind, data = self._source_args()
            params = self.params()
        except DynfitError:
            return
        t = int(self._viewer.dims.current_step[0])
        w = self._window.value
        frames = (max(0, t - w), t + w)

        def done(res):
            self._show_tracks(res[0], layer, PREVIEW)
            self._status.value = f"preview: {res[0]['track_id'].nunique()} tracks in frames {frames[0]}-{frames[1]}"

        try:
            self._run(_track_job, (kind, data, params, frames), done, sync, preview=True)
        except DynfitError as exc:
            self._failed(exc)
