"""The page of a record in the recycle bin: `/e/<entity>/<id>` of a deleted record says so and
links to the bin, with a Restore button, for a viewer who may restore it (who may read it in
the bin and delete it). Anyone else gets the usual not-found page, as for a record that never
was: the page never tells them a record exists.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.metadata.model import Entity
from engine.runtime.errors import Forbidden, NotFound
from engine.runtime.imports.merge import merge_of
from engine.runtime.records import Records
from engine.web.pages.fields import Display, titles
from engine.web.pages.table import title_of
from engine.web.ui import Ui
from engine.web.viewer import Viewer


def restorable(records: Records, viewer: Viewer, entity: Entity,
               record_id: int) -> dict[str, Any] | None:
    """The deleted record, as the viewer may see it, when they may restore it; else None."""
    actor = viewer.user.actor()
    try:
        record = records.get(actor, entity.name, record_id, deleted=True)
        with records.reading() as conn:
            records.allowed(conn, actor, records.compiled(entity.name), record_id, "delete")
    except (NotFound, Forbidden):
        return None
    return record


def recycled_page(ui: Ui, records: Records, request: Request, viewer: Viewer, entity: Entity,
                  record: dict[str, Any]) -> Response:
    """410 Gone: the record is in the recycle bin; who deleted it and when, and the way back."""
    display = Display(records.model, records, viewer.user.actor(), viewer.language)
    deleted_by = record.get("deleted_by")
    display.load([("user", deleted_by)])
    merged = merge_of(records, entity.name, int(record["id"]))
    into: tuple[int, str] | None = None  # the survivor, named only to its readers
    if merged is not None:
        survivor = int(merged["survivor_id"])
        found = titles(records.model, records, viewer.user.actor(), entity.name, [survivor])
        if survivor in found:
            into = (survivor, found[survivor] or f"#{survivor}")
    return ui.page(request, "recycled.html", {
        "entity": entity, "record": record, "record_title": title_of(entity, record),
        "deleted_by": display.title("user", deleted_by).text if deleted_by else "",
        "merged": merged is not None, "merged_into": into,
    }, status=410)
