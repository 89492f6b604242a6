"""`holidays:` of config/settings.yaml: the organisation's holiday calendar, one date a year
per holiday as the company publishes it (the Spring Festival moves with the lunar calendar,
so no rule computes it). Flows' `schedules:` run on these dates (docs/flows.md#schedules).

```yaml
holidays:
  spring_festival:
    label: {en: Spring Festival, zh: 春节}
    dates: [2026-02-17, 2027-02-06]
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.metadata.errors import ConfigError
from engine.metadata.labels import Label
from engine.metadata.yamlio import PathPart, YamlDoc


@dataclass(frozen=True)
class Holiday:
    """A holiday of the calendar: its dates, ascending, at most one a year."""

    name: str
    label: Label
    dates: tuple[date, ...]

    def next_on_or_after(self, day: date) -> date | None:
        """The first date of the holiday that is `day` or later; None when none is left.

        >>> h = Holiday("x", Label.of(None, "X"), (date(2026, 2, 17), date(2027, 2, 6)))
        >>> h.next_on_or_after(date(2026, 2, 17)), h.next_on_or_after(date(2027, 3, 1))
        (datetime.date(2026, 2, 17), None)
        """
        return next((d for d in self.dates if d >= day), None)


def load_holidays(doc: YamlDoc, errors: list[ConfigError]) -> tuple[Holiday, ...]:
    """`holidays:` of a schema-valid settings.yaml; a date that is not YYYY-MM-DD, or a
    second date in one year, is an error at its place."""
    data: Mapping[str, Any] = doc.data.get("holidays") or {}
    out: list[Holiday] = []
    for name, spec in data.items():
        dates: dict[int, date] = {}
        for j, text in enumerate(spec["dates"]):
            where: list[PathPart] = ["holidays", name, "dates", j]
            try:
                day = date.fromisoformat(text)
                if len(text) != 10:
                    raise ValueError(text)
            except ValueError:
                errors.append(doc.error(where, f"holidays.{name}.dates.{j}: {text!r} is not a "
                                               "date (YYYY-MM-DD)"))
                continue
            if day.year in dates:
                errors.append(doc.error(where, f"holidays.{name}.dates.{j}: {day.year} "
                                               f"already has a date ({dates[day.year]}); "
                                               "a holiday has one date a year"))
                continue
            dates[day.year] = day
        label = Label.of(spec.get("label"), name.replace("_", " ").capitalize())
        out.append(Holiday(name, label, tuple(sorted(dates.values()))))
    return tuple(out)
