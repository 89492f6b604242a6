"""The one error type of the formula language: a message with a line and a column.

>>> err = FormulaError("unknown field 'amout'; did you mean 'amount'?", 1, 4)
>>> str(err)
"1:4: unknown field 'amout'; did you mean 'amount'?"
>>> print(caret_excerpt("IF(amout > 5, 1, 2)", err.line, err.col))
IF(amout > 5, 1, 2)
   ^
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.messages import Message, msg


class FormulaError(Exception):
    """A formula that cannot be parsed, checked, compiled or compiled to SQL.

    `line` and `col` are 1-based positions in the formula's own source; a caller that
    embeds formulas in a YAML file adds the formula's offset to report `file:line:col`.
    """

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message, line, col)
        self.message = message
        self.line = line
        self.col = col

    def __str__(self) -> str:
        return f"{self.line}:{self.col}: {self.message}"

    def described(self) -> Message:
        """`str(self)` as a message: the position, then the message in the reader's language.

        >>> FormulaError(msg("the formula is empty")).described().id
        '%(line)s:%(col)s: %(message)s'
        """
        return Message("%(line)s:%(col)s: %(message)s",
                       {"line": self.line, "col": self.col, "message": self.message})

    def excerpt(self, source: str) -> str:
        """The source line of the error with a caret under the column."""
        return caret_excerpt(source, self.line, self.col)


class FormulaCycleError(FormulaError):
    """Formula fields that use each other, directly or through others.

    `field` is the formula whose reference closes the cycle (line and column point at
    that reference in its source); `cycle` lists the fields in order, first == last.
    """

    def __init__(self, field: str, cycle: Sequence[str], line: int, col: int) -> None:
        super().__init__(msg("formula cycle: %(cycle)s", cycle=" -> ".join(cycle)), line, col)
        self.field = field
        self.cycle = tuple(cycle)


def caret_excerpt(source: str, line: int, col: int) -> str:
    """Line `line` of `source` and, under it, a caret at column `col` (both 1-based).

    Tabs before the column are kept so the caret lines up in a terminal.
    """
    lines = source.split("\n")  # the lexer counts lines by "\n" only
    text = lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""
    pad = "".join(ch if ch == "\t" else " " for ch in text[: max(col - 1, 0)])
    pad += " " * max(col - 1 - len(text), 0)
    return f"{text}\n{pad}^"


def position(source: str, offset: int) -> tuple[int, int]:
    """The 1-based (line, column) of a 0-based character offset in `source`."""
    line = source.count("\n", 0, offset) + 1
    start = source.rfind("\n", 0, offset) + 1
    return line, offset - start + 1
