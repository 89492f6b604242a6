"""The change log's retention (engine/runtime/records/retention.py): settings.yaml
`changes.keep_days`, the worker's pruning and the feed's floor — a cursor from before what
the log keeps answers 410, `since=now` starts a copy over — on both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Gone
from engine.runtime.flows.worker import Worker
from engine.runtime.records import retention
from engine.runtime.records.feed import decode_cursor, read_changes
from engine.runtime.records.retention import log_floor, prune_log
from tests.conftest import Env, EnvFactory, write_settings
from tests.test_api import assert_error
from tests.test_api_changes import pull

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def kept(make_env: EnvFactory, config_dir: Path) -> Env:
    """The shipped config, its change log keeping 30 days."""
    write_settings(config_dir, "changes: {keep_days: 30}")
    env = make_env(config_dir)
    assert env.model.settings.changes_keep_days == 30
    return env


def created(env: Env, name: str, when: datetime) -> int:
    """An account created at `when` (the service's clock)."""
    env.records.clock = lambda: when
    return int(env.records.create(SYSTEM, "account", {"name": name})["id"])


def logged(env: Env) -> list[tuple[int, int]]:
    """The log's rows: (seq, record id), in order."""
    log = env.records.change_log
    with env.engine.connect() as conn:
        return [(s, r) for s, r in conn.execute(
            select(log.c.seq, log.c.record_id).order_by(log.c.seq))]


def test_pruning_deletes_rows_older_than_keep_days_and_moves_the_floor(kept: Env) -> None:
    old = created(kept, "Old Co", T0)
    young = created(kept, "Young Co", T0 + 20 * DAY)
    (old_seq, _), (young_seq, _) = logged(kept)
    assert log_floor(kept.records) == 0  # nothing deleted yet

    assert prune_log(kept.records, T0 + 30 * DAY) == 0  # exactly 30 days old: kept
    assert prune_log(kept.records, T0 + 31 * DAY) == 1
    assert logged(kept) == [(young_seq, young)]
    assert log_floor(kept.records) == old_seq
    assert prune_log(kept.records, T0 + 31 * DAY) == 0  # again: nothing more to do

    assert prune_log(kept.records, T0 + 51 * DAY) == 1
    assert logged(kept) == [] and log_floor(kept.records) == young_seq
    assert kept.records.get(SYSTEM, "account", old)["name"] == "Old Co"  # only the log


def test_without_keep_days_nothing_is_deleted(env: Env) -> None:
    assert env.model.settings.changes_keep_days is None
    created(env, "Old Co", T0)
    before = logged(env)
    assert prune_log(env.records, T0 + 10_000 * DAY) == 0
    assert logged(env) == before and log_floor(env.records) == 0


def test_pruning_goes_a_chunk_at_a_time_and_stops_at_the_first_young_row(
        kept: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "PRUNE_CHUNK", 3)
    for i in range(7):
        created(kept, f"Old {i}", T0 + i * timedelta(minutes=1))
    young = created(kept, "Young", T0 + 10 * DAY)
    created(kept, "Old again", T0)  # older, but after a young row in commit order: kept
    rows = logged(kept)
    assert prune_log(kept.records, T0 + 35 * DAY) == 7
    assert logged(kept) == rows[7:] and rows[7][1] == young
    assert log_floor(kept.records) == rows[6][0]


def test_a_cursor_below_the_floor_is_gone_and_since_now_starts_over(kept: Env) -> None:
    api = kept.client(kept.users.new_token("admin"))
    start = pull(api, "account")["next_cursor"]
    first = created(kept, "First Co", T0)
    after_first = pull(api, "account", start)["next_cursor"]
    second = created(kept, "Second Co", T0 + 20 * DAY)
    assert prune_log(kept.records, T0 + 31 * DAY) == 1

    # the rows after these cursors may be gone: 410, naming since, for both the start
    # and a cursor from before the floor
    for since in (None, start):
        resp = api.get("/api/account/changes", params={} if since is None else
                       {"since": since})
        error = assert_error(resp, 410, "cursor_expired")
        assert set(error["fields"]) == {"since"}
        assert "30 days" in error["message"] and "since=now" in error["message"]
    with pytest.raises(Gone):
        read_changes(kept.records, SYSTEM, "account", start)

    # a cursor at the floor lost nothing
    page = pull(api, "account", after_first)
    assert [i["id"] for i in page["items"]] == [second] and first != second

    # since=now: nothing, and the head to follow from
    now = pull(api, "account", "now")
    assert now["items"] == [] and now["next_cursor"] == page["next_cursor"]
    third = created(kept, "Third Co", T0 + 21 * DAY)
    assert [i["id"] for i in pull(api, "account", now["next_cursor"])["items"]] == [third]


def test_since_now_on_an_empty_or_pruned_log_points_past_the_floor(kept: Env) -> None:
    api = kept.client(kept.users.new_token("admin"))
    assert decode_cursor(pull(api, "account", "now")["next_cursor"]) == 0
    created(kept, "Gone Co", T0)
    assert prune_log(kept.records, T0 + 31 * DAY) == 1
    head = pull(api, "account", "now")["next_cursor"]
    assert decode_cursor(head) == log_floor(kept.records)
    assert pull(api, "account", head)["items"] == []  # not 410: nothing was missed


def test_the_floor_still_holds_when_the_setting_has_gone(
        kept: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows once deleted stay deleted: without keep_days now, an old cursor is still 410,
    and the message does not name a number of days the settings no longer give."""
    start = read_changes(kept.records, SYSTEM, "account").next_cursor
    created(kept, "Old Co", T0)
    assert prune_log(kept.records, T0 + 31 * DAY) == 1
    model = kept.records.model
    monkeypatch.setattr(kept.records, "model", replace(
        model, settings=replace(model.settings, changes_keep_days=None)))
    with pytest.raises(Gone) as caught:
        read_changes(kept.records, SYSTEM, "account", start)
    assert "days" not in caught.value.message and "since=now" in caught.value.message


def test_the_worker_prunes_once_an_hour(kept: Env) -> None:
    created(kept, "Old Co", T0)
    worker = Worker(kept.records, {}, worker_id="w1")
    worker.run_once(T0 + 31 * DAY)
    assert logged(kept) == [] and worker.pruned_at == T0 + 31 * DAY
    created(kept, "Old too", T0 + DAY)
    worker.run_once(T0 + 31 * DAY + timedelta(minutes=30))  # within the hour: not yet
    assert len(logged(kept)) == 1
    worker.run_once(T0 + 32 * DAY + timedelta(hours=1))
    assert logged(kept) == []


def test_feed_without_retention_still_reads_from_the_start(api: TestClient, env: Env) -> None:
    rid = created(env, "Kept Co", T0)
    assert [i["id"] for i in pull(api, "account")["items"]] == [rid]
