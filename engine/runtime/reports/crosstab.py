"""A report's cross-tab (`across:`, docs/reports.md "Cross-tabs"): the values of one field
become columns, each aggregate computed per column value in the same statement by a
conditional aggregate — `SUM(CASE WHEN across = :v THEN amount END)` — beside the total
(the plain aggregate, over every value and a blank one).

The column values: a choice field's options in their order (no query); otherwise ONE first
query for the distinct non-blank values within the viewer's rows and the report's filter,
in their order (linked records by name), at most MAX_COLUMNS of them: more is a 422 naming
the bound and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, Select, String, case, literal, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from engine.fieldtypes import FieldType
from engine.messages import msg
from engine.metadata.reports import Report, ReportGroup
from engine.runtime.access import Actor
from engine.runtime.errors import RecordError
from engine.runtime.records.names import name_column

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

MAX_COLUMNS = 50
ACROSS = "x"
"""The base CTE's column holding each row's cross-tab value."""


class CrossTabTooWide(RecordError):
    """The cross-tab's field has more values than a report shows as columns."""

    status = 422
    code = "report_too_many_columns"

    def __init__(self, field: str) -> None:
        super().__init__(msg("the cross-tab field %(field)s has more than %(bound)s values "
                             "(the most a report shows as columns); narrow the report's "
                             "filter or group on it instead", field=field,
                             bound=str(MAX_COLUMNS)))


@dataclass(frozen=True)
class AcrossValue:
    """One column of a cross-tab: the field's value and, for a linked record, its name
    (None: no name to show, as group names)."""

    value: Any
    name: str | None = None


def options_of(across: ReportGroup) -> tuple[AcrossValue, ...] | None:
    """A choice field's options, in their order; None: the values come from the data."""
    f = across.ends_on
    if across.bucket is None and f is not None and f.type is FieldType.CHOICE and f.options:
        return tuple(AcrossValue(o) for o in f.options)
    return None


def values_query(records: Records, actor: Actor, report: Report, base: CTE) -> Select[Any]:
    """The first query: the distinct non-blank cross-tab values of the report's rows, in
    order (linked records by their names), one more than the bound."""
    across = report.across
    assert across is not None
    x = base.c[ACROSS]
    inner = select(x.label("value")).where(x.is_not(None)).distinct().subquery()
    name = name_column(records, actor, across.target, inner.c.value) \
        if across.target is not None else None
    shown = (name if name is not None else literal(None, String)).label("name")
    named = select(inner.c.value, shown).subquery()
    order = [named.c.name.asc().nulls_last(), named.c.value] if name is not None \
        else [named.c.value]
    return select(named.c.value, named.c.name).order_by(*order).limit(MAX_COLUMNS + 1)


def fetch_values(records: Records, actor: Actor, report: Report, base: CTE,
                 conn: Any) -> tuple[AcrossValue, ...]:
    """The cross-tab's columns (CrossTabTooWide past the bound)."""
    assert report.across is not None
    given = options_of(report.across)
    if given is not None:
        return given
    found = [AcrossValue(r.value, r.name)
             for r in conn.execute(values_query(records, actor, report, base))]
    if len(found) > MAX_COLUMNS:
        raise CrossTabTooWide(report.across.path)
    return tuple(found)


def within(x: ColumnElement[Any], value: Any,
           read: ColumnElement[Any] | None) -> ColumnElement[Any]:
    """What an aggregate reads for the column `value`: its value (1 for a plain count)
    on the rows of that value, NULL on the others."""
    return case((x == value, read if read is not None else literal(1, Integer)))
