"""The two trees of a formula: the syntax tree the parser builds and the typed tree the
checker builds from it. Both are frozen and carry the 1-based line and column of the
token that names them (an operator, a function name, the first name of a path).

>>> from engine.formula.parser import parse
>>> parse("amount * 2")
Binary(op='*', left=FieldRef(path=('amount',), ...), right=Number(value=Decimal('2'), ...), ...)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from engine.formula.types import FType, Path

# ---- syntax tree -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: Decimal
    line: int
    col: int
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Text:
    value: str
    line: int
    col: int
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool
    line: int
    col: int
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FieldRef:
    """`amount` or `account.owner.name`; `positions` holds where each name starts."""

    path: Path
    positions: tuple[tuple[int, int], ...]
    line: int
    col: int
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Unary:
    """`-x` (op "-") or `NOT x` (op "NOT")."""

    op: str
    operand: Node
    line: int
    col: int
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Binary:
    """An infix operator, spelled canonically: `==` is "=", `!=` is "<>", `&&` is "AND"."""

    op: str
    left: Node
    right: Node
    line: int
    col: int
    depth: int = field(default=1, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; `name` is upper-case whatever the source spelled."""

    name: str
    args: tuple[Node, ...]
    line: int
    col: int
    depth: int = field(default=1, compare=False, repr=False)


Node = Number | Text | Boolean | FieldRef | Unary | Binary | Call


# ---- typed tree ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TLiteral:
    """A constant; `value` is Decimal, str, bool or None (BLANK)."""

    type: FType
    value: Decimal | str | bool | None
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class TField:
    """A field read; `scale` is the decimal places a number field holds, when known."""

    type: FType
    path: Path
    scale: int | None
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class TCall:
    """An operator or function after type checking.

    Operators are calls too, named by their canonical symbol ("+", "=", "&", "NOT",
    "AND", ...) and "NEG" for unary minus; the compilers pick an implementation by the
    name and the argument types, once, at compile time.
    """

    type: FType
    name: str
    args: tuple[TNode, ...]
    line: int
    col: int


TNode = TLiteral | TField | TCall


def typed_nodes(root: TNode) -> Iterator[TNode]:
    """Every node of a typed tree, parents before children (iteratively)."""
    stack: list[TNode] = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, TCall):
            stack.extend(reversed(node.args))
