"""Ready-made Scope, EvalContext and Clock implementations.

Callers may implement the protocols in engine.formula.types directly; these cover the
common cases (tests, `crm formula --record JSON`, a scope built from a model):

>>> scope = EntityScope({"deal": {"amount": FieldSpec(FType.NUMBER, scale=2)}}, "deal")
>>> scope.field_type(("amount",))
<FType.NUMBER: 'number'>
>>> MappingContext({"account": {"owner": {"name": "Ada"}}}).get(("account", "owner", "name"))
'Ada'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo

from engine.formula.types import Clock, FType, Path, ftype_of, scale_of
from engine.types import FieldType


@dataclass(frozen=True)
class FieldSpec:
    """What a scope knows of one field: its formula type, the decimal places a number
    holds (None: unknown) and, for a reference, the entity it points to."""

    type: FType
    scale: int | None = None
    target: str | None = None

    @classmethod
    def of(cls, field_type: FieldType, target: str | None = None) -> FieldSpec:
        """The spec of a stored field of an engine field type.

        >>> FieldSpec.of(FieldType.MONEY)
        FieldSpec(type=<FType.NUMBER: 'number'>, scale=2, target=None)
        """
        return cls(ftype_of(field_type), scale_of(field_type), target)


class EntityScope:
    """A Scope over entities described as {entity: {field: FieldSpec}}, seen from `root`.

    References are followed through `FieldSpec.target`.
    """

    def __init__(self, entities: Mapping[str, Mapping[str, FieldSpec]], root: str) -> None:
        self.entities = entities
        self.root = root

    def _spec(self, path: Path) -> FieldSpec | None:
        entity = self.root
        spec: FieldSpec | None = None
        for i, name in enumerate(path):
            fields = self.entities.get(entity, {})
            spec = fields.get(name)
            if spec is None:
                return None
            if i < len(path) - 1:
                if spec.type is not FType.REFERENCE or spec.target is None:
                    return None
                entity = spec.target
        return spec

    def field_type(self, path: Path) -> FType | None:
        spec = self._spec(path)
        return spec.type if spec else None

    def field_names(self, prefix: Path) -> Sequence[str]:
        if not prefix:
            return sorted(self.entities.get(self.root, {}))
        spec = self._spec(prefix)
        if spec is None or spec.target is None:
            return []
        return sorted(self.entities.get(spec.target, {}))

    def number_scale(self, path: Path) -> int | None:
        spec = self._spec(path)
        return spec.scale if spec else None


@dataclass(frozen=True)
class SystemClock:
    """The real time, in UTC; TODAY() is the date in `zone` (the organisation's time zone,
    UTC unless given)."""

    zone: tzinfo = UTC

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().astimezone(self.zone).date()


@dataclass(frozen=True)
class FixedClock:
    """A clock that always says the same (a naive `now` is taken as UTC)."""

    at: datetime
    day: date | None = None

    def now(self) -> datetime:
        return self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)

    def today(self) -> date:
        return self.day or self.now().astimezone(UTC).date()


@dataclass(frozen=True)
class MappingContext:
    """A record as nested mappings: {"amount": Decimal("5"), "account": {"name": "x"}}.

    A path walks the mappings; a mapping at the end of a path (a referenced record)
    stands for its "id". `prior_values` holds the record before the change being saved.
    """

    values: Mapping[str, object]
    clock: Clock = field(default_factory=SystemClock)
    prior_values: Mapping[str, object] | None = None
    is_new: bool = False
    direct_values: dict[str, object] | None = field(init=False, repr=False, compare=False)
    """`values` when it is a plain dict: compiled formulas read it without `get`."""

    def __post_init__(self) -> None:
        direct = self.values if type(self.values) is dict else None
        object.__setattr__(self, "direct_values", direct)

    def get(self, path: Path) -> object:
        return _walk(self.values, path)

    def prior(self, path: Path) -> object:
        return None if self.prior_values is None else _walk(self.prior_values, path)

    def changed(self, path: Path) -> bool:
        if self.is_new or self.prior_values is None:
            return False
        return self.get(path) != self.prior(path)


def _walk(values: Mapping[str, object], path: Path) -> object:
    value: object = values
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    if isinstance(value, Mapping):
        return value.get("id")
    return value
