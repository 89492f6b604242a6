"""The report builder's draft: what its form holds, the fields it offers, and the YAML
definition (the shape of a config/reports file, docs/reports.md) it stands for.

The form is plain fields — `entity`, `label`, `name`, `filter`, `group_<i>` and
`bucket_<i>` (up to 4 groups), `agg_<i>` and `agg_field_<i>` (up to MAX_AGGREGATES),
`sort` and `desc`, `limit`, `shared` — so every state of the page is one POST body, read
back by `draft_of`. The fields offered are those of the entity the viewer may read, the
engine links (owner, department, created and updated times) and, one reference deep, the
fields of the records it links to that the viewer may read; a hidden field is never
offered, and the compiler refuses one anyway (engine/runtime/reports/compiler.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.formula import FormulaError, FType, compile_formula
from engine.metadata import Model
from engine.metadata.formula_checks import scope_of
from engine.metadata.labels import Label
from engine.metadata.model import Entity
from engine.metadata.report_text import report_yaml as to_yaml
from engine.metadata.reports import AGGS, BUCKETS, MAX_LIMIT
from engine.metadata.roles import Scope
from engine.runtime.access import AccessPolicy, Actor
from engine.types import FieldType

BUILT_CHARTS = ("bar", "stacked_bar", "line", "pie", "funnel")
"""The chart types the builder makes (a Gantt chart needs dates it does not ask for)."""
_SERIES_CHARTS = frozenset({"stacked_bar", "line"})
MAX_GROUPS = 4
"""As the report schema allows (groups: maxItems 4)."""
MAX_AGGREGATES = 10
MAX_FILTER = 2000
MAX_LABEL = 200
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SKIPPED = frozenset({FieldType.FILE})
_ORDERED = frozenset({FType.NUMBER, FType.DATE, FType.DATETIME, FType.TEXT})
_AGG_WORDS: dict[str, tuple[str, str]] = {
    "count": ("Count of %s", "%s计数"),
    "count_distinct": ("Distinct %s", "%s去重计数"),
    "sum": ("Sum of %s", "%s合计"),
    "avg": ("Average %s", "%s平均值"),
    "min": ("Lowest %s", "%s最小值"),
    "max": ("Highest %s", "%s最大值"),
}
_COUNT_LABEL = {"en": "Records", "zh": "记录数"}


@dataclass(frozen=True)
class PathOption:
    """A field path the builder offers: `owner`, `stage`, `account.industry`."""

    path: str
    label: Label
    type: FType

    @property
    def dated(self) -> bool:
        return self.type in (FType.DATE, FType.DATETIME)

    def fits(self, agg: str) -> bool:
        """Whether `agg` may aggregate this path."""
        if agg in ("sum", "avg"):
            return self.type is FType.NUMBER
        if agg in ("min", "max"):
            return self.type in _ORDERED
        return True


@dataclass
class Draft:
    entity: str
    label: str = ""
    name: str = ""
    filter: str = ""
    groups: list[tuple[str, str]] = field(default_factory=list)
    """(path, bucket or "")"""
    aggregates: list[tuple[str, str]] = field(default_factory=lambda: [("count", "")])
    """(agg, path or "")"""
    sort: str = ""
    desc: bool = False
    limit: str = ""
    shared: bool = False
    chart: str = ""
    """A chart type of BUILT_CHARTS, or "" for none."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys of an edited definition the builder does not show (description, where ...),
    kept as they were."""

    def names(self) -> list[str]:
        """The aggregates' names, made from what they compute: count, sum_amount."""
        out: list[str] = []
        for agg, path in self.aggregates:
            base = agg if not path else f"{agg}_{path.replace('.', '_')}"
            base = base[:60]
            name, n = base, 2
            while name in out:
                name, n = f"{base}_{n}", n + 1
            out.append(name)
        return out

    def sort_keys(self) -> list[str]:
        return [p for p, _ in self.groups] + self.names()


def readable_entities(model: Model, policy: AccessPolicy, actor: Actor) -> list[Entity]:
    return [e for e in model.entities if policy.scope(actor, e.name, "read") is not Scope.NONE]


def path_options(model: Model, policy: AccessPolicy, actor: Actor,
                 entity: Entity) -> list[PathOption]:
    """The paths of `entity` the builder offers `actor`: what they may read, what the
    database can compute."""
    return [o for o in _all_paths(model, entity)
            if not policy.reads_hidden(actor, entity, tuple(o.path.split(".")))
            and (len(o.path.split(".")) == 1 or _readable_target(model, policy, actor, entity,
                                                                  o.path))]


def _readable_target(model: Model, policy: AccessPolicy, actor: Actor, entity: Entity,
                     path: str) -> bool:
    first = path.split(".")[0]
    target = entity.field(first).target if entity.has_field(first) else "department"
    return target is not None and model.has_entity(target) and \
        policy.scope(actor, target, "read") is not Scope.NONE


