"""The access matrix (issue 4): every user x every route and action, through HTTP.

The world (tests/access_world.py): departments HQ > REGION > BRANCH and OTHER outside the
tree, one user per scope (none, own, department, department_tree, all), a read-only user, a
team member and an admin. Each cell asserts the exact status and that no marker of a record
the user cannot see, and no value of a field hidden from them, appears anywhere in the
response body. The expected outcomes are tables written from the roles, not asked of the
policy. One world per test and database; the cells loop inside and every mismatch is
reported at the end, named by user, entity, action and record.

The last test runs the same kind of checks against the shipped config/roles.yaml.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from httpx import Response

from tests.access_world import (
    ACTORS,
    ALL_SHIPPED_USERS,
    ASSIGNABLE,
    CAN_CREATE,
    DELETABLE,
    EVERY_ENTITY_HIDDEN,
    EVERY_ENTITY_SCOPES,
    HIDDEN_FIELD,
    HIDES,
    KEYS,
    OPP_ACCOUNT,
    OWNER,
    OWNERS,
    READABLE_ACCOUNT,
    READONLY,
    READONLY_FIELD,
    REFERENCE_FIELD,
    SHIPPED_HIDDEN,
    SHIPPED_SEES,
    SHIPPED_USERS,
    UNREADABLE_ACCOUNT,
    UPDATABLE,
    USERS,
    VISIBLE,
    Checker,
    World,
    build_every_entity_world,
    build_shipped_world,
    build_world,
    name_marker,
    reached,
)
from tests.conftest import EnvFactory

ENTITIES = ("opportunity", "account")
READABLE = {u: v or frozenset() for u, v in VISIBLE.items()}


@pytest.fixture
def world(make_env: EnvFactory, config_dir: Path) -> World:
    return build_world(make_env, config_dir)


def _status(user: str, key: str, allowed: dict[str, frozenset[str]]) -> int:
    """403 when the role grants nothing on the entity, 404 for a record outside the read
    scope, 403 for a visible one outside `allowed`, else 200."""
    visible = VISIBLE[user]
    if visible is None:
        return 403
    if key not in visible:
        return 404
    return 200 if key in allowed[user] else 403


def _ids(resp: Response) -> set[int]:
    return {item["id"] for item in resp.json()["items"]}


def _grouped(value: str) -> str:
    """A number as a page shows it, with thousands separators; other text as it is."""
    try:
        return f"{Decimal(value):,}"
    except InvalidOperation:
        return value


@dataclass
class As:
    """One user's requests on one entity, each checked as a named cell."""

    world: World
    check: Checker
    entity: str
    user: str
    forbidden: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.forbidden = self.world.forbidden(self.user)

    def expect(self, what: str, resp: Response, status: int,
               error_field: str | None = None) -> bool:
        return self.check.expect(f"{self.user} {self.entity} {what}", resp, status,
                                 forbidden=self.forbidden, error_field=error_field)

    def call(self, method: str, url: str, body: Any = None,
             params: dict[str, str] | None = None) -> Response:
        return self.world.call(self.user, method, url, body, params)

    def listing(self, what: str, params: dict[str, str], expect: set[int], *,
                hidden_used: bool = False) -> None:
        """A list: 403 without read, 400 (as for a field that does not exist) when it
        touches a hidden field, else exactly the records `expect`, counted right."""
        status = 403 if VISIBLE[self.user] is None \
            else 400 if hidden_used and self.user in HIDES else 200
        resp = self.call("GET", f"/api/{self.entity}", params={"page_size": "200", **params})
        if self.expect(what, resp, status) and status == 200:
            got, total = _ids(resp), resp.json()["total"]
            self.check.check(f"{self.user} {self.entity} {what}",
                             got == expect and total == len(expect),
                             f"ids {sorted(got)} total {total}, expected {sorted(expect)}")

    def create(self, what: str, extra: dict[str, Any], status: int,
               error_field: str | None = None) -> dict[str, Any] | None:
        readable = self.world.ids["account"][READABLE_ACCOUNT[self.user]]
        body = {"name": f"NEW-{self.user}-{what}", REFERENCE_FIELD[self.entity]: readable,
                **extra}
        if self.user not in CAN_CREATE:
            status, error_field = 403, None
        resp = self.call("POST", f"/api/{self.entity}", body)
        if self.expect(f"create {what}", resp, status, error_field) and status == 201:
            return resp.json()  # type: ignore[no-any-return]
        return None

    def patch(self, what: str, key: str, data: dict[str, Any], status: int,
              error_field: str | None = None) -> None:
        rid = self.world.ids[self.entity][key]
        body = {"version": self.world.version(self.entity, rid), **data}
        resp = self.call("PATCH", f"/api/{self.entity}/{rid}", body)
        self.expect(f"update {what} {key}", resp, status, error_field)


