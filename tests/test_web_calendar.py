"""The calendar view (engine/web/pages/calendar.py): month and week grids in the
organisation's time zone, items through the access policy, moves through the records
service (version, access, read-only fields, audit), CSRF, the bound on items."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.web.app import create_app
from engine.web.pages.calendar import MAX_ITEMS
from tests.access_helpers import add_fields, departments, place, user
from tests.conftest import Env, EnvFactory
from tests.db_templates import TEST_HASHER
from tests.web_helpers import page_token, sign_in

CAL = "/e/activity/calendar"
SHANGHAI = "Asia/Shanghai"


def browser(env: Env, name: str = "admin", password: str = "admin-password", *,
            zone: str = SHANGHAI) -> TestClient:
    """A signed-in client of an app whose settings.yaml says `time_zone: <zone>`."""
    model = replace(env.model, settings=replace(env.model.settings, time_zone=zone))
    client = TestClient(create_app(model, env.engine, password_hasher=TEST_HASHER),
                        raise_server_exceptions=False)
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def activity(env: Env, subject: str, due_at: str | None, **more: Any) -> dict[str, Any]:
    return env.records.create(env.admin.actor(), "activity", {
        "subject": subject, "kind": "call", "due_at": due_at, **more})


def cell(html: str, day: str, hour: int | None = None) -> str:
    """The HTML of one day's cell (of one hour's, in a week of datetimes)."""
    hour_attr = f' data-hour="{hour}"' if hour is not None else ""
    found = re.search(rf'<td class="[^"]*" data-date="{day}"{hour_attr}>.*?</td>', html, re.S)
    assert found, (day, hour)
    return found.group(0)


def days(html: str) -> list[str]:
    return re.findall(r'<td class="[^"]*" data-date="([0-9-]+)"', html)


def reschedule(client: TestClient, record_id: int, day: str, version: int, *,
               hour: int | None = None, token: str | None = None, fragment: bool = True,
               query: str = "field=due_at&view=month&date=2026-03-01") -> Any:
    headers = {"HX-Request": "true"} if fragment else {}
    if token is not None:
        headers["X-CSRF-Token"] = token
    data = {"field": "due_at", "date": day, "version": str(version)}
    if hour is not None:
        data["hour"] = str(hour)
    return client.post(f"/e/activity/{record_id}/reschedule?{query}", headers=headers,
                       data=data, follow_redirects=False)


def test_month_grid_in_the_time_zone(env: Env) -> None:
    # 2026-03-31 23:30 in Shanghai is 15:30 UTC: on the month's last day, not April's first
    late = activity(env, "Late call", "2026-03-31T15:30:00Z")
    # 2026-02-28 16:30 UTC is 00:30 on March 1st in Shanghai
    early = activity(env, "Early call", "2026-02-28T16:30:00Z")
    # 2026-04-05 16:00 UTC is already April 6th in Shanghai: past the grid (Mon-first weeks)
    activity(env, "After the grid", "2026-04-05T16:00:00Z")
    activity(env, "No date", None)
    client = browser(env)
    response = client.get(CAL, params={"view": "month", "date": "2026-03-18"})
    assert response.status_code == 200
    html = response.text
    shown = days(html)
    # en reads weeks from Sunday (Babel: en → US): Mar 1 2026 is a Sunday
    assert shown[0] == "2026-03-01" and shown[-1] == "2026-04-04" and len(shown) == 35
    assert f'href="/e/activity/{late["id"]}"' in cell(html, "2026-03-31")
    assert "11:30\u202fPM" in cell(html, "2026-03-31") and "Late call" in cell(html, "2026-03-31")
    assert "Early call" in cell(html, "2026-03-01") and "12:30\u202fAM" in cell(html, "2026-03-01")
    assert f'data-id="{early["id"]}"' in html
    assert "After the grid" not in html and "No date" not in html
    assert "March 2026" in html and "Asia/Shanghai" in html
    assert 'src="/static/calendar.js"' in html and 'draggable="true"' in html
    assert client.get("/static/calendar.js").status_code == 200
    # the same instant in UTC is on another day: the zone decides
    utc = browser(env, zone="UTC").get(CAL, params={"date": "2026-03-18"}).text
    assert "Early call" not in utc and "Late call" in cell(utc, "2026-03-31")


def test_weeks_start_on_the_readers_first_weekday(env: Env) -> None:
    client = browser(env)
    en = days(client.get(CAL, params={"date": "2026-03-18"}).text)
    assert en[:2] == ["2026-03-01", "2026-03-02"]  # Sunday first
    client.post("/account/language", data={"language": "zh-CN", "next": "/",
                                           "csrf_token": page_token(client)})
    zh = client.get(CAL, params={"date": "2026-03-18"}).text
    assert days(zh)[0] == "2026-02-23" and days(zh)[-1] == "2026-04-05"  # Monday first
    assert "2026年3月" in zh and "周一" in zh and "日历" in zh
    week = client.get(CAL, params={"view": "week", "date": "2026-03-18"}).text
    assert days(week)[0] == "2026-03-16" and days(week)[-1] == "2026-03-22"


def test_week_grid_places_datetimes_by_local_hour(env: Env) -> None:
    # Sunday 2026-03-22 23:30 in Shanghai: the week's last day, its last hour
    late = activity(env, "Late review", "2026-03-22T15:30:00Z")
    activity(env, "Monday standup", "2026-03-16T01:00:00Z")  # 09:00 local
    activity(env, "Next week", "2026-03-22T16:00:00Z")  # Monday 23rd, 00:00 local
    html = browser(env).get(CAL, params={"view": "week", "date": "2026-03-18"}).text
    shown = days(html)
    assert shown[0] == "2026-03-15" and shown[-1] == "2026-03-21"  # en: Sunday to Saturday
    html = browser(env).get(CAL, params={"view": "week", "date": "2026-03-22"}).text
    assert f'data-id="{late["id"]}"' in cell(html, "2026-03-22", 23)
    assert "Next week" not in cell(html, "2026-03-22", 23)
    assert "Next week" in html  # Monday the 23rd is in the Sunday-first week of the 22nd
    assert "Monday standup" not in html
    html = browser(env).get(CAL, params={"view": "week", "date": "2026-03-16"}).text
    assert "Monday standup" in cell(html, "2026-03-16", 9)
    assert "9:00\u202fAM" in cell(html, "2026-03-16", 9)
    assert "All day" not in html  # due_at is a datetime: every item has its hour


def test_previous_next_today_and_the_grid_alone_for_htmx(env: Env) -> None:
    client = browser(env)
    html = client.get(CAL, params={"view": "month", "date": "2026-03-18"}).text
    assert "date=2026-02-01" in html and "date=2026-04-01" in html  # previous, next month
    week = client.get(CAL, params={"view": "week", "date": "2026-03-18"}).text
    assert "date=2026-03-11" in week and "date=2026-03-25" in week
    swap = client.get(CAL, params={"view": "week", "date": "2026-03-25"},
                      headers={"HX-Request": "true", "HX-Target": "calendar-grid"})
    assert swap.status_code == 200
    assert swap.text.lstrip().startswith("<div id=\"calendar-grid\"") \
        or '<div id="calendar-grid"' in swap.text.split("<table", 1)[0]
    assert "<html" not in swap.text and "date=2026-03-25" in swap.headers["HX-Push-Url"]


def test_bad_parameters_and_no_calendar(env: Env) -> None:
    client = browser(env)
    for params in ({"view": "year"}, {"date": "2026-02-30"}, {"date": "18.3.2026"},
                   {"date": "0001-01-01"}):
        response = client.get(CAL, params=params)
        assert response.status_code == 400, params
        assert "<h1>" in response.text
    for path in ("/e/account/calendar", "/e/nothing/calendar",
                 CAL + "?field=subject", CAL + "?field=created_at"):
        response = client.get(path)
        assert response.status_code == 404, path
    bad_filter = client.get(CAL, params={"filter": "subject = ", "date": "2026-03-18"})
    assert bad_filter.status_code == 400 and "cannot be shown as asked" in bad_filter.text


def test_list_filters_narrow_the_calendar_and_the_list_links_to_it(env: Env) -> None:
    activity(env, "Planned one", "2026-03-10T02:00:00Z")
    activity(env, "Done one", "2026-03-11T02:00:00Z", status="done")
    client = browser(env)
    html = client.get(CAL, params={"date": "2026-03-18", "status": "planned"}).text
    assert "Planned one" in html and "Done one" not in html
    html = client.get(CAL, params={"date": "2026-03-18",
                                   "filter": 'subject = "Done one"'}).text
    assert "Done one" in html and "Planned one" not in html
    # a closed status is dimmed
    assert re.search(r'class="cal-item cal-tone-1 cal-closed"[^>]*>\s*<a[^>]*>.*?Done one',
                     html, re.S)
    listing = client.get("/e/activity", params={"status": "planned", "sort": "subject"}).text
    assert 'href="/e/activity/calendar?status=planned">' in listing
    assert 'href="/e/opportunity/calendar' not in client.get("/e/opportunity").text


def test_a_rep_sees_only_their_own_activities(env: Env) -> None:
    deps = departments(env)
    rep = user(env, "rep", "sales_rep", department=deps["SH"])
    other = user(env, "other", "sales_rep", department=deps["SH"])
    mine = place(env, "activity", {"subject": "My visit", "kind": "visit",
                                   "due_at": "2026-03-10T02:00:00Z"}, owner=rep)
    theirs = place(env, "activity", {"subject": "Secret visit", "kind": "visit",
                                     "due_at": "2026-03-10T03:00:00Z"}, owner=other)
    client = browser(env, "rep", "a-password")
    html = client.get(CAL, params={"date": "2026-03-18"}).text
    assert "My visit" in html and f'data-id="{mine["id"]}"' in html
    assert "Secret visit" not in html and f'data-id="{theirs["id"]}"' not in html
    week = client.get(CAL, params={"view": "week", "date": "2026-03-10"}).text
    assert "Secret visit" not in week
    # moving another's activity: not found, as if it did not exist
    token = page_token(client, CAL)
    refused = reschedule(client, theirs["id"], "2026-03-12", theirs["version"], token=token)
    assert refused.status_code == 404 and "Secret visit" not in refused.text
    assert env.records.get(SYSTEM, "activity", theirs["id"])["due_at"] == \
        datetime(2026, 3, 10, 3, tzinfo=UTC)


def test_reschedule_keeps_the_time_of_day_and_writes_the_audit(env: Env) -> None:
    # 23:30 in Shanghai on March 2nd
    call = activity(env, "Move me", "2026-03-02T15:30:00Z")
    client = browser(env)
    token = page_token(client, CAL)
    response = reschedule(client, call["id"], "2026-03-05", call["version"], token=token)
    assert response.status_code == 200
    saved = env.records.get(SYSTEM, "activity", call["id"])
    assert saved["due_at"] == datetime(2026, 3, 5, 15, 30, tzinfo=UTC)  # 23:30 local kept
    assert saved["version"] == call["version"] + 1
    html = response.text
    assert f'data-id="{call["id"]}"' in cell(html, "2026-03-05")
    assert f'data-version="{call["version"] + 1}"' in html
    assert "Moved “Move me” to Thursday, March 5, 2026." in html
    history = env.records.history(SYSTEM, "activity", call["id"])
    changed = [h for h in history if h.get("action") == "update"]
    assert changed, history
    assert "due_at" in str(changed[-1])
    # in a week view, dropped on an hour: that hour, minutes kept (09:30 local)
    moved = reschedule(client, call["id"], "2026-03-06", saved["version"], hour=9,
                       token=token, query="field=due_at&view=week&date=2026-03-06")
    assert moved.status_code == 200
    assert env.records.get(SYSTEM, "activity", call["id"])["due_at"] == \
        datetime(2026, 3, 6, 1, 30, tzinfo=UTC)
    assert f'data-id="{call["id"]}"' in cell(moved.text, "2026-03-06", 9)
    # without script: back to the calendar
    plain = reschedule(client, call["id"], "2026-03-09", saved["version"] + 1, token=token,
                       fragment=False)
    assert plain.status_code == 303
    assert plain.headers["location"].startswith("/e/activity/calendar?field=due_at")


def test_a_stale_version_is_409_and_changes_nothing(env: Env) -> None:
    call = activity(env, "Contested", "2026-03-02T02:00:00Z")
    env.records.update(SYSTEM, "activity", call["id"], {"subject": "Contested!"},
                       call["version"])
    client = browser(env)
    token = page_token(client, CAL)
    response = reschedule(client, call["id"], "2026-03-05", call["version"], token=token)
    assert response.status_code == 409
    assert "changed by someone else" in response.text and 'role="alert"' in response.text
    assert env.records.get(SYSTEM, "activity", call["id"])["due_at"] == \
        datetime(2026, 3, 2, 2, tzinfo=UTC)
    plain = reschedule(client, call["id"], "2026-03-05", call["version"], token=token,
                       fragment=False)
    assert plain.status_code == 409 and "<h1>" in plain.text


def test_no_update_permission_no_drag_and_403(env: Env) -> None:
    call = activity(env, "Look only", "2026-03-02T02:00:00Z")
    user(env, "exec", "executive")
    client = browser(env, "exec", "a-password")
    html = client.get(CAL, params={"date": "2026-03-18"}).text
    assert "Look only" in html and 'draggable="true"' not in html
    assert "Drag an item" not in html
    token = page_token(client, CAL)
    response = reschedule(client, call["id"], "2026-03-05", call["version"], token=token)
    assert response.status_code == 403
    assert env.records.get(SYSTEM, "activity", call["id"])["version"] == call["version"]
    # reading every activity but updating only their own: only their own can be dragged
    both = user(env, "both", "sales_rep", "executive")
    own = place(env, "activity", {"subject": "Own call", "kind": "call",
                                  "due_at": "2026-03-03T02:00:00Z"}, owner=both)
    client = browser(env, "both", "a-password")
    html = client.get(CAL, params={"date": "2026-03-18"}).text
    assert re.search(rf'id="cal-item-{own["id"]}"[^>]*draggable="true"', html, re.S)
    assert re.search(rf'id="cal-item-{call["id"]}"[^>]*>', html)
    assert not re.search(rf'id="cal-item-{call["id"]}"[^>]*draggable="true"', html, re.S)
    token = page_token(client, CAL)
    response = reschedule(client, call["id"], "2026-03-05", call["version"], token=token)
    assert response.status_code == 403 and 'role="alert"' in response.text
    assert reschedule(client, own["id"], "2026-03-05", own["version"],
                      token=token).status_code == 200


def test_csrf_is_required(env: Env) -> None:
    call = activity(env, "Guarded", "2026-03-02T02:00:00Z")
    client = browser(env)
    for token in (None, "forged"):
        response = reschedule(client, call["id"], "2026-03-05", call["version"], token=token)
        assert response.status_code == 403, token
    assert env.records.get(SYSTEM, "activity", call["id"])["version"] == call["version"]


def test_bad_moves_are_400_not_500(env: Env) -> None:
    call = activity(env, "Odd", "2026-03-02T02:00:00Z")
    client = browser(env)
    token = page_token(client, CAL)
    for day, hour, version in (("2026-13-01", None, call["version"]),
                               ("2026-03-05", 24, call["version"]),
                               ("2026-03-05", None, "x")):
        response = client.post(
            f"/e/activity/{call['id']}/reschedule?field=due_at",
            data={"field": "due_at", "date": day, "version": str(version),
                  **({"hour": str(hour)} if hour is not None else {})},
            headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert response.status_code == 400, (day, hour, version)
    missing = reschedule(client, 2**62, "2026-03-05", 1, token=token)
    assert missing.status_code == 404
    other_field = client.post(f"/e/activity/{call['id']}/reschedule",
                              data={"field": "subject", "date": "2026-03-05", "version": "1"},
                              headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert other_field.status_code == 404


def test_the_items_are_bounded(env: Env) -> None:
    env.records.bulk_create(SYSTEM, "activity", [
        {"subject": f"Call {i:03}", "kind": "call", "due_at": "2026-03-10T02:00:00Z"}
        for i in range(MAX_ITEMS + 1)])
    html = browser(env).get(CAL, params={"date": "2026-03-18"}).text
    assert len(re.findall(r'class="cal-item[ "]', html)) == MAX_ITEMS
    assert f"More items than shown ({MAX_ITEMS} of {MAX_ITEMS + 1})" in html
    link = re.search(r'<a href="(/e/activity\?[^"]+)">See them all in the list', html)
    assert link is not None
    assert "due_at__gte=2026-03-01T00%3A00%3A00%2B08%3A00" in link.group(1).replace(
        "&amp;", "&")


def test_read_only_fields_are_not_draggable(make_env: EnvFactory, config_dir: Path) -> None:
    form = config_dir / "forms" / "activity.yaml"
    form.write_text(form.read_text(encoding="utf-8").replace(
        "fields: [subject, kind, status, due_at,",
        "fields: [subject, kind, status, {field: due_at, readonly: 'status = \"done\"'},", 1),
        encoding="utf-8")
    roles = config_dir / "roles.yaml"
    rule = "      opportunity: {amount: readonly, stage: readonly}\n"
    text = roles.read_text(encoding="utf-8")
    assert text.count(rule) == 1  # presales
    roles.write_text(text.replace(rule, rule + "      activity: {due_at: readonly}\n"),
                     encoding="utf-8")
    env = make_env(config_dir)
    open_one = activity(env, "Open", "2026-03-02T02:00:00Z")
    done = activity(env, "Finished", "2026-03-03T02:00:00Z", status="done")
    client = browser(env)
    html = client.get(CAL, params={"date": "2026-03-18"}).text
    assert re.search(rf'id="cal-item-{open_one["id"]}"[^>]*draggable="true"', html, re.S)
    assert not re.search(rf'id="cal-item-{done["id"]}"[^>]*draggable="true"', html, re.S)
    token = page_token(client, CAL)
    refused = reschedule(client, done["id"], "2026-03-05", done["version"], token=token)
    assert refused.status_code == 422 and "read-only" in refused.text
    assert env.records.get(SYSTEM, "activity", done["id"])["version"] == done["version"]
    # a role whose field rule makes due_at read-only: nothing draggable, the move refused
    departments(env)
    pre = user(env, "pre", "presales")
    mine = place(env, "activity", {"subject": "Presales demo", "kind": "demo",
                                   "due_at": "2026-03-04T02:00:00Z"}, owner=pre)
    client = browser(env, "pre", "a-password")
    html = client.get(CAL, params={"date": "2026-03-18"}).text
    assert "Presales demo" in html and 'draggable="true"' not in html
    token = page_token(client, CAL)
    refused = reschedule(client, mine["id"], "2026-03-05", mine["version"], token=token)
    assert refused.status_code == 422 and "read-only" in refused.text


def test_a_date_field_has_an_all_day_row_and_the_fields_a_selector(
        make_env: EnvFactory, config_dir: Path) -> None:
    add_fields(config_dir, "activity",
               "follow_up: {type: date, calendar: true, label: {en: Follow up on, zh: 跟进日期}}")
    env = make_env(config_dir)
    call = activity(env, "Chase", "2026-03-02T02:00:00Z", follow_up="2026-03-20")
    client = browser(env)
    # add_fields puts follow_up first among the fields: the default
    html = client.get(CAL, params={"date": "2026-03-18"}).text
    assert 'id="cal-field"' in html and '<option value="due_at">Due at</option>' in html
    assert "Chase" in cell(html, "2026-03-20") and "Chase" not in cell(html, "2026-03-02")
    assert "Calendar by Follow up on" in html
    html = client.get(CAL, params={"field": "due_at", "date": "2026-03-18"}).text
    assert "Chase" in cell(html, "2026-03-02") and "Chase" not in cell(html, "2026-03-20")
    assert "Calendar by Due at" in html
    week = client.get(CAL, params={"field": "follow_up", "view": "week",
                                   "date": "2026-03-20"}).text
    assert "All day" in week and "Chase" in cell(week, "2026-03-20")
    assert "data-hour" not in week  # no hour rows, and the item has no hour
    token = page_token(client, CAL)
    moved = client.post(
        f"/e/activity/{call['id']}/reschedule?field=follow_up&view=week&date=2026-03-20",
        data={"field": "follow_up", "date": "2026-03-19", "hour": "9",
              "version": str(call["version"])},
        headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert moved.status_code == 200 and "Chase" in cell(moved.text, "2026-03-19")
    saved = env.records.get(SYSTEM, "activity", call["id"])
    assert saved["follow_up"] == date(2026, 3, 19)  # the day; an hour means nothing to a date
    assert saved["due_at"] == datetime(2026, 3, 2, 2, tzinfo=UTC)
