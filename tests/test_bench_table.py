"""``dynfit bench --all --markdown``: the README's table of figures written from a registry of benchmarks."""

import importlib.util
import json
import os
import re
import sys
import textwrap

import pytest

from napari_dynfit.bench import table as bt
from napari_dynfit.cli import main

README = (
    "# Title\r\n\nSome text that must stay byte for byte, trailing spaces   \n\n"
    "<!-- bench:begin -->\n| old | table |\n<!-- bench:end -->\n\nAfter the table: ünïcode, `code`.\n"
)


def _registry(tmp_path):
    """Two rows: ``tiny`` (a one-line Python command printing JSON, with a quick variant) and ``manual``."""
    (tmp_path / "benchmarks").mkdir()
    script = tmp_path / "benchmarks" / "tiny.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        n = 3 if "--quick" in sys.argv else 30
        print("a progress line first")
        print(json.dumps({"mean": sum(range(n)) / n, "n": n}))
    """))
    reg = tmp_path / "benchmarks" / "figures.py"
    reg.write_text(textwrap.dedent("""
        from napari_dynfit.bench.table import Figure
        FIGURES = [
            Figure("tiny", "mean of 0..n-1 `\\\\|x\\\\|`", "(n - 1) / 2", "{python} benchmarks/tiny.py",
                   lambda js: f"{js['mean']:.1f} (n = {js['n']})", quick="{python} benchmarks/tiny.py --quick"),
            Figure("manual", "a figure nobody can run here", "> 1", None, needs="a GPU"),
        ]
    """))
    (tmp_path / "README.md").write_bytes(README.encode("utf-8"))
    return reg


def _outside(text):
    return text[:text.index(bt.BEGIN)], text[text.index(bt.END):]


def test_quick_run_writes_the_table_and_keeps_the_rest_of_the_readme(tmp_path, capsys):
    reg = _registry(tmp_path)
    readme = tmp_path / "README.md"
    assert main(["bench", "--all", "--markdown", "--quick", "--update-readme", "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    new = readme.read_bytes().decode("utf-8")
    assert _outside(new) == _outside(README)                      # every byte outside the markers kept
    assert "| old | table |" not in new and out.strip() in new    # the printed table is the written one
    rows = {r[3].split("`")[1]: r for r in map(bt._cells, new.splitlines()) if len(r) == 4 and r[3].startswith("`")}
    assert rows["tiny"][2] == "*quick:* 1.0 (n = 3)" and "quick run" in rows["tiny"][3]   # mean of 0, 1, 2
    assert rows["tiny"][0] == "mean of 0..n-1 `|x|`"
    assert rows["manual"][2] == "not measured yet" and "needs a GPU" in rows["manual"][3]
    assert bt.machine().split(",")[0] in new
    assert not list(tmp_path.glob(".README.md.tmp-*"))            # written atomically, nothing left over

    # a full run of the manual row only: nothing runs, the tiny row keeps its quick value and says so
    assert main(["bench", "--all", "--only", "manual", "--update-readme", "--registry", str(reg)]) == 0
    again = readme.read_bytes().decode("utf-8")
    rows = {r[3].split("`")[1]: r for r in map(bt._cells, again.splitlines()) if len(r) == 4 and r[3].startswith("`")}
    assert rows["tiny"][2] == "*quick:* 1.0 (n = 3)" and "quick run" in rows["tiny"][3]
    assert _outside(again) == _outside(README)


def test_full_run_json_and_errors(tmp_path, capsys):
    reg = _registry(tmp_path)
    assert main(["bench", "--all", "--only", "tiny", "--registry", str(reg)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["results"] == [pytest.approx({"name": "tiny", "measured": "14.5 (n = 30)", "source": "full",
                                             "seconds": res["results"][0]["seconds"]})]
    # unknown figure, missing markers, no --all: one line, exit 2, README untouched
    assert main(["bench", "--all", "--only", "nope", "--registry", str(reg)]) == 2
    assert "unknown figure 'nope'" in capsys.readouterr().err
    (tmp_path / "README.md").write_text("no markers here\n")
    assert main(["bench", "--all", "--update-readme", "--registry", str(reg)]) == 2
    err = capsys.readouterr().err
    assert "<!-- bench:begin -->" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "README.md").read_text() == "no markers here\n"
    assert main(["bench"]) == 2
    assert "--all" in capsys.readouterr().err


def test_a_failing_command_keeps_the_previous_value(tmp_path):
    figs = [bt.Figure("boom", "c", "t", f"{sys.executable} -c \"raise SystemExit('no data here')\"", needs="data")]
    res = bt.run_figures(figs)
    assert res[0]["measured"] is None and "no data here" in res[0]["source"]
    table = bt.markdown_table(figs, res, previous={"boom": ("0.5", "full run 2026-01-01")}, when="2026-02-02",
                              where="here")
    row = bt._cells(table.splitlines()[-1])
    assert row[2] == "0.5" and row[3].startswith("`boom`: not re-measured: failed: no data here")
    assert row[3].endswith("; value from full run 2026-01-01")
    # failing again keeps the origin, not a chain of reasons; the earlier "ORIGIN; kept: WHY" wording is read too
    for old in (row[3].split(": ", 1)[1], "typed by hand; kept: needs data"):
        again = bt.table_rows(figs, res, previous={"boom": ("0.5", old)}, when="2026-03-03")[0]
        assert again["from"].count("not re-measured") == 1 and again["from"].endswith(
            "value from " + ("full run 2026-01-01" if "full" in old else "typed by hand"))


def test_a_producer_that_breaks_keeps_the_commands_output(tmp_path):
    def broken(js):
        from .nowhere import thing  # noqa: F401 - a relative import in a registry loaded as a file

    cmd = f"{sys.executable} -c \"print('{{\\\"value\\\": 3}}')\""
    res = bt.run_figures([bt.Figure("late", "c", "t", cmd, broken)])[0]
    assert res["measured"] is None and res["source"].startswith("failed: could not read the result (ImportError")
    with open(res["kept"]) as fh:  # the run is not lost: its output can be read again
        assert json.loads(fh.read()) == {"value": 3}
    os.remove(res["kept"])


def test_the_registry_file_imports_nothing_relatively():
    root = bt.find_root()
    if root is None:
        pytest.skip("not a source checkout")
    text = (root / bt.REGISTRY).read_text(encoding="utf-8")
    assert not re.search(r"^\s*from \.", text, re.M), "load_registry runs the file outside its package"


def test_the_repository_registry_loads_and_names_every_readme_row():
    root = bt.find_root()
    if root is None:
        pytest.skip("not a source checkout")
    figs = bt.load_registry(root / bt.REGISTRY)
    text = (root / "README.md").read_text(encoding="utf-8")
    assert text.count(bt.BEGIN) == 1 and text.count(bt.END) == 1
    assert set(bt.previous_rows(text)) == {f.name for f in figs}


def test_last_json_reads_the_last_object_after_text_and_json_lines():
    assert bt.last_json('progress\n{"a": 1}\n{"summary": true, "b": [1, 2]}\n') == {"summary": True, "b": [1, 2]}
    assert bt.last_json('chosen: x = 1 {not json}\n{\n "ours": {"LNK": 0.9}\n}\n') == {"ours": {"LNK": 0.9}}
    assert bt.last_json('result: {"x": 2}') == {"x": 2}
    with pytest.raises(ValueError):
        bt.last_json("no json at all")


def test_rows_that_cannot_run_here_say_why_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    cmd = f"{sys.executable} -c \"open(r'{marker}', 'w').write('x'); print('{{}}')\""
    monkeypatch.delenv(bt.DATA_ENV, raising=False)
    figs = [bt.Figure("mod", "c", "t", cmd, requires=("no_such_module_xyz",)),
            bt.Figure("data", "c", "t", cmd, data=("movie",), data_label="the movie"),
            bt.Figure("busy", "c", "t", cmd, max_load=-1.0),
            bt.Figure("manual", "c", "t", None, needs="a display")]
    res = {r["name"]: r["source"] for r in bt.run_figures(figs)}
    assert res["mod"] == "not run: needs no_such_module_xyz (not installed here)"
    assert res["data"].startswith(f"not run: needs the movie (local only: set {bt.DATA_ENV}")
    assert res["busy"].startswith("not run: needs a quiet machine")
    assert res["manual"] == "not run: needs a display"
    assert not marker.exists()
    table = bt.markdown_table(figs, bt.run_figures(figs), previous={"data": ("1.0", "typed by hand")}, where="here")
    rows = {r[3].split("`")[1]: r for r in map(bt._cells, table.splitlines()) if len(r) == 4 and r[3].startswith("`")}
    assert rows["data"][2] == "1.0" and rows["data"][3].startswith("`data`: not re-measured: needs the movie")
    assert rows["data"][3].endswith("value from typed by hand")
    assert rows["mod"][2] == "not measured yet" and "value from" not in rows["mod"][3]


def test_data_folder_and_several_commands(tmp_path, monkeypatch):
    (tmp_path / "movie").mkdir()
    (tmp_path / "movie" / "n.txt").write_text("7")
    monkeypatch.setenv(bt.DATA_ENV, str(tmp_path))
    read = f"{sys.executable} -c \"import json,sys; print(json.dumps({{'n': int(open(sys.argv[1]).read())}}))\""
    fig = bt.Figure("data", "c", "t", [f"{read} {{data}}/movie/n.txt", f"{sys.executable} -c \"print('{{}}')\""],
                    lambda runs: f"{runs[0]['n']} and {len(runs[1])}", data=("movie",))
    assert bt.run_figure(fig)["measured"] == "7 and 0"


def test_update_docs_writes_one_section_per_figure(tmp_path, capsys):
    reg = _registry(tmp_path)
    assert main(["bench", "--all", "--quick", "--update-readme", "--update-docs", "--registry", str(reg)]) == 0
    page = (tmp_path / "docs" / "figures.md").read_text(encoding="utf-8")
    assert "## tiny" in page and "## manual" in page
    assert "- **measured:** *quick:* 1.0 (n = 3)" in page and "`python benchmarks/tiny.py`" in page
    assert "- **from:** not re-measured: needs a GPU" in page
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "*quick:* 1.0 (n = 3)" in readme


def test_every_registry_row_has_a_producer_or_a_reason_and_the_docs_link_real_rows():
    import re

    root = bt.find_root()
    if root is None:
        pytest.skip("not a source checkout")
    figs = bt.load_registry(root / bt.REGISTRY)
    names = {f.name for f in figs}
    for fig in figs:
        if fig.command is None:
            assert fig.needs, f"{fig.name}: no command and no reason"
            continue
        cmds = [fig.command] if isinstance(fig.command, str) else fig.command
        for cmd in cmds + ([fig.quick] if isinstance(fig.quick, str) and fig.quick else []):
            for word in cmd.split():   # the scripts and test files it names are in the checkout
                if word.endswith(".py") and "tests/" in word:
                    assert (root / word.split("::")[0]).is_file(), f"{fig.name}: {word} missing"
                if word.startswith("napari_dynfit.bench."):   # `{python} -m napari_dynfit.bench.NAME`
                    assert importlib.util.find_spec(word) is not None, f"{fig.name}: module {word} missing"
            assert ("{data}" in cmd) == bool(fig.data), f"{fig.name}: {{data}} and data= must go together"
    # every README row was measured by the command or says why not (no silently kept typed value)
    rows = bt.previous_rows((root / "README.md").read_text(encoding="utf-8"))
    for name, (_, how) in rows.items():
        assert re.match(r"(full|quick) run |not re-measured", how), f"README row {name}: {how!r}"
    # links to the generated page name rows that exist
    for doc in [root / "README.md", *sorted(p for p in (root / "docs").glob("*.md") if p.name != "figures.md")]:
        for name in re.findall(r"figures\.md#([\w-]+)", doc.read_text(encoding="utf-8")):
            assert name in names, f"{doc.name} links figures.md#{name}, not a row of napari_dynfit.bench.figures"
    page = root / "docs" / "figures.md"
    if page.exists():
        assert {m for m in re.findall(r"(?m)^## (\S+)$", page.read_text(encoding="utf-8"))} == names


def test_rows_written_by_another_run_meanwhile_are_kept(tmp_path, monkeypatch):
    reg = _registry(tmp_path)
    readme = tmp_path / "README.md"
    assert main(["bench", "--all", "--only", "manual", "--update-readme", "--registry", str(reg)]) == 0
    run = bt.run_figures

    def slow_run(*args, **kwargs):  # while this run measures `manual`, another one writes `tiny`
        out = run(*args, **kwargs)
        other = bt.markdown_table(bt.load_registry(reg), [{"name": "tiny", "measured": "9.9", "source": "full"}],
                                  previous=bt.previous_rows(readme.read_text(encoding="utf-8")))
        readme.write_text(bt.replace_table(readme.read_text(encoding="utf-8"), other), encoding="utf-8")
        return out

    monkeypatch.setattr(bt, "run_figures", slow_run)
    assert main(["bench", "--all", "--only", "manual", "--update-readme", "--registry", str(reg)]) == 0
    rows = bt.previous_rows(readme.read_text(encoding="utf-8"))
    assert rows["tiny"][0] == "9.9" and rows["manual"][1].startswith("not re-measured: needs a GPU")
