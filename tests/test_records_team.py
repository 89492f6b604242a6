"""Record teams (records/team.py): members with read or edit access, who may change them,
audit rows, and the HTTP routes GET/POST /api/<e>/<id>/team, DELETE …/team/<user_id>."""

from __future__ import annotations

from typing import Any

import pytest

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Forbidden, Invalid, NotFound
from tests.access_helpers import departments, place, user
from tests.conftest import Env


class Deal:
    """An opportunity of u1 (sales_rep: own opportunities only); u2 and u3 are reps too."""

    def __init__(self, env: Env) -> None:
        self.env = env
        d = departments(env)
        self.u1 = user(env, "u1", "sales_rep", department=d["BJ"])
        self.u2 = user(env, "u2", "sales_rep", department=d["BJ"])
        self.u3 = user(env, "u3", "presales", department=d["SH"])
        acc = place(env, "account", {"name": "acme"}, owner=self.u1)
        self.id = int(place(env, "opportunity", {"name": "deal", "account": acc["id"]},
                            owner=self.u1)["id"])

    def version(self) -> int:
        return int(self.env.records.get(SYSTEM, "opportunity", self.id)["version"])

    def team(self) -> list[tuple[str, str]]:
        return [(m["user"], m["access"])
                for m in self.env.records.team(SYSTEM, "opportunity", self.id)]

    def team_history(self) -> list[tuple[Any, Any, str | None]]:
        rows = self.env.records.history(SYSTEM, "opportunity", self.id)
        return [(h["old"], h["new"], h["user"]) for h in rows if h["action"] == "team"]


@pytest.fixture
def deal(env: Env) -> Deal:
    return Deal(env)


def test_add_change_and_remove_a_member(deal: Deal) -> None:
    records = deal.env.records
    version = deal.version()
    members = records.set_team_member(deal.u1, "opportunity", deal.id, deal.u2.id, "read")
    assert [(m["user_id"], m["user"], m["access"]) for m in members] == [
        (deal.u2.id, "u2", "read")]
    assert members[0]["added_at"] is not None
    records.set_team_member(deal.u1, "opportunity", deal.id, deal.u2.id, "edit")
    records.set_team_member(deal.u1, "opportunity", deal.id, deal.u2.id, "edit")  # no-op
    records.set_team_member(SYSTEM, "opportunity", deal.id, deal.u3.id, "read")
    assert deal.team() == [("u2", "edit"), ("u3", "read")]
    assert records.remove_team_member(deal.u1, "opportunity", deal.id,
                                      deal.u2.id)[0]["user"] == "u3"
    assert deal.team() == [("u3", "read")]
    assert deal.team_history() == [
        (None, {"user": "u2", "access": "read"}, "u1"),
        ({"user": "u2", "access": "read"}, {"user": "u2", "access": "edit"}, "u1"),
        (None, {"user": "u3", "access": "read"}, None),
        ({"user": "u2", "access": "edit"}, None, "u1"),
    ]
    # team changes leave the record's own version alone
    assert deal.version() == version
    with pytest.raises(NotFound):
        records.remove_team_member(deal.u1, "opportunity", deal.id, deal.u2.id)


def test_bad_members_are_invalid(deal: Deal) -> None:
    records = deal.env.records
    deal.env.users.set_active("u2", False)
    with pytest.raises(Invalid) as info:
        records.set_team_member(deal.u1, "opportunity", deal.id, deal.u2.id, "read")
    assert info.value.fields == {"user": f"no active user with id {deal.u2.id}"}
    with pytest.raises(Invalid):
        records.set_team_member(deal.u1, "opportunity", deal.id, 10**6, "read")
    for access in ("owner", "write", "", "READ"):
        with pytest.raises(Invalid) as info:
            records.set_team_member(deal.u1, "opportunity", deal.id, deal.u3.id, access)
        assert info.value.fields == {"access": "must be read or edit"}
    assert deal.team() == []
    assert deal.team_history() == []


