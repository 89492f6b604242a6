"""Merging two records into one (engine/runtime/imports/merge.py): children of every kind
move, rollups follow, history of both shows it, the loser goes to the recycle bin, all in
one unit of work; restoring the loser undoes it; access, unique values, trees, versions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import Conflict, Forbidden, Invalid, NotFound
from engine.runtime.imports.merge import children, merge, merge_of
from engine.runtime.schema.tables import ATTACHMENT_TABLE, MERGE_TABLE
from tests.access_helpers import departments, place, user
from tests.conftest import Env, EnvFactory


class World:
    """Two accounts with children of every kind: the survivor S and the loser L."""

    def __init__(self, env: Env) -> None:
        self.env = env
        r = env.records
        self.d = departments(env)
        self.rep = user(env, "rep", "sales_rep", department=self.d["BJ"])
        self.other = user(env, "other", "sales_rep", department=self.d["SH"])
        self.manager = user(env, "manager", "sales_manager", department=self.d["NORTH"])
        self.admin = env.admin.actor()
        self.s = place(env, "account", {"name": "Acme Ltd", "city": "Beijing"},
                       department=self.d["BJ"])["id"]
        self.l = place(env, "account", {"name": "ACME Limited", "phone": "010-1234",
                                        "city": "北京"}, department=self.d["BJ"])["id"]
        self.opp_s = r.create(SYSTEM, "opportunity", {"name": "s deal", "account": self.s,
                                                       "amount": "50", "stage": "won"})["id"]
        self.opp_l = r.create(SYSTEM, "opportunity", {"name": "l deal", "account": self.l,
                                                       "amount": "100", "stage": "won"})["id"]
        self.contact = r.create(SYSTEM, "contact", {"full_name": "Wang", "account": self.l})["id"]
        self.activity = r.create(SYSTEM, "activity", {
            "subject": "call", "kind": "call", "regarding": f"account:{self.l}"})["id"]
        self.child = r.create(SYSTEM, "account", {"name": "Acme Sub", "parent": self.l})["id"]
        r.set_team_member(SYSTEM, "account", self.l, self.other.id, "edit")

    def get(self, entity: str, rid: int, *, deleted: bool = False) -> dict[str, Any]:
        return self.env.records.get(SYSTEM, entity, rid, deleted=deleted)

    def either(self, entity: str, rid: int) -> dict[str, Any]:
        """The record, live or in the recycle bin (which it is shows in `deleted_at`)."""
        try:
            return self.get(entity, rid)
        except NotFound:
            return self.get(entity, rid, deleted=True)

    def versions(self) -> dict[int, int]:
        return {rid: self.get("account", rid)["version"] for rid in (self.s, self.l)}

    def merge(self, actor: Actor | None = None, **take: str) -> dict[str, Any]:
        return merge(self.env.records, actor or self.admin, "account", self.s, self.l,
                     take=take, versions=self.versions())

    def restore(self, actor: Actor | None = None) -> dict[str, Any]:
        return self.env.records.restore(actor or self.admin, "account", self.l)

    def snapshot(self) -> dict[str, Any]:
        """What a merge changes, to compare before and after."""
        g = self.get
        live = {rid: self.either("account", rid) for rid in (self.s, self.l)}
        return {
            "accounts": {rid: {k: v for k, v in rec.items()
                               if k not in ("version", "updated_at", "updated_by")}
                         for rid, rec in live.items()},
            "opp": g("opportunity", self.opp_l)["account"],
            "contact": g("contact", self.contact)["account"],
            "activity": str(g("activity", self.activity)["regarding"]),
            "child": g("account", self.child)["parent"],
            "team": [(m["user"], m["access"])
                     for m in self.env.records.team(SYSTEM, "account", self.s)],
        }


@pytest.fixture
def world(env: Env) -> World:
    return World(env)


def test_children_of_every_kind_move_and_rollups_follow(world: World) -> None:
    assert world.get("account", world.s)["won_amount"] == Decimal("50.00")
    done = world.merge()
    assert done["record"]["id"] == world.s
    assert done["moved"] == {"account": 1, "activity": 1, "contact": 1, "opportunity": 1}
    assert world.get("opportunity", world.opp_l)["account"] == world.s
    assert world.get("contact", world.contact)["account"] == world.s
    assert str(world.get("activity", world.activity)["regarding"]) == f"account:{world.s}"
    assert world.get("account", world.child)["parent"] == world.s
    assert world.get("account", world.s)["won_amount"] == Decimal("150.00")
    assert done["record"]["won_amount"] == Decimal("150.00")
    assert [(m["user"], m["access"]) for m in
            world.env.records.team(SYSTEM, "account", world.s)] == [("other", "edit")]
    with pytest.raises(NotFound):
        world.get("account", world.l)
    binned = world.get("account", world.l, deleted=True)
    assert binned["deleted_at"] is not None


def test_survivor_takes_chosen_values_by_an_audited_update(world: World) -> None:
    before = world.get("account", world.s)
    world.merge(phone="loser", city="survivor")
    after = world.get("account", world.s)
    assert (after["phone"], after["city"]) == ("010-1234", "Beijing")
    assert after["version"] == before["version"] + 1
    history = world.env.records.history(SYSTEM, "account", world.s)
    assert ("update", "phone", None, "010-1234") in [
        (h["action"], h["field"], h["old"], h["new"]) for h in history]


def test_history_of_both_shows_the_merge(world: World) -> None:
    done = world.merge()
    s_history = world.env.records.history(SYSTEM, "account", world.s)
    l_history = world.env.records.history(SYSTEM, "account", world.l)
    assert {"from": world.l, "merge": done["merge"]} in [
        h["new"] for h in s_history if h["action"] == "merge"]
    assert {"into": world.s, "merge": done["merge"]} in [
        h["new"] for h in l_history if h["action"] == "merge"]
    assert "delete" in [h["action"] for h in l_history]
    # the loser's own earlier history stays
    assert "create" in [h["action"] for h in l_history]
    moved = world.env.records.history(SYSTEM, "opportunity", world.opp_l)
    assert (world.l, world.s) in [(h["old"], h["new"]) for h in moved
                                  if h["field"] == "account"]


def test_survivor_takes_the_losers_unique_name(world: World) -> None:
    world.merge(name="loser")
    assert world.get("account", world.s)["name"] == "ACME Limited"
    assert world.get("account", world.l, deleted=True)["name"] is None
    world.restore()  # undo: both names back where they were
    assert world.get("account", world.s)["name"] == "Acme Ltd"
    assert world.get("account", world.l)["name"] == "ACME Limited"


def test_restore_undoes_the_merge(world: World) -> None:
    before = world.snapshot()
    world.merge(name="loser", phone="loser")
    assert world.snapshot() != before
    world.restore()
    assert world.snapshot() == before
    assert world.get("account", world.s)["won_amount"] == Decimal("50.00")
    assert world.get("account", world.l)["won_amount"] == Decimal("100.00")
    assert merge_of(world.env.records, "account", world.l) is None
    actions = [h["action"] for h in world.env.records.history(SYSTEM, "account", world.s)]
    assert actions[-1] == "unmerge"


def test_undo_keeps_survivor_fields_changed_since(world: World) -> None:
    world.merge(phone="loser", industry="survivor")
    s = world.get("account", world.s)
    world.env.records.update(SYSTEM, "account", world.s, {"phone": "021-999"}, s["version"])
    world.restore()
    assert world.get("account", world.s)["phone"] == "021-999"
    kept = [h["new"] for h in world.env.records.history(SYSTEM, "account", world.s)
            if h["action"] == "unmerge"]
    assert kept[-1]["kept"] == ["phone"]
    # a child moved on since stays where it was put
    assert world.get("contact", world.contact)["account"] == world.l


def test_undo_leaves_a_child_moved_elsewhere_since(world: World) -> None:
    third = place(world.env, "account", {"name": "Third"})["id"]
    world.merge()
    opp = world.get("opportunity", world.opp_l)
    world.env.records.update(SYSTEM, "opportunity", world.opp_l, {"account": third},
                             opp["version"])
    world.restore()
    assert world.get("opportunity", world.opp_l)["account"] == third
    assert world.get("contact", world.contact)["account"] == world.l


def test_one_unit_of_work_a_failure_mid_merge_changes_nothing(world: World) -> None:
    """The loser sits under the survivor: taking its parent would point the survivor at
    itself, refused by the survivor's update after the children have moved."""
    s = world.get("account", world.s)
    world.env.records.update(SYSTEM, "account", world.l, {"parent": world.s},
                             world.get("account", world.l)["version"])
    before = world.snapshot()
    audit = world.env.records.audit
    with world.env.engine.connect() as conn:
        rows = len(conn.execute(select(audit.c.id)).all())
    with pytest.raises(Invalid) as exc:
        world.merge(parent="loser")
    assert "parent" in exc.value.fields
    assert world.snapshot() == before
    assert world.get("account", world.s)["version"] == s["version"]
    with world.env.engine.connect() as conn:
        assert len(conn.execute(select(audit.c.id)).all()) == rows
        assert conn.execute(select(world.env.records.schema.table(MERGE_TABLE).c.id)
                            ).first() is None


