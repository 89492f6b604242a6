"""Regarding fields (engine/runtime/records/regarding.py, engine/runtime/schema/regarding.py):
a note or an activity points at the record it concerns, of any entity; the reference is
checked and access-filtered like a reference. Through the HTTP API, on SQLite and on
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select
from starlette.testclient import TestClient

from engine.fieldtypes import Regarding
from engine.metadata import load_model
from engine.metadata.errors import ConfigErrors
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.errors import Conflict
from engine.runtime.records import secure
from engine.runtime.records.query import Condition
from engine.runtime.schema.apply import apply_plan
from engine.runtime.schema.plan import plan_schema
from tests.access_helpers import user, write_roles
from tests.conftest import Env, EnvFactory
from tests.web_helpers import csrf_of, sign_in

ROLES = """\
roles:
  admin: {admin: true}
  rep:
    entities:
      account: own
      opportunity: own
      activity: own
      note: {create: all, read: all, update: own, delete: own}
      department: {read: all}
"""


@pytest.fixture
def world(make_env: EnvFactory, config_dir: Path) -> dict[str, Any]:
    """An admin, and rep `ann`, who reads only her own accounts but every note; her account
    and one of someone else's."""
    env = make_env(write_roles(config_dir, ROLES))
    ann = user(env, "ann", "rep")
    mine = env.records.create(ann, "account", {"name": "Ann's Acme"})
    theirs = env.records.create(SYSTEM, "account", {"name": "Secret Globex"})
    admin = env.client(env.users.new_token("admin"))
    rep = env.client(env.users.new_token("ann"))
    return {"env": env, "mine": mine["id"], "theirs": theirs["id"], "admin": admin, "rep": rep}


def _note(client: TestClient, target: Any, body: str = "Called about the renewal") -> Any:
    return client.post("/api/note", json={"body": body, "regarding": target})


def test_a_note_points_at_a_record_and_reads_back_with_its_title(
        world: dict[str, Any]) -> None:
    made = _note(world["rep"], {"entity": "account", "id": world["mine"]})
    assert made.status_code == 201, made.text
    assert made.json()["regarding"] == {"entity": "account", "id": world["mine"],
                                        "title": "Ann's Acme"}
    # the form's (and a CSV cell's) text says the same
    again = _note(world["rep"], f"account:{world['mine']}")
    assert again.json()["regarding"]["id"] == world["mine"]
    got = world["rep"].get(f"/api/note/{made.json()['id']}").json()
    assert got["regarding"]["title"] == "Ann's Acme"


def test_two_columns_indexed_together(world: dict[str, Any]) -> None:
    env: Env = world["env"]
    insp = inspect(env.engine)
    columns = {c["name"] for c in insp.get_columns("note")}
    assert {"regarding_entity", "regarding_id"} <= columns and "regarding" not in columns
    assert any(ix["column_names"] == ["regarding_entity", "regarding_id"]
               for ix in insp.get_indexes("note"))


def test_a_missing_and_an_unreadable_target_get_the_same_422(world: dict[str, Any]) -> None:
    """Ann may not read the other account: writing a note about it is refused exactly as a
    note about an account that does not exist, so she cannot learn that it exists."""
    missing = 10**9
    unreadable = _note(world["rep"], {"entity": "account", "id": world["theirs"]})
    nowhere = _note(world["rep"], {"entity": "account", "id": missing})
    assert unreadable.status_code == nowhere.status_code == 422
    assert unreadable.json()["error"]["fields"] == {
        "regarding": f"no account with id {world['theirs']}"}
    assert nowhere.json()["error"]["fields"] == {"regarding": f"no account with id {missing}"}
    # no entity of that name, and one she may not read at all, alike
    assert _note(world["rep"], {"entity": "nosuch", "id": 1}).json()["error"]["fields"] == {
        "regarding": "no nosuch with id 1"}
    assert _note(world["rep"], {"entity": "lead", "id": 1}).status_code == 422
    # the admin may write it: the record is there
    assert _note(world["admin"], {"entity": "account", "id": world["theirs"]}).status_code \
        == 201


def test_a_record_in_the_recycle_bin_is_not_a_target(world: dict[str, Any]) -> None:
    env: Env = world["env"]
    env.records.delete(SYSTEM, "account", world["mine"])
    answer = _note(world["rep"], {"entity": "account", "id": world["mine"]})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"] == {
        "regarding": f"no account with id {world['mine']}"}


