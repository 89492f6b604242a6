"""The flows admin page (`/admin/flows`): the configured flows, and a dry run of a change.

The list shows each flow of config/flows — its name, label, entity, file and what it has
(stage rules, triggers, timers, holiday schedules, approvals, conversions by name). The
form below it runs a change through the whole write pipeline inside a dry run
(`POST /admin/flows/test`, CSRF like every form) with engine.runtime.flows.dryrun.flow_test,
the function `crm flow test` calls: an update of an existing record (its id and the changed
values) or a new record (its field values), as JSON objects. The answer shows each rule
evaluation (passed, fired, skipped or refused and why), the field changes, the records it
would create and the notifications, emails, webhooks, timers and approvals it would queue —
or the refusal — and nothing is written. htmx swaps the result in place; without it the
whole page comes back with the result.

Administrators only (403 otherwise, and the navigation link shows only to them). A bad
question — an unknown flow, a record that is not there, JSON that is not an object, an
unknown field, a form over MAX_FORM bytes — answers 4xx with the form kept and the problem
named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.metadata import Model
from engine.metadata.flows import Flow
from engine.runtime.errors import BadRequest, Forbidden, NotFound, RecordError
from engine.runtime.flows.dryrun import FlowTest, flow_test
from engine.runtime.records import Records
from engine.runtime.values import to_json
from engine.web.i18n import N_
from engine.web.numbers import whole_number
from engine.web.pages.board import MAX_ID
from engine.web.security import FORM_TOO_LARGE
from engine.web.ui import Ui
from engine.web.viewer import Viewer, require_viewer

MAX_FORM = 256 * 1024
"""The most bytes a dry-run form may send (its JSON included); more answers 413."""
MAX_JSON = 64 * 1024
"""The most characters of one JSON box."""

ONLY_ADMINS = N_("Only an administrator may see and test the flows.")
NO_FLOW = N_("There is no flow of this name.")
BAD_ID = N_("The record id is a whole number.")
NO_RECORD = N_("There is no such record.")
NOT_JSON = N_("This is not valid JSON.")
NOT_OBJECT = N_("Give a JSON object of field values, like {\"stage\": \"won\"}.")
TOO_LONG = N_("This is too long.")
ID_OR_RECORD = N_("Give a record id, or the field values of a new record — not both.")
NOTHING_TO_TEST = N_("Give a record id and the changed values, or the field values of a "
                     "new record.")
NO_CHANGE = N_("Give the changed values to test.")
NOT_A_FORM = N_("Send the dry run with the page's form.")

RESULTS = {"passed": N_("passed"), "fired": N_("fired"), "skipped": N_("skipped"),
           "refused": N_("refused"), "scheduled": N_("scheduled")}
ACTIONS = {"set": N_("Set fields"), "create": N_("Create a record"),
           "notify": N_("Notify"), "email": N_("Email"), "webhook": N_("Webhook"),
           "assign": N_("Assign"), "team": N_("Add to the team")}


class FormTooLarge(RecordError):
    status = 413
    code = "too_large"


@dataclass(frozen=True)
class Question:
    """The dry-run form as sent (texts, cut to their bounds)."""

    flow: str = ""
    id: str = ""
    record: str = ""
    changes: str = ""


class FlowsAdmin:
    def __init__(self, model: Model, records: Records, ui: Ui) -> None:
        self.model = model
        self.records = records
        self.ui = ui

    def routes(self) -> list[Route]:
        return [Route("/admin/flows", self.page, methods=["GET"]),
                Route("/admin/flows/test", self.test, methods=["POST"])]

    async def page(self, request: Request) -> Response:
        viewer = self._admin(request)
        chosen = request.query_params.get("flow", "")[:80]
        return self.ui.page(request, "admin_flows.html",
                            self._context(viewer, Question(flow=chosen)))

    async def test(self, request: Request) -> Response:
        viewer = self._admin(request)
        question = Question()
        report: dict[str, Any] | None = None
        error: RecordError | None = None
        try:
            form = await _bounded_form(request)
            question = Question(form.get("flow", "")[:80], form.get("id", "").strip()[:20],
                                form.get("record", "")[:MAX_JSON + 1],
                                form.get("changes", "")[:MAX_JSON + 1])
            report = await run_in_threadpool(self._dry_run, viewer, question)
        except RecordError as exc:
            error = exc
        status = 200 if error is None else error.status
        context = {**self._context(viewer, question), "report": report, "error": error}
        if "hx-request" in request.headers:
            return self.ui.page(request, "admin_flows_result.html", context, status=status)
        return self.ui.page(request, "admin_flows.html", context, status=status)

    def _admin(self, request: Request) -> Viewer:
        viewer = require_viewer(request)
        if not self.records.policy.is_admin(viewer.user.actor()):
            raise Forbidden(ONLY_ADMINS)
        return viewer

    def _context(self, viewer: Viewer, question: Question) -> dict[str, Any]:
        language = viewer.language
        flows = [_summary(self.model, f, language) for f in self.model.flows]
        return {"flows": flows, "question": question, "report": None, "error": None,
                "max_json": MAX_JSON, "results": RESULTS}

    # -- the dry run ------------------------------------------------------------------------

    def _dry_run(self, viewer: Viewer, question: Question) -> dict[str, Any]:
        flow = next((f for f in self.model.flows if f.name == question.flow), None)
        if flow is None:
            raise NotFound(NO_FLOW, {"flow": NO_FLOW})
        record = parse_values(question.record, "record")
        changes = parse_values(question.changes, "changes")
        record_id: int | None = None
        if question.id:
            record_id = whole_number(question.id, 19)
            if record_id is None or not 0 < record_id <= MAX_ID:
                raise BadRequest(BAD_ID, {"id": BAD_ID})
            if record is not None:
                raise BadRequest(ID_OR_RECORD, {"record": ID_OR_RECORD})
            if not changes:
                raise BadRequest(NO_CHANGE, {"changes": NO_CHANGE})
        elif record is None:
            raise BadRequest(NOTHING_TO_TEST, {"id": NOTHING_TO_TEST})
        try:
            done = flow_test(self.records, flow.name, flow.entity, record_id=record_id,
                             record=record, changes=changes, actor=viewer.user.actor())
        except NotFound:  # the flow is there: the record is not
            raise NotFound(NO_RECORD, {"id": NO_RECORD}) from None
        return _described(self.model, flow, done, viewer.language)


async def _bounded_form(request: Request) -> dict[str, str]:
    """The urlencoded form of `request` (first value of each field), read up to MAX_FORM
    bytes: the CSRF guard bounds a form only when it reads the token from it, not when
    htmx sends the token as a header."""
    declared = whole_number(request.headers.get("content-length", "") or "")
    if declared is not None and declared > MAX_FORM:
        raise FormTooLarge(FORM_TOO_LARGE)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest(NOT_A_FORM)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM:
            raise FormTooLarge(FORM_TOO_LARGE)
        chunks.append(chunk)
    fields: dict[str, str] = {}
    for key, value in parse_qsl(b"".join(chunks).decode("utf-8", "replace"),
                                keep_blank_values=True):
        fields.setdefault(key, value.replace("\x00", ""))
    return fields


def parse_values(text: str, box: str) -> dict[str, Any] | None:
    """A JSON object of field values from the form's `box` (None when blank); BadRequest
    naming the box when it is too long, not JSON, or not an object. Numbers with a
    fraction stay text (as the API reads them): the field's type reads them exactly."""
    if not text.strip():
        return None
    if len(text) > MAX_JSON:
        raise BadRequest(TOO_LONG, {box: TOO_LONG})
    try:
        value = json.loads(text, parse_float=str, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise BadRequest(NOT_JSON, {box: NOT_JSON}) from None
    if not isinstance(value, dict):
        raise BadRequest(NOT_OBJECT, {box: NOT_OBJECT})
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: no field holds them


# -- what the page shows ----------------------------------------------------------------------


def _summary(model: Model, flow: Flow, language: str) -> dict[str, Any]:
    entity = model.entity(flow.entity) if model.has_entity(flow.entity) else None
    stages = flow.stages
    return {
        "name": flow.name, "label": flow.label.get(language), "entity": flow.entity,
        "entity_label": entity.label.get(language) if entity else flow.entity,
        "file": flow.file,
        "stage_field": stages.field if stages else None,
        "triggers": [t.name for t in flow.triggers],
        "timers": [t.name for t in flow.timers],
        "schedules": [s.name for s in flow.schedules],
        "approvals": [a.name for a in flow.approvals],
        "conversions": [c.name for c in flow.conversions],
    }


def _described(model: Model, flow: Flow, done: FlowTest, language: str) -> dict[str, Any]:
    """The report in the viewer's words: labels of entities, fields and options."""

    def entity_label(name: str | None) -> str:
        return model.entity(name).label.get(language) if name and model.has_entity(name) \
            else str(name or "")

    def field_label(entity: str, name: str) -> str:
        if model.has_entity(entity) and model.entity(entity).has_field(name):
            return model.entity(entity).field(name).label.get(language)
        return name

    def shown(entity: str, name: str, value: Any) -> str:
        value = to_json(value)
        if value is None or value == "":
            return "—"
        if isinstance(value, str) and model.has_entity(entity) \
                and model.entity(entity).has_field(name) \
                and model.entity(entity).field(name).options:
            return model.entity(entity).field(name).option_label(value, language)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    queued = done.queued
    runs = []
    for run in done.runs:
        runs.append({
            "flow": run.flow, "rule": run.rule, "result": run.result, "event": run.event,
            "reason": run.reason, "entity": entity_label(run.entity), "id": run.record_id,
            "actions": [_action(a, queued.name, entity_label) for a in run.actions],
            "diff": [(field_label(run.entity, k), shown(run.entity, k, v[0]),
                      shown(run.entity, k, v[1])) for k, v in run.diff.items()
                     if isinstance(v, list) and len(v) == 2]})
    changes: list[dict[str, Any]] = []
    created: list[dict[str, Any]] = []
    for change in done.changes:
        item = {"entity": entity_label(change.entity), "id": change.record_id,
                "action": change.action,
                "fields": [(field_label(change.entity, f), shown(change.entity, f, old),
                            shown(change.entity, f, new)) for f, old, new in change.changes]}
        (created if change.action == "create" else changes).append(item)
    refused = None
    if done.refused is not None:
        e = done.refused
        refused = {"message": e.message, "status": e.status,
                   "fields": [(field_label(flow.entity, k.split(".")[0]), v)
                              for k, v in e.fields.items()]}
    return {
        "flow": flow.name, "runs": runs, "changes": changes, "created": created,
        "refused": refused,
        "approvals": [{**a, "entity": entity_label(a["entity"]),
                       "approvers": [queued.name(u) for u in a["approvers"]]}
                      for a in queued.approvals],
        "notifications": [{"user": queued.name(n["user"]),
                           "message": _in(n["message"], language)}
                          for n in queued.notifications],
        "emails": queued.emails, "webhooks": queued.webhooks,
        "timers": [{**t, "entity": entity_label(t["entity"]),
                    "rule": t["data"].get("timer") or t["kind"]} for t in queued.timers],
    }


def _action(action: Mapping[str, Any], name: Any, entity_label: Any) -> dict[str, Any]:
    kind = str(action.get("kind"))
    detail = ""
    if kind == "set":
        detail = ", ".join(str(k) for k in (action.get("values") or {}))
    elif kind == "create":
        detail = entity_label(action.get("entity"))
    elif kind == "notify":
        detail = name(action.get("to"))
    elif kind == "email":
        detail = f"{', '.join(action.get('to') or [])}: {action.get('subject') or ''}"
    elif kind == "webhook":
        detail = str(action.get("url") or "")
    elif kind == "assign":
        detail = f"{name(action.get('to')) if action.get('to') else '—'}: " \
                 f"{action.get('why') or ''}"
    elif kind == "team":
        detail = ", ".join(action.get("users") or []) or "—"
        if action.get("left_out"):
            detail += "; " + "; ".join(action["left_out"])
    return {"kind": kind, "title": ACTIONS.get(kind, kind), "detail": detail}


def _in(message: Mapping[str, Any], language: str) -> str:
    """A {en, zh} notice in `language` (English when it has none)."""
    short = language.split("-")[0]
    return str(message.get(short) or message.get("en") or "")
