"""load_model: every error says `config/entities/x.yaml:LINE:COL: message`, all at once.

Each test builds its own config/ under tmp_path and runs from tmp_path, so the file names in
messages read exactly as a user sees them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.metadata import ConfigError, ConfigErrors, Label, Model, SourceLoc, load_model
from engine.types import ENGINE_ALIASES, ENGINE_COLUMNS, RESERVED_WORDS, FieldType
from tests.conftest import CONFIG

X = "config/entities/x.yaml"
ACCOUNT = "entity: account\nfields:\n  name: {type: text}\n"


class Config:
    """A config/ folder in the current directory, written file by file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entities = root / "entities"
        self.entities.mkdir(parents=True)

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.entities / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def load(self) -> Model:
        return load_model(self.root)

    def errors(self) -> list[str]:
        with pytest.raises(ConfigErrors) as caught:
            load_model(self.root)
        errors = caught.value.errors
        assert errors == sorted(errors)
        assert str(caught.value) == "\n".join(str(e) for e in errors)
        return [str(e) for e in errors]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(tmp_path)
    return Config(Path("config"))


# -- one test per kind of error: file, line, column and message ------------------------------

# (x.yaml content, expected errors as "LINE:COL: message"); account.yaml is always present.
CASES: dict[str, tuple[str, list[str]]] = {
    "yaml-syntax": (
        "entity: deal\nfields:\n  name: {type: text\n  size: 1\n",
        ["4:7: YAML syntax error: expected ',' or '}', but got ':'"]),
    "unknown-type": (
        "entity: deal\nfields:\n  amount: {type: mony}\n",
        ["3:18: fields.amount.type: unknown field type 'mony' (did you mean 'money'?)"]),
    "unknown-type-block-style": (
        "entity: deal\nfields:\n  amount:\n    type: integr\n",
        ["4:11: fields.amount.type: unknown field type 'integr' (did you mean 'integer'?)"]),
    "unknown-type-no-hint": (
        "entity: deal\nfields:\n  blob: {type: binary}\n",
        ["3:16: fields.blob.type: unknown field type 'binary'"]),
    "field-name-uppercase": (
        "entity: deal\nfields:\n  Amount: {type: money}\n",
        ["3:3: field 'Amount' is not a valid name "
         "(lower-case letter, then a-z, 0-9 or _, at most 63)"]),
    "field-name-too-long": (
        f"entity: deal\nfields:\n  name: {{type: text}}\n  {'a' * 64}: {{type: text}}\n",
        [f"4:3: field '{'a' * 64}' is not a valid name "
         "(lower-case letter, then a-z, 0-9 or _, at most 63)"]),
    "field-name-starts-with-digit": (
        "entity: deal\nfields:\n  1st_choice: {type: text}\n",
        ["3:3: field '1st_choice' is not a valid name "
         "(lower-case letter, then a-z, 0-9 or _, at most 63)"]),
    "field-name-with-dash": (
        "entity: deal\nfields:\n  close-date: {type: date}\n",
        ["3:3: field 'close-date' is not a valid name "
         "(lower-case letter, then a-z, 0-9 or _, at most 63)"]),
    "field-name-reserved": (
        "entity: deal\nfields:\n  name: {type: text}\n  select: {type: text}\n"
        "  order: {type: integer}\n",
        ["4:3: field 'select' is a reserved SQL word",
         "5:3: field 'order' is a reserved SQL word"]),
    "field-name-engine-column": (
        "entity: deal\nfields:\n  owner_id: {type: user}\n  version: {type: integer}\n"
        "  owner: {type: user}\n  created_at: {type: datetime}\n",
        ["3:3: field 'owner_id' is an engine column name",
         "4:3: field 'version' is an engine column name",
         "5:3: field 'owner' is an engine column name",
         "6:3: field 'created_at' is an engine column name"]),
    "entity-name-reserved": (
        "entity: order\nfields:\n  name: {type: text}\n",
        ["1:9: entity: 'order' is a reserved SQL word"]),
    "entity-name-reserved-select": (
        "entity: select\nfields:\n  name: {type: text}\n",
        ["1:9: entity: 'select' is a reserved SQL word"]),
    "entity-name-crm-prefix": (
        "entity: crm_deal\nfields:\n  name: {type: text}\n",
        ["1:9: entity: 'crm_deal' starts with 'crm_', which is kept for engine tables"]),
    "entity-name-invalid": (
        "entity: Deal\nfields:\n  name: {type: text}\n",
        ["1:9: entity: 'Deal' is not a valid name "
         "(lower-case letter, then a-z, 0-9 or _, at most 63)"]),
    "entity-name-not-a-string": (
        "entity: 12\nfields:\n  name: {type: text}\n",
        ["1:9: entity: must be text, not the number 12"]),
    "reference-to-unknown-entity": (
        "entity: deal\nfields:\n  account: {type: reference, to: acount}\n",
        ["3:34: fields.account.to: unknown entity 'acount' (did you mean 'account'?)"]),
    "reference-without-to": (
        "entity: deal\nfields:\n  account: {type: reference}\n",
        ["3:12: fields.account: a reference field needs 'to'"]),
    "department-field-without-department-entity": (
        "entity: deal\nfields:\n  team: {type: department}\n",
        ["3:16: fields.team: a department field needs a 'department' entity"]),
    "duplicate-field": (
        "entity: deal\nfields:\n  name: {type: text}\n  amount: {type: money}\n"
        "  name: {type: textarea}\n",
        ["5:3: duplicate key 'name'"]),
    "max-length-on-integer": (
        "entity: deal\nfields:\n  seats: {type: integer, max_length: 3}\n",
        ["3:26: fields.seats.max_length does not fit an integer field"]),
    "options-on-text": (
        "entity: deal\nfields:\n  name: {type: text, options: [a, b]}\n",
        ["3:22: fields.name.options does not fit a text field"]),
    "board-on-text": (
        "entity: deal\nfields:\n  name: {type: text, board: true}\n",
        ["3:22: fields.name.board does not fit a text field"]),
    "search-on-a-number-or-choice": (
        "entity: deal\nfields:\n  name: {type: text, search: true}\n"
        "  seats: {type: integer, search: true}\n"
        "  stage: {type: choice, options: [a], search: false}\n",
        ["4:26: fields.seats.search does not fit an integer field: only text, textarea, "
         "email, phone and url fields can be searched",
         "5:39: fields.stage.search does not fit a choice field: only text, textarea, "
         "email, phone and url fields can be searched"]),
    "search-on-a-computed-field": (
        "entity: deal\nfields:\n  name: {type: text}\n"
        "  code: {type: text, formula: 'UPPER(name)', search: true}\n",
        ["4:46: fields.code.search does not fit a computed field (it has a formula)"]),
    "to-on-text": (
        "entity: deal\nfields:\n  name: {type: text, to: account}\n",
        ["3:22: fields.name.to does not fit a text field"]),
    "min-on-text": (
        "entity: deal\nfields:\n  name: {type: text, min: 1}\n",
        ["3:22: fields.name.min does not fit a text field"]),
    "unique-on-boolean": (
        "entity: deal\nfields:\n  name: {type: text}\n  active: {type: boolean, unique: true}\n",
        ["4:35: fields.active.unique does not fit a boolean field"]),
    "external-id-on-a-non-text-field": (
        "entity: deal\nfields:\n  name: {type: text}\n"
        "  code: {type: integer, external_id: true}\n"
        "  mail: {type: email, external_id: true}\n",
        ["4:25: fields.code.external_id does not fit an integer field: only a text field "
         "can hold a record's external id",
         "5:23: fields.mail.external_id does not fit an email field: only a text field "
         "can hold a record's external id"]),
    "two-external-ids": (
        "entity: deal\nfields:\n  name: {type: text}\n"
        "  erp: {type: text, external_id: true}\n"
        "  sap: {type: text, external_id: true}\n",
        ["5:21: fields.sap.external_id: 'erp' is already this entity's external id "
         "(at most one)"]),
    "external-id-on-a-computed-field": (
        "entity: deal\nfields:\n  name: {type: text}\n"
        "  code: {type: text, formula: 'UPPER(name)', external_id: true}\n",
        ["4:46: fields.code.external_id does not fit a computed field (it has a formula)"]),
    "unique-on-textarea-and-multichoice": (
        "entity: deal\nfields:\n  notes: {type: textarea, unique: true}\n"
        "  tags: {type: multichoice, options: [a], unique: true}\n",
        ["3:35: fields.notes.unique does not fit a textarea field",
         "4:51: fields.tags.unique does not fit a multichoice field"]),
    "max-length-above-type-limit": (
        "entity: deal\nfields:\n  name: {type: text, max_length: 1001}\n"
        "  mail: {type: email, max_length: 255}\n",
        ["3:34: fields.name.max_length: at most 1000 for a text field",
         "4:35: fields.mail.max_length: at most 254 for an email field"]),
    "choice-without-options": (
        "entity: deal\nfields:\n  stage: {type: choice}\n  tags: {type: multichoice}\n",
        ["3:10: fields.stage: a choice field needs options",
         "4:9: fields.tags: a multichoice field needs options"]),
    "duplicate-option": (
        "entity: deal\nfields:\n  stage: {type: choice, options: [open, won, open]}\n",
        ["3:46: fields.stage.options: duplicate 'open'"]),
    "option-not-a-string": (
        "entity: deal\nfields:\n  stage: {type: choice, options: [open, 2]}\n",
        ["3:41: fields.stage.options.1: must be text, not the number 2"]),
    "renamed-from-itself": (
        "entity: deal\nfields:\n  name: {type: text, renamed_from: name}\n",
        ["3:36: fields.name.renamed_from names the field itself"]),
    "renamed-from-existing-field": (
        "entity: deal\nfields:\n  title: {type: text, renamed_from: name}\n"
        "  name: {type: text}\n",
        ["3:37: fields.title.renamed_from: 'name' is still a field of this entity"]),
    "renamed-from-invalid-name": (
        "entity: deal\nfields:\n  name: {type: text, renamed_from: Old-Name}\n",
        ["3:36: fields.name.renamed_from: 'Old-Name' is not a valid name "
         "(lower-case letter, then a-z, 0-9 or _, at most 63)"]),
    "renamed-from-engine-column": (
        "entity: deal\nfields:\n  boss: {type: user, renamed_from: owner_id}\n",
        ["3:36: fields.boss.renamed_from: 'owner_id' is an engine column name"]),
    "renamed-from-twice": (
        "entity: deal\nfields:\n  a: {type: text, renamed_from: old}\n"
        "  b: {type: text, renamed_from: old}\n",
        ["4:33: fields.b.renamed_from: 'old' is already renamed to 'a'"]),
    "title-names-no-field": (
        "entity: deal\ntitle: nmae\nfields:\n  name: {type: text}\n",
        ["2:8: title: no field 'nmae' (did you mean 'name'?)"]),
    "default-choice-not-an-option": (
        "entity: deal\nfields:\n  stage: {type: choice, options: [open, won], default: lost}\n",
        ["3:56: fields.stage.default 'lost' is not one of the options"]),
    "closed-not-an-option": (
        "entity: deal\nfields:\n  stage: {type: choice, options: [open, won], closed: [wn]}\n",
        ["3:56: fields.stage.closed: 'wn' is not one of the options (did you mean 'won'?)"]),
    "calendar-on-a-text": (
        "entity: deal\nfields:\n  due: {type: text, calendar: true}\n",
        ["3:21: fields.due.calendar does not fit a text field"]),
    "default-multichoice-not-an-option": (
        "entity: deal\nfields:\n  tags: {type: multichoice, options: [a, b], default: 'a, c'}\n",
        ["3:55: fields.tags.default 'c' not among the options"]),
    "default-text-for-number": (
        "entity: deal\nfields:\n  seats: {type: integer, default: many}\n",
        ["3:35: fields.seats.default must be a number"]),
    "default-fraction-for-integer": (
        "entity: deal\nfields:\n  seats: {type: integer, default: 1.5}\n",
        ["3:35: fields.seats.default must be a whole number"]),
    "default-too-many-decimals-for-money": (
        "entity: deal\nfields:\n  fee: {type: money, default: 9.999}\n",
        ["3:31: fields.fee.default must have at most 2 decimal places"]),
    "default-outside-min-max": (
        "entity: deal\nfields:\n  seats: {type: integer, min: 1, max: 9, default: 10}\n"
        "  rate: {type: percent, min: 0, default: -5}\n",
        ["3:51: fields.seats.default is above max 9",
         "4:42: fields.rate.default is below min 0"]),
    "default-not-a-boolean": (
        "entity: deal\nfields:\n  active: {type: boolean, default: 1}\n",
        ["3:36: fields.active.default must be true or false"]),
    "default-number-for-text-field": (
        "entity: deal\nfields:\n  code: {type: text, default: 1.5}\n",
        ["3:31: fields.code.default must be text"]),
    "default-longer-than-max-length": (
        "entity: deal\nfields:\n  code: {type: text, max_length: 3, default: abcd}\n",
        ["3:46: fields.code.default is longer than 3 characters"]),
    "default-not-a-date": (
        "entity: deal\nfields:\n  due: {type: date, default: 2025-02-30}\n"
        "  due_at: {type: datetime, default: soon}\n",
        ["3:30: fields.due.default must be a date like 2025-03-31",
         "4:37: fields.due_at.default must be a date and time like 2025-03-31T14:30:00Z"]),
    "default-on-reference": (
        "entity: deal\nfields:\n  account: {type: reference, to: account, default: 1}\n",
        ["3:52: fields.account.default does not fit a reference field"]),
    "min-above-max": (
        "entity: deal\nfields:\n  seats: {type: integer, min: 10, max: 1}\n",
        ["3:31: fields.seats: min is above max"]),
    "min-not-finite": (
        "entity: deal\nfields:\n  rate: {type: decimal, min: .nan, max: .inf}\n",
        ["3:30: fields.rate.min must be a finite number",
         "3:41: fields.rate.max must be a finite number"]),
    "unknown-top-level-key": (
        "entity: deal\nlable: Deal\nfields:\n  name: {type: text}\n",
        ["2:1: unknown key 'lable' (did you mean 'label'?)"]),
    "unknown-field-key": (
        "entity: deal\nfields:\n  name: {type: text, requird: true}\n",
        ["3:22: fields.name: unknown key 'requird' (did you mean 'required'?)"]),
    "missing-fields": (
        "entity: deal\nlabel: Deal\n",
        ["1:1: missing key 'fields'"]),
    "missing-entity-and-fields": (
        "label: Deal\n",
        ["1:1: missing key 'entity'", "1:1: missing key 'fields'"]),
    "field-without-type": (
        "entity: deal\nfields:\n  name: {label: Name}\n",
        ["3:9: fields.name: missing key 'type'"]),
    "field-spec-not-a-mapping": (
        "entity: deal\nfields:\n  name: text\n",
        ["3:9: fields.name: must be a mapping, not the text 'text'"]),
    "fields-a-list": (
        "entity: deal\nfields:\n  - name\n",
        ["3:3: fields: must be a mapping, not a list"]),
    "default-a-list": (
        "entity: deal\nfields:\n  tags: {type: multichoice, options: [a], default: [a]}\n",
        ["3:52: fields.tags.default: must be text or a number or true or false, not a list"]),
    "field-without-spec": (
        "entity: deal\nfields:\n  name:\n  amount: {type: money}\n",
        ["3:3: fields.name: a value is missing"]),
    "fields-empty": (
        "entity: deal\nfields: {}\n",
        ["2:9: fields: {} should be non-empty"]),
    "label-a-list": (
        "entity: deal\nlabel: [Deal, Deals]\nfields:\n  name: {type: text}\n",
        ["2:8: label: a label is a string or a map of locales to strings"]),
    "label-bad-locale": (
        "entity: deal\nlabel: {english: Deal}\nfields:\n  name: {type: text}\n",
        ["2:8: label: a label is a string or a map of locales to strings"]),
    "label-empty": (
        "entity: deal\nplural: ''\nfields:\n  name: {type: text}\n",
        ["2:9: plural: a label is a string or a map of locales to strings"]),
    "field-label-a-number": (
        "entity: deal\nfields:\n  name: {type: text, label: {en: 5}}\n",
        ["3:29: fields.name.label: a label is a string or a map of locales to strings"]),
    "help-a-map-of-lists": (
        "entity: deal\nfields:\n  name: {type: text, help: {en: [a]}}\n",
        ["3:28: fields.name.help: a label is a string or a map of locales to strings"]),
    "unknown-area": (
        "entity: deal\narea: finance\nfields:\n  name: {type: text}\n",
        ["2:7: area: 'finance' is not one of ['customers', 'sales', 'service', 'marketing', "
         "'office', 'admin']"]),
    "empty-file": ("", ["1:1: the file is empty; an entity file needs 'entity' and 'fields'"]),
    "comments-only": (
        "# to do\n", ["1:1: the file is empty; an entity file needs 'entity' and 'fields'"]),
    "file-is-a-list": (
        "- entity: deal\n", ["1:1: an entity file is a mapping with 'entity' and 'fields'"]),
}


