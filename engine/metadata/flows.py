"""config/flows/*.yaml: stage rules and record triggers of one entity (docs/flows.md).

```yaml
flow: opportunity_pipeline
entity: opportunity
stages:
  field: stage                          # a choice field
  transitions: {prospecting: [qualification, lost]}   # absent: any move is allowed
  guards:
    - {to: won, when: 'contracted > 0', message: {en: ..., zh: ...}}
  require: {lost: [lost_reason]}        # fields that must hold a value on entering
  on_enter: {won: [{team: {member: owner_manager}}]}   # actions on entering (on_leave too)
triggers:
  - name: close_date_on_win
    on: [update]                        # create | update | delete | stage
    fields: [stage]                     # update: only when one of these changed
    when: 'stage = "won"'
    actions:
      - set: {close_date: 'TODAY()'}
      - create: {entity: activity, values: {subject: '"Kick-off"'}}
      - notify: {to: owner, message: {en: Won!, zh: 赢单}}
      - assign: {rules: [{to: {department: East region}, by: round_robin}]}  # flow_people.py
timers:
  - {name: stalled, from: stage, stages: [proposal], after: 30d, actions: [...]}  # from entry
  - {name: renewal, from: close_date, every: year, before: 7d, actions: [...]}  # anniversaries
schedules:                              # on the dates of a holiday of settings.yaml
  - {name: festival, holiday: spring_festival, before: 3d, when: 'influence >= 4', actions: [...]}
```

Every formula is checked against the flow's entity (its `id` too) when the configuration
loads (a `create` action's values against the entity they go to, read on the flow's record), so a
flow that names an unknown entity, field, option or user field, or whose formula does not
type-check, is refused by `crm check` at `file:line:col`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from engine.formula import (
    CompiledFormula,
    EntityScope,
    FieldSpec,
    FormulaError,
    FType,
    compile_formula,
    ftype_of,
)
from engine.formula.ast import TField
from engine.metadata.approvals import ApprovalRule, build_approvals
from engine.metadata.errors import ConfigError, SourceLoc, did_you_mean
from engine.metadata.flow_people import AssignAction, PeopleChecker, TeamAction, org_names
from engine.metadata.formula_checks import scope_of
from engine.metadata.labels import Label
from engine.metadata.model import Entity, Field, OrgUnit
from engine.metadata.roles import DEFAULT_ROLES, Roles
from engine.metadata.yamlio import PathPart, YamlDoc
from engine.types import FieldType

EVENTS = ("create", "update", "delete", "stage")
"""What a trigger runs on: a record created, updated, moved to the recycle bin, or its
stage field changed (on create or update)."""
NOT_YET: tuple[str, ...] = ()
"""Action kinds the schema names but the engine does not run yet."""

R = TypeVar("R")
"""A rule a flow file lists by name (a trigger, timer, schedule or conversion)."""


@dataclass(frozen=True)
class Guard:
    """Entering stage `to` needs `when` to give TRUE; else the move is refused with
    `message`."""

    to: str
    when: str
    message: Label
    loc: SourceLoc
    compiled: CompiledFormula = field(compare=False, repr=False)

    @property
    def rule(self) -> str:
        return f"guard:{self.to}"


@dataclass(frozen=True)
class StageRules:
    """The rules of a choice field's moves: allowed transitions (None: any move), guards
    by target stage, and fields required on entering a stage."""

    field: str
    transitions: tuple[tuple[str, tuple[str, ...]], ...] | None
    guards: tuple[Guard, ...]
    require: tuple[tuple[str, tuple[str, ...]], ...]
    loc: SourceLoc
    on_enter: tuple[tuple[str, tuple[Action, ...]], ...] = ()
    """stage → the actions that run when a record enters it."""
    on_leave: tuple[tuple[str, tuple[Action, ...]], ...] = ()
    """stage → the actions that run when a record leaves it."""

    def allowed(self, old: str | None, new: str) -> bool:
        """Whether a move from `old` to `new` is allowed (a new record or a stage with
        no entry in `transitions` may go anywhere).

        >>> r = StageRules("stage", (("a", ("b",)),), (), (), SourceLoc("f", 1, 1))
        >>> r.allowed("a", "b"), r.allowed("a", "c"), r.allowed("b", "a"), r.allowed(None, "c")
        (True, False, True, True)
        """
        if self.transitions is None or old is None:
            return True
        targets = dict(self.transitions).get(old)
        return targets is None or new in targets

    def targets(self, old: str) -> tuple[str, ...] | None:
        return None if self.transitions is None else dict(self.transitions).get(old)

    def required(self, stage: str) -> tuple[str, ...]:
        return dict(self.require).get(stage, ())


@dataclass(frozen=True)
class SetAction:
    """Write fields of the record by formulas (through the same unit of work)."""

    values: tuple[tuple[str, CompiledFormula], ...]
    kind: str = "set"


@dataclass(frozen=True)
class CreateAction:
    """Create a record of `entity` whose values are formulas on the flow's record."""

    entity: str
    values: tuple[tuple[str, CompiledFormula], ...]
    kind: str = "create"


