"""Users and API tokens: argon2 password hashes, tokens shown once and stored as digests."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import select

from engine.runtime.errors import Conflict, Invalid, NotFound
from engine.runtime.users import TOKEN_PREFIX, Users
from tests.conftest import Env


def invalid(fn: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(Invalid) as info:
        fn(*args, **kwargs)
    assert info.value.message == "user is not valid"
    return info.value.fields


def stored(users: Users, table: str) -> list[dict[str, Any]]:
    t = users.users if table == "user" else users.tokens
    with users.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).order_by(t.c.id)).mappings()]


NAME_PROBLEM = "a user name is a lower-case letter, then a-z, 0-9 or _"
ROLE_PROBLEM = "give at least one role name (lower-case letters, digits, _)"


def test_add_and_read_back(env: Env) -> None:
    bob = env.users.add("bob", ["sales_rep", "service_agent"], password="correct horse",
                        display_name="Bob Builder")
    assert (bob.name, bob.roles, bob.department_id, bob.locale, bob.active) == \
        ("bob", ("sales_rep", "service_agent"), None, "en", True)
    assert env.users.get(bob.id) == bob == env.users.by_name("bob")
    actor = bob.actor()
    assert (actor.user_id, actor.name, actor.roles, actor.is_system) == \
        (bob.id, "bob", ("sales_rep", "service_agent"), False)
    row = next(r for r in stored(env.users, "user") if r["name"] == "bob")
    assert row["display_name"] == "Bob Builder" and row["password_changed_at"] is not None


INVALID_USERS: list[tuple[tuple[Any, ...], dict[str, Any], dict[str, str]]] = [
    (("Bob", ["sales_rep"]), {}, {"name": NAME_PROBLEM}),
    (("bob smith", ["sales_rep"]), {}, {"name": NAME_PROBLEM}),
    (("", ["sales_rep"]), {}, {"name": NAME_PROBLEM}),
    (("b" * 64, ["sales_rep"]), {}, {"name": NAME_PROBLEM}),
    (("bob", []), {}, {"role": ROLE_PROBLEM}),
    (("bob", ["Sales"]), {}, {"role": ROLE_PROBLEM}),
    (("bob", ["sales", ""]), {}, {"role": ROLE_PROBLEM}),
    (("bob", ["sales_rep", "sales"]), {},
     {"role": "no role 'sales' in config; roles: admin, executive, sales_manager, sales_rep, "
              "presales, marketing, finance, service_manager, service_agent, partner"}),
    (("bob", [f"r{i:02}" for i in range(130)]), {},
     {"role": "too many roles (at most 500 characters in all)"}),
    (("bob", ["sales_rep"]), {"password": "short"}, {"password": "must be at least 8 characters"}),
    (("bob", ["sales_rep"]), {"password": ""}, {"password": "must be at least 8 characters"}),
    (("bob", ["sales_rep"]), {"display_name": "x" * 201},
     {"display_name": "must be at most 200 characters"}),
    (("Bob!", []), {"password": "1234567", "display_name": "x" * 201},
     {"name": NAME_PROBLEM, "role": ROLE_PROBLEM, "password": "must be at least 8 characters",
      "display_name": "must be at most 200 characters"}),
]


def test_add_refuses_invalid_users(env: Env) -> None:
    before = stored(env.users, "user")
    for args, kwargs, errors in INVALID_USERS:
        assert invalid(env.users.add, *args, **kwargs) == errors, args
    assert stored(env.users, "user") == before


def test_duplicate_name_is_a_conflict(env: Env) -> None:
    env.users.add("bob", ["sales_rep"])
    with pytest.raises(Conflict) as info:
        env.users.add("bob", ["service_agent"], password="another password")
    assert info.value.message == "user 'bob' already exists"
    assert info.value.fields == {"name": "already exists"}
    assert [r["roles"] for r in stored(env.users, "user") if r["name"] == "bob"] == ["sales_rep"]


def test_unknown_users(env: Env) -> None:
    with pytest.raises(NotFound):
        env.users.by_name("nobody")
    with pytest.raises(NotFound):
        env.users.get(424242)
    with pytest.raises(NotFound):
        env.users.new_token("nobody")
    with pytest.raises(NotFound):
        env.users.set_active("nobody", False)


def test_passwords_are_argon2_hashes(env: Env) -> None:
    env.users.add("bob", ["sales_rep"], password="correct horse battery")
    env.users.add("carol", ["sales_rep"], password="correct horse battery")
    hashes = {r["name"]: r["password_hash"] for r in stored(env.users, "user")}
    assert hashes["bob"].startswith("$argon2id$")
    assert "correct horse" not in hashes["bob"]
    assert hashes["bob"] != hashes["carol"]  # salted
    env.users.add("dave", ["sales_rep"])
    assert {r["name"]: r["password_hash"] for r in stored(env.users, "user")}["dave"] is None


def test_check_password(env: Env) -> None:
    bob = env.users.add("bob", ["sales_rep"], password="correct horse")
    env.users.add("nopass", ["sales_rep"])
    assert env.users.check_password("bob", "correct horse") == bob
    assert env.users.check_password("bob", "correct horse ") is None
    assert env.users.check_password("bob", "Correct horse") is None
    assert env.users.check_password("bob", "") is None
    assert env.users.check_password("nobody", "correct horse") is None
    assert env.users.check_password("nopass", "") is None
    env.users.set_active("bob", False)
    assert env.users.check_password("bob", "correct horse") is None


def test_a_token_is_shown_once_and_stored_as_a_digest(env: Env) -> None:
    bob = env.users.add("bob", ["sales_rep"])
    token = env.users.new_token("bob", label="ci")
    again = env.users.new_token("bob")
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40 and token != again
    rows = [r for r in stored(env.users, "token") if r["user_id"] == bob.id]
    assert [r["token_hash"] for r in rows] == [
        hashlib.sha256(token.encode()).hexdigest(), hashlib.sha256(again.encode()).hexdigest()]
    assert [r["label"] for r in rows] == ["ci", None]
    # the plain token is nowhere in the table, in any column of any row
    everything = repr(stored(env.users, "token"))
    assert token not in everything and token[len(TOKEN_PREFIX):] not in everything
    assert again not in everything
    assert env.users.by_token(token) == bob == env.users.by_token(again)


def test_unknown_tokens_are_refused(env: Env) -> None:
    env.users.new_token("admin")
    for fake in ("", "crm_", "crm_wrong", "nope", TOKEN_PREFIX + "x" * 300):
        assert env.users.by_token(fake) is None, fake


def test_a_token_without_its_prefix_or_with_changes_is_refused(env: Env) -> None:
    token = env.users.new_token("admin")
    assert env.users.by_token(token) == env.admin
    assert env.users.by_token(token[len(TOKEN_PREFIX):]) is None
    assert env.users.by_token(token + "x") is None
    assert env.users.by_token(token.upper()) is None
    assert env.users.by_token(hashlib.sha256(token.encode()).hexdigest()) is None


def test_revoked_tokens_stop_working(env: Env) -> None:
    env.users.add("bob", ["sales_rep"])
    bob_token = env.users.new_token("bob")
    admin_token = env.users.new_token("admin")
    assert env.users.revoke_tokens("bob") == 1
    assert env.users.by_token(bob_token) is None
    assert env.users.by_token(admin_token) == env.admin
    assert env.users.revoke_tokens("bob") == 0
    fresh = env.users.new_token("bob")
    assert env.users.by_token(fresh) is not None
    assert env.users.by_token(bob_token) is None


def test_an_inactive_users_tokens_stop_working(env: Env) -> None:
    env.users.add("bob", ["sales_rep"])
    token = env.users.new_token("bob")
    off = env.users.set_active("bob", False)
    assert off.active is False
    assert env.users.by_token(token) is None
    assert env.users.set_active("bob", True).active is True
    assert env.users.by_token(token) is None  # deactivation revoked it: a new one is needed
    fresh = env.users.new_token("bob")
    assert env.users.by_token(fresh) == env.users.by_name("bob")