@pytest.mark.parametrize(("text", "expected"), list(CASES.values()), ids=list(CASES))
def test_error(cfg: Config, text: str, expected: list[str]) -> None:
    cfg.write("account.yaml", ACCOUNT)
    cfg.write("x.yaml", text)
    assert cfg.errors() == [f"{X}:{e}" for e in expected]


def test_error_carries_file_line_column_and_message(cfg: Config) -> None:
    cfg.write("x.yaml", "entity: deal\nfields:\n  amount: {type: mony}\n")
    with pytest.raises(ConfigErrors) as caught:
        cfg.load()
    assert caught.value.errors == [ConfigError(
        SourceLoc(X, 3, 18),
        "fields.amount.type: unknown field type 'mony' (did you mean 'money'?)")]


def test_duplicate_entity_across_two_files(cfg: Config) -> None:
    cfg.write("deal.yaml", "entity: deal\nfields:\n  name: {type: text}\n")
    cfg.write("deals.yaml", "# a copy\nentity: deal\nfields:\n  amount: {type: money}\n")
    assert cfg.errors() == [
        "config/entities/deals.yaml:2:9: entity 'deal' is already defined in "
        "config/entities/deal.yaml"]


def test_non_utf8_file(cfg: Config) -> None:
    cfg.write("x.yaml", "entity: deal\nlabel: {zh: 交易, en: Caf".encode() + b"\xe9}\n")
    assert cfg.errors() == [f"{X}:2:24: file is not UTF-8: byte 0xe9 (invalid continuation byte)"]