def test_a_childs_rule_refuses_the_move_and_nothing_changes(world: World) -> None:
    """A contact reporting to a manager at another account: moving it breaks its rule."""
    r = world.env.records
    third = place(world.env, "account", {"name": "Third"})["id"]
    boss = r.create(SYSTEM, "contact", {"full_name": "Boss", "account": third})["id"]
    t = r.schema.table("contact")
    with world.env.engine.begin() as conn:  # data older than the rule
        conn.execute(update(t).where(t.c.id == world.contact).values(reports_to=boss))
    before = world.snapshot()
    with pytest.raises(Invalid) as exc:
        world.merge()
    assert f"{world.contact}" in exc.value.message
    assert world.snapshot() == before


def test_a_contact_and_its_manager_move_together(world: World) -> None:
    r = world.env.records
    boss = r.create(SYSTEM, "contact", {"full_name": "Boss", "account": world.l})["id"]
    c = world.get("contact", world.contact)
    r.update(SYSTEM, "contact", world.contact, {"reports_to": boss}, c["version"])
    world.merge()
    assert world.get("contact", boss)["account"] == world.s


def test_stale_version_is_409(world: World) -> None:
    versions = world.versions()
    world.env.records.update(SYSTEM, "account", world.l, {"city": "Tianjin"},
                             versions[world.l])
    with pytest.raises(Conflict) as exc:
        merge(world.env.records, world.admin, "account", world.s, world.l, take={},
              versions=versions)
    assert exc.value.fields == {"version": "stale"}


