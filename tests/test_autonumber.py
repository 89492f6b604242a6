"""Autonumber fields (engine/metadata/number_format.py, engine/metadata/autonumber.py,
engine/runtime/records/autonumber.py): formats and their errors, numbers assigned at create
and by bulk create, per-period counters, never written by anyone, unique, numbers for the
records an entity had before the field, and concurrent creates on both databases."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError

from engine.cli import main
from engine.metadata import load_model
from engine.metadata.errors import ConfigErrors
from engine.metadata.number_format import FormatProblem, parse_format
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.errors import Invalid
from engine.runtime.records import Records
from engine.runtime.schema.tables import AUTONUMBER_TABLE
from tests.conftest import Env, EnvFactory

TICKET = """\
entity: ticket
label: {en: Ticket, zh: 工单}
title: subject
fields:
  subject: {type: text, required: true, max_length: 100}
  number:  {type: autonumber, format: "TK-{YYYY}-{0000}", label: {en: Number, zh: 编号}}
  code:    {type: autonumber, format: "M{YY}{MM}-{00}", search: true}
  serial:  {type: autonumber, format: "S{0}"}
  hours:   {type: integer}
validations:
  - rule: 'OR(ISBLANK(hours), hours >= 0)'
    field: hours
    message: {en: Hours cannot be negative, zh: 工时不能为负}
"""


def write_config(root: Path, ticket: str = TICKET) -> Path:
    (root / "entities").mkdir(parents=True, exist_ok=True)
    (root / "entities" / "ticket.yaml").write_text(ticket, encoding="utf-8")
    return root


class Clock:
    """The records service's clock, set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config")


@pytest.fixture
def env(make_env: EnvFactory, config: Path) -> Env:
    return make_env(config)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 31, 23, 30, tzinfo=UTC))


@pytest.fixture
def records(env: Env, clock: Clock) -> Records:
    return records_service(env.engine, env.model, clock)


def numbers(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["number"], row["code"], row["serial"]


# -- formats ------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "period", "width", "rendered"), [
    ("QT-{YYYY}-{0000}", "year", 4, "QT-2026-0042"),
    ("INV-{YYYY}{MM}-{0000}", "month", 4, "INV-202603-0042"),
    ("SR-{YY}{MM}{DD}/{00000}", "day", 5, "SR-260309/00042"),
    ("{0}", "never", 1, "42"),
    ("No. {000} 号", "never", 3, "No. 042 号"),
    ("{YYYY}{0}", "year", 1, "202642"),
])
def test_a_format_numbers_by_its_finest_date_token(source: str, period: str, width: int,
                                                   rendered: str) -> None:
    f = parse_format(source)
    assert (f.period, f.width) == (period, width)
    assert f.render(42, date(2026, 3, 9)) == rendered


def test_a_number_wider_than_its_padding_keeps_every_digit() -> None:
    f = parse_format("QT-{YYYY}-{0000}")
    assert f.render(1, date(2026, 1, 1)) == "QT-2026-0001"
    assert f.render(123456, date(2026, 1, 1)) == "QT-2026-123456"


def test_period_keys() -> None:
    day = date(2026, 3, 9)
    assert [parse_format(s).period_key(day) for s in ("{0}", "{YY}{0}", "{YYYY}{MM}{0}",
                                                      "{YYYY}{MM}{DD}{0}")] == \
        ["", "2026", "2026-03", "2026-03-09"]


@pytest.mark.parametrize(("source", "at", "words"), [
    ("", 0, "is empty"),
    ("QT-{Q}-{0000}", 3, "unknown token {Q} at character 4"),
    ("QT-{yyyy}-{0000}", 3, "unknown token {yyyy} at character 4"),
    ("QT-{0000}-{00}", 10, "a second counter {00} at character 11"),
    ("QT-{YYYY}", 9, "has no counter"),
    ("QT-{0000", 3, "'{' at character 4 is never closed"),
    ("QT}-{0000}", 2, "'}' at character 3 closes no '{'"),
    ("{MM}-{000}", 0, "{MM} needs a year"),
    ("{YYYY}-{DD}-{000}", 7, "{DD} needs a month"),
    ("{0000000000000000000}", 0, "pads to 19 digits; at most 18"),
    ("A\tB{0}", 1, "character 2 ('\\t') is not printable"),
    ("A\u200bB{0}", 1, "is not printable"),
])
def test_a_bad_format_names_the_problem_and_where(source: str, at: int, words: str) -> None:
    with pytest.raises(FormatProblem) as info:
        parse_format(source)
    assert words in info.value.message
    assert info.value.at == at


