"""The changes feed (`GET /api/<entity>/changes`, engine/runtime/records/feed.py) and the
change log the unit of work writes (engine/runtime/records/changelog.py), on both
databases: each action once and in commit order, the caller's access, paging, bad
parameters, bulk create, and an ERP-style copy kept exactly in step under concurrent writes.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Conflict, NotFound, RecordError
from engine.runtime.records.changelog import log_rows
from engine.runtime.records.feed import decode_cursor, encode_cursor
from engine.runtime.records.unit import RecordChange
from engine.runtime.schema.tables import CHANGE_TABLE
from tests.access_helpers import departments, user, without_timestamps
from tests.conftest import Env
from tests.test_api import assert_error


def account(env: Env, name: str = "Feed Co") -> int:
    return int(env.records.create(SYSTEM, "account", {"name": name})["id"])


def touch(env: Env, rid: int, data: dict[str, Any]) -> dict[str, Any]:
    """Update an opportunity as the engine, from its current version."""
    version = env.records.get(SYSTEM, "opportunity", rid)["version"]
    return env.records.update(SYSTEM, "opportunity", rid, data, version)


def pull(client: TestClient, entity: str, since: str | None = None,
         limit: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if since is not None:
        params["since"] = since
    if limit is not None:
        params["limit"] = limit
    resp = client.get(f"/api/{entity}/changes", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"items", "next_cursor"}
    return body  # type: ignore[no-any-return]


def pull_all(client: TestClient, entity: str, since: str | None = None,
             limit: int = 100) -> tuple[list[dict[str, Any]], str]:
    """What an ERP does: pull until a page comes back empty; the items and the cursor."""
    items: list[dict[str, Any]] = []
    while True:
        body = pull(client, entity, since, limit)
        since = body["next_cursor"]
        if not body["items"]:
            return items, since
        items += body["items"]


def log_count(env: Env) -> int:
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(
            env.records.schema.table(CHANGE_TABLE))).scalar_one())


# -- each action once, in order ----------------------------------------------------------


def test_each_action_appears_once_in_commit_order(env: Env, api: TestClient) -> None:
    r = env.records
    acc = account(env)
    start = pull(api, "opportunity")["next_cursor"]
    opp = r.create(SYSTEM, "opportunity", {"name": "Feed deal", "account": acc,
                                           "amount": "100"})
    oid = opp["id"]
    r.update(SYSTEM, "opportunity", oid, {"amount": "250"}, opp["version"])
    r.delete(SYSTEM, "opportunity", oid)
    r.restore(SYSTEM, "opportunity", oid)
    r.delete(SYSTEM, "opportunity", oid)
    r.purge(SYSTEM, "opportunity", oid)
    items, _ = pull_all(api, "opportunity", start)
    assert [(i["action"], i["id"]) for i in items] == [
        ("create", oid), ("update", oid), ("delete", oid), ("restore", oid), ("delete", oid),
        ("purge", oid)]
    # every item reads the record as it is now: purged, so gone
    assert all(i["record"] is None for i in items)
    cursors = [i["cursor"] for i in items]
    assert len(set(cursors)) == len(cursors)
    assert [decode_cursor(c) for c in cursors] == sorted(decode_cursor(c) for c in cursors)
    assert all(datetime.fromisoformat(i["at"]).tzinfo is not None for i in items)


def test_items_carry_the_record_as_it_is_now(env: Env, api: TestClient) -> None:
    r = env.records
    acc = account(env)
    start = pull(api, "opportunity")["next_cursor"]
    kept = r.create(SYSTEM, "opportunity", {"name": "Kept", "account": acc, "amount": "10"})
    binned = r.create(SYSTEM, "opportunity", {"name": "Binned", "account": acc})
    r.delete(SYSTEM, "opportunity", binned["id"])
    items, end = pull_all(api, "opportunity", start)
    by_id = {i["id"]: i for i in items}
    assert by_id[kept["id"]]["record"] == api.get(f"/api/opportunity/{kept['id']}").json()
    assert by_id[kept["id"]]["record"]["amount"] == "10.00"
    gone = by_id[binned["id"]]  # the last item of the record: its delete
    assert gone["action"] == "delete" and gone["record"]["deleted_at"] is not None
    # nothing new: an empty page, and the cursor stays
    again = pull(api, "opportunity", end)
    assert again == {"items": [], "next_cursor": end}


def test_assign_team_and_rollups_are_updates(env: Env, api: TestClient) -> None:
    r = env.records
    d = departments(env)
    rep = user(env, "feed_rep", "sales_rep", department=d["BJ"])
    acc = account(env)
    opp = r.create(SYSTEM, "opportunity", {"name": "Moved", "account": acc})
    opp_start = pull(api, "opportunity")["next_cursor"]
    acc_start = pull(api, "account")["next_cursor"]
    r.assign(SYSTEM, "opportunity", opp["id"], owner=rep.id, department=None)
    r.set_team_member(SYSTEM, "opportunity", opp["id"], rep.id, "read")
    items, _ = pull_all(api, "opportunity", opp_start)
    assert [(i["action"], i["id"]) for i in items] == [("update", opp["id"])] * 2
    assert items[-1]["record"]["owner_id"] == rep.id
    # a child's write changes the account's rollups: an update of the account
    r.create(SYSTEM, "opportunity", {"name": "Child", "account": acc, "amount": "5"})
    acc_items, _ = pull_all(api, "account", acc_start)
    rolled = [i for i in acc_items if i["id"] == acc]
    if any(f.rollup is not None for f in env.model.entity("account").fields):
        assert rolled and rolled[-1]["action"] == "update"


def test_bulk_create_logs_one_row_per_record(env: Env, api: TestClient) -> None:
    acc = account(env)
    start = pull(api, "opportunity")["next_cursor"]
    before = log_count(env)
    result = env.records.bulk_create(SYSTEM, "opportunity", [
        {"name": f"Bulk {n}", "account": acc} for n in range(7)] + [{"name": "no account"}],
        batch_size=3)
    assert result.created == 7
    items, _ = pull_all(api, "opportunity", start, limit=2)
    assert [(i["action"], i["id"]) for i in items] == [("create", i) for i in result.ids]
    # the account's rollups are updates of the account, once per batch at most
    assert 7 <= log_count(env) - before <= 7 + 3


def test_a_refused_write_and_a_dry_run_log_nothing(env: Env) -> None:
    r = env.records
    acc = account(env)
    before = log_count(env)
    with pytest.raises(RecordError):
        r.create(SYSTEM, "opportunity", {"name": "", "account": acc})
    r.dry_run(SYSTEM, lambda u: r.create(SYSTEM, "opportunity",
                                        {"name": "Dry", "account": acc}, unit=u))
    assert log_count(env) == before


# -- access ------------------------------------------------------------------------------


def test_a_rep_hears_only_of_their_records(env: Env, api: TestClient) -> None:
    r = env.records
    d = departments(env)
    rep = user(env, "feed_rep", "sales_rep", department=d["BJ"])
    other = user(env, "feed_rep2", "sales_rep", department=d["SH"])
    acc = account(env)
    mine = r.create(SYSTEM, "opportunity", {"name": "Mine", "account": acc})
    r.assign(SYSTEM, "opportunity", mine["id"], owner=rep.id, department=None)
    theirs = r.create(SYSTEM, "opportunity", {"name": "Theirs", "account": acc})
    r.assign(SYSTEM, "opportunity", theirs["id"], owner=other.id, department=None)
    client = env.client(env.users.new_token("feed_rep"))
    items, cursor = pull_all(client, "opportunity")
    assert {i["id"] for i in items} == {mine["id"]}
    assert all(i["record"]["owner_id"] == rep.id for i in items)
    # the other rep's changes move the cursor but never show, not even their ids
    touch(env, theirs["id"], {"amount": "9"})
    body = pull(client, "opportunity", cursor)
    assert body["items"] == []
    assert decode_cursor(body["next_cursor"]) > decode_cursor(cursor)
    assert str(theirs["id"]) not in client.get(
        "/api/opportunity/changes", params={"since": cursor}).text.replace(
        body["next_cursor"], "")
    # a record given away reads as gone for the rep; its new owner hears of it
    r.assign(SYSTEM, "opportunity", mine["id"], owner=other.id, department=None)
    body = pull(client, "opportunity", body["next_cursor"])
    assert [(i["action"], i["id"], i["record"]) for i in body["items"]] == [
        ("update", mine["id"], None)]
    again, _ = pull_all(client, "opportunity")
    assert {i["id"] for i in again} == {mine["id"]}
    assert all(i["record"] is None for i in again)
    other_items, _ = pull_all(env.client(env.users.new_token("feed_rep2")), "opportunity")
    assert {i["id"] for i in other_items} == {mine["id"], theirs["id"]}
    # an entity the caller may not read at all: 403
    assert_error(client.get("/api/service_queue/changes"), 403)


def test_fields_hidden_from_the_caller_never_show(env: Env, api: TestClient) -> None:
    acc = account(env)
    start = pull(api, "opportunity")["next_cursor"]
    opp = env.records.create(SYSTEM, "opportunity", {"name": "Hidden amount",
                                                     "account": acc, "amount": "777"})
    user(env, "feed_mkt", "marketing")  # reads every opportunity, its amount hidden
    client = env.client(env.users.new_token("feed_mkt"))
    items, _ = pull_all(client, "opportunity", start)
    assert [i["id"] for i in items] == [opp["id"]]
    record = items[0]["record"]
    assert record["name"] == "Hidden amount"
    assert "amount" not in record and "weighted" not in record
    assert "777" not in without_timestamps(client.get("/api/opportunity/changes",
                                                      params={"since": start}).text)
    assert record == client.get(f"/api/opportunity/{opp['id']}").json()


# -- paging and bad parameters -----------------------------------------------------------


def test_cursor_paging(env: Env, api: TestClient) -> None:
    acc = account(env)
    start = pull(api, "opportunity")["next_cursor"]
    ids = [env.records.create(SYSTEM, "opportunity", {"name": f"P{n}", "account": acc})["id"]
           for n in range(5)]
    one, cursor = pull(api, "opportunity", start, 2), None
    assert [i["id"] for i in one["items"]] == ids[:2]
    assert one["next_cursor"] == one["items"][-1]["cursor"]
    two = pull(api, "opportunity", one["next_cursor"], 2)
    three = pull(api, "opportunity", two["next_cursor"], 2)
    assert [i["id"] for i in two["items"] + three["items"]] == ids[2:]
    cursor = three["next_cursor"]
    assert pull(api, "opportunity", cursor)["items"] == []
    # an item's own cursor resumes right after it
    resumed = pull(api, "opportunity", one["items"][0]["cursor"], 10)
    assert [i["id"] for i in resumed["items"]] == ids[1:]


def test_bad_cursor_and_limit(api: TestClient) -> None:
    for bad in ["x", "!!!", "Y2hnMTotMQ", encode_cursor(1) + "A", "a" * 100, "5", "=",
                encode_cursor(1) + "=", "Y2hnMTo5OTk5OTk5OTk5OTk5OTk5OTk5"]:
        error = assert_error(api.get("/api/opportunity/changes", params={"since": bad}), 400)
        assert set(error["fields"]) == {"since"}, bad
    for limit in ["0", "1001", "abc", "-1", "1e3", ""]:
        error = assert_error(api.get("/api/opportunity/changes", params={"limit": limit}),
                             422, "invalid")
        assert set(error["fields"]) == {"limit"}
        assert "1000" in error["fields"]["limit"]
    assert pull(api, "opportunity", limit=1000)["items"] is not None
    assert_error(api.get("/api/nothing/changes"), 404)
    assert_error(api.get("/api/opportunity/changes",
                         headers={"Authorization": "Bearer nope"}), 401)


def test_cursor_round_trip() -> None:
    for seq in [0, 1, 99, 2**31, 2**63 - 1]:
        assert decode_cursor(encode_cursor(seq)) == seq
    assert decode_cursor(None) == 0 and decode_cursor("") == 0


def test_log_rows_collapse_a_unit_to_one_row_per_record() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def ch(entity: str, rid: int, action: str, owner: int | None = 1) -> RecordChange:
        return RecordChange(entity, rid, action, None, {"owner_id": owner,
                                                       "department_id": None}, (), 1, at)

    rows = log_rows([ch("opportunity", 1, "create"), ch("account", 2, "rollup"),
                     ch("opportunity", 1, "update"), ch("opportunity", 3, "assign"),
                     ch("opportunity", 3, "delete"), ch("crm_attachment", 4, "purge"),
                     ch("opportunity", 5, "attachment"), ch("opportunity", 6, "team")])
    assert [(r["entity"], r["record_id"], r["action"]) for r in rows] == [
        ("opportunity", 1, "create"), ("account", 2, "update"), ("opportunity", 3, "delete"),
        ("opportunity", 6, "update")]


# -- the proof: an ERP copy in step under concurrent writes -------------------------------


WRITERS = 4
WRITES_EACH = 60


def _writer(env: Env, acc: int, seed: int, errors: list[BaseException]) -> None:
    r = env.records
    rng = random.Random(seed)
    mine: list[int] = []
    try:
        for n in range(WRITES_EACH):
            roll = rng.random()
            try:
                if not mine or roll < 0.35:
                    mine.append(r.create(SYSTEM, "opportunity", {
                        "name": f"W{seed}-{n}", "account": acc,
                        "amount": str(rng.randint(1, 999))})["id"])
                elif roll < 0.7:
                    rid = rng.choice(mine)
                    touch(env, rid, {"amount": str(rng.randint(1, 999))})
                elif roll < 0.8:
                    r.delete(SYSTEM, "opportunity", rng.choice(mine))
                elif roll < 0.9:
                    r.restore(SYSTEM, "opportunity", rng.choice(mine))
                else:
                    rid = rng.choice(mine)
                    r.delete(SYSTEM, "opportunity", rid)
                    r.purge(SYSTEM, "opportunity", rid)
                    mine.remove(rid)
            except (NotFound, Conflict):
                pass  # restoring a live record, deleting a binned one: refused, fine
    except BaseException as exc:
        errors.append(exc)


def _database_copy(env: Env) -> dict[int, dict[str, Any]]:
    """Every opportunity (recycle bin included) as the API reads it."""
    api = env.client(env.users.new_token("admin"))
    out: dict[int, dict[str, Any]] = {}
    with env.engine.connect() as conn:
        t = env.records.schema.table("opportunity")
        ids = list(conn.execute(select(t.c.id)).scalars())
    for rid in ids:
        resp = api.get(f"/api/opportunity/{rid}", params={"deleted": "true"})
        if resp.status_code == 404:
            resp = api.get(f"/api/opportunity/{rid}")
        assert resp.status_code == 200, resp.text
        out[rid] = resp.json()
    return out


def test_an_erp_copy_stays_exactly_in_step_under_concurrent_writes(
        env: Env, api: TestClient) -> None:
    # one account per writer: writers of one account's deals would wait for each other on
    # the account's row (its rollups), which orders their commits whatever the log does
    accounts = [account(env, f"ERP Co {n}") for n in range(WRITERS)]
    copy: dict[int, dict[str, Any]] = {}
    cursor: str | None = None
    seen_cursors: set[str] = set()

    def poll() -> int:
        """One request: apply its items to the copy, keep its cursor."""
        nonlocal cursor
        body = pull(api, "opportunity", cursor, 7)
        cursor = body["next_cursor"]
        for item in body["items"]:
            assert item["cursor"] not in seen_cursors, "an item came twice"
            seen_cursors.add(item["cursor"])
            if item["record"] is None:
                copy.pop(item["id"], None)
            else:
                copy[item["id"]] = item["record"]
        return len(body["items"])

    # widen the gap between a write's log rows and its commit, where a feed ordered by
    # sequence rather than by commit would let a reader skip a row for good
    jitter = random.Random(7)

    def slow_commit(_conn: Any) -> None:
        time.sleep(jitter.random() * 0.02)

    errors: list[BaseException] = []
    threads = [threading.Thread(target=_writer, args=(env, accounts[seed], seed, errors))
               for seed in range(WRITERS)]
    event.listen(env.engine, "commit", slow_commit)
    try:
        for t in threads:
            t.start()
        busy = 0  # polls that brought something while the writers wrote
        while any(t.is_alive() for t in threads):
            busy += poll() > 0
        for t in threads:
            t.join()
    finally:
        event.remove(env.engine, "commit", slow_commit)
    assert not errors, errors
    while poll():  # the final poll: until a page comes back empty
        pass
    assert busy > 5
    assert copy == _database_copy(env)
    assert len(seen_cursors) == log_rows_of(env, "opportunity")


def log_rows_of(env: Env, entity: str) -> int:
    log = env.records.schema.table(CHANGE_TABLE)
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(log.c.entity == entity))
                   .scalar_one())
