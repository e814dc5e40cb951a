"""The package layering of docs/architecture.md holds: no upward import, no package cycle.

The layers are read from the ``layers`` block of ``docs/architecture.md`` (one home: the doc
is the rule), the imports from the production code under ``src/sprig`` (``_tests`` and
``conftest.py`` are not production code; lazy and ``TYPE_CHECKING`` imports count, since they
couple the packages just the same). Each failure names the file, the line and the import.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

SPRIG = Path(__file__).resolve().parents[1]
DOC = SPRIG.parents[1] / "docs" / "architecture.md"


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str
    source: str          # the importing unit (top-level package or module of sprig)
    target: str          # the imported unit


def read_layers(text: str) -> dict[str, int]:
    """``unit -> layer number`` from the doc's fenced ``layers`` block."""
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, f"{DOC}: no ```layers block"
    layers: dict[str, int] = {}
    for line in block.group(1).splitlines():
        m = re.match(r"\s*(\d+)\s+[^:]+:\s*(.*)", line)
        assert m, f"{DOC}: cannot read layer line {line!r}"
        for unit in m.group(2).split():
            assert unit not in layers, f"{DOC}: {unit} is in two layers"
            layers[unit] = int(m.group(1))
    return layers


def _unit(module: str) -> str:
    """``sprig.core.kernel`` -> ``core``; ``sprig`` -> ``sprig``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "sprig"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SPRIG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def production_files() -> list[Path]:
    return sorted(p for p in SPRIG.rglob("*.py")
                  if "_tests" not in p.relative_to(SPRIG).parts and p.name != "conftest.py")


def imports_of(path: Path) -> list[Import]:
    """Every import of another Sprig unit in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    source = _unit(module)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            elif node.module:
                names = [node.module]
            if names == ["sprig"]:          # from sprig import disk, assets ...
                names = [f"sprig.{a.name}" for a in node.names
                         if (SPRIG / a.name).is_dir() or (SPRIG / f"{a.name}.py").is_file()] \
                    or ["sprig"]
        for name in names:
            if name == "sprig" or name.startswith("sprig."):
                target = _unit(name)
                if target != source:
                    out.append(Import(str(path.relative_to(SPRIG.parents[1])), node.lineno,
                                      name, source, target))
    return out


def all_imports() -> list[Import]:
    return [i for path in production_files() for i in imports_of(path)]


def _units() -> set[str]:
    return {_unit(_module_name(p)) for p in production_files()}


def upward(imports: list[Import], layers: dict[str, int]) -> list[str]:
    return [f"{i.file}:{i.line}: `{i.module}` goes up from {i.source} (layer "
            f"{layers[i.source]}) to {i.target} (layer {layers[i.target]})"
            for i in imports if layers[i.target] > layers[i.source]]


def cycles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for i in imports:
        graph[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(component: list[str], imports: list[Import]) -> str:
    members = set(component)
    edges = [f"  {i.file}:{i.line}: {i.source} -> {i.target} (`{i.module}`)" for i in imports
             if i.source in members and i.target in members]
    return f"cycle {' <-> '.join(component)}:\n" + "\n".join(edges)


def test_every_package_has_a_layer() -> None:
    layers = read_layers(DOC.read_text(encoding="utf-8"))
    missing = sorted(_units() - set(layers))
    assert not missing, f"not in any layer of {DOC}: {missing}"
    stale = sorted(set(layers) - _units())
    assert not stale, f"{DOC} lists packages that do not exist: {stale}"


def test_no_import_goes_up_a_layer() -> None:
    layers = read_layers(DOC.read_text(encoding="utf-8"))
    bad = upward([i for i in all_imports() if i.source in layers and i.target in layers],
                 layers)
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)


def test_no_package_cycle() -> None:
    imports = all_imports()
    found = cycles(imports)
    assert not found, "\n".join(_describe(c, imports) for c in found)


# ---- the checks themselves can fail ------------------------------------------------------------

def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_checks_catch_a_cycle_and_an_upward_import(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    fake = tmp_path / "src" / "sprig"
    _write(fake, "__init__.py", "")
    _write(fake, "low/__init__.py", "")
    _write(fake, "low/a.py", "from sprig.high.b import thing\n")
    _write(fake, "high/__init__.py", "")
    _write(fake, "high/b.py", "import sprig.low.a\n")
    _write(fake, "high/c.py", "from ..low import a\n")
    monkeypatch.setattr(sys.modules[__name__], "SPRIG", fake)
    imports = all_imports()
    assert {(i.source, i.target) for i in imports} == {("low", "high"), ("high", "low")}
    assert cycles(imports) == [["high", "low"]]
    bad = upward(imports, {"low": 1, "high": 2})
    assert bad == ["src/sprig/low/a.py:1: `sprig.high.b` goes up from low (layer 1) to high "
                   "(layer 2)"]


def test_the_layers_block_is_read() -> None:
    assert read_layers("```layers\n2 top: a b\n1 base: c\n```") == {"a": 2, "b": 2, "c": 1}
