"""Labels: a string, or one string per locale."""

from __future__ import annotations

from dataclasses import dataclass

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
