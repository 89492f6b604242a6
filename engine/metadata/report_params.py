"""`parameters:` of a report file: values the viewer sets, each with a default
(docs/reports.md, "Parameters").

```yaml
parameters:
  - {name: period, kind: period, field: close_date, default: this_quarter}
  - {name: department, kind: department, default: mine}   # mine | all | (a department id)
  - {name: owner, kind: owner, default: any}               # me | any | (a user id)
```

A `period` narrows the records to a date range of a date or datetime field (a dotted path
too): a preset (PRESETS) or a custom `from`/`to`. A
`department` narrows them to a department and its sub-departments, an `owner` to one
user's. The viewer's values are read at run time (engine/runtime/reports/params.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as attr
from typing import Any

from engine.formula import CompiledFormula, FType
from engine.metadata.errors import ConfigError, SourceLoc, did_you_mean
from engine.metadata.labels import Label
from engine.metadata.model import Entity, Field
from engine.metadata.yamlio import PathPart, YamlDoc

PRESETS = ("this_month", "last_month", "next_month", "this_quarter", "last_quarter",
           "next_quarter", "this_year", "last_year", "next_year", "last_30_days",
           "last_90_days", "next_90_days", "year_to_date", "all")
"""The period presets of a `period` parameter (their days: engine/runtime/reports/fiscal.py),
besides a custom range (`custom`)."""
KINDS = ("period", "department", "owner")
DEPARTMENT_CHOICES = ("mine", "all")
OWNER_CHOICES = ("me", "any")
CUSTOM = "custom"
"""The period value of a custom range (`<name>_from`, `<name>_to`)."""
DEFAULTS = {"period": "all", "department": "all", "owner": "any"}
_LABELS = {"period": {"en": "Period", "zh": "期间"},
           "department": {"en": "Department", "zh": "部门"},
           "owner": {"en": "Owner", "zh": "负责人"}}
RESERVED = frozenset({"format"})
"""Query keys a parameter may not take (they mean something else in a report's address)."""

Walk = Callable[[list[PathPart], str],
                "tuple[CompiledFormula, Field | None, str | None] | None"]
"""Checks a field path of the report's entity (an error at the path when it is not one)."""


@dataclass(frozen=True)
class ReportParameter:
    name: str
    kind: str
    """period, department or owner."""
    default: str
    label: Label
    field: str | None = None
    """A period's date or datetime field path."""
    type: FType | None = None
    """The period field's type: DATE or DATETIME."""
    compiled: CompiledFormula | None = attr(default=None, compare=False, repr=False)
    loc: SourceLoc = attr(default=SourceLoc("", 0, 0), compare=False, repr=False)

    @property
    def choices(self) -> tuple[str, ...]:
        """The named values it takes (a period's custom range and an id aside)."""
        if self.kind == "period":
            return PRESETS
        return DEPARTMENT_CHOICES if self.kind == "department" else OWNER_CHOICES


def build_parameters(doc: YamlDoc, entity: Entity, has_department: bool, walk: Walk,
                     errors: list[ConfigError]) -> tuple[ReportParameter, ...]:
    """The parameters of a schema-valid report file; each mistake an error at its place."""
    out: list[ReportParameter] = []
    for i, spec in enumerate(doc.data.get("parameters", [])):
        at: list[PathPart] = ["parameters", i]

        def error(key: str, message: str, at: list[PathPart] = at) -> None:
            errors.append(doc.error([*at, key], f"parameters.{at[1]}.{key}: {message}"))

        name, kind = spec["name"], spec["kind"]
        taken = {p.name for p in out}
        if name in taken or any(f"{p}_{end}" == name for p in taken for end in ("from", "to")):
            error("name", f"{name!r} is already a parameter of this report")
            continue
        if name in RESERVED:
            error("name", f"{name!r} is taken by the report's address; choose another name")
            continue
        default = str(spec.get("default", DEFAULTS[kind]))
        compiled = None
        ftype = None
        if kind == "period":
            if "field" not in spec:
                error("kind", "a period parameter needs a `field`: the date or datetime field "
                              "it narrows")
                continue
            walked = walk([*at, "field"], spec["field"])
            if walked is None:
                continue
            compiled = walked[0]
            if compiled.type not in (FType.DATE, FType.DATETIME):
                error("field", f"{spec['field']!r} is {compiled.type.value}, not a date or "
                               "datetime field")
                continue
            ftype = compiled.type
        elif "field" in spec:
            error("field", f"a {kind} parameter has no field (it narrows the records' "
                           f"{'department' if kind == 'department' else 'owner'})")
            continue
        if kind == "department" and not has_department:
            error("kind", "there is no department entity to choose a department from")
            continue
        choices = PRESETS if kind == "period" else (
            DEPARTMENT_CHOICES if kind == "department" else OWNER_CHOICES)
        if default not in choices:
            error("default", f"{default!r} is not a value of kind {kind}; one of "
                             f"{', '.join(choices)}{did_you_mean(default, set(choices))}")
            continue
        label = Label.of(spec["label"], name) if "label" in spec else Label.of(
            _LABELS[kind], name)
        out.append(ReportParameter(name=name, kind=kind, default=default, label=label,
                                   field=spec.get("field"), type=ftype, compiled=compiled,
                                   loc=doc.loc(at)))
    return tuple(out)


def parameters_schema() -> dict[str, Any]:
    """What a parameter looks like in the answers of the JSON API (for /openapi.json)."""
    return {"type": "object", "description": "parameter name → the value used: `value` (a "
            "preset, custom, mine, all, me, any or an id) and, for a period, `from` and `to` "
            "(ISO dates, both days included; null: open)",
            "additionalProperties": {"type": "object"}}
