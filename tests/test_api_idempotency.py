"""`Idempotency-Key` on API POSTs (engine/web/idempotency.py, engine/runtime/idempotency.py):
a retry gets the first answer and never writes twice, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from starlette.testclient import TestClient

from engine.runtime.errors import Invalid
from engine.runtime.idempotency import (
    HEADER,
    LEASE,
    Claim,
    IdempotencyKeys,
    KeyInProgress,
    holding,
    valid_key,
)
from engine.runtime.schema.tables import IDEMPOTENCY_TABLE
from tests.conftest import Env
from tests.test_api import assert_error, row_count


def _post(client: TestClient, path: str, body: dict[str, Any], key: str,
          **headers: str) -> Any:
    return client.post(path, json=body, headers={HEADER: key, **headers})


def _accounts_named(env: Env, name: str) -> int:
    table = env.records.schema.table("account")
    with env.engine.connect() as conn:
        return len(conn.execute(select(table.c.id).where(table.c.name == name)).all())


def _row(env: Env, key: str) -> Any:
    table = env.records.schema.table(IDEMPOTENCY_TABLE)
    with env.engine.connect() as conn:
        return conn.execute(select(table).where(table.c.key == key)).mappings().first()


def test_a_retry_returns_the_first_answer_and_writes_once(api: TestClient, env: Env) -> None:
    before = row_count(env, "account")
    first = _post(api, "/api/account", {"name": "Retry Ltd"}, "create-1")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = _post(api, "/api/account", {"name": "Retry Ltd"}, "create-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert row_count(env, "account") == before + 1
    assert _row(env, "create-1")["state"] == "done"
    # the same body under another key is a new request (refused: the name is taken)
    other = _post(api, "/api/account", {"name": "Retry Ltd"}, "create-2")
    assert other.status_code == 422 and "idempotent-replayed" not in other.headers
    assert _accounts_named(env, "Retry Ltd") == 1


def test_another_request_with_the_key_is_refused(api: TestClient, env: Env) -> None:
    assert _post(api, "/api/account", {"name": "One"}, "k").status_code == 201
    error = assert_error(_post(api, "/api/account", {"name": "Two"}, "k"), 422,
                         "idempotency_key_reused")
    assert HEADER in error["fields"]
    assert_error(_post(api, "/api/contact", {"name": "One"}, "k"), 422,
                 "idempotency_key_reused")
    assert _accounts_named(env, "Two") == 0


def test_refusals_are_replayed_and_server_errors_are_not_kept(api: TestClient,
                                                              env: Env) -> None:
    bad = _post(api, "/api/account", {"name": ""}, "bad-1")
    assert bad.status_code == 422
    again = _post(api, "/api/account", {"name": ""}, "bad-1")
    assert again.status_code == 422 and again.json() == bad.json()
    assert again.headers["idempotent-replayed"] == "true"
    # a 5xx answer is not stored: the key is free for the retry
    keys = IdempotencyKeys(env.engine)
    claim = keys.claim(env.admin.id, "boom", "h")
    assert isinstance(claim, Claim)
    keys.release(claim)
    assert _row(env, "boom") is None


def test_keys_are_per_caller(api: TestClient, env: Env) -> None:
    env.users.add("rep_idem", ["sales_rep"])
    rep = env.client(env.users.new_token("rep_idem"))
    mine = _post(api, "/api/account", {"name": "Admin's"}, "shared")
    theirs = _post(rep, "/api/account", {"name": "Rep's"}, "shared")
    assert mine.status_code == 201 and theirs.status_code == 201, theirs.text
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


@pytest.mark.parametrize("key", ["", " ", "a b", "x" * 256, "ключ", "tab\tkey"])
def test_a_bad_key_is_a_400_naming_the_header(api: TestClient, env: Env, key: str) -> None:
    before = row_count(env, "account")
    resp = api.post("/api/account", json={"name": "Bad key"},
                    headers=[(HEADER, key.encode("utf-8"))])  # type: ignore[arg-type]
    error = assert_error(resp, 400, "bad_request")
    assert HEADER in error["fields"]
    assert row_count(env, "account") == before


def test_two_key_headers_are_a_400(api: TestClient) -> None:
    resp = api.post("/api/account", json={"name": "Twice"},
                    headers=[(HEADER, "a"), (HEADER, "b")])  # type: ignore[arg-type]
    assert_error(resp, 400, "bad_request")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_valid_keys_are_visible_ascii(text: str) -> None:
    assert valid_key(text) == (0 < len(text) <= 255
                               and all(33 <= ord(c) <= 126 for c in text))


def test_without_a_valid_token_nothing_is_kept(env: Env) -> None:
    resp = env.client("crm_not-a-token").post("/api/account", json={"name": "x"},
                                               headers={HEADER: "anon"})
    assert resp.status_code == 401
    assert _row(env, "anon") is None


def test_a_running_request_is_a_409(api: TestClient, env: Env) -> None:
    keys = IdempotencyKeys(env.engine)
    body = b'{"name": "Busy"}'
    digest = _digest(api, body)
    claim = keys.claim(env.admin.id, "busy", digest)
    assert isinstance(claim, Claim)
    resp = api.post("/api/account", content=body,
                    headers={HEADER: "busy", "content-type": "application/json"})
    assert_error(resp, 409, "idempotency_in_progress")
    assert _accounts_named(env, "Busy") == 0


def _digest(api: TestClient, body: bytes) -> str:
    """The hash the middleware computes for POST /api/account with `body` (JSON)."""
    import hashlib
    hashed = hashlib.sha256()
    for part in ("POST", "/api/account", "", "application/json"):
        hashed.update(part.encode() + b"\0")
    hashed.update(body)
    return hashed.hexdigest()


def test_an_abandoned_claim_is_taken_over_and_its_write_refused(api: TestClient,
                                                                 env: Env) -> None:
    """The server died before the first request wrote: after the lease a retry runs; and
    should the first one wake up, its write is refused (its claim is no longer the key's)."""
    keys = IdempotencyKeys(env.engine)
    body = b'{"name": "Phoenix"}'
    first = keys.claim(env.admin.id, "lease", _digest(api, body))
    assert isinstance(first, Claim)
    table = env.records.schema.table(IDEMPOTENCY_TABLE)
    with env.engine.begin() as conn:
        conn.execute(update(table).where(table.c.key == "lease").values(
            claimed_at=datetime.now(UTC) - LEASE - timedelta(seconds=1)))
    retry = api.post("/api/account", content=body,
                     headers={HEADER: "lease", "content-type": "application/json"})
    assert retry.status_code == 201, retry.text
    with holding(first), pytest.raises(KeyInProgress):
        env.records.create(env.admin.actor(), "account", {"name": "Phoenix 2"})
    assert _accounts_named(env, "Phoenix") == 1
    assert _accounts_named(env, "Phoenix 2") == 0


def test_the_key_is_marked_in_the_writes_transaction(api: TestClient, env: Env) -> None:
    """The crash window: the write committed, its answer never stored. The key's row says
    so (committed, with what was written) from the same transaction, and a retry after the
    lease is told, not run again."""
    keys = IdempotencyKeys(env.engine)
    body = b'{"name": "Lost answer"}'
    claim = keys.claim(env.admin.id, "lost", _digest(api, body))
    assert isinstance(claim, Claim)
    with holding(claim):
        made = env.records.create(env.admin.actor(), "account", {"name": "Lost answer"})
    row = _row(env, "lost")
    assert row["state"] == "committed" and row["written"] == [f"account/{made['id']}"]
    # the server dies here; a prompt retry: still running
    resend = {HEADER: "lost", "content-type": "application/json"}
    assert_error(api.post("/api/account", content=body, headers=resend), 409,
                 "idempotency_in_progress")
    table = env.records.schema.table(IDEMPOTENCY_TABLE)
    with env.engine.begin() as conn:
        conn.execute(update(table).where(table.c.key == "lost").values(
            claimed_at=datetime.now(UTC) - LEASE - timedelta(seconds=1)))
    error = assert_error(api.post("/api/account", content=body, headers=resend), 409,
                         "idempotency_answer_lost")
    assert f"account/{made['id']}" in error["message"]
    assert _accounts_named(env, "Lost answer") == 1


def test_a_refused_write_leaves_the_key_free(api: TestClient, env: Env) -> None:
    """A write that fails marks nothing: its transaction, the mark with it, is gone."""
    keys = IdempotencyKeys(env.engine)
    claim = keys.claim(env.admin.id, "dry", "h")
    assert isinstance(claim, Claim)
    with holding(claim), pytest.raises(Invalid):
        env.records.create(env.admin.actor(), "account", {"name": ""})
    assert _row(env, "dry")["state"] == "running"


def test_expired_answers_are_forgotten(api: TestClient, env: Env) -> None:
    first = _post(api, "/api/account", {"name": "Yesterday"}, "old")
    table = env.records.schema.table(IDEMPOTENCY_TABLE)
    with env.engine.begin() as conn:
        conn.execute(update(table).where(table.c.key == "old").values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    again = _post(api, "/api/account", {"name": "Yesterday"}, "old")
    assert first.status_code == 201
    assert again.status_code == 422, again.text  # run again: the name is taken now
    assert "idempotent-replayed" not in again.headers


def test_concurrent_duplicates_make_one_record(api: TestClient, env: Env) -> None:
    before = row_count(env, "account")
    answers: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def send() -> None:
        start.wait()
        resp = _post(api, "/api/account", {"name": "Stampede"}, "stampede")
        with lock:
            answers.append(resp)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {201, 409}, [r.text for r in answers]
    assert 201 in statuses
    assert all(r.json()["error"]["code"] == "idempotency_in_progress"
               for r in answers if r.status_code == 409)
    assert row_count(env, "account") == before + 1
    ids = {r.json()["id"] for r in answers if r.status_code == 201}
    assert len(ids) == 1
    # afterwards every retry gets the answer
    assert _post(api, "/api/account", {"name": "Stampede"}, "stampede").json()["id"] in ids


def test_actions_and_uploads_are_keyed(api: TestClient, env: Env) -> None:
    article = _post(api, "/api/knowledge_article", {
        "title": "Files", "category": "faq", "body": "text"}, "article").json()
    files = {"file": ("note.txt", b"hello", "text/plain")}
    path = f"/api/knowledge_article/{article['id']}/attachments"
    first = api.post(path, files=files, headers={HEADER: "up"})
    assert first.status_code == 201, first.text
    # a client that builds the upload again sends another multipart boundary
    again = api.post(path, files=files, headers={HEADER: "up"})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.get(path).json()["items"]) == 1
    other = api.post(path, files={"file": ("note.txt", b"other", "text/plain")},
                     headers={HEADER: "up"})
    assert_error(other, 422, "idempotency_key_reused")


def test_messages_in_chinese(api: TestClient) -> None:
    resp = api.post("/api/account", json={"name": "x"},
                    headers={HEADER: "a b", "Accept-Language": "zh-CN"})
    error = assert_error(resp, 400, "bad_request")
    assert "Idempotency-Key" in error["message"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"])


def test_a_body_declared_too_large_is_refused_before_it_is_read(api: TestClient,
                                                                env: Env) -> None:
    from engine.web.idempotency import MAX_BODY

    def body() -> Any:
        yield b"{}"

    resp = api.post("/api/account", content=body(), headers={
        HEADER: "huge", "content-type": "application/json",
        "content-length": str(MAX_BODY + 1)})
    assert_error(resp, 413, "too_large")
    assert _row(env, "huge") is None


def test_work_left_running_after_the_answer_does_not_touch_the_key(api: TestClient,
                                                                   env: Env) -> None:
    """A thread the request started that writes after the answer was stored (it inherited
    the request's context) leaves the stored answer alone."""
    keys = IdempotencyKeys(env.engine)
    claim = keys.claim(env.admin.id, "later", "h")
    assert isinstance(claim, Claim)
    keys.store(claim, 201, [("content-type", "application/json")], b"{}")
    claim.active = False
    with holding(claim):
        env.records.create(env.admin.actor(), "account", {"name": "Afterwards"})
    assert _row(env, "later")["state"] == "done"


def test_a_retried_bulk_write_is_done_once(api: TestClient, env: Env) -> None:
    before = row_count(env, "account")
    body = {"items": [{"name": f"Bulk {i}"} for i in range(3)]}
    first = _post(api, "/api/account/bulk", body, "bulk-1")
    assert first.status_code == 200, first.text
    again = _post(api, "/api/account/bulk", body, "bulk-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert row_count(env, "account") == before + 3
    row = _row(env, "bulk-1")
    assert row["state"] == "done"
    assert sorted(row["written"]) == sorted(f"account/{x['id']}"
                                            for x in first.json()["items"])