@dataclass(frozen=True)
class NotifyAction:
    """An in-app notification to the record's owner, the owner's manager (`owner_manager`:
    the manager of their department, or of the one above when they manage it) or the user
    of a user field."""

    to: str
    message: Label
    kind: str = "notify"


@dataclass(frozen=True)
class EmailAction:
    """An email queued in the outbox (sent after commit by `crm worker`): to the record's
    owner, the users of user fields and the addresses of email fields."""

    to: tuple[str, ...]
    subject: CompiledFormula
    text: CompiledFormula
    kind: str = "email"


@dataclass(frozen=True)
class WebhookAction:
    """A webhook queued in the outbox: the record as it was at the event, POSTed to `url`
    (signed with the secret in environment variable `secret_env`, when given)."""

    url: str
    secret_env: str | None = None
    kind: str = "webhook"


Action = (SetAction | CreateAction | NotifyAction | EmailAction | WebhookAction
          | AssignAction | TeamAction)


@dataclass(frozen=True)
class Trigger:
    name: str
    on: frozenset[str]
    fields: tuple[str, ...]
    when: CompiledFormula | None
    actions: tuple[Action, ...]
    loc: SourceLoc

    @property
    def watched(self) -> tuple[str, ...]:
        """The fields whose change lets the trigger run again on a record it already ran
        on in the same write: `fields`, else those its `when` reads of the record."""
        if self.fields:
            return self.fields
        if self.when is None:
            return ()
        return tuple(sorted({p[0] for p in self.when.references if len(p) == 1}))


@dataclass(frozen=True)
class TimerRule:
    """Actions that run a while after (or before) a date or datetime of the record: a
    service request unanswered 4 hours after it came in, an installment 3 days before it
    falls due. Scheduled when the record is created or the field changes (one timer per
    record and value, unique by key), cancelled when the field changes again or the record
    is deleted; `when` is checked when the timer fires, on the record as it is then."""

    name: str
    field: str
    offset: timedelta
    """Added to the field's time: negative for `before:`."""
    when: CompiledFormula | None
    actions: tuple[Action, ...]
    loc: SourceLoc
    on_stage: bool = False
    """`from:` names the flow's stage field: the timer counts from the moment the record
    entered its current stage (scheduled on entering, cancelled on leaving)."""
    stages: tuple[str, ...] = ()
    """Of a timer from the stage field: the stages whose entry sets it (empty: any)."""
    every: str | None = None
    """`year`: the timer fires at the anniversary of its date each year."""

    def enters(self, stage: str) -> bool:
        """Whether entering `stage` sets this timer (a timer from the stage field)."""
        return not self.stages or stage in self.stages


@dataclass(frozen=True)
class ScheduleRule:
    """Actions on each date of a holiday of the organisation's calendar (settings.yaml
    `holidays`), `offset` from its midnight, for every live record of the flow's entity
    for which `when` holds then (all of them without `when`)."""

    name: str
    holiday: str
    offset: timedelta
    when: CompiledFormula | None
    actions: tuple[Action, ...]
    loc: SourceLoc


