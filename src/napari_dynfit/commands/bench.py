"""``dynfit bench NAME``: benchmarks that run ours and the anchor side by side and print JSON.

The benchmarks live in :mod:`napari_dynfit.bench` (one entry module per ``dynfit bench NAME``: ``NAME``,
``HELP``, ``add_arguments(parser)``, ``run(args) -> dict``). Timings never appear in tests.

``dynfit bench --all [--markdown] [--quick] [--only NAME] [--update-readme] [--update-docs]`` runs the
figures of the registry ``napari_dynfit.bench.figures`` (one row per figure the README publishes) and prints
JSON, or the README's table (``--markdown``), or writes that table between the README's markers
(``--update-readme``) and ``docs/figures.md`` (``--update-docs``; :mod:`napari_dynfit.bench.table`).
"""

from __future__ import annotations

from ..validate import output


def _benchmarks() -> dict:
    from ..bench import benchmarks

    return benchmarks()


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: ours vs the reference tools, printed as JSON",
                       description="Run a benchmark (ours and the anchor in one process) and print JSON; "
                                   "--all: every figure the README publishes (napari_dynfit.bench.figures).")
    p.add_argument("--all", action="store_true", help="run the figures of the registry (napari_dynfit.bench.figures)")
    p.add_argument("--markdown", action="store_true", help="with --all: print the README's table of figures")
    p.add_argument("--quick", action="store_true", help="with --all: each figure's quicker variant")
    p.add_argument("--only", action="append", metavar="NAME", help="with --all: only this figure (repeatable)")
    p.add_argument("--update-readme", action="store_true",
                   help="with --all: write the table between <!-- bench:begin --> and <!-- bench:end --> in README.md")
    p.add_argument("--update-docs", action="store_true",
                   help="with --all: write docs/figures.md (one section per figure, linked from the docs)")
    p.add_argument("--registry", help="figures registry (default: napari_dynfit.bench.figures of the source checkout)")
    p.add_argument("--readme", help="README to update (default: README.md next to the registry's folder)")
    p.set_defaults(func=_run_all)
    bsub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, (help_text, add_arguments, run) in sorted(_benchmarks().items()):
        bp = bsub.add_parser(name, help=help_text, description=help_text)
        bp.add_argument("-o", "--output", type=output(), help="also write the JSON to this file")
        add_arguments(bp)
        bp.set_defaults(func=lambda args, run=run: _run(run, args))


def _run(run, args) -> int:
    from .._io import emit_json

    emit_json(run(args), args.output)
    return 0


def _run_all(args) -> int:
    """``dynfit bench --all [--markdown] [--quick] [--only NAME] [--update-readme] [--update-docs]``."""
    import sys
    from pathlib import Path

    from .._io import emit_json
    from ..bench import table as bt
    from ..errors import InputError

    if not args.all:
        raise InputError("name a benchmark (dynfit bench --help lists them) or pass --all")
    if args.registry:
        registry = Path(args.registry)
        root = registry.resolve().parent.parent
    else:
        root = bt.find_root()
        if root is None:
            raise InputError("no napari_dynfit.bench.figures found: run from the source checkout or pass --registry")
        registry = root / bt.REGISTRY
    readme = Path(args.readme) if args.readme else root / "README.md"
    figs = bt.load_registry(registry)
    text = None
    if args.update_readme or args.markdown or args.update_docs:
        if readme.is_file():
            text = readme.read_bytes().decode("utf-8")
            if args.update_readme:
                bt.replace_table(text, "")           # markers checked before any benchmark runs
        elif args.update_readme:
            raise InputError(f"README {readme} not found (pass --readme)")
    results = bt.run_figures(figs, quick=args.quick, only=args.only, root=root,
                             log=lambda line: print(line, file=sys.stderr, flush=True))
    if not (args.markdown or args.update_readme or args.update_docs):
        emit_json({"machine": bt.machine(), "quick": bool(args.quick), "results": results}, None)
        return 0
    if text is not None:  # read again: another run may have written rows meanwhile (each writes only its own)
        text = readme.read_bytes().decode("utf-8")
    previous = bt.previous_rows(text or "")
    table = bt.markdown_table(figs, results, previous=previous)
    measured = sum(r["measured"] is not None for r in results)
    if args.update_readme:
        bt.write_text(readme, bt.replace_table(text, table))
        print(f"{readme}: table of {len(figs)} figures written ({measured} measured now)", file=sys.stderr)
    if args.update_docs:
        page = root / "docs" / "figures.md"
        page.parent.mkdir(exist_ok=True)
        bt.write_text(page, bt.figures_page(figs, bt.table_rows(figs, results, previous=previous)))
        print(f"{page}: {len(figs)} figures written ({measured} measured now)", file=sys.stderr)
    if args.markdown:
        print(table)
    return 0
