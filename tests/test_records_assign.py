"""Assignment (records/assign.py): to a user, to a department, or both; the children that
follow; who may; audit rows. Transfer of everything a user owns, in one transaction, with
deactivation; `crm user deactivate NAME --transfer-to OTHER`; the HTTP routes."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from engine.cli import main
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound
from engine.runtime.records.assign import assign_outcome
from tests.access_helpers import departments, place, user, write_roles
from tests.conftest import CONFIG, Env


class Org:
    def __init__(self, env: Env) -> None:
        self.env = env
        d = self.d = departments(env)
        self.u1 = user(env, "u1", "sales_rep", department=d["BJ"])
        self.u2 = user(env, "u2", "sales_rep", department=d["SH"])
        self.u3 = user(env, "u3", "sales_rep", department=d["SY"])
        self.manager = user(env, "manager", "sales_manager", department=d["NORTH"])
        self.admin = env.admin.actor()

    def get(self, entity: str, rid: int, *, deleted: bool = False) -> dict[str, Any]:
        return self.env.records.get(SYSTEM, entity, rid, deleted=deleted)

    def owner_dept(self, entity: str, rid: int, *, deleted: bool = False) -> tuple[Any, Any]:
        row = self.get(entity, rid, deleted=deleted)
        return row["owner_id"], row["department_id"]


@pytest.fixture
def org(env: Env) -> Org:
    return Org(env)


def assign(org: Org, actor: Actor, rid: int, entity: str = "account",
           **kw: Any) -> dict[str, Any]:
    kw.setdefault("owner", None)
    kw.setdefault("department", None)
    return org.env.records.assign(actor, entity, rid, **kw)


# -- the target -------------------------------------------------------------------------------


def test_assign_to_a_user_brings_their_department(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"})
    assert (acc["owner_id"], acc["department_id"]) == (None, None)
    out = assign(org, org.admin, acc["id"], owner=org.u2.id, version=acc["version"])
    assert out["record"]["owner_id"] == org.u2.id
    assert out["record"]["department_id"] == org.d["SH"]
    assert out["record"]["version"] == acc["version"] + 1
    assert out["cascaded"] == {}


def test_assign_to_a_department_leaves_no_owner(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"}, owner=org.u1)
    out = assign(org, org.admin, acc["id"], department=org.d["EU"])
    assert (out["record"]["owner_id"], out["record"]["department_id"]) == (None, org.d["EU"])


def test_assign_to_a_user_and_another_department(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"})
    assign(org, org.admin, acc["id"], owner=org.u2.id, department=org.d["HH"])
    assert org.owner_dept("account", acc["id"]) == (org.u2.id, org.d["HH"])


def test_assign_to_the_same_target_changes_nothing(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"}, owner=org.u1)
    out = assign(org, org.admin, acc["id"], owner=org.u1.id)
    assert out["record"]["version"] == acc["version"]


def test_assign_needs_a_target(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"})
    with pytest.raises(Invalid) as info:
        assign(org, org.admin, acc["id"])
    assert set(info.value.fields) == {"owner"}


# -- who may -------------------------------------------------------------------------------


def test_assign_without_assign_scope_is_forbidden(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"}, owner=org.u1)
    with pytest.raises(Forbidden):  # sales_rep owns it but has no assign on accounts
        assign(org, org.u1, acc["id"], owner=org.u3.id)
    assert org.owner_dept("account", acc["id"]) == (org.u1.id, org.d["BJ"])


def test_assign_outside_the_read_scope_is_not_found(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"}, owner=org.u2)  # East region
    with pytest.raises(NotFound):
        assign(org, org.manager, acc["id"], owner=org.u1.id)
    with pytest.raises(NotFound):
        assign(org, org.manager, 10**6, owner=org.u1.id)
    assert org.owner_dept("account", acc["id"]) == (org.u2.id, org.d["SH"])


def test_manager_assigns_within_the_tree(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"}, department=org.d["NORTH"])
    out = assign(org, org.manager, acc["id"], owner=org.u3.id)
    assert (out["record"]["owner_id"], out["record"]["department_id"]) == (
        org.u3.id, org.d["SY"])


def test_manager_may_not_hand_a_record_to_another_region(org: Org) -> None:
    """department_tree assign scope: the target must be in the manager's tree (NORTH)."""
    acc = place(org.env, "account", {"name": "a"}, owner=org.u1)  # BJ, under NORTH
    with pytest.raises(Invalid) as info:  # u2 is in the East region
        assign(org, org.manager, acc["id"], owner=org.u2.id)
    assert set(info.value.fields) == {"owner"}
    with pytest.raises(Invalid) as info:
        assign(org, org.manager, acc["id"], department=org.d["EAST"])
    assert set(info.value.fields) == {"department"}
    with pytest.raises(Invalid) as info:  # a user of the tree, booked in another region
        assign(org, org.manager, acc["id"], owner=org.u3.id, department=org.d["HH"])
    assert set(info.value.fields) == {"department"}
    assert org.owner_dept("account", acc["id"]) == (org.u1.id, org.d["BJ"])
    for target in ({"owner": org.manager.id}, {"department": org.d["SY"]},
                   {"owner": org.u3.id, "department": org.d["NORTH"]}):
        assign(org, org.manager, acc["id"], **target)
    assert org.owner_dept("account", acc["id"]) == (org.u3.id, org.d["NORTH"])


