"""/openapi.json: a valid OpenAPI 3.1 document generated from the Model, true to the API.

The document is checked on its own (structure, references, JSON Schema validity, one
schema property per field with the right type) and against the running API: records it
returns validate against their component schemas, and the list filters it describes are
exactly the ones the API accepts.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from starlette.routing import Route
from starlette.testclient import TestClient

from engine.metadata import load_model
from engine.metadata.model import Entity, Field
from engine.runtime.records.query import ENGINE_SORTABLE, OPERATORS
from engine.types import ENGINE_COLUMNS, FieldType
from engine.web.app import create_app
from engine.web.openapi import build_openapi
from tests.access_helpers import departments, user
from tests.conftest import CONFIG, Env
from tests.test_api import assert_error
from tests.web_helpers import sign_in

MODEL = load_model(CONFIG)
DOC = build_openapi(MODEL)
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]
FIELDS = [(e.name, f.name) for e in MODEL.entities for f in e.fields]
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


NOTIFICATIONS = {"/api/notifications": {"get"}, "/api/notifications/count": {"get"},
                 "/api/notifications/read": {"post"},
                 "/api/notifications/{notification_id}/read": {"post"}}
"""The caller's own notifications: in every caller's document."""
REPORTS = {"/api/reports": {"get"}, "/api/reports/{report}": {"get"}}
"""The reports: in every caller's document (each runs within the caller's access)."""
PIPELINE = {"/api/pipeline/snapshots": {"get", "post"}, "/api/pipeline/forecast": {"get"},
            "/api/pipeline/waterfall": {"get"}}
"""Pipeline snapshots: in every caller's document (each answers within the caller's
access)."""


def _cap(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _formats() -> FormatChecker:
    checker = FormatChecker()  # date and email come built in; these two do not

    @checker.checks("date-time", raises=ValueError)
    def _datetime(value: object) -> bool:
        return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None

    @checker.checks("decimal", raises=InvalidOperation)
    def _decimal(value: object) -> bool:
        return not isinstance(value, str) or Decimal(value).is_finite()

    return checker


def validator(component: str) -> Draft202012Validator:
    """A validator for one component schema, resolving $refs against the whole document."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": DOC["components"]}
    return Draft202012Validator(schema, format_checker=_formats())


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = DOC
    for part in pointer[2:].split("/"):
        node = node[part]
    return node


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in DOC["paths"].items()
            for method, op in item.items() if method in METHODS]


EXTERNAL_REF = {"$ref": "#/components/schemas/ExternalRef"}


