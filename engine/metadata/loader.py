"""Load config/: read YAML with marks, validate against JSON Schemas, build the Model."""

from __future__ import annotations

import difflib
import hashlib
import json
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from engine.metadata.errors import ConfigError, ConfigErrors, SourceLoc
from engine.metadata.model import Entity, Field, Label, Model
from engine.metadata.yamlio import YamlDoc, read_yaml
from engine.types import (
    LINK_TYPES,
    NUMERIC_TYPES,
    TEXT_TYPES,
    FieldType,
    name_problem,
)

_COMMON_KEYS = frozenset({"type", "label", "help", "required", "unique", "index", "default",
                          "renamed_from"})
# Which options fit which field type, beyond the common ones.
_TYPE_KEYS: dict[FieldType, frozenset[str]] = {
    FieldType.TEXT: frozenset({"max_length"}),
    FieldType.TEXTAREA: frozenset({"max_length"}),
    FieldType.EMAIL: frozenset({"max_length"}),
    FieldType.PHONE: frozenset({"max_length"}),
    FieldType.URL: frozenset({"max_length"}),
    FieldType.INTEGER: frozenset({"min", "max"}),
    FieldType.DECIMAL: frozenset({"min", "max"}),
    FieldType.MONEY: frozenset({"min", "max"}),
    FieldType.PERCENT: frozenset({"min", "max"}),
    FieldType.BOOLEAN: frozenset(),
    FieldType.DATE: frozenset(),
    FieldType.DATETIME: frozenset(),
    FieldType.CHOICE: frozenset({"options", "board"}),
    FieldType.MULTICHOICE: frozenset({"options"}),
    FieldType.REFERENCE: frozenset({"to"}),
    FieldType.USER: frozenset(),
    FieldType.DEPARTMENT: frozenset(),
}
_NOT_UNIQUE = frozenset({FieldType.TEXTAREA, FieldType.BOOLEAN, FieldType.MULTICHOICE})
_TEXT_MAX = {FieldType.TEXT: 1000, FieldType.EMAIL: 254, FieldType.PHONE: 40, FieldType.URL: 2048}


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
            [ConfigError(SourceLoc(str(root / "entities"), 1, 1), "no entities/ folder in config")]
        )
    files = sorted((root / "entities").glob("*.y*ml"))
    digest = hashlib.sha256()
    docs: list[YamlDoc] = []
    for path in files:
        display = _display(path)
        digest.update(display.encode() + b"\0" + path.read_bytes() + b"\0")
        doc = read_yaml(path, display)
        if isinstance(doc, ConfigError):
            errors.append(doc)
            continue
        schema_errors = validate_against_schema(doc, "entity")
        if schema_errors:
            errors.extend(schema_errors)
            continue
        docs.append(doc)

    builder = _ModelBuilder(errors)
    entities = [e for e in (builder.entity(doc) for doc in docs) if e is not None]
    builder.check_links(entities, {d.data["entity"]: d for d in docs})
    if not errors and not entities:
        errors.append(ConfigError(SourceLoc(_display(root / "entities"), 1, 1),
                                  "no entity files (*.yaml) found"))
    if errors:
        raise ConfigErrors(errors)
    return Model(
        entities=tuple(entities),
        config_hash=digest.hexdigest(),
        config_dir=str(root),
        sources=tuple(_display(p) for p in files),
    )


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def validate_against_schema(doc: YamlDoc, schema_name: str) -> list[ConfigError]:
    validator = jsonschema.Draft202012Validator(schema(schema_name))
    out: list[ConfigError] = []
    for err in sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.path))):
        out.extend(_explain(doc, err))
    return out


def _explain(doc: YamlDoc, err: ValidationError) -> list[ConfigError]:
    path = list(err.absolute_path)
    where = ".".join(str(p) for p in path) or "(document)"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        props = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        allowed = set(props)
        out = []
        for key in err.instance:
            if key not in allowed:
                hint = _did_you_mean(key, allowed)
                out.append(doc.error([*path, key], f"unknown key {key!r}{hint}", key=True))
        return out
    if err.validator == "required":
        return [doc.error(path, f"{where}: {err.message}")]
    if err.validator == "enum" and path and path[-1] == "type":
        choices = [str(c) for c in err.validator_value] \
            if isinstance(err.validator_value, list) else []
        hint = _did_you_mean(str(err.instance), choices)
        return [doc.error(path, f"{where}: unknown field type {err.instance!r}{hint}")]
    if err.validator == "oneOf" and path and path[-1] in ("label", "help", "plural"):
        return [doc.error(path, f"{where}: a label is a string or a map of locales to strings")]
    return [doc.error(path, f"{where}: {err.message}")]


