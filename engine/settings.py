"""Where the engine finds its configuration and database (flags, then environment), and the
web tier's settings (environment only; docs/ui.md lists them)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from engine.runtime.db import DEFAULT_URL
from engine.runtime.files.store import DEFAULT_FILES_DIR

DEFAULT_SECRET_FILE = "data/secret_key"
MIN_SECRET = 32


class SettingsError(ValueError):
    """A setting from the environment that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    config_dir: str
    database_url: str

    @classmethod
    def from_env(cls, config_dir: str | None = None, database_url: str | None = None) -> Settings:
        return cls(
            config_dir=config_dir or os.environ.get("CRM_CONFIG", "config"),
            database_url=database_url or os.environ.get("CRM_DATABASE_URL", DEFAULT_URL),
        )


@dataclass(frozen=True)
class WebSettings:
    secret_key: bytes
    """Signs session and CSRF cookies. Every worker and machine must share it."""
    cookie_secure: bool = False
    """Send cookies over HTTPS only (set it when the app is served over HTTPS)."""
    session_idle_minutes: int = 720
    session_days: int = 7
    login_max_failures: int = 5
    """Failed sign-ins of one name from one address before each try waits (1 s, doubling)."""
    login_window_minutes: int = 15
    """The longest wait between tries; failures are forgotten after four times as long."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of reverse proxies whose X-Forwarded-For is believed; none by default, so
    the client address is the connection's peer."""
    files_dir: str = DEFAULT_FILES_DIR
    """Where attachments' contents are stored (CRM_FILES_DIR); every worker must share it."""

    @classmethod
    def ephemeral(cls, **overrides: object) -> WebSettings:
        """A random secret for one process (tests, a single embedded server)."""
        return cls(secret_key=secrets.token_bytes(32), **overrides)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WebSettings:
        """CRM_SECRET_KEY, or a key generated once into CRM_SECRET_KEY_FILE
        (default data/secret_key), and the CRM_COOKIE_/SESSION_/LOGIN_ settings."""
        e = dict(os.environ) if env is None else env
        key = e.get("CRM_SECRET_KEY", "")
        if key:
            if len(key) < MIN_SECRET:
                raise SettingsError(f"CRM_SECRET_KEY must be at least {MIN_SECRET} characters")
            secret = key.encode()
        else:
            secret = _file_secret(Path(e.get("CRM_SECRET_KEY_FILE", DEFAULT_SECRET_FILE)))
        return cls(
            secret_key=secret,
            cookie_secure=_flag(e, "CRM_COOKIE_SECURE", False),
            session_idle_minutes=_whole(e, "CRM_SESSION_IDLE_MINUTES", 720),
            session_days=_whole(e, "CRM_SESSION_DAYS", 7),
            login_max_failures=_whole(e, "CRM_LOGIN_MAX_FAILURES", 5),
            login_window_minutes=_whole(e, "CRM_LOGIN_WINDOW_MINUTES", 15),
            trusted_proxies=trusted_proxies(e),
            files_dir=files_dir(e),
        )


def files_dir(env: dict[str, str] | None = None) -> str:
    """CRM_FILES_DIR: where attachments' contents are stored (default data/files)."""
    e = os.environ if env is None else env
    return e.get("CRM_FILES_DIR", "").strip() or DEFAULT_FILES_DIR


def trusted_proxies(env: dict[str, str] | None = None) -> tuple[str, ...]:
    """CRM_TRUSTED_PROXIES: comma-separated IP addresses or networks of reverse proxies.

    >>> trusted_proxies({"CRM_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/24"})
    ('10.0.0.5', '192.168.0.0/24')
    >>> trusted_proxies({})
    ()
    """
    e = dict(os.environ) if env is None else env
    found: list[str] = []
    for item in e.get("CRM_TRUSTED_PROXIES", "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(f"CRM_TRUSTED_PROXIES: {item!r} is not an IP address or "
                                "network") from None
        found.append(item)
    return tuple(found)


def _file_secret(path: Path) -> bytes:
    """Read the key file, creating it first with a random key when missing. The new file is
    written aside and linked into place, so workers starting together all read one key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        aside.write_text(secrets.token_urlsafe(48) + "\n", encoding="ascii")
        aside.chmod(0o600)
        try:
            with contextlib.suppress(FileExistsError):  # another worker was first
                os.link(aside, path)
        finally:
            aside.unlink()
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < MIN_SECRET:
        raise SettingsError(f"{path}: the secret key must be at least {MIN_SECRET} characters")
    return secret.encode()


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _whole(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= 10**6:
        raise SettingsError(f"{name} must be a whole number from 1 to 1000000, not {raw!r}")
    return int(raw)
