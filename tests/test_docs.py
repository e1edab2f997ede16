"""The docs stay true: README's settings table and commands match the code and CI."""

from __future__ import annotations

import pathlib
import re

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


def test_design_document_names_every_actor_and_drop_reason() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    for name in ("RegistryActor", "HostSupervisor", "FeatureFlagActor", "AggregatorActor"):
        assert name in design
    for reason in ("queue_full", "breaker_open", "flag_off", "shutdown_timeout", "invalid_event"):
        assert f"`{reason}`" in design
