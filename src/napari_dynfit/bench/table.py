"""The README's table of measured figures, written from the benchmarks (``dynfit bench --all --markdown``).

A *registry* (``napari_dynfit.bench.figures`` in the source checkout) lists one :class:`Figure` per row the
README publishes: what is checked, the target, the command that measures it (a benchmark script or
``dynfit`` call printing JSON), a quicker variant of that command, and how to read the measured value
from the JSON. :func:`run_figures` runs them (each in its own process, from the checkout's root),
:func:`markdown_table` writes the table with the machine and the date, and :func:`replace_table`
puts it between the README's markers ``<!-- bench:begin -->`` and ``<!-- bench:end -->``, leaving
every other byte of the README as it was (written atomically: a temporary file in the same folder,
then renamed over the README).

A row that cannot be re-measured here says why, in its own words: ``not re-measured: needs pyapr``
(a module that does not import), ``needs the bulk_water movie`` (a local data set, found under the folder
``$DYNFIT_DATA`` names; never committed), ``needs a GPU``, ``needs a quiet machine`` (a timing figure while
the load average is high), and keeps the value measured before with where it came from. Rows not run
this time (``--only``) keep theirs as they were; rows from ``--quick`` say so.

``--update-docs`` also writes ``docs/figures.md`` (:func:`figures_page`): one section per row, with the
command that measures it, so that the other docs link to ``figures.md#NAME`` instead of typing numbers.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

#: environment variable naming the folder of local data sets (``{data}`` in commands); never committed
DATA_ENV = "DYNFIT_DATA"
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
    command : str, list of str, or None
        Shell-style command run from the checkout's root that prints JSON on stdout (its last JSON
        object is read; ``{python}`` is the running interpreter, ``{data}`` the folder ``$DYNFIT_DATA``).
        A list: several commands, ``measure`` then gets the list of their JSON objects. ``None``:
        nothing can measure it (``needs`` says what would).
    measure : callable
        ``measure(json_dict) -> str``: the measured cell from the command's JSON.
    quick : str, list of str, optional
        A quicker command for the same figure (fewer seeds, a smaller problem); default ``command``;
        ``""``: none (the figure is about the full settings, e.g. a command's defaults): not run with
        ``--quick``.
    needs : str
        What running it needs beyond this list's checks (shown when it cannot run or fails).
    timeout_s : float
        Longest run (s) before the row is reported as not finished.
    requires : tuple of str
        Modules the command imports (``"pyapr"``, ``"torch"``): when one is missing the row says
        ``not re-measured: needs pyapr`` without running anything.
    data : tuple of str
        Paths under ``$DYNFIT_DATA`` the command reads (local data sets, never committed); when one is
        missing the row says so (``data_label`` names the data set).
    data_label : str
        The data set in words (``"the bulk_water movie"``).
    gpu : bool
        The command needs a CUDA device (torch must see one).
    max_load : float or None
        A timing figure: not run while the 1-minute load average per core exceeds this (a shared
        machine's timings mislead).
    """

    name: str
    check: str
    target: str
    command: str | list | None
    measure: Callable[[dict], str] = field(default=lambda js: json.dumps(js)[:80])
    quick: str | list | None = None
    needs: str = ""
    timeout_s: float = 3600.0
    requires: tuple = ()
    data: tuple = ()
    data_label: str = ""
    gpu: bool = False
    max_load: float | None = None


def unmet(fig: Figure) -> str | None:
    """Why ``fig``'s command cannot run on this machine now (``"needs pyapr"``, ...), or ``None``."""
    if fig.command is None:
        return f"needs {fig.needs or 'a manual run'}"
    for mod in fig.requires:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"needs {mod} (not installed here)"
    if fig.gpu and not _has_gpu():
        return "needs a GPU (none here)"
    if fig.data:
        label = fig.data_label or ", ".join(fig.data)
        base = os.environ.get(DATA_ENV)
        if not base:
            return f"needs {label} (local only: set {DATA_ENV} to the folder holding {', '.join(fig.data)})"
        missing = [d for d in fig.data if not (Path(base) / d).exists()]
        if missing:
            return f"needs {label} ({', '.join(missing)} not under ${DATA_ENV})"
    if fig.max_load is not None:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        if load > fig.max_load:
            return f"needs a quiet machine (load {load:.1f} per core, at most {fig.max_load:g})"
    return None


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


#: The registry of the README's figures, relative to the checkout's root.
REGISTRY = Path("src", "napari_dynfit", "bench", "figures.py")


