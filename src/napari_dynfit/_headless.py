"""Process hygiene for headless runs: no GUI toolkit behind pyapr, worker processes that die with their parent.

``import pyapr`` imports ``pyapr.viewer`` and ``pyapr.utils.filegui``, which import pyqtgraph, Qt
and matplotlib (about a second, and a crash when Ctrl-C arrives inside Qt's initialisation).
:func:`headless_pyapr` puts empty stand-ins for those two GUI submodules into ``sys.modules``
before pyapr is first imported, so the rest of pyapr (converter, io, filter, tree, reconstruction,
segmentation ...) loads without any GUI toolkit. The CLI calls it at start-up; library code that
imports pyapr may call it too (it does nothing when pyapr is already imported).
"""

from __future__ import annotations

import sys
import types

_GUI_MODULES = ("pyapr.viewer", "pyapr.utils.filegui")


def headless_pyapr() -> bool:
    """Keep pyapr's GUI submodules from loading; returns ``False`` when pyapr was already imported."""
    if "pyapr" in sys.modules:
        return False
    for name in _GUI_MODULES:
        if name not in sys.modules:
            mod = types.ModuleType(name, "stand-in: pyapr's GUI is not loaded by headless napari-dynfit runs")
            mod.InteractiveIO = None  # what pyapr.utils imports from filegui
            mod.__dynfit_stub__ = True
            sys.modules[name] = mod
    return True


def die_with_parent() -> None:
    """In a worker process: end when the parent process ends, even by SIGKILL (Linux), and leave
    Ctrl-C to the parent (which ends its workers)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover
            pass
