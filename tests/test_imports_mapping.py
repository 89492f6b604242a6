"""Import mapping (engine/runtime/imports/mapping.py): headers to fields by name or label in
English and Chinese, mapping files with positions in their errors, the mapping's checks, and
rows coerced with the forms' rules plus option labels and references."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.metadata.errors import ConfigErrors
from engine.runtime.errors import Invalid
from engine.runtime.imports.mapping import (
    ERRORS_COLUMN,
    ColumnMap,
    RowCoercer,
    check_mapping,
    dump_mapping,
    guess_mapping,
    header_key,
    load_mapping,
    writable_fields,
)
from tests.conftest import Env, shipped_model

MODEL = shipped_model()
ACCOUNT = MODEL.entity("account")


def account_writable() -> frozenset[str]:
    from engine.runtime.imports.mapping import importable
    return frozenset(f.name for f in ACCOUNT.fields if importable(f))


def test_header_key_ignores_case_width_spaces_punctuation_and_the_required_mark() -> None:
    assert header_key("*客户名称") == header_key("客户名称") == header_key(" 客户 名称 ")
    assert header_key("Account Name") == header_key("account_name") == header_key("ACCOUNT-NAME")
    assert header_key("\uff21ccount name") == header_key("Account name")  # full-width A
    assert header_key("客户名称\uff1a") == header_key("客户名称")  # full-width colon


def test_guess_by_name_and_labels_in_both_languages() -> None:
    headers = ["*客户名称", "Industry", "客户级别", "annual_revenue", "城市", "Tax ID",
               "Employees (人)", "年营业额（元）", "Unknown column", ERRORS_COLUMN,
               "Open deals", "balance", "上级客户"]
    guessed = guess_mapping(MODEL, "account", headers, writable=account_writable())
    assert guessed.entity == "account"
    assert guessed.columns == {
        "*客户名称": "name", "Industry": "industry", "客户级别": "tier",
        "annual_revenue": "annual_revenue", "城市": "city", "Tax ID": "tax_id",
        "Employees (人)": "employees",
        "年营业额（元）": None,  # annual_revenue is taken by an earlier column
        "Unknown column": None, ERRORS_COLUMN: None,
        "Open deals": None, "balance": None,  # a rollup and a formula are not imported
        "上级客户": "parent",
    }


def test_guess_leaves_out_fields_the_importer_may_not_write() -> None:
    guessed = guess_mapping(MODEL, ACCOUNT, ["客户名称", "信用额度"],
                            writable={"name"})
    assert guessed.columns == {"客户名称": "name", "信用额度": None}


def test_mapping_file_round_trip(tmp_path: Path) -> None:
    mapping = ColumnMap({"客户名称": "name", "备注": None, "城市": "city"}, "account", "name")
    path = tmp_path / "m.yaml"
    dump_mapping(mapping, path)
    loaded = load_mapping(path, MODEL)
    assert (loaded.entity, loaded.columns, loaded.key) == \
        ("account", mapping.columns, "name")
    assert list(loaded.columns) == ["客户名称", "备注", "城市"]


def test_mapping_file_errors_have_positions(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("entity: account\ncolumns:\n  客户名称: nmae\n  城市: [city]\n"
                    "keys: name\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_mapping(path, MODEL)
    text = str(info.value)
    assert f"{path}:3:9: columns.客户名称: account has no field 'nmae' (did you mean 'name'?)" \
        in text
    assert f"{path}:4:7: columns.城市: a field name or null" in text
    assert f"{path}:5:1: unknown key 'keys' (did you mean 'key'?)" in text
    path.write_text("entity: acount\ncolumns: {a: name}\n", encoding="utf-8")
    with pytest.raises(ConfigErrors, match=r"bad\.yaml:1:9: entity: unknown entity 'acount'"):
        load_mapping(path, MODEL)
    path.write_text("entity: account\ncolumns: {a: name\n", encoding="utf-8")
    with pytest.raises(ConfigErrors, match=r"bad\.yaml:\d+:\d+: "):
        load_mapping(path, MODEL)


def test_check_mapping_names_columns_and_fields() -> None:
    writable = account_writable() - {"credit_limit"}
    headers = ["客户名称", "城市", "地址", "额度", "Balance", "x"]
    bad = ColumnMap({"客户名称": "city", "城市": "city", "额度": "credit_limit",
                     "Balance": "balance", "Missing": "phone", "x": "nope"}, "account")
    with pytest.raises(Invalid) as info:
        check_mapping(MODEL, "account", bad, headers, writable)
    fields = info.value.fields
    assert fields["城市"] == "columns 客户名称 and 城市 both go to field City"
    assert fields["额度"].startswith("column 额度: field Credit limit cannot be imported")
    assert fields["Balance"].startswith("column Balance: field Balance cannot be imported")
    assert fields["Missing"] == "column Missing is not in the file"
    assert fields["x"] == "column x: Account has no field nope"
    assert fields["name"] == "required field Account name has no column"
    good = ColumnMap({"客户名称": "name", "城市": "city", "x": None}, "account")
    check_mapping(MODEL, "account", good, headers, writable)
    # with a key, rows may update records: required fields need no column, the key does
    check_mapping(MODEL, "account", ColumnMap({"城市": "city", "x": "tax_id"}, "account",
                                              "tax_id"), headers, writable)
    with pytest.raises(Invalid, match="the key field tax_id has no column"):
        check_mapping(MODEL, "account", ColumnMap({"城市": "city"}, "account", "tax_id"),
                      headers, writable)


def test_for_headers_fills_in_guesses() -> None:
    headers = ["名称", "城市", "电话"]
    given_map = ColumnMap({"名称": "name", "城市": None}, "account")
    guessed = ColumnMap({"名称": None, "城市": "city", "电话": "phone"}, "account")
    assert given_map.for_headers(headers, guessed).columns == \
        {"名称": "name", "城市": None, "电话": "phone"}


# -- rows ------------------------------------------------------------------------------------

def coercer(env: Env, headers: list[str]) -> RowCoercer:
    actor = env.admin.actor()
    writable = writable_fields(env.records, actor, ACCOUNT)
    mapping = guess_mapping(env.model, "account", headers, writable=writable)
    return RowCoercer(env.records, actor, "account", mapping, headers)


def test_rows_coerce_with_the_forms_rules_and_option_labels(env: Env) -> None:
    headers = ["客户名称", "行业", "客户级别", "年营业额", "员工人数", "网站", "备注"]
    rows = [
        ["上海汽车零部件有限公司", "汽车", "战略客户", "¥1,234,567.50", "1 200", "", "x"],
        ["Acme", "Automotive", "KEY", "12万", "30", "https://acme.example", ""],
        ["Beta", "Cars", "standard", "$100", "many", "not a url", ""],
    ]
    out = coercer(env, headers).batch(None, rows)  # type: ignore[arg-type]
    (v1, p1), (v2, p2), (_v3, p3) = out
    assert p1 == {} and p2 == {}
    assert v1["name"] == "上海汽车零部件有限公司" and v1["industry"] == "automotive"
    assert v1["tier"] == "strategic" and v1["annual_revenue"] == Decimal("1234567.50")
    assert v1["employees"] == 1200 and v1["website"] is None
    assert v2["tier"] == "key" and v2["annual_revenue"] == Decimal("120000.00")
    assert set(p3) == {"行业", "年营业额", "员工人数", "网站"}
    assert p3["行业"].startswith(
        "行业 'Cars': is not an option; the options: manufacturing (制造业),")
    assert p3["员工人数"] == "员工人数 'many': must be a whole number"
    assert "another currency ($)" in p3["年营业额"]


def test_rows_with_references_dates_and_extra_cells(env: Env) -> None:
    actor = env.admin.actor()
    parent = env.records.create(actor, "account", {"name": "集团总部"})
    headers = ["name", "parent", "employees"]
    c = coercer(env, headers)
    with env.engine.connect() as conn:
        out = c.batch(conn, [["A", str(parent["id"]), "1"], ["B", "", ""],
                             ["C", "", "", "", "extra"]])
    assert out[0] == ({"name": "A", "parent": parent["id"], "employees": 1}, {})
    assert out[1] == ({"name": "B", "parent": None, "employees": None}, {})
    assert out[2][1] == {"": "the row has 5 cells, more than the 3 columns of the header"}


def test_datetimes_without_an_offset_are_wall_times_of_the_organisation(env: Env) -> None:
    opp = env.model.entity("activity")
    dt = next((f for f in opp.fields if f.type.value == "datetime"), None)
    if dt is None:
        pytest.skip("no datetime field on activity")
    actor = env.admin.actor()
    mapping = ColumnMap({"when": dt.name}, "activity")
    c = RowCoercer(env.records, actor, "activity", mapping, ["when"])
    (values, problems), (values2, _), (_v3, p3) = c.batch(
        None, [["2026/12/5 14:30"], ["2026-12-05T06:30:00Z"], ["2026/13/45"]])  # type: ignore[arg-type]
    zone = env.model.settings.zone
    assert problems == {}
    assert values[dt.name] == datetime(2026, 12, 5, 14, 30, tzinfo=zone).astimezone(UTC)
    assert values2[dt.name] == datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
    assert "must be a date and time" in p3["when"]


_TYPES_HEADERS = ["name", "industry", "employees", "annual_revenue", "website", "email",
                  "tier", "parent"]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(st.lists(st.lists(st.text(max_size=30), min_size=0, max_size=10), min_size=1,
                max_size=5))
def test_any_text_gives_values_or_problems_never_an_exception(env: Env,
                                                              rows: list[list[str]]) -> None:
    c = coercer(env, _TYPES_HEADERS)
    with env.engine.connect() as conn:
        out = c.batch(conn, rows)
    assert len(out) == len(rows)
    for _values, problems in out:
        assert all(isinstance(p, str) and p for p in problems.values())


def test_dates_in_rows(env: Env) -> None:
    contract = env.model.entity("opportunity")
    f = contract.field("close_date")
    mapping = ColumnMap({"d": "close_date"}, "opportunity")
    c = RowCoercer(env.records, env.admin.actor(), "opportunity", mapping, ["d"])
    texts = ["2026-12-05", "2026/12/5", "2026.12.5", "2026年12月5日", "20261205",
             "5/12/2026", "12/25/2026", "5 Dec 2026", "Dec 5, 2026"]
    out = c.batch(None, [[t] for t in texts])  # type: ignore[arg-type]
    got = [v[f.name] for v, _p in out]
    assert got == [date(2026, 12, 5)] * 6 + [date(2026, 12, 25)] + [date(2026, 12, 5)] * 2
