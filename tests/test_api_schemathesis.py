"""Schemathesis over the generated /openapi.json: every operation of the JSON API, called
through the ASGI app with requests built from its own description, answers no 5xx, with
a status code the description lists and a body that matches the schema it gives.

Two callers: an administrator (the whole document) and a sales rep (the document a
restricted role gets: fewer entities, fields and routes). Each operation gets a few
examples (more for a handful of representative entities), generated deterministically
(`derandomize`), so a failure comes back the same on the next run; the module stays within
a couple of minutes on two cores. tests/test_api_fuzz.py fuzzes bodies and parameters
beyond what the description allows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.web.app import create_app
from tests.conftest import Env
from tests.db_templates import TEST_HASHER
from tests.test_api import new_account, new_opportunity

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
DEEP = frozenset({"account", "opportunity", "quote", "knowledge_article", "notifications",
                  "reports", "pipeline", "approvals"})
"""Operations under /api/<one of these>/ get DEEP_EXAMPLES examples that fit the
description and as many that do not (negative: a 4xx the description lists, never a 5xx);
every other operation EXAMPLES that fit."""
EXAMPLES = 2
DEEP_EXAMPLES = 10


def _settings(examples: int) -> Callable[[Any], Any]:
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


def _fuzz(env: Env, token: str, examples: int = EXAMPLES,
          deep_examples: int = DEEP_EXAMPLES, only_deep: bool = False) -> list[str]:
    """Run every operation of the document `token`'s caller gets; the failures, described."""
    app = create_app(env.model, env.engine, password_hasher=TEST_HASHER)
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth)
    failures: list[str] = []
    runs = [(result.ok(), mode) for result in schema.get_all_operations()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    for operation, mode in runs:
        deep = operation.path.split("/")[2] in DEEP
        if not deep and (mode is GenerationMode.NEGATIVE or only_deep):
            continue

        @_settings(deep_examples if deep else examples)
        @given(case=operation.as_strategy(generation_mode=mode),
               known=st.sampled_from([None, 1, 2, 3]))
        def call(case: Any, known: int | None) -> None:
            if known is not None and "record_id" in (case.path_parameters or {}):
                case.path_parameters["record_id"] = known  # a record that exists, often
            case.call_and_validate(headers=auth, checks=CHECKS)

        try:
            call()
        except Exception as exc:  # every operation runs; all failures are reported at once
            failures.append(f"{operation.label} ({mode}): {type(exc).__name__}: "
                            f"{str(exc)[:1500]}")
    return failures


def _data(env: Env, api: Any) -> None:
    """A few records, so ids 1 and 2 often name one that exists."""
    account = new_account(api, "Fuzz Account")
    new_account(api, "Fuzz Account Two")
    new_opportunity(api, account["id"], "Fuzz deal", amount="1000.00")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_api_keeps_its_description_for_an_administrator(api: Any, env: Env) -> None:
    _data(env, api)
    failures = _fuzz(env, env.users.new_token("admin"))
    assert not failures, "\n\n".join(failures)


def test_the_api_keeps_its_description_for_a_sales_rep(api: Any, env: Env) -> None:
    """On SQLite every operation the rep may use; on PostgreSQL the representative ones
    (the module's time stays bounded)."""
    _data(env, api)
    env.users.add("fuzz_rep", ["sales_rep"])
    # fewer examples: the operations are those of the administrator's run, answering less
    failures = _fuzz(env, env.users.new_token("fuzz_rep"), examples=1, deep_examples=5,
                     only_deep=env.engine.dialect.name == "postgresql")
    assert not failures, "\n\n".join(failures)