# -- reads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES)
def test_read_matrix(world: World, entity: str) -> None:
    """list, get, history, team, filters and sorts: what each user sees of each record."""
    check = Checker()
    ids, hidden = world.ids[entity], HIDDEN_FIELD[entity]
    for user in ACTORS:
        me = As(world, check, entity, user)
        mine = {ids[k] for k in READABLE[user]}
        me.listing("list", {"sort": "id"}, mine)
        me.listing(f"filter {hidden}__gt", {f"{hidden}__gt": "0"}, mine, hidden_used=True)
        me.listing(f"filter {hidden}__blank", {f"{hidden}__blank": "true"}, set(),
                   hidden_used=True)
        me.listing(f"?filter={hidden}", {"filter": f"{hidden} > 0"}, mine, hidden_used=True)
        me.listing(f"sort {hidden}", {"sort": f"-{hidden}"}, mine, hidden_used=True)
        if entity == "opportunity":
            me.listing("sort weighted", {"sort": "weighted"}, mine, hidden_used=True)
            me.listing("?filter=weighted", {"filter": "weighted > 0"}, mine, hidden_used=True)
            me.listing("?filter=account.credit_limit", {"filter": "account.credit_limit > 0"},
                       mine, hidden_used=True)
            for key in KEYS:  # a path through a reference sees only readable accounts
                expect = {ids[k] for k in READABLE[user]
                          if OPP_ACCOUNT[k] == key and key in READABLE[user]}
                me.listing(f"?filter=account.name of {key}",
                           {"filter": f'account.name = "{name_marker("account", key)}"'},
                           expect)
        for key in KEYS:
            rid = ids[key]
            me.listing(f"name= {key}", {"name": name_marker(entity, key)}, {rid} & mine)
            status = _status(user, key, READABLE)
            for action, url in (("get", f"/api/{entity}/{rid}"),
                                ("history", f"/api/{entity}/{rid}/history"),
                                ("team", f"/api/{entity}/{rid}/team")):
                resp = me.call("GET", url)
                if me.expect(f"{action} {key}", resp, status) and status == 200 \
                        and action == "get":
                    body = resp.json()
                    shown = {f for f in (hidden, "weighted") if f in body}
                    want = set() if user in HIDES else \
                        {hidden} | ({"weighted"} if entity == "opportunity" else set())
                    check.check(f"{user} {entity} get {key}", shown == want,
                                f"shows {shown}, expected {want}")
            if entity == "opportunity":
                resp = me.call("GET", f"/api/opportunity/{rid}/explain/score")
                me.expect(f"explain score {key}", resp, status)
                # Not a sum: 400 whatever the record, unless the field itself is hidden.
                resp = me.call("GET", f"/api/opportunity/{rid}/explain/weighted")
                me.expect(f"explain weighted {key}", resp, 403 if status == 403
                          else 404 if user in HIDES else 400)
    check.done()


# -- writes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES)
def test_create_update_matrix(world: World, entity: str) -> None:
    """create: allowed by role; owner and department from the creator; hidden, readonly and
    engine fields refused by name; references only to records the creator can read.
    update: the same refusals, on the records inside the update scope."""
    check = Checker()
    hidden, readonly, ref = HIDDEN_FIELD[entity], READONLY_FIELD[entity], REFERENCE_FIELD[entity]
    for user in ACTORS:
        me = As(world, check, entity, user)
        row = me.create("plain", {}, 201)
        if row is not None:
            dept = world.departments.get(USERS[user][1]) if user in USERS else None
            check.check(f"{user} {entity} create owner",
                        (row["owner_id"], row["department_id"]) == (world.user_ids[user], dept),
                        f"owner {row['owner_id']} department {row['department_id']}")
        me.create("hidden", {hidden: "1.00"}, *((422, hidden) if user in HIDES else (201,)))
        me.create("readonly", {readonly: "7"},
                  *((422, readonly) if user in READONLY else (201,)))
        for column in ("id", "version", "owner_id", "department_id", "created_by"):
            me.create(column, {column: 1}, 422, column)
        unreadable = UNREADABLE_ACCOUNT[user]
        if unreadable is not None:
            me.create("ref invisible", {ref: world.ids["account"][unreadable]}, 422, ref)
    # update: 404 outside the read scope, 403 outside the update scope; hidden, readonly
    # and engine fields and invisible references refused by name.
    for user in ACTORS:
        me = As(world, check, entity, user)
        for key in KEYS:
            status = _status(user, key, UPDATABLE)
            me.patch("plain", key, {"description": f"EDIT-{user}"}, status)
            if status != 200:
                continue
            if user in HIDES:
                me.patch("hidden", key, {hidden: "2.00"}, 422, hidden)
            if user in READONLY:
                me.patch("readonly", key, {readonly: "5"}, 422, readonly)
            me.patch("owner_id", key, {"owner_id": world.user_ids[user]}, 422, "owner_id")
            unreadable = UNREADABLE_ACCOUNT[user]
            if unreadable is not None:
                me.patch("ref invisible", key, {ref: world.ids["account"][unreadable]}, 422,
                         ref)
    check.done()


