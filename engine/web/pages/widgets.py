"""What a create/edit form shows: one Widget per field of config/forms, with the value the
user typed (or the stored one), its error, and its state under the form's conditions.

The same code serves the full form and the live preview: the values being typed are
coerced with the records service's own coercers (what does not parse counts as blank),
and the entity's compiled formulas run on them through `Records.record_context`, exactly
as the service runs them when the record is saved — except that a path through a record
the user may not read is blank to them, as in every read of theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection

from engine.metadata import Model
from engine.metadata.model import Entity, Field, Form
from engine.runtime.access import Actor, FieldMask
from engine.runtime.records import Records
from engine.runtime.values import ValueProblem
from engine.types import FieldType
from engine.web.pages.fields import Display, link_target
from engine.web.pages.inputs import INPUTS, input_text, posted_text, wall_time
from engine.web.pages.pickers import include_for

State = Literal["shown", "hidden", "readonly"]
Typed = dict[str, str | list[str]]
"""What a form posted per field: the text of an input, or the chosen options."""

@dataclass
class Widget:
    """One field of a form, ready for ui_templates/form_fields.html."""

    name: str
    label: str
    kind: str
    """text, email, tel, url, textarea, integer, decimal, money, percent, date, datetime,
    select, checks, checkbox, picker; computed or readonly when it cannot be edited."""
    value: str = ""
    chosen: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    display: str = ""
    """The value as read (a computed result, a readonly value, a picked record's title)."""
    required: bool = False
    help: str = ""
    error: str = ""
    state: State = "shown"
    conditional: bool = False
    pick_url: str = ""
    pick_include: str = ""
    """Inputs of the form a picker sends along (`hx-include`): what its picker_filter reads."""
    min: str = ""
    max: str = ""
    max_length: int | None = None
    wide: bool = False

    @property
    def input_id(self) -> str:
        return f"computed-{self.name}" if self.kind == "computed" else f"f-{self.name}"


@dataclass
class SectionView:
    label: str
    columns: int
    widgets: list[Widget] = field(default_factory=list)


@dataclass
class Evaluated:
    """The record as it would be saved, and what the form's formulas say about it."""

    values: dict[str, Any]
    computed: dict[str, Any]
    states: dict[str, State]


class FormModel:
    """Builds the widgets of one entity's form for one viewer."""

    def __init__(self, model: Model, records: Records, actor: Actor, language: str,
                 entity: Entity) -> None:
        self.model = model
        self.records = records
        self.actor = actor
        self.language = language
        self.entity = entity
        self.form: Form = model.form(entity.name)
        self.compiled = records.compiled(entity.name)
        self.mask: FieldMask = records.policy.mask(actor, entity)
        self.display = Display(model, records, actor, language)
        self.zone = model.settings.zone
        """The organisation's time zone: a datetime input holds its wall time there."""

    # -- what was posted --------------------------------------------------------------

    def writable(self, name: str) -> bool:
        """A stored field of the entity this viewer may write at all (role rules)."""
        e = self.entity
        return (e.has_field(name) and not e.field(name).derived
                and name not in self.mask.hidden and name not in self.mask.readonly)

    def typed_of(self, posted: Mapping[str, list[str]],
                 stored: Mapping[str, Any] | None = None) -> Typed:
        """The fields a form (or a query string) gives, as typed. A boolean's checkbox comes
        after a hidden "false", so the last value wins; a multichoice sends an empty marker.
        A datetime's wall time is in the organisation's time zone: it becomes an instant with
        that zone's offset (`posted_text`), the stored value's own when it is the wall time
        `stored` shows (an hour the clocks go back is ambiguous)."""
        typed: Typed = {}
        for name, items in posted.items():
            if not items or not self.writable(name):
                continue
            f = self.entity.field(name)
            takes = INPUTS[f.type].posted
            if takes == "all":
                typed[name] = [i for i in items if i]
            elif takes == "last":
                typed[name] = items[-1]
            elif f.type is FieldType.DATETIME and items[0].strip():
                shown = (stored or {}).get(name)
                typed[name] = posted_text(items[0], self.zone,
                                          shown if isinstance(shown, datetime) else None)
            else:
                typed[name] = items[0]
        return typed

    def submitted(self, typed: Typed, states: Mapping[str, State], *,
                  creating: bool) -> dict[str, Any]:
        """What goes to the records service: no field the form shows readonly or hides.
        On create a blank is left out, so the field's default applies."""
        out: dict[str, Any] = {}
        for name, raw in typed.items():
            if states.get(name, "shown") != "shown":
                continue
            if creating and (raw == "" or raw == []):
                continue
            out[name] = raw
        return out

    # -- evaluation --------------------------------------------------------------------

    def base_values(self, stored: Mapping[str, Any] | None) -> dict[str, Any]:
        """The record before this form's changes: as stored, or a new one's defaults."""
        if stored is not None:
            return dict(stored)
        return self.records.new_record(self.actor, self.entity.name)

    def coerce(self, typed: Typed) -> dict[str, Any]:
        """Typed values as stored values; what does not parse counts as blank, and a link
        to a record the viewer may not read counts as blank too (formulas would read it)."""
        out: dict[str, Any] = {}
        for name, raw in typed.items():
            try:
                out[name] = self.compiled.coercers[name](raw)
            except ValueProblem:
                out[name] = None
        links = [(t, out[n]) for n in out
                 if (t := link_target(self.entity.field(n))) is not None]
        self.display.load(links)
        for name, value in list(out.items()):
            target = link_target(self.entity.field(name))
            if target is not None and value is not None and not self.known(target, value):
                out[name] = None
        return out

    def known(self, target: str, record_id: int) -> bool:
        if target == "user":
            return record_id in self.display.users
        return record_id in self.display.titles.get(target, {})

    def evaluate(self, stored: Mapping[str, Any] | None, typed: Typed,
                 derived: Mapping[str, Any] | None = None) -> Evaluated:
        """Conditions and computed fields of the record being typed. A `readonly` condition
        that holds on the stored record or on the typed one makes the field readonly.
        `derived`: rollup values to use instead of the stored ones (a line grid's totals)."""
        base = self.base_values(stored) | dict(derived or {})
        self.display.load_rows(self.entity, [base])
        values = base | self.coerce(typed)
        states = self._states(values, stored)
        if stored is not None:
            for name, state in self._states(base, stored).items():
                if state == "readonly" and states[name] == "shown":
                    states[name] = "readonly"
        kept = {n: v for n, v in typed.items() if states.get(n, "shown") == "shown"}
        values = base | self.coerce(kept)
        computed = self._computed(values, stored)
        return Evaluated(values, computed, states)

    def hidden_on(self, conn: Connection, stored: Mapping[str, Any]) -> frozenset[str]:
        """The fields whose `hidden` condition holds on a stored record with nothing typed
        (the "hidden" of `evaluate(stored, {}).states`), lookups through `conn`."""
        ctx = self.records.record_context(conn, self.compiled, dict(stored), prior=stored,
                                          reader=self.actor)
        return frozenset(ff.name for ff in self.form.fields
                         if ff.hidden_compiled is not None and ff.hidden_compiled.holds(ctx))

    def _context_run(self, values: Mapping[str, Any], stored: Mapping[str, Any] | None,
                     run: Any) -> Any:
        with self.records.reading() as conn:
            ctx = self.records.record_context(conn, self.compiled, values, prior=stored,
                                              is_new=stored is None, reader=self.actor)
            return run(ctx)

    def _states(self, values: Mapping[str, Any],
                stored: Mapping[str, Any] | None) -> dict[str, State]:
        def run(ctx: Any) -> dict[str, State]:
            out: dict[str, State] = {}
            for ff in self.form.fields:
                if ff.hidden_compiled is not None and ff.hidden_compiled.holds(ctx):
                    out[ff.name] = "hidden"
                elif ff.readonly_compiled is not None and ff.readonly_compiled.holds(ctx):
                    out[ff.name] = "readonly"
                else:
                    out[ff.name] = "shown"
            return out

        return dict(self._context_run(values, stored, run))

    def _computed(self, values: Mapping[str, Any],
                  stored: Mapping[str, Any] | None) -> dict[str, Any]:
        names = [ff.name for ff in self.form.fields if self.entity.has_field(ff.name)
                 and self.entity.field(ff.name).computed and ff.name not in self.mask.hidden]
        if not names:
            return {}
        return dict(self._context_run(
            values, stored, lambda ctx: {n: ctx.get((n,)) for n in names}))

    # -- widgets -----------------------------------------------------------------------

    def sections(self, ev: Evaluated, typed: Typed,
                 errors: Mapping[str, str]) -> list[SectionView]:
        """Every section of the form with its widgets; fields hidden from the viewer's
        roles are left out entirely."""
        out: list[SectionView] = []
        for section in self.form.sections:
            view = SectionView(section.label.get(self.language) if section.label else "",
                               section.columns)
            for ff in section.fields:
                if not self.entity.has_field(ff.name) or ff.name in self.mask.hidden:
                    continue
                conditional = ff.hidden_compiled is not None or ff.readonly_compiled is not None
                view.widgets.append(self.widget(
                    self.entity.field(ff.name), ev, typed, errors.get(ff.name, ""),
                    conditional=conditional))
            if view.widgets:
                out.append(view)
        return out

    def wall_text(self, text: str) -> str:
        """A typed datetime (an instant, `typed_of`) as its input shows it again: its wall
        time in the organisation's time zone; a text that is no instant as it was typed."""
        try:
            at = datetime.fromisoformat(text.strip())
        except ValueError:
            return text
        return wall_time(at, self.zone) if at.tzinfo is not None else text

    def widget(self, f: Field, ev: Evaluated, typed: Typed, error: str, *,
               conditional: bool) -> Widget:
        state = ev.states.get(f.name, "shown")
        w = Widget(name=f.name, label=f.label.get(self.language), kind=INPUTS[f.type].kind,
                   required=f.required, help=f.help.get(self.language) if f.help else "",
                   error=error, state=state, conditional=conditional,
                   wide=f.type is FieldType.TEXTAREA)
        if f.derived:  # shown as text: a formula's value, or a rollup's stored one
            w.kind = "computed"
            value = ev.computed.get(f.name) if f.computed else ev.values.get(f.name)
            w.display = self.display.show(f, value).text
            return w
        if state == "readonly" or f.name in self.mask.readonly:
            w.kind = "readonly"
            w.display = self.display.show(f, ev.values.get(f.name)).text
            return w
        raw = typed.get(f.name)
        if raw is None:
            raw = input_text(f, ev.values.get(f.name), self.zone)
        elif f.type is FieldType.DATETIME and isinstance(raw, str):
            raw = self.wall_text(raw)
        if isinstance(raw, list):
            w.chosen = tuple(raw)
        else:
            w.value = raw
        if f.type in (FieldType.CHOICE, FieldType.MULTICHOICE):
            w.options = tuple((o, f.option_label(o, self.display.language))
                              for o in f.options)
        if f.type is FieldType.MULTICHOICE and isinstance(raw, str):
            w.chosen = tuple(p.strip() for p in raw.split(",") if p.strip())
        if f.type is FieldType.REGARDING:  # a kind of record, then the record
            from engine.web.pages.regarding import fill  # it imports this module

            try:
                typed_value = self.compiled.coercers[f.name](w.value)
            except ValueProblem:
                typed_value = None
            fill(w, self.records, self.actor, self.entity, f, typed_value, self.display)
        target = link_target(f)
        if target is not None:
            w.pick_url = f"/e/{self.entity.name}/pick/{f.name}"
            w.pick_include = include_for(self.model, self.entity, f.name)
            value = ev.values.get(f.name)
            if isinstance(value, int) and w.value == str(value):
                w.display = self.display.title(target, value).text
            elif w.value:
                w.display = f"#{w.value}"
        w.min = "" if f.min is None else str(f.min)
        w.max = "" if f.max is None else str(f.max)
        w.max_length = f.max_length
        return w


def posted_lists(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Form items (or query parameters) grouped by name, in order."""
    out: dict[str, list[str]] = {}
    for key, value in items:
        out.setdefault(key, []).append(value)
    return out
