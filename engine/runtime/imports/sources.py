"""Import files: CSV in any common encoding and XLSX, read as rows of text, streamed.

`open_source(path)` looks at the file once (its kind, encoding, delimiter and header row)
and returns a `Source` whose `rows()` reads it from the start each time it is called,
one row at a time: memory stays flat however large the file is. Every cell is the text a
user would have typed: XLSX dates as ISO dates (`2026-12-05`), whole numbers without
`.0`, decimals as the cell shows them (no float noise), an empty cell as "".

The encoding of a CSV file (docs/import.md#encodings): a byte-order mark (UTF-8, UTF-16)
decides; else UTF-8 when the file reads as strict UTF-8; else GB18030 (the superset of GBK
that Chinese Excel saves "CSV" in) when the text it gives is common Chinese; else Big5 when
that gives Chinese text; else Windows-1252; else Latin-1 (which reads any bytes). The
delimiter is the one of comma, semicolon, tab and bar that splits the first lines into
the most columns, the same number on every line.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from engine.messages import msg
from engine.runtime.errors import BadRequest

MAX_COLUMNS = 200
"""The most columns an import file may have."""
MAX_CELL_CHARS = 10_000
"""The longest cell an import file may hold, in characters."""
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
"""The largest import file by default (settings.yaml `imports.max_size_mb`)."""

SAMPLE_BYTES = 1 << 20
"""How much of a CSV file its encoding and delimiter are judged on."""
DELIMITERS = (",", ";", "\t", "|")

SourceKind = Literal["csv", "xlsx"]


class ImportFileError(BadRequest):
    """An import file that cannot be read as a table: its kind, size, header or a bound."""

    code = "bad_import_file"


def column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index.

    >>> column_letter(0), column_letter(25), column_letter(26), column_letter(701)
    ('A', 'Z', 'AA', 'ZZ')
    """
    letters = ""
    n = index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@dataclass
class Source:
    """A readable import file: its header row, and its other rows on demand."""

    path: Path
    kind: SourceKind
    headers: list[str]
    encoding: str | None = None
    """The CSV file's encoding (a Python codec name); None for XLSX."""
    delimiter: str | None = None
    sheet: str | None = None
    """The XLSX sheet read; None for CSV."""
    row_count_hint: int | None = None
    """About how many data rows the file has (an estimate for CSV), when cheap to know."""
    _data_start: int = field(default=0, repr=False)

    def rows(self) -> Iterator[list[str]]:
        """The data rows (the header excluded), each cell as text; wholly blank rows are
        skipped. A row may have fewer cells than the header (the rest are blank) or more."""
        return map(itemgetter(1), self.numbered())

    def numbered(self) -> Iterator[tuple[int, list[str]]]:
        """(row number, cells) per data row: the spreadsheet's row number for XLSX, the
        CSV record's number (the header is 1) for CSV."""
        return _xlsx_rows(self) if self.kind == "xlsx" else _csv_rows(self)

    def count(self) -> int:
        """How many rows `rows()` gives: the file read through and checked as `rows()`
        checks it (its encoding, its CSV, the cells' size), so a file that cannot be read
        to its end fails here, before any of its rows is imported."""
        return sum(1 for _ in self.numbered())


