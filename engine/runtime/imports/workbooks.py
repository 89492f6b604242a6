"""XLSX workbooks opened for streaming: openpyxl's read-only mode, without its full pass.

openpyxl's read-only worksheet learns its size from the sheet's `<dimension>` element when
it opens, and when a file has none (files written in write-only mode — this engine's own
exports, many other programs' — have none) it parses the whole sheet to find out that it
has none: a 200,000-row sheet took 20 s to open, and opens again for every pass. Here the
search stops where the rows begin, so opening costs the same for any size, and a sheet
without a size is simply read to its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl.reader.excel import ExcelReader
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet.dimensions import SheetDimension
from openpyxl.xml.constants import SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse  # the parser openpyxl reads the rows with

_DIMENSION = f"{{{SHEET_MAIN_NS}}}dimension"
_DATA = f"{{{SHEET_MAIN_NS}}}sheetData"


class _Sheet(ReadOnlyWorksheet):  # type: ignore[misc]
    def _get_size(self) -> None:
        with self._get_source() as src:
            for _event, element in iterparse(src, events=("start",)):
                if element.tag == _DIMENSION:
                    bounds = SheetDimension.from_tree(element).boundaries
                    if bounds is not None:
                        self._min_column, self._min_row, self._max_column, self._max_row = \
                            bounds
                    return
                if element.tag == _DATA:
                    return


class _Reader(ExcelReader):  # type: ignore[misc]
    def read_worksheets(self) -> None:
        for sheet, rel in self.parser.find_sheets():
            if rel.target not in self.valid_files or "chartsheet" in rel.Type:
                continue
            ws = _Sheet(self.wb, sheet.name, rel.target, self.shared_strings)
            ws.sheet_state = sheet.state
            self.wb._sheets.append(ws)


def open_workbook(path: Path) -> Any:
    """The workbook at `path`, read-only, formulas as their last computed values; close it
    after use (`workbook.close()`)."""
    reader = _Reader(str(path), read_only=True, data_only=True)
    reader.read()
    return reader.wb