def test_an_63_character_name_is_valid(cfg: Config) -> None:
    name = "a" * 63
    cfg.write("x.yaml", f"entity: {name}\nfields:\n  {name}: {{type: text}}\n")
    assert cfg.load().entity(name).field_names == (name,)


@pytest.mark.parametrize("name", [*ENGINE_COLUMNS, *ENGINE_ALIASES])
def test_every_engine_column_is_refused_as_a_field(cfg: Config, name: str) -> None:
    cfg.write("x.yaml", f"entity: deal\nfields:\n  {name}: {{type: text}}\n")
    assert cfg.errors() == [f"{X}:3:3: field {name!r} is an engine column name"]


def test_no_entities_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_model(tmp_path)
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path / 'entities'}:1:1: no entities/ folder in config"]


def test_no_entity_files(cfg: Config) -> None:
    cfg.write("notes.txt", "not yaml")
    assert cfg.errors() == ["config/entities:1:1: no entity files (*.yaml) found"]


# -- all errors at once, sorted; one mistake does not hide or cause others -------------------

def test_errors_from_several_files_come_back_together_and_sorted(cfg: Config) -> None:
    cfg.write("account.yaml", "entity: account\nfields:\n  name: {type: text}\n"
                              "  tier: {type: choice, options: [a, b], default: c}\n")
    cfg.write("contact.yaml", "entity: contact\nfields:\n  account: {type: reference, to: acount}\n"
                              "  Email: {type: email}\n")
    cfg.write("deal.yaml", "entity: deal\nfields:\n  name: {type: text\n")
    cfg.write("order.yaml", "entity: order\nfields:\n  name: {type: text}\n")
    assert cfg.errors() == [
        "config/entities/account.yaml:4:50: fields.tier.default 'c' is not one of the options",
        "config/entities/contact.yaml:3:34: fields.account.to: unknown entity 'acount' "
        "(did you mean 'account'?)",
        "config/entities/contact.yaml:4:3: field 'Email' is not a valid name "
        "(lower-case letter, then a-z, 0-9 or _, at most 63)",
        "config/entities/deal.yaml:4:1: YAML syntax error: expected ',' or '}', "
        "but got '<stream end>'",
        "config/entities/order.yaml:1:9: entity: 'order' is a reserved SQL word",
    ]


