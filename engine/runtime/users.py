"""Users and API tokens. Passwords are hashed with argon2; tokens are stored as SHA-256
digests (they are long random secrets, so a fast hash is enough) and shown only once.

The product always hashes with PASSWORD_HASHER (argon2-cffi's RFC 9106 low-memory profile).
Users takes the hasher as a constructor argument only so that the test suite can pass a
cheap one; no environment variable or setting selects it."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, Table, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from engine.messages import msg
from engine.metadata.roles import Roles
from engine.runtime.access import Actor
from engine.runtime.db import WRITE
from engine.runtime.errors import BadRequest, Conflict, Invalid, NotFound
from engine.runtime.schema.tables import SESSION_TABLE, TOKEN_TABLE, USER_TABLE, Schema
from engine.types import NAME_RE

PASSWORD_HASHER = PasswordHasher()
"""The product's hasher: argon2id, time_cost 3, memory_cost 64 MiB, parallelism 4."""
TOKEN_PREFIX = "crm_"
_LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Z][A-Za-z]{1,3})?$")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    roles: tuple[str, ...]
    department_id: int | None
    locale: str
    active: bool

    def actor(self) -> Actor:
        return Actor(self.id, self.name, self.roles, self.department_id)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Users:
    def __init__(self, engine: Engine, schema: Schema, *,
                 hasher: PasswordHasher = PASSWORD_HASHER) -> None:
        self.engine = engine
        self.hasher = hasher
        self.writer = engine.execution_options(**WRITE)
        self.users = schema.table(USER_TABLE)
        self.tokens = schema.table(TOKEN_TABLE)
        self.sessions = schema.table(SESSION_TABLE)
        self.known_roles = schema.model.roles

    def add(self, name: str, roles: list[str], *, password: str | None = None,
            department_id: int | None = None, display_name: str | None = None) -> User:
        problems: dict[str, str] = {}
        if not NAME_RE.match(name):
            problems["name"] = msg("a user name is a lower-case letter, then a-z, 0-9 or _")
        if not roles or not all(NAME_RE.match(r) for r in roles):
            problems["role"] = msg("give at least one role name (lower-case letters, digits, _)")
        elif len(",".join(roles)) > 500:
            problems["role"] = msg("too many roles (at most 500 characters in all)")
        elif unknown := [r for r in roles if self.known_roles.get(r) is None]:
            problems["role"] = msg("no role '%(role)s' in config; roles: %(roles)s",
                                   role=unknown[0], roles=", ".join(self.known_roles.names))
        if display_name is not None and len(display_name) > 200:
            problems["display_name"] = msg("must be at most 200 characters")
        if password is not None and len(password) < 8:
            problems["password"] = msg("must be at least 8 characters")
        if problems:
            raise Invalid(msg("user is not valid"), problems)
        with self.writer.begin() as conn:
            if conn.execute(select(self.users.c.id).where(self.users.c.name == name)).first():
                raise Conflict(msg("user '%(name)s' already exists", name=name),
                               {"name": msg("already exists")})
            now = datetime.now(UTC)
            try:
                new_id = conn.execute(insert(self.users).values(
                    name=name, display_name=display_name or name, roles=",".join(roles),
                    department_id=department_id, locale="en", active=True, created_at=now,
                    password_hash=self.hasher.hash(password) if password else None,
                    password_changed_at=now if password else None,
                ).returning(self.users.c.id)).scalar_one()
            except IntegrityError:  # added by someone else since the check above
                raise Conflict(msg("user '%(name)s' already exists", name=name),
                               {"name": msg("already exists")}) from None
        return self.get(new_id)

    def set_active(self, name: str, active: bool) -> User:
        """Deactivate a user (no sign-in; tokens revoked) or reactivate one. The last active
        administrator is never deactivated (409). A reactivated user starts afresh: the
        sessions and tokens from before stay ended."""
        user = self.by_name(name)
        now = datetime.now(UTC)
        with self.writer.begin() as conn:
            if active:
                end_sign_ins(conn, self.sessions, self.tokens, user.id, now)
            else:
                lock_for_deactivation(conn, self.users, self.known_roles, user.id)
                end_sign_ins(conn, None, self.tokens, user.id, now)
            conn.execute(update(self.users).where(self.users.c.id == user.id)
                         .values(active=active))
        return self.get(user.id)

    def set_password(self, user_id: int, password: str) -> int:
        """Replace a user's password and revoke their API tokens in the same transaction
        (a token made by someone who knew the old password must not outlive it); returns
        how many tokens were revoked. Ending browser sessions is the caller's part
        (engine/runtime/sessions.py), which keeps the browser that made the change."""
        if len(password) < 8:
            raise Invalid(msg("password is not valid"),
                          {"password": msg("must be at least 8 characters")})
        if len(password) > 1000:
            raise Invalid(msg("password is not valid"),
                          {"password": msg("must be at most 1000 characters")})
        self.get(user_id)
        now = datetime.now(UTC)
        with self.writer.begin() as conn:
            conn.execute(update(self.users).where(self.users.c.id == user_id).values(
                password_hash=self.hasher.hash(password), password_changed_at=now))
            revoked = conn.execute(update(self.tokens).where(
                self.tokens.c.user_id == user_id, self.tokens.c.revoked_at.is_(None))
                .values(revoked_at=now))
        return int(revoked.rowcount)

    def set_locale(self, user_id: int, locale: str) -> User:
        """The language of the user's pages, e.g. "en" or "zh-CN"."""
        if not _LOCALE_RE.match(locale):
            raise Invalid(msg("locale is not valid"),
                          {"locale": msg("a language tag like en or zh-CN")})
        self.get(user_id)
        with self.writer.begin() as conn:
            conn.execute(update(self.users).where(self.users.c.id == user_id)
                         .values(locale=locale))
        return self.get(user_id)

    def get(self, user_id: int) -> User:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.users).where(self.users.c.id == user_id)).first()
        if row is None:
            raise NotFound(msg("no user %(id)s", id=user_id))
        return _user(row)

    def by_name(self, name: str) -> User:
        if "\x00" in name:  # no user name holds NUL, and PostgreSQL refuses it in a query
            raise NotFound(msg("no user named %(name)s", name=repr(name)))
        with self.engine.connect() as conn:
            row = conn.execute(select(self.users).where(self.users.c.name == name)).first()
        if row is None:
            raise NotFound(msg("no user named %(name)s", name=repr(name)))
        return _user(row)

    def by_name_or_none(self, name: str) -> User | None:
        try:
            return self.by_name(name)
        except NotFound:
            return None

    def check_password(self, name: str, password: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.users).where(self.users.c.name == name,
                                                        self.users.c.active.is_(True))).first()
        if row is None or row.password_hash is None:
            self.hasher.hash("spend comparable time either way")
            return None
        try:
            self.hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return _user(row)

    def new_token(self, name: str, label: str | None = None) -> str:
        """Create an API token for user `name`; the plain token is returned only here."""
        user = self.by_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.writer.begin() as conn:
            conn.execute(insert(self.tokens).values(
                user_id=user.id, token_hash=_token_digest(token), label=label,
                created_at=datetime.now(UTC)))
        return token

    def by_token(self, token: str) -> User | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        u, t = self.users, self.tokens
        with self.engine.connect() as conn:
            row = conn.execute(
                select(u).select_from(t.join(u, u.c.id == t.c.user_id))
                .where(t.c.token_hash == _token_digest(token), t.c.revoked_at.is_(None),
                       u.c.active.is_(True))).first()
        return _user(row) if row is not None else None

    def revoke_tokens(self, name: str) -> int:
        user = self.by_name(name)
        with self.writer.begin() as conn:
            result = conn.execute(update(self.tokens).where(
                self.tokens.c.user_id == user.id, self.tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC)))
        return int(result.rowcount)


