"""config/reports/*.yaml (engine/metadata/reports.py): the shipped reports load, and a bad
report is refused by the loader (and `crm check`) at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formula import FType
from engine.metadata import ConfigErrors, load_model
from engine.metadata.reports import ReportSort
from tests.conftest import shipped_model

GOOD = """\
report: deals
label: {en: Deals, zh: 商机}
entity: opportunity
filter: 'amount > 0'
groups:
  - {field: close_date, bucket: quarter, label: {en: Quarter, zh: 季度}}
  - account.industry
aggregates:
  - {name: deals, agg: count}
  - {name: amount, agg: sum, field: amount}
  - {name: accounts, agg: count_distinct, field: account}
  - {name: latest, agg: max, field: close_date}
  - {name: won, agg: count, where: 'stage = "won"'}
sort: [-amount, account.industry]
limit: 50
"""


SHIPPED = [
    "activities_by_owner", "branch_results", "campaign_results", "collection_plan",
    "competitor_by_product_line", "competitor_win_loss", "contract_execution",
    "customer_composition", "customer_lifecycle", "employee_performance", "employee_scorecard",
    "expenses_vs_budget", "forecast_by_month", "lead_conversion", "lost_reasons",
    "overdue_receivables", "pipeline_by_owner", "quote_details", "resource_planning",
    "sales_funnel",
    "service_compliance", "service_plans", "service_requests_by_queue", "stage_plan_gantt",
    "targets_vs_actual", "won_by_quarter", "work_orders"]
"""The shipped reports, in the order of their files' names."""


def report_errors(config: Path, text: str, name: str = "deals.yaml") -> list[str]:
    folder = config / "reports"
    (folder / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_model(config)
    return [str(e) for e in caught.value.errors]


def test_the_shipped_reports_load() -> None:
    model = shipped_model()
    assert [r.name for r in model.reports] == SHIPPED
    funnel = model.report("sales_funnel")
    assert funnel is not None and funnel.entity == "opportunity"
    assert [g.path for g in funnel.groups] == ["stage"]
    assert [(a.name, a.agg, a.path) for a in funnel.aggregates] == [
        ("deals", "count", None), ("amount", "sum", "amount"), ("weighted", "sum", "weighted")]
    assert funnel.label.get("zh") == "销售漏斗"
    assert model.report("nothing") is None


def test_a_report_loads_with_its_paths_and_formulas(config_dir: Path) -> None:
    (config_dir / "reports" / "deals.yaml").write_text(GOOD, encoding="utf-8")
    report = load_model(config_dir).report("deals")
    assert report is not None
    quarter, industry = report.groups
    assert (quarter.bucket, quarter.type, quarter.label.get("zh")) == ("quarter", FType.TEXT,
                                                                      "季度")
    assert industry.ends_on is not None and industry.ends_on.name == "industry"
    assert report.sort == (ReportSort("amount", True), ReportSort("account.industry", False))
    assert report.limit == 50
    assert ("account", "industry") in report.references and ("stage",) in report.references


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("entity: opportunity", "entity: oportunity"),
     "deals.yaml:3:9: entity: unknown entity 'oportunity' (did you mean 'opportunity'?)"),
    (GOOD.replace("field: amount}", "field: amout}"),
     "deals.yaml:10:37: aggregates.1.field: no field 'amout' of opportunity "
     "(did you mean 'amount'?)"),
    (GOOD.replace("bucket: quarter", "bucket: fortnight"), "deals.yaml:6:"),
    (GOOD.replace("- account.industry", "- {field: stage, bucket: month}"),
     "groups.1.bucket: 'stage' is not a date or datetime field: it has no buckets"),
    (GOOD.replace("agg: sum, field: amount", "agg: sum, field: stage"),
     "aggregates.1.field: sum needs a number field; 'stage' is text"),
    (GOOD.replace("'amount > 0'", "'amount >'"), "deals.yaml:4:9: formula 1:"),
    (GOOD.replace("sort: [-amount", "sort: [-amont"),
     "sort.0: 'amont' is neither a group nor an aggregate of this report "
     "(did you mean 'amount'?)"),
    (GOOD.replace("report: deals", "report: others"),
     "deals.yaml:1:9: report: 'others' must be the file's name ('deals')"),
    (GOOD.replace("limit: 50", "limit: 50000"),
     "deals.yaml:15:8: limit: 50000 is greater than the maximum of 10000"),
    (GOOD.replace("{name: won,", "{name: deals,"),
     "aggregates.4.name: 'deals' is already an aggregate of this report"),
    (GOOD + "colour: red\n", "deals.yaml:16:1: unknown key 'colour'"),
])
def test_a_bad_report_is_refused_at_its_place(config_dir: Path, text: str,
                                              expected: str) -> None:
    errors = report_errors(config_dir, text)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("name", ["new", "forecast_history"])
def test_a_report_may_not_take_the_name_of_a_reports_page(config_dir: Path, name: str) -> None:
    errors = report_errors(config_dir, GOOD.replace("report: deals", f"report: {name}", 1),
                           f"{name}.yaml")
    assert errors == [f"{config_dir}/reports/{name}.yaml:1:9: report: {name!r} is the address "
                      f"of a page of its own (/reports/{name}); name the report otherwise"]
