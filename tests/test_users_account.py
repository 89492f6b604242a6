"""Users.set_password and Users.set_locale (engine/runtime/users.py), used by the pages."""

from __future__ import annotations

import pytest

from engine.runtime.errors import Invalid, NotFound
from tests.conftest import Env


def test_set_password_replaces_the_hash(env: Env) -> None:
    env.users.set_password(env.admin.id, "a-brand-new-one")
    assert env.users.check_password("admin", "admin-password") is None
    assert env.users.check_password("admin", "a-brand-new-one") is not None


def test_set_password_revokes_the_users_tokens_only(env: Env) -> None:
    env.users.add("bo", ["sales_rep"], password="bo-password")
    mine = [env.users.new_token("admin"), env.users.new_token("admin")]
    theirs = env.users.new_token("bo")
    assert env.users.set_password(env.admin.id, "a-brand-new-one") == 2
    assert [env.users.by_token(t) for t in mine] == [None, None]
    assert env.users.by_token(theirs) is not None


@pytest.mark.parametrize("password", ["short", "x" * 1001])
def test_set_password_refuses_bad_lengths(env: Env, password: str) -> None:
    with pytest.raises(Invalid) as info:
        env.users.set_password(env.admin.id, password)
    assert "password" in info.value.fields
    assert env.users.check_password("admin", "admin-password") is not None


def test_set_locale(env: Env) -> None:
    assert env.users.set_locale(env.admin.id, "zh-CN").locale == "zh-CN"
    for bad in ("", "chinese", "zh_CN", "zh-cn-x", "<b>"):
        with pytest.raises(Invalid):
            env.users.set_locale(env.admin.id, bad)
    assert env.users.get(env.admin.id).locale == "zh-CN"


def test_unknown_users_are_not_found(env: Env) -> None:
    with pytest.raises(NotFound):
        env.users.set_password(999_999, "long-enough-password")
    with pytest.raises(NotFound):
        env.users.set_locale(999_999, "en")
