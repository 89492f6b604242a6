"""The OpenAPI description of integration writes: `POST /api/<entity>/bulk`
(engine/web/bulk_api.py) and reference values given as `{"external_id": "ERP-1"}`
(engine/runtime/imports/keys.py). engine/web/openapi.py calls these per entity."""

from __future__ import annotations

from typing import Any

from engine.metadata.model import Entity, Model
from engine.runtime.imports.upsert import MAX_ITEMS
from engine.types import FieldType

EXTERNAL_REF = "ExternalRef"

SCHEMAS: dict[str, Any] = {
    EXTERNAL_REF: {
        "type": "object", "additionalProperties": False, "required": ["external_id"],
        "properties": {"external_id": {"type": "string", "minLength": 1}},
        "description": "the target record named by its external id (its `external_id: "
                       "true` field), instead of its id"},
    "BulkResult": {"type": "object", "required": ["items"], "properties": {"items": {
        "type": "array", "items": {
            "type": "object", "required": ["index", "id", "version", "action"],
            "properties": {"index": {"type": "integer", "minimum": 0},
                           "id": {"type": "integer"}, "version": {"type": "integer"},
                           "action": {"enum": ["created", "updated"]}}}}}},
}


def add_external_refs(model: Model, e: Entity, schemas: dict[str, Any], name: str) -> None:
    """Let the write schemas of `e` (`{name}Create`, `{name}Patch`) take a reference to an
    entity with an external id as `{"external_id": ...}` too."""
    for suffix in ("Create", "Patch"):
        props = schemas[f"{name}{suffix}"]["properties"]
        for f in e.fields:
            if f.name in props and f.type in (FieldType.REFERENCE, FieldType.DEPARTMENT) \
                    and _has_external_id(model, f.target):
                ref = {"$ref": f"#/components/schemas/{EXTERNAL_REF}"}
                prop = props[f.name]
                props[f.name] = ({"anyOf": [*prop["anyOf"], ref]} if "anyOf" in prop
                                 else {"anyOf": [prop, ref]})


def bulk_schemas(e: Entity, hidden: frozenset[str], schemas: dict[str, Any],
                 name: str) -> dict[str, Any]:
    """`{name}Bulk`, the request body, and `{name}BulkItem`, one item: the writable fields
    (as `{name}Patch` has them), with `id` and `version` to update a record by its id."""
    patch = schemas[f"{name}Patch"]["properties"]
    keys = [f.name for f in e.fields
            if (f.external_id or f.unique) and not f.derived and f.name not in hidden]
    key: dict[str, Any] = {"type": "string", "description": "the field to upsert by: an "
                           "item whose value a record holds updates it, else is created"}
    if keys:
        key["enum"] = keys
    return {
        f"{name}BulkItem": {
            "type": "object", "additionalProperties": False,
            "properties": {"id": {"type": "integer", "minimum": 1,
                                  "description": "update this record (with `version`)"},
                           **patch},
            "description": "a record's values: created, or with `id` and `version` (or "
                           "the request's `key`) an update; `version` is checked (409)"},
        f"{name}Bulk": {
            "type": "object", "additionalProperties": False, "required": ["items"],
            "properties": {
                "items": {"type": "array", "maxItems": MAX_ITEMS,
                          "items": {"$ref": f"#/components/schemas/{name}BulkItem"}},
                "key": key}},
    }


def bulk_paths(e: Entity, actions: frozenset[str] | set[str], name: str) -> dict[str, Any]:
    """The bulk route of `e`, when the caller may create or update its records."""
    if "create" not in actions and "update" not in actions:
        return {}
    return {f"/api/{e.name}/bulk": {"post": {
        "tags": [e.name], "operationId": f"bulk_{e.name}",
        "summary": f"Create, update or upsert up to {MAX_ITEMS:,} {e.plural.get()}, "
                   "all or nothing",
        "parameters": [{"name": "allow_duplicate", "in": "query", "required": False,
                        "schema": {"type": "boolean"},
                        "description": "create items the entity's duplicate rules match "
                                       "(refused by default, with their candidates)"}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{name}Bulk"}}}},
        "responses": {
            "200": {"description": "Every item written, by its index", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BulkResult"}}}},
            **{str(code): {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
               for code, text in ((400, "Bad request"), (401, "No or invalid token"),
                                  (403, "Forbidden"), (404, "Not found"),
                                  (409, "A stale version: each item's problem under "
                                        "error.items; nothing written"),
                                  (413, f"More than {MAX_ITEMS:,} items, or the body is "
                                        "too large"),
                                  (415, "Body is not JSON"),
                                  (422, "Items refused: each item's problem under "
                                        "error.items; nothing written"))}}}}}


def _has_external_id(model: Model, target: str | None) -> bool:
    return target is not None and model.has_entity(target) and any(
        f.external_id for f in model.entity(target).fields)
