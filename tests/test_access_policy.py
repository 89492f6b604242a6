"""The access policy through Records on SQLite and PostgreSQL, with a roles.yaml written for
the purpose: the union of scopes, unknown roles, the engine actor, field masks (who votes,
formulas that would give a hidden field away), read-only fields, the department tree, and
team access (read sees, edit updates, delete and assign never through the team)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.metadata.roles import Scope
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import BadRequest, Forbidden, Invalid, NotFound
from engine.runtime.records.query import ListQuery, parse_list_params
from tests.access_helpers import add_fields, departments, place, user, write_roles
from tests.conftest import Env, EnvFactory

ROLES = """\
roles:
  admin: {admin: true}
  own_worker:
    entities:
      account: {create: own, read: own, update: own, delete: own, assign: own}
      opportunity: {create: own, read: own, update: own}
  dept_reader:
    entities:
      account: {read: department}
  tree_reader:
    entities:
      account: {read: department_tree, update: department_tree}
  hider:
    entities:
      account: {create: all, read: all, update: all}
      opportunity: {read: all}
    fields:
      account: {credit_limit: hidden, tier: readonly}
  plain_reader:
    entities:
      account: {read: all}
      opportunity: {read: all}
  creator:
    entities:
      account: {create: all}
  editor:
    entities:
      account: {read: all, update: all}
