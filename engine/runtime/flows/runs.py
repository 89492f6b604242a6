"""Automation runs: every evaluation of a flow's rule on a record is one row of
`crm_automation_run` — the flow, the rule, the version of the flow's file, the event, what
the rule read and decided, the actions it took, the fields it changed, and the run whose
actions caused it. The record page's "Why did this change?" panel and
`GET /api/<entity>/<id>/automation` read them back, without the values of fields hidden
from the reader."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, insert, select

from engine.runtime.values import to_json


@dataclass
class Run:
    """One evaluation, as written (and, in a dry run, as reported)."""

    flow: str
    rule: str
    config_hash: str
    entity: str
    record_id: int
    event: str
    result: str
    """fired (the actions ran), skipped (not applicable: why in `reason`), refused (a stage
    rule stopped the write), passed (a stage move met every rule)."""
    reason: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)
    diff: dict[str, list[Any]] = field(default_factory=dict)
    cause_id: int | None = None
    at: datetime | None = None
    by_user: int | None = None
    id: int | None = None

    def row(self) -> dict[str, Any]:
        return {"flow": self.flow, "rule": self.rule, "config_hash": self.config_hash,
                "entity": self.entity, "record_id": self.record_id, "event": self.event,
                "result": self.result, "reason": self.reason, "inputs": self.inputs,
                "actions": self.actions, "diff": self.diff, "cause_id": self.cause_id,
                "at": self.at, "by_user": self.by_user}


class RunWriter:
    """Writes of crm_automation_run: a fired run at once (its id is the cause of what its
    actions change), the others in one statement when the hook is done with a wave."""

    def __init__(self, runs: Table) -> None:
        self.table = runs
        self._returning = insert(runs).returning(runs.c.id)
        self._plain = insert(runs)

    def now(self, conn: Connection, run: Run) -> int:
        """Insert `run`; its new id (also set on it)."""
        run.id = int(conn.execute(self._returning, run.row()).scalar_one())
        return run.id

    def many(self, conn: Connection, runs: list[Run]) -> None:
        if runs:
            conn.execute(self._plain, [r.row() for r in runs])


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_json(v) for k, v in values.items()}


def runs_of(conn: Connection, runs: Table, users: Table, entity: str, record_id: int,
            hidden: Collection[str], *, limit: int = 200) -> list[dict[str, Any]]:
    """The record's automation runs, newest first, as a reader with `hidden` fields sees
    them: a hidden field's values are left out of inputs, actions and diff."""
    stmt = (select(runs, users.c.name.label("by_name"))
            .outerjoin(users, users.c.id == runs.c.by_user)
            .where(runs.c.entity == entity, runs.c.record_id == record_id)
            .order_by(runs.c.id.desc()).limit(limit))
    out = []
    for r in conn.execute(stmt).mappings():
        out.append({
            "id": r["id"], "flow": r["flow"], "rule": r["rule"],
            "config_hash": r["config_hash"], "event": r["event"], "result": r["result"],
            "reason": r["reason"],
            "inputs": _visible(r["inputs"] or {}, hidden),
            "actions": [_visible_action(a, hidden) for a in r["actions"] or []],
            "diff": _visible(r["diff"] or {}, hidden),
            "cause_id": r["cause_id"], "at": to_json(r["at"]), "by": r["by_name"]})
    return out


def _visible(values: Mapping[str, Any], hidden: Collection[str]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k.split(".")[0] not in hidden}


def _visible_action(action: Mapping[str, Any], hidden: Collection[str]) -> dict[str, Any]:
    out = dict(action)
    if action.get("kind") == "set" and isinstance(action.get("values"), dict):
        out["values"] = _visible(action["values"], hidden)
    return out
