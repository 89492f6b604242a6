"""Import files (engine/runtime/imports/sources.py): CSV in the encodings Excel and others
save, XLSX through openpyxl, streamed rows of text, and the bounds with errors naming them."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

import codecs
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from engine.runtime.errors import BadRequest
from engine.runtime.imports.sources import (
    MAX_COLUMNS,
    ImportFileError,
    cell_text,
    column_letter,
    detect_encoding,
    number_text,
    open_source,
)

ROWS = [["客户名称", "城市", "年营业额"], ["上海汽车零部件有限公司", "上海", "1,234.50"],
        ["北京喆达科技股份有限公司", "北京", "12万"], ["Müller GmbH", "München", "99"]]


def write_csv(path: Path, rows: list[list[str]], encoding: str, delimiter: str = ",",
              newline: str = "\r\n") -> Path:
    text = newline.join(delimiter.join(_quoted(c, delimiter) for c in r) for r in rows) + newline
    path.write_bytes(text.encode(encoding))
    return path


def _quoted(cell: str, delimiter: str) -> str:
    if any(ch in cell for ch in (delimiter, '"', "\n")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def read_all(path: Path) -> tuple[list[str], list[list[str]]]:
    source = open_source(path)
    return source.headers, list(source.rows())


def test_import_file_errors_are_bad_requests() -> None:
    assert issubclass(ImportFileError, BadRequest) and ImportFileError.status == 400


@pytest.mark.parametrize(("encoding", "expected"), [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"),
    ("gb18030", "gb18030"), ("gbk", "gb18030"),
])
def test_chinese_csv_in_each_encoding(tmp_path: Path, encoding: str, expected: str) -> None:
    rows = ROWS if encoding.startswith("utf") or encoding == "gb18030" else ROWS[:3]
    path = write_csv(tmp_path / "c.csv", rows, encoding)
    source = open_source(path)
    assert source.encoding == expected and source.kind == "csv"
    assert source.headers == rows[0]
    assert list(source.rows()) == rows[1:]


def test_excel_chinese_csv_is_gb18030(tmp_path: Path) -> None:
    """What WPS and Chinese Excel save as "CSV (comma delimited)": GBK, CRLF, no BOM."""
    rows = [["客户名称", "联系人", "电话", "备注"],
            ["深圳市华强电子有限公司", "张伟", "0755-12345678", "老客户，需回访"],
            ["杭州娃哈哈集团", "李娜", "0571-8888", "重点客户"]]
    path = write_csv(tmp_path / "客户.csv", rows, "gbk")
    source = open_source(path)
    assert source.encoding == "gb18030"
    assert [source.headers, *source.rows()] == rows


def test_big5_and_western_csv(tmp_path: Path) -> None:
    big5 = write_csv(tmp_path / "b.csv", [["客戶名稱", "城市"], ["台北汽車有限公司", "台北"]],
                     "big5")
    assert open_source(big5).encoding == "big5"
    assert list(open_source(big5).rows()) == [["台北汽車有限公司", "台北"]]
    west = write_csv(tmp_path / "w.csv", [["Name", "City"], ["Müller GmbH", "Zürich"],
                                          ["Café Olé", "Genève"], ["Søren – „Nord“", "Århus"]],
                     "cp1252")
    assert open_source(west).encoding == "cp1252"
    assert list(open_source(west).rows())[2] == ["Søren – „Nord“", "Århus"]


def test_detect_encoding_by_bom() -> None:
    assert detect_encoding(codecs.BOM_UTF8 + b"a") == "utf-8-sig"
    assert detect_encoding("名,b\n".encode("utf-16-le"), complete=True) == "utf-16-le"
    assert detect_encoding("名,b\n".encode("utf-16-be"), complete=True) == "utf-16-be"
    assert detect_encoding(codecs.BOM_UTF16_LE + "a".encode("utf-16-le")) == "utf-16"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    rows = [["name", "amount", "note"], ["Acme", "1,234.50", "a; b"], ["Beta", "2", ""]]
    path = write_csv(tmp_path / "d.csv", rows, "utf-8", delimiter)
    source = open_source(path)
    assert source.delimiter == delimiter
    assert list(source.rows()) == rows[1:]


def test_quoted_newlines_and_blank_rows(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('name,address\n"Acme","Line 1\nLine 2"\n,\n\n"B ""quoted""",x\n',
                    encoding="utf-8")
    source = open_source(path)
    assert list(source.numbered()) == [(2, ["Acme", "Line 1\nLine 2"]),
                                       (5, ['B "quoted"', "x"])]


