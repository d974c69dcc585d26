"""The package's shape, guarded as its behaviour is: imports point one way, and every room stays small with one job.

Read from the source with `ast`, nothing imported: an import inside a function or under `TYPE_CHECKING` ties two
rooms as much as one at the top does (the type checker follows both ways round a circle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "playlist_cron"
NAME = "playlist_cron"
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 250
MAX_DOCSTRING_LINE_CHARS = 120


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, known: set[str]) -> Iterator[str]:
    """Given a module's file, yield the package's modules it imports anywhere in it (top level, functions,
    `TYPE_CHECKING`). `from package import name` is an import of the submodule `name` when there is one."""
    this = module_name(path)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == NAME:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source.split(".")[0] != NAME:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield submodule if submodule in known else source


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        name: {target for target in imported_modules(path, known) if target in known and target != name}
        for name, path in found.items()
    }


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    # The reader itself, on the shapes the package uses: a test of the guard, so that a blind guard cannot pass.
    graph = import_graph()
    assert f"{NAME}.cli" in graph[f"{NAME}.__main__"]  # from playlist_cron.cli import main
    assert any(target.startswith(f"{NAME}.") for target in graph[f"{NAME}.check"])
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_another_that_imports_it_back() -> None:
    found = circles(import_graph())
    assert found == [], "import circles (TYPE_CHECKING and function-level imports count): " + "; ".join(
        " <-> ".join(circle) for circle in found
    )


@pytest.mark.parametrize("name", sorted(modules()))
def test_each_module_is_a_small_room_with_one_job_said_in_its_first_line(name: str) -> None:
    path = modules()[name]
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines, more than {MAX_MODULE_LINES}: split its jobs"
    tree = ast.parse(text, str(path))
    docstring = ast.get_docstring(tree, clean=False)
    if path.name == "__init__.py" and not tree.body:
        return
    assert docstring, f"{name} opens with no docstring saying what it is for"
    first = docstring.splitlines()[0]
    assert first.strip(), f"{name}: the docstring's first line says the module's one job"
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno is not None
            size = node.end_lineno - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{name}.{node.name} has {size} lines, more than {MAX_CLASS_LINES}"


def attribute_uses(name: str) -> dict[str, list[int]]:
    """Where in the package an attribute `name` is read (`config.name`, `self.name`), by module: line numbers."""
    found: dict[str, list[int]] = {}
    for module, path in modules().items():
        lines = [
            node.lineno
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Attribute) and node.attr == name
        ]
        if lines:
            found[module] = lines
    return found


def test_the_storage_choice_is_made_in_storage_alone() -> None:
    # The config reads the key; only the storage package asks whether it is set (and the database modules use it).
    askers = {module for module in attribute_uses("database_url") if not module.startswith(f"{NAME}.storage")}
    assert askers <= {f"{NAME}.config"}, f"modules outside storage/ that test database_url: {sorted(askers)}"


def test_no_caller_gets_past_the_storage_interfaces_by_duck_typing() -> None:
    # A backend answers every call of its interface (storage/base.py); mypy checks the calls. hasattr, a getattr
    # with a default, and a cast to Any are how a caller would get past that, so the package uses none of them on
    # its own objects (getattr on another library's objects, such as an exception's `reason`, is allowed).
    found = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id == "hasattr":
                found.append(f"{module}:{node.lineno} hasattr")
            elif node.func.id == "cast" and node.args and ast.unparse(node.args[0]) in ("'Any'", "Any"):
                found.append(f"{module}:{node.lineno} cast(Any)")
            elif node.func.id == "getattr" and node.args:
                target = ast.unparse(node.args[0])
                if any(word in target for word in ("storage", "held", "run_lock", "archive", "fleet", "session")):
                    found.append(f"{module}:{node.lineno} getattr({target}, ...)")
    assert found == []