def open_source(path: Path, *, sheet: str | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> Source:
    """The import file at `path`, checked (size, kind, header) but not yet read through."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ImportFileError(msg(
            "the file is %(size)s MB, larger than the %(limit)s MB an import may be "
            "(settings.yaml imports.max_size_mb)",
            size=_mb(size), limit=_mb(max_bytes)))
    if size == 0:
        raise ImportFileError(msg("the file is empty: it needs a header row naming the columns"))
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0") or path.suffix.lower() == ".xls":
        raise ImportFileError(msg(
            "old Excel files (.xls) cannot be imported; open the file in Excel or WPS and "
            "save it as .xlsx (Excel workbook) or CSV"))
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(path, sheet)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        raise ImportFileError(msg("the file is named .xlsx but is not an Excel workbook"))
    return _open_csv(path, size)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f}".removesuffix(".0")


# -- headers ---------------------------------------------------------------------------------

def check_headers(raw: list[str]) -> list[str]:
    """The header row's column names, trimmed; trailing blank columns dropped. A blank or
    repeated name, or too many columns, is an ImportFileError naming the column."""
    headers = [h.strip().lstrip("\ufeff").strip() for h in raw]
    while headers and not headers[-1]:
        headers.pop()
    if not headers:
        raise ImportFileError(msg("the file is empty: it needs a header row naming the columns"))
    if len(headers) > MAX_COLUMNS:
        raise ImportFileError(msg(
            "the file has %(count)s columns, more than the %(limit)s an import may have",
            count=len(headers), limit=MAX_COLUMNS))
    seen: dict[str, int] = {}
    for i, name in enumerate(headers):
        if not name:
            raise ImportFileError(msg(
                "column %(column)s has no name in the header row; name it or delete the "
                "column", column=column_letter(i)))
        if len(name) > MAX_CELL_CHARS:
            raise ImportFileError(msg(
                "column %(column)s's name is longer than %(limit)s characters",
                column=column_letter(i), limit=f"{MAX_CELL_CHARS:,}"))
        key = name.casefold()
        if key in seen:
            raise ImportFileError(msg(
                "columns %(first)s and %(second)s are both named %(name)s; each column "
                "needs its own name", first=column_letter(seen[key]),
                second=column_letter(i), name=repr(name)))
        seen[key] = i
    return headers


def _check_cells(cells: list[str], row: int) -> list[str]:
    for i, cell in enumerate(cells):
        if len(cell) > MAX_CELL_CHARS:
            raise ImportFileError(msg(
                "row %(row)s, column %(column)s holds %(count)s characters, more than the "
                "%(limit)s a cell may hold", row=row, column=column_letter(i),
                count=f"{len(cell):,}", limit=f"{MAX_CELL_CHARS:,}"))
    return cells


# -- CSV -------------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
         (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def detect_encoding(sample: bytes, *, complete: bool = False) -> str:
    """The encoding a CSV file's first bytes are most likely in (see the module's doc).
    `complete`: the sample is the whole file (else its last line may be cut short)."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if not complete:
        cut = sample.rfind(b"\n")
        sample = sample[:cut + 1] if cut > 0 else sample
    if sample.count(0) * 4 > len(sample):  # UTF-16 without a mark: every other byte is 0
        even = sample[0::2].count(0)
        return "utf-16-be" if even > sample[1::2].count(0) else "utf-16-le"
    if _decodes(sample, "utf-8", complete):
        return "utf-8"
    if _chinese_share(sample, "gb18030", complete, _common_simplified) >= 0.8:
        return "gb18030"
    if _chinese_share(sample, "big5", complete, _is_cjk) >= 0.9:
        return "big5"
    if _decodes(sample, "cp1252", complete):
        return "cp1252"
    return "latin-1"


def _decodes(sample: bytes, encoding: str, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)("strict").decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _common_simplified(ch: str) -> bool:
    """In GB2312 (the common simplified Chinese characters and punctuation)."""
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFFEF


def _chinese_share(sample: bytes, encoding: str, complete: bool, good: Any) -> float:
    """The share of non-ASCII characters that read as Chinese text in `encoding`; a
    character between two ASCII letters does not count (an accented Latin letter read as a
    Chinese character stands so, inside a word). 0 when the sample does not decode."""
    try:
        text = codecs.getincrementaldecoder(encoding)("strict").decode(sample, final=complete)
    except UnicodeDecodeError:
        return 0.0
    total = hits = 0
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ord(ch) < 128:
            continue
        total += 1
        inside_word = (i > 0 and text[i - 1].isascii() and text[i - 1].isalpha()
                       and i < last and text[i + 1].isascii() and text[i + 1].isalpha())
        if good(ch) and not inside_word:
            hits += 1
    return hits / total if total else 0.0


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the first lines into the most columns, consistently."""
    best, best_score = ",", (0, 0)
    for d in DELIMITERS:
        try:
            widths = [len(r) for r in csv.reader(lines, delimiter=d) if r]
        except csv.Error:
            continue
        if not widths:
            continue
        consistent = sum(1 for w in widths if w == widths[0])
        score = (consistent if widths[0] > 1 else 0, widths[0])
        if score > best_score:
            best, best_score = d, score
    return best


def _open_csv(path: Path, size: int) -> Source:
    with path.open("rb") as f:
        sample = f.read(SAMPLE_BYTES)
    encoding = detect_encoding(sample, complete=size <= SAMPLE_BYTES)
    with _text(path, encoding) as text:
        try:
            lines = list(islice(text, 50))
        except UnicodeDecodeError as e:
            raise _not_encoded(encoding, e) from None
    delimiter = sniff_delimiter(lines)
    source = Source(path=path, kind="csv", headers=[], encoding=encoding, delimiter=delimiter)
    with _text(path, encoding) as text:
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as e:
            raise _csv_problem(e, 1, encoding) from None
        if header is None:
            raise ImportFileError(msg("the file is empty: it needs a header row naming the "
                                      "columns"))
        source.headers = check_headers(header)
    if lines:  # an estimate: the file's size over the first lines' mean size
        per_line = sum(len(line.encode(encoding, "replace")) for line in lines) / len(lines)
        source.row_count_hint = max(0, round(size / per_line) - 1)
    return source


def _text(path: Path, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(path.open("rb"), encoding=encoding, errors="strict", newline="")


def _not_encoded(encoding: str, error: UnicodeDecodeError) -> ImportFileError:
    return ImportFileError(msg(
        "the file is not all in one encoding: it reads as %(encoding)s at first, but not "
        "further on; save it again as CSV UTF-8", encoding=encoding))


def _csv_problem(error: Exception, row: int, encoding: str) -> ImportFileError:
    if isinstance(error, UnicodeDecodeError):
        return _not_encoded(encoding, error)
    if "field larger than field limit" in str(error):
        return ImportFileError(msg(
            "row %(row)s holds a cell longer than %(limit)s characters (a quote left open "
            "reads the rest of the file as one cell)", row=row, limit=f"{MAX_CELL_CHARS:,}"))
    return ImportFileError(msg("row %(row)s cannot be read as CSV: %(problem)s",
                               row=row, problem=str(error)))


def _csv_rows(source: Source) -> Iterator[tuple[int, list[str]]]:
    assert source.encoding is not None and source.delimiter is not None
    with _text(source.path, source.encoding) as text:
        reader = csv.reader(text, delimiter=source.delimiter)
        number = 1
        try:
            next(reader, None)
            for cells in reader:
                number += 1
                # one string for the row's checks: blank when it is, and no cell can be
                # over the limit when all of them together are not
                joined = "".join(cells)
                if not joined or joined.isspace():
                    continue
                if len(joined) > MAX_CELL_CHARS:
                    _check_cells(cells, number)
                yield number, cells
        except (csv.Error, UnicodeDecodeError) as e:
            raise _csv_problem(e, number + 1, source.encoding) from None


# -- XLSX ------------------------------------------------------------------------------------

def _open_xlsx(path: Path, sheet: str | None) -> Source:
    workbook = _workbook(path)
    try:
        ws = _sheet(workbook, sheet)
        header: list[str] = []
        for row in ws.iter_rows(min_row=1, max_row=1):
            header = [cell_text(c) for c in row]
        source = Source(path=path, kind="xlsx", headers=check_headers(header), sheet=ws.title)
        max_row = getattr(ws, "max_row", None)
        if isinstance(max_row, int) and max_row > 1:
            source.row_count_hint = max_row - 1
        return source
    finally:
        workbook.close()


def _workbook(path: Path) -> Any:
    from engine.runtime.imports.workbooks import open_workbook  # only when XLSX is read
    try:
        return open_workbook(path)
    except Exception:  # zipfile, XML and openpyxl errors alike: the file is not a workbook
        raise ImportFileError(msg("the file is not an Excel workbook that can be read; "
                                  "save it again as .xlsx or CSV")) from None


def _sheet(workbook: Any, name: str | None) -> Any:
    sheets = workbook.worksheets
    if name is None:
        if not sheets:
            raise ImportFileError(msg("the workbook has no worksheet"))
        return sheets[0]
    for ws in sheets:
        if ws.title == name:
            return ws
    raise ImportFileError(msg("the workbook has no sheet %(name)s; its sheets: %(sheets)s",
                              name=repr(name), sheets=", ".join(ws.title for ws in sheets)))


def _xlsx_rows(source: Source) -> Iterator[tuple[int, list[str]]]:
    workbook = _workbook(source.path)
    try:
        ws = _sheet(workbook, source.sheet)
        ws.reset_dimensions()  # some writers record a wrong size ("A1"): read every row
        for number, row in enumerate(ws.iter_rows(min_row=2), start=2):
            cells = [cell_text(c) for c in row]
            while cells and cells[-1] == "":
                cells.pop()
            if not any(c.strip() for c in cells):
                continue
            yield number, _check_cells(cells, number)
    finally:
        workbook.close()


_DECIMALS_RE = re.compile(r"\.(0+)")
_TIME_FORMAT_RE = re.compile(r"[hs]|am/pm", re.IGNORECASE)


def cell_text(cell: Any) -> str:
    """An XLSX cell as the text a user would type for it (the cell's number format read
    sensibly: dates, percents, a fixed number of decimals)."""
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    fmt = str(getattr(cell, "number_format", "General") or "General")
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.time() == time() and not _TIME_FORMAT_RE.search(_unquoted(fmt)):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (int, float)):
        return number_text(value, fmt)
    return str(value)


def _unquoted(fmt: str) -> str:
    return re.sub(r'"[^"]*"|\[[^\]]*\]', "", fmt)


def number_text(value: float | int, fmt: str = "General") -> str:
    """A number cell's text: whole numbers without ".0", decimals rounded to the places
    the format shows (or to Excel's 15 significant digits for General), percent formats
    as "30%".

    >>> number_text(3.0), number_text(0.1 + 0.2), number_text(0.30000000000000004, "0.00")
    ('3', '0.3', '0.30')
    >>> number_text(0.3, "0%"), number_text(1234.5, "#,##0.00"), number_text(1e16)
    ('30%', '1234.50', '10000000000000000')
    """
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    plain = _unquoted(fmt.split(";")[0])
    percent = "%" in plain
    places_match = _DECIMALS_RE.search(plain)
    try:
        number = Decimal(format(value, ".15g"))
        if percent:
            number = number.scaleb(2)
        if places_match and plain.lower() != "general":
            number = number.quantize(Decimal(1).scaleb(-len(places_match.group(1))))
        elif number == number.to_integral_value():
            number = number.quantize(Decimal(1))
        else:
            number = number.normalize()
    except InvalidOperation:
        return repr(value)
    text = format(number, "f")
    return text + "%" if percent else text
