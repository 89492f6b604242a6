"""OpenAPI 3.1 description generated from the Model: one schema and five routes per entity,
and the caller's own notifications (engine/web/notifications.py).

`build_openapi(model)` describes everything (what an administrator may use);
`build_openapi(model, caller_of(policy, actor))` only the entities, routes and fields that
caller may use: an entity none of whose actions its roles allow is left out, a route whose
action they may not do is left out, a field hidden from them appears nowhere (schemas,
filters, sorts, explain), and a field read-only for them is readOnly and not in the write
schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.fieldtypes import FIELD_TYPES, OPERATORS
from engine.metadata.lines import MAX_LINES
from engine.metadata.model import Entity, Field, Model
from engine.metadata.roles import ACTIONS, Scope
from engine.runtime.access.actor import Actor
from engine.runtime.access.bulk import ORDINARY_PAGE_SIZE
from engine.runtime.access.policy import AccessPolicy
from engine.runtime.records.feed import DEFAULT_LIMIT as DEFAULT_CHANGES
from engine.runtime.records.feed import MAX_LIMIT as MAX_CHANGES
from engine.runtime.records.query import ENGINE_SORTABLE, MAX_PAGE_SIZE
from engine.types import FieldType
from engine.web.attachments import ATTACHMENT_SCHEMAS, attachment_paths
from engine.web.duplicates import ALLOW_PARAMETER, DUPLICATE_SCHEMAS, duplicate_paths
from engine.web.exports import EXPORT_FILES, EXPORT_FORMAT
from engine.web.merging import MERGE_SCHEMAS, merge_paths
from engine.web.notifications import NOTIFICATION_SCHEMAS, notification_paths
from engine.web.openapi_bulk import SCHEMAS as BULK_SCHEMAS
from engine.web.openapi_bulk import add_external_refs, bulk_paths, bulk_schemas
from engine.web.pipeline import PIPELINE_SCHEMAS, pipeline_paths
from engine.web.reports import REPORT_SCHEMAS, report_paths


@dataclass(frozen=True)
class EntityUse:
    """What one caller may do with one entity: its allowed actions (of roles.yaml), the
    fields hidden from it and those read-only for it."""

    actions: frozenset[str]
    hidden: frozenset[str] = frozenset()
    readonly: frozenset[str] = frozenset()


EVERYTHING = EntityUse(frozenset(ACTIONS))

Caller = Mapping[str, EntityUse]
"""Entity name → what the caller may do with it; an entity not in it is left out."""


def caller_of(policy: AccessPolicy, actor: Actor) -> Caller | None:
    """What `actor` may use, for build_openapi; None (everything) for an administrator."""
    if policy.is_admin(actor):
        return None
    out: dict[str, EntityUse] = {}
    for e in policy.model.entities:
        actions = frozenset(a for a in ACTIONS
                            if policy.scope(actor, e.name, a) is not Scope.NONE)
        if actions:
            mask = policy.mask(actor, e)
            out[e.name] = EntityUse(actions, mask.hidden, mask.readonly)
    return out


def field_schema(f: Field) -> dict[str, Any]:
    """The schema of a field's value: its type's (engine/fieldtypes.py), titled and described,
    nullable unless the field is required."""
    s = FIELD_TYPES[f.type].openapi(f)
    s["title"] = f.label.get()
    if f.help:
        s["description"] = " ".join(x for x in (f.help.get(), s.get("description")) if x)
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


def _entity_schemas(e: Entity, use: EntityUse) -> dict[str, Any]:
    name = _cap(e.name)
    fields = [f for f in e.fields if f.name not in use.hidden]
    props = {f.name: field_schema(f) for f in e.stored_fields
             if f.name not in use.hidden and f.name not in use.readonly and not f.derived}
    readable = {f.name: {**field_schema(f), "readOnly": True, "description": _derivation(f)}
                if f.derived else props.get(f.name, {**field_schema(f), "readOnly": True})
                for f in fields}
    return {
        name: {"type": "object", "title": e.label.get(),
               "properties": {**_ENGINE_PROPS, **readable},
               "required": ["id", "version", "created_at", "updated_at"]},
        f"{name}Create": {"type": "object", "additionalProperties": False,
                          "properties": props,
                          "required": [f.name for f in e.fields if f.required and
                                       f.default is None and f.name in props]},
        f"{name}Patch": {"type": "object", "additionalProperties": False,
                         "properties": {"version": {"type": "integer"}, **props},
                         "required": ["version"]},
        f"{name}Page": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
            "total": {"type": "integer"},
            "total_exact": {"type": "boolean",
                            "description": "false when total is an estimate (large tables)"},
            "page": {"type": "integer"}, "page_size": {"type": "integer"},
            "next_cursor": {"type": ["string", "null"]}},
            "required": ["items", "total", "total_exact", "page", "page_size", "next_cursor"]},
        f"{name}Changes": {"type": "object", "required": ["items", "next_cursor"],
                           "properties": {
            "next_cursor": {"type": "string", "description": "`since` of the next request: "
                            "store it; never null"},
            "items": {"type": "array", "items": {
                "type": "object", "required": ["cursor", "action", "id", "at", "record"],
                "properties": {
                    "cursor": {"type": "string", "description": "resumes right after this "
                               "change"},
                    "action": {"enum": ["create", "update", "delete", "restore", "purge"]},
                    "id": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "record": {"description": "the record as the caller may read it now; "
                               "null when purged or no longer readable by the caller",
                               "oneOf": [{"$ref": f"#/components/schemas/{name}"},
                                         {"type": "null"}]}}}}}},
    }


def _add_lines(child: Entity, use: EntityUse, e: Entity, schemas: dict[str, Any],
               paths: dict[str, Any]) -> None:
    """An entity with a line-item grid (config/forms `lines:`): its create and patch take
    `lines`, line edits saved with it in one unit of work; a read can include them."""
    n, c = _cap(e.name), _cap(child.name)
    values = _entity_schemas(child, use)[f"{c}Create"]["properties"]
    schemas[f"{n}LineEdit"] = {
        "type": "object", "additionalProperties": False,
        "description": "a new line ({values}), a change of line id read at version "
                       "({id, version, values}) or its removal ({id, delete: true}); the "
                       "lines that stay keep the order given",
        "properties": {"id": {"type": "integer", "minimum": 1},
                       "version": {"type": "integer", "minimum": 1},
                       "delete": {"type": "boolean"},
                       "values": {"type": "object", "additionalProperties": False,
                                  "properties": values}}}
    edits = {"type": "array", "maxItems": MAX_LINES,
             "items": {"$ref": f"#/components/schemas/{n}LineEdit"},
             "description": f"{child.plural.get()} saved with the record, all or nothing; "
                            "the problems of each line come back in the error's `lines`, "
                            "by row"}
    for name in (f"{n}Create", f"{n}Patch"):
        schemas[name]["properties"]["lines"] = edits
    schemas[n]["properties"]["lines"] = {
        "type": "array", "readOnly": True, "items": {"$ref": f"#/components/schemas/{c}"},
        "description": "the record's lines, after a save with lines or with ?include=lines"}
    one = paths.get(f"/api/{e.name}/{{record_id}}", {})
    if "get" in one:
        one["get"]["parameters"].append(
            {"name": "include", "in": "query", "schema": {"type": "string", "enum": ["lines"]},
             "description": f"lines: the record's {child.plural.get()} too"})


def _cap(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad request", 401: "No or invalid token", 403: "Forbidden",
            404: "Not found", 409: "Version conflict",
            410: "The change log no longer goes back to this cursor (settings.yaml "
                 "changes.keep_days): copy the records again, then follow from since=now",
            413: "Body too large",
            415: "Body is not JSON", 422: "Validation failed"}
    return {str(c): {"description": text[c], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}} for c in codes}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _operators(t: FieldType) -> tuple[str, ...]:
    """The filter operators of a field type, as engine.runtime.records.query takes them
    (tests/test_openapi.py sends every described filter to the API and expects a 200)."""
    return FIELD_TYPES[t].operators


def _filters(e: Entity, hidden: frozenset[str]) -> dict[str, Any]:
    """One query parameter per field and operator: `stage=won`, `amount__gte=1000`."""
    fields = [(f.name, f.type, f.options) for f in e.fields
              if _in_sql(f) and f.name not in hidden]
    fields += [(name, t, ()) for name, t in ENGINE_SORTABLE.items()]
    props: dict[str, Any] = {}
    for name, t, options in fields:
        for op in _operators(t):
            schema: dict[str, Any] = {"type": "string"}
            if op == "blank":
                schema = {"type": "boolean", "description": f"{name} is blank (or not)"}
            elif op in ("eq", "ne") and t is FieldType.CHOICE:
                schema = {"type": "string", "enum": list(options)}
            elif op == "in":
                schema["description"] = "comma-separated values"
            props[name if op == "eq" else f"{name}__{op}"] = schema
    return {"name": "filters", "in": "query", "required": False, "style": "form",
            "explode": True,
            "description": "field filters, ANDed: `field=value` or `field__op=value` with op "
                           f"one of {', '.join(OPERATORS)}",
            "schema": {"type": "object", "properties": props, "additionalProperties": False}}


def _entity_paths(e: Entity, use: EntityUse) -> dict[str, Any]:
    """The routes of `e` the caller may use: each operation under the action it needs."""
    paths = _all_entity_paths(e, use.hidden)
    may = use.actions.__contains__
    if not may("read"):
        for path in [f"/api/{e.name}", f"/api/{e.name}/{{record_id}}",
                     f"/api/{e.name}/{{record_id}}/team"]:
            paths[path].pop("get")
        for path in [f"/api/{e.name}/changes",
                     f"/api/{e.name}/{{record_id}}/history",
                     f"/api/{e.name}/{{record_id}}/timeline",
                     f"/api/{e.name}/{{record_id}}/automation",
                     f"/api/{e.name}/{{record_id}}/explain/{{field}}",
                     f"/api/access/explain/{e.name}/{{record_id}}"]:
            paths.pop(path, None)
    for path, method, action in [
            (f"/api/{e.name}", "post", "create"),
            (f"/api/{e.name}/{{record_id}}", "patch", "update"),
            (f"/api/{e.name}/{{record_id}}", "delete", "delete"),
            (f"/api/{e.name}/{{record_id}}/team", "post", "update"),
            (f"/api/{e.name}/{{record_id}}/team/{{user_id}}", "delete", "update")]:
        if not may(action):
            paths[path].pop(method)
    actions_path = f"/api/{e.name}/{{record_id}}/actions/{{action}}"
    allowed = [a for a, needs in (("restore", "delete"), ("purge", "delete"),
                                  ("assign", "assign")) if may(needs)]
    if allowed:
        action_param = paths[actions_path]["post"]["parameters"][1]
        action_param["schema"]["enum"] = allowed
    else:
        paths.pop(actions_path)
    return {path: item for path, item in paths.items() if item}


def _all_entity_paths(e: Entity, hidden: frozenset[str]) -> dict[str, Any]:
    n = _cap(e.name)
    rid = {"name": "record_id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1}}
    sortable = [f.name for f in e.fields if FIELD_TYPES[f.type].sortable and _in_sql(f)
                and f.name not in hidden]
    list_params = [
        {"name": "sort", "in": "query", "schema": {"type": "string"},
         "description": "comma-separated fields (at most 5), `-` for descending: "
                        f"`-amount,name`; sortable: {', '.join([*sortable, *ENGINE_SORTABLE])}"},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "page_size", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
         "description": f"records per page (default 50); more than {ORDINARY_PAGE_SIZE} is a "
                        "bulk read and needs the export permission (roles.yaml) on every "
                        "record the caller may read, else 403"},
        {"name": "cursor", "in": "query", "schema": {"type": "string"},
         "description": "next_cursor of the previous page (keyset pagination)"},
        {"name": "deleted", "in": "query", "schema": {"type": "boolean"},
         "description": "list the recycle bin"},
        {"name": "filter", "in": "query", "schema": {"type": "string"},
         "description": "a boolean formula the records must satisfy, e.g. "
                        "`amount > 1000 AND stage = \"won\"` (see docs/formula.md)"},
        _filters(e, hidden),
        EXPORT_FORMAT,
    ]
    tag = [e.name]
    explain: dict[str, Any] = {}
    explained = [f.name for f in e.fields if f.computed and f.name not in hidden]
    if explained:
        explain[f"/api/{e.name}/{{record_id}}/explain/{{field}}"] = {
            "get": {"tags": tag, "operationId": f"explain_{e.name}",
                    "summary": "A computed sum, term by term",
                    "parameters": [rid, {"name": "field", "in": "path", "required": True,
                                         "schema": {"type": "string",
                                                    "enum": explained}}],
                    "responses": {"200": {"description": "The terms and their values",
                                          "content": _json("Explanation")},
                                  **_errors(400, 401, 404)}}}
    return {
        **explain,
        f"/api/{e.name}": {
            "get": {"tags": tag, "operationId": f"list_{e.name}",
                    "summary": f"List {e.plural.get()}", "parameters": list_params,
                    "responses": {"200": {"description": "A page; with `format`, the file",
                                          "content": {**_json(f"{n}Page"), **EXPORT_FILES}},
                                  **_errors(400, 401, 403, 404, 413)}},
            "post": {"tags": tag, "operationId": f"create_{e.name}",
                     "summary": f"Create a {e.label.get()}",
                     "requestBody": {"required": True, "content": _json(f"{n}Create")},
                     "responses": {"201": {"description": "Created", "content": _json(n),
                                           "headers": {"Location": {
                                               "description": "URL of the new record",
                                               "schema": {"type": "string"}}}},
                                   **_errors(400, 401, 403, 409, 413, 415, 422)}},
        },
        f"/api/{e.name}/{{record_id}}": {
            "get": {"tags": tag, "operationId": f"get_{e.name}",
                    "summary": f"Get a {e.label.get()}", "parameters": [
                        rid, {"name": "deleted", "in": "query", "schema": {"type": "boolean"},
                              "description": "read the record from the recycle bin"}],
                    "responses": {"200": {"description": "The record", "content": _json(n)},
                                  **_errors(400, 401, 403, 404)}},
            "patch": {"tags": tag, "operationId": f"update_{e.name}",
                      "summary": f"Update a {e.label.get()}", "parameters": [rid],
                      "requestBody": {"required": True, "content": _json(f"{n}Patch")},
                      "responses": {"200": {"description": "Updated", "content": _json(n)},
                                    **_errors(400, 401, 403, 404, 409, 413, 415, 422)}},
            "delete": {"tags": tag, "operationId": f"delete_{e.name}",
                       "summary": "Move to the recycle bin", "parameters": [
                rid, {"name": "version", "in": "query", "schema": {"type": "integer"},
                      "description": "refuse (409) unless the record is at this version"}],
                "responses": {"204": {"description": "In the recycle bin"},
                              **_errors(400, 401, 403, 404, 409)}},
        },
        f"/api/{e.name}/changes": {
            "get": {"tags": tag, "operationId": f"changes_{e.name}",
                    "summary": f"Changes of {e.plural.get()} since a cursor, in commit order",
                    "description": "every create, update, delete, restore and purge the caller "
                                   "may see (docs/api.md, Changes feed): pull until a page "
                                   "comes back empty, and keep next_cursor",
                    "parameters": [
                        {"name": "since", "in": "query", "schema": {"type": "string"},
                         "description": "next_cursor (or an item's cursor) of an earlier "
                                        "request; from the start without it; `now`: no "
                                        "items, the log's head as next_cursor"},
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1,
                                    "maximum": MAX_CHANGES, "default": DEFAULT_CHANGES}}],
                    "responses": {"200": {"description": "The changes after `since`",
                                          "content": _json(f"{n}Changes")},
                                  **_errors(400, 401, 403, 404, 410, 422)}},
        },
        f"/api/{e.name}/{{record_id}}/history": {
            "get": {"tags": tag, "operationId": f"history_{e.name}",
                    "summary": "Audit history", "parameters": [rid],
                    "responses": {"200": {"description": "Audit rows, oldest first",
                                          "content": _json("History")},
                                  **_errors(401, 403, 404)}},
        },
        f"/api/{e.name}/{{record_id}}/timeline": {
            "get": {"tags": tag, "operationId": f"timeline_{e.name}",
                    "summary": "Timeline: records about it, its changes and files, and its "
                               "children's, newest first",
                    "parameters": [rid, {"name": "before", "in": "query",
                                         "schema": {"type": "string"},
                                         "description": "the next_cursor of the page before"},
                                   {"name": "page_size", "in": "query",
                                    "schema": {"type": "integer", "minimum": 1,
                                               "maximum": 100, "default": 30}}],
                    "responses": {"200": {"description": "A page of the timeline",
                                          "content": _json("Timeline")},
                                  **_errors(400, 401, 403, 404)}},
        },
        f"/api/{e.name}/{{record_id}}/automation": {
            "get": {"tags": tag, "operationId": f"automation_{e.name}",
                    "summary": "Why did this change? The flows' automation runs on the record "
                               "(newest first) and its stage history (docs/flows.md)",
                    "parameters": [rid],
                    "responses": {"200": {"description": "Runs and stages",
                                          "content": _json("Automation")},
                                  **_errors(401, 403, 404)}},
        },
        f"/api/{e.name}/{{record_id}}/actions/{{action}}": {
            "post": {"tags": tag, "operationId": f"action_{e.name}",
                     "summary": "Run an action: restore, purge, assign",
                     "description": "assign takes a body (Assign) and answers "
                                    "{record, cascaded, visible}; restore answers the record",
                     "parameters": [rid, {"name": "action", "in": "path", "required": True,
                                          "schema": {"type": "string",
                                                     "enum": ["restore", "purge", "assign"]}}],
                     "requestBody": {"required": False, "content": _json("Assign")},
                     "responses": {"200": {"description": "Restored or assigned",
                                           "content": _json(n)},
                                   "204": {"description": "Purged"},
                                   **_errors(401, 403, 404, 409, 422)}},
        },
        f"/api/{e.name}/{{record_id}}/team": {
            "get": {"tags": tag, "operationId": f"team_{e.name}",
                    "summary": "Team members", "parameters": [rid],
                    "responses": {"200": {"description": "The team", "content": _json("Team")},
                                  **_errors(401, 403, 404)}},
            "post": {"tags": tag, "operationId": f"set_team_member_{e.name}",
                     "summary": "Add a team member or change their access", "parameters": [rid],
                     "requestBody": {"required": True, "content": _json("TeamMember")},
                     "responses": {"200": {"description": "The team", "content": _json("Team")},
                                   **_errors(400, 401, 403, 404, 422)}},
        },
        f"/api/{e.name}/{{record_id}}/team/{{user_id}}": {
            "delete": {"tags": tag, "operationId": f"remove_team_member_{e.name}",
                       "summary": "Remove a team member", "parameters": [
                           rid, {"name": "user_id", "in": "path", "required": True,
                                 "schema": {"type": "integer", "minimum": 1}}],
                       "responses": {"200": {"description": "The team",
                                             "content": _json("Team")},
                                     **_errors(401, 403, 404)}},
        },
        f"/api/access/explain/{e.name}/{{record_id}}": {
            "get": {"tags": ["access"], "operationId": f"explain_access_{e.name}",
                    "summary": "Why a user can or cannot act on this record", "parameters": [
                        rid, {"name": "user", "in": "query", "schema": {"type": "string"},
                              "description": "whose access (administrators); default: yours"}],
                    "responses": {"200": {"description": "Verdicts and reasons",
                                          "content": _json("AccessExplanation")},
                                  **_errors(401, 403, 404)}},
        },
    }


def _add_conversions(model: Model, e: Entity, caller: Caller | None, use: EntityUse,
                     schemas: dict[str, Any], paths: dict[str, Any]) -> None:
    """The conversions of `e` (flows' `conversions:`) the caller may run — reading `e` and
    creating every entity they make — as more values of the actions route's `action`."""
    if "read" not in use.actions:
        return
    names = [c.name for f in model.flows if f.entity == e.name for c in f.conversions
             if caller is None or all(t in caller and "create" in caller[t].actions
                                      for t in _conversion_targets(c))]
    if not names:
        return
    actions_path = f"/api/{e.name}/{{record_id}}/actions/{{action}}"
    if actions_path not in paths:
        full = _all_entity_paths(e, use.hidden)[actions_path]
        full["post"]["parameters"][1]["schema"]["enum"] = []
        paths[actions_path] = full
    post = paths[actions_path]["post"]
    post["parameters"][1]["schema"]["enum"] = [*post["parameters"][1]["schema"]["enum"],
                                               *names]
    post["summary"] = f"{post['summary']}, or a conversion: {', '.join(names)}"
    post["description"] += ("; a conversion (docs/flows.md#conversions) takes an optional "
                            "body (Conversion) and answers 201 with the records it made "
                            "(Converted)")
    post["requestBody"]["content"] = {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/Assign"},
        {"$ref": "#/components/schemas/Conversion"}]}}}
    post["responses"]["201"] = {"description": "Converted: the records made",
                                "content": _json("Converted")}
    schemas.update(_CONVERSION_SCHEMAS)


