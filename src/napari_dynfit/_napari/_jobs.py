"""Run/Cancel plumbing shared by every step widget (the one job layer of the plugin).

:class:`StepJob` runs one long computation at a time in a napari ``thread_worker``:

* the computation is a plain function (its return value goes to ``on_return``) or a generator
  (each yielded item goes to ``on_yield``: live overlays while fitting); code that reports through a
  callback instead of yielding calls :meth:`StepJob.deliver` from the worker thread;
* **everything** runs in the worker, preparation included (reading files, building the problem): the
  click only reads the widget's values, so the GUI never waits for our code;
* it runs inside :func:`napari_dynfit._progress.progress_context` with the job's progress callback and
  cancel event: core loops (``progress_iter`` / ``report``) report progress, shown in the widget's status
  label **and** as a bar in napari's activity dock (:class:`napari.utils.progress`), and stop with
  :class:`~napari_dynfit.errors.Cancelled` when the user presses Cancel; widgets can also connect to
  :attr:`StepJob.progressed` ``(done, total, desc)``;
* several run buttons (e.g. Detect and Track) are disabled together while the job runs;
* starting again while a job runs cancels it and drops what it still delivers (stale previews never
  overwrite a newer one);
* errors are shown in the status label and as a napari notification, never re-raised in the Qt
  event loop (``ignore_errors=True``: superqt otherwise re-raises worker errors in the main thread);
* ``block=True`` runs the same code in the calling thread (tests, scripts);
* the job belongs to its widget: when the Run button's Qt widget is destroyed or the viewer's window closes,
  the computation is cancelled, its thread joined (:meth:`StepJob.join`, a few seconds at most: core loops stop
  at their next progress step) and no further update is delivered to layers that may be gone.

Buttons and labels may be magicgui widgets or plain Qt widgets (``QPushButton``, ``QLabel``).
"""

from __future__ import annotations

import contextvars
import inspect
import threading
import time
import weakref

from qtpy.QtCore import QEvent, QObject, Qt, Signal

from .._progress import progress_context
from ..errors import Cancelled, DynfitError

#: the generation of the job whose worker thread is running (tags :meth:`StepJob.deliver` items)
_GENERATION: contextvars.ContextVar[int | None] = contextvars.ContextVar("dynfit_job_generation", default=None)

#: workers whose thread still runs (a replaced or closed job's worker must live until its thread ends: Qt would
#: otherwise delete its signals under the running thread)
_RUNNING: set = set()

#: the worker thread reports progress to the GUI at most this often (seconds), plus every loop start/end
PROGRESS_INTERVAL = 0.1


class _Bridge(QObject):
    """Signals from the worker thread to the GUI thread (queued: the object lives in the GUI thread)."""

    progressed = Signal(int, object, str, int)  # done, total (None: unknown), desc, generation
    delivered = Signal(object, int)  # item, generation


class _CloseWatcher(QObject):
    """Calls ``on_close`` when the watched window gets its Close event (before napari tears the viewer down)."""

    def __init__(self, window, on_close):
        super().__init__(window)
        self._on_close = weakref.WeakMethod(on_close)  # the window must not keep the job (and its viewer) alive
        window.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Close:
            close = self._on_close()
            if close is not None:
                close()
        return False


def _viewer_window(viewer):
    """The Qt main window of a napari ``viewer`` (the window of its public ``window.main_menu``), or ``None``."""
    menu = getattr(getattr(viewer, "window", None), "main_menu", None)
    top = menu.window() if menu is not None and hasattr(menu, "window") else None
    return top if isinstance(top, QObject) else None


#: seconds a closing widget waits for its worker thread to end
JOIN_TIMEOUT = 30.0


def set_enabled(widget, on: bool) -> None:
    """Enable/disable a magicgui or Qt widget."""
    getattr(widget, "native", widget).setEnabled(bool(on))


def set_text(label, text: str) -> None:
    """Set the text of a magicgui ``Label`` or a ``QLabel``."""
    if hasattr(label, "setText"):
        label.setText(text)
    else:
        label.value = text


