"""CLI subcommands, one module per area (see :mod:`napari_dynfit.cli`).

Each module defines ``register(subparsers)`` and its commands' argument handling, nothing else: the stages of
``dynfit demo`` live in :mod:`napari_dynfit.demo` and the benchmarks of ``dynfit bench`` in
:mod:`napari_dynfit.bench`.
"""
