"""engine/runtime/records/json_rows.py: driver rows straight to the API's JSON.

The changes feed answers through `RecordJson`; these tests hold it to the generic path it
replaced (the typed statement, `Records.row_writer`, `titled`, `record_json`) byte for byte,
key order included: over the demo data, which holds a value of every field type the shipped
config has (computed fields and rollups among them), records in the recycle bin, and readers
with hidden fields and access predicates, on both databases; and to the record read route
(`GET /api/<entity>/<id>`). The one-step conversions of the hot columns (`_fused`) are held
to the composed steps over open-ended driver values on both dialects, without a database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Date, Engine, String, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine
from starlette.testclient import TestClient

from engine.formula.sqlcompile import NumberResult
from engine.metadata import Model
from engine.metadata.roles import Scope
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.demo import fill_demo
from engine.runtime.errors import RecordError
from engine.runtime.records import Records
from engine.runtime.records.computed import value_rounder
from engine.runtime.records.feed import (
    MAX_LIMIT,
    decode_cursor,
    encode_cursor,
    feed_statement,
    read_changes,
)
from engine.runtime.records.json_rows import (
    column_json,
    composed,
    processor,
    raw_select,
)
from engine.runtime.records.regarding import titled
from engine.runtime.schema import apply_plan
from engine.runtime.schema.types import ExactDecimal, UtcDateTime
from engine.runtime.users import Users
from engine.runtime.values import record_json, to_json
from engine.types import ENGINE_COLUMNS, FieldType
from engine.web.app import create_app
from tests.conftest import EnvFactory, module_db_url, shipped_model
from tests.db_templates import TEST_HASHER

SQLITE = sqlite.dialect()
PG = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
# psycopg's type codes (OIDs) of numeric, date and timestamptz
PG_NUMERIC, PG_DATE, PG_TIMESTAMPTZ = 1700, 1082, 1184


def generic_items(records: Records, actor: Actor, entity: str, since: str | None,
                  limit: int) -> list[dict[str, Any]]:
    """The feed's page as the route shaped it before RecordJson: the typed statement's rows,
    each record by `row_writer`, then `titled` and `record_json`."""
    c = records.compiled(entity)
    with records.reading() as conn:
        result = conn.execute(feed_statement(records, actor, entity),
                              {"since": decode_cursor(since), "limit": limit})
        keys = list(result.keys())
        rows = [dict(zip(keys, row, strict=True)) for row in result.all()]
    rows.sort(key=lambda row: row["_seq"] or 0)
    write = records.row_writer(actor, c)
    items = [{"cursor": encode_cursor(row["_seq"]), "action": row["_action"],
              "id": row["_rid"], "at": to_json(row["_at"]),
              "record": None if row["id"] is None else write(row)}
             for row in rows if row["_seq"] is not None]
    shown = iter(titled(records, actor, entity,
                        [i["record"] for i in items if i["record"] is not None]))
    for item in items:
        if item["record"] is not None:
            item["record"] = record_json(next(shown))
    return items


def same_pages(records: Records, actor: Actor, entity: str, limit: int = MAX_LIMIT
               ) -> list[dict[str, Any]]:
    """Every page of the entity's feed for `actor`, each the same JSON text as the generic
    path's; all the items."""
    since: str | None = None
    seen: list[dict[str, Any]] = []
    while True:
        page = read_changes(records, actor, entity, since, limit)
        expected = generic_items(records, actor, entity, since, limit)
        assert json.dumps(page.items) == json.dumps(expected), entity
        seen += page.items
        if not page.items:
            return seen
        since = page.next_cursor


@dataclass
class Demo:
    model: Model
    engine: Engine
    records: Records
    users: Users
    admin: Actor
    token: str


def _demo(url: str) -> Demo:
    engine = open_engine(url)
    model = shipped_model()
    apply_plan(engine, model)
    records = records_service(engine, model)
    users = Users(engine, records.schema, hasher=TEST_HASHER)
    made = fill_demo(records, users, size=3, seed=11)
    # a record of each entity with two in the recycle bin (where one can go): deleted_at
    # and deleted_by show
    for e in model.entities:
        ids = sorted({i["id"] for i in read_changes(records, SYSTEM, e.name, None, 20).items})
        for rid in reversed(ids[1:]):  # the first one stays live
            try:
                records.delete(SYSTEM, e.name, rid)
            except RecordError:  # still referenced: try another
                continue
            break
    return Demo(model, engine, records, users, made.admin.actor(),
                users.new_token(made.admin.name))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Demo]:
    """The shipped config filled with a small demo, once per database for this module."""
    with module_db_url(request.param, tmp_path_factory, "json_rows") as url:
        built = _demo(url)
        yield built
        built.engine.dispose()


