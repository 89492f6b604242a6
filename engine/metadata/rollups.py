"""Rollup summary fields: `{type: rollup, of: child.field, via: ref, agg: sum, where: ...}`.

Checked in three steps, each reporting `file:line:col` at the key at fault:
the keys of one field when its file is read (`rollup_field`); the child entity, its
reference back, the aggregated field and the result type once every entity is built
(`resolve_rollups`, before formulas are compiled, since formulas read the result type);
the `where` condition and what the value depends on once formulas are compiled
(`check_rollups`): only the child's own fields, in SQL, never the time, and no cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from engine.formula import CompiledFormula, FormulaError, FType, TCall, compile_formula
from engine.formula.ast import typed_nodes
from engine.metadata.errors import ConfigError, SourceLoc, did_you_mean
from engine.metadata.formula_checks import scope_of
from engine.metadata.labels import Label
from engine.metadata.model import Entity, Field, Rollup
from engine.metadata.yamlio import YamlDoc
from engine.types import NUMERIC_TYPES, FieldType

ROLLUP = "rollup"
ROLLUP_KEYS = frozenset({"type", "label", "help", "index", "renamed_from", "of", "via", "agg",
                         "where"})
# Keys of other fields that a value the engine computes cannot have.
_COMPUTED_BY_ENGINE = frozenset({"required", "unique", "default", "formula", "min", "max"})
_OF = re.compile(r"^([a-z][a-z0-9_]*)(?:\.([a-z][a-z0-9_]*))?$")
# What min and max may aggregate besides numbers.
_ORDERED = NUMERIC_TYPES | {FieldType.DATE, FieldType.DATETIME}
# avg of a whole number or percent gives a decimal; of money, money.
_AVG_TYPE = {FieldType.INTEGER: FieldType.DECIMAL, FieldType.DECIMAL: FieldType.DECIMAL,
             FieldType.PERCENT: FieldType.DECIMAL, FieldType.MONEY: FieldType.MONEY}
# Functions whose value changes while the child records do not: a stored rollup reading
# them would drift, since it is recomputed only when a child record changes.
_CHANGING = frozenset({"TODAY", "NOW", "HOURS_SINCE", "ISNEW", "ISCHANGED", "PRIORVALUE"})


def rollup_field(doc: YamlDoc, name: str, spec: dict[str, Any],
                 errors: list[ConfigError]) -> Field | None:
    """The keys of one schema-valid rollup field; its Field when they are right.

    The result type is not known before the child entity is: the Field has type INTEGER
    until `resolve_rollups` sets it.
    """
    before = len(errors)
    base = ["fields", name]

    def error(path: list[str | int], message: str, *, key: bool = False) -> None:
        errors.append(doc.error([*base, *path], f"fields.{name}{message}", key=key))

    for key in spec:
        if key in _COMPUTED_BY_ENGINE:
            error([key], f".{key} does not fit a rollup field (the engine computes its value)",
                  key=True)
        elif key not in ROLLUP_KEYS:
            error([key], f".{key} does not fit a rollup field", key=True)
    for key in ("of", "via", "agg"):
        if key not in spec:
            error([], f": a rollup field needs {key!r}")
    of = spec.get("of")
    match = _OF.match(of) if isinstance(of, str) else None
    if of is not None and match is None:
        error(["of"], f".of: {of!r} is not 'child' or 'child.field' (an entity, or an "
                      "entity and one of its fields)")
    agg = spec.get("agg")
    if match is not None and match.group(2) is None and agg in ("sum", "min", "max", "avg"):
        error(["of"], f".of: {agg} needs a field to aggregate: "
                      f"'{match.group(1)}.field', not {of!r}")
    if len(errors) > before or match is None:
        return None
    return Field(
        name=name,
        type=FieldType.INTEGER,
        label=Label.of(spec.get("label"), name.replace("_", " ").capitalize()),
        loc=doc.loc(base, key=True),
        index=bool(spec.get("index", False)),
        help=Label.of(spec["help"], "") if "help" in spec else None,
        renamed_from=spec.get("renamed_from"),
        rollup=Rollup(child=match.group(1), via=spec["via"], of=match.group(2), agg=spec["agg"],
                      loc=doc.loc(base, key=True), where=spec.get("where")),
        option_locs=tuple((key, doc.loc([*base, key])) for key in spec),
    )


def resolve_rollups(entities: list[Entity], errors: list[ConfigError]) -> list[Entity]:
    """The entities with each rollup's result type set; a rollup whose child, reference
    or field is wrong is reported (and its entity keeps the placeholder type)."""
    by_name = {e.name: e for e in entities}
    types: dict[tuple[str, str], FieldType | None] = {}
    visiting: list[tuple[str, str]] = []

    def result(parent: Entity, f: Field) -> FieldType | None:
        key = (parent.name, f.name)
        if key in types:
            return types[key]
        if key in visiting:
            chain = [*visiting[visiting.index(key):], key]
            errors.append(ConfigError(f.loc, f"fields.{f.name}: rollup cycle: "
                                             + " -> ".join(".".join(k) for k in chain)))
            types[key] = None
            return None
        visiting.append(key)
        try:
            types[key] = _result_type(parent, f, by_name, result, errors)
        finally:
            visiting.pop()
        return types[key]

    for e in entities:
        for f in e.rollups:
            result(e, f)
    out = []
    for e in entities:
        fields = tuple(replace(f, type=types[(e.name, f.name)] or f.type)
                       if f.rollup is not None else f for f in e.fields)
        out.append(replace(e, fields=fields) if e.rollups else e)
    return out


def _result_type(parent: Entity, f: Field, by_name: dict[str, Entity],
                 result: Callable[[Entity, Field], FieldType | None],
                 errors: list[ConfigError]) -> FieldType | None:
    r = f.rollup
    assert r is not None

    def error(key: str, message: str) -> None:
        errors.append(ConfigError(f.loc_of(key), f"fields.{f.name}.{key}: {message}"))

    child = by_name.get(r.child)
    if child is None:
        error("of", f"unknown entity {r.child!r}{did_you_mean(r.child, by_name)}")
        return None
    ok = True
    if not child.has_field(r.via):
        refs = [g.name for g in child.fields if g.type is FieldType.REFERENCE]
        error("via", f"{child.name} has no field {r.via!r}{did_you_mean(r.via, refs)}")
        ok = False
    else:
        via = child.field(r.via)
        if via.type is not FieldType.REFERENCE:
            error("via", f"{child.name}.{r.via} is {_a(via.type)} field, not a reference "
                         f"to {parent.name}")
            ok = False
        elif via.to != parent.name:
            error("via", f"{child.name}.{r.via} is a reference to {via.to}, not to "
                         f"{parent.name}")
            ok = False
    if r.of is None:
        return FieldType.INTEGER if ok else None
    if not child.has_field(r.of):
        error("of", f"{child.name} has no field {r.of!r}{did_you_mean(r.of, child.field_names)}")
        return None
    of = child.field(r.of)
    of_type = result(child, of) if of.rollup is not None else of.type
    if of_type is None or not ok:
        return None
    if r.agg == "count":
        return FieldType.INTEGER
    if r.agg in ("sum", "avg") and of_type not in NUMERIC_TYPES:
        error("of", f"{r.agg} needs a number field (integer, decimal, money or percent); "
                    f"{child.name}.{r.of} is {_a(of_type)} field")
        return None
    if of_type not in _ORDERED:
        error("of", f"{r.agg} needs a number, date or datetime field; "
                    f"{child.name}.{r.of} is {_a(of_type)} field")
        return None
    return _AVG_TYPE[of_type] if r.agg == "avg" else of_type


def _a(ftype: FieldType) -> str:
    return f"{'an' if ftype.value[0] in 'aeiou' else 'a'} {ftype}"


@dataclass
class _Reads:
    """What a rollup's value depends on in its child: formula fields, child rollups."""

    formulas: dict[str, str]
    rollups: set[str]


