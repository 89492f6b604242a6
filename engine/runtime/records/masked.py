"""Hidden fields as the actor sees them: fields that do not exist.

A field hidden from an actor (roles.yaml `fields:`, and computed fields reading one) must
answer exactly like a field the entity does not have, wherever a request may name it: list
conditions, sorts, `?filter=` formulas and writes. Answering otherwise — a 404 where an
unknown field gets a 400, a type error that an unknown field cannot get, a "did you mean"
naming it — tells the caller that it exists, and of what type.

So the actor's formulas are checked against a scope without their hidden fields (the
checker then says "unknown field" and suggests only fields they may see), and list
parameters are parsed with the hidden fields left out of the entity:

>>> # a marketing user's `?filter=amount > 0`:
>>> # 400 {"filter": "1:1: unknown field 'amount'; did you mean 'account'?"}
"""

from __future__ import annotations

from collections.abc import Mapping
from threading import Lock

from engine.formula import EntityScope, FieldSpec
from engine.metadata.formula_checks import scope_of
from engine.metadata.model import Model
from engine.runtime.access import AccessPolicy, Actor


class VisibleScopes:
    """The formula scope of each entity as an actor may read it, built once per set of
    roles (the hidden fields depend on the roles alone)."""

    def __init__(self, model: Model, policy: AccessPolicy) -> None:
        self.model = model
        self.policy = policy
        self._full: dict[str, EntityScope] = {}
        self._masked: dict[tuple[tuple[str, ...], str], EntityScope] = {}
        self._lock = Lock()

    def scope(self, actor: Actor | None, entity: str) -> EntityScope:
        """The fields a formula the actor writes on `entity` may read (every field for
        the engine, or when no actor is given)."""
        if actor is None or self.policy.is_admin(actor):
            return self._full_scope(entity)
        key = (tuple(sorted(actor.roles)), entity)
        found = self._masked.get(key)
        if found is None:
            hidden = {e.name: self.policy.hidden_fields(actor, e) for e in self.model.entities}
            base = self._full_scope(entity)
            specs: dict[str, Mapping[str, FieldSpec]] = {
                name: {f: spec for f, spec in fields.items() if f not in hidden.get(name, ())}
                for name, fields in base.entities.items()}
            found = EntityScope(specs, entity)
            with self._lock:
                self._masked[key] = found
        return found

    def _full_scope(self, entity: str) -> EntityScope:
        found = self._full.get(entity)
        if found is None:
            found = scope_of(self.model.entities, entity)
            with self._lock:
                self._full[entity] = found
        return found
