"""engine/runtime/db.py: what every connection of an engine promises, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from engine.runtime.db import TooDeep, open_engine


@pytest.mark.parametrize("depth", [200, 20_000])
def test_a_statement_too_deep_for_the_parser_is_a_bad_request(db_url: str, depth: int) -> None:
    """The last guard behind the formula bounds: SQLite's parser stack (about 100 levels)
    and PostgreSQL's parser memory or stack depth answer 400 query_too_deep, not a 500."""
    engine = open_engine(db_url)
    try:
        nested = "SELECT " + "abs(" * depth + "1" + ")" * depth
        shallow_enough = engine.dialect.name == "postgresql" and depth == 200
        with engine.connect() as conn:
            if shallow_enough:
                assert conn.execute(text(nested)).scalar() == 1
                return
            with pytest.raises(TooDeep) as caught:
                conn.execute(text(nested))
            assert caught.value.status == 400 and caught.value.code == "query_too_deep"
            assert "nests too deeply" in str(caught.value.message)
            conn.rollback()  # PostgreSQL ends the transaction; the connection stays good
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_other_database_errors_pass_through(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn, pytest.raises(Exception) as caught:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert not isinstance(caught.value, TooDeep)
    finally:
        engine.dispose()
