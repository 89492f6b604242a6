"""The assign form's order, and where a record given out of the assigner's sight leads.

POST /e/<entity>/<id>/assign first asks the records service what the assignment would do
(`assign_outcome`). When the assigner would no longer see the record, the detail page comes
back with a warning and an "Assign anyway" button (`confirmed=1`); once assigned, the
browser lands on the entity's list with a notice naming the new owner or department
(`?notice=assigned-away-user-<id>` or `-department-<id>`), never on a 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.metadata import Model
from engine.runtime.access import Actor
from engine.runtime.records import Records
from engine.web.i18n import N_, translations
from engine.web.pages.fields import titles, user_names
from engine.web.pages.forms import first_value, whole

AWAY = re.compile(r"^assigned-away-(user|department)-([0-9]{1,18})$")
AWAY_NOTICE = N_("Assigned to %(name)s; you no longer see it.")
AWAY_NOTICE_NAMELESS = N_("Assigned; you no longer see it.")


@dataclass(frozen=True)
class AssignOrder:
    """What the assign form sent."""

    owner: int | None
    department: int | None
    version: int | None
    confirmed: bool

    @classmethod
    def of(cls, posted: dict[str, list[str]]) -> AssignOrder:
        return cls(whole(first_value(posted, "_owner")),
                   whole(first_value(posted, "_department")),
                   whole(first_value(posted, "version")),
                   first_value(posted, "confirmed") == "1")

    def away_key(self) -> str:
        """The list's `?notice=` after the record left the assigner's sight."""
        if self.owner is not None:
            return f"assigned-away-user-{self.owner}"
        return f"assigned-away-department-{self.department}"


def away_notice(model: Model, records: Records, actor: Actor, language: str,
                key: str) -> str | None:
    """The notice of `?notice=assigned-away-…` in `language`, naming the user, or the
    department when the viewer may read it; None for any other key."""
    found = AWAY.match(key)
    if found is None:
        return None
    kind, number = found.group(1), int(found.group(2))
    names = user_names(records, [number]) if kind == "user" \
        else titles(model, records, actor, "department", [number])
    gettext = translations()[language].gettext
    name = names.get(number)
    if name is None:
        return gettext(AWAY_NOTICE_NAMELESS)
    return gettext(AWAY_NOTICE) % {"name": name}
