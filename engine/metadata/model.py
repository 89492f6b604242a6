"""The Model: immutable dataclasses compiled from configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

from engine.formula import CompiledFormula
from engine.metadata.errors import SourceLoc
from engine.types import FieldType

DEFAULT_LOCALE = "en"


@dataclass(frozen=True)
class Label:
    """A string, or one string per locale.

    >>> Label((("en", "Opportunity"), ("zh", "销售机会"))).get("zh")
    '销售机会'
    """

    texts: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, value: str | dict[str, str] | None, fallback: str) -> Label:
        if value is None:
            return cls(((DEFAULT_LOCALE, fallback),))
        if isinstance(value, str):
            return cls(((DEFAULT_LOCALE, value),))
        return cls(tuple(value.items()))

    def get(self, locale: str = DEFAULT_LOCALE) -> str:
        texts = dict(self.texts)
        for candidate in (locale, locale.split("-")[0].split("_")[0], DEFAULT_LOCALE):
            if candidate in texts:
                return texts[candidate]
        return self.texts[0][1]

    def as_dict(self) -> dict[str, str]:
        return dict(self.texts)


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    label: Label
    loc: SourceLoc
    required: bool = False
    unique: bool = False
    index: bool = False
    board: bool = False
    help: Label | None = None
    default: str | int | float | bool | None = None
    max_length: int | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    options: tuple[str, ...] = ()
    to: str | None = None
    renamed_from: str | None = None
    formula: str | None = None
    """The source of a computed field's formula; the field then has no column."""
    compiled: CompiledFormula | None = field(default=None, compare=False, repr=False)
    """The checked formula of a computed field, or of a `default: "=..."`."""
    # Where each option's value was written, for errors found after loading.
    option_locs: tuple[tuple[str, SourceLoc], ...] = field(default=(), compare=False, repr=False)

    def loc_of(self, option: str) -> SourceLoc:
        """Where `option` (e.g. "renamed_from") was written; the field's key when it was not."""
        return dict(self.option_locs).get(option, self.loc)

    @property
    def computed(self) -> bool:
        """A formula field: read-only, computed on every read, never stored."""
        return self.formula is not None

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

    @cached_property
    def _by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        """The fields that have a column: all but the computed ones."""
        return tuple(f for f in self.fields if not f.computed)

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
