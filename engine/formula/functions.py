"""The function registry: every function's name, arity and typing rule.

Implementations live with the compilers (`pycompile`, `sqlcompile`), which a test
checks against this registry; docs/formula.md documents every name here.

>>> FUNCTIONS["ROUND"].signature
'ROUND(number, places)'
>>> FUNCTIONS["ROUND"].resolve([FType.NUMBER, FType.NUMBER])
(<FType.NUMBER: 'number'>, (<FType.NUMBER: 'number'>, <FType.NUMBER: 'number'>))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.formula.types import FType, described
from engine.messages import either, msg

B, N, T = FType.BOOLEAN, FType.NUMBER, FType.TEXT
D, DT, M, R, BLANK = FType.DATE, FType.DATETIME, FType.MULTICHOICE, FType.REFERENCE, FType.BLANK

COMPARABLE = frozenset({N, T, B, D, DT, R})
ORDERED = frozenset({N, T, D, DT})
"""Types that <, <=, > and >= accept."""


class ArgTypeError(Exception):
    """An argument of the wrong type; the checker adds the argument's position."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


Resolution = tuple[FType, tuple[FType, ...]]
"""The result type and, per argument, the type a BLANK() in that place stands for."""
Rule = Callable[[str, Sequence[FType]], Resolution]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    params: str
    """The parameters as docs and messages show them: "number, places"."""
    min_args: int
    max_args: int | None
    """None: any number of arguments from min_args on."""
    rule: Rule
    sql: bool = True
    """False: the function needs a record being saved (Python only)."""
    field_args: bool = False
    """True: the argument must be a field of the record itself, not a value."""
    strict: bool = True
    """True: BLANK when any argument is BLANK (False: the function handles BLANK)."""

    @property
    def signature(self) -> str:
        return f"{self.name}({self.params})"

    def resolve(self, arg_types: Sequence[FType]) -> Resolution:
        return self.rule(self.name, arg_types)


def _want(allowed: frozenset[FType]) -> str:
    order = [N, T, B, D, DT, M, R]
    return either([described(t) for t in order if t in allowed])


def _expect(name: str, i: int, got: FType, allowed: frozenset[FType]) -> FType:
    """The type a BLANK in place i stands for; raises when `got` is not allowed."""
    if got is BLANK:
        return min(allowed, key=[N, T, B, D, DT, M, R].index)
    if got not in allowed:
        raise ArgTypeError(i, msg("%(name)s needs %(wants)s as argument %(n)s, not %(got)s",
                                  name=name, wants=_want(allowed), n=i + 1,
                                  got=described(got)))
    return got


def _fixed(result: FType, *params: frozenset[FType] | FType, repeat: bool = False) -> Rule:
    """Each argument of a type from its parameter's set; with `repeat`, extra arguments
    take the last parameter's set."""
    sets = [p if isinstance(p, frozenset) else frozenset({p}) for p in params]

    def rule(name: str, args: Sequence[FType]) -> Resolution:
        wanted = tuple(_expect(name, i, t, sets[min(i, len(sets) - 1)] if repeat else sets[i])
                       for i, t in enumerate(args))
        return result, wanted

    return rule


def _same_as_first(*rest: frozenset[FType] | FType) -> Rule:
    """The result has the first argument's type (a date or a datetime)."""
    first = frozenset({D, DT})
    sets = [p if isinstance(p, frozenset) else frozenset({p}) for p in rest]

    def rule(name: str, args: Sequence[FType]) -> Resolution:
        head = _expect(name, 0, args[0], first)
        tail = tuple(_expect(name, i + 1, t, sets[i]) for i, t in enumerate(args[1:]))
        return head, (head, *tail)

    return rule


def unify(name: str, positions: Sequence[int], args: Sequence[FType],
          allowed: frozenset[FType]) -> FType:
    """The one type the arguments at `positions` share (BLANK() fits any)."""
    found: FType = BLANK
    first = -1
    for i in positions:
        t = args[i]
        if t is BLANK:
            continue
        _expect(name, i, t, allowed)
        if found is BLANK:
            found, first = t, i
        elif t is not found:
            raise ArgTypeError(i, msg("%(name)s needs one type here: argument %(first)s is "
                                      "%(first_type)s, argument %(n)s is %(type)s", name=name,
                                      first=first + 1, first_type=described(found), n=i + 1,
                                      type=described(t)))
    return found


def _if(name: str, args: Sequence[FType]) -> Resolution:
    cond = _expect(name, 0, args[0], frozenset({B}))
    t = unify(name, range(1, len(args)), args, COMPARABLE)
    return t, (cond, *([t] * (len(args) - 1)))


def case_positions(n: int) -> tuple[list[int], list[int]]:
    """CASE(value, match1, result1, ..., else) with n arguments: the positions of the
    value and the matches, and of the results and the else."""
    pairs = (n - 1) // 2
    matches = [0] + [1 + 2 * j for j in range(pairs)]
    results = [2 + 2 * j for j in range(pairs)] + ([n - 1] if n % 2 == 0 else [])
    return matches, results


def _case(name: str, args: Sequence[FType]) -> Resolution:
    matches, results = case_positions(len(args))
    key = unify(name, matches, args, COMPARABLE)
    result = unify(name, results, args, COMPARABLE)
    return result, tuple(key if i in matches else result for i in range(len(args)))


