"""The names of linked records read in the same query as the records that link to them.

A list shows an opportunity's account and owner by name. Reading those names in a second
query per target costs a round trip each (on a loaded server, as much as the list query
itself), so `list_records` can select them alongside the rows, as correlated subqueries:

    (SELECT account.name FROM account
      WHERE account.id = opportunity.account AND account.deleted_at IS NULL
        AND <the actor's read predicate on account>)

under the same conditions as any list of the target, so a record the actor may not read
gives no name (NULL) and its name never reaches a page. Only titles the database can
show as the page would (a stored text field, or the id) are read this way; the caller
reads the others as before (engine/web/pages/fields.py `titles`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, String, Table, cast, func, literal, select
from sqlalchemy.sql.selectable import NamedFromClause

from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.records import secure
from engine.types import TEXT_TYPES

if TYPE_CHECKING:
    from engine.runtime.records.service import Records

USERS = "crm_user"
"""The target name of user links (owner, created_by, user fields)."""
NAME_PREFIX = "_name__"
"""How a row's name column of link key K is labelled (`_name__K`)."""


def name_column(records: Records, actor: Actor, target: str,
                key: ColumnElement[Any]) -> ColumnElement[Any] | None:
    """The name of the `target` record that `key` links to, as a correlated subquery:
    '' for a record the actor reads without its title (the page shows `#id`), NULL for
    none they may read. None when the database cannot give the name as the page shows it
    (then read it separately)."""
    if target == USERS:  # who a user is is not a secret
        u = _alias(records.users)
        shown = func.coalesce(func.nullif(u.c.display_name, ""), u.c.name)
        return select(shown).where(u.c.id == key).scalar_subquery()
    model = records.model
    if not model.has_entity(target):
        return None
    entity = model.entity(target)
    policy = records.policy
    if policy.scope(actor, entity.name, "read") is Scope.NONE:
        return literal(None, String)  # the actor may not read that entity at all
    compiled = records.compiled(target)
    t = _alias(compiled.table)
    if not entity.has_field(entity.title):
        title: ColumnElement[Any] = cast(t.c[entity.title], String)  # "id": no text field
    else:
        title_field = entity.field(entity.title)
        if title_field.name in policy.hidden_fields(actor, entity):
            title = literal("", String)
        elif title_field.computed or title_field.type not in TEXT_TYPES:
            return None  # formatted or computed in Python: read with `titles`
        else:
            title = func.coalesce(t.c[title_field.name], "")
    return secure.rows(records, actor, target, table=t).select(title).where(t.c.id == key) \
        .scalar_subquery()


@lru_cache(maxsize=1024)
def _alias(table: Table) -> NamedFromClause:
    """One alias per table (an alias is made column by column: once, not per query). The
    alias keeps a link to the list's own entity (contact.reports_to) apart from it."""
    return table.alias()


def names_of(rows: list[dict[str, Any]], links: Mapping[str, str]) -> dict[tuple[str, int], str]:
    """(target, id) → name, taken out of `rows` (their `_name__K` columns removed): a
    blank name reads `#id`; a record without a name (not readable) is left out."""
    out: dict[tuple[str, int], str] = {}
    for row in rows:
        for key, target in links.items():
            name = row.pop(NAME_PREFIX + key, None)
            value = row.get(key)
            if name is None or not isinstance(value, int) or isinstance(value, bool):
                continue
            out[(target, value)] = str(name) or f"#{value}"
    return out
