"""What a picker offers: GET /e/<entity>/pick/<field>?q= answers with these matches.

- A reference field: records of the target whose title contains the text, through the list
  service (the viewer's access), each with its context (the target form's `picker:` fields
  the viewer may see, e.g. a contact's account and email). With the form field's
  `picker_filter`, the records that satisfy it come first, then the others; `$record.x` is
  the value of x in the form being filled (sent along by the picker, `hx-include`).
- A user field, or a team member: active users by name, those the viewer may name
  (engine/runtime/access/reachable.py), as the team accepts.
- The assign form's owner and department: only users and departments the viewer's `assign`
  scope on the entity reaches (engine/runtime/access/assignable.py), as the server enforces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, literal, null, select

from engine.formula import Clock, CompiledFormula, Path
from engine.formula.sqlterms import Expr
from engine.metadata import Model
from engine.metadata.forms import RECORD_PARAM
from engine.metadata.formula_checks import ENGINE_LINKS
from engine.metadata.model import Entity, FormField
from engine.runtime.access import Actor
from engine.runtime.access.assignable import department_condition, user_condition
from engine.runtime.access.reachable import reachable_users
from engine.runtime.errors import RecordError
from engine.runtime.records import Records, secure
from engine.runtime.records.query import parse_list_params
from engine.web.i18n import N_
from engine.web.numbers import whole_number
from engine.web.pages.fields import Display, find_users, like_pattern, link_target

PICK_LIMIT = 10
SUGGESTED = N_("Suggested")
OTHERS = N_("Others")


@dataclass(frozen=True)
class Hit:
    """One match: the record's id and title, its context, and whether the form's
    picker_filter suggests it."""

    id: int
    title: str
    context: str = ""
    suggested: bool = False


@dataclass(frozen=True, eq=False)
class BoundFilter(CompiledFormula):
    """A picker_filter with its `$record` paths given values: they become SQL parameters."""

    values: Mapping[Path, Any] = field(default_factory=dict)

    def to_sql(self, columns: Callable[[Path], Any], dialect: str, clock: Clock) -> Expr:
        def bound(path: Path) -> Any:
            if path and path[0] == RECORD_PARAM:
                value = self.values.get(path)
                return null() if value is None else literal(value)
            return columns(path)

        return super().to_sql(bound, dialect, clock)


def form_field(model: Model, entity: Entity, name: str) -> FormField | None:
    return next((ff for ff in model.form(entity.name).fields if ff.name == name), None)


def include_for(model: Model, entity: Entity, name: str) -> str:
    """The inputs a picker sends along (`hx-include`): those its picker_filter reads."""
    ff = form_field(model, entity, name)
    narrowing = ff.picker_filter_compiled if ff is not None else None
    if narrowing is None:
        return ""
    names = {"record_id"} | {p[1] for p in narrowing.references
                             if p[0] == RECORD_PARAM and len(p) > 1}
    return ", ".join(f"form.record-form [name={n}]" for n in sorted(names))


class Pickers:
    def __init__(self, model: Model, records: Records) -> None:
        self.model = model
        self.records = records

    def users(self, actor: Actor, text: str) -> list[Hit]:
        """Active users the actor may name (a team member, a user field), by name
        (engine/runtime/access/reachable.py)."""
        allowed = reachable_users(self.records.policy, actor, self.records.users)
        return [Hit(i, name)
                for i, name in find_users(self.records, text, PICK_LIMIT, allowed)]

    def chosen_user(self, actor: Actor, entity: Entity, name: str, user_id: int) -> str | None:
        """The display name of the active user the picker `name` holds, when the picker may
        offer them; None otherwise (choosing by id is no way round the picker's rule)."""
        u, policy = self.records.users, self.records.policy
        allowed = (user_condition(policy, actor, entity, u) if name == "_owner"
                   else reachable_users(policy, actor, u))
        stmt = select(u.c.name, u.c.display_name).where(u.c.id == user_id,
                                                       u.c.active.is_(True))
        if allowed is not None:
            stmt = stmt.where(allowed)
        with self.records.reading() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else str(row.display_name or row.name)

    def assignable_users(self, actor: Actor, entity: Entity, text: str) -> list[Hit]:
        """Active users the actor may give `entity` records to, by name."""
        allowed = user_condition(self.records.policy, actor, entity, self.records.users)
        return [Hit(i, name)
                for i, name in find_users(self.records, text, PICK_LIMIT, allowed)]

    def assignable_departments(self, actor: Actor, entity: Entity, text: str) -> list[Hit]:
        """Live departments the actor may read and give `entity` records to, by title."""
        if not self.model.has_entity("department"):
            return []
        seen = secure.rows(self.records, actor, "department")  # live ones the actor may read
        d = seen.table
        title = d.c[seen.entity.title]
        where = seen.where
        allowed = department_condition(self.records.policy, actor, entity, d.c.id)
        if allowed is not None:
            where.append(allowed)
        if text:
            pattern = like_pattern(text)
            if pattern is None:
                return []
            where.append(func.lower(title).like(pattern, escape="\\"))
        with self.records.reading() as conn:
            rows = conn.execute(select(d.c.id, title.label("title")).where(*where)
                                .order_by(title, d.c.id).limit(PICK_LIMIT)).all()
        return [Hit(r.id, str(r.title or f"#{r.id}")) for r in rows]

    def references(self, actor: Actor, language: str, entity: Entity, name: str, text: str,
                   posted: Mapping[str, list[str]]) -> list[Hit]:
        """Records for the reference field `name` of `entity`: the picker_filter's matches
        first (when the form field has one), then the others; at most PICK_LIMIT."""
        target = link_target(entity.field(name))
        if target is None or target == "user" or not self.model.has_entity(target):
            return []
        other = self.model.entity(target)
        params = {"page_size": str(PICK_LIMIT), "sort": other.title}
        if text:
            params[f"{other.title}__contains"] = text
        ff = form_field(self.model, entity, name)
        narrowing = ff.picker_filter_compiled if ff is not None else None
        try:
            query = parse_list_params(other, params)
            first: list[dict[str, Any]] = []
            if narrowing is not None:
                bound = self.bind(actor, language, entity, narrowing, posted)
                first = self.records.list_records(actor, target,
                                                  replace(query, filter=bound)).items
            rest = self.records.list_records(
                actor, target, replace(query, page_size=PICK_LIMIT + len(first))).items
        except RecordError:  # not readable, or a title that cannot be searched
            return []
        seen = {r["id"] for r in first}
        rest = [r for r in rest if r["id"] not in seen][:PICK_LIMIT - len(first)]
        contexts = self._contexts(actor, language, other, first + rest)
        return [Hit(int(r["id"]), str(r.get(other.title) or f"#{r['id']}"),
                    contexts[int(r["id"])], suggested=r in first) for r in first + rest]

    def titled(self, actor: Actor, language: str, other: Entity, text: str) -> list[Hit]:
        """Records of `other` whose title contains `text`, through the list service (the
        viewer's access), with their context; at most PICK_LIMIT."""
        params = {"page_size": str(PICK_LIMIT), "sort": other.title}
        if text:
            params[f"{other.title}__contains"] = text
        try:
            rows = self.records.list_records(actor, other.name,
                                             parse_list_params(other, params)).items
        except RecordError:
            return []
        contexts = self._contexts(actor, language, other, rows)
        return [Hit(int(r["id"]), str(r.get(other.title) or f"#{r['id']}"),
                    contexts[int(r["id"])]) for r in rows]

    def bind(self, actor: Actor, language: str, entity: Entity, narrowing: CompiledFormula,
             posted: Mapping[str, list[str]]) -> BoundFilter:
        """The picker_filter with `$record` read from what the form holds: the values typed
        (coerced as the form would save them; a link the viewer cannot read is blank), else
        the stored record (`record_id`) or a new record's defaults. A field hidden from the
        viewer reads as blank."""
        from engine.web.pages.widgets import FormModel  # widgets imports this module

        fm = FormModel(self.model, self.records, actor, language, entity)
        raw = posted.get("record_id")
        record_id = whole_number(raw[0].strip(), 18) if raw else None
        stored = self.records.get(actor, entity.name, record_id) if record_id else None
        values = fm.base_values(stored) | fm.coerce(fm.typed_of(posted))
        paths = sorted(p for p in narrowing.references if p[0] == RECORD_PARAM)
        bound: dict[Path, Any] = {}
        with self.records.reading() as conn:
            ctx = self.records.record_context(conn, fm.compiled, values, reader=actor)
            for path in paths:
                if len(path) == 1:
                    bound[path] = record_id or None
                elif path[1] in fm.mask.hidden:
                    bound[path] = None
                elif entity.has_field(path[1]) and entity.field(path[1]).computed:
                    bound[path] = ctx.get(path[1:])
                else:
                    bound[path] = values.get(ENGINE_LINKS.get(path[1], path[1]))
        return BoundFilter(
            source=f"{narrowing.source} with {sorted(bound.items())!r}", tree=narrowing.tree,
            evaluate=narrowing.evaluate,
            references=frozenset(p for p in narrowing.references if p[0] != RECORD_PARAM),
            functions=narrowing.functions, sql_problem=narrowing.sql_problem, values=bound)

    def _contexts(self, actor: Actor, language: str, other: Entity,
                  rows: list[dict[str, Any]]) -> dict[int, str]:
        """id → the record's picker fields as the viewer reads them, joined by " · "."""
        hidden = self.records.policy.hidden_fields(actor, other)
        names = [n for n in self.model.form(other.name).picker
                 if n not in hidden and other.has_field(n)]
        display = Display(self.model, self.records, actor, language)
        display.load_rows(other, rows, names)
        out: dict[int, str] = {}
        for r in rows:
            texts = [display.show(other.field(n), r.get(n)).text for n in names if n in r]
            out[int(r["id"])] = " · ".join(t for t in texts if t)
        return out