"""


@pytest.fixture
def penv(make_env: EnvFactory, config_dir: Path) -> Env:
    write_roles(config_dir, ROLES)
    add_fields(config_dir, "account", "credit_twice: {type: money, formula: 'credit_limit * 2'}")
    add_fields(config_dir, "opportunity",
               "account_credit: {type: money, formula: 'account.credit_limit'}",
               "account_name: {type: text, formula: 'account.name'}")
    return make_env(config_dir)


def names(env: Env, actor: Actor, entity: str = "account", **params: str) -> set[str]:
    c = env.records.compiled(entity)
    query = parse_list_params(c.entity, {"page_size": "500", **params}, frozenset({"filter"}))
    if "filter" in params:
        query = replace(query, filter=env.records.compile_filter(entity, params["filter"]))
    page = env.records.list_records(actor, entity, query)
    assert page.total == len(page.items)  # totals count visible rows only
    return {str(r["name"]) for r in page.items}


# -- scopes -------------------------------------------------------------------------------------


def test_scopes_of_several_roles_unite(penv: Env) -> None:
    d = departments(penv)
    both = user(penv, "both", "dept_reader", "own_worker", department=d["NORTH"])
    other = user(penv, "other", "own_worker", department=d["EAST"])
    place(penv, "account", {"name": "north"}, department=d["NORTH"])
    place(penv, "account", {"name": "east"}, department=d["EAST"])
    place(penv, "account", {"name": "mine in east"}, owner=both, department=d["EAST"])
    place(penv, "account", {"name": "theirs"}, owner=other)
    policy = penv.records.policy
    assert policy.scope(both, "account", "read") is Scope.DEPARTMENT
    assert policy.scope(both, "account", "update") is Scope.OWN
    assert policy.scope(both, "opportunity", "read") is Scope.OWN
    assert policy.scope(both, "lead", "read") is Scope.NONE
    assert names(penv, both) == {"north", "mine in east"}
    rows = {r["name"]: r for r in penv.records.list_records(both, "account", ListQuery()).items}
    # update is own only: the department's record is visible but not writable
    with pytest.raises(Forbidden):
        penv.records.update(both, "account", rows["north"]["id"], {"city": "x"},
                            rows["north"]["version"])
    updated = penv.records.update(both, "account", rows["mine in east"]["id"], {"city": "x"},
                                  rows["mine in east"]["version"])
    assert updated["city"] == "x"
    with pytest.raises(Forbidden):
        penv.records.list_records(both, "lead", ListQuery())


def test_an_unknown_role_grants_nothing(penv: Env) -> None:
    d = departments(penv)
    known = user(penv, "known", "dept_reader", department=d["NORTH"])
    place(penv, "account", {"name": "north"}, department=d["NORTH"])
    ghost = Actor(known.id, "known", ("ghost",), d["NORTH"])
    policy = penv.records.policy
    assert policy.roles_of(ghost) == []
    assert not policy.is_admin(ghost)
    assert policy.scope(ghost, "account", "read") is Scope.NONE
    with pytest.raises(Forbidden):
        penv.records.list_records(ghost, "account", ListQuery())
    with pytest.raises(Forbidden):
        penv.records.create(ghost, "account", {"name": "x"})
    # beside a known role it changes nothing
    mixed = replace(known, roles=("ghost", "dept_reader"))
    assert names(penv, mixed) == {"north"}


def test_the_engine_actor_sees_and_does_everything(penv: Env) -> None:
    d = departments(penv)
    rep = user(penv, "rep", "hider", department=d["BJ"])
    place(penv, "account", {"name": "a", "credit_limit": "10"}, owner=rep)
    policy = penv.records.policy
    account = penv.model.entity("account")
    assert policy.is_admin(SYSTEM)
    assert all(policy.scope(SYSTEM, e, a) is Scope.ALL
               for e in penv.model.entity_names for a in ("read", "update", "assign"))
    assert policy.mask(SYSTEM, account).hidden == frozenset()
    assert policy.row_filter(SYSTEM, account, penv.records.compiled("account").table) is None
    assert names(penv, SYSTEM) == {"a"}
    (row,) = penv.records.list_records(SYSTEM, "account", ListQuery()).items
    assert row["credit_limit"] == 10 and row["credit_twice"] == 20


# -- field masks ------------------------------------------------------------------------------


def test_a_field_is_hidden_when_every_reading_role_hides_it(penv: Env) -> None:
    d = departments(penv)
    account = penv.model.entity("account")
    policy = penv.records.policy
    hider = user(penv, "hider", "hider", department=d["BJ"])
    # a role that does not read accounts gets no say on what is hidden
    with_creator = user(penv, "hc", "hider", "creator", department=d["BJ"])
    # a role that reads accounts without hiding the field shows it
    with_reader = user(penv, "hr", "hider", "plain_reader", department=d["BJ"])
    hidden = {"credit_limit", "credit_twice"}
    assert hidden <= policy.mask(hider, account).hidden
    assert hidden <= policy.mask(with_creator, account).hidden
    assert not hidden & policy.mask(with_reader, account).hidden

    acc = place(penv, "account", {"name": "acme", "credit_limit": "500"})
    opp = place(penv, "opportunity", {"name": "deal", "account": acc["id"], "amount": "9"})
    for actor in (hider, with_creator):
        got = penv.records.get(actor, "account", acc["id"])
        assert "credit_limit" not in got and "credit_twice" not in got
        assert got["name"] == "acme"
        # a formula reading the hidden field through a reference is hidden too
        o = penv.records.get(actor, "opportunity", opp["id"])
        assert "account_credit" not in o and o["account_name"] == "acme"
        history = penv.records.history(actor, "account", acc["id"])
        # the hidden fields' rows and values are left out (compared field by field: the
        # rows' timestamps may hold "500" among their digits, as 23.755009 does)
        assert history and not {h["field"] for h in history} & hidden
        assert all("500" not in str(h["old"]) + str(h["new"]) for h in history)
    got = penv.records.get(with_reader, "account", acc["id"])
    assert got["credit_limit"] == 500 and got["credit_twice"] == 1000
    o = penv.records.get(with_reader, "opportunity", opp["id"])
    assert o["account_credit"] == 500


@pytest.mark.parametrize("params", [
    {"credit_limit__gt": "1"}, {"credit_twice__gt": "1"}, {"sort": "-credit_limit"},
    {"sort": "credit_twice"}, {"filter": "credit_limit > 1"},
    {"filter": "credit_twice > 1"}, {"filter": "ISBLANK(credit_limit)"},
])
def test_filters_and_sorts_on_hidden_fields_are_unknown(penv: Env, params: dict[str, str]
                                                       ) -> None:
    """As unknown as a field the entity does not have (400 naming the parameter), also
    when the caller parsed the query without telling the actor: list_records refuses it
    with the same answer."""
    hider = user(penv, "hider", "hider")
    place(penv, "account", {"name": "acme", "credit_limit": "500"})
    with pytest.raises(BadRequest) as info:
        names(penv, hider, **params)
    assert info.value.fields.keys() == {next(iter(params)) if "sort" not in params
                                        and "filter" not in params
                                        else "sort" if "sort" in params else "filter"}
    assert "unknown" in str(info.value.fields)
    assert names(penv, user(penv, "reader", "plain_reader"), **params) <= {"acme"}


@pytest.mark.parametrize("params", [
    {"filter": "account.credit_limit > 1"}, {"filter": "account_credit > 1"},
    {"account_credit__gt": "1"}, {"sort": "account_credit"},
])
def test_paths_through_references_to_hidden_fields_are_unknown(penv: Env,
                                                                params: dict[str, str]) -> None:
    hider = user(penv, "hider", "hider")
    acc = place(penv, "account", {"name": "acme", "credit_limit": "500"})
    place(penv, "opportunity", {"name": "deal", "account": acc["id"]})
    with pytest.raises(BadRequest, match="invalid") as info:
        names(penv, hider, "opportunity", **params)
    assert "unknown" in str(info.value.fields)
    assert names(penv, hider, "opportunity", filter="account.name = \"acme\"") == {"deal"}


def test_hidden_fields_cannot_be_written(penv: Env) -> None:
    hider = user(penv, "hider", "hider")
    with pytest.raises(Invalid) as info:
        penv.records.create(hider, "account", {"name": "a", "credit_limit": "5"})
    assert info.value.fields == {"credit_limit": "unknown field of account"}


def test_readonly_fields(penv: Env) -> None:
    d = departments(penv)
    account = penv.model.entity("account")
    policy = penv.records.policy
    hider = user(penv, "hider", "hider", department=d["BJ"])
    # plain_reader neither creates nor updates: it gets no say on read-only
    with_reader = user(penv, "hr", "hider", "plain_reader", department=d["BJ"])
    # editor updates without the rule: the field is writable
    with_editor = user(penv, "he", "hider", "editor", department=d["BJ"])
    assert "tier" in policy.mask(hider, account).readonly
    assert "tier" in policy.mask(with_reader, account).readonly
    assert "tier" not in policy.mask(with_editor, account).readonly
    assert "credit_limit" not in policy.mask(hider, account).readonly  # hidden, not readonly

    for actor in (hider, with_reader):
        with pytest.raises(Invalid) as info:
            penv.records.create(actor, "account", {"name": f"n-{actor.name}", "tier": "key"})
        assert info.value.fields == {"tier": "is read-only for your role"}
    row = penv.records.create(hider, "account", {"name": "acme", "city": "Ulm"})
    assert row["tier"] == "standard"  # the default still applies
    with pytest.raises(Invalid) as info:
        penv.records.update(hider, "account", row["id"], {"tier": "key"}, row["version"])
    assert info.value.fields == {"tier": "is read-only for your role"}
    done = penv.records.update(with_editor, "account", row["id"], {"tier": "key"},
                               row["version"])
    assert done["tier"] == "key"


def test_engine_columns_are_never_writable(penv: Env) -> None:
    for name in ("owner_id", "department_id", "version", "created_by", "id"):
        with pytest.raises(Invalid) as info:
            penv.records.create(SYSTEM, "account", {"name": "a", name: 1})
        assert info.value.fields == {name: "is set by the engine and cannot be written"}


# -- department_tree ---------------------------------------------------------------------------


def test_department_tree_over_three_levels(penv: Env) -> None:
    d = departments(penv)
    for code in ("HQ", "NORTH", "BJ", "SY", "EAST", "SH"):
        place(penv, "account", {"name": code}, department=d[code])
    place(penv, "account", {"name": "nowhere"})
    top = user(penv, "top", "tree_reader", department=d["HQ"])
    north = user(penv, "north", "tree_reader", department=d["NORTH"])
    bj = user(penv, "bj", "tree_reader", department=d["BJ"])
    homeless = user(penv, "homeless", "tree_reader")
    place(penv, "account", {"name": "homeless own"}, owner=homeless)
    place(penv, "account", {"name": "bj own in SH"}, owner=bj, department=d["SH"])
    everything = {"HQ", "NORTH", "BJ", "SY", "EAST", "SH", "bj own in SH"}
    assert names(penv, top) == everything
    assert names(penv, north) == {"NORTH", "BJ", "SY"}
    assert names(penv, bj) == {"BJ", "bj own in SH"}
    # without a department, department scopes shrink to what they own
    assert names(penv, homeless) == {"homeless own"}
    # the department scope does not reach down
    north_reader = user(penv, "nr", "dept_reader", department=d["NORTH"])
    assert names(penv, north_reader) == {"NORTH"}

    # moving a branch under another region moves its records with it
    east = [r for r in penv.records.list_records(SYSTEM, "department", ListQuery(
        conditions=parse_list_params(penv.model.entity("department"), {"code": "BJ"})
        .conditions)).items]
    (branch,) = east
    penv.records.update(SYSTEM, "department", branch["id"], {"parent": d["EAST"]},
                        branch["version"])
    assert names(penv, north) == {"NORTH", "SY"}
    assert "BJ" in names(penv, user(penv, "east", "tree_reader", department=d["EAST"]))

    # a record outside the scope is not found, never forbidden
    sh = next(r for r in penv.records.list_records(SYSTEM, "account", ListQuery()).items
              if r["name"] == "SH")
    with pytest.raises(NotFound):
        penv.records.get(north, "account", sh["id"])
    with pytest.raises(NotFound):
        penv.records.update(north, "account", sh["id"], {"city": "x"}, sh["version"])
    got = penv.records.get(top, "account", sh["id"])
    assert penv.records.update(top, "account", sh["id"], {"city": "x"},
                               got["version"])["city"] == "x"


# -- teams -------------------------------------------------------------------------------------


def _row(env: Env, actor: Actor, record_id: int) -> dict[str, Any]:
    return env.records.get(actor, "account", record_id)


def test_team_read_sees_edit_updates_delete_and_assign_never(penv: Env) -> None:
    worker = user(penv, "worker", "own_worker")
    acc = place(penv, "account", {"name": "shared"})
    rid = acc["id"]
    with pytest.raises(NotFound):
        penv.records.get(worker, "account", rid)
    assert names(penv, worker) == set()

    penv.records.set_team_member(SYSTEM, "account", rid, worker.id, "read")
    assert names(penv, worker) == {"shared"}
    row = _row(penv, worker, rid)
    with pytest.raises(Forbidden):
        penv.records.update(worker, "account", rid, {"city": "x"}, row["version"])
    with pytest.raises(Forbidden):
        penv.records.delete(worker, "account", rid)

    penv.records.set_team_member(SYSTEM, "account", rid, worker.id, "edit")
    row = _row(penv, worker, rid)
    assert penv.records.update(worker, "account", rid, {"city": "x"},
                               row["version"])["city"] == "x"
    with pytest.raises(Forbidden):
        penv.records.delete(worker, "account", rid)
    with pytest.raises(Forbidden):
        penv.records.assign(worker, "account", rid, owner=worker.id, department=None)

    # owning it is what delete and assign need
    penv.records.assign(SYSTEM, "account", rid, owner=worker.id, department=None)
    penv.records.delete(worker, "account", rid)
    penv.records.restore(worker, "account", rid)

    penv.records.remove_team_member(SYSTEM, "account", rid, worker.id)
    penv.records.assign(SYSTEM, "account", rid, owner=penv.admin.id, department=None)
    with pytest.raises(NotFound):
        penv.records.get(worker, "account", rid)


def test_team_access_is_per_record_and_per_entity(penv: Env) -> None:
    worker = user(penv, "worker", "own_worker")
    a = place(penv, "account", {"name": "a"})
    place(penv, "account", {"name": "b"})
    opp = place(penv, "opportunity", {"name": "deal", "account": a["id"]})
    penv.records.set_team_member(SYSTEM, "account", a["id"], worker.id, "read")
    assert names(penv, worker) == {"a"}
    assert opp["id"] == a["id"]  # the team row says (account, id): not (opportunity, id)
    with pytest.raises(NotFound):
        penv.records.get(worker, "opportunity", opp["id"])


def test_a_named_entity_takes_no_action_from_the_star_entry() -> None:
    """docs/access.md: "*" is every entity not named; a named entity's unlisted action is none."""
    from engine.metadata.labels import Label
    from engine.metadata.roles import Role

    role = Role("r", Label.of(None, "r"), grants=(
        ("lead", (("create", Scope.OWN),)),
        ("*", (("read", Scope.ALL), ("delete", Scope.ALL)))))
    assert role.scope("lead", "create") is Scope.OWN
    assert role.scope("lead", "read") is Scope.NONE
    assert role.scope("lead", "delete") is Scope.NONE
    assert role.scope("account", "read") is Scope.ALL


def test_bulk_import_links_only_to_records_the_importer_can_read(env: Env) -> None:
    d = departments(env)
    rep = user(env, "rep", "sales_rep", department=d["BJ"])
    mine = place(env, "account", {"name": "Mine"}, owner=rep)
    theirs = place(env, "account", {"name": "Theirs"}, department=d["SH"])
    result = env.records.bulk_create(rep, "contact", [
        {"full_name": "A", "account": mine["id"]},
        {"full_name": "B", "account": theirs["id"]}])
    assert result.created == 1
    assert result.errors == [(1, {"account": f"no account with id {theirs['id']}"})]