def _nullable(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the non-null schema, whether null is allowed) of a field property."""
    if "anyOf" in schema:
        # a reference may also name its target by external id (engine/web/openapi_bulk.py)
        options = [s for s in schema["anyOf"] if s != EXTERNAL_REF]
        non_null = [s for s in options if s != {"type": "null"}]
        assert len(non_null) == 1 and len(options) in (1, 2), schema
        if len(options) == 1:
            return non_null[0], False
        return non_null[0], True
    return schema, False


# -- the document on its own -------------------------------------------------------------


def test_openapi_json_needs_a_signed_in_caller(env: Env) -> None:
    for headers in ({}, {"Authorization": "Bearer crm_not-a-token"}, {"Authorization": "x"}):
        assert_error(env.client().get("/openapi.json", headers=headers), 401, "unauthorized")


def test_an_administrator_gets_everything_by_token_or_by_session(env: Env,
                                                                 api: TestClient) -> None:
    resp = api.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == build_openapi(env.model)
    browser = env.client()
    assert sign_in(browser).status_code == 303
    assert browser.get("/openapi.json").json() == build_openapi(env.model)


def _document_of(env: Env, name: str, role: str, department: str) -> tuple[dict[str, Any],
                                                                           TestClient]:
    user(env, name, role, department=departments(env)[department])
    client = env.client(env.users.new_token(name))
    resp = client.get("/openapi.json")
    assert resp.status_code == 200, resp.text
    return resp.json(), client


def _props(doc: dict[str, Any], schema: str) -> set[str]:
    return set(doc["components"]["schemas"][schema]["properties"])


def test_a_partner_is_described_only_what_it_may_use(env: Env) -> None:
    """config/roles.yaml: partner creates, reads and updates its own accounts, contacts,
    opportunities and activities, reads products, and never sees credit_limit,
    annual_revenue, tier, birthday or score."""
    doc, client = _document_of(env, "dealer", "partner", "PARTNERS")
    Draft202012Validator.check_schema(doc["components"]["schemas"]["Account"])
    for ref in _refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    text = json.dumps(doc)
    for hidden in ("credit_limit", "annual_revenue", "birthday"):
        assert hidden not in text
    for schema in ("Account", "AccountCreate", "AccountPatch"):
        assert not _props(doc, schema) & {"credit_limit", "annual_revenue", "tier"}
    assert "score" not in _props(doc, "Opportunity")
    account_list = doc["paths"]["/api/account"]["get"]["parameters"]
    assert "tier" not in next(p for p in account_list if p["name"] == "filters")[
        "schema"]["properties"]
    assert "tier" not in next(p for p in account_list if p["name"] == "sort")["description"]
    paths = {path: {m for m in item if m in METHODS} for path, item in doc["paths"].items()}
    assert paths["/api/account"] == {"get", "post"}
    assert paths["/api/account/{record_id}"] == {"get", "patch"}
    assert paths["/api/product"] == {"get"} and paths["/api/product/{record_id}"] == {"get"}
    assert "/api/account/{record_id}/actions/{action}" not in paths  # no delete, no assign
    assert "/api/access/transfer" not in paths
    assert not any(p.startswith(("/api/lead", "/api/campaign")) for p in paths)
    assert "Lead" not in doc["components"]["schemas"]
    # what the document leaves out, the API refuses
    assert client.get("/api/lead").status_code == 403
    assert client.post("/api/product", json={"name": "x"}).status_code == 403
    assert client.delete("/api/account/1").status_code in (403, 404)
    # and what it describes, the API accepts
    described = next(p for p in account_list if p["name"] == "filters")["schema"]["properties"]
    for key in described:
        name, _, op = key.partition("__")
        value = _filter_value(MODEL.entity("account"), name, op or "eq")
        assert client.get("/api/account", params={key: value}).status_code == 200, key


@pytest.mark.parametrize("role", sorted(MODEL.roles.names))
def test_every_shipped_role_gets_a_document_true_to_its_roles(env: Env, role: str) -> None:
    """For each role of config/roles.yaml: an entity is described iff the role may do
    something with it, each described operation is one its scope allows, no field hidden
    from it appears in its schemas or filters, and every reference resolves."""
    doc, _ = _document_of(env, f"user_{role}", role, "SH")
    actor = env.users.by_name(f"user_{role}").actor()
    policy = env.records.policy
    for ref in _refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    needs = {("", "get"): "read", ("", "post"): "create", ("/{record_id}", "get"): "read",
             ("/{record_id}", "patch"): "update", ("/{record_id}", "delete"): "delete",
             ("/{record_id}/team", "post"): "update", ("/{record_id}/history", "get"): "read",
             ("/changes", "get"): "read"}
    for e in MODEL.entities:
        allowed = {a for a in ("create", "read", "update", "delete", "export", "assign")
                   if policy.scope(actor, e.name, a).value != "none"}
        described = _cap(e.name) in doc["components"]["schemas"]
        assert described == (bool(allowed) or policy.is_admin(actor)), e.name
        if not described:
            assert not any(p.startswith(f"/api/{e.name}/") or p == f"/api/{e.name}"
                           for p in doc["paths"])
            continue
        for (suffix, method), action in needs.items():
            item = doc["paths"].get(f"/api/{e.name}{suffix}", {})
            assert (method in item) == (action in allowed or policy.is_admin(actor)), (
                e.name, suffix, method)
        hidden = policy.hidden_fields(actor, e)
        for schema in ("", "Create", "Patch"):
            assert not _props(doc, _cap(e.name) + schema) & hidden, (e.name, schema)
        if "get" in doc["paths"].get(f"/api/{e.name}", {}):
            filters = next(p for p in doc["paths"][f"/api/{e.name}"]["get"]["parameters"]
                           if p["name"] == "filters")["schema"]["properties"]
            assert not {k.partition("__")[0] for k in filters} & hidden, e.name


def test_a_field_read_only_for_the_caller_is_read_only_in_its_document(env: Env) -> None:
    doc, _ = _document_of(env, "rep", "sales_rep", "SH")  # account credit_limit: readonly
    assert doc["components"]["schemas"]["Account"]["properties"]["credit_limit"][
        "readOnly"] is True
    for schema in ("AccountCreate", "AccountPatch"):
        assert not _props(doc, schema) & {"credit_limit", "tier"}
    assert "lead" in {t for item in doc["paths"].values() for op in item.values()
                      for t in op.get("tags", [])}
    assert "/api/access/transfer" not in doc["paths"]


def test_document_structure() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert DOC["info"]["title"] == "MetaCRM API"
    assert DOC["info"]["version"] == MODEL.config_hash[:12]
    assert DOC["components"]["securitySchemes"] == {"bearer": {"type": "http",
                                                               "scheme": "bearer"}}
    assert DOC["security"] == [{"bearer": []}]
    operation_ids = [op["operationId"] for _, _, op in _operations()]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    for path, method, op in _operations():
        assert path.startswith("/api/"), path
        assert op["responses"], (path, method)
        for status, response in op["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), (path, method, status)
            assert response["description"], (path, method, status)
        params = op.get("parameters", [])
        keys = [(p["name"], p["in"]) for p in params]
        assert len(keys) == len(set(keys)), (path, method)
        assert all(p["in"] in ("query", "path", "header", "cookie") for p in params)
        path_params = {p["name"] for p in params if p["in"] == "path"}
        assert path_params == set(re.findall(r"{(\w+)}", path)), (path, method)
        assert all(p["required"] is True for p in params if p["in"] == "path")
        for p in params:
            Draft202012Validator.check_schema(p["schema"])


def test_every_reference_resolves() -> None:
    refs = _refs(DOC)
    assert refs
    for ref in refs:
        assert isinstance(_resolve(ref), dict), ref


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_component_schema_is_valid_json_schema_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(SCHEMAS[name])


def test_every_entity_has_its_routes_and_schemas() -> None:
    expected_paths: dict[str, set[str]] = {"/api/access/transfer": {"post"}, **NOTIFICATIONS,
                                           **REPORTS, **PIPELINE}
    for e in MODEL.entities:
        n = _cap(e.name)
        assert {n, f"{n}Create", f"{n}Patch", f"{n}Page", f"{n}Changes"} <= set(SCHEMAS)
        expected_paths |= {
            f"/api/{e.name}": {"get", "post"},
            f"/api/{e.name}/{{record_id}}": {"get", "patch", "delete"},
            f"/api/{e.name}/changes": {"get"},
            f"/api/{e.name}/{{record_id}}/history": {"get"},
            f"/api/{e.name}/{{record_id}}/timeline": {"get"},
            f"/api/{e.name}/{{record_id}}/automation": {"get"},
            f"/api/{e.name}/{{record_id}}/actions/{{action}}": {"post"},
            f"/api/{e.name}/{{record_id}}/team": {"get", "post"},
            f"/api/{e.name}/{{record_id}}/team/{{user_id}}": {"delete"},
            f"/api/access/explain/{e.name}/{{record_id}}": {"get"},
            f"/api/{e.name}/bulk": {"post"},
        }
        assert {f"{n}Bulk", f"{n}BulkItem"} <= set(SCHEMAS)
        if any(f.computed for f in e.fields):
            expected_paths[f"/api/{e.name}/{{record_id}}/explain/{{field}}"] = {"get"}
        if e.name != "department":
            expected_paths[f"/api/{e.name}/{{record_id}}/actions/merge"] = {"post"}
        if e.duplicates:
            expected_paths[f"/api/{e.name}/duplicates"] = {"get"}
        if _has_files(e):
            files = f"/api/{e.name}/{{record_id}}/attachments"
            expected_paths[files] = {"get", "post"}
            expected_paths[files + "/{attachment_id}"] = {"get", "delete"}
        ops = DOC["paths"]
        assert ops[f"/api/{e.name}"]["get"]["responses"]["200"]["content"][
            "application/json"]["schema"] == {"$ref": f"#/components/schemas/{n}Page"}
        assert ops[f"/api/{e.name}"]["post"]["requestBody"]["content"]["application/json"][
            "schema"] == {"$ref": f"#/components/schemas/{n}Create"}
        assert ops[f"/api/{e.name}/{{record_id}}"]["patch"]["requestBody"]["content"][
            "application/json"]["schema"] == {"$ref": f"#/components/schemas/{n}Patch"}
        for method in ("get", "patch"):
            assert ops[f"/api/{e.name}/{{record_id}}"][method]["responses"]["200"]["content"][
                "application/json"]["schema"] == {"$ref": f"#/components/schemas/{n}"}
    approving = {f.entity for f in MODEL.flows if f.approvals}
    assert approving >= {"quote", "contract", "expense"}
    expected_paths |= {f"/api/{name}/{{record_id}}/approvals": {"get"} for name in approving}
    expected_paths |= {"/api/approvals": {"get"}, "/api/approvals/count": {"get"},
                       "/api/approvals/delegation": {"get", "put", "delete"},
                       "/api/approvals/{task}/approve": {"post"},
                       "/api/approvals/{task}/reject": {"post"}}
    actual = {path: {m for m in item if m in METHODS} for path, item in DOC["paths"].items()}
    assert actual == expected_paths


def test_every_api_route_of_the_app_is_described(env: Env) -> None:
    app = create_app(env.model, env.engine)
    templates = {r.path: {m.lower() for m in r.methods or ()} - {"head"}
                 for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/")}
    assert templates == {
        "/api/{entity}": {"get", "post"},
        "/api/{entity}/{record_id}": {"get", "patch", "delete"},
        "/api/{entity}/duplicates": {"get"},
        "/api/{entity}/changes": {"get"},
        "/api/{entity}/{record_id}/history": {"get"},
        "/api/{entity}/{record_id}/timeline": {"get"},
        "/api/{entity}/{record_id}/automation": {"get"},
        "/api/{entity}/{record_id}/actions/{action}": {"post"},
        "/api/{entity}/{record_id}/explain/{field}": {"get"},
        "/api/{entity}/{record_id}/team": {"get", "post"},
        "/api/{entity}/{record_id}/team/{user_id}": {"delete"},
        "/api/{entity}/{record_id}/attachments": {"get", "post"},
        "/api/{entity}/{record_id}/attachments/{attachment_id}": {"get", "delete"},
        "/api/access/explain/{entity}/{record_id}": {"get"},
        "/api/access/transfer": {"post"},
        "/api/approvals": {"get"},
        "/api/approvals/count": {"get"},
        "/api/approvals/delegation": {"get", "put", "delete"},
        "/api/approvals/{task}/approve": {"post"},
        "/api/approvals/{task}/reject": {"post"},
        "/api/{entity}/{record_id}/approvals": {"get"},
        "/api/{entity}/bulk": {"post"},
        **NOTIFICATIONS,
        **REPORTS,
        **PIPELINE,
    }
    assert {m for m in DOC["paths"]["/api/access/transfer"] if m in METHODS} == {"post"}
    for template, methods in templates.items():
        if template.startswith("/api/approvals") or template in NOTIFICATIONS \
                or template in REPORTS or template in PIPELINE:
            assert {m for m in DOC["paths"][template] if m in METHODS} == methods
    approving = {f.entity for f in env.model.flows if f.approvals}
    for e in env.model.entities:
        for template, methods in templates.items():
            if template == "/api/access/transfer" or template.startswith("/api/approvals") \
                    or template in NOTIFICATIONS or template in REPORTS \
                    or template in PIPELINE:
                continue
            if template.endswith("/approvals"):
                path = template.replace("{entity}", e.name)
                assert (path in DOC["paths"]) == (e.name in approving)
                continue
            path = template.replace("{entity}", e.name)
            if template.endswith("/explain/{field}") and not any(f.computed for f in e.fields):
                assert path not in DOC["paths"]
                continue
            if "/attachments" in template and not _has_files(e):
                assert path not in DOC["paths"]
                continue
            if template.endswith("/duplicates") and not e.duplicates:
                assert path not in DOC["paths"]
                continue
            assert {m for m in DOC["paths"][path] if m in METHODS} == methods


def _has_files(e: Entity) -> bool:
    """Whether records of `e` have attachments (a list, or a file field)."""
    return e.attachments or any(f.type is FieldType.FILE for f in e.fields)


def _expected_field_schema(f: Field) -> dict[str, Any]:
    """The essential keywords a field's property must carry."""
    t = f.type
    if t in (FieldType.MONEY, FieldType.DECIMAL, FieldType.PERCENT):
        return {"type": "string", "format": "decimal"}
    if t in (FieldType.REFERENCE, FieldType.USER, FieldType.DEPARTMENT):
        return {"type": "integer", "minimum": 1}
    if t is FieldType.REGARDING:
        return {"type": "object", "required": ["entity", "id"]}
    if t is FieldType.CHOICE:
        return {"type": "string", "enum": list(f.options)}
    if t is FieldType.MULTICHOICE:
        return {"type": "array", "items": {"type": "string", "enum": list(f.options)}}
    if t is FieldType.INTEGER:
        return {"type": "integer"}
    if t is FieldType.BOOLEAN:
        return {"type": "boolean"}
    formats = {FieldType.DATE: "date", FieldType.DATETIME: "date-time",
               FieldType.EMAIL: "email", FieldType.URL: "uri"}
    if t in formats:
        return {"type": "string", "format": formats[t]}
    return {"type": "string"}