def _all_paths(model: Model, entity: Entity) -> list[PathOption]:
    """Every path of `entity` a report can group or aggregate on (cached per model)."""
    key = ("report_builder_paths", entity.name)
    found = model.derived.get(key)
    if found is None:
        found = model.derived[key] = _compute_paths(model, entity)
    paths: list[PathOption] = found
    return paths


def _compute_paths(model: Model, entity: Entity) -> list[PathOption]:
    scope = scope_of(model.entities, entity.name)
    out: list[PathOption] = []

    def add(path: str, label: Label) -> None:
        try:
            compiled = compile_formula(path, scope, None)
        except FormulaError:
            return
        if compiled.sql_problem is None and compiled.type is not FType.MULTICHOICE:
            out.append(PathOption(path, label, compiled.type))

    engine_labels = {"owner": Label.of({"en": "Owner", "zh": "负责人"}, "Owner"),
                     "department": Label.of({"en": "Department", "zh": "部门"}, "Department"),
                     "created_at": Label.of({"en": "Created", "zh": "创建时间"}, "Created"),
                     "updated_at": Label.of({"en": "Updated", "zh": "更新时间"}, "Updated")}
    for f in entity.fields:
        if f.type not in _SKIPPED:
            add(f.name, f.label)
    for name, label in engine_labels.items():
        if not entity.has_field(name) and (name != "department"
                                            or model.has_entity("department")):
            add(name, label)
    for f in entity.fields:
        target = f.target
        if f.type is FieldType.USER or target is None or not model.has_entity(target):
            continue
        for g in model.entity(target).fields:
            if g.type not in _SKIPPED and g.type is not FieldType.REFERENCE:
                add(f"{f.name}.{g.name}", _joined(f.label, g.label))
    return out


def _joined(a: Label, b: Label) -> Label:
    return Label.of({lang: f"{a.get(lang)}: {b.get(lang)}" for lang in ("en", "zh")}, "")


# -- the form ---------------------------------------------------------------------------


def draft_of(form: Mapping[str, str], default_entity: str) -> Draft:
    """The draft a builder form holds (blank rows dropped; everything checked later by the
    report validator, so nothing here trusts the form)."""
    entity = form.get("entity", "")[:63] or default_entity
    draft = Draft(entity=entity, label=_one_line(form.get("label", ""))[:MAX_LABEL],
                  name=form.get("name", "").strip()[:63],
                  filter=form.get("filter", "").replace("\r\n", "\n")[:MAX_FILTER],
                  sort=form.get("sort", "")[:130], desc=form.get("desc", "") == "1",
                  limit=form.get("limit", "").strip()[:6], shared=form.get("shared") == "1",
                  chart=form.get("chart", "") if form.get("chart", "") in BUILT_CHARTS else "")
    if form.get("was_entity", entity) != entity:  # another entity: its fields are others
        draft.filter = ""
        return draft
    draft.groups = [(form.get(f"group_{i}", "")[:130], form.get(f"bucket_{i}", "")[:10])
                    for i in range(MAX_GROUPS) if form.get(f"group_{i}", "")]
    draft.aggregates = [(form.get(f"agg_{i}", ""), form.get(f"agg_field_{i}", "")[:130])
                        for i in range(MAX_AGGREGATES) if form.get(f"agg_{i}", "")]
    if draft.sort not in draft.sort_keys():
        draft.sort = ""
    return draft


def fitted(draft: Draft, options: list[PathOption]) -> Draft:
    """The draft with what the chosen fields rule out dropped: a bucket of a field that is
    not a date, a field an aggregate cannot take (the form re-drawn after a change)."""
    by_path = {o.path: o for o in options}
    draft.groups = [(p, b if p in by_path and by_path[p].dated and b in BUCKETS else "")
                    for p, b in draft.groups]
    fits = {a: [o.path for o in options if o.fits(a)] for a in AGGS}
    aggregates = []
    for agg, path in draft.aggregates:
        if agg not in AGGS:
            continue
        if path not in fits[agg]:  # the first field it fits, as the form shows it
            path = "" if agg == "count" or not fits[agg] else fits[agg][0]
        aggregates.append((agg, path))
    draft.aggregates = aggregates or [("count", "")]
    if draft.sort not in draft.sort_keys():
        draft.sort = ""
    return draft


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- the definition ---------------------------------------------------------------------


