"""User-facing errors.

Every check of user input raises :class:`InputError` with a message that names the problem **and**
the fix, e.g. ``"image has 5 dimensions; expected 2D (y, x) or 3D (z, y, x): pass one channel/frame"``.
The CLI prints such errors as one line and exits with status 2; the napari widgets show them as
notifications.
"""


class DynfitError(Exception):
    """Base class of the errors napari-dynfit raises on purpose."""


class InputError(DynfitError, ValueError):
    """Bad user input (file, array, table or parameter); the message says how to fix it."""


class Cancelled(DynfitError):
    """A long computation was cancelled by the user (GUI cancel button, Ctrl-C)."""
