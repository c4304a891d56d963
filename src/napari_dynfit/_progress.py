"""Progress reporting and cancellation shared by the CLI, the Python API and the GUI.

Core functions never take a progress argument. They wrap their long loops in
:func:`progress_iter` (or call :func:`report`); whoever runs them decides what happens:

* the CLI installs a tqdm bar with :func:`progress_context` (``napari_dynfit.cli``);
* the napari widgets install a callback that forwards to a ``thread_worker`` and an event that the
  cancel button sets;
* plain Python calls see nothing (no callback installed) unless they install one.

The state lives in :mod:`contextvars`, so concurrent workers in different threads do not see each
other's bars. Setting the cancel event makes the next :func:`progress_iter` step (or
:func:`check_cancelled`) raise :class:`~napari_dynfit.errors.Cancelled`.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from .errors import Cancelled

T = TypeVar("T")

#: ``callback(done, total, desc)``; ``total`` may be ``None`` when unknown.
ProgressCallback = Callable[[int, int | None, str], None]

_callback: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar(
    "dynfit_progress_callback", default=None
)
_cancel: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "dynfit_cancel_event", default=None
)


@contextlib.contextmanager
def progress_context(callback: ProgressCallback | None = None, cancel: threading.Event | None = None):
    """Install a progress callback and/or a cancel event for the code run inside the block."""
    tok_cb = _callback.set(callback)
    tok_ev = _cancel.set(cancel)
    try:
        yield
    finally:
        _callback.reset(tok_cb)
        _cancel.reset(tok_ev)


def check_cancelled() -> None:
    """Raise :class:`Cancelled` if the installed cancel event is set."""
    ev = _cancel.get()
    if ev is not None and ev.is_set():
        raise Cancelled("cancelled by the user")


def report(done: int, total: int | None, desc: str = "") -> None:
    """Report ``done`` of ``total`` units of work and honour cancellation."""
    check_cancelled()
    cb = _callback.get()
    if cb is not None:
        cb(done, total, desc)


@contextlib.contextmanager
def overall_total(total: int, desc: str):
    """Inside the block, reports named ``desc`` count against ``total``.

    For work run in chunks, each chunk a call that reports its own end as the total (a widget training a PINN
    100 steps at a time up to 1500 shows "700/1500", not "700/800").
    """
    outer = _callback.get()
    if outer is None:
        yield
        return

    def relabelled(done: int, tot: int | None, d: str) -> None:
        outer(done, total if d == desc else tot, d)

    tok = _callback.set(relabelled)
    try:
        yield
    finally:
        _callback.reset(tok)


def progress_iter(iterable: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
    """Iterate over ``iterable``, reporting progress and checking for cancellation at each step."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    report(0, total, desc)
    for i, item in enumerate(iterable):
        yield item
        report(i + 1, total, desc)


class TqdmProgress:
    """A :data:`ProgressCallback` drawing one tqdm bar per ``desc`` on stderr (used by the CLI)."""

    def __init__(self, disable: bool = False):
        self._bars: dict[str, object] = {}
        self.disable = disable

    def __call__(self, done: int, total: int | None, desc: str) -> None:
        from tqdm.auto import tqdm

        bar = self._bars.get(desc)
        if bar is None or (done == 0 and bar.n > 0):  # a new loop with the same description
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=desc or "working", leave=False, disable=self.disable)
            self._bars[desc] = bar
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()
            del self._bars[desc]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
