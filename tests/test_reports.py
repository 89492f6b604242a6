"""The report compiler (engine/runtime/reports): each shipped report against a hand-computed
answer on a small fixed dataset, on SQLite and PostgreSQL, within the viewer's access."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, insert

from engine.metadata.errors import ConfigError
from engine.metadata.reports import Report, build_report
from engine.metadata.yamlio import parse_yaml
from engine.runtime.access import SYSTEM
from engine.runtime.errors import Forbidden
from engine.runtime.query_limit import QueryLimit, limited
from engine.runtime.reports import may_run, report_statement, run_report
from engine.runtime.reports.compiler import ReportResult, ReportTimeLimit
from tests.access_helpers import Person, departments, place, user
from tests.conftest import Env
from tests.test_web_limits import ACCOUNTS, EXPENSIVE


def deals(env: Env) -> tuple[Person, Person]:
    """Seven opportunities of two sales reps of one department."""
    sh = departments(env)["SH"]
    a = user(env, "rep_a", "sales_rep", department=sh)
    b = user(env, "rep_b", "sales_rep", department=sh)
    account = place(env, "account", {"name": "Acme"})["id"]
    for owner, amount, stage, reason in [
            (a, "1000", "prospecting", None), (a, "2000", "proposal", None),
            (b, "3000", "proposal", None), (b, "4000", "won", None),
            (a, "500", "lost", "price"), (b, "1500", "lost", "price"),
            (b, "700", "lost", "timing")]:
        data: dict[str, Any] = {"name": f"{owner.name} {amount}", "account": account,
                                "amount": amount, "stage": stage}
        if reason:
            data["lost_reason"] = reason
        place(env, "opportunity", data, owner=owner)
    return a, b


def table(result: ReportResult) -> list[tuple[Any, ...]]:
    """(level, keys..., values...) per row, the totals last."""
    return [(r.level, *r.keys, *r.values.values()) for r in (*result.rows, result.totals)]


def D(text: str) -> Decimal:
    return Decimal(text)


def test_sales_funnel_by_stage_in_option_order(env: Env) -> None:
    deals(env)
    funnel = env.model.report("sales_funnel")
    assert funnel is not None
    result = run_report(env.records, env.admin.actor(), funnel)
    assert table(result) == [
        (1, "prospecting", 1, D("1000.00"), D("100.00")),
        (1, "proposal", 2, D("5000.00"), D("2500.00")),
        (1, "won", 1, D("4000.00"), D("4000.00")),
        (1, "lost", 3, D("2700.00"), D("0.00")),
        (0, None, 7, D("12700.00"), D("6600.00")),
    ]
    assert not result.truncated


def test_a_sales_reps_funnel_counts_only_their_deals(env: Env) -> None:
    a, _b = deals(env)
    funnel = env.model.report("sales_funnel")
    assert funnel is not None
    assert table(run_report(env.records, a, funnel)) == [
        (1, "prospecting", 1, D("1000.00"), D("100.00")),
        (1, "proposal", 1, D("2000.00"), D("1000.00")),
        (1, "lost", 1, D("500.00"), D("0.00")),
        (0, None, 3, D("3500.00"), D("1100.00")),
    ]


def test_pipeline_by_owner_has_a_subtotal_per_owner(env: Env) -> None:
    a, b = deals(env)
    report = env.model.report("pipeline_by_owner")
    assert report is not None
    result = run_report(env.records, env.admin.actor(), report)
    assert table(result) == [
        (2, a.id, "prospecting", 1, D("1000.00"), D("100.00")),
        (2, a.id, "proposal", 1, D("2000.00"), D("1000.00")),
        (1, a.id, None, 2, D("3000.00"), D("1100.00")),
        (2, b.id, "proposal", 1, D("3000.00"), D("1500.00")),
        (1, b.id, None, 1, D("3000.00"), D("1500.00")),
        (0, None, None, 3, D("6000.00"), D("2600.00")),
    ]
    # the owner's name comes with the group row (read in the same statement)
    assert [r.names[0] for r in result.rows] == ["rep_a"] * 3 + ["rep_b"] * 2


def test_lost_reasons_largest_amount_first(env: Env) -> None:
    deals(env)
    report = env.model.report("lost_reasons")
    assert report is not None
    assert table(run_report(env.records, env.admin.actor(), report)) == [
        (1, "price", 2, D("2000.00")),
        (1, "timing", 1, D("700.00")),
        (0, None, 3, D("2700.00")),
    ]


def test_service_requests_by_queue_and_priority(env: Env) -> None:
    queue = place(env, "service_queue", {"name": "Hotline", "response_minutes_urgent": 15,
                                         "response_minutes_high": 30,
                                         "response_minutes_normal": 60})
    account = place(env, "account", {"name": "Acme"})["id"]
    for n, (q, priority, responded) in enumerate([
            (queue["id"], "urgent", "10:10"), (queue["id"], "urgent", "10:30"),
            (queue["id"], "normal", "10:45"), (queue["id"], "normal", None),
            (None, "low", "12:00")]):
        data: dict[str, Any] = {"subject": f"r{n}", "account": account, "priority": priority,
                                "queue": q, "received_at": "2026-03-02T10:00:00Z"}
        if responded:
            data["first_response_at"] = f"2026-03-02T{responded}:00Z"
        place(env, "service_request", data)
    report = env.model.report("service_requests_by_queue")
    assert report is not None
    result = run_report(env.records, env.admin.actor(), report)
    q = queue["id"]
    assert table(result) == [
        (2, q, "urgent", 2, D("20.00"), 1),
        (2, q, "normal", 2, D("45.00"), 1),
        (1, q, None, 4, D("28.33"), 2),
        (2, None, "low", 1, D("120.00"), 0),
        (1, None, None, 1, D("120.00"), 0),
        (0, None, None, 5, D("51.25"), 2),
    ]
    assert [r.names[0] for r in result.rows[:3]] == ["Hotline"] * 3


def test_a_report_is_one_statement(env: Env) -> None:
    deals(env)
    report = env.model.report("pipeline_by_owner")
    assert report is not None
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(env.engine, "before_cursor_execute", hook)
    try:
        run_report(env.records, env.admin.actor(), report)
    finally:
        event.remove(env.engine, "before_cursor_execute", hook)
    assert len(seen) == 1
    if env.engine.dialect.name == "postgresql":
        assert "ROLLUP" in seen[0].upper()
    else:
        assert "UNION ALL" in seen[0].upper()


def test_a_report_over_a_hidden_field_is_refused_without_naming_it(env: Env) -> None:
    deals(env)
    marketer = user(env, "mkt", "marketing")  # opportunity.amount is hidden from marketing
    funnel = env.model.report("sales_funnel")
    assert funnel is not None
    assert not may_run(env.records, marketer, funnel)
    with pytest.raises(Forbidden) as refused:
        report_statement(env.records, marketer, funnel)
    assert "amount" not in refused.value.message and "weighted" not in refused.value.message


def test_an_unreadable_entity_is_refused(env: Env) -> None:
    agent = user(env, "agent", "marketing")  # marketing reads no service requests
    report = env.model.report("service_requests_by_queue")
    assert report is not None
    assert not may_run(env.records, agent, report)
    with pytest.raises(Forbidden):
        run_report(env.records, agent, report)


def test_the_engine_itself_may_run_every_report(env: Env) -> None:
    for report in env.model.reports:
        assert may_run(env.records, SYSTEM, report)
        assert run_report(env.records, SYSTEM, report).totals.level == 0


def adhoc(env: Env, text: str) -> Report:
    """A report of the test's own over the shipped entities (no new database)."""
    doc = parse_yaml(text.encode(), "adhoc.yaml")
    assert not isinstance(doc, ConfigError)
    errors: list[ConfigError] = []
    report = build_report(doc, "adhoc", list(env.model.entities), errors)
    assert report is not None, errors
    return report


