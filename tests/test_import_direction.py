"""Import direction of the package (issue 21): the layers import one way, and only ``_napari`` touches Qt/napari.

Every ``import`` / ``from ... import`` statement is read with :mod:`ast`, function-level imports included, and
relative imports are resolved to absolute module names.
"""

import ast
from pathlib import Path

import pytest

PKG = "napari_dynfit"
ROOT = Path(__file__).resolve().parents[1] / "src" / PKG

#: lower layers and the packages they must not import
LOWER = ("fields", "apr", "detect", "track")
UPPER = ("models", "_napari", "commands")
#: GUI toolkits: only modules under ``_napari/`` may import them
GUI = ("qtpy", "napari", "magicgui", "superqt", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "app_model")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """``(line, absolute module)`` for every import in the file (``from a import b`` gives ``a`` and ``a.b``).

    ``source``: the text to parse instead of the file's (``path`` then only places it in the package).
    """
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names if a.name != "*"]
    return out


def _files():
    return sorted(ROOT.rglob("*.py"))


def _under(name: str, pkg: str) -> bool:
    return name == pkg or name.startswith(pkg + ".")


def test_resolves_relative_and_function_level_imports():
    # the parser itself: module-level and function-level relative imports are found and resolved
    names = {m for _, m in imports_of(ROOT / "fields" / "weak.py")}
    assert f"{PKG}.fields.terms" in names and f"{PKG}.errors" in names
    src = "import numpy as np\n\ndef f():\n    from ..models.pde import discover_pde\n    import qtpy.QtCore\n"
    names = {m for _, m in imports_of(ROOT / "fields" / "probe.py", source=src)}
    assert {f"{PKG}.models.pde", f"{PKG}.models.pde.discover_pde", "qtpy.QtCore", "numpy"} <= names
    names = {m for _, m in imports_of(ROOT / "apr" / "__init__.py", source="from .convert import to_apr\n")}
    assert f"{PKG}.apr.convert" in names


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_do_not_import_upper_ones(layer):
    bad = []
    for f in sorted((ROOT / layer).rglob("*.py")):
        for line, mod in imports_of(f):
            if any(_under(mod, f"{PKG}.{up}") for up in UPPER):
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_only_napari_layer_imports_gui_toolkits():
    bad = []
    for f in _files():
        if _under(_module_name(f), f"{PKG}._napari"):
            continue
        for line, mod in imports_of(f):
            if any(_under(mod, g) for g in GUI) or _under(mod, f"{PKG}._napari"):
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_benchmarks_and_demo_stages_live_in_their_own_packages():
    """Benchmark code only in ``bench/``, demo stages only in ``demo/``: nothing else imports them (``dynfit bench`` and
    ``dynfit demo`` aside) and no other module defines a benchmark registry or a demo stage."""
    allowed = {f"{PKG}.commands.bench": "bench", f"{PKG}.commands.demo": "demo"}
    bad = []
    for f in _files():
        here = _module_name(f)
        for pkg in ("bench", "demo"):
            if _under(here, f"{PKG}.{pkg}") or allowed.get(here) == pkg:
                continue
            bad += [f"{f.relative_to(ROOT)}:{line} imports {mod}" for line, mod in imports_of(f)
                    if _under(mod, f"{PKG}.{pkg}")]
        if not (_under(here, f"{PKG}.bench") or _under(here, f"{PKG}.demo")):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            bad += [f"{f.relative_to(ROOT)}:{n.lineno} defines {t.id}" for n in tree.body if isinstance(n, ast.Assign)
                    for t in n.targets if isinstance(t, ast.Name) and t.id in ("BENCHMARKS", "DEMO_STAGE")]
    assert not bad, "\n".join(bad)
