"""docs/reports.md: every key of the report schema is documented, and its example is a
valid report."""

from __future__ import annotations

import re
from pathlib import Path

from engine.metadata import load_model
from engine.metadata.loader import schema
from tests.test_flows_docs import _keys

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOC = DOCS / "reports.md"


def test_every_report_key_is_documented() -> None:
    keys = _keys(schema("report"))
    assert {"report", "groups", "aggregates", "bucket", "quarter", "count_distinct",
            "where", "sort", "limit"} <= keys
    documented = set(re.findall(r"`([a-z_]+)`", DOC.read_text(encoding="utf-8")))
    assert keys - documented == set()


def test_reports_are_linked_from_the_index_and_configuration() -> None:
    assert "(reports.md)" in (DOCS / "README.md").read_text(encoding="utf-8")
    assert "(reports.md)" in (DOCS / "configuration.md").read_text(encoding="utf-8")


def test_the_example_is_a_report_that_loads(config_dir: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    (block,) = re.findall(r"## A report file\n\n```yaml\n(.*?)```", text, re.DOTALL)
    (config_dir / "reports" / "pipeline_by_owner.yaml").write_text(block, encoding="utf-8")
    report = load_model(config_dir).report("pipeline_by_owner")
    assert report is not None and [a.name for a in report.aggregates] == [
        "deals", "amount", "weighted", "large"]
