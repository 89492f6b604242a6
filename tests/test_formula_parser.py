"""The parser: precedence, literals, paths, positions of syntax errors, limits, caching."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.formula import (
    MAX_NESTING,
    MAX_NODES,
    MAX_SOURCE_LENGTH,
    FormulaError,
    caret_excerpt,
    parse,
)
from engine.formula.ast import Binary, Boolean, Call, FieldRef, Node, Number, Text, Unary


def show(node: Node) -> str:
    """The tree fully parenthesized, to make precedence visible."""
    if isinstance(node, Number):
        return str(node.value)
    if isinstance(node, Text):
        return repr(node.value)
    if isinstance(node, Boolean):
        return "TRUE" if node.value else "FALSE"
    if isinstance(node, FieldRef):
        return ".".join(node.path)
    if isinstance(node, Unary):
        return f"({node.op} {show(node.operand)})"
    if isinstance(node, Binary):
        return f"({show(node.left)} {node.op} {show(node.right)})"
    return f"{node.name}({', '.join(show(a) for a in node.args)})"


@pytest.mark.parametrize(("source", "tree"), [
    # one row per step of the precedence table, lowest first
    ("a OR b AND c", "(a OR (b AND c))"),
    ("a AND b OR c", "((a AND b) OR c)"),
    ("NOT a AND b", "((NOT a) AND b)"),
    ("NOT a = b", "(NOT (a = b))"),
    ("a = b & c", "(a = (b & c))"),
    ("a & b + c", "(a & (b + c))"),
    ("a + b * c", "(a + (b * c))"),
    ("a * b ^ c", "(a * (b ^ c))"),
    ("-a ^ 2", "((- a) ^ 2)"),
    ("2 ^ 3 ^ 2", "((2 ^ 3) ^ 2)"),
    ("10 - 4 - 3", "((10 - 4) - 3)"),
    ("8 / 4 / 2", "((8 / 4) / 2)"),
    ("a - -b", "(a - (- b))"),
    ("(a + b) * c", "((a + b) * c)"),
    ("a || b && c", "(a OR (b AND c))"),
    ("a == b", "(a = b)"),
    ("a != b", "(a <> b)"),
    ("a <> b", "(a <> b)"),
    ("a <= b", "(a <= b)"),
    ("a >= b", "(a >= b)"),
    ("NOT NOT a", "(NOT (NOT a))"),
    ("not a and b or c", "(((NOT a) AND b) OR c)"),
    ("NOT(a)", "(NOT a)"),
    ("AND(a, b, c)", "AND(a, b, c)"),
    ("or(a, b)", "OR(a, b)"),
    ("round(amount, 2)", "ROUND(amount, 2)"),
    ("Today()", "TODAY()"),
    ("andrew + orson", "(andrew + orson)"),
    ("IF(a > 1, \"x\", \"y\")", "IF((a > 1), 'x', 'y')"),
])
def test_precedence_and_spelling(source: str, tree: str) -> None:
    assert show(parse(source)) == tree


def test_literals() -> None:
    assert parse("12") == Number(Decimal("12"), 1, 1)
    assert parse("3.50") == Number(Decimal("3.50"), 1, 1)
    assert parse('"say \\"hi\\" \\\\ there"') == Text('say "hi" \\ there', 1, 1)
    assert parse('"中文 é"') == Text("中文 é", 1, 1)
    assert parse("true") == Boolean(True, 1, 1)
    assert parse(" FALSE") == Boolean(False, 1, 2)
    assert parse("BLANK()") == Call("BLANK", (), 1, 1)


def test_positions_of_nodes() -> None:
    tree = parse("amount *\n  account.owner.name")
    assert isinstance(tree, Binary)
    assert (tree.line, tree.col) == (1, 8)
    right = tree.right
    assert isinstance(right, FieldRef)
    assert right.path == ("account", "owner", "name")
    assert right.positions == ((2, 3), (2, 11), (2, 17))


@pytest.mark.parametrize(("source", "error"), [
    ("1 +", "1:4: the formula ends too early: expected a value"),
    ("(1", "1:3: the formula ends too early: expected ')'"),
    ("1 2", "1:3: unexpected '2': expected an operator, ',' or ')'"),
    ("IF(a,)", "1:6: expected a value, found ')'"),
    ("IF(,a)", "1:4: expected a value or ')', found ','"),
    ('"abc', '1:1: this text has no closing "'),
    ("'abc'", '1:1: texts are written in double quotes: "like this"'),
    ("a $ b", "1:3: unexpected character '$'"),
    ('"a\\nb"', '1:3: unknown escape "\\n" in a text: only \\" and \\\\ are escapes'),
    ("x +\n  * 2", "2:3: expected a value, found '*'"),
    ("", "1:1: the formula is empty"),
    ("   \n ", "1:1: the formula is empty"),
    ("a.", "1:3: the formula ends too early: expected a value"),
    ("1.", "1:2: unexpected '.': expected an operator, ',' or ')'"),
    ("a\x00", "1:2: the formula contains a NUL character"),
    ("a.b.c.d.e", "1:9: a path may follow at most 3 references"),
])
def test_syntax_errors_carry_line_and_column(source: str, error: str) -> None:
    with pytest.raises(FormulaError) as caught:
        parse(source)
    assert str(caught.value) == error


def test_error_attributes_and_excerpt() -> None:
    source = "IF(amount > 5,\n   1 2)"
    with pytest.raises(FormulaError) as caught:
        parse(source)
    err = caught.value
    assert (err.line, err.col) == (2, 6)
    assert err.message == "unexpected '2': expected an operator, ',' or ')'"
    assert err.excerpt(source) == "   1 2)\n     ^"
    assert caret_excerpt("\tab", 1, 3) == "\tab\n\t ^"


def test_deepest_allowed_path_parses() -> None:
    tree = parse("a.b.c.d")
    assert isinstance(tree, FieldRef) and tree.path == ("a", "b", "c", "d")


def test_source_length_limit() -> None:
    longest = "1" + " " * (MAX_SOURCE_LENGTH - 1)
    assert parse(longest) == Number(Decimal(1), 1, 1)
    with pytest.raises(FormulaError) as caught:
        parse(longest + " ")
    assert str(caught.value) == "1:4001: the formula is 4,001 characters long; the limit is 4,000"


def _nested(kind: str, depth: int) -> str:
    if kind == "parens":
        return "(" * (depth - 1) + "1" + ")" * (depth - 1)
    if kind == "calls":
        return "ABS(" * (depth - 1) + "1" + ")" * (depth - 1)
    return "1" + " + 1" * (depth - 1)  # a left-deep chain of operators


@pytest.mark.parametrize("kind", ["parens", "calls", "operators"])
def test_nesting_limit(kind: str) -> None:
    assert parse(_nested(kind, MAX_NESTING)).depth == MAX_NESTING
    with pytest.raises(FormulaError) as caught:
        parse(_nested(kind, MAX_NESTING + 1))
    assert caught.value.message == (
        "the formula nests more than 64 levels deep; split it into simpler formula fields")


@pytest.mark.parametrize("source", ["(" * 1999 + "1" + ")" * 1999, "-" * 3999 + "1",
                                    "1" + "+1" * 1999, "NOT " * 999 + "a"])
def test_very_deep_input_is_a_formula_error_not_a_crash(source: str) -> None:
    with pytest.raises(FormulaError, match="nests more than 64 levels"):
        parse(source)


def test_node_count_limit() -> None:
    """Nesting is bounded, and so is breadth: a call with a thousand arguments is one
    level deep but a thousand values for every later stage."""
    args = ["1"] * (MAX_NODES - 1)
    assert len(parse(f"MAX({','.join(args)})").args) == MAX_NODES - 1  # type: ignore[union-attr]
    with pytest.raises(FormulaError) as caught:
        parse(f"MAX({','.join([*args, '1'])})")
    assert str(caught.value) == (
        "1:2003: the formula has 1,001 values, operators and calls; the limit is 1,000")


def test_parse_is_cached() -> None:
    assert parse("amount * 2 + 1") is parse("amount * 2 + 1")
