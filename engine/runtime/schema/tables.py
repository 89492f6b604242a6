"""Build SQLAlchemy tables from the Model: engine tables, then one table per entity."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from engine.metadata.model import Entity, Field, Model
from engine.runtime.schema.regarding import RegardingText, regarding_columns
from engine.runtime.schema.types import ExactDecimal, IdType, UtcDateTime
from engine.types import DECIMAL_SHAPES, TEXT_DEFAULT_MAX, FieldType

USER_TABLE = "crm_user"
TOKEN_TABLE = "crm_token"
AUDIT_TABLE = "crm_audit"
MIGRATION_TABLE = "crm_migration"
ARCHIVE_TABLE = "crm_archived_column"
TEAM_TABLE = "crm_team"
ATTACHMENT_TABLE = "crm_attachment"
SESSION_TABLE = "crm_session"
LOGIN_THROTTLE_TABLE = "crm_login_throttle"
FORM_DRAFT_TABLE = "crm_form_draft"
SAVED_VIEW_TABLE = "crm_saved_view"
ROLLUP_STATE_TABLE = "crm_rollup_state"
AUTONUMBER_TABLE = "crm_autonumber"
STAGE_HISTORY_TABLE = "crm_stage_history"
AUTOMATION_RUN_TABLE = "crm_automation_run"
NOTIFICATION_TABLE = "crm_notification"
TIMER_TABLE = "crm_timer"
OUTBOX_TABLE = "crm_outbox"
APPROVAL_TABLE = "crm_approval"
APPROVAL_TASK_TABLE = "crm_approval_task"
DELEGATION_TABLE = "crm_delegation"
SAVED_REPORT_TABLE = "crm_saved_report"
SNAPSHOT_TABLE = "crm_pipeline_snapshot"
SNAPSHOT_ROW_TABLE = "crm_pipeline_snapshot_row"
MATCH_KEY_TABLE = "crm_match_key"
MATCH_STATE_TABLE = "crm_match_state"
IDEMPOTENCY_TABLE = "crm_idempotency"
MERGE_TABLE = "crm_merge"
IMPORT_MAPPING_TABLE = "crm_import_mapping"
IMPORT_JOB_TABLE = "crm_import_job"
IMPORT_ERROR_TABLE = "crm_import_error"
CHANGE_TABLE = "crm_change"
CHANGE_FLOOR_TABLE = "crm_change_floor"
SYSTEM_TABLES = (USER_TABLE, TOKEN_TABLE, AUDIT_TABLE, MIGRATION_TABLE, ARCHIVE_TABLE,
                 TEAM_TABLE, ATTACHMENT_TABLE,
                 SESSION_TABLE, LOGIN_THROTTLE_TABLE, FORM_DRAFT_TABLE, SAVED_VIEW_TABLE,
                 ROLLUP_STATE_TABLE, AUTONUMBER_TABLE, TIMER_TABLE, OUTBOX_TABLE,
                 STAGE_HISTORY_TABLE, AUTOMATION_RUN_TABLE, NOTIFICATION_TABLE,
                 APPROVAL_TABLE, APPROVAL_TASK_TABLE, DELEGATION_TABLE, SAVED_REPORT_TABLE,
                 SNAPSHOT_TABLE, SNAPSHOT_ROW_TABLE,
                 MATCH_KEY_TABLE, MATCH_STATE_TABLE, IDEMPOTENCY_TABLE, MERGE_TABLE,
                 IMPORT_MAPPING_TABLE,
                 IMPORT_JOB_TABLE, IMPORT_ERROR_TABLE, CHANGE_TABLE, CHANGE_FLOOR_TABLE)

MAX_IDENTIFIER = 63

def constraint_name(prefix: str, table: str, column: str) -> str:
    """A deterministic identifier of at most 63 characters on every database."""
    name = f"{prefix}_{table}_{column}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


ColumnType = Callable[[Field], TypeEngine[Any]]


def _string(f: Field) -> TypeEngine[Any]:
    """A VARCHAR of the field's max_length, else of the most its type holds."""
    return String(f.max_length or TEXT_DEFAULT_MAX[f.type])


