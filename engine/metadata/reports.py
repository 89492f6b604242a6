"""config/reports/*.yaml: groups and aggregates of one entity's records (docs/reports.md).

```yaml
report: sales_funnel                   # the file's name
label: {en: Sales funnel, zh: 销售漏斗}
entity: opportunity
filter: 'stage <> "lost"'              # a condition on the entity (optional)
groups:                                # levels, outermost first; subtotals per level
  - stage                              # a field, an engine link (owner) or a dotted path
  - {field: close_date, bucket: month} # day | week | month | quarter | year
aggregates:
  - {name: deals, agg: count}
  - {name: amount, agg: sum, field: amount, label: {en: Amount, zh: 金额}}
  - {name: won, agg: count, where: 'stage = "won"'}   # a conditional aggregate
sort: [-amount]                        # group paths or aggregate names; - descending
limit: 1000                            # rows returned, subtotals included (≤ 10,000)
parameters:                            # set by the viewer (engine/metadata/report_params.py)
  - {name: period, kind: period, field: close_date, default: this_quarter}
```

A detail report lists records instead of groups (docs/reports.md "Detail reports"):

```yaml
report: quote_details
entity: quote
columns:                               # a field path, or a formula with a name
  - number
  - account                            # a linked record: shown by its name
  - {field: opportunity.stage, label: {en: Deal stage, zh: 商机阶段}}
  - {name: margin, formula: 'total - cost_total', label: {en: Margin, zh: 毛利}}
aggregates: [{name: total, agg: sum, field: total}]   # optional: a totals row
sort: [-total]
```

An aggregate reads a field (`field:`) or a formula (`formula: 'amount * probability / 100'`).

`across: {field: close_date, bucket: quarter}` makes a cross-tab (its values as columns);
an aggregate with `computed:` computes from the aggregates before it; `sources:` instead of
`entity` blends several entities on shared group names (engine/metadata/report_sources.py).

Every path and formula is checked against the entity when the configuration loads, and must
be one the database can compute (the report runs as one SQL statement,
engine/runtime/reports): a report naming an unknown entity, field or aggregate is refused
by `crm check` at `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from dataclasses import field as attr
from typing import Any

from engine.formula import (
    CompiledFormula,
    EntityScope,
    FieldSpec,
    FormulaError,
    FType,
    compile_formula,
)
from engine.metadata.errors import ConfigError, SourceLoc, did_you_mean
from engine.metadata.formula_checks import ENGINE_FIELDS, ENGINE_LINKS, scope_of
from engine.metadata.labels import Label
from engine.metadata.model import Entity, Field
from engine.metadata.report_charts import ReportChart, build_chart
from engine.metadata.report_params import ReportParameter, build_parameters
from engine.metadata.yamlio import PathPart, YamlDoc
from engine.types import FieldType

BUCKETS = ("day", "week", "month", "quarter", "year")
AGGS = ("count", "count_distinct", "sum", "avg", "min", "max")
RESERVED = frozenset({"new", "forecast_history"})
"""Names of pages under /reports/ (the builder, the forecast history) no report may take."""
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
_NUMERIC_AGGS = frozenset({"sum", "avg"})
_ORDERED = frozenset({FType.NUMBER, FType.DATE, FType.DATETIME, FType.TEXT})


@dataclass(frozen=True)
class ReportGroup:
    """One level of grouping: the value of `path` (bucketed, for a date) per row."""

    path: str
    bucket: str | None
    label: Label
    type: FType
    target: str | None
    """What a reference path links to: an entity, or crm_user for owner and user fields."""
    compiled: CompiledFormula = attr(compare=False, repr=False)
    loc: SourceLoc = attr(compare=False, repr=False)
    ends_on: Field | None = attr(default=None, compare=False, repr=False)
    """The field the path ends on (None: an engine column or link such as owner)."""


@dataclass(frozen=True)
class ReportAggregate:
    """`agg` of `path` (count without one counts rows) over the rows meeting `where`."""

    name: str
    agg: str
    path: str | None
    label: Label
    type: FType
    """Of the result: a count is a number; min/max keep the field's type."""
    ends_on: Field | None = attr(default=None, compare=False, repr=False)
    where: str | None = None
    compiled: CompiledFormula | None = attr(default=None, compare=False, repr=False)
    where_compiled: CompiledFormula | None = attr(default=None, compare=False, repr=False)
    loc: SourceLoc = attr(default=SourceLoc("", 0, 0), compare=False, repr=False)
    formula: str | None = None
    """An aggregate of a formula (`formula:` instead of `field:`), computed by the database."""
    computed: str | None = None
    """agg `computed`: a number formula over the other aggregates of the same row (or
    cross-tab column), such as `actual / target * 100` (docs/reports.md)."""
    computed_compiled: CompiledFormula | None = attr(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ReportColumn:
    """A column of a detail report: a field path (`path`) or a formula (`formula`), its value
    per record."""

    name: str
    """Its key in the answer's rows and in `sort`: the path, or the formula's name."""
    label: Label
    type: FType
    compiled: CompiledFormula = attr(compare=False, repr=False)
    path: str | None = None
    formula: str | None = None
    target: str | None = None
    """What a reference path links to (shown by the linked record's name)."""
    ends_on: Field | None = attr(default=None, compare=False, repr=False)
    loc: SourceLoc = attr(default=SourceLoc("", 0, 0), compare=False, repr=False)


@dataclass(frozen=True)
class ReportSource:
    """One entity whose rows a blended report (`sources:`) reads: its groups (in the
    report's group order) and the aggregates it computes (engine/metadata/report_sources.py)."""

    entity: str
    groups: tuple[ReportGroup | None, ...]
    """Per group of the report, in its order; None: this source leaves it blank."""
    aggregates: tuple[ReportAggregate, ...]
    loc: SourceLoc = attr(compare=False, repr=False)
    filter: str | None = None
    filter_compiled: CompiledFormula | None = attr(default=None, compare=False, repr=False)

    @property
    def references(self) -> frozenset[tuple[str, ...]]:
        """Every path of the source's entity it reads."""
        formulas = [self.filter_compiled, *(g.compiled for g in self.groups if g is not None)]
        for a in self.aggregates:
            formulas += [a.compiled, a.where_compiled]
        return frozenset(p for f in formulas if f is not None for p in f.references)


@dataclass(frozen=True)
class ReportSort:
    key: str
    """A group's path or an aggregate's name."""
    descending: bool


@dataclass(frozen=True)
class Report:
    name: str
    label: Label
    entity: str
    groups: tuple[ReportGroup, ...]
    aggregates: tuple[ReportAggregate, ...]
    sort: tuple[ReportSort, ...]
    limit: int
    file: str
    loc: SourceLoc = attr(compare=False, repr=False)
    filter: str | None = None
    filter_compiled: CompiledFormula | None = attr(default=None, compare=False, repr=False)
    description: Label | None = None
    chart: ReportChart | None = None
    """What the page draws above the table (engine/metadata/report_charts.py)."""
    columns: tuple[ReportColumn, ...] = ()
    """A detail report's columns: a row per record (no groups); its aggregates, if any,
    are its totals row."""
    parameters: tuple[ReportParameter, ...] = ()
    """Values the viewer sets (a period, a department, an owner), each with a default."""
    across: ReportGroup | None = None
    """The cross-tab's column field: its values become columns (docs/reports.md)."""
    sources: tuple[ReportSource, ...] = ()
    """A blended report's entities (`sources:`); `entity` is then the first one's."""

    def parameter(self, kind: str) -> ReportParameter | None:
        """The report's first parameter of `kind` (period, department, owner)."""
        return next((p for p in self.parameters if p.kind == kind), None)

    @property
    def references(self) -> frozenset[tuple[str, ...]]:
        """Every path of the entity the report reads (to refuse it to a viewer who may not
        see one of them); a blended report's: those of its first source (each source is
        checked on its own, engine/runtime/reports/blended.py)."""
        if self.sources:
            return self.sources[0].references
        out: set[tuple[str, ...]] = set()
        formulas = [self.filter_compiled, *(g.compiled for g in self.groups),
                    *(p.compiled for p in self.parameters),
                    *(c.compiled for c in self.columns),
                    self.across.compiled if self.across is not None else None]
        for a in self.aggregates:
            formulas += [a.compiled, a.where_compiled]
        for f in formulas:
            if f is not None:
                out |= set(f.references)
        return frozenset(out)


def build_report(doc: YamlDoc, stem: str, entities: list[Entity],
                 errors: list[ConfigError]) -> Report | None:
    """The report of a schema-valid report file, checked against the model's entities."""
    data: dict[str, Any] = doc.data
    before = len(errors)
    if data["report"] in RESERVED:
        errors.append(doc.error(["report"], f"report: {data['report']!r} is the address of "
                                            "a page of its own (/reports/"
                                            f"{data['report']}); name the report otherwise"))
    if data["report"] != stem:
        errors.append(doc.error(["report"], f"report: {data['report']!r} must be the file's "
                                            f"name ({stem!r})"))
    groups: list[ReportGroup] = []
    aggregates: list[ReportAggregate] = []
    sources: tuple[ReportSource, ...] = ()
    filter_compiled = across = None
    if "sources" in data:
        from engine.metadata.report_sources import build_sources  # it builds on _Checker

        if "columns" in data:
            errors.append(doc.error(["columns"], "columns: a report with sources has no "
                                                 "columns (it is not a detail report)"))
        blended = build_sources(doc, entities, errors)
        if blended is None:
            return None
        sources, groups, aggregates = blended
        entity = next(e for e in entities if e.name == sources[0].entity)
        check = _Checker(doc, entity, entities, errors)
    else:
        if "entity" not in data:
            errors.append(doc.error([], "a report needs an `entity` (or `sources`)"))
            return None
        found = doc.entity("entity", entities, errors)
        if found is None:
            return None
        entity = found
        check = _Checker(doc, entity, entities, errors)
        if "filter" in data:
            filter_compiled = check.formula(["filter"], data["filter"], FType.BOOLEAN)
        for i, spec in enumerate(data.get("groups", [])):
            group = check.group(["groups", i], spec)
            if group is not None:
                if any(g.path == group.path for g in groups):
                    errors.append(doc.error(["groups", i], f"groups.{i}: {group.path!r} is "
                                                           "already a group of this report"))
                groups.append(group)
        if "across" in data:
            across = check.group(["across"], data["across"])
            if across is not None and any(g.path == across.path for g in groups):
                check.error(["across"], f"{across.path!r} is already a group of this report")
            if "columns" in data:
                check.error(["across"], "a detail report (columns) has no cross-tab")
    columns: list[ReportColumn] = []
    for i, spec in enumerate(data.get("columns", [])):
        column = check.column(i, spec if isinstance(spec, dict) else {"field": spec})
        if column is not None:
            if any(c.name == column.name for c in columns):
                errors.append(doc.error(["columns", i], f"columns.{i}: {column.name!r} is "
                                                        "already a column of this report"))
            columns.append(column)
    if "columns" in data and "groups" in data:
        errors.append(doc.error(["groups"], "groups: a detail report (columns) has no "
                                            "groups; its aggregates are its totals row"))
    if "columns" not in data and "aggregates" not in data and not sources:
        errors.append(doc.error([], "a report needs aggregates (of groups) or columns "
                                    "(a detail report)"))
    for i, spec in enumerate(data.get("aggregates", [])):
        if any(a.name == spec["name"] for a in aggregates):
            errors.append(doc.error(["aggregates", i, "name"],
                                    f"aggregates.{i}.name: {spec['name']!r} is already an "
                                    "aggregate of this report"))
        if "computed" in spec:
            aggregate = check.computed_aggregate(["aggregates", i], spec, aggregates)
        elif sources:
            check.error(["aggregates", i], "a blended report's aggregates are its sources'; "
                                           "here only `computed` aggregates")
            aggregate = None
        else:
            aggregate = check.aggregate(["aggregates", i], spec)
        if aggregate is not None:
            aggregates.append(aggregate)
    by_column = {c.name: c for c in columns}
    for i, a in enumerate(aggregates):  # a total under its column takes the column's label
        if a.name in by_column and "label" not in data["aggregates"][i]:
            aggregates[i] = replace(a, label=by_column[a.name].label)
        if a.computed is not None and "columns" in data:
            check.error(["aggregates", i], "a detail report's totals are aggregates of its "
                                           "records, not `computed`")
    sort: list[ReportSort] = []
    keys = {g.path for g in groups} | {a.name for a in aggregates}
    if "columns" in data:  # a detail report sorts its rows by its columns
        keys = {c.name for c in columns}
    for i, raw in enumerate(data.get("sort", [])):
        key = raw.lstrip("-")
        if key not in keys:
            what = ("is not a column" if "columns" in data
                    else "is neither a group nor an aggregate")
            errors.append(doc.error(["sort", i], f"sort.{i}: {key!r} {what} of this report"
                                                 f"{did_you_mean(key, keys)}"))
        sort.append(ReportSort(key, raw.startswith("-")))
    if sources and "parameters" in data:
        errors.append(doc.error(["parameters"], "parameters: a report with sources has no "
                                                "parameters (each source has its own fields); "
                                                "narrow the sources' filters"))
    parameters = build_parameters(doc, entity, "department" in check.by_name, check.walk,
                                  errors)
    if len(errors) > before:
        return None
    chart = build_chart(doc, [g.path for g in groups], {a.name: a.type for a in aggregates},
                        errors)
    if len(errors) > before:
        return None
    name = data["report"]
    return Report(name=name, label=Label.of(data.get("label"), name.replace("_", " ").capitalize()),
                  entity=entity.name, groups=tuple(groups), aggregates=tuple(aggregates),
                  sort=tuple(sort), limit=data.get("limit", DEFAULT_LIMIT), file=doc.file,
                  loc=doc.loc(["report"]), filter=data.get("filter"),
                  filter_compiled=filter_compiled,
                  description=Label.of(data["description"], "") if "description" in data
                  else None, chart=chart, parameters=parameters, columns=tuple(columns),
                  across=across, sources=sources)


class _Checker:
    def __init__(self, doc: YamlDoc, entity: Entity, entities: list[Entity],
                 errors: list[ConfigError]) -> None:
        self.doc = doc
        self.entity = entity
        self.by_name = {e.name: e for e in entities}
        self.scope = scope_of(entities, entity.name)
        self.errors = errors

    def error(self, path: list[PathPart], message: str) -> None:
        self.errors.append(self.doc.error(path, f"{'.'.join(map(str, path))}: {message}"))

    def formula(self, path: list[PathPart], source: str,
                expect: FType | None) -> CompiledFormula | None:
        try:
            compiled = compile_formula(source, self.scope, expect)
        except FormulaError as exc:
            self.errors.append(ConfigError(self.doc.loc(path),
                                           f"formula {exc.line}:{exc.col}: {exc.message}"))
            return None
        if compiled.sql_problem is not None:
            self.error(path, "the database cannot compute this "
                             f"({compiled.sql_problem.message}); a report runs in SQL")
            return None
        return compiled

    def walk(self, path: list[PathPart], source: str
             ) -> tuple[CompiledFormula, Field | None, str | None] | None:
        """The compiled path, the field it ends on and what that field links to."""
        entity: Entity | None = self.entity
        last: Field | None = None
        target: str | None = None
        parts = source.split(".")
        for i, part in enumerate(parts):
            if entity is None:  # past a user link: users have no fields here
                self.error(path, f"{part!r}: a user has no fields a report reads")
                return None
            end = i == len(parts) - 1
            if entity.has_field(part):
                last = entity.field(part)
                target = "crm_user" if last.type is FieldType.USER else last.target
            elif part in ENGINE_LINKS:
                last = None
                target = "crm_user" if part == "owner" else (
                    "department" if "department" in self.by_name else None)
            elif part in ENGINE_FIELDS or part == "id":
                last, target = None, None
            else:
                names = set(entity.field_names) | set(ENGINE_LINKS) | set(ENGINE_FIELDS)
                self.error(path, f"no field {part!r} of {entity.name}"
                                 f"{did_you_mean(part, names)}")
                return None
            if not end:
                if target is None:
                    self.error(path, f"{part!r} is not a reference a path can follow")
                    return None
                entity = self.by_name.get(target)
        compiled = self.formula(path, source, None)
        return None if compiled is None else (compiled, last, target)

    def group(self, base: list[PathPart], raw: str | dict[str, Any]) -> ReportGroup | None:
        """The group (or cross-tab column field) `raw` at `base`: a path, or a mapping with
        `field`, `bucket` and `label`."""
        spec = raw if isinstance(raw, dict) else {"field": raw}
        at: list[PathPart] = base if isinstance(raw, str) else [*base, "field"]
        walked = self.walk(at, spec["field"])
        if walked is None:
            return None
        compiled, f, target = walked
        bucket = spec.get("bucket")
        if bucket is not None and compiled.type not in (FType.DATE, FType.DATETIME):
            self.error([*base, "bucket"], f"{spec['field']!r} is not a date or datetime "
                                          "field: it has no buckets")
            return None
        if compiled.type is FType.MULTICHOICE:
            self.error(at, f"{spec['field']!r} is a multichoice field: group on one value")
            return None
        label = Label.of(spec.get("label"), "") if "label" in spec else (
            f.label if f is not None else Label.of(None, spec["field"].replace("_", " ")
                                                   .capitalize()))
        return ReportGroup(path=spec["field"], bucket=bucket, label=label,
                           type=FType.TEXT if bucket else compiled.type, ends_on=f,
                           target=None if bucket else target, compiled=compiled,
                           loc=self.doc.loc(at))

    def computed_aggregate(self, base: list[PathPart], spec: dict[str, Any],
                           before: list[ReportAggregate]) -> ReportAggregate | None:
        """agg `computed`: a number formula over the aggregates listed before it."""
        if "agg" in spec or "field" in spec or "where" in spec or "formula" in spec:
            self.error(base, "a `computed` aggregate has no agg, field, formula or where: it "
                             "computes from the aggregates before it")
            return None
        # Not over another computed aggregate: the statement writes each formula out in
        # full, so a chain of them would grow its SQL past every bound.
        numbers = {a.name: FieldSpec(FType.NUMBER) for a in before
                   if a.type is FType.NUMBER and a.computed is None}
        scope = EntityScope({"report": numbers}, "report")
        try:
            compiled = compile_formula(spec["computed"], scope, FType.NUMBER)
        except FormulaError as exc:
            self.errors.append(ConfigError(self.doc.loc([*base, "computed"]),
                                           f"formula {exc.line}:{exc.col}: {exc.message}"))
            return None
        if compiled.sql_problem is not None:
            self.error([*base, "computed"], "the database cannot compute this "
                                            f"({compiled.sql_problem.message}); a report "
                                            "runs in SQL")
            return None
        label = Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize())
        return ReportAggregate(name=spec["name"], agg="computed", path=None, label=label,
                               type=FType.NUMBER, loc=self.doc.loc(base),
                               computed=spec["computed"], computed_compiled=compiled)

    def aggregate(self, base: list[PathPart], spec: dict[str, Any]) -> ReportAggregate | None:
        if "agg" not in spec:
            self.error(base, "an aggregate needs `agg` (or `computed`)")
            return None
        agg = spec["agg"]
        compiled = f = None
        kind = FType.NUMBER
        if "field" in spec and "formula" in spec:
            self.error([*base, "formula"], "an aggregate reads a field or a formula, not both")
            return None
        if "field" in spec:
            walked = self.walk([*base, "field"], spec["field"])
            if walked is None:
                return None
            compiled, f, _target = walked
            if agg in _NUMERIC_AGGS and compiled.type is not FType.NUMBER:
                self.error([*base, "field"], f"{agg} needs a number field; "
                                             f"{spec['field']!r} is {compiled.type.value}")
                return None
            if agg in ("min", "max"):
                if compiled.type not in _ORDERED:
                    self.error([*base, "field"], f"{agg} needs a number, date or text field")
                    return None
                kind = compiled.type
        elif "formula" in spec:
            compiled = self.formula([*base, "formula"], spec["formula"], None)
            if compiled is None:
                return None
            if agg in _NUMERIC_AGGS and compiled.type is not FType.NUMBER:
                self.error([*base, "formula"], f"{agg} needs a number; the formula gives "
                                               f"{compiled.type.value}")
                return None
            if agg in ("min", "max"):
                if compiled.type not in _ORDERED:
                    self.error([*base, "formula"], f"{agg} needs a number, date or text")
                    return None
                kind = compiled.type
        elif agg != "count":
            self.error([*base, "agg"], f"{agg} needs a field or a formula")
            return None
        where = None
        if "where" in spec:
            where = self.formula([*base, "where"], spec["where"], FType.BOOLEAN)
            if where is None:
                return None
        if "label" in spec:
            label = Label.of(spec["label"], spec["name"])
        elif f is not None and agg not in ("count", "count_distinct"):
            label = f.label
        else:
            label = Label.of(None, spec["name"].replace("_", " ").capitalize())
        return ReportAggregate(name=spec["name"], agg=agg, path=spec.get("field"), label=label,
                               formula=spec.get("formula"),
                               type=kind, ends_on=f, where=spec.get("where"), compiled=compiled,
                               where_compiled=where, loc=self.doc.loc(base))

    def column(self, i: int, spec: dict[str, Any]) -> ReportColumn | None:
        """A detail report's column: a field path, or a named formula."""
        raw = self.doc.data["columns"][i]
        at: list[PathPart] = ["columns", i]
        if "formula" in spec:
            if "name" not in spec:
                self.error(at, "a formula column needs a name")
                return None
            compiled = self.formula([*at, "formula"], spec["formula"], None)
            if compiled is None:
                return None
            if compiled.type is FType.MULTICHOICE:
                self.error([*at, "formula"], "a multichoice value cannot be a column")
                return None
            return ReportColumn(name=spec["name"], formula=spec["formula"],
                                label=Label.of(spec.get("label"), spec["name"].replace(
                                    "_", " ").capitalize()),
                                type=compiled.type, compiled=compiled, loc=self.doc.loc(at))
        if "field" not in spec:
            self.error(at, "a column is a field path or {name, formula}")
            return None
        if not isinstance(raw, str):
            at = [*at, "field"]
        walked = self.walk(at, spec["field"])
        if walked is None:
            return None
        compiled, f, target = walked
        label = Label.of(spec.get("label"), "") if "label" in spec else (
            f.label if f is not None else Label.of(None, spec["field"].replace("_", " ")
                                                   .capitalize()))
        return ReportColumn(name=spec.get("name", spec["field"]), path=spec["field"],
                            label=label, type=compiled.type, compiled=compiled,
                            target=target, ends_on=f, loc=self.doc.loc(at))
