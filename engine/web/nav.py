"""The navigation, built from the model: entities grouped by their `area`.

>>> [a.key for a in navigation(load_model("config"), "en")]  # doctest: +SKIP
['customers', 'sales', 'marketing', 'admin']
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.metadata import Model
from engine.web.i18n import N_

AREAS: dict[str, str] = {
    "customers": N_("Customers"),
    "sales": N_("Sales"),
    "service": N_("Service"),
    "marketing": N_("Marketing"),
    "admin": N_("Administration"),
}
"""Area key (entity YAML `area`) → its title as a catalog msgid, in menu order."""


@dataclass(frozen=True)
class NavEntity:
    name: str
    label: str
    href: str


@dataclass(frozen=True)
class NavArea:
    key: str
    title: str
    """A catalog msgid; the template translates it."""
    entities: tuple[NavEntity, ...]


def navigation(model: Model, language: str) -> tuple[NavArea, ...]:
    """Areas in menu order, each with its entities (plural labels in `language`) in the
    order the configuration lists them; areas without entities are left out."""
    out: list[NavArea] = []
    for key, title in AREAS.items():
        entities = tuple(NavEntity(e.name, e.plural.get(language), f"/e/{e.name}")
                         for e in model.entities if e.area == key)
        if entities:
            out.append(NavArea(key, title, entities))
    return tuple(out)
