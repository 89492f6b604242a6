"""A form's line-item grid (`lines:` in config/forms/<entity>.yaml), checked against the
child entity.

```yaml
form: quote
lines: quote_line          # or, in full:
lines:
  entity: quote_line
  via: quote               # the child's required reference to this entity (found when one)
  columns: [product, quantity, price, discount, line_total]
  order: position          # an integer field of the child: rows keep their order in it
  min_rows: 1
  max_rows: 200
```
"""

from __future__ import annotations

from typing import Any

from engine.metadata.errors import ConfigError, did_you_mean
from engine.metadata.labels import Label
from engine.metadata.model import Entity, LineGrid
from engine.metadata.yamlio import PathPart, YamlDoc
from engine.types import FieldType

MAX_LINES = 500
"""The most lines one save may carry (and a grid's `max_rows` at most)."""
DEFAULT_LINE_COLUMNS = 6
_NOT_IN_GRIDS = (FieldType.TEXTAREA, FieldType.MULTICHOICE)


def line_grid(doc: YamlDoc, entity: Entity, by_name: dict[str, Entity], spec: Any,
              errors: list[ConfigError]) -> LineGrid | None:
    """The grid of a schema-valid `lines:` value, or None (with errors) when it does not
    fit the child entity."""
    short = isinstance(spec, str)
    spec = {"entity": spec} if short else spec
    at: list[PathPart] = ["lines"] if short else ["lines", "entity"]
    before = len(errors)
    child = by_name.get(spec["entity"])
    if child is None:
        hint = did_you_mean(spec["entity"], set(by_name))
        errors.append(doc.error(at, f"unknown entity {spec['entity']!r}{hint}"))
        return None
    if child.name == entity.name:
        errors.append(doc.error(at, f"{entity.name} cannot be its own line item"))
        return None
    via = _via(doc, entity, child, spec, at, errors)
    if via is None:
        return None
    order = spec.get("order")
    if order is not None:
        _check_order(doc, child, order, errors)
    columns = default_line_columns(child, via, order)
    if "columns" in spec:
        columns = tuple(spec["columns"])
        seen: set[str] = set()
        for j, name in enumerate(columns):
            where: list[PathPart] = ["lines", "columns", j]
            if not child.has_field(name):
                hint = did_you_mean(name, child.field_names)
                errors.append(doc.error(where, f"no field {name!r} of {child.name}{hint}"))
            elif name == via:
                errors.append(doc.error(where, f"{name!r} links each line to its "
                                               f"{entity.name}; it is not a column"))
            elif name == order:
                errors.append(doc.error(where, f"{name!r} is the lines' order (their "
                                               "position in the grid); it is not a column"))
            elif name in seen:
                errors.append(doc.error(where, f"column {name!r} is already in the grid"))
            seen.add(name)
    min_rows, max_rows = spec.get("min_rows", 0), spec.get("max_rows")
    if max_rows is not None and min_rows > max_rows:
        errors.append(doc.error(["lines", "min_rows"],
                                f"min_rows {min_rows} is more than max_rows {max_rows}"))
    if len(errors) > before:
        return None
    label = Label.of(spec["label"], "") if "label" in spec else child.plural
    return LineGrid(child.name, via, label, columns, order, min_rows, max_rows)


def default_line_columns(child: Entity, via: str, order: str | None) -> tuple[str, ...]:
    names = [f.name for f in child.fields
             if f.name not in (via, order) and f.type not in _NOT_IN_GRIDS]
    return tuple(names[:DEFAULT_LINE_COLUMNS])


def _via(doc: YamlDoc, entity: Entity, child: Entity, spec: dict[str, Any],
         at: list[PathPart], errors: list[ConfigError]) -> str | None:
    links = [f.name for f in child.stored_fields
             if f.type is FieldType.REFERENCE and f.to == entity.name]
    via = spec.get("via")
    if via is None and len(links) != 1:
        problem = (f"{child.name} has no reference field to {entity.name}" if not links else
                   f"{child.name} points to {entity.name} by {', '.join(links)}; say which "
                   "with 'via'")
        errors.append(doc.error(at, problem))
        return None
    if via is not None and via not in links:
        errors.append(doc.error(["lines", "via"], f"{child.name}.{via} is not a reference "
                                f"field to {entity.name}{did_you_mean(via, links)}"))
        return None
    via = via or links[0]
    if not child.field(via).required:
        errors.append(doc.error(["lines", "via"] if "via" in spec else at,
                                f"{child.name}.{via} must be required: a line cannot stand "
                                f"without its {entity.name}"))
        return None
    return str(via)


def _check_order(doc: YamlDoc, child: Entity, order: str, errors: list[ConfigError]) -> None:
    where: list[PathPart] = ["lines", "order"]
    if not child.has_field(order):
        hint = did_you_mean(order, child.field_names)
        errors.append(doc.error(where, f"no field {order!r} of {child.name}{hint}"))
        return
    f = child.field(order)
    if f.type is not FieldType.INTEGER or f.derived:
        errors.append(doc.error(where, f"the order field must be a stored integer field; "
                                       f"{child.name}.{order} is "
                                       f"{'computed' if f.derived else f.type.value}"))