@pytest.mark.parametrize("entity", ENTITIES)
def test_delete_restore_assign_matrix(world: World, entity: str) -> None:
    """delete, restore (after one's own delete, and from the recycle bin), the recycle bin
    list, and assign. Each cell leaves the record live again for the next one."""
    check = Checker()
    for user in ACTORS:
        me = As(world, check, entity, user)
        for key in KEYS:
            rid = world.ids[entity][key]
            url = f"/api/{entity}/{rid}"
            status = _status(user, key, DELETABLE)
            resp = me.call("DELETE", url)
            if me.expect(f"delete {key}", resp, 204 if status == 200 else status) \
                    and status == 200:
                gone = world.call("admin", "GET", url)
                check.check(f"{user} {entity} delete {key}", gone.status_code == 404,
                            "still live")
                me.expect(f"restore own delete {key}", me.call("POST", f"{url}/actions/restore"),
                          200)
            world.admin_ok("GET", url)  # live (again)

            world.admin_ok("DELETE", url)
            in_bin = {rid} if key in READABLE[user] else set()
            me.listing(f"recycle bin with {key}", {"deleted": "true"}, in_bin)
            resp = me.call("GET", url, params={"deleted": "true"})
            me.expect(f"get in bin {key}", resp, _status(user, key, READABLE))
            resp = me.call("POST", f"{url}/actions/restore")
            me.expect(f"restore from bin {key}", resp, status)
            if world.call("admin", "GET", url).status_code == 404:
                world.admin_ok("POST", f"{url}/actions/restore")

            owner = world.user_ids[OWNER[key]]  # to the same owner: the world stays put
            resp = me.call("POST", f"{url}/actions/assign", {"owner": owner})
            me.expect(f"assign {key}", resp, _status(user, key, ASSIGNABLE))
    check.done()


# -- teams, assignment, transfer, explain ----------------------------------------------------


def test_team_membership_grants_read_then_edit(world: World) -> None:
    """A team member with read sees the record (not in their scope otherwise); with edit they
    may update it; delete and assign never come from a team; removed, it is gone again."""
    check = Checker()
    dept = As(world, check, "opportunity", "u_dept")
    owner = As(world, check, "opportunity", "u_own")
    rid = world.ids["opportunity"]["own"]
    url = f"/api/opportunity/{rid}"
    region = {world.ids["opportunity"]["region"]}
    dept.expect("get before team", dept.call("GET", url), 404)
    dept.expect("join own team", dept.call("POST", f"{url}/team", {"user": "u_dept"}), 404)
    dept.forbidden -= {name_marker("opportunity", "own")}  # visible from now on
    for access, can_edit in (("read", False), ("edit", True)):
        resp = owner.call("POST", f"{url}/team", {"user": "u_dept", "access": access})
        if owner.expect(f"add u_dept {access}", resp, 200):
            check.check(f"team {access}", [(m["user"], m["access"]) for m in
                                           resp.json()["items"]] == [("u_dept", access)],
                        f"team is {resp.json()['items']}")
        dept.expect(f"get as {access} member", dept.call("GET", url), 200)
        dept.listing(f"list as {access} member", {}, region | {rid})
        dept.patch(f"as {access} member", "own", {"description": "by team"},
                   200 if can_edit else 403)
        dept.expect(f"delete as {access} member", dept.call("DELETE", url), 403)
        dept.expect(f"assign as {access} member",
                    dept.call("POST", f"{url}/actions/assign", {"owner": "u_dept"}), 403)
    history = owner.call("GET", f"{url}/history")
    if owner.expect("history", history, 200):
        check.check("history", any(r["action"] == "team" for r in history.json()["items"]),
                    "team changes are not in the history")
    resp = owner.call("DELETE", f"{url}/team/{world.user_ids['u_dept']}")
    owner.expect("remove u_dept", resp, 200)
    dept.forbidden.add(name_marker("opportunity", "own"))
    dept.expect("get after removal", dept.call("GET", url), 404)
    dept.listing("list after removal", {}, region)
    reader = As(world, check, "opportunity", "u_reader")
    hq = world.ids["opportunity"]["hq"]
    reader.expect("team on visible, no update", reader.call(
        "POST", f"/api/opportunity/{hq}/team", {"user": "u_reader"}), 403)
    check.done()


