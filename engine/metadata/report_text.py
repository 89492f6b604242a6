"""A report definition given as YAML text rather than a file of config/reports: a saved
report of the report builder (engine/runtime/reports/saved.py) is checked exactly as a
report file is — the same JSON Schema, then `build_report` against the model's entities —
so one validator decides what a report is, wherever it is kept.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML

from engine.metadata.errors import ConfigError, SourceLoc
from engine.metadata.loader import validate_against_schema
from engine.metadata.model import Entity
from engine.metadata.reports import Report, build_report
from engine.metadata.yamlio import parse_yaml

MAX_DEFINITION = 16_000
"""Characters of a saved report's YAML at most (a shipped report file is under 1,000)."""


def report_from_text(text: str, display: str, entities: Sequence[Entity]
                     ) -> Report | list[ConfigError]:
    """The report the YAML `text` defines, or its errors (`display:line:col: message`).
    Its `report:` key names it (there is no file name it must match)."""
    if len(text) > MAX_DEFINITION:
        return [ConfigError(SourceLoc(display, 1, 1),
                            f"the definition is {len(text):,} characters; the limit is "
                            f"{MAX_DEFINITION:,}")]
    doc = parse_yaml(text.encode("utf-8"), display)
    if isinstance(doc, ConfigError):
        return [doc]
    if not isinstance(doc.data, dict):
        return [doc.error([], "a report is a mapping with 'report', 'entity' and "
                              "'aggregates' (see docs/reports.md)")]
    problems, _ = validate_against_schema(doc, "report")
    if problems:
        return problems
    errors: list[ConfigError] = []
    report = build_report(doc, str(doc.data["report"]), list(entities), errors)
    if report is None or errors:
        return errors or [doc.error([], "not a valid report")]
    return report


def report_yaml(data: Mapping[str, Any]) -> str:
    """A report definition as the text of a report file (keys in the order given)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.allow_unicode = True
    yaml.width = 100
    buffer = io.StringIO()
    yaml.dump(_plain(data), buffer)
    return buffer.getvalue()


def renamed(text: str, name: str) -> str | None:
    """The definition `text` under the report name `name` (for the file
    config/reports/<name>.yaml); None when it is not a mapping."""
    doc = parse_yaml(text.encode("utf-8"), "saved report")
    if isinstance(doc, ConfigError) or not isinstance(doc.data, dict):
        return None
    return report_yaml({"report": name, **{k: v for k, v in doc.data.items()
                                            if k != "report"}})


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
