"""Merge two records of one entity into one, and undo it by restoring the merged-away one.

`merge` runs in ONE unit of work (engine/runtime/records/unit.py):

1. both records are locked (the entity's tree links first, then the rows in id order): they
   must be different, live and readable; the actor needs `update` on the survivor and
   `delete` on the loser, and both versions must be the ones the actor compared (409);
2. refused when the survivor hangs under the loser in a tree of the entity (`account.parent`),
   or when a unique reference to the loser cannot move (the survivor already has its one);
3. the loser's unique values the survivor takes are cleared on the loser (it keeps them in
   the recycle bin otherwise, and the survivor could not take them);
4. every record of any entity that points to the loser — reference fields, regarding fields,
   line items' parents — in the recycle bin too, is repointed to the survivor: an audited
   `update` of each, their validation rules checked (the merger's roles may override as on
   any write). This is a cascade of the merge, like assign's: it moves children the merger
   could not update themselves (their owner and visibility do not change, only the link);
   the answer counts only the moved records the merger may read. The loser's team members
   join the survivor's team (an `edit` member keeps edit), and the files attached to the
   loser (not those held in a file field) move to the survivor;
5. the survivor gets the chosen values: an ordinary audited update (`Records.update`: field
   checks, links, unique values, rules, version);
6. the loser goes to the recycle bin (`Records.delete`);
7. both records get an audit row with the action `merge` (field `merge`: `{"into": id}` on
   the loser, `{"from": id}` on the survivor), and a `crm_merge` row keeps what moved and the
   survivor's values before.

Rollups follow the moved children through the before-commit hooks, as for any update.

Undo: restoring the loser (the ordinary restore, page or API) runs the before-commit hook
`MergeUndo` in the restore's unit of work: the children that still point to the survivor go
back to the loser, the team members and files the merge brought leave the survivor again,
the survivor's fields the merge changed go back unless changed since (those are kept and
named in the `unmerge` audit row: `{"undone": merge id, "kept": [fields]}`), and the
loser's cleared unique values come back (409 when another record took one since). The
restorer needs `update` on the survivor as well as what restore needs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, func, insert, select, update

from engine.fieldtypes import Regarding
from engine.messages import msg
from engine.metadata.model import Field
from engine.metadata.roles import Scope
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import BadRequest, Conflict, Forbidden, Invalid, stale_version
from engine.runtime.org import DEPARTMENT
from engine.runtime.records import secure
from engine.runtime.records.locks import hold
from engine.runtime.records.trees import would_circle
from engine.runtime.records.unique import check_unique
from engine.runtime.schema.regarding import points_at
from engine.runtime.schema.tables import ATTACHMENT_TABLE, MERGE_TABLE, TEAM_TABLE
from engine.runtime.values import to_json
from engine.types import FieldType

if TYPE_CHECKING:
    from engine.runtime.records import Records
    from engine.runtime.records.service import Compiled
    from engine.runtime.records.unit import RecordChange, UnitOfWork

SIDES = ("survivor", "loser")
AUDIT_FIELD = "merge"
"""The audit rows' field of a merge and of its undoing."""
HOOK_NAME = "merge undo"


@dataclass(frozen=True)
class Link:
    """A field of some entity that can point to records of the merged entity."""

    entity: str
    field: Field

    @property
    def regarding(self) -> bool:
        return self.field.type is FieldType.REGARDING


def links_to(records: Records, entity: str) -> list[Link]:
    """Every reference and regarding field of any entity that may point to `entity`."""
    out: list[Link] = []
    for e in records.model.entities:
        for f in e.stored_fields:
            referenced = f.type is FieldType.REFERENCE and f.target == entity
            regarded = f.type is FieldType.REGARDING and (not f.targets or entity in f.targets)
            if referenced or regarded:
                out.append(Link(e.name, f))
    return out


def _points(records: Records, link: Link, entity: str, record_id: int) -> Any:
    t = records.schema.table(link.entity)
    if link.regarding:
        return points_at(t, link.field.name, entity, record_id)
    return t.c[link.field.name] == record_id


