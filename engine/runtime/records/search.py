"""Global search: the records of one entity whose title or `search: true` fields contain
every word of a text (any case), through the secure query.

The query starts from the same rows and fields the records service lets the actor read (its
read predicate; fields hidden from the actor are neither matched nor returned), selects
only the columns a hit shows, and reads one row past the page instead of counting every
match, so a search costs one bounded query per entity.

>>> words("  Acme   shanghai ")
('acme', 'shanghai')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_

from engine.messages import msg
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest
from engine.runtime.records import secure
from engine.runtime.schema.regarding import field_column
from engine.types import TEXT_TYPES

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

MAX_TEXT = 100
"""The longest search text, in characters."""
MAX_WORDS = 5
MAX_PAGE_SIZE = 50


@dataclass(frozen=True)
class SearchHit:
    id: int
    row: dict[str, Any]
    """The hit's title, searched and context fields the actor may see (others left out)."""
    matched: str | None
    """The searched field (not the title) holding a word of the text; None when only the
    title matched."""


@dataclass(frozen=True)
class SearchPage:
    entity: Entity
    hits: tuple[SearchHit, ...]
    more: bool
    """Whether more records match beyond this page."""


def words(text: str) -> tuple[str, ...]:
    """The words a search looks for (lower case, blanks dropped); BadRequest when the
    text is too long or holds a NUL."""
    if len(text) > MAX_TEXT:
        raise BadRequest(msg("The search text is too long: at most %(max)s characters.",
                             max=MAX_TEXT), {"q": msg("at most %(max)s characters",
                                                      max=MAX_TEXT)})
    if "\x00" in text:  # PostgreSQL refuses NUL in any string
        raise BadRequest(msg("The search text must not contain NUL characters."),
                         {"q": msg("must not contain NUL characters")})
    found = tuple(dict.fromkeys(w.lower() for w in text.split()))
    if len(found) > MAX_WORDS:
        raise BadRequest(msg("Search for at most %(max)s words at a time.", max=MAX_WORDS),
                         {"q": msg("at most %(max)s words", max=MAX_WORDS)})
    return found


def searched_fields(entity: Entity) -> tuple[Field, ...]:
    """The title (when it is a stored text-like field), then the `search: true` fields."""
    out: list[Field] = []
    if entity.has_field(entity.title):
        title = entity.field(entity.title)
        if title.type in TEXT_TYPES and not title.computed:
            out.append(title)
    out += [f for f in entity.fields if f.search and f.name != entity.title]
    return tuple(out)


def search_records(records: Records, actor: Actor, entity: str, text: str, *,
                   page_size: int = 10, page: int = 1,
                   context: Sequence[str] = ()) -> SearchPage | None:
    """One page of `entity`'s records matching `text` for `actor`, best first: the title
    starting with the text, then the title holding it, then the other matches, each by
    title. None when the actor may not read the entity or may see no field to match.

    `context`: more stored fields to return with each hit (those the actor may see).
    """
    c = records.compiled(entity)
    e = c.entity
    found = words(text)
    if not found:
        blank = msg("Type a word to search for.")
        raise BadRequest(blank, {"q": blank})
    page_size, page = max(1, min(page_size, MAX_PAGE_SIZE)), max(1, page)
    policy = records.policy
    if policy.scope(actor, entity, "read") is Scope.NONE:
        return None
    seen = secure.rows(records, actor, entity)
    hidden = seen.hidden
    fields = [f for f in searched_fields(e) if f.name not in hidden]
    if not fields:
        return None
    t = c.table
    has_title = fields[0].name == e.title
    each_word = [or_(*[t.c[f.name].icontains(w, autoescape=True) for f in fields])
                 for w in found]
    shown = list(dict.fromkeys(
        [f.name for f in fields]
        + [n for n in context if e.has_field(n) and n not in hidden
           and not e.field(n).computed]))
    order: list[Any] = []
    if has_title:
        title = t.c[e.title]
        whole = " ".join(found)
        order += [case((title.istartswith(whole, autoescape=True), 0),
                       (title.icontains(whole, autoescape=True), 1), else_=2),
                  func.lower(title).asc() if records.nulls_small
                  else func.lower(title).asc().nulls_last()]
    stmt = (seen.select(t.c.id, *[field_column(t, e.field(n)).label(n) for n in shown])
            .where(and_(*each_word))
            .order_by(*order, t.c.id.asc())
            .offset((page - 1) * page_size).limit(page_size + 1))
    with records.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    hits = tuple(SearchHit(int(r["id"]), r, _matched(fields, e.title, r, found))
                 for r in rows[:page_size])
    return SearchPage(e, hits, len(rows) > page_size)


def _matched(fields: Sequence[Field], title: str, row: Mapping[str, Any],
             found: tuple[str, ...]) -> str | None:
    """The first searched field other than the title that holds one of the words."""
    for f in fields:
        value = row.get(f.name)
        if f.name != title and isinstance(value, str) \
                and any(w in value.lower() for w in found):
            return f.name
    return None
