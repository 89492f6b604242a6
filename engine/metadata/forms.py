"""config/forms/<entity>.yaml: list columns, form sections, related lists, field conditions.

```yaml
form: opportunity
list: [name, account, stage, amount, weighted, close_date, owner]
sections:
  - label: {en: Deal, zh: 商机}
    columns: 2
    fields: [name, account, stage, amount, probability, weighted]
  - label: {en: Outcome, zh: 结果}
    fields:
      - {field: lost_reason, hidden: 'AND(stage <> "lost", ISBLANK(lost_reason))'}
      - {field: primary_contact, picker_filter: 'account = $record.account'}
related:
  - {entity: activity, columns: [subject, kind, due_at, status]}
```

An entity without a form file gets a default layout: every field in one section, the title
and a few more fields as list columns, and every entity that points to it as a related list.

`picker:` names the fields shown beside a record's title in the pickers that choose it (by
default the first two list columns after the title). A reference field's `picker_filter` is
a condition on the records its picker offers first; `$record.x` is the value of field x in
the form being filled.
"""

from __future__ import annotations

from typing import Any

from engine.fieldtypes import FIELD_TYPES
from engine.formula import (
    CompiledFormula,
    EntityScope,
    FieldSpec,
    FormulaError,
    FType,
    compile_formula,
)
from engine.messages import msg
from engine.metadata.errors import ConfigError, did_you_mean
from engine.metadata.formula_checks import scope_of
from engine.metadata.labels import Label
from engine.metadata.lines import line_grid
from engine.metadata.model import Entity, Field, Form, FormField, RelatedList, Section
from engine.metadata.yamlio import PathPart, YamlDoc
from engine.types import FieldType

# Engine columns a list may show besides the entity's fields.
LIST_ENGINE_COLUMNS = ("owner", "department", "created_at", "updated_at")
DEFAULT_LIST_SIZE = 6
DEFAULT_RELATED_COLUMNS = 4
DEFAULT_PICKER_SIZE = 2
RECORD_PARAM = "$record"
"""In a picker_filter, the record of the form being filled."""
_NOT_IN_LISTS = (FieldType.TEXTAREA, FieldType.MULTICHOICE)


def build_form(doc: YamlDoc, entities: list[Entity], errors: list[ConfigError]) -> Form | None:
    """The form of a schema-valid forms file, checked against its entity."""
    data = doc.data
    entity = doc.entity("form", entities, errors)
    if entity is None:
        return None
    by_name = {e.name: e for e in entities}
    before = len(errors)
    default = default_form(entity, entities)
    columns = default.list_columns
    if "list" in data:
        columns = tuple(data["list"])
        for i, name in enumerate(columns):
            _check_column(doc, ["list", i], entity, name, errors)
    sections = default.sections
    if "sections" in data:
        sections = tuple(_section(doc, entity, entities, i, spec, errors)
                         for i, spec in enumerate(data["sections"]))
        seen: set[str] = set()
        for i, section in enumerate(sections):
            for j, f in enumerate(section.fields):
                if f.name in seen:
                    errors.append(doc.error(["sections", i, "fields", j],
                                            f"field {f.name!r} is already on this form"))
                seen.add(f.name)
    picker = default_picker(entity, columns)
    if "picker" in data:
        picker = tuple(data["picker"])
        for i, name in enumerate(picker):
            if not entity.has_field(name):
                hint = did_you_mean(name, entity.field_names)
                errors.append(doc.error(["picker", i], f"no field {name!r} of {entity.name}"
                                                       f"{hint}"))
    related = default.related
    if "related" in data:
        related = tuple(r for r in (_related(doc, entity, by_name, i, spec, errors)
                                    for i, spec in enumerate(data["related"])) if r)
    lines = line_grid(doc, entity, by_name, data["lines"], errors) if "lines" in data \
        else None
    if len(errors) > before:
        return None
    return Form(entity.name, columns, sections, related, doc.file, picker, lines)


def default_form(entity: Entity, entities: list[Entity]) -> Form:
    listed = [entity.title] if entity.has_field(entity.title) else []
    listed += [f.name for f in entity.fields
               if f.name != entity.title and f.type not in _NOT_IN_LISTS]
    related = tuple(
        RelatedList(e.name, f.name, e.plural, _default_columns(e, f.name))
        for e in entities for f in e.stored_fields
        if f.type is FieldType.REFERENCE and f.to == entity.name and e.name != entity.name)
    section = Section(None, tuple(FormField(f.name) for f in entity.fields), 2)
    columns = tuple(listed[:DEFAULT_LIST_SIZE])
    return Form(entity.name, columns, (section,), related, picker=default_picker(entity, columns))


