"""A blended report's `sources:` — several entities' rows side by side on shared groups
(docs/reports.md, "Blended sources"), such as sales targets against contracted actuals:

```yaml
sources:
  - entity: sales_target
    filter: 'YEAR(period_start) = YEAR(TODAY())'
    groups: {department: target_department, salesperson: salesperson}
    aggregates:
      target: {agg: sum, field: target_value, where: 'metric = "amount"'}
  - entity: contract_line
    groups: {department: contract.department, salesperson: contract.owner}
    aggregates:
      actual: {agg: sum, field: line_total}
groups: [department, salesperson]        # the shared group names, outermost first
aggregates:                              # only `computed` ones over the sources' aggregates
  - {name: attainment, computed: 'ROUND(actual / target * 100, 1)'}
```

Each source's groups and aggregates are checked against its own entity like a one-entity
report's; a group every source names must give the same kind of value in each (a user, a
department, a product line, text); a source may leave a group out (its rows count under a
blank value there). The report runs as one statement: the sources' rows combined by
UNION ALL before the one grouping (engine/runtime/reports/blended.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engine.formula import FType
from engine.metadata.errors import ConfigError, did_you_mean
from engine.metadata.labels import Label
from engine.metadata.yamlio import PathPart, YamlDoc

if TYPE_CHECKING:
    from engine.metadata.model import Entity
    from engine.metadata.reports import ReportAggregate, ReportGroup, ReportSource

MAX_SOURCES = 4


def build_sources(doc: YamlDoc, entities: list[Entity], errors: list[ConfigError]
                  ) -> tuple[tuple[ReportSource, ...], list[ReportGroup],
                             list[ReportAggregate]] | None:
    """The sources of a schema-valid report file with `sources:`, the report's shared groups
    and the sources' aggregates in order; None (and `errors`) when one is wrong."""
    from engine.metadata.reports import ReportSource, _Checker

    data: dict[str, Any] = doc.data
    before = len(errors)
    for key in ("entity", "filter", "across"):
        if key in data:
            errors.append(doc.error([key], f"{key}: a report with sources reads each source's "
                                           "entity and filter (and has no cross-tab); move "
                                           "it into the sources"))
    by_name = {e.name: e for e in entities}
    sources: list[ReportSource] = []
    seen_groups: list[dict[str, ReportGroup]] = []
    aggregates: list[ReportAggregate] = []
    owned: list[list[ReportAggregate]] = []
    for i, spec in enumerate(data["sources"]):
        base: list[PathPart] = ["sources", i]
        entity = by_name.get(spec["entity"])
        if entity is None:
            errors.append(doc.error([*base, "entity"], f"sources.{i}.entity: unknown entity "
                                    f"{spec['entity']!r}"
                                    f"{did_you_mean(spec['entity'], list(by_name))}"))
            continue
        check = _Checker(doc, entity, entities, errors)
        filter_compiled = None
        if "filter" in spec:
            filter_compiled = check.formula([*base, "filter"], spec["filter"], FType.BOOLEAN)
        groups: dict[str, ReportGroup] = {}
        own: list[ReportAggregate] = []
        for name, raw in spec.get("groups", {}).items():
            group = check.group([*base, "groups", name], raw)
            if group is not None:
                groups[name] = group
        for name, raw in spec["aggregates"].items():
            at: list[PathPart] = [*base, "aggregates", name]
            if any(a.name == name for a in aggregates):
                errors.append(doc.error(at, f"sources.{i}.aggregates.{name}: {name!r} is "
                                            "already an aggregate of this report", key=True))
                continue
            aggregate = check.aggregate(at, {**raw, "name": name})
            if aggregate is not None:
                aggregates.append(aggregate)
                own.append(aggregate)
        owned.append(own)
        seen_groups.append(groups)
        sources.append(ReportSource(entity=entity.name, groups=(), aggregates=(),
                                    loc=doc.loc(base), filter=spec.get("filter"),
                                    filter_compiled=filter_compiled))
    if len(errors) > before:
        return None
    shared = _shared_groups(doc, seen_groups, errors)
    if shared is None:
        return None
    names = [name for name, _label in shared]
    for i, groups in enumerate(seen_groups):
        for name in groups:
            if name not in names:
                errors.append(doc.error(["sources", i, "groups", name],
                                        f"sources.{i}.groups.{name}: {name!r} is not one of "
                                        f"the report's groups{did_you_mean(name, names)}",
                                        key=True))
    report_groups = [_one_group(doc, name, label, seen_groups, errors)
                     for name, label in shared]
    if len(errors) > before:
        return None
    out = []
    for source, groups, own in zip(sources, seen_groups, owned, strict=True):
        out.append(ReportSource(entity=source.entity,
                                groups=tuple(groups.get(n) for n in names),
                                aggregates=tuple(own), loc=source.loc, filter=source.filter,
                                filter_compiled=source.filter_compiled))
    return tuple(out), [g for g in report_groups if g is not None], aggregates


def _shared_groups(doc: YamlDoc, seen: list[dict[str, ReportGroup]],
                   errors: list[ConfigError]) -> list[tuple[str, Label | None]] | None:
    """The report's group names with their labels: `groups:` (names, or {field: name,
    label}); by default the first source's, in its order."""
    data: dict[str, Any] = doc.data
    if "groups" not in data:
        return [(name, None) for name in seen[0]]
    out: list[tuple[str, Label | None]] = []
    for i, raw in enumerate(data["groups"]):
        spec = raw if isinstance(raw, dict) else {"field": raw}
        name = spec["field"]
        if "bucket" in spec:
            errors.append(doc.error(["groups", i, "bucket"], f"groups.{i}.bucket: a blended "
                                    "report's buckets are its sources' (in their groups)"))
        if not any(name in groups for groups in seen):
            known = sorted({n for groups in seen for n in groups})
            errors.append(doc.error(["groups", i], f"groups.{i}: no source has a group "
                                                   f"{name!r}{did_you_mean(name, known)}"))
        if any(n == name for n, _ in out):
            errors.append(doc.error(["groups", i], f"groups.{i}: {name!r} is already a "
                                                   "group of this report"))
        out.append((name, Label.of(spec["label"], name) if "label" in spec else None))
    return out


def _one_group(doc: YamlDoc, name: str, label: Label | None,
               seen: list[dict[str, ReportGroup]], errors: list[ConfigError]
               ) -> ReportGroup | None:
    """The report's group `name`: as its first source gives it, the same kind of value in
    every other source."""
    given = [(i, groups[name]) for i, groups in enumerate(seen) if name in groups]
    if not given:
        return None
    first = given[0][1]
    for i, g in given[1:]:
        if (g.type, g.target, g.bucket) != (first.type, first.target, first.bucket):
            errors.append(doc.error(["sources", i, "groups", name],
                                    f"sources.{i}.groups.{name}: {g.path!r} "
                                    f"({_kind(g)}) does not match {first.path!r} "
                                    f"({_kind(first)}) of the first source with it"))
    return replace(first, path=name, label=label if label is not None else first.label)


def _kind(g: ReportGroup) -> str:
    if g.bucket is not None:
        return f"a {g.bucket}"
    return f"a link to {g.target}" if g.target is not None else g.type.value
