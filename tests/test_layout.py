"""The layout keeps its rule: the tree is what `ls actors` shows, imports form no cycle, the
README teaches only public names, and no private name crosses a subpackage."""

from __future__ import annotations

import ast
import pathlib
import re

import actors
import messages

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("actors", "messages")


def _modules() -> dict[str, pathlib.Path]:
    found: dict[str, pathlib.Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """Every import in the module (also inside functions and TYPE_CHECKING blocks)."""
    out: list[tuple[str, list[str]]] = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((base, [alias.name for alias in node.names]))
    return out


def _edges(name: str, path: pathlib.Path) -> set[str]:
    """Our modules this one imports: `from a import b` names `a.b` when that is a module."""
    edges: set[str] = set()
    for base, names in _imports(name, path):
        if base.split(".")[0] not in PACKAGES:
            continue
        targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
        edges.update(targets or [base])
        if targets and len(targets) < len(names):
            edges.add(base)
    edges.discard(name)
    return {e for e in edges if e in MODULES}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _graph() -> dict[str, set[str]]:
    return {name: _edges(name, path) for name, path in MODULES.items()}


def test_import_graph_of_actors_and_messages_has_no_cycle() -> None:
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = _graph()
    graph["actors.telemetry"] = {*graph["actors.telemetry"], "actors._runtime.operations"}
    graph["actors._runtime.operations"] = {*graph["actors._runtime.operations"], "actors.telemetry"}
    assert _cycle(graph) is not None


def test_messages_never_import_pykka_or_actors() -> None:
    for name, path in MODULES.items():
        if name.split(".")[0] != "messages":
            continue
        for base, _ in _imports(name, path):
            assert base.split(".")[0] not in {"pykka", "actors"}, (name, base)


def test_listing_actors_shows_the_tree_and_the_facade() -> None:
    public = sorted(
        p.name
        for p in (ROOT / "actors").iterdir()
        if not p.name.startswith(("_", ".")) and (p.suffix == ".py" or p.is_dir())
    )
    assert public == [
        "aggregator.py",
        "dbapi",
        "exporter.py",
        "feature_flags.py",
        "registry.py",
        "supervisor.py",
        "telemetry.py",
        "tools",
    ]


def test_no_private_name_is_imported_across_subpackages() -> None:
    def room(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 else parts[0]

    for name, path in MODULES.items():
        for base, names in _imports(name, path):
            if base.split(".")[0] not in PACKAGES or room(base) == room(name):
                continue
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{name} imports {private} from {base}"


def test_readme_imports_only_the_public_api() -> None:
    readme = (ROOT / "README.md").read_text()
    public = set(actors.__all__)
    for match in re.finditer(r"^\s*(from (\S+) import (.+)|import (\S+))$", readme, re.M):
        module = match.group(2) or match.group(4)
        if module.split(".")[0] not in PACKAGES:
            continue
        if match.group(4):
            assert module in PACKAGES, match.group(0)
            continue
        names = {n.strip().split(" as ")[0] for n in match.group(3).strip("()").split(",")}
        if module.startswith("messages"):  # plain data: every module of it is public
            assert not any(n.startswith("_") for n in names), match.group(0)
            continue
        assert module == "actors", match.group(0)
        assert names <= public, match.group(0)


def test_everything_the_readme_teaches_is_exported_by_actors() -> None:
    for name in (
        "connect",
        "Connection",
        "flush",
        "dump_state",
        "shutdown",
        "instrument",
        "instrument_connection",
        "DriverInfo",
        "TelemetrySettings",
        "classify_exception",
        "ErrorKind",
        "LocalEndpoint",
    ):
        assert name in actors.__all__
        assert getattr(actors, name) is not None
    assert messages.__doc__


def test_no_module_needs_an_import_placed_late() -> None:
    marker = "noqa: " + "E402"  # spelled apart so that this file does not match itself
    late = [
        str(path.relative_to(ROOT))
        for folder in ("actors", "messages", "bench", "examples", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if marker in path.read_text()
    ]
    assert late == []