def test_assign_moves_visibility(world: World) -> None:
    """Assigning to a user or to a department moves the record (and, for an account, its
    open opportunities owned by the old owner) in and out of each user's scope."""
    check = Checker()
    tree = As(world, check, "account", "u_tree")
    acc, opp = world.ids["account"]["branch"], world.ids["opportunity"]["branch"]
    resp = tree.call("POST", f"/api/account/{acc}/actions/assign", {"owner": "u_dept"})
    if tree.expect("assign branch to u_dept", resp, 200):
        body = resp.json()
        check.check("assign", body["cascaded"] == {"opportunity": 1}
                    and body["visible"] is True  # u_tree still sees u_dept's records
                    and body["record"]["owner_id"] == world.user_ids["u_dept"]
                    and body["record"]["department_id"] == world.departments["REGION"],
                    f"assign gave {body}")
    for user, status in (("o_branch", 404), ("u_dept", 200), ("u_tree", 200), ("u_own", 404)):
        for entity, rid in (("account", acc), ("opportunity", opp)):
            resp = world.call(user, "GET", f"/api/{entity}/{rid}")
            check.expect(f"{user} {entity} get after assign", resp, status)
    # To a department alone: no owner; that department's scope takes it in.
    hq = world.ids["opportunity"]["hq"]
    resp = world.call("admin", "POST", f"/api/opportunity/{hq}/actions/assign",
                      {"department": world.departments["BRANCH"]})
    if check.expect("admin assign hq to BRANCH", resp, 200):
        record = resp.json()["record"]
        check.check("assign to department", record["owner_id"] is None
                    and record["department_id"] == world.departments["BRANCH"], str(record))
    for user, status in (("o_hq", 404), ("u_tree", 200), ("u_dept", 404), ("u_reader", 200)):
        check.expect(f"{user} get hq after assign", world.call(
            user, "GET", f"/api/opportunity/{hq}"), status)
    resp = world.call("u_tree", "POST", f"/api/opportunity/{hq}/actions/assign",
                      {"owner": "nobody"})
    check.expect("assign to no such user", resp, 422, error_field="owner")
    check.done()


def test_bulk_transfer(world: World) -> None:
    """Only an admin transfers; everything the old owner had (recycle bin included) moves in
    one go, into the new owner's scope and out of the old one's."""
    check = Checker()
    acc, opp = world.ids["account"]["branch"], world.ids["opportunity"]["branch"]
    world.admin_ok("DELETE", f"/api/account/{acc}")
    body = {"from": "o_branch", "to": "o_other"}
    for user in ACTORS[1:]:
        resp = world.call(user, "POST", "/api/access/transfer", body)
        check.expect(f"{user} transfer", resp, 403, forbidden=world.forbidden(user))
    check.expect("o_branch still owns", world.call("o_branch", "GET", f"/api/opportunity/{opp}"),
                 200)
    resp = world.call("admin", "POST", "/api/access/transfer", body)
    if check.expect("admin transfer", resp, 200):
        check.check("admin transfer", resp.json() == {
            "moved": {"account": 1, "opportunity": 1}, "total": 2, "deactivated": False},
            resp.text)
    for user, status in (("o_other", 200), ("o_branch", 404), ("u_tree", 404),
                         ("u_all", 200), ("u_dept", 404)):
        check.expect(f"{user} opportunity after transfer", world.call(
            user, "GET", f"/api/opportunity/{opp}"), status)
        check.expect(f"{user} account in bin after transfer", world.call(
            user, "GET", f"/api/account/{acc}", params={"deleted": "true"}), status)
    row = world.admin_ok("GET", f"/api/opportunity/{opp}")
    check.check("moved", (row["owner_id"], row["department_id"]) == (
        world.user_ids["o_other"], world.departments["OTHER"]), str(row))
    resp = world.call("o_branch", "GET", "/api/opportunity")
    check.expect("o_branch list after transfer", resp, 200)
    check.check("o_branch list after transfer", resp.json()["total"] == 0, resp.text)
    history = world.admin_ok("GET", f"/api/opportunity/{opp}/history")["items"]
    check.check("transfer history", {"field": "owner_id", "old": world.user_ids["o_branch"],
                                     "new": world.user_ids["o_other"]}
                in [{k: r[k] for k in ("field", "old", "new")} for r in history
                    if r["action"] == "assign"], "the transfer is not in the history")
    resp = world.call("admin", "POST", "/api/access/transfer",
                      {"from": "o_region", "to": "o_hq", "deactivate": True})
    check.expect("transfer and deactivate", resp, 200)
    check.expect("deactivated token", world.call("o_region", "GET", "/api/opportunity"), 401)
    check.expect("transfer to oneself", world.call(
        "admin", "POST", "/api/access/transfer", {"from": "o_hq", "to": "o_hq"}), 400)
    check.expect("transfer to nobody", world.call(
        "admin", "POST", "/api/access/transfer", {"from": "o_hq", "to": "nobody"}), 422,
        error_field="to")
    check.done()