def test_a_schema_error_in_one_field_does_not_hide_errors_in_others(cfg: Config) -> None:
    cfg.write("x.yaml", "entity: deal\nlable: Deal\ntitle: nmae\nfields:\n"
                        "  a: {type: txt}\n  B: {type: text}\n  c: {type: integer, max_length: 3}\n"
                        "  d: {type: text, requird: true}\n")
    assert cfg.errors() == [
        f"{X}:2:1: unknown key 'lable' (did you mean 'label'?)",
        f"{X}:3:8: title: no field 'nmae'",
        f"{X}:5:13: fields.a.type: unknown field type 'txt' (did you mean 'text'?)",
        f"{X}:6:3: field 'B' is not a valid name "
        "(lower-case letter, then a-z, 0-9 or _, at most 63)",
        f"{X}:7:22: fields.c.max_length does not fit an integer field",
        f"{X}:8:19: fields.d: unknown key 'requird' (did you mean 'required'?)",
    ]


def test_an_entity_with_errors_is_still_known_to_references(cfg: Config) -> None:
    cfg.write("account.yaml", "entity: account\nfields:\n  Name: {type: text}\n")
    cfg.write("contact.yaml",
              "entity: contact\nfields:\n  account: {type: reference, to: account}\n")
    assert cfg.errors() == [
        "config/entities/account.yaml:3:3: field 'Name' is not a valid name "
        "(lower-case letter, then a-z, 0-9 or _, at most 63)"]


