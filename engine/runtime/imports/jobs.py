"""Import jobs: a file's rows into an entity, resumable, in batches, bad rows to an error file.

A job is a row of `crm_import_job` (engine/runtime/schema/tables.py): who imports what file
(its sha256) with which options, its status and progress. `open_job` makes one — or finds
the unfinished job of the same user, file and options, which is how running the same import
again resumes it. `run_job` reads the file's rows from where the job stopped and handles
them in batches; each batch is ONE unit of work of the records service (records/unit.py)
that writes the batch's records (creates through the set-wise bulk path, updates one by
one), its bad rows (`crm_import_error`) and the job's new progress together. So a process
killed anywhere — SIGKILL included — leaves whole batches behind, and the next run starts
with the first row no batch committed: no row twice, no row lost.

Per-row problems never stop an import: a row whose text does not read as its field's
type, that fails validation, or that is a duplicate the options say to skip is left out
and kept, with its original text and a column naming each problem, for the error file
written when the job ends (CSV in UTF-8 with a BOM, or XLSX, as the input). A batch that
fails as a whole for an unexpected reason is tried again row by row, so only the rows at
fault fail. A dry run does everything inside rolled-back units and keeps only the job's
counts, the duplicates for review and the error file.
"""

from __future__ import annotations

import contextvars
import csv
import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, Table, insert, select, update

from engine.catalogs import renderer
from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.collector import batch_done, bulk_work
from engine.runtime.db import refresh_statistics
from engine.runtime.errors import BadRequest, Invalid, NotFound, RecordError
from engine.runtime.imports.duplicates import find_duplicates_many
from engine.runtime.imports.keys import find_by_key
from engine.runtime.imports.mapping import (
    ERRORS_COLUMN,
    ColumnMap,
    RowCoercer,
    check_mapping,
    guess_mapping,
    header_key,
    writable_fields,
)
from engine.runtime.imports.sources import Source, open_source
from engine.runtime.records import Records
from engine.runtime.records.imports import ANALYZE_AFTER, bulk_create
from engine.runtime.records.unique import unique_key
from engine.runtime.records.unit import UnitOfWork
from engine.runtime.schema.tables import IMPORT_ERROR_TABLE, IMPORT_JOB_TABLE

log = logging.getLogger(__name__)

# Rows per batch (one unit of work each). Fewer, larger batches pay the per-batch work
# (the parents' rollups, the link checks, the commit) less often — 5,000 imports ~15% faster
# than 2,000 on SQLite and ~40% on PostgreSQL (bench/import.py) — while a batch still holds
# SQLite's one write lock for about a second, so other users' saves wait no longer.
BATCH = 5_000
# PostgreSQL has no database-wide write lock to hold: batches twice as large pay the
# per-batch work half as often (~8% faster at 1,000,000 rows, bench/import.py).
BATCH_PG = 10_000
# Batches handled at once where they may overlap (_Runner.overlaps): while one waits on the
# database (its COPY, the parents' rollups, the commit), the next one's rows are coerced
# and checked on a second connection — the client's work and the server's side by side.
IN_FLIGHT = 2
MAX_DUPLICATES = 500  # rows with duplicate candidates kept on the job for review
OnDuplicate = Literal["skip", "update", "create"]
ON_DUPLICATE: tuple[OnDuplicate, ...] = ("skip", "update", "create")
STATUSES = ("pending", "running", "done", "failed", "cancelled")
UNFINISHED = ("pending", "running", "failed", "cancelled")
Render = Callable[[str], str]
"""A message (engine.messages) as text in one language."""


@dataclass(frozen=True)
class ImportOptions:
    """What to import and how. `choices`: per data row (1 = the first row under the
    header), skip / update / create for a row with duplicate candidates, over
    `on_duplicate`."""

    entity: str
    mapping: ColumnMap | None = None
    key: str | None = None
    on_duplicate: OnDuplicate = "skip"
    choices: Mapping[int, str] = field(default_factory=dict)
    dry_run: bool = False
    language: str = "en"
    """The language the job's problems and messages are written in (the error file's):
    the import page's user's, or `crm import --language`; kept in the job so a resumed run
    writes the same one."""

    def as_json(self) -> dict[str, Any]:
        return {"entity": self.entity,
                "mapping": None if self.mapping is None else dict(self.mapping.columns),
                "key": self.key, "on_duplicate": self.on_duplicate,
                "choices": {str(k): v for k, v in sorted(self.choices.items())},
                "dry_run": self.dry_run, "language": self.language}