def _value(link: Link, entity: str, record_id: int) -> Any:
    return Regarding.of(entity, record_id) if link.regarding else record_id


def children(records: Records, actor: Actor, entity: str, record_id: int,
             conn: Any = None) -> dict[str, int]:
    """How many records of each entity point to `record_id` (live or in the recycle bin)
    that `actor` may read: what a merge of it would move, as the merger may know it."""
    counts: dict[str, int] = defaultdict(int)
    with records.reading(conn) as db:
        for link in links_to(records, entity):
            if records.policy.scope(actor, link.entity, "read") is Scope.NONE:
                continue
            if link.field.name in records.policy.hidden_fields(
                    actor, records.model.entity(link.entity)):
                continue
            seen = secure.rows(records, actor, link.entity, deleted=None)
            n = db.execute(seen.select(func.count()).select_from(seen.table).where(
                _points(records, link, entity, record_id))).scalar_one()
            if n:
                counts[link.entity] += int(n)
    return dict(counts)


def check_take(c: Compiled, take: Mapping[str, str]) -> None:
    """422 for a side that is neither survivor nor loser, or a field that cannot be taken."""
    errors: dict[str, str] = {}
    for name, side in take.items():
        if side not in SIDES:
            errors[str(name)] = msg("say survivor or loser")
        elif not c.entity.has_field(name):
            errors[name] = msg("unknown field of %(entity)s", entity=c.entity.name)
        elif name not in c.plain:
            errors[name] = msg("is kept by the engine and cannot be taken from the other "
                               "record")
    if errors:
        raise Invalid(msg("the merge is not valid"), errors)


def merge(records: Records, actor: Actor, entity: str, survivor_id: int, loser_id: int, *,
          take: Mapping[str, str], versions: Mapping[int, int],
          unit: UnitOfWork | None = None) -> dict[str, Any]:
    """Merge `loser_id` into `survivor_id` (see the module's doc). `take`: field → "survivor"
    or "loser", whose value the survivor keeps (by default its own); `versions`: record id →
    the version the actor compared, for both records.

    Returns {"record": the survivor as the actor sees it, "merge": the merge's id,
    "loser": loser_id, "moved": {entity: moved records the actor may read}}."""
    c = records.compiled(entity)
    records.policy.require(actor, c.entity, "read")
    if entity == DEPARTMENT:
        raise BadRequest(msg("departments cannot be merged: users and records belong to them"))
    if survivor_id == loser_id:
        raise Invalid(msg("a record cannot be merged with itself"),
                      {"loser": msg("choose another record")})
    check_take(c, take)
    missing = [rid for rid in (survivor_id, loser_id) if rid not in versions]
    if missing:
        raise Invalid(msg("give the version of both records"),
                      {"versions": msg("needs the version of %(ids)s",
                                       ids=", ".join(str(i) for i in missing))})
    with records.unit(actor, unit) as work:
        conn = work.conn
        t = c.table
        for name, target in sorted(c.links.items()):  # before the row locks: trees.py
            if target is t:
                hold(conn, "tree", t.name, name)
        rows = {rid: records.fetch(conn, actor, c, rid, lock=True)
                for rid in sorted((survivor_id, loser_id))}
        survivor, loser = rows[survivor_id], rows[loser_id]
        records.allowed(conn, actor, c, survivor_id, "update")
        records.allowed(conn, actor, c, loser_id, "delete")
        for rid in (survivor_id, loser_id):
            if rows[rid]["version"] != versions[rid]:
                raise stale_version(entity, rid, rows[rid]["version"], versions[rid])
        for name, target in c.links.items():
            if target is t and would_circle(conn, t, name, survivor_id, loser_id):
                raise Invalid(msg("%(id)s is under the record merged away; merge them the "
                                  "other way round", id=survivor_id),
                              {"loser": msg("the surviving record is under it (%(field)s)",
                                            field=name)})
        links = links_to(records, entity)
        _refuse_unique_clash(records, conn, links, entity, survivor_id, loser_id)
        data = {name: loser[name] for name, side in take.items()
                if side == "loser" and loser[name] != survivor[name]}
        cleared = {f.name: loser[f.name] for f in c.entity.fields
                   if f.unique and f.name in data and loser[f.name] is not None}
        if cleared:
            conn.execute(update(t).where(t.c.id == loser_id).values(
                **c.db_values(dict.fromkeys(cleared))))
        moved = _repoint(records, work, links, entity, loser_id, survivor_id)
        team = _join_team(records, work, entity, loser_id, survivor_id)
        files = _move_files(records, work, entity, loser_id, survivor_id)
        merge_id = conn.execute(insert(records.schema.table(MERGE_TABLE)).values(
            entity=entity, survivor_id=survivor_id, loser_id=loser_id, merged_at=work.now,
            merged_by=actor.user_id, detail="{}").returning(
                records.schema.table(MERGE_TABLE).c.id)).scalar_one()
        work.change(entity, survivor_id, "merge", changes=[
            (AUDIT_FIELD, None, {"from": loser_id, "merge": merge_id})])
        work.change(entity, loser_id, "merge", changes=[
            (AUDIT_FIELD, None, {"into": survivor_id, "merge": merge_id}),
            *[(name, value, None) for name, value in cleared.items()]])
        if data:
            records.update(actor, entity, survivor_id, data, versions[survivor_id], unit=work)
        records.delete(actor, entity, loser_id, unit=work)
        after = records.fetch(conn, SYSTEM, c, survivor_id, lock=True)
        fields = {name: {"before": to_json(survivor[name]), "after": to_json(after[name])}
                  for name in data if after[name] != survivor[name]}
        detail = {"fields": fields, "cleared": {k: to_json(v) for k, v in cleared.items()},
                  "moved": moved, "team": team, "files": files}
        mt = records.schema.table(MERGE_TABLE)
        conn.execute(update(mt).where(mt.c.id == merge_id).values(
            detail=json.dumps(detail, ensure_ascii=False)))
        work.settle()
        row = records.fetch(conn, SYSTEM, c, survivor_id, reader=actor)
        visible = _readable_counts(records, conn, actor, moved)
    return {"record": records.row_out(actor, c, row), "merge": merge_id, "loser": loser_id,
            "moved": visible}


