"""`crm formula EXPR --entity E [--record JSON]`: check, evaluate, print JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.cli import main
from tests.conftest import CONFIG


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "formula", *args])
    return result.exit_code, result.stdout, result.stderr


def test_evaluates_on_a_record() -> None:
    record = {"amount": "1000", "stage": "proposal", "budget": "confirmed",
              "account": {"name": "Acme", "credit_limit": "750.5"}}
    code, out, err = run("weighted", "--entity", "opportunity",
                         "--record", json.dumps(record))
    assert (code, json.loads(out), err) == (0, {"value": "500.00", "type": "number"}, "")
    code, out, _ = run("account.credit_limit - weighted > 250", "--entity", "opportunity",
                       "--record", json.dumps(record))
    assert (code, json.loads(out)) == (0, {"value": True, "type": "boolean"})
    code, out, _ = run("score", "--entity", "opportunity", "--record", json.dumps(record))
    assert json.loads(out) == {"value": "30", "type": "number"}
    code, out, _ = run("DATE(2024, 2, 28) + 1", "--entity", "account")
    assert json.loads(out) == {"value": "2024-02-29", "type": "date"}
    code, out, _ = run("amount", "--entity", "opportunity")
    assert json.loads(out) == {"value": None, "type": "number"}


@pytest.mark.parametrize(("expr", "message"), [
    ("amout * 2", "1:1: unknown field 'amout'; did you mean 'amount'?"),
    ('amount & "x"', "1:8: & joins texts, but the left side is a number: "
                     "convert it with TEXT(...)"),
])
def test_formula_errors_exit_1(expr: str, message: str) -> None:
    assert run(expr, "--entity", "opportunity") == (1, "", message + "\n")


def test_bad_record_and_entity() -> None:
    assert run("1", "--entity", "nope")[0] == 1
    code, _, err = run("1", "--entity", "opportunity", "--record", '{"amount": "abc"}')
    assert code == 1 and err.startswith("error: --record: amount: ")
    code, _, err = run("1", "--entity", "opportunity", "--record", "[1]")
    assert (code, err) == (1, "error: --record is a JSON object of field values\n")
    code, _, err = run("1", "--entity", "opportunity", "--record", '{"weighted": 1}')
    assert (code, err) == (1, "error: --record: weighted: is computed and cannot be given\n")