@pytest.mark.parametrize(("entity", "field"), FIELDS)
def test_every_field_has_a_property_of_the_right_type(entity: str, field: str) -> None:
    f = MODEL.entity(entity).field(field)
    n = _cap(entity)
    if f.derived:  # computed or rollup: the engine writes it
        assert SCHEMAS[n]["properties"][field]["readOnly"] is True
        assert field not in SCHEMAS[f"{n}Create"]["properties"]
        assert field not in SCHEMAS[f"{n}Patch"]["properties"]
    for component in (n,) if f.derived else (n, f"{n}Create", f"{n}Patch"):
        prop, nullable = _nullable(SCHEMAS[component]["properties"][field])
        assert nullable is not f.required, (component, field)
        for key, value in _expected_field_schema(f).items():
            assert prop[key] == value, (component, field, key)
        assert prop["title"] == f.label.get()
        if f.max_length and f.type not in (FieldType.CHOICE, FieldType.MULTICHOICE):
            assert prop["maxLength"] == f.max_length
        if f.type is FieldType.INTEGER and f.min is not None:
            assert prop["minimum"] == int(f.min)
        if f.type is FieldType.INTEGER and f.max is not None:
            assert prop["maximum"] == int(f.max)
        if f.type in (FieldType.MONEY, FieldType.DECIMAL, FieldType.PERCENT):
            assert re.fullmatch(prop["pattern"], "1234.50")
            assert not re.fullmatch(prop["pattern"], "12e3")


