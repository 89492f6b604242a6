"""Field reads and literals for the Python compiler.

A field is read from the context's `direct_values` (nested dicts, see EvalContext) when
it offers them and the value already has its plain type; anything else goes through
`ctx.get` and the field type's converter, so both ways give the same value.

>>> from engine.formula.context import MappingContext
>>> from engine.formula.types import FType
>>> read = read_field(("account", "name"), FType.TEXT)
>>> ctx = MappingContext({"account": {"id": 7, "name": "Acme"}})
>>> read(ctx, ctx.direct_values), read(ctx, None)
('Acme', 'Acme')
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from engine.formula.ast import TCall, TField, TNode
from engine.formula.pyvalues import CONVERT
from engine.formula.types import EvalContext, FType, Path

Op = Callable[[EvalContext, Any], Any]
"""A compiled node: op(ctx, direct) with `direct` the context's direct_values or None."""
InlineRead = tuple[str, type, Path, Callable[[EvalContext, object], Any]]
"""(name, plain type, path, slow): what a closure needs to read a one-name field itself."""


class Literal:
    """A literal's op; builders that know the shape bind `value` instead of calling it."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __call__(self, ctx: EvalContext, direct: Any) -> object:
        return self.value


def literal_of(op: Op) -> tuple[bool, Any]:
    return (True, op.value) if isinstance(op, Literal) else (False, None)


# ---- field reads -----------------------------------------------------------------------

PLAIN: dict[FType, type] = {FType.TEXT: str, FType.DATE: date, FType.BOOLEAN: bool,
                             FType.REFERENCE: int}
"""Types a value already has when no conversion is needed (exact type, not subclasses)."""


def read_field(path: Path, ftype: FType) -> Op:
    """Read `path` from `direct` (nested dicts) when given, else through ctx.get.

    Anything the fast path does not recognise (an id instead of a nested dict, a type that
    needs converting) is read again through ctx.get and converted there, so the result
    is always what the converter makes of ctx.get(path).
    """
    convert = CONVERT[ftype]
    if ftype is FType.BLANK:
        return Literal(None)
    if ftype is FType.NUMBER:
        def plain(v: object) -> bool:
            return type(v) is Decimal and v.is_finite()
        kind: type | None = None
    else:
        kind = PLAIN.get(ftype)
    first, rest = path[0], path[1:]
    if kind is None and ftype is not FType.NUMBER:
        return lambda ctx, direct: convert(ctx.get(path))
    if not rest:
        if kind is None:
            def read_number(ctx: EvalContext, direct: Any) -> Any:
                v = ctx.get(path) if direct is None else direct.get(first)
                if v is None or (type(v) is Decimal and v.is_finite()):
                    return v
                return to_number_via(ctx, v)
            to_number_via = _slow(path, convert)
            return read_number

        def read_one(ctx: EvalContext, direct: Any) -> Any:
            v = ctx.get(path) if direct is None else direct.get(first)
            if v is None or type(v) is kind:
                return v
            return slow(ctx, v)
        slow = _slow(path, convert)
        return read_one

    if len(rest) == 1 and kind is not None:
        (second,) = rest

        def read_two(ctx: EvalContext, direct: Any) -> Any:
            if direct is not None:
                v = direct.get(first)
                if v is None:
                    return None
                if type(v) is dict:
                    v = v.get(second)
                    if v is None or type(v) is kind:
                        return v
            return convert(ctx.get(path))
        return read_two
    if len(rest) == 2 and kind is not None:
        second, third = rest

        def read_three(ctx: EvalContext, direct: Any) -> Any:
            if direct is not None:
                v = direct.get(first)
                if v is None:
                    return None
                if type(v) is dict:
                    v = v.get(second)
                    if v is None:
                        return None
                    if type(v) is dict:
                        v = v.get(third)
                        if v is None or type(v) is kind:
                            return v
            return convert(ctx.get(path))
        return read_three

    def read_path(ctx: EvalContext, direct: Any) -> Any:
        if direct is None:
            return convert(ctx.get(path))
        v = direct.get(first)
        for name in rest:
            if type(v) is dict:
                v = v.get(name)
            elif v is None:
                return None
            else:
                return convert(ctx.get(path))
        if v is None or (type(v) is kind if kind is not None else plain(v)):
            return v
        return convert(ctx.get(path))
    return read_path


def inline_read(node: TNode) -> InlineRead | None:
    """(name, plain type, path, slow) for a one-name field of a plain type, so a parent
    closure can do the read of `_read` itself and save a call."""
    if not isinstance(node, TField) or len(node.path) != 1 or node.type not in PLAIN:
        return None
    return node.path[0], PLAIN[node.type], node.path, _slow(node.path, CONVERT[node.type])


def _slow(path: Path, convert: Callable[[object], Any]) -> Callable[[EvalContext, object],
                                                                     Any]:
    """The converted value of a one-name read `v`; a dict (a referenced record) is read
    again through ctx.get, which gives its id."""
    def slow(ctx: EvalContext, v: object) -> Any:
        return convert(ctx.get(path) if type(v) is dict else v)
    return slow


def read_prior(node: TCall) -> Op:
    arg = node.args[0]
    assert isinstance(arg, TField)
    path = arg.path
    if node.name == "ISCHANGED":
        return lambda ctx, direct: bool(ctx.changed(path))
    convert = CONVERT[arg.type]
    return lambda ctx, direct: convert(ctx.prior(path))
