"""Email from flows (engine/runtime/flows/email.py) through the outbox to a real SMTP server
on loopback (aiosmtpd): the message, its idempotency key and Message-ID, signing in with
the password from the environment, refused recipients exhausting the message, an
unreachable server retried; settings.yaml's `smtp`. Database tests on SQLite and
PostgreSQL."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from engine.metadata import ConfigErrors, load_model
from engine.metadata.delivery import SmtpSettings
from engine.runtime.access import SYSTEM
from engine.runtime.flows.email import EmailSender, build, enqueue_email, message_id
from engine.runtime.flows.outbox import (
    EMAIL,
    EXHAUSTED,
    PENDING,
    SENT,
    Delivery,
    PermanentFailure,
    deliver_due,
    messages,
)
from tests.conftest import Env, write_settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Mailbox:
    """What the SMTP server received, and whom it refuses."""

    got: list[tuple[str, list[str], Message]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.got.append((str(envelope.mail_from), list(envelope.rcpt_tos),
                         message_from_bytes(content)))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    box: Mailbox
    port: int


@pytest.fixture
def smtp() -> Iterator[Server]:
    box = Mailbox()

    def authenticate(server: SMTPServer, session: Session, envelope: Envelope,
                     mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            box.logins.append((data.login, data.password))
            return AuthResult(success=data.password == b"pa55word", handled=False)
        return AuthResult(success=False, handled=False)

    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=authenticate)
    controller.start()
    try:
        yield Server(box, port)
    finally:
        controller.stop()


def settings_for(server: Server, **kw: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=server.port, sender="crm@example.com", **kw)


def log(env: Env) -> dict[str, dict[str, Any]]:
    with env.engine.connect() as conn:
        return {m["key"]: m for m in messages(conn)}


def test_an_email_queued_with_a_write_reaches_the_smtp_server(env: Env, smtp: Server) -> None:
    with env.records.unit(SYSTEM) as unit:
        enqueue_email(unit.conn, "remind:installment:7", ["li.lei@example.com"],
                      "回款提醒: 分期 7", "Installment 7 of contract HT-2026-0001 is due "
                      "on 2026-03-09.", cc=["finance@example.com"], now=T0)
    run = deliver_due(env.engine, T0, {EMAIL: EmailSender(settings_for(smtp))})
    assert run.sent == 1
    [(sender, recipients, message)] = smtp.box.got
    assert sender == "crm@example.com"
    assert recipients == ["li.lei@example.com", "finance@example.com"]
    assert message["From"] == "crm@example.com" and message["To"] == "li.lei@example.com"
    assert message["Cc"] == "finance@example.com"
    assert str(make_header(decode_header(message["Subject"]))) == "回款提醒: 分期 7"
    assert message["X-MetaCRM-Idempotency-Key"] == "remind:installment:7"
    assert message["Message-ID"] == message_id("remind:installment:7")
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes) and b"HT-2026-0001 is due on 2026-03-09." in body
    assert log(env)["remind:installment:7"]["state"] == SENT


def test_signing_in_reads_the_password_from_the_environment(smtp: Server) -> None:
    settings = settings_for(smtp, username="crm", password_env="CRM_SMTP_PASSWORD")
    mail = Delivery(1, "k", EMAIL, {"to": ["a@example.com"], "subject": "s", "text": "t"}, 0)
    EmailSender(settings, environ={"CRM_SMTP_PASSWORD": "pa55word"})(mail)
    assert smtp.box.logins == [(b"crm", b"pa55word")] and len(smtp.box.got) == 1
    with pytest.raises(PermanentFailure, match="535"):  # a wrong password: 5xx
        EmailSender(settings, environ={"CRM_SMTP_PASSWORD": "wrong"})(mail)
    with pytest.raises(ConnectionError, match="CRM_SMTP_PASSWORD: no password"):
        EmailSender(settings, environ={})(mail)
    assert len(smtp.box.got) == 1


def test_refused_recipients_exhaust_and_an_unreachable_server_is_retried(
        env: Env, smtp: Server) -> None:
    smtp.box.refuse.add("nobody@example.com")
    with env.engine.begin() as conn:
        enqueue_email(conn, "refused", ["nobody@example.com"], "s", "t", now=T0)
        enqueue_email(conn, "bad", ["not an address"], "s", "t", now=T0)
    run = deliver_due(env.engine, T0, {EMAIL: EmailSender(settings_for(smtp))})
    assert run.exhausted == 2 and smtp.box.got == []
    got = log(env)
    assert got["refused"]["state"] == EXHAUSTED
    assert got["refused"]["last_error"] == ("the mail server refused every recipient: "
                                            "nobody@example.com (550 5.1.1 no such mailbox)")
    assert got["bad"]["last_error"] == "email to: 'not an address' is not an email address"

    with env.engine.begin() as conn:
        enqueue_email(conn, "later", ["a@example.com"], "s", "t", now=T0)
    down = SmtpSettings(host="127.0.0.1", port=free_port(), sender="crm@example.com")
    run = deliver_due(env.engine, T0, {EMAIL: EmailSender(down, timeout=5)})
    assert run.retrying == 1
    row = log(env)["later"]
    assert row["state"] == PENDING and row["attempts"] == 1
    assert row["last_error"].startswith("ConnectionRefusedError")
    up = EmailSender(settings_for(smtp))
    assert deliver_due(env.engine, T0 + timedelta(minutes=1), {EMAIL: up}).sent == 1
    assert [r for _, r, _ in smtp.box.got] == [["a@example.com"]]


@pytest.mark.parametrize(("payload", "problem"), [
    ({"subject": "s", "text": "t"}, "email has no recipient"),
    ({"to": "a@example.com"}, "email to: a list of addresses, not 'a@example.com'"),
    ({"to": ["a@example.com\r\nBcc: x@example.com"]}, "is not an email address"),
    ({"to": ["a@example.com"], "cc": ["@"]}, "email cc: '@' is not an email address"),
])
def test_a_bad_message_is_a_permanent_failure(payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(PermanentFailure, match=problem.replace("\\", "")):
        build(SmtpSettings(host="h", sender="crm@example.com"),
              Delivery(1, "k", EMAIL, payload, 0))


def test_a_subject_cannot_add_headers() -> None:
    built = build(SmtpSettings(host="h", sender="crm@example.com"),
                  Delivery(1, "k", EMAIL, {"to": ["a@example.com"],
                                           "subject": "hi\r\nBcc: x@example.com"}, 0))
    assert built["Bcc"] is None and built["Subject"] == "hi  Bcc: x@example.com"


# -- settings.yaml -------------------------------------------------------------------------


def test_settings_read_smtp(config_dir: Path) -> None:
    write_settings(config_dir,
                   "smtp: {host: smtp.example.com, port: 587, from: crm@example.com, "
                   "starttls: true,\n       username: crm, password_env: CRM_SMTP_PASSWORD}\n")
    assert load_model(config_dir).settings.smtp == SmtpSettings(
        host="smtp.example.com", port=587, sender="crm@example.com", starttls=True,
        username="crm", password_env="CRM_SMTP_PASSWORD")
    write_settings(config_dir, "smtp: {host: mail, from: crm@example.com}\n")
    assert load_model(config_dir).settings.smtp == SmtpSettings(host="mail",
                                                                sender="crm@example.com")
    write_settings(config_dir, "")  # no smtp key
    assert load_model(config_dir).settings.smtp is None


@pytest.mark.parametrize(("text", "error"), [
    ("smtp: {host: mail}\n", "config/settings.yaml:1:7: smtp: missing key 'from'"),
    ("smtp:\n  host: 'a b'\n  from: crm@example.com\n",
     "config/settings.yaml:2:9: smtp.host: 'a b' is not a host name or an IP address"),
    ("smtp: {host: mail, from: crm@example.com, password_env: 'my pass'}\n",
     "config/settings.yaml:1:57: smtp.password_env"),
])
def test_a_bad_smtp_setting_is_an_error_at_its_place(config_dir: Path, text: str,
                                                     error: str) -> None:
    (config_dir / "settings.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as exc:
        load_model(config_dir)
    found = [str(e).replace(str(config_dir.parent) + "/", "") for e in exc.value.errors]
    assert any(f.startswith(error) for f in found), found
