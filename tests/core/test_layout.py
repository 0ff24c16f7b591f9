"""The packages' shape: no import cycles inside ``nnaudio_core`` or ``nnaudio_cli`` (counting
imports at module level and inside functions), and the core never imports the CLI.

The graph is read from the source (``ast``), so the test needs no imports of its own and
covers every module, however the packages are laid out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("nnaudio_core", "nnaudio_cli")


def _modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package``."""
    root = REPO / package
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(name: str, path: Path) -> set[str]:
    """Absolute names of everything ``name`` (in file ``path``) imports, at any depth."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{alias.name}" for alias in node.names)
    return out


def _graph(package: str) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports (``from pkg import mod`` counts as
    importing ``pkg.mod``; a package's own ``__init__`` is not an edge of its children)."""
    mods = _modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges = set()
        for target in _imported(name, path):
            # the longest prefix that is a module of this package
            parts = target.split(".")
            while parts and ".".join(parts) not in mods:
                parts.pop()
            hit = ".".join(parts)
            if hit and hit != name and not name.startswith(hit + "."):
                edges.add(hit)
        graph[name] = edges
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    graph = _graph(package)
    assert len(graph) > 3, f"{package}: no modules found"
    cycle = _find_cycle(graph)
    assert cycle is None, f"import cycle in {package}: {' -> '.join(cycle or [])}"


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_never_imports_the_cli():
    for name, path in _modules("nnaudio_core").items():
        bad = sorted(t for t in _imported(name, path) if t.split(".")[0] == "nnaudio_cli")
        assert not bad, f"{name} imports {bad}"
