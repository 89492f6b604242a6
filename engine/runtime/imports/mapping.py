"""An import file's columns mapped to an entity's fields, and its cells coerced to values.

- `guess_mapping`: a column matches a field by its name or its label in English or Chinese,
  ignoring case, spaces, punctuation, a required marker `*` and full-/half-width forms.
- mapping files (`crm import --mapping F`): `load_mapping`, `dump_mapping`; `check_mapping`
  names every column that cannot be imported as mapped, and the required fields left out.
- `RowCoercer`: a batch of rows to the values the records service takes, and each row's
  problems by column — with the forms' rules (engine/runtime/values.py) plus choice options
  by name or label in either language and references resolved set-wise per batch.

Saved mappings (the import page's) are in engine/runtime/imports/saved_mappings.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML

from engine.messages import msg
from engine.metadata.errors import ConfigError, ConfigErrors, SourceLoc, did_you_mean
from engine.metadata.model import Entity, Field, Model
from engine.metadata.yamlio import YamlDoc, read_yaml
from engine.runtime.access import Actor
from engine.runtime.errors import Invalid
from engine.runtime.imports import keys
from engine.runtime.imports.converters import Converter, column_converter
from engine.runtime.values import InputRules, ValueProblem
from engine.types import FieldType

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from engine.runtime.records.service import Records

ERRORS_COLUMN = "Import errors / 导入错误"
"""The column an import's error file adds to each bad row (its problems); a file imported
again ignores it."""

LINK_TYPES = frozenset({FieldType.REFERENCE, FieldType.USER, FieldType.DEPARTMENT})
NOT_IMPORTED = frozenset({FieldType.FILE, FieldType.AUTONUMBER, FieldType.REGARDING})
_SHOWN_VALUE = 60


@dataclass(frozen=True)
class ColumnMap:
    """Which field each column of a file goes to (None: the column is not imported)."""

    columns: dict[str, str | None]
    entity: str = ""
    key: str | None = None
    """The field an import matches existing records by (upsert), when one is given."""
    locs: dict[str, SourceLoc] = field(default_factory=dict, compare=False, repr=False)
    """Where a mapping file wrote each column (for errors found later)."""

    def mapped(self) -> dict[str, str]:
        """column → field, for the columns that are imported."""
        return {c: f for c, f in self.columns.items() if f is not None}

    def for_headers(self, headers: Sequence[str], guessed: ColumnMap) -> ColumnMap:
        """This mapping over a file's `headers`: a column it does not name takes the
        guess's field, unless this mapping already puts another column on it."""
        taken = set(self.mapped().values())
        columns: dict[str, str | None] = {}
        for h in headers:
            if h in self.columns:
                columns[h] = self.columns[h]
            else:
                guess = guessed.columns.get(h)
                columns[h] = guess if guess not in taken else None
        for h, f in self.columns.items():
            columns.setdefault(h, f)
        return ColumnMap(columns, self.entity, self.key, self.locs)


# -- matching headers ------------------------------------------------------------------------

_PUNCT_CATEGORIES = ("P", "S", "Z", "C")


def header_key(text: str) -> str:
    """A column name or label as compared: full-width forms plain, case folded, without
    spaces, punctuation, symbols (a required `*`) or control characters.

    >>> header_key(" *客户名称(必填) "), header_key("Close-Date"), header_key("\uff21MOUNT")
    ('客户名称必填', 'closedate', 'amount')
    """
    plain = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in plain if not unicodedata.category(ch).startswith(
        _PUNCT_CATEGORIES))


_REQUIRED_NOTES = ("必填", "required")


_NOTE_RE = re.compile("[\uff08(\\[【].*?[)\uff09\\]】]")  # (…), full-width (…), [...], 【…】


def _keys_of_header(header: str) -> list[str]:
    key = header_key(header)
    keys = [key]
    bare = header_key(_NOTE_RE.sub("", header))  # "金额(元)" is 金额
    if bare and bare != key:
        keys.append(bare)
    for note in _REQUIRED_NOTES:
        if key.endswith(note) and len(key) > len(note):
            keys.append(key[: -len(note)])
    return keys


def importable(f: Field) -> bool:
    """A field an import may write: stored, not computed, not kept by the engine."""
    return not f.computed and f.rollup is None and f.number_format is None \
        and f.type not in NOT_IMPORTED


def writable_fields(records: Records, actor: Actor, entity: Entity) -> frozenset[str]:
    """The fields `actor` may give in an import into `entity` (neither hidden nor
    read-only for their roles)."""
    mask = records.policy.mask(actor, entity)
    return frozenset(f.name for f in entity.fields
                     if importable(f) and f.name not in mask.hidden
                     and f.name not in mask.readonly)


def _field_keys(f: Field) -> list[str]:
    keys = [header_key(f.name)]
    for _locale, text in f.label.texts:
        keys.append(header_key(text))
    return keys


