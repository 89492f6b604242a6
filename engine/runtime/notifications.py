"""A user's in-app notifications: the inbox that flows' `notify` actions write into.

A flow's notify action (engine/runtime/flows/hook.py) writes one crm_notification row per
user and message: the record it is about (`entity`, `record_id`), the message in every
language the flow gave (`{"en": ..., "zh": ...}`), when it was made and when it was read
(`read_at`, NULL while unread). This module reads and marks them, always for one user:

- `page`: the user's notifications, newest first (by id, the order they were written), at
  most `limit` (1-MAX_PAGE) per page; `cursor` is the `next_cursor` of the page before;
- `unread`: how many are unread, one COUNT on the index (user_id, read_at);
- `mark_read`: one of the user's own; another user's id answers 404 exactly like an id
  that does not exist, so the answer never tells whose it is;
- `mark_all_read`: every unread one of the user.

A notification's record is shown by title only to a user who may read that record now
(`titles`, through the one secure query); otherwise its title is None and the record is
not named.

>>> inbox = Notifications(records)  # doctest: +SKIP
>>> [n.text("zh-CN") for n in inbox.page(user_id).items]  # doctest: +SKIP
['您的商机已赢单']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Table, func, select, update

from engine.fieldtypes import Regarding
from engine.messages import msg
from engine.metadata.labels import Label
from engine.runtime.access import Actor
from engine.runtime.db import WRITE
from engine.runtime.errors import BadRequest, NotFound
from engine.runtime.records.regarding import titles as regarding_titles
from engine.runtime.schema.tables import NOTIFICATION_TABLE
from engine.runtime.values import to_json

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

PAGE = 30
"""Notifications per page unless the caller asks for another size."""
MAX_PAGE = 100
"""The largest page a caller may ask for; more is a 400 naming `page_size`."""
MAX_ID = 2**63 - 1
HEADER_CAP = 100
"""The header counts unread notifications up to this many (it shows "99+" past 99), so the
count a page costs stays bounded however many a user leaves unread."""

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Notification:
    id: int
    entity: str | None
    record_id: int | None
    message: Mapping[str, str]
    """The text per language tag of the flow's `message` ({"en": ..., "zh": ...})."""
    created_at: datetime
    read_at: datetime | None
    title: str | None = None
    """The record's title as its reader may see it ('#id' when the title is hidden from
    them); None when they may not read the record (or it is gone): then it is not named."""

    @property
    def unread(self) -> bool:
        return self.read_at is None

    @property
    def readable(self) -> bool:
        """Whether the recipient may open the record (it is shown with its title)."""
        return self.title is not None

    def text(self, language: str) -> str:
        """The message in `language` (zh-CN reads `zh`), else English, else any."""
        if not self.message:
            return ""
        return Label(tuple((str(k), str(v)) for k, v in self.message.items())).get(language)

    def as_json(self) -> dict[str, Any]:
        record = {"entity": self.entity, "id": self.record_id, "title": self.title} \
            if self.readable else None
        return {"id": self.id, "message": dict(self.message), "record": record,
                "created_at": to_json(self.created_at), "read_at": to_json(self.read_at),
                "unread": self.unread}


@dataclass(frozen=True)
class NotificationPage:
    items: list[Notification]
    next_cursor: str | None
    """The `cursor` of the next page; None on the last."""


def page_size_of(raw: str | None) -> int:
    """The page size a caller asked for (PAGE when not given); 400 naming `page_size` for
    anything but a whole number from 1 to MAX_PAGE."""
    if raw is None or raw == "":
        return PAGE
    size = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else None
    if size is None or not 0 < size <= MAX_PAGE:
        raise BadRequest(msg("invalid list parameters"), {"page_size": msg(
            "must be a whole number from %(lo)s to %(hi)s", lo=1, hi=MAX_PAGE)})
    return size


def cursor_of(raw: str | None) -> int | None:
    """The id a `cursor` continues after; 400 for one this inbox did not give."""
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not 0 < int(raw) <= MAX_ID:
        raise BadRequest(msg("invalid cursor"),
                         {"cursor": msg("not a cursor from this list")})
    return int(raw)


