"""File formats: pixel images and movies (:func:`open_image`), The Well HDF5 files and PDE-FIND ``.mat`` files.

:func:`open_image` opens every image/movie format the package reads (TIFF, OME-Zarr, ``.npy``, ``.aprmovie``,
CTC and frame folders) as an :class:`ImageData` (data, axes, scale, units, name).

:func:`load_fields` opens any supported fields file (``.hdf5``/``.h5`` The Well, ``.zarr``/``.npz``
field bundles, ``.mat`` PDE-FIND) as a :class:`~napari_dynfit.fields.FieldBundle`.
"""

from .image import ImageData, open_image
from .well import is_well_file, load_fields, read_well, well_info, write_well_file

__all__ = ["ImageData", "open_image", "is_well_file", "load_fields", "read_well",
           "well_info", "write_well_file"]
