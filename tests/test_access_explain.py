"""Explaining access: every verdict equals what Records does when the action is tried, the
reasons name the role, the scope and the deciding fact, only administrators ask about others,
and `crm access explain USER ENTITY ID` prints it (exit 1 on an unknown user, entity, record)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import Forbidden, Invalid, NotFound, RecordError
from engine.runtime.records.access_explain import explain_access
from tests.access_helpers import departments, place, user, write_roles
from tests.conftest import CONFIG, Env, EnvFactory

NORTH_BJ = "Headquarters / North region / Beijing branch"


class World:
    """The shipped roles and org tree, a few people in it and records among them."""

    def __init__(self, env: Env) -> None:
        self.env = env
        d = self.d = departments(env)
        self.rep = user(env, "rep", "sales_rep", department=d["BJ"])
        self.rep2 = user(env, "rep2", "sales_rep", department=d["SH"])
        self.manager = user(env, "manager", "sales_manager", department=d["NORTH"])
        self.presales = user(env, "presales", "presales", department=d["BJ"])
        self.marketing = user(env, "marketing", "marketing")
        self.partner = user(env, "partner", "partner", department=d["PARTNERS"])
        self.agent = user(env, "agent", "service_agent", "presales", department=d["EAST"])
        self.acc_bj = place(env, "account", {"name": "Beijing Co", "credit_limit": "100"},
                            owner=self.rep)
        self.acc_sh = place(env, "account", {"name": "Shanghai Co"}, owner=self.rep2)
        self.acc_free = place(env, "account", {"name": "Unassigned Co"}, department=d["NORTH"])
        self.opp_bj = place(env, "opportunity", {"name": "BJ deal",
                                                 "account": self.acc_bj["id"]}, owner=self.rep)
        self.opp_sh = place(env, "opportunity", {"name": "SH deal",
                                                 "account": self.acc_sh["id"]}, owner=self.rep2)
        env.records.set_team_member(SYSTEM, "opportunity", self.opp_sh["id"],
                                    self.presales.id, "edit")
        env.records.set_team_member(SYSTEM, "opportunity", self.opp_bj["id"],
                                    self.agent.id, "read")
        self.contact = place(env, "contact", {"full_name": "Li", "account": self.acc_bj["id"]},
                             owner=self.rep)

    @property
    def actors(self) -> list[Actor]:
        return [self.rep, self.rep2, self.manager, self.presales, self.marketing,
                self.partner, self.agent]

    @property
    def records(self) -> list[tuple[str, dict[str, Any]]]:
        return [("account", self.acc_bj), ("account", self.acc_sh), ("account", self.acc_free),
                ("opportunity", self.opp_bj), ("opportunity", self.opp_sh),
                ("contact", self.contact)]


@pytest.fixture
def world(env: Env) -> World:
    return World(env)


def succeeds(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except (Forbidden, NotFound):
        return False
    except Invalid:  # allowed, but the data was not valid: not a question of access
        return True
    return True


def attempt(env: Env, actor: Actor, entity: str, record_id: int, action: str) -> bool:
    """Whether Records lets `actor` do `action` on the record; leaves the record unchanged."""
    r = env.records
    now = r.get(SYSTEM, entity, record_id)
    if action == "read":
        return succeeds(lambda: r.get(actor, entity, record_id))
    if action == "update":
        return succeeds(lambda: r.update(actor, entity, record_id, {}, now["version"]))
    if action == "delete":
        ok = succeeds(lambda: r.delete(actor, entity, record_id))
        if ok:
            r.restore(SYSTEM, entity, record_id)
        return ok
    if action == "assign":  # to whom it already belongs: nothing changes
        return succeeds(lambda: r.assign(actor, entity, record_id, owner=now["owner_id"],
                                         department=now["department_id"]))
    if action == "create":
        data: dict[str, Any] = {"name": f"new {actor.name} {record_id}",
                                "full_name": "x", "account": now.get("account")}
        data = {k: v for k, v in data.items() if env.model.entity(entity).has_field(k)}
        return succeeds(lambda: r.create(actor, entity, data))
    raise AssertionError(action)


def test_verdicts_match_what_records_allows(world: World) -> None:
    env = world.env
    checked = 0
    for actor in world.actors:
        for entity, rec in world.records:
            out = explain_access(env.records, SYSTEM, actor, entity, rec["id"])
            for action in ("read", "update", "delete", "assign", "create"):
                verdict = out["actions"][action]
                tried = attempt(env, actor, entity, rec["id"], action)
                assert verdict["allowed"] is tried, (actor.name, entity, rec["name"]
                                                     if "name" in rec else rec["id"],
                                                     action, verdict)
                checked += 1
    assert checked == 7 * 6 * 5


def test_verdicts_match_when_a_wider_action_meets_a_narrower_read(make_env: EnvFactory,
                                                                   config_dir: Path) -> None:
    write_roles(config_dir, "roles:\n  admin: {admin: true}\n  odd:\n    entities:\n"
                "      account: {read: own, update: all, delete: department, assign: all}\n")
    env = make_env(config_dir)
    d = departments(env)
    odd = user(env, "odd", "odd", department=d["BJ"])
    acc = place(env, "account", {"name": "elsewhere"}, department=d["BJ"])
    out = explain_access(env.records, SYSTEM, odd, "account", acc["id"])
    for action in ("read", "update", "delete", "assign"):
        assert out["actions"][action]["allowed"] is attempt(env, odd, "account", acc["id"],
                                                            action) is False, action
    assert "cannot read" in out["actions"]["update"]["reason"]


def test_reasons_name_role_scope_and_the_deciding_fact(world: World) -> None:
    env = world.env

    def why(actor: Actor, entity: str, rec: dict[str, Any]) -> dict[str, Any]:
        return explain_access(env.records, SYSTEM, actor, entity, rec["id"])

    out = why(world.rep, "account", world.acc_bj)
    assert out["user"] == {"id": world.rep.id, "name": "rep", "roles": ["sales_rep"],
                           "department": NORTH_BJ}
    assert out["record"] == {"owner_id": world.rep.id, "department": NORTH_BJ,
                             "team": [], "in_recycle_bin": False}
    read = out["actions"]["read"]
    assert read == {"allowed": True, "scope": "department", "roles": ["sales_rep"],
                    "reason": "role sales_rep grants read on records of their department, "
                              "and they own the record"}
    assert out["actions"]["assign"]["allowed"] is False
    assert out["actions"]["assign"]["reason"] == (
        "no role of rep grants assign on account (roles: sales_rep)")
    assert out["fields"]["credit_limit"] == {
        "read": "visible", "write": "readonly", "reason": "read-only in role sales_rep"}
    assert out["fields"]["name"]["write"] == "writable"

    # the manager of the region: the department path decides
    out = why(world.manager, "account", world.acc_bj)
    assert out["actions"]["update"]["reason"] == (
        "role sales_manager grants update on records of their department and the ones under "
        "it, and the record's department " + NORTH_BJ + " is under their department "
        "Headquarters / North region")
    out = why(world.manager, "account", world.acc_free)
    assert out["actions"]["update"]["reason"].endswith(
        "the record belongs to their department Headquarters / North region")
    out = why(world.manager, "account", world.acc_sh)
    assert out["actions"]["update"]["allowed"] is False
    assert out["actions"]["update"]["reason"] == (
        "role sales_manager grants update on records of their department and the ones under "
        "it only, and they do not own the record, are not on its team, the record's "
        "department (Headquarters / East region / Shanghai branch) is not in or under theirs "
        "(Headquarters / North region)")

    # team membership: edit counts for update; read does not
    out = why(world.presales, "opportunity", world.opp_sh)
    assert out["actions"]["update"]["allowed"] is True
    assert out["actions"]["update"]["reason"] == (
        "role presales grants update on records they own or share as a team member, and "
        "they are on the record's team with edit access")
    assert out["fields"]["amount"]["write"] == "readonly"
    assert out["record"]["team"] == [{"user_id": world.presales.id, "access": "edit"}]
    out = why(world.agent, "opportunity", world.opp_bj)
    assert out["actions"]["read"]["reason"].endswith(
        "they are on the record's team with read access")
    assert out["actions"]["update"]["allowed"] is False
    assert out["actions"]["update"]["reason"].endswith(
        "they do not own the record, are on its team with read access only")

    # hidden fields, by a role or because a formula would give them away
    out = why(world.marketing, "opportunity", world.opp_bj)
    assert out["fields"]["amount"] == {"read": "hidden", "write": "hidden",
                                       "reason": "hidden by role marketing"}
    assert out["fields"]["weighted"]["read"] == "hidden"
    assert "computed from a field hidden" in out["fields"]["weighted"]["reason"]
    assert out["fields"]["probability"]["write"] == "computed"
    assert out["actions"]["update"]["reason"] == (
        "no role of marketing grants update on opportunity (roles: marketing)")

    # two roles: the one with the widest scope is named
    out = why(world.agent, "account", world.acc_sh)
    assert out["actions"]["read"]["roles"] == ["service_agent", "presales"]
    assert out["actions"]["read"]["reason"].startswith(
        "role service_agent and presales grants read on records of their department and "
        "the ones under it, and the record's department")


def test_a_record_in_the_recycle_bin_is_explained(world: World) -> None:
    env = world.env
    env.records.delete(SYSTEM, "account", world.acc_sh["id"])
    out = explain_access(env.records, SYSTEM, world.rep2, "account", world.acc_sh["id"])
    assert out["record"]["in_recycle_bin"] is True
    assert out["actions"]["delete"]["allowed"] is False  # sales_rep deletes no accounts


def test_only_admins_explain_someone_else(world: World) -> None:
    env = world.env
    rid = world.acc_bj["id"]
    with pytest.raises(Forbidden, match="only an administrator"):
        explain_access(env.records, world.manager, world.rep, "account", rid)
    mine = explain_access(env.records, world.rep, world.rep, "account", rid)
    assert mine["user"]["name"] == "rep"
    out = explain_access(env.records, env.admin.actor(), world.rep, "account", rid)
    assert out == mine
    # asking about yourself reveals nothing of a record you cannot read
    with pytest.raises(NotFound):
        explain_access(env.records, world.rep, world.rep, "account", world.acc_sh["id"])
    hidden = explain_access(env.records, SYSTEM, world.rep, "account", world.acc_sh["id"])
    assert hidden["actions"]["read"]["allowed"] is False
    with pytest.raises(NotFound, match=r"^no account 999$"):
        explain_access(env.records, SYSTEM, world.rep, "account", 999)
    with pytest.raises(NotFound):
        explain_access(env.records, SYSTEM, world.rep, "nothing", rid)


def test_explain_over_http(world: World) -> None:
    env = world.env
    rid = world.acc_bj["id"]
    rep = env.client(env.users.new_token("rep"))
    mine = rep.get(f"/api/access/explain/account/{rid}")
    assert mine.status_code == 200
    assert mine.json()["user"]["name"] == "rep"
    assert rep.get(f"/api/access/explain/account/{rid}?user=rep2").status_code == 403
    assert rep.get(f"/api/access/explain/account/{world.acc_sh['id']}").status_code == 404
    admin = env.client(env.users.new_token("admin"))
    other = admin.get(f"/api/access/explain/account/{rid}?user=rep2")
    assert other.status_code == 200
    assert other.json()["actions"]["read"]["allowed"] is False
    assert admin.get(f"/api/access/explain/account/{rid}?user=nobody").status_code == 404
    assert admin.get("/api/access/explain/account/999").status_code == 404
    assert admin.get(f"/api/access/explain/nothing/{rid}").status_code == 404
    assert env.client().get(f"/api/access/explain/account/{rid}").status_code == 401


# -- the command ------------------------------------------------------------------------------


def crm(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(CONFIG), "--db", db_url, *args])


def test_crm_access_explain(world: World, db_url: str) -> None:
    rid = world.acc_bj["id"]
    result = crm(db_url, "access", "explain", "rep", "account", str(rid))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (f"rep (roles: sales_rep; {NORTH_BJ}) and account {rid} "
                        f"(department: {NORTH_BJ}):")
    assert ("  yes read    role sales_rep grants read on records of their department, and "
            "they own the record") in lines
    assert "  no  assign  no role of rep grants assign on account (roles: sales_rep)" in lines
    assert "  field credit_limit: readonly (read-only in role sales_rep)" in lines
    assert len([line for line in lines if line.startswith(("  yes", "  no "))]) == 6

    result = crm(db_url, "access", "explain", "marketing", "opportunity",
                 str(world.opp_bj["id"]))
    assert result.exit_code == 0, result.output
    assert "  field amount: hidden (hidden by role marketing)" in result.stdout.splitlines()


@pytest.mark.parametrize(("args", "message"), [
    (("nobody", "account", "1"), "error: no user named 'nobody'"),
    (("rep", "acount", "1"), "error: no entity 'acount'; entities: "),
    (("rep", "account", "999"), "error: no account 999\n"),
])
def test_crm_access_explain_unknowns(world: World, db_url: str, args: tuple[str, ...],
                                     message: str) -> None:
    result = crm(db_url, "access", "explain", *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert "recycle bin" not in result.stderr
    assert "Traceback" not in result.output


def test_errors_of_explain_are_record_errors(world: World) -> None:
    # the CLI and HTTP turn RecordError into exit 1 / 4xx; nothing else may escape
    with pytest.raises(RecordError):
        explain_access(world.env.records, SYSTEM, world.rep, "account", 10**6)
