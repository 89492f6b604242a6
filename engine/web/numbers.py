"""Whole numbers typed into URLs and forms (ids, versions): ASCII digits only.

>>> whole_number("42"), whole_number("²"), whole_number("1" * 21)
(42, None, None)
"""

from __future__ import annotations


def whole_number(raw: str | None, max_digits: int = 20) -> int | None:
    """`raw` as a non-negative int when it is 1 to `max_digits` ASCII digits, else None
    (`str.isdigit` alone accepts "²", which `int` then refuses)."""
    if not raw or len(raw) > max_digits or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)