def test_every_field_type_reads_as_the_generic_path(demo: Demo) -> None:
    records = demo.records
    marketing = demo.users.add("json_mkt", ["marketing"], password="a-password")  # hidden
    rep = demo.users.add("json_rep", ["sales_rep"], password="a-password",
                         department_id=demo.admin.department_id)  # an access predicate
    readers = [SYSTEM, demo.admin, marketing.actor(), rep.actor()]
    shown: set[FieldType] = set()
    binned = 0
    for e in demo.model.entities:
        for reader in readers:
            if records.policy.scope(reader, e.name, "read") is Scope.NONE:
                continue
            items = same_pages(records, reader, e.name)
            shown |= {e.field(k).type for i in items if i["record"]
                      for k, v in i["record"].items() if v is not None and e.has_field(k)}
            if reader is SYSTEM:
                binned += sum(1 for i in items if i["record"] and "deleted_at" in i["record"])
    assert binned > len(demo.model.entities) // 2
    assert shown == {f.type for e in demo.model.entities for f in e.fields}


def test_the_record_route_answers_the_feeds_json(demo: Demo) -> None:
    """GET /api/<entity>/<id> (record_json of the record the service reads) answers the
    same bytes as the feed's item of that record."""
    client = TestClient(create_app(demo.model, demo.engine, password_hasher=TEST_HASHER),
                        raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {demo.token}"
    read = 0
    for name in demo.model.entity_names:
        items = same_pages(demo.records, demo.admin, name)
        latest = {i["id"]: i["record"] for i in items
                  if i["record"] is not None and "deleted_at" not in i["record"]}
        read += bool(latest)
        for rid in sorted(latest)[:2]:
            resp = client.get(f"/api/{name}/{rid}")
            assert resp.status_code == 200, resp.text
            assert resp.content == json.dumps(latest[rid], ensure_ascii=False,
                                              separators=(",", ":")).encode(), name
    assert read > len(demo.model.entity_names) * 3 // 4


def test_a_small_page_and_an_empty_one_match_too(demo: Demo) -> None:
    same_pages(demo.records, demo.admin, "opportunity", limit=2)
    head = read_changes(demo.records, SYSTEM, "opportunity", None, MAX_LIMIT)
    page = read_changes(demo.records, SYSTEM, "opportunity", head.next_cursor)
    assert page.items == [] and page.next_cursor == head.next_cursor


DEAL = """entity: deal
fields:
  name: {type: text}
  amount: {type: money}
  stage: {type: choice, options: [open, won, lost]}
  moved: {type: boolean, formula: 'ISCHANGED(stage)'}
  due: {type: date}
  days_left: {type: integer, formula: 'DAYS(due, TODAY())'}
  half: {type: percent, formula: 'amount / 2'}
  note: {type: text, formula: 'name & "/" & stage'}
"""


def test_a_formula_only_python_runs_and_one_that_reads_the_clock(
        make_env: EnvFactory, config_dir: Path) -> None:
    """`moved` (ISCHANGED: not in the statement, Python reads it from the typed row) keeps
    its place among the fields; `days_left` reads TODAY(), so the statement is built per
    read: both as the generic path."""
    (config_dir / "entities" / "deal.yaml").write_text(DEAL, encoding="utf-8")
    env = make_env(config_dir)
    env.records.clock = lambda: datetime(2024, 2, 29, 13, 45, 30, tzinfo=UTC)
    r, actor = env.records, env.admin.actor()
    assert r.reads_clock(r.compiled("deal"))
    made = [r.create(actor, "deal", {"name": f"D{n}", "amount": f"{n}.25", "stage": "open",
                                     "due": f"2024-03-{n + 1:02d}"}) for n in range(4)]
    r.update(actor, "deal", made[0]["id"], {"stage": "won"}, made[0]["version"])
    r.delete(actor, "deal", made[1]["id"])
    items = same_pages(r, actor, "deal")
    record = items[-1]["record"]
    names = [k for k in record if k not in ENGINE_COLUMNS]
    assert names == ["name", "amount", "stage", "moved", "due", "days_left", "half", "note"]
    assert record["deleted_at"].endswith("Z") and record["days_left"] == 2  # March 2


def test_fields_hidden_from_the_reader_are_not_fetched(demo: Demo) -> None:
    marketing = demo.users.add("json_mkt_cols", ["marketing"], password="a-password").actor()
    hidden = demo.records.policy.hidden_fields(marketing, demo.model.entity("opportunity"))
    assert {"amount", "weighted"} <= hidden
    fetched = {col.name for col in feed_statement(demo.records, marketing,
                                                  "opportunity").selected_columns}
    assert not fetched & hidden and {"name", "probability", "owner_id"} <= fetched


def test_the_raw_statement_is_the_same_sql(demo: Demo) -> None:
    stmt = feed_statement(demo.records, demo.admin, "opportunity")
    dialect = demo.engine.dialect
    raw, typed = (str(s.compile(dialect=dialect)).split("\nFROM", 1)
                  for s in (raw_select(stmt), stmt))
    # the same text but for each outer column's label, its own name
    assert re.sub(r"(\w+\.(\w+)) AS \2\b", r"\1", raw[0]) == typed[0]
    assert raw[1] == typed[1]


# -- the hot columns in one step, against the composed steps -------------------------------


def outcome(convert: Callable[[Any], Any], value: Any) -> Any:
    try:
        return ("value", type(convert(value)), convert(value))
    except Exception as exc:
        return ("raised", type(exc))


def check(kind: TypeEngine[Any], dialect: Dialect, coltype: Any, value: Any,
          computed: FieldType | None = None) -> None:
    rounder = None if computed is None else value_rounder(computed)
    step = column_json(kind, dialect, coltype, computed)
    assert step is not None
    assert outcome(step, value) == outcome(composed(processor(kind, dialect, coltype),
                                                    rounder), value), value


def stored(kind: TypeEngine[Any], value: Any) -> Any:
    """What SQLite holds for `value` written through `kind` (the bind processors)."""
    bind = kind.dialect_impl(SQLITE).bind_processor(SQLITE)
    return value if bind is None else bind(value)


instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                        timezones=st.sampled_from([UTC, ZoneInfo("Etc/UTC"),
                                                   ZoneInfo("Asia/Shanghai"),
                                                   timezone(timedelta(hours=-5))]))
money = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2)
numbers = st.one_of(st.integers(), st.floats(), st.decimals(allow_nan=True),
                    st.decimals(min_value=-10**9, max_value=10**9, places=6), st.booleans())


@settings(max_examples=300, deadline=None)
@given(instants)
def test_instants_as_the_composed_steps(value: datetime) -> None:
    kind = UtcDateTime()
    check(kind, SQLITE, None, stored(kind, value))
    check(kind, PG, PG_TIMESTAMPTZ, value)
    check(kind, PG, PG_TIMESTAMPTZ, value.astimezone(UTC))


@settings(max_examples=200, deadline=None)
@given(st.dates())
def test_dates_as_the_composed_steps(value: date) -> None:
    check(Date(), SQLITE, None, stored(Date(), value))
    check(Date(), PG, PG_DATE, value)


@settings(max_examples=300, deadline=None)
@given(money, st.sampled_from([(18, 2), (9, 4), (18, 6)]))
def test_exact_decimals_as_the_composed_steps(value: Decimal, shape: tuple[int, int]) -> None:
    kind = ExactDecimal(*shape)
    check(kind, SQLITE, None, stored(kind, value))
    check(kind, SQLITE, None, int(value))  # SQLite keeps a whole REAL as an INTEGER
    check(kind, PG, PG_NUMERIC, value.quantize(Decimal(1).scaleb(-shape[1])))
    check(kind, PG, PG_NUMERIC, value)


@settings(max_examples=400, deadline=None)
@given(numbers, st.sampled_from([FieldType.INTEGER, FieldType.MONEY, FieldType.PERCENT,
                                 FieldType.DECIMAL]))
def test_computed_numbers_as_the_composed_steps(value: Any, computed: FieldType) -> None:
    check(NumberResult(), SQLITE, None, value, computed)
    check(NumberResult(), PG, PG_NUMERIC, value, computed)


def test_edges_of_computed_numbers() -> None:
    for value in (10**27 - 1, 10**27, -10**27, 10**40, float("nan"), float("inf"), -0.0,
                  Decimal("NaN"), Decimal("-0"), Decimal("1E+30"), Decimal("0.005"),
                  Decimal("2.5"), 2.675, True):
        for computed in (FieldType.INTEGER, FieldType.MONEY, FieldType.PERCENT):
            check(NumberResult(), SQLITE, None, value, computed)
            check(NumberResult(), PG, PG_NUMERIC, value, computed)


@pytest.mark.parametrize("dialect", [SQLITE, PG], ids=["sqlite", "postgresql"])
def test_text_and_whole_columns_are_taken_as_the_driver_gives_them(dialect: Dialect) -> None:
    for kind in (String(40), Text(), BigInteger()):
        assert column_json(kind, dialect, None) is None
