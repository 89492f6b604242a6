"""Type checking: result types, unknown names with suggestions, arity, argument types,
mixed types, cycles between formula fields; every error with its line and column."""

from __future__ import annotations

import pytest

from engine.formula import (
    EntityScope,
    FieldSpec,
    FormulaCycleError,
    FormulaError,
    FType,
    check,
    check_cycles,
    compile_formula,
    parse,
)
from engine.types import FieldType

ENTITIES = {
    "opportunity": {
        "amount": FieldSpec.of(FieldType.MONEY),
        "probability": FieldSpec.of(FieldType.PERCENT),
        "quantity": FieldSpec.of(FieldType.INTEGER),
        "name": FieldSpec.of(FieldType.TEXT),
        "stage": FieldSpec.of(FieldType.CHOICE),
        "close_date": FieldSpec.of(FieldType.DATE),
        "created_at": FieldSpec.of(FieldType.DATETIME),
        "won": FieldSpec.of(FieldType.BOOLEAN),
        "tags": FieldSpec.of(FieldType.MULTICHOICE),
        "account": FieldSpec.of(FieldType.REFERENCE, "account"),
        "owner": FieldSpec.of(FieldType.USER, "user"),
    },
    "account": {
        "name": FieldSpec.of(FieldType.TEXT),
        "credit_limit": FieldSpec.of(FieldType.MONEY),
        "owner": FieldSpec.of(FieldType.USER, "user"),
        "parent": FieldSpec.of(FieldType.REFERENCE, "account"),
    },
    "user": {"name": FieldSpec.of(FieldType.TEXT), "department": FieldSpec.of(
        FieldType.DEPARTMENT, "department")},
    "department": {"name": FieldSpec.of(FieldType.TEXT)},
}
SCOPE = EntityScope(ENTITIES, "opportunity")


def type_of(source: str) -> FType:
    return check(parse(source), SCOPE).type


def error_of(source: str) -> str:
    with pytest.raises(FormulaError) as caught:
        compile_formula(source, SCOPE)
    return str(caught.value)


@pytest.mark.parametrize(("source", "ftype"), [
    ("amount * probability / 100", FType.NUMBER),
    ("name & \"!\"", FType.TEXT),
    ("stage = \"won\"", FType.BOOLEAN),
    ("close_date + 30", FType.DATE),
    ("30 + close_date", FType.DATE),
    ("close_date - 30", FType.DATE),
    ("close_date - TODAY()", FType.NUMBER),
    ("created_at + 0.5", FType.DATETIME),
    ("NOW()", FType.DATETIME),
    ("tags", FType.MULTICHOICE),
    ("account", FType.REFERENCE),
    ("account.owner.department.name", FType.TEXT),
    ("account.parent.parent.credit_limit", FType.NUMBER),
    ("account = account.parent", FType.BOOLEAN),
    ("IF(won, amount, 0)", FType.NUMBER),
    ("IF(won, BLANK(), amount)", FType.NUMBER),
    ("IF(won, BLANK())", FType.BLANK),
    ("BLANK()", FType.BLANK),
    ("BLANK() + 1", FType.BLANK),  # strict operators and functions of BLANK() are BLANK()
    ("close_date - BLANK()", FType.BLANK),
    ("ROUND(BLANK(), 2) & \"x\"", FType.TEXT),
    ("-BLANK() = (NOT BLANK())", FType.BLANK),
    ("BLANK() & BLANK()", FType.TEXT),
    ("AND(BLANK(), won)", FType.BOOLEAN),
    ("CASE(stage, \"won\", 1, BLANK(), 2, 0)", FType.NUMBER),
    ("MAX(close_date, TODAY())", FType.DATE),
    ("ADDDAYS(created_at, 1)", FType.DATETIME),
    ("PRIORVALUE(close_date)", FType.DATE),
    ("ISCHANGED(stage) AND NOT ISNEW()", FType.BOOLEAN),
    ("TEXT(won)", FType.TEXT),
])
def test_result_types(source: str, ftype: FType) -> None:
    assert type_of(source) is ftype