@dataclass(frozen=True)
class DuplicateRow:
    """A row of the file that matched existing records: its data-row number, a few of its
    values (as text), and the candidates (id, title, rule)."""

    row: int
    values_summary: str
    candidates: list[dict[str, Any]]


@dataclass
class Job:
    id: int
    entity: str
    user_id: int | None
    file_name: str
    file_path: str
    file_hash: str
    options: dict[str, Any]
    status: str
    total_rows: int | None
    rows_done: int
    created: int
    updated: int
    skipped: int
    failed: int
    error_path: str | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    message: str | None
    duplicates: list[DuplicateRow] = field(default_factory=list)

    @property
    def language(self) -> str:
        """The language its problems and messages are written in (ImportOptions)."""
        return str(self.options.get("language") or "en")

    @property
    def dry_run(self) -> bool:
        return bool(self.options.get("dry_run"))

    @property
    def finished(self) -> bool:
        return self.status == "done"

    @property
    def error_file(self) -> Path | None:
        """The error file, once written (a job with bad rows, when it ends)."""
        if self.error_path is None or self.failed + self.skipped == 0:
            return None
        path = Path(self.error_path)
        return path if path.exists() else None

    @property
    def mapping(self) -> ColumnMap:
        """The columns as the job maps them (given, the rest guessed)."""
        return ColumnMap(dict(self.options.get("resolved_mapping") or {}), self.entity,
                         self.options.get("key"))


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def error_path_for(path: Path) -> Path:
    """Where a file's error file goes by default: beside it, `<name>.errors.<ext>`."""
    suffix = ".xlsx" if path.suffix.lower() == ".xlsx" else ".csv"
    return path.with_name(f"{path.stem}.errors{suffix}")


def _tables(records: Records) -> tuple[Table, Table]:
    return records.schema.table(IMPORT_JOB_TABLE), records.schema.table(IMPORT_ERROR_TABLE)


def _job(row: RowMapping) -> Job:
    dups = [DuplicateRow(d["row"], d["values_summary"], d["candidates"])
            for d in (row["duplicates"] or [])]
    return Job(id=row["id"], entity=row["entity"], user_id=row["user_id"],
               file_name=row["file_name"], file_path=row["file_path"],
               file_hash=row["file_hash"], options=dict(row["options"] or {}),
               status=row["status"], total_rows=row["total_rows"],
               rows_done=row["rows_done"], created=row["created"], updated=row["updated"],
               skipped=row["skipped"], failed=row["failed"], error_path=row["error_path"],
               started_at=row["started_at"], finished_at=row["finished_at"],
               created_at=row["created_at"], message=row["message"], duplicates=dups)


def _options_key(options: ImportOptions) -> str:
    """What makes two runs the same import (the second resumes the first): all the options
    but the language, which only says how the problems read."""
    same = {k: v for k, v in options.as_json().items() if k != "language"}
    return hashlib.sha256(json.dumps(same, sort_keys=True,
                                     ensure_ascii=False).encode()).hexdigest()


def _require(records: Records, actor: Actor, options: ImportOptions) -> None:
    """Import needs `create` on the entity, and `update` when it may update records."""
    c = records.compiled(options.entity)
    records.policy.require(actor, c.entity, "create")
    if options.key is not None or options.on_duplicate == "update" \
            or "update" in options.choices.values():
        records.policy.require(actor, c.entity, "update")