def notification_id(raw: str) -> int:
    """A notification id from a path; 404 for text that can be no id."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not 0 < int(raw) <= MAX_ID:
        raise NotFound(msg("no notification %(id)s", id=repr(raw[:40])))
    return int(raw)


def unread_column(table: Table, user_id: ColumnElement[Any],
                  cap: int = HEADER_CAP) -> ColumnElement[int]:
    """A scalar subquery: how many unread notifications the user `user_id` (a column of an
    outer query) has, counted up to `cap` on the index (user_id, read_at). The session query
    reads it with the session (engine/runtime/sessions.py): the header's count costs no
    query of its own."""
    unread = (select(table.c.id).where(table.c.user_id == user_id, table.c.read_at.is_(None))
              .limit(cap).correlate_except(table).subquery())
    return select(func.count()).select_from(unread).scalar_subquery()


class Notifications:
    def __init__(self, records: Records, clock: Clock = _utcnow) -> None:
        self.records = records
        self.engine = records.engine
        self.writer = records.engine.execution_options(**WRITE)
        self.table = records.schema.table(NOTIFICATION_TABLE)
        self.clock = clock

    def page(self, actor: Actor, *, unread_only: bool = False, cursor: int | None = None,
             limit: int = PAGE) -> NotificationPage:
        """A page of `actor`'s notifications, newest first, each titled as they may read
        its record."""
        if not 0 < limit <= MAX_PAGE:
            raise BadRequest(msg("invalid list parameters"), {"page_size": msg(
                "must be a whole number from %(lo)s to %(hi)s", lo=1, hi=MAX_PAGE)})
        t = self.table
        stmt = select(t).where(t.c.user_id == _user_id(actor))
        if unread_only:
            stmt = stmt.where(t.c.read_at.is_(None))
        if cursor is not None:
            stmt = stmt.where(t.c.id < cursor)
        stmt = stmt.order_by(t.c.id.desc()).limit(limit + 1)
        with self.records.reading() as conn:
            rows = list(conn.execute(stmt).mappings())
            more = len(rows) > limit
            rows = rows[:limit]
            found = regarding_titles(self.records, actor, conn, _targets(rows))
        items = [Notification(
            int(r["id"]), r["entity"], r["record_id"], _message(r["message"]),
            r["created_at"], r["read_at"],
            found.get(Regarding.of(r["entity"], r["record_id"]))
            if r["entity"] and r["record_id"] is not None else None) for r in rows]
        return NotificationPage(items, str(items[-1].id) if more and items else None)

    def unread(self, actor: Actor) -> int:
        """How many of `actor`'s notifications are unread (one COUNT on the index)."""
        t = self.table
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t).where(
                t.c.user_id == _user_id(actor), t.c.read_at.is_(None))).scalar_one())

    def mark_read(self, actor: Actor, notification: int) -> None:
        """Mark one of `actor`'s notifications read (again: no change). 404 for an id that
        is not theirs, the same as for one that does not exist."""
        t = self.table
        mine = (t.c.id == notification) & (t.c.user_id == _user_id(actor))
        with self.writer.begin() as conn:
            done = conn.execute(update(t).where(mine, t.c.read_at.is_(None))
                                .values(read_at=self.clock()))
            if done.rowcount == 0 and conn.execute(select(t.c.id).where(mine)).first() is None:
                raise NotFound(msg("no notification %(id)s", id=notification))

    def mark_all_read(self, actor: Actor) -> int:
        """Mark every unread notification of `actor` read; how many were."""
        t = self.table
        with self.writer.begin() as conn:
            done = conn.execute(update(t).where(t.c.user_id == _user_id(actor),
                                                t.c.read_at.is_(None))
                                .values(read_at=self.clock()))
        return int(done.rowcount)


def _user_id(actor: Actor) -> int:
    """The user whose inbox it is; the engine itself (SYSTEM) has none."""
    if actor.user_id is None:
        raise NotFound(msg("no notifications without a user"))
    return actor.user_id


def _targets(rows: Sequence[Mapping[Any, Any]]) -> list[Regarding]:
    return [Regarding.of(r["entity"], int(r["record_id"])) for r in rows
            if r["entity"] and r["record_id"] is not None]


def _message(value: Any) -> dict[str, str]:
    """The stored message as {language: text} (a plain text reads as English)."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v is not None}
    return {"en": str(value)} if value is not None else {}
