"""Unique values (engine/runtime/records/unique.py): one value whatever its Unicode spelling,
names compared ignoring case, and a clash that tells nothing of a record the writer cannot
see. SQLite and PostgreSQL."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.runtime.errors import Invalid
from tests.conftest import Env

CAFE_NFC = "Caf\u00e9 Paris"
CAFE_NFD = "Cafe\u0301 Paris"


def problems(fn: Any, *args: Any) -> dict[str, str]:
    with pytest.raises(Invalid) as info:
        fn(*args)
    return info.value.fields


def test_text_is_stored_in_nfc(env: Env) -> None:
    admin = env.admin.actor()
    row = env.records.create(admin, "account", {"name": CAFE_NFD})
    assert row["name"] == CAFE_NFC
    t = env.records.compiled("account").table
    with env.engine.connect() as conn:
        assert conn.execute(select(t.c.name).where(t.c.id == row["id"])).scalar() == CAFE_NFC
    # A filter typed either way finds it.
    from engine.runtime.records.query import parse_list_params

    entity = env.records.compiled("account").entity
    for typed in (CAFE_NFC, CAFE_NFD):
        page = env.records.list_records(admin, "account",
                                        parse_list_params(entity, {"name": typed}))
        assert [r["id"] for r in page.items] == [row["id"]]


def test_a_name_written_with_a_combining_accent_is_the_same_name(env: Env) -> None:
    admin = env.admin.actor()
    env.records.create(admin, "account", {"name": CAFE_NFC})
    assert problems(env.records.create, admin, "account", {"name": CAFE_NFD}) == \
        {"name": f"{CAFE_NFD} is already used".replace(CAFE_NFD, CAFE_NFC)}


@pytest.mark.parametrize(("first", "second"), [
    ("Acme", "ACME"), ("acme gmbh", "Acme GmbH"), ("Café Paris", "CAFÉ PARIS"),
    ("Ölwerk", "ÖLWERK"), ("Σίσυφος", "ΣΊΣΥΦΟΣ")])
def test_names_compare_ignoring_case(env: Env, first: str, second: str) -> None:
    admin = env.admin.actor()
    kept = env.records.create(admin, "account", {"name": first})
    assert problems(env.records.create, admin, "account", {"name": second}) == \
        {"name": f"{second} is already used"}
    other = env.records.create(admin, "account", {"name": "Someone else"})
    assert problems(env.records.update, admin, "account", other["id"], {"name": second},
                    other["version"]) == {"name": f"{second} is already used"}
    # The record itself may change the case of its own name.
    renamed = env.records.update(admin, "account", kept["id"], {"name": second},
                                 kept["version"])
    assert renamed["name"] == second


def test_codes_keep_their_case(env: Env) -> None:
    """Only names ignore case: a product code is not the product's name."""
    admin = env.admin.actor()
    env.records.create(admin, "product", {"name": "Pump", "code": "P-1"})
    assert env.records.create(admin, "product", {"name": "Pump 2", "code": "p-1"})["code"] \
        == "p-1"


def test_an_import_compares_names_the_same_way(env: Env) -> None:
    admin = env.admin.actor()
    env.records.create(admin, "account", {"name": "Acme"})
    result = env.records.bulk_create(admin, "account", [
        {"name": "ACME"}, {"name": "Beta"}, {"name": "BETA"}, {"name": CAFE_NFD},
        {"name": CAFE_NFC.upper()}])
    problems_by_row = dict(result.errors)
    assert problems_by_row[0] == {"name": "ACME is already used"}
    assert "appears twice" in problems_by_row[2]["name"]
    assert "appears twice" in problems_by_row[4]["name"]
    assert len(result.ids) == 2