def _check_options(records: Records, actor: Actor, options: ImportOptions) -> None:
    if not records.model.has_entity(options.entity):
        raise NotFound(msg("no entity %(entity)s", entity=options.entity))
    problems: dict[str, str] = {}
    if options.on_duplicate not in ON_DUPLICATE:
        problems["on_duplicate"] = msg("must be skip, update or create")
    for row, choice in options.choices.items():
        if choice not in ON_DUPLICATE:
            problems[f"choices.{row}"] = msg("must be skip, update or create")
    if options.key is not None:
        entity = records.compiled(options.entity).entity
        f = entity.field(options.key) if entity.has_field(options.key) else None
        if f is None or not (f.unique or getattr(f, "external_id", False)):
            problems["key"] = msg("%(field)s is not a unique field or external id of "
                                  "%(entity)s", field=options.key, entity=options.entity)
    if problems:
        raise BadRequest(msg("invalid import options"), problems)


def open_job(records: Records, actor: Actor, path: Path, options: ImportOptions, *,
             file_name: str, errors: Path | None = None) -> Job:
    """A new import job of `path` (an uploaded or local file) — or the unfinished job of
    the same user, file contents and options, so that running the same import again
    resumes it. Checks access, the options and the mapping (Invalid: problems by column)."""
    path = Path(path)
    _check_options(records, actor, options)
    _require(records, actor, options)
    digest = file_hash(path)
    key = _options_key(options)
    jobs, _ = _tables(records)
    if not options.dry_run:
        with records.engine.connect() as conn:
            row = conn.execute(select(jobs).where(
                jobs.c.user_id.is_(None) if actor.user_id is None
                else jobs.c.user_id == actor.user_id,
                jobs.c.file_hash == digest, jobs.c.options_key == key,
                jobs.c.status.in_(UNFINISHED)).order_by(jobs.c.id.desc())).mappings().first()
        if row is not None:
            job = _job(row)
            if Path(job.file_path).exists():
                return job
    source = _source(records, path)
    headers = list(source.headers)
    entity = records.compiled(options.entity).entity
    writable = writable_fields(records, actor, entity)
    guessed = guess_mapping(records.model, entity, headers, writable=writable)
    mapping = guessed if options.mapping is None \
        else options.mapping.for_headers(headers, guessed)
    mapping = ColumnMap(mapping.columns, entity.name, options.key, mapping.locs)
    check_mapping(records.model, entity, mapping, headers, writable)
    if not mapping.mapped():
        raise Invalid(msg("no column of the file matches a field of %(entity)s",
                          entity=options.entity), {})
    now = records.clock()
    stored = {**options.as_json(), "resolved_mapping": dict(mapping.columns),
              "headers": headers}
    with records.writer.begin() as conn:
        job_id = conn.execute(insert(jobs).values(
            entity=options.entity, user_id=actor.user_id, file_name=file_name,
            file_path=str(path.resolve()), file_hash=digest, options=stored,
            options_key=key, dry_run=options.dry_run, status="pending",
            total_rows=None, rows_done=0, created=0, updated=0, skipped=0, failed=0,
            error_path=str((errors or error_path_for(path)).resolve()),
            duplicates=[], created_at=now).returning(jobs.c.id)).scalar_one()
    return get_job(records, actor, job_id)


def get_job(records: Records, actor: Actor, job_id: int) -> Job:
    """The job: the user's own, or any for an administrator (404 otherwise)."""
    jobs, _ = _tables(records)
    with records.engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    if row is None or (row["user_id"] != actor.user_id
                       and not records.policy.is_admin(actor)):
        raise NotFound(msg("no import job %(id)s", id=job_id))
    return _job(row)


def jobs_of(records: Records, actor: Actor, entity: str, limit: int = 20) -> list[Job]:
    """The latest import jobs of `entity` the actor may see (their own; an
    administrator's: everyone's), newest first."""
    jobs, _ = _tables(records)
    stmt = select(jobs).where(jobs.c.entity == entity)
    if not records.policy.is_admin(actor):
        stmt = stmt.where(jobs.c.user_id == actor.user_id)
    with records.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(jobs.c.id.desc()).limit(limit)).mappings().all()
    return [_job(r) for r in rows]


# -- running a job --------------------------------------------------------------------


