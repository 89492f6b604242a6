"""Check an entity's duplicate rules (`duplicates:`) and build them.

    duplicates:
      - match: [name, city]     # same name and same city
      - match: [phone]          # or the same phone number

Each rule names stored fields of the entity whose values can be compared: not a computed
field (it has no column to match on), not a rollup (the engine's summary), and not a file,
multichoice or regarding field (no single value to compare). How values are compared is
the runtime's (engine/runtime/imports/duplicates.py, docs/configuration.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from engine.metadata.errors import ConfigError, did_you_mean
from engine.metadata.model import DuplicateRule, Field
from engine.metadata.yamlio import YamlDoc
from engine.types import FieldType

# Field types with no single value two records could share.
UNMATCHABLE = frozenset({FieldType.FILE, FieldType.MULTICHOICE, FieldType.REGARDING})


def build_duplicates(doc: YamlDoc, data: Any, fields: Sequence[Field], declared: Iterable[str],
                     errors: list[ConfigError]) -> tuple[DuplicateRule, ...]:
    """The rules of `data` (the schema-valid `duplicates` list) over `fields` (the entity's
    fields built without error; `declared`: every field key of the file); each problem is
    appended to `errors` at its place in the file."""
    if not isinstance(data, list):
        return ()
    by_name = {f.name: f for f in fields}
    broken = set(declared) - set(by_name)  # already reported where they are declared
    rules: list[DuplicateRule] = []
    seen: dict[frozenset[str], int] = {}
    for i, spec in enumerate(data):
        match = tuple(spec["match"])
        ok = True
        for j, name in enumerate(match):
            if name in broken:
                ok = False
                continue
            problem = _problem(name, by_name)
            if problem:
                errors.append(doc.error(["duplicates", i, "match", j],
                                        f"duplicates: {problem}"))
                ok = False
        key = frozenset(match)
        if ok and key in seen:
            errors.append(doc.error(["duplicates", i, "match"],
                                    f"duplicates: the same fields as rule {seen[key] + 1}"))
            ok = False
        if ok:
            seen[key] = i
            rules.append(DuplicateRule(match, doc.loc(["duplicates", i, "match"])))
    return tuple(rules)


def _problem(name: str, fields: dict[str, Field]) -> str | None:
    f = fields.get(name)
    if f is None:
        return f"no field {name!r}{did_you_mean(name, set(fields))}"
    if f.computed:
        return f"{name!r} is computed (it has a formula) and cannot be matched"
    if f.rollup is not None:
        return f"{name!r} is a rollup and cannot be matched"
    if f.type in UNMATCHABLE:
        return f"{name!r} is a {f.type} field, which has no single value to match"
    return None
