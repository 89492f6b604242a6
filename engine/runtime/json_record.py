"""A record given as JSON (`crm formula --record`), as a formula reads it.

Values are coerced like the records service coerces input; a reference holds a nested
object with the referenced record's fields; computed fields are evaluated from their
formulas.

>>> from engine.metadata import load_model
>>> from engine.formula import FixedClock
>>> from datetime import datetime, UTC
>>> model = load_model("config")
>>> r = JsonRecord(model, model.entity("opportunity"), {"amount": "1000", "stage": "won"},
...                FixedClock(datetime(2024, 1, 1, tzinfo=UTC)))
>>> r.get(("weighted",))
Decimal('1000.00')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.formula import Clock, Path
from engine.messages import msg
from engine.metadata.formula_checks import ENGINE_FIELDS
from engine.metadata.model import Entity, Model
from engine.runtime.records.computed import field_value
from engine.runtime.values import ValueProblem, coercer_for
from engine.types import FieldType


class RecordProblem(Exception):
    """A value of the JSON record that does not fit its field: `message` names the field
    (its dotted path in the record) and the problem, as a message (engine/messages.py)."""

    def __init__(self, field: str, problem: str) -> None:
        self.message = msg("%(field)s: %(problem)s", field=field, problem=problem)
        super().__init__(self.message)
        self.field = field
        self.problem = problem


class JsonRecord:
    def __init__(self, model: Model, entity: Entity, data: Mapping[str, Any],
                 clock: Clock, where: str = "") -> None:
        self._clock = clock
        self.model = model
        self.entity = entity
        self.values: dict[str, Any] = {}
        self.links: dict[str, JsonRecord] = {}
        for key, raw in data.items():
            name = f"{where}{key}"
            if key in ENGINE_FIELDS:
                self.values[key] = coercer_for(_engine_field(entity, key))(raw) \
                    if raw is not None else None
                continue
            if not entity.has_field(key):
                raise RecordProblem(name, msg("unknown field of %(entity)s", entity=entity.name))
            f = entity.field(key)
            target = f.target if f.type is not FieldType.USER else None
            if isinstance(raw, Mapping) and target and model.has_entity(target):
                self.links[key] = JsonRecord(model, model.entity(target), raw, clock,
                                             f"{name}.")
                self.values[key] = raw.get("id", 0)
                continue
            if f.computed:
                raise RecordProblem(name, msg("is computed and cannot be given"))
            try:
                self.values[key] = coercer_for(f)(raw)
            except ValueProblem as exc:
                raise RecordProblem(name, exc.message) from None

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def is_new(self) -> bool:
        return False

    def get(self, path: Path) -> object:
        name = path[0]
        if len(path) > 1:
            link = self.links.get(name)
            return None if link is None else link.get(path[1:])
        if self.entity.has_field(name):
            f = self.entity.field(name)
            if f.computed and f.compiled is not None:
                return field_value(f, f.compiled.evaluate(self))
        return self.values.get(name)

    def prior(self, path: Path) -> object:
        return None

    def changed(self, path: Path) -> bool:
        return False


def _engine_field(entity: Entity, name: str) -> Any:
    from engine.metadata.errors import SourceLoc
    from engine.metadata.labels import Label
    from engine.metadata.model import Field

    return Field(name=name, type=FieldType.DATETIME, label=Label.of(None, name),
                 loc=SourceLoc("<engine>", 1, 1))
