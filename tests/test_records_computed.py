"""Formulas in the records service: computed fields read from SQL, validation rules,
formula defaults, and sorting and filtering on computed fields; SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from engine.metadata import load_model
from engine.runtime.errors import BadRequest, Invalid
from engine.runtime.records.computed import value_rounder
from engine.runtime.records.query import parse_list_params
from engine.runtime.schema import apply_plan, plan_schema
from engine.types import DECIMAL_SHAPES, FieldType
from tests.access_helpers import add_fields
from tests.conftest import Env, EnvFactory, replace_roles, write_settings

DEAL = """entity: deal
fields:
  name: {type: text}
  account: {type: reference, to: account}
  amount: {type: money}
  stage: {type: choice, options: [open, won, lost]}
  headroom: {type: money, formula: 'account.credit_limit - amount'}
  parent_limit: {type: money, formula: 'account.parent.credit_limit'}
  double_headroom: {type: money, formula: 'headroom * 2'}
  follow_up: {type: date, default: "=TODAY() + 30"}
  code: {type: text, default: '="D-" & TEXT(amount)'}
  moved: {type: boolean, formula: 'ISCHANGED(stage)'}
  team: {type: text, formula: 'department.name & "/" & TEXT(ISBLANK(owner))'}
  days_left: {type: integer, formula: 'DAYS(follow_up, TODAY())'}
  days_left_twice: {type: integer, formula: 'days_left * 2'}
validations:
  - rule: 'OR(NOT(ISCHANGED(stage)), PRIORVALUE(stage) <> "won")'
    message: {en: A won deal stays won, zh: 赢单不可更改}
  - rule: 'OR(ISBLANK(amount), ISBLANK(account), amount <= account.credit_limit)'
    message: Amount is above the credit limit