def _choice(f: Field) -> TypeEngine[Any]:
    return String(f.max_length or 64)  # the name of one option


def _exact(f: Field) -> TypeEngine[Any]:
    return ExactDecimal(*DECIMAL_SHAPES[f.type])


def _fixed(make: Callable[[], TypeEngine[Any]]) -> ColumnType:
    return lambda _f: make()


# The column type of each field type (engine/fieldtypes.py declares the rest of a type).
COLUMN_TYPES: dict[FieldType, ColumnType] = {
    FieldType.TEXT: _string,
    FieldType.EMAIL: _string,
    FieldType.PHONE: _string,
    FieldType.URL: _string,
    FieldType.AUTONUMBER: _string,
    FieldType.CHOICE: _choice,
    FieldType.TEXTAREA: _fixed(Text),
    FieldType.INTEGER: _fixed(BigInteger),
    FieldType.DECIMAL: _exact,
    FieldType.MONEY: _exact,
    FieldType.PERCENT: _exact,
    FieldType.BOOLEAN: _fixed(Boolean),
    FieldType.FILE: _fixed(BigInteger),
    FieldType.DATE: _fixed(Date),
    FieldType.DATETIME: _fixed(UtcDateTime),
    FieldType.MULTICHOICE: _fixed(lambda: JSON(none_as_null=True)),
    FieldType.REFERENCE: _fixed(BigInteger),
    FieldType.USER: _fixed(BigInteger),
    FieldType.DEPARTMENT: _fixed(BigInteger),
    # Two columns (engine/runtime/schema/regarding.py); this is the type they are read as.
    FieldType.REGARDING: _fixed(RegardingText),
}


def column_type(f: Field) -> TypeEngine[Any]:
    return COLUMN_TYPES[f.type](f)


@dataclass(frozen=True)
class Schema:
    metadata: MetaData
    model: Model

    def table(self, name: str) -> Table:
        return self.metadata.tables[name]

    @property
    def entity_tables(self) -> list[Table]:
        return [self.metadata.tables[e.name] for e in self.model.entities]


def build_schema(model: Model, dialect: str | None = None) -> Schema:
    """A fresh MetaData holding the engine tables and one table per entity.

    `dialect` shapes the indexes: on PostgreSQL a field's index keeps blanks first, the
    order lists use on every database, so a sort in either direction can read the index.
    Only the schema planner needs it; reading and writing records does not.

    Built once per model and dialect: the tables are never changed after this, so every
    service, app and migration on the same model shares them.
    """
    key = ("schema", dialect)
    built = model.derived.get(key)
    if built is None:
        built = model.derived[key] = _build_schema(model, dialect)
    schema: Schema = built
    return schema


def _build_schema(model: Model, dialect: str | None) -> Schema:
    md = MetaData()
    _system_tables(md)
    has_department = model.has_entity("department")
    cyclic = _cyclic_links(model)
    for entity in model.entities:
        _entity_table(md, entity, has_department, cyclic, blanks_first=dialect == "postgresql")
    return Schema(md, model)


@cache
def engine_table(name: str) -> Table:
    """One engine table (crm_*) without a Model, for code that is handed only a connection
    (flow timers and the outbox); the same columns as in every `build_schema`."""
    md = MetaData()
    _system_tables(md)
    return md.tables[name]


def _links(model: Model) -> dict[str, set[str]]:
    """entity → the other entities its link columns point to (department_id included)."""
    has_department = model.has_entity("department")
    out: dict[str, set[str]] = {}
    for e in model.entities:
        targets = {f.target for f in e.fields if f.target and f.type is not FieldType.USER}
        if has_department:
            targets.add("department")
        out[e.name] = {t for t in targets if t and t != e.name}
    return out


