"""Attachments: files on records, kept in a FileStore and listed in `crm_attachment`.

An entity with `attachments: true` has a list of files on each record; a `file` field holds
one attachment of its record (an upload for the field sets it). Who may do what follows the
record: listing and downloading need to read it (a record the reader may not read answers
404, as one that does not exist), uploading and removing need to update it (403).

An upload is received into the store's temporary space under the size limit (413 past it),
its content type sniffed from its bytes (engine/runtime/files/sniff.py) and checked against
the allowed types and its name's extension (415); then the attachment row, the file field's
new value and an audit change of the record ("attachments") are written in one unit of work,
and only once that has committed is the blob moved into the store. Removing an attachment,
or purging its record, deletes the rows in the write's transaction and the blobs no row uses
any more only after it has committed (engine/runtime/files/purge.py), so a write that rolls
back never loses a file.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import Connection, Row, delete, insert, select

from engine.messages import msg
from engine.metadata.files import AttachmentSettings
from engine.metadata.model import Entity
from engine.runtime.access import Actor
from engine.runtime.errors import Forbidden, Invalid, NotFound, RecordError
from engine.runtime.files.sniff import OCTET, extension, name_problem, sniff
from engine.runtime.files.store import BlobWriter, FileStore, TooLarge
from engine.runtime.records import Records
from engine.runtime.records.service import Compiled
from engine.runtime.records.unit import UnitOfWork
from engine.runtime.schema.tables import ATTACHMENT_TABLE
from engine.types import FieldType

AUDIT_FIELD = "attachments"
"""The pseudo-field of a record's audit rows that add or remove a file."""
BLOB_ENTITY = ATTACHMENT_TABLE
"""The entity name of the unaudited change that lets go of a blob (purge.py reads it)."""
MAX_NAME = 255


class FileTooLarge(RecordError):
    status = 413
    code = "too_large"


class UnsupportedFile(RecordError):
    status = 415
    code = "unsupported_media_type"


@dataclass(frozen=True)
class Attachment:
    id: int
    entity: str
    record_id: int
    field: str | None
    file_name: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime
    created_by: int | None
    created_by_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "field": self.field, "file_name": self.file_name,
                "content_type": self.content_type, "size": self.size,
                "sha256": self.sha256, "created_at": self.created_at,
                "created_by": self.created_by, "created_by_name": self.created_by_name}