def _conversion_targets(c: Any) -> list[str]:
    return [t for made in c.creates for t in (made.entity, *(x.entity for x in made.lines))]


_CONVERSION_SCHEMAS: dict[str, Any] = {
    "Conversion": {"type": "object", "additionalProperties": False, "properties": {
        "values": {"type": "object", "description": "field values by the name (`as`) of a "
                   "record the conversion makes, over the configured ones",
                   "additionalProperties": {"type": "object"}},
        "duplicates": {"enum": ["reuse", "refuse"], "default": "reuse",
                       "description": "a record matching a creation's duplicate check: "
                                      "reuse it, or refuse the conversion (409)"}}},
    "Converted": {"type": "object", "required": ["conversion", "main", "records"],
                  "properties": {
                      "conversion": {"type": "string"}, "main": {"type": "string"},
                      "records": {"type": "object", "additionalProperties": {
                          "type": "object", "properties": {
                              "entity": {"type": "string"}, "id": {"type": "integer"},
                              "reused": {"type": "boolean"}, "lines": {"type": "integer"},
                              "url": {"type": "string"}, "page": {"type": "string"}}}},
                      "found": {"type": "object"}, "set": {"type": "object"}}},
}

_USER_REF = {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string"}],
             "description": "a user id or name"}
_ACCESS_SCHEMAS: dict[str, Any] = {
    "Assign": {"type": "object", "additionalProperties": False, "properties": {
        "owner": _USER_REF, "department": {"type": "integer", "minimum": 1},
        "version": {"type": "integer", "minimum": 1}}},
    "TeamMember": {"type": "object", "additionalProperties": False, "required": ["user"],
                   "properties": {"user": _USER_REF,
                                  "access": {"enum": ["read", "edit"], "default": "read"}}},
    "Team": {"type": "object", "properties": {
        "total": {"type": "integer"},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "user_id": {"type": "integer"}, "user": {"type": "string"},
            "display_name": {"type": ["string", "null"]},
            "access": {"enum": ["read", "edit"]},
            "added_at": {"type": "string", "format": "date-time"}}}}}},
    "AccessExplanation": {"type": "object", "required": ["user", "actions", "fields"],
                          "properties": {
        "user": {"type": "object"}, "entity": {"type": "string"},
        "record_id": {"type": "integer"}, "record": {"type": "object"},
        "actions": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["allowed", "scope", "reason"], "properties": {
                "allowed": {"type": "boolean"}, "scope": {"type": "string"},
                "roles": {"type": "array", "items": {"type": "string"}},
                "reason": {"type": "string"}}}},
        "fields": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"read": {"type": "string"},
                                             "write": {"type": "string"},
                                             "reason": {"type": "string"}}}}}},
    "Transfer": {"type": "object", "additionalProperties": False, "required": ["from", "to"],
                 "properties": {"from": _USER_REF, "to": _USER_REF,
                                "deactivate": {"type": "boolean", "default": False}}},
    "TransferResult": {"type": "object", "properties": {
        "moved": {"type": "object", "additionalProperties": {"type": "integer"}},
        "total": {"type": "integer"}, "deactivated": {"type": "boolean"}}},
}