def _cyclic_links(model: Model) -> frozenset[tuple[str, str]]:
    """(table, target) links that close a cycle between tables.

    Their foreign keys are created after the tables (`use_alter`), so tables that point at
    each other can be created in some order, and SQLAlchemy can still sort the rest.
    """
    links = _links(model)

    def reaches(start: str, goal: str) -> bool:
        seen: set[str] = set()
        todo = [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(links.get(node, ()))
        return False

    return frozenset((a, b) for a, targets in links.items() for b in targets if reaches(b, a))


def _system_tables(md: MetaData) -> None:
    _snapshot_tables(md)
    _match_tables(md)
    _merge_table(md)
    _import_mapping_table(md)
    _import_tables(md)
    Table(
        USER_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("name", String(80), nullable=False),
        Column("display_name", String(200)),
        Column("email", String(254)),
        Column("password_hash", String(255)),
        Column("roles", String(500), nullable=False, server_default=""),
        Column("department_id", BigInteger),
        Column("locale", String(10), nullable=False, server_default="en"),
        Column("active", Boolean, nullable=False, server_default="1"),
        Column("created_at", UtcDateTime, nullable=False),
        Column("password_changed_at", UtcDateTime),
        Index("uq_crm_user_name", "name", unique=True),
    )
    Table(
        TOKEN_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("user_id", BigInteger, ForeignKey(f"{USER_TABLE}.id", name="fk_crm_token_user_id"),
               nullable=False),
        Column("token_hash", String(64), nullable=False),
        Column("label", String(200)),
        Column("created_at", UtcDateTime, nullable=False),
        Column("last_used_at", UtcDateTime),
        Column("revoked_at", UtcDateTime),
        Index("uq_crm_token_token_hash", "token_hash", unique=True),
    )
    Table(
        AUDIT_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("at", UtcDateTime, nullable=False),
        Column("user_id", BigInteger),
        Column("entity", String(63), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("action", String(20), nullable=False),
        Column("field", String(63)),
        Column("old_value", Text),
        Column("new_value", Text),
        Index("ix_crm_audit_record", "entity", "record_id"),
    )
    Table(
        MIGRATION_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("applied_at", UtcDateTime, nullable=False),
        Column("config_hash", String(64), nullable=False),
        Column("destructive", Boolean, nullable=False),
        Column("steps", Text, nullable=False),
    )
    Table(
        ARCHIVE_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("table_name", String(63), nullable=False),
        Column("column_name", String(63), nullable=False),
        Column("column_type", String(100), nullable=False),
        Column("archived_at", UtcDateTime, nullable=False),
        Index("uq_crm_archived_column", "table_name", "column_name", unique=True),
    )
    # Record teams (engine/runtime/records/team.py): users who share a record with its owner.
    Table(
        TEAM_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(63), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("user_id", BigInteger, ForeignKey(f"{USER_TABLE}.id", name="fk_crm_team_user_id"),
               nullable=False),
        Column("access", String(10), nullable=False),  # "read" or "edit"
        Column("added_at", UtcDateTime, nullable=False),
        Column("added_by", BigInteger),
        # The access predicate asks "is user U on the team of an E record", record by record.
        Index("uq_crm_team_member", "user_id", "entity", "record_id", unique=True),
        Index("ix_crm_team_record", "entity", "record_id"),
        # ... and with which access (read: read or edit), from the index alone.
        Index("ix_crm_team_access", "user_id", "entity", "access", "record_id"),
    )
    # Files attached to records (engine/runtime/files/attachments.py): the content is a blob
    # of the file store named by its SHA-256, shared by every attachment of that content.
    Table(
        ATTACHMENT_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(63), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("field", String(63)),  # the file field it is the value of; NULL: the list
        Column("file_name", String(255), nullable=False),
        Column("content_type", String(100), nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("created_by", BigInteger),
        Index("ix_crm_attachment_record", "entity", "record_id"),
        Index("ix_crm_attachment_sha256", "sha256"),
    )
    # Browser sessions (engine/runtime/sessions.py): the cookie's random id is stored only as
    # its SHA-256 digest, like API tokens.
    Table(
        SESSION_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("token_hash", String(64), nullable=False),
        Column("user_id", BigInteger,
               ForeignKey(f"{USER_TABLE}.id", name="fk_crm_session_user_id"), nullable=False),
        Column("csrf_secret", String(64), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("last_seen_at", UtcDateTime, nullable=False),
        Column("ended_at", UtcDateTime),
        Index("uq_crm_session_token_hash", "token_hash", unique=True),
        Index("ix_crm_session_user_id", "user_id"),
    )
    # Failed sign-ins (engine/runtime/sessions.py): one counter per (user name, client
    # address), and one per address for all names (user_name ""), each row locked while an
    # attempt is counted. An earlier crm_login_attempt table (one row per failure) is unused.
    Table(
        LOGIN_THROTTLE_TABLE, md,
        Column("user_name", String(80), primary_key=True),
        Column("address", String(64), primary_key=True),
        Column("failures", Integer, nullable=False),
        Column("last_at", UtcDateTime, nullable=False),
        Index("ix_crm_login_throttle_last_at", "last_at"),
    )
    # Forms posted after their session ended (engine/runtime/drafts.py), kept for the user's
    # next sign-in; only the digest of a draft's id is stored.
    Table(
        FORM_DRAFT_TABLE, md,
        Column("id_hash", String(64), primary_key=True),
        Column("user_id", BigInteger,
               ForeignKey(f"{USER_TABLE}.id", name="fk_crm_form_draft_user_id"), nullable=False),
        Column("path", String(300), nullable=False),
        Column("fields", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Index("ix_crm_form_draft_created_at", "created_at"),
    )
    # A user's saved list views (engine/runtime/views.py): a name for a list's query string.
    Table(
        SAVED_VIEW_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("user_id", BigInteger,
               ForeignKey(f"{USER_TABLE}.id", name="fk_crm_saved_view_user_id"), nullable=False),
        Column("entity", String(63), nullable=False),
        Column("name", String(80), nullable=False),
        Column("query", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Index("uq_crm_saved_view", "user_id", "entity", "name", unique=True),
    )
    # Rollups computed for every row (engine/runtime/rollups/refresh.py): what each column
    # was computed from; `crm migrate` recomputes a rollup whose signature differs.
    Table(
        ROLLUP_STATE_TABLE, md,
        Column("entity", String(63), primary_key=True),
        Column("field", String(63), primary_key=True),
        Column("signature", Text, nullable=False),
        Column("computed_at", UtcDateTime, nullable=False),
    )
    # Autonumber counters (engine/runtime/records/autonumber.py): the last number given in
    # each period ("2026", "2026-03", "" for a counter that never starts again) of each
    # autonumber field; a create takes the next with one atomic upsert that locks the row.
    Table(
        AUTONUMBER_TABLE, md,
        Column("entity", String(63), primary_key=True),
        Column("field", String(63), primary_key=True),
        Column("period", String(10), primary_key=True),
        Column("last_number", BigInteger, nullable=False),
    )
    # Flows (engine/runtime/flows/stages.py): each stage a record of a flow's stage field
    # entered, when, by whom, and when it left it (NULL while it is there).
    Table(
        STAGE_HISTORY_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(63), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("field", String(63), nullable=False),
        Column("stage", String(64), nullable=False),
        Column("entered_at", UtcDateTime, nullable=False),
        Column("entered_by", BigInteger),
        Column("left_at", UtcDateTime),
        Column("left_by", BigInteger),
        Index("ix_crm_stage_history_record", "entity", "record_id", "field"),
    )
    # Flows (engine/runtime/flows/runs.py): every evaluation of a flow's rule on a record,
    # what it read and decided, what it did, and the run whose actions caused it.
    Table(
        AUTOMATION_RUN_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("flow", String(63), nullable=False),
        Column("rule", String(80), nullable=False),
        Column("config_hash", String(64), nullable=False),
        Column("entity", String(63), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("event", String(20), nullable=False),
        Column("result", String(20), nullable=False),  # fired, skipped, refused, passed
        Column("reason", Text),
        Column("inputs", JSON),
        Column("actions", JSON),
        Column("diff", JSON),
        Column("cause_id", BigInteger),
        Column("at", UtcDateTime, nullable=False),
        Column("by_user", BigInteger),
        Index("ix_crm_automation_run_record", "entity", "record_id"),
    )
    # In-app notifications a flow sends (notify actions): one row per user and message.
    Table(
        NOTIFICATION_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("user_id", BigInteger, nullable=False),
        Column("entity", String(63)),
        Column("record_id", BigInteger),
        Column("message", JSON, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("read_at", UtcDateTime),
        Index("ix_crm_notification_user", "user_id", "read_at"),
    )
    # Approvals (engine/runtime/flows/approvals.py): one row per submission of a record;
    # `step` the step waiting now, `previous` the option it was submitted from.
    Table(
        APPROVAL_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("flow", String(63), nullable=False),
        Column("name", String(63), nullable=False),
        Column("entity", String(63), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("status", String(20), nullable=False),
        Column("step", String(63)),
        Column("previous", String(255)),
        Column("submitted_by", BigInteger),
        Column("submitted_at", UtcDateTime, nullable=False),
        Column("decided_at", UtcDateTime),
        Index("ix_crm_approval_record", "entity", "record_id", "status"),
    )
    # One approver's part in a step: `user_id` decides (a delegate, when `for_user` is away),
    # `status` pending, approved, rejected, closed (the step was settled without them) or
    # escalated (its time ran out and it went up).
    Table(
        APPROVAL_TASK_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("approval_id", BigInteger, nullable=False),
        Column("step", String(63), nullable=False),
        Column("user_id", BigInteger, nullable=False),
        Column("for_user", BigInteger),
        Column("status", String(20), nullable=False),
        Column("comment", Text),
        Column("created_at", UtcDateTime, nullable=False),
        Column("decided_at", UtcDateTime),
        Column("decided_by", BigInteger),
        Index("ix_crm_approval_task_user", "user_id", "status"),
        Index("ix_crm_approval_task_approval", "approval_id"),
    )
    # An approver away: their approval tasks go to `delegate_id` from `starts_on` to
    # `ends_on` (dates in the organisation's zone, both included).
    Table(
        DELEGATION_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("user_id", BigInteger, nullable=False),
        Column("delegate_id", BigInteger, nullable=False),
        Column("starts_on", Date, nullable=False),
        Column("ends_on", Date, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Index("ix_crm_delegation_user", "user_id"),
    )
    # Reports saved from the report builder (engine/runtime/reports/saved.py): the YAML of a
    # config/reports file, its author, and whether everyone who may run it sees it.
    Table(
        SAVED_REPORT_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("owner_id", BigInteger,
               ForeignKey(f"{USER_TABLE}.id", name="fk_crm_saved_report_owner_id"),
               nullable=False),
        Column("name", String(63), nullable=False),
        Column("shared", Boolean, nullable=False, server_default="0"),
        Column("definition", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Index("ix_crm_saved_report_owner", "owner_id"),
    )
    # Flow timers (engine/runtime/flows/timers.py): one row per due action, its key unique;
    # a worker claims due rows and applies a row's effects and marks it done in one
    # transaction. `next_attempt_at`: when it may run (due_at, later after a failure; NULL
    # once done or out of attempts).
    Table(
        TIMER_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("key", String(255), nullable=False),
        Column("kind", String(63), nullable=False),
        Column("entity", String(63)),
        Column("record_id", BigInteger),
        Column("due_at", UtcDateTime, nullable=False),
        Column("data", JSON),
        Column("state", String(10), nullable=False),  # pending, done, failed
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", UtcDateTime),
        Column("claimed_by", String(100)),
        Column("claimed_at", UtcDateTime),
        Column("done_at", UtcDateTime),
        Column("error", Text),
        Index("uq_crm_timer_key", "key", unique=True),
        Index("ix_crm_timer_next", "next_attempt_at"),
        Index("ix_crm_timer_record", "entity", "record_id"),
    )
    # The outbox (engine/runtime/flows/outbox.py): webhooks and emails written in the
    # transaction of the change that causes them, delivered after it commits, at least once.
    Table(
        OUTBOX_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("key", String(255), nullable=False),
        Column("kind", String(20), nullable=False),  # webhook, email
        Column("payload", JSON, nullable=False),
        Column("state", String(10), nullable=False),  # pending, sent, exhausted
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", UtcDateTime),
        Column("claimed_by", String(100)),
        Column("last_error", Text),
        Column("created_at", UtcDateTime, nullable=False),
        Column("sent_at", UtcDateTime),
        Index("uq_crm_outbox_key", "key", unique=True),
        Index("ix_crm_outbox_next", "next_attempt_at"),
    )
    # Idempotency keys of API POSTs (engine/runtime/idempotency.py, docs/api.md): one row per
    # caller and key, claimed before the request runs, marked `committed` in the transaction
    # of the request's writes, holding the answer once it is known; kept 24 hours.
    Table(
        IDEMPOTENCY_TABLE, md,
        Column("user_id", BigInteger, primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("claim", String(32), nullable=False),  # the request holding the key now
        Column("state", String(10), nullable=False),  # running, committed, done
        Column("claimed_at", UtcDateTime, nullable=False),
        Column("expires_at", UtcDateTime, nullable=False),
        Column("written", JSON),  # what the request's writes changed: ["account/12", ...]
        Column("status", Integer),
        Column("headers", JSON),
        Column("body", LargeBinary),
        Index("ix_crm_idempotency_expires", "expires_at"),
    )
    # The change log behind the changes feed (engine/runtime/records/changelog.py, feed.py;
    # docs/api.md "Changes feed"): one row per record a unit of work changed, `seq` in commit
    # order. `owner_id`/`department_id`: the record's before the change (after, for a
    # create), which says who could see it then. Grows with writes, unless settings.yaml
    # `changes.keep_days` has the worker delete the oldest rows (changelog.prune_log).
    Table(
        CHANGE_TABLE, md,
        Column("seq", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(63), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("action", String(10), nullable=False),  # create update delete restore purge
        Column("at", UtcDateTime, nullable=False),
        Column("owner_id", BigInteger),
        Column("department_id", BigInteger),
        Index("ix_crm_change_entity_seq", "entity", "seq"),
    )
    # How far the log has been deleted: no row at or below `through_seq` is left, so a feed
    # cursor below it may have missed changes (410). One row (id 1) once anything was
    # deleted; none before. Moved in the transaction that deletes the rows.
    Table(
        CHANGE_FLOOR_TABLE, md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("through_seq", BigInteger, nullable=False),
        Column("pruned_at", UtcDateTime, nullable=False),
    )


def _import_tables(md: MetaData) -> None:
    """Import jobs (engine/runtime/imports/jobs.py): one row per job — who imports which
    file (its sha256) with which options (`options_key`: their hash, how a rerun finds the
    job to resume), its status and progress, advanced in each batch's transaction — and
    the bad rows kept for the error file (original cells, problems by column)."""
    Table(
        IMPORT_JOB_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(63), nullable=False),
        Column("user_id", BigInteger),  # NULL: the engine (crm import without --as)
        Column("file_name", String(255), nullable=False),
        Column("file_path", Text, nullable=False),
        Column("file_hash", String(64), nullable=False),
        Column("options", JSON, nullable=False),
        Column("options_key", String(64), nullable=False),
        Column("dry_run", Boolean, nullable=False, server_default="0"),
        # pending, running, done, failed, cancelled
        Column("status", String(10), nullable=False),
        Column("total_rows", Integer),
        Column("rows_done", Integer, nullable=False, server_default="0"),
        Column("created", Integer, nullable=False, server_default="0"),
        Column("updated", Integer, nullable=False, server_default="0"),
        Column("skipped", Integer, nullable=False, server_default="0"),
        Column("failed", Integer, nullable=False, server_default="0"),
        Column("error_path", Text),
        Column("duplicates", JSON),
        Column("message", Text),
        Column("created_at", UtcDateTime, nullable=False),
        Column("started_at", UtcDateTime),
        Column("finished_at", UtcDateTime),
        Index("ix_crm_import_job_resume", "user_id", "file_hash", "status"),
        Index("ix_crm_import_job_entity", "entity", "id"),
    )
    Table(
        IMPORT_ERROR_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("job_id", BigInteger,
               ForeignKey(f"{IMPORT_JOB_TABLE}.id", name="fk_crm_import_error_job_id"),
               nullable=False),
        Column("data_row", Integer, nullable=False),  # 1: the first row under the header
        Column("cells", JSON, nullable=False),
        Column("problems", JSON, nullable=False),
        Index("ix_crm_import_error_job", "job_id", "data_row"),
    )


def _snapshot_tables(md: MetaData) -> None:
    """Pipeline snapshots (engine/runtime/reports/snapshots.py; docs/forecast.md), kept
    without a time limit: a header per snapshot — `period` the schedule's period of a
    scheduled one (unique: one per period, whichever worker takes it), NULL on demand — and
    one row per open opportunity as it stood then. No foreign key to the deal: its history
    outlives it."""
    Table(
        SNAPSHOT_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("taken_at", UtcDateTime, nullable=False),
        Column("taken_by", BigInteger),
        Column("kind", String(20), nullable=False),  # scheduled, on_demand
        Column("period", String(20)),
        Index("uq_crm_pipeline_snapshot_period", "period", unique=True),
    )
    Table(
        SNAPSHOT_ROW_TABLE, md,
        Column("snapshot_id", BigInteger,
               ForeignKey(f"{SNAPSHOT_TABLE}.id", name="fk_crm_pipeline_snapshot_row_snap"),
               primary_key=True),
        Column("record_id", BigInteger, primary_key=True),
        Column("stage", String(64)),
        Column("amount", ExactDecimal(*DECIMAL_SHAPES[FieldType.MONEY])),
        Column("probability", ExactDecimal(*DECIMAL_SHAPES[FieldType.PERCENT])),
        Column("weighted", ExactDecimal(*DECIMAL_SHAPES[FieldType.MONEY])),
        Column("forecast_category", String(64)),
        Column("close_date", Date),
        Column("owner_id", BigInteger),
        Column("department_id", BigInteger),
    )


def _match_tables(md: MetaData) -> None:
    """Duplicate rules' match keys (engine/runtime/imports/duplicates.py): per record of an
    entity with `duplicates:` rules, one row per rule its values fill — the rule (its
    fields, comma-separated) and a digest of the normalised values — kept by a
    before-commit hook, so finding a record's duplicates is an index look-up. The state
    row says which rules (and normalisation) an entity's keys were last computed for; a
    change is recomputed by `crm migrate`."""
    Table(
        MATCH_KEY_TABLE, md,
        Column("entity", String(63), primary_key=True),
        Column("record_id", BigInteger, primary_key=True),
        Column("rule", String(255), primary_key=True),
        Column("key", String(32), nullable=False),
        Index("ix_crm_match_key_key", "entity", "rule", "key"),
    )
    Table(
        MATCH_STATE_TABLE, md,
        Column("entity", String(63), primary_key=True),
        Column("signature", Text, nullable=False),
        Column("computed_at", UtcDateTime, nullable=False),
    )


def _merge_table(md: MetaData) -> None:
    """Merges of two records into one (engine/runtime/imports/merge.py): what moved and the
    survivor's values before, so that restoring the merged-away record undoes it. No
    foreign keys: the rows outlive both records' purge."""
    Table(
        MERGE_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(63), nullable=False),
        Column("survivor_id", BigInteger, nullable=False),
        Column("loser_id", BigInteger, nullable=False),
        Column("merged_at", UtcDateTime, nullable=False),
        Column("merged_by", BigInteger),
        Column("detail", Text, nullable=False),  # JSON: fields, cleared, moved, team, files
        Column("undone_at", UtcDateTime),
        Column("undone_by", BigInteger),
        Index("ix_crm_merge_loser", "entity", "loser_id"),
    )


def _entity_table(md: MetaData, entity: Entity, has_department: bool,
                  cyclic: frozenset[tuple[str, str]], *, blanks_first: bool = False) -> Table:
    name = entity.name
    dept_fk: list[ForeignKey] = (
        [ForeignKey("department.id", name=constraint_name("fk", name, "department_id"),
                    use_alter=(name, "department") in cyclic)]
        if has_department else []
    )
    owner = Column("owner_id", BigInteger(),
                   ForeignKey(f"{USER_TABLE}.id", name=constraint_name("fk", name, "owner_id")))
    columns: list[Column[Any]] = [
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("version", Integer, nullable=False, server_default="1"),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("created_by", BigInteger()),
        Column("updated_at", UtcDateTime(), nullable=False),
        Column("updated_by", BigInteger()),
        owner,
        Column("department_id", BigInteger(), *dept_fk),
        Column("deleted_at", UtcDateTime()),
        Column("deleted_by", BigInteger()),
    ]
    indexes = [
        Index(constraint_name("ix", name, "owner_id"), "owner_id"),
        Index(constraint_name("ix", name, "department_id"), "department_id"),
    ]
    if blanks_first:  # PostgreSQL; SQLite's owner_id index holds the row ids in order
        # A user's own records in id order: the total's probes (records/totals.py).
        indexes.append(Index(constraint_name("ixo", name, "id"), owner, columns[0]))
    for f in entity.stored_fields:
        if f.type is FieldType.REGARDING:  # two columns, no foreign key: any entity
            pair = regarding_columns(f.name)
            columns += pair
            indexes.append(Index(constraint_name("ix", name, f.name), *pair))
            continue
        fks: list[ForeignKey] = []
        target = f.target
        if f.type is FieldType.USER:
            target = USER_TABLE
        if target:
            fks.append(ForeignKey(f"{target}.id", name=constraint_name("fk", name, f.name),
                                  use_alter=(name, target) in cyclic))
        column = Column(f.name, column_type(f), *fks, nullable=True)
        columns.append(column)
        if f.unique:
            indexes.append(Index(constraint_name("uq", name, f.name), f.name, unique=True))
        elif f.index or target:
            key = column.asc().nulls_first() if blanks_first else column
            indexes.append(Index(constraint_name("ix", name, f.name), key))
            if f.index:
                # A user's own records in the field's order: the `own` branch of a list
                # (engine/runtime/records/query.py `page_statement`) reads its page here.
                indexes.append(Index(constraint_name("ixo", name, f.name), owner, key))
    return Table(name, md, *columns, *indexes)


def _import_mapping_table(md: MetaData) -> None:
    """Column mappings saved from the import page (engine/runtime/imports/saved_mappings.py):
    per entity and author, shared with everyone or not, with the headers of the file it was
    made for (to offer it again for a file like it) and the column → field map."""
    Table(
        IMPORT_MAPPING_TABLE, md,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(63), nullable=False),
        Column("owner_id", BigInteger,
               ForeignKey(f"{USER_TABLE}.id", name="fk_crm_import_mapping_owner_id"),
               nullable=False),
        Column("name", String(100), nullable=False),
        Column("shared", Boolean, nullable=False, server_default="0"),
        Column("headers", JSON, nullable=False),
        Column("columns", JSON, nullable=False),
        Column("key", String(63)),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Index("ix_crm_import_mapping_entity", "entity", "owner_id"),
    )
