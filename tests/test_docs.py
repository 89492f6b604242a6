"""Docs are tested: every YAML key, field type and CLI command must be documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from engine.cli import main
from engine.metadata import load_model
from engine.metadata.loader import schema
from engine.metadata.roles import ACTIONS
from engine.types import FieldType

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _documented(doc: str) -> set[str]:
    text = (DOCS / doc).read_text(encoding="utf-8")
    return set(re.findall(r"`([a-z_]+)`", text))


def test_every_entity_key_is_documented() -> None:
    keys = set(schema("entity")["properties"])
    assert keys - _documented("configuration.md") == set()


def test_every_field_key_is_documented() -> None:
    keys = set(schema("entity")["$defs"]["field"]["properties"])
    assert keys - _documented("configuration.md") == set()


def test_every_form_key_is_documented() -> None:
    form = schema("form")
    keys = set(form["properties"]) | set(form["$defs"]["section"]["properties"])
    keys |= set(form["$defs"]["section"]["properties"]["fields"]["items"]["else"]["properties"])
    keys |= set(form["$defs"]["related"]["properties"])
    keys |= set(form["$defs"]["lines"]["properties"])
    assert keys - _documented("configuration.md") == set()


def test_every_roles_and_org_key_is_documented() -> None:
    roles = schema("roles")
    keys = set(roles["properties"]) | set(roles["$defs"]["role"]["properties"])
    keys |= set(ACTIONS)
    keys |= set(roles["$defs"]["scope"]["enum"])
    org = schema("org")
    keys |= set(org["properties"]) | set(org["$defs"]["unit"]["properties"])
    assert keys - _documented("access.md") == set()


def test_every_settings_key_is_documented() -> None:
    keys = set(schema("settings")["properties"])
    assert keys and keys - _documented("configuration.md") == set()


def test_every_shipped_role_is_documented() -> None:
    shipped = load_model(DOCS.parent / "config").roles.names
    assert set(shipped) - _documented("access.md") == set()


@pytest.mark.parametrize("ftype", list(FieldType))
def test_every_field_type_is_documented(ftype: FieldType) -> None:
    assert ftype.value in _documented("configuration.md")


def _commands(group: click.Group, prefix: str = "crm") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            out += _commands(cmd, full)
        else:
            out.append(full)
    return out


@pytest.mark.parametrize("command", _commands(main))
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"`{command}" in (DOCS / "cli.md").read_text(encoding="utf-8")


def test_every_cli_option_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = []
    stack: list[click.Command] = [main]
    while stack:
        cmd = stack.pop()
        if isinstance(cmd, click.Group):
            stack += list(cmd.commands.values())
        for param in cmd.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    if opt.startswith("--") and opt not in text:
                        missing.append(f"{cmd.name} {opt}")
    assert missing == []
