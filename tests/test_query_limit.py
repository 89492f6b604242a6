"""The time limit of each query (engine/runtime/query_limit.py, enforced by
engine/runtime/db.py) on both databases, below the web: the records service under a limit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event

from engine.runtime.access import SYSTEM
from engine.runtime.query_limit import (
    QueryCancelled,
    QueryLimit,
    QueryTimeLimit,
    current_limit,
    limited,
)
from engine.runtime.records.query import ListQuery
from tests.conftest import Env, EnvFactory
from tests.test_web_limits import EXPENSIVE, limited_env


def _expensive(env: Env) -> ListQuery:
    return ListQuery(page_size=1, filter=env.records.compile_filter("account", EXPENSIVE))


def test_a_query_past_the_limit_is_stopped(make_env: EnvFactory, config_dir: Path) -> None:
    env = limited_env(make_env, config_dir)
    with limited(QueryLimit(0.2)), pytest.raises(QueryTimeLimit) as stopped:
        env.records.list_records(SYSTEM, "account", _expensive(env))
    assert stopped.value.status == 503 and "0.2 s limit" in stopped.value.message
    # The pooled connection it ran on works as before.
    with limited(QueryLimit(0.2)):
        assert env.records.list_records(SYSTEM, "account", ListQuery(page_size=1)).total > 0


def test_time_between_queries_does_not_count(make_env: EnvFactory, config_dir: Path) -> None:
    """Slow work that is not a query (a password hash, rendering) uses no query time."""
    env = limited_env(make_env, config_dir, accounts=10)
    with limited(QueryLimit(0.2)):
        env.records.list_records(SYSTEM, "account", ListQuery(page_size=1))
        time.sleep(0.3)
        assert env.records.list_records(SYSTEM, "account", ListQuery(page_size=1)).total == 10


def test_a_cancelled_request_runs_no_more_queries(make_env: EnvFactory,
                                                  config_dir: Path) -> None:
    env = limited_env(make_env, config_dir, accounts=10)
    limit = QueryLimit(600)
    limit.cancel()
    with limited(limit), pytest.raises(QueryCancelled):
        env.records.list_records(SYSTEM, "account", ListQuery(page_size=1))


def test_cancel_stops_a_running_query_from_another_thread(make_env: EnvFactory,
                                                          config_dir: Path) -> None:
    env = limited_env(make_env, config_dir)
    limit = QueryLimit(600)
    started = threading.Event()

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "replace(" in statement.lower():
            started.set()

    def cancel_once_running() -> None:
        if started.wait(120):
            time.sleep(0.2)  # into the query, not only its start
            limit.cancel()

    event.listen(env.engine, "before_cursor_execute", seen)
    canceller = threading.Thread(target=cancel_once_running)
    canceller.start()
    try:
        with limited(limit), pytest.raises(QueryCancelled):
            env.records.list_records(SYSTEM, "account", _expensive(env))
    finally:
        canceller.join()


def test_outside_a_request_there_is_no_limit(make_env: EnvFactory, config_dir: Path) -> None:
    env = limited_env(make_env, config_dir, accounts=10)
    assert current_limit() is None
    assert env.records.list_records(SYSTEM, "account", ListQuery(page_size=1)).total == 10
