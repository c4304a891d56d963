"""HTML reports and the ``dynfit demo`` pipeline context.

:class:`Report` collects sections (text, tables, figures, equations) and writes one self-contained
``report.html`` (figures embedded as PNG). :class:`DemoContext` is what each demo stage receives:
the output folder, the shared artefacts of earlier stages and the report.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._io import atomic_path


@dataclass
class _Section:
    title: str
    parts: list[str] = field(default_factory=list)
    seconds: float | None = None


class Report:
    """An HTML report built section by section."""

    def __init__(self, title: str):
        self.title = title
        self.sections: list[_Section] = []

    def section(self, title: str) -> _Section:
        """Start a new section; later ``add_*`` calls append to it."""
        sec = _Section(title)
        self.sections.append(sec)
        return sec

    def _current(self) -> _Section:
        if not self.sections:
            self.section("Results")
        return self.sections[-1]

    def add_text(self, text: str) -> None:
        """A paragraph of plain text (escaped)."""
        self._current().parts.append(f"<p>{html.escape(text)}</p>")

    def add_equation(self, text: str) -> None:
        """An equation, shown in a monospace block."""
        self._current().parts.append(f"<pre class='eq'>{html.escape(text)}</pre>")

    def add_table(self, df, caption: str = "", max_rows: int = 30) -> None:
        """A pandas DataFrame (first ``max_rows`` rows) or a dict (one row per key)."""
        import pandas as pd

        if isinstance(df, dict):
            df = pd.DataFrame({"quantity": list(df), "value": [df[k] for k in df]})
        cap = f"<p><em>{html.escape(caption)}</em></p>" if caption else ""
        table = df.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
        self._current().parts.append(cap + table)

    def add_figure(self, fig, caption: str = "") -> None:
        """A matplotlib figure, embedded as PNG; the figure is closed afterwards."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._current().parts.append(f"<figure><img src='data:image/png;base64,{data}'/>{cap}</figure>")

    def to_html(self) -> str:
        """The whole report as one HTML document."""
        body = []
        for sec in self.sections:
            t = f" <small>({sec.seconds:.1f} s)</small>" if sec.seconds is not None else ""
            body.append(f"<section><h2>{html.escape(sec.title)}{t}</h2>{''.join(sec.parts)}</section>")
        style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}"
                 "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
                 "pre.eq{background:#f4f4f4;padding:6px;font-size:1.1em}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>{''.join(body)}</body></html>")

    def write(self, path) -> Path:
        """Write the report atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_html(), encoding="utf-8")
        return path


@dataclass
class DemoContext:
    """State shared by the stages of ``dynfit demo``.

    Attributes
    ----------
    out_dir : Path
        The project folder the demo writes (artefacts + ``report.html``).
    report : Report
        Where stages add their results.
    artefacts : dict
        Results of earlier stages, by name: ``"movie"`` (ndarray, ``(t, y, x)``), ``"truth"``
        (ground-truth DataFrame), ``"detections"``, ``"tracks"``, ``"fields"`` (FieldBundle),
        ``"model"`` (dict, model JSON) ...
    quick : bool
        Smaller problem sizes (used by the tests).
    seed : int
        Seed for every stochastic stage.
    artefact_meta : dict
        Optional metadata per artefact name (e.g. ``{"movie": {"scale": [1, 1], "layer_type": "image"}}``),
        stored in the project manifest.
    """

    out_dir: Path
    report: Report
    artefacts: dict = field(default_factory=dict)
    quick: bool = False
    seed: int = 0
    timings: dict = field(default_factory=dict)
    artefact_meta: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)

    def run_stage(self, title: str, func) -> None:
        """Run one stage in its own report section and record its time."""
        sec = self.report.section(title)
        t0 = time.perf_counter()
        try:
            func(self)
        except ModuleNotFoundError as exc:
            from .extras import extra_message

            line = extra_message(exc)
            if line is None:
                raise
            self.report.add_text(f"Skipped: {line}.")
            self.skipped[title] = line
            print(f"dynfit demo: stage '{title}' skipped: {line}", file=sys.stderr)
        sec.seconds = time.perf_counter() - t0
        self.timings[title] = sec.seconds


@contextlib.contextmanager
def torch_threads(n: int | None = 1):
    """Run the block with ``n`` torch intra-op threads (``None``: leave torch's choice), restoring them after.

    Small networks and small FFTs gain nothing from intra-op threads and the threads contend (measured on 2
    cores: latent-field stage 39 s with one thread, 290 s with two). torch is imported only when the block
    starts, so code before it never loads torch's OpenMP runtime next to pyapr's.
    """
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_torch_thread(stage):
    """Run a demo stage that trains small torch networks with one intra-op thread (:func:`torch_threads`)."""

    @functools.wraps(stage)
    def run(ctx):
        with torch_threads(1):
            return stage(ctx)

    return run