@pytest.mark.parametrize("entity", MODEL.entity_names)
def test_write_schemas_hold_only_fields(entity: str) -> None:
    e = MODEL.entity(entity)
    n = _cap(entity)
    create, patch, read = SCHEMAS[f"{n}Create"], SCHEMAS[f"{n}Patch"], SCHEMAS[n]
    stored = [f.name for f in e.stored_fields if not f.derived]
    # a record whose form edits lines as a grid is written (and read, ?include=lines) with
    # them (docs/api.md)
    lines = ["lines"] if MODEL.form(entity).lines is not None else []
    assert list(create["properties"]) == [*stored, *lines]
    assert create["additionalProperties"] is False
    assert create["required"] == [f.name for f in e.fields if f.required and f.default is None]
    assert list(patch["properties"]) == ["version", *stored, *lines]
    assert patch["required"] == ["version"] and patch["additionalProperties"] is False
    assert list(read["properties"]) == [*ENGINE_COLUMNS, *e.field_names, *lines]
    assert all(read["properties"][c]["readOnly"] is True for c in ENGINE_COLUMNS)


# -- the document against the API --------------------------------------------------------


def _sample(f: Field) -> Any:
    """A valid value for `f` (links are filled in by the caller)."""
    t = f.type
    samples: dict[FieldType, Any] = {
        FieldType.TEXT: f"Sample {f.name}", FieldType.TEXTAREA: "Line one\nLine two",
        FieldType.INTEGER: int(f.max) if f.max is not None else 42,
        FieldType.DECIMAL: "12.3456", FieldType.MONEY: "1234.50", FieldType.PERCENT: "12.5",
        FieldType.BOOLEAN: True, FieldType.DATE: "2025-03-31",
        FieldType.DATETIME: "2025-03-31T14:30:00+02:00", FieldType.EMAIL: "ann@example.com",
        FieldType.PHONE: "+49 30 1234567", FieldType.URL: "https://example.com/a",
        FieldType.AUTONUMBER: "QT-2026-0001",  # filters only: nobody writes a number
    }
    if t in (FieldType.CHOICE, FieldType.MULTICHOICE):
        return f.options[-1] if t is FieldType.CHOICE else list(f.options[:2])
    return samples[t]


