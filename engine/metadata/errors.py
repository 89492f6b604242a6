"""Configuration errors that say where: ``file:line:col: message``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class SourceLoc:
    """A 1-based position in a configuration file."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, order=True)
class ConfigError:
    loc: SourceLoc
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}"


class ConfigErrors(Exception):
    """One or more configuration errors; nothing is applied while any exists."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A hint naming the closest choice, or "".

    >>> did_you_mean("amout", ["amount", "stage"])
    " (did you mean 'amount'?)"
    """
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
