"""Which rows of a page an actor may act on (engine/runtime/records/permitted.py)."""

from __future__ import annotations

from engine.runtime.access import SYSTEM
from engine.runtime.records.permitted import permitted_ids
from tests.access_helpers import departments, place, user
from tests.conftest import Env


def test_the_rows_follow_each_actions_scope_and_the_team(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    other = user(env, "other", "sales_rep", department=dept["BJ"])
    boss = user(env, "boss", "sales_manager", department=dept["NORTH"])
    acme = place(env, "account", {"name": "Acme"}, department=dept["BJ"])["id"]
    mine = place(env, "contact", {"full_name": "Mine", "account": acme}, owner=rep)["id"]
    theirs = place(env, "contact", {"full_name": "Theirs", "account": acme}, owner=other)["id"]
    shared = place(env, "contact", {"full_name": "Shared", "account": acme}, owner=other)["id"]
    env.records.set_team_member(SYSTEM, "contact", shared, rep.id, "edit")
    ids = [mine, theirs, shared]
    # own scope: the owner or an editing team member may update, only the owner delete
    assert permitted_ids(env.records, rep, "contact", ids, "update") == {mine, shared}
    assert permitted_ids(env.records, rep, "contact", ids, "delete") == {mine}
    # department_tree: BJ is under NORTH; none: nothing; admin (all): everything
    assert permitted_ids(env.records, boss, "contact", ids, "delete") == set(ids)
    assert permitted_ids(env.records, rep, "product", ids, "delete") == frozenset()
    assert permitted_ids(env.records, env.admin.actor(), "contact", ids, "update") == set(ids)
    # a deleted record still counts (restoring needs delete), and no ids asks nothing
    env.records.delete(SYSTEM, "contact", mine)
    assert permitted_ids(env.records, rep, "contact", [mine], "delete") == {mine}
    assert permitted_ids(env.records, rep, "contact", [], "delete") == frozenset()
