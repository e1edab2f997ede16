"""The docs stay true: README's settings table and commands match the code and CI."""

from __future__ import annotations

import argparse
import ast
import pathlib
import re

from actors.tools.demo import add_demo_arguments
from messages.config import SETTINGS_TABLE, settings_table_markdown

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_settings_table_is_the_one_generated_from_the_code() -> None:
    table = re.search(r"<!-- settings-table -->\n(.*?)<!-- /settings-table -->", README, re.S)
    assert table is not None
    assert table.group(1).strip() == settings_table_markdown().strip()
    for spec in SETTINGS_TABLE:
        assert f"`{spec.key}`" in README


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = re.findall(r"^python3 -m venv .*$", README, re.M)
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def _actor_classes() -> set[str]:
    """Every pykka actor class defined in `actors` (its public modules are the actors)."""
    names: set[str] = set()
    for path in (ROOT / "actors").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id in {"GuardedActor", "ThreadingActor"}
                for base in node.bases
            ):
                names.add(node.name)
    return names


def _drop_reasons() -> set[str]:
    """String literals the code counts as drop reasons.

    Those are what is passed as `reason=`/`drop_reason=`, as an argument to a call whose name
    starts with `drop` (`drop(host, reason)`, `ledger.drop_all(reason)`, …), or used as a key of
    a `…dropped` counter.
    """
    reasons: set[str] = set()

    def literal(node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            reasons.add(node.value)

    for path in (ROOT / "actors").rglob("*.py"):
        if "tools" in path.parts:
            continue  # the local endpoint's own faults are not the client's drops
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg in {"reason", "drop_reason"}:
                literal(node.value)
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name.lstrip("_").startswith("drop"):
                    for arg in node.args:
                        literal(arg)
            elif isinstance(node, ast.Subscript):
                target = node.value
                name = (
                    target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                )
                if name.endswith("dropped"):
                    literal(node.slice)
    return reasons


def test_the_derivations_find_the_tree_and_the_reasons() -> None:
    assert {"RegistryActor", "HostSupervisor", "ExporterActor"} <= _actor_classes()
    assert {"queue_full", "after_close", "too_large", "handler_error"} <= _drop_reasons()


def test_design_document_names_every_actor_and_drop_reason() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    for name in sorted(_actor_classes()):
        assert name in design, name
    for reason in sorted(_drop_reasons()):
        assert f"`{reason}`" in design, reason


def test_the_readme_embedding_example_is_the_example_file_but_its_main() -> None:
    section = README[README.index("## Embedding it in a driver") :]
    shown = re.search(r"```python\n(.*?)```\n", section, re.S)
    assert shown is not None
    source = (ROOT / "examples" / "embed_driver.py").read_text()
    body = source[source.index("import sqlite3") : source.index("\n\ndef main()")]
    assert shown.group(1).strip() == body.strip()


def test_the_readme_names_every_option_of_the_demo() -> None:
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser)
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    quick_start = README[: README.index("## Embedding it in a driver")]
    missing = sorted(o for o in options - {"--help"} if f"`{o}" not in quick_start)
    assert not missing, f"demo options the quick start does not mention: {missing}"
