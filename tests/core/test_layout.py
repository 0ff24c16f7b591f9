"""The packages' shape: no import cycles inside ``nnaudio_core`` or ``nnaudio_cli`` (counting
imports at module level and inside functions), the core never imports the CLI, no module
grows past 500 lines (``filters.py``, the catalogue of filter banks, excepted), kernels are
built in ``filters.py`` only, and the module map names every module.

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


#: the one module allowed past MAX_LINES: the catalogue of every filter bank (its docstring)
LONG_MODULES = {"nnaudio_core/filters.py"}
MAX_LINES = 500


def test_no_module_is_over_500_lines():
    long = []
    for package in PACKAGES:
        for path in _modules(package).values():
            rel = path.relative_to(REPO).as_posix()
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > MAX_LINES and rel not in LONG_MODULES and not rel.endswith("_schema_data.py"):
                long.append(f"{rel} ({n} lines)")
    assert not long, f"split by job: {', '.join(long)}"


def _returns_array(node: ast.FunctionDef) -> bool:
    return node.returns is not None and ast.unparse(node.returns) in ("np.ndarray",
                                                                      "numpy.ndarray")


def test_filter_banks_are_built_in_filters_only():
    """The rule in ``nnaudio_core.filters``' docstring: it is torch-free, and no module-level
    function of a transform module returns a numpy array (a bank built outside it)."""
    filters = REPO / "nnaudio_core" / "filters.py"
    assert not {t for t in _imported("nnaudio_core.filters", filters)
                if t.split(".")[0] == "torch"}
    builders = []
    for path in sorted((REPO / "nnaudio_core" / "features").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        builders += [f"{path.name}:{n.name}" for n in tree.body
                     if isinstance(n, ast.FunctionDef) and _returns_array(n)]
    assert not builders, f"build these in nnaudio_core/filters.py: {builders}"


# --- the module map (docs/development.md) -------------------------------------------------

#: where the map is (the README links it)
MAP_FILE = REPO / "docs" / "development.md"

#: modules the map leaves out on purpose: package markers, the ``python -m`` hook, generated
UNMAPPED = {"__init__.py", "__main__.py", "_schema_data.py"}


def _map_blocks() -> list[list[str]]:
    """The map file's code blocks that start with a package folder (``nnaudio_cli/`` ...)."""
    blocks, current = [], None
    for line in MAP_FILE.read_text().splitlines():
        text = line.strip()
        if text.startswith("```"):
            if current:
                blocks.append(current)
            current = [] if current is None else None
            continue
        if current is not None:
            current.append(line)
    return [b for b in blocks if b and b[0].strip() in ("nnaudio_cli/", "nnaudio_core/")]


def mapped_paths(lines: list[str]) -> set[str]:
    """Files (``pkg/dir/mod.py``) and folders (``pkg/dir/``) a module-map block names.

    Each line is ``NAME  description`` indented two spaces per level under the folder
    above it; a line of several ``*.py`` names (and nothing else) lists that folder's files.
    A wrapped description (a line whose first word is not a ``.py`` or folder name) adds
    nothing."""
    out: set[str] = set()
    stack: list[tuple[int, str]] = []  # (indent, folder path)
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        words = line.split()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if all(w.endswith(".py") for w in words):
            out.update(parent + w for w in words)
        elif words[0].endswith("/"):
            path = parent + words[0]
            out.add(path)
            stack.append((indent, path))
        elif words[0].endswith(".py"):
            out.add(parent + words[0])
    return out


def test_module_map_parser_reads_folders_files_and_lists() -> None:
    lines = ["pkg/", "  a.py       one", "             wrapped text.py here", "  sub/  two",
             "    b.py  c.py", "  d.py  three"]
    assert mapped_paths(lines) == {"pkg/", "pkg/a.py", "pkg/sub/", "pkg/sub/b.py",
                                   "pkg/sub/c.py", "pkg/d.py"}


def test_module_map_names_every_module_and_only_real_ones() -> None:
    """The map in docs/development.md (nnaudio_cli/ and nnaudio_core/) cannot name a module
    that does not exist, nor leave one out (extract/'s stages are mapped in their own block)."""
    blocks = _map_blocks()
    assert {b[0].strip() for b in blocks} == {"nnaudio_cli/", "nnaudio_core/"}
    named: set[str] = set()
    for block in blocks:
        named |= mapped_paths(block)
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"the module map names what does not exist: {missing}"
    # extract/'s stages: the block of bare stage names after "wires one module per stage"
    text = MAP_FILE.read_text()
    stages = text.split("wires one module per stage:", 1)[1].split("```")[1]
    named |= {f"nnaudio_cli/extract/{line.split()[0]}" for line in stages.splitlines()
              if line.split() and line.split()[0].endswith(".py")}
    unmapped = sorted(
        str(p.relative_to(REPO)) for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")
        if p.name not in UNMAPPED and str(p.relative_to(REPO)) not in named
    )
    assert not unmapped, f"modules the module map leaves out: {unmapped}"