def definition(draft: Draft, options: list[PathOption], language: str) -> dict[str, Any]:
    """The report file's mapping for the draft (docs/reports.md)."""
    by_path = {o.path: o for o in options}
    name = draft.name if _NAME.match(draft.name) else f"my_{draft.entity}_report"[:63]
    out: dict[str, Any] = {"report": name}
    out["label"] = draft.label or name.replace("_", " ").capitalize()
    for key in ("description",):
        if key in draft.extra:
            out[key] = draft.extra[key]
    out["entity"] = draft.entity
    if draft.filter.strip():
        out["filter"] = draft.filter.strip()
    if draft.groups:
        out["groups"] = [{"field": p, "bucket": b} if b else p for p, b in draft.groups]
    old = {a.get("name"): a for a in draft.extra.get("aggregates", [])
           if isinstance(a, dict)}
    aggregates = []
    for (agg, path), agg_name in zip(draft.aggregates, draft.names(), strict=True):
        spec: dict[str, Any] = {"name": agg_name, "agg": agg}
        if path:
            spec["field"] = path
        before = old.get(agg_name)
        if before is not None and before.get("agg") == agg and before.get("field", "") == path:
            spec.update({k: v for k, v in before.items() if k in ("where", "label")})
        else:
            spec["label"] = _agg_label(agg, by_path.get(path))
        aggregates.append(spec)
    out["aggregates"] = aggregates
    if draft.sort:
        out["sort"] = [("-" if draft.desc else "") + draft.sort]
    if draft.limit:
        out["limit"] = int(draft.limit) if draft.limit.isdigit() else draft.limit
    chart = _chart(draft, aggregates, by_path)
    if chart is not None:
        out["chart"] = chart
    for key, value in draft.extra.items():
        if key not in out and key not in _MANAGED:
            out[key] = value
    return out


_MANAGED = frozenset({"report", "label", "entity", "filter", "groups", "aggregates", "sort",
                      "limit", "description", "chart"})


def _chart(draft: Draft, aggregates: list[dict[str, Any]],
           by_path: dict[str, PathOption]) -> dict[str, Any] | None:
    """The chart of the draft's type: its first group across, its second as the series
    (stacked bar, line), the aggregates giving numbers as the values (one with a series,
    a pie or a funnel). A chart the report cannot have is named by the validator."""
    if not draft.chart:
        return None
    if not draft.groups:
        return {"type": draft.chart, "x": "", "y": []}  # the validator says what is missing
    numbers = [a["name"] for a in aggregates
               if a["agg"] in ("count", "count_distinct", "sum", "avg")
               or (a.get("field") in by_path and by_path[a["field"]].type is FType.NUMBER)]
    chart: dict[str, Any] = {"type": draft.chart, "x": draft.groups[0][0]}
    series = draft.chart in _SERIES_CHARTS and len(draft.groups) > 1
    if series:
        chart["series"] = draft.groups[1][0]
    one = series or draft.chart in ("pie", "funnel")
    chart["y"] = numbers[:1] if one else numbers
    return chart


def _agg_label(agg: str, option: PathOption | None) -> dict[str, str]:
    if option is None:
        return dict(_COUNT_LABEL)
    en, zh = _AGG_WORDS[agg]
    return {"en": en % option.label.get("en"), "zh": zh % option.label.get("zh")}


def draft_from(data: Mapping[str, Any], shared: bool) -> Draft:
    """The draft of a saved definition (to edit it); what the builder does not show is kept
    in `extra`."""
    label = data.get("label", "")
    if isinstance(label, Mapping):
        label = next(iter(label.values()), "")
    groups = []
    for g in data.get("groups", []):
        spec = g if isinstance(g, Mapping) else {"field": g}
        groups.append((str(spec.get("field", "")), str(spec.get("bucket", ""))))
    aggregates = [(str(a.get("agg", "")), str(a.get("field", "")))
                  for a in data.get("aggregates", []) if isinstance(a, Mapping)]
    sort = ""
    desc = False
    if data.get("sort"):
        first = str(data["sort"][0])
        sort, desc = first.lstrip("-"), first.startswith("-")
    extra = {k: v for k, v in data.items() if k not in _MANAGED or k in ("description",
                                                                         "aggregates")}
    chart = data.get("chart")
    chart_type = str(chart.get("type", "")) if isinstance(chart, Mapping) else ""
    if chart is not None and chart_type not in BUILT_CHARTS:
        extra["chart"] = chart  # one the builder does not make (a Gantt chart): kept
    return Draft(entity=str(data.get("entity", "")), label=str(label),
                 name=str(data.get("report", "")), filter=str(data.get("filter", "")),
                 groups=groups[:MAX_GROUPS], aggregates=aggregates[:MAX_AGGREGATES] or
                 [("count", "")], sort=sort, desc=desc,
                 limit=str(data["limit"]) if "limit" in data else "", shared=shared,
                 chart=chart_type if chart_type in BUILT_CHARTS else "", extra=extra)


__all__ = ["MAX_AGGREGATES", "MAX_GROUPS", "MAX_LIMIT", "Draft", "PathOption", "definition",
           "draft_from", "draft_of", "fitted", "path_options", "readable_entities",
           "to_yaml"]
