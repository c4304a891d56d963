"""Every benchmark of the package, in one place, with one convention.

* ``dynfit bench NAME``: one entry module per benchmark, ``bench/<name>.py`` (listed in :data:`ENTRIES`),
  defining ``NAME`` (the command's name), ``HELP`` (one line), ``add_arguments(parser)`` (the benchmark's options)
  and ``run(args) -> dict`` (JSON-serialisable results: times in seconds as ``*_s`` keys, ratios such as
  ``speedup_vs_pyapr``). An entry module imports only the standard library, numpy and :mod:`..validate` at module
  level: building the CLI parser must not import torch. Timings never appear in tests.
* The heavy parts of a benchmark (its cases, each a function returning a dict) sit next to its entry:
  :mod:`.apr_conv_gpu`, :mod:`.pfi_cases`, :mod:`.bpinn_cases`, :mod:`.poisson`.
* :mod:`.table`: the README's table of figures (``dynfit bench --all``), run from the registry
  :mod:`.figures`, run from the source checkout's root, whose rows run ``dynfit bench NAME`` or
  ``python -m napari_dynfit.bench.MODULE`` (the benchmark modules with their own ``main``; some need the checkout:
  the test suite, local data sets, the reference tools). ``benchmarks/`` holds only the GPU device-check launcher.

Core modules (``apr/``, ``fields/``, ``models/``, ``sim/`` ...) hold no benchmark code: a benchmark calls their
public functions.
"""

from __future__ import annotations

import importlib

from ..validate import positive_int

#: The entry modules of ``dynfit bench NAME``.
ENTRIES = ("apr_conv", "bpinn", "pfi", "pinn_chemotaxis", "pinn_weighting")


def benchmarks() -> dict:
    """``{name: (help, add_arguments, run)}`` of every entry module (no torch imported)."""
    found = {}
    for entry in ENTRIES:
        mod = importlib.import_module(f"{__name__}.{entry}")
        found[mod.NAME] = (mod.HELP, mod.add_arguments, mod.run)
    return found


def add_json(parser, text: str = "the text") -> None:
    """The ``--json`` option of the benchmark scripts: the figures as JSON on stdout, ``text`` on stderr."""
    parser.add_argument("--json", action="store_true", help=f"print the figures as JSON on stdout ({text} on stderr)")


def say_for(args):
    """``say(line)``: prints a line of the human-readable report, to stderr when ``args.json`` keeps stdout for JSON."""
    import sys

    stream = sys.stderr if args.json else sys.stdout

    def say(line):
        print(line, file=stream, flush=True)

    return say


def add_threads(parser) -> None:
    """The ``--threads`` option of the torch benchmarks (intra-op CPU threads, default 1: comparable timings)."""
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