"""
NOW = datetime(2024, 2, 29, 13, 45, 30, tzinfo=UTC)


@pytest.fixture
def deal_env(make_env: EnvFactory, config_dir: Path) -> Env:
    (config_dir / "entities" / "deal.yaml").write_text(DEAL, encoding="utf-8")
    env = make_env(config_dir)
    env.records.clock = lambda: NOW
    return env


def opp(env: Env, **values: Any) -> dict[str, Any]:
    actor = env.admin.actor()
    account = env.records.create(actor, "account", {"name": f"Acme {uuid.uuid4().hex}"})
    return env.records.create(actor, "opportunity", {"account": account["id"], **values})


def test_computed_values_come_back_typed(env: Env) -> None:
    row = opp(env, name="a", amount="1000", stage="proposal", budget="confirmed",
              authority="influencer", need="none", timeline="this_year")
    assert (row["probability"], row["weighted"], row["score"]) == (
        Decimal("50.0000"), Decimal("500.00"), 50)
    got = env.records.get(env.admin.actor(), "opportunity", row["id"])
    assert (got["probability"], got["weighted"], got["score"]) == (
        Decimal("50.0000"), Decimal("500.00"), 50)
    blank = opp(env, name="b", stage="won")
    assert (blank["probability"], blank["weighted"], blank["score"]) == (
        Decimal("100.0000"), None, 0)


def test_writing_a_computed_field_is_refused(env: Env) -> None:
    with pytest.raises(Invalid) as info:
        opp(env, name="a", weighted="5")
    assert info.value.fields == {"weighted": "is computed and cannot be written"}


def test_lost_needs_a_reason(env: Env) -> None:
    with pytest.raises(Invalid) as info:
        opp(env, name="a", stage="lost")
    # the rule names its field (`field: lost_reason`), so its message stands beside it
    assert info.value.fields == {"lost_reason": "A lost opportunity needs a lost reason"}
    row = opp(env, name="b", stage="negotiation")
    with pytest.raises(Invalid) as info:
        env.records.update(env.admin.actor(), "opportunity", row["id"], {"stage": "lost"}, 1)
    assert info.value.fields == {"lost_reason": "A lost opportunity needs a lost reason"}
    done = env.records.update(env.admin.actor(), "opportunity", row["id"],
                              {"stage": "lost", "lost_reason": "price"}, 1)
    assert (done["stage"], done["probability"]) == ("lost", Decimal("0.0000"))


def test_a_required_field_is_filled_by_its_formula_default_first(
        make_env: EnvFactory, config_dir: Path) -> None:
    add_fields(config_dir, "opportunity",
               "checked_on: {type: date, required: true, default: '=TODAY()'}",
               "size: {type: text, required: true, "
               "default: '=IF(amount > 100, \"big\", BLANK())'}")
    env = make_env(config_dir)
    env.records.clock = lambda: NOW
    big = opp(env, name="a", amount="500")
    assert (big["checked_on"], big["size"]) == (date(2024, 2, 29), "big")
    # a default that gives nothing leaves the field blank: required says so
    with pytest.raises(Invalid) as info:
        opp(env, name="b", amount="5")
    assert info.value.fields == {"size": "is required"}
    with pytest.raises(Invalid) as info:  # given blank, the default does not run
        opp(env, name="c", amount="500", checked_on="")
    assert info.value.fields == {"checked_on": "is required"}
    account = env.records.create(env.admin.actor(), "account", {"name": "Bulk"})
    result = env.records.bulk_create(env.admin.actor(), "opportunity", [
        {"name": "d", "account": account["id"], "amount": "500"},
        {"name": "e", "account": account["id"], "amount": "5"}])
    assert (result.created, result.errors) == (1, [(1, {"size": "is required"})])


def test_sort_and_filter_on_computed_fields(env: Env) -> None:
    for name, amount, stage in [("a", "1000", "proposal"), ("b", "600", "negotiation"),
                                ("c", "2000", "prospecting"), ("d", None, "won")]:
        opp(env, name=name, amount=amount, stage=stage)
    entity = env.model.entity("opportunity")
    actor = env.admin.actor()

    def names(**params: str) -> list[str]:
        page = env.records.list_records(actor, "opportunity",
                                        parse_list_params(entity, params))
        return [r["name"] for r in page.items]

    assert names(sort="-weighted") == ["a", "b", "c", "d"]
    assert names(sort="weighted") == ["d", "c", "b", "a"]
    assert names(weighted__gt="400") == ["a", "b"]
    assert names(probability="80") == ["b"]
    # keyset pages over a computed sort key
    first = env.records.list_records(actor, "opportunity", parse_list_params(
        entity, {"sort": "-weighted", "page_size": "2"}))
    assert [r["name"] for r in first.items] == ["a", "b"]
    assert first.next_cursor is not None
    rest = names(sort="-weighted", page_size="2", cursor=first.next_cursor)
    assert rest == ["c", "d"]


def test_sorting_on_a_computed_field_names_the_selected_column(env: Env) -> None:
    opp(env, name="a", amount="1000", stage="proposal")
    statements: list[str] = []

    def log(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(env.engine, "before_cursor_execute", log)
    try:
        env.records.list_records(env.admin.actor(), "opportunity", parse_list_params(
            env.model.entity("opportunity"), {"sort": "-weighted"}))
    finally:
        event.remove(env.engine, "before_cursor_execute", log)
    listing = next(s for s in statements if " AS weighted" in s)
    order = listing.split("ORDER BY")[1]
    assert order.split(",")[0].strip().startswith("weighted DESC")  # not the formula again
    assert "CASE" not in order


def test_dotted_paths_and_computed_of_computed(deal_env: Env) -> None:
    env, actor = deal_env, deal_env.admin.actor()
    parent = env.records.create(actor, "account", {"name": "Parent", "credit_limit": "9000"})
    account = env.records.create(actor, "account", {"name": "Child", "credit_limit": "1000",
                                                    "parent": parent["id"]})
    row = env.records.create(actor, "deal", {"account": account["id"], "amount": "250.50",
                                             "stage": "open"})
    assert row["headroom"] == Decimal("749.50")
    assert row["double_headroom"] == Decimal("1499.00")
    assert row["parent_limit"] == Decimal("9000.00")
    assert row["follow_up"] == date(2024, 3, 30)
    assert row["code"] == "D-250.5"
    assert row["moved"] is False
    entity = env.model.entity("deal")
    page = env.records.list_records(actor, "deal", parse_list_params(
        entity, {"headroom__lt": "800"}))
    assert [r["id"] for r in page.items] == [row["id"]]
    given_default = env.records.create(actor, "deal", {"follow_up": "2025-01-01",
                                                       "code": "X"})
    assert (given_default["follow_up"], given_default["code"]) == (date(2025, 1, 1), "X")


def test_rules_read_lookups_and_prior_values(deal_env: Env) -> None:
    env, actor = deal_env, deal_env.admin.actor()
    account = env.records.create(actor, "account", {"name": "A", "credit_limit": "100"})
    with pytest.raises(Invalid) as info:
        env.records.create(actor, "deal", {"account": account["id"], "amount": "101"})
    assert info.value.fields == {"_record": "Amount is above the credit limit"}
    row = env.records.create(actor, "deal", {"account": account["id"], "amount": "100",
                                             "stage": "won"})
    with pytest.raises(Invalid) as info:  # the rule reads only stage: the error is stage's
        env.records.update(actor, "deal", row["id"], {"stage": "open"}, 1)
    assert info.value.fields == {"stage": "A won deal stays won"}
    with pytest.raises(Invalid) as info:
        env.records.update(actor, "deal", row["id"], {"amount": "150", "stage": "lost"}, 1)
    assert info.value.fields == {"stage": "A won deal stays won",
                                 "_record": "Amount is above the credit limit"}
    assert env.records.update(actor, "deal", row["id"], {"name": "ok"}, 1)["version"] == 2


def test_computed_field_outside_sql_cannot_be_sorted(deal_env: Env) -> None:
    entity = deal_env.model.entity("deal")
    with pytest.raises(BadRequest) as info:
        parse_list_params(entity, {"sort": "moved"})
    assert info.value.fields == {"sort": "cannot sort on 'moved': ISCHANGED cannot run in "
                                         "the database, so this formula can't be filtered "
                                         "or sorted on"}
    with pytest.raises(BadRequest) as info:
        parse_list_params(entity, {"moved": "true"})
    assert info.value.fields["moved"].startswith("cannot filter on 'moved': ISCHANGED")


def test_bulk_create_applies_defaults_and_rules(deal_env: Env) -> None:
    env, actor = deal_env, deal_env.admin.actor()
    account = env.records.create(actor, "account", {"name": "A", "credit_limit": "100"})
    result = env.records.bulk_create(actor, "deal", [
        {"account": account["id"], "amount": "10"},
        {"account": account["id"], "amount": "500"}])
    assert result.created == 1
    assert result.errors == [(1, {"_record": "Amount is above the credit limit"})]
    row = env.records.get(actor, "deal", result.ids[0])
    assert (row["follow_up"], row["code"]) == (date(2024, 3, 30), "D-10")


def test_field_becoming_computed_archives_its_column(make_env: EnvFactory,
                                                     config_dir: Path) -> None:
    path = config_dir / "entities" / "deal.yaml"
    path.write_text(DEAL.replace("  stage: {type: choice, options: [open, won, lost]}\n",
                                 "  stage: {type: choice, options: [open, won, lost]}\n"
                                 "  note: {type: text}\n"), encoding="utf-8")
    env = make_env(config_dir)
    path.write_text(DEAL.replace("  stage: {type: choice, options: [open, won, lost]}\n",
                                 "  stage: {type: choice, options: [open, won, lost]}\n"
                                 "  note: {type: text, formula: 'UPPER(stage)'}\n"),
                    encoding="utf-8")
    model = load_model(config_dir)
    plan = plan_schema(env.engine, model)
    assert [(s.kind, s.table, s.column) for s in plan.steps] == [
        ("archive_column", "deal", "note")]
    apply_plan(env.engine, model)
    assert plan_schema(env.engine, model).steps == ()


money = st.one_of(st.none(), st.decimals(min_value=0, max_value=10**9, places=2,
                                         allow_nan=False, allow_infinity=False))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=money,
       stage=st.sampled_from(["prospecting", "qualification", "proposal", "negotiation",
                              "won", "lost"]),
       budget=st.sampled_from([None, "confirmed", "estimated", "unknown"]),
       authority=st.sampled_from([None, "decision_maker", "influencer", "unknown"]),
       need=st.sampled_from([None, "urgent", "planned", "none"]),
       timeline=st.sampled_from([None, "this_quarter", "this_year", "later"]))
def test_python_and_sql_agree_on_shipped_formulas(
        env: Env, amount: Decimal | None, stage: str, budget: str | None,
        authority: str | None, need: str | None, timeline: str | None) -> None:
    row = opp(env, name=f"p{amount}{stage}{budget}{authority}{need}{timeline}",
              amount=amount, stage=stage, budget=budget, authority=authority, need=need,
              timeline=timeline, lost_reason="price" if stage == "lost" else None)
    records, actor = env.records, env.admin.actor()
    c = records.compiled("opportunity")
    ctx = records.record_context(None, c, row)
    computed = [f for f in env.model.entity("opportunity").fields if f.computed]
    assert {f.name for f in computed} == {"probability", "forecast_category", "weighted", "score",
                                          "evaluation_score"}
    for f in computed:
        assert row[f.name] == ctx.get((f.name,)), f.name
    assert records.get(actor, "opportunity", row["id"]) == row


def test_update_without_changes_returns_computed_lookups(deal_env: Env) -> None:
    env, actor = deal_env, deal_env.admin.actor()
    account = env.records.create(actor, "account", {"name": "A", "credit_limit": "100"})
    row = env.records.create(actor, "deal", {"account": account["id"], "amount": "40"})
    same = env.records.update(actor, "deal", row["id"], {"amount": "40"}, 1)
    assert (same["version"], same["headroom"]) == (1, Decimal("60.00"))


def test_owner_and_department_aliases(deal_env: Env) -> None:
    env = deal_env
    sales = env.records.create(env.admin.actor(), "department", {"name": "Sales"})
    bob = env.users.add("bob", ["admin"], department_id=sales["id"])
    row = env.records.create(bob.actor(), "deal", {"name": "x"})
    assert row["team"] == "Sales/FALSE"
    c = env.records.compiled("deal")
    with env.engine.connect() as conn:
        assert env.records.record_context(conn, c, row).get(("team",)) == "Sales/FALSE"
    other = env.records.create(env.admin.actor(), "deal", {"name": "y"})
    assert other["team"] == "/FALSE"
    query = parse_list_params(env.model.entity("deal"), {}, frozenset())
    found = env.records.list_records(env.admin.actor(), "deal", replace(
        query, filter=env.records.compile_filter("deal", 'department.name = "Sales"')))
    assert [r["id"] for r in found.items] == [row["id"]]


def test_computed_fields_that_read_the_clock_follow_it(deal_env: Env) -> None:
    """Expressions are reused between queries, but never those that read TODAY or NOW."""
    actor = deal_env.admin.actor()
    deal = deal_env.records.create(actor, "deal", {"name": "clocked"})
    assert deal_env.records.get(actor, "deal", deal["id"])["days_left"] == 30
    later = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)
    deal_env.records.clock = lambda: later
    again = deal_env.records.get(actor, "deal", deal["id"])
    assert (again["days_left"], again["days_left_twice"]) == (20, 40)
    query = parse_list_params(deal_env.model.entity("deal"), {"days_left__lte": "20"})
    assert [r["id"] for r in deal_env.records.list_records(actor, "deal", query).items] \
        == [deal["id"]]


def test_today_is_the_date_in_the_organisations_time_zone_in_python_and_sql(
        make_env: EnvFactory, config_dir: Path) -> None:
    """settings.yaml time_zone: Asia/Shanghai. At 23:30 UTC on February 29 it is 07:30 on
    March 1 there: TODAY() is March 1 in a default formula (Python), a
    computed field and a filter (SQL) and the form's preview (Python) alike."""
    (config_dir / "entities" / "deal.yaml").write_text(DEAL, encoding="utf-8")
    write_settings(config_dir, "currency: CNY\ntime_zone: Asia/Shanghai\n")
    env = make_env(config_dir)
    records, actor = env.records, env.admin.actor()
    records.clock = lambda: datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    deal = records.create(actor, "deal", {"name": "early"})
    assert deal["follow_up"] == date(2024, 3, 31)  # TODAY() + 30, in Python
    stored = records.get(actor, "deal", deal["id"])
    assert stored["days_left"] == 30  # DAYS(follow_up, TODAY()), in SQL
    with records.reading() as conn:
        ctx = records.record_context(conn, records.compiled("deal"), dict(stored),
                                     prior=stored, reader=actor)
        assert ctx.get(("days_left",)) == 30  # the same formula in Python
    query = parse_list_params(env.model.entity("deal"), {"days_left": "30"})
    assert [r["id"] for r in records.list_records(actor, "deal", query).items] == [deal["id"]]
    # a minute before midnight there it is still February 29, in both
    records.clock = lambda: datetime(2024, 2, 29, 15, 59, tzinfo=UTC)
    stored = records.get(actor, "deal", deal["id"])
    assert stored["days_left"] == 31
    with records.reading() as conn:
        ctx = records.record_context(conn, records.compiled("deal"), dict(stored),
                                     prior=stored, reader=actor)
        assert ctx.get(("days_left",)) == 31
    assert records.create(actor, "deal", {"name": "late"})["follow_up"] == date(2024, 3, 30)


