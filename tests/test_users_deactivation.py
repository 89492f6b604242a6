"""Deactivating and reactivating users (engine/runtime/users.py, Records.transfer_owned,
`crm user deactivate|reactivate`): never yourself, never the last active administrator,
decided one at a time when two administrators act at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from engine.cli import main
from engine.runtime.access import SYSTEM
from engine.runtime.errors import BadRequest, Conflict, RecordError
from engine.runtime.sessions import Sessions
from tests.conftest import CONFIG, Env


def crm(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(CONFIG), "--db", db_url, *args])


def active_admins(env: Env) -> list[str]:
    u = env.users.users
    with env.engine.connect() as conn:
        rows = conn.execute(select(u.c.name, u.c.roles).where(u.c.active.is_(True))).all()
    return sorted(name for name, roles in rows if "admin" in roles.split(","))


def test_the_last_active_administrator_stays_active(env: Env, db_url: str) -> None:
    env.users.add("rep", ["sales_rep"], password="rep-password")
    with pytest.raises(Conflict) as info:
        env.users.set_active("admin", False)
    assert "'admin' is the last active administrator" in info.value.message
    assert active_admins(env) == ["admin"]
    result = crm(db_url, "user", "deactivate", "admin")
    assert result.exit_code == 1
    assert "'admin' is the last active administrator" in result.stderr
    assert active_admins(env) == ["admin"]
    env.users.add("admin2", ["admin"], password="admin2-password")
    assert env.users.set_active("admin", False).active is False  # another one is left
    assert active_admins(env) == ["admin2"]


def test_an_administrator_cannot_deactivate_themselves_through_the_transfer(
        env: Env) -> None:
    env.users.add("admin2", ["admin"], password="admin2-password")
    rep = env.users.add("rep", ["sales_rep"], password="rep-password")
    with pytest.raises(BadRequest) as info:
        env.records.transfer_owned(env.admin.actor(), env.admin.id, rep.id, deactivate=True)
    assert info.value.message == "you cannot deactivate yourself"
    api = env.client(env.users.new_token("admin"))
    r = api.post("/api/access/transfer", json={"from": "admin", "to": "rep",
                                               "deactivate": True})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["fields"] == {"from": "another administrator must do it"}
    assert env.users.get(env.admin.id).active is True


def test_the_last_administrator_is_not_deactivated_by_the_engine_either(env: Env) -> None:
    rep = env.users.add("rep", ["sales_rep"], password="rep-password")
    with pytest.raises(Conflict):
        env.records.transfer_owned(SYSTEM, env.admin.id, rep.id, deactivate=True)
    assert active_admins(env) == ["admin"]


def test_two_administrators_deactivating_each_other_at_once_leave_one(env: Env) -> None:
    """Each transfers the other's records to themselves and deactivates the other, at the
    same moment: one wins, the other is refused (409), and an administrator is left."""
    first = env.users.add("first", ["admin"], password="first-password")
    second = env.users.add("second", ["admin"], password="second-password")
    env.users.set_active("admin", False)
    start = threading.Barrier(2)

    def deactivate(pair: tuple[int, int]) -> str:
        actor, other = pair
        start.wait()
        try:
            env.records.transfer_owned(env.users.get(actor).actor(), other, actor,
                                       deactivate=True)
        except RecordError as exc:
            return type(exc).__name__
        return "done"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(deactivate, [(first.id, second.id), (second.id, first.id)]))
    assert sorted(outcomes) == ["Conflict", "done"], outcomes
    assert len(active_admins(env)) == 1


def test_crm_user_reactivate_lets_the_user_sign_in_afresh(env: Env, db_url: str) -> None:
    rep = env.users.add("rep", ["sales_rep"], password="rep-password")
    token = env.users.new_token("rep")
    sessions = Sessions(env.engine, env.records.schema)
    before = sessions.start(rep.id)
    assert crm(db_url, "user", "deactivate", "rep").exit_code == 0
    assert env.users.check_password("rep", "rep-password") is None
    result = crm(db_url, "user", "reactivate", "rep")
    assert result.exit_code == 0, result.output
    assert result.stdout == "user rep is active\n"
    assert env.users.check_password("rep", "rep-password") is not None
    assert env.users.by_token(token) is None  # what was revoked stays revoked
    assert sessions.lookup(before.token) is None  # and the old session stays ended
    assert sessions.lookup(sessions.start(rep.id).token) is not None
    missing = crm(db_url, "user", "reactivate", "nobody")
    assert missing.exit_code == 1 and "no user named 'nobody'" in missing.stderr