def find_root(start=None) -> Path | None:
    """The source checkout holding :data:`REGISTRY` and the README (from ``start``, the working folder or the
    package's own location upwards), or ``None``."""
    candidates = [Path(start)] if start else [Path.cwd(), Path(__file__).resolve()]
    for base in candidates:
        for folder in [base, *base.parents]:
            if (folder / REGISTRY).is_file() and (folder / "README.md").is_file():
                return folder
    return None


def load_registry(path) -> list[Figure]:
    """The :class:`Figure` list ``FIGURES`` of a registry file (e.g. ``napari_dynfit.bench.figures``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"figures registry {path} not found: run from the source checkout or pass --registry")
    spec = importlib.util.spec_from_file_location(f"_dynfit_figures_{abs(hash(str(path)))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    figs = list(getattr(mod, "FIGURES", []))
    if not figs or not all(isinstance(f, Figure) for f in figs):
        raise InputError(f"{path} defines no FIGURES list of napari_dynfit.bench.table.Figure")
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


def last_json(text: str):
    """The last top-level JSON object (``{...}`` starting a line) of a command's output."""
    text = text or ""
    starts = [m.start() for m in re.finditer(r"(?m)^\{", text)]
    dec = json.JSONDecoder()
    for i in reversed(starts):
        try:
            return dec.raw_decode(text, i)[0]
        except ValueError:
            continue
    if "{" in text:
        return dec.raw_decode(text, text.index("{"))[0]
    return json.loads(text)  # raises ValueError with the reason


def _argv(cmd: str, python: str | None) -> list[str]:
    data = os.environ.get(DATA_ENV, "")
    out = []
    for a in shlex.split(cmd):
        if a == "{python}":
            out.append(python or sys.executable)
        else:
            out.append(a.replace("{data}", data.rstrip("/")))
    return out


def run_figure(fig: Figure, *, quick: bool = False, root=None, python: str | None = None) -> dict:
    """Run one figure's command(s); returns ``{"name", "measured", "source", "seconds"}``.

    ``source`` is ``"full"`` or ``"quick"`` when measured, ``"failed: ..."`` / ``"not run: ..."``
    otherwise (``measured`` is then ``None``).
    """
    if quick and fig.quick == "" and fig.command is not None:
        return {"name": fig.name, "measured": None, "seconds": 0.0,
                "source": "not run: no quick variant (the figure is about the full settings)"}
    why = unmet(fig)
    if why is not None:
        return {"name": fig.name, "measured": None, "source": f"not run: {why}", "seconds": 0.0}
    cmd = (fig.quick or fig.command) if quick else fig.command
    cmds = [cmd] if isinstance(cmd, str) else list(cmd)
    t0 = time.perf_counter()
    outs = []
    for one in cmds:
        left = fig.timeout_s - (time.perf_counter() - t0)
        try:
            proc = subprocess.run(_argv(one, python), cwd=root, capture_output=True, text=True,
                                  timeout=max(left, 1.0), env={**os.environ, "PYTHONWARNINGS": "ignore"})
        except subprocess.TimeoutExpired:
            return {"name": fig.name, "measured": None, "source": f"failed: not finished in {fig.timeout_s:g} s",
                    "seconds": time.perf_counter() - t0}
        except OSError as exc:
            return {"name": fig.name, "measured": None, "source": f"failed: {exc}", "seconds": 0.0}
        if proc.returncode != 0:
            why = _one_line(proc.stderr or proc.stdout)
            return {"name": fig.name, "measured": None, "seconds": time.perf_counter() - t0,
                    "source": f"failed: {why}" + (f" (needs {fig.needs})" if fig.needs else "")}
        outs.append(proc.stdout)
    secs = time.perf_counter() - t0
    try:
        js = [last_json(o) for o in outs]
        value = str(fig.measure(js[0] if isinstance(cmd, str) else js))
    except Exception as exc:  # noqa: BLE001 - a long run's output is kept whatever broke in reading it
        return {"name": fig.name, "measured": None, "seconds": secs, "kept": _keep_output(fig.name, outs),
                "source": f"failed: could not read the result ({type(exc).__name__}: {exc})"[:200]}
    return {"name": fig.name, "measured": value, "source": "quick" if quick and fig.quick else "full",
            "seconds": secs}


