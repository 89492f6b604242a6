"""Choices compiled to Python: IF, CASE, and chains of them on one field.

An IF chain that tests one field against literals (IF(stage = "lost", 0, IF(stage =
"won", 100, CASE(stage, …)))) and a CASE on a field with literal arms become one
`Switch`: the field is read once and the branch is one dict lookup. A sum of such
choices between whole numbers (a score) is added as ints.

>>> from engine.formula.context import EntityScope, FieldSpec, MappingContext
>>> from engine.formula.compiled import compile_formula
>>> from engine.formula.types import FType
>>> scope = EntityScope({"deal": {"stage": FieldSpec(FType.TEXT)}}, "deal")
>>> f = compile_formula('IF(stage = "won", 100, CASE(stage, "lost", 0, 50))', scope)
>>> f.evaluate(MappingContext({"stage": "lost"})), f.evaluate(MappingContext({}))
(Decimal('0'), Decimal('50'))
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.formula.ast import TCall, TField, TLiteral, TNode
from engine.formula.pyreads import Literal, Op, inline_read, literal_of
from engine.formula.types import EvalContext, FType, Path

Compile = Callable[[TNode], Op]
"""The compiler of a subtree, passed in by pycompile."""
MISSING = object()


def build_if(node: TCall, compile_node: Compile) -> Op:
    """IF, each subtree compiled once (a condition compiled twice would double the work
    at every level of nesting)."""
    fa = compile_node(node.args[1])
    fb: Op = compile_node(node.args[2]) if len(node.args) > 2 else Literal(None)
    (a_lit, a), (b_lit, b) = literal_of(fa), literal_of(fb)
    cond = node.args[0]
    if isinstance(cond, TCall) and cond.name == "ISBLANK" \
            and cond.args[0].type in (FType.TEXT, FType.MULTICHOICE):
        fx = compile_node(cond.args[0])  # IF(ISBLANK(text), …): None, "" and () are falsy

        def if_blank(ctx: EvalContext, direct: Any) -> Any:
            if not fx(ctx, direct):
                return a if a_lit else fa(ctx, direct)
            return b if b_lit else fb(ctx, direct)
        return if_blank
    if isinstance(cond, TCall) and cond.name == "AND" and len(cond.args) == 2:
        c1, c2 = (compile_node(x) for x in cond.args)  # tested here, not through AND's closure

        def if_both(ctx: EvalContext, direct: Any) -> Any:
            if c1(ctx, direct) is True and c2(ctx, direct) is True:
                return a if a_lit else fa(ctx, direct)
            return b if b_lit else fb(ctx, direct)
        return if_both
    return if_op(compile_node(cond), fa, fb)


def if_op(fc: Op, fa: Op, fb: Op) -> Op:
    (a_lit, a), (b_lit, b) = literal_of(fa), literal_of(fb)
    if a_lit and b_lit:
        return lambda ctx, direct: a if fc(ctx, direct) is True else b
    if a_lit:
        return lambda ctx, direct: a if fc(ctx, direct) is True else fb(ctx, direct)
    if b_lit:
        return lambda ctx, direct: fa(ctx, direct) if fc(ctx, direct) is True else b
    return lambda ctx, direct: fa(ctx, direct) if fc(ctx, direct) is True else fb(ctx, direct)


class Switch:
    """Choices on one field's value, gathered from CASE(field, literal, …) and from IF
    chains testing `field = literal` (IF(f = "a", 1, IF(f = "b", 2, CASE(f, …)))), so
    the field is read once and the choice is one dict lookup."""

    def __init__(self, field: TField, arms: dict[object, Op], otherwise: Op) -> None:
        self.field, self.arms, self.otherwise = field, arms, otherwise

    def chosen(self, key: object) -> Op:
        return self.arms.get(key, self.otherwise)

    def op(self) -> Op:
        inline = inline_read(self.field)
        assert inline is not None
        name, kind, path, slow = inline
        values = {k: f.value for k, f in self.arms.items() if isinstance(f, Literal)}
        calls = {k: f for k, f in self.arms.items() if not isinstance(f, Literal)}
        otherwise = self.otherwise
        is_lit, default = literal_of(otherwise)

        def switch(ctx: EvalContext, direct: Any) -> Any:
            key = ctx.get(path) if direct is None else direct.get(name)
            if key is not None and type(key) is not kind:
                key = slow(ctx, key)
            if key is not None:
                found = values.get(key, MISSING)
                if found is not MISSING:
                    return found
                call = calls.get(key)
                if call is not None:
                    return call(ctx, direct)
            return default if is_lit else otherwise(ctx, direct)
        return switch


def switch_of(node: TCall, compile_node: Compile) -> Switch | None:
    """The node as a Switch, when it is one (see there)."""
    if node.name == "CASE":
        key, rest = node.args[0], node.args[1:]
        if inline_read(key) is None or not all(isinstance(rest[i], TLiteral)
                                           for i in range(0, len(rest) - 1, 2)):
            return None
        assert isinstance(key, TField)
        arms: dict[object, Op] = {}
        for i in range(0, len(rest) - 1, 2):
            match = rest[i].value  # type: ignore[union-attr]
            if match is not None and match not in arms:  # the first equal arm wins
                arms[match] = compile_node(rest[i + 1])
        otherwise = compile_node(rest[-1]) if len(rest) % 2 else Literal(None)
        return Switch(key, arms, otherwise)
    cond = node.args[0]
    if not isinstance(cond, TCall):
        return None
    tested, extra = cond, None
    if cond.name == "AND" and len(cond.args) == 2 and isinstance(cond.args[0], TCall):
        tested, extra = cond.args[0], cond.args[1]  # IF(AND(f = "a", x), …)
    test = field_equals_literal(tested)
    if test is None:
        return None
    field, k = test
    other = node.args[2] if len(node.args) > 2 else None
    inner = switch_of(other, compile_node) \
        if isinstance(other, TCall) and other.name in ("IF", "CASE") else None
    if inner is None or inner.field.path != field.path or inner.field.type is not field.type:
        otherwise = inner.op() if inner is not None else \
            compile_node(other) if other is not None else Literal(None)
        inner = Switch(field, {}, otherwise)
    then = compile_node(node.args[1])
    if extra is not None:  # f = k and x: then, else what the rest gives for k
        then = if_op(compile_node(extra), then, inner.chosen(k))
    return Switch(field, {k: then, **{a: f for a, f in inner.arms.items() if a != k}},
                   inner.otherwise)


def field_equals_literal(node: TCall) -> tuple[TField, object] | None:
    if node.name != "=":
        return None
    left, right = node.args
    if inline_read(left) is None or not isinstance(right, TLiteral) or right.value is None:
        return None
    assert isinstance(left, TField)
    return left, right.value


def build_case(node: TCall, fns: list[Op]) -> Op:
    fk, rest = fns[0], fns[1:]
    pairs = [(rest[i], rest[i + 1]) for i in range(0, len(rest) - 1, 2)]
    otherwise: Op = rest[-1] if len(rest) % 2 else Literal(None)
    if all(isinstance(m, Literal) for m, _ in pairs):
        return case_lookup(fk, pairs, otherwise)

    def case(ctx: EvalContext, direct: Any) -> Any:
        key = fk(ctx, direct)
        if key is not None:
            for fm, fr in pairs:
                m = fm(ctx, direct)
                if m is not None and m == key:
                    return fr(ctx, direct)
        return otherwise(ctx, direct)
    return case


def case_lookup(fk: Op, pairs: list[tuple[Op, Op]], otherwise: Op) -> Op:
    """CASE with literal arms: one dict lookup (equal values hash alike, Decimals too)."""
    values: dict[object, object] = {}
    calls: dict[object, Op] = {}
    for fm, fr in pairs:
        match = fm.value  # type: ignore[attr-defined]
        if match is None or match in values or match in calls:
            continue  # BLANK never matches; the first equal arm wins
        if isinstance(fr, Literal):
            values[match] = fr.value
        else:
            calls[match] = fr
    is_lit, default = literal_of(otherwise)

    def case_lookup(ctx: EvalContext, direct: Any) -> Any:
        key = fk(ctx, direct)
        if key is not None:
            found = values.get(key, MISSING)
            if found is not MISSING:
                return found
            call = calls.get(key)
            if call is not None:
                return call(ctx, direct)
        return default if is_lit else otherwise(ctx, direct)
    return case_lookup


def whole_sum(terms: list[TNode], compile_node: Compile) -> Op | None:
    """A sum of choices between whole-number literals (a score: CASE(…, 30, …, 15, 0) +
    IF(…, 25, 0)), added as ints: exactly what Decimal addition gives, in fewer steps."""
    tables: list[tuple[Path, str, type, Callable[[EvalContext, object], Any],
                       dict[object, int | None], int | None]] = []
    if not all(_literal_choice(t) for t in terms):  # checked before compiling anything
        return None
    for term in terms:
        assert isinstance(term, TCall)
        switch = switch_of(term, compile_node)
        if switch is None:
            return None
        arms = {**switch.arms, MISSING: switch.otherwise}
        if not all(isinstance(f, Literal) and _whole_literal(f.value) for f in arms.values()):
            return None
        ints = {k: None if f.value is None else int(f.value)  # type: ignore[attr-defined]
                for k, f in arms.items()}
        default = ints.pop(MISSING)
        inline = inline_read(switch.field)
        assert inline is not None
        name, kind, path, slow = inline
        tables.append((path, name, kind, slow, ints, default))

    def whole_sum(ctx: EvalContext, direct: Any) -> Any:
        total = 0
        for path, name, kind, slow, ints, default in tables:
            key = ctx.get(path) if direct is None else direct.get(name)
            if key is not None and type(key) is not kind:
                key = slow(ctx, key)
            v = default if key is None else ints.get(key, default)
            if v is None:
                return None
            total += v
        return Decimal(total)
    return whole_sum


def _literal_choice(node: TNode) -> bool:
    """CASE(field, literal, literal, …) or IF(field = literal, literal, <the same>)."""
    if not isinstance(node, TCall) or node.name not in ("IF", "CASE"):
        return False
    if node.name == "CASE":
        return all(_literal_leaf(a) for a in node.args[1:])
    cond, rest = node.args[0], node.args[1:]
    return isinstance(cond, TCall) and field_equals_literal(cond) is not None \
        and _literal_leaf(rest[0]) \
        and (len(rest) == 1 or _literal_leaf(rest[1]) or _literal_choice(rest[1]))


def _literal_leaf(node: TNode) -> bool:
    return isinstance(node, TLiteral) or (isinstance(node, TCall) and node.name == "NEG"
                                          and isinstance(node.args[0], TLiteral))


def _whole_literal(v: object) -> bool:
    """A literal a whole-number sum can carry: BLANK, or a Decimal with exponent 0."""
    return v is None or (type(v) is Decimal and v.as_tuple().exponent == 0
                         and abs(v) < 10**40)
