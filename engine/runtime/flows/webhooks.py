"""Webhooks: a flow's JSON message to another system, signed, sent through the outbox.

The outbox row's payload holds the target and the body — the record as it was at the event:

```json
{"url": "https://erp.example.com/hooks/crm", "event": "opportunity.won",
 "secret_env": "CRM_ERP_WEBHOOK_SECRET", "body": {"id": 12, "name": "...", "stage": "won"}}
```

A delivery POSTs the body as JSON with these headers:

- `X-MetaCRM-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`, keyed with the
  secret read from the environment variable `secret_env` when the message is sent (no
  secret is stored in the database; without `secret_env` the header is left out);
- `X-MetaCRM-Idempotency-Key`: the outbox key, the same on every attempt: a receiver that
  has seen it already drops the repeat (delivery is at least once);
- `X-MetaCRM-Timestamp`: seconds since 1970 when this attempt was sent;
- `X-MetaCRM-Event`: the event, when the message names one.

Any 2xx answer is success; anything else (redirects are not followed), a timeout or a
refused connection fails the attempt, which the outbox retries with backoff.

Targets are checked when each attempt is sent: the host is resolved and every address it
resolves to must be public — a private, loopback, link-local, shared, reserved,
unspecified or multicast address is refused unless settings.yaml's `webhooks.allow` names
the address, a network holding it or the host name. The connection then goes to the
address that was checked (not resolved again), so a name cannot be switched to an internal
address between the check and the call. A refusal is permanent: the message is exhausted
at once with the reason, and can be replayed once the setting allows it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection

from engine.metadata.delivery import WebhookSettings
from engine.runtime.flows.outbox import WEBHOOK, Delivery, PermanentFailure, enqueue

SIGNATURE_HEADER = "X-MetaCRM-Signature"
IDEMPOTENCY_HEADER = "X-MetaCRM-Idempotency-Key"
TIMESTAMP_HEADER = "X-MetaCRM-Timestamp"
EVENT_HEADER = "X-MetaCRM-Event"
TIMEOUT = 10.0
"""Seconds an attempt may take to connect, and to wait for each read of the answer."""
USER_AGENT = "MetaCRM-Webhooks/1"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Sequence[str]]


class TargetRefused(PermanentFailure):
    """A webhook target that is not public and not allowed by settings.yaml."""


class WebhookFailed(Exception):
    """An attempt the receiver did not accept."""


class WebhookRejected(WebhookFailed, PermanentFailure):
    """The receiver refused the message itself (a 4xx other than RETRIED_4XX): the same
    body would be refused again, so it is exhausted at once (and can be replayed once the
    receiver is fixed)."""


RETRIED_4XX = frozenset({408, 409, 423, 425, 429})
"""Client errors that say "not now" rather than "never": timeout, conflict, locked, too
early, too many requests — retried with backoff like a 5xx."""


def webhook_message(url: str, body: Any, *, event: str | None = None,
                    secret_env: str | None = None) -> dict[str, Any]:
    """The outbox payload of one webhook."""
    message: dict[str, Any] = {"url": url, "body": body}
    if event is not None:
        message["event"] = event
    if secret_env is not None:
        message["secret_env"] = secret_env
    return message


def enqueue_webhook(conn: Connection, key: str, url: str, body: Any, *,
                    event: str | None = None, secret_env: str | None = None,
                    now: datetime | None = None) -> bool:
    """Queue a webhook in the caller's transaction (idempotent by `key`)."""
    return enqueue(conn, WEBHOOK, key,
                   webhook_message(url, body, event=event, secret_env=secret_env), now=now)


def body_bytes(body: Any) -> bytes:
    """The exact bytes sent and signed: compact JSON, keys sorted, UTF-8."""
    return json.dumps(body, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """Whether `header` is the signature of `body` (for receivers and tests)."""
    return hmac.compare_digest(signature(secret, body), header)


def not_public(address: Address) -> str | None:
    """Why `address` is not a public one ("loopback", "private", …), None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local),
              ("unspecified", address.is_unspecified), ("multicast", address.is_multicast),
              ("reserved", address.is_reserved), ("private", address.is_private))
    for reason, hit in checks:
        if hit:
            return reason
    return None if address.is_global else "non-public"


def _allowed(host: str, address: Address, allow: Sequence[str]) -> bool:
    if host.lower().rstrip(".") in allow:
        return True
    for entry in allow:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        mapped = (address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address)
                  else None)
        if address in network or (mapped is not None and mapped in network):
            return True
    return False


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A checked target: where to connect, and what to say the host is."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def check_target(url: str, allow: Sequence[str], resolve: Resolve = _resolve) -> Target:
    """Resolve `url`'s host and refuse it unless every address is public or allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"webhook target {url!r} is not an http or https URL")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused(f"webhook target {url!r} has a bad port") from None
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise WebhookFailed(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise WebhookFailed(f"{host} resolves to no address")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = not_public(address)
        if reason is not None and not _allowed(host, address, allow):
            shown = host if host == text else f"{host} ({text})"
            raise TargetRefused(
                f"webhook target {shown} is a {reason} address; refused unless "
                f"settings.yaml webhooks.allow names it (allow: [{text}])")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, tuple(addresses))


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, the Host header still the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is checked against the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


@dataclass
class WebhookSender:
    """Sends the outbox's webhooks (a `Sender` for `deliver_due`)."""

    settings: WebhookSettings = field(default_factory=WebhookSettings)
    timeout: float = TIMEOUT
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    clock: Callable[[], float] = time.time
    resolve: Resolve = _resolve
    tls: ssl.SSLContext = field(default_factory=ssl.create_default_context)

    def __call__(self, delivery: Delivery) -> None:
        message = delivery.payload
        url = str(message.get("url", ""))
        target = check_target(url, self.settings.allow, self.resolve)
        body = body_bytes(message.get("body"))
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": USER_AGENT,
                   IDEMPOTENCY_HEADER: delivery.key,
                   TIMESTAMP_HEADER: str(int(self.clock()))}
        if message.get("event"):
            headers[EVENT_HEADER] = str(message["event"])
        secret_env = message.get("secret_env")
        if secret_env:
            secret = self.environ.get(str(secret_env))
            if not secret:
                raise WebhookFailed(f"the signing secret's variable {secret_env} is not set")
            headers[SIGNATURE_HEADER] = signature(secret.encode(), body)
        self._post(target, body, headers)

    def _post(self, target: Target, body: bytes, headers: dict[str, str]) -> None:
        last: OSError | None = None
        for address in target.addresses:
            conn: http.client.HTTPConnection
            if target.scheme == "https":
                conn = _PinnedHTTPS(target.host, target.port, address, self.timeout, self.tls)
            else:
                conn = _PinnedHTTP(target.host, target.port, address, self.timeout)
            try:
                conn.request("POST", target.path, body=body, headers=headers)
                answer = conn.getresponse()
                answer.read(65536)
            except (TimeoutError, ConnectionRefusedError) as exc:
                last = exc
                continue
            except OSError as exc:
                raise WebhookFailed(f"{target.host}: {exc}") from exc
            finally:
                conn.close()
            if 200 <= answer.status < 300:
                return
            problem = f"{target.host} answered HTTP {answer.status} {answer.reason}"
            if 400 <= answer.status < 500 and answer.status not in RETRIED_4XX:
                raise WebhookRejected(problem)
            raise WebhookFailed(problem)
        raise WebhookFailed(f"{target.host}: {last}")