def test_assign_scope_department_and_own(make_env: Any, config_dir: Any) -> None:
    """department: myself, users of my department and my department; own: only myself.
    What stays as it is (the same owner or department) is not checked."""
    write_roles(config_dir, "roles:\n  admin: {admin: true}\n"
                "  dept: {entities: {account: {read: all, assign: department}}}\n"
                "  mine: {entities: {account: {read: all, assign: own}}}\n")
    env = make_env(config_dir)
    d = departments(env)
    boss = user(env, "boss", "dept", department=d["NORTH"])
    me = user(env, "me", "mine", department=d["BJ"])
    peer = user(env, "peer", "mine", department=d["NORTH"])
    below = user(env, "below", "mine", department=d["BJ"])
    r = env.records
    acc = place(env, "account", {"name": "a"}, owner=boss, department=d["HH"])
    for target in ({"owner": below.id, "department": None},
                   {"owner": None, "department": d["BJ"]}):
        with pytest.raises(Invalid):
            r.assign(boss, "account", acc["id"], **target)
    # booked in Hamburg, and it stays there: only the new owner is checked
    r.assign(boss, "account", acc["id"], owner=peer.id, department=d["HH"])
    assert (r.get(SYSTEM, "account", acc["id"])["owner_id"]) == peer.id
    mine = place(env, "account", {"name": "b"}, owner=me)
    for target in ({"owner": below.id, "department": None},
                   {"owner": None, "department": d["NORTH"]}):
        with pytest.raises(Invalid):
            r.assign(me, "account", mine["id"], **target)
    r.assign(me, "account", mine["id"], owner=None, department=d["BJ"])


def test_assign_outcome_is_a_dry_run(org: Org) -> None:
    """assign_outcome checks the target like assign and tells whether the record stays in
    sight, changing nothing."""
    acc = place(org.env, "account", {"name": "a"}, owner=org.manager)
    assert assign_outcome(org.env.records, org.manager, "account", acc["id"], owner=org.u3.id,
                          department=None) is True
    out = assign(org, org.manager, acc["id"], owner=org.u3.id)
    assert out["visible"] is True and out["record"]["name"] == "a"
    opp = place(org.env, "opportunity", {"name": "deal", "account": acc["id"]},
                owner=org.manager)
    # sales_manager reads opportunities of the tree; an HQ department is outside it
    assert assign_outcome(org.env.records, org.admin, "opportunity", opp["id"],
                          owner=None, department=org.d["HQ"]) is True
    with pytest.raises(Invalid):  # HQ is above the manager's tree
        assign_outcome(org.env.records, org.manager, "opportunity", opp["id"], owner=None,
                       department=org.d["HQ"])
    assert assign_outcome(org.env.records, org.manager, "opportunity", opp["id"],
                          owner=org.u1.id, department=None) is True
    assert org.owner_dept("opportunity", opp["id"])[0] == org.manager.id  # dry run only


def test_assign_to_oneself_leaving_the_department_of_sight(make_env: Any,
                                                           config_dir: Any) -> None:
    """read: own, assign: all — giving the record to a department hides it from the giver."""
    write_roles(config_dir, "roles:\n  admin: {admin: true}\n"
                "  giver: {entities: {account: {read: own, update: own, assign: all}}}\n")
    env = make_env(config_dir)
    d = departments(env)
    giver = user(env, "giver", "giver", department=d["BJ"])
    acc = place(env, "account", {"name": "secret name"}, owner=giver)
    r = env.records
    assert assign_outcome(r, giver, "account", acc["id"], owner=None,
                          department=d["SH"]) is False
    assert assign_outcome(r, giver, "account", acc["id"], owner=giver.id,
                          department=d["SH"]) is True
    out = r.assign(giver, "account", acc["id"], owner=None, department=d["SH"])
    assert out["visible"] is False
    assert out["record"] == {"id": acc["id"], "version": acc["version"] + 1,
                             "owner_id": None, "department_id": d["SH"]}
    with pytest.raises(NotFound):
        r.get(giver, "account", acc["id"])


