"""Duplicate rules: when two records are the same customer, and finding the candidates.

An entity's `duplicates:` rules (engine/metadata/duplicates.py) each name fields that must
all match. Values are compared normalised (`normalise`, docs/configuration.md):

- text (a company's or a person's name, a city): Unicode NFKC (full-width letters and
  digits become half-width), case-folded, company suffixes taken off the end
  (`LATIN_SUFFIXES`, `CHINESE_SUFFIXES`, "(中国)" anywhere), then every space, punctuation
  mark and symbol removed: "上海电气集团股份有限公司", "上海电气(集团)" (in full-width
  brackets too) and "上海 电气" are one name;
- email: trimmed and lower-cased;
- phone: its digits (full-width too); leading zeros (a trunk 0, an international 00) dropped,
  and China's country code 86 after a "+" or "00": "+86 21 6234 5678", "0086-21-62345678"
  and "021-62345678" are one number;
- anything else: its typed value (a reference by id, a choice by option, a date).

A rule whose fields are not all filled does not match anything.

Finding duplicates by a normalised name cannot be an SQL expression on the entity's table
(suffixes are stripped in Python), so each record keeps one *match key* per rule in
`crm_match_key` (entity, record_id, rule, key: a digest of the normalised values), indexed
by (entity, rule, key). A before-commit hook (`install_duplicates`, registered in
engine/runtime/assembly.py) keeps them in the write's transaction: a create adds its keys,
an update of a rule's field replaces them, a purge removes them; a record in the recycle bin
keeps its keys but is never a candidate. `crm migrate` (re)computes the keys of every
record of an entity whose rules — or this module's `REVISION` of the normalisation — changed
since (`refresh_match_keys`).

Candidates are live records the asker may read (the one secure query,
engine/runtime/records/secure.py), by rules whose fields they may all see: a record they may
not read is never named, nor counted.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, String, delete, func, insert, literal, select

from engine.metadata.model import DuplicateRule, Entity, Field
from engine.runtime.access import Actor
from engine.runtime.records import secure
from engine.runtime.schema.tables import MATCH_KEY_TABLE, MATCH_STATE_TABLE
from engine.runtime.values import ValueProblem, is_blank, to_json
from engine.types import TEXT_TYPES, FieldType

if TYPE_CHECKING:
    from engine.runtime.records import Records
    from engine.runtime.records.unit import RecordChange, UnitOfWork

REVISION = 1
"""How values are normalised: a new revision recomputes every match key at `crm migrate`."""

LATIN_SUFFIXES = (
    "co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited",
    "llc", "llp", "lp", "plc", "gmbh", "ag", "kg", "sa", "sas", "sarl", "srl", "spa",
    "bv", "nv", "oy", "ab", "pte", "pty", "kk", "group",
)
"""Company-form words taken off the end of a name (case-folded, with or without a dot, after
a space, comma or other separator): "Acme Co., Ltd.", "ACME Inc" and "acme" match."""

CHINESE_SUFFIXES = (
    "股份有限公司", "有限责任公司", "有限責任公司", "有限公司", "股份公司", "集团公司",
    "集團公司", "公司", "集团", "集團",
)
"""Company forms taken off the end of a Chinese name, longest first and repeatedly:
"华为技术有限公司" is "华为技术"."""

_COUNTRY_MARKS = re.compile(r"[(\[]\s*(?:中国|中國|china|prc)\s*[)\]]")
_LATIN_TAIL = re.compile(
    r"(?:^|(?<=[\s,.;:&/+\-()\[\]]))(?:" + "|".join(LATIN_SUFFIXES) + r")\.?[\s,.;:]*$")
_TRAILING_MARKS = re.compile(r"[\s,.;:&/+\-()\[\]]+$")
_DIGITS = re.compile(r"[0-9]")
_KEEP_CATEGORIES = ("L", "M", "N")  # letters, marks and digits: the rest is spacing or marks
_DEFAULT_LIMIT = 10


@dataclass(frozen=True)
class Candidate:
    """A record that may be the same as the one being written: `id` and `title` as the
    asker may read them, and `rule` the fields that matched. Within a batch
    (`find_duplicates_many`), an earlier row of the same batch has `id` None and its
    index in `row`."""

    id: int | None
    title: str
    rule: tuple[str, ...]
    row: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "title": self.title, "matched": list(self.rule)}
        if self.row is not None:
            out["row"] = self.row
        return out


# -- normalisation ---------------------------------------------------------------------------


def normalise_name(text: str) -> str:
    """A name (or any text) as duplicate rules compare it; see the module's text. Taking
    marks out can leave letters NFKC composes anew ("A" and an acute accent U+00B4 become
    "a" and a combining accent), so the steps repeat until the name no longer changes
    (idempotent: a normalised name normalises to itself)."""
    for _ in range(_ROUNDS):
        again = _normalise_once(text)
        if again == text:
            break
        text = again
    return text


_ROUNDS = 8


def _normalise_once(text: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    folded = _COUNTRY_MARKS.sub(" ", folded).strip()
    folded = _strip_tail(folded, _latin_tail)
    squeezed = "".join(ch for ch in folded if unicodedata.category(ch)[0] in _KEEP_CATEGORIES)
    return unicodedata.normalize("NFKC", _strip_tail(squeezed, _chinese_tail))


def _strip_tail(text: str, step: Callable[[str], str]) -> str:
    """`step` applied until it changes nothing, but never down to nothing: a name that is
    only a suffix ("Limited", "有限公司") stays a name."""
    while True:
        shorter = step(text)
        if shorter == text or not shorter:
            return text
        text = shorter


def _latin_tail(text: str) -> str:
    return _TRAILING_MARKS.sub("", _LATIN_TAIL.sub("", text))


def _chinese_tail(text: str) -> str:
    for suffix in CHINESE_SUFFIXES:
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def normalise_email(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower()


def normalise_phone(text: str) -> str:
    """The digits of a phone number without a trunk 0, an international 00, and China's
    86 when it follows a "+" or "00"."""
    plain = unicodedata.normalize("NFKC", text).strip()
    digits = "".join(_DIGITS.findall(plain))
    international = plain.startswith("+") or digits.startswith("00")
    digits = digits.lstrip("0")
    if international and digits.startswith("86") and len(digits) > 2:
        digits = digits[2:].lstrip("0")
    return digits


def normalise(field: Field, value: Any) -> str | None:
    """`value` of `field` as duplicate rules compare it; None when blank (a rule with a
    blank field matches nothing)."""
    if is_blank(value):
        return None
    if field.type is FieldType.EMAIL and isinstance(value, str):
        out = normalise_email(value)
    elif field.type is FieldType.PHONE and isinstance(value, str):
        out = normalise_phone(value)
    elif field.type in TEXT_TYPES and isinstance(value, str):
        out = normalise_name(value)
    else:
        out = str(to_json(value))
    return out or None


def rule_key(entity: Entity, rule: DuplicateRule, values: Mapping[str, Any]) -> str | None:
    """The match key of `values` (typed values of `entity`'s fields) under `rule`: a digest
    of its fields' normalised values; None when one of them is blank."""
    parts: list[str] = []
    for name in rule.match:
        part = normalise(entity.field(name), values.get(name))
        if part is None:
            return None
        parts.append(part)
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16)
    return digest.hexdigest()


