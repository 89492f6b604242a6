"""Helpers for the access tests: the shipped department tree, users in it, records placed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from engine.runtime.access import SYSTEM, Actor
from engine.runtime.org import seed_org
from tests.conftest import Env, replace_roles


def departments(env: Env) -> dict[str, int]:
    """Seed config/org.yaml's tree (once) and return department ids by code:
    HQ > NORTH > BJ, SY; HQ > EAST > SH, HZ; HQ > EU > HH; HQ > PARTNERS."""
    seed_org(env.records)
    t = env.records.schema.table("department")
    with env.engine.connect() as conn:
        return {r.code: r.id for r in conn.execute(select(t.c.code, t.c.id))}


class Person(Actor):
    """A signed-in user as an Actor, whose id is known to be there."""

    @property
    def id(self) -> int:
        assert self.user_id is not None
        return self.user_id


def user(env: Env, name: str, *roles: str, department: int | None = None) -> Person:
    made = env.users.add(name, list(roles), department_id=department, password="a-password")
    return Person(made.id, made.name, made.roles, made.department_id)


def place(env: Env, entity: str, data: dict[str, Any], *, owner: Actor | None = None,
          department: int | None = None) -> dict[str, Any]:
    """Create a record as the engine, then give it to `owner` and/or `department`."""
    row = env.records.create(SYSTEM, entity, data)
    if owner is not None or department is not None:
        row = env.records.assign(SYSTEM, entity, row["id"],
                                 owner=owner.user_id if owner else None,
                                 department=department)["record"]
    return row


def write_roles(config_dir: Path, text: str) -> Path:
    return replace_roles(config_dir, text)


def add_fields(config_dir: Path, entity: str, *lines: str) -> None:
    """Insert field lines (`name: {…}`) right after `fields:` in an entity file."""
    path = config_dir / "entities" / f"{entity}.yaml"
    text = path.read_text(encoding="utf-8")
    extra = "".join(f"  {line}\n" for line in lines)
    path.write_text(text.replace("\nfields:\n", f"\nfields:\n{extra}", 1), encoding="utf-8")


def opportunity_statements(env: Env, run: Callable[[], Any]) -> list[tuple[str, Any]]:
    """(SQL, parameters) of every statement reading opportunities while `run` runs."""
    seen: list[tuple[str, Any]] = []

    def hook(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM opportunity" in statement:
            seen.append((statement, parameters))

    event.listen(env.engine, "before_cursor_execute", hook)
    try:
        run()
    finally:
        event.remove(env.engine, "before_cursor_execute", hook)
    return seen


_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def without_timestamps(text: str) -> str:
    """`text` with its timestamps taken out: a check that a hidden amount's digits ("777")
    appear nowhere must not trip over a time's microseconds (23.777123)."""
    return _TIMESTAMP.sub("<time>", text)
