"""Line items saved with their parent (engine/runtime/records/lines.py), all or nothing, on
SQLite and PostgreSQL: the rollups over the lines in the same unit, every row's problems at
once, lines of another parent refused untouched, stale lines 409, the child's access."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Forbidden, Invalid
from engine.runtime.records.lines import (
    LineEdit,
    LinesConflict,
    LinesInvalid,
    line_edits_of,
    read_lines,
    save_with_lines,
)
from engine.runtime.rollups.refresh import check_rollups
from tests.conftest import Env, EnvFactory
from tests.lines_world import write_lines_config


@pytest.fixture
def lenv(make_env: EnvFactory, tmp_path: Path) -> Env:
    return make_env(write_lines_config(tmp_path / "lines_config"))


def products(env: Env, *names: str) -> list[int]:
    return [env.records.create(SYSTEM, "product", {"name": n, "list_price": "10"})["id"]
            for n in names]


def count(env: Env, entity: str) -> int:
    t = env.records.compiled(entity).table
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def audit_total(env: Env) -> int:
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(env.records.audit))
                   .scalar_one())


def line(product: int, quantity: Any, price: Any, **more: Any) -> LineEdit:
    return LineEdit({"product": product, "quantity": quantity, "price": price, **more})


def three_lines(env: Env) -> dict[str, Any]:
    a, b, c = products(env, "Valve", "Pump", "Seal")
    return save_with_lines(env.records, env.admin.actor(), "estimate", None,
                           {"name": "Plant retrofit"}, None,
                           [line(a, 2, "100"), line(b, 1, "250.50", discount="10"),
                            line(c, 10, "3")])


def test_create_with_three_lines_keeps_the_totals(lenv: Env) -> None:
    saved = three_lines(lenv)
    # 200 + 225.45 + 30; tax 10 %
    assert saved["line_count"] == 3
    assert saved["subtotal"] == Decimal("455.45")
    assert saved["grand_total"] == Decimal("501.00")
    lines = saved["lines"]
    assert [(r["position"], r["quantity"], r["line_total"]) for r in lines] == [
        (1, 2, Decimal("200.00")), (2, 1, Decimal("225.45")), (3, 10, Decimal("30.00"))]
    assert {r["estimate"] for r in lines} == {saved["id"]}
    assert check_rollups(lenv.records) == []
    # each line audited as created (history shows a create field by field)
    history = lenv.records.history(SYSTEM, "estimate_line", lines[1]["id"])
    assert {h["action"] for h in history} == {"create"}


def test_one_bad_row_saves_nothing_and_names_its_cell(lenv: Env) -> None:
    a, b = products(lenv, "Valve", "Pump")
    before = (count(lenv, "estimate"), count(lenv, "estimate_line"), audit_total(lenv))
    with pytest.raises(LinesInvalid) as caught:
        save_with_lines(lenv.records, lenv.admin.actor(), "estimate", None,
                        {"name": "Plant retrofit"}, None,
                        [line(a, 2, "100"), line(b, "two", "50"), line(a, 1, "5")])
    assert caught.value.status == 422
    assert caught.value.fields == {}
    assert list(caught.value.lines) == [1]
    assert set(caught.value.lines[1]) == {"quantity"}
    assert (count(lenv, "estimate"), count(lenv, "estimate_line"), audit_total(lenv)) == before


def test_every_rows_problems_come_back_at_once_with_the_parents(lenv: Env) -> None:
    (a,) = products(lenv, "Valve")
    with pytest.raises(LinesInvalid) as caught:
        save_with_lines(lenv.records, lenv.admin.actor(), "estimate", None,
                        {"name": ""}, None,
                        [line(a, 0, "100"), line(a, 2, "-1"), line(a, 1, "5"),
                         line(a, 2, "5", discount="60")])
    err = caught.value
    assert set(err.fields) == {"name"}
    assert {row: set(p) for row, p in err.lines.items()} == {
        0: {"quantity"}, 1: {"price"}, 3: {"discount"}}  # row 3: the line's rule
    assert "at least 10 units" in str(err.lines[3]["discount"])
    assert count(lenv, "estimate") == 0


def test_update_edits_removes_adds_and_reorders_in_one_unit(lenv: Env) -> None:
    saved = three_lines(lenv)
    first, second, third = saved["lines"]
    (d,) = products(lenv, "Gasket")
    audit = audit_total(lenv)
    out = save_with_lines(lenv.records, lenv.admin.actor(), "estimate", saved["id"],
                          {"tax_rate": "20"}, saved["version"], [
                              LineEdit({}, third["id"], third["version"]),
                              LineEdit({"quantity": 5}, first["id"], first["version"]),
                              LineEdit({}, second["id"], delete=True),
                              line(d, 1, "70")])
    lines = out["lines"]
    assert [(r["id"], r["position"]) for r in lines] == [
        (third["id"], 1), (first["id"], 2), (lines[2]["id"], 3)]
    assert lines[1]["quantity"] == 5 and lines[1]["version"] == first["version"] + 1
    # 30 + 500 + 70 = 600; tax 20 %
    assert (out["line_count"], out["subtotal"], out["grand_total"]) == (
        3, Decimal("600.00"), Decimal("720.00"))
    assert out["version"] == saved["version"] + 1  # the tax rate; rollups do not count
    assert lenv.records.get(SYSTEM, "estimate_line", second["id"], deleted=True)
    assert check_rollups(lenv.records) == []
    # audit: parent tax_rate, third position, first quantity and position, the removal,
    # the new line's create
    assert audit_total(lenv) - audit == 6
    assert [h["field"] for h in lenv.records.history(SYSTEM, "estimate_line", first["id"])
            if h["action"] == "update"] == ["quantity", "position"] or \
        sorted(h["field"] for h in lenv.records.history(SYSTEM, "estimate_line", first["id"])
               if h["action"] == "update") == ["position", "quantity"]


def test_a_line_of_another_parent_is_refused_and_untouched(lenv: Env) -> None:
    one = three_lines(lenv)
    other = three_lines(lenv)
    theirs = other["lines"][0]
    with pytest.raises(LinesInvalid) as caught:
        save_with_lines(lenv.records, lenv.admin.actor(), "estimate", one["id"], {},
                        one["version"], [
                            LineEdit({"quantity": 99}, theirs["id"], theirs["version"]),
                            LineEdit({}, other["lines"][1]["id"], delete=True),
                            LineEdit({"quantity": 7}, 10**9, 1)])
    assert set(caught.value.lines) == {0, 1, 2}
    assert all(set(p) == {"id"} for p in caught.value.lines.values())
    assert lenv.records.get(SYSTEM, "estimate_line", theirs["id"])["quantity"] == 2
    assert len(read_lines(lenv.records, SYSTEM, "estimate", other["id"])) == 3
    # a new estimate has no lines to name either
    with pytest.raises(LinesInvalid):
        save_with_lines(lenv.records, lenv.admin.actor(), "estimate", None, {"name": "X"},
                        None, [LineEdit({"quantity": 1}, theirs["id"], theirs["version"])])
    assert count(lenv, "estimate") == 2


def test_a_stale_line_version_is_a_conflict_that_saves_nothing(lenv: Env) -> None:
    saved = three_lines(lenv)
    first, second, _ = saved["lines"]
    lenv.records.update(SYSTEM, "estimate_line", second["id"], {"note": "theirs"},
                        second["version"])
    with pytest.raises(LinesConflict) as caught:
        save_with_lines(lenv.records, lenv.admin.actor(), "estimate", saved["id"],
                        {"name": "Mine"}, saved["version"], [
                            LineEdit({"quantity": 3}, first["id"], first["version"]),
                            LineEdit({"quantity": 4}, second["id"], second["version"])])
    assert caught.value.status == 409
    assert caught.value.lines == {1: {"version": "stale"}}
    assert lenv.records.get(SYSTEM, "estimate", saved["id"])["name"] == "Plant retrofit"
    assert lenv.records.get(SYSTEM, "estimate_line", first["id"])["quantity"] == 2


def test_the_child_entitys_access_is_required(lenv: Env) -> None:
    saved = three_lines(lenv)
    first = saved["lines"][0]
    (a,) = products(lenv, "Valve")
    estimator = lenv.users.add("erin", ["estimator"]).actor()
    with pytest.raises(Forbidden):  # may not create lines
        save_with_lines(lenv.records, estimator, "estimate", None, {"name": "Hers"}, None,
                        [line(a, 1, "5")])
    assert count(lenv, "estimate") == 1
    # may change a line, not its discount (readonly for the role)
    with pytest.raises(LinesInvalid) as caught:
        save_with_lines(lenv.records, estimator, "estimate", saved["id"], {},
                        saved["version"],
                        [LineEdit({"discount": "5"}, first["id"], first["version"])])
    assert set(caught.value.lines[0]) == {"discount"}
    out = save_with_lines(lenv.records, estimator, "estimate", saved["id"], {},
                          saved["version"],
                          [LineEdit({"quantity": 3}, first["id"], first["version"])])
    assert out["lines"][0]["quantity"] == 3


def test_the_engine_sets_parent_and_position_and_bounds_hold(lenv: Env) -> None:
    (a,) = products(lenv, "Valve")
    admin = lenv.admin.actor()
    with pytest.raises(LinesInvalid) as caught:
        save_with_lines(lenv.records, admin, "estimate", None, {"name": "X"}, None,
                        [line(a, 1, "5", position=9)])
    assert set(caught.value.lines[0]) == {"position"}
    with pytest.raises(Invalid) as too_many:  # max_rows: 20 (tests/lines_world.py)
        save_with_lines(lenv.records, admin, "estimate", None, {"name": "X"}, None,
                        [line(a, 1, "5") for _ in range(21)])
    assert "lines" in too_many.value.fields
    with pytest.raises(Invalid) as over:
        save_with_lines(lenv.records, admin, "estimate", None, {"name": "X"}, None,
                        [line(a, 1, "5") for _ in range(501)])
    assert "500" in str(over.value.message)
    assert count(lenv, "estimate") == 0


def test_api_line_edits_are_checked_row_by_row() -> None:
    edits = line_edits_of([{"values": {"quantity": 1}}, {"id": 4, "version": 2},
                           {"id": 5, "delete": True}])
    assert edits == [LineEdit({"quantity": 1}), LineEdit({}, 4, 2), LineEdit({}, 5, None, True)]
    with pytest.raises(LinesInvalid) as caught:
        line_edits_of([{"values": []}, "x", {"delete": True}, {"id": True, "colour": 1}])
    assert {row: set(p) for row, p in caught.value.lines.items()} == {
        0: {"values"}, 1: {"_line"}, 2: {"id"}, 3: {"id", "colour"}}
    with pytest.raises(Invalid):
        line_edits_of({"values": {}})