@dataclass
class _Outcome:
    """What one batch did: counts, its bad rows (row, cells, problems by column) and its
    rows with duplicate candidates."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[tuple[int, list[str], dict[str, str]]] = field(default_factory=list)
    duplicates: list[DuplicateRow] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors) - self.skipped


class _Behind(Exception):
    """The batch before this one, handled at the same time, failed: this one cannot land
    before it (run_job hands it out again)."""


class Overtaken(Exception):
    """Another process advanced the job: this one stops (its batch rolled back)."""


class _Runner:
    def __init__(self, records: Records, actor: Actor, job: Job) -> None:
        self.records, self.actor, self.job = records, actor, job
        self.render = renderer(job.language)
        self.entity = job.entity
        self.c = records.compiled(job.entity)
        opts = job.options
        self.headers: list[str] = list(opts["headers"])
        self.mapping = job.mapping
        self.column_of = {f: col for col, f in self.mapping.mapped().items()}
        self.key: str | None = opts.get("key")
        self.on_duplicate: str = opts.get("on_duplicate") or "skip"
        self.choices = {int(k): v for k, v in (opts.get("choices") or {}).items()}
        self.dry_run = bool(opts.get("dry_run"))
        self.coercer = RowCoercer(records, actor, job.entity, self.mapping, self.headers)
        self.jobs, self.errors = _tables(records)

    def column(self, name: str) -> str:
        """The file's column a field's problem belongs to (the field's name when unmapped:
        a rule on the whole record, a default)."""
        return self.column_of.get(name, name)

    # One batch, one unit of work: its records, bad rows and the job's progress together.
    # `start`: the job's rows done before the batch, which its progress moves on from;
    # `after`: the batch before it, still being written (run_job), which must land first.
    def batch(self, rows: Sequence[tuple[int, list[str]]], start: int,
              after: Future[_Outcome] | None = None) -> _Outcome:
        out = _Outcome()
        with self.records.unit(self.actor, dry_run=self.dry_run) as u:
            self._handle(u, rows, out)
            if after is not None and after.exception() is not None:
                raise _Behind(start)  # rolled back: handed out again once that one is redone
            if not self.dry_run:
                self._advance(u.conn, start, len(rows), out)
        if self.dry_run:
            with self.records.writer.begin() as conn:
                self._advance(conn, start, len(rows), out)
        return out

    def _handle(self, u: UnitOfWork, rows: Sequence[tuple[int, list[str]]],
                out: _Outcome) -> None:
        conn = u.conn
        coerced = self.coercer.batch(conn, [cells for _, cells in rows])
        good: list[tuple[int, list[str], dict[str, Any]]] = []
        for (number, cells), (values, problems) in zip(rows, coerced, strict=True):
            if problems:
                problems = {**problems, **self._also_missing(values, problems)}
                out.errors.append((number, cells, {str(k): self.render(v) for k, v in
                                                   problems.items()}))
            else:
                good.append((number, cells, values))
        updates: list[tuple[int, list[str], int, int, dict[str, Any]]] = []
        new = good
        if self.key is not None and good:
            wanted = [v.get(self.key) for _, _, v in good if v.get(self.key) is not None]
            found = _find_by_key(conn, self.records, self.actor, self.entity, self.key,
                                 wanted) if wanted else {}
            key_field = self.c.entity.field(self.key)
            new = []
            for number, cells, values in good:
                value = values.get(self.key)
                hit = None if value is None else found.get(value, found.get(
                    unique_key(self.c.entity, key_field, value)))
                if hit is not None:
                    updates.append((number, cells, hit[0], hit[1], values))
                else:
                    new.append((number, cells, values))
        creates: list[tuple[int, list[str], dict[str, Any]]] = []
        if new:
            candidates = find_duplicates_many(conn, self.records, self.actor, self.entity,
                                              [v for _, _, v in new])
            for i, (number, cells, values) in enumerate(new):
                found_dups = candidates.get(i) or []
                if not found_dups:
                    creates.append((number, cells, values))
                    continue
                listed = [{"id": d.id, "title": d.title, "rule": list(d.rule),
                           **({"row": new[d.row][0]} if d.row is not None else {})}
                          for d in found_dups]
                out.duplicates.append(DuplicateRow(number, _summary(self.headers, cells),
                                                   listed))
                choice = self.choices.get(number, self.on_duplicate)
                stored = [d for d in found_dups if d.id is not None]
                if choice == "create":
                    creates.append((number, cells, values))
                elif choice == "update" and stored:
                    first = stored[0]
                    assert first.id is not None
                    version = self._version(conn, first.id)
                    if version is None:
                        out.errors.append((number, cells, {"_record": self.render(msg(
                            "the duplicate %(title)s to update is gone",
                            title=first.title))}))
                    else:
                        updates.append((number, cells, first.id, version, values))
                else:  # skip — or update, but the match is an earlier row of the file
                    out.skipped += 1
                    out.errors.append((number, cells, {"_record": self.render(msg(
                        "skipped: a possible duplicate of %(records)s",
                        records=", ".join(_named(d, new) for d in found_dups[:3])))}))
        if creates:
            result = bulk_create(self.records, self.actor, self.entity,
                                 [v for _, _, v in creates], unit=u,
                                 batch_size=len(creates) + 1, coerced=True)
            out.created += result.created
            for index, problems in result.errors:
                number, cells, _ = creates[index]
                out.errors.append((number, cells, {self.column(k): self.render(v)
                                                   for k, v in problems.items()}))
        for number, cells, record_id, version, values in updates:
            # a blank cell leaves the record's value as it is (it does not clear it)
            data = {k: v for k, v in values.items() if k != self.key and v is not None}
            savepoint = conn.begin_nested()
            kept = len(u.changes)
            try:
                self.records.update(self.actor, self.entity, record_id, data, version,
                                    unit=u)
            except RecordError as exc:
                savepoint.rollback()
                del u.changes[kept:]
                out.errors.append((number, cells, _problems(exc, self.column,
                                                            self.render)))
            else:
                savepoint.commit()
                out.updated += 1

    def _also_missing(self, values: Mapping[str, Any], problems: Mapping[str, str]
                      ) -> dict[str, str]:
        """For a row refused for values it could not read, the required fields it leaves
        blank too, so the error file names every fix at once (else the next import would
        find the next one). Only where every row is a new record (no key, no update of a
        duplicate), since an update keeps what a blank cell leaves."""
        if self.key is not None or self.on_duplicate == "update" or self.choices:
            return {}
        unread = {self.mapping.columns.get(h) for h in problems}
        errors: dict[str, str] = {}
        self.records.coerce(self.c, {k: v for k, v in values.items() if k not in unread},
                            creating=True, errors=errors, coerced=True,
                            mask=self.records.policy.mask(self.actor, self.c.entity))
        return {self.column(name): problem for name, problem in errors.items()
                if name not in unread and getattr(problem, "id", None) == "is required"}

    def _version(self, conn: Connection, record_id: int) -> int | None:
        t = self.c.table
        return conn.execute(select(t.c.version).where(
            t.c.id == record_id, t.c.deleted_at.is_(None))).scalar()

    def _advance(self, conn: Connection, start: int, count: int, out: _Outcome) -> None:
        """The job's progress and the batch's bad rows, in the batch's transaction."""
        j = self.jobs
        if out.errors:
            conn.execute(insert(self.errors), [
                {"job_id": self.job.id, "data_row": n, "cells": cells, "problems": problems}
                for n, cells, problems in out.errors])
        values: dict[str, Any] = {
            "rows_done": j.c.rows_done + count, "created": j.c.created + out.created,
            "updated": j.c.updated + out.updated, "skipped": j.c.skipped + out.skipped,
            "failed": j.c.failed + out.failed}
        if out.duplicates and len(self.job.duplicates) < MAX_DUPLICATES:
            kept = conn.execute(select(j.c.duplicates).where(j.c.id == self.job.id)
                                ).scalar() or []
            room = MAX_DUPLICATES - len(kept)
            values["duplicates"] = kept + [d.__dict__ for d in out.duplicates[:room]]
        # Only from the row the batch starts at: a second process running the same job
        # (started twice, or a rerun while the first still runs) finds the job moved on
        # and its batch is rolled back, so no row is imported twice. (A batch overlapping
        # the one before it comes here once that one has committed: batches land in file
        # order.) The job's row is locked first, so a second process's batch waits for
        # this one's commit and then finds the job moved on.
        at = conn.execute(select(j.c.rows_done).where(j.c.id == self.job.id)
                          .with_for_update()).scalar()
        if at != start:
            raise Overtaken(self.job.id)
        conn.execute(update(j).where(j.c.id == self.job.id).values(**values))

    def by_rows(self, rows: Sequence[tuple[int, list[str]]], start: int) -> None:
        """A batch that failed as a whole for an unexpected reason, again row by row: only
        the rows at fault fail (kept as failed, with the reason)."""
        for offset, one in enumerate(rows):
            try:
                self.batch([one], start + offset)
            except Overtaken:
                raise
            except Exception as exc:  # this row alone fails
                out = _Outcome(errors=[(one[0], one[1], {"_record": _reason(exc)})])
                with self.records.writer.begin() as conn:
                    self._advance(conn, start + offset, 1, out)

    def overlaps(self) -> bool:
        """Whether a batch may be handled while the one before it is still being written
        (on a second connection, its rows not yet visible): on PostgreSQL, when no batch
        reads what an earlier one of the same file writes — no upsert key, no duplicate
        rules, no column for a unique field, no regarding field, no link to the entity
        itself — and not in a dry run. Locks keep the rest in order: the job's row
        (progress, see _advance), the parents' rows (rollups), the change log's
        commit-order lock."""
        ent = self.c.entity
        return (self.records.engine.dialect.name == "postgresql" and not self.dry_run
                and self.key is None and not ent.duplicates
                and not any(ent.field(n).unique for n in self.column_of)
                and not self.c.regarding
                and all(f.target != ent.name for f in ent.fields))


