"""Report parameters (engine/metadata/report_params.py, engine/runtime/reports/params.py),
the fiscal calendar (engine/runtime/reports/fiscal.py) and the administrator's SQL and plan
(engine/runtime/reports/explain.py): checked at load, narrowing the one statement on both
databases, echoed and refused over HTTP, honoured by the exports."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from engine.metadata.errors import ConfigError
from engine.metadata.report_params import PRESETS
from engine.metadata.reports import build_report
from engine.metadata.yamlio import parse_yaml
from engine.runtime.errors import Invalid
from engine.runtime.query_limit import QueryLimit, limited
from engine.runtime.reports import run_report
from engine.runtime.reports.compiler import ReportTimeLimit
from engine.runtime.reports.drill import drill_query
from engine.runtime.reports.explain import explain
from engine.runtime.reports.fiscal import bucket_name, key_range, preset_range
from engine.runtime.reports.params import resolve
from tests.access_helpers import departments, place, user
from tests.conftest import Env, EnvFactory, shipped_model, write_settings
from tests.test_export import run
from tests.test_report_drilldown import listed
from tests.test_reports import adhoc
from tests.test_web_limits import ACCOUNTS, EXPENSIVE
from tests.test_web_reports import browser

BY_STAGE = """\
report: adhoc
entity: opportunity
groups: [stage]
aggregates: [{name: n, agg: count}]
parameters:
  - {name: period, kind: period, field: close_date, default: this_quarter}
  - {name: department, kind: department, default: all}
  - {name: owner, kind: owner}