def record_keys(entity: Entity, values: Mapping[str, Any]) -> list[tuple[DuplicateRule, str]]:
    """Each rule of `entity` that `values` fill, with its key."""
    out = []
    for rule in entity.duplicates:
        key = rule_key(entity, rule, values)
        if key is not None:
            out.append((rule, key))
    return out


# -- finding candidates ----------------------------------------------------------------------


def find_duplicates(conn: Connection, records: Records, actor: Actor, entity: str,
                    values: Mapping[str, Any], *, exclude_id: int | None = None,
                    limit: int = _DEFAULT_LIMIT) -> list[Candidate]:
    """The live records of `entity` that `actor` may read and that match `values` (field
    values as given to a create: raw or typed) by any rule, at most `limit`, by id;
    `exclude_id`: the record itself."""
    found = find_duplicates_many(conn, records, actor, entity, [values], limit=limit,
                                 exclude_ids=() if exclude_id is None else (exclude_id,))
    return found.get(0, [])


def find_duplicates_many(conn: Connection, records: Records, actor: Actor, entity: str,
                         rows: Sequence[Mapping[str, Any]], *, limit: int = _DEFAULT_LIMIT,
                         within: bool = True, exclude_ids: Iterable[int] = ()
                         ) -> dict[int, list[Candidate]]:
    """For a batch of rows (an import's 2,000, say): each row's candidates by its index in
    `rows` (rows without any are left out) — live records `actor` may read, and, with
    `within`, earlier rows of the batch itself (`Candidate.id` None, `row` set). One query
    per rule and 500 distinct keys, whatever the batch's size."""
    model_entity = records.compiled(entity).entity
    rules = usable_rules(records, actor, model_entity)
    if not rules or not rows:
        return {}
    typed = [typed_values(records, model_entity, row, rules) for row in rows]
    keys_of: list[list[tuple[DuplicateRule, str]]] = [
        [(rule, key) for rule in rules
         if (key := rule_key(model_entity, rule, values)) is not None] for values in typed]
    out: dict[int, list[Candidate]] = defaultdict(list)
    wanted: dict[str, set[str]] = defaultdict(set)
    for row_keys in keys_of:
        for rule, key in row_keys:
            wanted[rule.name].add(key)
    stored = _stored_matches(conn, records, actor, model_entity, rules, wanted,
                             frozenset(exclude_ids))
    title_of = _row_title(model_entity, records, actor)
    first_row: dict[tuple[str, str], int] = {}
    for i, row_keys in enumerate(keys_of):
        seen: set[int | tuple[str, int]] = set()
        found: list[Candidate] = []
        for rule, key in row_keys:
            for record_id, title in stored.get((rule.name, key), ()):
                if record_id not in seen:
                    seen.add(record_id)
                    found.append(Candidate(record_id, title or f"#{record_id}", rule.match))
            earlier = first_row.get((rule.name, key))
            if within and earlier is not None and ("row", earlier) not in seen:
                seen.add(("row", earlier))
                found.append(Candidate(None, title_of(typed[earlier], earlier), rule.match,
                                       row=earlier))
            first_row.setdefault((rule.name, key), i)
        if found:
            out[i] = found[:limit]
    return dict(out)


