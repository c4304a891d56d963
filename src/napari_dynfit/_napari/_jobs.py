"""Run/Stop plumbing shared by the step widgets.

:class:`StepJob` runs one long computation at a time in a napari ``thread_worker``:

* the computation is a plain function (its return value goes to ``on_return``) or a generator
  (each yielded item goes to ``on_yield``: live overlays while fitting);
* it runs inside :func:`napari_dynfit._progress.progress_context` with the job's cancel event, so
  core loops (``progress_iter`` / ``report``) stop with :class:`~napari_dynfit.errors.Cancelled`
  when the user presses Stop;
* errors are shown in the status label and as a napari notification, never re-raised in the Qt
  event loop (``ignore_errors=True``: superqt otherwise re-raises worker errors in the main thread);
* ``block=True`` runs the same code in the calling thread (tests, scripts);
* the job belongs to its widget: when the Run button's Qt widget is destroyed (the widget or its viewer was
  closed) the computation is cancelled and no further update is delivered to layers that may be gone.
"""

from __future__ import annotations

import inspect
import threading

from .._progress import progress_context
from ..errors import Cancelled, DynfitError


class StepJob:
    """One cancellable background computation bound to a Run button, a Stop button and a status label.

    Parameters
    ----------
    run_button, stop_button : magicgui PushButton
        Disabled/enabled while the job runs.
    status : magicgui Label
        Shows errors and "stopped".
    viewer : napari.Viewer, optional
        The viewer the results go to: once its window is closed the job is cancelled and delivers nothing.
    """

    def __init__(self, run_button, stop_button, status, viewer=None):
        self.run_button, self.stop_button, self.status = run_button, stop_button, status
        self.viewer = viewer
        self.cancel_event = threading.Event()
        self.worker = None
        self._closed = False
        native = getattr(run_button, "native", None)
        if native is not None and hasattr(native, "destroyed"):
            native.destroyed.connect(self.close)

    def close(self, *_) -> None:
        """Cancel the running computation for good: its widget is gone, so nothing more is delivered."""
        self._closed = True
        self.stop()

    def alive(self) -> bool:
        """False once the job's widget was closed (updates would reach dead layers)."""
        if self._closed:
            return False
        window = getattr(self.viewer, "window", None)
        if self.viewer is not None and (window is None or not hasattr(window, "_qt_window")):
            return False  # napari's Window.close() deletes ``_qt_window``
        try:
            from qtpy import sip

            return not sip.isdeleted(self.run_button.native)
        except Exception:  # not PyQt, or no native widget (tests with plain objects)
            return True

    def _guard(self, callback):
        def guarded(value):
            if self.alive():
                callback(value)
            else:
                self.stop()

        return guarded

    def _body(self, compute):
        with progress_context(None, self.cancel_event):
            result = compute()
            if inspect.isgenerator(result):
                yield from result
                return None
            return result

    def start(self, compute, *, on_yield=None, on_return=None, busy: str = "working...", block: bool = False):
        """Run ``compute()``; see the module docstring."""
        self.cancel_event.clear()
        if block:
            gen = self._body(compute)
            try:
                while True:
                    item = next(gen)
                    if on_yield is not None:
                        on_yield(item)
            except StopIteration as stop:
                if on_return is not None and stop.value is not None:
                    on_return(stop.value)
            except (DynfitError, Cancelled) as exc:
                self.show_error(exc)
            return None
        from napari.qt.threading import thread_worker

        worker = thread_worker(lambda: (yield from self._body(compute)), start_thread=False, ignore_errors=True)()
        if on_yield is not None:
            worker.yielded.connect(self._guard(on_yield))
        if on_return is not None:
            worker.returned.connect(self._guard(lambda value: value is not None and on_return(value)))
        worker.errored.connect(self._guard(self.show_error))
        worker.finished.connect(self._finished)
        self.worker = worker
        self.run_button.enabled, self.stop_button.enabled = False, True
        self.status.value = busy
        worker.start()
        return worker

    def stop(self, *_) -> None:
        """Ask the running computation to stop at its next progress step."""
        self.cancel_event.set()
        if self.worker is not None:
            self.worker.quit()

    @property
    def running(self) -> bool:
        return self.worker is not None

    def _finished(self) -> None:
        self.worker = None
        if self.alive():
            self.run_button.enabled, self.stop_button.enabled = True, False

    def show_error(self, exc) -> None:
        """Show ``exc`` in the status label and as a notification (``Cancelled``: just "stopped")."""
        from napari.utils.notifications import show_error

        if isinstance(exc, Cancelled):
            self.status.value = "stopped"
            return
        self.status.value = f"error: {exc}"
        show_error(str(exc) if isinstance(exc, DynfitError) else f"{type(exc).__name__}: {exc}")