def guess_mapping(model: Model, entity: Entity | str, headers: Sequence[str], *,
                  writable: Collection[str] | None = None) -> ColumnMap:
    """Each header's field by name or label (en/zh), one column per field (the first);
    the error file's column, unknown headers and fields not in `writable` map to None."""
    ent = model.entity(entity) if isinstance(entity, str) else entity
    index: dict[str, str] = {}
    for f in ent.fields:
        if not importable(f) or (writable is not None and f.name not in writable):
            continue
        for key in _field_keys(f):
            if key:
                index.setdefault(key, f.name)
    columns: dict[str, str | None] = {}
    taken: set[str] = set()
    errors_key = header_key(ERRORS_COLUMN)
    for h in headers:
        found = None
        keys = _keys_of_header(h)
        if keys[0] != errors_key:
            found = next((index[k] for k in keys if k in index), None)
        if found in taken:
            found = None
        if found is not None:
            taken.add(found)
        columns[h] = found
    return ColumnMap(columns, ent.name)


# -- mapping files ---------------------------------------------------------------------------

_MAPPING_KEYS = ("entity", "columns", "key")


def load_mapping(path: Path, model: Model | None = None) -> ColumnMap:
    """A mapping file (YAML: `entity`, `columns: {"客户名称": name, "备注": null}`, optional
    `key`); ConfigErrors at `file:line:col` for a bad shape, or (given the model) an unknown
    entity or field."""
    doc = read_yaml(path, str(path))
    if isinstance(doc, ConfigError):
        raise ConfigErrors([doc])
    errors: list[ConfigError] = []
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigErrors([doc.error([], "a mapping file is a map with entity and columns")])
    for k in data:
        if k not in _MAPPING_KEYS:
            errors.append(doc.error([k], f"unknown key {k!r}{did_you_mean(k, _MAPPING_KEYS)}; "
                                    "a mapping file has entity, columns and key", key=True))
    entity = data.get("entity")
    if not isinstance(entity, str) or not entity:
        errors.append(doc.error(["entity"] if "entity" in data else [],
                                "entity: the entity the file is imported into is required"))
        entity = ""
    key = data.get("key")
    if key is not None and not isinstance(key, str):
        errors.append(doc.error(["key"], "key: a field name"))
        key = None
    raw = data.get("columns")
    columns: dict[str, str | None] = {}
    locs: dict[str, SourceLoc] = {}
    if not isinstance(raw, dict) or not raw:
        errors.append(doc.error(["columns"] if "columns" in data else [],
                                "columns: a map from each column's name to a field (or null)"))
        raw = {}
    for column, target in raw.items():
        if target is not None and not isinstance(target, str):
            errors.append(doc.error(["columns", column],
                                    f"columns.{column}: a field name or null"))
            continue
        columns[str(column)] = target or None
        locs[str(column)] = doc.loc(["columns", column])
    if model is not None and entity:
        errors += _named_in_model(doc, model, entity, columns, key)
    if errors:
        raise ConfigErrors(errors)
    return ColumnMap(columns, entity, key, locs)


def _named_in_model(doc: YamlDoc, model: Model, entity: str, columns: Mapping[str, str | None],
                    key: str | None) -> list[ConfigError]:
    if not model.has_entity(entity):
        hint = did_you_mean(entity, [e.name for e in model.entities])
        return [doc.error(["entity"], f"entity: unknown entity {entity!r}{hint}")]
    ent = model.entity(entity)
    errors = []
    for column, target in columns.items():
        if target is not None and not ent.has_field(target):
            hint = did_you_mean(target, ent.field_names)
            errors.append(doc.error(["columns", column], f"columns.{column}: {entity} has no "
                                    f"field {target!r}{hint}"))
    if key is not None and not ent.has_field(key):
        errors.append(doc.error(["key"], f"key: {entity} has no field {key!r}"
                                f"{did_you_mean(key, ent.field_names)}"))
    return errors


def dump_mapping(mapping: ColumnMap, path: Path | None = None) -> str:
    """The mapping as a mapping file's YAML (written to `path` when given)."""
    data: dict[str, Any] = {"entity": mapping.entity, "columns": dict(mapping.columns)}
    if mapping.key:
        data["key"] = mapping.key
    yaml = YAML()  # round-trip: keys in the mapping's order
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    out = StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    if path is not None:
        path.write_text(text, encoding="utf-8")
    return text


