"""The report builder (docs/reports.md, "Report builder"): `/reports/new` and, for a saved
report, `/reports/saved-<id>/edit` — an htmx page where a user picks the entity, groups,
aggregates, a filter formula (checked as they type), sort and limit, previews the report
on live data and saves it, personal or shared (engine/runtime/reports/saved.py).

htmx endpoints, each answering a fragment, each POST carrying the page's CSRF token:
- `POST /reports/builder/form`: the form drawn again after a choice that changes what the
  other choices offer (the entity, a group's field, an aggregate);
- `POST /reports/builder/check`: the filter formula checked against the entity as the
  viewer sees it, problems named at `line:col`;
- `POST /reports/builder/preview`: the draft run through the report compiler, within the
  viewer's access, its first PREVIEW_ROWS rows.

A saved report's definition is downloaded as YAML (`/reports/saved-<id>/yaml`, for
administrators) to put into config/reports, as `crm report export` writes it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.messages import Message, msg
from engine.metadata.errors import ConfigError
from engine.metadata.labels import Label
from engine.metadata.reports import BUCKETS, MAX_LIMIT, Report
from engine.metadata.yamlio import parse_yaml
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest, Forbidden, Invalid, NotFound
from engine.runtime.reports import run_report
from engine.runtime.reports.saved import SavedReport, SavedReports, saved_id
from engine.web.auth import read_form
from engine.web.charts import chart_svg
from engine.web.i18n import N_
from engine.web.pages.report_draft import (
    MAX_AGGREGATES,
    MAX_GROUPS,
    Draft,
    PathOption,
    definition,
    draft_from,
    draft_of,
    fitted,
    path_options,
    readable_entities,
    to_yaml,
)
from engine.web.pages.reports import _Shown
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

PREVIEW_ROWS = 50
_ACTION = re.compile(r"^/reports/(new|saved-[1-9][0-9]{0,17}/edit)$")
AGG_WORDS = {"count": N_("Count"), "count_distinct": N_("Count distinct"), "sum": N_("Sum"),
             "avg": N_("Average"), "min": N_("Minimum"), "max": N_("Maximum")}
CHART_WORDS = {"bar": N_("Bar chart"), "stacked_bar": N_("Stacked bar chart"),
               "line": N_("Line chart"), "pie": N_("Pie chart"), "funnel": N_("Funnel chart")}
BUCKET_WORDS = {"day": N_("Day"), "week": N_("Week"), "month": N_("Month"),
                "quarter": N_("Quarter"), "year": N_("Year")}


class ReportBuilder(PageFamily):
    def routes(self) -> list[Route]:
        """Before the report pages (`/reports/{report}` would take `/reports/new`)."""
        return [
            Route("/reports/new", self.new, methods=["GET", "POST"]),
            Route("/reports/builder/form", self.form, methods=["POST"]),
            Route("/reports/builder/check", self.check, methods=["POST"]),
            Route("/reports/builder/preview", self.preview, methods=["POST"]),
            Route("/reports/{report}/edit", self.edit, methods=["GET", "POST"]),
            Route("/reports/{report}/delete", self.delete, methods=["POST"]),
            Route("/reports/{report}/yaml", self.yaml, methods=["GET"]),
        ]

    @property
    def saved(self) -> SavedReports:
        return SavedReports(self.records)

    # -- pages -----------------------------------------------------------------------------

    async def new(self, request: Request) -> Response:
        viewer = require_viewer(request)
        actor = viewer.user.actor()
        entities = readable_entities(self.model, self.records.policy, actor)
        if not entities:
            raise Forbidden(N_("You may not read any records to report on."))
        default = entities[0].name
        if request.method == "GET":
            draft = Draft(entity=request.query_params.get("entity", default)[:63])
            return self._page(request, viewer, draft, "/reports/new")
        form = await read_form(request)
        draft = draft_of(form, default)
        return await self._save(request, viewer, draft, None, "/reports/new")

    async def edit(self, request: Request) -> Response:
        viewer = require_viewer(request)
        actor = viewer.user.actor()
        saved = await run_in_threadpool(self._editable, actor, request)
        action = f"/reports/{saved.address}/edit"
        if request.method == "GET":
            draft = draft_from(_data(saved.definition), saved.shared)
            return self._page(request, viewer, draft, action, saved)
        form = await read_form(request)
        draft = draft_of(form, saved.report.entity if saved.report else "")
        draft.extra = draft_from(_data(saved.definition), saved.shared).extra
        return await self._save(request, viewer, draft, saved, action)

    async def delete(self, request: Request) -> Response:
        viewer = require_viewer(request)
        actor = viewer.user.actor()
        saved = await run_in_threadpool(self._editable, actor, request)
        await run_in_threadpool(self.saved.delete, actor, saved.id)
        return RedirectResponse("/reports", status_code=303)

    async def yaml(self, request: Request) -> Response:
        """The saved definition as a report file, for an administrator to put into
        config/reports/<name>.yaml (it passes `crm check` there)."""
        viewer = require_viewer(request)
        actor = viewer.user.actor()
        if not self.records.policy.is_admin(actor):
            raise Forbidden(N_("Only an administrator exports a report into the "
                               "configuration."))
        saved = await run_in_threadpool(self._one, actor, request)
        return Response(saved.definition, media_type="application/yaml; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{saved.name}.yaml"',
                                 "Cache-Control": "no-store"})

    # -- htmx fragments --------------------------------------------------------------------

    async def form(self, request: Request) -> Response:
        viewer = require_viewer(request)
        form = await read_form(request)
        actor = viewer.user.actor()
        draft = draft_of(form, self._default_entity(actor))
        action = form.get("action", "")
        if not _ACTION.match(action):  # where the form is sent: this builder's pages only
            action = "/reports/new"
        context = self._context(viewer, draft, action, None)
        context["saved_id"] = form.get("saved", "")[:20]
        return self.ui.page(request, "report_builder_form.html", context)

    async def check(self, request: Request) -> Response:
        """The filter checked as the viewer would run it: `ok`, or `line:col: problem`."""
        viewer = require_viewer(request)
        form = await read_form(request)
        actor = viewer.user.actor()
        draft = draft_of(form, self._default_entity(actor))
        problem = ""
        if draft.filter.strip():
            problem = await run_in_threadpool(self._filter_problem, actor, draft)
        return self.ui.page(request, "report_builder_check.html",
                            {"problem": problem, "blank": not draft.filter.strip()})

    async def preview(self, request: Request) -> Response:
        viewer = require_viewer(request)
        form = await read_form(request)
        actor = viewer.user.actor()
        draft = draft_of(form, self._default_entity(actor))
        context = await run_in_threadpool(self._preview, viewer, draft)
        return self.ui.page(request, "report_builder_preview.html", context,
                            status=422 if context["problems"] else 200)

    # -- helpers ---------------------------------------------------------------------------

    def _default_entity(self, actor: Actor) -> str:
        entities = readable_entities(self.model, self.records.policy, actor)
        return entities[0].name if entities else ""

    def _one(self, actor: Actor, request: Request) -> SavedReport:
        name = str(request.path_params["report"])
        report_id = saved_id(name)
        if report_id is None:
            raise NotFound(N_("Only a saved report is changed here."))
        return self.saved.get(actor, report_id)

    def _editable(self, actor: Actor, request: Request) -> SavedReport:
        saved = self._one(actor, request)
        if not self.saved.may_edit(actor, saved):
            raise Forbidden(N_("Only its author or an administrator changes a saved "
                               "report."))
        return saved

    def _options(self, actor: Actor, entity: str) -> list[PathOption]:
        if not self.model.has_entity(entity):
            return []
        return path_options(self.model, self.records.policy, actor, self.model.entity(entity))

    def _checked(self, actor: Actor, draft: Draft, language: str
                 ) -> tuple[Report | None, str, list[str | Message]]:
        """The draft's report, its YAML, and its problems (each a line to show)."""
        options = self._options(actor, draft.entity)
        readable = {e.name for e in readable_entities(self.model, self.records.policy, actor)}
        if draft.entity not in readable:
            raise Forbidden(N_("You may not read the records of this report."))
        known = {o.path for o in options}
        problems: list[str | Message] = []
        for path in [p for p, _ in draft.groups] + [p for _, p in draft.aggregates if p]:
            if path not in known:  # hidden fields are answered like unknown ones
                problems.append(msg("%(path)s: not a field you may report on", path=path))
        if draft.filter.strip():
            problem = self._filter_problem(actor, draft)
            if problem:
                problems.append(problem)
        text = to_yaml(definition(draft, options, language))
        if problems:
            return None, text, problems
        checked = self.saved.check(text)
        if not isinstance(checked, Report):
            return None, text, [_problem(e) for e in checked]
        self.saved.require_runnable(actor, checked)
        return checked, text, []

    def _filter_problem(self, actor: Actor, draft: Draft) -> str:
        """`line:col: message` of the filter as `actor` would run it, or ""."""
        if not self.model.has_entity(draft.entity):
            return ""
        try:
            self.records.compile_filter(draft.entity, draft.filter, actor)
        except BadRequest as exc:
            return str(exc.fields.get("filter", exc.message))
        return ""

    def _preview(self, viewer: Viewer, draft: Draft) -> dict[str, Any]:
        actor = viewer.user.actor()
        report, _text, problems = self._checked(actor, draft, viewer.language)
        context: dict[str, Any] = {"problems": problems, "report": report}
        if report is None:
            return context
        capped = replace(report, limit=min(report.limit, PREVIEW_ROWS))
        result = run_report(self.records, actor, capped)
        shown = _Shown(capped, viewer.language, self.model.settings.currency,
                       self.model.settings.time_zone)
        settings = self.model.settings
        context.update(chart=chart_svg(capped, result, viewer.language, settings.currency,
                                       zone=settings.time_zone, ident="builder-chart"),
                       rows=[shown.row(r) for r in result.rows],
                       totals=shown.row(result.totals), truncated=result.truncated,
                       cap=PREVIEW_ROWS)
        return context

    async def _save(self, request: Request, viewer: Viewer, draft: Draft,
                    saved: SavedReport | None, action: str) -> Response:
        actor = viewer.user.actor()

        def save() -> SavedReport | list[str | Message]:
            report, text, problems = self._checked(actor, draft, viewer.language)
            if report is None:
                return problems
            try:
                return self.saved.save(actor, text, draft.shared,
                                       saved.id if saved is not None else None)
            except Invalid as exc:
                return list(exc.fields.values()) or [exc.message]

        done = await run_in_threadpool(save)
        if isinstance(done, SavedReport):
            return RedirectResponse(f"/reports/{done.address}", status_code=303)
        return self._page(request, viewer, draft, action, saved, problems=done, status=422)

    def _page(self, request: Request, viewer: Viewer, draft: Draft, action: str,
              saved: SavedReport | None = None, *,
              problems: list[str | Message] | None = None,
              status: int = 200) -> Response:
        context = self._context(viewer, draft, action, saved)
        context["problems"] = problems or []
        return self.ui.page(request, "report_builder.html", context, status=status)

    def _context(self, viewer: Viewer, draft: Draft, action: str,
                 saved: SavedReport | None) -> dict[str, Any]:
        actor = viewer.user.actor()
        entities = readable_entities(self.model, self.records.policy, actor)
        if draft.entity not in {e.name for e in entities}:
            draft = Draft(entity=entities[0].name if entities else "")
        options = self._options(actor, draft.entity)
        draft = fitted(draft, options)
        return {"draft": draft, "entities": entities, "options": options,
                "dated": {o.path for o in options if o.dated},
                "fits": {agg: [o for o in options if o.fits(agg)] for agg in AGG_WORDS},
                "aggs": AGG_WORDS, "charts": CHART_WORDS,
                "buckets": [(b, BUCKET_WORDS[b]) for b in BUCKETS],
                "group_rows": min(len(draft.groups) + 1, MAX_GROUPS),
                "agg_rows": min(len(draft.aggregates) + 1, MAX_AGGREGATES),
                "names": draft.names(), "max_limit": MAX_LIMIT, "action": action,
                "agg_labels": {a["name"]: Label.of(a.get("label"), a["name"]) for a in definition(
                    draft, options, viewer.language)["aggregates"]},
                "saved": saved, "saved_id": saved.id if saved is not None else "",
                "labels": {o.path: o.label for o in options},
                "problems": []}


def _data(text: str) -> dict[str, Any]:
    doc = parse_yaml(text.encode("utf-8"), "saved report")
    if isinstance(doc, ConfigError) or not isinstance(doc.data, dict):
        return {}
    return doc.data


def _problem(error: ConfigError) -> str:
    return error.message


__all__ = ["PREVIEW_ROWS", "ReportBuilder"]
