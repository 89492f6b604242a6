"""Email from flows: an outbox message sent through the SMTP server of settings.yaml.

The payload: `{"to": ["a@example.com"], "cc": [...], "subject": "...", "text": "..."}`.
Each message goes out with `X-MetaCRM-Idempotency-Key` (the outbox key) and a
`Message-ID` made from the key, the same on every attempt, so a mail system can tell a
repeat. Without `smtp` in settings.yaml no sender exists and emails wait in the outbox.

A bad message (no recipient, an address that is not one) and a server that refuses every
recipient or the message itself (5xx) are permanent failures: the message is exhausted at
once. A server that cannot be reached, or answers 4xx, fails the attempt, which the outbox
retries with backoff.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from sqlalchemy import Connection

from engine.metadata.delivery import SmtpSettings
from engine.runtime.flows.outbox import EMAIL, Delivery, PermanentFailure, enqueue

IDEMPOTENCY_HEADER = "X-MetaCRM-Idempotency-Key"
TIMEOUT = 30.0


def email_message(to: Sequence[str], subject: str, text: str, *,
                  cc: Sequence[str] = ()) -> dict[str, Any]:
    """The outbox payload of one email."""
    message: dict[str, Any] = {"to": list(to), "subject": subject, "text": text}
    if cc:
        message["cc"] = list(cc)
    return message


def enqueue_email(conn: Connection, key: str, to: Sequence[str], subject: str, text: str, *,
                  cc: Sequence[str] = (), now: datetime | None = None) -> bool:
    """Queue an email in the caller's transaction (idempotent by `key`)."""
    return enqueue(conn, EMAIL, key, email_message(to, subject, text, cc=cc), now=now)


def message_id(key: str) -> str:
    """The Message-ID of the email of outbox key `key`: the same on every attempt."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@metacrm>"


def _addresses(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise PermanentFailure(f"email {name}: a list of addresses, not {value!r}")
    for address in value:
        if "@" not in parseaddr(address)[1] or any(c in address for c in "\r\n"):
            raise PermanentFailure(f"email {name}: {address!r} is not an email address")
    return value


def build(settings: SmtpSettings, delivery: Delivery) -> EmailMessage:
    """The message of an outbox email, as it is sent."""
    payload: Mapping[str, Any] = delivery.payload
    to = _addresses(payload.get("to"), "to")
    cc = _addresses(payload.get("cc"), "cc")
    if not to and not cc:
        raise PermanentFailure("email has no recipient")
    message = EmailMessage()
    message["From"] = settings.sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = str(payload.get("subject", "")).replace("\r", " ").replace("\n", " ")
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(delivery.key)
    message[IDEMPOTENCY_HEADER] = delivery.key
    message.set_content(str(payload.get("text", "")))
    return message


@dataclass
class EmailSender:
    """Sends the outbox's emails through one SMTP server (a `Sender` for `deliver_due`)."""

    settings: SmtpSettings
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    timeout: float = TIMEOUT
    tls: ssl.SSLContext = field(default_factory=ssl.create_default_context)

    def __call__(self, delivery: Delivery) -> None:
        message = build(self.settings, delivery)
        s = self.settings
        try:
            with smtplib.SMTP(s.host, s.port, timeout=self.timeout) as server:
                if s.starttls:
                    server.starttls(context=self.tls)
                if s.username:
                    server.login(s.username, self._password())
                server.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(f"{a} ({code} {reply.decode(errors='replace')})"
                                for a, (code, reply) in exc.recipients.items())
            raise PermanentFailure(f"the mail server refused every recipient: {refused}") from exc
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            problem = f"the mail server answered {exc.smtp_code} {text}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(problem) from exc
            raise ConnectionError(problem) from exc

    def _password(self) -> str:
        name = self.settings.password_env
        password = self.environ.get(name) if name else None
        if not password:
            raise ConnectionError(f"smtp.password_env {name or '(not set)'}: no password in "
                                  "the environment")
        return password