def duration(text: str) -> timedelta:
    """`30m`, `4h`, `2d` as a timedelta (the schema allows 1-99999 of m, h or d; a timer's
    offset also 0).

    >>> duration("4h"), duration("2d")
    (datetime.timedelta(seconds=14400), datetime.timedelta(days=2))
    """
    amount, unit = int(text[:-1]), text[-1]
    return timedelta(minutes=amount) if unit == "m" else timedelta(hours=amount) \
        if unit == "h" else timedelta(days=amount)


@dataclass(frozen=True)
class Flow:
    name: str
    entity: str
    label: Label
    stages: StageRules | None
    triggers: tuple[Trigger, ...]
    file: str
    loc: SourceLoc
    config_hash: str
    """A digest of the flow's file: every automation run notes the version that ran."""
    timers: tuple[TimerRule, ...] = ()
    approvals: tuple[ApprovalRule, ...] = ()
    """Who must approve a record before it moves on (engine/metadata/approvals.py)."""
    conversions: tuple[Conversion, ...] = ()
    schedules: tuple[ScheduleRule, ...] = ()
    """Actions on the dates of a holiday, for the records `when` picks then."""


CONVERSION_NAMESPACES = ("new", "found")
"""How a conversion's formulas read the records it made (`new.<as>`) and found
(`found.<as>`): each is the record's id, and through it the record's fields."""
RESERVED_ACTIONS = ("restore", "purge", "assign")
"""Actions of every record (POST /api/<entity>/<id>/actions/<name>): no conversion may take
their names."""


@dataclass(frozen=True)
class Finding:
    """An existing record a conversion reads (`found.<as>`): the newest live record of
    `entity` whose fields equal the `match` formulas on the source record, among those the
    converting user may read. None found: the conversion is refused with `required` when
    given, else `found.<as>` is blank."""

    name: str
    entity: str
    match: tuple[tuple[str, CompiledFormula], ...]
    required: Label | None
    loc: SourceLoc


@dataclass(frozen=True)
class LineCopy:
    """Child rows copied under a created record: for each live row of `source` whose `via`
    field is the record `of` gives (a formula on the source record), a row of `entity` with
    `values` (formulas on the copied row) and `link` pointing to the created record."""

    entity: str
    link: str
    source: str
    via: str
    of: CompiledFormula
    values: tuple[tuple[str, CompiledFormula], ...]


@dataclass(frozen=True)
class Creation:
    """One record a conversion makes (`new.<as>` to the formulas after it)."""

    name: str
    entity: str
    values: tuple[tuple[str, CompiledFormula], ...]
    match: tuple[str, ...]
    """duplicate.match: a live record of `entity` the user may read with these fields equal
    (a record's name case-insensitively, as unique names compare) is reused instead."""
    lines: tuple[LineCopy, ...]
    loc: SourceLoc


@dataclass(frozen=True)
class Conversion:
    """An action on a record (POST /api/<entity>/<id>/actions/<name>, a button on its page)
    that makes records of other entities from it in one unit of work: lead → account +
    contact + opportunity."""

    name: str
    label: Label
    when: CompiledFormula | None
    finds: tuple[Finding, ...]
    creates: tuple[Creation, ...]
    set: tuple[tuple[str, CompiledFormula], ...]
    loc: SourceLoc

    @property
    def main(self) -> Creation:
        """The record the page goes to afterwards: the first one made."""
        return self.creates[0]


