"""Blended reports (`sources:`, engine/runtime/reports/blended.py): sales targets against
contracted actuals and collections side by side on shared groups, each source read through
its own entity's secure query — the shipped targets_vs_actual report against a
hand-computed answer on SQLite and PostgreSQL, within each viewer's access."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from engine.metadata.errors import ConfigError
from engine.metadata.reports import Report, build_report
from engine.metadata.yamlio import parse_yaml
from engine.runtime.access import SYSTEM
from engine.runtime.errors import Forbidden
from engine.runtime.reports import may_run, run_report
from engine.runtime.reports.compiler import ReportResult
from engine.runtime.reports.exported import report_export
from tests.access_helpers import Person, departments, place, user
from tests.conftest import Env
from tests.test_reports import D

YEAR = date.today().year
ON = f"{YEAR}-03-02"


class World:
    def __init__(self, env: Env) -> None:
        self.sh = departments(env)["SH"]
        self.a = user(env, "rep_a", "sales_rep", department=self.sh)
        self.b = user(env, "rep_b", "sales_rep", department=self.sh)
        self.servers = place(env, "product_line", {"name": "Servers", "code": "SRV"})["id"]
        self.storage = place(env, "product_line", {"name": "Storage", "code": "STO"})["id"]
        self.p1 = place(env, "product", {"name": "S1", "code": "S1", "list_price": "3000",
                                         "unit_cost": "2000",
                                         "product_line": self.servers})["id"]
        self.p2 = place(env, "product", {"name": "T1", "code": "T1", "list_price": "1000",
                                         "unit_cost": "400",
                                         "product_line": self.storage})["id"]
        self.account = place(env, "account", {"name": "Acme"})["id"]


def target(env: Env, w: World, who: Person, metric: str, value: str,
           line: int | None = None, year: int = YEAR) -> None:
    data: dict[str, Any] = {"name": f"{who.name} {metric}", "metric": metric,
                            "target_value": value, "salesperson": who.id,
                            "target_department": w.sh, "period_start": f"{year}-01-01",
                            "period_end": f"{year}-12-31"}
    if line is not None:
        data["product_line"] = line
    place(env, "sales_target", data, owner=who, department=w.sh)


def contract(env: Env, w: World, who: Person, lines: list[tuple[int, str]],
             status: str = "signed") -> int:
    k = place(env, "contract", {"name": f"{who.name} contract", "account": w.account},
              owner=who, department=w.sh)
    for product, quantity in lines:
        place(env, "contract_line", {"contract": k["id"], "product": product,
                                     "quantity": quantity}, owner=who, department=w.sh)
    if status != "draft":
        k = env.records.get(SYSTEM, "contract", k["id"])
        env.records.update(SYSTEM, "contract", k["id"], {"status": status, "signed_on": ON},
                           k["version"])
    return int(k["id"])


def receipt(env: Env, w: World, who: Person, k: int, amount: str, status: str) -> None:
    r = place(env, "receipt", {"contract": k, "amount": amount, "received_on": ON},
              owner=who, department=w.sh)
    if status != "pending":
        env.records.update(SYSTEM, "receipt", r["id"], {"status": status}, r["version"])


def world(env: Env) -> World:
    w = World(env)
    target(env, w, w.a, "amount", "10000", w.servers)
    target(env, w, w.a, "amount", "5000", w.storage)
    target(env, w, w.a, "quantity", "3", w.servers)
    target(env, w, w.a, "collections", "8000")
    target(env, w, w.a, "amount", "99999", w.servers, year=YEAR - 1)  # last year's
    target(env, w, w.b, "amount", "20000", w.servers)
    ka = contract(env, w, w.a, [(w.p1, "2"), (w.p2, "1")])        # 6000 + 1000
    contract(env, w, w.a, [(w.p1, "10")], status="draft")         # not signed: not counted
    kb = contract(env, w, w.b, [(w.p1, "1")], status="executing")  # 3000
    receipt(env, w, w.a, ka, "2000", "confirmed")
    receipt(env, w, w.a, ka, "500", "pending")                    # not counted
    receipt(env, w, w.b, kb, "1000", "confirmed")
    return w


COLUMNS = ["target_amount", "target_quantity", "target_collections", "target_margin",
           "actual_amount", "actual_quantity", "actual_margin", "collections",
           "amount_attainment", "collections_attainment"]


def table(result: ReportResult) -> list[tuple[Any, ...]]:
    return [(r.level, *r.keys, *(r.values[c] for c in COLUMNS))
            for r in (*result.rows, result.totals)]


def shipped(env: Env) -> Report:
    report = env.model.report("targets_vs_actual")
    assert report is not None
    assert [a.name for a in report.aggregates] == COLUMNS
    return report


def N(*values: str | None) -> tuple[Decimal | None, ...]:
    return tuple(None if v is None else D(v) for v in values)


def test_targets_and_actuals_side_by_side(env: Env) -> None:
    w = world(env)
    result = run_report(env.records, env.admin.actor(), shipped(env))
    a, b, sh, srv, sto = w.a.id, w.b.id, w.sh, w.servers, w.storage
    assert table(result) == [
        # rep_a / servers: 10000 target, 2 * 3000 = 6000 signed, margin 2 * 1000
        (3, sh, a, srv, *N("10000", "3", None, None, "6000.00", "2", "2000.00", None,
                           "60.00", None)),
        (3, sh, a, sto, *N("5000", None, None, None, "1000.00", "1", "600.00", None,
                           "20.00", None)),
        # the collections target and the receipts have no product line
        (3, sh, a, None, *N(None, None, "8000", None, None, None, None, "2000.00", None,
                            "25.00")),
        (2, sh, a, None, *N("15000", "3", "8000", None, "7000.00", "3", "2600.00",
                            "2000.00", "46.70", "25.00")),
        (3, sh, b, srv, *N("20000", None, None, None, "3000.00", "1", "1000.00", None,
                           "15.00", None)),
        (3, sh, b, None, *N(None, None, None, None, None, None, None, "1000.00", None,
                            None)),
        (2, sh, b, None, *N("20000", None, None, None, "3000.00", "1", "1000.00",
                            "1000.00", "15.00", None)),
        (1, sh, None, None, *N("35000", "3", "8000", None, "10000.00", "4", "3600.00",
                               "3000.00", "28.60", "37.50")),
        (0, None, None, None, *N("35000", "3", "8000", None, "10000.00", "4", "3600.00",
                                 "3000.00", "28.60", "37.50")),
    ]
    # the group names come from the one statement: department, user, product line
    assert result.rows[0].names == ("Shanghai branch", "rep_a", "Servers")


def test_a_sales_rep_sees_only_their_targets_and_actuals(env: Env) -> None:
    w = world(env)
    result = run_report(env.records, w.b, shipped(env))
    b, sh, srv = w.b.id, w.sh, w.servers
    assert table(result) == [
        (3, sh, b, srv, *N("20000", None, None, None, "3000.00", "1", "1000.00", None,
                           "15.00", None)),
        (3, sh, b, None, *N(None, None, None, None, None, None, None, "1000.00", None,
                            None)),
        (2, sh, b, None, *N("20000", None, None, None, "3000.00", "1", "1000.00",
                            "1000.00", "15.00", None)),
        (1, sh, None, None, *N("20000", None, None, None, "3000.00", "1", "1000.00",
                               "1000.00", "15.00", None)),
        # rep_b reads the department's receipts (roles.yaml receipt: department) but not
        # rep_a's contract: that receipt counts without its contract's department and owner
        (3, None, None, None, *N(None, None, None, None, None, None, None, "2000.00", None,
                                 None)),
        (2, None, None, None, *N(None, None, None, None, None, None, None, "2000.00", None,
                                 None)),
        (1, None, None, None, *N(None, None, None, None, None, None, None, "2000.00", None,
                                 None)),
        (0, None, None, None, *N("20000", None, None, None, "3000.00", "1", "1000.00",
                                 "3000.00", "15.00", None)),
    ]


def test_the_blended_report_is_one_statement_of_union_all(env: Env) -> None:
    world(env)
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(env.engine, "before_cursor_execute", hook)
    try:
        run_report(env.records, env.admin.actor(), shipped(env))
    finally:
        event.remove(env.engine, "before_cursor_execute", hook)
    assert len(seen) == 1 and seen[0].upper().count("UNION ALL") >= 2


def test_a_source_reading_a_hidden_field_refuses_the_report(env: Env) -> None:
    world(env)
    # service managers read contract lines department-wide, but not their margin: the
    # second source reads it
    viewer = user(env, "svc", "service_manager", department=departments(env)["SH"])
    doc = parse_yaml(b"""report: adhoc
