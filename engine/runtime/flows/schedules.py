"""When a flow's schedule runs (docs/flows.md#schedules): on each date of a holiday of the
organisation's calendar (settings.yaml `holidays`), its `before`/`after` offset applied to
the date's midnight in the organisation's time zone.

One `crm_timer` row per schedule and date, keyed `flow:<flow>:schedule:<name>:<date>`, so
setting it twice leaves one row. The worker sets the next date of every schedule at the
start of each pass (`ensure`: once per process and date, an INSERT that does nothing when
the row is there — cheap and safe across restarts); firing one sets the next date's in the
firing's transaction. The first date set is the first whose due moment is today or later:
never one in the past.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from engine.metadata.flows import Flow, ScheduleRule
from engine.metadata.holidays import Holiday
from engine.runtime.access import SYSTEM
from engine.runtime.flows.recurrence import start_of
from engine.runtime.flows.timers import schedule

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from engine.runtime.records import Records

log = logging.getLogger(__name__)


def schedule_key(flow: Flow, rule: ScheduleRule, day: date) -> str:
    """The timer key of `rule`'s run on the holiday date `day`."""
    return f"flow:{flow.name}:schedule:{rule.name}:{day.isoformat()}"


def next_date(holiday: Holiday, offset: timedelta, zone: tzinfo, now: datetime, *,
              after: date | None = None) -> tuple[date, datetime] | None:
    """The first date of `holiday` (after `after`, the one that just ran) whose due moment
    — its midnight in `zone` plus `offset` — is today or later (today as `now` is in
    `zone`), and that moment; None when the calendar has no such date.

    >>> from datetime import UTC
    >>> from engine.metadata.labels import Label
    >>> h = Holiday("sf", Label.of(None, "SF"), (date(2026, 2, 17), date(2027, 2, 6)))
    >>> next_date(h, -timedelta(days=3), UTC, datetime(2026, 2, 14, 9, tzinfo=UTC))[0]
    datetime.date(2026, 2, 17)
    >>> next_date(h, -timedelta(days=3), UTC, datetime(2026, 2, 15, tzinfo=UTC))[0]
    datetime.date(2027, 2, 6)
    >>> next_date(h, timedelta(0), UTC, datetime(2026, 1, 1, tzinfo=UTC), after=date(2027, 2, 6))
    """
    today = start_of(now.astimezone(zone).date(), zone)
    for day in holiday.dates:
        if after is not None and day <= after:
            continue
        due = start_of(day, zone) + offset
        if due >= today:
            return day, due
    return None


def set_next(conn: Connection, records: Records, flow: Flow, rule: ScheduleRule,
             now: datetime, *, kind: str, after: date | None = None) -> str | None:
    """Set the timer of `rule`'s next date in the caller's transaction (unless it is
    there); its key, None when the calendar has no date left."""
    settings = records.model.settings
    holiday = settings.holiday(rule.holiday)
    found = None if holiday is None else next_date(holiday, rule.offset, settings.zone, now,
                                                   after=after)
    if found is None:
        return None
    day, due = found
    key = schedule_key(flow, rule, day)
    schedule(conn, key, due, kind=kind, entity=flow.entity,
             data={"flow": flow.name, "schedule": rule.name, "holiday": rule.holiday,
                   "date": day.isoformat()})
    return key


class Ensurer:
    """Sets the next date of every schedule of a records service's flows, at most once per
    process and date (what it set or found is remembered)."""

    def __init__(self, records: Records, kind: str) -> None:
        self.records = records
        self.kind = kind
        self.rules = tuple((f, s) for f in records.model.flows for s in f.schedules)
        self.ensured: set[str] = set()

    def __call__(self, now: datetime) -> None:
        if not self.rules:
            return
        settings = self.records.model.settings
        wanted: list[tuple[Flow, ScheduleRule]] = []
        for flow, rule in self.rules:
            holiday = settings.holiday(rule.holiday)
            found = None if holiday is None else next_date(holiday, rule.offset,
                                                           settings.zone, now)
            if found is not None and schedule_key(flow, rule, found[0]) not in self.ensured:
                wanted.append((flow, rule))
        if not wanted:
            return
        keys: list[str] = []
        with self.records.unit(SYSTEM) as unit:
            for flow, rule in wanted:
                key = set_next(unit.conn, self.records, flow, rule, now, kind=self.kind)
                if key is not None:
                    keys.append(key)
        self.ensured.update(keys)
