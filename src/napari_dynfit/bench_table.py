"""The README's table of measured figures, written from the benchmarks (``dynfit bench --all --markdown``).

A *registry* (``benchmarks/figures.py`` in the source checkout) lists one :class:`Figure` per row the
README publishes: what is checked, the target, the command that measures it (a benchmark script or
``dynfit`` call printing JSON), a quicker variant of that command, and how to read the measured value
from the JSON. :func:`run_figures` runs them (each in its own process, from the checkout's root),
:func:`markdown_table` writes the table with the machine and the date, and :func:`replace_table`
puts it between the README's markers ``<!-- bench:begin -->`` and ``<!-- bench:end -->``, leaving
every other byte of the README as it was (written atomically: a temporary file in the same folder,
then renamed over the README).

Rows that were not run this time (``--only``, or no command can run here: a GPU or a local data set
is needed) keep the value the table had, with what it came from; rows from ``--quick`` say so.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import InputError

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
HEADER = "| check | target | measured | from |"


@dataclass
class Figure:
    """One published figure.

    Attributes
    ----------
    name : str
        Short identifier (``--only NAME``; also the row's key in the table).
    check : str
        What is measured (the table's first column, markdown).
    target : str
        The figure to reach.
    command : str or None
        Shell-style command run from the checkout's root that prints JSON on stdout (``{python}`` is
        the running interpreter). ``None``: nothing here can measure it (see ``needs``).
    measure : callable
        ``measure(json_dict) -> str``: the measured cell from the command's JSON.
    quick : str, optional
        A quicker command for the same figure (fewer seeds, a smaller problem); default ``command``;
        ``""``: none (the figure is about the full settings, e.g. a command's defaults): not run with
        ``--quick``.
    needs : str
        Why ``command`` may be unable to run (a GPU, a local data set): shown when it does not.
    timeout_s : float
        Longest run (s) before the row is reported as not finished.
    """

    name: str
    check: str
    target: str
    command: str | None
    measure: Callable[[dict], str] = field(default=lambda js: json.dumps(js)[:80])
    quick: str | None = None
    needs: str = ""
    timeout_s: float = 3600.0


def find_root(start=None) -> Path | None:
    """The source checkout holding ``benchmarks/figures.py`` (from ``start``, the working folder or the
    package's own location upwards), or ``None``."""
    candidates = [Path(start)] if start else [Path.cwd(), Path(__file__).resolve()]
    for base in candidates:
        for folder in [base, *base.parents]:
            if (folder / "benchmarks" / "figures.py").is_file() and (folder / "README.md").is_file():
                return folder
    return None


def load_registry(path) -> list[Figure]:
    """The :class:`Figure` list ``FIGURES`` of a registry file (e.g. ``benchmarks/figures.py``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"figures registry {path} not found: run from the source checkout or pass --registry")
    spec = importlib.util.spec_from_file_location(f"_dynfit_figures_{abs(hash(str(path)))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    figs = list(getattr(mod, "FIGURES", []))
    if not figs or not all(isinstance(f, Figure) for f in figs):
        raise InputError(f"{path} defines no FIGURES list of napari_dynfit.bench_table.Figure")
    names = [f.name for f in figs]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: figure names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    return figs


def machine() -> str:
    """One line about this machine: CPU model and cores, memory, OS, Python, GPU if torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2 ** 20:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output")[:160]


def run_figure(fig: Figure, *, quick: bool = False, root=None, python: str | None = None) -> dict:
    """Run one figure's command; returns ``{"name", "measured", "source", "seconds"}``.

    ``source`` is ``"full"`` or ``"quick"`` when measured, ``"failed: ..."`` / ``"not run: ..."``
    otherwise (``measured`` is then ``None``).
    """
    if quick and fig.quick == "" and fig.command is not None:
        return {"name": fig.name, "measured": None, "seconds": 0.0,
                "source": "not run: no quick variant (the figure is about the full settings)"}
    cmd = (fig.quick or fig.command) if quick else fig.command
    if cmd is None:
        return {"name": fig.name, "measured": None, "source": f"not run: needs {fig.needs or 'a manual run'}",
                "seconds": 0.0}
    argv = [python or sys.executable if a == "{python}" else a for a in shlex.split(cmd)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=fig.timeout_s,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"name": fig.name, "measured": None, "source": f"failed: not finished in {fig.timeout_s:g} s",
                "seconds": time.perf_counter() - t0}
    except OSError as exc:
        return {"name": fig.name, "measured": None, "source": f"failed: {exc}", "seconds": 0.0}
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        why = _one_line(proc.stderr or proc.stdout)
        return {"name": fig.name, "measured": None, "seconds": secs,
                "source": f"failed: {why}" + (f" (needs {fig.needs})" if fig.needs else "")}
    try:
        out = proc.stdout
        js = json.loads(out[out.index("{"):]) if "{" in out else json.loads(out)
        value = str(fig.measure(js))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return {"name": fig.name, "measured": None, "seconds": secs,
                "source": f"failed: could not read the result ({type(exc).__name__}: {exc})"[:200]}
    return {"name": fig.name, "measured": value, "source": "quick" if quick and fig.quick else "full",
            "seconds": secs}


def run_figures(figs, *, quick: bool = False, only=None, root=None, log=None) -> list[dict]:
    """Run the figures named in ``only`` (all when ``None``); ``log(text)`` is called per row."""
    wanted = set(only) if only else None
    if wanted:
        unknown = wanted - {f.name for f in figs}
        if unknown:
            raise InputError(f"unknown figure {sorted(unknown)[0]!r}; choose from {', '.join(f.name for f in figs)}")
    out = []
    for fig in figs:
        if wanted is not None and fig.name not in wanted:
            continue
        res = run_figure(fig, quick=quick, root=root)
        if log is not None:
            log(f"{fig.name}: {res['measured'] if res['measured'] is not None else res['source']} "
                f"({res['seconds']:.0f} s)")
        out.append(res)
    return out


def _cells(line: str) -> list[str]:
    body = line.strip()
    if not (body.startswith("|") and body.endswith("|")):
        return []
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body[1:-1])]


def previous_rows(readme_text: str) -> dict:
    """``{name: (measured, from)}`` of the table between the markers (empty when there is none)."""
    if BEGIN not in readme_text or END not in readme_text:
        return {}
    block = readme_text[readme_text.index(BEGIN):readme_text.index(END)]
    rows = {}
    for line in block.splitlines():
        cells = _cells(line)
        if len(cells) == 4 and cells[3].startswith("`"):
            name = cells[3][1:].split("`", 1)[0]
            rows[name] = (cells[2], cells[3].split("`", 2)[2].strip(" :") if cells[3].count("`") >= 2 else "")
    return rows


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(figs, results, *, previous=None, when=None, where=None) -> str:
    """The table (with its heading line): one row per figure, this run's value or the previous one."""
    previous = previous or {}
    now = when or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    by_name = {r["name"]: r for r in results}
    lines = [f"Written by `dynfit bench --all --markdown --update-readme` on {_esc(where or machine())}, {now}. "
             "*quick*: from `--quick` (fewer seeds or a smaller problem); *kept*: not re-run by that command "
             "(the reason is given), the value is the one measured before.", "", HEADER, "|---|---|---|---|"]
    for fig in figs:
        res = by_name.get(fig.name)
        if res is not None and res["measured"] is not None:
            value = res["measured"]
            how = f"{res['source']} run {now}"
            if res["source"] == "quick":
                value = f"*quick:* {value}"
        else:
            old_value, old_how = previous.get(fig.name, ("not measured yet", ""))
            value = old_value
            if res is None:
                how = old_how or "not run yet"
            else:
                why = res["source"]
                kept = old_how.split("; kept")[0] if old_how else "not measured"
                why = why[len("not run: "):] if why.startswith("not run: ") else why
                how = f"{kept}; kept: {why}" if old_value != "not measured yet" else why
        lines.append(f"| {fig.check} | {fig.target} | {_esc(value)} | `{fig.name}`: {_esc(how)} |")
    return "\n".join(lines)


def replace_table(readme_text: str, table: str) -> str:
    """``readme_text`` with the part between the markers replaced by ``table`` (every other byte kept)."""
    if readme_text.count(BEGIN) != 1 or readme_text.count(END) != 1:
        raise InputError(f"the README must hold exactly one {BEGIN} and one {END} marker")
    i = readme_text.index(BEGIN) + len(BEGIN)
    j = readme_text.index(END)
    if j < i:
        raise InputError(f"{END} comes before {BEGIN} in the README")
    return readme_text[:i] + "\n" + table.rstrip("\n") + "\n" + readme_text[j:]


def write_readme(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
