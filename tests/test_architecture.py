"""The layers of docs/architecture.md, checked on the source with :mod:`ast` (no import of adamlab).

Every ``import`` and ``from ... import`` counts, at module level or inside a function. A statement is
an edge to the module it names (``from adamlab.data import cifar`` is an edge to the package
``adamlab.data``, whose ``__init__`` runs, and to ``adamlab.data.cifar``); relative imports are
resolved. The checks, each printing what breaks it:

(a) no import cycle between modules; (b) imports only go down the layers
(:data:`LAYERS`; nothing imports ``adamlab.cli``); (c) no package holds more than 25% of the source
lines; (d) ``os.replace`` in at most 2 files, (e) ``matplotlib.use(`` in at most 1 file, of src/,
scripts/ and benchmarks/ (the one atomic writer, the one figure style); (f) no private name (one
leading underscore) taken from another adamlab module, by ``from m import _x`` or as ``m._x`` on an
imported module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "adamlab"

#: The layers, bottom to top: a module may import only from its own layer or a lower one.
LAYERS = ("util", "plotting", "functional", "optim", "dissect", "data", "problems", "runs", "store",
          "selection", "runner", "analysis", "claims", "reproduce", "commands", "cli")
MAX_PACKAGE_SHARE = 0.25
MAX_OS_REPLACE_FILES = 2
MAX_MATPLOTLIB_USE_FILES = 1
CODE_DIRS = ("src", "scripts", "benchmarks")


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}  ({self.path}:{self.line})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


@cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def resolve(source: str, node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from`` import in module ``source``."""
    if not node.level:
        return node.module or ""
    base = source.split(".")
    if not is_package(source):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def nearest_module(name: str) -> str | None:
    """``name`` or its longest prefix that is an adamlab module (None outside adamlab)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules():
            return candidate
        parts.pop()
    return None


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def imports(source: str) -> Iterator[tuple[ast.stmt, str, list[str]]]:
    """``(node, module named, names imported from it)`` for every import statement of ``source``."""
    for node in ast.walk(parse(modules()[source])):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            yield node, resolve(source, node), [alias.name for alias in node.names]


@cache
def edges() -> list[Edge]:
    """Every import edge between two adamlab modules."""
    found: set[Edge] = set()
    for source, path in modules().items():
        for node, named, names in imports(source):
            targets = [nearest_module(named)]
            targets += [f"{named}.{n}" for n in names if f"{named}.{n}" in modules()]
            for target in targets:
                if target is not None and target != source:
                    found.add(Edge(source, target, relative(path), node.lineno))
    return sorted(found, key=lambda e: (e.source, e.target, e.line))


def layer(module: str) -> str:
    """The layer of a module: the package (or top-level module) below ``adamlab``; ``adamlab`` itself
    (which only holds ``__version__``) is below every layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def layer_index(module: str) -> int:
    name = layer(module)
    return -1 if name == PACKAGE else LAYERS.index(name)


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for e in edges():
        graph[e.source].add(e.target)
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
    return sorted(found)


def report(title: str, lines: list[str]) -> str:
    return f"{title} ({len(lines)}):\n" + "\n".join(f"  {line}" for line in lines)


def code_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py"))


def files_calling(module: str, attr: str) -> dict[str, list[int]]:
    """Files of src/, scripts/ and benchmarks/ that call or name ``module.attr`` (through any alias of
    ``module``, or ``from module import attr``): relative path -> lines."""
    found: dict[str, list[int]] = {}
    for path in code_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {module}
        direct: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {a.asname for a in node.names if a.name == module and a.asname}
            elif isinstance(node, ast.ImportFrom) and node.module == module:
                direct |= {a.asname or a.name for a in node.names if a.name == attr}
        lines = [node.lineno for node in ast.walk(tree)
                 if (isinstance(node, ast.Attribute) and node.attr == attr
                     and isinstance(node.value, ast.Name) and node.value.id in aliases)
                 or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in direct)]
        if lines:
            found[relative(path)] = sorted(lines)
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports() -> list[str]:
    """``from adamlab.m import _x``, and ``m._x`` on a name bound to an adamlab module ``m``."""
    found: list[str] = []
    for source, path in modules().items():
        bound: dict[str, str] = {}  # local name -> adamlab module it is bound to
        for node, named, _names in imports(source):
            where = f"{relative(path)}:{node.lineno}"
            if nearest_module(named) is None:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
                continue
            for alias in node.names:
                if named != source and is_private(alias.name):
                    found.append(f"{source} imports {named}.{alias.name}  ({where})")
                if f"{named}.{alias.name}" in modules():
                    bound[alias.asname or alias.name] = f"{named}.{alias.name}"
        for node in ast.walk(parse(path)):
            if not isinstance(node, ast.Attribute):
                continue
            chain: list[str] = []
            value: ast.expr = node
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if not (isinstance(value, ast.Name) and value.id in bound):
                continue
            target = bound[value.id]
            for attr in chain:  # follow submodules, then the first non-module attribute
                if f"{target}.{attr}" in modules():
                    target = f"{target}.{attr}"
                    continue
                if is_private(attr) and target != source:
                    found.append(f"{source} uses {target}.{attr}  ({relative(path)}:{node.lineno})")
                break
    return sorted(set(found))


