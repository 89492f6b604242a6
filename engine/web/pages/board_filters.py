"""The pipeline board's filters: one owner, one department, the viewer's own records.

They are named as a list's filters are (`owner_id`, `department_id`, `mine`), so the board's
address and its "See all in the list" links say the same thing, and they narrow the cards
and the totals alike (engine/web/pages/board.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from engine.messages import msg
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.records.query import Condition
from engine.web.numbers import whole_number

FILTER_KEYS = ("owner_id", "department_id")
"""The board's filters, named as list filters are (`/e/<entity>?owner_id=3`)."""


@dataclass(frozen=True)
class Filters:
    """Which records the board shows: those the viewer may read, narrowed to one owner, one
    department and/or the viewer's own."""

    mine: bool = False
    owner: int | None = None
    department: int | None = None

    def conditions(self, actor: Actor) -> tuple[Condition, ...]:
        out: list[Condition] = []
        if self.mine:
            out.append(Condition("owner_id", "eq", actor.user_id))
        if self.owner is not None:
            out.append(Condition("owner_id", "eq", self.owner))
        if self.department is not None:
            out.append(Condition("department_id", "eq", self.department))
        return tuple(out)

    @property
    def params(self) -> dict[str, str]:
        """The filters as query parameters (`{"owner_id": "3"}`)."""
        out: dict[str, str] = {}
        if self.mine:
            out["mine"] = "1"
        if self.owner is not None:
            out["owner_id"] = str(self.owner)
        if self.department is not None:
            out["department_id"] = str(self.department)
        return out

    @property
    def query(self) -> str:
        """`?…` for a link to the board with these filters ("" for none)."""
        return f"?{urlencode(self.params)}" if self.params else ""

    @property
    def active(self) -> bool:
        return bool(self.params)


def parse_filters(params: Mapping[str, str]) -> Filters:
    """The board's filters from a query string or a move's form; a blank one is no filter.

    >>> parse_filters({"owner_id": "3", "mine": "1"}).params
    {'mine': '1', 'owner_id': '3'}
    """
    ids: dict[str, int] = {}
    problems: dict[str, str] = {}
    for key in FILTER_KEYS:
        raw = params.get(key, "").strip()
        if raw:
            number = whole_number(raw, 18)
            if not number:
                problems[key] = msg("must be the number of a record")
            else:
                ids[key] = number
    if problems:
        raise BadRequest(msg("Choose the owner and the department from the board's lists."),
                         problems)
    return Filters(params.get("mine") == "1", ids.get("owner_id"), ids.get("department_id"))


@dataclass(frozen=True)
class Choice:
    """One entry of a filter's list: an owner or a department, with its visible records."""

    value: int
    text: str
    count: int