def build_flow(doc: YamlDoc, raw: bytes, entities: list[Entity],
               errors: list[ConfigError], *, roles: Roles = DEFAULT_ROLES,
               org: tuple[OrgUnit, ...] = (), holidays: frozenset[str] = frozenset()
               ) -> Flow | None:
    """The flow of a schema-valid flow file, checked against the model's entities, the
    roles of roles.yaml, the department names of config/org.yaml (when it has any) and the
    holidays of settings.yaml."""
    data: dict[str, Any] = doc.data
    entity = doc.entity("entity", entities, errors)
    if entity is None:
        return None
    before = len(errors)
    check = _Checker(doc, entity, entities, errors, org_names(org) if org else None,
                     frozenset(roles.names))
    stages = check.stages(data["stages"]) if "stages" in data else None
    names: set[str] = set()

    def named(key: str, taken_by: str, build: Callable[[int, dict[str, Any]], R | None]
              ) -> list[R]:
        """The rules of list `key`, each built by `build`; a name one of the flow's rules
        already has is an error (`taken_by`: what the earlier ones are, as the message
        says it)."""
        built: list[R] = []
        for i, spec in enumerate(data.get(key, [])):
            if spec["name"] in names:
                errors.append(doc.error([key, i, "name"],
                                        f"{key}.{i}.name: {spec['name']!r} is already a "
                                        f"{taken_by} of this flow"))
            names.add(spec["name"])
            rule = build(i, spec)
            if rule is not None:
                built.append(rule)
        return built

    triggers = named("triggers", "trigger", lambda i, spec: check.trigger(i, spec, stages))
    timers = named("timers", "trigger or timer", lambda i, spec: check.timer(i, spec, stages))
    schedules = named("schedules", "trigger, timer or schedule",
                      lambda i, spec: check.schedule(i, spec, holidays))
    approvals = build_approvals(
        data.get("approvals", []), entity, roles, org, error=check.error,
        compile=check.compile, own_field=check.own_field, loc=doc.loc, duration=duration)
    conversions = named("conversions", "trigger, timer or conversion", check.conversion)
    if len(errors) > before:
        return None
    return Flow(name=data["flow"], entity=entity.name, timers=tuple(timers),
                schedules=tuple(schedules),
                approvals=approvals, conversions=tuple(conversions),
                label=Label.of(data.get("label"), data["flow"].replace("_", " ").capitalize()),
                stages=stages, triggers=tuple(triggers), file=doc.file, loc=doc.loc(["flow"]),
                config_hash=hashlib.sha256(raw).hexdigest()[:16])


def flow_digest(flow: Flow) -> str:
    """What a flow is, as text (for tests and the CLI)."""
    return json.dumps({"flow": flow.name, "entity": flow.entity,
                       "triggers": [t.name for t in flow.triggers]})