def run_job(records: Records, actor: Actor, job_id: int, *,
            progress: Callable[[Job], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            batch_size: int | None = None) -> Job:
    """Run (or resume) the job to its end: from the first row no batch committed, batch by
    batch; then the error file. `progress(job)` after every batch; `should_stop()` is asked
    between batches (the job is then `cancelled`, and running it again resumes it).
    `batch_size`: rows per batch (by default BATCH, BATCH_PG on PostgreSQL). The job's
    problems and message are written in its language (`Job.language`)."""
    job = get_job(records, actor, job_id)
    render = renderer(job.language)
    if job.status == "done":
        return job
    path = Path(job.file_path)
    if not path.exists() or file_hash(path) != job.file_hash:
        return _end(records, actor, job, "failed", msg(
            "the file %(name)s is gone or changed since the import started",
            name=job.file_name), render)
    if job.dry_run and job.rows_done:  # a dry run keeps nothing to resume from: again
        _reset(records, job)
    _set(records, job.id, status="running", message=None,
         started_at=job.started_at or records.clock())
    try:
        runner = _Runner(records, actor, get_job(records, actor, job_id))
        if job.total_rows is None:
            _set(records, job.id, total_rows=_count(records, path))
        job = get_job(records, actor, job_id)
        if progress is not None:
            progress(job)
        rows = _numbered(records, path, job.rows_done)
        window = IN_FLIGHT if runner.overlaps() else 1
        if batch_size is None:
            batch_size = BATCH_PG if records.engine.dialect.name == "postgresql" else BATCH
        with bulk_work(), _Batches(runner, window, f"import-{job.id}") as batches:
            # batches handed out, oldest first
            flying: deque[_Flight] = deque()
            done, stopped = job.rows_done, False
            while True:
                while not stopped and len(flying) < window:
                    if should_stop is not None and should_stop():
                        stopped = True
                        break
                    chunk = list(islice(rows, batch_size))
                    if not chunk:
                        break
                    batches.start_after(flying, chunk, done)
                    done += len(chunk)
                if not flying:
                    break
                chunk, start, outcome = flying.popleft()
                if outcome.exception() is not None:
                    _recover(runner, job.id, chunk, start, outcome, flying)
                    again: deque[_Flight] = deque()
                    for c, s, _ in flying:
                        batches.start_after(again, c, s)
                    flying = again
                batch_done()
                job = get_job(records, actor, job_id)
                runner.job = job
                if progress is not None:
                    progress(job)
            if stopped:
                return _end(records, actor, job, "cancelled", None, render)
    except Overtaken:  # another process runs the job: it finishes it
        log.warning("import job %s is being run by another process; this one stops", job_id)
        return get_job(records, actor, job_id)
    except Exception as exc:
        log.exception("import job %s failed", job_id)
        return _end(records, actor, get_job(records, actor, job_id), "failed", _reason(exc),
                    render)
    if not job.dry_run and job.created + job.updated >= ANALYZE_AFTER:
        refresh_statistics(records.engine, (job.entity,))  # the planner learns the new rows
    return _end(records, actor, job, "done", None, render)


_CHUNK = 500


_Rows = list[tuple[int, list[str]]]  # (data-row number, cells)
_Flight = tuple[_Rows, int, "Future[_Outcome]"]  # a batch handed out: rows, done before, outcome


class _Batches:
    """Hands out a job's batches: run at once, in this thread, one at a time (`window` 1),
    or on a pool of `window` threads, each with its own connection."""

    def __init__(self, runner: _Runner, window: int, name: str) -> None:
        self.runner = runner
        self.pool = ThreadPoolExecutor(window, name) if window > 1 else None

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def start_after(self, flying: deque[_Flight], rows: _Rows, done: int) -> None:
        """Hand out `rows` after the last batch of `flying`, and add them to it."""
        flying.append((rows, done, self.start(rows, done, flying[-1][2] if flying else None)))

    def start(self, rows: _Rows, done: int,
              after: Future[_Outcome] | None) -> Future[_Outcome]:
        """Handle `rows` (the job's `done` rows done before them) after the batch `after`."""
        if self.pool is not None:  # in the caller's context (its query limit, …)
            return self.pool.submit(contextvars.copy_context().run, self.runner.batch, rows,
                                    done, after)
        outcome: Future[_Outcome] = Future()
        try:
            outcome.set_result(self.runner.batch(rows, done, after))
        except Exception as exc:  # handled by run_job, as a pooled batch's
            outcome.set_exception(exc)
        return outcome


def _recover(runner: _Runner, job_id: int, chunk: Sequence[tuple[int, list[str]]],
             start: int, outcome: Future[_Outcome],
             later: Sequence[_Flight]) -> None:
    """A batch that raised: another process running the job stops this one (Overtaken);
    anything else is unexpected, and the batch is run again row by row. The batches
    handed out after it cannot land without it (their progress starts where it ends): they
    are waited for, to be handed out again."""
    wait([f for _, _, f in later])
    exc = outcome.exception()
    if isinstance(exc, Overtaken):
        raise exc
    log.info("import job %s: batch at row %s failed; row by row", job_id, chunk[0][0],
             exc_info=exc)
    runner.by_rows(chunk, start)


def _find_by_key(conn: Connection, records: Records, actor: Actor, entity: str, key: str,
                 values: Sequence[Any]) -> dict[Any, tuple[int, int]]:
    """The live records the actor may read whose `key` is one of `values`: {value: (id,
    version)} (engine/runtime/imports/keys.py)."""
    return dict(find_by_key(conn, records, actor, entity, key, list(values)))


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"


def _problems(exc: RecordError, column: Callable[[str], str],
              render: Render) -> dict[str, str]:
    fields = getattr(exc, "fields", None) or {}
    if fields:
        return {column(k): render(v) for k, v in fields.items()}
    return {"_record": render(exc.message)}


def _set(records: Records, job_id: int, **values: Any) -> None:
    jobs, _ = _tables(records)
    with records.writer.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def _reset(records: Records, job: Job) -> None:
    jobs, errors = _tables(records)
    with records.writer.begin() as conn:
        conn.execute(errors.delete().where(errors.c.job_id == job.id))
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(
            rows_done=0, created=0, updated=0, skipped=0, failed=0, duplicates=[]))