def test_config_errors_say_file_line_and_column(tmp_path: Path) -> None:
    bad = TICKET.replace('"M{YY}{MM}-{00}", search: true}',
                         '"M{YY}{MM}-{00}{0}", required: true}').replace(
        '  serial:  {type: autonumber, format: "S{0}"}', '  serial:  {type: autonumber}')
    root = write_config(tmp_path / "config", bad)
    with pytest.raises(ConfigErrors) as info:
        load_model(root)
    path = root / "entities" / "ticket.yaml"
    assert [str(e) for e in info.value.errors] == [
        f"{path}:7:39: fields.code.format 'M{{YY}}{{MM}}-{{00}}{{0}}': a second counter {{0}} "
        "at character 15; a format has exactly one (the first is at character 11)",
        f"{path}:7:60: fields.code.required does not fit an autonumber field (the engine "
        "assigns its numbers: always unique, never written)",
        f"{path}:8:12: fields.serial: an autonumber field needs a format, e.g. "
        '"QT-{YYYY}-{0000}" (tokens are {YYYY} {YY} {MM} {DD} and one counter of zeros such '
        "as {0000})",
    ]


def test_a_format_too_long_for_the_column_is_refused(tmp_path: Path) -> None:
    root = write_config(tmp_path / "config", TICKET.replace("TK-{YYYY}", "T" * 80 + "{YYYY}"))
    with pytest.raises(ConfigErrors) as info:
        load_model(root)
    assert "its numbers could be 104 characters long; at most 100" in str(info.value)


_LITERAL = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Cn", "Zl", "Zp"),
                                 blacklist_characters="{}"), max_size=6)
_DATE_TOKEN = st.sampled_from(["YYYY", "YY", "MM", "DD"])


@settings(max_examples=300, deadline=None)
@given(before=st.lists(st.tuples(_LITERAL, _DATE_TOKEN), max_size=3),
       after=st.lists(st.tuples(_LITERAL, _DATE_TOKEN), max_size=3),
       counter=st.integers(1, 8), tail=_LITERAL, number=st.integers(1, 10**12),
       day=st.dates(date(1900, 1, 1), date(9999, 12, 31)))
def test_a_rendered_number_matches_the_format_it_came_from(
        before: list[tuple[str, str]], after: list[tuple[str, str]], counter: int, tail: str,
        number: int, day: date) -> None:
    """Random literal text and tokens round the one counter: a number written in the format
    matches a pattern built from the format, and its parts read back as the day and the
    number it was written for."""
    tokens = [t for _, t in before + after]
    source = ("".join(f"{text}{{{t}}}" for text, t in before) + "{" + "0" * counter + "}"
              + "".join(f"{text}{{{t}}}" for text, t in after) + tail)
    years = {"YYYY", "YY"} & set(tokens)
    if ("MM" in tokens and not years) or ("DD" in tokens and "MM" not in tokens):
        with pytest.raises(FormatProblem):
            parse_format(source)
        return
    f = parse_format(source)
    widths = {"YYYY": 4, "YY": 2, "MM": 2, "DD": 2}
    pattern = ""
    for piece in re.split(r"(\{[^}]*\})", source):
        name = piece[1:-1]
        if piece.startswith("{") and name in widths:
            pattern += f"([0-9]{{{widths[name]}}})"
        elif piece.startswith("{"):
            pattern += f"(?P<n>[0-9]{{{counter},}})"
        else:
            pattern += re.escape(piece)
    text = f.render(number, day)
    found = re.fullmatch(pattern, text)
    assert found is not None, (source, text, pattern)
    assert int(found.group("n")) == number
    expected = {"YYYY": f"{day.year:04d}", "YY": f"{day.year % 100:02d}",
                "MM": f"{day.month:02d}", "DD": f"{day.day:02d}"}
    dates = [g for i, g in enumerate(found.groups(), 1) if i != found.re.groupindex["n"]]
    assert dates == [expected[t] for t in tokens]
    order = ["never", "year", "month", "day"]
    finest = max(({"YYYY": "year", "YY": "year", "MM": "month", "DD": "day"}[t]
                  for t in tokens), key=order.index, default="never")
    assert f.period == finest


