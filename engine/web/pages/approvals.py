"""The approvals inbox (`/approvals`): the viewer's pending approval tasks with approve and
reject buttons (a comment each; a rejection needs one), and the viewer's delegation while
away. Deciding runs engine/runtime/flows/approvals.py (`Approvals.decide`): the task's
approver decides without needing the right to edit the record, and the record moves on in
the same transaction. A record the viewer may not read is listed without title or link.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from engine.messages import msg
from engine.metadata.labels import Label
from engine.metadata.model import Model
from engine.runtime.errors import BadRequest, Conflict, NotFound, RecordError
from engine.runtime.flows.approvals import Approvals
from engine.runtime.records import Records
from engine.web.auth import read_form
from engine.web.i18n import N_
from engine.web.ui import PageFamily, Ui
from engine.web.viewer import Viewer, require_viewer

NOTICES: dict[str, str] = {
    "approved": N_("Approved."),
    "rejected": N_("Rejected: the record went back."),
    "delegated": N_("Your approvals go to your delegate in that period."),
    "undelegated": N_("You decide your approvals yourself again."),
}
"""`?notice=` after a redirect → its message (a fixed set: nothing typed is echoed)."""


class ApprovalPages(PageFamily):
    def __init__(self, model: Model, records: Records, ui: Ui,
                 approvals: Approvals | None) -> None:
        super().__init__(model, records, ui)
        self.approvals = approvals

    def routes(self) -> list[Route]:
        return [
            Route("/approvals", self.inbox, methods=["GET"]),
            Route("/approvals/count", self.count, methods=["GET"]),
            Route("/approvals/delegation", self.delegate, methods=["POST"]),
            Route("/approvals/{task:id}", self.decide, methods=["POST"]),
        ]

    async def count(self, request: Request) -> Response:
        """The header's count (an htmx fragment; empty with nothing waiting)."""
        viewer = require_viewer(request)
        n = 0 if self.approvals is None else await run_in_threadpool(
            self.approvals.count, viewer.user.actor())
        if not n:
            return HTMLResponse("")
        return self.ui.page(request, "approvals_count.html", {"pending": n})

    async def inbox(self, request: Request, *, problem: str | None = None,
                    status: int = 200) -> Response:
        viewer = require_viewer(request)
        context = await run_in_threadpool(self._context, viewer)
        notice = NOTICES.get(request.query_params.get("notice", ""))
        return self.ui.page(request, "approvals.html",
                            {**context, "notice": notice, "problem": problem}, status=status)

    def _context(self, viewer: Viewer) -> dict[str, Any]:
        language = viewer.language
        if self.approvals is None:
            return {"tasks": [], "delegation": None, "configured": False}
        actor = viewer.user.actor()
        tasks = []
        for t in self.approvals.inbox(actor):
            entity = self.model.entity(t["entity"]) if self.model.has_entity(t["entity"]) \
                else None
            tasks.append({
                **t,
                "label": Label.of(t["label"], t["name"]).get(language),
                "step_label": Label.of(t["step_label"], t["step"]).get(language),
                "entity_label": entity.label.get(language) if entity else t["entity"],
                "href": f"/e/{t['entity']}/{t['record_id']}" if t["readable"] else None})
        return {"tasks": tasks, "configured": True,
                "delegation": self.approvals.delegation(actor, self.approvals.today())}

    async def decide(self, request: Request) -> Response:
        viewer = require_viewer(request)
        form = await read_form(request)
        task = int(request.path_params["task"])
        decision = form.get("decision", "")
        if self.approvals is None or decision not in ("approve", "reject"):
            return await self.inbox(request, problem="Choose approve or reject.", status=400)
        approvals = self.approvals
        try:
            await run_in_threadpool(
                lambda: approvals.decide(viewer.user.actor(), task,
                                         approve=decision == "approve",
                                         comment=form.get("comment", "")))
        except (BadRequest, Conflict) as exc:
            return await self.inbox(request, problem=self.ui.gettext(request, exc.message),
                                    status=exc.status)
        notice = "approved" if decision == "approve" else "rejected"
        return RedirectResponse(f"/approvals?notice={notice}", status_code=303)

    async def delegate(self, request: Request) -> Response:
        viewer = require_viewer(request)
        form = await read_form(request)
        if self.approvals is None:
            raise NotFound(msg("no approvals are configured"))
        approvals = self.approvals
        if form.get("clear"):
            await run_in_threadpool(approvals.set_delegation, viewer.user.actor(), None,
                                    None, None)
            return RedirectResponse("/approvals?notice=undelegated", status_code=303)
        if not form.get("delegate", "").strip():
            return await self.inbox(request, problem=self.ui.gettext(
                request, msg("name the colleague who decides for you")), status=400)
        try:
            starts = _date(form.get("starts_on", ""))
            ends = _date(form.get("ends_on", ""))
            await run_in_threadpool(approvals.set_delegation, viewer.user.actor(),
                                    form.get("delegate", "").strip(), starts, ends)
        except RecordError as exc:
            problem = self.ui.gettext(request, exc.message)
            details = "; ".join(f"{k}: {self.ui.gettext(request, v)}"
                                for k, v in exc.fields.items())
            return await self.inbox(request, problem=f"{problem} ({details})" if details
                                    else problem, status=exc.status)
        return RedirectResponse("/approvals?notice=delegated", status_code=303)


def _date(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(msg("the delegation is not valid"),
                         {"date": msg("a date as YYYY-MM-DD")}) from None