def test_assign_with_a_stale_version_conflicts(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"}, owner=org.u1)
    with pytest.raises(Conflict):
        assign(org, org.admin, acc["id"], owner=org.u2.id, version=acc["version"] - 1)
    assert org.owner_dept("account", acc["id"]) == (org.u1.id, org.d["BJ"])


def test_assign_to_an_inactive_user_is_invalid(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"})
    org.env.users.set_active("u3", False)
    with pytest.raises(Invalid) as info:
        assign(org, org.admin, acc["id"], owner=org.u3.id)
    assert info.value.fields == {"owner": f"no active user with id {org.u3.id}"}
    with pytest.raises(Invalid):
        assign(org, org.admin, acc["id"], owner=10**6)


def test_assign_to_a_deleted_department_is_invalid(org: Org) -> None:
    acc = place(org.env, "account", {"name": "a"})
    org.env.records.delete(SYSTEM, "department", org.d["HH"])
    for dept in (org.d["HH"], 10**6):
        with pytest.raises(Invalid) as info:
            assign(org, org.admin, acc["id"], department=dept)
        assert info.value.fields == {"department": f"no department with id {dept}"}
    assert org.owner_dept("account", acc["id"]) == (None, None)


# -- cascades ---------------------------------------------------------------------------------


class Family:
    """An account of u1 with children that should and should not follow it."""

    def __init__(self, org: Org) -> None:
        env, u1, u2 = org.env, org.u1, org.u2
        self.acc = place(env, "account", {"name": "parent"}, owner=u1)
        a = self.acc["id"]

        def child(entity: str, data: dict[str, Any], owner: Actor | None = u1,
                  department: int | None = None) -> int:
            return int(place(env, entity, {**data, "account": a}, owner=owner,
                             department=department)["id"])

        self.contact = child("contact", {"full_name": "moves"})
        self.contact_other = child("contact", {"full_name": "u2's"}, owner=u2)
        self.contact_binned = child("contact", {"full_name": "binned"})
        env.records.delete(SYSTEM, "contact", self.contact_binned)
        self.open = child("opportunity", {"name": "open", "stage": "proposal"})
        self.won = child("opportunity", {"name": "won", "stage": "won"})
        self.lost = child("opportunity", {"name": "lost", "stage": "lost",
                                          "lost_reason": "price"})
        # u1's, but booked in the East: a North manager may not assign it
        self.open_east = child("opportunity", {"name": "east"}, department=org.d["SH"])
        self.planned = child("activity", {"subject": "call", "kind": "call"})
        self.done = child("activity", {"subject": "met", "kind": "meeting", "status": "done"})
        self.unrelated = int(place(env, "contact", {"full_name": "elsewhere", "account": int(
            place(env, "account", {"name": "other"}, owner=u1)["id"])}, owner=u1)["id"])


def test_cascade_moves_open_children_the_actor_may_assign(org: Org) -> None:
    f = Family(org)
    out = assign(org, org.manager, f.acc["id"], owner=org.u3.id)
    assert out["cascaded"] == {"contact": 1, "opportunity": 1, "activity": 1}
    moved = (org.u3.id, org.d["SY"])
    assert org.owner_dept("contact", f.contact) == moved
    assert org.owner_dept("opportunity", f.open) == moved
    assert org.owner_dept("activity", f.planned) == moved
    stays = {("contact", f.contact_other): (org.u2.id, org.d["SH"]),
             ("opportunity", f.won): (org.u1.id, org.d["BJ"]),
             ("opportunity", f.lost): (org.u1.id, org.d["BJ"]),
             ("opportunity", f.open_east): (org.u1.id, org.d["SH"]),
             ("activity", f.done): (org.u1.id, org.d["BJ"]),
             ("contact", f.unrelated): (org.u1.id, org.d["BJ"])}
    for (entity, rid), where in stays.items():
        assert org.owner_dept(entity, rid) == where, (entity, rid)
    assert org.owner_dept("contact", f.contact_binned, deleted=True) == (
        org.u1.id, org.d["BJ"])


def test_an_admin_cascade_reaches_every_department(org: Org) -> None:
    f = Family(org)
    out = assign(org, org.admin, f.acc["id"], owner=org.u3.id)
    assert out["cascaded"] == {"contact": 1, "opportunity": 2, "activity": 1}
    assert org.owner_dept("opportunity", f.open_east) == (org.u3.id, org.d["SY"])


def test_assign_is_audited_and_in_history(org: Org) -> None:
    f = Family(org)
    assign(org, org.manager, f.acc["id"], owner=org.u3.id)
    history = org.env.records.history(org.admin, "account", f.acc["id"])
    rows = [(h["action"], h["field"], h["old"], h["new"], h["user"])
            for h in history if h["action"] == "assign"]
    # the first assign placed it with u1; the last is the manager's
    assert rows[-2:] == [
        ("assign", "owner_id", org.u1.id, org.u3.id, "manager"),
        ("assign", "department_id", org.d["BJ"], org.d["SY"], "manager")]
    # the children carry their own rows; readers with access see them too
    child = org.env.records.history(org.manager, "opportunity", f.open)
    assert ("assign", "owner_id", org.u1.id, org.u3.id) in [
        (h["action"], h["field"], h["old"], h["new"]) for h in child]
    won = org.env.records.history(org.admin, "opportunity", f.won)
    assert all(h["user"] != "manager" for h in won)


# -- transfer ---------------------------------------------------------------------------------


def _owned(org: Org) -> dict[str, int]:
    env = org.env
    acc1 = int(place(env, "account", {"name": "one"}, owner=org.u1)["id"])
    acc2 = int(place(env, "account", {"name": "two"}, owner=org.u1)["id"])
    contact = int(place(env, "contact", {"full_name": "c", "account": acc1}, owner=org.u1)["id"])
    binned = int(place(env, "opportunity", {"name": "binned", "account": acc2},
                       owner=org.u1)["id"])
    env.records.delete(SYSTEM, "opportunity", binned)
    place(env, "account", {"name": "u3's"}, owner=org.u3)
    return {"acc1": acc1, "acc2": acc2, "contact": contact, "binned": binned}


def test_transfer_moves_everything_including_the_recycle_bin(org: Org) -> None:
    ids = _owned(org)
    token = org.env.users.new_token("u1")
    moved = org.env.records.transfer_owned(org.admin, org.u1.id, org.u2.id)
    assert moved == {"account": 2, "contact": 1, "opportunity": 1}
    heir = (org.u2.id, org.d["SH"])
    assert org.owner_dept("account", ids["acc1"]) == heir
    assert org.owner_dept("account", ids["acc2"]) == heir
    assert org.owner_dept("contact", ids["contact"]) == heir
    assert org.owner_dept("opportunity", ids["binned"], deleted=True) == heir
    history = org.env.records.history(org.admin, "account", ids["acc1"])
    assert ("assign", "owner_id", org.u1.id, org.u2.id) == (
        history[-2]["action"], history[-2]["field"], history[-2]["old"], history[-2]["new"])
    # without deactivate the user stays as they were
    assert org.env.users.by_token(token) is not None
    assert org.env.records.transfer_owned(org.admin, org.u1.id, org.u2.id) == {}


def test_transfer_with_deactivation_revokes_tokens(org: Org) -> None:
    _owned(org)
    token = org.env.users.new_token("u1")
    org.env.records.transfer_owned(org.admin, org.u1.id, org.u2.id, deactivate=True)
    assert org.env.users.by_token(token) is None
    assert org.env.users.get(org.u1.id).active is False
    audit = org.env.records.audit
    with org.env.engine.connect() as conn:
        rows = conn.execute(select(audit.c.action, audit.c.user_id).where(
            audit.c.entity == "crm_user", audit.c.record_id == org.u1.id)).all()
    assert [tuple(r) for r in rows] == [("deactivate", org.env.admin.id)]


def test_transfer_is_one_transaction(org: Org) -> None:
    """A database error on the last entity (opportunity) undoes the accounts and contacts
    already moved, and the deactivation."""
    ids = _owned(org)
    token = org.env.users.new_token("u1")
    with org.env.engine.begin() as conn:
        conn.execute(text("ALTER TABLE opportunity RENAME COLUMN updated_by TO updated_by_x"))
    try:
        with pytest.raises(DBAPIError):
            org.env.records.transfer_owned(org.admin, org.u1.id, org.u2.id,
                                           deactivate=True)
    finally:
        with org.env.engine.begin() as conn:
            conn.execute(text("ALTER TABLE opportunity RENAME COLUMN updated_by_x "
                              "TO updated_by"))
    before = (org.u1.id, org.d["BJ"])
    assert org.owner_dept("account", ids["acc1"]) == before
    assert org.owner_dept("contact", ids["contact"]) == before
    assert org.env.users.get(org.u1.id).active is True
    assert org.env.users.by_token(token) is not None
    history = org.env.records.history(org.admin, "account", ids["acc1"])
    assert [h["new"] for h in history if h["field"] == "owner_id"] == [org.u1.id]


def test_transfer_refusals(org: Org) -> None:
    records = org.env.records
    with pytest.raises(Forbidden):
        records.transfer_owned(org.manager, org.u1.id, org.u2.id)
    with pytest.raises(BadRequest):
        records.transfer_owned(org.admin, org.u1.id, org.u1.id)
    with pytest.raises(NotFound):
        records.transfer_owned(org.admin, 10**6, org.u2.id)
    org.env.users.set_active("u3", False)
    with pytest.raises(Invalid):
        records.transfer_owned(org.admin, org.u1.id, org.u3.id)


# -- HTTP ------------------------------------------------------------------------------------


def test_assign_and_transfer_over_http(org: Org) -> None:
    env = org.env
    f = Family(org)
    admin = env.client(env.users.new_token("admin"))
    manager = env.client(env.users.new_token("manager"))
    rep = env.client(env.users.new_token("u1"))
    url = f"/api/account/{f.acc['id']}/actions/assign"
    assert rep.post(url, json={"owner": "u3"}).status_code == 403
    assert manager.post(url, json={"owner": "nobody"}).status_code == 422
    assert manager.post(url, json={"owner": "u3", "bogus": 1}).status_code == 422
    assert manager.post(url, json={"department": "x"}).status_code == 422
    assert manager.post(url, json={"owner": "u3", "version": 1}).status_code == 409
    got = manager.post(url, json={"owner": "u3"})
    assert got.status_code == 200, got.text
    assert got.json()["cascaded"] == {"contact": 1, "opportunity": 1, "activity": 1}
    assert got.json()["record"]["owner_id"] == org.u3.id
    assert manager.post(f"/api/account/{10**6}/actions/assign",
                        json={"owner": "u3"}).status_code == 404

    assert manager.post("/api/access/transfer", json={"from": "u1", "to": "u2"}
                        ).status_code == 403
    assert admin.post("/api/access/transfer", json={"from": "u1"}).status_code == 422
    assert admin.post("/api/access/transfer", json={"from": "u1", "to": "u1"}
                      ).status_code == 400
    done = admin.post("/api/access/transfer", json={"from": "u1", "to": "u2",
                                                    "deactivate": True})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["deactivated"] is True
    assert body["total"] == sum(body["moved"].values()) > 0
    assert rep.get("/api/account").status_code == 401  # the token went with the user


# -- the command ------------------------------------------------------------------------------


def crm(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(CONFIG), "--db", db_url, *args])


def test_crm_user_deactivate_with_transfer(org: Org, db_url: str) -> None:
    ids = _owned(org)
    token = org.env.users.new_token("u1")
    result = crm(db_url, "user", "deactivate", "u1", "--transfer-to", "u2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "account: 2 record(s) now owned by u2",
        "contact: 1 record(s) now owned by u2",
        "opportunity: 1 record(s) now owned by u2",
        "user u1 is deactivated"]
    assert org.owner_dept("opportunity", ids["binned"], deleted=True) == (
        org.u2.id, org.d["SH"])
    assert org.env.users.by_token(token) is None
    assert org.env.users.get(org.u1.id).active is False


def test_crm_user_deactivate_without_transfer(org: Org, db_url: str) -> None:
    ids = _owned(org)
    token = org.env.users.new_token("u1")
    result = crm(db_url, "user", "deactivate", "u1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "user u1 is deactivated\n"
    assert org.env.users.by_token(token) is None
    assert org.owner_dept("account", ids["acc1"]) == (org.u1.id, org.d["BJ"])


@pytest.mark.parametrize(("args", "message"), [
    (("u1", "--transfer-to", "nobody"), "error: no user named 'nobody'\n"),
    (("nobody", "--transfer-to", "u2"), "error: no user named 'nobody'\n"),
    (("u1", "--transfer-to", "u1"), "error: a user cannot transfer records to themselves"),
])
def test_crm_user_deactivate_refusals(org: Org, db_url: str, args: tuple[str, ...],
                                      message: str) -> None:
    ids = _owned(org)
    result = crm(db_url, "user", "deactivate", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert org.env.users.get(org.u1.id).active is True
    assert org.owner_dept("account", ids["acc1"]) == (org.u1.id, org.d["BJ"])
