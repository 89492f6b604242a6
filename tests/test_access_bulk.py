"""Bulk reads (engine/runtime/access/bulk.py): a page above ORDINARY_PAGE_SIZE needs the
`export` permission of roles.yaml, on every path a client sets the page size: the JSON list,
the HTML list and the recycle bin; the decision tree draws more nodes than that only for
exporters. Above MAX_PAGE_SIZE, a 400 naming the bound."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from engine.metadata.roles import Scope
from engine.runtime.access.bulk import ORDINARY_PAGE_SIZE
from engine.runtime.records.query import MAX_PAGE_SIZE
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.test_api import assert_error
from tests.web_helpers import sign_in

BULK = ORDINARY_PAGE_SIZE + 1


@pytest.fixture
def people(env: Env) -> dict[str, TestClient]:
    """API clients of users whose read and export scopes differ (config/roles.yaml):
    sales_rep reads accounts of the department but exports only its own, and reads and
    exports its own opportunities; the executive reads and exports everything; the partner
    exports nothing."""
    sh = departments(env)["SH"]
    clients = {}
    for name, role in [("rep", "sales_rep"), ("exec", "executive"), ("partner", "partner")]:
        person = user(env, name, role, department=sh)
        place(env, "account", {"name": f"{name}'s account"}, owner=person, department=sh)
        clients[name] = env.client(env.users.new_token(name))
    clients["admin"] = env.client(env.users.new_token("admin"))
    return clients


def test_an_ordinary_page_is_for_every_reader(people: dict[str, TestClient]) -> None:
    for name, client in people.items():
        resp = client.get("/api/account", params={"page_size": ORDINARY_PAGE_SIZE})
        assert resp.status_code == 200, (name, resp.text)
        assert resp.json()["page_size"] == ORDINARY_PAGE_SIZE


@pytest.mark.parametrize(("name", "entity", "status"), [
    ("rep", "account", 403),  # read: department, export: own
    ("rep", "opportunity", 200),  # read: own, export: own
    ("partner", "account", 403),  # read: own, no export
    ("exec", "account", 200),  # read: all, export: all
    ("admin", "account", 200),
])
def test_a_bulk_page_needs_an_export_scope_covering_the_read_scope(
        people: dict[str, TestClient], name: str, entity: str, status: int) -> None:
    resp = people[name].get(f"/api/{entity}", params={"page_size": BULK})
    if status == 200:
        assert resp.status_code == 200, resp.text
        assert resp.json()["page_size"] == BULK
        return
    error = assert_error(resp, 403, "forbidden")
    assert "export" in error["message"] and f"more than {ORDINARY_PAGE_SIZE}" in error["message"]
    assert error["fields"] == {
        "page_size": f"more than {ORDINARY_PAGE_SIZE} needs the export permission"}


def test_a_page_above_the_maximum_is_400_naming_the_bound(people: dict[str, TestClient]) -> None:
    for client in people.values():
        error = assert_error(client.get("/api/account", params={"page_size": MAX_PAGE_SIZE + 1}),
                             400, "bad_request")
        assert error["fields"] == {"page_size": f"must be a whole number from 1 to {MAX_PAGE_SIZE}"}


def _browser(env: Env, name: str) -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, "a-password").status_code == 303
    return client


@pytest.mark.parametrize("path", ["/e/account", "/e/account/trash"])
def test_the_list_pages_hold_the_same_bound(env: Env, people: dict[str, TestClient],
                                            path: str) -> None:
    rep, boss = _browser(env, "rep"), _browser(env, "exec")
    assert rep.get(path, params={"page_size": ORDINARY_PAGE_SIZE}).status_code == 200
    refused = rep.get(path, params={"page_size": BULK})
    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    assert "export permission" in refused.text
    assert boss.get(path, params={"page_size": BULK}).status_code == 200
    assert rep.get(path, params={"page_size": MAX_PAGE_SIZE + 1}).status_code == 400


def test_a_tree_draws_more_nodes_than_a_list_page_only_for_exporters(
        env: Env, people: dict[str, TestClient]) -> None:
    """The decision tree of an account (engine/web/pages/tree.py) draws up to 500 contacts:
    above ORDINARY_PAGE_SIZE for those who may read contacts in bulk only."""
    sh = departments(env)["SH"]
    account = place(env, "account", {"name": "Big account"}, department=sh)["id"]
    t = env.records.schema.table("contact")
    with env.engine.begin() as conn:  # many rows at once; the tree only reads them
        conn.execute(t.insert(), [
            {"full_name": f"Contact {i:03}", "account": account, "department_id": sh,
             "version": 1, "created_at": env.records.clock(), "updated_at": env.records.clock()}
            for i in range(BULK + 4)])
    path = f"/e/account/{account}/tree/contact"
    rep = _browser(env, "rep").get(path)  # contact: read department, export own
    assert rep.status_code == 200
    assert f"Showing {ORDINARY_PAGE_SIZE} of {BULK + 4} records." in rep.text
    assert rep.text.count('class="tree-item') == ORDINARY_PAGE_SIZE
    boss = _browser(env, "exec").get(path)  # read all, export all
    assert "Showing" not in boss.text
    assert boss.text.count('class="tree-item') == BULK + 4


ROLES = ("admin", "executive", "sales_manager", "sales_rep", "presales", "marketing",
         "finance", "service_manager", "service_agent", "partner")
ENTITIES = ("account", "contact", "opportunity", "lead", "activity", "product", "contract",
            "invoice", "service_request", "expense")


class Everyone:
    """One API client per shipped role; a short repr for Hypothesis."""

    def __init__(self, env: Env) -> None:
        self.env = env
        sh = departments(env)["SH"]
        for role in ROLES:
            user(env, f"r_{role}", role, department=sh)
        self.clients = {role: env.client(env.users.new_token(f"r_{role}")) for role in ROLES}

    def __repr__(self) -> str:
        return f"Everyone({self.env.engine.dialect.name})"


@pytest.fixture
def everyone(env: Env) -> Everyone:
    return Everyone(env)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(role=st.sampled_from(ROLES), entity=st.sampled_from(ENTITIES),
       size=st.integers(1, MAX_PAGE_SIZE + 100) | st.sampled_from(
           [ORDINARY_PAGE_SIZE, BULK, MAX_PAGE_SIZE, MAX_PAGE_SIZE + 1]))
def test_any_page_size_for_any_role(everyone: Everyone, role: str, entity: str,
                                    size: int) -> None:
    """400 above the maximum; else 403 for a reader whose export scope does not cover the
    read scope above ORDINARY_PAGE_SIZE (or who may not read at all); else the page."""
    env = everyone.env
    policy = env.records.policy
    actor = env.users.by_name(f"r_{role}").actor()
    read = policy.scope(actor, entity, "read")
    export = policy.scope(actor, entity, "export")
    resp = everyone.clients[role].get(f"/api/{entity}", params={"page_size": size})
    if size > MAX_PAGE_SIZE:
        assert_error(resp, 400, "bad_request")
    elif read is Scope.NONE or (size > ORDINARY_PAGE_SIZE and export.rank < read.rank):
        assert_error(resp, 403, "forbidden")
    else:
        assert resp.status_code == 200, resp.text
        assert resp.json()["page_size"] == size