def test_an_entity_in_an_unparsable_file_is_assumed_from_its_file_name(cfg: Config) -> None:
    cfg.write("account.yaml", "entity: account\nfields: [\n")
    cfg.write("contact.yaml",
              "entity: contact\nfields:\n  account: {type: reference, to: account}\n"
              "  boss: {type: reference, to: acount}\n")
    assert cfg.errors() == [
        "config/entities/account.yaml:3:1: YAML syntax error: expected the node content, "
        "but found '<stream end>'",
        "config/entities/contact.yaml:4:31: fields.boss.to: unknown entity 'acount' "
        "(did you mean 'account'?)"]


def test_a_title_naming_a_broken_field_is_not_an_error(cfg: Config) -> None:
    cfg.write("x.yaml", "entity: deal\ntitle: name\nfields:\n  name: {type: text, min: 1}\n")
    assert cfg.errors() == [f"{X}:4:22: fields.name.min does not fit a text field"]


def test_a_duplicate_entity_still_reports_its_own_errors(cfg: Config) -> None:
    cfg.write("a.yaml", "entity: deal\nfields:\n  r: {type: reference, to: nope}\n")
    cfg.write("b.yaml", "entity: deal\nfields:\n  n: {type: text, board: true}\n")
    assert cfg.errors() == [
        "config/entities/a.yaml:3:28: fields.r.to: unknown entity 'nope'",
        "config/entities/b.yaml:1:9: entity 'deal' is already defined in config/entities/a.yaml",
        "config/entities/b.yaml:3:19: fields.n.board does not fit a text field",
    ]


def test_yml_files_are_read_too(cfg: Config) -> None:
    cfg.write("deal.yml", "entity: deal\nfields:\n  name: {type: txt}\n")
    assert cfg.errors() == [
        "config/entities/deal.yml:3:16: fields.name.type: unknown field type 'txt' "
        "(did you mean 'text'?)"]


def test_only_visible_yaml_files_are_read(cfg: Config) -> None:
    cfg.write("account.yaml", ACCOUNT)
    for name in (".#account.yaml", ".deal.yaml", "deal.yaml.bak", "deal.yaml.html", "README.md"):
        cfg.write(name, "entity: [broken\n")
    model = cfg.load()
    assert model.entity_names == ("account",)
    assert model.sources == ("config/entities/account.yaml",)