def _did_you_mean(word: str, choices: set[str] | list[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _ModelBuilder:
    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors

    def entity(self, doc: YamlDoc) -> Entity | None:
        data = doc.data
        before = len(self.errors)
        name = data["entity"]
        problem = name_problem(name, entity=True)
        if problem:
            self.errors.append(doc.error(["entity"], f"entity: {problem}"))
        fields = [self.field(doc, fname, spec) for fname, spec in data["fields"].items()]
        built = [f for f in fields if f is not None]
        names = {f.name for f in built}
        for f in built:
            if f.renamed_from is not None:
                self._check_rename(doc, f, names)
        title = data.get("title")
        if title is None:
            title = next((f.name for f in built if f.type in TEXT_TYPES), "id")
        elif title not in names:
            hint = _did_you_mean(title, names)
            self.errors.append(doc.error(["title"], f"title: no field {title!r}{hint}"))
        if len(self.errors) > before:
            return None
        label = Label.of(data.get("label"), name.replace("_", " ").capitalize())
        return Entity(
            name=name,
            label=label,
            plural=Label.of(data.get("plural"), label.get() + "s"),
            title=title,
            area=data.get("area", "customers"),
            fields=tuple(built),
            loc=doc.loc(["entity"]),
            file=doc.file,
            description=Label.of(data["description"], "") if "description" in data else None,
        )

    def _check_rename(self, doc: YamlDoc, f: Field, names: set[str]) -> None:
        old = f.renamed_from or ""
        path = ["fields", f.name, "renamed_from"]
        problem = name_problem(old)
        if problem:
            self.errors.append(doc.error(path, f"fields.{f.name}.renamed_from: {problem}"))
        elif old == f.name:
            self.errors.append(
                doc.error(path, f"fields.{f.name}.renamed_from names the field itself"))
        elif old in names:
            self.errors.append(doc.error(
                path, f"fields.{f.name}.renamed_from: {old!r} is still a field of this entity"))

    def field(self, doc: YamlDoc, name: str, spec: dict[str, Any]) -> Field | None:
        before = len(self.errors)
        base = ["fields", name]
        problem = name_problem(name)
        if problem:
            self.errors.append(doc.error(base, f"field {problem}", key=True))
        ftype = FieldType(spec["type"])
        allowed = _COMMON_KEYS | _TYPE_KEYS[ftype]
        for key in spec:
            if key not in allowed:
                self.errors.append(doc.error(
                    [*base, key], f"fields.{name}.{key} does not fit a {ftype} field", key=True))
        if ftype in (FieldType.CHOICE, FieldType.MULTICHOICE):
            if "options" not in spec:
                self.errors.append(doc.error(base, f"fields.{name}: a {ftype} field needs options"))
            else:
                seen: set[str] = set()
                for i, opt in enumerate(spec["options"]):
                    if opt in seen:
                        self.errors.append(doc.error(
                            [*base, "options", i], f"fields.{name}.options: duplicate {opt!r}"))
                    seen.add(opt)
        if ftype is FieldType.REFERENCE and "to" not in spec:
            self.errors.append(doc.error(base, f"fields.{name}: a reference field needs 'to'"))
        if spec.get("unique") and ftype in _NOT_UNIQUE:
            self.errors.append(doc.error(
                [*base, "unique"], f"fields.{name}.unique does not fit a {ftype} field"))
        if ftype in _TEXT_MAX and spec.get("max_length", 0) > _TEXT_MAX[ftype]:
            self.errors.append(doc.error(
                [*base, "max_length"],
                f"fields.{name}.max_length: at most {_TEXT_MAX[ftype]} for a {ftype} field"))
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and hi is not None and lo > hi:
            self.errors.append(doc.error([*base, "min"], f"fields.{name}: min is above max"))
        default = spec.get("default")
        if default is not None:
            self._check_default(doc, name, ftype, spec, default)
        if len(self.errors) > before:
            return None
        return Field(
            name=name,
            type=ftype,
            label=Label.of(spec.get("label"), name.replace("_", " ").capitalize()),
            loc=doc.loc(base, key=True),
            required=bool(spec.get("required", False)),
            unique=bool(spec.get("unique", False)),
            index=bool(spec.get("index", False)),
            board=bool(spec.get("board", False)),
            help=Label.of(spec["help"], "") if "help" in spec else None,
            default=default,
            max_length=spec.get("max_length"),
            min=_decimal(lo),
            max=_decimal(hi),
            options=tuple(spec.get("options", ())),
            to=spec.get("to"),
            renamed_from=spec.get("renamed_from"),
        )

    def _check_default(
        self, doc: YamlDoc, name: str, ftype: FieldType, spec: dict[str, Any], default: object
    ) -> None:
        path = ["fields", name, "default"]
        if ftype in LINK_TYPES:
            self.errors.append(
                doc.error(path, f"fields.{name}.default does not fit a {ftype} field"))
        elif ftype in NUMERIC_TYPES and (isinstance(default, bool) or
                                         not isinstance(default, (int, float))):
            self.errors.append(doc.error(path, f"fields.{name}.default must be a number"))
        elif ftype is FieldType.BOOLEAN and not isinstance(default, bool):
            self.errors.append(doc.error(path, f"fields.{name}.default must be true or false"))
        elif ftype is FieldType.CHOICE and default not in spec.get("options", ()):
            self.errors.append(doc.error(
                path, f"fields.{name}.default {default!r} is not one of the options"))

    def check_links(self, entities: list[Entity], docs: dict[str, YamlDoc]) -> None:
        names: dict[str, Entity] = {}
        for e in entities:
            if e.name in names:
                self.errors.append(ConfigError(
                    e.loc, f"entity {e.name!r} is already defined in {names[e.name].file}"))
            names[e.name] = e
        for e in entities:
            doc = docs[e.name]
            for f in e.fields:
                if f.type is FieldType.REFERENCE and f.to not in names:
                    hint = _did_you_mean(f.to or "", set(names))
                    self.errors.append(doc.error(
                        ["fields", f.name, "to"],
                        f"fields.{f.name}.to: unknown entity {f.to!r}{hint}"))
                if f.type is FieldType.DEPARTMENT and "department" not in names:
                    self.errors.append(doc.error(
                        ["fields", f.name, "type"],
                        f"fields.{f.name}: a department field needs a 'department' entity"))


def _decimal(value: float | int | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
