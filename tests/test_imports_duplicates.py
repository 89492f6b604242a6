"""Duplicate rules at run time (engine/runtime/imports/duplicates.py): normalisation, the
match keys every write keeps, candidates within the asker's access, batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from engine.runtime.access import SYSTEM
from engine.runtime.imports.duplicates import (
    Candidate,
    find_duplicates,
    find_duplicates_many,
    normalise,
    normalise_email,
    normalise_name,
    normalise_phone,
    refresh_match_keys,
    stale_match_keys,
)
from engine.runtime.schema.tables import MATCH_KEY_TABLE, MATCH_STATE_TABLE
from tests.access_helpers import place, user, write_roles
from tests.conftest import Env, EnvFactory, shipped_model

# -- normalisation ---------------------------------------------------------------------------

ONE_COMPANY = [
    ["上海电气集团股份有限公司", "上海电气\uff08集团\uff09", "上海 电气", "上海电气有限公司",
     "上海电气集团", "  上海电气  ", "上海电气(集团)有限责任公司"],
    ["ACME Co., Ltd.", "Acme Inc.", "acme", "\uff21\uff23\uff2d\uff25", "Acme GmbH",
     "ACME Corp", "Acme LLC", "A.C.M.E.", "Acme, Inc", "acme co ltd", "Acme Limited"],
    ["西门子\uff08中国\uff09有限公司", "西门子", "西门子(中国)", "西门子有限公司"],
    ["Huawei Technologies Co., Ltd.", "HUAWEI TECHNOLOGIES", "huawei-technologies"],
]


@pytest.mark.parametrize("names", ONE_COMPANY, ids=[n[0] for n in ONE_COMPANY])
def test_spellings_of_one_company_match(names: list[str]) -> None:
    assert len({normalise_name(n) for n in names}) == 1, [normalise_name(n) for n in names]


@pytest.mark.parametrize(("a", "b"), [
    ("Acme", "Acme Tools"), ("上海电气", "上海电力"), ("Costco", "Cost"),
    ("华为技术有限公司", "华为有限公司"), ("Alpha Co", "Beta Co"), ("ABC", "ABD"),
    ("Limited", "Ltd"), ("有限公司", "公司"),
])
def test_different_companies_do_not_match(a: str, b: str) -> None:
    assert normalise_name(a) != normalise_name(b)


def test_a_name_that_is_only_a_suffix_stays_a_name() -> None:
    assert normalise_name("Limited") == "limited"
    assert normalise_name("有限公司") == "有限公司"
    assert normalise_name("Co Inc") == "co"


@pytest.mark.parametrize(("numbers", "digits"), [
    (["+86 21 6234 5678", "0086-21-62345678", "021-62345678", "(021) 6234 5678",
      "\uff12\uff11\uff16\uff12\uff13\uff14\uff15\uff16\uff17\uff18"], "2162345678"),
    (["+86 138 0013 8000", "13800138000", "138-0013-8000", "008613800138000"], "13800138000"),
    (["+49 30 1234567", "0049 30 1234567", "+49 (0)30 1234567".replace("(0)", "")],
     "49301234567"),
])
def test_phone_numbers(numbers: list[str], digits: str) -> None:
    assert {normalise_phone(n) for n in numbers} == {digits}


def test_a_local_number_starting_86_keeps_it() -> None:
    assert normalise_phone("8621 3456") == "86213456"


def test_emails_compare_lower_cased() -> None:
    assert normalise_email("  Li.Wei@Example.COM ") == "li.wei@example.com"


def test_other_types_compare_typed_values_and_blanks_match_nothing() -> None:
    account = shipped_model().entity("account")
    assert normalise(account.field("employees"), 12) == "12"
    assert normalise(account.field("parent"), 7) == "7"
    assert normalise(account.field("name"), "") is None
    assert normalise(account.field("name"), None) is None
    assert normalise(account.field("phone"), "n/a") is None  # no digits


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_normalising_a_name_twice_changes_nothing(text: str) -> None:
    once = normalise_name(text)
    assert normalise_name(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789+-() \uff10\uff11\uff18\uff16", max_size=24))
def test_normalising_a_phone_twice_changes_nothing(text: str) -> None:
    once = normalise_phone(text)
    assert normalise_phone(once) == once


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["", " ", "  ", "\u3000", "-", ".", ",", "(", ")", "\uff08", "\uff09"]),
       st.sampled_from(["Co., Ltd.", "Inc.", "LLC", "GmbH", "有限公司", "股份有限公司",
                        "有限责任公司", "集团", "\uff08中国\uff09有限公司", "Corp.", ""]),
       st.sampled_from(["Acme", "ACME", "\uff41\uff43\uff4d\uff45", "acme"]))
def test_suffix_and_spacing_variants_match(space: str, suffix: str, name: str) -> None:
    if not space and suffix[:1].isascii():
        space = " "  # "AcmeCo" is one word: only a Chinese suffix comes off unspaced
    assert normalise_name(f"{name}{space}{suffix}") == normalise_name("Acme")


# -- match keys and candidates (both databases) -----------------------------------------------


def _keys(env: Env, entity: str | None = None) -> list[tuple[str, int, str]]:
    table = env.records.schema.table(MATCH_KEY_TABLE)
    stmt = select(table.c.entity, table.c.record_id, table.c.rule).order_by(
        table.c.entity, table.c.record_id, table.c.rule)
    if entity is not None:
        stmt = stmt.where(table.c.entity == entity)
    with env.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]  # type: ignore[misc]


def _find(env: Env, values: dict[str, Any], actor: Any = SYSTEM, entity: str = "account",
          **kw: Any) -> list[Candidate]:
    with env.engine.connect() as conn:
        return find_duplicates(conn, env.records, actor, entity, values, **kw)


def test_writes_keep_the_match_keys(env: Env) -> None:
    r = env.records
    a = r.create(SYSTEM, "account", {"name": "上海电气集团股份有限公司", "city": "上海",
                                     "phone": "021-62345678"})
    b = r.create(SYSTEM, "account", {"name": "Acme Ltd"})  # no city, no phone: no key
    assert _keys(env, "account") == [("account", a["id"], "name,city"),
                                     ("account", a["id"], "phone")]
    r.update(SYSTEM, "account", b["id"], {"city": "Berlin"}, b["version"])
    assert ("account", b["id"], "name,city") in _keys(env, "account")
    a = r.update(SYSTEM, "account", a["id"], {"phone": None}, a["version"])
    assert ("account", a["id"], "phone") not in _keys(env, "account")
    r.update(SYSTEM, "account", a["id"], {"industry": "energy"}, a["version"])  # not a rule's
    r.delete(SYSTEM, "account", a["id"])
    assert ("account", a["id"], "name,city") in _keys(env, "account")  # kept in the bin
    r.purge(SYSTEM, "account", a["id"])
    assert [k for k in _keys(env) if k[1] == a["id"] and k[0] == "account"] == []


def test_candidates_match_by_any_rule(env: Env) -> None:
    r = env.records
    a = r.create(SYSTEM, "account", {"name": "上海电气集团股份有限公司", "city": "上海",
                                     "phone": "021-62345678"})
    other = r.create(SYSTEM, "account", {"name": "上海电气", "city": "北京"})
    assert _find(env, {"name": "上海电气\uff08集团\uff09", "city": "上海"}) == [
        Candidate(a["id"], "上海电气集团股份有限公司", ("name", "city"))]
    assert _find(env, {"name": "Someone else", "phone": "+86 21 6234 5678"}) == [
        Candidate(a["id"], "上海电气集团股份有限公司", ("phone",))]
    # both rules: one candidate, by the first rule that matched
    assert _find(env, {"name": "上海电气", "city": "上海", "phone": "02162345678"}) == [
        Candidate(a["id"], "上海电气集团股份有限公司", ("name", "city"))]
    assert _find(env, {"name": "上海电气"}) == []  # a rule's blank field matches nothing
    assert _find(env, {"name": "上海电气", "city": "北京"}, exclude_id=other["id"]) == []
    assert _find(env, {"name": "上海电气", "city": "北京"}) == [
        Candidate(other["id"], "上海电气", ("name", "city"))]
    # raw input as a form sends it; a value the field refuses is blank
    assert _find(env, {"name": "x", "phone": ""}) == []
    assert _find(env, {"name": "x", "employees": "many", "phone": "021 6234 5678"}) \
        == [Candidate(a["id"], "上海电气集团股份有限公司", ("phone",))]


def test_records_in_the_recycle_bin_are_no_candidates(env: Env) -> None:
    r = env.records
    a = r.create(SYSTEM, "account", {"name": "Acme Co., Ltd.", "city": "Hamburg"})
    r.delete(SYSTEM, "account", a["id"])
    assert _find(env, {"name": "ACME", "city": "hamburg"}) == []
    r.restore(SYSTEM, "account", a["id"])
    assert [c.id for c in _find(env, {"name": "ACME", "city": "hamburg"})] == [a["id"]]


def test_limit_and_order(env: Env) -> None:
    ids = [env.records.create(SYSTEM, "account", {"name": f"Firm {i}", "phone": "010 8888 0000"}
                              )["id"] for i in range(4)]
    assert [c.id for c in _find(env, {"phone": "+86 10 8888 0000"})] == ids
    assert [c.id for c in _find(env, {"phone": "+86 10 8888 0000"}, limit=2)] == ids[:2]


def test_a_rep_never_sees_a_candidate_they_may_not_read(env: Env) -> None:
    ann = user(env, "ann", "partner")
    bob = user(env, "bob", "partner")
    mine = place(env, "account", {"name": "Acme GmbH", "city": "Bonn"}, owner=ann)
    place(env, "account", {"name": "ACME AG", "city": "Köln", "phone": "0221 5555"}, owner=bob)
    assert [c.id for c in _find(env, {"name": "acme", "city": "bonn"}, ann)] == [mine["id"]]
    assert _find(env, {"name": "acme", "city": "bonn"}, bob) == []
    assert _find(env, {"name": "acme", "city": "köln", "phone": "+49 221 5555"}, ann) == []
    with env.engine.connect() as conn:
        assert find_duplicates_many(conn, env.records, ann, "account",
                                    [{"name": "Acme", "city": "Köln"}]) == {}


def test_a_batch_in_a_bounded_number_of_queries(env: Env) -> None:
    r = env.records
    a = r.create(SYSTEM, "contact", {"full_name": "李伟", "account": r.create(
        SYSTEM, "account", {"name": "Acme"})["id"], "email": "li.wei@acme.cn"})
    rows: list[dict[str, Any]] = [{"full_name": f"P{i}", "email": f"p{i}@x.cn"}
                                  for i in range(1200)]
    rows[5] = {"full_name": "Li Wei", "email": "LI.WEI@ACME.CN"}
    rows[700] = {"full_name": "王芳", "phone": "138 0013 8000"}
    rows[900] = {"full_name": "王芳", "phone": "+86 13800138000", "email": "p5@x.cn"}
    statements: list[str] = []
    from sqlalchemy import event

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(env.engine, "before_cursor_execute", count)
    try:
        with env.engine.connect() as conn:
            found = find_duplicates_many(conn, r, SYSTEM, "contact", rows)
    finally:
        event.remove(env.engine, "before_cursor_execute", count)
    assert len([s for s in statements if "crm_match_key" in s]) <= 2 * 3  # rules times chunks
    assert found == {
        5: [Candidate(a["id"], "李伟", ("email",))],
        900: [Candidate(None, "王芳", ("full_name", "phone"), row=700)],
    }
    # a later row matching an earlier one and a stored record
    with env.engine.connect() as conn:
        found = find_duplicates_many(conn, r, SYSTEM, "contact", [
            {"full_name": "A", "email": "li.wei@acme.cn"},
            {"full_name": "B", "email": " Li.Wei@acme.cn"}])
        assert found == {0: [Candidate(a["id"], "李伟", ("email",))],
                         1: [Candidate(a["id"], "李伟", ("email",)),
                             Candidate(None, "A", ("email",), row=0)]}
        assert find_duplicates_many(conn, r, SYSTEM, "contact", [
            {"full_name": "A", "email": "x@y.cn"}, {"full_name": "B", "email": "X@y.cn"}],
            within=False) == {}


def test_bulk_create_keeps_keys(env: Env) -> None:
    result = env.records.bulk_create(SYSTEM, "lead", [
        {"company": f"公司{i}号有限公司", "phone": f"0571-{8000000 + i}"} for i in range(50)])
    assert len(_keys(env, "lead")) == 50
    assert [c.id for c in _find(env, {"company": "公司7号", "phone": "+86 571 8000007"},
                                entity="lead")] == [result.ids[7]]


def test_migrate_computes_the_keys_of_existing_records(env: Env) -> None:
    r = env.records
    ids = [r.create(SYSTEM, "account", {"name": f"Firm {i}", "city": "Xi'an"})["id"]
           for i in range(7)]
    keys = r.schema.table(MATCH_KEY_TABLE)
    with env.engine.begin() as conn:  # as if the rules were new: no keys, no state
        conn.execute(delete(keys))
        conn.execute(delete(r.schema.table(MATCH_STATE_TABLE)))
    assert {e.name for e in stale_match_keys(r)} == {"account", "contact", "lead"}
    assert _find(env, {"name": "firm 3", "city": "xian"}) == []
    assert refresh_match_keys(r, batch=3) == [("account", 7), ("contact", 0), ("lead", 0)]
    assert stale_match_keys(r) == []
    assert [c.id for c in _find(env, {"name": "firm 3", "city": "xian"})] == [ids[3]]
    assert refresh_match_keys(r) == []
    with env.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(keys)).scalar_one() == 7


def test_a_rule_on_a_field_hidden_from_the_asker_is_not_used(make_env: EnvFactory,
                                                             config_dir: Path) -> None:
    """Matching by a field the asker may not see would tell them what it holds."""
    write_roles(config_dir, "roles:\n  admin: {admin: true}\n  clerk:\n    entities:\n"
                "      account: {read: all, create: all}\n    fields:\n"
                "      account: {phone: hidden}\n")
    env = make_env(config_dir)
    clerk = user(env, "clerk", "clerk")
    a = env.records.create(SYSTEM, "account", {"name": "Acme", "city": "Bonn",
                                               "phone": "0228 1234"})
    assert [c.id for c in _find(env, {"phone": "0228-1234"})] == [a["id"]]
    assert _find(env, {"phone": "0228-1234"}, clerk) == []
    assert [(c.id, c.rule) for c in _find(env, {"name": "ACME", "city": "Bonn",
                                                 "phone": "0228-1234"}, clerk)] \
        == [(a["id"], ("name", "city"))]
