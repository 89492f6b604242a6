"""Formulas in entity files: computed fields, formula defaults and validation rules are
checked at load time, and every problem points at the formula in its file and inside it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.formula import FType, MappingContext
from engine.metadata import Label, load_model
from tests.test_metadata_loader import Config

ACCOUNT = "entity: account\nfields:\n  name: {type: text}\n  credit_limit: {type: money}\n"


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(tmp_path)
    config = Config(Path("config"))
    config.write("account.yaml", ACCOUNT)
    return config


def deal(fields: str, extra: str = "") -> str:
    return ("entity: x\nfields:\n  amount: {type: money}\n"
            "  account: {type: reference, to: account}\n" + fields + extra)


def test_computed_field_is_compiled_and_has_no_default(cfg: Config) -> None:
    cfg.write("x.yaml", deal("  double: {type: money, formula: 'amount * 2'}\n"))
    model = cfg.load()
    f = model.entity("x").field("double")
    assert f.computed and f.formula == "amount * 2"
    assert f.compiled is not None and f.compiled.type is FType.NUMBER
    assert f.compiled.evaluate(MappingContext({"amount": Decimal("2.5")})) == Decimal("5.0")
    assert [g.name for g in model.entity("x").stored_fields] == ["amount", "account"]


def test_formula_error_points_into_the_file_and_the_formula(cfg: Config) -> None:
    cfg.write("x.yaml", deal("  double: {type: money, formula: 'amout * 2'}\n"))
    assert cfg.errors() == [
        "config/entities/x.yaml:5:34: formula 1:1: unknown field 'amout'; "
        "did you mean 'amount'?"]


def test_dotted_path_is_checked_through_the_reference(cfg: Config) -> None:
    cfg.write("x.yaml", deal("  cap: {type: money, formula: 'account.credit_limt'}\n"))
    [err] = cfg.errors()
    assert err.startswith("config/entities/x.yaml:5:31: formula 1:9: unknown field "
                          "'credit_limt'")
    cfg.write("x.yaml", deal("  cap: {type: money, formula: 'account.credit_limit'}\n"))
    assert cfg.load().entity("x").field("cap").compiled is not None


def test_computed_type_must_fit_the_field(cfg: Config) -> None:
    cfg.write("x.yaml", deal("  label: {type: integer, formula: '\"big\"'}\n"))
    assert cfg.errors() == [
        "config/entities/x.yaml:5:35: formula 1:1: this formula gives text, but a number "
        "is needed here"]


def test_formula_excludes_required_unique_default_rename(cfg: Config) -> None:
    cfg.write("x.yaml", deal("  d: {type: money, formula: 'amount', required: true, "
                             "default: 1, renamed_from: e, unique: true}\n"))
    assert cfg.errors() == [
        "config/entities/x.yaml:5:39: fields.d.required does not fit a computed field "
        "(it has a formula)",
        "config/entities/x.yaml:5:55: fields.d.default does not fit a computed field "
        "(it has a formula)",
        "config/entities/x.yaml:5:67: fields.d.renamed_from does not fit a computed field "
        "(it has a formula)",
        "config/entities/x.yaml:5:84: fields.d.unique does not fit a computed field "
        "(it has a formula)",
    ]


def test_formula_does_not_fit_a_reference(cfg: Config) -> None:
    cfg.write("x.yaml", deal("  other: {type: reference, to: account, formula: 'account'}\n"))
    assert cfg.errors() == [
        "config/entities/x.yaml:5:41: fields.other.formula does not fit a reference field"]


def test_cycle_between_computed_fields(cfg: Config) -> None:
    cfg.write("x.yaml", deal("  a: {type: money, formula: 'b + 1'}\n"
                             "  b: {type: money, formula: '2 * a'}\n"))
    assert cfg.errors() == [
        "config/entities/x.yaml:6:29: formula 1:5: formula cycle: a -> b -> a"]


def test_validation_rules_compile_and_must_be_boolean(cfg: Config) -> None:
    rules = ("validations:\n"
             "  - rule: 'amount > 0'\n"
             "    message: {en: Amount must be positive, zh: 金额必须为正}\n")
    cfg.write("x.yaml", deal("", rules))
    [v] = cfg.load().entity("x").validations
    assert v.message == Label((("en", "Amount must be positive"), ("zh", "金额必须为正")))
    assert v.compiled is not None and v.compiled.holds(MappingContext({"amount": 5}))
    cfg.write("x.yaml", deal("", "validations:\n  - {rule: 'amount + 1', message: no}\n"))
    assert cfg.errors() == [
        "config/entities/x.yaml:6:12: formula 1:1: this formula gives a number, but a "
        "boolean is needed here"]
    cfg.write("x.yaml", deal("", "validations:\n  - {rule: 'amount > 0'}\n"))
    assert cfg.errors() == ["config/entities/x.yaml:6:5: validations.0: missing key 'message'"]


def test_default_formula_is_compiled_with_its_column(cfg: Config) -> None:
    cfg.write("x.yaml", deal("  due: {type: date, default: '=TODAY() + 30'}\n"))
    f = cfg.load().entity("x").field("due")
    assert not f.computed and f.default_formula is not None
    assert f.default_formula.type is FType.DATE
    cfg.write("x.yaml", deal("  due: {type: date, default: '=TODAY() + \"x\"'}\n"))
    [err] = cfg.errors()
    assert err.startswith("config/entities/x.yaml:5:30: formula 1:10: cannot add a date and text")
    cfg.write("x.yaml", deal("  note: {type: text, default: '= not a formula'}\n"))
    [err] = cfg.errors()
    assert err.startswith("config/entities/x.yaml:5:31: formula 1:")


def test_shipped_config_formulas_load() -> None:
    model = load_model(Path(__file__).resolve().parents[1] / "config")
    assert model.entities


def test_cycle_across_entities(cfg: Config) -> None:
    cfg.write("account.yaml", ACCOUNT + "  main: {type: reference, to: x}\n"
              "  best: {type: money, formula: 'main.double'}\n")
    cfg.write("x.yaml", deal("  double: {type: money, formula: 'account.best * 2'}\n"))
    assert cfg.errors() == [
        "config/entities/x.yaml:5:34: formula 1:1: formula cycle: "
        "account.best -> double -> account.best"]


def test_computed_fields_are_measured_with_the_fields_they_read(cfg: Config) -> None:
    """Lists run a computed field with the formula fields it reads inlined: each may be
    within the bound alone, and the one that reads them past it is refused."""
    years = "MAX(" + ", ".join(["YEAR(DATE(amount, amount, amount))"] * 40) + ")"
    cfg.write("x.yaml", deal(f"  years: {{type: integer, formula: '{years}'}}\n"
                             "  twice: {type: integer, formula: 'years + years * 2'}\n"
                             "  once: {type: integer, formula: 'years + 1'}\n"))
    assert cfg.errors() == [
        "config/entities/x.yaml:6:35: formula 1:7: the formula's SQL has more than 20,000 "
        "terms (the limit); simplify it or split it into formula fields (with the formula "
        "fields it reads)"]
