"""Saved reports: the report builder's reports, kept in the database (crm_saved_report).

A saved report holds the same definition as a report file of config/reports (its YAML
text), checked by the same validator (engine/metadata/report_text.py, build_report), and
runs through the same compiler. Its address is `saved-<id>`: a report file's name has no
`-`, so the two can never collide (`/reports/saved-7`, `GET /api/reports/saved-7`).

- personal (`shared` false): only its author sees it;
- shared: everyone who may run it (they read its entity and every field it reads:
  engine/runtime/reports/compiler.py may_run) — the author included, like anyone;
- its author or an administrator edits or deletes it (an administrator: a shared one).

A saved report whose definition no longer checks (its entity or a field was removed from
the configuration) is kept: its author sees it listed, with the problems, and may fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, or_, select, update

from engine.messages import msg
from engine.metadata.errors import ConfigError
from engine.metadata.report_text import MAX_DEFINITION, report_from_text
from engine.metadata.reports import Report
from engine.runtime.access import Actor
from engine.runtime.db import WRITE
from engine.runtime.errors import Forbidden, Invalid, NotFound
from engine.runtime.reports.compiler import may_run
from engine.runtime.schema.tables import SAVED_REPORT_TABLE

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

PREFIX = "saved-"
MAX_SAVED = 200
"""Saved reports one author may keep."""
DISPLAY = "saved report"
"""The file name errors of a saved definition are given under."""
_ADDRESS = re.compile(r"^saved-([1-9][0-9]{0,17})$")


def address(report_id: int) -> str:
    """The name a saved report is run and exported under: saved-<id>."""
    return f"{PREFIX}{report_id}"


def saved_id(name: str) -> int | None:
    """The id of a saved report's address, None for any other name.

    >>> saved_id("saved-12"), saved_id("sales_funnel"), saved_id("saved-012")
    (12, None, None)
    """
    found = _ADDRESS.match(name)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class SavedReport:
    id: int
    owner_id: int
    name: str
    """The definition's `report:` name (its file's name once exported to config/reports)."""
    shared: bool
    definition: str
    created_at: datetime
    updated_at: datetime
    report: Report | None
    """The checked report, named by its address; None when the definition no longer checks."""
    problems: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return address(self.id)


class SavedReports:
    def __init__(self, records: Records) -> None:
        self.records = records
        self.engine = records.engine
        self.writer = records.engine.execution_options(**WRITE)
        self.table = records.schema.table(SAVED_REPORT_TABLE)

    # -- checking --------------------------------------------------------------------------

    def check(self, text: str) -> Report | list[ConfigError]:
        """The report of a definition, or its problems, as for a file of config/reports."""
        return report_from_text(text, DISPLAY, self.records.model.entities)

    def require_runnable(self, actor: Actor, report: Report) -> None:
        """Forbidden unless `actor` may run `report` (naming no field)."""
        if not may_run(self.records, actor, report):
            raise Forbidden(msg("this report reads fields you may not see"))

    # -- reading ---------------------------------------------------------------------------

    def visible(self, actor: Actor) -> list[SavedReport]:
        """The saved reports `actor` sees: their own, and the shared ones they may run."""
        t = self.table
        mine = t.c.owner_id == actor.user_id if actor.user_id is not None else t.c.id < 0
        stmt = select(t).where(or_(mine, t.c.shared.is_(True))).order_by(t.c.name, t.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        out = []
        for row in rows:
            saved = self._saved(row)
            if saved.owner_id == actor.user_id or (
                    saved.report is not None and may_run(self.records, actor, saved.report)):
                out.append(saved)
        return out

    def get(self, actor: Actor, report_id: int) -> SavedReport:
        """One saved report `actor` sees; NotFound for one they do not (another's personal
        report, or a shared one they may not run, is as if it did not exist)."""
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == report_id)).first()
        saved = self._saved(row) if row is not None else None
        if saved is None or not self._sees(actor, saved):
            raise NotFound(msg("no report '%(report)s'", report=address(report_id)))
        return saved

    def report(self, actor: Actor, name: str) -> Report | None:
        """The report of address `name` as `actor` sees it: None when `name` is no saved
        report's address; NotFound when they do not see it; Invalid when it no longer
        checks."""
        report_id = saved_id(name)
        if report_id is None:
            return None
        saved = self.get(actor, report_id)
        if saved.report is None:
            raise Invalid(msg("this saved report no longer matches the configuration: "
                              "%(problems)s", problems="; ".join(saved.problems)))
        return saved.report

    def may_edit(self, actor: Actor, saved: SavedReport) -> bool:
        """Its author, or an administrator (for a shared one: they see no personal one)."""
        return saved.owner_id == actor.user_id or (
            saved.shared and self.records.policy.is_admin(actor))

    # -- writing ---------------------------------------------------------------------------

    def save(self, actor: Actor, text: str, shared: bool,
             report_id: int | None = None) -> SavedReport:
        """Create (or, with `report_id`, replace) a saved report from its YAML definition.
        Invalid with the definition's problems; Forbidden when `actor` may not run it, or
        may not edit the one of `report_id`."""
        if actor.user_id is None:
            raise Forbidden(msg("only a user saves reports"))
        checked = self.check(text)
        if not isinstance(checked, Report):
            raise Invalid(msg("the report is not valid"),
                          {"definition": "; ".join(e.message for e in checked)})
        self.require_runnable(actor, checked)
        t = self.table
        now = datetime.now(UTC)
        if report_id is not None:
            old = self.get(actor, report_id)
            if not self.may_edit(actor, old):
                raise Forbidden(msg("only its author or an administrator changes a saved "
                                    "report"))
            with self.writer.begin() as conn:
                conn.execute(update(t).where(t.c.id == report_id).values(
                    name=checked.name, shared=shared, definition=text, updated_at=now))
            return self.get(actor, report_id)
        with self.writer.begin() as conn:
            count = conn.execute(select(func.count()).select_from(t).where(
                t.c.owner_id == actor.user_id)).scalar() or 0
            if count >= MAX_SAVED:
                raise Invalid(msg("you have %(count)s saved reports; delete one first",
                                  count=MAX_SAVED))
            new_id = int(conn.execute(insert(t).values(
                owner_id=actor.user_id, name=checked.name, shared=shared, definition=text,
                created_at=now, updated_at=now).returning(t.c.id)).scalar_one())
        return self.get(actor, new_id)

    def delete(self, actor: Actor, report_id: int) -> None:
        saved = self.get(actor, report_id)
        if not self.may_edit(actor, saved):
            raise Forbidden(msg("only its author or an administrator changes a saved report"))
        t = self.table
        with self.writer.begin() as conn:
            conn.execute(delete(t).where(t.c.id == report_id))

    def definition(self, report_id: int) -> SavedReport | None:
        """Any saved report by id, whoever sees it (for `crm report export`)."""
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == report_id)).first()
        return self._saved(row) if row is not None else None

    # -- helpers ---------------------------------------------------------------------------

    def _sees(self, actor: Actor, saved: SavedReport) -> bool:
        if saved.owner_id == actor.user_id:
            return True
        return saved.shared and saved.report is not None and may_run(self.records, actor,
                                                                      saved.report)

    def _saved(self, row: Any) -> SavedReport:
        r = row._mapping
        checked = self.check(str(r["definition"]))
        report = replace(checked, name=address(int(r["id"]))) \
            if isinstance(checked, Report) else None
        problems = () if isinstance(checked, Report) else tuple(e.message for e in checked)
        return SavedReport(id=int(r["id"]), owner_id=int(r["owner_id"]), name=str(r["name"]),
                           shared=bool(r["shared"]), definition=str(r["definition"]),
                           created_at=r["created_at"], updated_at=r["updated_at"],
                           report=report, problems=problems)


__all__ = ["MAX_DEFINITION", "PREFIX", "SavedReport", "SavedReports", "address", "saved_id"]