def _keep_output(name: str, outs) -> str:
    """Write a run's stdout to a new file in the temporary folder (never over another); returns its path."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix=f"dynfit-bench-{name}-", suffix=".out")
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(outs))
    return path


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
                f"({res['seconds']:.0f} s)" + (f"; its output is kept in {res['kept']}" if "kept" in res else ""))
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


def _origin(how: str) -> str:
    """Where a kept value came from, out of a previous ``from`` cell (without its not-re-measured reason)."""
    if "; value from " in how:
        return how.split("; value from ", 1)[1].strip()
    if how.startswith("not re-measured"):
        return ""
    return how.split("; kept")[0].strip()  # the earlier wording: "ORIGIN; kept: WHY"


def table_rows(figs, results, *, previous=None, when=None) -> list[dict]:
    """One dict per figure: ``name, check, target, measured, from``: this run's value or the previous one.

    A row run now that could not be measured says ``not re-measured: WHY; value from ORIGIN`` (``WHY``:
    what it needs or how it failed; ``ORIGIN``: the run or the hand that wrote the kept value).
    """
    previous = previous or {}
    now = when or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    by_name = {r["name"]: r for r in results}
    rows = []
    for fig in figs:
        res = by_name.get(fig.name)
        if res is not None and res["measured"] is not None:
            value = res["measured"]
            how = f"{res['source']} run {now}"
            if res["source"] == "quick":
                value = f"*quick:* {value}"
        else:
            value, old_how = previous.get(fig.name, ("not measured yet", ""))
            if res is None:
                how = old_how or "not run yet"
            else:
                why = res["source"]
                why = why[len("not run: "):] if why.startswith("not run: ") else why
                origin = _origin(old_how)
                how = f"not re-measured: {why}" + (f"; value from {origin}" if origin and
                                                   value != "not measured yet" else "")
        rows.append({"name": fig.name, "check": fig.check, "target": fig.target, "measured": value, "from": how})
    return rows


def _heading(where, now, command) -> str:
    return (f"Written by `{command}` on {_esc(where or machine())}, {now}. *quick*: from `--quick` (fewer seeds "
            "or a smaller problem); *not re-measured*: the command could not measure it here (the reason is "
            "given) and the value is the one measured before, with where it came from.")


def markdown_table(figs, results, *, previous=None, when=None, where=None) -> str:
    """The table (with its heading line): one row per figure, this run's value or the previous one."""
    now = when or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    lines = [_heading(where, now, "dynfit bench --all --markdown --update-readme"), "", HEADER, "|---|---|---|---|"]
    for r in table_rows(figs, results, previous=previous, when=now):
        lines.append(f"| {r['check']} | {r['target']} | {_esc(r['measured'])} | `{r['name']}`: {_esc(r['from'])} |")
    return "\n".join(lines)


def _commands(cmd) -> str:
    if cmd is None:
        return "none"
    cmds = [cmd] if isinstance(cmd, str) else list(cmd)
    return "; ".join(f"`{c.replace('{python}', 'python')}`" for c in cmds)


def figures_page(figs, rows, *, when=None, where=None) -> str:
    """``docs/figures.md``: one section per figure (anchor ``#NAME``) from the same rows as the README table."""
    now = when or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    by_name = {r["name"]: r for r in rows}
    out = ["# Measured figures", "",
           "<!-- written by `dynfit bench --all --update-docs`: edit napari_dynfit.bench.figures, not this page -->", "",
           _heading(where, now, "dynfit bench --all --update-readme --update-docs"), "",
           "The README's table holds the same rows; other pages link here (`figures.md#NAME`) instead of "
           f"typing the numbers. Local data sets are read from the folder `${DATA_ENV}` names.", ""]
    for fig in figs:
        r = by_name[fig.name]
        out += [f"## {fig.name}", "", f"- **check:** {fig.check}", f"- **target:** {fig.target}",
                f"- **measured:** {r['measured']}", f"- **from:** {r['from']}",
                f"- **measured by:** {_commands(fig.command)}"]
        if fig.quick and fig.command is not None:
            out.append(f"- **quick variant:** {_commands(fig.quick)}")
        if fig.needs and fig.command is not None:
            out.append(f"- **needs:** {fig.needs}")
        out.append("")
    return "\n".join(out)


def replace_table(readme_text: str, table: str) -> str:
    """``readme_text`` with the part between the markers replaced by ``table`` (every other byte kept)."""
    if readme_text.count(BEGIN) != 1 or readme_text.count(END) != 1:
        raise InputError(f"the README must hold exactly one {BEGIN} and one {END} marker")
    i = readme_text.index(BEGIN) + len(BEGIN)
    j = readme_text.index(END)
    if j < i:
        raise InputError(f"{END} comes before {BEGIN} in the README")
    return readme_text[:i] + "\n" + table.rstrip("\n") + "\n" + readme_text[j:]


def write_text(path, text: str) -> None:
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

