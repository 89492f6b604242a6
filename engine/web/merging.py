"""The merge action of the JSON API: `POST /api/<entity>/<id>/actions/merge` with
`{"loser": id, "versions": {"<id>": version, ...}, "take": {"field": "loser"}}` — the record
of the URL survives (engine/runtime/imports/merge.py) — its body, and its OpenAPI paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.messages import msg
from engine.runtime.errors import Invalid
from engine.runtime.imports.merge import SIDES
from engine.runtime.org import DEPARTMENT
from engine.web.numbers import whole_number

MERGE_KEYS = frozenset({"loser", "versions", "take"})
MAX_ID = 2**63 - 1


def _id(value: Any) -> int | None:
    if isinstance(value, str):
        value = whole_number(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        return None
    return value


def merge_body(body: Mapping[str, Any]) -> tuple[int, dict[int, int], dict[str, str]]:
    """(loser, versions by record id, take) from the JSON body; 422 naming each problem."""
    errors: dict[str, str] = {}
    unknown = sorted(set(body) - MERGE_KEYS)
    for key in unknown:
        errors[str(key)[:80]] = msg("unknown key")
    loser = _id(body.get("loser"))
    if loser is None:
        errors["loser"] = msg("required: the id of the record merged away")
    versions: dict[int, int] = {}
    raw = body.get("versions")
    if not isinstance(raw, dict) or not raw:
        errors["versions"] = msg("required: {\"<id>\": version} of both records")
    else:
        for key, value in raw.items():
            rid, version = _id(key), _id(value)
            if rid is None or version is None:
                errors["versions"] = msg("give each record's id and its version, both whole "
                                         "numbers")
                break
            versions[rid] = version
    take: dict[str, str] = {}
    given = body.get("take", {})
    if not isinstance(given, dict):
        errors["take"] = msg("give {\"field\": \"survivor\" or \"loser\"}")
    else:
        for name, side in given.items():
            if side not in SIDES:
                errors["take"] = msg("each field's side is survivor or loser")
                break
            take[str(name)] = str(side)
    if errors:
        raise Invalid(msg("the merge is not valid"), errors)
    assert loser is not None
    return loser, versions, take


MERGE_SCHEMAS: dict[str, Any] = {
    "Merge": {"type": "object", "additionalProperties": False,
              "required": ["loser", "versions"], "properties": {
                  "loser": {"type": "integer", "minimum": 1,
                            "description": "the record merged away, to the recycle bin"},
                  "versions": {"type": "object", "description": "record id → the version "
                               "compared, for both records",
                               "additionalProperties": {"type": "integer", "minimum": 1}},
                  "take": {"type": "object", "description": "field → whose value the "
                           "surviving record keeps (default: its own)",
                           "additionalProperties": {"enum": list(SIDES)}}}},
    "Merged": {"type": "object", "required": ["record", "merge", "loser", "moved"],
               "properties": {
                   "record": {"type": "object", "description": "the surviving record"},
                   "merge": {"type": "integer", "description": "the merge's id"},
                   "loser": {"type": "integer"},
                   "moved": {"type": "object", "description": "records repointed from the "
                             "loser, per entity (those you may read)",
                             "additionalProperties": {"type": "integer"}}}},
}


def merge_paths(entity: str, actions: frozenset[str] | set[str]) -> dict[str, Any]:
    """The merge route of `entity` when the caller's roles may update and delete it."""
    if entity == DEPARTMENT or not {"update", "delete"} <= set(actions):
        return {}

    def ref(name: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}

    errors = {str(c): {"description": "Error", "content": ref("Error")}
              for c in (400, 401, 403, 404, 409, 422)}
    return {f"/api/{entity}/{{record_id}}/actions/merge": {"post": {
        "tags": [entity], "operationId": f"merge_{entity}",
        "summary": "Merge another record (loser) into this one: its children move here, "
                   "it goes to the recycle bin; restoring it undoes the merge",
        "parameters": [{"name": "record_id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1}}],
        "requestBody": {"required": True, "content": ref("Merge")},
        "responses": {"200": {"description": "Merged", "content": ref("Merged")},
                      **errors}}}}