def _end(records: Records, actor: Actor, job: Job, status: str, message: str | None,
         render: Render) -> Job:
    """Mark the job ended and write its error file (from every run's bad rows)."""
    _set(records, job.id, status=status, message=None if message is None else render(message),
         finished_at=records.clock() if status == "done" else None)
    job = get_job(records, actor, job.id)
    if job.error_path is not None and job.failed + job.skipped:
        try:
            write_error_file(records, job)
        except OSError as exc:
            _set(records, job.id, message=render(msg("cannot write the error file: %(reason)s",
                                                  reason=exc.strerror or str(exc))))
    return get_job(records, actor, job.id)


def _source(records: Records, path: Path) -> Source:
    """The file, read within the install's size limit (settings.yaml imports.max_size_mb)."""
    return open_source(path, max_bytes=records.model.settings.import_max_bytes)


def _numbered(records: Records, path: Path, skip: int) -> Iterator[tuple[int, list[str]]]:
    """The data rows (1 = the first under the header; blank rows are not counted) after
    the first `skip`."""
    rows = islice(_source(records, path).rows(), skip, None)
    return enumerate(rows, start=skip + 1)


def _count(records: Records, path: Path) -> int:
    """The file's data rows, the file read through and checked (Source.count)."""
    return _source(records, path).count()