def test_read_member_sees_edit_member_updates(deal: Deal) -> None:
    records = deal.env.records
    with pytest.raises(NotFound):
        records.get(deal.u2, "opportunity", deal.id)
    records.set_team_member(deal.u1, "opportunity", deal.id, deal.u2.id, "read")
    assert records.get(deal.u2, "opportunity", deal.id)["name"] == "deal"
    with pytest.raises(Forbidden):
        records.update(deal.u2, "opportunity", deal.id, {"next_step": "call"}, deal.version())
    # a member who may not update the record may not change its team either
    with pytest.raises(Forbidden):
        records.set_team_member(deal.u2, "opportunity", deal.id, deal.u3.id, "read")
    records.set_team_member(deal.u1, "opportunity", deal.id, deal.u2.id, "edit")
    done = records.update(deal.u2, "opportunity", deal.id, {"next_step": "call"},
                          deal.version())
    assert done["next_step"] == "call"
    with pytest.raises(Forbidden):  # delete needs ownership
        records.delete(deal.u2, "opportunity", deal.id)
    records.remove_team_member(deal.u1, "opportunity", deal.id, deal.u2.id)
    with pytest.raises(NotFound):
        records.get(deal.u2, "opportunity", deal.id)


def test_outsiders_cannot_see_or_change_the_team(deal: Deal) -> None:
    records = deal.env.records
    with pytest.raises(NotFound):
        records.team(deal.u2, "opportunity", deal.id)
    with pytest.raises(NotFound):
        records.set_team_member(deal.u2, "opportunity", deal.id, deal.u2.id, "edit")
    with pytest.raises(Forbidden):  # presales may not read leads at all
        records.team(deal.u3, "lead", 1)
    assert deal.team() == []


# -- HTTP ------------------------------------------------------------------------------------


def test_team_routes(deal: Deal) -> None:
    env = deal.env
    owner = env.client(env.users.new_token("u1"))
    other = env.client(env.users.new_token("u2"))
    url = f"/api/opportunity/{deal.id}/team"
    got = owner.get(url)
    assert got.status_code == 200
    assert got.json() == {"items": [], "total": 0}
    assert other.get(url).status_code == 404
    assert env.client().get(url).status_code == 401

    added = owner.post(url, json={"user": "u2", "access": "edit"})
    assert added.status_code == 200, added.text
    assert [(m["user"], m["access"]) for m in added.json()["items"]] == [("u2", "edit")]
    assert other.get(url).status_code == 200  # now a member
    by_id = owner.post(url, json={"user": deal.u3.id})  # access defaults to read
    assert [(m["user"], m["access"]) for m in by_id.json()["items"]] == [
        ("u2", "edit"), ("u3", "read")]

    for body in ({"user": "u2", "access": "owner"}, {"user": "u2", "access": 1}, {},
                 {"user": "nobody"}, {"user": "u2", "x": 1}, {"user": True}):
        answer = owner.post(url, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["fields"]
    assert owner.post(url, content=b"[]", headers={"Content-Type": "application/json"}
                      ).status_code == 400

    removed = owner.delete(f"{url}/{deal.u2.id}")
    assert removed.status_code == 200
    assert removed.json()["total"] == 1
    assert owner.delete(f"{url}/{deal.u2.id}").status_code == 404
    assert owner.delete(f"{url}/abc").status_code == 404
    assert other.get(url).status_code == 404
    assert owner.get(f"/api/opportunity/{10**6}/team").status_code == 404
    assert owner.get("/api/nothing/1/team").status_code == 404
    history = owner.get(f"/api/opportunity/{deal.id}/history").json()["items"]
    assert [h["action"] for h in history].count("team") == 3


def test_a_purged_records_team_and_history_do_not_pass_to_a_reused_id(deal: Deal) -> None:
    """SQLite may give a purged record's id to the next one; nothing of the old one sticks."""
    env, records = deal.env, deal.env.records
    records.set_team_member(deal.u1, "opportunity", deal.id, deal.u3.id, "edit")
    records.update(deal.u1, "opportunity", deal.id, {"competitor": "SECRET-rival"},
                   deal.version())
    records.delete(deal.u1, "opportunity", deal.id)
    records.purge(SYSTEM, "opportunity", deal.id)
    account = records.create(SYSTEM, "account", {"name": "other"})
    new = records.create(SYSTEM, "opportunity", {"name": "next", "account": account["id"]})
    if env.engine.dialect.name == "sqlite":
        assert new["id"] == deal.id  # the case at stake: the id was given again
    assert records.team(SYSTEM, "opportunity", new["id"]) == []
    history = records.history(SYSTEM, "opportunity", new["id"])
    assert [h["action"] for h in history] == ["create"] * len(history)
    assert "SECRET-rival" not in repr(history)
    with pytest.raises(NotFound):  # the presales engineer's edit access did not carry over
        records.get(deal.u3, "opportunity", new["id"])