def test_an_unreadable_entry_is_an_error(cfg: Config) -> None:
    cfg.write("account.yaml", ACCOUNT)
    (cfg.entities / "deal.yaml").mkdir()
    assert cfg.errors() == ["config/entities/deal.yaml:1:1: cannot read the file: Is a directory"]


# -- what a valid file becomes ------------------------------------------------------------

def test_a_valid_file_becomes_a_model(cfg: Config) -> None:
    cfg.write("account.yaml", ACCOUNT)
    cfg.write("deal.yaml", """\
entity: deal
label: {en: Deal, zh: 交易}
area: sales
fields:
  amount: {type: money, min: 0, max: 1000000.5, default: 10.25}
  name:
    type: text
    required: true
    max_length: 80
    label: {en: Name, zh: 名称}
    help: The deal's name
  stage: {type: choice, options: [open, won, lost], default: open, board: true, index: true}
  account: {type: reference, to: account}
  seats: {type: integer, default: 3}
  since: {type: date, default: 2025-03-31}
  tags: {type: multichoice, options: [a, b], default: 'a, b'}
  code: {type: text, default: 12345, unique: true}
  old_new: {type: text, renamed_from: old_name}
  mail: {type: email, search: true}
""")
    model = cfg.load()
    assert model.entity_names == ("account", "deal")
    assert model.sources == ("config/entities/account.yaml", "config/entities/deal.yaml")
    assert model.config_dir == "config"
    deal = model.entity("deal")
    assert deal.field_names == ("amount", "name", "stage", "account", "seats", "since", "tags",
                                "code", "old_new", "mail")
    assert deal.title == "name"  # the first text field, as no title is given
    assert deal.area == "sales"
    assert deal.loc == SourceLoc("config/entities/deal.yaml", 1, 9)
    assert deal.file == "config/entities/deal.yaml"
    assert deal.plural.get() == "Deals"
    amount = deal.field("amount")
    assert amount.type is FieldType.MONEY
    assert (amount.min, amount.max, amount.default) == (Decimal(0), Decimal("1000000.5"), 10.25)
    assert amount.label.get() == "Amount"
    name = deal.field("name")
    assert (name.required, name.max_length, name.loc) == (
        True, 80, SourceLoc("config/entities/deal.yaml", 6, 3))
    assert name.label.get("zh") == "名称"
    assert name.help is not None and name.help.get("zh") == "The deal's name"
    stage = deal.field("stage")
    assert (stage.options, stage.default, stage.board, stage.index) == (
        ("open", "won", "lost"), "open", True, True)
    assert deal.field("account").target == "account"
    assert deal.field("since").default == "2025-03-31"
    assert deal.field("code").unique is True
    assert deal.field("mail").search and not name.search
    old_new = deal.field("old_new")
    assert old_new.renamed_from == "old_name"
    assert old_new.loc_of("renamed_from") == SourceLoc("config/entities/deal.yaml", 18, 39)
    assert old_new.loc_of("type") == SourceLoc("config/entities/deal.yaml", 18, 19)
    assert old_new.loc_of("label") == old_new.loc == SourceLoc("config/entities/deal.yaml", 18, 3)
    assert name.loc_of("max_length") == SourceLoc("config/entities/deal.yaml", 9, 17)
    assert model.entity("account").title == "name"


def test_the_config_hash_follows_the_files(cfg: Config) -> None:
    cfg.write("account.yaml", ACCOUNT)
    first = cfg.load().config_hash
    assert cfg.load().config_hash == first
    cfg.write("account.yaml", ACCOUNT + "  city: {type: text}\n")
    assert cfg.load().config_hash != first


def test_without_a_text_field_the_title_is_the_id(cfg: Config) -> None:
    cfg.write("x.yaml", "entity: counter\nfields:\n  n: {type: integer}\n")
    assert cfg.load().entity("counter").title == "id"


# -- the shipped configuration -------------------------------------------------------------

def test_the_shipped_config_loads() -> None:
    model = load_model(CONFIG)
    assert set(model.entity_names) >= {"account", "contact", "opportunity", "lead", "activity",
                                       "product", "department"}
    opportunity = model.entity("opportunity")
    assert opportunity.label.get() == "Opportunity"
    assert opportunity.label.get("zh") == "销售机会"
    assert opportunity.label.get("zh-CN") == "销售机会"
    assert opportunity.label.get("fr") == "Opportunity"
    stage = opportunity.field("stage")
    assert stage.board and stage.options[0] == "prospecting"
    assert opportunity.field("account").to == "account"
    assert [f.name for f in model.entity("contact").fields if f.search] == [
        "email", "phone", "mobile"]
    assert model.entity("account").field("city").search
    for entity in model.entities:
        assert entity.label.get("zh") != entity.label.get("en"), entity.name
        for f in entity.fields:
            assert f.label.get("zh") != "", (entity.name, f.name)


def test_shipped_entities_live_in_files_named_after_them() -> None:
    model = load_model(CONFIG)
    for e in model.entities:
        assert Path(e.file).name == f"{e.name}.yaml"
        assert all(f.loc.file == e.file for f in e.fields)


