"""Forms kept over a sign-in (engine/runtime/drafts.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from engine.runtime.drafts import MAX_DRAFT, FormDrafts
from tests.conftest import Env


def test_a_draft_is_its_users_and_is_handed_back_once(env: Env) -> None:
    drafts = FormDrafts(env.engine, env.records.schema)
    other = env.users.add("bo", ["sales_rep"], password="bo-password")
    fields = [("name", "Acme 北京"), ("tags", "a"), ("tags", "b")]
    draft_id = drafts.keep(env.admin.id, "/e/account/new", fields)
    assert draft_id is not None
    with env.engine.connect() as conn:
        stored = conn.execute(select(drafts.table)).mappings().one()
    assert draft_id not in stored.values()  # only its digest
    assert drafts.peek(draft_id, other.id) is None
    assert drafts.take(draft_id, other.id) is None
    kept = drafts.take(draft_id, env.admin.id)
    assert kept is not None and (kept.path, kept.fields) == ("/e/account/new", fields)
    assert drafts.peek(draft_id, env.admin.id) is None
    assert drafts.peek("x" * 10_000, env.admin.id) is None


def test_a_form_too_large_is_not_kept(env: Env) -> None:
    drafts = FormDrafts(env.engine, env.records.schema)
    assert drafts.keep(env.admin.id, "/e/account/new", [("notes", "x" * MAX_DRAFT)]) is None
