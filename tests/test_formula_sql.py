"""Python == SQL, on SQLite and PostgreSQL.

Plain SQLAlchemy tables (with the engine's own column types, so values are stored as the
engine stores them) hold records; every formula is evaluated in Python and in one SELECT,
and the results must be equal and of the same type.

The generated corpus keeps every number within 14 significant digits on SQLite (where
numbers are binary floating point, see docs/formula.md); on PostgreSQL, which computes
in exact numeric, it allows 40.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Context, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Engine,
    ForeignKey,
    FromClause,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from engine.formula import (
    FUNCTIONS,
    MAX_SQL_PARAMETERS,
    MAX_SQL_TERMS,
    EntityScope,
    FieldSpec,
    FixedClock,
    FormulaError,
    MappingContext,
    check,
    compile_formula,
    parse,
)
from engine.formula.sqlcompile import SqlCompiler
from engine.runtime.schema.types import ExactDecimal, UtcDateTime
from engine.types import DECIMAL_SHAPES, FieldType
from tests.test_formula_docs import CLOCK as DOC_CLOCK
from tests.test_formula_docs import (
    SAMPLE,
    SAMPLE_BEFORE,
    SAMPLE_FIELDS,
    SAMPLE_SCOPE,
    examples,
)

CLOCK = FixedClock(datetime(2024, 2, 29, 13, 45, 30, 123456, tzinfo=UTC))

FIELDS: dict[str, dict[str, FieldType]] = {
    "person": {"name": FieldType.TEXT},
    "account": {"name": FieldType.TEXT, "credit_limit": FieldType.MONEY,
                "owner": FieldType.REFERENCE},
    "deal": {"amount": FieldType.MONEY, "qty": FieldType.INTEGER, "rate": FieldType.PERCENT,
             "ratio": FieldType.DECIMAL, "title": FieldType.TEXT, "note": FieldType.TEXTAREA,
             "stage": FieldType.CHOICE, "close": FieldType.DATE,
             "created": FieldType.DATETIME, "flag": FieldType.BOOLEAN,
             "tags": FieldType.MULTICHOICE, "labels": FieldType.MULTICHOICE,
             "account": FieldType.REFERENCE},
    "opportunity": SAMPLE_FIELDS,
}
TARGETS = {("account", "owner"): "person", ("deal", "account"): "account"}
SCOPE = EntityScope({entity: {name: FieldSpec.of(t, TARGETS.get((entity, name)))
                              for name, t in fields.items()}
                     for entity, fields in FIELDS.items()}, "deal")
PERSON = {"id": 1, "name": "Ada Lovelace"}
ACCOUNT = {"id": 1, "name": "Acme", "credit_limit": Decimal("1000.50"), "owner": 1}


def _column(entity: str, name: str, t: FieldType) -> Column[Any]:
    if t in DECIMAL_SHAPES:
        return Column(name, ExactDecimal(*DECIMAL_SHAPES[t]))
    if t is FieldType.REFERENCE:
        return Column(name, BigInteger, ForeignKey(f"{TARGETS[(entity, name)]}.id"))
    if name == "labels":  # a multichoice stored as SQL NULL rather than JSON null
        return Column(name, JSON(none_as_null=True))
    simple = {FieldType.TEXT: String(255), FieldType.TEXTAREA: Text(),
              FieldType.CHOICE: String(64), FieldType.INTEGER: BigInteger(),
              FieldType.DATE: Date(), FieldType.DATETIME: UtcDateTime(),
              FieldType.BOOLEAN: Boolean(), FieldType.MULTICHOICE: JSON()}
    return Column(name, simple[t])


@dataclass
class Joins:
    """Columns for field paths, joining referenced tables as paths need them."""

    tables: dict[str, Table]
    root: str
    aliases: dict[tuple[str, ...], FromClause] = field(default_factory=dict)
    entities: dict[tuple[str, ...], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.aliases[()] = self.tables[self.root]
        self.entities[()] = self.root
        self.from_clause: FromClause = self.tables[self.root]

    def column(self, path: tuple[str, ...]) -> ColumnElement[Any]:
        parent: tuple[str, ...] = ()
        for name in path[:-1]:
            prefix = (*parent, name)
            if prefix not in self.aliases:
                target = TARGETS[(self.entities[parent], name)]
                alias = self.tables[target].alias(f"j{len(self.aliases)}")
                self.from_clause = self.from_clause.outerjoin(
                    alias, self.aliases[parent].c[name] == alias.c.id)
                self.aliases[prefix], self.entities[prefix] = alias, target
            parent = prefix
        return self.aliases[parent].c[path[-1]]


class Db:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        self.dialect = self.engine.dialect.name
        md = MetaData()
        self.tables = {
            entity: Table(entity, md, Column("id", BigInteger, primary_key=True),
                          *(_column(entity, n, t) for n, t in fields.items()))
            for entity, fields in FIELDS.items()}
        md.create_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(self.tables["person"].insert(), [PERSON])
            conn.execute(self.tables["account"].insert(), [ACCOUNT])

    def put(self, entity: str, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.tables[entity].delete())
            conn.execute(self.tables[entity].insert(), rows)

    def evaluate(self, entity: str, scope: EntityScope, formulas: list[str],
                 clock: FixedClock = CLOCK) -> list[list[Any]]:
        """Per row (by id), the SQL value of each formula."""
        joins = Joins(self.tables, entity)
        compiled = [compile_formula(f, scope) for f in formulas]
        exprs = [c.to_sql(joins.column, self.dialect, clock) for c in compiled]
        table = self.tables[entity]
        query = select(table.c.id, *exprs).select_from(joins.from_clause).order_by(table.c.id)
        with self.engine.connect() as conn:
            return [list(row[1:]) for row in conn.execute(query)]


@pytest.fixture
def db(db_url: str) -> Iterator[Db]:
    database = Db(db_url)
    yield database
    database.engine.dispose()


def deal_context(row: dict[str, Any], clock: FixedClock = CLOCK) -> MappingContext:
    values = dict(row)
    if row.get("account"):
        values["account"] = {**ACCOUNT, "owner": PERSON}
    return MappingContext(values, clock)


def same(py_value: Any, sql_value: Any, dialect: str) -> bool:
    """Equal and of one type; SQLite's numbers are compared to 15 significant digits
    because its round() and number parsing can miss the nearest double by one unit in
    the last place (docs/formula.md, SQL)."""
    if type(py_value) is not type(sql_value):
        return False
    if dialect == "sqlite" and isinstance(py_value, Decimal) and py_value != sql_value:
        return bool(_DIGITS15.plus(py_value) == _DIGITS15.plus(sql_value))
    return bool(py_value == sql_value)


_DIGITS15 = Context(prec=15)


def mismatches(db: Db, rows: list[dict[str, Any]], formulas: list[str]) -> list[str]:
    rows = [{**row, "id": i + 1} for i, row in enumerate(rows)]
    db.put("deal", rows)
    sql_rows = db.evaluate("deal", SCOPE, formulas)
    compiled = [compile_formula(f, SCOPE) for f in formulas]
    found = []
    for row, sql_values in zip(rows, sql_rows, strict=True):
        ctx = deal_context(row)
        for source, formula, sql_value in zip(formulas, compiled, sql_values, strict=True):
            py_value = formula.evaluate(ctx)
            if not same(py_value, sql_value, db.dialect):
                found.append(f"{source!r} on row {row['id']}: Python {py_value!r}, "
                             f"{db.dialect} {sql_value!r}")
    return found


# ---- the documented examples, in SQL ----------------------------------------------------


def test_documented_examples_agree_in_sql(db: Db) -> None:
    sql_examples = [(f, r) for f, r in examples()
                    if not any(name in f for name, spec in FUNCTIONS.items() if not spec.sql)]
    assert len(sql_examples) > 100
    db.put("opportunity", [{**SAMPLE, "id": 1}])
    sources = [s for pair in sql_examples for s in pair]
    (values,) = db.evaluate("opportunity", SAMPLE_SCOPE, sources, DOC_CLOCK)
    ctx = MappingContext(SAMPLE, DOC_CLOCK, prior_values=SAMPLE_BEFORE)
    wrong = []
    for i, (formula, expected) in enumerate(sql_examples):
        want = compile_formula(expected, SAMPLE_SCOPE).evaluate(ctx)
        if values[2 * i] != want or values[2 * i + 1] != want:
            wrong.append((formula, values[2 * i], want))
    assert wrong == []


# ---- a fixed corpus over edge-case records ----------------------------------------------

EDGE_ROWS: list[dict[str, Any]] = [
    dict(amount=Decimal("100.10"), qty=3, rate=Decimal("30"), ratio=Decimal("0.1234"),
         title="Hello World", note="  padded  ", stage="won", close=date(2024, 1, 31),
         created=datetime(2024, 2, 28, 10, 0, 0, 500000, tzinfo=UTC), flag=True,
         tags=["a", "b"], labels=["x y"], account=1),
    dict(amount=None, qty=None, rate=None, ratio=None, title=None, note=None, stage=None,
         close=None, created=None, flag=None, tags=None, labels=None, account=None),
    dict(amount=Decimal("-2.50"), qty=0, rate=Decimal("0"), ratio=Decimal("-0.0001"),
         title="", note="", stage="lost", close=date(2023, 12, 31),
         created=datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC), flag=False, tags=[],
         labels=[], account=None),
    dict(amount=Decimal("0.10"), qty=-7, rate=Decimal("12.5"), ratio=Decimal("2.675"),
         title="été 中文 abc", note='x"y\\z', stage="prospecting", close=date(2024, 2, 29),
         created=datetime(2024, 3, 1, tzinfo=UTC), flag=True, tags=["é", "x y"],
         labels=None, account=1),
    dict(amount=Decimal("999999.99"), qty=1000, rate=Decimal("100"), ratio=Decimal("999.9999"),
         title="Zz", note=" ", stage="", close=date(1, 1, 1),
         created=datetime(1, 1, 1, tzinfo=UTC), flag=None, tags=["a"], labels=["a"], account=1),
    dict(amount=Decimal("-999999.99"), qty=-1000, rate=Decimal("0.0001"),
         ratio=Decimal("-999.9999"), title="1.5", note="-3", stage="won",
         close=date(9999, 12, 31), created=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         flag=False, tags=None, labels=None, account=None),
]

CORPUS = """
amount + 0.2 | amount * rate / 100 | amount - qty | qty / 3 | amount / 0 | -amount
amount ^ 2 | 2 ^ 0.5 | (-8) ^ (1 / 3) | POWER(rate, 2) | POWER(qty, -1) | ratio ^ 2
SQRT(amount) | SQRT(-1) | ROUND(amount, 0) | ROUND(ratio, 2) | ROUND(amount * 1.5, -1)
ROUND(ratio, qty) | ROUND(qty, amount) | ROUND(ratio, 1.5) | ROUND(amount, -100) | ABS(amount)
MIN(amount, qty, 5)
MAX(close, DATE(2024, 1, 1)) | MIN(created, NOW()) | MOD(qty, 2) | MOD(amount, 0.3)
MOD(-7, 3) | MOD(ratio, qty) | CEILING(amount) | FLOOR(ratio) | CEILING(-0.5)
LEN(title) | LEFT(title, 3) | LEFT(title, qty) | RIGHT(title, 4) | RIGHT(title, qty)
MID(title, 2, 3) | MID(title, qty, 2) | MID(title, 1, qty) | UPPER(title) | LOWER(title)
TRIM(note) | CONTAINS(title, "o") | CONTAINS(title, note) | BEGINS(title, "He")
BEGINS(title, note) | SUBSTITUTE(title, "o", "0") | SUBSTITUTE(title, "", "0")
SUBSTITUTE(title, note, "-") | TEXT(amount) | TEXT(ratio * 3) | TEXT(qty / 3) | TEXT(rate)
TEXT(close) | TEXT(created) | TEXT(flag) | TEXT(-0.001 * qty) | VALUE("12.50")
VALUE(" -3 ") | VALUE("1e5") | VALUE(title) | VALUE(note) | FIND("o", title)
FIND("o", title, 6) | FIND("", title, 20) | FIND(note, title) | FIND("a", title, qty)
TODAY() | NOW() | DATE(2024, 2, 30) | DATE(2024, 2, 29) | DATE(qty, 1, 1)
DATE(2024, qty, 31) | DATE(amount, 1, 1) | DATE(10000, 1, 1) | DATEVALUE(created)
YEAR(close) | MONTH(created) | DAY(close) | WEEKDAY(close) | WEEKDAY(created)
ADDMONTHS(close, 1) | ADDMONTHS(close, -13) | ADDMONTHS(close, qty) | ADDMONTHS(close, amount)
ADDMONTHS(close, 1000000000000) | ADDDAYS(close, 10) | ADDDAYS(created, 1.5) | created + 0.1
created - 1 | created + amount | created + 1000000000000 | close + qty | close + amount
close - 100000000000 | close - DATE(2024, 1, 1) | DAYS(close, TODAY()) | HOURS_SINCE(created)
HOURS_SINCE(NOW() + 0.01) | MINUTES(NOW(), created) | MINUTES(created, NOW() + 0.01)
MINUTES(created, created - 1.0001) | MINUTES(created, BLANK()) | INCLUDES(tags, "a")
INCLUDES(tags, "é") | INCLUDES(labels, "a")
INCLUDES(tags, title) | ISBLANK(tags) | ISBLANK(labels) | ISBLANK(title) | ISBLANK(amount)
ISBLANK(account) | ISBLANK(account.owner.name) | BLANKVALUE(title, "none")
BLANKVALUE(amount, 0) | BLANKVALUE(close, TODAY()) | IF(amount > 50, "big", "small")
IF(flag, amount) | IF(flag, BLANK(), 3) | CASE(stage, "won", 100, "lost", 0, 50)
CASE(stage, "won", 1) | CASE(stage, "", 1, BLANK(), 2, 3) | CASE(qty, 3, "three", -7, "minus")
AND(flag, amount > 0) | OR(flag, amount > 0) | NOT(flag) | flag && qty > 1 | NOT flag = TRUE
title & " / " & stage | title < "b" | title >= "Hello" | note < title | stage = "won"
stage <> "won" | close < TODAY() | created > NOW() - 1 | created = created | flag = FALSE
account.name | account.credit_limit * 2 | account.owner.name & "!" | account = account
0.1 + 0.2 = 0.3 | ROUND(2.5, 0) | ROUND(-2.5, 0) | ADDMONTHS(DATE(2024, 1, 31), 1)
BLANK() | BLANK() = BLANK() | ISBLANK(BLANK()) | MIN(close, close + 1) | TEXT(1 / 7)
"""


def test_corpus_agrees_on_edge_records(db: Db) -> None:
    formulas = [f.strip() for line in CORPUS.strip().splitlines() for f in line.split(" | ")]
    assert len(formulas) > 140
    assert mismatches(db, EDGE_ROWS, formulas) == []


# ---- generated formulas over generated records ------------------------------------------


@dataclass(frozen=True)
class Num:
    """A generated number formula and bounds: |value| < 10**digits, at most `scale`
    decimal places."""

    src: str
    digits: int
    scale: int


NUM_LEAVES = [Num("amount", 7, 2), Num("qty", 4, 0), Num("rate", 3, 4), Num("ratio", 4, 4),
              Num("account.credit_limit", 4, 2), Num("BLANK()", 1, 0)] + [
    Num(s, len(s.split(".")[0]), len(s.split(".")[1]) if "." in s else 0)
    for s in ["0", "1", "2", "3", "7", "10", "100", "0.1", "0.2", "2.5", "12.345", "0.005"]]
TEXT_LEAVES = ["title", "note", "stage", "account.name", "account.owner.name"] + [
    f'"{t}"' for t in ["", " ", "a", "o", "He", "é", "中", "won", "x y", "1.5", "-3", " 7 ",
                       'a\\"b']]
Gen = Callable[..., Any]


@dataclass(frozen=True)
class Corpus:
    """Typed random formulas; numbers stay within `limit` significant digits."""

    limit: int

    def fits(self, n: Num) -> Num | None:
        return n if n.digits + n.scale <= self.limit else None

    @st.composite
    def number(draw: Gen, self: Corpus, depth: int) -> Num:
        if depth <= 0 or draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(NUM_LEAVES))  # type: ignore[no-any-return]
        n = lambda: draw(self.number(depth - 1))  # noqa: E731
        kind = draw(st.integers(0, 15))
        built: Num | None
        if kind == 0:
            a, b, op = n(), n(), draw(st.sampled_from("+-"))
            built = Num(f"({a.src} {op} {b.src})", max(a.digits, b.digits) + 1,
                        max(a.scale, b.scale))
        elif kind == 1:
            a, b = n(), n()
            built = Num(f"({a.src} * {b.src})", a.digits + b.digits, a.scale + b.scale)
        elif kind == 2:
            a, b = n(), n()
            built = Num(f"({a.src} / {b.src})", a.digits + b.scale + 1, 10)
        elif kind == 3:
            a, e = n(), draw(st.sampled_from([0, 1, 2, 3]))
            built = Num(f"({a.src}) ^ {e}", a.digits * e or 1, a.scale * e)
        elif kind == 4:
            a, e = n(), draw(st.sampled_from(["0.5", "-1"]))
            built = Num(f"POWER({a.src}, {e})", a.digits if e == "0.5" else a.scale + 1, 10)
        elif kind == 5:
            a, places = n(), draw(st.sampled_from([0, 1, 2, -1, -2]))
            built = Num(f"ROUND({a.src}, {places})", a.digits + 1, min(a.scale, max(places, 0)))
        elif kind == 6:
            a, b = n(), n()
            built = Num(f"ROUND({a.src}, {b.src})", a.digits + 1, a.scale)
        elif kind == 7:
            a, fn = n(), draw(st.sampled_from(["ABS", "-", "CEILING", "FLOOR"]))
            built = Num(f"{fn}({a.src})", a.digits + 1, 0 if fn in ("CEILING", "FLOOR")
                        else a.scale)
        elif kind == 8:
            a, b, fn = n(), n(), draw(st.sampled_from(["MIN", "MAX"]))
            built = Num(f"{fn}({a.src}, {b.src})", max(a.digits, b.digits),
                        max(a.scale, b.scale))
        elif kind == 9:
            a, b = n(), n()
            inner = self.fits(Num("", a.digits + b.scale + 1, 10))
            built = Num(f"MOD({a.src}, {b.src})", b.digits, max(a.scale, b.scale)) \
                if inner else None
        elif kind == 10:
            a = n()
            built = Num(f"SQRT({a.src})", a.digits // 2 + 1, 10)
        elif kind == 11:
            t = draw(st.sampled_from(TEXT_LEAVES))
            built = draw(st.sampled_from([Num(f"LEN({t})", 3, 0), Num(f"VALUE({t})", 6, 5),
                                          Num(f'FIND("o", {t})', 3, 0),
                                          Num(f"FIND({t}, {t}, {n().src})", 3, 0)]))
        elif kind == 12:
            d = draw(self.date(depth - 1))
            part = draw(st.sampled_from([("YEAR", 4), ("MONTH", 2), ("DAY", 2), ("WEEKDAY", 1)]))
            when = draw(st.sampled_from([d, draw(self.datetime(depth - 1))]))
            built = Num(f"{part[0]}({when})", part[1], 0)
        elif kind == 13:
            a, b = draw(self.date(depth - 1)), draw(self.date(depth - 1))
            built = draw(st.sampled_from([Num(f"DAYS({a}, {b})", 7, 0),
                                          Num(f"({a} - {b})", 7, 0)]))
        elif kind == 14:
            built = draw(st.sampled_from([
                Num(f"HOURS_SINCE({draw(self.datetime(depth - 1))})", 8, 0),
                Num(f"MINUTES({draw(self.datetime(depth - 1))}, {draw(self.datetime(depth - 1))})",
                    10, 0)]))
        else:
            a, b = n(), n()
            cond, text = draw(self.boolean(depth - 1)), draw(self.text(depth - 1))
            built = draw(st.sampled_from([
                Num(f"IF({cond}, {a.src}, {b.src})", max(a.digits, b.digits),
                    max(a.scale, b.scale)),
                Num(f'CASE({text}, "won", {a.src}, "", 7, {b.src})', max(a.digits, b.digits, 1),
                    max(a.scale, b.scale)),
                Num(f"BLANKVALUE({a.src}, {b.src})", max(a.digits, b.digits),
                    max(a.scale, b.scale))]))
        return (built and self.fits(built)) or draw(st.sampled_from(NUM_LEAVES))

    def num(self, depth: int) -> st.SearchStrategy[str]:
        return self.number(depth).map(lambda n: n.src)

    @st.composite
    def text(draw: Gen, self: Corpus, depth: int) -> str:
        if depth <= 0 or draw(st.integers(0, 2)) == 0:
            return draw(st.sampled_from(TEXT_LEAVES))  # type: ignore[no-any-return]
        t = lambda: draw(self.text(depth - 1))  # noqa: E731
        n = lambda: draw(self.num(depth - 1))  # noqa: E731
        kind = draw(st.integers(0, 8))
        if kind == 0:
            return f"{draw(st.sampled_from(['LEFT', 'RIGHT']))}({t()}, {n()})"
        if kind == 1:
            return f"MID({t()}, {n()}, {n()})"
        if kind == 2:
            return f"{draw(st.sampled_from(['UPPER', 'LOWER', 'TRIM']))}({t()})"
        if kind == 3:
            return f"SUBSTITUTE({t()}, {t()}, {t()})"
        if kind == 4:
            value = draw(st.one_of(self.num(depth - 1), self.date(depth - 1),
                                   self.datetime(depth - 1), self.boolean(depth - 1)))
            return f"TEXT({value})"
        if kind == 5:
            return f"({t()} & {t()})"
        if kind == 6:
            return f"IF({draw(self.boolean(depth - 1))}, {t()}, {t()})"
        if kind == 7:
            return f"BLANKVALUE({t()}, {t()})"
        return f'CASE({n()}, 1, {t()}, 2, "two", {t()})'

    @st.composite
    def boolean(draw: Gen, self: Corpus, depth: int) -> str:
        if depth <= 0 or draw(st.integers(0, 2)) == 0:
            return draw(st.sampled_from(["flag", "TRUE", "FALSE"]))  # type: ignore[no-any-return]
        b = lambda: draw(self.boolean(depth - 1))  # noqa: E731
        t = lambda: draw(self.text(depth - 1))  # noqa: E731
        cmp = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">=", "==", "!="]))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            return f"({draw(self.num(depth - 1))} {cmp} {draw(self.num(depth - 1))})"
        if kind == 1:
            return f"({t()} {cmp} {t()})"
        if kind == 2:
            return f"({draw(self.date(depth - 1))} {cmp} {draw(self.date(depth - 1))})"
        if kind == 3:
            return f"({draw(self.datetime(depth - 1))} {cmp} {draw(self.datetime(depth - 1))})"
        if kind == 4:
            return f"({b()} {draw(st.sampled_from(['AND', 'OR', '&&', '||']))} {b()})"
        if kind == 5:
            return f"{draw(st.sampled_from(['NOT', 'AND', 'OR']))}({b()})"
        if kind == 6:
            return f"{draw(st.sampled_from(['CONTAINS', 'BEGINS']))}({t()}, {t()})"
        if kind == 7:
            value = draw(st.one_of(self.num(depth - 1), self.text(depth - 1),
                                   self.date(depth - 1), self.datetime(depth - 1),
                                   st.sampled_from(["tags", "labels", "account", "flag"])))
            return f"ISBLANK({value})"
        if kind == 8:
            return f"INCLUDES({draw(st.sampled_from(['tags', 'labels']))}, {t()})"
        return f"IF({b()}, {b()}, {b()})"

    @st.composite
    def date(draw: Gen, self: Corpus, depth: int) -> str:
        if depth <= 0 or draw(st.integers(0, 2)) == 0:
            return draw(st.sampled_from(  # type: ignore[no-any-return]
                ["close", "TODAY()", "DATE(2024, 2, 29)", "DATE(2023, 12, 31)", "BLANK()"]))
        d = lambda: draw(self.date(depth - 1))  # noqa: E731
        n = lambda: draw(self.num(depth - 1))  # noqa: E731
        kind = draw(st.integers(0, 6))
        if kind == 0:
            return f"({d()} {draw(st.sampled_from('+-'))} {n()})"
        if kind == 1:
            return f"{draw(st.sampled_from(['ADDMONTHS', 'ADDDAYS']))}({d()}, {n()})"
        if kind == 2:
            return f"DATE({n()}, {n()}, {n()})"
        if kind == 3:
            return f"DATE({draw(st.sampled_from(['2024', '2023', '1900']))}, {n()}, {n()})"
        if kind == 4:
            return f"DATEVALUE({draw(self.datetime(depth - 1))})"
        if kind == 5:
            return f"{draw(st.sampled_from(['MIN', 'MAX']))}({d()}, {d()})"
        return f"IF({draw(self.boolean(depth - 1))}, {d()}, {d()})"

    @st.composite
    def datetime(draw: Gen, self: Corpus, depth: int) -> str:
        if depth <= 0 or draw(st.integers(0, 2)) == 0:
            return draw(st.sampled_from(["created", "NOW()"]))  # type: ignore[no-any-return]
        x = draw(self.datetime(depth - 1))
        # n * 86400 must stay exact on SQLite: 5 more digits than n
        days = draw(self.number(depth - 1))
        offset = days.src if days.digits + days.scale + 5 <= self.limit else "1.5"
        kind = draw(st.integers(0, 2))
        if kind == 0:
            return f"({x} {draw(st.sampled_from('+-'))} {offset})"
        if kind == 1:
            return f"ADDDAYS({x}, {offset})"
        return f"IF({draw(self.boolean(depth - 1))}, {x}, {draw(self.datetime(depth - 1))})"

    def any(self) -> st.SearchStrategy[str]:
        return st.one_of(self.num(3), self.text(3), self.boolean(3), self.date(3),
                         self.datetime(3))


_MONTH_ENDS = [date(2024, 1, 31), date(2024, 2, 29), date(2023, 2, 28), date(2024, 4, 30),
               date(2024, 12, 31), date(1, 1, 1), date(9999, 12, 31)]
_TEXTS = st.one_of(st.none(), st.sampled_from(["", " ", "Hello World", "won", "été 中文",
                                                "  pad  ", "1.5", "-3", "o", "B"]),
                   st.text(alphabet="abcoBé中 .-1", max_size=8))
ROWS = st.fixed_dictionaries({
    "amount": st.one_of(st.none(), st.sampled_from([Decimal(0), Decimal("0.10"), Decimal("-0.01"),
                                                     Decimal("2.50")]),
                        st.decimals(min_value=-1000000, max_value=1000000, places=2)),
    "qty": st.one_of(st.none(), st.sampled_from([0, 1, -1]), st.integers(-1000, 1000)),
    "rate": st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=4)),
    "ratio": st.one_of(st.none(), st.decimals(min_value=-1000, max_value=1000, places=4)),
    "title": _TEXTS, "note": _TEXTS,
    "stage": st.one_of(st.none(), st.sampled_from(["won", "lost", "", "prospecting"])),
    "close": st.one_of(st.none(), st.sampled_from(_MONTH_ENDS),
                       st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))),
    "created": st.one_of(st.none(), st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)), st.just(datetime(2024, 2, 29, 23, 59, 59, 999500,
                                                           tzinfo=UTC))),
    "flag": st.one_of(st.none(), st.booleans()),
    "tags": st.one_of(st.none(), st.lists(st.sampled_from(["a", "b", "é", "x y", ""]),
                                          max_size=3, unique=True)),
    "labels": st.one_of(st.none(), st.lists(st.sampled_from(["a", "o"]), max_size=2,
                                            unique=True)),
    "account": st.one_of(st.none(), st.just(1)),
})


def test_generated_formulas_agree(db: Db) -> None:
    corpus = Corpus(limit=14 if db.dialect == "sqlite" else 40)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(rows=st.lists(ROWS, min_size=1, max_size=4),
           formulas=st.lists(corpus.any(), min_size=1, max_size=12))
    def agree(rows: list[dict[str, Any]], formulas: list[str]) -> None:
        assert mismatches(db, rows, formulas) == []

    agree()


# ---- filtering and sorting in the database ----------------------------------------------


def filtered_and_sorted(db: Db, rows: list[dict[str, Any]], where_source: str,
                        order_source: str) -> tuple[list[int], list[int]]:
    """The ids the database keeps and orders by the two formulas, and the ids Python does."""
    db.put("deal", rows)
    joins = Joins(db.tables, "deal")
    where = compile_formula(where_source, SCOPE)
    order = compile_formula(order_source, SCOPE)
    table = db.tables["deal"]
    query = (select(table.c.id)
             .where(where.sql_condition(joins.column, db.dialect, CLOCK))
             .order_by(order.to_sql(joins.column, db.dialect, CLOCK), table.c.id)
             .select_from(joins.from_clause))
    with db.engine.connect() as conn:
        ids = list(conn.scalars(query))
    kept = [r for r in rows if where.holds(deal_context(r))]
    expected = [r["id"] for r in sorted(kept, key=lambda r: (
        order.evaluate(deal_context(r)), r["id"]))]
    return ids, expected


def test_filter_and_sort_run_in_the_database(db: Db) -> None:
    rows = [{**row, "id": i + 1} for i, row in enumerate(EDGE_ROWS)]
    ids, expected = filtered_and_sorted(db, rows, "amount * rate / 100 > 1 OR ISBLANK(title)",
                                        "BLANKVALUE(amount, 0) * -1")
    assert ids == expected == [5, 1, 2, 3]


QUOTIENTS = ["amount / 100", "amount * rate / 100", "amount / 3", "amount / -8", "MOD(amount, 7)",
             "amount / qty", "MOD(amount, qty)", "ROUND(amount / 7, 2)", "amount / 0.0001"]


def test_division_by_a_literal_agrees_around_the_rounding_limit(db: Db) -> None:
    amounts = ["0", "0.05", "0.07", "12.34", "99999.99", "100000.00", "123456.78",
               "999999999.99", "9999999999.99", "-70000.01", "-123456789.01"]
    rows = [{"amount": Decimal(a), "rate": Decimal("12.5"), "qty": q}
            for a in amounts for q in (0, 3)]
    assert mismatches(db, rows, QUOTIENTS) == []


def test_literal_divisors_and_case_keys_are_written_once() -> None:
    def sql(source: str) -> str:
        expr = compile_formula(source, SCOPE).to_sql(
            select_column, "sqlite", CLOCK)
        return str(expr.compile(dialect=sqlite.dialect()))

    assert "nullif" not in sql("amount / 100") and "nullif" in sql("amount / qty")
    assert "nullif" in sql("amount / (qty - qty)")
    case = sql('CASE(stage, "won", 1, "lost", 0, 2)')
    assert case.count("deal.stage") == 1 and case.startswith("CASE deal.stage WHEN")


def select_column(path: tuple[str, ...]) -> ColumnElement[Any]:
    table = Table("deal", MetaData(), *(Column(n, String()) for n in FIELDS["deal"]))
    return table.c[path[0]]


def test_blank_conditions_are_false_in_a_where_clause(db: Db) -> None:
    db.put("deal", [{**row, "id": i + 1} for i, row in enumerate(EDGE_ROWS)])
    joins = Joins(db.tables, "deal")
    rule = compile_formula("NOT(amount > 0)", SCOPE)
    query = select(db.tables["deal"].c.id).where(
        rule.sql_condition(joins.column, db.dialect, CLOCK)).order_by("id")
    with db.engine.connect() as conn:
        assert list(conn.scalars(query)) == [3, 6]  # row 2 (blank amount) is not kept


# ---- compile-time properties ------------------------------------------------------------


def test_python_only_functions_refuse_sql() -> None:
    formula = compile_formula('stage = "won" AND\n  ISCHANGED(stage)', SCOPE)
    assert not formula.sql_capable
    with pytest.raises(FormulaError) as caught:
        formula.to_sql(lambda path: Joins({}, "deal").column(path), "sqlite", CLOCK)
    assert str(caught.value) == ("2:3: ISCHANGED cannot run in the database, so this formula "
                                 "can't be filtered or sorted on")


def test_filters_need_conditions() -> None:
    with pytest.raises(FormulaError, match="a filter needs a condition, not a number"):
        compile_formula("amount", SCOPE).sql_condition(lambda p: None, "sqlite", CLOCK)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_today_and_now_are_parameters_from_the_clock(dialect: str) -> None:
    formula = compile_formula("close < TODAY() AND created < NOW()", SCOPE)
    table = Table("deal", MetaData(), Column("close", Date), Column("created", UtcDateTime))
    expr = formula.to_sql(lambda p: table.c[p[0]], dialect, CLOCK)
    compiled = expr.compile(dialect=(sqlite if dialect == "sqlite" else postgresql).dialect())
    sql = str(compiled).lower()
    assert "current" not in sql and "now(" not in sql
    values = set(compiled.params.values())
    if dialect == "sqlite":
        assert values == {"2024-02-29", "2024-02-29 13:45:30.123456"}
    else:
        assert values == {date(2024, 2, 29), CLOCK.now()}


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="formulas compile to sqlite and postgresql, not 'mysql'"):
        compile_formula("1", SCOPE).to_sql(lambda p: None, "mysql", CLOCK)  # type: ignore[arg-type,return-value]


def test_a_second_engine_reads_the_same_values(tmp_path: Any) -> None:
    """Results come back as formula values, not driver values (Decimal, date, bool)."""
    database = Db(f"sqlite:///{tmp_path / 'x.db'}")
    database.put("deal", [{**EDGE_ROWS[0], "id": 1}])
    (values,) = database.evaluate("deal", SCOPE, ["amount / 4", "close + 1", "flag", "tags",
                                                  "created", "account"])
    assert values == [Decimal("25.025"), date(2024, 2, 1), True, ("a", "b"),
                      EDGE_ROWS[0]["created"], 1]
    database.engine.dispose()


# ---- repeated operands and the bound on SQL size -----------------------------------------

NESTED = ["2^2^2^2^2^2", "MOD(MOD(MOD(MOD(amount, qty), 7), qty), 3)",
          "SQRT(SQRT(SQRT(SQRT(SQRT(SQRT(ratio))))))",
          "(((amount + 0.1) * 1.1 + 0.1) * 1.1 + 0.1) * 1.1",
          "BLANKVALUE(BLANKVALUE(BLANKVALUE(BLANKVALUE(BLANKVALUE(title, note), note), note), "
          "title), stage)",
          "ROUND(ROUND(ROUND(ROUND(ratio * 3.3, qty), qty), qty), qty)",
          "(ratio ^ 2) ^ (1 / 3) ^ 2 + POWER(POWER(ABS(ratio), 0.5), MOD(qty, 3))",
          "IF(MOD(MOD(qty, 4), 3) > 1, MOD(MOD(qty, 4), 3), -MOD(MOD(qty, 4), 3))"]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()],
                         ids=["sqlite", "postgresql"])
@pytest.mark.parametrize("source", [
    *NESTED, "2^2^2^2^2^2^2^2^2", "MOD(MOD(MOD(MOD(MOD(MOD(amount, qty), 7), qty), 3), qty), 5)"])
def test_repeated_operands_are_written_once(dialect: Any, source: str) -> None:
    """A builder that uses an operand twice (a guard, then the value) reads it from a
    one-row derived table instead of copying it: nesting adds, never multiplies
    (2^2^2^2^2^2^2^2^2 was 13 MB of SQL, nested MOD 300 MB). Built with the compiler
    itself: compile_formula refuses the deepest for SQLite's parser."""
    expr = SqlCompiler(select_column, dialect.name, CLOCK).expr(check(parse(source), SCOPE))
    assert len(str(expr.compile(dialect=dialect))) < 12_000


