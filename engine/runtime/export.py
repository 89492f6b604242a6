"""The one export writer: columns and an iterator of rows as CSV or XLSX, streamed.

Every export path writes through it: a list (`GET /api/<entity>?format=xlsx`), a report
(`GET /api/reports/<name>?format=csv`) and the CLI (`crm export`). What rows and fields
go in is decided before (the `export` scope of the one secure query,
engine/runtime/records/exported.py); this module only writes.

- CSV: UTF-8 with a BOM (Excel then reads Chinese text right), yielded in chunks.
- XLSX: openpyxl in write-only mode, written to a temporary file and then yielded in
  chunks, so memory stays flat in the row count. Cells are typed: numbers as numbers,
  money with a money format, percent (held as 0-100) as a fraction with a percent format,
  dates and datetimes as Excel dates, booleans as booleans, choice options as their labels.
  A header row, and column widths from the header and the type.

In both formats a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is
neutralised with a leading `'`, so a spreadsheet never runs it as a formula.

>>> b"".join(csv_chunks([Column("name", "Name")], [{"name": "=1+1"}])).decode("utf-8-sig")
"Name\\r\\n'=1+1\\r\\n"
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import IO, Any

from engine.fieldtypes import FieldType

FORMATS = ("csv", "xlsx")
"""The formats an export is written in (`?format=`, the CLI's file extension)."""
MAX_ROWS = 1_000_000
"""The most rows one export writes; a longer one is refused (narrow its filter)."""
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
CHUNK = 64 * 1024
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
"""What a text cell may not start with unneutralised (a spreadsheet reads it as a formula)."""

NUMBER_FORMATS = {
    FieldType.DECIMAL: "#,##0.00##",
    FieldType.PERCENT: "0.00%",
    FieldType.DATE: "yyyy-mm-dd",
    FieldType.DATETIME: "yyyy-mm-dd hh:mm:ss",
}
_NUMERIC = frozenset({FieldType.INTEGER, FieldType.DECIMAL, FieldType.MONEY,
                      FieldType.PERCENT})
_DECIMALS = frozenset({FieldType.DECIMAL, FieldType.MONEY})
_PARSED = _NUMERIC | {FieldType.DATE, FieldType.DATETIME}
"""Column types whose text cells are read as a number or a date."""
_WIDTHS = {FieldType.DATE: 12, FieldType.DATETIME: 20, FieldType.MONEY: 16,
           FieldType.DECIMAL: 14, FieldType.INTEGER: 10, FieldType.PERCENT: 10,
           FieldType.BOOLEAN: 8, FieldType.TEXTAREA: 40}


@dataclass(frozen=True)
class Column:
    """One column of an export: the row key it reads, its header in the reader's language,
    its field type (None: text) and, for a choice, option → label."""

    key: str
    label: str
    type: FieldType | None = None
    options: Mapping[str, str] = field(default_factory=dict)


def neutralise(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting with `= + - @`, a tab or a
    carriage return gets a leading `'`.

    >>> neutralise("=HYPERLINK(1)"), neutralise("-2"), neutralise("ok")
    ("'=HYPERLINK(1)", "'-2", 'ok')
    """
    return "'" + text if text.startswith(DANGEROUS) else text


def format_of(path: str) -> str | None:
    """The format a file name asks for by its extension (`deals.xlsx` → xlsx); None."""
    suffix = PurePath(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


def file_name(base: str, fmt: str) -> str:
    """A safe attachment file name: letters, digits, `_` and `-` of `base`, and the format.

    >>> file_name("opportunity", "csv"), file_name('a"b/../c', "xlsx")
    ('opportunity.csv', 'a_b____c.xlsx')
    """
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_"
                   for ch in base)[:80]
    return f"{safe or 'export'}.{fmt}"


def money_format(symbol: str) -> str:
    """The Excel number format of money in the currency whose symbol is `symbol`."""
    quoted = symbol.replace('"', "")
    return f'"{quoted}"#,##0.00;-"{quoted}"#,##0.00' if quoted else "#,##0.00"


def chunks(fmt: str, columns: list[Column], rows: Iterable[Mapping[str, Any]], *,
           money: str = "#,##0.00") -> Iterator[bytes]:
    """The export of `rows` in `fmt` (csv or xlsx) as byte chunks. `money`: the number
    format of money cells (`money_format`)."""
    if fmt == "csv":
        return csv_chunks(columns, rows)
    if fmt == "xlsx":
        return xlsx_chunks(columns, rows, money=money)
    raise ValueError(fmt)


def write(fmt: str, target: IO[bytes], columns: list[Column],
          rows: Iterable[Mapping[str, Any]], *, money: str = "#,##0.00") -> None:
    """Write the export of `rows` in `fmt` into the binary file `target`."""
    if fmt == "xlsx":
        write_xlsx(target, columns, rows, money=money)
        return
    for chunk in chunks(fmt, columns, rows, money=money):
        target.write(chunk)


# -- CSV -------------------------------------------------------------------------------------


def csv_text(column: Column, value: Any) -> str:
    """A value as CSV text: numbers and dates as their plain text, choices as labels."""
    if value is None:
        return ""
    value = _labelled(column, value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _utc(value).isoformat(sep=" ")
    if isinstance(value, (date, int, float, Decimal)):
        return str(value)
    return neutralise(str(value))


def csv_chunks(columns: list[Column], rows: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """UTF-8 CSV with a BOM and a header row, in chunks of about CHUNK bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow([neutralise(c.label) for c in columns])
    for row in rows:
        writer.writerow([csv_text(c, row.get(c.key)) for c in columns])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


# -- XLSX ------------------------------------------------------------------------------------


def xlsx_chunks(columns: list[Column], rows: Iterable[Mapping[str, Any]], *,
                money: str = "#,##0.00") -> Iterator[bytes]:
    """The XLSX file of `rows`, written in write-only mode to a temporary file (memory flat
    in the row count), then read back in chunks; the file is gone when this ends."""
    with tempfile.TemporaryFile(suffix=".xlsx") as tmp:
        write_xlsx(tmp, columns, rows, money=money)
        tmp.seek(0)
        while chunk := tmp.read(CHUNK):
            yield chunk


def write_xlsx(target: Any, columns: list[Column], rows: Iterable[Mapping[str, Any]], *,
               money: str = "#,##0.00") -> None:
    """Write the workbook to `target` (a path or a binary file)."""
    from openpyxl import Workbook  # a heavy import, for exports only
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    for i, c in enumerate(columns, start=1):
        width = max(_WIDTHS.get(c.type, 16) if c.type else 16, _display_width(c.label) + 2)
        sheet.column_dimensions[get_column_letter(i)].width = min(width, 60)
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for c in columns:
        cell = WriteOnlyCell(sheet, value=neutralise(c.label))
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    formats = [money if c.type is FieldType.MONEY else NUMBER_FORMATS.get(c.type)
               if c.type else None for c in columns]
    plan = list(zip(columns, formats, strict=True))
    for row in rows:
        out: list[Any] = []
        for c, number_format in plan:
            value = xlsx_value(c, row.get(c.key))
            if number_format is not None and value is not None:
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = number_format
                out.append(cell)
            else:
                out.append(value)
        sheet.append(out)
    book.save(target)


def xlsx_value(column: Column, value: Any) -> Any:
    """A value as an XLSX cell holds it: a number, a naive UTC datetime, a date, a boolean,
    or neutralised text (a number held as text in a numeric column becomes a number)."""
    if value is None:
        return None
    # The common cells first, without a detour through text (a million rows pass here): a
    # number as the database gave it, and text that is not read as a number or a date.
    kind = type(value)
    if kind is int or kind is Decimal:
        if column.type is FieldType.PERCENT:
            return Decimal(value) / 100
        if column.type is FieldType.INTEGER:
            return int(value)
        return Decimal(value) if column.type in _DECIMALS else value
    if kind is str and column.type not in _PARSED:
        if not value:
            return None
        return neutralise(column.options.get(value, value) if column.options else value)
    if value == "":
        return None
    value = _labelled(column, value)
    if isinstance(value, bool):
        return value
    if column.type in _NUMERIC and isinstance(value, (str, int, float, Decimal)):
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            return neutralise(str(value))
        if column.type is FieldType.PERCENT:
            number /= 100  # percent fields hold 0-100; Excel's format scales a fraction
        return int(number) if column.type is FieldType.INTEGER else number
    if isinstance(value, datetime):
        return _utc(value).replace(tzinfo=None)
    if isinstance(value, (date, int, float, Decimal)):
        return value
    if column.type in (FieldType.DATE, FieldType.DATETIME) and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return neutralise(value)
        if column.type is FieldType.DATE:
            return parsed.date()
        return _utc(parsed).replace(tzinfo=None)
    return neutralise(str(value))


# -- shared ----------------------------------------------------------------------------------


def _labelled(column: Column, value: Any) -> Any:
    """Choice options as their labels (a multichoice's joined with ', ')."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(column.options.get(str(v), v)) for v in value)
    if column.options and isinstance(value, str):
        return column.options.get(value, value)
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value


def _display_width(text: str) -> int:
    """Columns a header takes: a CJK character is about two Latin ones wide."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