def lock_for_deactivation(conn: Connection, users: Table, roles: Roles, user_id: int,
                          actor_id: int | None = None, also: tuple[int, ...] = ()) -> None:
    """Refuse to deactivate `user_id` when it is the actor themselves (400) or the last
    active administrator (409). Locks the rows of every active user and of `also` (in id
    order, in one statement, so two callers cannot deadlock) until the transaction ends:
    two administrators deactivating each other at once are decided one after the other,
    and the second is refused."""
    if actor_id is not None and actor_id == user_id:
        raise BadRequest(msg("you cannot deactivate yourself"),
                         {"from": msg("another administrator must do it")})
    rows = conn.execute(select(users.c.id, users.c.name, users.c.roles, users.c.active)
                        .where(or_(users.c.active.is_(True),
                                   users.c.id.in_([user_id, *also])))
                        .order_by(users.c.id).with_for_update()).all()
    admins = {row.id: row.name for row in rows if row.active and _is_admin(roles, row.roles)}
    if list(admins) == [user_id]:
        raise Conflict(msg("'%(name)s' is the last active administrator and stays active",
                           name=admins[user_id]),
                       {"from": msg("make another user an administrator first")})


def end_sign_ins(conn: Connection, sessions: Table | None, tokens: Table, user_id: int,
                 now: datetime) -> None:
    """End the user's API tokens (and browser sessions, given their table)."""
    conn.execute(update(tokens).where(tokens.c.user_id == user_id,
                                      tokens.c.revoked_at.is_(None)).values(revoked_at=now))
    if sessions is not None:
        conn.execute(update(sessions).where(sessions.c.user_id == user_id,
                                            sessions.c.ended_at.is_(None)).values(ended_at=now))


def _is_admin(roles: Roles, names: str | None) -> bool:
    return any((role := roles.get(name)) is not None and role.admin
               for name in (names or "").split(","))


def _user(row: object) -> User:
    return user_of(row._mapping)  # type: ignore[attr-defined]


def user_of(r: Mapping[str, Any]) -> User:
    """A User from the values of a crm_user row (column name → value)."""
    return User(id=r["id"], name=r["name"],
                roles=tuple(x for x in (r["roles"] or "").split(",") if x),
                department_id=r["department_id"], locale=r["locale"], active=bool(r["active"]))