def test_modules_are_found() -> None:
    assert {"adamlab.cli", "adamlab.util.registry", "adamlab.problems.base"} <= set(modules())
    assert any(e.source == "adamlab.cli" for e in edges())


def test_relative_imports_resolve() -> None:
    def node(code: str) -> ast.ImportFrom:
        return ast.parse(code).body[0]  # type: ignore[return-value]

    assert resolve("adamlab.problems.mnist", node("from .noise import Dropout")) == "adamlab.problems.noise"
    assert resolve("adamlab.problems", node("from .base import get")) == "adamlab.problems.base"
    assert resolve("adamlab.runner.backends.vmap", node("from ..train import run")) == "adamlab.runner.train"
    assert resolve("adamlab.problems.mnist", node("from . import noise")) == "adamlab.problems"
    assert resolve("adamlab.cli", node("from adamlab.commands import COMMANDS")) == "adamlab.commands"


def test_no_import_cycles() -> None:
    found = cycles()
    lines = []
    for component in found:
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        lines += [f"  {e}" for e in edges() if e.source in members and e.target in members]
    assert not found, report("import cycles, with the edges inside each", lines)


def test_imports_only_go_down_the_layers() -> None:
    unknown = sorted({layer(m) for m in modules()} - set(LAYERS) - {PACKAGE})
    assert not unknown, f"packages missing from LAYERS (and docs/architecture.md): {unknown}"
    upward = [str(e) + f"  [{layer(e.source)} -> {layer(e.target)}]" for e in edges()
              if layer_index(e.target) > layer_index(e.source)]
    assert not upward, report("imports from a lower layer to a higher one", upward)


def test_nothing_imports_the_cli() -> None:
    into_cli = [str(e) for e in edges() if e.target == f"{PACKAGE}.cli"]
    assert not into_cli, report("imports of adamlab.cli", into_cli)


def test_no_package_holds_more_than_a_quarter_of_the_source() -> None:
    lines: dict[str, int] = {}
    for name, path in modules().items():
        lines[layer(name)] = lines.get(layer(name), 0) + len(path.read_text(encoding="utf-8").splitlines())
    total = sum(lines.values())
    big = [f"{name}: {n} of {total} lines ({n / total:.0%})" for name, n in sorted(lines.items())
           if n > MAX_PACKAGE_SHARE * total]
    assert not big, report(f"packages above {MAX_PACKAGE_SHARE:.0%} of the source lines", big)


def test_one_atomic_writer() -> None:
    found = files_calling("os", "replace")
    lines = [f"{path}:{','.join(map(str, where))}" for path, where in found.items()]
    assert len(found) <= MAX_OS_REPLACE_FILES, report(
        f"files using os.replace (at most {MAX_OS_REPLACE_FILES}; write through adamlab.util.files)", lines)


def test_one_matplotlib_backend_choice() -> None:
    found = files_calling("matplotlib", "use")
    lines = [f"{path}:{','.join(map(str, where))}" for path, where in found.items()]
    assert len(found) <= MAX_MATPLOTLIB_USE_FILES, report(
        f"files calling matplotlib.use (at most {MAX_MATPLOTLIB_USE_FILES}; use adamlab.plotting)", lines)


def test_no_private_names_across_modules() -> None:
    found = private_imports()
    assert not found, report("private names taken from another adamlab module", found)