def test_count_is_the_rows_given_and_reads_the_file_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('name,address\n"Acme","Line 1\nLine 2"\n,\n \t, \u3000\n\n'
                    '"B ""quoted""",x\r\nC,\n', encoding="utf-8")
    source = open_source(path)
    assert source.count() == len(list(source.rows())) == 3
    long = tmp_path / "long.csv"
    long.write_text("name,note\n" + "Acme,ok\n" * 3_000 + "Beta," + "x" * 10_001 + "\n",
                    encoding="utf-8")
    with pytest.raises(ImportFileError, match="row 3002, column B holds 10,001 characters"):
        open_source(long).count()
    mixed = tmp_path / "mixed.csv"  # UTF-8 for the first megabyte, then a Latin-1 byte
    mixed.write_bytes(b"name,note\n" + b"Acme,ok\n" * 150_000 + b"M\xfcller,x\n")
    with pytest.raises(ImportFileError, match="not all in one encoding"):
        open_source(mixed).count()


_cells = st.lists(st.text(alphabet=st.sampled_from(["a", "中", " ", "\t", "\u3000", ",", '"',
                                                    "\n"]), max_size=4), max_size=4)


@settings(max_examples=100, deadline=None)
@given(st.lists(_cells, max_size=8))
def test_rows_skip_exactly_the_wholly_blank_ones(tmp_path_factory: pytest.TempPathFactory,
                                                 rows: list[list[str]]) -> None:
    path = tmp_path_factory.mktemp("blank") / "b.csv"
    write_csv(path, [["name", "note"], *rows], "utf-8", newline="\n")
    source = open_source(path)
    # a row csv reads back as no cells (an empty line) or as blank cells is skipped
    expected = [r for r in rows if any(c.strip() for c in r)]
    assert list(source.rows()) == expected
    assert source.count() == len(expected)


def test_header_problems_name_the_column(tmp_path: Path) -> None:
    def problem(text: str) -> str:
        path = tmp_path / "h.csv"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ImportFileError) as info:
            open_source(path)
        return str(info.value)

    assert "empty" in problem("")
    assert "empty" in problem("\n\n")
    assert problem("name,,city\n") == \
        "column B has no name in the header row; name it or delete the column"
    assert problem("name,City,city\n") == \
        "columns B and C are both named 'city'; each column needs its own name"
    # trailing blank header cells (a spreadsheet's unused columns) are dropped, not errors
    path = tmp_path / "t.csv"
    path.write_text("name,city,,\nAcme,Shanghai,,\n", encoding="utf-8")
    assert read_all(path) == (["name", "city"], [["Acme", "Shanghai", "", ""]])


def test_bounds(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)) + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="201 columns, more than the 200"):
        open_source(wide)
    long = tmp_path / "long.csv"
    long.write_text("name,note\nAcme," + "x" * 10_001 + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="row 2, column B holds 10,001 characters"):
        list(open_source(long).rows())
    huge = tmp_path / "huge.csv"
    huge.write_text("name,note\nAcme,\"" + "x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="longer than 10,000 characters"):
        list(open_source(huge).rows())
    big = write_csv(tmp_path / "big.csv", [["a"]] * 60_000, "utf-8")  # 180,000 bytes
    with pytest.raises(ImportFileError, match=r"the file is 0\.2 MB, larger than the 0\.1 MB"):
        open_source(big, max_bytes=int(0.1 * 1024 * 1024))


def test_old_excel_files_are_refused_with_advice(tmp_path: Path) -> None:
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(ImportFileError, match=r"save it as \.xlsx"):
        open_source(xls)
    fake = tmp_path / "fake.xlsx"
    fake.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="not an Excel workbook"):
        open_source(fake)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04" + b"\0" * 50)
    with pytest.raises(ImportFileError, match="not an Excel workbook"):
        open_source(broken)