def _creation_order(entities: tuple[Entity, ...]) -> list[Entity]:
    done: list[Entity] = []
    while len(done) < len(entities):
        for e in entities:
            targets = {f.target for f in e.fields if f.target and f.target != e.name}
            if any(f.type is FieldType.REGARDING for f in e.fields):  # after what it points at
                targets |= {x.name for x in entities
                            if not any(f.type is FieldType.REGARDING for f in x.fields)}
            if e not in done and targets <= {d.name for d in done}:
                done.append(e)
    return done


RULE_NEEDS: dict[str, tuple[str, ...]] = {
    "work_order": ("service_request",),  # carries out a service request or a service plan
    "sales_target": ("target_department",),  # set for a department or a salesperson
    "campaign_member": ("lead",),  # an account, a contact or a lead takes part
    "execution_plan_line": ("planned_amount",),  # a dunning line (the last kind) has one
}
"""Fields a shipped entity's validation rules need beyond its required ones."""


def test_records_of_every_entity_validate_against_their_schemas(
        api: TestClient, env: Env) -> None:
    made: dict[str, int] = {}
    for e in _creation_order(env.model.entities):
        n = _cap(e.name)
        full: dict[str, Any] = {}
        for f in e.stored_fields:
            if f.derived:
                continue
            if f.type is FieldType.USER:
                full[f.name] = env.admin.id
            elif f.target:
                full[f.name] = made.get(f.target)  # a link to itself stays blank
            elif f.type is FieldType.REGARDING:  # the first record made, of any entity
                first = next(iter(made.items()))
                full[f.name] = {"entity": first[0], "id": first[1]}
            else:
                full[f.name] = _sample(f)
        for f in MODEL.flows:  # an approved option is the approvers' to give
            for rule in f.approvals if f.entity == e.name else ():
                full[rule.field] = e.field(rule.field).options[0]
        minimal = {f.name: full[f.name] for f in e.fields if f.required}
        # what a validation rule asks for beyond `required` (one of two fields, …)
        minimal |= {name: full[name] for name in RULE_NEEDS.get(e.name, ())}
        for f in e.fields:  # the second record needs its own unique values
            if f.unique and f.name in minimal:
                minimal[f.name] = f"Second {f.name}"
        for body in (full, minimal):
            assert not list(validator(f"{n}Create").iter_errors(body)), body
            created = api.post(f"/api/{e.name}", json=body)
            assert created.status_code == 201, created.text
            record = created.json()
            made.setdefault(e.name, record["id"])
            assert set(record) <= set(SCHEMAS[n]["properties"])
            errors = [e.message for e in validator(n).iter_errors(record)]
            assert errors == [], (e.name, errors)
        fetched = api.get(f"/api/{e.name}/{made[e.name]}").json()
        assert not list(validator(n).iter_errors(fetched))
        page = api.get(f"/api/{e.name}").json()
        assert not list(validator(f"{n}Page").iter_errors(page))
        assert page["total"] == 2
        patch = {"version": fetched["version"]}
        assert not list(validator(f"{n}Patch").iter_errors(patch))
        history = api.get(f"/api/{e.name}/{made[e.name]}/history").json()
        assert not list(validator("History").iter_errors(history))
        changes = api.get(f"/api/{e.name}/changes").json()
        assert not list(validator(f"{n}Changes").iter_errors(changes)), e.name
        assert {i["id"] for i in changes["items"]} >= {made[e.name]}
        # a flow that sets fields of a new record does so as a change of its own
        set_on_create = any(
            f.entity == e.name and "create" in t.on and any(a.kind == "set" for a in t.actions)
            for f in MODEL.flows for t in f.triggers)
        assert {r["action"] for r in history["items"]} == (
            {"create", "update"} if set_on_create else {"create"}), e.name


