"""Server messages: an id (the English template, as gettext msgids are) with parameters,
rendered in the reader's language only at the edge (a page, an API answer, the CLI).

A `Message` is a `str` holding its English rendering, so code that logs, joins or compares
messages keeps working; the edge asks `localize()` for the reader's language, which uses the
id and the parameters, never the English text.

>>> m = msg("must be at least %(min)s", min=0)
>>> m, m.id, dict(m.params)
('must be at least 0', 'must be at least %(min)s', {'min': 0})
>>> localize(m, lambda s: {"must be at least %(min)s": "不能小于 %(min)s"}[s], "zh-CN")
'不能小于 0'
>>> localize("plain text", lambda s: s, "zh-CN")
'plain text'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

Gettext = Callable[[str], str]


class Localized(Protocol):
    """Text that carries its own translations (a YAML label): `get("zh-CN")`."""

    def get(self, locale: str = ...) -> str: ...


class Message(str):
    """A message id with parameters; as a `str`, its English rendering.

    Parameters may be plain values, other messages (rendered in the same language), or
    labels from config (their own translation is used).
    """

    id: str
    params: Mapping[str, Any]

    def __new__(cls, message_id: str, params: Mapping[str, Any] | None = None) -> Message:
        frozen = MappingProxyType(dict(params or {}))
        self = super().__new__(cls, _fill(message_id, frozen, _english, "en"))
        self.id = message_id
        self.params = frozen
        return self

    def render(self, gettext: Gettext, language: str) -> str:
        return _fill(gettext(self.id), self.params, gettext, language)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Message, (self.id, dict(self.params)))


class LabelMessage(Message):
    """A message written in config with its own translations (a validation rule's message).

    `rule` names the validation rule it is the message of, as `<entity>.validations.<n>`
    (the rule's place in its entity's `validations:` list), for clients that act on a rule
    without reading its text; None for other config text.
    """

    label: Localized
    rule: str | None

    def __new__(cls, label: Localized, rule: str | None = None) -> LabelMessage:
        self = str.__new__(cls, label.get("en"))
        self.id = label.get("en")
        self.params = MappingProxyType({})
        self.label = label
        self.rule = rule
        return self

    def render(self, gettext: Gettext, language: str) -> str:
        return self.label.get(language)

    def __reduce__(self) -> tuple[Any, ...]:
        return (LabelMessage, (self.label, self.rule))


class Joined(Message):
    """Several messages for one place (`joined()`), each kept as a part of its own."""

    parts: tuple[Message, ...]
    separator: str

    def __new__(cls, parts: Sequence[Message], separator: str = "; ") -> Joined:
        keys = [f"m{i}" for i in range(len(parts))]
        message_id = separator.join(f"%({k})s" for k in keys)
        params = MappingProxyType(dict(zip(keys, parts, strict=True)))
        self = str.__new__(cls, _fill(message_id, params, _english, "en"))
        self.id = message_id
        self.params = params
        self.parts = tuple(parts)
        self.separator = separator
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Joined, (self.parts, self.separator))


def N_(message_id: str) -> str:
    """Mark a message id for the catalogs where it is defined; `msg(id)` gives it later."""
    return message_id


def msg(message_id: str, /, **params: Any) -> Message:
    """Mark a server message for the catalogs (the extraction keyword) and give it values."""
    return Message(message_id, params)


def localize(text: str, gettext: Gettext, language: str) -> str:
    """`text` in `language`: a Message is rendered from its id; other text is shown as it is
    (names, values a user typed, messages from outside the engine)."""
    if isinstance(text, Message):
        return text.render(gettext, language)
    return str(text)


def joined(parts: Sequence[str], separator: str = "; ") -> Message:
    """Several messages for one place, kept as one message that renders each part."""
    messages = [p if isinstance(p, Message) else Message("%(text)s", {"text": p})
                for p in parts]
    if len(messages) == 1:
        return messages[0]
    return Joined(messages, separator)


def either(choices: Sequence[str]) -> Message:
    """"a or b or c", each choice rendered in the reader's language."""
    out = choices[0] if isinstance(choices[0], Message) else Message("%(x)s", {"x": choices[0]})
    for choice in choices[1:]:
        out = msg("%(first)s or %(second)s", first=out, second=choice)
    return out


def by_field(fields: Mapping[str, str]) -> Message:
    """Problems by field as one message, "amount: must be a number; name: is required"."""
    parts = [msg("%(field)s: %(problem)s", field=k, problem=v) for k, v in fields.items()]
    return joined(parts) if parts else Message("")


def parts(text: str) -> list[str]:
    """The messages `text` was joined from (`joined()`), else `text` alone."""
    if isinstance(text, Joined):
        return [p for part in text.parts for p in parts(part)]
    return [text]


def structured(text: str, gettext: Gettext, language: str) -> dict[str, Any]:
    """What a client needs to act on `text` without reading it: its message id and its
    parameters as JSON values, plus the rule id of a validation rule's message.

    A parameter that is itself a message is given the same way (nested); a label from
    config is given in `language`; numbers, text, booleans and null as they are; any other
    value as its text. Text that is no message of the engine has the id null.

    >>> structured(msg("must be at least %(min)s", min=0), _english, "en")
    {'message_id': 'must be at least %(min)s', 'params': {'min': 0}}
    >>> structured("stale", _english, "en")
    {'message_id': None, 'params': {}}
    """
    if not isinstance(text, Message):
        return {"message_id": None, "params": {}}
    out: dict[str, Any] = {"message_id": text.id,
                           "params": {k: _json_param(v, gettext, language)
                                      for k, v in text.params.items()}}
    rule = getattr(text, "rule", None)
    if rule is not None:
        out["rule"] = rule
    return out


def _json_param(value: Any, gettext: Gettext, language: str) -> Any:
    if isinstance(value, Message):
        return structured(value, gettext, language)
    if value is None or isinstance(value, (bool, int, str)):
        return value if not isinstance(value, str) else str(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    shown = _param(value, gettext, language)
    return shown if isinstance(shown, str) else str(shown)


def _english(message_id: str) -> str:
    return message_id


def _fill(template: str, params: Mapping[str, Any], gettext: Gettext, language: str) -> str:
    if not params:
        return template
    shown = {k: _param(v, gettext, language) for k, v in params.items()}
    try:
        return template % shown
    except (KeyError, ValueError, TypeError):  # a translation with a broken placeholder
        return template


def _param(value: Any, gettext: Gettext, language: str) -> Any:
    if isinstance(value, Message):
        return value.render(gettext, language)
    get = getattr(value, "get", None)
    if callable(get) and hasattr(value, "texts"):  # a Label from config
        return get(language)
    return value
