"""OpenAPI 3.1 description generated from the Model: one schema and five routes per entity."""

from __future__ import annotations

from typing import Any

from engine.metadata.model import Entity, Field, Model
from engine.runtime.records.query import MAX_PAGE_SIZE, OPERATORS
from engine.types import DECIMAL_SHAPES, FieldType

_DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"


def field_schema(f: Field) -> dict[str, Any]:
    t = f.type
    s: dict[str, Any]
    if t in (FieldType.TEXT, FieldType.TEXTAREA, FieldType.PHONE):
        s = {"type": "string"}
    elif t is FieldType.EMAIL:
        s = {"type": "string", "format": "email"}
    elif t is FieldType.URL:
        s = {"type": "string", "format": "uri"}
    elif t is FieldType.INTEGER:
        s = {"type": "integer"}
    elif t in (FieldType.DECIMAL, FieldType.MONEY, FieldType.PERCENT):
        _, scale = DECIMAL_SHAPES[t]
        s = {"type": "string", "pattern": _DECIMAL_PATTERN, "format": "decimal",
             "description": f"exact decimal with {scale} places; numbers are accepted on input"}
    elif t is FieldType.BOOLEAN:
        s = {"type": "boolean"}
    elif t is FieldType.DATE:
        s = {"type": "string", "format": "date"}
    elif t is FieldType.DATETIME:
        s = {"type": "string", "format": "date-time"}
    elif t is FieldType.CHOICE:
        s = {"type": "string", "enum": list(f.options)}
    elif t is FieldType.MULTICHOICE:
        s = {"type": "array", "items": {"type": "string", "enum": list(f.options)},
             "uniqueItems": True}
    else:
        target = "user" if t is FieldType.USER else f.target
        s = {"type": "integer", "minimum": 1, "description": f"id of a {target}"}
    if f.max_length and t not in (FieldType.CHOICE, FieldType.MULTICHOICE):
        s["maxLength"] = f.max_length
    if f.min is not None and t is FieldType.INTEGER:
        s["minimum"] = int(f.min)
    if f.max is not None and t is FieldType.INTEGER:
        s["maximum"] = int(f.max)
    s["title"] = f.label.get()
    if f.help:
        s["description"] = f.help.get()
    return {"anyOf": [s, {"type": "null"}]} if not f.required else s


_ENGINE_PROPS: dict[str, dict[str, Any]] = {
    "id": {"type": "integer", "readOnly": True},
    "version": {"type": "integer", "readOnly": True},
    "created_at": {"type": "string", "format": "date-time", "readOnly": True},
    "created_by": {"type": ["integer", "null"], "readOnly": True},
    "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
    "updated_by": {"type": ["integer", "null"], "readOnly": True},
    "owner_id": {"type": ["integer", "null"], "readOnly": True},
    "department_id": {"type": ["integer", "null"], "readOnly": True},
    "deleted_at": {"type": ["string", "null"], "format": "date-time", "readOnly": True},
    "deleted_by": {"type": ["integer", "null"], "readOnly": True},
}


def _entity_schemas(e: Entity) -> dict[str, Any]:
    name = _cap(e.name)
    props = {f.name: field_schema(f) for f in e.fields}
    return {
        name: {"type": "object", "title": e.label.get(),
               "properties": {**_ENGINE_PROPS, **props},
               "required": ["id", "version", "created_at", "updated_at"]},
        f"{name}Create": {"type": "object", "additionalProperties": False,
                          "properties": props,
                          "required": [f.name for f in e.fields if f.required and
                                       f.default is None]},
        f"{name}Patch": {"type": "object", "additionalProperties": False,
                         "properties": {"version": {"type": "integer"}, **props},
                         "required": ["version"]},
        f"{name}Page": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
            "total": {"type": "integer"},
            "total_exact": {"type": "boolean",
                            "description": "false when total is an estimate (large tables)"},
            "page": {"type": "integer"}, "page_size": {"type": "integer"},
            "next_cursor": {"type": ["string", "null"]}}},
    }