def test_refusals(world: World) -> None:
    r = world.env.records
    v = world.versions()
    with pytest.raises(Invalid):
        merge(r, world.admin, "account", world.s, world.s, take={}, versions=v)
    with pytest.raises(Invalid) as exc:
        merge(r, world.admin, "account", world.s, world.l, take={"name": "both"}, versions=v)
    assert exc.value.fields == {"name": "say survivor or loser"}
    with pytest.raises(Invalid):
        merge(r, world.admin, "account", world.s, world.l, take={"won_amount": "loser"},
              versions=v)
    with pytest.raises(Invalid):
        merge(r, world.admin, "account", world.s, world.l, take={}, versions={world.s: 1})
    with pytest.raises(NotFound):
        merge(r, world.admin, "account", world.s, 999999, take={},
              versions={world.s: v[world.s], 999999: 1})


def test_merging_a_record_into_its_own_descendant_is_refused(world: World) -> None:
    with pytest.raises(Invalid) as exc:
        merge(world.env.records, world.admin, "account", world.child, world.l, take={},
              versions={world.child: world.get("account", world.child)["version"],
                        world.l: world.get("account", world.l)["version"]})
    assert "loser" in exc.value.fields


def test_access_update_on_survivor_and_delete_on_loser(world: World) -> None:
    # a sales rep may not delete accounts
    with pytest.raises(Forbidden):
        world.merge(world.rep)
    # a manager of the department tree may; children they cannot see move too, uncounted
    near = place(world.env, "opportunity", {"name": "near", "account": world.l},
                 department=world.d["BJ"])["id"]
    far = place(world.env, "opportunity", {"name": "far", "account": world.l},
                department=world.d["SH"])["id"]
    assert children(world.env.records, world.manager, "account", world.l)["opportunity"] == 1
    done = world.merge(world.manager)
    assert world.get("opportunity", near)["account"] == world.s
    assert world.get("opportunity", far)["account"] == world.s
    assert world.get("opportunity", world.opp_l)["account"] == world.s
    assert done["moved"]["opportunity"] == 1  # the one in BJ's tree, not the two others