class _Checker:
    def __init__(self, doc: YamlDoc, entity: Entity, entities: list[Entity],
                 errors: list[ConfigError], departments: frozenset[str] | None = None,
                 roles: frozenset[str] | None = None) -> None:
        self.doc = doc
        self.entity = entity
        self.entities = entities
        self.errors = errors
        base = scope_of(entities, entity.name)
        # a flow's formulas also read the record's own id (a created record links back)
        specs = {**base.entities, entity.name: {
            **base.entities[entity.name], "id": FieldSpec(FType.REFERENCE, target=entity.name)}}
        self.scope = EntityScope(specs, entity.name)
        self.people = PeopleChecker(doc.data.get("flow", ""), entity, self.error,
                                    self.compile, self.own_field, departments, roles,
                                    lambda: len(self.errors))

    def target(self, path: list[PathPart], name: str) -> Entity | None:
        found = next((e for e in self.entities if e.name == name), None)
        if found is None:
            hint = did_you_mean(name, [e.name for e in self.entities])
            self.error(path, f"unknown entity {name!r}{hint}")
        return found

    def bound_scope(self, bound: dict[str, dict[str, str]]) -> EntityScope:
        """The flow's scope with `new.<as>` and `found.<as>` (references to the records a
        conversion made or found so far)."""
        specs = dict(self.scope.entities)
        own = dict(specs[self.entity.name])
        for space in CONVERSION_NAMESPACES:
            pseudo = f"{space}:"
            specs[pseudo] = {n: FieldSpec(FType.REFERENCE, target=e)
                             for n, e in bound.get(space, {}).items()}
            own[space] = FieldSpec(FType.REFERENCE, target=pseudo)
        specs[self.entity.name] = own
        return EntityScope(specs, self.entity.name)

    def conversion(self, i: int, spec: dict[str, Any]) -> Conversion | None:
        base: list[PathPart] = ["conversions", i]
        before = len(self.errors)
        if spec["name"] in RESERVED_ACTIONS:
            self.error([*base, "name"], f"{spec['name']!r} is an action of every record; "
                                        "name the conversion otherwise")
        for space in CONVERSION_NAMESPACES:
            if self.entity.has_field(space):
                self.error([*base, "name"], f"{self.entity.name} has a field {space!r}: a "
                                            f"conversion's formulas read {space}.<as> instead")
        when = self.compile([*base, "when"], spec["when"], FType.BOOLEAN) \
            if "when" in spec else None
        bound: dict[str, dict[str, str]] = {"new": {}, "found": {}}
        finds: list[Finding] = []
        for j, f in enumerate(spec.get("finds", [])):
            path: list[PathPart] = [*base, "finds", j]
            target = self.target([*path, "entity"], f["entity"])
            if f["as"] in bound["found"]:
                self.error([*path, "as"], f"{f['as']!r} is already found by this conversion")
            if target is None:
                continue
            match = self.values([*path, "match"], f["match"], target, derived_ok=True)
            bound["found"][f["as"]] = target.name
            if match is not None:
                finds.append(Finding(f["as"], target.name, match,
                                     Label.of(f["required"], "") if "required" in f else None,
                                     self.doc.loc([*path, "as"])))
        creates: list[Creation] = []
        for j, c in enumerate(spec["creates"]):
            path = [*base, "creates", j]
            target = self.target([*path, "entity"], c["entity"])
            if c["as"] in bound["new"]:
                self.error([*path, "as"], f"{c['as']!r} is already made by this conversion")
            if target is None:
                continue
            values = self.values([*path, "values"], c["values"], target,
                                 scope=self.bound_scope(bound))
            dup: tuple[str, ...] = tuple(c.get("duplicate", {}).get("match", ()))
            for k, name in enumerate(dup):
                self.own_field([*path, "duplicate", "match", k], name, entity=target)
            lines = [self.line_copy([*path, "lines", k], spec_line, target, bound)
                     for k, spec_line in enumerate(c.get("lines", []))]
            bound["new"][c["as"]] = target.name
            if values is not None and all(x is not None for x in lines):
                creates.append(Creation(c["as"], target.name, values, dup,
                                        tuple(x for x in lines if x is not None),
                                        self.doc.loc([*path, "as"])))
        sets: tuple[tuple[str, CompiledFormula], ...] | None = ()
        if "set" in spec:
            sets = self.values([*base, "set"], spec["set"], self.entity,
                               scope=self.bound_scope(bound))
        if len(self.errors) > before or sets is None:
            return None
        return Conversion(spec["name"], Label.of(spec.get("label"),
                                                 spec["name"].replace("_", " ").capitalize()),
                          when, tuple(finds), tuple(creates), sets,
                          self.doc.loc([*base, "name"]))

    def line_copy(self, path: list[PathPart], spec: dict[str, Any], parent: Entity,
                  bound: dict[str, dict[str, str]]) -> LineCopy | None:
        before = len(self.errors)
        made = self.target([*path, "entity"], spec["entity"])
        source = self.target([*path, "from"], spec["from"])
        if made is not None:
            link = self.own_field([*path, "link"], spec["link"], entity=made)
            if link is not None and link.target != parent.name:
                self.error([*path, "link"], f"{link.name} of {made.name} does not point to "
                                            f"{parent.name}, the record the lines go under")
        via = None if source is None else self.own_field([*path, "via"], spec["via"],
                                                         entity=source)
        if via is not None and via.type is not FieldType.REFERENCE:
            self.error([*path, "via"], f"{via.name} of {via.target or source} is not a "
                                       "reference field")
        of = None
        try:
            of = compile_formula(spec["of"], self.bound_scope(bound), FType.REFERENCE)
        except FormulaError as exc:
            self.errors.append(ConfigError(self.doc.loc([*path, "of"]),
                                           f"formula {exc.line}:{exc.col}: {exc.message}"))
        values = None
        if made is not None and source is not None:
            values = self.values([*path, "values"], spec["values"], made,
                                 scope=scope_of(self.entities, source.name))
        if len(self.errors) > before or values is None or of is None or made is None \
                or source is None:
            return None
        return LineCopy(made.name, spec["link"], source.name, spec["via"], of, values)

    def error(self, path: list[PathPart], message: str, *, key: bool = False) -> None:
        where = ".".join(str(p) for p in path)
        self.errors.append(self.doc.error(path, f"{where}: {message}", key=key))

    def compile(self, path: list[PathPart], source: str,
                expect: FType | None, scope: EntityScope | None = None
                ) -> CompiledFormula | None:
        try:
            return compile_formula(source, scope or self.scope, expect)
        except FormulaError as exc:
            self.errors.append(ConfigError(self.doc.loc(path),
                                           f"formula {exc.line}:{exc.col}: {exc.message}"))
            return None

    def own_field(self, path: list[PathPart], name: str, *, key: bool = False,
                  entity: Entity | None = None) -> Field | None:
        e = entity or self.entity
        if e.has_field(name):
            return e.field(name)
        self.error(path, f"no field {name!r} of {e.name}{did_you_mean(name, e.field_names)}",
                   key=key)
        return None

    def option(self, path: list[PathPart], f: Field, value: str, *, key: bool = False) -> None:
        if value not in f.options:
            self.error(path, f"{value!r} is not an option of {f.name}"
                             f"{did_you_mean(value, f.options)}", key=key)

    def stages(self, spec: dict[str, Any]) -> StageRules | None:
        base: list[PathPart] = ["stages"]
        f = self.own_field([*base, "field"], spec["field"])
        if f is not None and f.type is not FieldType.CHOICE:
            self.error([*base, "field"], f"{f.name} is a {f.type.value} field; stages need a "
                                         "choice field")
            f = None
        transitions: list[tuple[str, tuple[str, ...]]] | None = None
        if "transitions" in spec:
            transitions = []
            for old, targets in spec["transitions"].items():
                if f is not None:
                    self.option([*base, "transitions", old], f, old, key=True)
                    for j, new in enumerate(targets):
                        self.option([*base, "transitions", old, j], f, new)
                transitions.append((old, tuple(targets)))
        guards: list[Guard] = []
        for i, g in enumerate(spec.get("guards", [])):
            path: list[PathPart] = [*base, "guards", i]
            if f is not None:
                self.option([*path, "to"], f, g["to"])
            compiled = self.compile([*path, "when"], g["when"], FType.BOOLEAN)
            if compiled is not None:
                guards.append(Guard(g["to"], g["when"], Label.of(g["message"], g["when"]),
                                    self.doc.loc([*path, "when"]), compiled))
        require: list[tuple[str, tuple[str, ...]]] = []
        for stage, names in spec.get("require", {}).items():
            if f is not None:
                self.option([*base, "require", stage], f, stage, key=True)
            for j, name in enumerate(names):
                found = self.own_field([*base, "require", stage, j], name)
                if found is not None and found.derived:
                    self.error([*base, "require", stage, j],
                               f"{name} is computed by the engine; it cannot be required")
            require.append((stage, tuple(names)))
        moves: dict[str, list[tuple[str, tuple[Action, ...]]]] = {}
        for when in ("on_enter", "on_leave"):
            for stage, specs in spec.get(when, {}).items():
                if f is not None:
                    self.option([*base, when, stage], f, stage, key=True)
                actions = [self.action([*base, when, stage, j], a, frozenset({"stage"}))
                           for j, a in enumerate(specs)]
                moves.setdefault(when, []).append(
                    (stage, tuple(a for a in actions if a is not None)))
        if f is None:
            return None
        return StageRules(f.name, None if transitions is None else tuple(transitions),
                          tuple(guards), tuple(require), self.doc.loc(base),
                          tuple(moves.get("on_enter", ())), tuple(moves.get("on_leave", ())))

    def trigger(self, i: int, spec: dict[str, Any], stages: StageRules | None) -> Trigger | None:
        base: list[PathPart] = ["triggers", i]
        before = len(self.errors)
        on = frozenset(spec["on"])
        if "stage" in on and stages is None and "stages" not in self.doc.data:
            self.error([*base, "on"], "'stage' needs the flow's stages: field")
        fields = tuple(spec.get("fields", ()))
        for j, name in enumerate(fields):
            self.own_field([*base, "fields", j], name)
        if fields and not on & {"update", "stage"}:
            self.error([*base, "fields"], "fields: only an update (or stage) trigger watches "
                                          "fields")
        when = None
        if "when" in spec:
            when = self.compile([*base, "when"], spec["when"], FType.BOOLEAN)
        actions: list[Action] = []
        for j, a in enumerate(spec["actions"]):
            action = self.action([*base, "actions", j], a, on)
            if action is not None:
                actions.append(action)
        if len(self.errors) > before:
            return None
        return Trigger(spec["name"], on, fields, when, tuple(actions),
                       self.doc.loc([*base, "name"]))

    def timer(self, i: int, spec: dict[str, Any],
              stages: StageRules | None) -> TimerRule | None:
        base: list[PathPart] = ["timers", i]
        before = len(self.errors)
        raw_stages = self.doc.data.get("stages")
        stage_field = stages.field if stages is not None else \
            raw_stages.get("field") if isinstance(raw_stages, dict) else None
        f = self.own_field([*base, "from"], spec["from"])
        on_stage = f is not None and f.name == stage_field
        if f is not None and not on_stage and (
                f.type not in (FieldType.DATE, FieldType.DATETIME) or f.computed):
            self.error([*base, "from"], f"{f.name} is a {'computed ' if f.computed else ''}"
                                        f"{f.type.value} field; a timer counts from a stored "
                                        "date or datetime field, or from the flow's stage "
                                        "field (stages: field)")
        if on_stage and "before" in spec:
            self.error([*base, "before"], "a timer from the stage field counts from entering "
                                          "the stage: use after")
        if "stages" in spec:
            if f is not None and not on_stage:
                self.error([*base, "stages"], f"only a timer from the flow's stage field "
                                              f"names stages; {f.name} is not it", key=True)
            elif f is not None:
                for j, stage in enumerate(spec["stages"]):
                    self.option([*base, "stages", j], f, stage)
        every = spec.get("every")
        if every is not None and f is not None:
            if on_stage:
                self.error([*base, "every"], "a timer from the stage field does not repeat: "
                                             "each entry into a stage sets it anew", key=True)
            elif f.type is not FieldType.DATE:
                self.error([*base, "every"], f"every: year needs a date field; {f.name} is "
                                             f"a {f.type.value} field", key=True)
        offset = duration(spec["after"]) if "after" in spec else -duration(spec["before"])
        when = self.compile([*base, "when"], spec["when"], FType.BOOLEAN) \
            if "when" in spec else None
        actions: list[Action] = []
        for j, a in enumerate(spec["actions"]):
            action = self.action([*base, "actions", j], a, frozenset({"update"}))
            if action is not None:
                actions.append(action)
        if len(self.errors) > before or f is None:
            return None
        return TimerRule(spec["name"], f.name, offset, when, tuple(actions),
                         self.doc.loc([*base, "name"]), on_stage=on_stage,
                         stages=tuple(spec.get("stages", ())), every=every)

    def schedule(self, i: int, spec: dict[str, Any],
                 holidays: frozenset[str]) -> ScheduleRule | None:
        base: list[PathPart] = ["schedules", i]
        before = len(self.errors)
        if spec["holiday"] not in holidays:
            self.error([*base, "holiday"], f"no holiday {spec['holiday']!r} in settings.yaml "
                                           f"holidays{did_you_mean(spec['holiday'], holidays)}")
        offset = duration(spec["after"]) if "after" in spec else \
            -duration(spec["before"]) if "before" in spec else timedelta(0)
        when = self.compile([*base, "when"], spec["when"], FType.BOOLEAN) \
            if "when" in spec else None
        actions: list[Action] = []
        for j, a in enumerate(spec["actions"]):
            action = self.action([*base, "actions", j], a, frozenset({"update"}))
            if action is not None:
                actions.append(action)
        if len(self.errors) > before:
            return None
        return ScheduleRule(spec["name"], spec["holiday"], offset, when, tuple(actions),
                            self.doc.loc([*base, "name"]))

    def action(self, path: list[PathPart], spec: dict[str, Any],
               on: frozenset[str]) -> Action | None:
        kind = next(iter(spec))
        body = spec[kind]
        if kind in NOT_YET:
            self.error([*path, kind], f"the {kind} action is not yet supported", key=True)
            return None
        if kind == "set":
            if "delete" in on:
                self.error([*path, kind], "a delete trigger cannot set fields of the record "
                                          "it deletes", key=True)
            values = self.values([*path, kind], body, self.entity)
            return None if values is None else SetAction(values)
        if kind == "create":
            target = next((e for e in self.entities if e.name == body["entity"]), None)
            if target is None:
                hint = did_you_mean(body["entity"], [e.name for e in self.entities])
                self.error([*path, kind, "entity"], f"unknown entity {body['entity']!r}{hint}")
                return None
            values = self.values([*path, kind, "values"], body["values"], target)
            return None if values is None else CreateAction(target.name, values)
        if kind == "webhook":
            return WebhookAction(body["url"], body.get("secret_env"))
        if kind in ("assign", "team"):
            if "delete" in on:
                verb = "assign" if kind == "assign" else "add team members to"
                self.error([*path, kind], f"a delete trigger cannot {verb} the record it "
                                          "deletes", key=True)
                return None
            if kind == "assign":
                return self.people.assign([*path, kind], body)
            return self.people.team([*path, kind], body)
        if kind == "email":
            ok = True
            for j, name in enumerate(body["to"]):
                if name == "owner":
                    continue
                f = self.own_field([*path, kind, "to", j], name)
                if f is None:
                    ok = False
                elif f.type not in (FieldType.USER, FieldType.EMAIL):
                    self.error([*path, kind, "to", j], f"{name} is neither a user nor an email "
                                                       "field; email 'owner', a user field or "
                                                       "an email field")
                    ok = False
            subject = self.compile([*path, kind, "subject"], body["subject"], FType.TEXT)
            text = self.compile([*path, kind, "text"], body["text"], FType.TEXT)
            if not ok or subject is None or text is None:
                return None
            return EmailAction(tuple(body["to"]), subject, text)
        to = body["to"]
        if to not in ("owner", "owner_manager"):
            f = self.own_field([*path, kind, "to"], to)
            if f is not None and f.type is not FieldType.USER:
                self.error([*path, kind, "to"], f"{to} is not a user field; notify 'owner', "
                                                "'owner_manager' or a user field")
                return None
            if f is None:
                return None
        return NotifyAction(to, Label.of(body["message"], ""))

    def values(self, path: list[PathPart], spec: dict[str, str],
               target: Entity, *, scope: EntityScope | None = None,
               derived_ok: bool = False) -> tuple[tuple[str, CompiledFormula], ...] | None:
        """Formulas read on the flow's record (or in `scope`), each giving the type of
        `target`'s field; `derived_ok`: computed fields may be named (to compare with)."""
        out: list[tuple[str, CompiledFormula]] = []
        ok = True
        for name, source in spec.items():
            f = self.own_field([*path, name], name, key=True, entity=target)
            if f is None:
                ok = False
                continue
            if f.derived and not derived_ok:
                self.error([*path, name], f"{name} is computed by the engine and cannot be "
                                          "set", key=True)
                ok = False
                continue
            compiled = self.compile([*path, name], source, _expected(f), scope)
            if compiled is None:
                ok = False
                continue
            points_to = _points_to(scope or self.scope, compiled)
            if f.type is FieldType.REFERENCE and points_to is not None \
                    and points_to != f.target:
                self.error([*path, name], f"{source.strip()!r} points to {points_to}, but "
                                          f"{name} points to {f.target}")
                ok = False
                continue
            out.append((name, compiled))
        return tuple(out) if ok else None


def _points_to(scope: EntityScope, compiled: CompiledFormula) -> str | None:
    """The entity a formula that is just a reference field (`account`, `new.account`)
    points to; None for anything else."""
    tree = compiled.tree
    if not isinstance(tree, TField) or tree.type is not FType.REFERENCE:
        return None
    entity: str | None = scope.root
    spec: FieldSpec | None = None
    for name in tree.path:
        spec = scope.entities.get(entity or "", {}).get(name)
        if spec is None:
            return None
        entity = spec.target
    return None if spec is None else spec.target


def _expected(f: Field) -> FType | None:
    """The formula type a field's value is written from (None: any; the coercer checks)."""
    if f.type in (FieldType.REFERENCE, FieldType.USER, FieldType.DEPARTMENT,
                  FieldType.REGARDING, FieldType.MULTICHOICE, FieldType.FILE):
        return None
    try:
        return ftype_of(f.type)
    except (KeyError, ValueError):
        return None
