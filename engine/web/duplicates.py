"""Duplicates in the JSON API (docs/api.md "Duplicates"): the 409 a create gets when the
new record matches others (engine/runtime/imports/guard.py), `?allow_duplicate=1` to create
it anyway, and `GET /api/<entity>/duplicates?<field>=<value>…` for a client to ask first;
with their OpenAPI description (engine/web/openapi.py adds it per entity)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.messages import msg
from engine.metadata.model import Entity
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.imports.duplicates import Candidate, find_duplicates, usable_rules
from engine.runtime.records import Records

ALLOW_DUPLICATE = "allow_duplicate"

DUPLICATE_SCHEMAS: dict[str, Any] = {
    "DuplicateCandidate": {
        "type": "object", "required": ["id", "title", "matched"], "properties": {
            "id": {"type": "integer"}, "title": {"type": "string"},
            "matched": {"type": "array", "items": {"type": "string"},
                        "description": "the fields of the rule that matched"}}},
    "Duplicates": {
        "type": "object", "required": ["items"], "properties": {
            "items": {"type": "array",
                      "items": {"$ref": "#/components/schemas/DuplicateCandidate"}}}},
}

ALLOW_PARAMETER: dict[str, Any] = {
    "name": ALLOW_DUPLICATE, "in": "query", "required": False, "schema": {"type": "boolean"},
    "description": "create the record even when it matches others by the entity's duplicate "
                   "rules (else 409 with code `duplicate` and the `candidates`)"}


def rule_fields(records: Records, actor: Actor | None, entity: Entity,
                hidden: frozenset[str] = frozenset()) -> list[str]:
    """The fields of the rules usable by `actor` (None: by a caller who sees every field
    but `hidden`), in the entity's field order."""
    if actor is not None:
        rules = usable_rules(records, actor, entity)
    else:
        rules = tuple(r for r in entity.duplicates if not hidden.intersection(r.match))
    names = {n for r in rules for n in r.match}
    return [f.name for f in entity.fields if f.name in names]


def lookup(records: Records, actor: Actor, entity: str,
           params: Mapping[str, str]) -> list[Candidate]:
    """GET /api/<entity>/duplicates: the candidates for the values in `params`."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    allowed = set(rule_fields(records, actor, c.entity))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(msg("%(key)s is not a field of a duplicate rule of %(entity)s; send "
                             "%(allowed)s", key=unknown[0], entity=entity,
                             allowed=", ".join(sorted(allowed)) or "-"),
                         {k: msg("not a field of a duplicate rule") for k in unknown})
    if not params:
        raise BadRequest(msg("send the values to compare: %(allowed)s",
                             allowed=", ".join(sorted(allowed)) or "-"))
    with records.reading() as conn:
        return find_duplicates(conn, records, actor, entity, params)


def duplicate_paths(e: Entity, actions: frozenset[str], hidden: frozenset[str],
                    errors: dict[str, Any]) -> dict[str, Any]:
    """`/api/<entity>/duplicates` for a caller who may read `e`, when it has rules whose
    fields they see; `errors`: the error responses to describe."""
    names = [f.name for f in e.fields
             if f.name in {n for r in e.duplicates if not hidden.intersection(r.match)
                           for n in r.match}]
    if "read" not in actions or not names:
        return {}
    return {f"/api/{e.name}/duplicates": {"get": {
        "tags": [e.name], "operationId": f"duplicates_{e.name}",
        "summary": f"Records a new {e.label.get()} would duplicate",
        "description": "the live records you may read that match the values by any of the "
                       "entity's duplicate rules (docs/configuration.md)",
        "parameters": [{"name": n, "in": "query", "required": False,
                        "schema": {"type": "string"}} for n in names],
        "responses": {"200": {"description": "The candidates", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Duplicates"}}}},
            **errors}}}}