@pytest.mark.parametrize(("source", "error"), [
    ("amout * 2", "1:1: unknown field 'amout'; did you mean 'amount'?"),
    ("Amount * 2", "1:1: unknown field 'Amount'; did you mean 'amount'?"),
    ("2 *\n  probabilty", "2:3: unknown field 'probabilty'; did you mean 'probability'?"),
    ("xyz", "1:1: unknown field 'xyz'"),
    ("account.nmae", "1:9: unknown field 'nmae' on account; did you mean 'name'?"),
    ("account.owner.nam", "1:15: unknown field 'nam' on account.owner; did you mean 'name'?"),
    ("amount.name", "1:8: amount is a number, not a reference, so it has no field 'name'"),
    ("today > close_date", "1:1: unknown field 'today'; TODAY is a function: write TODAY()"),
    ("ROUDN(amount, 2)", "1:1: unknown function ROUDN; did you mean 'ROUND'?"),
    ("ZZZQ(1)", "1:1: unknown function ZZZQ"),
])
def test_unknown_names(source: str, error: str) -> None:
    assert error_of(source) == error


@pytest.mark.parametrize(("source", "error"), [
    ("ROUND(amount, 2, 3)", "1:1: ROUND takes 1 to 2 arguments, not 3: ROUND(number, places)"),
    ("LEFT(name)", "1:1: LEFT takes 2 arguments, not 1: LEFT(text, count)"),
    ("ABS()", "1:1: ABS takes 1 argument, not 0: ABS(number)"),
    ("TODAY(1)", "1:1: TODAY takes no arguments, not 1: TODAY()"),
    ("AND()", "1:1: AND takes at least 1 argument, not 0: AND(condition, ...)"),
    ("CASE(stage, \"a\")",
     "1:1: CASE takes at least 3 arguments, not 2: CASE(value, match1, result1, ..., else)"),
    ("1 + IF(won)", "1:5: IF takes 2 to 3 arguments, not 1: IF(condition, then, else)"),
])
def test_arity(source: str, error: str) -> None:
    assert error_of(source) == error


@pytest.mark.parametrize(("source", "error"), [
    ("LEFT(name, \"3\")", "1:12: LEFT needs a number as argument 2, not text"),
    ("ROUND(name, 2)", "1:7: ROUND needs a number as argument 1, not text"),
    ("YEAR(amount)", "1:6: YEAR needs a date or a datetime as argument 1, not a number"),
    ("IF(amount, 1, 2)", "1:4: IF needs a boolean as argument 1, not a number"),
    ("IF(won, 1, \"x\")",
     "1:12: IF needs one type here: argument 2 is a number, argument 3 is text"),
    ("CASE(stage, \"a\", 1, 2, 3)",
     "1:21: CASE needs one type here: argument 1 is text, argument 4 is a number"),
    ("MIN(amount, close_date)",
     "1:13: MIN needs one type here: argument 1 is a number, argument 2 is a date"),
    ("INCLUDES(name, \"x\")", "1:10: INCLUDES needs a multichoice field as argument 1, not text"),
    ("TEXT(tags)", "1:6: TEXT needs a number or text or a boolean or a date or a datetime as "
                   "argument 1, not a multichoice field"),
    ("ADDMONTHS(created_at, 1)", "1:11: ADDMONTHS needs a date as argument 1, not a datetime"),
    ("DAYS(close_date, created_at)", "1:18: DAYS needs a date as argument 2, not a datetime"),
    ("ISCHANGED(account.name)",
     "1:11: ISCHANGED needs a field of this record, like ISCHANGED(stage)"),
    ("PRIORVALUE(1 + 2)", "1:12: PRIORVALUE needs a field of this record, like PRIORVALUE(stage)"),
    ("amount & \"x\"",
     "1:8: & joins texts, but the left side is a number: convert it with TEXT(...)"),
    ("\"x\" & close_date",
     "1:5: & joins texts, but the right side is a date: convert it with TEXT(...)"),
    ("amount + \"x\"", "1:8: cannot add a number and text"),
    ("name + BLANK()", "1:6: cannot add text and BLANK()"),
    ("BLANK() - name", "1:9: cannot subtract BLANK() and text"),
    ("ROUND(BLANK(), name)", "1:16: ROUND needs a number as argument 2, not text"),
    ("close_date + close_date", "1:12: cannot add two dates"),
    ("created_at - created_at", "1:12: cannot subtract two datetimes"),
    ("amount ^ name", "1:8: ^ needs numbers, not a number and text"),
    ("name * 2", "1:6: * needs numbers, not text and a number"),
    ("close_date > NOW()", "1:12: cannot compare a date with a datetime"),
    ("amount = \"5\"", "1:8: cannot compare a number with text"),
    ("won < TRUE", "1:5: < cannot compare booleans"),
    ("tags = tags", "1:6: = cannot compare multichoice fields"),
    ("NOT amount", "1:5: NOT needs a condition, not a number"),
    ("-name", "1:2: minus needs a number, not text"),
    ("won AND amount", "1:9: AND needs conditions on both sides, not a number"),
])
def test_type_errors(source: str, error: str) -> None:
    assert error_of(source) == error


