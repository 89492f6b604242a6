"""The access policy: one place that turns roles into SQL predicates and field masks.

Every records query and write passes through it. For an action on an entity a user gets
the widest scope any of their roles grants; the scope becomes a WHERE condition:

- own: the owner is me, or I am on the record's team (for update: with edit access; delete
  and assign need the ownership itself),
- department: own, or the record belongs to my department,
- department_tree: own, or it belongs to my department or one under it,
- all: no condition; none: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, Table, false, or_, select

from engine.messages import N_, msg
from engine.metadata.formula_checks import engine_link
from engine.metadata.model import Entity, Field, Model
from engine.metadata.roles import FieldRule, Role, Scope
from engine.runtime.access.actor import Actor
from engine.runtime.errors import Forbidden
from engine.runtime.schema.tables import TEAM_TABLE, Schema
from engine.runtime.sqlin import in_rows

ACTION_WORDS = {"create": N_("create"), "read": N_("read"), "update": N_("update"),
                "delete": N_("delete"), "export": N_("export"), "assign": N_("assign")}
"""Each action of roles.yaml as words in a message ("you may not %(action)s …")."""

BRANCHES_CACHE_SIZE = 1024

# Which team access counts as "own" for an action; None: the team does not count.
_TEAM_ACCESS: dict[str, tuple[str, ...] | None] = {
    "read": ("read", "edit"), "export": ("read", "edit"), "update": ("edit",),
    "create": None, "delete": None, "assign": None,
}


@dataclass(frozen=True)
class FieldMask:
    """Fields an actor may not see (never leave the server) or may not write."""

    hidden: frozenset[str] = frozenset()
    readonly: frozenset[str] = frozenset()


class AccessPolicy:
    def __init__(self, model: Model, schema: Schema) -> None:
        self.model = model
        self.schema = schema
        self.team = schema.table(TEAM_TABLE)
        self.departments: Table | None = (schema.table("department")
                                          if model.has_entity("department") else None)
        self._masks: dict[tuple[tuple[str, ...], str], FieldMask] = {}
        self._hidden: dict[tuple[str, ...], dict[str, set[str]]] = {}
        # read_branches per (actor, entity, table): SQL elements are immutable, and all
        # they hold of the actor (id, department, roles) is in the key; team membership is
        # read by the query itself.
        self._branches: dict[tuple[Actor, str, FromClause],
                             list[ColumnElement[bool]] | None] = {}

    # -- roles -----------------------------------------------------------------------------

    def roles_of(self, actor: Actor) -> list[Role]:
        """The actor's roles that config defines (an unknown role name grants nothing)."""
        found = (self.model.roles.get(name) for name in actor.roles)
        return [r for r in found if r is not None]

    def is_admin(self, actor: Actor) -> bool:
        return actor.is_system or any(r.admin for r in self.roles_of(actor))

    def scope(self, actor: Actor, entity: str, action: str) -> Scope:
        """The widest scope the actor's roles grant for `action` on `entity`."""
        if actor.is_system:
            return Scope.ALL
        return max((r.scope(entity, action) for r in self.roles_of(actor)),
                   key=lambda s: s.rank, default=Scope.NONE)

    def deciding_roles(self, actor: Actor, entity: str, action: str) -> list[Role]:
        """The roles that grant the actor's scope for `action` (for explanations)."""
        best = self.scope(actor, entity, action)
        return [r for r in self.roles_of(actor) if r.scope(entity, action) is best]

    def require(self, actor: Actor, entity: Entity, action: str) -> Scope:
        """The actor's scope; Forbidden when it is none."""
        scope = self.scope(actor, entity.name, action)
        if scope is Scope.NONE:
            raise Forbidden(msg("you may not %(action)s %(entities)s",
                                action=msg(ACTION_WORDS.get(action, action)),
                                entities=entity.plural))
        return scope

    # -- rows --------------------------------------------------------------------------------

    def row_filter(self, actor: Actor, entity: Entity, table: FromClause,
                   action: str = "read") -> ColumnElement[bool] | None:
        """The rows of `table` the actor may `action`, as a condition; None for all rows."""
        return self.scope_filter(self.scope(actor, entity.name, action), actor, entity,
                                 table, action)

    def read_filter(self, actor: Actor, entity: Entity,
                    table: FromClause) -> ColumnElement[bool] | None:
        return self.row_filter(actor, entity, table, "read")

    def read_branches(self, actor: Actor, entity: Entity,
                      table: FromClause) -> list[ColumnElement[bool]] | None:
        """The rows of `table` the actor may read as alternatives, `read_filter` being their
        OR; None for all rows. A list reads each apart and merges them
        (engine/runtime/records/query.py `page_statement`). Two for the own scope: the
        actor's records (an index (owner_id, field) holds them in a list's order) and those
        of their teams (few, read by id). A department scope is one condition: its
        department's rows are the bulk, found by walking the list's order, and the OR costs
        that walk little more (the own records usually belong to the department too)."""
        key = (actor, entity.name, table)
        if key in self._branches:
            return self._branches[key]
        scope = self.scope(actor, entity.name, "read")
        apart = scope is Scope.OWN or actor.department_id is None
        branches = self.scope_branches(scope, actor, entity, table, "read", apart=apart)
        if branches is not None and len(branches) > 2:
            branches = [or_(*branches)]
        if len(self._branches) >= BRANCHES_CACHE_SIZE:
            self._branches.clear()
        self._branches[key] = branches
        return branches

    def scope_filter(self, scope: Scope, actor: Actor, entity: Entity, table: FromClause,
                     action: str = "read") -> ColumnElement[bool] | None:
        """The rows of `table` inside `scope` for the actor, as a condition."""
        branches = self.scope_branches(scope, actor, entity, table, action)
        return None if branches is None else or_(*branches)

    def scope_branches(self, scope: Scope, actor: Actor, entity: Entity, table: FromClause,
                       action: str = "read", *,
                       apart: bool = False) -> list[ColumnElement[bool]] | None:
        """The rows of `table` inside `scope` for the actor, as conditions any of which lets
        a row in (never empty; the owner's condition first); None for all rows. `apart`:
        each condition is to be read alone, not in an OR (the team's records as
        engine/runtime/sqlin.py `in_rows`, which PostgreSQL finds faster by id there)."""
        if scope is Scope.ALL:
            return None
        if scope is Scope.NONE or actor.user_id is None:
            return [false()]
        own: list[ColumnElement[bool]] = [table.c.owner_id == actor.user_id]
        access = _TEAM_ACCESS.get(action)
        if access is not None:
            team = self.team_records(actor.user_id, entity.name, access)
            own.append(in_rows(table.c.id, team) if apart else table.c.id.in_(team))
        if scope is Scope.OWN or actor.department_id is None:
            return own
        if scope is Scope.DEPARTMENT or self.departments is None:
            return [*own, table.c.department_id == actor.department_id]
        return [*own, table.c.department_id.in_(self.subtree(actor.department_id))]

    def team_records(self, user_id: int, entity: str, access: tuple[str, ...]) -> Select[Any]:
        t = self.team
        return select(t.c.record_id).where(t.c.user_id == user_id, t.c.entity == entity,
                                           t.c.access.in_(access))

    def subtree(self, department_id: int) -> Select[Any]:
        """Ids of the department and every one under it (UNION, not UNION ALL: a cycle of
        parents, should one ever be written, ends instead of recursing forever). The CTE is
        anonymous: one statement may hold several (a filter path through a reference)."""
        d = self.departments
        assert d is not None
        tree = select(d.c.id).where(d.c.id == department_id).cte(recursive=True)
        tree = tree.union(select(d.c.id).where(d.c.parent == tree.c.id))
        return select(tree.c.id)

    # -- fields ------------------------------------------------------------------------------

    def mask(self, actor: Actor, entity: Entity) -> FieldMask:
        if actor.is_system:
            return FieldMask()
        key = (tuple(sorted(actor.roles)), entity.name)
        if key not in self._masks:
            self._masks[key] = self._build_mask(actor, entity)
        return self._masks[key]

    def hidden_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        return self.mask(actor, entity).hidden

    def reads_hidden(self, actor: Actor, entity: Entity, path: tuple[str, ...]) -> bool:
        """Whether following `path` from `entity` touches a field hidden from the actor."""
        if actor.is_system:
            return False
        return _reads_hidden(self.model, entity, path, self._hidden_map(actor))

    def _hidden_map(self, actor: Actor) -> dict[str, set[str]]:
        key = tuple(sorted(actor.roles))
        if key not in self._hidden:
            roles = self.roles_of(actor)
            hidden = {e.name: _ruled(roles, e.name, ("read",), (FieldRule.HIDDEN,))
                      for e in self.model.entities}
            _spread_to_formulas(self.model, hidden)
            self._hidden[key] = hidden
        return self._hidden[key]

    def _build_mask(self, actor: Actor, entity: Entity) -> FieldMask:
        roles = self.roles_of(actor)
        hidden = self._hidden_map(actor)
        readonly = _ruled(roles, entity.name, ("create", "update"),
                          (FieldRule.READONLY, FieldRule.HIDDEN))
        mine = frozenset(hidden[entity.name])
        return FieldMask(mine, frozenset(readonly) - mine)