def check_mapping(model: Model, entity: Entity | str, mapping: ColumnMap,
                  headers: Sequence[str], writable: Collection[str]) -> None:
    """Invalid (`fields` by column, or by field for a required one left out) when a column
    names no field of the entity, one the importer may not write, a field another column
    has too, or a column the file does not have; or when a required field without a
    default has no column (unless the mapping has a key: rows then update records)."""
    ent = model.entity(entity) if isinstance(entity, str) else entity
    problems: dict[str, str] = {}
    present = set(headers)
    seen: dict[str, str] = {}
    for column, name in mapping.columns.items():
        if name is None:
            continue
        if column not in present:
            problems[column] = msg("column %(column)s is not in the file", column=column)
        elif not ent.has_field(name):
            problems[column] = msg("column %(column)s: %(entity)s has no field %(field)s",
                                   column=column, entity=ent.label, field=name)
        elif name not in writable:
            problems[column] = msg("column %(column)s: field %(field)s cannot be imported "
                                   "(computed, kept by the engine, or read-only for you)",
                                   column=column, field=ent.field(name).label)
        elif name in seen:
            problems[column] = msg("columns %(first)s and %(second)s both go to field "
                                   "%(field)s", first=seen[name], second=column,
                                   field=ent.field(name).label)
        else:
            seen[name] = column
    if mapping.key is not None:
        if not ent.has_field(mapping.key) or mapping.key not in seen:
            problems[mapping.key] = msg("the key field %(field)s has no column", field=mapping.key)
    else:
        missing = [f for f in ent.fields if f.required and importable(f)
                   and f.default is None and f.default_formula is None and f.name not in seen]
        for f in missing:
            problems[f.name] = msg("required field %(field)s has no column", field=f.label)
    if problems:
        raise Invalid(msg("the mapping cannot be used: %(problems)s",
                          problems="; ".join(problems.values())), problems)


# -- coercing rows ---------------------------------------------------------------------------

def _shown_value(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _SHOWN_VALUE else text[:_SHOWN_VALUE] + "…")


class RowCoercer:
    """Rows of text (in the file's column order) to records' values, set-wise per batch.

    `batch(conn, rows)` gives per row the values (field → value, for the records service)
    and the problems (column → message naming the column, the value and why). A row with
    a problem in any column should not be written; its other values are still given.
    Each column's converter is compiled once (engine/runtime/imports/converters.py)."""

    def __init__(self, records: Records, actor: Actor, entity: Entity | str,
                 mapping: ColumnMap, headers: Sequence[str]) -> None:
        self.records = records
        self.actor = actor
        model = records.model
        self.entity = model.entity(entity) if isinstance(entity, str) else entity
        self.headers = list(headers)
        settings = model.settings
        self.rules = InputRules(settings.day_first, settings.currency)
        self.zone = settings.zone
        self.mapped: list[tuple[int, str, Field]] = []
        for i, h in enumerate(self.headers):
            name = mapping.columns.get(h)
            if name is not None and self.entity.has_field(name):
                self.mapped.append((i, h, self.entity.field(name)))
        # (column index, header, field name, converter — None for a link, resolved per batch)
        self._columns: list[tuple[int, str, str, Converter | None]] = [
            (i, h, f.name, None if f.type in LINK_TYPES
             else column_converter(f, self.rules, self.zone)) for i, h, f in self.mapped]
        self._links = [(h, f.name) for _i, h, f in self.mapped if f.type in LINK_TYPES]

    def batch(self, conn: Connection, rows: Sequence[Sequence[str]]
              ) -> list[tuple[dict[str, Any], dict[str, str]]]:
        out: list[tuple[dict[str, Any], dict[str, str]]] = []
        width = len(self.headers)
        columns = self._columns
        for row in rows:
            values: dict[str, Any] = {}
            problems: dict[str, str] = {}
            count = len(row)
            if count < width:  # the cells a short row leaves out are blank
                row = [*row, *[""] * (width - count)]
            elif count > width and any(c.strip() for c in row[width:]):
                problems[""] = msg("the row has %(count)s cells, more than the %(columns)s "
                                   "columns of the header", count=count, columns=width)
            for i, header, name, convert in columns:
                text = row[i]
                if not text or text.isspace():
                    values[name] = None
                elif convert is None:
                    values[name] = text.strip()  # a link: resolved below, set-wise
                else:
                    try:
                        values[name] = convert(text)
                    except ValueProblem as e:
                        problems[header] = _problem(header, text, e.message)
            out.append((values, problems))
        for header, name in self._links:
            texts = {v for values, _ in out if (v := values.get(name)) is not None}
            if texts:
                self._resolve(conn, out, header, name, texts)
        return out

    def _resolve(self, conn: Connection, out: list[tuple[dict[str, Any], dict[str, str]]],
                 header: str, name: str, texts: set[str]) -> None:
        found = resolve_references(conn, self.records, self.actor, self.entity.name, name,
                                   sorted(texts))
        for values, problems in out:
            text = values.get(name)
            if text is None:
                continue
            result = found.get(text)
            if isinstance(result, int) and not isinstance(result, bool):
                values[name] = result
            else:
                problems[header] = _problem(
                    header, text, result if isinstance(result, str) else msg("no such record"))
                values[name] = None


def _problem(header: str, text: str, why: str) -> str:
    return msg("%(column)s %(value)s: %(problem)s", column=header, value=_shown_value(text),
               problem=why)


def resolve_references(conn: Connection, records: Records, actor: Actor, entity: str,
                       field_name: str, texts: Sequence[str]) -> dict[str, int | str]:
    """Each text's record id (or a problem message): by id, external id or unique title
    (engine/runtime/imports/keys.py)."""
    return keys.resolve_references(conn, records, actor, entity, field_name, list(texts))