def clean_name(name: str) -> str:
    """A file name safe to store and to send back: the last part of a path, in Unicode
    NFC, without control or format characters, blanks trimmed and runs of them made one
    space, at most 255 characters (the extension kept); "file" when nothing is left.

    >>> clean_name("C:\\\\Users\\\\me\\\\..\\\\报价 单.PDF"), clean_name("../../etc/passwd")
    ('报价 单.PDF', 'passwd')
    >>> clean_name("a\\x00b\\u202e.txt"), clean_name(" .. ")
    ('ab.txt', 'file')
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = " ".join(base.split()).strip(" .")
    if not base:
        return "file"
    if len(base) > MAX_NAME:
        ext = extension(base)
        ext = ext if len(ext) <= 16 else ""
        base = base[:MAX_NAME - len(ext)].rstrip(" .") + ext
    return base


class Attachments:
    """The attachments of records, read and written as `actor`s are allowed to."""

    def __init__(self, records: Records, store: FileStore,
                 settings: AttachmentSettings | None = None) -> None:
        self.records = records
        self.store = store
        self.settings = settings or records.model.settings.attachments
        self.table = records.schema.table(ATTACHMENT_TABLE)

    # -- reading -------------------------------------------------------------------------

    def list_files(self, actor: Actor, entity: str, record_id: int) -> list[Attachment]:
        """The files of a record the actor may read, oldest first."""
        c = self._entity(actor, entity)
        with self.records.reading() as conn:
            self.records.fetch(conn, actor, c, record_id)
            return self._of(conn, entity, record_id)

    def get(self, actor: Actor, entity: str, record_id: int, attachment_id: int
            ) -> Attachment:
        """One attachment of a record the actor may read; 404 otherwise."""
        c = self._entity(actor, entity)
        with self.records.reading() as conn:
            self.records.fetch(conn, actor, c, record_id)
            return self._one(conn, entity, record_id, attachment_id)

    def open(self, actor: Actor, entity: str, record_id: int, attachment_id: int
             ) -> tuple[Attachment, BinaryIO]:
        """An attachment and its content, for a reader of its record."""
        found = self.get(actor, entity, record_id, attachment_id)
        try:
            return found, self.store.open(found.sha256)
        except FileNotFoundError:
            raise NotFound(msg("the file of attachment %(id)s is missing from the file store",
                               id=attachment_id)) from None

    def by_id(self, actor: Actor, attachment_id: int) -> tuple[str, int]:
        """(entity, record id) of an attachment whose record the actor may read; 404
        otherwise (a page's link to a file field's file names the attachment alone)."""
        t = self.table
        with self.records.reading() as conn:
            row = conn.execute(select(t.c.entity, t.c.record_id).where(
                t.c.id == attachment_id)).first()
            if row is None or not self.records.model.has_entity(row.entity):
                raise NotFound(msg("no attachment %(id)s", id=attachment_id))
            c = self._entity(actor, row.entity)
            self.records.fetch(conn, actor, c, row.record_id)
            return row.entity, row.record_id

    def _of(self, conn: Connection, entity: str, record_id: int) -> list[Attachment]:
        t, u = self.table, self.records.users
        rows = conn.execute(
            select(t, u.c.name.label("user_name"), u.c.display_name)
            .select_from(t.outerjoin(u, u.c.id == t.c.created_by))
            .where(t.c.entity == entity, t.c.record_id == record_id).order_by(t.c.id))
        return [_attachment(r) for r in rows]

    def _one(self, conn: Connection, entity: str, record_id: int,
             attachment_id: int) -> Attachment:
        t, u = self.table, self.records.users
        row = conn.execute(
            select(t, u.c.name.label("user_name"), u.c.display_name)
            .select_from(t.outerjoin(u, u.c.id == t.c.created_by))
            .where(t.c.id == attachment_id, t.c.entity == entity,
                   t.c.record_id == record_id)).first()
        if row is None:
            raise NotFound(msg("no attachment %(id)s on %(entity)s %(record)s",
                               id=attachment_id, entity=entity, record=record_id))
        return _attachment(row)

    def _entity(self, actor: Actor, entity: str) -> Compiled:
        """The entity, when the actor may read some of it: a role that may not read it at
        all learns no more about its records than one that may not read this one (404)."""
        c = self.records.compiled(entity)
        try:
            self.records.policy.require(actor, c.entity, "read")
        except Forbidden:
            raise NotFound(msg("no %(entity)s", entity=entity)) from None
        return c

    # -- writing -------------------------------------------------------------------------

    def receive(self) -> BlobWriter:
        """Where an upload's bytes go as they arrive; TooLarge past the size limit."""
        return self.store.writer(self.settings.max_bytes)

    def too_large(self) -> FileTooLarge:
        return FileTooLarge(msg("the file is larger than the limit of %(limit)s MB",
                                limit=_number(self.settings.max_size_mb)),
                            {"file": msg("larger than %(limit)s MB",
                                         limit=_number(self.settings.max_size_mb))})

    def write_all(self, writer: BlobWriter, chunks: Iterable[bytes]) -> None:
        """Write `chunks` into `writer`; 413 (and nothing kept) past the size limit."""
        try:
            for chunk in chunks:
                writer.write(chunk)
        except TooLarge:
            writer.discard()
            raise self.too_large() from None

    def check_add(self, actor: Actor, entity: str, record_id: int) -> None:
        """Refuse, before a byte of the file is read, an upload the actor may not make: 404
        unless they read the record (or the entity takes no file at all), 403 unless they
        may update it. `add` checks again, with the record locked."""
        c = self._entity(actor, entity)
        if not c.entity.attachments and not any(
                f.type is FieldType.FILE for f in c.entity.fields):
            self._check_field(c.entity, None)
        with self.records.reading() as conn:
            self.records.fetch(conn, actor, c, record_id)
            self.records.allowed(conn, actor, c, record_id, "update")

    def add(self, actor: Actor, entity: str, record_id: int, name: str,
            writer: BlobWriter, *, field: str | None = None) -> Attachment:
        """Attach the file received in `writer` (named `name` by the client) to a record the
        actor may update; for `field`, also make it that file field's value (its previous
        file is removed). The writer is committed to the store or discarded either way."""
        try:
            c = self._entity(actor, entity)
            self._check_field(c.entity, field)
            file_name = clean_name(name)
            content_type = self._sniffed(writer, file_name)
            blob = writer.finish()
            with self._locked(actor, c, record_id) as (u, record):
                t = self.table
                new_id = u.conn.execute(insert(t).values(
                    entity=entity, record_id=record_id, field=field, file_name=file_name,
                    content_type=content_type, size=blob.size, sha256=blob.sha256,
                    created_at=u.now, created_by=actor.user_id).returning(t.c.id)).scalar_one()
                u.change(entity, record_id, "attachment",
                         changes=[(AUDIT_FIELD, None, _audited(new_id, file_name, field))])
                if field is not None:
                    old = record.get(field)
                    self.records.update(actor, entity, record_id, {field: new_id},
                                        record["version"], unit=u)
                    if old is not None:
                        self._delete(u, entity, record_id, old)
                added = self._one(u.conn, entity, record_id, new_id)
            writer.commit()  # only now that the row is committed: see the module's doc
            return added
        finally:
            writer.discard()

    def remove(self, actor: Actor, entity: str, record_id: int, attachment_id: int) -> None:
        """Take a file off a record the actor may update (a file field holding it becomes
        blank); its blob goes once no attachment uses it."""
        c = self._entity(actor, entity)
        with self._locked(actor, c, record_id) as (u, record):
            found = self._one(u.conn, entity, record_id, attachment_id)
            holding = {f.name: None for f in c.entity.fields
                       if f.type is FieldType.FILE and record.get(f.name) == attachment_id}
            if holding:
                self.records.update(actor, entity, record_id, holding, record["version"],
                                    unit=u)
            self._delete(u, entity, record_id, found.id)

    def _delete(self, u: UnitOfWork, entity: str, record_id: int, attachment_id: int) -> None:
        t = self.table
        row = u.conn.execute(select(t).where(t.c.id == attachment_id)).mappings().first()
        if row is None:
            return
        u.conn.execute(delete(t).where(t.c.id == attachment_id))
        u.change(entity, record_id, "attachment", changes=[
            (AUDIT_FIELD, _audited(attachment_id, row["file_name"], row["field"]), None)])
        release_blob(u, attachment_id, row["sha256"])

    @contextmanager
    def _locked(self, actor: Actor, c: Compiled, record_id: int
                ) -> Iterator[tuple[UnitOfWork, dict[str, Any]]]:
        """A unit of work with the record locked: 404 unless the actor reads it, 403 unless
        they may update it."""
        with self.records.unit(actor) as u:
            record = self.records.fetch(u.conn, actor, c, record_id, lock=True)
            self.records.allowed(u.conn, actor, c, record_id, "update")
            yield u, record

    def _check_field(self, entity: Entity, field: str | None) -> None:
        if field is None:
            if not entity.attachments:
                raise NotFound(msg("%(entity)s records have no attachments (attachments: "
                                   "true is not set)", entity=entity.name))
            return
        if not entity.has_field(field) or entity.field(field).type is not FieldType.FILE:
            raise Invalid(msg("%(entity)s has no file field '%(field)s'", entity=entity.name,
                              field=field[:80]), {"field": msg("not a file field")})

    def _sniffed(self, writer: BlobWriter, file_name: str) -> str:
        """The content type of what `writer` holds; 415 unless it is allowed and the
        file's name does not claim another type."""
        with writer.reader() as data:
            content_type = sniff(data, file_name)
        if writer.size == 0:
            raise Invalid(msg("the file is empty"), {"file": msg("is empty")})
        if content_type not in self.settings.allowed_types:
            described = msg("an unrecognised kind of file") if content_type == OCTET \
                else content_type
            raise UnsupportedFile(
                msg("files of this kind are not accepted: the content is %(type)s; accepted: "
                    "%(allowed)s", type=described,
                    allowed=", ".join(self.settings.allowed_types)),
                {"file": msg("not an accepted kind of file")})
        ext = name_problem(file_name, content_type)
        if ext is not None:
            raise UnsupportedFile(
                msg("the file name ends in %(ext)s but the content is %(type)s",
                    ext=ext, type=content_type),
                {"file": msg("its name does not match its content")})
        return content_type


