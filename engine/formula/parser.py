"""Source text to syntax tree, once per distinct source (cached).

The LALR parser builds the tree while it parses (an inline Transformer), so neither a
deep formula nor a long operator chain recurses in Python. Limits keep formulas
readable and bound the work later stages do:

>>> parse("1 +")
Traceback (most recent call last):
...
engine.formula.errors.FormulaError: 1:4: the formula ends too early: expected a value
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path as FilePath
from typing import Any

from lark import Lark, Token, Transformer, Tree, UnexpectedCharacters, UnexpectedInput
from lark.exceptions import UnexpectedEOF, UnexpectedToken, VisitError

from engine.formula.ast import Binary, Boolean, Call, FieldRef, Node, Number, Text, Unary
from engine.formula.errors import FormulaError, position
from engine.messages import N_, either, msg

MAX_SOURCE_LENGTH = 4000
MAX_NESTING = 64
MAX_PATH_HOPS = 3
"""A path follows at most 3 references: account.owner.department.name is the deepest."""
MAX_NODES = 1000
"""A formula has at most 1,000 values, operators and calls (MAX(1, 2) is three)."""

_CANONICAL = {"==": "=", "!=": "<>", "&&": "AND", "||": "OR"}
_TOKEN_TEXT = {
    "RPAR": "')'", "LPAR": "'('", "COMMA": "','", "DOT": "'.'", "COMPARE": N_("a comparison"),
    "AMP": "'&'", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'",
    "CARET": "'^'",
    "NUMBER": N_("a number"), "STRING": N_("a text"), "NAME": N_("a name"), "TRUE": "TRUE",
    "FALSE": "FALSE", "NOT": "NOT", "AND_WORD": "AND", "OR_WORD": "OR",
    "AND_SYMBOL": "&&", "OR_SYMBOL": "||", "$END": N_("the end"),
}
_VALUE_STARTS = {"NUMBER", "STRING", "NAME", "TRUE", "FALSE", "LPAR", "MINUS"}
_VALUES = {"NUMBER", "STRING", "NAME"}  # expected only where a value may start


def _depth(*children: Node) -> int:
    depth = 1 + max(c.depth for c in children)
    if depth > MAX_NESTING:
        first = children[0]
        raise FormulaError(
            msg("the formula nests more than %(limit)s levels deep; split it into simpler "
                "formula fields", limit=MAX_NESTING), first.line, first.col)
    return depth


class _Builder(Transformer[Token, Node]):
    """Builds the syntax tree bottom-up while the LALR parser reduces."""

    def number(self, children: list[Token]) -> Number:
        (tok,) = children
        return Number(Decimal(str(tok)), tok.line or 1, tok.column or 1)

    def string(self, children: list[Token]) -> Text:
        (tok,) = children
        return Text(_unescape(tok), tok.line or 1, tok.column or 1)

    def true(self, children: list[Token]) -> Boolean:
        return Boolean(True, children[0].line or 1, children[0].column or 1)

    def false(self, children: list[Token]) -> Boolean:
        return Boolean(False, children[0].line or 1, children[0].column or 1)

    def field(self, children: list[Token]) -> FieldRef:
        if len(children) > MAX_PATH_HOPS + 1:
            tok = children[MAX_PATH_HOPS + 1]
            raise FormulaError(
                msg("a path may follow at most %(limit)s references", limit=MAX_PATH_HOPS),
                tok.line or 1,
                tok.column or 1)
        positions = tuple((t.line or 1, t.column or 1) for t in children)
        return FieldRef(tuple(str(t) for t in children), positions, *positions[0])

    def group(self, children: list[Node]) -> Node:
        (inner,) = children
        return replace(inner, depth=_depth(inner))  # parentheses nest too

    def arguments(self, children: list[Node]) -> tuple[Node, ...]:
        return tuple(children)

    def call(self, children: list[Any]) -> Call:
        name, args = children
        args = args or ()
        depth = _depth(*args) if args else 1
        return Call(str(name).upper(), args, name.line or 1, name.column or 1, depth)

    def unary(self, children: list[Any]) -> Unary:
        op, operand = children
        return Unary(str(op).upper(), operand, op.line or 1, op.column or 1, _depth(operand))

    def binary(self, children: list[Any]) -> Binary:
        left, op, right = children
        text = str(op).upper()
        return Binary(_CANONICAL.get(text, text), left, right, op.line or 1,
                      op.column or 1, _depth(left, right))


def _unescape(tok: Token) -> str:
    body = str(tok)[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in '"\\':
                line, col = position(str(tok), i + 1)
                line += (tok.line or 1) - 1
                col = col + (tok.column or 1) - 1 if line == tok.line else col
                raise FormulaError(
                    msg('unknown escape "\\%(char)s" in a text: only \\" and \\\\ are escapes',
                        char=nxt),
                    line, col)
            out.append(nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


GRAMMAR = (FilePath(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
_PARSER = Lark(GRAMMAR, parser="lalr", transformer=_Builder(), maybe_placeholders=True)


@lru_cache(maxsize=4096)
def parse(source: str) -> Node:
    """The syntax tree of `source`; raises FormulaError with the position of the problem.

    The result is cached by source text (trees are immutable).
    """
    if len(source) > MAX_SOURCE_LENGTH:
        line, col = position(source, MAX_SOURCE_LENGTH)
        raise FormulaError(
            msg("the formula is %(length)s characters long; the limit is %(limit)s",
                length=format(len(source), ","),
                limit=format(MAX_SOURCE_LENGTH, ",")), line, col)
    nul = source.find("\x00")
    if nul >= 0:
        raise FormulaError(msg("the formula contains a NUL character"), *position(source, nul))
    if not source.strip():
        raise FormulaError(msg("the formula is empty"), 1, 1)
    try:
        tree = _PARSER.parse(source)
    except VisitError as exc:  # an error raised while building a node
        if isinstance(exc.orig_exc, FormulaError):
            raise exc.orig_exc from None
        raise
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    assert not isinstance(tree, Token | Tree)
    _count_nodes(tree)
    return tree


def _count_nodes(tree: Node) -> None:
    """Refuse more than MAX_NODES nodes, at the first node past the limit in the source."""
    found: list[tuple[int, int]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        found.append((node.line, node.col))
        if isinstance(node, Unary):
            stack.append(node.operand)
        elif isinstance(node, Binary):
            stack.extend((node.left, node.right))
        elif isinstance(node, Call):
            stack.extend(node.args)
    if len(found) > MAX_NODES:
        line, col = sorted(found)[MAX_NODES]
        raise FormulaError(
            msg("the formula has %(count)s values, operators and calls; the limit is "
                "%(limit)s", count=format(len(found), ","), limit=format(MAX_NODES, ",")),
            line, col)


def _syntax_error(source: str, exc: UnexpectedInput) -> FormulaError:
    if isinstance(exc, UnexpectedCharacters):
        line, col = exc.line, exc.column
        at = exc.pos_in_stream or 0
        char = source[at] if at < len(source) else ""
        if char == '"':
            return FormulaError(msg('this text has no closing "'), line, col)
        if char == "'":
            return FormulaError(msg('texts are written in double quotes: "like this"'), line,
                                col)
        return FormulaError(msg("unexpected character %(char)s", char=repr(char)), line, col)
    if isinstance(exc, UnexpectedEOF):
        line, col = position(source, len(source))
        return FormulaError(msg("the formula ends too early"), line, col)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = set(exc.expected)
        if tok.type == "$END":
            line, col = _end(source)
            wants = msg("a value") if expected & _VALUES else _describe(expected)
            return FormulaError(msg("the formula ends too early: expected %(wants)s",
                                    wants=wants), line, col)
        line, col = tok.line or 1, tok.column or 1
        if expected & _VALUES:
            extra = expected - _VALUE_STARTS - {"NOT", "AND_WORD", "OR_WORD"}
            wants = msg("a value or %(other)s", other=_describe(extra)) if extra \
                else msg("a value")
            return FormulaError(msg("expected %(wants)s, found %(found)s", wants=wants,
                                    found=repr(str(tok))), line, col)
        return FormulaError(msg("unexpected %(found)s: expected %(wants)s",
                                found=repr(str(tok)), wants=_describe(expected)), line, col)
    return FormulaError(str(exc).splitlines()[0], exc.line or 1, exc.column or 1)


def _end(source: str) -> tuple[int, int]:
    """The position just after the last non-blank character."""
    return position(source, len(source.rstrip()))


def _describe(expected: set[str]) -> str:
    names = sorted({_TOKEN_TEXT.get(t, t) for t in expected})
    if len(names) > 6:
        return msg("an operator, ',' or ')'")
    return either([msg(n) for n in names])