def test_explain_matrix(world: World) -> None:
    """An admin may explain anyone's access, and each verdict agrees with the tables; others
    only their own, and only on records they can read."""
    check = Checker()
    verdicts = {"read": READABLE, "update": UPDATABLE, "delete": DELETABLE,
                "assign": ASSIGNABLE}
    for key in KEYS:
        rid = world.ids["opportunity"][key]
        url = f"/api/access/explain/opportunity/{rid}"
        for subject in ACTORS[1:]:
            resp = world.call("admin", "GET", url, params={"user": subject})
            cell = f"admin explain {subject} {key}"
            if not check.expect(cell, resp, 200):
                continue
            body = resp.json()
            got = {a: body["actions"][a]["allowed"] for a in verdicts}
            want = {a: key in table[subject] for a, table in verdicts.items()}
            check.check(cell, got == want, f"actions {got}, expected {want}")
            amount = body["fields"]["amount"]["read"]
            masked = subject in HIDES and VISIBLE[subject] is not None  # r_none has no rules
            check.check(cell, (amount == "hidden") == masked, f"amount {amount}")
        for user in ACTORS[1:]:
            me = As(world, check, "opportunity", user)
            me.expect(f"explain o_hq {key}", me.call("GET", url, params={"user": "o_hq"}), 403)
            me.expect(f"explain nobody {key}", me.call("GET", url, params={"user": "nobody"}),
                      403)
            resp = me.call("GET", url)
            if me.expect(f"explain self {key}", resp, _status(user, key, READABLE)) \
                    and resp.status_code == 200:
                check.check(f"{user} explain self {key}",
                            resp.json()["actions"]["read"]["allowed"], "read not allowed")
    check.done()


# -- the shipped roles ---------------------------------------------------------------------


def test_shipped_roles(make_env: EnvFactory) -> None:
    """config/roles.yaml as users get it: marketing never sees an amount (nor weighted), a
    partner only their own records, a rep their department's accounts and their own deals."""
    world = build_shipped_world(make_env)
    ids, check = world.ids, Checker()
    for user in ("admin", *SHIPPED_USERS):
        sees = SHIPPED_SEES[user]
        for entity in ("opportunity", "account"):
            hidden = {f for f, users in SHIPPED_HIDDEN[entity].items() if user in users}
            forbidden = world.markers(set(OWNERS) - sees)
            if hidden & {"amount", "credit_limit"}:  # the fields the values belong to
                forbidden |= {v for o in OWNERS for v in world.hidden_values[f"{entity}:{o}"]}
            name = f"{user} {entity}"
            resp = world.call(user, "GET", f"/api/{entity}", params={"sort": "id"})
            want = {ids[entity][o] for o in sees}
            if check.expect(f"{name} list", resp, 200, forbidden=forbidden):
                shown = {f for item in resp.json()["items"] for f in item} & hidden
                check.check(f"{name} list", _ids(resp) == want and not shown
                            and resp.json()["total"] == len(want),
                            f"ids {sorted(_ids(resp))}, hidden fields shown: {shown}")
            for f in sorted(hidden):
                for params in ({"sort": f}, {"filter": f"NOT(ISBLANK({f}))"}):
                    check.expect(f"{name} {params}", world.call(
                        user, "GET", f"/api/{entity}", params=params), 400, forbidden=forbidden)
            for owner in OWNERS:
                rid = ids[entity][owner]
                for what in ("", "/history"):
                    resp = world.call(user, "GET", f"/api/{entity}/{rid}{what}")
                    check.expect(f"{name} get{what} {owner}", resp,
                                 200 if owner in sees else 404, forbidden=forbidden)

    opp, acc = ids["opportunity"], ids["account"]
    cells: list[tuple[str, str, str, str, Any, int, str | None]] = [
        ("mkt create opportunity", "mkt", "POST", "/api/opportunity",
         {"name": "x", "account": acc["rep"]}, 403, None),
        ("mkt update opportunity", "mkt", "PATCH", f"/api/opportunity/{opp['rep']}",
         {"version": 1, "name": "y"}, 403, None),
        ("mkt create lead", "mkt", "POST", "/api/lead", {"company": "Lead Co"}, 201, None),
        ("rep credit_limit readonly", "rep", "PATCH", f"/api/account/{acc['rep']}",
         {"version": 2, "credit_limit": "1"}, 422, "credit_limit"),
        ("rep delete account", "rep", "DELETE", f"/api/account/{acc['rep']}", None, 403, None),
        ("rep opportunity on rep_hq's account", "rep", "POST", "/api/opportunity",
         {"name": "x", "account": acc["rep_hq"]}, 422, "account"),
        ("rep_hq update rep's opportunity", "rep_hq", "PATCH", f"/api/opportunity/{opp['rep']}",
         {"version": 1, "name": "y"}, 404, None),
        ("mgr update rep's opportunity", "mgr", "PATCH", f"/api/opportunity/{opp['rep']}",
         {"version": 1, "next_step": "call"}, 200, None),
        ("mgr assign rep's opportunity", "mgr", "POST",
         f"/api/opportunity/{opp['rep']}/actions/assign", {"owner": "rep"}, 200, None),
        ("rep assign", "rep", "POST", f"/api/opportunity/{opp['rep']}/actions/assign",
         {"owner": "rep_hq"}, 403, None),
        ("partner departments", "partner", "GET", "/api/department", None, 403, None),
        ("mkt departments", "mkt", "GET", "/api/department", None, 200, None),
        ("partner explain rep", "partner", "GET",
         f"/api/access/explain/opportunity/{opp['partner']}?user=rep", None, 403, None),
    ]
    for name, user, method, url, body, status, error_field in cells:
        check.expect(name, world.call(user, method, url, body), status,
                     error_field=error_field)
    check.done()


