"""The Model: immutable dataclasses compiled from configuration."""

from __future__ import annotations

import json
from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from engine.formula import CompiledFormula
from engine.metadata.errors import SourceLoc
from engine.metadata.labels import Label
from engine.metadata.number_format import NumberFormat
from engine.metadata.roles import DEFAULT_ROLES, Roles
from engine.metadata.settings import SiteSettings
from engine.types import FieldType

if TYPE_CHECKING:
    from engine.metadata.dashboards import Dashboard
    from engine.metadata.flows import Flow
    from engine.metadata.reports import Report

AGGREGATES: tuple[str, ...] = ("count", "sum", "min", "max", "avg")
"""What a rollup computes over its child records."""


@dataclass(frozen=True)
class Rollup:
    """A summary of child records kept in a column of the parent: `agg` of the child's
    field `of` (None: count the records) over the `child` records whose reference field
    `via` points to the parent and that satisfy `where`."""

    child: str
    via: str
    of: str | None
    agg: str
    loc: SourceLoc
    where: str | None = None
    where_compiled: CompiledFormula | None = field(default=None, compare=False, repr=False)
    """`where` checked against the child entity: a condition SQL runs, on its own fields."""
    reads: tuple[tuple[str, str], ...] = ()
    """What else the values depend on, by name: the child's formula fields read through
    `of` or `where` (and the formula fields those read) with their formulas, the
    signatures of the child's rollups it reads, and the type of the field it aggregates.
    When one changes, so may every stored value."""

    @property
    def definition(self) -> str:
        """What the configuration says, as one line.

        >>> Rollup("opportunity", "account", "amount", "sum", SourceLoc("x", 1, 1),
        ...        where='stage = "won"').definition
        'sum(opportunity.amount) via account where stage = "won"'
        """
        text = f"{self.agg}({self.child}{'.' + self.of if self.of else ''}) via {self.via}"
        return text if self.where is None else f"{text} where {self.where.strip()}"

    @property
    def signature(self) -> str:
        """A stable text of what the value is computed from: when it changes (a new `agg`,
        `where`, a child formula it depends on), `crm migrate` recomputes the column.

        >>> Rollup("opportunity", "account", None, "count", SourceLoc("x", 1, 1)).signature
        'count(opportunity) via account'
        """
        text = self.definition
        if self.reads:
            text += " reading " + json.dumps(dict(self.reads), sort_keys=True,
                                              ensure_ascii=False)
        return text

    @property
    def empty(self) -> int | None:
        """The value with no child records: 0 for count and sum, blank for the others."""
        return 0 if self.agg in ("count", "sum") else None


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    label: Label
    loc: SourceLoc
    required: bool = False
    unique: bool = False
    index: bool = False
    external_id: bool = False
    """The record's key in another system (an ERP's code): a unique text field, usable as
    an import's key and to name a reference target (engine/runtime/imports/keys.py)."""
    board: bool = False
    closed: tuple[str, ...] = ()
    """Choice options that end the work on a record (a won or lost deal, a done activity);
    a record holding another option is open."""
    calendar: bool = False
    """A date or datetime the record is scheduled for (the home page's "due this week")."""
    search: bool = False
    """Matched by global search (text-like fields only)."""
    help: Label | None = None
    default: str | int | float | bool | None = None
    max_length: int | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    options: tuple[str, ...] = ()
    option_labels: tuple[tuple[str, Label], ...] = field(default=(), compare=False)
    """What people see for each option, per locale; options without one read as words."""
    to: str | None = None
    targets: tuple[str, ...] = ()
    """The entities a regarding field may point to (its `to` list); empty: any entity."""
    renamed_from: str | None = None
    formula: str | None = None
    """The source of a computed field's formula; the field then has no column."""
    compiled: CompiledFormula | None = field(default=None, compare=False, repr=False)
    """The checked formula of a computed field, or of a `default: "=..."`."""
    rollup: Rollup | None = None
    """A rollup summary field: stored, with `type` the aggregate's result type."""
    number_format: NumberFormat | None = None
    """An autonumber field's format: the engine numbers each new record with it."""
    # Where each option's value was written, for errors found after loading.
    option_locs: tuple[tuple[str, SourceLoc], ...] = field(default=(), compare=False, repr=False)

    def option_label(self, value: str, locale: str = "en") -> str:
        """How an option reads in `locale`: its label, or the value as words.

        >>> Field("stage", FieldType.CHOICE, Label.of(None, "Stage"), SourceLoc("x", 1, 1),
        ...       options=("closed_won",)).option_label("closed_won", "zh")
        'Closed won'
        """
        label = dict(self.option_labels).get(value)
        if label is not None:
            return label.get(locale)
        text = value.replace("_", " ")
        return text[:1].upper() + text[1:]

    def loc_of(self, option: str) -> SourceLoc:
        """Where `option` (e.g. "renamed_from") was written; the field's key when it was not."""
        return dict(self.option_locs).get(option, self.loc)

    @property
    def computed(self) -> bool:
        """A formula field: read-only, computed on every read, never stored."""
        return self.formula is not None

    @property
    def derived(self) -> bool:
        """Written by the engine, never by a user: a computed, rollup or autonumber field."""
        return self.formula is not None or self.rollup is not None \
            or self.number_format is not None

    @property
    def default_formula(self) -> CompiledFormula | None:
        """The formula of a `default: "=..."`, evaluated when a record is created."""
        return self.compiled if self.formula is None else None

    @property
    def target(self) -> str | None:
        """The entity (or engine table) a link field points to."""
        if self.type is FieldType.REFERENCE:
            return self.to
        if self.type is FieldType.DEPARTMENT:
            return "department"
        return None