def _refuse_unique_clash(records: Records, conn: Any, links: Sequence[Link], entity: str,
                         survivor_id: int, loser_id: int) -> None:
    """409 when a unique reference points to the loser and another to the survivor: the
    one to the loser could not move. Names the field, never the records."""
    for link in links:
        if not link.field.unique:
            continue
        t = records.schema.table(link.entity)
        both = [conn.execute(select(t.c.id).where(_points(records, link, entity, rid))
                             .limit(1)).first() is not None for rid in (survivor_id, loser_id)]
        if all(both):
            e = records.model.entity(link.entity)
            raise Conflict(msg("both records are named by %(entity)s's %(field)s, which may "
                               "name a record only once; change one of those first",
                               entity=e.label, field=link.field.label))


def _repoint(records: Records, work: UnitOfWork, links: Sequence[Link], entity: str,
             old: int, new: int) -> list[list[Any]]:
    """Point every record that points to `old` through one of `links` to `new` (live and
    binned alike), each an audited update; then the rules of the live ones are checked, on
    the state after every move (a contact and the manager it reports to move together).
    Returns [entity, id, field] of each."""
    conn = work.conn
    moved: list[list[Any]] = []
    check: list[tuple[Compiled, dict[str, Any], dict[str, Any]]] = []
    for link in links:
        child = records.compiled(link.entity)
        t = child.table
        seen = secure.rows(records, SYSTEM, link.entity, deleted=None)
        stmt = (select(*seen.record_columns(computed=False))
                .where(_points(records, link, entity, old)).order_by(t.c.id)
                .with_for_update())
        name = link.field.name
        value = _value(link, entity, new)
        for before in [dict(r) for r in conn.execute(stmt).mappings()]:
            engine_after = {"version": before["version"] + 1, "updated_at": work.now,
                            "updated_by": work.actor.user_id}
            conn.execute(update(t).where(t.c.id == before["id"]).values(
                **child.db_values({name: value}), **engine_after))
            work.change(link.entity, before["id"], "update", before=before,
                        after={**before, name: value, **engine_after},
                        changes=[(name, before[name], value)])
            moved.append([link.entity, before["id"], name])
            if before["deleted_at"] is None:
                check.append((child, before, {name: value}))
    merged: dict[tuple[str, int], tuple[Compiled, dict[str, Any], dict[str, Any]]] = {}
    for child, before, values in check:  # one record may move through two links
        key = (child.entity.name, before["id"])
        _, first, done = merged.get(key, (child, before, {}))
        merged[key] = (child, first, {**done, **values})
    for child, before, values in merged.values():
        _check_rules(records, work, child, before, values)
    return moved


