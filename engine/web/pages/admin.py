"""The access explanation page: why a user can (or cannot) see or change a record and each
of its fields (`GET /admin/access?user=NAME&entity=E&id=N`).

The answer is engine.runtime.records.access_explain.explain_access, the same one as
`crm access explain` and `GET /api/access/explain/...`. Administrators may ask about anyone;
others only about themselves (403 otherwise, decided before the user name is looked up, so
the page does not tell which names exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.metadata import Model
from engine.metadata.roles import ACTIONS
from engine.runtime.errors import BadRequest, Forbidden, NotFound, RecordError
from engine.runtime.records import Records
from engine.runtime.records.access_explain import explain_access
from engine.runtime.users import Users
from engine.web.i18n import N_
from engine.web.numbers import whole_number
from engine.web.pages.board import MAX_ID
from engine.web.ui import Ui
from engine.web.viewer import Viewer, require_viewer

ONLY_ADMINS = N_("Only an administrator may explain another user's access.")
NO_USER = N_("There is no user with this name.")
NO_ENTITY = N_("There is no such kind of record.")
BAD_ID = N_("The record id is a whole number.")
NO_RECORD = N_("There is no such record.")

ACTION_NAMES = {"create": N_("May create"), "read": N_("May read"),
                "update": N_("May update"), "delete": N_("May delete"),
                "export": N_("May export"), "assign": N_("May assign")}
VERDICTS = {"visible": N_("can see it"), "hidden": N_("hidden from them"),
            "writable": N_("can change it"), "readonly": N_("cannot change it"),
            "computed": N_("computed, never written")}


@dataclass(frozen=True)
class Question:
    user: str
    entity: str
    id: str

    @property
    def asked(self) -> bool:
        return bool(self.entity or self.id)


class AccessAdmin:
    def __init__(self, model: Model, records: Records, users: Users, ui: Ui) -> None:
        self.model = model
        self.records = records
        self.users = users
        self.ui = ui

    def routes(self) -> list[Route]:
        return [Route("/admin/access", self.page, methods=["GET"])]

    async def page(self, request: Request) -> Response:
        viewer = require_viewer(request)
        params = request.query_params
        question = Question(params.get("user", "").strip()[:80] or viewer.user.name,
                            params.get("entity", "").strip()[:80],
                            params.get("id", "").strip()[:20])
        answer: dict[str, Any] | None = None
        error: str | None = None
        status = 200
        if question.asked:
            try:
                answer = await run_in_threadpool(self.explain, viewer, question)
            except RecordError as exc:
                error, status = exc.message, exc.status
        is_admin = self.records.policy.is_admin(viewer.user.actor())
        entities = sorted(((e.name, e.label.get(viewer.language)) for e in self.model.entities),
                          key=lambda pair: pair[1])
        return self.ui.page(request, "admin_access.html", {
            "question": question, "answer": answer, "error": error, "is_admin": is_admin,
            "entities": entities, "actions": ACTIONS, "action_names": ACTION_NAMES,
            "verdicts": VERDICTS, "entity": (self.model.entity(question.entity)
                                             if answer is not None else None),
        }, status=status)

    def explain(self, viewer: Viewer, question: Question) -> dict[str, Any]:
        asker = viewer.user.actor()
        subject = asker
        if question.user != viewer.user.name:
            if not self.records.policy.is_admin(asker):
                raise Forbidden(ONLY_ADMINS)
            found = self.users.by_name_or_none(question.user)
            if found is None:
                raise NotFound(NO_USER)
            subject = found.actor()
        if not self.model.has_entity(question.entity):
            raise NotFound(NO_ENTITY)
        record_id = whole_number(question.id, 19)
        if record_id is None or not 0 < record_id <= MAX_ID:
            raise BadRequest(BAD_ID, {"id": BAD_ID})
        try:
            return explain_access(self.records, asker, subject, question.entity,
                                  record_id)
        except NotFound:
            raise NotFound(NO_RECORD) from None
