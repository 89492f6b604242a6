"""Split a sum into its terms, for explaining a score term by term.

>>> sum_terms('CASE(a, "x", 10, 0) + IF(b, 5, 0)\\n + 3')
['CASE(a, "x", 10, 0)', 'IF(b, 5, 0)', '3']
>>> sum_terms("a * 2") is None, sum_terms("(a + b)") is None
(True, True)
>>> sum_terms('LEN(")") + 1')
['LEN(")")', '1']
"""

from __future__ import annotations

from engine.formula.ast import Binary, Node
from engine.formula.parser import parse


def sum_terms(source: str) -> list[str] | None:
    """The source text of each top-level addend of `source`, or None when the formula is
    not a sum (`a + b + c`). Raises FormulaError when it does not parse."""
    node: Node = parse(source)
    offsets: list[int] = []
    while isinstance(node, Binary) and node.op == "+":
        offsets.append(_offset(source, node.line, node.col))
        node = node.left
    if not offsets:
        return None
    cuts = sorted(offsets)
    starts = [0, *(c + 1 for c in cuts)]
    ends = [*cuts, len(source)]
    terms = [source[a:b].strip() for a, b in zip(starts, ends, strict=True)]
    # `(a + b)`: parentheses around the whole sum would be cut apart; it is one term then.
    if any(not _balanced(t) for t in terms):
        return None
    return terms


def _balanced(text: str) -> bool:
    """Whether the parentheses outside text literals pair up."""
    depth = 0
    quoted = escaped = False
    for ch in text:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "()":
            depth += 1 if ch == "(" else -1
            if depth < 0:
                return False
    return depth == 0


def _offset(source: str, line: int, col: int) -> int:
    start = 0
    for _ in range(line - 1):
        start = source.index("\n", start) + 1
    return start + col - 1