def test_xlsx_cells_read_as_typed(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "客户"
    ws.append(["客户名称", "签约日期", "时间", "金额", "数量", "比例", "是否重点", "备注"])
    ws.append(["上海汽车", datetime(2026, 12, 5), datetime(2026, 12, 5, 14, 30), 0.1 + 0.2,
               3.0, 0.3, True, None])
    ws.append(["Acme", date(2025, 1, 31), None, 1234.5, 12, 0.125, False, "x"])
    ws.append([None] * 8)
    ws.append(["Beta", None, None, 1e16, -7, None, None, None])
    ws["D2"].number_format = "0.00"
    ws["D3"].number_format = "#,##0.00"
    ws["F2"].number_format = "0%"
    ws["F3"].number_format = "0.0%"
    ws["C2"].number_format = "yyyy-mm-dd hh:mm"
    ws["B2"].number_format = "yyyy/m/d"
    wb.create_sheet("Other").append(["x"])
    path = tmp_path / "book.xlsx"
    wb.save(path)
    source = open_source(path)
    assert (source.kind, source.sheet, source.encoding) == ("xlsx", "客户", None)
    assert source.headers[:2] == ["客户名称", "签约日期"]
    assert list(source.numbered()) == [
        (2, ["上海汽车", "2026-12-05", "2026-12-05 14:30:00", "0.30", "3", "30%", "TRUE"]),
        (3, ["Acme", "2025-01-31", "", "1234.50", "12", "12.5%", "FALSE", "x"]),
        (5, ["Beta", "", "", "10000000000000000", "-7"]),
    ]
    assert open_source(path, sheet="Other").headers == ["x"]
    with pytest.raises(ImportFileError, match="no sheet 'Nope'; its sheets: 客户, Other"):
        open_source(path, sheet="Nope")


def test_xlsx_header_problems(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["name", None, "city"])
    path = tmp_path / "h.xlsx"
    wb.save(path)
    with pytest.raises(ImportFileError, match="column B has no name"):
        open_source(path)


def test_rows_are_streamed_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("name,amount\n")
        for i in range(50_000):
            f.write(f"Company {i},{i}.50\n")
    source = open_source(path)
    rows = source.rows()
    assert next(rows) == ["Company 0", "0.50"]
    assert sum(1 for _ in rows) == 49_999
    hint = source.row_count_hint
    assert hint is not None and 25_000 < hint < 100_000  # an estimate from the first lines


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == \
        ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]


@pytest.mark.parametrize(("value", "fmt", "text"), [
    (3.0, "General", "3"), (0.1 + 0.2, "General", "0.3"), (1234.5, "#,##0.00", "1234.50"),
    (0.3, "0%", "30%"), (0.125, "0.0%", "12.5%"), (-1.005, "0.00", "-1.00"), (7, "0.00", "7"),
    (1e-7, "General", "0.0000001"), (123456789012345.0, "General", "123456789012345"),
])
def test_number_text(value: float, fmt: str, text: str) -> None:
    assert number_text(value, fmt) == text


@settings(max_examples=300)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_number_text_reads_back_within_excels_precision(value: float) -> None:
    text = number_text(value)
    assert "e" not in text.lower() and not text.endswith(".0")
    assert abs(float(text) - value) <= abs(value) * 1e-14 + 1e-300


class _Cell:
    def __init__(self, value: object, number_format: str = "General") -> None:
        self.value = value
        self.number_format = number_format


def test_cell_text_of_each_kind() -> None:
    assert cell_text(_Cell(None)) == ""
    assert cell_text(_Cell(datetime(2026, 12, 5), "yyyy/m/d")) == "2026-12-05"
    assert cell_text(_Cell(datetime(2026, 12, 5), "yyyy/m/d h:mm")) == "2026-12-05 00:00:00"
    assert cell_text(_Cell("#N/A")) == "#N/A"
    assert cell_text(_Cell(True)) == "TRUE"


def test_xlsx_without_a_size_opens_without_reading_it_through(tmp_path: Path) -> None:
    """Write-only workbooks (this engine's exports among them) record no <dimension>:
    opening one must not parse the whole sheet, and every row is still read."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("data")
    ws.append(["name", "amount"])
    for i in range(3_000):
        ws.append([f"Company {i}", i])
    path = tmp_path / "nosize.xlsx"
    wb.save(path)
    source = open_source(path)
    assert source.row_count_hint is None  # no size recorded, none guessed
    rows = list(source.rows())
    assert len(rows) == 3_000 and rows[-1] == ["Company 2999", "2999"]


def test_xlsx_with_a_wrong_size_is_read_to_its_end(tmp_path: Path) -> None:
    import zipfile
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in (["name"], ["A"], ["B"], ["C"]):
        ws.append(row)
    good = tmp_path / "good.xlsx"
    wb.save(good)
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b'<dimension ref="A1:A4"/>', b'<dimension ref="A1"/>')
            dst.writestr(item, data)
    assert list(open_source(bad).rows()) == [["A"], ["B"], ["C"]]