def usable_rules(records: Records, actor: Actor, entity: Entity) -> tuple[DuplicateRule, ...]:
    """The rules of `entity` whose fields `actor` may all see: a rule on a field hidden
    from them would tell what it holds."""
    if not entity.duplicates:
        return ()
    hidden = records.policy.hidden_fields(actor, entity)
    return tuple(r for r in entity.duplicates if not hidden.intersection(r.match))


def typed_values(records: Records, entity: Entity, row: Mapping[str, Any],
                 rules: Sequence[DuplicateRule]) -> dict[str, Any]:
    """The rules' fields of `row` as stored values; a value that would be refused is blank
    (the write reports it)."""
    coercers = records.compiled(entity.name).coercers
    out: dict[str, Any] = {}
    for name in {n for r in rules for n in r.match}:
        try:
            out[name] = coercers[name](row.get(name))
        except (ValueProblem, TypeError, ValueError, ArithmeticError):
            out[name] = None
    return out


_CHUNK = 500


def _stored_matches(conn: Connection, records: Records, actor: Actor, entity: Entity,
                    rules: Sequence[DuplicateRule], wanted: Mapping[str, set[str]],
                    exclude: frozenset[int]) -> dict[tuple[str, str], list[tuple[int, str]]]:
    """(rule name, key) → [(id, title)] of the live records `actor` may read."""
    keys = records.schema.table(MATCH_KEY_TABLE)
    seen = secure.rows(records, actor, entity.name)
    table = seen.table
    title = _title_column(records, actor, entity, table)
    out: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for rule in rules:
        todo = sorted(wanted.get(rule.name, ()))
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start:start + _CHUNK]
            stmt = seen.select(table.c.id, title, keys.c.key).select_from(
                keys.join(table, table.c.id == keys.c.record_id)).where(
                keys.c.entity == entity.name, keys.c.rule == rule.name,
                keys.c.key.in_(chunk)).order_by(table.c.id)
            if exclude:
                stmt = stmt.where(table.c.id.not_in(sorted(exclude)))
            for record_id, name, key in conn.execute(stmt):
                out[(rule.name, key)].append((int(record_id), str(name or "")))
    return out


def _title_column(records: Records, actor: Actor, entity: Entity,
                  table: Any) -> ColumnElement[Any]:
    """The record's title as `actor` reads it: '' when hidden from them or not a stored
    text (the answer then names it `#id`)."""
    if not entity.has_field(entity.title):
        return literal("", String)
    f = entity.field(entity.title)
    if f.computed or f.type not in TEXT_TYPES \
            or f.name in records.policy.hidden_fields(actor, entity):
        return literal("", String)
    return func.coalesce(table.c[f.name], "")


def _row_title(entity: Entity, records: Records, actor: Actor
               ) -> Callable[[Mapping[str, Any], int], str]:
    """A batch row's title, as its title field gives it (its row number otherwise)."""
    shown = entity.has_field(entity.title) and entity.title not in \
        records.policy.hidden_fields(actor, entity)

    def title(values: Mapping[str, Any], row: int) -> str:
        value = values.get(entity.title) if shown else None
        return str(value) if value is not None else f"row {row + 1}"

    return title


# -- keeping the keys --------------------------------------------------------------------------