def default_picker(entity: Entity, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The first list columns after the title that are fields of the entity."""
    names = [n for n in columns if n != entity.title and entity.has_field(n)]
    return tuple(names[:DEFAULT_PICKER_SIZE])


def _default_columns(e: Entity, via: str) -> tuple[str, ...]:
    names = [e.title] if e.has_field(e.title) else []
    names += [f.name for f in e.fields
              if f.name not in (e.title, via) and f.type not in _NOT_IN_LISTS]
    return tuple(names[:DEFAULT_RELATED_COLUMNS])


def _check_column(doc: YamlDoc, path: list[PathPart], entity: Entity, name: str,
                  errors: list[ConfigError]) -> None:
    if not entity.has_field(name) and name not in LIST_ENGINE_COLUMNS:
        hint = did_you_mean(name, [*entity.field_names, *LIST_ENGINE_COLUMNS])
        errors.append(doc.error(path, f"no field {name!r} of {entity.name}{hint}"))


def _section(doc: YamlDoc, entity: Entity, entities: list[Entity], i: int,
             spec: dict[str, Any], errors: list[ConfigError]) -> Section:
    fields: list[FormField] = []
    for j, item in enumerate(spec["fields"]):
        where: list[PathPart] = ["sections", i, "fields", j]
        item = {"field": item} if isinstance(item, str) else item
        name = item["field"]
        if not entity.has_field(name):
            hint = did_you_mean(name, entity.field_names)
            errors.append(doc.error(where, f"no field {name!r} of {entity.name}{hint}"))
            continue
        compiled = {key: _condition(doc, [*where, key], entity, entities, item[key], errors)
                    for key in ("hidden", "readonly") if key in item}
        narrowing = None
        if "picker_filter" in item:
            narrowing = _picker_filter(doc, [*where, "picker_filter"], entity, entities,
                                       entity.field(name), item["picker_filter"], errors)
        fields.append(FormField(name, item.get("hidden"), item.get("readonly"),
                                compiled.get("hidden"), compiled.get("readonly"),
                                item.get("picker_filter"), narrowing))
    label = Label.of(spec["label"], "") if "label" in spec else None
    return Section(label, tuple(fields), int(spec.get("columns", 2)))


def _condition(doc: YamlDoc, where: list[PathPart], entity: Entity, entities: list[Entity],
               source: str, errors: list[ConfigError]) -> Any:
    try:
        return compile_formula(source, scope_of(entities, entity.name), FType.BOOLEAN)
    except FormulaError as exc:
        errors.append(doc.error(where, f"formula {exc.line}:{exc.col}: {exc.message}"))
        return None


def _picker_filter(doc: YamlDoc, where: list[PathPart], entity: Entity,
                   entities: list[Entity], f: Field, source: str,
                   errors: list[ConfigError]) -> CompiledFormula | None:
    """A reference field's picker_filter: a condition on the target entity that the database
    can run, reading the form's record only as `$record` or `$record.<field>`."""
    target = f.target if f.type is not FieldType.USER else None
    if target is None or not any(e.name == target for e in entities):
        errors.append(doc.error(where, f"picker_filter fits only a reference field; "
                                       f"{f.name!r} is {f.type}"))
        return None
    try:
        compiled = compile_formula(source, picker_scope(entities, target, entity.name),
                                   FType.BOOLEAN)
        for path, line, col in compiled.reference_sites():
            if RECORD_PARAM in path[1:] or (path[0] == RECORD_PARAM and len(path) > 2):
                raise FormulaError(msg("%(param)s is read as %(param)s or %(param)s.<field of "
                                       "%(entity)s> only", param=RECORD_PARAM,
                                       entity=entity.name), line, col)
        if compiled.sql_problem is not None:
            raise compiled.sql_problem
    except FormulaError as exc:
        errors.append(doc.error(where, f"formula {exc.line}:{exc.col}: {exc.message}"))
        return None
    return compiled


def picker_scope(entities: list[Entity], target: str, form_entity: str) -> EntityScope:
    """The scope of a picker_filter: the fields of `target`, and `$record`, the record of
    the form (of `form_entity`) being filled."""
    base = scope_of(entities, target)
    specs = {name: dict(fields) for name, fields in base.entities.items()}
    specs[target][RECORD_PARAM] = FieldSpec(FType.REFERENCE, target=form_entity)
    return EntityScope(specs, target)


def _related(doc: YamlDoc, entity: Entity, by_name: dict[str, Entity], i: int,
             spec: dict[str, Any], errors: list[ConfigError]) -> RelatedList | None:
    child = by_name.get(spec["entity"])
    if child is None:
        hint = did_you_mean(spec["entity"], set(by_name))
        errors.append(doc.error(["related", i, "entity"],
                                f"unknown entity {spec['entity']!r}{hint}"))
        return None
    links = [f.name for f in child.stored_fields
             if f.type is FieldType.REFERENCE and f.to == entity.name]
    via = spec.get("via")
    if via is None and len(links) != 1:
        problem = (f"{child.name} has no reference field to {entity.name}" if not links else
                   f"{child.name} points to {entity.name} by {', '.join(links)}; say which "
                   "with 'via'")
        errors.append(doc.error(["related", i], problem))
        return None
    if via is not None and via not in links:
        errors.append(doc.error(["related", i, "via"], f"{child.name}.{via} is not a "
                                f"reference field to {entity.name}"
                                f"{did_you_mean(via, links)}"))
        return None
    via = via or links[0]
    columns = _default_columns(child, via)
    if "columns" in spec:
        columns = tuple(spec["columns"])
        for j, name in enumerate(columns):
            _check_column(doc, ["related", i, "columns", j], child, name, errors)
    label = Label.of(spec["label"], "") if "label" in spec else child.plural
    sort = spec.get("sort", "-id")
    name = sort.removeprefix("-")
    if name != "id":
        f = child.field(name) if child.has_field(name) else None
        if f is None or f.computed or not FIELD_TYPES[f.type].sortable:
            problem = (f"{child.name}.{name} is computed or cannot be sorted" if f is not None
                       else f"no field {name!r} of {child.name}"
                       f"{did_you_mean(name, set(child.field_names))}")
            errors.append(doc.error(["related", i, "sort"], problem))
            return None
    return RelatedList(child.name, via, label, columns, sort)