def _ruled(roles: list[Role], entity: str, actions: tuple[str, ...],
           rules: tuple[FieldRule, ...]) -> set[str]:
    """Fields that every role granting one of `actions` on `entity` rules as one of `rules`
    (a role that grants nothing there does not get a say)."""
    voters = [r for r in roles if any(r.scope(entity, a) is not Scope.NONE for a in actions)]
    if not voters:
        voters = roles
    if not voters:
        return set()
    names = {name for name, _ in dict(voters[0].field_rules).get(entity, ())}
    return {n for n in names if all(r.field_rule(entity, n) in rules for r in voters)}


def _spread_to_formulas(model: Model, hidden: dict[str, set[str]]) -> None:
    """A computed field that reads a hidden field, here or through a reference, is hidden
    too: its value would give the hidden one away; so is a rollup whose child field or
    `where` reads one (a sum of hidden amounts). Repeats until nothing changes."""
    changed = True
    while changed:
        changed = False
        for e in model.entities:
            for f in e.fields:
                if f.name not in hidden[e.name] and any(
                        _reads_hidden(model, source, path, hidden)
                        for source, path in _read_paths(model, e, f)):
                    hidden[e.name].add(f.name)
                    changed = True


def _read_paths(model: Model, entity: Entity, f: Field
                ) -> list[tuple[Entity, tuple[str, ...]]]:
    """What a derived field's value is made from: (entity, path) pairs."""
    if f.computed and f.compiled is not None:
        return [(entity, path) for path in f.compiled.references]
    rollup = f.rollup
    if rollup is None or not model.has_entity(rollup.child):
        return []
    child = model.entity(rollup.child)
    paths: list[tuple[str, ...]] = [(rollup.of,)] if rollup.of else []
    if rollup.where_compiled is not None:
        paths += list(rollup.where_compiled.references)
    return [(child, path) for path in paths]


def _reads_hidden(model: Model, entity: Entity, path: tuple[str, ...],
                  hidden: dict[str, set[str]]) -> bool:
    current: Entity | None = entity
    for name in path:
        if current is None:
            return False
        if name in hidden[current.name]:
            return True
        if current.has_field(name):
            target = current.field(name).target
        else:
            link = engine_link(model.entities, name)
            target = link[1] if link is not None else None
        current = model.entity(target) if target and model.has_entity(target) else None
    return False