def _same(allowed: frozenset[FType]) -> Rule:
    """All arguments and the result share one type from `allowed`."""
    def rule(name: str, args: Sequence[FType]) -> Resolution:
        t = unify(name, range(len(args)), args, allowed)
        return t, tuple([t] * len(args))
    return rule


def _isblank(name: str, args: Sequence[FType]) -> Resolution:
    return B, tuple(args)


def _field_type(name: str, args: Sequence[FType]) -> Resolution:
    return args[0], tuple(args)


def _days(name: str, args: Sequence[FType]) -> Resolution:
    return N, tuple(_expect(name, i, t, frozenset({D})) for i, t in enumerate(args))


_TEXTABLE = frozenset({N, T, B, D, DT})
_DATES = frozenset({D, DT})

_SPECS = [
    # logic and blanks
    FunctionSpec("IF", "condition, then, else", 2, 3, _if, strict=False),
    FunctionSpec("CASE", "value, match1, result1, ..., else", 3, None, _case, strict=False),
    FunctionSpec("AND", "condition, ...", 1, None, _fixed(B, B, repeat=True), strict=False),
    FunctionSpec("OR", "condition, ...", 1, None, _fixed(B, B, repeat=True), strict=False),
    FunctionSpec("NOT", "condition", 1, 1, _fixed(B, B)),
    FunctionSpec("ISBLANK", "value", 1, 1, _isblank, strict=False),
    FunctionSpec("BLANKVALUE", "value, default", 2, 2, _same(COMPARABLE), strict=False),
    FunctionSpec("BLANK", "", 0, 0, _fixed(BLANK)),
    # numbers
    FunctionSpec("ROUND", "number, places", 1, 2, _fixed(N, N, N)),
    FunctionSpec("ABS", "number", 1, 1, _fixed(N, N)),
    FunctionSpec("MIN", "value, ...", 1, None, _same(frozenset({N, D, DT}))),
    FunctionSpec("MAX", "value, ...", 1, None, _same(frozenset({N, D, DT}))),
    FunctionSpec("MOD", "number, divisor", 2, 2, _fixed(N, N, N)),
    FunctionSpec("CEILING", "number", 1, 1, _fixed(N, N)),
    FunctionSpec("FLOOR", "number", 1, 1, _fixed(N, N)),
    FunctionSpec("POWER", "number, exponent", 2, 2, _fixed(N, N, N)),
    FunctionSpec("SQRT", "number", 1, 1, _fixed(N, N)),
    # text
    FunctionSpec("LEN", "text", 1, 1, _fixed(N, T)),
    FunctionSpec("LEFT", "text, count", 2, 2, _fixed(T, T, N)),
    FunctionSpec("RIGHT", "text, count", 2, 2, _fixed(T, T, N)),
    FunctionSpec("MID", "text, start, count", 3, 3, _fixed(T, T, N, N)),
    FunctionSpec("UPPER", "text", 1, 1, _fixed(T, T)),
    FunctionSpec("LOWER", "text", 1, 1, _fixed(T, T)),
    FunctionSpec("TRIM", "text", 1, 1, _fixed(T, T)),
    FunctionSpec("CONTAINS", "text, search", 2, 2, _fixed(B, T, T)),
    FunctionSpec("BEGINS", "text, prefix", 2, 2, _fixed(B, T, T)),
    FunctionSpec("SUBSTITUTE", "text, old, new", 3, 3, _fixed(T, T, T, T)),
    FunctionSpec("TEXT", "value", 1, 1, _fixed(T, _TEXTABLE)),
    FunctionSpec("VALUE", "text", 1, 1, _fixed(N, T)),
    FunctionSpec("FIND", "search, text, start", 2, 3, _fixed(N, T, T, N)),
    # dates
    FunctionSpec("TODAY", "", 0, 0, _fixed(D)),
    FunctionSpec("NOW", "", 0, 0, _fixed(DT)),
    FunctionSpec("DATE", "year, month, day", 3, 3, _fixed(D, N, N, N)),
    FunctionSpec("DATEVALUE", "datetime", 1, 1, _fixed(D, DT)),
    FunctionSpec("YEAR", "date", 1, 1, _fixed(N, _DATES)),
    FunctionSpec("MONTH", "date", 1, 1, _fixed(N, _DATES)),
    FunctionSpec("DAY", "date", 1, 1, _fixed(N, _DATES)),
    FunctionSpec("WEEKDAY", "date", 1, 1, _fixed(N, _DATES)),
    FunctionSpec("ADDMONTHS", "date, months", 2, 2, _fixed(D, D, N)),
    FunctionSpec("ADDDAYS", "date, days", 2, 2, _same_as_first(N)),
    FunctionSpec("DAYS", "later, earlier", 2, 2, _days),
    FunctionSpec("HOURS_SINCE", "datetime", 1, 1, _fixed(N, DT)),
    FunctionSpec("MINUTES", "later, earlier", 2, 2, _fixed(N, DT, DT)),
    # multichoice
    FunctionSpec("INCLUDES", "multichoice, option", 2, 2, _fixed(B, M, T)),
    # the record being saved (validation rules and flows)
    FunctionSpec("ISNEW", "", 0, 0, _fixed(B), sql=False),
    FunctionSpec("ISCHANGED", "field", 1, 1, _isblank, sql=False, field_args=True,
                 strict=False),
    FunctionSpec("PRIORVALUE", "field", 1, 1, _field_type, sql=False, field_args=True,
                 strict=False),
]

FUNCTIONS: dict[str, FunctionSpec] = {spec.name: spec for spec in _SPECS}
"""Every function by upper-case name."""
