"""The one export writer (engine/runtime/export.py): CSV with a BOM and XLSX in write-only
mode, typed cells, choice labels, and text cells a spreadsheet would run as formulas
neutralised in both formats. The export of a list within the export scope
(engine/runtime/records/exported.py) and `crm export` on both databases."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from engine.cli import main
from engine.fieldtypes import FieldType
from engine.runtime import export
from engine.runtime.access import SYSTEM
from engine.runtime.errors import Forbidden
from engine.runtime.export import Column, neutralise
from engine.runtime.records.exported import TooManyRows, export_list
from engine.runtime.records.query import ListQuery
from tests.access_helpers import departments, place, user
from tests.conftest import Env

HOSTILE = ['=HYPERLINK("http://evil","click")', "+1", "-2", "@SUM(A1:A9)", "\tcmd", "\rcmd"]

COLUMNS = [
    Column("name", "名称"),
    Column("amount", "Amount", FieldType.MONEY),
    Column("rate", "Rate", FieldType.PERCENT),
    Column("count", "Count", FieldType.INTEGER),
    Column("closes", "Closes", FieldType.DATE),
    Column("at", "At", FieldType.DATETIME),
    Column("done", "Done", FieldType.BOOLEAN),
    Column("stage", "Stage", FieldType.CHOICE, {"won": "赢单", "lost": "Lost"}),
    Column("tags", "Tags", FieldType.MULTICHOICE, {"a": "Alpha", "b": "Beta"}),
]


def sample(name: str = "上海客户") -> dict[str, Any]:
    return {"name": name, "amount": Decimal("1234.50"), "rate": Decimal("12.5"), "count": 3,
            "closes": date(2026, 3, 2), "at": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
            "done": True, "stage": "won", "tags": ["a", "b"]}


def as_csv(columns: list[Column], rows: list[dict[str, Any]]) -> list[list[str]]:
    body = b"".join(export.csv_chunks(columns, rows))
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def as_xlsx(columns: list[Column], rows: list[dict[str, Any]], **kw: Any
            ) -> list[tuple[Any, ...]]:
    body = b"".join(export.xlsx_chunks(columns, rows, **kw))
    book = load_workbook(io.BytesIO(body))
    return [tuple(c.value for c in r) for r in book.active.iter_rows()]


def test_hostile_text_is_neutralised_in_csv_and_xlsx() -> None:
    rows = [sample(h) for h in HOSTILE]
    in_csv = as_csv(COLUMNS, rows)
    assert [r[0] for r in in_csv[1:]] == ["'" + h for h in HOSTILE]
    in_xlsx = as_xlsx(COLUMNS, rows)  # XML reads a CR back as a line feed
    assert [r[0] for r in in_xlsx[1:]] == ["'" + h.replace("\r", "\n") for h in HOSTILE]
    # a hostile header and choice label too
    cols = [Column("x", "=cmd"), Column("s", "S", FieldType.CHOICE, {"o": "-1+2"})]
    assert as_csv(cols, [{"x": "ok", "s": "o"}]) == [["'=cmd", "S"], ["ok", "'-1+2"]]
    assert as_xlsx(cols, [{"x": "ok", "s": "o"}]) == [("'=cmd", "S"), ("ok", "'-1+2")]


@given(st.text(max_size=30))
def test_no_cell_text_starts_like_a_formula(text: str) -> None:
    out = neutralise(text)
    assert not out.startswith(export.DANGEROUS)
    assert out in (text, "'" + text)


@given(st.one_of(st.integers(-10**12, 10**12),
                 st.decimals(-10**9, 10**9, places=4, allow_nan=False)))
def test_a_number_cell_is_its_value_whether_given_as_number_or_text(value: int | Decimal
                                                                     ) -> None:
    # numbers as the database gives them take a short way; text takes the parsing one
    for kind in (FieldType.MONEY, FieldType.DECIMAL, FieldType.PERCENT, FieldType.INTEGER):
        column = Column("x", "X", kind)
        as_number = export.xlsx_value(column, value)
        assert as_number == export.xlsx_value(column, str(value))
        assert type(as_number) is (int if kind is FieldType.INTEGER else Decimal)
    assert export.xlsx_value(Column("x", "X"), value) == value


@given(st.text(max_size=30))
def test_a_text_cell_is_its_label_neutralised(text: str) -> None:
    plain, choice = Column("x", "X"), Column("x", "X", FieldType.CHOICE, {"won": "=won"})
    assert export.xlsx_value(plain, text) == (neutralise(text) if text else None)
    label = choice.options.get(text, text)
    assert export.xlsx_value(choice, text) == (neutralise(label) if text else None)
    assert export.xlsx_value(choice, "won") == "'=won"


def test_typed_xlsx_cells() -> None:
    book = load_workbook(io.BytesIO(b"".join(export.xlsx_chunks(
        COLUMNS, [sample()], money=export.money_format("¥")))))
    sheet = book.active
    header, row = list(sheet.iter_rows())[:2]
    assert [c.value for c in header][:2] == ["名称", "Amount"]
    assert header[0].font.bold
    name, amount, rate, count, closes, at, done, stage, tags = row
    assert name.value == "上海客户"
    assert amount.value == 1234.5 and amount.data_type == "n"
    assert "¥" in amount.number_format and "#,##0.00" in amount.number_format
    assert rate.value == 0.125 and rate.number_format == "0.00%"
    assert count.value == 3 and count.data_type == "n"
    assert closes.value == datetime(2026, 3, 2) and closes.number_format == "yyyy-mm-dd"
    assert at.value == datetime(2026, 3, 2, 9, 30) and at.is_date
    assert done.value is True
    assert stage.value == "赢单" and tags.value == "Alpha, Beta"
    assert sheet.column_dimensions["A"].width >= 6
    assert sheet.freeze_panes == "A2"


def test_csv_cells_and_chinese_text_round_trip() -> None:
    rows = as_csv(COLUMNS, [sample(), {"name": None}])
    assert rows[0] == ["名称", "Amount", "Rate", "Count", "Closes", "At", "Done", "Stage",
                       "Tags"]
    assert rows[1] == ["上海客户", "1234.50", "12.5", "3", "2026-03-02",
                       "2026-03-02 09:30:00+00:00", "true", "赢单", "Alpha, Beta"]
    assert rows[2] == [""] * 9


def test_csv_streams_in_chunks() -> None:
    rows = ({"name": f"客户 {i}" * 20} for i in range(5000))
    parts = list(export.csv_chunks([Column("name", "Name")], rows))
    assert len(parts) > 5
    assert all(len(p) < 2 * export.CHUNK for p in parts)


def test_formats_and_file_names() -> None:
    assert export.format_of("out/deals.XLSX") == "xlsx"
    assert export.format_of("deals.csv") == "csv"
    assert export.format_of("deals.pdf") is None and export.format_of("deals") is None
    assert export.file_name('x"; filename=evil.exe', "csv") == "x___filename_evil_exe.csv"
    assert export.file_name("销售", "xlsx") == "__.xlsx"
    assert export.file_name("", "csv") == "export.csv"


# -- the export scope (engine/runtime/records/exported.py) -------------------------------------


def test_a_rep_exports_their_accounts_only_and_marketing_no_hidden_field(env: Env) -> None:
    sh = departments(env)["SH"]
    a = user(env, "rep_a", "sales_rep", department=sh)
    b = user(env, "rep_b", "sales_rep", department=sh)
    place(env, "account", {"name": "Mine", "credit_limit": "5000"}, owner=a, department=sh)
    place(env, "account", {"name": "Theirs"}, owner=b, department=sh)
    # rep_a reads both (read: department) but exports only their own (export: own)
    assert env.records.list_records(a, "account", ListQuery()).total == 2
    found = export_list(env.records, a, "account", ListQuery())
    assert [r["name"] for r in found.rows] == ["Mine"]
    mkt = user(env, "mkt", "marketing")
    found = export_list(env.records, mkt, "account", ListQuery())
    keys = [c.key for c in found.columns]
    assert "name" in keys and "credit_limit" not in keys and "bank_account" not in keys
    assert all("credit_limit" not in r for r in found.rows)
    with pytest.raises(Forbidden):  # marketing reads opportunities but may not export them
        export_list(env.records, mkt, "opportunity", ListQuery())
    assert len(list(export_list(env.records, SYSTEM, "account", ListQuery()).rows)) == 2


def test_an_export_over_the_bound_is_refused(env: Env) -> None:
    place(env, "account", {"name": "One"})
    place(env, "account", {"name": "Two"})
    with pytest.raises(TooManyRows) as caught:
        export_list(env.records, SYSTEM, "account", ListQuery(), limit=1)
    assert caught.value.status == 413 and "1" in str(caught.value)


# -- crm export ----------------------------------------------------------------------------


def run(env: Env, *args: str) -> Any:
    url = env.engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)


def test_the_cli_writes_a_file_and_refuses_bad_input(env: Env, tmp_path: Path) -> None:
    sh = departments(env)["SH"]
    a = user(env, "rep_a", "sales_rep", department=sh)
    place(env, "account", {"name": "=1+1"}, owner=a, department=sh)
    place(env, "account", {"name": "客户"})
    out = tmp_path / "accounts.xlsx"
    done = run(env, "export", "account", "-o", str(out))
    assert done.exit_code == 0, done.output
    assert "2 row(s)" in done.output
    sheet = load_workbook(out).active
    assert sorted(str(r[1]) for r in sheet.iter_rows(min_row=2, values_only=True)) == [
        "'=1+1", "客户"]
    mine = tmp_path / "mine.csv"
    assert run(env, "export", "account", "-o", str(mine), "--user", "rep_a").exit_code == 0
    assert "'=1+1" in mine.read_text("utf-8-sig") and "客户" not in mine.read_text("utf-8-sig")
    report = tmp_path / "funnel.csv"
    assert run(env, "export", "--report", "sales_funnel", "-o", str(report)).exit_code == 0
    assert report.read_text("utf-8-sig").splitlines()[-1].startswith("Total,")
    for args, words in [(("nope", "-o", str(out)), "no entity 'nope'"),
                        (("account", "-o", str(tmp_path / "a.pdf")), "cannot tell the format"),
                        (("--report", "nope", "-o", str(out)), "no report 'nope'"),
                        (("account", "-o", str(out), "--user", "ghost"), "no user named"),
                        (("-o", str(out)), "name an entity or --report")]:
        bad = run(env, "export", *args)
        assert bad.exit_code == 1 and words in bad.output, (args, bad.output)
