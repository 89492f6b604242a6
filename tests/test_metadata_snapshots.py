"""settings.yaml `pipeline_snapshots` (engine/metadata/snapshots.py): the schedule of the
worker's pipeline snapshots, its periods, and its mistakes named at their place."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.metadata import load_model
from engine.metadata.snapshots import WEEKDAYS, SnapshotSchedule
from tests.conftest import CONFIG
from tests.test_metadata_settings import config, errors  # noqa: F401 (a fixture)


def test_the_shipped_schedule_is_every_monday() -> None:
    assert load_model(CONFIG).settings.pipeline_snapshots == SnapshotSchedule("week", "monday")


def test_a_schedule_is_read_and_defaults_apply(config: Path) -> None:  # noqa: F811
    assert load_model(config).settings.pipeline_snapshots is None
    (config / "settings.yaml").write_text("pipeline_snapshots: {every: month, day: 15}\n",
                                          encoding="utf-8")
    assert load_model(config).settings.pipeline_snapshots == SnapshotSchedule(
        "month", "monday", 15)
    (config / "settings.yaml").write_text("pipeline_snapshots: {}\n", encoding="utf-8")
    assert load_model(config).settings.pipeline_snapshots == SnapshotSchedule()


@pytest.mark.parametrize(("text", "expected"), [
    ("pipeline_snapshots: {every: fortnight}\n",
     "config/settings.yaml:1:29: pipeline_snapshots.every: 'fortnight' is not one of "
     "['day', 'week', 'month']"),
    ("pipeline_snapshots: {every: month, day: 31}\n",
     "config/settings.yaml:1:41: pipeline_snapshots.day: 31 is greater than the maximum "
     "of 28"),
    ("pipeline_snapshots: {evry: week}\n",
     "config/settings.yaml:1:22: pipeline_snapshots: unknown key 'evry' "
     "(did you mean 'every'?)"),
])
def test_a_bad_schedule_is_refused_with_its_place(config: Path, text: str,  # noqa: F811
                                                  expected: str) -> None:
    (config / "settings.yaml").write_text(text, encoding="utf-8")
    assert errors(config) == [expected]


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
       st.sampled_from(["day", "week", "month"]), st.sampled_from(WEEKDAYS),
       st.integers(1, 28))
def test_every_day_is_in_exactly_one_period_due_on_or_before_it(
        today: date, every: str, weekday: str, day: int) -> None:
    schedule = SnapshotSchedule(every, weekday, day)
    due = schedule.due_on(today)
    assert due <= today
    assert schedule.due_on(due) == due  # the due date opens its own period
    if every == "week":
        assert WEEKDAYS[due.weekday()] == weekday and today - due < timedelta(days=7)
    elif every == "month":
        assert due.day == day and (today - due).days < 31
    else:
        assert due == today