sources:
  - entity: contract_line
    groups: {product: product}
    aggregates: {amount: {agg: sum, field: line_total}}
  - entity: contract_line
    groups: {product: product}
    aggregates: {margin: {agg: sum, field: margin}}
""", "adhoc.yaml")
    assert not isinstance(doc, ConfigError)
    errors: list[ConfigError] = []
    report = build_report(doc, "adhoc", list(env.model.entities), errors)
    assert report is not None, errors
    assert not may_run(env.records, viewer, report)
    with pytest.raises(Forbidden) as refused:
        run_report(env.records, viewer, report)
    assert "margin" not in refused.value.message
    # without the margin, the same viewer runs it
    first = build_report(parse_yaml(b"""report: adhoc
sources:
  - entity: contract_line
    groups: {product: product}
    aggregates: {amount: {agg: sum, field: line_total}}
""", "adhoc.yaml"), "adhoc", list(env.model.entities), errors)  # type: ignore[arg-type]
    assert first is not None and may_run(env.records, viewer, first)
    # every contract's lines, the draft's too (this report has no filter)
    assert run_report(env.records, viewer, first).totals.values["amount"] == D("40000.00")


def test_the_api_names_the_sources_and_exports_every_column(env: Env,
                                                           api: TestClient) -> None:
    world(env)
    body = api.get("/api/reports/targets_vs_actual").json()
    assert body["sources"] == ["sales_target", "contract_line", "receipt"]
    assert [c["key"] for c in body["columns"]][3:] == COLUMNS
    assert body["totals"]["values"]["target_amount"] == "35000.0000"
    assert body["totals"]["values"]["amount_attainment"] == "28.60"
    result = run_report(env.records, env.admin.actor(), shipped(env), "export")
    columns, rows = report_export(result, "zh")
    assert [c.label for c in columns][-2:] == ["销售额达成率（%）",  # noqa: RUF001
                                               "回款达成率（%）"]  # noqa: RUF001
    assert rows[-1]["collections"] == D("3000.00")


def broken(env: Env, text: str) -> list[str]:
    doc = parse_yaml(text.encode(), "adhoc.yaml")
    assert not isinstance(doc, ConfigError)
    errors: list[ConfigError] = []
    assert build_report(doc, "adhoc", list(env.model.entities), errors) is None
    return [str(e) for e in errors]


BLEND = """report: adhoc
sources:
  - entity: sales_target
    groups: {who: salesperson}
    aggregates:
      target: {agg: sum, field: target_value}
  - entity: opportunity
    groups: {who: %s}
    aggregates:
      %s: {agg: sum, field: amount}