"""


def load_errors(text: str) -> list[str]:
    """The errors of a report file holding `text`, as `crm check` prints them."""
    doc = parse_yaml(text.encode(), "adhoc.yaml")
    assert not isinstance(doc, ConfigError)
    errors: list[ConfigError] = []
    build_report(doc, "adhoc", list(shipped_model().entities), errors)
    return [str(e) for e in errors]


def test_parameters_are_checked_where_they_are_written() -> None:
    head = "report: adhoc\nentity: opportunity\naggregates: [{name: n, agg: count}]\n" \
           "parameters:\n"
    assert load_errors(head + "  - {name: p, kind: period, field: close_dat}\n") == [
        "adhoc.yaml:5:36: parameters.0.field: no field 'close_dat' of opportunity "
        "(did you mean 'close_date'?)"]
    (preset,) = load_errors(head + "  - {name: p, kind: period, field: close_date, "
                                   "default: this_quater}\n")
    assert preset.startswith("adhoc.yaml:5:57: parameters.0.default: 'this_quater' is not "
                             "a value of kind period; one of this_month")
    assert preset.endswith("(did you mean 'this_quarter'?)")
    assert load_errors(head + "  - {name: p, kind: period, field: amount}\n") == [
        "adhoc.yaml:5:36: parameters.0.field: 'amount' is number, not a date or datetime "
        "field"]
    assert load_errors(head + "  - {name: p, kind: period}\n") == [
        "adhoc.yaml:5:21: parameters.0.kind: a period parameter needs a `field`: the date or "
        "datetime field it narrows"]
    assert load_errors(head + "  - {name: o, kind: owner, default: mine}\n") == [
        "adhoc.yaml:5:37: parameters.0.default: 'mine' is not a value of kind owner; one of "
        "me, any (did you mean 'me'?)"]
    assert load_errors(head + "  - {name: o, kind: owner}\n  - {name: o, kind: owner}\n") == [
        "adhoc.yaml:6:12: parameters.1.name: 'o' is already a parameter of this report"]
    assert load_errors(head + "  - {name: format, kind: owner}\n")[0].startswith(
        "adhoc.yaml:5:12: parameters.0.name: 'format' is taken")
    assert load_errors(head + "  - {name: d, kind: department, field: close_date}\n")[0] \
        .startswith("adhoc.yaml:5:40: parameters.0.field: a department parameter has no field")


def test_the_shipped_funnel_has_its_parameters(env: Env) -> None:
    funnel = env.model.report("sales_funnel")
    assert funnel is not None
    assert [(p.name, p.kind, p.default) for p in funnel.parameters] == [
        ("period", "period", "all"), ("department", "department", "all"),
        ("owner", "owner", "any")]
    assert ("close_date",) in funnel.references


# -- the fiscal calendar ---------------------------------------------------------------

days = st.dates(min_value=date(1901, 1, 1), max_value=date(9990, 12, 31))
starts = st.integers(min_value=1, max_value=12)


@given(d=days, start=starts)
def test_each_day_is_in_its_buckets_range(d: date, start: int) -> None:
    for bucket in ("quarter", "year"):
        span = key_range(bucket, bucket_name(bucket, d, start), start)
        assert span is not None and span[0] <= d < span[1]
    first, after = key_range("year", bucket_name("year", d, start), start) or (d, d)
    assert first.month == start and first.day == 1 and first.year + 1 == after.year


@given(d=days, start=starts)
def test_presets_hold_today_and_follow_each_other(d: date, start: int) -> None:
    for unit in ("month", "quarter", "year"):
        this = preset_range(f"this_{unit}", d, start)
        last = preset_range(f"last_{unit}", d, start)
        following = preset_range(f"next_{unit}", d, start)
        assert this[0] is not None and this[1] is not None
        assert this[0] <= d <= this[1]
        assert last[1] == this[0] - timedelta(days=1)
        assert following[0] == this[1] + timedelta(days=1)
    assert preset_range("this_quarter", d, start)[0] == key_range(
        "quarter", bucket_name("quarter", d, start), start)[0]  # type: ignore[index]
    ytd = preset_range("year_to_date", d, start)
    assert ytd == (preset_range("this_year", d, start)[0], d)
    assert preset_range("last_30_days", d, start) == (d - timedelta(days=29), d)
    assert preset_range("all", d, start) == (None, None)


def test_fiscal_names_and_presets_at_the_boundaries() -> None:
    assert [bucket_name("quarter", date(2026, m, 1), 4) for m in (3, 4, 6, 7, 12)] + [
        bucket_name("quarter", date(2027, 3, 31), 4)] == [
        "FY2025-Q4", "FY2026-Q1", "FY2026-Q1", "FY2026-Q2", "FY2026-Q3", "FY2026-Q4"]
    assert bucket_name("year", date(2026, 3, 31), 4) == "FY2025"
    assert bucket_name("quarter", date(2026, 3, 31), 1) == "2026-Q1"
    assert preset_range("this_year", date(2026, 2, 1), 4) == (date(2025, 4, 1),
                                                              date(2026, 3, 31))
    assert preset_range("last_quarter", date(2026, 4, 1), 4) == (date(2026, 1, 1),
                                                                 date(2026, 3, 31))
    assert preset_range("next_month", date(2026, 12, 31), 1) == (date(2027, 1, 1),
                                                                 date(2027, 1, 31))
    assert set(PRESETS) >= {"this_quarter", "year_to_date", "next_90_days"}


# -- parameters narrow the statement -----------------------------------------------------

def closing(env: Env) -> dict[str, int]:
    """Opportunities closing on days around the first quarter of 2026, in three branches;
    returns the department ids by code."""
    ids = departments(env)
    account = place(env, "account", {"name": "Acme"})["id"]
    for day, stage, branch in [("2025-12-31", "proposal", "SH"), ("2026-01-01", "proposal", "SH"),
                               ("2026-03-31", "won", "HZ"), ("2026-04-01", "won", "BJ"),
                               ("2026-02-15", "proposal", "BJ")]:
        place(env, "opportunity", {"name": day, "account": account, "amount": "100",
                                   "stage": stage, "close_date": day},
              department=ids[branch])
    return ids


def counts(env: Env, text: str, given: dict[str, str], actor: Any = None,
           today: date = date(2026, 2, 20)) -> dict[str, int]:
    report = adhoc(env, text)
    who = actor or env.admin.actor()
    values = resolve(env.records, who, report, given, today=today)
    result = run_report(env.records, who, report, values=values)
    return {r.keys[0]: r.values["n"] for r in result.rows}


def test_a_period_narrows_the_rows_to_its_days(env: Env) -> None:
    closing(env)
    assert counts(env, BY_STAGE, {}) == {"proposal": 2, "won": 1}  # this quarter: 2026-Q1
    assert counts(env, BY_STAGE, {"period": "last_quarter"}) == {"proposal": 1}
    assert counts(env, BY_STAGE, {"period": "all"}) == {"proposal": 3, "won": 2}
    assert counts(env, BY_STAGE, {"period": "custom", "period_from": "2026-03-31",
                                  "period_to": "2026-04-01"}) == {"won": 2}
    assert counts(env, BY_STAGE, {"period_to": "2026-01-01"}) == {"proposal": 2}
    assert counts(env, BY_STAGE, {"period": "next_quarter"}) == {"won": 1}


def test_a_department_counts_its_sub_departments(env: Env) -> None:
    ids = closing(env)
    assert counts(env, BY_STAGE, {"period": "all", "department": str(ids["EAST"])}) == {
        "proposal": 2, "won": 1}
    assert counts(env, BY_STAGE, {"period": "all", "department": str(ids["BJ"])}) == {
        "proposal": 1, "won": 1}
    manager = user(env, "mgr", "sales_manager", department=ids["NORTH"])
    assert counts(env, BY_STAGE, {"period": "all", "department": "mine"}, manager) == {
        "proposal": 1, "won": 1}
    assert counts(env, BY_STAGE, {"period": "all", "department": "all"}) == {
        "proposal": 3, "won": 2}


def test_an_owner_narrows_to_their_records(env: Env) -> None:
    ids = departments(env)
    rep = user(env, "rep", "sales_rep", department=ids["SH"])
    account = place(env, "account", {"name": "Acme"})["id"]
    place(env, "opportunity", {"name": "a", "account": account, "stage": "won"}, owner=rep)
    place(env, "opportunity", {"name": "b", "account": account, "stage": "won"})
    mine = {"period": "all", "owner": "me"}
    assert counts(env, BY_STAGE, mine, rep) == {"won": 1}
    assert counts(env, BY_STAGE, {"period": "all", "owner": str(rep.id)}) == {"won": 1}
    assert counts(env, BY_STAGE, {"period": "all"}) == {"won": 2}


def test_bad_values_are_422_naming_the_parameter_and_what_it_takes(env: Env) -> None:
    ids = departments(env)
    report = adhoc(env, BY_STAGE)
    admin = env.admin.actor()
    for asked, key, words in [
            ({"period": "this_decade"}, "period", "this_month, last_month"),
            ({"period": "custom"}, "period", "period_from"),
            ({"period_from": "2026-13-01"}, "period_from", "YYYY-MM-DD"),
            ({"period_from": "2026-03-02", "period_to": "2026-03-01"}, "period_from", "after"),
            ({"department": "ours"}, "department", "mine, all"),
            ({"owner": "-3"}, "owner", "me, any")]:
        with pytest.raises(Invalid) as refused:
            resolve(env.records, admin, report, asked)
        assert refused.value.status == 422
        assert key in refused.value.fields and key.split("_")[0] in refused.value.message
        assert words in refused.value.message, refused.value.message
    # a department the viewer may not read is refused as one that does not exist
    partner = user(env, "dealer", "partner")
    answers = []
    for chosen in (ids["SH"], 999_999):
        with pytest.raises(Invalid) as refused:
            resolve(env.records, partner, report, {"department": str(chosen)})
        answers.append(refused.value.message.replace(str(chosen), "N"))
    assert answers[0] == answers[1]
    assert resolve(env.records, admin, report, {"department": str(ids["SH"])})[1].ids == (
        ids["SH"],)


def test_the_time_limit_says_which_limit_and_which_parameter(env: Env) -> None:
    now = datetime.now(UTC)
    who = {"owner_id": env.admin.id, "created_by": env.admin.id, "updated_by": env.admin.id,
           "created_at": now, "updated_at": now, "version": 1}
    with env.engine.begin() as conn:
        conn.execute(insert(env.records.schema.table("account")),
                     [{"name": f"Account {i:05d}", **who} for i in range(ACCOUNTS)])
    report = adhoc(env, f"report: adhoc\nentity: account\nfilter: '{EXPENSIVE}'\n"
                        "aggregates: [{name: n, agg: count}]\n"
                        "parameters: [{name: created, kind: period, field: created_at, "
                        "default: all}]\n")
    with limited(QueryLimit(0.2)), pytest.raises(ReportTimeLimit) as stopped:
        run_report(env.records, env.admin.actor(), report)
    message = stopped.value.message
    assert stopped.value.status == 422
    assert "0.2 s limit" in message and "query_time_limit" in message
    assert "created" in message


def test_a_datetime_period_reads_its_utc_days(env: Env) -> None:
    report = adhoc(env, "report: adhoc\nentity: account\naggregates: [{name: n, agg: count}]\n"
                        "parameters: [{name: made, kind: period, field: created_at}]\n")
    place(env, "account", {"name": "Acme"})
    today = env.records.clock().date()
    values = resolve(env.records, env.admin.actor(), report,
                     {"made": "custom", "made_from": today.isoformat(),
                      "made_to": today.isoformat()})
    assert values[0].formula == (
        f"AND(DATEVALUE(created_at) >= DATE({today.year}, {today.month}, {today.day}), "
        f"DATEVALUE(created_at) < DATE(" + ", ".join(
            str(x) for x in ((today + timedelta(days=1)).year,
                             (today + timedelta(days=1)).month,
                             (today + timedelta(days=1)).day)) + "))")
    assert run_report(env.records, env.admin.actor(), report, values=values).totals.values == {
        "n": 1}


def test_fiscal_quarters_and_years_on_the_database(make_env: EnvFactory,
                                                   config_dir: Path) -> None:
    write_settings(config_dir, "fiscal_year_start: 4")
    env = make_env(config_dir)
    assert env.model.settings.fiscal_year_start == 4
    account = place(env, "account", {"name": "Acme"})["id"]
    for day in ("2026-03-31", "2026-04-01", "2026-06-30", "2026-07-01", "2026-12-31",
                "2027-01-01", "2027-03-31", "2027-04-01"):
        place(env, "opportunity", {"name": day, "account": account, "stage": "won",
                                   "close_date": day})
    by = "report: adhoc\nentity: opportunity\ngroups: [{{field: close_date, bucket: {}}}]\n" \
         "aggregates: [{{name: n, agg: count}}]\n"
    rows = run_report(env.records, env.admin.actor(), adhoc(env, by.format("quarter"))).rows
    assert [(r.keys[0], r.values["n"]) for r in rows] == [
        ("FY2025-Q4", 1), ("FY2026-Q1", 2), ("FY2026-Q2", 1), ("FY2026-Q3", 1),
        ("FY2026-Q4", 2), ("FY2027-Q1", 1)]
    rows = run_report(env.records, env.admin.actor(), adhoc(env, by.format("year"))).rows
    assert [(r.keys[0], r.values["n"]) for r in rows] == [
        ("FY2025", 1), ("FY2026", 6), ("FY2027", 1)]
    # a fiscal bucket drills to the list of exactly its records
    client = browser(env)
    for bucket in ("quarter", "year"):
        report = adhoc(env, by.format(bucket))
        for row in run_report(env.records, env.admin.actor(), report).rows:
            query = drill_query(report, (), row, 4)
            assert query is not None
            assert listed(client, "/e/opportunity?" + urlencode(query)) == row.values["n"]
    # the presets follow the fiscal year: this year on 2026-05-01 is FY2026
    assert counts(env, BY_STAGE, {"period": "this_year"}, today=date(2026, 5, 1)) == {"won": 6}
    assert counts(env, BY_STAGE, {"period": "this_quarter"}, today=date(2027, 2, 1)) == {
        "won": 2}


# -- the administrator's SQL and plan ---------------------------------------------------

def test_the_sql_and_its_plan(env: Env) -> None:
    funnel = env.model.report("sales_funnel")
    assert funnel is not None
    values = resolve(env.records, env.admin.actor(), funnel,
                     {"period": "custom", "period_from": "2026-01-01", "owner": "7"})
    shown = explain(env.records, env.admin.actor(), funnel, values)
    assert "close_date" in shown.sql and "owner_id" in shown.sql
    assert 7 in shown.params.values()  # bound, not written into the text
    assert "'2026" not in shown.sql
    assert shown.plan and all(isinstance(line, str) for line in shown.plan)
    if env.engine.dialect.name == "postgresql":
        assert "ROLLUP" in shown.sql.upper()
        assert any("Scan" in line or "Aggregate" in line for line in shown.plan)
    else:
        assert any("SCAN" in line or "SEARCH" in line for line in shown.plan)


# -- over HTTP and the command line ------------------------------------------------------

def test_the_api_echoes_the_values_it_used_and_refuses_bad_ones(env: Env, api: Any) -> None:
    ids = closing(env)
    body = api.get("/api/reports/sales_funnel?period=custom&period_from=2026-01-01"
                   f"&period_to=2026-03-31&department={ids['EAST']}").json()
    assert body["parameters"] == {
        "period": {"value": "custom", "from": "2026-01-01", "to": "2026-03-31"},
        "department": {"value": str(ids["EAST"])}, "owner": {"value": "any"}}
    assert body["totals"]["values"]["deals"] == 2
    listed_ = {r["report"]: r for r in api.get("/api/reports").json()["items"]}
    assert listed_["sales_funnel"]["parameters"][0] == {
        "name": "period", "kind": "period", "field": "close_date", "default": "all",
        "label": {"en": "Close date", "zh": "预计成交日期"}}
    assert listed_["lost_reasons"]["parameters"] == []
    default = api.get("/api/reports/sales_funnel").json()
    assert default["parameters"]["period"] == {"value": "all", "from": None, "to": None}
    assert default["totals"]["values"]["deals"] == 5
    bad = api.get("/api/reports/sales_funnel?period=someday")
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert "period" in error["message"] and "this_quarter" in error["message"]
    assert "period" in error["fields"] and error["code"] == "invalid"
    csv = api.get("/api/reports/sales_funnel?format=csv&period=custom"
                  "&period_from=2026-03-31&period_to=2026-04-01")
    assert csv.status_code == 200
    total = csv.content.decode("utf-8-sig").splitlines()[-1]
    assert re.match(r"Total,,2,", total), total


def test_the_cli_export_takes_parameters(env: Env, tmp_path: Path) -> None:
    closing(env)
    out = tmp_path / "q1.csv"
    done = run(env, "export", "--report", "sales_funnel", "-o", str(out),
               "--param", "period=custom", "--param", "period_from=2026-01-01",
               "--param", "period_to=2026-03-31")
    assert done.exit_code == 0, done.output
    assert out.read_text("utf-8-sig").splitlines()[-1].startswith("Total,,3,")
    for args, words in [(("--param", "period"), "write NAME=VALUE"),
                        (("--param", "quarter=1"), "no such parameter"),
                        (("--param", "period=soon"), "does not take 'soon'")]:
        bad = run(env, "export", "--report", "sales_funnel", "-o", str(out), *args)
        assert bad.exit_code == 1 and words in bad.output, (args, bad.output)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(period=st.text(max_size=20), start=st.text(max_size=12), department=st.text(max_size=14),
       owner=st.text(max_size=14))
def test_any_parameter_value_is_an_answer_or_a_422(api: Any, period: str, start: str,
                                                   department: str, owner: str) -> None:
    answer = api.get("/api/reports/sales_funnel", params={
        "period": period, "period_from": start, "department": department, "owner": owner})
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert answer.json()["error"]["code"] == "invalid"