def test_expected_type() -> None:
    assert compile_formula("amount > 5", SCOPE, expect=FType.BOOLEAN).type is FType.BOOLEAN
    assert compile_formula("BLANK()", SCOPE, expect=FType.NUMBER).type is FType.BLANK
    with pytest.raises(FormulaError) as caught:
        compile_formula("  amount * 2", SCOPE, expect=FType.BOOLEAN)
    assert str(caught.value) == "1:3: this formula gives a number, but a boolean is needed here"


def test_references_functions_and_sql_capability() -> None:
    f = compile_formula("IF(ISCHANGED(stage), account.owner.name, PRIORVALUE(name))", SCOPE)
    assert f.references == {("stage",), ("account", "owner", "name"), ("name",)}
    assert f.functions == {"IF", "ISCHANGED", "PRIORVALUE"}
    assert not f.sql_capable
    assert str(f.sql_problem) == ("1:4: ISCHANGED cannot run in the database, so this "
                                  "formula can't be filtered or sorted on")
    assert compile_formula("HOURS_SINCE(created_at) > 4", SCOPE).sql_capable


def _formulas(**sources: str) -> dict[str, object]:
    scope = EntityScope({"opportunity": {
        **ENTITIES["opportunity"],
        **{name: FieldSpec(FType.NUMBER) for name in sources}}}, "opportunity")
    return {name: compile_formula(src, scope) for name, src in sources.items()}


def test_cycle_between_two_formula_fields() -> None:
    formulas = _formulas(a="amount + b", b="2 *\n a", c="a + 1")
    with pytest.raises(FormulaCycleError) as caught:
        check_cycles(formulas)  # type: ignore[arg-type]
    err = caught.value
    assert (err.field, err.cycle) == ("b", ("a", "b", "a"))
    assert str(err) == "2:2: formula cycle: a -> b -> a"


def test_cycle_through_three_and_self_reference() -> None:
    with pytest.raises(FormulaCycleError) as caught:
        check_cycles(_formulas(a="b", b="c", c="IF(won, a, 0)"))  # type: ignore[arg-type]
    assert caught.value.cycle == ("a", "b", "c", "a")
    assert (caught.value.line, caught.value.col) == (1, 9)
    with pytest.raises(FormulaCycleError) as caught:
        check_cycles(_formulas(total="total + 1"))  # type: ignore[arg-type]
    assert str(caught.value) == "1:1: formula cycle: total -> total"


def test_no_cycle_in_a_diamond() -> None:
    check_cycles(_formulas(a="b + c", b="d", c="d * 2", d="amount"))  # type: ignore[arg-type]


def test_cycle_across_entities_with_a_resolver() -> None:
    scope = EntityScope({
        "opportunity": {"account": FieldSpec.of(FieldType.REFERENCE, "account"),
                        "score": FieldSpec(FType.NUMBER)},
        "account": {"best": FieldSpec.of(FieldType.REFERENCE, "opportunity"),
                    "rating": FieldSpec(FType.NUMBER)},
    }, "opportunity")
    account_scope = EntityScope(scope.entities, "account")
    formulas = {"opportunity.score": compile_formula("account.rating * 2", scope),
                "account.rating": compile_formula("best.score + 1", account_scope)}
    targets = {"opportunity": {"account": "account"}, "account": {"best": "opportunity"}}

    def resolve(key: str, path: tuple[str, ...]) -> str | None:
        entity = key.split(".")[0]
        for name in path[:-1]:
            entity = targets[entity][name]
        return f"{entity}.{path[-1]}"

    with pytest.raises(FormulaCycleError) as caught:
        check_cycles(formulas, resolve)
    assert caught.value.cycle == ("opportunity.score", "account.rating", "opportunity.score")
    assert caught.value.field == "account.rating"
