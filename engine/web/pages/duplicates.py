"""The new-record form's duplicate warning (engine/runtime/imports/guard.py): when a save
matches records the viewer may read, the form comes back with them listed — a link to
each, and what matched — and a "Create anyway" button that saves again with
`_allow_duplicate=1`. While a new record is typed, the form's live preview shows the
same list as a hint (`live_hint`), before any save."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.metadata.model import Entity
from engine.runtime.access import Actor
from engine.runtime.imports.duplicates import Candidate, find_duplicates, usable_rules
from engine.runtime.records import Records

ALLOW_FIELD = "_allow_duplicate"
"""The form field the "Create anyway" button sends."""


@dataclass(frozen=True)
class DuplicateItem:
    url: str
    title: str
    matched: str
    """The labels of the fields that matched, in the viewer's language: "Account name, City"."""


def duplicate_items(entity: Entity, found: Sequence[Candidate], language: str
                    ) -> list[DuplicateItem]:
    """The candidates as the warning lists them."""
    return [DuplicateItem(f"/e/{entity.name}/{c.id}", c.title,
                          ", ".join(entity.field(n).label.get(language) for n in c.rule))
            for c in found if c.id is not None]


def live_hint(records: Records, actor: Actor, entity: Entity, posted: Mapping[str, list[str]],
              language: str) -> list[DuplicateItem] | None:
    """While a new record is typed (the form's preview): the records its values so far
    match, for the hint under the form; None when the entity has no rules the viewer may
    use (the form has no hint)."""
    if not usable_rules(records, actor, entity):
        return None
    values = {name: items[0] for name, items in posted.items()
              if items and entity.has_field(name)}
    with records.reading() as conn:
        found = find_duplicates(conn, records, actor, entity.name, values, limit=HINT_LIMIT)
    return duplicate_items(entity, found, language)


HINT_LIMIT = 5
