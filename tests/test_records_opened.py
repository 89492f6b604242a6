"""One record opened with what hangs on it, on one connection
(engine/runtime/records/opened.py): each part answers as the service's own method does."""

from __future__ import annotations

import pytest

from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import Forbidden, NotFound
from engine.runtime.records.opened import open_record
from tests.access_helpers import departments, place, user
from tests.conftest import Env

SCORED = {"name": "Deal", "stage": "proposal", "amount": 1000, "budget": "confirmed",
          "authority": "influencer", "need": "urgent"}


def _deal(env: Env, owner: Actor, **data: object) -> int:
    """An opportunity of a new account, owned by `owner`."""
    account = place(env, "account", {"name": f"Account of {data.get('name', 'Deal')}"})["id"]
    return int(place(env, "opportunity", {"name": "Deal", **data, "account": account},
                     owner=owner)["id"])


def _allowed_by_service(env: Env, actor: Actor, entity: str, record_id: int,
                        action: str) -> bool:
    try:
        with env.engine.connect() as conn:
            env.records.allowed(conn, actor, env.records.compiled(entity), record_id, action)
    except Forbidden:
        return False
    return True


def test_what_the_reader_may_do_is_what_each_check_says(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    pre = user(env, "pre", "presales", department=dept["BJ"])
    boss = user(env, "boss", "sales_manager", department=dept["NORTH"])
    mine = _deal(env, rep, name="Mine")
    env.records.set_team_member(SYSTEM, "opportunity", mine, pre.id, "edit")
    actions = ("update", "delete", "assign")
    for actor in (rep, pre, boss, env.admin.actor()):
        with open_record(env.records, actor, "opportunity", mine) as opened:
            got = opened.allowed(actions)
        assert got == {a for a in actions
                       if _allowed_by_service(env, actor, "opportunity", mine, a)}, actor.name
    with open_record(env.records, pre, "opportunity", mine) as opened:
        assert opened.allowed(actions) == {"update"}  # an editing member, not the owner
    with open_record(env.records, rep, "opportunity", mine) as opened:
        assert opened.allowed(actions) == {"update", "delete"}


def test_a_record_out_of_sight_is_not_opened(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    other = user(env, "other", "sales_rep", department=dept["BJ"])
    theirs = _deal(env, other, name="Theirs")
    with pytest.raises(NotFound), open_record(env.records, rep, "opportunity", theirs):
        pass
    partner = user(env, "partner", "partner", department=dept["BJ"])
    with pytest.raises(Forbidden), open_record(env.records, partner, "department", dept["BJ"]):
        pass  # partners may not read departments at all
    env.records.delete(SYSTEM, "opportunity", theirs)
    with pytest.raises(NotFound), open_record(env.records, other, "opportunity", theirs):
        pass  # in the recycle bin


def test_the_parts_equal_the_services_answers(env: Env) -> None:
    dept = departments(env)
    partner = user(env, "partner", "partner", department=dept["BJ"])
    deal_id = _deal(env, partner, **SCORED)
    version = env.records.get(SYSTEM, "opportunity", deal_id)["version"]
    env.records.update(SYSTEM, "opportunity", deal_id, {"stage": "negotiation"}, version)
    env.records.set_team_member(SYSTEM, "opportunity", deal_id, env.admin.id, "read")
    for actor in (env.admin.actor(), partner):
        with open_record(env.records, actor, "opportunity", deal_id) as opened:
            assert opened.record == env.records.get(actor, "opportunity", deal_id)
            assert opened.history() == env.records.history(actor, "opportunity", deal_id)
            assert opened.team() == env.records.team(actor, "opportunity", deal_id)
            if actor is partner:  # the score is hidden from partners
                assert "score" not in opened.record
                with pytest.raises(NotFound):
                    opened.explain("score")
            else:
                assert opened.explain("score") == env.records.explain(
                    actor, "opportunity", deal_id, "score")


def test_children_are_the_newest_the_reader_may_read_and_counted(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    other = user(env, "other", "sales_rep", department=dept["BJ"])
    deal = _deal(env, rep)
    ids = [place(env, "activity", {"subject": f"Call {i}", "kind": "call", "opportunity": deal},
                 owner=rep if i % 3 else other)["id"] for i in range(7)]
    mine = [i for n, i in enumerate(ids) if n % 3]
    with open_record(env.records, rep, "opportunity", deal) as opened:
        rows, total = opened.children("activity", "opportunity", 3)
        assert [r["id"] for r in rows] == sorted(mine, reverse=True)[:3]
        assert total == len(mine)
        rows, total = opened.children("activity", "opportunity", 20)
        assert [r["id"] for r in rows] == sorted(mine, reverse=True)
        assert total == len(mine)
    with open_record(env.records, SYSTEM, "opportunity", deal) as opened:
        assert opened.children("activity", "opportunity", 7)[1] == len(ids)