def check_rollups(entities: list[Entity], errors: list[ConfigError]) -> list[Entity]:
    """Compile each rollup's `where` on its child and check what the value depends on:
    the child's own fields only, in SQL, not the time; no cycle between rollups. The
    entities come back with `where_compiled` and the signature's `reads` filled in."""
    by_name = {e.name: e for e in entities}
    reads: dict[tuple[str, str], _Reads] = {}
    compiled_where: dict[tuple[str, str], CompiledFormula | None] = {}
    for e in entities:
        for f in e.rollups:
            r = f.rollup
            assert r is not None
            child = by_name[r.child]
            found = _Reads({}, set())
            where = None
            if r.where is not None:
                where = _compile_where(f, r.where, entities, child, found, errors)
            if r.of is not None:
                of = child.field(r.of)
                if of.rollup is not None:
                    found.rollups.add(of.name)
                elif of.computed:
                    problem = _formula_problem(child, [of.name], found)
                    if problem:
                        errors.append(ConfigError(f.loc_of("of"), f"fields.{f.name}.of: "
                                                                  f"{problem}"))
            reads[(e.name, f.name)] = found
            compiled_where[(e.name, f.name)] = where
    if not _cycle(entities, by_name, reads, errors):
        return entities
    signatures: dict[tuple[str, str], str] = {}

    def built(parent: Entity, f: Field) -> Rollup:
        r = f.rollup
        assert r is not None
        found = reads[(parent.name, f.name)]
        child = by_name[r.child]
        nested = {f"{name} (rollup)": signature(child, child.field(name))
                  for name in found.rollups}
        if r.of is not None:  # a conversion of the child's column changes its values
            nested[f"{r.of} (type)"] = child.field(r.of).type.value
        return replace(r, where_compiled=compiled_where[(parent.name, f.name)],
                       reads=tuple(sorted({**found.formulas, **nested}.items())))

    def signature(parent: Entity, f: Field) -> str:
        key = (parent.name, f.name)
        if key not in signatures:
            signatures[key] = built(parent, f).signature
        return signatures[key]

    return [replace(e, fields=tuple(replace(f, rollup=built(e, f)) if f.rollup is not None
                                    else f for f in e.fields)) if e.rollups else e
            for e in entities]