def test_a_rollup_is_read_only_and_says_what_it_sums() -> None:
    account = SCHEMAS["Account"]["properties"]
    pipeline, nullable = _nullable(account["open_pipeline"])
    assert nullable and account["open_pipeline"]["readOnly"] is True
    assert pipeline["format"] == "decimal"  # money: the result type of a sum of money
    assert account["open_pipeline"]["description"] == (
        'rollup: sum(opportunity.weighted) via account '
        'where NOT(OR(stage = "won", stage = "lost"))')
    assert _nullable(account["open_deals"])[0]["type"] == "integer"
    for name in ("open_deals", "open_pipeline", "won_amount"):
        assert account[name]["readOnly"] is True
        assert name not in SCHEMAS["AccountCreate"]["properties"]
        assert name not in SCHEMAS["AccountPatch"]["properties"]
        assert list(validator("AccountCreate").iter_errors({"name": "Acme", name: 1}))
    # Lists filter and sort on it like any stored field of its type.
    params = {p["name"]: p for p in DOC["paths"]["/api/account"]["get"]["parameters"]}
    filters = params["filters"]["schema"]["properties"]
    assert {"open_pipeline", "open_pipeline__gte", "open_deals__lt", "won_amount__blank"} \
        <= set(filters)


def test_money_and_dates_match_the_documented_formats(api: TestClient) -> None:
    account = api.post("/api/account", json={"name": "Acme", "annual_revenue": 1234.5}).json()
    opp = api.post("/api/opportunity", json={
        "name": "Deal", "account": account["id"], "amount": "99", "close_date": "2025-12-01",
    }).json()
    assert opp["amount"] == "99.00" and account["annual_revenue"] == "1234.50"
    assert not list(validator("Opportunity").iter_errors(opp))
    bad = {**opp, "amount": 99.0}  # a float would break exactness: the schema refuses it
    assert list(validator("Opportunity").iter_errors(bad))
    bad_date = {**opp, "close_date": "01/12/2025"}
    assert list(validator("Opportunity").iter_errors(bad_date))


