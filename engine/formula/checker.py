"""Type checking: a syntax tree and a Scope in, a typed tree out.

Every problem is a FormulaError at the position of the name, operator or argument at
fault: unknown fields (with a "did you mean"), unknown functions, wrong argument
counts and types, and mixed types (`amount & "x"` needs TEXT(amount)).

>>> from engine.formula.context import EntityScope, FieldSpec
>>> scope = EntityScope({"deal": {"amount": FieldSpec(FType.NUMBER, scale=2)}}, "deal")
>>> check(parse("amount * 2"), scope).type
<FType.NUMBER: 'number'>
>>> check(parse("amout * 2"), scope)
Traceback (most recent call last):
...
engine.formula.errors.FormulaError: 1:1: unknown field 'amout'; did you mean 'amount'?
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import replace

from engine.formula.ast import (
    Binary,
    Boolean,
    Call,
    FieldRef,
    Node,
    Number,
    TCall,
    Text,
    TField,
    TLiteral,
    TNode,
    Unary,
)
from engine.formula.errors import FormulaError
from engine.formula.functions import (
    COMPARABLE,
    FUNCTIONS,
    ORDERED,
    ArgTypeError,
    FunctionSpec,
    case_positions,
)
from engine.formula.parser import parse
from engine.formula.types import FType, Path, Scope, described, plural
from engine.messages import N_, msg

B, N, T = FType.BOOLEAN, FType.NUMBER, FType.TEXT
D, DT, BLANK = FType.DATE, FType.DATETIME, FType.BLANK

_ARITHMETIC = {
    "+": {(N, N): N, (D, N): D, (N, D): D, (DT, N): DT, (N, DT): DT},
    "-": {(N, N): N, (D, N): D, (D, D): N, (DT, N): DT},
    "*": {(N, N): N},
    "/": {(N, N): N},
    "^": {(N, N): N},
}
_VERBS = {"+": (N_("cannot add two %(types)s"), N_("cannot add %(left)s and %(right)s")),
          "-": (N_("cannot subtract two %(types)s"),
                N_("cannot subtract %(left)s and %(right)s"))}
_HANDLE_BLANK = {"&", "AND", "OR"}
"""Operators that treat BLANK as a value; the others are BLANK when a side is."""


def check(node: Node, scope: Scope) -> TNode:
    """The typed tree of `node`; its `.type` is the formula's type."""
    return _Checker(scope).node(node)


def suggest(name: str, candidates: Sequence[str]) -> str:
    """'; did you mean 'x'?' for the closest candidate, or ''."""
    folded = {c.lower(): c for c in candidates}
    if name.lower() in folded:
        return msg("; did you mean '%(name)s'?", name=folded[name.lower()])
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return msg("; did you mean '%(name)s'?", name=close[0]) if close else ""


def start(node: Node) -> tuple[int, int]:
    """Where the source text of `node` begins."""
    while isinstance(node, Binary):
        node = node.left
    return node.line, node.col


