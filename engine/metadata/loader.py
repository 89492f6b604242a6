"""Load config/: read YAML with marks, validate against JSON Schemas, build the Model.

Every problem in every file is collected before anything is returned, and one mistake
does not hide or cause others: a field that fails the schema is left out of the later
checks, and a reference to an entity declared in a broken file is not reported as unknown.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from engine.metadata.dashboards import Dashboard, build_dashboard
from engine.metadata.duplicates import build_duplicates
from engine.metadata.errors import ConfigError, ConfigErrors, SourceLoc, did_you_mean
from engine.metadata.fields import check_field, check_rename
from engine.metadata.flows import Flow, build_flow
from engine.metadata.forms import build_form, default_form
from engine.metadata.formula_checks import compile_formulas
from engine.metadata.labels import Label
from engine.metadata.model import Cascade, Entity, Field, Form, Model, OrgUnit, Validation
from engine.metadata.org import load_org
from engine.metadata.reports import Report, build_report
from engine.metadata.roles import DEFAULT_ROLES, Roles, build_roles
from engine.metadata.rollups import check_rollups, resolve_rollups
from engine.metadata.settings import SiteSettings, load_settings
from engine.metadata.yamlio import PathPart, YamlDoc, parse_yaml
from engine.types import TEXT_TYPES, FieldType, name_problem


@cache
def schema(name: str) -> dict[str, Any]:
    text = resources.files("engine.metadata").joinpath("schemas", f"{name}.schema.json")
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def load_model(config_dir: str | Path) -> Model:
    """Load and validate every file under `config_dir`; raise ConfigErrors listing all problems."""
    root = Path(config_dir)
    errors: list[ConfigError] = []
    if not (root / "entities").is_dir():
        raise ConfigErrors(
            [ConfigError(SourceLoc(_display(root / "entities"), 1, 1),
                         "no entities/ folder in config")]
        )
    # Hidden files are editors' backups and locks (.#account.yaml), not configuration.
    files = sorted(p for p in (root / "entities").iterdir()
                   if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))
    digest = hashlib.sha256()
    parsed: list[_Parsed] = []
    unreadable: set[str] = set()
    for path in files:
        display = _display(path)
        raw = _read(path, display, errors)
        if raw is None:
            unreadable.add(path.stem)
            continue
        digest.update(display.encode() + b"\0" + raw + b"\0")
        doc = parse_yaml(raw, display)
        if isinstance(doc, ConfigError):
            errors.append(doc)
            unreadable.add(path.stem)
            continue
        bad: list[tuple[PathPart, ...]] = [()]
        problems = _shape_problem(doc)
        if not problems:
            problems, bad = validate_against_schema(doc, "entity")
        errors.extend(problems)
        parsed.append(_Parsed(doc, bad))

    # Names declared anywhere, even in files with errors; a file that does not parse at all
    # probably declares the entity it is named after.
    declared = {p.entity_name for p in parsed if p.entity_name} | unreadable
    builder = _ModelBuilder(errors, declared)
    entities = [e for e in (builder.entity(p) for p in parsed) if e is not None]
    if not errors and not entities:
        errors.append(ConfigError(SourceLoc(_display(root / "entities"), 1, 1),
                                  "no entity files (*.yaml) found"))
    if not errors:
        _check_cascades(entities, errors)
    if not errors:
        # A rollup's type is its child field's: known once all entities are built.
        entities = resolve_rollups(entities, errors)
    if not errors:
        # Formulas read fields across entities, so they are checked once all are built.
        entities = compile_formulas(entities, errors)
        # A rollup's where and formula fields of its child are checked once compiled.
        entities = check_rollups(entities, errors)
    roles = DEFAULT_ROLES
    org: tuple[OrgUnit, ...] = ()
    extra: list[Path] = []
    settings = SiteSettings()
    # Settings depend on no entity, so their errors are reported with the entities' ones.
    settings_doc = _optional_doc(root / "settings.yaml", "settings", digest, errors, extra)
    if settings_doc is not None:
        settings = load_settings(settings_doc, errors)
    if not errors:
        roles_doc = _optional_doc(root / "roles.yaml", "roles", digest, errors, extra)
        if roles_doc is not None:
            roles = build_roles(roles_doc, entities, errors)
        if not errors:
            _check_overrides(entities, roles, errors)
        org_doc = _optional_doc(root / "org.yaml", "org", digest, errors, extra)
        if org_doc is not None:
            org = load_org(org_doc, entities, errors)
    forms: list[Form] = []
    if not errors:
        forms = _load_forms(root, entities, digest, errors, extra)
    flows: list[Flow] = []
    if not errors:
        flows = _load_flows(root, entities, digest, errors, extra, roles, org,
                            frozenset(h.name for h in settings.holidays))
    reports: list[Report] = []
    if not errors:
        reports = _load_reports(root, entities, digest, errors, extra)
    dashboards: list[Dashboard] = []
    if not errors:
        dashboards = _load_dashboards(root, reports, roles, digest, errors, extra)
    if errors:
        raise ConfigErrors(errors)
    return Model(
        entities=tuple(entities),
        config_hash=digest.hexdigest(),
        config_dir=str(root),
        sources=tuple(_display(p) for p in [*files, *extra]),
        roles=roles,
        org=org,
        forms=tuple(forms),
        settings=settings,
        flows=tuple(flows),
        reports=tuple(reports),
        dashboards=tuple(dashboards),
    )


def _check_overrides(entities: list[Entity], roles: Roles, errors: list[ConfigError]) -> None:
    """A validation rule's `overridable_by` names roles of roles.yaml."""
    known = set(roles.names)
    for e in entities:
        for n, v in enumerate(e.validations):
            for role, loc in zip(v.overridable_by, v.overridable_locs, strict=True):
                if role not in known:
                    hint = did_you_mean(role, known)
                    errors.append(ConfigError(
                        loc, f"validations.{n}.overridable_by: no role {role!r}{hint}"))