def test_restore_needs_update_on_the_survivor(world: World) -> None:
    world.merge()
    # a rep in the department may read the accounts, but neither restore nor update them
    with pytest.raises(Forbidden):
        world.restore(world.rep)
    assert merge_of(world.env.records, "account", world.l) is not None


def test_undo_refused_when_the_losers_unique_value_was_taken(world: World) -> None:
    world.merge(name="loser")
    s = world.get("account", world.s)
    world.env.records.update(SYSTEM, "account", world.s, {"name": "New name"}, s["version"])
    world.env.records.create(SYSTEM, "account", {"name": "acme limited"})
    with pytest.raises(Conflict):
        world.restore()
    assert world.get("account", world.l, deleted=True)["deleted_at"] is not None


def test_files_attached_to_the_loser_move_and_come_back(world: World) -> None:
    at = world.env.records.schema.table(ATTACHMENT_TABLE)
    with world.env.engine.begin() as conn:
        fid = conn.execute(at.insert().values(
            entity="account", record_id=world.l, file_name="a.pdf",
            content_type="application/pdf", size=1, sha256="0" * 64,
            created_at=world.env.records.clock()).returning(at.c.id)).scalar_one()

    def holder() -> int:
        with world.env.engine.connect() as conn:
            return int(conn.execute(select(at.c.record_id).where(at.c.id == fid)).scalar_one())

    world.merge()
    assert holder() == world.s
    world.restore()
    assert holder() == world.l


def test_a_unique_reference_to_both_records_cannot_move(config_dir: Path,
                                                        make_env: EnvFactory) -> None:
    """A competitor that is the one main rival of an account: two of them, one for each
    record, cannot both point to the survivor; one alone moves."""
    path = config_dir / "entities" / "competitor.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "fields:\n", "fields:\n  primary_of: {type: reference, to: account, unique: true}\n",
        1), encoding="utf-8")
    env = make_env(config_dir)
    r = env.records
    s = r.create(SYSTEM, "account", {"name": "S"})["id"]
    l_ = r.create(SYSTEM, "account", {"name": "L"})["id"]
    on_l = r.create(SYSTEM, "competitor", {"name": "a", "primary_of": l_})["id"]
    on_s = r.create(SYSTEM, "competitor", {"name": "b", "primary_of": s})["id"]

    def versions() -> dict[int, int]:
        return {rid: r.get(SYSTEM, "account", rid)["version"] for rid in (s, l_)}

    admin = env.admin.actor()
    with pytest.raises(Conflict) as exc:
        merge(r, admin, "account", s, l_, take={}, versions=versions())
    assert "Competitor's Primary of" in str(exc.value.message)
    assert r.get(SYSTEM, "competitor", on_l)["primary_of"] == l_
    r.update(SYSTEM, "competitor", on_s, {"primary_of": None},
             r.get(SYSTEM, "competitor", on_s)["version"])
    merge(r, admin, "account", s, l_, take={}, versions=versions())
    assert r.get(SYSTEM, "competitor", on_l)["primary_of"] == s