# -- a computed field never reads a record its reader cannot see ----------------------------

DEALER_ROLES = """\
roles:
  admin: {admin: true}
  dealer:
    entities:
      deal: {create: all, read: all, update: all}
      account: own
      opportunity: {read: all}
      department: {read: all}
"""


def test_lookups_through_a_record_the_reader_cannot_see_are_blank(
        make_env: EnvFactory, config_dir: Path) -> None:
    """A dealer reads every deal but only their own accounts. `headroom` and
    `parent_limit` read the deal's account: on a deal whose account the dealer cannot see
    they are blank for the dealer — in the record, the list, a filter, a condition, a sort,
    the answer to their own update, explain and the record's page — and computed for the
    administrator. SQL (lists, details) and Python (explain) alike."""
    from tests.web_helpers import sign_in

    (config_dir / "entities" / "deal.yaml").write_text(DEAL, encoding="utf-8")
    replace_roles(config_dir, DEALER_ROLES)
    env = make_env(config_dir)
    admin = env.admin.actor()
    dealer_user = env.users.add("dealer", ["dealer"], password="dealer-password")
    dealer = dealer_user.actor()
    parent = env.records.create(admin, "account", {"name": "Parent Co",
                                                   "credit_limit": "7777.00"})
    secret = env.records.create(admin, "account", {"name": "Secret Co", "parent": parent["id"],
                                                   "credit_limit": "5555.00"})
    mine = env.records.create(dealer, "account", {"name": "Mine", "credit_limit": "300.00"})
    hidden = env.records.create(admin, "deal", {"name": "on secret", "account": secret["id"],
                                                "amount": "100.00"})
    shown = env.records.create(admin, "deal", {"name": "on mine", "account": mine["id"],
                                               "amount": "10.00"})
    assert hidden["headroom"] == Decimal("5455.00")  # the administrator sees every account
    assert env.records.get(admin, "deal", hidden["id"])["parent_limit"] == Decimal("7777.00")

    api = env.client(env.users.new_token("dealer"))
    secrets = ("5455", "5555", "7777", "10910")

    def listed(**params: str) -> list[str]:
        resp = api.get("/api/deal", params=params)
        assert resp.status_code == 200, resp.text
        assert not any(s in resp.text for s in secrets), resp.text
        return [r["name"] for r in resp.json()["items"]]

    one = api.get(f"/api/deal/{hidden['id']}")
    assert (one.json()["headroom"], one.json()["parent_limit"]) == (None, None), one.text
    assert api.get(f"/api/deal/{shown['id']}").json()["headroom"] == "290.00"
    assert listed(sort="name") == ["on mine", "on secret"]
    assert listed(sort="-headroom") == ["on mine", "on secret"]  # a blank is the smallest
    assert listed(filter="headroom > 1000") == []
    assert listed(headroom__gt="1000") == []
    assert listed(filter="ISBLANK(headroom)") == ["on secret"]
    assert listed(parent_limit__blank="false") == []
    patched = api.patch(f"/api/deal/{hidden['id']}",
                        json={"version": hidden["version"], "name": "renamed"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["headroom"] is None and not any(s in patched.text for s in secrets)
    explained = api.get(f"/api/deal/{hidden['id']}/explain/headroom")
    assert explained.status_code < 500 and not any(s in explained.text for s in secrets)
    # Python reads the record as the dealer does too (the explanation of a sum's terms).
    with env.engine.connect() as conn:
        row = env.records.fetch(conn, dealer, env.records.compiled("deal"), hidden["id"])
        ctx = env.records.record_context(conn, env.records.compiled("deal"), row,
                                         reader=dealer)
        assert ctx.get(("account", "credit_limit")) is None
        assert ctx.get(("headroom",)) is None
    # And the record's page.
    pages = env.client()
    assert sign_in(pages, "dealer", "dealer-password").status_code == 303
    for url in (f"/e/deal/{hidden['id']}", f"/e/deal/{hidden['id']}/edit"):
        page = pages.get(url)
        assert page.status_code == 200 and not any(
            s in page.text.replace(",", "") for s in secrets), (url, page.text)


def test_only_formulas_reading_other_records_are_built_per_reader(
        make_env: EnvFactory, config_dir: Path) -> None:
    """The SQL of a computed field is built once and shared; only one that reads another
    record (`headroom`: account.credit_limit) differs per reader, so many users do not
    multiply the cache by every computed field."""
    (config_dir / "entities" / "deal.yaml").write_text(DEAL, encoding="utf-8")
    replace_roles(config_dir, DEALER_ROLES)
    env = make_env(config_dir)
    readers = [env.users.add(f"dealer{i}", ["dealer"]).actor() for i in range(3)]
    for reader in readers:
        for entity in ("deal", "opportunity"):
            env.records.list_records(reader, entity,
                                     parse_list_params(env.model.entity(entity), {}))

    def built(entity: str, name: str) -> int:
        return len([k for k in env.records._sql_cache if k[1:] == (entity, name)])

    assert built("opportunity", "weighted") == built("opportunity", "score") == 1
    assert built("deal", "headroom") == built("deal", "double_headroom") == len(readers)
    assert built("deal", "days_left") == 0  # reads the clock: built per query


def _rounded_once(kind: FieldType, value: Any) -> Any:
    """field_value as it was written before value_rounder: everything worked out per call."""
    if value is None or not isinstance(value, (Decimal, int)) or isinstance(value, bool):
        return value
    places = 0 if kind is FieldType.INTEGER else DECIMAL_SHAPES.get(kind, (0, None))[1]
    if places is None:
        return value
    try:
        out = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None
    return int(out) if kind is FieldType.INTEGER else out


@given(st.sampled_from(list(FieldType)),
       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3),
                 st.decimals(allow_nan=False, allow_infinity=False)))
def test_value_rounder_rounds_as_field_value_did(kind: FieldType, value: Any) -> None:
    assert value_rounder(kind)(value) == _rounded_once(kind, value)
    assert type(value_rounder(kind)(value)) is type(_rounded_once(kind, value))
