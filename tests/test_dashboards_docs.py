"""docs/dashboards.md: every key of the dashboard schema is documented, its example is a valid
dashboard, and the shipped dashboards are listed."""

from __future__ import annotations

import re
from pathlib import Path

from engine.metadata import load_model
from engine.metadata.loader import schema
from tests.conftest import shipped_model
from tests.test_flows_docs import _keys

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOC = DOCS / "dashboards.md"


def test_every_dashboard_key_is_documented() -> None:
    keys = _keys(schema("dashboard"))
    assert {"dashboard", "roles", "widgets", "report", "show", "aggregate", "width", "limit",
            "table", "chart", "total", "parameters"} <= keys
    documented = set(re.findall(r"`([a-z_]+)`", DOC.read_text(encoding="utf-8")))
    assert keys - documented == set()


def test_dashboards_are_linked_from_the_index_and_configuration() -> None:
    assert "(dashboards.md)" in (DOCS / "README.md").read_text(encoding="utf-8")
    assert "(dashboards.md)" in (DOCS / "configuration.md").read_text(encoding="utf-8")


def test_the_example_is_a_dashboard_that_loads(config_dir: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    (block,) = re.findall(r"## A dashboard file\n\n```yaml\n(.*?)```", text, re.DOTALL)
    (config_dir / "dashboards" / "sales_manager.yaml").write_text(block, encoding="utf-8")
    dashboard = load_model(config_dir).dashboard("sales_manager")
    assert dashboard is not None and [w.report for w in dashboard.widgets] == [
        "sales_funnel", "sales_funnel", "sales_funnel", "lost_reasons", "pipeline_by_owner"]
    assert dashboard.widgets[2].parameters == (("period", "this_quarter"), ("owner", "me"))


def test_every_shipped_dashboard_is_listed() -> None:
    listed = re.findall(r"^\| `([a-z_]+)\.yaml` \|", DOC.read_text(encoding="utf-8"), re.M)
    assert listed == [d.name for d in shipped_model().dashboards]
