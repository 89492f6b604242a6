"""The values of a report's parameters (engine/metadata/report_params.py) for one run.

`resolve` reads what the viewer asked for (`?period=this_year`, `?period_from=2026-01-01&
period_to=2026-03-31`, `?department=mine`, `?owner=7`; a missing one takes its default)
and gives a `ParamValue` per parameter: the value used, echoed in the answers, and the
condition it puts on the rows:

- a period: `field >= from AND field < to + 1 day`, as the formula
  `AND(close_date >= DATE(2026, 1, 1), close_date < DATE(2026, 4, 1))` (a datetime field
  through `DATEVALUE`, its UTC date, as its buckets), compiled to SQL with bound values —
  the same text a drill-down hands the list page, so both count the same rows;
- a department: `department_id IN (the department and every department under it)`;
  `mine` is the viewer's (no condition for a viewer without one), an id one of a
  department the viewer may read — any other id is refused alike, whether it exists or not;
- an owner: `owner_id = the user` (`me` the viewer).

A bad value is a 422 naming the parameter and the values it takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, select

from engine.formula import FType
from engine.messages import msg
from engine.metadata.report_params import CUSTOM, ReportParameter
from engine.metadata.reports import Report
from engine.runtime.access import Actor
from engine.runtime.errors import Invalid
from engine.runtime.records import secure
from engine.runtime.records.secure import SecureRows
from engine.runtime.reports.fiscal import DateRange, preset_range

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

MAX_DEPARTMENTS = 100
"""Departments one department parameter may cover (a list's `__in` takes as many)."""


@dataclass(frozen=True)
class ParamValue:
    parameter: ReportParameter
    value: str
    """As chosen: a preset or custom; mine, all or an id; me, any or an id."""
    start: date | None = None
    end: date | None = None
    """A period's days, both included (None: open on that side)."""
    ids: tuple[int, ...] = ()
    """The departments (the chosen one first, then those under it) or the one user the
    rows must be of; () for no condition."""

    @property
    def name(self) -> str:
        return self.parameter.name

    @property
    def formula(self) -> str | None:
        """A period's condition as a formula on the report's entity; None: none."""
        p = self.parameter
        if p.kind != "period" or (self.start is None and self.end is None):
            return None
        assert p.field is not None
        return range_formula(p.field, p.type, self.start,
                             None if self.end is None else self.end + timedelta(days=1))

    def as_json(self) -> dict[str, Any]:
        """What the JSON API echoes under `parameters`."""
        out: dict[str, Any] = {"value": self.value}
        if self.parameter.kind == "period":
            out["from"] = None if self.start is None else self.start.isoformat()
            out["to"] = None if self.end is None else self.end.isoformat()
        return out

    def query(self) -> dict[str, str]:
        """The value as a report's address writes it (the page's form, an export link)."""
        if self.value != CUSTOM:
            return {self.name: self.value}
        out = {self.name: CUSTOM}
        if self.start is not None:
            out[f"{self.name}_from"] = self.start.isoformat()
        if self.end is not None:
            out[f"{self.name}_to"] = self.end.isoformat()
        return out


def range_formula(path: str, kind: FType | None, start: date | None,
                  before: date | None) -> str:
    """`path` within [start, before) as a condition formula (dates as DATE(y, m, d))."""
    x = f"DATEVALUE({path})" if kind is FType.DATETIME else path
    parts = []
    if start is not None:
        parts.append(f"{x} >= DATE({start.year}, {start.month}, {start.day})")
    if before is not None:
        parts.append(f"{x} < DATE({before.year}, {before.month}, {before.day})")
    return parts[0] if len(parts) == 1 else f"AND({', '.join(parts)})"


def today_of(records: Records) -> date:
    """Today in the organisation's time zone, by the records' clock (as TODAY())."""
    now: datetime = records.clock()
    return now.astimezone(records.model.settings.zone).date()


def resolve(records: Records, actor: Actor, report: Report, given: Mapping[str, str],
            today: date | None = None) -> tuple[ParamValue, ...]:
    """The value of each of the report's parameters: what `given` asks for (query keys
    `<name>`, `<name>_from`, `<name>_to`), else its default. Invalid (422) for a value it
    does not take, naming the parameter and what it takes."""
    out: list[ParamValue] = []
    for p in report.parameters:
        raw = (given.get(p.name) or "").strip()
        if p.kind == "period":
            out.append(_period(records, p, raw, given, today))
        elif p.kind == "department":
            out.append(_department(records, actor, p, raw or p.default))
        else:
            out.append(_owner(actor, p, raw or p.default))
    return tuple(out)


def _refuse(p: ReportParameter, key: str, value: str, extra: str = "") -> Invalid:
    allowed = ", ".join(p.choices) + extra
    return Invalid(msg("the report's parameter %(param)s does not take %(value)s; it takes "
                       "%(allowed)s", param=p.name, value=repr(value[:100]), allowed=allowed),
                   {key: msg("not one of %(allowed)s", allowed=allowed)})


def _period(records: Records, p: ReportParameter, raw: str, given: Mapping[str, str],
            today: date | None) -> ParamValue:
    start_key, end_key = f"{p.name}_from", f"{p.name}_to"
    bounds = {k: (given.get(k) or "").strip() for k in (start_key, end_key)}
    if raw == CUSTOM or (not raw and any(bounds.values())):
        days: list[date | None] = []
        for key, text in bounds.items():
            try:
                days.append(date.fromisoformat(text) if text else None)
            except ValueError:
                raise Invalid(msg("the report's parameter %(param)s takes a date as "
                                  "YYYY-MM-DD", param=key),
                              {key: msg("not a date (YYYY-MM-DD)")}) from None
        start, end = days
        if start is None and end is None:
            raise Invalid(msg("a custom period needs %(start)s or %(end)s (YYYY-MM-DD)",
                              start=start_key, end=end_key),
                          {p.name: msg("a custom period needs a first or a last day")})
        if start is not None and end is not None and start > end:
            raise Invalid(msg("the report's parameter %(start)s is after %(end)s",
                              start=start_key, end=end_key),
                          {start_key: msg("after the last day")})
        return ParamValue(p, CUSTOM, start, end)
    value = raw or p.default
    if value not in p.choices:
        raise _refuse(p, p.name, value, f" or {CUSTOM} (with {start_key}, {end_key})")
    span: DateRange = preset_range(value, today or today_of(records),
                                   records.model.settings.fiscal_year_start)
    return ParamValue(p, value, *span)


def _department(records: Records, actor: Actor, p: ReportParameter, raw: str) -> ParamValue:
    if raw == "all":
        return ParamValue(p, raw)
    if raw == "mine":
        if actor.department_id is None:
            return ParamValue(p, raw)
        return ParamValue(p, raw, ids=_subtree(records, actor.department_id))
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise _refuse(p, p.name, raw, " or the id of a department you may read")
    chosen = int(raw)
    seen = secure.rows(records, actor, "department")
    with records.engine.connect() as conn:
        found = conn.execute(seen.select(seen.table.c.id).where(
            seen.table.c.id == chosen)).first()
    if found is None:  # not there, or not the viewer's to read: the same answer
        raise Invalid(msg("the report's parameter %(param)s: no department %(id)s you may "
                          "read; it takes mine, all or the id of a department you may read",
                          param=p.name, id=chosen),
                      {p.name: msg("no department you may read")})
    return ParamValue(p, str(chosen), ids=_subtree(records, chosen))


def _subtree(records: Records, top: int) -> tuple[int, ...]:
    """`top` and every department under it (live or not: records keep their department),
    breadth first, at most MAX_DEPARTMENTS."""
    entity = records.model.entity("department")
    if not entity.has_field("parent"):
        return (top,)
    t = records.schema.table("department")
    found = [top]
    level = [top]
    with records.engine.connect() as conn:
        while level and len(found) < MAX_DEPARTMENTS:
            level = [i for (i,) in conn.execute(select(t.c.id).where(t.c.parent.in_(level)))
                     if i not in found]
            found += level
    return tuple(found[:MAX_DEPARTMENTS])


def _owner(actor: Actor, p: ReportParameter, raw: str) -> ParamValue:
    if raw == "any":
        return ParamValue(p, raw)
    if raw == "me":
        return ParamValue(p, raw, ids=() if actor.user_id is None else (actor.user_id,))
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise _refuse(p, p.name, raw, " or a user's id")
    return ParamValue(p, raw, ids=(int(raw),))


def conditions(records: Records, actor: Actor, report: Report, seen: SecureRows,
               values: Sequence[ParamValue]) -> list[ColumnElement[bool]]:
    """The parameters' conditions on the report's rows, in SQL with bound values."""
    out: list[ColumnElement[bool]] = []
    for v in values:
        if v.parameter.kind == "period":
            text = v.formula
            if text is not None:
                out.append(seen.condition(records.compile_filter(report.entity, text, actor)))
        elif v.ids:
            column = seen.table.c.department_id if v.parameter.kind == "department" \
                else seen.table.c.owner_id
            out.append(column.in_(v.ids) if len(v.ids) > 1 else column == v.ids[0])
    return out