def install_duplicates(records: Records) -> None:
    """Register the hook that keeps the match keys of the entities with duplicate rules."""
    if not any(e.duplicates for e in records.model.entities):
        return
    keys = records.schema.table(MATCH_KEY_TABLE)

    def keep(unit: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        _keep_keys(records, unit.conn, keys, changes)

    records.hooks.on_before_commit("duplicates", keep)


def _keep_keys(records: Records, conn: Connection, keys: Any,
               changes: Sequence[RecordChange]) -> None:
    created: dict[str, dict[int, Mapping[str, Any]]] = defaultdict(dict)
    refetch: dict[str, set[int]] = defaultdict(set)
    purged: dict[str, set[int]] = defaultdict(set)
    for change in changes:
        if not records.model.has_entity(change.entity):
            continue
        entity = records.model.entity(change.entity)
        if not entity.duplicates:
            continue
        if change.action == "create" and change.after is not None:
            created[entity.name][change.record_id] = change.after
        elif change.action == "purge":
            purged[entity.name].add(change.record_id)
        elif change.action not in ("delete", "restore", "rollup", "assign", "team") \
                and _rule_fields(entity) & change.changed:
            refetch[entity.name].add(change.record_id)
    for name, ids in purged.items():
        _delete_keys(conn, keys, name, ids)
    for name, ids in refetch.items():
        ids -= purged[name]
        _delete_keys(conn, keys, name, ids)
        entity = records.model.entity(name)
        _insert_keys(conn, keys, entity, _read_values(conn, records, entity, ids).items())
    for name, made in created.items():
        entity = records.model.entity(name)
        later = purged[name] | refetch[name]  # read again above, or gone
        _insert_keys(conn, keys, entity,
                     [(rid, values) for rid, values in made.items() if rid not in later])


def _rule_fields(entity: Entity) -> frozenset[str]:
    return frozenset(n for r in entity.duplicates for n in r.match)


def _delete_keys(conn: Connection, keys: Any, entity: str, ids: Iterable[int]) -> None:
    todo = sorted(ids)
    for start in range(0, len(todo), _CHUNK):
        conn.execute(delete(keys).where(keys.c.entity == entity,
                                        keys.c.record_id.in_(todo[start:start + _CHUNK])))


def _insert_keys(conn: Connection, keys: Any, entity: Entity,
                 rows: Iterable[tuple[int, Mapping[str, Any]]]) -> int:
    batch = [{"entity": entity.name, "record_id": rid, "rule": rule.name, "key": key}
             for rid, values in rows for rule, key in record_keys(entity, values)]
    if batch:
        conn.execute(insert(keys), batch)
    return len(batch)


def _read_values(conn: Connection, records: Records, entity: Entity,
                 ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    table = records.compiled(entity.name).table
    columns = [table.c[n] for n in sorted(_rule_fields(entity))]
    todo = sorted(ids)
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(todo), _CHUNK):
        stmt = select(table.c.id, *columns).where(table.c.id.in_(todo[start:start + _CHUNK]))
        for row in conn.execute(stmt).mappings():
            out[int(row["id"])] = dict(row)
    return out


# -- computing every record's keys (crm migrate) ---------------------------------------------

BATCH = 5_000


def signature(entity: Entity) -> str:
    """What an entity's stored keys were computed from: its rules and `REVISION`."""
    return f"m{REVISION} " + "; ".join(r.name for r in entity.duplicates)


def stale_match_keys(records: Records) -> list[Entity]:
    """The entities whose keys were never computed, or computed for other rules (an entity
    whose rules were all removed has keys to drop)."""
    state = records.schema.table(MATCH_STATE_TABLE)
    with records.engine.connect() as conn:
        known = {r.entity: r.signature for r in conn.execute(select(state))}
    return [e for e in records.model.entities
            if (e.duplicates and known.get(e.name) != signature(e))
            or (not e.duplicates and e.name in known)]


def refresh_match_keys(records: Records, batch: int = BATCH) -> list[tuple[str, int]]:
    """Compute the match keys of every record of each stale entity, in batches of `batch`
    records, then record its signature; an interrupted run is redone whole by the next.
    Returns each entity's name with how many keys it now has."""
    keys = records.schema.table(MATCH_KEY_TABLE)
    state = records.schema.table(MATCH_STATE_TABLE)
    done: list[tuple[str, int]] = []
    for entity in stale_match_keys(records):
        with records.writer.begin() as conn:
            conn.execute(delete(keys).where(keys.c.entity == entity.name))
        count = 0
        table = records.compiled(entity.name).table
        columns = [table.c[n] for n in sorted(_rule_fields(entity))]
        last = 0
        while entity.duplicates:
            with records.writer.begin() as conn:
                rows = conn.execute(select(table.c.id, *columns).where(table.c.id > last)
                                    .order_by(table.c.id).limit(batch)).mappings().all()
                if not rows:
                    break
                last = int(rows[-1]["id"])
                count += _insert_keys(conn, keys, entity,
                                      [(int(r["id"]), dict(r)) for r in rows])
        with records.writer.begin() as conn:
            conn.execute(delete(state).where(state.c.entity == entity.name))
            if entity.duplicates:
                conn.execute(insert(state).values(entity=entity.name,
                                                  signature=signature(entity),
                                                  computed_at=datetime.now(UTC)))
        done.append((entity.name, count))
    return done