def _derivation(f: Field) -> str:
    """How the engine computes a field nobody writes: its formula, or its rollup."""
    if f.rollup is not None:
        return f"rollup: {f.rollup.definition}"
    if f.number_format is not None:
        return f"autonumber: {f.number_format.source}, assigned when the record is created"
    return f"computed: {f.formula}"


def _in_sql(f: Field) -> bool:
    """Whether lists can filter and sort on the field (a stored or SQL-capable one)."""
    return not f.computed or (f.compiled is not None and f.compiled.sql_capable)


def build_openapi(model: Model, caller: Caller | None = None) -> dict[str, Any]:
    """The document for `caller` (caller_of); None: everything, as administrators see it."""
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message", "fields"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "candidates": {"type": "array", "description": "a create refused as a "
                               "duplicate (409 `duplicate`): the records it matches, each "
                               "with `id`, `title` and the `matched` fields",
                               "items": {"type": "object"}},
                "lines": {"type": "object", "description": "a save with line items: each "
                          "line's problems by its row (from 0) and field",
                          "additionalProperties": {"type": "object", "additionalProperties":
                                                   {"type": "string"}}},
                "items": {"type": "object", "description": "a bulk write "
                          "(POST /api/<entity>/bulk): each refused item's problem by its "
                          "index (from 0)", "additionalProperties": {
                              "type": "object", "required": ["code", "message", "fields"],
                              "properties": {"code": {"type": "string"},
                                             "message": {"type": "string"},
                                             "candidates": {"type": "array", "items": {
                                                 "type": "object"}},
                                             "fields": {"type": "object",
                                                        "additionalProperties":
                                                        {"type": "string"}}}}}}}}},
        "History": {"type": "object", "properties": {
            "total": {"type": "integer"},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
                "user_id": {"type": ["integer", "null"]}, "user": {"type": ["string", "null"]},
                "action": {"type": "string",
                           "description": "create, update, delete, restore, purge, assign, team"},
                "field": {"type": ["string", "null"]}, "old": {}, "new": {}},
                "required": ["id", "at", "action", "field", "old", "new"]}}}},
        "Timeline": {"type": "object", "required": ["items", "next_cursor"], "properties": {
            "next_cursor": {"type": ["string", "null"],
                            "description": "`before` of the next page; null on the last"},
            "items": {"type": "array", "items": {
                "type": "object", "required": ["kind", "at", "entity", "id", "user"],
                "properties": {
                    "kind": {"enum": ["record", "change", "file"],
                             "description": "record: a record about this one (a note, an "
                                            "activity); change: a write (audit); file: an "
                                            "attachment"},
                    "at": {"type": "string", "format": "date-time"},
                    "entity": {"type": "string"}, "id": {"type": "integer"},
                    "user": {"type": ["string", "null"]},
                    "title": {"type": ["string", "null"]},
                    "action": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "string"}},
                    "file_id": {"type": "integer"},
                    "about": {"type": "object", "description": "the child record it "
                              "concerns, when not this record itself",
                              "properties": {"entity": {"type": "string"},
                                             "id": {"type": "integer"}}}}}}}},
        "Automation": {"type": "object", "required": ["runs", "stages"], "properties": {
            "runs": {"type": "array", "items": {
                "type": "object", "required": ["id", "flow", "rule", "event", "result", "at"],
                "properties": {
                    "id": {"type": "integer"}, "flow": {"type": "string"},
                    "rule": {"type": "string"}, "config_hash": {"type": "string"},
                    "event": {"enum": ["create", "update", "delete", "restore", "stage",
                                       "timer", "action", "decision"]},
                    "result": {"enum": ["fired", "skipped", "passed", "refused", "scheduled",
                                        "approved", "rejected"]},
                    "reason": {"type": ["string", "null"]},
                    "inputs": {"type": "object"}, "diff": {"type": "object"},
                    "actions": {"type": "array", "items": {"type": "object"}},
                    "cause_id": {"type": ["integer", "null"]},
                    "at": {"type": "string", "format": "date-time"},
                    "by": {"type": ["string", "null"]}}}},
            "stages": {"type": "array", "items": {
                "type": "object", "required": ["field", "stage", "entered_at"],
                "properties": {
                    "id": {"type": "integer"}, "field": {"type": "string"},
                    "stage": {"type": "string"},
                    "entered_at": {"type": "string", "format": "date-time"},
                    "entered_by": {"type": ["integer", "null"]},
                    "left_at": {"type": ["string", "null"], "format": "date-time"},
                    "left_by": {"type": ["integer", "null"]}}}}}},
        "Explanation": {"type": "object", "required": ["field", "value", "terms"],
                        "properties": {
            "field": {"type": "string"}, "value": {},
            "terms": {"type": "array", "items": {
                "type": "object", "required": ["formula", "value", "reads", "answers", "text"],
                "properties": {
                    "formula": {"type": "string"}, "value": {},
                    "reads": {"type": "array", "description": "The record's fields the term "
                              "reads, with their values", "items": {
                                  "type": "object", "required": ["field", "value"],
                                  "properties": {"field": {"type": "string"}, "value": {}}}},
                    "answers": {"type": "string", "description": "Those fields and values "
                                "in words (labels; Accept-Language): Budget: Confirmed"},
                    "text": {"type": "string",
                             "description": "The term in words: Budget: Confirmed → 30"}}}}}},
    }
    schemas.update(_ACCESS_SCHEMAS)
    schemas.update(NOTIFICATION_SCHEMAS)
    schemas.update(REPORT_SCHEMAS)
    schemas.update(PIPELINE_SCHEMAS)
    schemas.update(BULK_SCHEMAS)
    paths: dict[str, Any] = {} if caller is not None else {"/api/access/transfer": {
        "post": {"tags": ["access"], "operationId": "transfer_owned",
                 "summary": "Give everything a user owns to another (administrators)",
                 "requestBody": {"required": True, "content": _json("Transfer")},
                 "responses": {"200": {"description": "Records moved, per entity",
                                       "content": _json("TransferResult")},
                               **_errors(400, 401, 403, 404, 422)}}}}
    paths.update(notification_paths())
    paths.update(report_paths())
    paths.update(pipeline_paths())
    for e in model.entities:
        use = EVERYTHING if caller is None else caller.get(e.name)
        if use is None:
            continue
        schemas.update(_entity_schemas(e, use))
        paths.update(_entity_paths(e, use))
        add_external_refs(model, e, schemas, _cap(e.name))  # engine/web/openapi_bulk.py
        schemas.update(bulk_schemas(e, use.hidden, schemas, _cap(e.name)))
        paths.update(bulk_paths(e, use.actions, _cap(e.name)))
        _add_conversions(model, e, caller, use, schemas, paths)
        _add_duplicates(e, use, schemas, paths)
        if e.attachments or any(f.type is FieldType.FILE for f in e.fields):
            schemas.update(ATTACHMENT_SCHEMAS)
            paths.update(attachment_paths(e.name, e.label.get(), use.actions))
        merging = merge_paths(e.name, use.actions)
        if merging:
            schemas.update(MERGE_SCHEMAS)
            paths.update(merging)
        child = model.form(e.name).lines
        child_use = None if child is None else (
            EVERYTHING if caller is None else caller.get(child.entity))
        if child is not None and child_use is not None:
            _add_lines(model.entity(child.entity), child_use, e, schemas, paths)
    approving = {f.entity for f in model.flows if f.approvals}
    if approving:
        paths.update(_approval_paths())
    for name in sorted(approving):
        use = EVERYTHING if caller is None else caller.get(name)
        if use is not None and "read" in use.actions:
            paths[f"/api/{name}/{{record_id}}/approvals"] = {"get": {
                "tags": [model.entity(name).label.get()], "operationId": f"approvals_{name}",
                "summary": "The record's approvals, newest first, with their tasks",
                "parameters": [{"name": "record_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1}}],
                "responses": {"200": {"description": "{items}", "content": {
                    "application/json": {"schema": {"type": "object"}}}},
                    **_errors(401, 403, 404)}}}
    _idempotency_keys(paths)
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


def _add_duplicates(e: Entity, use: EntityUse, schemas: dict[str, Any],
                    paths: dict[str, Any]) -> None:
    """An entity with duplicate rules: its create takes `allow_duplicate` (else 409 with the
    candidates), and `/api/<entity>/duplicates` asks first (engine/web/duplicates.py)."""
    if not e.duplicates:
        return
    create = paths.get(f"/api/{e.name}", {}).get("post")
    if create is not None:
        create["parameters"] = [*create.get("parameters", []), ALLOW_PARAMETER]
    found = duplicate_paths(e, use.actions, use.hidden, _errors(400, 401, 403, 404))
    if found:
        schemas.update(DUPLICATE_SCHEMAS)
        paths.update(found)


def _approval_paths() -> dict[str, Any]:
    """The approvals inbox (engine/web/approvals.py): every signed-in caller has one."""
    tag = ["approvals"]
    task = {"name": "task", "in": "path", "required": True, "schema": {"type": "integer"}}
    comment = {"type": "object", "additionalProperties": False,
               "properties": {"comment": {"type": "string", "maxLength": 2000}}}
    delegation = {"type": "object", "additionalProperties": False, "required": ["delegate"],
                  "properties": {"delegate": {"type": "string"},
                                 "starts_on": {"type": "string", "format": "date"},
                                 "ends_on": {"type": "string", "format": "date"}}}
    plain = {"application/json": {"schema": {"type": "object"}}}
    return {
        "/api/approvals": {"get": {
            "tags": tag, "operationId": "approval_inbox",
            "summary": "The caller's pending approval tasks, oldest first",
            "responses": {"200": {"description": "{items}", "content": plain},
                          **_errors(401)}}},
        "/api/approvals/count": {"get": {
            "tags": tag, "operationId": "approval_count",
            "summary": "How many approval tasks wait for the caller",
            "responses": {"200": {"description": "{pending}", "content": plain},
                          **_errors(401)}}},
        "/api/approvals/delegation": {
            "get": {"tags": tag, "operationId": "approval_delegation",
                    "summary": "Who decides the caller's approvals while they are away",
                    "responses": {"200": {"description": "{delegation}", "content": plain},
                                  **_errors(401)}},
            "put": {"tags": tag, "operationId": "approval_delegate",
                    "summary": "Name a colleague who decides the caller's approvals in a period",
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": delegation}}},
                    "responses": {"200": {"description": "{delegation}", "content": plain},
                                  **_errors(400, 401)}},
            "delete": {"tags": tag, "operationId": "approval_undelegate",
                       "summary": "End the caller's delegation",
                       "responses": {"204": {"description": "Ended"}, **_errors(401)}}},
        "/api/approvals/{task}/approve": {"post": {
            "tags": tag, "operationId": "approval_approve",
            "summary": "Approve a task of the caller's; the record moves on",
            "parameters": [task],
            "requestBody": {"required": False, "content": {
                "application/json": {"schema": comment}}},
            "responses": {"200": {"description": "The approval's new state", "content": plain},
                          **_errors(400, 401, 404, 409, 422)}}},
        "/api/approvals/{task}/reject": {"post": {
            "tags": tag, "operationId": "approval_reject",
            "summary": "Reject a task of the caller's (a comment is required); the record goes "
                       "back",
            "parameters": [task],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": comment}}},
            "responses": {"200": {"description": "The approval's new state", "content": plain},
                          **_errors(400, 401, 404, 409, 422)}}},
    }


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Any 1 to 255 visible ASCII characters, new for each new request: a retry "
                   "with the same key gets the first answer again (marked with the header "
                   "`Idempotent-Replayed: true`) and never writes twice. 422 when the key "
                   "was used for another request, 409 while that request still runs. Keys "
                   "are the caller's and kept 24 hours (docs/api.md).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}}


def _idempotency_keys(paths: dict[str, Any]) -> None:
    """Every POST takes an Idempotency-Key (engine/web/idempotency.py), and may answer
    the 400, 409 and 422 that come with one."""
    for item in paths.values():
        post = item.get("post")
        if post is None:
            continue
        post["parameters"] = [*post.get("parameters", []), IDEMPOTENCY_KEY]
        responses = post.setdefault("responses", {})
        for code, answer in _errors(400, 409, 422).items():
            responses.setdefault(code, answer)
