"""A score (a computed sum) explained term by term in words: which answers each term reads,
and what it adds ("Budget: Confirmed → 30").

A term's words name the fields of the record it reads, with their values (a choice as its
option label), in the reader's language: the `text` is a Message whose parameters are the
YAML labels, rendered at the edge. A field reached through a reference is named by the
reference, not valued: the linked record may be one the reader cannot open.

>>> from decimal import Decimal
>>> points(Decimal("30.00")), points(Decimal("2.5")), points(None)
('30', '2.5', '—')
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.formula import CompiledFormula
from engine.messages import Message, joined, msg
from engine.metadata.labels import Label
from engine.metadata.model import Entity, Field
from engine.runtime.values import to_json


def explained_term(entity: Entity, term: CompiledFormula, value: Any,
                   row: Mapping[str, Any]) -> dict[str, Any]:
    """One term of a sum on one record: its source, its value, the fields it reads (those in
    `row`, the record as its reader may see it) with their values, its `answers` in words
    ("Budget: Confirmed"; "Every record" for a constant) and its `text`
    ("Budget: Confirmed → 30")."""
    reads = [name for (name, *rest) in sorted(term.references, key=_position(entity))
             if not rest and entity.has_field(name) and name in row]
    through = [path for path in sorted(term.references) if len(path) > 1
               and entity.has_field(path[0]) and path[0] in row]
    answers: list[Message] = [
        msg("%(field)s: %(answer)s", field=entity.field(n).label,
            answer=answer(entity.field(n), row[n])) for n in dict.fromkeys(reads)]
    linked = msg("a value of the linked record")
    answers += [msg("%(field)s: %(answer)s", field=entity.field(first).label, answer=linked)
                for first in dict.fromkeys(p[0] for p in through)]
    words = joined(answers) if answers else msg("Every record")
    return {"formula": term.source, "value": value,
            "reads": [{"field": n, "value": row[n]} for n in dict.fromkeys(reads)],
            "answers": words,
            "text": msg("%(answers)s → %(points)s", answers=words, points=points(value))}


def answer(f: Field, value: Any) -> Label | Message | str:
    """How a value reads in words: an option by its label; a blank as "no answer"."""
    if value is None or value == "" or value == []:
        return msg("no answer")
    if f.options and isinstance(value, str):
        label = dict(f.option_labels).get(value)
        return label if label is not None else f.option_label(value)
    return str(to_json(value))


def points(value: Any) -> str:
    """What a term adds, as a plain number ("30", "2.5"); "—" for a blank."""
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value != value.to_integral_value() \
            else str(int(value))
    return str(value)


def _position(entity: Entity) -> Any:
    order = {n: i for i, n in enumerate(entity.field_names)}
    return lambda path: (order.get(path[0], len(order)), path)
