"""The Adaptive Particle Representation: convert (pyapr), store, view lazily.

* :func:`to_apr` converts 2D/3D images and movies (:class:`AprImage`, :class:`AprMovie`).
* :func:`write_apr` / :func:`read_apr` (``.apr``) and :func:`write_apr_movie` /
  :func:`read_apr_movie` (``.aprmovie`` folders); :func:`apr_info` reads only the header.
* :func:`open_lazy` / :class:`LazyAprArray` / :func:`lazy_multiscale`: pixel views reconstructed
  on demand, at any resolution (napari multiscale layers).
* :class:`AprGrid`: the access structure as numpy arrays, for the native kernels.
* Modules :mod:`.convolve` (native convolution, CPU/CUDA), :mod:`.filters` (Gaussian, LoG, DoG... on the
  particles) and :mod:`.segment` (threshold, connected components, object tables on the particles).
"""

from . import convolve, filters, segment  # modules: apr.convolve.convolve, apr.filters.gaussian, apr.segment.segment
from .convert import AprImage, AprMovie, labels_to_apr, to_apr
from .grid import AprGrid
from .io import apr_info, read_apr, read_apr_movie, write_apr, write_apr_movie
from .lazy import LazyAprArray, LazyAprMovie, lazy_multiscale, open_lazy

__all__ = ["AprGrid", "AprImage", "AprMovie", "labels_to_apr", "to_apr", "apr_info", "read_apr", "read_apr_movie", "write_apr",
           "write_apr_movie", "LazyAprArray", "LazyAprMovie", "lazy_multiscale", "open_lazy",
           "convolve", "filters", "segment"]