def _load_forms(root: Path, entities: list[Entity], digest: Any, errors: list[ConfigError],
                read: list[Path]) -> list[Form]:
    """The form of every entity: from config/forms/<entity>.yaml, or the default layout."""
    folder = root / "forms"
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")
                   and not p.name.startswith(".")) if folder.is_dir() else []
    built: dict[str, Form] = {}
    for path in files:
        doc = _optional_doc(path, "form", digest, errors, read)
        if doc is None:
            continue
        form = build_form(doc, entities, errors)
        if form is None:
            continue
        if form.entity in built:
            errors.append(doc.error(["form"], f"form: {form.entity} already has a form in "
                                              f"{built[form.entity].source}"))
        built[form.entity] = form
    return [built.get(e.name) or default_form(e, entities) for e in entities]


def _load_flows(root: Path, entities: list[Entity], digest: Any, errors: list[ConfigError],
                read: list[Path], roles: Roles, org: tuple[OrgUnit, ...],
                holidays: frozenset[str] = frozenset()) -> list[Flow]:
    """config/flows/*.yaml, each checked against the entities (engine/metadata/flows.py)."""
    folder = root / "flows"
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")
                   and not p.name.startswith(".")) if folder.is_dir() else []
    built: dict[str, Flow] = {}
    for path in files:
        doc = _optional_doc(path, "flow", digest, errors, read)
        if doc is None:
            continue
        flow = build_flow(doc, path.read_bytes(), entities, errors, roles=roles, org=org,
                          holidays=holidays)
        if flow is None:
            continue
        if flow.name in built:
            errors.append(doc.error(["flow"], f"flow: {flow.name!r} is already defined in "
                                              f"{built[flow.name].file}"))
            continue
        built[flow.name] = flow
    return list(built.values())


def _load_reports(root: Path, entities: list[Entity], digest: Any, errors: list[ConfigError],
                  read: list[Path]) -> list[Report]:
    """config/reports/*.yaml, each checked against the entities (engine/metadata/reports.py)."""
    folder = root / "reports"
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")
                   and not p.name.startswith(".")) if folder.is_dir() else []
    built: list[Report] = []
    for path in files:
        doc = _optional_doc(path, "report", digest, errors, read)
        if doc is None:
            continue
        report = build_report(doc, path.stem, entities, errors)
        if report is not None:
            built.append(report)
    return built


def _load_dashboards(root: Path, reports: list[Report], roles: Roles, digest: Any,
                     errors: list[ConfigError], read: list[Path]) -> list[Dashboard]:
    """config/dashboards/*.yaml in the order of their files' names, each checked against the
    reports and roles (engine/metadata/dashboards.py)."""
    folder = root / "dashboards"
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")
                   and not p.name.startswith(".")) if folder.is_dir() else []
    built: list[Dashboard] = []
    for path in files:
        doc = _optional_doc(path, "dashboard", digest, errors, read)
        if doc is None:
            continue
        dashboard = build_dashboard(doc, path.stem, reports, roles.names, errors)
        if dashboard is not None:
            built.append(dashboard)
    return built