# -- numbers at create --------------------------------------------------------------------

def test_creates_are_numbered_in_order_and_counters_start_again_each_period(
        records: Records, clock: Clock) -> None:
    made = [numbers(records.create(SYSTEM, "ticket", {"subject": f"T{i}"})) for i in range(3)]
    assert made == [("TK-2026-0001", "M2603-01", "S1"), ("TK-2026-0002", "M2603-02", "S2"),
                    ("TK-2026-0003", "M2603-03", "S3")]
    clock.at = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)  # a new month, the same year
    assert numbers(records.create(SYSTEM, "ticket", {"subject": "April"})) == \
        ("TK-2026-0004", "M2604-01", "S4")
    clock.at = datetime(2027, 1, 1, tzinfo=UTC)  # a new year: both dated counters restart
    first = records.create(SYSTEM, "ticket", {"subject": "2027"})
    assert numbers(first) == ("TK-2027-0001", "M2701-01", "S5")
    # what a reader gets back: the number stored, in the record and its history
    assert numbers(records.get(SYSTEM, "ticket", first["id"])) == numbers(first)
    history = {h["field"]: h["new"] for h in records.history(SYSTEM, "ticket",
                                                                   first["id"])}
    assert history["number"] == "TK-2027-0001"
    # the counters are in the database, one per field and period
    with records.engine.connect() as conn:
        t = records.schema.table(AUTONUMBER_TABLE)
        stored = {(r.field, r.period): r.last_number
                  for r in conn.execute(select(t).where(t.c.entity == "ticket"))}
    assert stored == {("number", "2026"): 4, ("number", "2027"): 1, ("code", "2026-03"): 3,
                      ("code", "2026-04"): 1, ("code", "2027-01"): 1, ("serial", ""): 5}


def test_the_period_is_the_day_of_the_create_in_the_organisations_time_zone(
        env: Env, records: Records, clock: Clock) -> None:
    """settings.yaml time_zone (default UTC) says where a day, a month and a year begin."""
    # UTC: 2026-04-01 07:30 in Beijing is still March 31
    clock.at = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    assert records.create(SYSTEM, "ticket", {"subject": "x"})["code"] == "M2603-01"
    # Shanghai: the same instant is April 1 there, and New Year begins at its midnight
    # (16:00 UTC), not at 08:00 the next morning
    shanghai = replace(env.model, settings=replace(env.model.settings,
                                                   time_zone="Asia/Shanghai"))
    local = records_service(env.engine, shanghai, clock)
    assert numbers(local.create(SYSTEM, "ticket", {"subject": "y"}))[:2] == \
        ("TK-2026-0002", "M2604-01")
    clock.at = datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)  # 23:59:59 there
    assert numbers(local.create(SYSTEM, "ticket", {"subject": "z"}))[:2] == \
        ("TK-2026-0003", "M2612-01")
    clock.at = datetime(2026, 12, 31, 16, 0, tzinfo=UTC)  # midnight there
    assert numbers(local.create(SYSTEM, "ticket", {"subject": "new year"}))[:2] == \
        ("TK-2027-0001", "M2701-01")
    # a bulk create numbers its batch in the same period
    made = local.bulk_create(SYSTEM, "ticket", [{"subject": "b1"}, {"subject": "b2"}])
    assert [local.get(SYSTEM, "ticket", r)["number"] for r in made.ids] == \
        ["TK-2027-0002", "TK-2027-0003"]