class _Checker:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def node(self, node: Node) -> TNode:
        if isinstance(node, Number):
            return TLiteral(N, node.value, node.line, node.col)
        if isinstance(node, Text):
            return TLiteral(T, node.value, node.line, node.col)
        if isinstance(node, Boolean):
            return TLiteral(B, node.value, node.line, node.col)
        if isinstance(node, FieldRef):
            return self.field(node)
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        return self.call(node)

    # ---- fields ------------------------------------------------------------------------

    def field(self, ref: FieldRef) -> TField:
        path = ref.path
        ftype: FType | None = None
        for i, name in enumerate(path):
            line, col = ref.positions[i]
            if i and ftype is not FType.REFERENCE:
                assert ftype is not None
                raise FormulaError(
                    msg("%(path)s is %(type)s, not a reference, so it has no field '%(name)s'",
                        path=".".join(path[:i]), type=described(ftype), name=name), line, col)
            ftype = self.scope.field_type(path[: i + 1])
            if ftype is None:
                raise FormulaError(self._unknown(path[:i], name), line, col)
        assert ftype is not None
        scale = self.scope.number_scale(path) if ftype is N else None
        return TField(ftype, path, scale, ref.line, ref.col)

    def _unknown(self, prefix: Path, name: str) -> str:
        if not prefix and name.upper() in FUNCTIONS:
            return msg("unknown field '%(name)s'; %(function)s is a function: write "
                       "%(function)s()", name=name, function=name.upper())
        hint = suggest(name, self.scope.field_names(prefix))
        if prefix:
            return msg("unknown field '%(name)s' on %(path)s%(hint)s", name=name,
                       path=".".join(prefix), hint=hint)
        return msg("unknown field '%(name)s'%(hint)s", name=name, hint=hint)

    # ---- operators ---------------------------------------------------------------------

    def unary(self, node: Unary) -> TNode:
        operand = self.node(node.operand)
        if node.op == "NOT":
            self._need(operand, B, node.operand, msg("NOT needs a condition"))
            if operand.type is BLANK:
                return operand
            return TCall(B, "NOT", (operand,), node.line, node.col)
        self._need(operand, N, node.operand, msg("minus needs a number"))
        if operand.type is BLANK:
            return operand
        return TCall(N, "NEG", (operand,), node.line, node.col)

    def _need(self, typed: TNode, want: FType, node: Node, what: str) -> None:
        if typed.type not in (want, BLANK):
            raise FormulaError(msg("%(what)s, not %(type)s", what=what,
                                   type=described(typed.type)), *start(node))

    def binary(self, node: Binary) -> TNode:
        left, right = self.node(node.left), self.node(node.right)
        op, lt, rt = node.op, left.type, right.type
        if op in ("AND", "OR"):
            both = msg("%(op)s needs conditions on both sides", op=op)
            self._need(left, B, node.left, both)
            self._need(right, B, node.right, both)
            return self._op(B, op, node, (left, B), (right, B))
        if op == "&":
            for side, typed in ((N_("left"), left), (N_("right"), right)):
                if typed.type not in (T, BLANK):
                    raise FormulaError(
                        msg("& joins texts, but the %(side)s side is %(type)s: convert it with "
                            "TEXT(...)", side=msg(side), type=described(typed.type)),
                        node.line, node.col)
            return self._op(T, "&", node, (left, T), (right, T))
        if op in _ARITHMETIC:
            return self._arithmetic(node, left, right)
        # comparisons
        kind = lt if lt is not BLANK else rt
        allowed = ORDERED if op in ("<", "<=", ">", ">=") else COMPARABLE
        if kind is not BLANK and kind not in allowed:
            raise FormulaError(msg("%(op)s cannot compare %(types)s", op=op, types=plural(kind)),
                               node.line, node.col)
        if BLANK not in (lt, rt) and lt is not rt:
            raise FormulaError(msg("cannot compare %(left)s with %(right)s", left=described(lt),
                                   right=described(rt)), node.line, node.col)
        return self._op(B, op, node, (left, kind), (right, kind))

    def _arithmetic(self, node: Binary, left: TNode, right: TNode) -> TNode:
        op, table = node.op, _ARITHMETIC[node.op]
        lt, rt = left.type, right.type
        if lt is BLANK and rt is BLANK:
            lt = rt = N
        elif lt is BLANK:
            lt = N if (N, rt) in table else next((a for a, b in table if b is rt), N)
        elif rt is BLANK:
            rt = N if (lt, N) in table else next((b for a, b in table if a is lt), N)
        result = table.get((lt, rt))
        if result is None:
            if op in ("*", "/", "^"):
                message = msg("%(op)s needs numbers, not %(left)s and %(right)s", op=op,
                              left=described(left.type), right=described(right.type))
            elif left.type is right.type:
                message = msg(_VERBS[op][0], types=plural(left.type))
            else:
                message = msg(_VERBS[op][1], left=described(left.type),
                              right=described(right.type))
            raise FormulaError(message, node.line, node.col)
        return self._op(result, op, node, (left, lt), (right, rt))

    @staticmethod
    def _op(result: FType, name: str, node: Binary, *args: tuple[TNode, FType]) -> TNode:
        if name not in _HANDLE_BLANK and any(a.type is BLANK for a, _ in args):
            return TLiteral(BLANK, None, node.line, node.col)  # always BLANK: fits anywhere
        return TCall(result, name, tuple(_fit(a, t) for a, t in args), node.line, node.col)

    # ---- functions ---------------------------------------------------------------------

    def call(self, node: Call) -> TNode:
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            hint = suggest(node.name, list(FUNCTIONS))
            raise FormulaError(msg("unknown function %(name)s%(hint)s", name=node.name,
                                   hint=hint), node.line, node.col)
        self._arity(spec, node)
        if spec.name == "BLANK":
            return TLiteral(BLANK, None, node.line, node.col)
        if spec.field_args:
            args: tuple[TNode, ...] = tuple(self._own_field(spec, a) for a in node.args)
        else:
            args = tuple(self.node(a) for a in node.args)
        try:
            result, wanted = spec.resolve([a.type for a in args])
        except ArgTypeError as exc:
            raise FormulaError(exc.message, *start(node.args[exc.index])) from None
        if spec.strict and any(a.type is BLANK for a in args):
            return TLiteral(BLANK, None, node.line, node.col)  # always BLANK: fits anywhere
        fitted = tuple(_fit(a, w) for a, w in zip(args, wanted, strict=True))
        return TCall(result, spec.name, fitted, node.line, node.col)

    @staticmethod
    def _arity(spec: FunctionSpec, node: Call) -> None:
        n, low, high = len(node.args), spec.min_args, spec.max_args
        if low <= n and (high is None or n <= high):
            return
        if high == 0:
            wants = msg("no arguments")
        elif high is None:
            wants = msg("at least 1 argument") if low == 1 \
                else msg("at least %(n)s arguments", n=low)
        elif low == high:
            wants = msg("1 argument") if low == 1 else msg("%(n)s arguments", n=low)
        else:
            wants = msg("%(low)s to %(high)s arguments", low=low, high=high)
        raise FormulaError(msg("%(name)s takes %(wants)s, not %(n)s: %(signature)s",
                               name=spec.name, wants=wants, n=n, signature=spec.signature),
                           node.line, node.col)

    def _own_field(self, spec: FunctionSpec, arg: Node) -> TField:
        if not isinstance(arg, FieldRef) or len(arg.path) != 1:
            raise FormulaError(
                msg("%(name)s needs a field of this record, like %(name)s(stage)",
                    name=spec.name),
                *start(arg))
        return self.field(arg)


def _fit(node: TNode, want: FType) -> TNode:
    """`node` with BLANK() replaced by a blank of type `want` (for typed SQL NULLs)."""
    if node.type is not BLANK or want is BLANK:
        return node
    if isinstance(node, TCall):
        if node.name == "IF":
            keep = {0}
        elif node.name == "CASE":
            keep = set(case_positions(len(node.args))[0])
        else:  # BLANKVALUE, MIN, MAX: every argument carries the result
            keep = set()
        args = tuple(a if i in keep else _fit(a, want) for i, a in enumerate(node.args))
        return replace(node, type=want, args=args)
    return replace(node, type=want)


def check_source(source: str, scope: Scope) -> TNode:
    """parse, then check."""
    return check(parse(source), scope)