def test_an_unknown_field_breaks_the_create_schema_and_the_api_alike(
        api: TestClient) -> None:
    body = {"name": "Acme", "colour": "red"}
    assert list(validator("AccountCreate").iter_errors(body))
    error = assert_error(api.post("/api/account", json=body), 422, "invalid")
    assert error["fields"] == {"colour": "unknown field of account"}


def test_a_rollup_breaks_the_create_schema_and_the_api_alike(api: TestClient) -> None:
    body = {"name": "Acme", "open_deals": 5}
    assert list(validator("AccountCreate").iter_errors(body))
    error = assert_error(api.post("/api/account", json=body), 422, "invalid")
    assert list(error["fields"]) == ["open_deals"]
    made = api.post("/api/account", json={"name": "Acme"}).json()
    assert made["open_deals"] == 0 and made["won_amount"] == "0.00"
    patch = {"version": made["version"], "won_amount": "1.00"}
    assert list(validator("AccountPatch").iter_errors(patch))
    error = assert_error(api.patch(f"/api/account/{made['id']}", json=patch), 422, "invalid")
    assert list(error["fields"]) == ["won_amount"]


def test_error_responses_match_the_error_schema(api: TestClient, env: Env) -> None:
    responses = [env.client().get("/api/account"), api.get("/api/account/999"),
                 api.post("/api/account", json={}), api.get("/api/account?sort=x;--")]
    for resp in responses:
        assert resp.status_code >= 400
        assert not list(validator("Error").iter_errors(resp.json()))


