"""Device-session shim (benchmarks/gpu_session.sh puts this folder on PYTHONPATH): numba-cuda 0.30 registers an
overload of ``np.row_stack``, which numpy 2.5 removed, so its first kernel compile fails on such an image. Not
part of the package."""
import numpy

if not hasattr(numpy, "row_stack"):
    numpy.row_stack = numpy.vstack
