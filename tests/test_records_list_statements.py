"""A list's statement: built once per actor and query, LIMIT and OFFSET as numbers in the SQL
(so PostgreSQL can run a prepared list from its generic plan: bench/access_list.py measures
it; over a test's few rows PostgreSQL picks the generic plan either way), and still reading
the records, teams, owners and clock as they are at each run."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from engine.runtime.access import SYSTEM, Actor
from engine.runtime.records import service
from engine.runtime.records.query import parse_list_params
from tests.access_helpers import Person, add_fields, opportunity_statements, user, write_roles
from tests.conftest import Env, EnvFactory

ROLES = """\
roles:
  admin: {admin: true}
  own: {entities: {opportunity: {read: own}, account: {read: all}}}
"""
AMOUNTS = [5000, 1200, 9000, 700, 3300, 8100, 2500, 6400, 4100, 900, 7300, 1800]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

World = tuple[Env, Person, Person, list[int]]


@pytest.fixture
def world(make_env: EnvFactory, config_dir: Path) -> World:
    """12 opportunities: the rep owns those at even positions, the other rep the rest."""
    write_roles(config_dir, ROLES)
    add_fields(config_dir, "account", "seen_on: {type: date, formula: 'TODAY()'}")
    env = make_env(config_dir)
    env.records.clock = lambda: NOW
    rep, other = user(env, "rep", "own"), user(env, "other", "own")
    account = env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    result = env.records.bulk_create(SYSTEM, "opportunity", [
        {"name": f"deal {i}", "account": account, "amount": str(a), "stage": "proposal",
         "close_date": "2025-03-31"} for i, a in enumerate(AMOUNTS)])
    assert result.errors == []
    t = env.records.compiled("opportunity").table
    with env.engine.execution_options(crm_write=True).begin() as conn:
        for i, record_id in enumerate(result.ids):
            conn.execute(update(t).where(t.c.id == record_id)
                         .values(owner_id=(rep if i % 2 == 0 else other).id))
    return env, rep, other, result.ids


def _ids(env: Env, actor: Actor, **params: str) -> list[int]:
    query = parse_list_params(env.model.entity("opportunity"), params)
    return [r["id"] for r in env.records.list_records(actor, "opportunity", query).items]


def _by_amount(ids: list[int], positions: list[int]) -> list[int]:
    return [ids[i] for i in sorted(positions, key=lambda i: -AMOUNTS[i])]


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many list statements list_records builds from here on (a list of one number)."""
    builds = [0]
    real = service.page_statement

    def counted(*args: Any, **kwargs: Any) -> Any:
        builds[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "page_statement", counted)
    return builds


def test_a_list_is_built_once_per_actor_and_query(world: World,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    env, rep, other, ids = world
    builds = _count_builds(monkeypatch)
    mine = _by_amount(ids, list(range(0, 12, 2)))
    theirs = _by_amount(ids, list(range(1, 12, 2)))
    first = {"sort": "-amount", "page_size": "4"}
    assert _ids(env, rep, **first) == mine[:4]
    assert _ids(env, rep, **first) == mine[:4]
    assert builds == [1]
    assert _ids(env, rep, **first, page="2") == mine[4:]
    assert _ids(env, other, **first) == theirs[:4]
    assert _ids(env, SYSTEM, **first) == _by_amount(ids, list(range(12)))[:4]
    assert builds == [4]
    # a search's and a cursor's pages are built for their one run
    for _ in range(2):
        assert _ids(env, rep, **first, amount__lt="5000") == [
            i for i in mine if AMOUNTS[ids.index(i)] < 5000][:4]
    assert builds == [6]
    cursor = env.records.list_records(rep, "opportunity", parse_list_params(
        env.model.entity("opportunity"), first)).next_cursor
    assert cursor is not None
    assert _ids(env, rep, **first, cursor=cursor) == mine[4:]
    assert _ids(env, rep, **first, cursor=cursor) == mine[4:]
    assert builds == [8]


def test_a_reused_list_reads_teams_and_owners_as_they_are_now(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    env, rep, other, ids = world
    builds = _count_builds(monkeypatch)
    assert _ids(env, rep, sort="-amount") == _by_amount(ids, [0, 2, 4, 6, 8, 10])
    env.records.set_team_member(SYSTEM, "opportunity", ids[5], rep.id, "read")
    env.records.assign(SYSTEM, "opportunity", ids[2], owner=other.id, department=None)
    assert _ids(env, rep, sort="-amount") == _by_amount(ids, [0, 4, 5, 6, 8, 10])
    env.records.remove_team_member(SYSTEM, "opportunity", ids[5], rep.id)
    env.records.delete(SYSTEM, "opportunity", ids[0])
    assert _ids(env, rep, sort="-amount") == _by_amount(ids, [4, 6, 8, 10])
    assert builds == [1]


def test_a_record_owned_and_shared_fills_one_place_of_the_page(world: World) -> None:
    """The page's ids come from the union of the branches' first rows: a record in both
    (the rep owns it and is on its team) must count once, or the page comes up short."""
    env, rep, _other, ids = world
    mine = _by_amount(ids, list(range(0, 12, 2)))
    for record_id in mine[:3]:
        env.records.set_team_member(SYSTEM, "opportunity", record_id, rep.id, "edit")
    env.records.set_team_member(SYSTEM, "opportunity", ids[1], rep.id, "read")
    shared = _by_amount(ids, [*range(0, 12, 2), 1])
    assert _ids(env, rep, sort="-amount", page_size="4") == shared[:4]
    assert _ids(env, rep, sort="-amount", page_size="4", page="2") == shared[4:]
    assert _ids(env, rep, sort="amount", page_size="5") == shared[::-1][:5]


def test_a_list_whose_fields_read_the_clock_follows_it(world: World) -> None:
    """A computed field reading TODAY() binds the day when its SQL is built: such a list is
    built for every run, never reused."""
    env, rep, _other, _record_ids = world
    query = parse_list_params(env.model.entity("account"), {"sort": "name"})

    def days() -> list[date]:
        return [r["seen_on"] for r in env.records.list_records(rep, "account", query).items]

    assert days() == [NOW.date()]
    env.records.clock = lambda: NOW + timedelta(days=10)
    assert days() == [NOW.date() + timedelta(days=10)]


def _sql(env: Env, run: Callable[[], Any]) -> list[str]:
    return [statement for statement, _ in opportunity_statements(env, run)]


@pytest.mark.parametrize("who", ["admin", "rep"])
def test_limit_and_offset_are_numbers_in_the_sql(world: World, who: str) -> None:
    env, rep, _other, _record_ids = world
    actor = SYSTEM if who == "admin" else rep
    rows, *_ = _sql(env, lambda: _ids(env, actor, sort="-amount", page_size="2", page="3"))
    flat = " ".join(rows.split())
    if who == "admin":
        assert flat.endswith("LIMIT 2 OFFSET 4")
    else:  # each branch's first offset + limit, the page's ids from their union, its rows
        assert len(re.findall(r"LIMIT 6\b", flat)) == 2, flat
        assert "LIMIT 2 OFFSET 4)" in flat and re.search(r"LIMIT 2( OFFSET \?)?$", flat), flat
    first, *_ = _sql(env, lambda: _ids(env, actor, sort="-amount", page_size="2"))
    # no OFFSET for the first page (SQLAlchemy writes SQLite's as OFFSET 0, a parameter)
    assert re.search(r"LIMIT 2( OFFSET \?)?$", " ".join(first.split())), first