def test_a_report_past_the_time_limit_is_a_4xx_naming_it(env: Env) -> None:
    now = datetime.now(UTC)
    who = {"owner_id": env.admin.id, "created_by": env.admin.id, "updated_by": env.admin.id,
           "created_at": now, "updated_at": now, "version": 1}
    with env.engine.begin() as conn:
        conn.execute(insert(env.records.schema.table("account")),
                     [{"name": f"Account {i:05d}", **who} for i in range(ACCOUNTS)])
    report = adhoc(env, f"report: adhoc\nentity: account\nfilter: '{EXPENSIVE}'\n"
                        "aggregates: [{name: n, agg: count}]\n")
    with limited(QueryLimit(0.2)), pytest.raises(ReportTimeLimit) as stopped:
        run_report(env.records, env.admin.actor(), report)
    assert stopped.value.status == 422 and "0.2 s limit" in stopped.value.message


def test_buckets_and_conditional_aggregates(env: Env) -> None:
    account = place(env, "account", {"name": "Acme"})["id"]
    for day, amount, stage in [("2026-01-05", "100", "won"), ("2026-02-11", "200", "lost"),
                               ("2026-03-31", "300", "won"), ("2026-04-01", "400", "proposal"),
                               ("2025-12-31", "50", "won")]:
        data: dict[str, Any] = {"name": day, "account": account, "amount": amount,
                                "stage": stage, "close_date": day}
        if stage == "lost":
            data["lost_reason"] = "price"
        place(env, "opportunity", data)
    report = adhoc(env, """\
report: adhoc
entity: opportunity
groups: [{field: close_date, bucket: quarter}]
aggregates:
  - {name: n, agg: count}
  - {name: won, agg: sum, field: amount, where: 'stage = "won"'}
  - {name: stages, agg: count_distinct, field: stage}
  - {name: first, agg: min, field: close_date}
""")
    assert table(run_report(env.records, env.admin.actor(), report)) == [
        (1, "2025-Q4", 1, D("50.00"), 1, date(2025, 12, 31)),
        (1, "2026-Q1", 3, D("400.00"), 2, date(2026, 1, 5)),
        (1, "2026-Q2", 1, None, 1, date(2026, 4, 1)),
        (0, None, 5, D("450.00"), 3, date(2025, 12, 31)),
    ]
    for bucket, keys in [("week", ["2025-12-29", "2026-01-05", "2026-02-09", "2026-03-30"]),
                         ("month", ["2025-12", "2026-01", "2026-02", "2026-03", "2026-04"]),
                         ("year", ["2025", "2026"]),
                         ("day", ["2025-12-31", "2026-01-05", "2026-02-11", "2026-03-31",
                                  "2026-04-01"])]:
        by = adhoc(env, "report: adhoc\nentity: opportunity\n"
                        f"groups: [{{field: close_date, bucket: {bucket}}}]\n"
                        "aggregates: [{name: n, agg: count}]\n")
        rows = run_report(env.records, env.admin.actor(), by).rows
        assert [r.keys[0] for r in rows] == keys, bucket


def test_a_report_past_its_limit_is_truncated_but_keeps_its_totals(env: Env) -> None:
    a, _b = deals(env)
    report = adhoc(env, "report: adhoc\nentity: opportunity\ngroups: [stage]\n"
                        "aggregates: [{name: n, agg: count}]\nlimit: 3\n")
    result = run_report(env.records, env.admin.actor(), report)
    assert result.truncated
    assert [r.keys[0] for r in result.rows] == ["prospecting", "proposal"]
    assert result.totals.values == {"n": 7}
    pipeline = env.model.report("pipeline_by_owner")
    assert pipeline is not None  # a rep's pipeline: their own deals, their subtotal
    assert [(r.level, r.keys, r.values["deals"])
            for r in (*run_report(env.records, a, pipeline).rows,)] == [
        (2, (a.id, "prospecting"), 1), (2, (a.id, "proposal"), 1), (1, (a.id, None), 2)]
