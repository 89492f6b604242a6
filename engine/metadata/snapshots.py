"""`pipeline_snapshots:` of config/settings.yaml: when the worker takes a pipeline snapshot
(engine/runtime/reports/snapshots.py; docs/forecast.md).

```yaml
pipeline_snapshots: {every: week, weekday: monday}   # or {every: day}, {every: month, day: 1}
```

A period is named by the date it falls due on, in the organisation's time zone: every day;
the given weekday of each week; the given day of each month. The worker takes one snapshot
per period, at its first pass on or after that date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from engine.metadata.yamlio import YamlDoc

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY = ("day", "week", "month")


@dataclass(frozen=True)
class SnapshotSchedule:
    every: str = "week"
    """day, week or month"""
    weekday: str = "monday"
    """The day of the week a weekly snapshot is due."""
    day: int = 1
    """The day of the month (1 to 28) a monthly snapshot is due."""

    def due_on(self, today: date) -> date:
        """The due date of the period `today` is in: the latest due date on or before it.

        >>> SnapshotSchedule("week", "monday").due_on(date(2026, 12, 5))  # a Saturday
        datetime.date(2026, 11, 30)
        >>> SnapshotSchedule("month", day=10).due_on(date(2026, 12, 5))
        datetime.date(2026, 11, 10)
        >>> SnapshotSchedule("day").due_on(date(2026, 12, 5))
        datetime.date(2026, 12, 5)
        """
        if self.every == "day":
            return today
        if self.every == "week":
            back = (today.weekday() - WEEKDAYS.index(self.weekday)) % 7
            return today - timedelta(days=back)
        if today.day >= self.day:
            return today.replace(day=self.day)
        last_month = today.replace(day=1) - timedelta(days=1)
        return last_month.replace(day=self.day)

    def period(self, today: date) -> str:
        """The key of the period `today` is in (`week:2026-11-30`): at most one scheduled
        snapshot is taken per key."""
        return f"{self.every}:{self.due_on(today).isoformat()}"


def load_snapshot_schedule(doc: YamlDoc) -> SnapshotSchedule | None:
    """`pipeline_snapshots` of a schema-valid settings.yaml; None: no scheduled snapshots."""
    data = doc.data.get("pipeline_snapshots")
    if data is None:
        return None
    default = SnapshotSchedule()
    return SnapshotSchedule(every=str(data.get("every", default.every)),
                            weekday=str(data.get("weekday", default.weekday)),
                            day=int(data.get("day", default.day)))
