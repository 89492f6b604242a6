"""`crm flow test`: run a change through the whole write pipeline — the flow's stage rules
and triggers included — inside `Records.dry_run`, report which rules fired or were skipped
and why and what would change, and roll everything back: nothing is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.messages import msg
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import BadRequest, NotFound, RecordError
from engine.runtime.flows.hook import FlowHook, install_flows
from engine.runtime.flows.runs import Run
from engine.runtime.records.unit import RecordChange, UnitOfWork
from engine.runtime.values import to_json

if TYPE_CHECKING:
    from engine.runtime.records import Records


@dataclass
class FlowTest:
    """What a dry run of a change would do."""

    runs: list[Run] = field(default_factory=list)
    changes: list[RecordChange] = field(default_factory=list)
    refused: RecordError | None = None

    def lines(self) -> list[str]:
        """The report, one line each."""
        out: list[str] = []
        for run in self.runs:
            reason = f": {run.reason}" if run.reason else ""
            out.append(f"{run.result:8} {run.flow}.{run.rule} on {run.entity} "
                       f"{run.record_id} ({run.event}){reason}")
            for name, (old, new) in run.diff.items():
                out.append(f"           set {name}: {old!r} -> {new!r}")
            for action in run.actions:
                if action.get("kind") != "set":
                    out.append(f"           {_described(action)}")
        for change in self.changes:
            fields = ", ".join(f"{f}: {to_json(o)!r} -> {to_json(n)!r}"
                               for f, o, n in change.changes)
            out.append(f"change   {change.described()}" + (f" {fields}" if fields else ""))
        if self.refused is not None:
            out.append(f"refused  {self.refused.message}")
            out.extend(f"           {k}: {v}" for k, v in self.refused.fields.items())
        out.append("dry run: nothing was written")
        return out


def _described(action: Mapping[str, Any]) -> str:
    kind = action.get("kind")
    if kind == "create":
        return f"create {action.get('entity')} {action.get('id') or ''}".rstrip()
    if kind == "notify":
        return f"notify user {action.get('to')}"
    if kind == "email":
        return f"email {', '.join(action.get('to') or [])}: {action.get('subject')}"
    if kind == "webhook":
        return f"webhook {action.get('url')}"
    if kind == "assign":
        return f"assign to {action.get('to') or '(kept)'}: {action.get('why')}"
    if kind == "team":
        added = ", ".join(action.get("users") or []) or "nobody"
        left = "; ".join(action.get("left_out") or [])
        return f"team +{added} ({action.get('access')})" + (f"; {left}" if left else "")
    return str(kind)


def flow_test(records: Records, flow_name: str, entity: str, *, record_id: int | None = None,
              record: Mapping[str, Any] | None = None, changes: Mapping[str, Any] | None = None,
              actor: Actor = SYSTEM) -> FlowTest:
    """Dry-run a change of `entity` for flow `flow_name`: with `record_id`, update that
    record with `changes`; with `record`, create it (with `changes` on top)."""
    flow = next((f for f in records.model.flows if f.name == flow_name), None)
    if flow is None:
        raise NotFound(msg("no flow %(flow)s", flow=flow_name))
    if flow.entity != entity:
        raise BadRequest(msg("flow %(flow)s is about %(entity)s", flow=flow_name,
                             entity=flow.entity))
    if (record_id is None) == (record is None):
        raise BadRequest(msg("give a record id or a record, not both"))
    if record_id is not None and not changes:
        raise BadRequest(msg("give the change to test (--set)"))
    version = None if record_id is None \
        else records.get(actor, entity, record_id)["version"]  # NotFound: not a test
    hook = install_flows(records)
    assert isinstance(hook, FlowHook)  # the flow exists, so the hook does
    held: list[UnitOfWork] = []

    def work(u: UnitOfWork) -> None:
        held.append(u)
        if record_id is not None and version is not None:
            records.update(actor, entity, record_id, dict(changes or {}), version, unit=u)
        else:
            records.create(actor, entity, {**(record or {}), **(changes or {})}, unit=u)

    report = FlowTest()
    try:
        done = records.dry_run(actor, work)
    except RecordError as exc:
        report.refused = exc
        if held:
            report.runs = hook.runs_in(held[0])
            report.changes = list(held[0].changes)
        return report
    report.changes = list(done.changes)
    report.runs = hook.runs_in(held[0])
    return report
