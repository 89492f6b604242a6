"""A record's timeline (engine/runtime/records/timeline.py, engine/web/pages/timeline.py, the
API's /timeline): records about it, its changes and files, and its children's, newest
first, a page at a time, each item access-filtered for the viewer. On SQLite and
PostgreSQL, through HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.records.timeline import decode_cursor, encode_cursor, timeline
from tests.access_helpers import Person, user, write_roles
from tests.conftest import Env, EnvFactory
from tests.web_helpers import page_token, sign_in

ROLES = """\
roles:
  admin: {admin: true}
  rep:
    entities:
      account: {create: own, read: all, update: own}
      opportunity: own
      activity: own
      note: own
      department: {read: all}
    fields:
      opportunity: {amount: hidden}
"""


class World:
    """Ann's account with her opportunity and someone else's; notes and activities about
    them by Ann and by the admin, and changes by both."""

    def __init__(self, env: Env) -> None:
        self.env = env
        r = env.records
        self.ann: Person = user(env, "ann", "rep")
        self.account = r.create(self.ann, "account", {"name": "Acme"})["id"]
        a = {"entity": "account", "id": self.account}
        self.hers = r.create(self.ann, "opportunity", {
            "name": "Ann's deal", "account": self.account})
        self.theirs = r.create(SYSTEM, "opportunity", {
            "name": "Hidden deal", "account": self.account})
        self.her_note = r.create(self.ann, "note", {"body": "Ann's note", "regarding": a})
        self.their_note = r.create(SYSTEM, "note", {"body": "Secret note", "regarding": a})
        self.her_call = r.create(self.ann, "activity", {
            "subject": "Call about Ann's deal", "kind": "call",
            "opportunity": self.hers["id"]})
        self.their_call = r.create(SYSTEM, "activity", {
            "subject": "Secret call", "kind": "call", "opportunity": self.theirs["id"]})
        self.visit = r.create(SYSTEM, "activity", {
            "subject": "Visit", "kind": "visit", "account": self.account})
        # Ann changes her deal's stage, then its amount (hidden from her); the admin the other
        deal = r.update(self.ann, "opportunity", self.hers["id"], {"stage": "qualification"},
                        self.hers["version"])
        r.update(SYSTEM, "opportunity", self.hers["id"], {"amount": 777}, deal["version"])
        r.update(SYSTEM, "opportunity", self.theirs["id"], {"stage": "proposal"},
                 self.theirs["version"])
        self.api_admin = env.client(env.users.new_token("admin"))
        self.api_ann = env.client(env.users.new_token("ann"))

    def items(self, client: TestClient, **params: Any) -> list[dict[str, Any]]:
        answer = client.get(f"/api/account/{self.account}/timeline", params=params)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])


@pytest.fixture
def world(make_env: EnvFactory, config_dir: Path) -> World:
    return World(make_env(write_roles(config_dir, ROLES)))


def _keys(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(i["kind"], i["entity"], i["id"], i.get("action")) for i in items]


def test_the_admin_sees_everything_newest_first(world: World) -> None:
    items = world.items(world.api_admin)
    ats = [i["at"] for i in items]
    assert ats == sorted(ats, reverse=True)
    assert _keys(items) == [
        ("change", "opportunity", world.theirs["id"], "update"),
        ("change", "opportunity", world.hers["id"], "update"),
        ("change", "opportunity", world.hers["id"], "update"),
        ("record", "activity", world.visit["id"], None),
        ("record", "activity", world.their_call["id"], None),
        ("record", "activity", world.her_call["id"], None),
        ("record", "note", world.their_note["id"], None),
        ("record", "note", world.her_note["id"], None),
        ("change", "opportunity", world.theirs["id"], "create"),
        ("change", "opportunity", world.hers["id"], "create"),
        ("change", "account", world.account, "create")]
    first = next(i for i in items if i["kind"] == "change" and i["id"] == world.hers["id"])
    assert first["fields"] == ["amount"] and first["about"] == {
        "entity": "opportunity", "id": world.hers["id"]}
    call = next(i for i in items if i["id"] == world.her_call["id"] and i["kind"] == "record")
    assert call["title"] == "Call about Ann's deal"
    assert call["about"] == {"entity": "opportunity", "id": world.hers["id"]}
    assert "about" not in next(i for i in items if i["id"] == world.visit["id"]
                               and i["entity"] == "activity")


def test_an_item_the_viewer_may_not_read_never_appears(world: World) -> None:
    """Ann reads her own notes, activities and opportunities only, and not an opportunity's
    amount: the admin's note and calls, the other deal's changes and her deal's amount
    change are not in her timeline, nor anywhere in the answer."""
    answer = world.api_ann.get(f"/api/account/{world.account}/timeline")
    items = answer.json()["items"]
    assert _keys(items) == [
        ("change", "opportunity", world.hers["id"], "update"),
        ("record", "activity", world.her_call["id"], None),
        ("record", "note", world.her_note["id"], None),
        ("change", "opportunity", world.hers["id"], "create"),
        ("change", "account", world.account, "create")]
    stage = next(i for i in items if i.get("action") == "update")
    assert stage["fields"] == ["stage"]  # not amount, hidden from her
    for secret in ("Secret note", "Secret call", "Hidden deal", "amount",
                   f'"id":{world.theirs["id"]}'):
        assert secret not in answer.text.replace(" ", "")


def test_pages_follow_each_other_without_gaps_or_repeats(world: World) -> None:
    whole = world.items(world.api_admin)
    seen: list[dict[str, Any]] = []
    before = None
    for _ in range(len(whole)):
        params: dict[str, Any] = {"page_size": 2}
        if before:
            params["before"] = before
        answer = world.api_admin.get(f"/api/account/{world.account}/timeline", params=params)
        body = answer.json()
        assert len(body["items"]) <= 2
        seen += body["items"]
        before = body["next_cursor"]
        if before is None:
            break
    assert _keys(seen) == _keys(whole) and len(whole) == 11


def test_a_bad_cursor_or_page_size_is_400(world: World) -> None:
    base = f"/api/account/{world.account}/timeline"
    bad = world.api_admin.get(base, params={"before": "nonsense!"})
    assert bad.status_code == 400 and "before" in bad.json()["error"]["fields"]
    assert world.api_admin.get(base, params={"page_size": "0"}).status_code == 400
    _, source, key = decode_cursor(encode_cursor(
        world.env.records.clock(), "change", 5))
    assert (source, key) == ("change", 5)


def test_a_record_the_viewer_may_not_read_has_no_timeline(world: World) -> None:
    answer = world.api_ann.get(f"/api/opportunity/{world.theirs['id']}/timeline")
    assert answer.status_code == 404
    assert world.api_ann.get("/api/account/999999/timeline").status_code == 404


def test_a_childs_own_timeline_and_a_record_in_the_recycle_bin(world: World) -> None:
    env = world.env
    deal = timeline(env.records, world.ann, "opportunity", world.hers["id"])
    call = [i for i in deal.items if i.kind == "record"]
    assert [(i.entity, i.record_id, i.about) for i in call] == [
        ("activity", world.her_call["id"], None)]  # about the deal itself
    env.records.delete(world.ann, "note", world.her_note["id"])
    items = world.items(world.api_ann)
    assert ("record", "note", world.her_note["id"], None) not in _keys(items)


def test_attachment_items_are_files_of_the_record_and_its_children(world: World) -> None:
    env = world.env
    if "crm_attachment" not in env.records.schema.metadata.tables:
        pytest.skip("no attachments in this engine")
    t = env.records.schema.table("crm_attachment")
    with env.engine.begin() as conn:
        for entity, rid, name in (("account", world.account, "contract.pdf"),
                                  ("opportunity", world.theirs["id"], "secret.pdf")):
            conn.execute(t.insert().values(
                entity=entity, record_id=rid, field=None, file_name=name,
                content_type="application/pdf", size=1, sha256="0" * 64,
                created_at=env.records.clock(), created_by=None))
        file_id = conn.execute(select(func.min(t.c.id))).scalar_one()
    admin = [i for i in world.items(world.api_admin) if i["kind"] == "file"]
    assert [i["title"] for i in admin] == ["secret.pdf", "contract.pdf"]
    ann = [i for i in world.items(world.api_ann) if i["kind"] == "file"]
    assert [(i["title"], i["file_id"]) for i in ann] == [("contract.pdf", file_id)]


# -- the panel on the record page ---------------------------------------------------------

def _signed_in(world: World) -> TestClient:
    page = world.env.client()
    page.headers["Accept"] = "text/html"
    assert sign_in(page, "ann", "a-password").status_code == 303
    return page


def test_the_detail_page_loads_the_panel_which_shows_what_the_viewer_may_read(
        world: World) -> None:
    page = _signed_in(world)
    base = f"/e/account/{world.account}"
    detail = page.get(base)
    assert f'hx-get="{base}/timeline"' in detail.text
    panel = page.get(f"{base}/timeline", headers={"HX-Request": "true"})
    assert panel.status_code == 200
    assert 'id="timeline"' in panel.text
    assert "Ann&#39;s note" in panel.text and "Call about Ann&#39;s deal" in panel.text
    assert "Secret" not in panel.text and "Hidden deal" not in panel.text
    assert 'name="body"' in panel.text  # she may write notes


def test_the_panel_pages_with_a_more_button(world: World) -> None:
    env = world.env
    for n in range(32):
        env.records.create(world.ann, "note", {
            "body": f"note {n:02d}", "regarding": {"entity": "account", "id": world.account}})
    page = _signed_in(world)
    base = f"/e/account/{world.account}/timeline"
    panel = page.get(base).text
    assert "note 31" in panel and "note 02" in panel and "note 01" not in panel
    more = panel.split('hx-get="')[-1].split('"')[0].replace("&amp;", "&")
    assert more.startswith(base + "?before=")
    rest = page.get(more).text
    assert "note 01" in rest and "note 00" in rest and "note 31" not in rest
    assert 'id="timeline"' not in rest


def test_the_note_box_posts_with_csrf_and_refuses_without(world: World) -> None:
    env = world.env
    page = _signed_in(world)
    url = f"/e/account/{world.account}/notes"

    def notes() -> int:
        t = env.records.compiled("note").table
        with env.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t)).scalar_one())

    before = notes()
    refused = page.post(url, data={"body": "No token"}, follow_redirects=False)
    assert refused.status_code == 403 and notes() == before
    token = page_token(page, f"/e/account/{world.account}")
    sent = page.post(url, data={"body": "Met the CFO", "csrf_token": token},
                     follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].endswith("#timeline")
    assert notes() == before + 1
    swapped = page.post(url, data={"body": "Sent the quote", "csrf_token": token},
                        headers={"HX-Request": "true"})
    assert swapped.status_code == 200 and "Sent the quote" in swapped.text
    blank = page.post(url, data={"body": "  ", "csrf_token": token},
                      headers={"HX-Request": "true"})
    assert blank.status_code == 422 and 'id="timeline-error"' in blank.text
    assert notes() == before + 2
    mine = env.records.get(SYSTEM, "note", _last(env))
    assert mine["regarding"] == f"account:{world.account}"
    assert mine["owner_id"] == world.ann.id


def _last(env: Env) -> int:
    t = env.records.compiled("note").table
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.max(t.c.id))).scalar_one())


def test_no_note_box_for_a_viewer_who_may_not_write_notes(make_env: EnvFactory,
                                                          config_dir: Path) -> None:
    env = make_env(write_roles(config_dir, ROLES.replace("      note: own\n", "")))
    ann = user(env, "ann", "rep")
    account = env.records.create(ann, "account", {"name": "Acme"})["id"]
    page = env.client()
    page.headers["Accept"] = "text/html"
    assert sign_in(page, "ann", "a-password").status_code == 303
    panel = page.get(f"/e/account/{account}/timeline")
    assert panel.status_code == 200 and 'name="body"' not in panel.text
    token = page_token(page, f"/e/account/{account}")
    refused = page.post(f"/e/account/{account}/notes",
                        data={"body": "x", "csrf_token": token}, follow_redirects=False)
    assert refused.status_code == 403
