"""The seams of docs/architecture.md, checked on the source: who commits, who names a
payment provider, and that the package imports no module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PORTAL = Path(__file__).resolve().parents[2] / "portal"
# The boundaries: the request (transactions.py), the job and the worker's own bookkeeping
# (jobs/), each CLI command (cli modules), and the circuit breakers, whose state every
# worker must see at once.
MAY_COMMIT = {
    "portal/transactions.py", "portal/jobs/worker.py", "portal/jobs/claims.py",
    "portal/jobs/periodic.py", "portal/providers/circuit.py",
    "portal/customer/opens.py",  # the open counter's flush thread: a boundary of its own
}  # fmt: skip


def modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PORTAL.parent)): ast.parse(path.read_text(), str(path))
        for path in sorted(PORTAL.rglob("*.py"))
    }


def _name(path: str) -> str:
    dotted = path.removesuffix(".py").replace("/", ".")
    return dotted.removesuffix(".__init__")


def imports(tree: ast.Module, path: str) -> set[str]:
    """Every portal module ``tree`` imports, at module level or inside a function."""
    found: set[str] = set()
    package = _name(path) if path.endswith("__init__.py") else _name(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("portal")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.startswith("portal"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def test_only_the_boundaries_commit():
    offenders = []
    for path, tree in modules().items():
        if path in MAY_COMMIT or path.endswith("cli.py"):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "commit"
            ):
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == [], "services add and flush; the boundary commits"


VIEWS = (
    "portal/customer/views.py", "portal/customer/account.py", "portal/api/views.py",
    "portal/support/views.py", "portal/webhooks/views.py", "portal/devtools/views.py",
    "portal/reminders/views.py",
)  # fmt: skip


@pytest.mark.parametrize("path", VIEWS)
def test_views_never_name_a_payment_provider(path):
    tree = modules()[path]
    named = {m for m in imports(tree, path) if m.startswith("portal.providers")}
    assert named == set(), f"{path} imports {named}"
    source = (PORTAL.parent / path).read_text()
    for provider in ('"stripe"', '"sandbox"', "'stripe'", "'sandbox'"):
        assert provider not in source, f"{path} names {provider}"


def test_no_import_cycles():
    trees = modules()
    known = {_name(p) for p in trees}
    graph: dict[str, set[str]] = {}
    for path, tree in trees.items():
        mod = _name(path)
        # A type-only import is no import at run time.
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node):
                node.body = []
        graph[mod] = {m for m in imports(tree, path) if m in known and m != mod}
        # importing portal.x.y imports the package portal.x first: no edge for that
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)
