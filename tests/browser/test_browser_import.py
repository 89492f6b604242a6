"""In a real browser, the issue's "done means" for import: a new user imports a real-looking
Excel export of 10,000 Chinese customers (Chinese headers as a Chinese CRM or Excel writes
them, a few bad rows, rows that duplicate existing customers under a longer name) from the
import page (engine/web/pages/imports.py): upload, the mapping guessed, check, a choice per
duplicate row, the import with its progress bar, the error file downloaded, fixed with
openpyxl and imported again — and every good customer is in the database exactly once."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from faker import Faker
from openpyxl import Workbook, load_workbook
from sqlalchemy import Engine, func, select

from engine.metadata import load_model
from engine.runtime.assembly import records_service
from engine.runtime.org import seed_org
from engine.runtime.records import Records
from tests.access_helpers import add_fields
from tests.browser.conftest import LiveServer, screenshot, served

pytestmark = pytest.mark.browser

ROWS = 10_000
PASSWORD = "new-user-password"
WAIT_MS = 60_000
"""The machine may be busy: a sign-in hashes a password, a page of 10,000 rows is read."""
HEADERS = ["客户名称", "所在城市", "行业", "电话", "邮箱", "客户等级", "成立日期", "员工人数",
           "创建日期", "负责人"]
INDUSTRIES = ["制造业", "航空", "汽车", "能源", "建筑", "物流", "医疗", "公共部门", "其他"]
TIERS = ["战略客户", "重点客户", "普通客户"]
KINDS = ["科技", "实业", "贸易", "电子", "机械", "信息技术", "网络", "建设", "物流", "医药",
         "新能源", "环保", "食品", "化工", "材料", "自动化"]
SUFFIXES = ["有限公司", "股份有限公司", "集团有限公司", "有限责任公司"]
EXISTING = {"华为技术": "华为技术有限公司", "比亚迪": "比亚迪股份有限公司",
            "三一重工": "三一重工股份有限公司"}
"""Customers already in the CRM, and how the export names them."""
DUPLICATE_ROWS = (101, 5005, 8888)
BAD = {17: ("成立日期", "2015/13/45"), 4242: ("行业", "外星产业"), 9001: ("客户名称", None)}
"""Data rows (1: the first under the header) with a bad date, an unknown option, no name."""


@pytest.fixture
def world(tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[LiveServer, Engine, Records]]:
    """The shipped config with an account founding date, served on a new SQLite file; the
    uploads go under tmp_path (the app's files folder is relative to the working folder)."""
    add_fields(config_dir, "account",
               "founded: {type: date, label: {en: Founded, zh: 成立日期}}")
    monkeypatch.chdir(tmp_path)
    model = load_model(config_dir)
    with served(model, tmp_path / "crm.db") as (server, engine):
        yield server, engine, records_service(engine, model)


@pytest.fixture
def live_server(world: tuple[LiveServer, Engine, Records]) -> LiveServer:
    return world[0]


def export_file(path: Path) -> list[list[Any]]:
    """A customer export as a Chinese CRM writes it to Excel; its data rows."""
    fake = Faker("zh_CN")
    Faker.seed(15)
    rng = random.Random(15)
    bases: set[str] = set(EXISTING)
    rows: list[list[Any]] = []
    for n in range(1, ROWS + 1):
        city = fake.city_name()
        if n in DUPLICATE_ROWS:
            name = list(EXISTING.values())[DUPLICATE_ROWS.index(n)]
            city = "深圳"
        else:  # names unique without their company suffix: no two rows are one company
            while True:
                base = f"{fake.city_name()}{fake.company_prefix()}{rng.choice(KINDS)}"
                if base not in bases:
                    break
            bases.add(base)
            name = base + rng.choice(SUFFIXES)
        founded: Any = fake.date_between(date(1990, 1, 1), date(2023, 12, 31))
        if n % 3 == 1:  # typed by hand, as people in China write dates
            founded = f"{founded.year}年{founded.month}月{founded.day}日"
        elif n % 3 == 2:
            founded = f"{founded.year}/{founded.month}/{founded.day}"
        rows.append([name, city, rng.choice(INDUSTRIES), fake.phone_number(),
                     fake.company_email(), rng.choice(TIERS), founded,
                     rng.randint(5, 20000), datetime(2024, rng.randint(1, 12), 1, 9, 30),
                     fake.name()])
    for n, (column, value) in BAD.items():
        rows[n - 1][HEADERS.index(column)] = value
    book = Workbook()
    sheet = book.active
    sheet.title = "客户列表"
    sheet.append(HEADERS)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return rows


def accounts(engine: Engine, records: Records) -> dict[str, int]:
    t = records.compiled("account").table
    with engine.connect() as conn:
        return {name: count for name, count in conn.execute(
            select(t.c.name, func.count()).where(t.c.deleted_at.is_(None))
            .group_by(t.c.name))}


def sign_in(page: Any, name: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible(timeout=WAIT_MS)


def upload_and_map(page: Any, file: Path) -> None:
    """From the list: Import, the file, and the mapping as a user would fix it."""
    from playwright.sync_api import expect

    page.goto("/e/account")
    page.get_by_role("link", name="Import", exact=True).click()
    page.locator("#import-file").set_input_files(str(file))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#import-mapping")).to_be_visible(timeout=WAIT_MS)
    # the columns are guessed from their Chinese labels
    expect(page.get_by_label("客户名称", exact=True)).to_have_value("name")
    expect(page.get_by_label("行业", exact=True)).to_have_value("industry")
    expect(page.get_by_label("成立日期", exact=True)).to_have_value("founded")
    for header, field in [("所在城市", "city"), ("电话", "phone"), ("邮箱", "email"),
                          ("客户等级", "tier"), ("员工人数", "employees")]:
        select = page.get_by_label(header, exact=True)
        if select.input_value() != field:  # not guessed: the user picks it
            select.select_option(field)


def finished(page: Any, timeout_s: int = 900) -> str:
    from playwright.sync_api import expect

    job = page.locator("#import-job")
    expect(job).to_have_attribute("data-status", re.compile("done|failed|interrupted"),
                                  timeout=timeout_s * 1000)
    status = job.get_attribute("data-status")
    assert status == "done", job.inner_text()
    return str(status)


def counted(page: Any, what: str) -> int:
    return int(page.locator(f'[data-count="{what}"]').inner_text().replace(",", ""))


def test_a_new_user_imports_ten_thousand_customers(page: Any, world: Any,
                                                   tmp_path: Path) -> None:
    from playwright.sync_api import expect

    server, engine, records = world
    seed_org(records)
    t = records.schema.table("department")
    with engine.connect() as conn:
        east = conn.execute(select(t.c.id).where(t.c.code == "EAST")).scalar_one()
    user = server.users.add("xiaoli", ["sales_manager"], password=PASSWORD,
                            display_name="李晓", department_id=east)
    ids = {name: records.create(user.actor(), "account", {"name": name, "city": "深圳"})["id"]
           for name in EXISTING}
    huawei = ids["华为技术"]
    before = accounts(engine, records)
    export = tmp_path / "客户列表导出_2024.xlsx"
    rows = export_file(export)

    page.set_default_timeout(WAIT_MS)
    sign_in(page, "xiaoli", PASSWORD)
    upload_and_map(page, export)
    page.get_by_role("button", name="Check", exact=True).click()
    finished(page)
    screenshot(page, "import-check")
    assert accounts(engine, records) == before  # a check writes nothing
    assert counted(page, "total") == ROWS
    assert counted(page, "failed") == len(BAD)
    duplicates = page.locator("table.import-duplicates tbody tr")
    expect(duplicates).to_have_count(len(EXISTING), timeout=WAIT_MS)
    # each duplicate row links its candidate; the user decides row by row
    expect(page.locator("table.import-duplicates").get_by_role("link", name="华为技术",
                                                               exact=True)).to_be_visible()
    decisions = {101: "update", 5005: "skip", 8888: "create"}
    for row, choice in decisions.items():
        page.locator(f"#dup-{row}").select_option(choice)
    page.locator("#import-run").get_by_role("button", name="Import", exact=True).click()

    # the progress bar, live, then the result
    expect(page.locator("#import-progress")).to_be_visible(timeout=WAIT_MS)
    finished(page)
    screenshot(page, "import-done")
    assert counted(page, "created") == ROWS - len(BAD) - 2  # less the update and the skip
    assert counted(page, "updated") == 1
    with page.expect_download() as download_info:
        page.locator("#import-error-file").click()
    error_file = tmp_path / "errors.xlsx"
    download_info.value.save_as(error_file)

    # fix the error file as a user would in Excel, and import it again
    book = load_workbook(error_file)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    assert header[:len(HEADERS)] == HEADERS and len(header) == len(HEADERS) + 1
    fixed = 0
    for cells in sheet.iter_rows(min_row=2):
        values = {h: c for h, c in zip(header, cells, strict=False)}
        if values["客户名称"].value in EXISTING.values():  # the skipped duplicate: stays out
            continue
        if values["成立日期"].value == "2015/13/45":
            values["成立日期"].value = "2015/12/25"
        if values["行业"].value == "外星产业":
            values["行业"].value = "其他"
        if not values["客户名称"].value:
            values["客户名称"].value = "补录客户有限公司"
        fixed += 1
    assert fixed == len(BAD)
    again = tmp_path / "客户列表导出_2024_已修正.xlsx"
    book.save(again)
    upload_and_map(page, again)
    page.get_by_role("button", name="Import without checking").click()
    finished(page)
    assert counted(page, "created") == len(BAD)

    # every good customer is in exactly once
    after = accounts(engine, records)
    twice = [name for name, count in after.items() if count != 1]
    assert not twice, twice[:5]
    expected = {str(r[0]) for r in rows if r[0]} | {"补录客户有限公司"}
    expected -= {"比亚迪股份有限公司"}  # skipped: the existing 比亚迪 stands for it
    # the row chosen to update the existing 华为技术 wrote its values, its name among them
    kept = set(before) - {"华为技术"}
    missing, extra = expected - set(after), set(after) - expected - kept
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    total = sum(after.values())
    assert total == len(before) + ROWS - 2, total
    t = records.compiled("account").table
    with engine.connect() as conn:
        phone = conn.execute(select(t.c.phone).where(t.c.id == huawei)).scalar_one()
    assert phone == rows[100][HEADERS.index("电话")]  # the update wrote the row's values
    assert page.dialogs == []
