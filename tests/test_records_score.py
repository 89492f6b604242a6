"""A score explained in words (engine/runtime/records/score.py, through Records.explain):
each term names the answers it reads, with option labels, in the reader's language."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.messages import localize
from engine.runtime.access import SYSTEM
from engine.runtime.errors import NotFound
from engine.runtime.records.score import points
from engine.web.i18n import translations
from tests.access_helpers import add_fields, user
from tests.conftest import Env, EnvFactory


def zh(text: str) -> str:
    return localize(text, translations()["zh-CN"].gettext, "zh-CN")


def test_each_term_reads_its_answers(env: Env) -> None:
    acme = env.records.create(SYSTEM, "account", {"name": "Acme"})
    deal = env.records.create(SYSTEM, "opportunity", {
        "name": "D", "account": acme["id"], "budget": "estimated",
        "authority": "decision_maker", "timeline": "this_year"})
    out = env.records.explain(SYSTEM, "opportunity", deal["id"], "score")
    assert out["value"] == 50
    assert [t["reads"] for t in out["terms"]] == [
        [{"field": "budget", "value": "estimated"}],
        [{"field": "authority", "value": "decision_maker"}],
        [{"field": "need", "value": None}],
        [{"field": "timeline", "value": "this_year"}]]
    assert [t["text"] for t in out["terms"]] == [
        "Budget: Estimated → 15", "Authority: Decision maker → 25", "Need: no answer → 0",
        "Timeline: This year → 10"]
    C = "\uff1a"  # the full-width colon Chinese writes after a label
    assert [zh(t["text"]) for t in out["terms"]] == [
        f"预算{C}估计 → 15", f"决策权{C}决策者 → 25", f"需求{C}未填写 → 0", f"时间表{C}今年 → 10"]
    assert out["terms"][0]["formula"] == 'CASE(budget, "confirmed", 30, "estimated", 15, 0)'


def test_constants_and_linked_fields_are_named_not_valued(
        make_env: EnvFactory, config_dir: Path) -> None:
    add_fields(config_dir, "opportunity",
               "fit: {type: integer, label: {en: Fit, zh: 匹配度}, formula: "
               "'IF(account.tier = \"strategic\", 10, 0) + 3 + IF(amount > 1000, 5, 0)'}")
    env = make_env(config_dir)
    acme = env.records.create(SYSTEM, "account", {"name": "Acme", "tier": "strategic"})
    deal = env.records.create(SYSTEM, "opportunity", {
        "name": "D", "account": acme["id"], "amount": "2500"})
    out = env.records.explain(SYSTEM, "opportunity", deal["id"], "fit")
    assert out["value"] == 18
    assert [t["text"] for t in out["terms"]] == [
        "Account: a value of the linked record → 10", "Every record → 3", "Amount: 2500.00 → 5"]
    assert out["terms"][0]["reads"] == [] and out["terms"][1]["reads"] == []
    assert zh(out["terms"][1]["text"]) == "每条记录 → 3"
    # marketing may not see amounts, so not a score that reads one either
    marketing = user(env, "mkt", "marketing")
    with pytest.raises(NotFound):
        env.records.explain(marketing, "opportunity", deal["id"], "fit")


def test_points_read_as_plain_numbers() -> None:
    assert [points(v) for v in (Decimal("30.0000"), Decimal("2.50"), 7, None)] == [
        "30", "2.5", "7", "—"]