def _check_rules(records: Records, work: UnitOfWork, c: Compiled, before: Mapping[str, Any],
                 values: Mapping[str, Any]) -> None:
    """The validation rules of a record moved by the merge, on its values after; 422 naming
    the record only when the merger may read it."""
    errors: dict[str, str] = {}
    records.apply_rules(work.conn, c, {**before, **values}, errors, prior=before,
                        writer=work.actor)
    if not errors:
        return
    readable = work.conn.execute(secure.rows(records, work.actor, c.entity.name).select(
        c.table.c.id).where(c.table.c.id == before["id"])).first() is not None
    what = msg("%(entity)s %(id)s", entity=c.entity.label, id=before["id"]) if readable \
        else msg("a %(entity)s you cannot see", entity=c.entity.label)
    raise Invalid(msg("%(what)s cannot move to the surviving record: %(problems)s",
                      what=what, problems="; ".join(str(m) for m in errors.values())),
                  {"loser": msg("a record that refers to it cannot move")})


def _readable_counts(records: Records, conn: Any, actor: Actor,
                     moved: Sequence[Sequence[Any]]) -> dict[str, int]:
    ids: dict[str, set[int]] = defaultdict(set)
    for e, rid, _ in moved:
        ids[e].add(rid)
    out: dict[str, int] = {}
    for e, found in sorted(ids.items()):
        seen = secure.rows(records, actor, e, deleted=None)
        t = seen.table
        n = conn.execute(seen.select(func.count()).select_from(t).where(
            t.c.id.in_(sorted(found)))).scalar_one()
        if n:
            out[e] = int(n)
    return out


def _join_team(records: Records, work: UnitOfWork, entity: str, loser_id: int,
               survivor_id: int) -> list[dict[str, Any]]:
    """The loser's team members join the survivor's (edit wins over read); returns each
    member added or raised, with their access before on the survivor (None: not on it)."""
    conn = work.conn
    tt, u = records.schema.table(TEAM_TABLE), records.users
    on = {r.user_id: r.access for r in conn.execute(select(tt.c.user_id, tt.c.access).where(
        tt.c.entity == entity, tt.c.record_id == survivor_id))}
    out: list[dict[str, Any]] = []
    for r in conn.execute(select(tt.c.user_id, tt.c.access, u.c.name).select_from(
            tt.join(u, u.c.id == tt.c.user_id)).where(
            tt.c.entity == entity, tt.c.record_id == loser_id).order_by(tt.c.id)).all():
        before = on.get(r.user_id)
        if before == r.access or before == "edit":
            continue
        if before is None:
            conn.execute(insert(tt).values(entity=entity, record_id=survivor_id,
                                           user_id=r.user_id, access=r.access,
                                           added_at=work.now, added_by=work.actor.user_id))
        else:
            conn.execute(update(tt).where(tt.c.entity == entity,
                                          tt.c.record_id == survivor_id,
                                          tt.c.user_id == r.user_id).values(access=r.access))
        work.change(entity, survivor_id, "team", changes=[
            ("team", _member(r.name, before), _member(r.name, r.access))])
        out.append({"user_id": r.user_id, "user": r.name, "access": r.access,
                    "before": before})
    return out


