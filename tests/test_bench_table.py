"""``dynfit bench --all --markdown``: the README's table of figures written from a registry of benchmarks."""

import json
import sys
import textwrap

import pytest

from napari_dynfit import bench_table as bt
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
        from napari_dynfit.bench_table import Figure
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
    assert row[2] == "0.5" and row[3].startswith("`boom`: full run 2026-01-01; kept: failed: no data here")


def test_the_repository_registry_loads_and_names_every_readme_row():
    root = bt.find_root()
    if root is None:
        pytest.skip("not a source checkout")
    figs = bt.load_registry(root / "benchmarks" / "figures.py")
    text = (root / "README.md").read_text(encoding="utf-8")
    assert text.count(bt.BEGIN) == 1 and text.count(bt.END) == 1
    assert set(bt.previous_rows(text)) == {f.name for f in figs}