def test_a_refused_or_dry_run_create_takes_no_number(records: Records) -> None:
    records.create(SYSTEM, "ticket", {"subject": "first"})
    with pytest.raises(Invalid):
        records.create(SYSTEM, "ticket", {"subject": "bad", "hours": -1})
    preview = records.dry_run(
        SYSTEM, lambda u: records.create(SYSTEM, "ticket", {"subject": "dry"}, unit=u))
    assert preview.result["number"] == "TK-2026-0002"  # what it would have been
    assert records.create(SYSTEM, "ticket", {"subject": "second"})["number"] == "TK-2026-0002"


def test_a_deleted_records_number_is_never_given_again(records: Records) -> None:
    first = records.create(SYSTEM, "ticket", {"subject": "first"})
    records.delete(SYSTEM, "ticket", first["id"])
    records.purge(SYSTEM, "ticket", first["id"])
    assert records.create(SYSTEM, "ticket", {"subject": "second"})["number"] == "TK-2026-0002"


def test_bulk_create_numbers_the_batch_in_input_order(records: Records) -> None:
    records.create(SYSTEM, "ticket", {"subject": "before"})
    rows = [{"subject": f"B{i}", "hours": -1 if i == 2 else i} for i in range(7)]
    result = records.bulk_create(SYSTEM, "ticket", rows, batch_size=3)
    assert result.created == 6 and [i for i, _ in result.errors] == [2]
    got = [records.get(SYSTEM, "ticket", rid) for rid in result.ids]
    assert [g["subject"] for g in got] == ["B0", "B1", "B3", "B4", "B5", "B6"]
    assert [g["number"] for g in got] == [f"TK-2026-{n:04d}" for n in range(2, 8)]
    assert [g["serial"] for g in got] == [f"S{n}" for n in range(2, 8)]


def test_bulk_takes_a_batchs_numbers_in_one_statement(records: Records, env: Env) -> None:
    from sqlalchemy import event

    upserts: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if AUTONUMBER_TABLE in statement and statement.lstrip().upper().startswith("INSERT"):
            upserts.append(statement)

    event.listen(records.engine, "before_cursor_execute", seen)
    try:
        records.bulk_create(SYSTEM, "ticket", [{"subject": f"B{i}"} for i in range(50)])
    finally:
        event.remove(records.engine, "before_cursor_execute", seen)
    assert len(upserts) == 3  # one per autonumber field, for all 50 records


# -- never written ------------------------------------------------------------------------

def test_nobody_writes_a_number(records: Records, env: Env) -> None:
    with pytest.raises(Invalid) as info:
        records.create(SYSTEM, "ticket", {"subject": "x", "number": "TK-1"})
    assert info.value.fields == {"number": "is numbered by the engine and cannot be written"}
    row = records.create(SYSTEM, "ticket", {"subject": "x"})
    with pytest.raises(Invalid) as info:
        records.update(SYSTEM, "ticket", row["id"], {"number": "TK-1"}, row["version"])
    assert set(info.value.fields) == {"number"}