def release_blob(u: UnitOfWork, attachment_id: int, sha256: str) -> None:
    """Note, unaudited, that an attachment row holding `sha256` went in this unit: once the
    unit commits, the blob is deleted unless another row still holds it (purge.py)."""
    u.change(BLOB_ENTITY, attachment_id, "purge", before={"sha256": sha256}, audited=False)


def _audited(attachment_id: int, file_name: str, field: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": attachment_id, "file_name": file_name}
    if field is not None:
        out["field"] = field
    return out


def _attachment(row: Row[Any]) -> Attachment:
    m = row._mapping
    return Attachment(m["id"], m["entity"], m["record_id"], m["field"], m["file_name"],
                      m["content_type"], m["size"], m["sha256"], m["created_at"],
                      m["created_by"], m["display_name"] or m["user_name"])


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def attachment_names(records: Records, ids: Iterable[Any],
                     conn: Connection | None = None) -> dict[int, str]:
    """id → file name of attachments among `ids`, for showing the file fields of records
    their reader has read already (a file field only holds its own record's attachment)."""
    wanted = sorted({i for i in ids if isinstance(i, int) and not isinstance(i, bool)})
    if not wanted:
        return {}
    t = records.schema.table(ATTACHMENT_TABLE)
    with records.reading(conn) as db:
        rows = db.execute(select(t.c.id, t.c.file_name).where(t.c.id.in_(wanted)))
        return {r.id: r.file_name for r in rows}


def unused(conn: Connection, records: Records, digests: Iterable[str]) -> list[str]:
    """Of `digests`, those no attachment row holds."""
    wanted = sorted(set(digests))
    if not wanted:
        return []
    t = records.schema.table(ATTACHMENT_TABLE)
    used = set(conn.execute(select(t.c.sha256).where(t.c.sha256.in_(wanted))).scalars())
    return [d for d in wanted if d not in used]