# -- labels --------------------------------------------------------------------------------

def test_label_from_a_string() -> None:
    label = Label.of("Deal", "fallback")
    assert label.get() == "Deal"
    assert label.get("zh") == "Deal"
    assert label.as_dict() == {"en": "Deal"}


def test_label_from_a_map_of_locales() -> None:
    label = Label.of({"en": "Deal", "zh": "交易", "zh-TW": "交易 (繁)"}, "fallback")
    assert label.get("zh") == "交易"
    assert label.get("zh-CN") == "交易"
    assert label.get("zh_CN") == "交易"
    assert label.get("zh-TW") == "交易 (繁)"
    assert label.get("de-AT") == "Deal"
    assert label.get() == "Deal"


def test_label_without_english_falls_back_to_the_first_locale() -> None:
    assert Label.of({"zh": "交易", "fr": "Affaire"}, "x").get("de") == "交易"


def test_missing_label_uses_the_fallback() -> None:
    assert Label.of(None, "Close date").get("zh") == "Close date"


def test_labels_in_a_file_may_be_strings_or_maps(cfg: Config) -> None:
    cfg.write("x.yaml", "entity: close_deal\nlabel: Closing\nfields:\n"
                        "  close_date: {type: date, label: {en: Close date, zh: 成交日期}}\n"
                        "  won_at: {type: datetime}\n")
    e = cfg.load().entity("close_deal")
    assert (e.label.get(), e.label.get("zh"), e.plural.get()) == ("Closing", "Closing", "Closings")
    assert e.field("close_date").label.get("zh-CN") == "成交日期"
    assert e.field("won_at").label.get("zh") == "Won at"


# -- fuzzing: never anything but a Model or ConfigErrors -----------------------------------

_BREAKS = re.compile(r"\r\n|[\n\r]")  # the line breaks ruamel counts in its marks


def _assert_positions_inside(errors: list[ConfigError], text: str, file: str) -> None:
    lines = _BREAKS.split(text.lstrip("\ufeff"))
    for err in errors:
        assert err.message, err
        if err.loc.file != file:
            continue
        assert 1 <= err.loc.line <= len(lines), (str(err), text)
        assert 1 <= err.loc.col <= len(lines[err.loc.line - 1]) + 1, (str(err), text)


def _load_text(root: Path, text: str) -> None:
    (root / "entities" / "x.yaml").write_text(text, encoding="utf-8")
    try:
        model = load_model(root)
    except ConfigErrors as exc:
        _assert_positions_inside(exc.errors, text, str(root / "entities" / "x.yaml"))
    else:
        assert isinstance(model, Model)


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "config"
    (root / "entities").mkdir(parents=True)
    (root / "entities" / "account.yaml").write_text(ACCOUNT, encoding="utf-8")
    return root


_FUZZ = settings(max_examples=200, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])

_yamlish = st.sampled_from(["entity: ", "fields:\n", "  ", "name", ": ", "{", "}", "[", "]",
                            ", ", "type: ", "text", "choice", "options", "\n", "- ", "&a ",
                            "*a", "<<: ", "'", '"', "#", "~", "\t", "---\n", "1.5", "0x1f",
                            "!!str ", "default", "renamed_from", "to", "label", "zh"])


@_FUZZ
@given(text=st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.lists(_yamlish, max_size=60).map("".join),
))
def test_any_text_loads_or_gives_config_errors(fuzz_root: Path, text: str) -> None:
    _load_text(fuzz_root, text)


_names = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
    st.sampled_from(["order", "select", "owner_id", "version", "owner", "crm_x", "Name", "1a",
                     "a" * 64, "account", "x"]),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=12), _names)
_labels = st.one_of(_scalars, st.dictionaries(st.sampled_from(["en", "zh", "zh-CN", "fr_FR",
                                                               "EN", "english"]),
                                              st.one_of(st.text(max_size=8), st.integers()),
                                              max_size=3))
_options = st.one_of(_scalars, st.lists(st.one_of(_names, st.integers(), st.text(max_size=5)),
                                        max_size=5))
_field_type = st.one_of(st.sampled_from([t.value for t in FieldType]),
                        st.sampled_from(["txt", "string", "", "Text"]), _scalars)
_option_values: dict[str, st.SearchStrategy[Any]] = {
    "label": _labels, "help": _labels, "required": _scalars, "unique": _scalars,
    "index": _scalars, "board": _scalars, "default": _scalars,
    "max_length": st.one_of(st.integers(-5, 20_000), _scalars),
    "min": _scalars, "max": _scalars, "options": _options,
    "to": st.one_of(_names, _scalars), "renamed_from": st.one_of(_names, _scalars),
    "requird": _scalars,
}


_valid_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: n not in RESERVED_WORDS and n not in ENGINE_COLUMNS and n not in ENGINE_ALIASES
    and not n.startswith("crm_"))