def test_the_api_refuses_a_number_with_422_and_lists_it(env: Env) -> None:
    api = env.client(env.users.new_token("admin"))
    answer = api.post("/api/ticket", json={"subject": "x", "serial": "S99"})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"] == {
        "serial": "is numbered by the engine and cannot be written"}
    zh = api.post("/api/ticket", json={"subject": "x", "serial": "S99"},
                  headers={"Accept-Language": "zh-CN"})
    assert zh.json()["error"]["fields"] == {
        "serial": "是系统自动编号的字段\uff0c不能写入"}  # \uff0c: a full-width comma
    made = api.post("/api/ticket", json={"subject": "Printer jam"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["serial"] == "S1" and re.fullmatch(r"TK-\d{4}-0001", body["number"])
    patch = api.patch(f"/api/ticket/{body['id']}", json={"version": body["version"],
                                                         "number": "TK-0"})
    assert patch.status_code == 422
    # lists filter, sort and search by it
    api.post("/api/ticket", json={"subject": "Second"})
    page = api.get("/api/ticket", params={"serial": "S2"}).json()
    assert [i["subject"] for i in page["items"]] == ["Second"]
    page = api.get("/api/ticket", params={"sort": "-serial"}).json()
    assert [i["serial"] for i in page["items"]] == ["S2", "S1"]
    page = api.get("/api/ticket", params={"number__contains": "0002"}).json()
    assert [i["subject"] for i in page["items"]] == ["Second"]
    schema = api.get("/openapi.json").json()["components"]["schemas"]
    assert "number" not in schema["TicketCreate"]["properties"]
    assert schema["Ticket"]["properties"]["number"]["readOnly"] is True


def test_the_form_shows_the_number_and_does_not_take_it(env: Env) -> None:
    from tests.web_helpers import page_token, sign_in

    client = env.client()
    sign_in(client)
    made = env.records.create(SYSTEM, "ticket", {"subject": "Shown"})
    page = client.get(f"/e/ticket/{made['id']}/edit")
    assert page.status_code == 200
    assert made["number"] in page.text
    assert 'name="number"' not in page.text
    token = page_token(client, f"/e/ticket/{made['id']}/edit")
    saved = client.post(f"/e/ticket/{made['id']}/edit", data={
        "csrf_token": token, "version": str(made["version"]), "subject": "Renamed",
        "number": "TK-HACKED"}, follow_redirects=False)
    assert saved.status_code in (200, 303), saved.text
    after = env.records.get(SYSTEM, "ticket", made["id"])
    assert (after["subject"], after["number"]) == ("Renamed", made["number"])


def test_numbers_are_unique_in_the_database(records: Records, env: Env) -> None:
    row = records.create(SYSTEM, "ticket", {"subject": "x"})
    uniques = {tuple(ix["column_names"]) for ix in inspect(env.engine).get_indexes("ticket")
               if ix["unique"]}
    assert {("number",), ("code",), ("serial",)} <= uniques
    t = records.schema.table("ticket")
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError), env.engine.begin() as conn:
        conn.execute(insert(t).values(subject="dup", number=row["number"], created_at=now,
                                      updated_at=now))


# -- records from before the field --------------------------------------------------------

def test_migrate_numbers_each_record_in_its_day_in_the_time_zone(
        make_env: EnvFactory, tmp_path: Path, db_url: str) -> None:
    """A record created at 16:30 UTC on New Year's Eve was created on New Year's Day in
    Shanghai: `crm migrate` numbers it in the new year there."""
    plain = "\n".join(line for line in TICKET.splitlines()
                      if "autonumber" not in line) + "\n"
    root = write_config(tmp_path / "config", plain)
    (root / "settings.yaml").write_text("time_zone: Asia/Shanghai\n", encoding="utf-8")
    env = make_env(root)
    clock = Clock(datetime(2025, 12, 31, 15, 59, tzinfo=UTC))  # 23:59 there
    records = records_service(env.engine, env.model, clock)
    ids = [records.create(SYSTEM, "ticket", {"subject": "old year"})["id"]]
    clock.at = datetime(2025, 12, 31, 16, 30, tzinfo=UTC)  # 00:30 on January 1 there
    ids.append(records.create(SYSTEM, "ticket", {"subject": "new year"})["id"])
    write_config(root)
    out = CliRunner().invoke(main, ["--config", str(root), "--db", db_url, "migrate"])
    assert out.exit_code == 0, out.output
    after = make_env(root)
    numbered = records_service(after.engine, after.model, clock)
    assert [numbers(numbered.get(SYSTEM, "ticket", i)) for i in ids] == [
        ("TK-2025-0001", "M2512-01", "S1"), ("TK-2026-0001", "M2601-01", "S2")]


def test_migrate_numbers_existing_records_in_id_order(make_env: EnvFactory, tmp_path: Path,
                                                      db_url: str) -> None:
    plain = "\n".join(line for line in TICKET.splitlines()
                      if "autonumber" not in line) + "\n"
    root = write_config(tmp_path / "config", plain)
    env = make_env(root)
    clock = Clock(datetime(2025, 12, 31, 12, tzinfo=UTC))
    records = records_service(env.engine, env.model, clock)
    ids = [records.create(SYSTEM, "ticket", {"subject": "a"})["id"],
           records.create(SYSTEM, "ticket", {"subject": "b"})["id"]]
    clock.at = datetime(2026, 1, 2, tzinfo=UTC)
    ids += [records.create(SYSTEM, "ticket", {"subject": c})["id"] for c in "cd"]
    records.delete(SYSTEM, "ticket", ids[3])  # in the recycle bin: numbered too

    write_config(root)
    out = CliRunner().invoke(main, ["--config", str(root), "--db", db_url, "migrate"])
    assert out.exit_code == 0, out.output
    assert "numbered existing records ticket.number: 4 records; ticket.code: 4 records; " \
           "ticket.serial: 4 records" in out.output
    after = make_env(root)
    numbered = records_service(after.engine, after.model, clock)
    got = [numbered.get(SYSTEM, "ticket", i, deleted=i == ids[3]) for i in ids]
    assert [numbers(g) for g in got] == [
        ("TK-2025-0001", "M2512-01", "S1"), ("TK-2025-0002", "M2512-02", "S2"),
        ("TK-2026-0001", "M2601-01", "S3"), ("TK-2026-0002", "M2601-02", "S4")]
    # new records carry on from there; a second migrate numbers nothing
    assert numbers(numbered.create(SYSTEM, "ticket", {"subject": "e"})) == \
        ("TK-2026-0003", "M2601-03", "S5")
    again = CliRunner().invoke(main, ["--config", str(root), "--db", db_url, "migrate"])
    assert again.exit_code == 0 and "numbered" not in again.output, again.output


def test_a_new_format_keeps_the_numbers_given(make_env: EnvFactory, config: Path,
                                              records: Records) -> None:
    first = records.create(SYSTEM, "ticket", {"subject": "old"})
    write_config(config, TICKET.replace("TK-{YYYY}-{0000}", "TICKET/{YYYY}/{000000}"))
    env = make_env(config)
    again = records_service(env.engine, env.model, records.clock)
    assert again.get(SYSTEM, "ticket", first["id"])["number"] == "TK-2026-0001"
    assert again.create(SYSTEM, "ticket", {"subject": "new"})["number"] == \
        "TICKET/2026/000002"


# -- concurrency --------------------------------------------------------------------------

THREADS = 6
EACH = 15


def _in_threads(work: Callable[[int], None]) -> None:
    start = threading.Barrier(THREADS, timeout=30)
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures


def test_concurrent_creates_never_share_a_number(env: Env, clock: Clock) -> None:
    """THREADS writers each creating EACH tickets at once, half of them in bulk: every
    number is given once, and each counter's numbers run 1..n without a gap."""
    records = records_service(env.engine, env.model, clock)

    def work(n: int) -> None:
        for i in range(EACH):
            if i % 5 == 4:
                records.bulk_create(SYSTEM, "ticket", [{"subject": f"{n}-{i}-{j}"}
                                                       for j in range(3)])
            else:
                records.create(SYSTEM, "ticket", {"subject": f"{n}-{i}"})

    _in_threads(work)
    t = records.schema.table("ticket")
    with env.engine.connect() as conn:
        rows = conn.execute(select(t.c.number, t.c.code, t.c.serial)).all()
    expected = THREADS * (EACH // 5 * 4 + EACH // 5 * 3)
    assert len(rows) == expected
    assert sorted(r.number for r in rows) == [f"TK-2026-{n:04d}" for n in
                                              range(1, expected + 1)]
    assert sorted(int(r.code.split("-")[1]) for r in rows) == list(range(1, expected + 1))
    assert sorted(int(r.serial[1:]) for r in rows) == list(range(1, expected + 1))
