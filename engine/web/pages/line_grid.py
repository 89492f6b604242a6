"""The line-item grid of a create/edit form (`lines:` in config/forms): one row per line,
an input per column, the computed columns and the parent's totals shown as the server
computes them.

Inputs are named `lines-<k>-<field>`, with `lines-<k>-id`, `lines-<k>-version` and
`lines-<k>-_delete` for a line that exists; `k` is a row's key, fixed when the row is drawn
(the "add line" button draws a new one from a `<template>` with the next key), and each row
starts with a `lines-order` input holding its key, so the order of those in the POST is the
order of the rows on screen. The save goes through `save_with_lines`
(engine/runtime/records/lines.py): everything or nothing; when refused, the rows come back as
typed, each problem at its cell.

Live totals: the form's preview (POST /e/<entity>/preview) reads the same inputs. Each row's
computed columns are evaluated by the child's compiled formulas, and the parent's rollups
over the lines are aggregated here from those rows as the rollup hook aggregates them (the
rollup's `where`, each value rounded to its places first), so the parent's own formulas
that read its totals (a grand total with tax) preview from them too. No formula runs in
the browser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.fieldtypes import FIELD_TYPES
from engine.messages import msg
from engine.metadata import Model
from engine.metadata.model import Entity, Field, LineGrid
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import STALE_VERSION, RecordError
from engine.runtime.records import Records
from engine.runtime.records.lines import LineEdit, line_problems, read_lines
from engine.runtime.values import ValueProblem, to_json
from engine.types import FieldType
from engine.web.numbers import whole_number
from engine.web.pages.widgets import Evaluated, FormModel, Typed, Widget

PREFIX = "lines"
ORDER_KEY = f"{PREFIX}-order"
NEW_KEY = "__i__"
"""The key of the `<template>` row, replaced by the next key when a row is added."""
_INPUT = re.compile(rf"{PREFIX}-([0-9]{{1,6}})-([a-z_][a-z0-9_]*)")
_SLOT = re.compile(rf"{PREFIX}-(?:[0-9]{{1,6}}|{NEW_KEY})-([a-z][a-z0-9_]*)")
ROW_KEYS = ("_line", "_record", "id", "version")


def slot_field(name: str) -> str:
    """The field a grid cell's picker picks for (`lines-3-product` → `product`); a plain
    field name as it is.

    >>> slot_field("lines-3-product"), slot_field("account")
    ('product', 'account')
    """
    found = _SLOT.fullmatch(name)
    return found.group(1) if found else name


@dataclass
class Row:
    """One row of the grid as posted (or read): its key, the line it edits, what was typed."""

    key: str
    id: int | None = None
    version: int | None = None
    removed: bool = False
    typed: Typed = field(default_factory=dict)
    stored: dict[str, Any] | None = None


@dataclass
class RowView:
    key: str
    id: int | None
    version: int | None
    removed: bool
    cells: list[Widget]
    problems: list[str] = field(default_factory=list)
    """Problems of the row that have no cell: its rules, a line of another record."""


@dataclass
class GridView:
    """What ui_templates/line_grid.html draws."""

    label: str
    columns: list[tuple[str, str]]
    rows: list[RowView]
    blank: RowView
    next_key: int
    may_add: bool
    may_remove: bool
    error: str = ""


class LineGridForm:
    """The grid of one form for one viewer: its rows (posted, or the stored lines), the
    line edits they make, and the parent totals they add up to."""

    def __init__(self, model: Model, records: Records, actor: Actor, language: str,
                 entity: Entity, grid: LineGrid, record_id: int | None) -> None:
        self.model = model
        self.records = records
        self.actor = actor
        self.entity = entity
        self.grid = grid
        self.record_id = record_id
        self.child = model.entity(grid.entity)
        self.fm = FormModel(model, records, actor, language, self.child)
        self.columns = [c for c in grid.columns if c not in self.fm.mask.hidden]
        self._stored: dict[int, dict[str, Any]] | None = None
        self.rows: list[Row] = []
        self.problems: dict[str, dict[str, str]] = {}
        self.error = ""
        self._edit_rows: list[str] = []

    @staticmethod
    def of(model: Model, records: Records, actor: Actor, language: str, entity: Entity,
           record_id: int | None) -> LineGridForm | None:
        """The grid of `entity`'s form, when it has one the viewer may read."""
        grid = model.form(entity.name).lines
        if grid is None or records.policy.scope(actor, grid.entity, "read") is Scope.NONE:
            return None
        return LineGridForm(model, records, actor, language, entity, grid, record_id)

    # -- rows ----------------------------------------------------------------------------

    def stored(self) -> dict[int, dict[str, Any]]:
        """The lines of the edited record, by id."""
        if self._stored is None:
            lines = [] if self.record_id is None else read_lines(
                self.records, self.actor, self.entity.name, self.record_id)
            self._stored = {line["id"]: line for line in lines}
        return self._stored

    def read_rows(self, posted: Mapping[str, list[str]], *, from_post: bool) -> None:
        """The rows a form posted (`from_post`), else the stored lines (a new record: one
        blank row, or `min_rows` of them)."""
        if not from_post:
            if self.record_id is not None:
                self.rows = [Row(str(k), line["id"], line["version"], stored=line)
                             for k, line in enumerate(self.stored().values())]
            else:
                self.rows = [Row(str(k)) for k in range(max(1, self.grid.min_rows))]
            return
        cells: dict[str, dict[str, list[str]]] = {}
        for name, items in posted.items():
            found = _INPUT.fullmatch(name)
            if found:
                cells.setdefault(found.group(1), {})[found.group(2)] = items
        seen: set[str] = set()
        for key in posted.get(ORDER_KEY, []):
            if key in seen or key not in cells:
                continue
            seen.add(key)
            given = cells[key]
            line_id = _whole(given.get("id"))
            stored = self.stored().get(line_id) if line_id is not None else None
            row = Row(key, line_id, _whole(given.get("version")),
                      removed=bool(given.get("_delete", [""])[-1]),
                      typed=self.fm.typed_of({n: v for n, v in given.items()
                                              if n in self.columns}, stored))
            if line_id is not None:
                row.stored = stored
            self.rows.append(row)

    def edits(self) -> list[LineEdit]:
        """The line edits of the rows: a removed line, a changed one, a new one (a new row
        left blank is no line)."""
        out: list[LineEdit] = []
        self._edit_rows = []
        for row in self.rows:
            if row.removed and row.id is None:
                continue
            if row.removed:
                edit = LineEdit({}, row.id, row.version, delete=True)
            elif row.id is not None:
                edit = LineEdit(dict(row.typed), row.id, row.version)
            else:
                values = {n: v for n, v in row.typed.items() if v not in ("", [])}
                if not values:
                    continue
                edit = LineEdit(values)
            out.append(edit)
            self._edit_rows.append(row.key)
        return out

    def refused(self, exc: RecordError) -> None:
        """Keep a refused save's problems of each line, by row key."""
        for index, problems in line_problems(exc).items():
            if index < len(self._edit_rows):
                self.problems[self._edit_rows[index]] = problems
        for key, message in exc.fields.items():
            if key == PREFIX:
                self.error = message

    # -- what the rows compute -----------------------------------------------------------

    def _evaluated(self, row: Row) -> Evaluated:
        """The row as the line would be saved — a new line's formula defaults filled in for
        what was left blank (a unit price from its product), as the save fills them — with
        its computed columns."""
        ev = self.fm.evaluate(row.stored, row.typed)
        with self.records.reading() as conn:
            if row.stored is None:
                given = {n for n, v in row.typed.items() if v not in ("", [])}
                for f in self.child.stored_fields:
                    formula = f.default_formula
                    if formula is None or f.name in given:
                        continue
                    ctx = self.records.record_context(conn, self.fm.compiled, ev.values,
                                                      is_new=True, reader=self.actor)
                    try:
                        ev.values[f.name] = self.fm.compiled.coercers[f.name](
                            to_json(formula.evaluate(ctx)))
                    except ValueProblem:  # the save says why; the preview leaves it blank
                        ev.values[f.name] = None
            ctx = self.records.record_context(conn, self.fm.compiled, ev.values,
                                              prior=row.stored, is_new=row.stored is None,
                                              reader=self.actor)
            for name in self.columns:
                if self.child.field(name).computed:
                    ev.computed[name] = ctx.get((name,))
        return ev

    def counted(self, row: Row) -> bool:
        """Whether the row is a line once saved (not removed, not a blank new row)."""
        return not row.removed and (row.id is not None or any(
            v not in ("", []) for v in row.typed.values()))

    def totals(self) -> dict[str, Any]:
        """The parent's rollups over these lines, computed from the rows as the rollup hook
        computes them from the saved lines."""
        rollups = self.rolled()
        if not rollups:
            return {}
        rows = [r for r in self.rows if self.counted(r)]
        contexts = []
        with self.records.reading() as conn:
            for row in rows:
                contexts.append(self.records.record_context(
                    conn, self.fm.compiled, self._evaluated(row).values,
                    is_new=row.stored is None, reader=self.actor))
            out: dict[str, Any] = {}
            for f in rollups:
                r = f.rollup
                assert r is not None
                picked = [c for c in contexts
                          if r.where_compiled is None or r.where_compiled.holds(c)]
                if r.of is None:
                    out[f.name] = len(picked)
                    continue
                of = self.child.field(r.of)
                numbers = [_rounded(of, c.get((r.of,))) for c in picked]
                out[f.name] = _aggregate(r.agg, [n for n in numbers if n is not None], f)
        return out

    def rolled(self) -> list[Field]:
        """The parent's rollups over the grid's lines."""
        return [f for f in self.entity.rollups if f.rollup is not None
                and f.rollup.child == self.grid.entity and f.rollup.via == self.grid.via]

    # -- drawing ---------------------------------------------------------------------------

    def cells(self, row: Row, key: str | None = None) -> tuple[list[Widget], list[Widget]]:
        """The row's cells, and its computed ones (what the preview swaps)."""
        key = row.key if key is None else key
        ev = self._evaluated(row)
        problems = self.problems.get(row.key, {}) if key == row.key else {}
        out: list[Widget] = []
        for name in self.columns:
            w = self.fm.widget(self.child.field(name), ev, row.typed,
                               problems.get(name, ""), conditional=False)
            w.name = f"{PREFIX}-{key}-{name}"
            if w.pick_url:
                w.pick_url = f"/e/{self.child.name}/pick/{w.name}"
                w.pick_include = ""
            out.append(w)
        return out, [w for w in out if w.kind == "computed"]

    def view(self, language: str) -> GridView:
        policy = self.records.policy
        views = []
        for row in self.rows:
            cells, _ = self.cells(row)
            problems = self.problems.get(row.key, {})
            extra = [msg("%(field)s: %(problem)s", field=self._label(k, language), problem=m)
                     if k not in ROW_KEYS else
                     msg("changed by someone else") if m == STALE_VERSION else m
                     for k, m in problems.items() if k not in self.columns]
            views.append(RowView(row.key, row.id, row.version, row.removed, cells, extra))
        blank, _ = self.cells(Row(NEW_KEY))
        keys = [int(r.key) for r in self.rows if r.key.isdigit()]
        return GridView(
            self.grid.label.get(language),
            [(n, self.child.field(n).label.get(language)) for n in self.columns],
            views, RowView(NEW_KEY, None, None, False, blank),
            max(keys, default=-1) + 1,
            policy.scope(self.actor, self.child.name, "create") is not Scope.NONE,
            policy.scope(self.actor, self.child.name, "delete") is not Scope.NONE,
            self.error)

    def _label(self, name: str, language: str) -> str:
        return self.child.field(name).label.get(language) if self.child.has_field(name) \
            else name

    def preview_cells(self) -> list[Widget]:
        """The computed cells of every row, for the preview's out-of-band swaps."""
        return [w for row in self.rows if not row.removed for w in self.cells(row)[1]]


def _whole(items: list[str] | None) -> int | None:
    raw = items[-1].strip() if items else ""
    number = whole_number(raw, 18) if raw else None
    return number if number else None


def _rounded(f: Field, value: Any) -> Any:
    """A value as a rollup sums it: a number rounded to its field's places."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | Decimal
                                                                   | float):
        return None
    places = FIELD_TYPES[f.type].scale or 0
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places))


def _aggregate(agg: str, numbers: list[Any], f: Field) -> Any:
    places = FIELD_TYPES[f.type].scale or 0
    if agg == "sum":
        total = sum(numbers, Decimal(0))
    elif not numbers:
        return None
    elif agg == "min":
        total = min(numbers)
    elif agg == "max":
        total = max(numbers)
    else:  # avg
        total = sum(numbers, Decimal(0)) / len(numbers)
    result = Decimal(total).quantize(Decimal(1).scaleb(-places))
    return int(result) if f.type is FieldType.INTEGER else result