@dataclass(frozen=True)
class Validation:
    """A rule every saved record must satisfy: `rule` gives TRUE, or `message` is shown."""

    rule: str
    message: Label
    loc: SourceLoc
    compiled: CompiledFormula | None = field(default=None, compare=False, repr=False)
    field: str | None = None
    """The field whose input the message is about (shown beside it), if the rule names one."""
    overridable_by: tuple[str, ...] = ()
    """Roles whose users may save a record that breaks the rule (a credit check an
    administrator overrides); everyone else is held to it."""
    overridable_locs: tuple[SourceLoc, ...] = ()
    """Where each of `overridable_by` is written."""

    def binds(self, roles: Collection[str]) -> bool:
        """Whether the rule holds a writer with `roles` (it does unless one may override it).

        >>> v = Validation("x > 0", Label.of("x"), SourceLoc("f", 1, 1), overridable_by=("admin",))
        >>> v.binds(("sales_rep",)), v.binds(("sales_rep", "admin"))
        (True, False)
        """
        return not any(r in self.overridable_by for r in roles)


@dataclass(frozen=True)
class DuplicateRule:
    """One duplicate rule of an entity (`duplicates: [{match: [name, city]}]`): two records
    are duplicates when every field of `match` holds the same normalised value in both
    (engine/runtime/imports/duplicates.py)."""

    match: tuple[str, ...]
    loc: SourceLoc

    @property
    def name(self) -> str:
        """How the rule is named in match keys and answers: its fields, comma-separated."""
        return ",".join(self.match)


@dataclass(frozen=True)
class Cascade:
    """When a record is assigned, its `entity` children (records whose reference field points
    to it) that the old owner owned, and that satisfy `when`, follow it to the new owner."""

    entity: str
    loc: SourceLoc
    when: str | None = None
    compiled: CompiledFormula | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class OrgUnit:
    """A department to seed from config/org.yaml, with the ones under it."""

    name: str
    loc: SourceLoc
    code: str | None = None
    kind: str | None = None
    children: tuple[OrgUnit, ...] = ()


@dataclass(frozen=True)
class FormField:
    """A field on a form, shown unless `hidden` holds and editable unless `readonly` holds
    (both formulas on the record being edited)."""

    name: str
    hidden: str | None = None
    readonly: str | None = None
    hidden_compiled: CompiledFormula | None = field(default=None, compare=False, repr=False)
    readonly_compiled: CompiledFormula | None = field(default=None, compare=False, repr=False)
    picker_filter: str | None = None
    """A condition on the records a reference picker offers first; `$record.x` reads the
    value of field x in the form being filled."""
    picker_filter_compiled: CompiledFormula | None = field(default=None, compare=False,
                                                           repr=False)


@dataclass(frozen=True)
class Section:
    label: Label | None
    fields: tuple[FormField, ...]
    columns: int = 2


@dataclass(frozen=True)
class RelatedList:
    """Child records on a detail page: `entity` records whose `via` field points here."""

    entity: str
    via: str
    label: Label
    columns: tuple[str, ...]
    sort: str = "-id"
    """The rows' order: a stored, sortable field of the child, `-` before it for
    descending; the newest first (`-id`) unless the form says."""