def _member(name: str | None, access: str | None) -> dict[str, Any] | None:
    return None if access is None else {"user": name, "access": access}


def _move_files(records: Records, work: UnitOfWork, entity: str, old: int,
                new: int, ids: Sequence[int] | None = None) -> list[int]:
    """Move the files attached to `old` (not those a file field holds; `ids`: these only)
    to `new`; an `attachment` change of each record per file."""
    conn = work.conn
    at = records.schema.table(ATTACHMENT_TABLE)
    where = [at.c.entity == entity, at.c.record_id == old, at.c.field.is_(None)]
    if ids is not None:
        if not ids:
            return []
        where.append(at.c.id.in_(list(ids)))
    rows = conn.execute(select(at.c.id, at.c.file_name).where(*where).order_by(at.c.id)).all()
    if not rows:
        return []
    conn.execute(update(at).where(at.c.id.in_([r.id for r in rows])).values(record_id=new))
    for r in rows:
        audited = {"id": r.id, "file_name": r.file_name}
        work.change(entity, old, "attachment", changes=[("attachments", audited, None)])
        work.change(entity, new, "attachment", changes=[("attachments", None, audited)])
    return [r.id for r in rows]


# -- undo: restoring the loser -----------------------------------------------------------


class MergeUndo:
    """The before-commit hook that undoes a merge when its loser is restored."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.table: Table = records.schema.table(MERGE_TABLE)

    def __call__(self, unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        for change in changes:
            if change.action != "restore":
                continue
            t = self.table
            row = unit.conn.execute(select(t).where(
                t.c.entity == change.entity, t.c.loser_id == change.record_id,
                t.c.undone_at.is_(None)).order_by(t.c.id.desc()).limit(1)).mappings().first()
            if row is not None:
                with unit.caused_by(change):
                    undo(self.records, unit, dict(row))


def install_merge_undo(records: Records) -> None:
    records.hooks.on_before_commit(HOOK_NAME, MergeUndo(records))


def undo(records: Records, work: UnitOfWork, row: Mapping[str, Any]) -> list[str]:
    """Undo the merge `row` (a crm_merge row) in `work`; returns the survivor's fields kept
    because they changed since the merge."""
    conn, actor = work.conn, work.actor
    entity, survivor_id, loser_id = row["entity"], row["survivor_id"], row["loser_id"]
    detail = json.loads(row["detail"])
    c = records.compiled(entity)
    t = c.table
    survivor = conn.execute(select(*secure.rows(records, SYSTEM, entity, deleted=None)
                                   .record_columns(computed=False))
                            .where(t.c.id == survivor_id).with_for_update()).mappings().first()
    kept: list[str] = []
    if survivor is not None:
        try:
            records.allowed(conn, actor, c, survivor_id, "update")
        except Forbidden:
            raise Forbidden(msg("restoring this record undoes its merge into another "
                                "%(entity)s, which you may not change",
                                entity=c.entity.label)) from None
        back: dict[str, Any] = {}
        for name, values in detail["fields"].items():
            if not c.entity.has_field(name) or name not in c.coercers:
                continue
            if to_json(survivor[name]) != values["after"]:
                kept.append(name)
                continue
            value = c.coercers[name](values["before"])
            errors: dict[str, str] = {}
            check_unique(conn, c.entity, t, {name: value}, errors, lambda: None, survivor_id)
            if errors:
                kept.append(name)
            else:
                back[name] = value
        if back:
            engine_after = {"version": survivor["version"] + 1, "updated_at": work.now,
                            "updated_by": actor.user_id}
            conn.execute(update(t).where(t.c.id == survivor_id).values(
                **c.db_values(back), **engine_after))
            work.change(entity, survivor_id, "update", before=dict(survivor),
                        after={**survivor, **back, **engine_after},
                        changes=[(n, survivor[n], v) for n, v in back.items()])
    cleared = {name: c.coercers[name](value) for name, value in detail["cleared"].items()
               if c.entity.has_field(name) and name in c.coercers}
    if cleared:
        errors = {}
        check_unique(conn, c.entity, t, cleared, errors, lambda: None, loser_id)
        if errors:
            raise Conflict(msg("the merge of this record cannot be undone: another record "
                               "took its value since (%(problems)s); change that first",
                               problems="; ".join(str(m) for m in errors.values())),
                           errors)
        conn.execute(update(t).where(t.c.id == loser_id).values(**c.db_values(cleared)))
    _move_back(records, work, entity, detail["moved"], survivor_id, loser_id)
    _leave_team(records, work, entity, detail["team"], survivor_id)
    _move_files(records, work, entity, survivor_id, loser_id, detail["files"])
    mt = records.schema.table(MERGE_TABLE)
    conn.execute(update(mt).where(mt.c.id == row["id"]).values(
        undone_at=work.now, undone_by=actor.user_id))
    work.change(entity, survivor_id, "unmerge", changes=[
        (AUDIT_FIELD, None, {"undone": row["id"], "from": loser_id, "kept": kept})])
    work.change(entity, loser_id, "unmerge", changes=[
        (AUDIT_FIELD, None, {"undone": row["id"], "into": survivor_id}),
        *[(name, None, value) for name, value in cleared.items()]])
    return kept


def _move_back(records: Records, work: UnitOfWork, entity: str,
               moved: Sequence[Sequence[Any]], survivor_id: int, loser_id: int) -> None:
    """The moved records that still point to the survivor point to the loser again."""
    conn = work.conn
    by_link: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e, rid, name in moved:
        if records.model.has_entity(e) and records.model.entity(e).has_field(name):
            by_link[(e, name)].append(rid)
    for (e, name), ids in sorted(by_link.items()):
        child = records.compiled(e)
        link = Link(e, child.entity.field(name))
        t = child.table
        seen = secure.rows(records, SYSTEM, e, deleted=None)
        stmt = (select(*seen.record_columns(computed=False))
                .where(t.c.id.in_(sorted(ids)), _points(records, link, entity, survivor_id))
                .order_by(t.c.id).with_for_update())
        value = _value(link, entity, loser_id)
        for before in [dict(r) for r in conn.execute(stmt).mappings()]:
            engine_after = {"version": before["version"] + 1, "updated_at": work.now,
                            "updated_by": work.actor.user_id}
            conn.execute(update(t).where(t.c.id == before["id"]).values(
                **child.db_values({name: value}), **engine_after))
            work.change(e, before["id"], "update", before=before,
                        after={**before, name: value, **engine_after},
                        changes=[(name, before[name], value)])


def _leave_team(records: Records, work: UnitOfWork, entity: str,
                added: Sequence[Mapping[str, Any]], survivor_id: int) -> None:
    """The members the merge added to the survivor's team leave it (or get their access
    before back), unless their access changed since."""
    conn = work.conn
    tt = records.schema.table(TEAM_TABLE)
    for m in added:
        key = (tt.c.entity == entity, tt.c.record_id == survivor_id,
               tt.c.user_id == m["user_id"])
        now = conn.execute(select(tt.c.access).where(*key)).scalar()
        if now != m["access"]:
            continue
        if m["before"] is None:
            conn.execute(delete(tt).where(*key))
        else:
            conn.execute(update(tt).where(*key).values(access=m["before"]))
        work.change(entity, survivor_id, "team", changes=[
            ("team", _member(m["user"], now), _member(m["user"], m["before"]))])


def merge_of(records: Records, entity: str, loser_id: int) -> dict[str, Any] | None:
    """The open merge whose loser is `loser_id` (what restoring it would undo), or None."""
    t = records.schema.table(MERGE_TABLE)
    with records.reading() as conn:
        row = conn.execute(select(t.c.id, t.c.survivor_id, t.c.merged_at).where(
            t.c.entity == entity, t.c.loser_id == loser_id, t.c.undone_at.is_(None))
            .order_by(t.c.id.desc()).limit(1)).mappings().first()
    return None if row is None else dict(row)
