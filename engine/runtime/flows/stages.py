"""Stage rules at run time: a move of a flow's stage field is checked (allowed transitions,
guards, fields required on entering), and each stage a record enters is written to
`crm_stage_history` (entered, left, by whom), for the record page and, later, reports of
time in stage and stage-to-stage conversion."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from engine.messages import LabelMessage, msg
from engine.metadata.flows import Flow, StageRules
from engine.runtime.errors import Invalid
from engine.runtime.records.computed import RecordContext
from engine.runtime.values import is_blank


class Refusal:
    """Why a move was refused: the rule's name and the 422 to raise."""

    def __init__(self, rule: str, error: Invalid) -> None:
        self.rule = rule
        self.error = error


def check_move(flow: Flow, rules: StageRules, entity: str, record_id: int | None,
               old: str | None, new: str, values: Mapping[str, Any],
               ctx: RecordContext) -> Refusal | None:
    """Whether a record may move from `old` (None: a new record) to `new`; the first rule
    it breaks, or None. `values`: the record as it will be saved."""
    field = rules.field
    shown_old = "(new)" if old is None else old
    if not rules.allowed(old, new):
        targets = ", ".join(rules.targets(old or "") or ())
        return Refusal("transitions", Invalid(
            msg("%(entity)s %(id)s cannot move from %(old)s to %(new)s (flow %(flow)s)",
                entity=entity, id=record_id, old=shown_old, new=new, flow=flow.name),
            {field: msg("%(old)s may move only to: %(targets)s", old=shown_old,
                        targets=targets)}))
    for n, guard in enumerate(rules.guards):
        if guard.to != new or guard.compiled.holds(ctx):
            continue
        return Refusal(f"guards.{n}", Invalid(
            msg("%(entity)s %(id)s cannot move from %(old)s to %(new)s: %(reason)s",
                entity=entity, id=record_id, old=shown_old, new=new,
                reason=LabelMessage(guard.message)),
            {field: LabelMessage(guard.message, f"{flow.name}.stages.guards.{n}")}))
    missing = [name for name in rules.required(new) if is_blank(values.get(name))]
    if missing:
        problems: dict[str, str] = {name: msg("is required on entering %(stage)s", stage=new)
                    for name in missing}
        return Refusal(f"require.{new}", Invalid(
            msg("%(entity)s %(id)s cannot move from %(old)s to %(new)s without %(fields)s",
                entity=entity, id=record_id, old=shown_old, new=new,
                fields=", ".join(missing)), problems))
    return None


def rules_apply(rules: StageRules, old: str | None, new: str) -> bool:
    """Whether any rule judges a move from `old` to `new` (else nothing is evaluated)."""
    return (old is not None and rules.targets(old) is not None) \
        or any(g.to == new for g in rules.guards) or bool(rules.required(new))


class StageHistory:
    """Writes of crm_stage_history, their statements built once."""

    def __init__(self, history: Table) -> None:
        h = self.table = history
        self._close = update(h).where(
            h.c.entity == bindparam("b_entity"), h.c.record_id == bindparam("b_record"),
            h.c.field == bindparam("b_field"), h.c.left_at.is_(None)).values(
            left_at=bindparam("b_at"), left_by=bindparam("b_by"))
        self._open = insert(h)

    def enter(self, conn: Connection, entity: str, record_id: int, field: str,
              stage: str | None, at: datetime, by: int | None, *, new: bool = False) -> None:
        """Close the record's open stage row of `field` (unless the record is `new`) and
        open one for `stage` (unless it is blank)."""
        if not new:
            conn.execute(self._close, {"b_entity": entity, "b_record": record_id,
                                       "b_field": field, "b_at": at, "b_by": by})
        if stage is not None:
            conn.execute(self._open, {"entity": entity, "record_id": record_id,
                                      "field": field, "stage": stage, "entered_at": at,
                                      "entered_by": by})

    def entered(self, conn: Connection, entity: str, record_id: int,
                field: str) -> datetime | None:
        """When the record entered the stage of `field` it is in (its open row)."""
        h = self.table
        return conn.execute(select(h.c.entered_at).where(
            h.c.entity == entity, h.c.record_id == record_id, h.c.field == field,
            h.c.left_at.is_(None)).order_by(h.c.id.desc()).limit(1)).scalar()


def stage_history(conn: Connection, history: Table, entity: str,
                  record_id: int) -> list[dict[str, Any]]:
    """The stages the record entered, oldest first."""
    rows = conn.execute(select(history).where(history.c.entity == entity,
                                              history.c.record_id == record_id)
                        .order_by(history.c.entered_at, history.c.id)).mappings()
    return [dict(r) for r in rows]
