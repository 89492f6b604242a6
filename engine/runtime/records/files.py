"""File fields: a file field holds the id of one of its own record's attachments
(engine/runtime/files/attachments.py keeps them; an upload for the field sets it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table, select

from engine.messages import msg
from engine.metadata.model import Entity
from engine.types import FieldType


def check_files(conn: Connection, entity: Entity, attachments: Table,
                values: Mapping[str, Any], errors: dict[str, str],
                record_id: int | None) -> None:
    """Each file field written must name an attachment of this record (a new record has
    none yet: a file is uploaded once the record exists)."""
    t = attachments
    for f in entity.fields:
        value = values.get(f.name)
        if f.type is not FieldType.FILE or value is None or f.name in errors:
            continue
        found = record_id is not None and conn.execute(select(t.c.id).where(
            t.c.id == value, t.c.entity == entity.name, t.c.record_id == record_id)
        ).first() is not None
        if not found:
            errors[f.name] = msg("no attachment %(id)s of this record", id=value)
