"""config/org.yaml: the department tree to seed a new database with.

```yaml
departments:
  - name: Headquarters
    code: HQ
    kind: headquarters
    children:
      - {name: East region, code: EAST, kind: region}
```
"""

from __future__ import annotations

from typing import Any

from engine.metadata.errors import ConfigError, did_you_mean
from engine.metadata.model import Entity, OrgUnit
from engine.metadata.yamlio import PathPart, YamlDoc
from engine.types import FieldType


def load_org(doc: YamlDoc, entities: list[Entity], errors: list[ConfigError]
             ) -> tuple[OrgUnit, ...]:
    """The units of a schema-valid org.yaml, checked against the `department` entity."""
    department = next((e for e in entities if e.name == "department"), None)
    if department is None:
        errors.append(doc.error(["departments"], "org.yaml needs a 'department' entity "
                                "(config/entities/department.yaml)"))
        return ()
    kinds: tuple[str, ...] | None = None
    if department.has_field("kind") and department.field("kind").type is FieldType.CHOICE:
        kinds = department.field("kind").options
    seen_codes: dict[str, str] = {}

    def build(items: list[dict[str, Any]], path: tuple[PathPart, ...]) -> tuple[OrgUnit, ...]:
        units: list[OrgUnit] = []
        names: set[str] = set()
        for i, item in enumerate(items):
            where = (*path, i)
            name = item["name"]
            if name in names:
                errors.append(doc.error([*where, "name"],
                                        f"department {name!r} appears twice under one parent"))
            names.add(name)
            code = item.get("code")
            if code is not None:
                if code in seen_codes:
                    errors.append(doc.error([*where, "code"], f"code {code!r} is already used "
                                            f"by {seen_codes[code]!r}"))
                seen_codes[code] = name
            kind = item.get("kind")
            if kind is not None and kinds is not None and kind not in kinds:
                errors.append(doc.error([*where, "kind"], f"unknown kind {kind!r}; one of "
                                        f"{', '.join(kinds)}{did_you_mean(kind, kinds)}"))
            children = build(item.get("children", []), (*where, "children"))
            units.append(OrgUnit(name=name, code=code, kind=kind, children=children,
                                 loc=doc.loc(list(where))))
        return tuple(units)

    return build(doc.data["departments"], ("departments",))