class StepJob:
    """One cancellable background computation bound to run buttons, a Cancel button and a status label.

    Parameters
    ----------
    run_buttons : button or sequence of buttons
        Disabled while the job runs (magicgui ``PushButton`` or ``QPushButton``).
    stop_button : button or None
        The Cancel button: enabled while the job runs.
    status : magicgui Label or QLabel
        Shows progress, errors and "cancelled".
    viewer : napari.Viewer, optional
        The viewer the results go to: once its window is closed the job is cancelled and delivers nothing.
    activity : bool
        Show progress in napari's activity dock as well (default ``True``).
    """

    def __init__(self, run_buttons, stop_button, status, viewer=None, *, activity: bool = True):
        if not isinstance(run_buttons, (list, tuple)):
            run_buttons = (run_buttons,)
        self.run_buttons = tuple(run_buttons)
        self.run_button = self.run_buttons[0] if self.run_buttons else None
        self.stop_button, self.status = stop_button, status
        self.viewer = viewer
        self.activity = activity
        self.cancel_event = threading.Event()
        self.worker = None
        self.busy = ""
        self._closed = False
        self._gen = 0
        self._bar = None
        self._in_bar = False
        self._done = threading.Event()
        self._done.set()
        self._on_yield = None
        self._bridge = _Bridge()
        #: ``(done, total, desc, generation)`` from the worker, delivered in the GUI thread
        self.progressed = self._bridge.progressed
        self._bridge.progressed.connect(self._show_progress)
        self._bridge.delivered.connect(self._deliver_item)
        if stop_button is not None:  # Cancel works without the widget wiring it
            getattr(stop_button, "native", stop_button).clicked.connect(self.stop)
        anchor = self.run_button if self.run_button is not None else status
        native = getattr(anchor, "native", anchor)
        self._anchor = native
        if native is not None and hasattr(native, "destroyed"):
            native.destroyed.connect(self.close)
        self._watched = None
        # the viewer's Qt window through napari's public API (its menu bar), watched from now on: closing the viewer
        # closes the job also when the widget is not docked in it (alive() read napari's private ``_qt_window``)
        # (held weakly: the job must not keep the closed viewer's widgets alive)
        top = _viewer_window(viewer)
        self._viewer_window = weakref.ref(top) if top is not None else None
        if top is not None:
            self._watched = id(top)
            _CloseWatcher(top, self.close)

    # --- life cycle -------------------------------------------------------------------------
    def close(self, *_) -> None:
        """Cancel the running computation for good and join its thread: its widget or viewer is gone, so nothing
        more is delivered."""
        self._closed = True
        self.stop()
        self._close_bar()
        self.join(JOIN_TIMEOUT)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the worker thread of the latest computation has ended; ``True`` if it has (or none ran)."""
        return self._done.wait(timeout)

    def _watch_window(self) -> None:
        """Close with the window the widget is docked in (known once it is docked: at the first start)."""
        top = self._anchor.window() if hasattr(self._anchor, "window") else None
        if top is None or top is self._anchor or id(top) == self._watched:
            return
        self._watched = id(top)
        _CloseWatcher(top, self.close)  # owned by the window (its Qt parent)

    def alive(self) -> bool:
        """False once the job's widget or its viewer's window was closed (updates would reach dead layers)."""
        if self._closed:
            return False
        try:
            from qtpy import sip

            if self._viewer_window is not None:
                top = self._viewer_window()
                if top is None or sip.isdeleted(top):
                    return False  # the viewer's window is gone
            return not sip.isdeleted(self._anchor)
        except Exception:  # not PyQt, or no native widget (tests with plain objects)
            return True

    def _current(self, gen: int) -> bool:
        return gen == self._gen and self.alive()

    def _guard(self, callback, gen: int):
        def guarded(*value):
            if self._current(gen):
                callback(*value)
            elif not self.alive():
                self.stop()

        return guarded

    # --- progress ---------------------------------------------------------------------------
    def _reporter(self, gen: int):
        """A progress callback for the worker thread: throttled signals to the GUI thread."""
        last = {"t": 0.0, "desc": None}

        def callback(done, total, desc):
            now = time.monotonic()
            edge = done == 0 or (total is not None and done >= total) or desc != last["desc"]
            if edge or now - last["t"] >= PROGRESS_INTERVAL:
                last["t"], last["desc"] = now, desc
                self._bridge.progressed.emit(int(done), None if total is None else int(total), str(desc or ""), gen)

        return callback

    def _show_progress(self, done, total, desc, gen) -> None:
        if not self._current(gen):
            return
        what = desc or self.busy or "working"
        set_text(self.status, f"{what}: {done}/{total}" if total else f"{what}: {done}")
        if not self.activity or self._in_bar:
            return  # napari's activity dock processes events while it adds a bar: no second bar from in there
        self._in_bar = True
        try:
            self._update_bar(done, total, what)
        finally:
            self._in_bar = False

    def _update_bar(self, done, total, what) -> None:
        from napari.utils import progress

        bar = self._bar
        if bar is None or (done < bar.n):
            self._close_bar()
            bar = self._bar = progress(total=total or 0, desc=what)
        if total is not None and bar.total != total:
            bar.total = total
        if bar.desc.rstrip(": ") != what:
            bar.set_description(what)
        if done > bar.n:
            bar.update(done - bar.n)

    def _close_bar(self) -> None:
        if self._bar is not None:
            try:
                self._bar.close()
            except Exception:  # a bar of a closed viewer
                pass
            self._bar = None

    def deliver(self, item) -> None:
        """Hand ``item`` to ``on_yield`` in the GUI thread (call it from the worker, e.g. from a fit callback)."""
        gen = _GENERATION.get()
        if gen is None:  # block=True: already in the GUI thread
            if self._on_yield is not None:
                self._on_yield(item)
            return
        self._bridge.delivered.emit(item, gen)

    def _deliver_item(self, item, gen) -> None:
        if self._current(gen) and self._on_yield is not None:
            self._on_yield(item)

    # --- running ----------------------------------------------------------------------------
    def _body(self, compute, event, gen, threaded, done=None):
        token = _GENERATION.set(gen) if threaded else None
        try:
            with progress_context(self._reporter(gen), event):
                result = compute()
                if inspect.isgenerator(result):
                    yield from result
                    return None
                return result
        finally:
            if token is not None:
                _GENERATION.reset(token)
            if done is not None:
                done.set()

    def start(self, compute, *, on_yield=None, on_return=None, busy: str = "working...", block: bool = False):
        """Run ``compute()`` (see the module docstring); a job already running is cancelled and its results dropped."""
        if self.worker is not None:
            self.stop()
        self._watch_window()
        self._gen += 1
        gen = self._gen
        self.cancel_event = event = threading.Event()
        self.busy = busy.rstrip(". ")
        self._on_yield = on_yield
        self._close_bar()
        if block:
            gen_iter = self._body(compute, event, gen, threaded=False)
            try:
                while True:
                    item = next(gen_iter)
                    if on_yield is not None:
                        on_yield(item)
            except StopIteration as stop:
                if on_return is not None and stop.value is not None:
                    on_return(stop.value)
            except (DynfitError, Cancelled) as exc:
                self.show_error(exc)
            finally:
                self._close_bar()
            return None
        from napari.qt.threading import thread_worker

        self._done = done = threading.Event()
        worker = thread_worker(lambda: (yield from self._body(compute, event, gen, threaded=True, done=done)),
                               start_thread=False, ignore_errors=True)()
        if on_yield is not None:
            worker.yielded.connect(self._guard(on_yield, gen))
        if on_return is not None:
            worker.returned.connect(self._guard(lambda value: value is not None and on_return(value), gen))
        worker.errored.connect(self._guard(self.show_error, gen))
        worker.aborted.connect(self._guard(lambda *_: self.show_error(Cancelled("cancelled by the user")), gen))
        worker.finished.connect(lambda: self._finished(worker))
        # in the worker thread itself, as its last act (also when the body never ran: cancelled before it started)
        worker.finished.connect(done.set, Qt.ConnectionType.DirectConnection)
        _RUNNING.add(worker)
        self.worker = worker
        self._set_running(True)
        set_text(self.status, busy)
        worker.start()
        return worker

    def _set_running(self, running: bool) -> None:
        for b in self.run_buttons:
            set_enabled(b, not running)
        if self.stop_button is not None:
            set_enabled(self.stop_button, running)

    def stop(self, *_) -> None:
        """Ask the running computation to stop at its next progress step."""
        self.cancel_event.set()
        if self.worker is not None:
            self.worker.quit()

    @property
    def running(self) -> bool:
        return self.worker is not None

    def _finished(self, worker) -> None:
        _RUNNING.discard(worker)
        if worker is not self.worker:  # a stale job (replaced by a newer one) ended
            return
        self.worker = None
        self._close_bar()
        if self.alive():
            self._set_running(False)

    def show_error(self, exc) -> None:
        """Show ``exc`` in the status label and as a notification (``Cancelled``: just "cancelled")."""
        from napari.utils.notifications import show_error

        if isinstance(exc, Cancelled):
            set_text(self.status, "cancelled")
            return
        set_text(self.status, f"error: {exc}")
        show_error(str(exc) if isinstance(exc, DynfitError) else f"{type(exc).__name__}: {exc}")