def _compile_where(f: Field, source: str, entities: list[Entity], child: Entity,
                   found: _Reads, errors: list[ConfigError]) -> CompiledFormula | None:
    loc = f.loc_of("where")

    def error(line: int, col: int, message: str) -> None:
        errors.append(ConfigError(loc, f"fields.{f.name}.where: formula {line}:{col}: "
                                       f"{message}"))

    try:
        compiled = compile_formula(source, scope_of(entities, child.name), FType.BOOLEAN)
    except FormulaError as exc:
        error(exc.line, exc.col, exc.message)
        return None
    before = len(errors)
    if compiled.sql_problem is not None:
        problem = compiled.sql_problem
        error(problem.line, problem.col, problem.message)
    elif compiled.functions & _CHANGING:
        call = min((n.line, n.col, n.name) for n in typed_nodes(compiled.tree)
                   if isinstance(n, TCall) and n.name in _CHANGING)
        error(call[0], call[1], _changing_message(sorted(compiled.functions & _CHANGING)))
    for path, line, col in compiled.reference_sites():
        if len(path) > 1:
            error(line, col, f"{'.'.join(path)} is read through a reference; a rollup's "
                             f"where reads only {child.name}'s own fields (it is recomputed "
                             f"when {_a_record(child)} changes)")
        elif child.has_field(path[0]):
            g = child.field(path[0])
            if g.rollup is not None:
                found.rollups.add(g.name)
            elif g.computed:
                inner = _formula_problem(child, [g.name], found)
                if inner:
                    error(line, col, inner)
    return compiled if len(errors) == before else None


def _formula_problem(child: Entity, chain: list[str], found: _Reads) -> str | None:
    """Why the formula field at the end of `chain` (read by a rollup) cannot be rolled up:
    it, or a formula field it reads, goes through a reference, cannot run in SQL or
    reads the time. Collects what it reads into `found`."""
    f = child.field(chain[-1])
    compiled = f.compiled
    if compiled is None or f.formula is None:
        return None  # its own error is reported where it is written
    found.formulas[f.name] = f.formula
    shown = f"{child.name}.{' -> '.join(chain)}"
    if compiled.sql_problem is not None:
        return f"{shown} cannot run in SQL ({compiled.sql_problem.message}); a rollup " \
               f"is computed in SQL"
    changing = sorted(compiled.functions & _CHANGING)
    if changing:
        return f"{shown}: {_changing_message(changing)}"
    for path, _, _ in compiled.reference_sites():
        if len(path) > 1:
            return f"{shown} reads {'.'.join(path)} through a reference; a rollup reads " \
                   f"only {child.name}'s own fields (it is recomputed when " \
                   f"{_a_record(child)} changes)"
        if child.has_field(path[0]):
            g = child.field(path[0])
            if g.rollup is not None:
                found.rollups.add(g.name)
            elif g.computed and g.name not in chain:
                problem = _formula_problem(child, [*chain, g.name], found)
                if problem:
                    return problem
    return None


def _changing_message(functions: list[str]) -> str:
    calls = ", ".join(f"{name}()" for name in functions)
    return f"calls {calls}, whose value changes while the records do not; a rollup is " \
           f"stored and recomputed only when a child record changes"


def _a_record(e: Entity) -> str:
    return f"{'an' if e.name[0] in 'aeiou' else 'a'} {e.name}"


def _cycle(entities: list[Entity], by_name: dict[str, Entity],
           reads: dict[tuple[str, str], _Reads], errors: list[ConfigError]) -> bool:
    """False, with an error naming the chain, when rollups depend on themselves."""
    state: dict[tuple[str, str], int] = {}  # 1 visiting, 2 done
    stack: list[tuple[str, str]] = []
    locs: dict[tuple[str, str], SourceLoc] = {
        (e.name, f.name): f.loc for e in entities for f in e.rollups}

    def visit(key: tuple[str, str]) -> bool:
        if state.get(key) == 2:
            return True
        if state.get(key) == 1:
            chain = [*stack[stack.index(key):], key]
            errors.append(ConfigError(locs[key], f"fields.{key[1]}: rollup cycle: "
                                                 + " -> ".join(".".join(k) for k in chain)))
            return False
        state[key] = 1
        stack.append(key)
        rollup = by_name[key[0]].field(key[1]).rollup
        assert rollup is not None
        ok = all(visit((rollup.child, name)) for name in sorted(reads[key].rollups))
        stack.pop()
        state[key] = 2
        return ok

    return all([visit(key) for key in sorted(reads)])
