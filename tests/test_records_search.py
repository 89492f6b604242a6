"""Global search in the records layer (engine/runtime/records/search.py): what matches, in
which order, for whom, and within which bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.runtime.access import SYSTEM
from engine.runtime.errors import BadRequest
from engine.runtime.records.search import MAX_TEXT, search_records, searched_fields
from tests.access_helpers import place, user
from tests.conftest import Env, EnvFactory


def ids(env: Env, entity: str, text: str, **kwargs: object) -> list[int]:
    found = search_records(env.records, SYSTEM, entity, text, **kwargs)  # type: ignore[arg-type]
    assert found is not None
    return [h.id for h in found.hits]


def test_title_and_search_fields_match_other_fields_do_not(env: Env) -> None:
    acme = env.records.create(SYSTEM, "account", {"name": "Acme", "city": "Shanghai"})
    zhang = env.records.create(SYSTEM, "contact", {
        "full_name": "Zhang Wei", "account": acme["id"], "email": "zw@globex.cn",
        "phone": "+86 21 5555 0101", "title": "Shanghai office lead"})
    assert ids(env, "account", "shanghai") == [acme["id"]]  # city: search: true
    assert ids(env, "contact", "GLOBEX") == [zhang["id"]]  # email, any case
    assert ids(env, "contact", "5555 0101") == [zhang["id"]]  # phone, both words
    assert ids(env, "contact", "office") == []  # title (job title) is not searched
    hit = search_records(env.records, SYSTEM, "contact", "globex")
    assert hit is not None and hit.hits[0].matched == "email"
    by_title = search_records(env.records, SYSTEM, "contact", "zhang")
    assert by_title is not None and by_title.hits[0].matched is None


def test_every_word_must_match_some_field(env: Env) -> None:
    a = env.records.create(SYSTEM, "account", {"name": "Acme", "city": "Shanghai"})
    env.records.create(SYSTEM, "account", {"name": "Acme Ltd", "city": "Beijing"})
    assert ids(env, "account", "acme  shanghai") == [a["id"]]
    assert ids(env, "account", "acme tokyo") == []


def test_titles_starting_with_the_text_come_first(env: Env) -> None:
    later = env.records.create(SYSTEM, "account", {"name": "Big Acme"})
    other = env.records.create(SYSTEM, "account", {"name": "Zed", "city": "Acmeville"})
    first = env.records.create(SYSTEM, "account", {"name": "acme works"})
    second = env.records.create(SYSTEM, "account", {"name": "Acme Zeta"})
    assert ids(env, "account", "acme") == [first["id"], second["id"], later["id"], other["id"]]


def test_wildcards_are_plain_text(env: Env) -> None:
    env.records.create(SYSTEM, "account", {"name": "Acme"})
    percent = env.records.create(SYSTEM, "account", {"name": "100% Growth"})
    assert ids(env, "account", "%") == [percent["id"]]
    assert ids(env, "account", "_") == []


def test_deleted_records_are_not_found(env: Env) -> None:
    gone = env.records.create(SYSTEM, "account", {"name": "Acme"})
    env.records.delete(SYSTEM, "account", gone["id"])
    assert ids(env, "account", "acme") == []


def test_pages_are_bounded_and_say_when_there_is_more(env: Env) -> None:
    made = [env.records.create(SYSTEM, "account", {"name": f"Acme {i:02}"})["id"]
            for i in range(5)]
    first = search_records(env.records, SYSTEM, "account", "acme", page_size=2)
    assert first is not None and first.more and [h.id for h in first.hits] == made[:2]
    last = search_records(env.records, SYSTEM, "account", "acme", page_size=2, page=3)
    assert last is not None and not last.more and [h.id for h in last.hits] == made[4:]
    capped = search_records(env.records, SYSTEM, "account", "acme", page_size=10**6)
    assert capped is not None and len(capped.hits) == 5


@pytest.mark.parametrize(("text", "problem"), [
    ("x" * (MAX_TEXT + 1), "too long"), ("a\x00b", "NUL"), ("   ", "Type a word"),
    ("a b c d e f", "at most 5 words")])
def test_bad_text_is_a_clear_400(env: Env, text: str, problem: str) -> None:
    with pytest.raises(BadRequest) as caught:
        search_records(env.records, SYSTEM, "account", text)
    assert caught.value.status == 400 and problem in caught.value.message


def test_only_records_the_actor_may_read(env: Env) -> None:
    rep = user(env, "rep", "sales_rep")
    other = user(env, "other", "sales_rep")
    acme = place(env, "account", {"name": "Acme"})
    mine = place(env, "opportunity", {"name": "Acme renewal", "account": acme["id"]}, owner=rep)
    place(env, "opportunity", {"name": "Acme expansion", "account": acme["id"]}, owner=other)
    found = search_records(env.records, rep, "opportunity", "acme")
    assert found is not None and [h.id for h in found.hits] == [mine["id"]]
    # an entity the role may not read at all is not searched (marketing: no quotes)
    place(env, "quote", {"name": "Acme quote", "account": acme["id"]})
    marketing = user(env, "mkt", "marketing")
    assert search_records(env.records, marketing, "quote", "acme") is None
    assert search_records(env.records, SYSTEM, "quote", "acme") is not None


def test_a_hidden_search_field_is_neither_matched_nor_returned(
        make_env: EnvFactory, config_dir: Path) -> None:
    roles = config_dir / "roles.yaml"
    text = roles.read_text(encoding="utf-8")
    assert "      contact: {birthday: hidden}\n" in text
    roles.write_text(text.replace("      contact: {birthday: hidden}\n",
                                  "      contact: {birthday: hidden, email: hidden}\n"),
                     encoding="utf-8")
    env = make_env(config_dir)
    partner = user(env, "dealer", "partner")
    acme = place(env, "account", {"name": "Acme"})
    zhang = place(env, "contact", {"full_name": "Zhang Wei", "account": acme["id"],
                                   "email": "zw@secret.cn", "phone": "021 5555"},
                  owner=partner)
    hidden = search_records(env.records, partner, "contact", "secret")
    assert hidden is not None and hidden.hits == ()
    by_phone = search_records(env.records, partner, "contact", "5555", context=["email"])
    assert by_phone is not None and [h.id for h in by_phone.hits] == [zhang["id"]]
    assert "email" not in by_phone.hits[0].row and by_phone.hits[0].matched == "phone"
    assert "email" in [f.name for f in searched_fields(env.model.entity("contact"))]
