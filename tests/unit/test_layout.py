"""The package's shape: rooms small enough to read, a short root, imports that point one way.

Read from the source with ``ast`` (nothing is imported): the import graph counts the
imports a module makes when it loads, not those inside functions or for type checkers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "decart_sync"
MAX_LINES = 400
MAX_ROOT_MODULES = 15

# Who may import whom, by room: a room imports only from the rooms listed for it.
# The root's own modules (errors, models, options, ...) sit between the layers and are
# checked by the cycle test only.
BELOW: dict[str, set[str]] = {
    "metrics": set(),
    "realtime": {"metrics"},
    "rest": {"realtime"},
    "client": {"realtime", "metrics", "rest"},
    "notebook": {"client", "realtime"},
    "cli": {"client", "realtime", "emulator", "notebook", "rest"},
    "ros": {"client", "realtime"},
    # the emulator is an independent check of the client: it shares only media parts
    "emulator": {"realtime.clock", "realtime.transports.loopback", "realtime.transports.recovery"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def loaded_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules ``name`` imports when it loads."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:  # top level only: not functions, not `if TYPE_CHECKING:`
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: loaded_imports(name, path, set(known)) for name, path in known.items()}


def test_no_module_is_over_400_lines() -> None:
    root = PACKAGE.parent
    rooms = ("decart_sync", "tests", "benchmarks", "examples")
    sources = [path for room in rooms for path in (root / room).rglob("*.py")]
    long = {
        str(path.relative_to(root)): lines
        for path in sources
        if "node_modules" not in path.parts
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_the_root_holds_at_most_15_modules() -> None:
    root = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


def _room(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or name in {f"decart_sync.{r}" for r in BELOW} else ""


@pytest.mark.parametrize("room", sorted(BELOW))
def test_imports_point_one_way(room: str) -> None:
    allowed = BELOW[room]
    wrong = {}
    for name, imports in graph().items():
        if _room(name) != room:
            continue
        for target in imports:
            other = _room(target)
            rest = target.removeprefix("decart_sync.")
            if other in ("", room) or other in allowed or rest in allowed:
                continue
            wrong.setdefault(name, []).append(target)
    assert not wrong, wrong


def test_docstrings_use_the_sites_markup() -> None:
    # mkdocstrings renders Markdown: a Sphinx role would show as raw text on the site.
    role = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`")
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if role.search(line)
    ]
    assert not found, found
