"""Check every formula of a model against its entity: computed fields, formula defaults
and validation rules. A problem is reported at the formula's place in its file, followed
by the position inside the formula: `config/entities/x.yaml:12:14: formula 1:5: ...`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import column

from engine.formula import (
    CompiledFormula,
    EntityScope,
    FieldSpec,
    FixedClock,
    FormulaCycleError,
    FormulaError,
    FType,
    Path,
    check_cycles,
    compile_formula,
    ftype_of,
    measure_sql,
    scale_of,
)
from engine.metadata.errors import ConfigError, SourceLoc
from engine.metadata.model import Cascade, Entity, Field
from engine.types import FieldType

# Engine columns a formula can read, besides the entity's fields.
ENGINE_FIELDS: dict[str, FType] = {"created_at": FType.DATETIME, "updated_at": FType.DATETIME}
# Engine links a formula reads by a short name: `owner` (a user) and `department`.
ENGINE_LINKS: dict[str, str] = {"owner": "owner_id", "department": "department_id"}


def engine_link(entities: Sequence[Entity], name: str) -> tuple[str, str | None] | None:
    """(column, target entity) of the engine link `name` (`owner`, `department`), or None.

    `department` follows to the department entity when the configuration has one.
    """
    if name not in ENGINE_LINKS:
        return None
    has_department = any(e.name == "department" for e in entities)
    return ENGINE_LINKS[name], "department" if name == "department" and has_department \
        else None


def scope_of(entities: Sequence[Entity], root: str) -> EntityScope:
    """The formula scope of `root`: its fields, and through references those of others."""
    specs: dict[str, dict[str, FieldSpec]] = {}
    for e in entities:
        fields = {name: FieldSpec(t) for name, t in ENGINE_FIELDS.items()}
        for alias in ENGINE_LINKS:
            link = engine_link(entities, alias)
            if link is not None:
                fields[alias] = FieldSpec(FType.REFERENCE, target=link[1])
        for f in e.fields:
            target = f.target if f.type is not FieldType.USER else None
            scale = None if f.computed else scale_of(f.type)
            fields[f.name] = FieldSpec(ftype_of(f.type), scale, target)
        specs[e.name] = fields
    return EntityScope(specs, root)


def compile_formulas(entities: list[Entity], errors: list[ConfigError]) -> list[Entity]:
    """The entities with their formulas compiled; problems are appended to `errors`."""
    out: list[Entity] = []
    computed: dict[str, CompiledFormula] = {}
    where: dict[str, SourceLoc] = {}
    for e in entities:
        scope = scope_of(entities, e.name)
        fields: list[Field] = []
        for f in e.fields:
            if f.formula is not None:
                loc = f.loc_of("formula")
                compiled = _compile(f.formula, scope, ftype_of(f.type), loc, 0, errors)
                if compiled is not None:
                    computed[f"{e.name}.{f.name}"] = compiled
                    where[f"{e.name}.{f.name}"] = loc
                f = replace(f, compiled=compiled)
            elif isinstance(f.default, str) and f.default.startswith("="):
                compiled = _compile(f.default[1:], scope, ftype_of(f.type),
                                    f.loc_of("default"), 1, errors)
                f = replace(f, compiled=compiled)
            fields.append(f)
        validations = tuple(
            replace(v, compiled=_compile(v.rule, scope, FType.BOOLEAN, v.loc, 0, errors))
            for v in e.validations)
        cascades = tuple(_cascade(c, entities, errors) for c in e.cascade_assign)
        out.append(replace(e, fields=tuple(fields), validations=validations,
                           cascade_assign=cascades))
    by_name = {e.name: e for e in out}

    def resolve(key: str, path: Path) -> str | None:
        entity = by_name.get(key.split(".")[0])
        for name in path[:-1]:
            if entity is None or not entity.has_field(name):
                link = engine_link(out, name) if entity is not None else None
                if link is None or link[1] is None:
                    return None
                entity = by_name.get(link[1])
                continue
            target = entity.field(name).target
            entity = by_name.get(target) if target else None
        return f"{entity.name}.{path[-1]}" if entity is not None else None

    try:
        check_cycles(computed, resolve)
    except FormulaCycleError as exc:
        cycle = " -> ".join(k.split(".", 1)[1] if k.split(".")[0] == exc.field.split(".")[0]
                            else k for k in exc.cycle)
        errors.append(ConfigError(where[exc.field],
                                  f"formula {exc.line}:{exc.col}: formula cycle: {cycle}"))
    else:
        _measure_inlined(computed, where, resolve, errors)
    return out


_ANY_TIME = FixedClock(datetime(2000, 1, 1, tzinfo=UTC))


def _measure_inlined(computed: dict[str, CompiledFormula], where: dict[str, SourceLoc],
                     resolve: Callable[[str, Path], str | None],
                     errors: list[ConfigError]) -> None:
    """A computed field that reads others runs their SQL inside its own: each is held to
    the formula bounds with what it reads inlined, as lists will run it (no cycles)."""
    def columns_for(key: str, dialect: str) -> Callable[[Path], Any]:
        def columns(path: Path) -> Any:
            target = resolve(key, path)
            if target is not None and target in computed and computed[target].sql_capable:
                return built(target, dialect)
            return column(".".join(path))
        return columns

    cache: dict[tuple[str, str], Any] = {}

    def built(key: str, dialect: str) -> Any:
        if (key, dialect) not in cache:
            cache[(key, dialect)] = computed[key].to_sql(columns_for(key, dialect), dialect,
                                                         _ANY_TIME)
        return cache[(key, dialect)]

    for key, formula in computed.items():
        if not formula.sql_capable or not any(
                resolve(key, path) in computed for path in formula.references):
            continue  # measured alone when compiled
        try:
            measure_sql(formula.tree, partial(columns_for, key))
        except FormulaError as exc:
            errors.append(ConfigError(where[key], f"formula {exc.line}:{exc.col}: "
                                                  f"{exc.message} (with the formula fields "
                                                  f"it reads)"))


def _cascade(c: Cascade, entities: list[Entity], errors: list[ConfigError]) -> Cascade:
    """A cascade's `when`, checked against its child entity: a condition SQL can run."""
    if c.when is None or not any(e.name == c.entity for e in entities):
        return c
    compiled = _compile(c.when, scope_of(entities, c.entity), FType.BOOLEAN, c.loc, 0, errors)
    if compiled is not None and compiled.sql_problem is not None:
        problem = compiled.sql_problem
        errors.append(ConfigError(c.loc, f"formula {problem.line}:{problem.col}: "
                                         f"{problem.message}"))
        compiled = None
    return replace(c, compiled=compiled)


def _compile(source: str, scope: EntityScope, expect: FType, loc: SourceLoc, shift: int,
             errors: list[ConfigError]) -> CompiledFormula | None:
    """`shift`: characters written before the formula on its first line (the "=" of a
    default), so the column inside the formula matches what the author wrote."""
    try:
        return compile_formula(source, scope, expect)
    except FormulaError as exc:
        col = exc.col + shift if exc.line == 1 else exc.col
        errors.append(ConfigError(loc, f"formula {exc.line}:{col}: {exc.message}"))
        return None