def _cap(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad request", 401: "No or invalid token", 403: "Forbidden",
            404: "Not found", 409: "Version conflict", 413: "Body too large",
            422: "Validation failed"}
    return {str(c): {"description": text[c], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}} for c in codes}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _entity_paths(e: Entity) -> dict[str, Any]:
    n = _cap(e.name)
    rid = {"name": "record_id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1}}
    filters = [{"name": f"{f.name}__{{op}}", "in": "query", "required": False,
                "description": f"filter on {f.name}; op is one of {', '.join(OPERATORS)} "
                               f"(plain `{f.name}=` means eq)",
                "schema": {"type": "string"}} for f in e.fields]
    list_params = [
        {"name": "sort", "in": "query", "schema": {"type": "string"},
         "description": "comma-separated fields, `-` for descending: `-amount,name`"},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "page_size", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"},
         "description": "next_cursor of the previous page (keyset pagination)"},
        {"name": "deleted", "in": "query", "schema": {"type": "boolean"},
         "description": "list the recycle bin"},
        *filters,
    ]
    tag = [e.name]
    return {
        f"/api/{e.name}": {
            "get": {"tags": tag, "summary": f"List {e.plural.get()}", "parameters": list_params,
                    "responses": {"200": {"description": "A page", "content": _json(f"{n}Page")},
                                  **_errors(400, 401)}},
            "post": {"tags": tag, "summary": f"Create a {e.label.get()}",
                     "requestBody": {"required": True, "content": _json(f"{n}Create")},
                     "responses": {"201": {"description": "Created", "content": _json(n)},
                                   **_errors(400, 401, 409, 413, 422)}},
        },
        f"/api/{e.name}/{{record_id}}": {
            "get": {"tags": tag, "summary": f"Get a {e.label.get()}", "parameters": [rid],
                    "responses": {"200": {"description": "The record", "content": _json(n)},
                                  **_errors(401, 404)}},
            "patch": {"tags": tag, "summary": f"Update a {e.label.get()}", "parameters": [rid],
                      "requestBody": {"required": True, "content": _json(f"{n}Patch")},
                      "responses": {"200": {"description": "Updated", "content": _json(n)},
                                    **_errors(400, 401, 404, 409, 413, 422)}},
            "delete": {"tags": tag, "summary": "Move to the recycle bin", "parameters": [
                rid, {"name": "version", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"204": {"description": "In the recycle bin"},
                              **_errors(401, 404, 409)}},
        },
        f"/api/{e.name}/{{record_id}}/history": {
            "get": {"tags": tag, "summary": "Audit history", "parameters": [rid],
                    "responses": {"200": {"description": "Audit rows, oldest first",
                                          "content": _json("History")},
                                  **_errors(401, 404)}},
        },
        f"/api/{e.name}/{{record_id}}/actions/{{action}}": {
            "post": {"tags": tag, "summary": "Run an action: restore, purge",
                     "parameters": [rid, {"name": "action", "in": "path", "required": True,
                                          "schema": {"enum": ["restore", "purge"]}}],
                     "responses": {"200": {"description": "Restored", "content": _json(n)},
                                   "204": {"description": "Purged"},
                                   **_errors(401, 404, 409)}},
        },
    }


def build_openapi(model: Model) -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message", "fields"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}}},
        "History": {"type": "object", "properties": {
            "total": {"type": "integer"},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "at": {"type": "string", "format": "date-time"},
                "user": {"type": ["string", "null"]}, "action": {"type": "string"},
                "field": {"type": ["string", "null"]}, "old": {}, "new": {}}}}}},
    }
    paths: dict[str, Any] = {}
    for e in model.entities:
        schemas.update(_entity_schemas(e))
        paths.update(_entity_paths(e))
    return {
        "openapi": "3.1.0",
        "info": {"title": "MetaCRM API", "version": model.config_hash[:12],
                 "description": "Generated from the configuration in config/."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }
