"""napari-dynfit: from fluorescence movies to learned physics.

The package is a Qt-free core (``apr``, ``detect``, ``track``, ``fields``, ``models``, ``sim``, ``io``)
plus one thin napari layer (``_napari``). The ``dynfit`` command line (``napari_dynfit.cli``) and the
napari widgets call the same core functions.

Axis order everywhere outside pyapr is ``(t, z, y, x)``; coordinates in tables are the columns
``frame, z, y, x`` (``z`` absent for 2D data).
"""

__version__ = "0.1.0"

from .errors import Cancelled, DynfitError, InputError  # noqa: E402

__all__ = ["__version__", "DynfitError", "InputError", "Cancelled"]