def test_shipped_roles_on_every_entity(make_env: EnvFactory) -> None:
    """config/roles.yaml on all its entities, for a user of every shipped role: which of
    three owners' records (a BRANCH rep, an HQ rep, a partner) each lists, whether it may
    create and update them, and that no field hidden from it shows in the JSON or the page —
    a partner never sees a quote's margin, a service agent never an account's credit. The
    expectations are EVERY_ENTITY_SCOPES and EVERY_ENTITY_HIDDEN, written by hand."""
    from tests.web_helpers import sign_in

    world = build_every_entity_world(make_env)
    ids, check = world.ids, Checker()
    assert set(EVERY_ENTITY_SCOPES) == {e.name for e in world.env.model.entities}
    # Every value of the records, as admin sees them: a role must never get the values of
    # the fields hidden from it (those that no field it sees, of any of these entities,
    # shares — an account's pipeline is its one deal's weighted amount — and not too short
    # to appear by chance).
    values: dict[str, list[dict[str, str]]] = {
        entity: [{f: str(v) for f, v in world.admin_ok(
            "GET", f"/api/{entity}/{ids[entity][o]}").items() if v is not None}
            for o in OWNERS]
        for entity in EVERY_ENTITY_HIDDEN}

    def secret(entity: str, role: str) -> set[str]:
        hides = {e: {f for f, roles in fields.items() if role in roles}
                 for e, fields in EVERY_ENTITY_HIDDEN.items()}
        shown = {v for e, rows in values.items() for row in rows for f, v in row.items()
                 if f not in hides[e]}
        return {v for row in values.get(entity, []) for f, v in row.items()
                if f in hides.get(entity, ()) and len(v) >= 6 and v not in shown}

    for entity, role in (("account", "service_agent"), ("account", "partner"),
                         ("product", "partner"), ("quote", "partner"),
                         ("quote_line", "presales"), ("contract", "service_manager"),
                         ("contract_line", "partner"), ("opportunity", "marketing")):
        assert len(secret(entity, role)) >= len(OWNERS), (entity, role)
    pages: dict[str, Any] = {}  # signed-in browsers of the users some field is hidden from
    hiding = {r for fields in EVERY_ENTITY_HIDDEN.values() for roles in fields.values()
              for r in roles}
    for user, (role, _dept) in ALL_SHIPPED_USERS.items():
        if role in hiding:
            world.env.users.set_password(world.user_ids[user], f"{user}-password-1")
            world.tokens[user] = world.env.users.new_token(user)  # a new password ends them
            pages[user] = world.env.client()
            pages[user].headers["Accept"] = "text/html"
            assert sign_in(pages[user], user, f"{user}-password-1").status_code == 303
    for user, (role, _dept) in ALL_SHIPPED_USERS.items():
        for entity, by_role in EVERY_ENTITY_SCOPES.items():
            create, read, update = by_role[role]
            name = f"{user} ({role}) {entity}"
            hidden = {f for f, roles in EVERY_ENTITY_HIDDEN.get(entity, {}).items()
                      if role in roles}
            forbidden = secret(entity, role)
            resp = world.call(user, "POST", f"/api/{entity}", {})
            check.expect(f"{name} create", resp, 403 if create == "-" else 422)
            resp = world.call(user, "GET", f"/api/{entity}",
                              params={"sort": "id", "page_size": "200"})
            if not check.expect(f"{name} list", resp, 403 if read == "-" else 200,
                                forbidden=forbidden) or read == "-":
                continue
            if entity == "department":
                continue
            items = resp.json()["items"]
            seen = reached(user, read)
            check.check(f"{name} list", _ids(resp) == {ids[entity][o] for o in seen},
                        f"ids {sorted(_ids(resp))}, expected those of {sorted(seen)}")
            shown = {f for item in items for f in item} & hidden
            check.check(f"{name} list", not shown, f"hidden fields shown: {shown}")
            for owner in sorted(seen):
                rid = ids[entity][owner]
                resp = world.call(user, "GET", f"/api/{entity}/{rid}")
                if not check.expect(f"{name} get {owner}", resp, 200, forbidden=forbidden):
                    continue
                resp = world.call(user, "PATCH", f"/api/{entity}/{rid}",
                                  {"version": resp.json()["version"]})
                check.expect(f"{name} update {owner}", resp,
                             200 if owner in reached(user, update) else 403)
                if hidden:  # a page shows amounts grouped: 339,102.27
                    page = pages[user].get(f"/e/{entity}/{rid}")
                    check.expect(f"{name} page {owner}", page, 200,
                                 forbidden=forbidden | {_grouped(v) for v in forbidden})

    acc, contract = ids["account"], ids["contract"]
    cells: list[tuple[str, str, str, str, Any, int, str | None]] = [
        ("partner orders", "partner", "POST", "/api/contract",
         {"name": "Dealer order", "account": acc["partner"]}, 201, None),
        ("partner signs an order", "partner", "POST", "/api/contract",
         {"name": "Dealer order", "account": acc["partner"], "status": "signed",
          "signed_on": "2026-03-02"}, 422, "status"),
        ("partner files a service request", "partner", "POST", "/api/service_request",
         {"subject": "Broken axle", "account": acc["partner"], "channel": "partner"}, 201, None),
        ("partner request on rep's account", "partner", "POST", "/api/service_request",
         {"subject": "x", "account": acc["rep"]}, 422, "account"),
        ("fin invoices rep's contract", "fin", "POST", "/api/invoice",
         {"contract": contract["rep"], "amount": "120.00"}, 201, None),
        ("fin receives on rep's contract", "fin", "POST", "/api/receipt",
         {"contract": contract["rep"], "amount": "100.00"}, 201, None),
        ("fin sets a credit limit", "fin", "PATCH", f"/api/account/{acc['rep']}",
         {"version": world.version("account", acc["rep"]), "credit_limit": "99000"}, 200, None),
        ("mgr credit_limit readonly", "mgr", "PATCH", f"/api/account/{acc['rep']}",
         {"version": world.version("account", acc["rep"]) + 1, "credit_limit": "1"}, 422,
         "credit_limit"),
        ("rep opening_receivable readonly", "rep", "PATCH", f"/api/account/{acc['rep']}",
         {"version": world.version("account", acc["rep"]) + 1, "opening_receivable": "1"},
         422, "opening_receivable"),
        ("rep adds a campaign member", "rep", "POST", "/api/campaign_member",
         {"campaign": ids["campaign"]["rep_hq"], "account": acc["rep"]}, 201, None),
        ("agent works rep's request", "agent", "POST", "/api/work_order",
         {"subject": "On site", "account": acc["rep"],
          "service_request": ids["service_request"]["rep"]}, 201, None),
        ("agent sorts by bank account", "agent", "GET", "/api/account?sort=bank_account",
         None, 400, None),
        ("partner filters on quote margin", "partner", "GET",
         "/api/quote?filter=margin%20%3E%200", None, 400, None),
        ("exec files an expense", "exec", "POST", "/api/expense",
         {"subject": "Taxi", "category": "transport", "amount": "35.00"}, 201, None),
        ("rep marks an expense paid", "rep", "POST", "/api/expense",
         {"subject": "Taxi", "category": "transport", "amount": "35.00",
          "paid_on": "2026-03-02"}, 422, "paid_on"),
    ]
    for name, user, method, url, body, status, error_field in cells:
        check.expect(name, world.call(user, method, url, body), status,
                     error_field=error_field)
    check.done()