def _filter_value(e: Entity, name: str, op: str) -> str:
    """A value the API takes for `name__op` (an engine column or a field of `e`)."""
    t = e.field(name).type if e.has_field(name) else ENGINE_SORTABLE[name]
    if op == "blank":
        return "true"
    if op == "contains":
        return "a"
    if t in (FieldType.REFERENCE, FieldType.USER, FieldType.DEPARTMENT):
        return "1"
    if t is FieldType.REGARDING:
        return "account:1"
    if t is FieldType.INTEGER:
        return "7"
    if t is FieldType.DATETIME:
        return "2025-03-31T14:30:00Z"
    value = _sample(e.field(name))
    if isinstance(value, list):
        return str(value[0])
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("entity", MODEL.entity_names)
def test_the_described_filters_are_exactly_the_accepted_ones(
        api: TestClient, entity: str) -> None:
    e = MODEL.entity(entity)
    params = DOC["paths"][f"/api/{entity}"]["get"]["parameters"]
    described = next(p for p in params if p["name"] == "filters")
    assert described["style"] == "form" and described["explode"] is True
    properties = described["schema"]["properties"]
    names = [*e.field_names, *ENGINE_SORTABLE]
    for name in names:
        for op in OPERATORS:
            key = name if op == "eq" else f"{name}__{op}"
            value = _filter_value(e, name, op)
            resp = api.get(f"/api/{entity}", params={key: value})
            if key in properties:
                assert resp.status_code == 200, (key, resp.text)
                Draft202012Validator(properties[key]).validate(
                    True if op == "blank" else value)
            else:
                error = assert_error(resp, 400, "bad_request")
                assert set(error["fields"]) == {key}, (key, error)
    assert set(properties) <= {n if op == "eq" else f"{n}__{op}"
                               for n in names for op in OPERATORS}


def test_the_export_format_and_its_files_are_described() -> None:
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    for path in ("/api/opportunity", "/api/reports/{report}"):
        op = DOC["paths"][path]["get"]
        fmt = next(p for p in op["parameters"] if p["name"] == "format")
        assert fmt["in"] == "query" and fmt["schema"] == {"enum": ["json", "csv", "xlsx"]}
        content = op["responses"]["200"]["content"]
        assert {"application/json", "text/csv", xlsx} <= set(content)
        assert content[xlsx]["schema"] == {"type": "string", "format": "binary"}
        assert "400" in op["responses"] and "403" in op["responses"]


def test_every_post_takes_an_idempotency_key() -> None:
    """engine/web/idempotency.py keys every POST under /api: each one says so, with the
    answers a key may bring."""
    posts = [(path, item["post"]) for path, item in DOC["paths"].items() if "post" in item]
    assert posts
    for path, post in posts:
        keys = [p for p in post.get("parameters", []) if p.get("name") == "Idempotency-Key"]
        assert len(keys) == 1, path
        assert keys[0]["in"] == "header" and keys[0]["required"] is False
        assert keys[0]["schema"]["maxLength"] == 255
        assert {"400", "409", "422"} <= set(post["responses"]), path
    for item in DOC["paths"].values():
        for method in set(item) & (METHODS - {"post"}):
            assert all(p.get("name") != "Idempotency-Key"
                       for p in item[method].get("parameters", []))


def test_duplicates_are_described_where_an_entity_has_rules(env: Env) -> None:
    """The create of an entity with duplicate rules takes allow_duplicate and may answer 409
    with the candidates; /api/<entity>/duplicates takes the rules' fields."""
    create = DOC["paths"]["/api/account"]["post"]
    assert [p["name"] for p in create["parameters"]] == ["allow_duplicate", "Idempotency-Key"]
    assert "409" in create["responses"]
    assert [p["name"] for p in DOC["paths"]["/api/product"]["post"]["parameters"]] == [
        "Idempotency-Key"]
    ask = DOC["paths"]["/api/account/duplicates"]["get"]
    assert [p["name"] for p in ask["parameters"]] == ["name", "phone", "city"]
    assert "candidates" in SCHEMAS["Error"]["properties"]["error"]["properties"]
    api = env.client(env.users.new_token("admin"))
    api.post("/api/account", json={"name": "Acme", "city": "Bonn"})
    refused = api.post("/api/account", json={"name": "ACME Ltd", "city": "Bonn"})
    assert refused.status_code == 409
    Draft202012Validator(SCHEMAS["Error"]).validate(refused.json())
    for item in refused.json()["error"]["candidates"]:
        Draft202012Validator(SCHEMAS["DuplicateCandidate"]).validate(item)