def test_an_update_is_checked_too(world: dict[str, Any]) -> None:
    made = _note(world["rep"], {"entity": "account", "id": world["mine"]}).json()
    answer = world["rep"].patch(f"/api/note/{made['id']}", json={
        "version": made["version"], "regarding": {"entity": "account", "id": world["theirs"]}})
    assert answer.status_code == 422
    assert "regarding" in answer.json()["error"]["fields"]


def test_the_title_of_a_target_the_reader_may_not_read_is_null(world: dict[str, Any]) -> None:
    """The admin's note about the other account: Ann reads the note (she reads every note)
    but not the account, so she gets its entity and id and no title, in the record and in
    lists, and the title is nowhere in the answer."""
    made = _note(world["admin"], {"entity": "account", "id": world["theirs"]}).json()
    assert made["regarding"]["title"] == "Secret Globex"
    one = world["rep"].get(f"/api/note/{made['id']}")
    assert one.json()["regarding"] == {"entity": "account", "id": world["theirs"],
                                       "title": None}
    listed = world["rep"].get("/api/note")
    assert listed.status_code == 200
    assert [n["regarding"] for n in listed.json()["items"]] == [
        {"entity": "account", "id": world["theirs"], "title": None}]
    assert "Secret Globex" not in one.text + listed.text


def test_to_limits_the_entities_and_is_checked(make_env: EnvFactory, config_dir: Path) -> None:
    path = config_dir / "entities" / "note.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("regarding: {type: regarding,",
                                 "regarding: {type: regarding, to: [account, opportunity],"),
                    encoding="utf-8")
    env = make_env(config_dir)
    lead = env.records.create(SYSTEM, "lead", {"company": "Initech"})
    api = env.client(env.users.new_token("admin"))
    answer = _note(api, {"entity": "lead", "id": lead["id"]})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"] == {
        "regarding": "cannot point to lead (it may point to account, opportunity)"}


@pytest.mark.parametrize(("to", "expected"), [
    ("[account, acount]", "fields.regarding.to: unknown entity 'acount' (did you mean "
                          "'account'?)"),
    ("account", "fields.regarding.to: a regarding field takes a list of entities"),
])
def test_a_bad_to_is_an_error_at_its_place(config_dir: Path, to: str, expected: str) -> None:
    path = config_dir / "entities" / "note.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("regarding: {type: regarding,",
                                 f"regarding: {{type: regarding, to: {to},"), encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_model(config_dir)
    found = [str(e) for e in info.value.errors]
    line = next((e for e in found if expected in e), None)
    assert line is not None and "entities/note.yaml:" in line, found
    assert line.split(":")[1].isdigit() and line.split(":")[2].isdigit()


