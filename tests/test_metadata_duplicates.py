"""Duplicate rules in entity YAML (engine/metadata/duplicates.py): built, and every mistake
reported as `file:line:col: message`."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.metadata import ConfigErrors, load_model
from tests.conftest import shipped_model

X = "config/entities/x.yaml"
HEAD = ("entity: firm\nfields:\n  name: {type: text}\n  city: {type: text}\n"
        "  phone: {type: phone}\n  tags: {type: multichoice, options: [a, b]}\n"
        "  loud: {type: text, formula: 'UPPER(name)'}\n")


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> list[str]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config" / "entities").mkdir(parents=True)
    (tmp_path / "config" / "entities" / "x.yaml").write_text(text, encoding="utf-8")
    try:
        load_model(Path("config"))
    except ConfigErrors as caught:
        return [str(e) for e in caught.errors]
    return []


def test_rules_are_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load(tmp_path, monkeypatch,
                 HEAD + "duplicates:\n  - match: [name, city]\n  - match: [phone]\n") == []
    model = load_model(Path("config"))
    rules = model.entity("firm").duplicates
    assert [r.match for r in rules] == [("name", "city"), ("phone",)]
    assert [r.name for r in rules] == ["name,city", "phone"]
    assert (rules[0].loc.line, rules[0].loc.col) == (9, 12)


def test_the_shipped_entities_have_rules() -> None:
    model = shipped_model()
    assert [r.match for r in model.entity("account").duplicates] == [("name", "city"),
                                                                     ("phone",)]
    assert [r.match for r in model.entity("contact").duplicates] == [("email",),
                                                                     ("full_name", "phone")]
    assert [r.match for r in model.entity("lead").duplicates] == [("company", "phone"),
                                                                  ("email",)]


@pytest.mark.parametrize(("rules", "expected"), [
    ("  - match: [name, ctiy]\n", ["9:19: duplicates: no field 'ctiy' (did you mean 'city'?)"]),
    ("  - match: [loud]\n",
     ["9:13: duplicates: 'loud' is computed (it has a formula) and cannot be matched"]),
    ("  - match: [tags]\n",
     ["9:13: duplicates: 'tags' is a multichoice field, which has no single value to match"]),
    ("  - match: [name, city]\n  - match: [city, name]\n",
     ["10:12: duplicates: the same fields as rule 1"]),
    ("  - match: []\n", ["9:12: duplicates.0.match: [] should be non-empty"]),
    ("  - {}\n", ["9:5: duplicates.0: missing key 'match'"]),
    ("  - match: [name, name]\n", ["9:12: duplicates.0.match: ['name', 'name'] has non-unique "
                                   "elements"]),
    ("  - match: [name]\n    when: x\n", ["10:5: duplicates.0: unknown key 'when'"]),
], ids=["unknown", "computed", "multichoice", "twice", "empty", "no-match", "repeated",
        "unknown-key"])
def test_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: str,
                expected: list[str]) -> None:
    errors = _load(tmp_path, monkeypatch, HEAD + "duplicates:\n" + rules)
    assert errors == [f"{X}:{e}" for e in expected]


def test_an_empty_list_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    errors = _load(tmp_path, monkeypatch, HEAD + "duplicates: []\n")
    assert len(errors) == 1 and errors[0].startswith(f"{X}:8:")
