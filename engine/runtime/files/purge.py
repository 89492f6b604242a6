"""Attachments go with their record: the hooks that delete a purged record's attachment rows
in the purge's transaction, and, once a write has committed, the blobs no row holds any more.

A blob is deleted only after commit, and only when no attachment row (of any record) holds
its digest then: a write that rolls back, or a dry run, never loses a file, and content
shared by several attachments stays while one of them does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import delete, select

from engine.runtime.files.attachments import BLOB_ENTITY, release_blob, unused
from engine.runtime.files.store import FileStore
from engine.runtime.records import Records
from engine.runtime.records.unit import RecordChange, UnitOfWork
from engine.runtime.schema.tables import ATTACHMENT_TABLE

log = logging.getLogger(__name__)


def install_attachments(records: Records, store: FileStore) -> None:
    """Register the hooks on the records service (engine/runtime/assembly.py does)."""
    t = records.schema.table(ATTACHMENT_TABLE)

    def drop_rows(unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        for change in changes:
            if change.action != "purge" or change.entity == BLOB_ENTITY:
                continue
            mine = (t.c.entity == change.entity, t.c.record_id == change.record_id)
            rows = unit.conn.execute(select(t.c.id, t.c.sha256).where(*mine)).all()
            if rows:
                unit.conn.execute(delete(t).where(*mine))
                for row in rows:
                    release_blob(unit, row.id, row.sha256)

    def drop_blobs(changes: Sequence[RecordChange]) -> None:
        digests = {c.before["sha256"] for c in changes
                   if c.entity == BLOB_ENTITY and c.before is not None}
        if not digests:
            return
        with records.reading() as conn:
            gone = unused(conn, records, digests)
        for digest in gone:
            store.delete(digest)
        log.debug("deleted %s unused blobs", len(gone))

    records.hooks.on_before_commit("attachments", drop_rows)
    records.hooks.on_after_commit("attachment blobs", drop_blobs)
