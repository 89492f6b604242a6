"""The parameters form of a report page: one input per parameter, the current values
selected, presets as options in the viewer's language (zh, en), a period's custom from/to
as date inputs. It is a GET form: its values are the report's address
(`/reports/<name>?period=this_year&department=mine`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.metadata.report_params import CUSTOM
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.records import Records, secure
from engine.runtime.reports.params import ParamValue
from engine.web.i18n import N_, translations

MAX_OPTIONS = 200
"""Departments a parameter's list offers (an id typed in the address works for any other)."""

WORDS = {
    "this_month": N_("This month"), "last_month": N_("Last month"),
    "next_month": N_("Next month"), "this_quarter": N_("This quarter"),
    "last_quarter": N_("Last quarter"), "next_quarter": N_("Next quarter"),
    "this_year": N_("This year"), "last_year": N_("Last year"), "next_year": N_("Next year"),
    "last_30_days": N_("Last 30 days"), "last_90_days": N_("Last 90 days"),
    "next_90_days": N_("Next 90 days"), "year_to_date": N_("Year to date"),
    "all": N_("All"), CUSTOM: N_("Custom range"),
    "mine": N_("My department"), "me": N_("Me"), "any": N_("Anyone"),
}
"""The words of the named values (a department's `all` says All too)."""


@dataclass(frozen=True)
class Option:
    value: str
    text: str
    selected: bool


@dataclass(frozen=True)
class FormField:
    name: str
    kind: str
    label: str
    options: tuple[Option, ...]
    start: str = ""
    end: str = ""
    """A period's custom first and last days (YYYY-MM-DD), when it is custom."""


def parameter_form(records: Records, actor: Actor, values: Sequence[ParamValue],
                   language: str) -> list[FormField]:
    gettext = translations()[language].gettext
    out: list[FormField] = []
    for v in values:
        p = v.parameter
        named: list[tuple[str, str]] = [(c, gettext(WORDS[c])) for c in p.choices]
        if p.kind == "period":
            named.append((CUSTOM, gettext(WORDS[CUSTOM])))
        elif p.kind == "department":
            named += _departments(records, actor)
        # owner: me or anyone (a user's id typed in the address shows as #id): the form
        # does not list the users, whom the viewer may not all know
        if v.value not in {value for value, _ in named}:  # an id typed in the address
            named.append((v.value, f"#{v.value}"))
        options = tuple(Option(value, text, value == v.value) for value, text in named)
        custom = v.value == CUSTOM
        out.append(FormField(
            p.name, p.kind, p.label.get(language), options,
            start=v.start.isoformat() if custom and v.start else "",
            end=v.end.isoformat() if custom and v.end else ""))
    return out


def _departments(records: Records, actor: Actor) -> list[tuple[str, str]]:
    """The departments the viewer may read, by name."""
    if records.policy.scope(actor, "department", "read") is Scope.NONE:
        return []
    seen = secure.rows(records, actor, "department")
    t = seen.table
    with records.engine.connect() as conn:
        rows: list[Any] = list(conn.execute(seen.select(t.c.id, t.c.name)
                                            .order_by(t.c.name).limit(MAX_OPTIONS)))
    return [(str(r.id), str(r.name)) for r in rows]
