"""Exports over HTTP (engine/web/exports.py): `GET /api/<entity>?format=csv|xlsx` and
`GET /api/reports/<name>?format=...` on both databases, with hostile cell values, the
export scope of the caller's roles, their field masks, and refused input."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from openpyxl import load_workbook
from starlette.testclient import TestClient

from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.test_reports import deals

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(A1)"]
"""Records trim the blanks around a name: a leading tab or CR is tested on the writer itself
(tests/test_export.py)."""


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the UTF-8 right
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def read_xlsx(body: bytes) -> list[tuple[Any, ...]]:
    book = load_workbook(io.BytesIO(body), read_only=True)
    return [tuple(r) for r in book.active.iter_rows(values_only=True)]


def test_a_list_as_csv_and_xlsx_neutralises_hostile_cells(env: Env, api: TestClient) -> None:
    for i, name in enumerate(HOSTILE):
        place(env, "account", {"name": f"{name}", "annual_revenue": str(1000 * (i + 1))})
    place(env, "account", {"name": "上海客户"})
    got = api.get("/api/account?format=csv&sort=id")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"] == 'attachment; filename="account.csv"'
    rows = read_csv(got.content)
    header = rows[0]
    names = [r[header.index("name")] if "name" in header else r[1] for r in rows[1:]]
    assert names == ["'" + h for h in HOSTILE] + ["上海客户"]
    xlsx = api.get("/api/account?format=xlsx&sort=id")
    assert xlsx.status_code == 200
    assert xlsx.headers["content-disposition"] == 'attachment; filename="account.xlsx"'
    sheet = read_xlsx(xlsx.content)
    col = sheet[0].index(env.model.entity("account").field("name").label.get("en"))
    assert [r[col] for r in sheet[1:]] == ["'" + h for h in HOSTILE] + ["上海客户"]
