"""The decision tree: child records of one record, drawn as a tree by their self-reference.

`GET /e/<entity>/<id>/tree/<child>` (e.g. the contacts of an account by `reports_to`) is an
htmx fragment for the detail page; `?full=1` gives the same tree as a page of its own.

Everything comes from the metadata: the children are the `<child>` records whose reference
to `<entity>` (the related list's `via`, else the first such reference) points at the record;
the tree follows the child's first reference to its own entity. Each node shows the title
and the other columns of the parent form's related list for the child (else the child's list
columns): choice values as badges, and a number with a configured range (min and max, such
as influence 1 to 5) as the weight of the node's line, 1 to 5. A record whose manager is not
among the children is a root. Only the children the viewer can read are drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.messages import msg
from engine.metadata import Model
from engine.metadata.model import Entity, Field
from engine.runtime.access.bulk import ORDINARY_PAGE_SIZE, may_read_in_bulk
from engine.runtime.errors import NotFound
from engine.runtime.records.query import MAX_PAGE_SIZE, Condition, ListQuery, SortKey
from engine.types import NUMERIC_TYPES, FieldType
from engine.web.i18n import N_
from engine.web.pages.board import MAX_ID
from engine.web.ui import PageFamily
from engine.web.viewer import Viewer, require_viewer

MAX_NODES = MAX_PAGE_SIZE
NO_TREE = N_("These records cannot be drawn as a tree.")


@dataclass(frozen=True)
class TreeShape:
    """How `child` records hang under an `entity` record and under each other."""

    child: Entity
    via: str
    parent_link: str
    columns: tuple[str, ...]


def tree_shape(model: Model, entity: Entity, child_name: str) -> TreeShape | None:
    if not model.has_entity(child_name):
        return None
    child = model.entity(child_name)
    related = next((r for r in model.form(entity.name).related if r.entity == child.name),
                   None)
    refs = [f for f in child.fields if f.type is FieldType.REFERENCE]
    via = related.via if related is not None else next(
        (f.name for f in refs if f.to == entity.name), None)
    link = next((f.name for f in refs if f.to == child.name and f.name != via), None)
    if via is None or link is None or not child.has_field(via) \
            or child.field(via).to != entity.name:
        return None
    columns = related.columns if related is not None else model.form(child.name).list_columns
    shown = tuple(c for c in columns if c not in (child.title, via, link)
                  and child.has_field(c))
    return TreeShape(child, via, link, shown)


@dataclass(frozen=True)
class Detail:
    label: str
    text: str
    kind: str
    """"badge" (a choice), "weight" (a number with a range) or "text"."""


@dataclass
class Node:
    id: int
    title: str
    weight: int
    details: list[Detail]
    children: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class TreeView:
    entity: Entity
    record_id: int
    record_title: str
    shape: TreeShape
    roots: tuple[Node, ...]
    count: int
    total: int


def line_weight(f: Field, value: Any) -> int | None:
    """1 to 5 from a number within its field's min..max (None: the field has no range)."""
    if f.type not in NUMERIC_TYPES or f.min is None or f.max is None or f.max <= f.min \
            or not isinstance(value, (int, Decimal)) or isinstance(value, bool):
        return None
    share = (Decimal(value) - f.min) / (f.max - f.min)
    return max(1, min(5, 1 + round(share * 4)))


def build_forest(rows: Sequence[Mapping[str, Any]],
                 link: str) -> tuple[list[int], dict[int, list[int]]]:
    """(roots, children by id) of `rows` joined by `link`: a row whose `link` is blank or
    points outside the rows is a root. A cycle, which the records service refuses to store,
    would otherwise hide its members: its smallest id becomes a root, so each row appears
    exactly once."""
    ids = [int(r["id"]) for r in rows]
    present = set(ids)
    parent = {int(r["id"]): r.get(link) for r in rows}
    children: dict[int, list[int]] = {i: [] for i in ids}
    roots: list[int] = []
    for i in ids:
        up = parent[i]
        if isinstance(up, int) and up in present and up != i:
            children[up].append(i)
        else:
            roots.append(i)
    reached: set[int] = set()

    def walk(i: int) -> None:
        stack = [i]
        while stack:
            current = stack.pop()
            if current in reached:
                continue
            reached.add(current)
            stack.extend(children[current])

    for r in roots:
        walk(r)
    for i in ids:  # only members of a cycle are left
        if i not in reached:
            roots.append(i)
            children[parent[i]].remove(i)  # type: ignore[index]
            walk(i)
    return roots, children


class Tree(PageFamily):
    def routes(self) -> list[Route]:
        return [Route("/e/{entity}/{record_id:id}/tree/{child}", self.tree, methods=["GET"])]

    async def tree(self, request: Request) -> Response:
        viewer = require_viewer(request)
        name = str(request.path_params["entity"])
        if not self.model.has_entity(name):
            raise NotFound(msg("no entity %(name)s", name=repr(name[:80])))
        entity = self.model.entity(name)
        record_id = int(request.path_params["record_id"])
        if not 0 < record_id <= MAX_ID:
            raise NotFound(msg("no %(entity)s %(id)s", entity=name, id=record_id))
        shape = tree_shape(self.model, entity, str(request.path_params["child"]))
        if shape is None:
            raise NotFound(NO_TREE)
        view = await run_in_threadpool(self.load, viewer, entity, record_id, shape)
        full = request.query_params.get("full") == "1"
        return self.ui.page(request, "tree.html", {"tree": view, "full": full})

    def load(self, viewer: Viewer, entity: Entity, record_id: int,
             shape: TreeShape) -> TreeView:
        actor = viewer.user.actor()
        language = viewer.language
        record = self.records.get(actor, entity.name, record_id)  # 404 when not visible
        child = shape.child
        sort = (SortKey(child.title, False),) \
            if not self.records.policy.reads_hidden(actor, child, (child.title,)) else ()
        # more nodes than a list page is a bulk read (engine/runtime/access/bulk.py)
        bulk = may_read_in_bulk(self.records.policy, actor, child)
        page = self.records.list_records(actor, child.name, ListQuery(
            conditions=(Condition(shape.via, "eq", record_id),), sort=sort,
            page_size=MAX_NODES if bulk else ORDINARY_PAGE_SIZE))
        rows = page.items
        by_id = {int(r["id"]): r for r in rows}
        roots, children = build_forest(rows, shape.parent_link)

        def node(i: int) -> Node:
            row = by_id[i]
            title = row.get(child.title)
            weight: int | None = None
            details: list[Detail] = []
            for name in shape.columns:
                if name not in row or row[name] in (None, ""):
                    continue  # hidden from the viewer, or blank
                f = child.field(name)
                value = row[name]
                w = line_weight(f, value)
                if w is not None:
                    weight = w if weight is None else weight  # the first ranged column
                    details.append(Detail(f.label.get(language), str(value), "weight"))
                elif f.type is FieldType.CHOICE:
                    details.append(Detail(f.label.get(language),
                                          f.option_label(str(value), language), "badge"))
                elif f.type in (FieldType.TEXT, FieldType.EMAIL, FieldType.PHONE):
                    details.append(Detail(f.label.get(language), str(value), "text"))
            return Node(i, str(title) if title not in (None, "") else f"#{i}", weight or 1,
                        details, [node(c) for c in children[i]])

        title = record.get(entity.title)
        return TreeView(entity, record_id, str(title) if title else f"#{record_id}", shape,
                        tuple(node(r) for r in roots), len(rows), page.total)
