from typing import Any
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from tests.conftest import Env
from tests.test_api_fuzz import _odd_texts, _json, _texts

S = settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))

def check(v: Any) -> None:
    if isinstance(v, str):
        v.encode("utf-8")

@pytest.mark.parametrize("which", ["odd", "json", "texts", "emails", "bigx"])
@S
@given(data=st.data())
def test_f(env: Env, which: str, data: Any) -> None:
    strat = {"odd": _odd_texts, "json": _json, "texts": _texts, "emails": st.emails(),
             "bigx": st.integers(200, 1_200_000).map(lambda n: "x" * n)}[which]
    v = data.draw(strat)
    check(v)
    if which in ("emails", "bigx"):
        assert len(v) < 100
