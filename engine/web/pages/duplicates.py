"""The new-record form's duplicate warning (engine/runtime/imports/guard.py): when a save
matches records the viewer may read, the form comes back with them listed — a link to
each, and what matched — and a "Create anyway" button that saves again with
`_allow_duplicate=1`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.metadata.model import Entity
from engine.runtime.imports.duplicates import Candidate

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