@st.composite
def _valid_field(draw: st.DrawFn) -> dict[str, Any]:
    ftype = draw(st.sampled_from([t for t in FieldType if t is not FieldType.DEPARTMENT]))
    spec: dict[str, Any] = {"type": ftype.value}
    if ftype in (FieldType.CHOICE, FieldType.MULTICHOICE):
        spec["options"] = draw(st.lists(_valid_names, min_size=1, max_size=4, unique=True))
        if draw(st.booleans()):
            spec["default"] = draw(st.sampled_from(spec["options"]))
    elif ftype is FieldType.REFERENCE:
        spec["to"] = draw(st.sampled_from(["account", "x"]))
    elif ftype in (FieldType.TEXT, FieldType.EMAIL, FieldType.PHONE):
        spec["max_length"] = draw(st.integers(1, 40))
    elif ftype in (FieldType.INTEGER, FieldType.MONEY):
        spec["min"] = draw(st.integers(-100, 0))
        spec["max"] = draw(st.integers(0, 100))
        if draw(st.booleans()):
            spec["default"] = draw(st.integers(spec["min"], spec["max"]))
    elif ftype is FieldType.BOOLEAN and draw(st.booleans()):
        spec["default"] = draw(st.booleans())
    for key in ("required", "index"):
        if draw(st.booleans()):
            spec[key] = draw(st.booleans())
    if draw(st.booleans()):
        spec["label"] = draw(st.one_of(st.text(min_size=1, max_size=8),
                                       st.fixed_dictionaries({"en": st.text(min_size=1),
                                                              "zh": st.just("名称")})))
    return spec


@st.composite
def _field_specs(draw: st.DrawFn) -> Any:
    """Mostly valid field specs; about one in five carries a random mistake."""
    spec: Any = draw(_valid_field())
    mistake = draw(st.integers(0, 19))
    if mistake == 0:
        return draw(_scalars)
    if mistake == 1:
        spec["type"] = draw(_field_type)
    elif mistake == 2:
        key = draw(st.sampled_from(sorted(_option_values)))
        spec[key] = draw(_option_values[key])
    elif mistake == 3:
        del spec["type"]
    return spec


@st.composite
def _entities(draw: st.DrawFn) -> Any:
    fields = draw(st.dictionaries(
        st.one_of(_valid_names, _valid_names, _valid_names, _names), _field_specs(),
        min_size=1, max_size=5))
    data: dict[str, Any] = {"entity": "x", "fields": fields}
    if draw(st.booleans()):
        data["title"] = draw(st.sampled_from(sorted(fields)))
    if draw(st.booleans()):
        data["label"] = {"en": "X", "zh": "某"}
    mistake = draw(st.integers(0, 14))
    if mistake == 0:
        data["entity"] = draw(st.one_of(_names, _scalars))
    elif mistake == 1:
        del data["fields"]
    elif mistake == 2:
        key = draw(st.sampled_from(["label", "plural", "area", "title", "lable", "fields"]))
        data[key] = draw(st.one_of(_labels, _names))
    return data


def _dump(data: Any, flow: bool) -> str:
    import io

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    yaml.allow_unicode = True
    yaml.representer.sort_base_mapping_type_on_output = False
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@_FUZZ
@given(data=_entities(), flow=st.booleans())
def test_entity_shaped_files_load_or_give_positioned_errors(fuzz_root: Path, data: Any,
                                                            flow: bool) -> None:
    text = _dump(data, flow)
    path = fuzz_root / "entities" / "x.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        model = load_model(fuzz_root)
    except ConfigErrors as exc:
        _assert_positions_inside(exc.errors, text, str(path))
        event("errors")
        return
    event("loaded")
    # Whatever loads is what was written.
    entity = model.entity(data["entity"])
    assert entity.field_names == tuple(data["fields"])
    for f in entity.fields:
        assert f.type == data["fields"][f.name]["type"]



@pytest.mark.parametrize(("ftype", "default", "message"), [
    ("email", "nope", "must be an email address like name@example.com"),
    ("phone", "call me", "must be a phone number (digits, spaces, + ( ) - . /)"),
    ("url", "ftp://x", "must be a web address starting with http:// or https://"),
])
def test_a_default_of_the_wrong_shape_is_an_error(cfg: Config, ftype: str, default: str,
                                                  message: str) -> None:
    cfg.write("x.yaml", f"entity: deal\nfields:\n  f: {{type: {ftype}, default: '{default}'}}\n")
    errors = cfg.errors()
    assert len(errors) == 1
    assert errors[0].startswith(f"{X}:3:")
    assert errors[0].endswith(f"fields.f.default {message}")


def test_an_external_id_is_a_unique_key(tmp_path: Path) -> None:
    (tmp_path / "entities").mkdir()
    (tmp_path / "entities" / "deal.yaml").write_text(
        "entity: deal\nfields:\n  name: {type: text}\n"
        "  erp: {type: text, external_id: true}\n  plain: {type: text}\n", encoding="utf-8")
    deal = load_model(tmp_path).entity("deal")
    assert deal.field("erp").external_id and deal.field("erp").unique
    assert not deal.field("plain").external_id and not deal.field("name").external_id