# -- hidden fields are fields that do not exist ---------------------------------------------

MISSING = "zq_nofield"
"""A name no entity has, to compare a hidden field's answers with."""
HIDDEN_NAMES = frozenset({"amount", "weighted", "credit_limit"})
_HINT = re.compile(r"; did you mean (?:'|&#39;)([a-z0-9_]+)(?:'|&#39;)\?")
"""A suggestion, in JSON or in a page (quotes escaped)."""


def _unhinted(text: str) -> str:
    """An answer without its "did you mean" suggestion: in the text, and in the structured
    message the JSON error carries beside it (docs/api.md), where a suggestion is a nested
    message and no suggestion an empty one."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            if str(node.get("message_id", "")).startswith("; did you mean"):
                return ""
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return _HINT.sub("", node) if isinstance(node, str) else node

    try:
        return json.dumps(strip(json.loads(text)), ensure_ascii=False, sort_keys=True)
    except ValueError:
        return _HINT.sub("", text)


def _places(entity: str, name: str, rid: int,
            version: int) -> list[tuple[str, str, str, Any, Any]]:
    """Every place a request may name a field: (place, method, url, query, body)."""
    lists = f"/api/{entity}"
    out: list[tuple[str, str, str, Any, Any]] = [
        (f"condition {op}={raw}", "GET", lists, {f"{name}{op}": raw}, None)
        for op, raw in (("", "1"), ("", "abc"), ("__gt", "0"), ("__gt", "abc"),
                        ("__contains", "x"), ("__in", "1,2"), ("__blank", "true"),
                        ("__nope", "1"))]
    out += [(f"sort {sort}", "GET", lists, {"sort": sort}, None)
            for sort in (name, f"-{name}", f"name,{name}")]
    out += [(f"filter {f}", "GET", lists, {"filter": f}, None)
            for f in (f"{name} > 0", f'{name} = "x"', f"ISBLANK({name})", f"{name}",
                      f'{name}.name = "x"', f"NOT({name} > 0) OR {name} < 1",
                      f"{REFERENCE_FIELD[entity]}.{name} > 0")]
    out += [("create", "POST", lists, None, {"name": "oracle", name: "1"}),
            ("create ill-typed", "POST", lists, None, {"name": "oracle", name: "abc"}),
            ("update", "PATCH", f"{lists}/{rid}", None, {"version": version, name: "1"}),
            ("explain", "GET", f"{lists}/{rid}/explain/{name}", None, None)]
    return out


def test_hidden_fields_answer_like_missing_ones(world: World) -> None:
    """For a user a field is hidden from, naming it anywhere — list conditions well- or
    ill-typed, sorts, `?filter=` formulas (directly, through a reference, a computed field
    that reads it), writes, explain — answers exactly (status and body) what naming a field
    that does not exist answers: nothing tells that it exists, nor its type."""
    check = Checker()
    user = "u_own"
    for entity, names in (("opportunity", ("amount", "weighted")),
                          ("account", ("credit_limit",))):
        rid = world.ids[entity]["own"]
        version = world.version(entity, rid)
        for name in names:
            for (place, method, url, query, body), (_, _, m_url, m_query, m_body) in zip(
                    _places(entity, name, rid, version), _places(entity, MISSING, rid, version),
                    strict=True):
                got = world.call(user, method, url, body, query)
                want = world.call(user, method, m_url, m_body, m_query)
                cell = f"{user} {entity} {name}: {place}"
                hints = set(_HINT.findall(got.text))
                check.check(cell, not hints & HIDDEN_NAMES, f"suggests {hints}")
                # A suggestion among the visible fields is what a missing field of this
                # name would get too: compared without it.
                check.check(cell, got.status_code == want.status_code
                            and _unhinted(got.text).replace(name, MISSING)
                            == _unhinted(want.text),
                            f"{got.status_code} {got.text[:300]} | missing field: "
                            f"{want.status_code} {want.text[:300]}")
                check.check(cell, 400 <= got.status_code < 500, f"{got.status_code}")
    check.done()


def test_did_you_mean_offers_only_visible_fields(world: World) -> None:
    """A misspelt field gets a suggestion from the fields the caller may see, never a hidden
    one: the administrator is offered credit_limit, a user it is hidden from is not."""
    def filter_problem(user: str, source: str) -> str:
        resp = world.call(user, "GET", "/api/account", params={"filter": source})
        assert resp.status_code == 400, resp.text
        return str(resp.json()["error"]["fields"]["filter"])

    assert "did you mean 'credit_limit'" in filter_problem("admin", "credit_limt > 0")
    assert "credit_limit" not in filter_problem("u_own", "credit_limt > 0")
    assert "credit_limit" not in filter_problem("u_own", "parent.credit_limt > 0")
    # Case-insensitively the same name: offered to those who see it only.
    assert "did you mean 'credit_limit'" in filter_problem("admin", "CREDIT_LIMIT > 0")
    assert "credit_limit" not in filter_problem("u_own", "CREDIT_LIMIT > 0")


def test_hidden_fields_answer_like_missing_ones_on_list_pages(world: World) -> None:
    """The list page and saving a view: a condition, sort, `__has` or filter formula on a
    hidden field gets the page a field that does not exist gets."""
    from tests.web_helpers import page_token, sign_in

    env = world.env
    env.users.set_password(world.user_ids["u_own"], "u-own-password")
    pages = env.client()
    pages.headers["Accept"] = "text/html"
    assert sign_in(pages, "u_own", "u-own-password").status_code == 303
    token = page_token(pages, "/e/opportunity")
    check = Checker()
    for name in ("amount", "weighted"):
        for query in ("{f}__gt=abc", "{f}__gt=1", "{f}=x", "sort=-{f}", "{f}__has=x",
                      "filter={f}+%3E+0", "filter=ISBLANK({f})", "{f}__lte=2024-01-01"):
            got = pages.get("/e/opportunity?" + query.format(f=name))
            want = pages.get("/e/opportunity?" + query.format(f=MISSING))
            cell = f"u_own page {query.format(f=name)}"
            check.check(cell, got.status_code == want.status_code and got.status_code < 500
                        and _HINT.sub("", got.text).replace(name, MISSING) == want.text,
                        f"{got.status_code} vs {want.status_code}")
            check.check(cell, not set(_HINT.findall(got.text)) & HIDDEN_NAMES, "suggests it")
            saved = [pages.post("/e/opportunity/views", data={
                "name": f"v {query.format(f=f)}", "query": query.format(f=f),
                "csrf_token": token}, follow_redirects=False) for f in (name, MISSING)]
            check.check(f"{cell} saved", saved[0].status_code == saved[1].status_code
                        and _HINT.sub("", saved[0].text).replace(name, MISSING)
                        == saved[1].text, f"{saved[0].status_code} vs {saved[1].status_code}")
    check.done()
