"""A create that stops at duplicates: the record is checked and written like any create,
then — in the same transaction, before it commits — compared with the live records the
creator may read by the entity's duplicate rules (engine/runtime/imports/duplicates.py).
When any match, nothing stays (the unit of work rolls back: no record, no audit row, no
number taken) and `DuplicateFound` names the candidates; the caller may then create it
anyway (`allow_duplicate`).

Checking after the record's own checks means a record that is not valid gets its 422 first,
and the comparison sees the values as they will be stored (defaults, formula defaults). It
is a warning, not a constraint: two people creating the same customer at the same moment
may both succeed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.messages import msg
from engine.metadata.labels import Label
from engine.runtime.access import Actor
from engine.runtime.errors import Conflict
from engine.runtime.imports.duplicates import Candidate, find_duplicates, usable_rules

if TYPE_CHECKING:
    from engine.runtime.records import Records


class DuplicateFound(Conflict):
    """409: the new record matches records the creator may read."""

    code = "duplicate"

    def __init__(self, message: str, candidates: Sequence[Candidate]) -> None:
        super().__init__(message)
        self.candidates = tuple(candidates)

    @property
    def extra(self) -> dict[str, Any]:
        """What the error answer carries besides its message: the candidates."""
        return {"candidates": [c.to_json() for c in self.candidates]}


def create_unless_duplicate(records: Records, actor: Actor, entity: str,
                            data: Mapping[str, Any], *, allow_duplicate: bool = False
                            ) -> dict[str, Any]:
    """`records.create`, refused with `DuplicateFound` when the new record matches live
    records `actor` may read (unless `allow_duplicate`)."""
    c = records.compiled(entity)
    if allow_duplicate or not usable_rules(records, actor, c.entity):
        return records.create(actor, entity, data)
    with records.unit(actor) as u:
        record = records.create(actor, entity, data, unit=u)
        found = find_duplicates(u.conn, records, actor, entity, record, exclude_id=record["id"])
        if found:
            raise DuplicateFound(duplicate_message(c.entity.label, found), found)
    return record


def duplicate_message(label: Label, found: Sequence[Candidate]) -> str:
    """'Account may already exist: Acme (#12); …' — the first three named."""
    shown = "; ".join(f"{c.title} (#{c.id})" for c in found[:3])
    if len(found) > 3:
        return msg("%(entity)s may already exist: %(records)s and %(more)s more; create it "
                   "anyway with allow_duplicate=1", entity=label, records=shown,
                   more=len(found) - 3)
    return msg("%(entity)s may already exist: %(records)s; create it anyway with "
               "allow_duplicate=1", entity=label, records=shown)
