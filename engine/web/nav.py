"""The navigation, built from the model: entities grouped by their `area`.

>>> [a.key for a in navigation(load_model("config"), "en")]  # doctest: +SKIP
['customers', 'sales', 'marketing', 'admin']
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from engine.metadata import Model
from engine.web.i18n import N_

AREAS: dict[str, str] = {
    "customers": N_("Customers"),
    "sales": N_("Sales"),
    "service": N_("Service"),
    "marketing": N_("Marketing"),
    "office": N_("Office"),
    "admin": N_("Administration"),
}
"""Area key (entity YAML `area`) → its title as a catalog msgid, in menu order."""
ADMIN_AREA = "admin"


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


def readable_only(areas: tuple[NavArea, ...], readable: Container[str]) -> tuple[NavArea, ...]:
    """The menu of one user: only the entities in `readable` (those their roles may read).
    An area left without entities goes, except Administration, which always holds the
    access check page."""
    out: list[NavArea] = []
    for area in areas:
        entities = tuple(e for e in area.entities if e.name in readable)
        if entities or area.key == ADMIN_AREA:
            out.append(NavArea(area.key, area.title, entities))
    return tuple(out)


def navigation(model: Model, language: str) -> tuple[NavArea, ...]:
    """Areas in menu order, each with its entities (plural labels in `language`) in the
    order the configuration lists them (not those with `menu: false`); areas without
    entities are left out."""
    out: list[NavArea] = []
    for key, title in AREAS.items():
        entities = tuple(NavEntity(e.name, e.plural.get(language), f"/e/{e.name}")
                         for e in model.entities if e.area == key and e.menu)
        if entities:
            out.append(NavArea(key, title, entities))
    return tuple(out)
