"""Typed tree to a Python callable, built once from closures.

Each node becomes one closure chosen by its name and argument types at compile time;
evaluating runs those closures and nothing else (no tree walk, no eval). Common shapes
are fused when the tree is compiled: a literal operand is bound into its parent's
closure, a CASE whose arms are literals is one dict lookup, chains of `+` and `&` are one
closure each, and a field is read straight from the context's `direct_values` mapping
when it offers one (see EvalContext). Numbers are Decimals (pyvalues.CTX).

>>> from engine.formula.context import EntityScope, MappingContext
>>> from engine.formula.checker import check_source
>>> fn = compile_python(check_source("ROUND(2.5, 0) + 0.1 + 0.2", EntityScope({}, "x")))
>>> fn(MappingContext({}))
Decimal('3.3')
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from engine.formula.ast import TCall, TField, TLiteral, TNode
from engine.formula.pyreads import Literal, Op, inline_read, literal_of, read_field, read_prior
from engine.formula.pyswitch import build_case, build_if, switch_of, whole_sum
from engine.formula.pyvalues import (
    CTX,
    MAX_OFFSET_SECONDS,
    PLACES,
    add_days,
    add_months,
    add_seconds_of_days,
    add_whole_months,
    divide,
    find,
    hours_since,
    includes,
    is_blank_value,
    left,
    make_date,
    mid,
    minutes_between,
    modulo,
    number_text,
    number_value,
    power,
    right,
    round_to,
    sqrt,
    substitute,
    to_datetime,
    whole,
)
from engine.formula.types import EvalContext, FType

__all__ = ["CTX", "IMPLEMENTED", "MAX_OFFSET_SECONDS", "PLACES", "Fn", "add_months",
           "compile_python", "number_text"]

Fn = Callable[[EvalContext], Any]
Builder = Callable[[TCall, list[Op]], Op]
_ARITHMETIC = (ArithmeticError, ValueError)
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def compile_python(node: TNode) -> Fn:
    """A callable that evaluates the typed tree against an EvalContext."""
    op = _compile(node)
    if isinstance(op, Literal):
        value = op.value
        return lambda ctx: value

    def evaluate(ctx: EvalContext) -> Any:
        try:
            direct = ctx.direct_values  # type: ignore[attr-defined]
        except AttributeError:  # the attribute is optional
            direct = None
        return op(ctx, direct)
    return evaluate


def _compile(node: TNode) -> Op:
    if isinstance(node, TLiteral):
        return Literal(node.value)
    if isinstance(node, TField):
        return read_field(node.path, node.type)
    if node.name in ("ISCHANGED", "PRIORVALUE"):
        return read_prior(node)
    if node.name == "NEG" and isinstance(node.args[0], TLiteral) \
            and isinstance(node.args[0].value, Decimal):
        return Literal(CTX.minus(node.args[0].value))  # -3 is a literal, not a call
    if node.name in _FLATTENED and (node.name == "&" or node.type is FType.NUMBER):
        terms = _chain(node, node.name)
        if node.name == "+":
            added = whole_sum(terms, _compile)
            if added is not None:
                return added
        parts = [_compile(a) for a in terms]
        return _concat(parts) if node.name == "&" else _sum(parts)
    if node.name == "IF" and len(node.args) == 3:
        fused = _blank_or_concat(*node.args)
        if fused is not None:
            return fused
    if node.name in ("IF", "CASE"):
        switch = switch_of(node, _compile)
        if switch is not None:
            return switch.op()
        if node.name == "IF":
            return build_if(node, _compile)
    return _BUILDERS[node.name](node, [_compile(a) for a in node.args])


# ---- shapes of closures ----------------------------------------------------------------


def _strict(op: Callable[..., Any], fns: Sequence[Op], safe: bool = False) -> Op:
    """op(*values), or BLANK as soon as one argument is BLANK (left to right).

    Literal arguments are bound in; `safe`: an arithmetic failure gives BLANK.
    """
    known = [literal_of(f) for f in fns]
    if any(is_lit and v is None for is_lit, v in known[:1]):
        return Literal(None)
    if safe:
        op = _safe(op)
    if len(fns) == 1:
        (fa,) = fns

        def strict1(ctx: EvalContext, direct: Any) -> Any:
            a = fa(ctx, direct)
            return None if a is None else op(a)
        return strict1
    if len(fns) >= 2 and not known[0][0] and all(k[0] and k[1] is not None
                                                  for k in known[1:]):
        fa, bound = fns[0], tuple(v for _, v in known[1:])
        if len(bound) == 1:
            (kb,) = bound

            def strict_k(ctx: EvalContext, direct: Any) -> Any:
                a = fa(ctx, direct)
                return None if a is None else op(a, kb)
            return strict_k

        def strict_ks(ctx: EvalContext, direct: Any) -> Any:
            a = fa(ctx, direct)
            return None if a is None else op(a, *bound)
        return strict_ks
    if len(fns) == 2:
        fa, fb = fns

        def strict2(ctx: EvalContext, direct: Any) -> Any:
            a = fa(ctx, direct)
            if a is None:
                return None
            b = fb(ctx, direct)
            return None if b is None else op(a, b)
        return strict2

    def strict_n(ctx: EvalContext, direct: Any) -> Any:
        values = []
        for f in fns:
            v = f(ctx, direct)
            if v is None:
                return None
            values.append(v)
        return op(*values)
    return strict_n


def _safe(op: Callable[..., Any]) -> Callable[..., Any]:
    """op, with an arithmetic failure (overflow, invalid) giving BLANK."""
    def safe(*args: Any) -> Any:
        try:
            return op(*args)
        except _ARITHMETIC:
            return None
    return safe


def _simple(op: Callable[..., Any], safe: bool = False) -> Builder:
    return lambda node, fns: _strict(op, fns, safe)


def _chain(node: TNode, name: str) -> list[TNode]:
    """The operands of a left-nested chain a + b + c (or a & b & c), in order."""
    if isinstance(node, TCall) and node.name == name and node.type is not FType.DATE \
            and (name == "&" or node.type is FType.NUMBER):
        return [*_chain(node.args[0], name), node.args[1]]
    return [node]


_FLATTENED = frozenset({"+", "&"})


# ---- numbers ---------------------------------------------------------------------------


def _sum(fns: list[Op]) -> Op:
    """a + b + c …: BLANK as soon as a term is; an overflow gives BLANK."""
    if any(isinstance(f, Literal) for f in fns):
        return _strict(lambda *v: _add_all(v), fns, safe=True)
    add = CTX.add
    first, others = fns[0], tuple(fns[1:])

    def total(ctx: EvalContext, direct: Any) -> Any:
        t = first(ctx, direct)
        if t is None:
            return None
        try:
            for f in others:
                v = f(ctx, direct)
                if v is None:
                    return None
                t = add(t, v)
        except _ARITHMETIC:
            return None
        return t
    return total


def _add_all(values: Sequence[Decimal]) -> Decimal:
    total = values[0]
    for v in values[1:]:
        total = CTX.add(total, v)
    return total


def _plus(node: TCall, fns: list[Op]) -> Op:
    a = node.args[0].type
    if node.type is FType.NUMBER:
        return _sum(fns)
    if a is FType.NUMBER:  # number + date: put the date first
        fns = [fns[1], fns[0]]
    if node.type is FType.DATE:
        return _date_step(fns, 1)
    return _strict(add_seconds_of_days, fns)


def _minus(node: TCall, fns: list[Op]) -> Op:
    a, b = (x.type for x in node.args)
    if a is FType.NUMBER:
        return _strict(CTX.subtract, fns, safe=True)
    if b is FType.DATE:
        return _days_between(fns)
    if a is FType.DATE:
        return _date_step(fns, -1)
    return _strict(lambda x, n: add_seconds_of_days(x, CTX.minus(n)), fns)


def _date_step(fns: list[Op], sign: int) -> Op:
    """date ± days; with a literal day count the timedelta is made once."""
    is_lit, n = literal_of(fns[1])
    if is_lit and n is not None:
        try:
            delta = timedelta(days=whole(CTX.minus(n) if sign < 0 else n))
        except OverflowError:
            delta = None
        if delta is not None:
            fa = fns[0]

            def shifted(ctx: EvalContext, direct: Any) -> Any:
                d = fa(ctx, direct)
                if d is None:
                    return None
                try:
                    return d + delta
                except OverflowError:
                    return None
            return shifted
    if sign > 0:
        return _strict(add_days, fns)
    return _strict(lambda x, k: add_days(x, CTX.minus(k)), fns)


def _days_between(fns: list[Op]) -> Op:
    fa, fb = fns

    def days(ctx: EvalContext, direct: Any) -> Any:
        a = fa(ctx, direct)
        if a is None:
            return None
        b = fb(ctx, direct)
        return None if b is None else Decimal((a - b).days)
    return days


def _add_months(node: TCall, fns: list[Op]) -> Op:
    is_lit, n = literal_of(fns[1])
    if not is_lit or n is None:
        return _strict(add_months, fns)
    fa, k = fns[0], whole(n)  # ADDMONTHS(d, -3): the count converted once

    def months_later(ctx: EvalContext, direct: Any) -> Any:
        d = fa(ctx, direct)
        return None if d is None else add_whole_months(d, k)
    return months_later


def _add_days_fn(node: TCall, fns: list[Op]) -> Op:
    if node.type is FType.DATE:
        return _date_step(fns, 1)
    return _strict(add_seconds_of_days, fns)


def _part(getter: Callable[[date], int]) -> Builder:
    return _simple(lambda x: Decimal(getter(x)))


def _text(node: TCall, fns: list[Op]) -> Op:
    t = node.args[0].type
    if t is FType.NUMBER:
        return _strict(number_text, fns)
    if t is FType.BOOLEAN:
        return _strict(lambda b: "TRUE" if b else "FALSE", fns)
    if t is FType.DATE:
        return _strict(date.isoformat, fns)
    if t is FType.DATETIME:
        return _strict(lambda x: f"{x.year:04d}-{x:%m-%d %H:%M:%S}", fns)
    return fns[0]


def _case_map(ascii_map: Callable[[str], str], table: dict[int, int]) -> Builder:
    """UPPER/LOWER: ASCII letters only (str.upper itself where the text is all ASCII)."""
    def build(node: TCall, fns: list[Op]) -> Op:
        (fa,) = fns

        def mapped(ctx: EvalContext, direct: Any) -> Any:
            s = fa(ctx, direct)
            if s is None:
                return None
            return ascii_map(s) if s.isascii() else s.translate(table)
        return mapped
    return build


def _trim(node: TCall, fns: list[Op]) -> Op:
    (fa,) = fns

    def trimmed(ctx: EvalContext, direct: Any) -> Any:
        s = fa(ctx, direct)
        return None if s is None else s.strip(" ")
    return trimmed


def _left(node: TCall, fns: list[Op]) -> Op:
    is_lit, n = literal_of(fns[1])
    if not is_lit or n is None or whole(n) < 0:
        return _strict(left, fns)
    fa, k = fns[0], whole(n)

    def left_k(ctx: EvalContext, direct: Any) -> Any:
        s = fa(ctx, direct)
        return None if s is None else s[:k]
    return left_k


def _concat(fns: list[Op]) -> Op:
    """a & b & …: BLANK counts as ""; literal parts go into a %-template (the quickest
    way Python joins a few strings)."""
    calls = [f for f in fns if not isinstance(f, Literal)]
    template = "".join("%s" if not isinstance(f, Literal)
                       else str(f.value or "").replace("%", "%%") for f in fns)
    if not calls:
        return Literal(template % ())
    if len(calls) == 1:
        (fa,) = calls
        return lambda ctx, direct: template % (fa(ctx, direct) or "",)
    if len(calls) == 2:
        fa, fb = calls
        return lambda ctx, direct: template % (fa(ctx, direct) or "", fb(ctx, direct) or "")
    if len(calls) == 3:
        fa, fb, fc = calls
        return lambda ctx, direct: template % (fa(ctx, direct) or "", fb(ctx, direct) or "",
                                               fc(ctx, direct) or "")
    return lambda ctx, direct: template % tuple([f(ctx, direct) or "" for f in calls])


def _blank_or_concat(cond: TNode, then: TNode, other: TNode) -> Op | None:
    """IF(ISBLANK(f), x, … & f & …) on a text field f: f is read once, the joined text
    reuses the value the test read (a display name: owner, else "unassigned")."""
    if not (isinstance(cond, TCall) and cond.name == "ISBLANK"
            and isinstance(cond.args[0], TField) and cond.args[0].type is FType.TEXT
            and isinstance(other, TCall) and other.name == "&"):
        return None
    field = cond.args[0]
    terms = _chain(other, "&")
    same = [isinstance(t, TField) and t.path == field.path for t in terms]
    if not any(same):
        return None
    parts = [None if s else _compile(t) for s, t in zip(same, terms, strict=True)]
    slots = [p for p in parts if not isinstance(p, Literal)]  # None: the tested value
    template = "".join("%s" if not isinstance(p, Literal)
                       else str(p.value or "").replace("%", "%%") for p in parts)
    fx, fa = _compile(field), _compile(then)
    a_lit, a = literal_of(fa)

    def if_blank_concat(ctx: EvalContext, direct: Any) -> Any:
        v = fx(ctx, direct)
        if not v:  # None or ""
            return a if a_lit else fa(ctx, direct)
        return template % tuple([v if f is None else (f(ctx, direct) or "") for f in slots])

    if len(slots) != 2:
        return if_blank_concat
    s0, s1 = slots

    def if_blank_concat2(ctx: EvalContext, direct: Any) -> Any:
        v = fx(ctx, direct)
        if not v:
            return a if a_lit else fa(ctx, direct)
        return template % (v if s0 is None else (s0(ctx, direct) or ""),
                           v if s1 is None else (s1(ctx, direct) or ""))
    return if_blank_concat2


# ---- dates -----------------------------------------------------------------------------


def _today(node: TCall, fns: list[Op]) -> Op:
    return lambda ctx, direct: ctx.clock.today()


def _now(node: TCall, fns: list[Op]) -> Op:
    return lambda ctx, direct: to_datetime(ctx.clock.now())


def _hours(node: TCall, fns: list[Op]) -> Op:
    (fa,) = fns

    def hours(ctx: EvalContext, direct: Any) -> Any:
        x = fa(ctx, direct)
        return None if x is None else hours_since(ctx.clock, x)
    return hours


# ---- logic -----------------------------------------------------------------------------


def _and(node: TCall, fns: list[Op]) -> Op:
    if len(fns) == 2:
        fa, fb = fns
        return lambda ctx, direct: fa(ctx, direct) is True and fb(ctx, direct) is True
    return lambda ctx, direct: all(f(ctx, direct) is True for f in fns)


def _or(node: TCall, fns: list[Op]) -> Op:
    if len(fns) == 2:
        fa, fb = fns
        return lambda ctx, direct: fa(ctx, direct) is True or fb(ctx, direct) is True
    return lambda ctx, direct: any(f(ctx, direct) is True for f in fns)


def _compare(op: Callable[[Any, Any], bool]) -> Builder:
    def build(node: TCall, fns: list[Op]) -> Op:
        a_lit, b_lit, b = isinstance(fns[0], Literal), *literal_of(fns[1])
        if b_lit and b is not None and not a_lit and op is operator.eq:
            inline = inline_read(node.args[0])
            if inline is not None:
                name, kind, path, slow = inline

                def field_equals(ctx: EvalContext, direct: Any) -> Any:
                    v = ctx.get(path) if direct is None else direct.get(name)
                    if v is None:
                        return None
                    if type(v) is not kind:
                        v = slow(ctx, v)
                        if v is None:
                            return None
                    return v == b
                return field_equals
            fa = fns[0]

            def equals(ctx: EvalContext, direct: Any) -> Any:
                v = fa(ctx, direct)
                return None if v is None else v == b
            return equals
        return _strict(op, fns)
    return build


def _isblank(node: TCall, fns: list[Op]) -> Op:
    (fa,) = fns
    if node.args[0].type in (FType.TEXT, FType.MULTICHOICE):  # None, "" or ()
        return lambda ctx, direct: not fa(ctx, direct)
    return lambda ctx, direct: is_blank_value(fa(ctx, direct))


def _blankvalue(node: TCall, fns: list[Op]) -> Op:
    fa, fd = fns
    is_lit, d = literal_of(fd)
    if node.args[0].type in (FType.TEXT, FType.MULTICHOICE):  # blank: None, "" or ()
        def blank_text(ctx: EvalContext, direct: Any) -> Any:
            v = fa(ctx, direct)
            if not v:
                return d if is_lit else fd(ctx, direct)
            return v
        return blank_text

    def blankvalue(ctx: EvalContext, direct: Any) -> Any:
        v = fa(ctx, direct)
        if is_blank_value(v):
            return d if is_lit else fd(ctx, direct)
        return v
    return blankvalue


_BUILDERS: dict[str, Builder] = {
    "+": _plus, "-": _minus,
    "*": _simple(CTX.multiply, safe=True), "/": _simple(divide, safe=True),
    "^": _simple(power, safe=True), "NEG": _simple(CTX.minus),
    "&": lambda node, fns: _concat(fns),
    "=": _compare(operator.eq), "<>": _compare(operator.ne), "<": _compare(operator.lt),
    "<=": _compare(operator.le), ">": _compare(operator.gt), ">=": _compare(operator.ge),
    "NOT": _simple(operator.not_), "AND": _and, "OR": _or,
    "CASE": build_case,
    "ISBLANK": _isblank, "BLANKVALUE": _blankvalue,
    "ROUND": _simple(round_to), "ABS": _simple(CTX.abs),
    "MIN": lambda node, fns: fns[0] if len(fns) == 1 else _strict(min, fns),
    "MAX": lambda node, fns: fns[0] if len(fns) == 1 else _strict(max, fns),
    "MOD": _simple(modulo, safe=True), "POWER": _simple(power, safe=True),
    "CEILING": _simple(lambda x: x.to_integral_value(rounding=ROUND_CEILING)),
    "FLOOR": _simple(lambda x: x.to_integral_value(rounding=ROUND_FLOOR)),
    "SQRT": _simple(sqrt, safe=True),
    "LEN": _simple(lambda s: Decimal(len(s))), "LEFT": _left,
    "RIGHT": _simple(right), "MID": _simple(mid),
    "UPPER": _case_map(str.upper, _UPPER), "LOWER": _case_map(str.lower, _LOWER),
    "TRIM": _trim, "CONTAINS": _simple(operator.contains),
    "BEGINS": _simple(str.startswith), "SUBSTITUTE": _simple(substitute),
    "TEXT": _text, "VALUE": _simple(number_value), "FIND": _simple(find),
    "TODAY": _today, "NOW": _now, "DATE": _simple(make_date),
    "DATEVALUE": _simple(datetime.date), "YEAR": _part(lambda d: d.year),
    "MONTH": _part(lambda d: d.month), "DAY": _part(lambda d: d.day),
    "WEEKDAY": _part(lambda d: d.isoweekday() % 7 + 1),
    "ADDMONTHS": _add_months, "ADDDAYS": _add_days_fn,
    "DAYS": lambda node, fns: _days_between(fns), "HOURS_SINCE": _hours,
    "MINUTES": _simple(minutes_between),
    "INCLUDES": _simple(includes),
    "ISNEW": lambda node, fns: lambda ctx, direct: bool(ctx.is_new),
}
IMPLEMENTED = frozenset(_BUILDERS) | {"IF", "ISCHANGED", "PRIORVALUE", "BLANK"}
"""Every name the Python compiler knows (a test holds it against the registry)."""
