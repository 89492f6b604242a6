"""docs/flows.md: every key of the flow schema is documented, and its example is a valid
flow that runs as described (on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine.metadata.loader import schema
from engine.runtime.errors import Invalid
from tests.conftest import EnvFactory
from tests.test_flows_hook import flows_env, opportunity

DOC = Path(__file__).resolve().parents[1] / "docs" / "flows.md"


def _keys(node: Any) -> set[str]:
    """Every property name and enum value anywhere in a JSON Schema."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                found |= set(value)
            if key == "enum" and isinstance(value, list):
                found |= {v for v in value if isinstance(v, str)}
            found |= _keys(value)
    elif isinstance(node, list):
        for item in node:
            found |= _keys(item)
    return found


def test_every_flow_key_is_documented() -> None:
    keys = _keys(schema("flow"))
    assert {"flow", "stages", "guards", "require", "notify", "create", "stage"} <= keys
    documented = set(re.findall(r"`([a-z_]+)`", DOC.read_text(encoding="utf-8")))
    assert keys - documented == set()


def example() -> str:
    text = DOC.read_text(encoding="utf-8")
    (block,) = re.findall(r"## A flow file\n\n```yaml\n(.*?)```", text, re.DOTALL)
    return block


def test_the_example_is_a_flow_that_works(make_env: EnvFactory, config_dir: Path) -> None:
    env = flows_env(make_env, config_dir, example())
    admin = env.admin.actor()
    deal = opportunity(env, name="doc", amount="100")
    with pytest.raises(Invalid) as caught:  # prospecting may not jump to won
        env.records.update(admin, "opportunity", deal["id"], {"stage": "won"},
                           deal["version"])
    assert "may move only to: qualification, lost" in caught.value.fields["stage"]
    for stage in ("qualification", "proposal"):
        deal = env.records.update(admin, "opportunity", deal["id"], {"stage": stage},
                                  deal["version"])
    with pytest.raises(Invalid) as caught:  # no signed contract yet
        env.records.update(admin, "opportunity", deal["id"], {"stage": "won"},
                           deal["version"])
    assert caught.value.fields == {"stage": "A won deal needs a signed contract"}
    product = env.records.create(admin, "product", {"name": "P", "code": "P-1"})
    contract = env.records.create(admin, "contract", {
        "name": "C", "account": deal["account"], "opportunity": deal["id"]})
    env.records.create(admin, "contract_line", {"contract": contract["id"],
                                                "product": product["id"],
                                                "unit_price": "100"})
    contract = env.records.get(admin, "contract", contract["id"])
    env.records.update(admin, "contract", contract["id"],
                       {"status": "signed", "signed_on": "2026-12-01"}, contract["version"])
    deal = env.records.get(admin, "opportunity", deal["id"])
    deal = env.records.update(admin, "opportunity", deal["id"], {"stage": "won"},
                              deal["version"])
    assert deal["close_date"] is not None
    t = env.records.schema.table("activity")
    with env.engine.connect() as conn:
        subjects = [r.subject for r in conn.execute(
            t.select().where(t.c.opportunity == deal["id"]))]
    assert subjects == ["Kick-off: doc"]