def _named(candidate: Any, rows: Sequence[tuple[int, list[str], dict[str, Any]]]) -> str:
    """A duplicate candidate as the error file names it: a record, or a row of the file."""
    if candidate.id is not None:
        return f"{candidate.title} (#{candidate.id})"
    return str(msg("%(title)s (row %(row)s of this file)", title=candidate.title,
                   row=rows[candidate.row][0]))


def _summary(headers: Sequence[str], cells: Sequence[str]) -> str:
    shown = [f"{h}: {c}" for h, c in zip(headers, cells, strict=False) if str(c).strip()]
    return "; ".join(shown[:4])


# -- the error file ---------------------------------------------------------------------


def error_rows(records: Records, job: Job) -> Iterator[list[str]]:
    """The bad rows of the job, in file order: original cells, then the problems."""
    _, errors = _tables(records)
    headers = list(job.options.get("headers") or [])
    width = len(headers)
    kept = _without_old_problems(headers)
    with records.engine.connect() as conn:
        result = conn.execution_options(yield_per=1_000).execute(
            select(errors.c.cells, errors.c.problems).where(errors.c.job_id == job.id)
            .order_by(errors.c.data_row, errors.c.id))
        for cells, problems in result:
            cells = list(cells) + [""] * (width - len(cells))
            cells = [cells[i] for i in kept]
            named = [str(v) if k in ("_record", "") or str(v).startswith(k)
                     else f"{k}: {v}" for k, v in problems.items()]
            yield [*cells, "; ".join(named)]


def _without_old_problems(headers: Sequence[str]) -> list[int]:
    """The positions of the columns an error file repeats: all but the problems column of
    an earlier error file (an error file imported again and failing again gets one problems
    column, the new one, not two of the same name)."""
    old = header_key(ERRORS_COLUMN)
    return [i for i, h in enumerate(headers) if header_key(h) != old]


def write_error_file(records: Records, job: Job) -> Path:
    """The job's bad rows in the input's format: CSV in UTF-8 with a BOM (Excel opens it)
    or XLSX (every cell text, as typed)."""
    assert job.error_path is not None
    path = Path(job.error_path)
    original = list(job.options.get("headers") or [])
    headers = [*(original[i] for i in _without_old_problems(original)), ERRORS_COLUMN]
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell

        book = Workbook(write_only=True)
        sheet = book.create_sheet("errors")
        sheet.append(headers)
        for row in error_rows(records, job):
            cells = []
            for text in row:
                cell = WriteOnlyCell(sheet, value=text)
                cell.data_type = "s"  # the text as typed, never a formula
                cells.append(cell)
            sheet.append(cells)
        book.save(path)
    else:
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            writer.writerows(error_rows(records, job))
    return path