def test_shared_operands_agree(db: Db) -> None:
    # 2^256 has more digits than Python's 60: four powers deep is enough here
    formulas = ["2^2^2^2^2 + qty", *NESTED[1:]]
    assert mismatches(db, EDGE_ROWS, formulas) == []


def test_shared_operands_filter_and_sort(db: Db) -> None:
    rows = [{**row, "id": i + 1} for i, row in enumerate(EDGE_ROWS)]
    ids, expected = filtered_and_sorted(
        db, rows, "MOD(MOD(MOD(amount * 100, 7), 5), 3) >= 0",
        "SQRT(SQRT(SQRT(ABS(BLANKVALUE(amount, 0)) + 1))) * -1")
    assert ids == expected and len(ids) == 5


def test_sql_past_the_bound_is_refused_where_the_formula_is_compiled() -> None:
    many_dates = "MAX(" + ", ".join(["YEAR(DATE(qty, qty, qty))"] * 90) + ")"
    with pytest.raises(FormulaError) as caught:
        compile_formula(many_dates, SCOPE)
    assert caught.value.message.startswith(
        f"the formula's SQL has more than {MAX_SQL_TERMS:,} terms (the limit)")
    assert (caught.value.line, caught.value.col) == (1, 1)  # the MAX that passes it
    compile_formula("MAX(" + ", ".join(["YEAR(DATE(qty, qty, qty))"] * 20) + ")", SCOPE)


def test_sql_parameters_are_bounded() -> None:
    """Values from the formula are parameters (a date literal's guards hold several)."""
    dates = "MAX(" + ", ".join(f"DATE(2024, 2, {d})" for d in range(1, 31)) + ")"
    with pytest.raises(FormulaError) as caught:
        compile_formula(dates, SCOPE)
    assert caught.value.message.startswith(
        f"the formula's SQL has more than {MAX_SQL_PARAMETERS:,} parameters (the limit)")
    compile_formula("MAX(" + ", ".join(f"DATE(2024, 2, {d})" for d in range(1, 11)) + ")",
                    SCOPE)


def test_sql_too_deep_for_sqlite_is_refused_where_the_formula_is_compiled() -> None:
    """SQLite's parser has a bounded stack: past it every query with the formula would
    fail, so the formula is refused when compiled, on any database."""
    with pytest.raises(FormulaError) as caught:
        compile_formula("ABS(" * 40 + "qty" + ")" * 40, SCOPE)
    assert str(caught.value) == (
        "1:1: the formula's SQL nests too deeply for SQLite's parser (the limit); simplify "
        "it or split it into formula fields")
    compile_formula("ABS(" * 20 + "qty" + ")" * 20, SCOPE)