def _read(path: Path, display: str, errors: list[ConfigError]) -> bytes | None:
    """The file's bytes; None (and an error naming it) when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        errors.append(ConfigError(SourceLoc(display, 1, 1),
                                  f"cannot read the file: {exc.strerror}"))
        return None


def _optional_doc(path: Path, schema_name: str, digest: Any, errors: list[ConfigError],
                  read: list[Path]) -> YamlDoc | None:
    """A config file beside entities/ that may be absent, schema-checked; None if absent or
    invalid (its errors are appended)."""
    if not path.exists():
        return None
    display = _display(path)
    raw = _read(path, display, errors)
    if raw is None:
        return None
    read.append(path)
    digest.update(display.encode() + b"\0" + raw + b"\0")
    doc = parse_yaml(raw, display)
    if isinstance(doc, ConfigError):
        errors.append(doc)
        return None
    if not isinstance(doc.data, dict):
        guide = {"roles": "access.md", "org": "access.md", "flow": "flows.md",
                 "report": "reports.md", "dashboard": "dashboards.md"}.get(
            schema_name, "configuration.md")
        errors.append(doc.error([], f"{path.name} is a mapping (see docs/{guide})"))
        return None
    problems, _ = validate_against_schema(doc, schema_name)
    if problems:
        errors.extend(problems)
        return None
    return doc


def _check_cascades(entities: list[Entity], errors: list[ConfigError]) -> None:
    """Each `cascade_assign` entry names an entity with a reference field pointing back."""
    by_name = {e.name: e for e in entities}
    for e in entities:
        for c in e.cascade_assign:
            child = by_name.get(c.entity)
            if child is None:
                hint = did_you_mean(c.entity, set(by_name))
                errors.append(ConfigError(c.loc, f"cascade_assign: unknown entity "
                                                 f"{c.entity!r}{hint}"))
            elif not any(f.target == e.name for f in child.stored_fields):
                errors.append(ConfigError(c.loc, f"cascade_assign: {c.entity} has no "
                                                 f"reference field to {e.name}"))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _Parsed:
    """A file that parsed as YAML, with the parts of it the schema rejected."""

    def __init__(self, doc: YamlDoc, bad: list[tuple[PathPart, ...]]) -> None:
        self.doc = doc
        self.bad = bad
        data = doc.data
        self.entity_name: str | None = None
        if isinstance(data, dict) and isinstance(data.get("entity"), str):
            self.entity_name = data["entity"]

    def rejected(self, *path: PathPart) -> bool:
        """Whether the schema rejected the node at `path` or one holding it."""
        return any(path[: len(r)] == r for r in self.bad)

    def clean(self, *path: PathPart) -> bool:
        """Whether the schema found nothing wrong at, inside or above `path`."""
        n = len(path)
        return not self.rejected(*path) and not any(r[:n] == path for r in self.bad)


def _shape_problem(doc: YamlDoc) -> list[ConfigError]:
    if doc.data is None:
        return [doc.error([], "the file is empty; an entity file needs 'entity' and 'fields'")]
    if not isinstance(doc.data, dict):
        return [doc.error([], "an entity file is a mapping with 'entity' and 'fields'")]
    return []


def _keys_at_fault(err: ValidationError) -> list[str]:
    """The missing keys of a `required` error, or the unknown ones of `additionalProperties`."""
    instance: dict[str, Any] = err.instance if isinstance(err.instance, dict) else {}
    if err.validator == "required":
        wanted = err.validator_value if isinstance(err.validator_value, list) else []
        return [k for k in wanted if k not in instance]
    allowed = set(err.schema.get("properties", {})) if isinstance(err.schema, dict) else set()
    return [k for k in instance if k not in allowed]


def validate_against_schema(
    doc: YamlDoc, schema_name: str
) -> tuple[list[ConfigError], list[tuple[PathPart, ...]]]:
    """The schema's errors, explained, and the paths it rejects (an unknown or missing key
    marks only itself, so the rest of its mapping can still be checked)."""
    validator = jsonschema.Draft202012Validator(schema(schema_name))
    errors: list[ConfigError] = []
    bad: list[tuple[PathPart, ...]] = []
    for err in validator.iter_errors(doc.data):
        errors.extend(_explain(doc, err))
        path = tuple(err.absolute_path)
        if err.validator in ("additionalProperties", "required") \
                and isinstance(err.instance, dict):
            bad.extend((*path, k) for k in _keys_at_fault(err))
        else:
            bad.append(path)
    return list(dict.fromkeys(errors)), bad


def _explain(doc: YamlDoc, err: ValidationError) -> list[ConfigError]:
    path = list(err.absolute_path)
    where = ".".join(str(p) for p in path)
    prefix = f"{where}: " if where else ""
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {})) if isinstance(err.schema, dict) else set()
        return [doc.error([*path, key], f"{prefix}unknown key {key!r}"
                          f"{did_you_mean(key, allowed)}", key=True)
                for key in _keys_at_fault(err)]
    if err.validator == "required" and isinstance(err.instance, dict):
        return [doc.error(path, f"{prefix}missing key {key!r}") for key in _keys_at_fault(err)]
    if err.validator == "enum" and path and path[-1] == "type":
        choices = [str(c) for c in err.validator_value] \
            if isinstance(err.validator_value, list) else []
        hint = did_you_mean(str(err.instance), choices)
        return [doc.error(path, f"{prefix}unknown field type {err.instance!r}{hint}")]
    if err.validator == "enum" and path and path[-1] == "agg":
        choices = [str(c) for c in err.validator_value] \
            if isinstance(err.validator_value, list) else []
        hint = did_you_mean(str(err.instance), choices)
        return [doc.error(path, f"{prefix}unknown aggregate {err.instance!r}{hint}: one of "
                                f"{', '.join(choices)}")]
    if err.validator == "oneOf" and path and path[-1] in ("label", "help", "plural",
                                                          "description", "message"):
        return [doc.error(path, f"{prefix}a label is a string or a map of locales to strings")]
    if err.validator == "type":
        if err.instance is None:
            return [doc.error(path, f"{prefix}a value is missing")]
        wanted = err.validator_value if isinstance(err.validator_value, list) \
            else [err.validator_value]
        shown = " or ".join(_KINDS.get(str(w), str(w)) for w in wanted)
        return [doc.error(path, f"{prefix}must be {shown}, not {_kind_of(err.instance)}")]
    return [doc.error(path, f"{prefix}{err.message}")]


# JSON Schema types as a YAML author knows them.
_KINDS = {"object": "a mapping", "array": "a list", "string": "text", "number": "a number",
          "integer": "a whole number", "boolean": "true or false"}


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}" + ("…" if len(value) > 40 else "")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class _ModelBuilder:
    """The checks beyond the schema, on every part of a file the schema let through."""

    def __init__(self, errors: list[ConfigError], declared: set[str]) -> None:
        self.errors = errors
        self.declared = declared
        self.seen: dict[str, str] = {}  # entity name → file that declared it first

    def entity(self, p: _Parsed) -> Entity | None:
        doc, data = p.doc, p.doc.data
        if not isinstance(data, dict):
            return None
        before = len(self.errors)
        name = p.entity_name
        if name is not None and p.clean("entity"):
            problem = name_problem(name, entity=True)
            if problem:
                self.errors.append(doc.error(["entity"], f"entity: {problem}"))
            elif name in self.seen:
                self.errors.append(doc.error(
                    ["entity"], f"entity {name!r} is already defined in {self.seen[name]}"))
            else:
                self.seen[name] = doc.file
        specs = None if p.rejected("fields") else data.get("fields")
        built = self._fields(p, specs) if isinstance(specs, dict) else []
        title = data.get("title")
        if isinstance(specs, dict) and isinstance(title, str) and p.clean("title") \
                and title not in specs:
            hint = did_you_mean(title, set(specs))
            self.errors.append(doc.error(["title"], f"title: no field {title!r}{hint}"))
        for i, v in enumerate(data.get("validations", []) if not p.rejected("validations")
                              else []):
            target = v.get("field") if isinstance(v, dict) else None
            if isinstance(specs, dict) and isinstance(target, str) and target not in specs:
                hint = did_you_mean(target, set(specs))
                self.errors.append(doc.error(["validations", i, "field"],
                                             f"validations: no field {target!r}{hint}"))
        duplicates = () if not p.clean("duplicates") or not isinstance(specs, dict) \
            else build_duplicates(doc, data.get("duplicates"), built, specs, self.errors)
        if len(self.errors) > before or p.bad or name is None or not isinstance(specs, dict):
            return None
        if title is None:
            title = next((f.name for f in built if f.type in TEXT_TYPES), "id")
        label = Label.of(data.get("label"), name.replace("_", " ").capitalize())
        return Entity(
            name=name,
            label=label,
            plural=Label.of(data.get("plural"), label.get() + "s"),
            title=title,
            area=data.get("area", "customers"),
            menu=bool(data.get("menu", True)),
            attachments=bool(data.get("attachments", False)),
            duplicates=duplicates,
            fields=tuple(built),
            loc=doc.loc(["entity"]),
            file=doc.file,
            description=Label.of(data["description"], "") if "description" in data else None,
            validations=tuple(
                Validation(rule=v["rule"], message=Label.of(v["message"], v["rule"]),
                           loc=doc.loc(["validations", i, "rule"]), field=v.get("field"),
                           overridable_by=tuple(v.get("overridable_by", ())),
                           overridable_locs=tuple(
                               doc.loc(["validations", i, "overridable_by", j])
                               for j in range(len(v.get("overridable_by", ())))))
                for i, v in enumerate(data.get("validations", []))),
            cascade_assign=tuple(
                Cascade(entity=c if isinstance(c, str) else c["entity"],
                        when=None if isinstance(c, str) else c.get("when"),
                        loc=doc.loc(["cascade_assign", i]))
                for i, c in enumerate(data.get("cascade_assign", []))),
        )

    def _fields(self, p: _Parsed, specs: dict[str, Any]) -> list[Field]:
        doc = p.doc
        built: list[Field] = []
        renamed: dict[str, str] = {}
        for fname, spec in specs.items():
            problem = name_problem(fname)
            if problem:
                self.errors.append(doc.error(["fields", fname], f"field {problem}", key=True))
            if not p.clean("fields", fname):
                continue
            field = check_field(doc, fname, spec, self.errors)
            old = spec.get("renamed_from")
            if old is not None:
                rename_error = check_rename(doc, fname, old, set(specs), renamed)
                if rename_error:
                    self.errors.append(rename_error)
                    field = None
            self._check_links(doc, fname, spec)
            if field is not None and not problem:
                built.append(field)
        keys = [f for f in built if f.external_id]
        for f in keys[1:]:  # one external id per entity: the record's code in one system
            self.errors.append(doc.error(
                ["fields", f.name, "external_id"], f"fields.{f.name}.external_id: "
                f"{keys[0].name!r} is already this entity's external id (at most one)",
                key=True))
        for f in built:  # a regarding field's two columns (engine/runtime/schema/tables.py)
            if f.type is FieldType.REGARDING:
                for column in (f"{f.name}_entity", f"{f.name}_id"):
                    if column in specs:
                        self.errors.append(doc.error(
                            ["fields", column], f"field {column!r} would share the column "
                            f"of regarding field {f.name!r}", key=True))
        return built

    def _check_links(self, doc: YamlDoc, fname: str, spec: dict[str, Any]) -> None:
        ftype = spec["type"]
        target = spec.get("to")
        if ftype == FieldType.REFERENCE and isinstance(target, str) \
                and target not in self.declared:
            hint = did_you_mean(target, self.declared)
            self.errors.append(doc.error(["fields", fname, "to"],
                                         f"fields.{fname}.to: unknown entity {target!r}{hint}"))
        if ftype == FieldType.REGARDING and isinstance(target, list):
            for i, name in enumerate(target):
                if name not in self.declared:
                    hint = did_you_mean(str(name), self.declared)
                    self.errors.append(doc.error(
                        ["fields", fname, "to", i],
                        f"fields.{fname}.to: unknown entity {name!r}{hint}"))
            if len(set(target)) < len(target):
                self.errors.append(doc.error(["fields", fname, "to"],
                                             f"fields.{fname}.to: an entity is named twice"))
        if ftype == FieldType.DEPARTMENT and "department" not in self.declared:
            self.errors.append(doc.error(
                ["fields", fname, "type"],
                f"fields.{fname}: a department field needs a 'department' entity"))
