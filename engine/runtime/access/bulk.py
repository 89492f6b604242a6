"""Bulk reads: a page of more than ORDINARY_PAGE_SIZE records is an export (roles.yaml).

A list answers at most MAX_PAGE_SIZE records per request (engine/runtime/records/query.py
refuses more with a 400 naming the bound). Up to ORDINARY_PAGE_SIZE is an ordinary read, for
anyone who may read the entity. Above it, the page is a bulk read, and a bulk read is what
the `export` action of roles.yaml governs: it needs an export scope that covers the read
scope (`export: all` with `read: department`, or both `own`), else 403 naming `export`. The
list answers by the read scope, so a narrower export scope would let a bulk page carry rows
the user may not export; such a user still pages through at ORDINARY_PAGE_SIZE.

    require_page_size(policy, rep, account, 500)  # rep: read department, export own
    -> Forbidden("a page of more than 200 accounts is a bulk read: it needs the export
       permission on every account you may read (yours: own); ask for 200 at most")
"""

from __future__ import annotations

from engine.messages import msg
from engine.metadata.model import Entity
from engine.runtime.access.actor import Actor
from engine.runtime.access.policy import AccessPolicy
from engine.runtime.errors import Forbidden

ORDINARY_PAGE_SIZE = 200
"""The largest page any reader gets; above it a page needs the `export` permission."""


def may_read_in_bulk(policy: AccessPolicy, actor: Actor, entity: Entity) -> bool:
    """Whether the actor's export scope on `entity` covers every record it may read."""
    read = policy.scope(actor, entity.name, "read")
    export = policy.scope(actor, entity.name, "export")
    return export.rank >= read.rank


def require_page_size(policy: AccessPolicy, actor: Actor, entity: Entity,
                      page_size: int) -> None:
    """Forbidden when a page of `page_size` records is a bulk read the actor may not do."""
    if page_size <= ORDINARY_PAGE_SIZE or may_read_in_bulk(policy, actor, entity):
        return
    export = policy.scope(actor, entity.name, "export")
    raise Forbidden(
        msg("a page of more than %(limit)s %(entities)s is a bulk read: it needs the export "
            "permission on every %(entity)s you may read (yours: %(scope)s); ask for "
            "%(limit)s at most", limit=ORDINARY_PAGE_SIZE, entities=entity.plural,
            entity=entity.label, scope=export.value),
        {"page_size": msg("more than %(limit)s needs the export permission",
                          limit=ORDINARY_PAGE_SIZE)})
