"""Webhooks (engine/runtime/flows/webhooks.py) through the outbox to a real HTTP receiver on
loopback (allow-listed here): the body is the record as it was at the event, signed with
HMAC-SHA256 and carrying its idempotency key; a failing receiver gets retries with backoff,
the message is exhausted, replayed and delivered. Private, loopback, link-local and other
non-public targets are refused without settings.yaml's `webhooks.allow`, naming the address
and the setting. Database tests on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.metadata import ConfigErrors, load_model
from engine.metadata.delivery import WebhookSettings
from engine.runtime.access import SYSTEM
from engine.runtime.flows.outbox import (
    EXHAUSTED,
    PENDING,
    SENT,
    WEBHOOK,
    Delivery,
    deliver_due,
    json_safe,
    messages,
    replay,
)
from engine.runtime.flows.webhooks import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TargetRefused,
    WebhookFailed,
    WebhookSender,
    body_bytes,
    check_target,
    enqueue_webhook,
    signature,
    verify,
)
from tests.conftest import Env, write_settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "s3cret-of-the-erp"
LOOPBACK = WebhookSettings(allow=("127.0.0.1/32",))


@dataclass
class Receiver:
    """An HTTP server on loopback that keeps every request and answers `status`."""

    status: int = 200
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/crm?source=metacrm"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.got.append((self.path, dict(self.headers.items()), body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def sender(**kw: Any) -> WebhookSender:
    return WebhookSender(settings=kw.pop("settings", LOOPBACK),
                         environ={"CRM_ERP_SECRET": SECRET}, clock=lambda: 1_772_442_000.0,
                         **kw)


def log(env: Env) -> dict[str, dict[str, Any]]:
    with env.engine.connect() as conn:
        return {m["key"]: m for m in messages(conn)}


def test_the_receiver_gets_the_record_signed_with_its_key(env: Env, receiver: Receiver) -> None:
    a = env.admin.actor()
    with env.records.unit(a) as unit:
        deal = env.records.create(a, "account", {"name": "Acme 机械"}, unit=unit)
        enqueue_webhook(unit.conn, f"account.created:{deal['id']}", receiver.url, deal,
                        event="account.created", secret_env="CRM_ERP_SECRET")
    env.records.update(a, "account", deal["id"], {"name": "Acme renamed"}, deal["version"])

    run = deliver_due(env.engine, datetime.now(UTC), {WEBHOOK: sender()})
    assert run.sent == 1
    [(path, headers, body)] = receiver.got
    assert path == "/hooks/crm?source=metacrm"
    sent = json.loads(body)
    assert sent["name"] == "Acme 机械" and sent["id"] == deal["id"]  # as it was at the event
    assert sent == json_safe(deal)
    assert headers[SIGNATURE_HEADER] == signature(SECRET.encode(), body)
    assert verify(SECRET.encode(), body, headers[SIGNATURE_HEADER])
    assert not verify(b"another secret", body, headers[SIGNATURE_HEADER])
    assert headers[IDEMPOTENCY_HEADER] == f"account.created:{deal['id']}"
    assert headers[TIMESTAMP_HEADER] == "1772442000"
    assert headers[EVENT_HEADER] == "account.created"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert log(env)[f"account.created:{deal['id']}"]["state"] == SENT


def test_a_failing_receiver_is_retried_with_backoff_exhausted_then_replayed(
        env: Env, receiver: Receiver) -> None:
    with env.records.unit(SYSTEM) as unit:
        enqueue_webhook(unit.conn, "k", receiver.url, {"id": 1}, now=T0)
    receiver.status = 503
    at, waits = T0, []
    while True:
        run = deliver_due(env.engine, at, {WEBHOOK: sender()}, max_attempts=4)
        row = log(env)["k"]
        assert row["last_error"] == ("WebhookFailed: 127.0.0.1 answered HTTP 503 "
                                     "Service Unavailable")
        if run.exhausted:
            break
        assert run.retrying == 1 and row["state"] == PENDING
        waits.append(row["next_attempt_at"] - at)
        # nothing is sent before the backoff is over
        assert deliver_due(env.engine, row["next_attempt_at"] - timedelta(seconds=1),
                           {WEBHOOK: sender()}).claimed == 0
        at = row["next_attempt_at"]
    assert waits == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert row["state"] == EXHAUSTED and row["attempts"] == 4
    assert len(receiver.got) == 4
    # every attempt carried the same key: the receiver can drop the repeats
    assert {h[IDEMPOTENCY_HEADER] for _, h, _ in receiver.got} == {"k"}

    receiver.status = 204
    with env.engine.begin() as conn:
        assert replay(conn, row["id"], now=at)
    assert deliver_due(env.engine, at, {WEBHOOK: sender()}).sent == 1
    assert log(env)["k"]["state"] == SENT and len(receiver.got) == 5


@pytest.mark.parametrize(("status", "retried"), [(400, False), (404, False), (422, False),
                                                 (429, True), (408, True), (500, True)])
def test_a_receiver_refusing_the_message_is_not_retried(env: Env, receiver: Receiver,
                                                        status: int, retried: bool) -> None:
    with env.records.unit(SYSTEM) as unit:
        enqueue_webhook(unit.conn, "k", receiver.url, {"id": 1}, now=T0)
    receiver.status = status
    run = deliver_due(env.engine, T0, {WEBHOOK: sender()}, max_attempts=4)
    row = log(env)["k"]
    assert (run.retrying, run.exhausted) == ((1, 0) if retried else (0, 1))
    assert row["state"] == (PENDING if retried else EXHAUSTED) and row["attempts"] == 1
    assert f"answered HTTP {status}" in row["last_error"]


def test_loopback_is_refused_without_the_allow_list_naming_address_and_setting(
        env: Env, receiver: Receiver) -> None:
    with env.engine.begin() as conn:
        enqueue_webhook(conn, "k", receiver.url, {"id": 1}, now=T0)
        enqueue_webhook(conn, "named", f"http://localhost:{receiver.port}/", {}, now=T0)
    run = deliver_due(env.engine, T0, {WEBHOOK: sender(settings=WebhookSettings())})
    assert run.exhausted == 2 and receiver.got == []
    got = log(env)
    assert got["k"]["last_error"] == (
        "webhook target 127.0.0.1 is a loopback address; refused unless settings.yaml "
        "webhooks.allow names it (allow: [127.0.0.1])")
    assert got["named"]["last_error"].startswith("webhook target localhost (")
    assert got["k"]["attempts"] == 1  # refused at once: no retries
    # allowed by host name, the localhost one goes through once replayed
    with env.engine.begin() as conn:
        replay(conn, got["named"]["id"], now=T0)
    by_name = sender(settings=WebhookSettings(allow=("localhost",)),
                     resolve=lambda host, port: ["127.0.0.1"])
    assert deliver_due(env.engine, T0, {WEBHOOK: by_name}).sent == 1
    assert len(receiver.got) == 1


def fixed(*addresses: str) -> Any:
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(("address", "reason"), [
    ("10.1.2.3", "private"), ("172.16.0.9", "private"), ("192.168.1.1", "private"),
    ("127.0.0.2", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("fc00::5", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("100.64.0.1", "non-public"),
    ("240.0.0.1", "reserved"),
])
def test_non_public_targets_are_refused_with_the_reason(address: str, reason: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        check_target("https://hooks.example.com/x", (), fixed(address))
    assert str(refused.value) == (
        f"webhook target hooks.example.com ({address}) is a {reason} address; refused "
        f"unless settings.yaml webhooks.allow names it (allow: [{address}])")


def test_the_allow_list_takes_addresses_networks_and_host_names() -> None:
    assert check_target("https://erp.internal/h", ("erp.internal",), fixed("10.0.0.5"))
    assert check_target("http://x.example/h", ("10.20.0.0/16",), fixed("10.20.3.4"))
    assert check_target("http://x.example/h", ("10.20.3.4/32",), fixed("::ffff:10.20.3.4"))
    with pytest.raises(TargetRefused, match=r"10\.21\.0\.1"):
        check_target("http://x.example/h", ("10.20.0.0/16",), fixed("10.21.0.1"))
    # every address the name resolves to must pass, not just the first
    with pytest.raises(TargetRefused, match="loopback"):
        check_target("http://x.example/h", (), fixed("93.184.216.34", "127.0.0.1"))
    target = check_target("https://x.example:8443/a/b?c=d", (), fixed("93.184.216.34"))
    assert (target.scheme, target.host, target.port, target.path, target.addresses) == (
        "https", "x.example", 8443, "/a/b?c=d", ("93.184.216.34",))


@pytest.mark.parametrize("url", ["ftp://x.example/", "file:///etc/passwd", "x.example/h",
                                 "http:///nohost", "http://x.example:99999/"])
def test_only_http_and_https_urls_are_targets(url: str) -> None:
    with pytest.raises(TargetRefused, match="webhook target"):
        check_target(url, (), fixed("93.184.216.34"))


def test_a_missing_signing_secret_fails_the_attempt_unsent(receiver: Receiver) -> None:
    message = Delivery(1, "k", WEBHOOK, {"url": receiver.url, "body": {},
                                         "secret_env": "CRM_NOT_SET"}, 0)
    with pytest.raises(WebhookFailed, match="CRM_NOT_SET is not set"):
        sender()(message)
    assert receiver.got == []


def test_an_unsigned_webhook_has_no_signature_header(receiver: Receiver) -> None:
    sender()(Delivery(1, "k", WEBHOOK, {"url": receiver.url, "body": [1, 2]}, 0))
    [(_, headers, body)] = receiver.got
    assert SIGNATURE_HEADER not in headers and body == b"[1,2]"


def test_a_closed_port_fails_the_attempt() -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WebhookFailed, match=r"127\.0\.0\.1"):
        sender()(Delivery(1, "k", WEBHOOK, {"url": f"http://127.0.0.1:{port}/", "body": {}}, 0))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@given(JSON, st.binary(min_size=1, max_size=64))
def test_the_signed_bytes_are_the_body_and_verify(body: Any, secret: bytes) -> None:
    raw = body_bytes(body)
    assert json.loads(raw) == body
    assert verify(secret, raw, signature(secret, raw))
    assert not verify(secret, raw + b" ", signature(secret, raw))


# -- settings.yaml -------------------------------------------------------------------------


@pytest.fixture
def config(config_dir: Path) -> Path:
    return config_dir


def test_settings_read_the_allow_list(config: Path) -> None:
    write_settings(config, "webhooks:\n  allow: [127.0.0.1, 10.20.0.0/16, ERP.internal.]\n")
    assert load_model(config).settings.webhooks == WebhookSettings(
        allow=("127.0.0.1/32", "10.20.0.0/16", "erp.internal"))
    write_settings(config, "")  # no webhooks key
    assert load_model(config).settings.webhooks == WebhookSettings()


@pytest.mark.parametrize(("text", "error"), [
    ("webhooks:\n  allow: [10.0.0.0/8, 'not a host']\n",
     "config/settings.yaml:2:23: webhooks.allow: 'not a host' is not an IP address, a network "
     "such as 10.0.0.0/8, or a host name"),
    ("webhooks:\n  deny: [x]\n", "config/settings.yaml:2:3: webhooks: unknown key 'deny'"),
])
def test_a_bad_allow_list_is_an_error_at_its_place(config: Path, text: str, error: str) -> None:
    (config / "settings.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as exc:
        load_model(config)
    found = [str(e).replace(str(config.parent) + "/", "") for e in exc.value.errors]
    assert any(f.startswith(error) for f in found), found


def test_every_delivery_setting_is_documented() -> None:
    from engine.metadata.loader import schema
    keys = set(schema("settings")["properties"]["webhooks"]["properties"])
    keys |= set(schema("settings")["properties"]["smtp"]["properties"])
    docs = Path(__file__).resolve().parents[1] / "docs"
    text = (docs / "configuration.md").read_text(encoding="utf-8")
    text += (docs / "flows_delivery.md").read_text(encoding="utf-8")
    assert {k for k in keys if f"`{k}`" not in text} == set()