groups: [who]
"""


def test_a_blended_report_that_loads(env: Env) -> None:
    doc = parse_yaml((BLEND % ("owner", "won")).encode(), "adhoc.yaml")
    assert not isinstance(doc, ConfigError)
    errors: list[ConfigError] = []
    report = build_report(doc, "adhoc", list(env.model.entities), errors)
    assert report is not None, errors
    assert report.entity == "sales_target" and [g.path for g in report.groups] == ["who"]
    assert [(s.entity, [a.name for a in s.aggregates]) for s in report.sources] == [
        ("sales_target", ["target"]), ("opportunity", ["won"])]


def test_blended_mistakes_are_named_at_their_place(env: Env) -> None:
    # a group of another kind of value than the first source's
    errors = broken(env, BLEND % ("stage", "won"))
    assert errors[0].startswith("adhoc.yaml:8:19:") and "does not match" in errors[0]
    # an aggregate name taken by another source
    errors = broken(env, BLEND % ("owner", "target"))
    assert errors[0].startswith("adhoc.yaml:10:7:") and "already an aggregate" in errors[0]
    # an unknown field of the source's own entity
    errors = broken(env, BLEND % ("ownr", "won"))
    assert errors[0].startswith("adhoc.yaml:8:19:") and "'owner'" in errors[0]
    # a top-level entity beside sources
    errors = broken(env, "entity: opportunity\n" + BLEND % ("owner", "won"))
    assert errors[0].startswith("adhoc.yaml:1:") and "sources" in errors[0]
    # a group no source has
    errors = broken(env, (BLEND % ("owner", "won")).replace("groups: [who]",
                                                            "groups: [whom]"))
    assert "no source has a group 'whom'" in errors[0] and errors[0].startswith(
        "adhoc.yaml:11:")