@dataclass(frozen=True)
class LineGrid:
    """Line items edited inside the parent's form as a grid (`lines:` of a form): `entity`
    records whose required reference `via` points to the parent, shown in `columns`, kept in
    the order of the integer field `order` (when given), saved with the parent in one unit
    of work (engine/runtime/records/lines.py)."""

    entity: str
    via: str
    label: Label
    columns: tuple[str, ...]
    order: str | None = None
    min_rows: int = 0
    max_rows: int | None = None


@dataclass(frozen=True)
class Form:
    """How an entity is laid out: list columns, form sections and related lists
    (config/forms/<entity>.yaml, or defaults built from the entity)."""

    entity: str
    list_columns: tuple[str, ...]
    sections: tuple[Section, ...]
    related: tuple[RelatedList, ...] = ()
    source: str | None = None
    picker: tuple[str, ...] = ()
    """Fields shown beside a record's title in the pickers that choose it (its context)."""
    lines: LineGrid | None = None
    """The line-item grid of the form, if it has one."""

    @property
    def fields(self) -> tuple[FormField, ...]:
        return tuple(f for s in self.sections for f in s.fields)


@dataclass(frozen=True)
class Entity:
    name: str
    label: Label
    plural: Label
    title: str
    area: str
    fields: tuple[Field, ...]
    loc: SourceLoc
    file: str = ""
    description: Label | None = None
    validations: tuple[Validation, ...] = ()
    cascade_assign: tuple[Cascade, ...] = ()
    menu: bool = True
    """Listed in the side menu and quick create; `false` for records reached from their
    parent (lines, links between two records)."""
    attachments: bool = False
    """Records carry a list of attached files (engine/runtime/files/attachments.py)."""
    duplicates: tuple[DuplicateRule, ...] = ()
    """When two records are duplicates (engine/runtime/imports/duplicates.py)."""

    @cached_property
    def _by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @cached_property
    def stored_fields(self) -> tuple[Field, ...]:
        """The fields that have a column: all but the computed ones (once per entity: the
        write pipeline reads it per row)."""
        return tuple(f for f in self.fields if not f.computed)

    @property
    def rollups(self) -> tuple[Field, ...]:
        """The rollup summary fields (stored, written only by the engine)."""
        return tuple(f for f in self.fields if f.rollup is not None)

    def field(self, name: str) -> Field:
        return self._by_name[name]

    def has_field(self, name: str) -> bool:
        return name in self._by_name

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class Model:
    entities: tuple[Entity, ...]
    config_hash: str
    config_dir: str = ""
    sources: tuple[str, ...] = field(default=())
    roles: Roles = DEFAULT_ROLES
    org: tuple[OrgUnit, ...] = ()
    forms: tuple[Form, ...] = ()
    settings: SiteSettings = field(default_factory=SiteSettings)
    """config/settings.yaml (the defaults when there is none)."""
    flows: tuple[Flow, ...] = ()
    """config/flows/*.yaml: stage rules and record triggers (engine/metadata/flows.py)."""
    reports: tuple[Report, ...] = ()
    """config/reports/*.yaml: groups and aggregates (engine/metadata/reports.py)."""
    dashboards: tuple[Dashboard, ...] = ()
    """config/dashboards/*.yaml in the order of their files' names: report widgets, the home
    page of some roles (engine/metadata/dashboards.py)."""

    def report(self, name: str) -> Report | None:
        """The report named `name` (its file's name), or None."""
        return next((r for r in self.reports if r.name == name), None)

    def dashboard(self, name: str) -> Dashboard | None:
        """The dashboard named `name` (its file's name), or None."""
        return next((d for d in self.dashboards if d.name == name), None)

    def dashboard_of(self, roles: Sequence[str]) -> Dashboard | None:
        """The home dashboard of a user holding `roles`: the first dashboard, in the order of
        the files' names, naming one of them (None: the plain home page)."""
        return next((d for d in self.dashboards if set(d.roles) & set(roles)), None)

    @cached_property
    def derived(self) -> dict[Hashable, Any]:
        """What the runtime builds from this model once, by key (a model never changes):
        its tables by dialect, say. Building them takes a fraction of a second that every
        service, app and CLI command on the same model would otherwise pay again."""
        return {}

    @cached_property
    def _forms(self) -> dict[str, Form]:
        return {f.entity: f for f in self.forms}

    def form(self, entity: str) -> Form:
        """The layout of `entity` (every entity has one: configured or default)."""
        return self._forms[entity]

    @cached_property
    def _by_name(self) -> dict[str, Entity]:
        return {e.name: e for e in self.entities}

    def entity(self, name: str) -> Entity:
        return self._by_name[name]

    def has_entity(self, name: str) -> bool:
        return name in self._by_name

    @property
    def entity_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entities)