def test_a_clash_with_a_record_the_writer_cannot_see_reveals_nothing(env: Env) -> None:
    """A sales rep without a department sees only their own accounts. A name held by an
    account they cannot see, live or in the recycle bin, answers only that the name is
    taken: no id, no link, not even that the record is in the recycle bin."""
    admin = env.admin.actor()
    live = env.records.create(admin, "account", {"name": "Hidden Live Co"})
    binned = env.records.create(admin, "account", {"name": "Hidden Binned Co"})
    env.records.delete(admin, "account", binned["id"])
    env.users.add("rep", ["sales_rep"])
    http = env.client(env.users.new_token("rep"))
    for name, record in (("hidden live co", live), ("Hidden Binned Co", binned)):
        resp = http.post("/api/account", json={"name": name})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["fields"] == {"name": f"{name} is already used"}
        assert f'{record["id"]}' not in resp.json()["error"]["message"]
        assert "recycle" not in resp.text and "/e/account/" not in resp.text
    # The owner of a binned record they can see is told where it is.
    admin_http = env.client(env.users.new_token("admin"))
    resp = admin_http.post("/api/account", json={"name": "Hidden Binned Co"})
    assert resp.json()["error"]["fields"] == {
        "name": "Hidden Binned Co is already used (by a record in the recycle bin)"}


LETTERS = [c for c in map(chr, [*range(0x41, 0x5B), *range(0x61, 0x7B), *range(0xC0, 0x250),
                                 *range(0x386, 0x3CF)])
           if c.isalpha() and len(c.lower()) == 1 and len(c.upper()) == 1
           and c.upper().lower() == c.lower() and c.lower().upper() == c.upper()]
"""Latin and Greek letters whose case maps one letter to one letter and back (not the
dotless i, U+0131, whose upper case is the I of i)."""


class Accounts:
    """The env of a property test, with a short repr for Hypothesis' reports."""

    def __init__(self, env: Env) -> None:
        self.env = env

    def __repr__(self) -> str:
        return "<accounts>"


@pytest.fixture
def accounts(env: Env) -> Accounts:
    return Accounts(env)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.sampled_from(LETTERS), min_size=1, max_size=12))
def test_any_spelling_of_a_taken_name_is_taken(accounts: Accounts, name: str) -> None:
    """Whatever the letters, the name's NFD spelling and its upper- and lower-case forms
    clash with it once stored."""
    env = accounts.env
    admin = env.admin.actor()
    name = f"H {name}"
    try:
        env.records.create(admin, "account", {"name": name})
    except Invalid as exc:  # taken by an earlier example in another spelling
        assert exc.fields["name"].endswith("is already used"), exc.fields
        return
    for spelling in (unicodedata.normalize("NFD", name), name.upper(), name.lower(),
                     unicodedata.normalize("NFD", name.upper())):
        fields = problems(env.records.create, admin, "account", {"name": spelling})
        assert fields == {"name": f"{unicodedata.normalize('NFC', spelling)} is already "
                                  "used"}, spelling


def test_two_writers_of_one_name_in_two_cases_at_once_leave_one(env: Env) -> None:
    """`Acme` and `ACME` created in two threads, each held just before its INSERT until the
    other has checked too (or has waited long enough: then it is blocked behind the first).
    The unique index only knows exact spellings, so the check must not let both through:
    one is created, the other refused, on both databases."""
    import contextlib
    import threading

    from sqlalchemy import event

    admin = env.admin.actor()
    both_checked = threading.Barrier(2, timeout=3)
    workers: set[int] = set()

    def hold_before_inserting(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() in workers and statement.lstrip().upper().startswith(
                "INSERT INTO ACCOUNT"):
            # Broken barrier: the other writer waits for this one.
            with contextlib.suppress(threading.BrokenBarrierError):
                both_checked.wait()

    outcomes: dict[str, str] = {}

    def create(name: str) -> None:
        workers.add(threading.get_ident())
        try:
            env.records.create(admin, "account", {"name": name})
            outcomes[name] = "ok"
        except Invalid as exc:
            outcomes[name] = exc.fields.get("name", str(exc.fields))

    event.listen(env.engine, "before_cursor_execute", hold_before_inserting)
    try:
        threads = [threading.Thread(target=create, args=(n,)) for n in ("Acme", "ACME")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        event.remove(env.engine, "before_cursor_execute", hold_before_inserting)
    assert sorted(outcomes) == ["ACME", "Acme"], outcomes
    assert sorted(v.endswith("is already used") for v in outcomes.values()) == [False, True] \
        and "ok" in outcomes.values(), outcomes
