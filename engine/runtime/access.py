"""The access policy seam: one place that every records query and write passes through.

Roles, departments and record-level scopes arrive with the access issue; until then the
engine runs with `OpenPolicy`, which lets any authenticated actor do everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table

from engine.metadata.model import Entity


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, or the engine itself (imports, demo data, migrations)."""

    user_id: int | None
    name: str
    roles: tuple[str, ...] = ()
    department_id: int | None = None

    @property
    def is_system(self) -> bool:
        return self.user_id is None


SYSTEM = Actor(user_id=None, name="system", roles=("admin",))


class AccessPolicy(Protocol):
    def read_filter(self, actor: Actor, entity: Entity, table: Table) -> ColumnElement[bool] | None:
        """A SQL predicate limiting the rows `actor` may see, or None for all rows."""

    def check_write(self, actor: Actor, entity: Entity, action: str,
                    row: dict[str, Any] | None) -> None:
        """Raise Forbidden when `actor` may not do `action` on `row` (None on create)."""

    def hidden_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        """Fields whose values never leave the server for `actor`."""


class OpenPolicy:
    """Every authenticated actor may read and write every record and field."""

    def read_filter(self, actor: Actor, entity: Entity, table: Table) -> ColumnElement[bool] | None:
        return None

    def check_write(self, actor: Actor, entity: Entity, action: str,
                    row: dict[str, Any] | None) -> None:
        return None

    def hidden_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        return frozenset()
