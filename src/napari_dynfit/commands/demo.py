"""``dynfit demo``: run every pipeline stage on the embedded sample and write ``report.html``.

The output folder is a project folder (:mod:`napari_dynfit.project`): every artefact the stages
leave in ``ctx.artefacts`` that a project can store (arrays, tables, field bundles, JSON models) is
saved there, so the GUI and the CLI can re-open the demo's results. A stage marks an artefact that
is cheap to regenerate but large to store with ``ctx.artefact_meta[name]["persist"] = False``.
"""

from __future__ import annotations

from pathlib import Path

from .._io import atomic_path
from ..project import Project
from ..report import DemoContext, Report
from ..results import json_text
from ..validate import output


def demo_stages():
    """The ``(order, title, function)`` stages of :mod:`napari_dynfit.demo`, in order."""
    from ..demo import demo_stages as stages

    return stages()


def run_demo(out_dir, *, quick: bool = False, seed: int = 0) -> Path:
    """Run the demo pipeline into ``out_dir``; returns the path of ``report.html``.

    Parameters
    ----------
    out_dir : str or Path
        Project folder to create (existing files with the same names are replaced atomically).
    quick : bool
        Smaller sizes, for tests.
    seed : int
        Random seed of every stage.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out_dir=out, report=Report("napari-dynfit demo report"), quick=quick, seed=seed)
    for _, title, func in demo_stages():
        ctx.run_stage(title, func)
    project = Project(out)
    for name, obj in ctx.artefacts.items():
        meta = dict(ctx.artefact_meta.get(name, {}))
        if meta.pop("persist", True) and Project.can_save(obj):
            project.save(name, obj, meta=meta)
    with atomic_path(out / "timings.json") as tmp:
        tmp.write_text(json_text(ctx.timings, indent=2))
    return ctx.report.write(out / "report.html")


def _cmd(args) -> int:
    path = run_demo(args.output, quick=args.quick, seed=args.seed)
    print(path)
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="run every pipeline stage on the embedded sample; writes OUT/report.html",
                       description="Run the whole pipeline (simulate -> ... -> learned model) on the embedded "
                                   "sample and write a project folder with report.html.")
    p.add_argument("-o", "--output", required=True, type=output(kind="folder"), help="output folder (created)")
    p.add_argument("--quick", action="store_true", help="smaller problem sizes (seconds instead of minutes)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd)