def test_a_field_may_not_take_a_regarding_fields_column(config_dir: Path) -> None:
    path = config_dir / "entities" / "note.yaml"
    path.write_text(path.read_text(encoding="utf-8") +
                    "  regarding_id: {type: integer}\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_model(config_dir)
    assert "would share the column of regarding field 'regarding'" in str(info.value)


def test_lists_filter_by_the_record_it_concerns(world: dict[str, Any]) -> None:
    admin: TestClient = world["admin"]
    about_mine = _note(admin, {"entity": "account", "id": world["mine"]}).json()
    _note(admin, {"entity": "account", "id": world["theirs"]})
    env: Env = world["env"]
    env.records.create(SYSTEM, "activity", {"subject": "No one", "kind": "call"})
    found = admin.get("/api/note", params={"regarding": f"account:{world['mine']}"}).json()
    assert [n["id"] for n in found["items"]] == [about_mine["id"]]
    blank = admin.get("/api/activity", params={"regarding__blank": "true"}).json()
    assert [a["subject"] for a in blank["items"]] == ["No one"]
    by_formula = admin.get("/api/activity", params={"filter": "ISBLANK(regarding)"}).json()
    assert by_formula["total"] == 1
    same = admin.get("/api/note", params={
        "filter": f'regarding = "account:{world["mine"]}"'}).json()
    assert [n["id"] for n in same["items"]] == [about_mine["id"]]
    bad = admin.get("/api/note", params={"regarding": "account"})
    assert bad.status_code == 400


def test_a_formula_reads_it_alike_in_python_and_sql(world: dict[str, Any]) -> None:
    env: Env = world["env"]
    made = env.records.create(SYSTEM, "note", {
        "body": "x", "regarding": {"entity": "account", "id": world["mine"]}})
    assert made["regarding"] == Regarding.of("account", world["mine"])
    model = env.model
    from engine.runtime.records.computed import RecordContext
    ctx = RecordContext(model, env.records.schema, None, model.entity("note"), made,
                        env.records.formula_clock)
    blank = env.records.compile_filter("note", "ISBLANK(regarding)")
    assert blank.evaluate(ctx) is False


def test_purging_a_record_a_note_points_at_is_refused(world: dict[str, Any]) -> None:
    env: Env = world["env"]
    note = env.records.create(SYSTEM, "note", {
        "body": "x", "regarding": {"entity": "account", "id": world["theirs"]}})
    env.records.delete(SYSTEM, "note", note["id"])  # in the recycle bin, it still points
    env.records.delete(SYSTEM, "account", world["theirs"])
    with pytest.raises(Conflict):
        env.records.purge(SYSTEM, "account", world["theirs"])
    env.records.purge(SYSTEM, "note", note["id"])
    env.records.purge(SYSTEM, "account", world["theirs"])
    t = env.records.compiled("account").table
    with env.engine.connect() as conn:
        assert conn.execute(select(t.c.id).where(t.c.id == world["theirs"])).first() is None


def test_the_audit_holds_the_value_without_a_title(world: dict[str, Any]) -> None:
    made = _note(world["admin"], {"entity": "account", "id": world["theirs"]}).json()
    history = world["admin"].get(f"/api/note/{made['id']}/history").json()["items"]
    assert {h["field"]: h["new"] for h in history}["regarding"] == {
        "entity": "account", "id": world["theirs"]}


def test_bulk_create_checks_each_target(world: dict[str, Any]) -> None:
    env: Env = world["env"]
    ann = env.users.by_name("ann").actor()
    result = env.records.bulk_create(ann, "note", [
        {"body": "a", "regarding": f"account:{world['mine']}"},
        {"body": "b", "regarding": f"account:{world['theirs']}"}])
    assert result.created == 1
    assert result.errors == [(1, {"regarding": f"no account with id {world['theirs']}"})]


# -- the form's input and the record page -------------------------------------------------

def _page(world: dict[str, Any], name: str, password: str) -> TestClient:
    env: Env = world["env"]
    page = env.client()
    page.headers["Accept"] = "text/html"
    assert sign_in(page, name, password).status_code == 303
    return page


def test_the_form_chooses_a_kind_of_record_then_the_record(world: dict[str, Any]) -> None:
    page = _page(world, "ann", "a-password")
    form = page.get("/e/note/new")
    assert form.status_code == 200
    assert '<input type="hidden" name="regarding" value="">' in form.text
    assert '<option value="account"' in form.text
    assert '<option value="lead"' not in form.text  # she may not read leads
    # the select's change: the widget again, for that kind
    kind = page.get("/e/note/regard/regarding", params={"target": "opportunity"})
    assert kind.status_code == 200 and 'hx-get="/e/note/regard/regarding/opportunity"' in \
        kind.text
    assert page.get("/e/note/regard/regarding", params={"target": "lead"}).status_code == 404
    hits = page.get("/e/note/regard/regarding/account", params={"q": "Acme"}).text
    assert "Ann&#39;s Acme" in hits and "Globex" not in hits
    assert f"/e/note/regard/regarding/account/choose?id={world['mine']}" in hits
    chosen = page.get("/e/note/regard/regarding/account/choose",
                      params={"id": world["mine"]}).text
    assert f'name="regarding" value="account:{world["mine"]}"' in chosen
    assert 'value="Ann&#39;s Acme"' in chosen
    # a record she may not read is not chosen, and its title never shown
    secret = page.get("/e/note/regard/regarding/account/choose",
                      params={"id": world["theirs"]}).text
    assert 'name="regarding" value=""' in secret and "Globex" not in secret
    token = csrf_of(form.text)
    saved = page.post("/e/note/new", data={
        "csrf_token": token, "body": "Lunch with the buyer", "q": "Ann's Acme",
        "target": "account", "regarding": f"account:{world['mine']}"},
        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    note_page = page.get(saved.headers["location"]).text
    assert f'<a href="/e/account/{world["mine"]}">Ann&#39;s Acme</a>' in note_page
    refused = page.post("/e/note/new", data={
        "csrf_token": token, "body": "x", "regarding": f"account:{world['theirs']}"})
    assert refused.status_code == 422
    assert f"no account with id {world['theirs']}" in refused.text


def test_a_page_shows_a_target_the_viewer_may_not_read_without_its_title(
        world: dict[str, Any]) -> None:
    made = _note(world["admin"], {"entity": "account", "id": world["theirs"]}).json()
    page = _page(world, "ann", "a-password")
    shown = page.get(f"/e/note/{made['id']}").text
    assert f"Account #{world['theirs']}" in shown and "Globex" not in shown
    listed = page.get("/e/note").text
    assert "Globex" not in listed
    admin = _page(world, "admin", "admin-password")
    assert "Secret Globex" in admin.get(f"/e/note/{made['id']}").text


def test_a_regarding_field_may_not_be_renamed(config_dir: Path) -> None:
    path = config_dir / "entities" / "note.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "regarding: {type: regarding,", "about: {type: regarding, renamed_from: regarding,"),
        encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_model(config_dir)
    assert "fields.about.renamed_from does not fit a regarding field" in str(info.value)


def test_a_removed_field_keeps_both_columns_and_gets_them_back(
        make_env: EnvFactory, config_dir: Path) -> None:
    env = make_env(config_dir)
    account = env.records.create(SYSTEM, "account", {"name": "Acme"})
    note = env.records.create(SYSTEM, "note", {
        "body": "x", "regarding": {"entity": "account", "id": account["id"]}})
    path = config_dir / "entities" / "note.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text("\n".join(line for line in text.splitlines()
                              if not line.startswith("  regarding:")) + "\n", encoding="utf-8")
    removed = plan_schema(env.engine, load_model(config_dir))
    assert sorted((s.kind, s.column) for s in removed.steps) == [
        ("archive_column", "regarding_entity"), ("archive_column", "regarding_id")]
    apply_plan(env.engine, load_model(config_dir))
    path.write_text(text, encoding="utf-8")
    model = load_model(config_dir)
    back = plan_schema(env.engine, model)
    assert sorted((s.kind, s.column) for s in back.steps) == [
        ("restore_column", "regarding_entity"), ("restore_column", "regarding_id")]
    apply_plan(env.engine, model)
    assert plan_schema(env.engine, model).is_empty
    assert plan_schema(env.engine, model).archived == ()
    records = records_service(env.engine, model)
    assert records.get(SYSTEM, "note", note["id"])["regarding"] == f"account:{account['id']}"


def test_a_filter_by_the_record_reads_the_two_indexed_columns(world: dict[str, Any]) -> None:
    env: Env = world["env"]
    seen = secure.rows(env.records, SYSTEM, "note")
    target = Regarding.of("account", world["mine"])
    eq, ne = seen.conditions([Condition("regarding", "eq", target),
                              Condition("regarding", "ne", target)])
    sql = str(eq.compile(env.engine))
    assert "regarding_entity =" in sql and "regarding_id =" in sql and "||" not in sql
    made = env.records.create(SYSTEM, "note", {"body": "x", "regarding": target})
    other = env.records.create(SYSTEM, "note", {
        "body": "y", "regarding": {"entity": "account", "id": world["theirs"]}})
    t = seen.table
    with env.engine.connect() as conn:
        assert conn.execute(select(t.c.id).where(eq)).scalars().all() == [made["id"]]
        assert conn.execute(select(t.c.id).where(ne)).scalars().all() == [other["id"]]


def test_search_finds_a_note_and_shows_its_target_as_the_viewer_may(
        world: dict[str, Any]) -> None:
    _note(world["admin"], {"entity": "account", "id": world["theirs"]}, "Findable words")
    page = _page(world, "ann", "a-password")
    found = page.get("/search", params={"q": "Findable"})
    assert found.status_code == 200 and "/e/note/" in found.text
    assert f"Account #{world['theirs']}" in found.text and "Globex" not in found.text
