"""What a user typed into a form when their session had ended, kept until they sign in again.

A draft belongs to one user (the user of the ended session that sent it) and one form page,
and is handed back once, to that user only. Like session ids, a draft's id is random and only
its SHA-256 digest is stored. Passwords and CSRF tokens are never kept (`keepable`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select

from engine.runtime.db import WRITE
from engine.runtime.schema.tables import FORM_DRAFT_TABLE, Schema

MAX_DRAFT = 64 * 1024
"""Characters of a draft's fields (as JSON) at most; a larger form is not kept."""
KEEP_FOR = timedelta(days=1)
MAX_ID = 100


@dataclass(frozen=True)
class Draft:
    user_id: int
    path: str
    fields: list[tuple[str, str]]


def keepable(fields: list[tuple[str, str]], secret_names: tuple[str, ...]) -> list[
        tuple[str, str]]:
    """The fields worth keeping: not the CSRF token, nothing whose name says password.

    >>> keepable([("name", "Acme"), ("csrf_token", "x"), ("new_password", "y")],
    ...          ("csrf_token",))
    [('name', 'Acme')]
    """
    return [(k, v) for k, v in fields if k not in secret_names and "password" not in k.lower()]


def _digest(draft_id: str) -> str:
    return hashlib.sha256(draft_id.encode()).hexdigest()


class FormDrafts:
    def __init__(self, engine: Engine, schema: Schema) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**WRITE)
        self.table = schema.table(FORM_DRAFT_TABLE)

    def keep(self, user_id: int, path: str, fields: list[tuple[str, str]]) -> str | None:
        """Keep the fields of a form posted to `path`; returns the draft's id, or None when
        the form is too large to keep."""
        text = json.dumps(fields, ensure_ascii=False)
        if len(text) > MAX_DRAFT or len(path) > 300:
            return None
        draft_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        t = self.table
        with self.writer.begin() as conn:
            conn.execute(delete(t).where(t.c.created_at < now - KEEP_FOR))
            conn.execute(insert(t).values(id_hash=_digest(draft_id), user_id=user_id,
                                          path=path, fields=text, created_at=now))
        return draft_id

    def peek(self, draft_id: str, user_id: int) -> Draft | None:
        """The draft, when it exists, is recent and belongs to `user_id`; else None."""
        if not draft_id or len(draft_id) > MAX_ID:
            return None
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(
                t.c.id_hash == _digest(draft_id), t.c.user_id == user_id,
                t.c.created_at > datetime.now(UTC) - KEEP_FOR)).first()
        if row is None:
            return None
        return Draft(row.user_id, row.path, [(str(k), str(v)) for k, v in json.loads(row.fields)])

    def take(self, draft_id: str, user_id: int) -> Draft | None:
        """Like `peek`, and the draft is gone afterwards: it is handed back once."""
        draft = self.peek(draft_id, user_id)
        if draft is not None:
            t = self.table
            with self.writer.begin() as conn:
                conn.execute(delete(t).where(t.c.id_hash == _digest(draft_id)))
        return draft
