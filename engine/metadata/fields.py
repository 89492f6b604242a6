"""Check one field of an entity file and build its Field: options that fit the type,
defaults that fit the field, min and max, renames."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from engine.fieldtypes import FIELD_TYPES
from engine.metadata.autonumber import autonumber_field
from engine.metadata.errors import ConfigError, did_you_mean
from engine.metadata.labels import Label
from engine.metadata.model import Field
from engine.metadata.rollups import ROLLUP, rollup_field
from engine.metadata.yamlio import YamlDoc
from engine.types import (
    DECIMAL_SHAPES,
    LINK_TYPES,
    TEXT_DEFAULT_MAX,
    TEXT_TYPES,
    FieldType,
    name_problem,
    text_shape_problem,
)

_COMMON_KEYS = frozenset({"type", "label", "help", "required", "unique", "index", "default",
                          "renamed_from", "formula", "external_id"})
# A computed field has no column: nothing to require, index, default or rename.
_NOT_WITH_FORMULA = ("required", "unique", "index", "default", "renamed_from", "external_id")
# The field types a formula can compute (links and multichoice hold no formula values).
COMPUTABLE = frozenset(t for t, entry in FIELD_TYPES.items() if entry.computable)
# The length a value may have when the field declares no max_length (as the coercer checks).
_INT_LIMIT = 2**63


def a_type(ftype: FieldType) -> str:
    """'a text field', 'an integer field'."""
    return f"{'an' if ftype.value[0] in 'aeiou' else 'a'} {ftype} field"


def check_field(doc: YamlDoc, name: str, spec: dict[str, Any],
                errors: list[ConfigError]) -> Field | None:
    """Check one schema-valid field spec; append its errors, return the Field when it has none.

    The field's name is checked by the caller (it is a key, valid or not, whatever the spec).
    """
    if spec["type"] == ROLLUP:
        return rollup_field(doc, name, spec, errors)
    if spec["type"] == FieldType.AUTONUMBER:
        return autonumber_field(doc, name, spec, errors)
    before = len(errors)
    base = ["fields", name]

    def error(path: list[str | int], message: str, *, key: bool = False) -> None:
        errors.append(doc.error([*base, *path], f"fields.{name}{message}", key=key))

    ftype = FieldType(spec["type"])
    entry = FIELD_TYPES[ftype]
    allowed = _COMMON_KEYS | entry.options
    for key in spec:
        if key == "external_id" and ftype is not FieldType.TEXT:
            error([key], f".external_id does not fit {a_type(ftype)}: only a text field can "
                  "hold a record's external id", key=True)
        elif key == "search" and ftype not in TEXT_TYPES:
            error([key], f".search does not fit {a_type(ftype)}: only text, textarea, email, "
                  "phone and url fields can be searched", key=True)
        elif key not in allowed:
            error([key], f".{key} does not fit {a_type(ftype)}", key=True)
    if ftype in (FieldType.CHOICE, FieldType.MULTICHOICE):
        if "options" not in spec:
            error([], f": {a_type(ftype)} needs options")
        else:
            seen: set[str] = set()
            for i, opt in enumerate(spec["options"]):
                if opt in seen:
                    error(["options", i], f".options: duplicate {opt!r}")
                seen.add(opt)
            for value in spec.get("option_labels", {}):
                if value not in seen:
                    error(["option_labels", value], f".option_labels: {value!r} is not one of "
                          f"the options{did_you_mean(value, seen)}", key=True)
            for i, value in enumerate(spec.get("closed", ())):
                if value not in seen:
                    error(["closed", i], f".closed: {value!r} is not one of the options"
                          f"{did_you_mean(value, seen)}")
    if "formula" in spec:
        if ftype not in COMPUTABLE:
            error(["formula"], f".formula does not fit {a_type(ftype)}", key=True)
        for key in _NOT_WITH_FORMULA:
            if key in spec:
                error([key], f".{key} does not fit a computed field (it has a formula)",
                      key=True)
    if spec.get("search") and "formula" in spec:
        error(["search"], ".search does not fit a computed field (it has a formula)", key=True)
    if ftype is FieldType.REFERENCE and "to" not in spec:
        error([], ": a reference field needs 'to'")
    to = spec.get("to")
    if "to" in spec and (ftype is FieldType.REGARDING) != isinstance(to, list):
        error(["to"], ".to: a regarding field takes a list of entities ([account, contact])"
              if ftype is FieldType.REGARDING else ".to: one entity name", key=True)
    if ftype is FieldType.REGARDING and "renamed_from" in spec:
        error(["renamed_from"], ".renamed_from does not fit a regarding field (its two "
              "columns are not renamed): remove the old field and add the new one", key=True)
    if spec.get("unique") and not entry.unique:
        error(["unique"], f".unique does not fit {a_type(ftype)}")
    limit = entry.max_length_limit
    if limit is not None and spec.get("max_length", 0) > limit:
        error(["max_length"], f".max_length: at most {limit} for {a_type(ftype)}")
    bounds: dict[str, Decimal | None] = {"min": None, "max": None}
    for key in bounds:
        value = spec.get(key)
        if value is not None and key in allowed:
            if math.isfinite(value):
                bounds[key] = Decimal(value) if isinstance(value, int) else Decimal(str(value))
            else:
                error([key], f".{key} must be a finite number")
    lo, hi = bounds["min"], bounds["max"]
    if lo is not None and hi is not None and lo > hi:
        error(["min"], ": min is above max")
    default = spec.get("default")
    if is_default_formula(default) and ftype in LINK_TYPES | {FieldType.MULTICHOICE,
                                                                FieldType.REGARDING}:
        error(["default"], f".default: a formula default does not fit {a_type(ftype)}")
    elif default is not None and not is_default_formula(default) and len(errors) == before:
        problem = default_problem(ftype, spec, default, lo, hi)
        if problem:
            error(["default"], f".default {problem}")
    if len(errors) > before:
        return None
    return Field(
        name=name,
        type=ftype,
        label=Label.of(spec.get("label"), name.replace("_", " ").capitalize()),
        loc=doc.loc(base, key=True),
        required=bool(spec.get("required", False)),
        # an external id is a unique key (its unique index, its checks: as `unique`)
        unique=bool(spec.get("unique", False) or spec.get("external_id", False)),
        index=bool(spec.get("index", False)),
        external_id=bool(spec.get("external_id", False)),
        board=bool(spec.get("board", False)),
        closed=tuple(spec.get("closed", ())),
        calendar=bool(spec.get("calendar", False)),
        search=bool(spec.get("search", False)),
        help=Label.of(spec["help"], "") if "help" in spec else None,
        default=default,
        max_length=spec.get("max_length"),
        min=lo,
        max=hi,
        options=tuple(spec.get("options", ())),
        option_labels=tuple((value, Label.of(text, value))
                            for value, text in spec.get("option_labels", {}).items()),
        to=None if ftype is FieldType.REGARDING else spec.get("to"),
        targets=tuple(spec["to"]) if ftype is FieldType.REGARDING and "to" in spec else (),
        renamed_from=spec.get("renamed_from"),
        formula=spec.get("formula"),
        option_locs=tuple((key, doc.loc([*base, key])) for key in spec),
    )


def is_default_formula(default: object) -> bool:
    """A default written `"=TODAY() + 30"` is a formula evaluated when a record is created."""
    return isinstance(default, str) and default.startswith("=")


def default_problem(ftype: FieldType, spec: dict[str, Any], default: object,
                    lo: Decimal | None, hi: Decimal | None) -> str | None:
    """Why `default` cannot be stored in the field; None when it can.

    Mirrors the runtime coercers, so a default that loads is one the records service
    accepts.

    >>> default_problem(FieldType.INTEGER, {}, 1.5, None, None)
    'must be a whole number'
    """
    if ftype in LINK_TYPES or ftype is FieldType.REGARDING:
        return f"does not fit {a_type(ftype)}"
    if ftype is FieldType.BOOLEAN:
        return None if isinstance(default, bool) else "must be true or false"
    if ftype is FieldType.INTEGER or ftype in DECIMAL_SHAPES:
        return _number_problem(ftype, default, lo, hi)
    if not isinstance(default, str):
        if ftype in TEXT_TYPES and isinstance(default, int) and not isinstance(default, bool):
            default = str(default)  # the coercer takes whole numbers as text
        else:
            return "must be text" if ftype in TEXT_TYPES else f"does not fit {a_type(ftype)}"
    options = spec.get("options", [])
    if ftype is FieldType.CHOICE and default.strip() not in options:
        return f"{default!r} is not one of the options"
    if ftype is FieldType.MULTICHOICE:
        unknown = sorted({p.strip() for p in default.split(",") if p.strip()} - set(options))
        if unknown:
            return f"{', '.join(map(repr, unknown))} not among the options"
    if ftype in TEXT_TYPES:
        limit = spec.get("max_length") or TEXT_DEFAULT_MAX[ftype]
        if "\x00" in default:
            return "must not contain NUL characters"
        if len(default) > limit:
            return f"is longer than {limit} characters"
        shape = text_shape_problem(ftype, default.strip())
        if shape:
            return shape
    if ftype is FieldType.DATE:
        try:
            date.fromisoformat(default.strip())
        except ValueError:
            return "must be a date like 2025-03-31"
    if ftype is FieldType.DATETIME:
        text = default.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return "must be a date and time like 2025-03-31T14:30:00Z"
        if not 1900 <= parsed.year <= 9999:
            return "must be between the years 1900 and 9999"
    return None


def _number_problem(ftype: FieldType, default: object, lo: Decimal | None,
                    hi: Decimal | None) -> str | None:
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return "must be a number"
    value = Decimal(default) if isinstance(default, int) else Decimal(str(default))
    if not value.is_finite():
        return "must be a finite number"
    if ftype is FieldType.INTEGER:
        if value != value.to_integral_value():
            return "must be a whole number"
        if abs(value) >= _INT_LIMIT:
            return "is too large"
    else:
        precision, scale = DECIMAL_SHAPES[ftype]
        if abs(value) >= Decimal(10) ** (precision - scale):
            return f"must be less than {Decimal(10) ** (precision - scale):,} in size"
        if value != value.quantize(Decimal(1).scaleb(-scale)):
            return f"must have at most {scale} decimal places"
    if lo is not None and value < lo:
        return f"is below min {lo}"
    if hi is not None and value > hi:
        return f"is above max {hi}"
    return None


def check_rename(doc: YamlDoc, name: str, old: str, field_names: set[str],
                 renamed: dict[str, str]) -> ConfigError | None:
    """Why `renamed_from: old` on field `name` cannot be; `renamed` maps old → new so far."""
    path = ["fields", name, "renamed_from"]
    problem = name_problem(old)
    if problem:
        return doc.error(path, f"fields.{name}.renamed_from: {problem}")
    if old == name:
        return doc.error(path, f"fields.{name}.renamed_from names the field itself")
    if old in field_names:
        return doc.error(path, f"fields.{name}.renamed_from: {old!r} is still a field of "
                               "this entity")
    if old in renamed:
        return doc.error(path, f"fields.{name}.renamed_from: {old!r} is already renamed to "
                               f"{renamed[old]!r}")
    renamed[old] = name
    return None
