"""Autonumber fields in an entity file: `{type: autonumber, format: "QT-{YYYY}-{0000}"}`.

The format itself is engine/metadata/number_format.py; numbers are assigned by
engine/runtime/records/autonumber.py as records are created.
"""

from __future__ import annotations

from typing import Any

from engine.metadata.errors import ConfigError
from engine.metadata.labels import Label
from engine.metadata.model import Field
from engine.metadata.number_format import TOKENS_HELP, FormatProblem, NumberFormat, parse_format
from engine.metadata.yamlio import YamlDoc
from engine.types import TEXT_DEFAULT_MAX, FieldType

AUTONUMBER_KEYS = frozenset({"type", "label", "help", "format", "search", "renamed_from"})
# Keys of other fields that a number the engine assigns cannot have.
_ASSIGNED_BY_ENGINE = frozenset({"required", "unique", "default", "formula", "index"})


def autonumber_field(doc: YamlDoc, name: str, spec: dict[str, Any],
                     errors: list[ConfigError]) -> Field | None:
    """The keys of one schema-valid autonumber field; its Field when they are right.

    The field is always unique, never required in input and never written by anyone.
    """
    before = len(errors)
    base = ["fields", name]

    def error(path: list[str | int], message: str, *, key: bool = False) -> None:
        errors.append(doc.error([*base, *path], f"fields.{name}{message}", key=key))

    for key in spec:
        if key in _ASSIGNED_BY_ENGINE:
            error([key], f".{key} does not fit an autonumber field (the engine assigns its "
                  "numbers: always unique, never written)", key=True)
        elif key not in AUTONUMBER_KEYS:
            error([key], f".{key} does not fit an autonumber field", key=True)
    number_format: NumberFormat | None = None
    if "format" not in spec:
        error([], f": an autonumber field needs a format, e.g. \"QT-{{YYYY}}-{{0000}}\" "
                  f"({TOKENS_HELP})")
    else:
        try:
            number_format = parse_format(spec["format"])
        except FormatProblem as exc:
            error(["format"], f".format {spec['format']!r}: {exc.message}")
        else:
            limit = TEXT_DEFAULT_MAX[FieldType.AUTONUMBER]
            if number_format.longest > limit:
                error(["format"], f".format {spec['format']!r}: its numbers could be "
                      f"{number_format.longest} characters long; at most {limit}")
    if len(errors) > before or number_format is None:
        return None
    return Field(
        name=name,
        type=FieldType.AUTONUMBER,
        label=Label.of(spec.get("label"), name.replace("_", " ").capitalize()),
        loc=doc.loc(base, key=True),
        unique=True,
        search=bool(spec.get("search", False)),
        help=Label.of(spec["help"], "") if "help" in spec else None,
        renamed_from=spec.get("renamed_from"),
        number_format=number_format,
        option_locs=tuple((key, doc.loc([*base, key])) for key in spec),
    )
