"""``dynfit bench NAME``: benchmarks that run ours and the anchor side by side and print JSON.

Command modules contribute benchmarks with a module-level dict
``BENCHMARKS = {"apr-conv": (help, add_arguments, run)}`` where ``add_arguments(parser)`` adds the
benchmark's options and ``run(args) -> dict`` returns the JSON-serialisable results (times in
seconds as ``*_s`` keys, ratios such as ``speedup_vs_pyapr``). Timings never appear in tests.
"""

from __future__ import annotations

from ..validate import output


def _benchmarks() -> dict:
    from ..cli import _command_modules

    found = {}
    for mod in _command_modules():
        found.update(getattr(mod, "BENCHMARKS", {}))
    return found


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: ours vs the reference tools, printed as JSON",
                       description="Run a benchmark (ours and the anchor in one process) and print JSON.")
    bsub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (help_text, add_arguments, run) in sorted(_benchmarks().items()):
        bp = bsub.add_parser(name, help=help_text, description=help_text)
        bp.add_argument("-o", "--output", type=output(), help="also write the JSON to this file")
        add_arguments(bp)
        bp.set_defaults(func=lambda args, run=run: _run(run, args))


def _run(run, args) -> int:
    from .._io import emit_json

    emit_json(run(args), args.output)
    return 0
