"""Roles (config/roles.yaml): per entity, a scope for each action; per field, hidden or readonly.

>>> role = Role("rep", Label.of(None, "Rep"), grants=(("opportunity", (("read", Scope.OWN),)),))
>>> role.scope("opportunity", "read"), role.scope("opportunity", "delete")
(<Scope.OWN: 'own'>, <Scope.NONE: 'none'>)

Scopes nest (own ⊂ department ⊂ department_tree ⊂ all), so a user holding several roles
gets, for each action, the widest scope any of them grants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from engine.metadata.errors import ConfigError, SourceLoc, did_you_mean
from engine.metadata.labels import Label
from engine.metadata.yamlio import YamlDoc
from engine.types import NAME_RE

if TYPE_CHECKING:
    from engine.metadata.model import Entity

ACTIONS = ("create", "read", "update", "delete", "export", "assign")
ANY_ENTITY = "*"


class Scope(StrEnum):
    NONE = "none"
    OWN = "own"
    DEPARTMENT = "department"
    DEPARTMENT_TREE = "department_tree"
    ALL = "all"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {s: i for i, s in enumerate(Scope)}


class FieldRule(StrEnum):
    HIDDEN = "hidden"
    READONLY = "readonly"


Grant = tuple[tuple[str, Scope], ...]


@dataclass(frozen=True)
class Role:
    name: str
    label: Label
    admin: bool = False
    grants: tuple[tuple[str, Grant], ...] = ()
    """Per entity name (or "*" for every entity not named), the scope of each action."""
    field_rules: tuple[tuple[str, tuple[tuple[str, FieldRule], ...]], ...] = ()
    description: Label | None = None
    loc: SourceLoc | None = field(default=None, compare=False)

    def scope(self, entity: str, action: str) -> Scope:
        """The scope this role grants for `action` on `entity` (an admin role: all)."""
        if self.admin:
            return Scope.ALL
        grants = dict(self.grants)
        # A named entity's map is the whole rule for it; "*" only speaks for the others.
        actions = dict(grants.get(entity, grants.get(ANY_ENTITY, ())))
        return actions.get(action, Scope.NONE)

    def field_rule(self, entity: str, name: str) -> FieldRule | None:
        if self.admin:
            return None
        return dict(dict(self.field_rules).get(entity, ())).get(name)


@dataclass(frozen=True)
class Roles:
    roles: tuple[Role, ...] = ()
    source: str | None = None
    """The file they came from; None when config has no roles.yaml (only `admin` exists)."""

    def get(self, name: str) -> Role | None:
        return next((r for r in self.roles if r.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.roles)


BUILT_IN_ADMIN = Role("admin", Label.of({"en": "Administrator", "zh": "管理员"}, "admin"),
                      admin=True)
DEFAULT_ROLES = Roles((BUILT_IN_ADMIN,))


def build_roles(doc: YamlDoc, entities: list[Entity], errors: list[ConfigError]) -> Roles:
    """Roles from a schema-valid roles.yaml; names of entities, fields and roles are checked."""
    by_name = {e.name: e for e in entities}
    built: list[Role] = []
    for name, spec in doc.data["roles"].items():
        spec = spec or {}
        if not _is_name(name):
            errors.append(doc.error(["roles", name], f"role name {name!r} must match "
                                    "^[a-z][a-z0-9_]{0,62}$", key=True))
            continue
        grants: list[tuple[str, Grant]] = []
        for ename, grant in (spec.get("entities") or {}).items():
            if ename != ANY_ENTITY and ename not in by_name:
                hint = did_you_mean(ename, set(by_name))
                errors.append(doc.error(["roles", name, "entities", ename],
                                        f"roles.{name}.entities: unknown entity {ename!r}{hint}",
                                        key=True))
                continue
            grants.append((ename, _grant(grant)))
        rules: list[tuple[str, tuple[tuple[str, FieldRule], ...]]] = []
        for ename, fields in (spec.get("fields") or {}).items():
            entity = by_name.get(ename)
            if entity is None:
                hint = did_you_mean(ename, set(by_name))
                errors.append(doc.error(["roles", name, "fields", ename],
                                        f"roles.{name}.fields: unknown entity {ename!r}{hint}",
                                        key=True))
                continue
            kept: list[tuple[str, FieldRule]] = []
            for fname, rule in (fields or {}).items():
                if not entity.has_field(fname):
                    hint = did_you_mean(fname, set(entity.field_names))
                    errors.append(doc.error(
                        ["roles", name, "fields", ename, fname],
                        f"roles.{name}.fields.{ename}: unknown field {fname!r}{hint}", key=True))
                    continue
                kept.append((fname, FieldRule(rule)))
            rules.append((ename, tuple(kept)))
        built.append(Role(
            name=name,
            label=Label.of(spec.get("label"), name.replace("_", " ").capitalize()),
            admin=bool(spec.get("admin", False)),
            grants=tuple(grants),
            field_rules=tuple(rules),
            description=Label.of(spec["description"], "") if "description" in spec else None,
            loc=doc.loc(["roles", name], key=True),
        ))
    return Roles(tuple(built), doc.file)


def _grant(value: Any) -> Grant:
    if isinstance(value, str):  # one scope for every action
        return tuple((a, Scope(value)) for a in ACTIONS)
    return tuple((a, Scope(s)) for a, s in value.items())


def _is_name(name: str) -> bool:
    return bool(NAME_RE.match(name))
