"""Validation rules that some roles may override (`overridable_by`, engine/metadata/model.py
Validation.binds, checked in engine/runtime/records/computed.py failing_rules): a role
listed saves past the rule on create, update and import; every other role is held to it,
through the service and the JSON API alike, on SQLite and PostgreSQL. A role roles.yaml
does not define is a config error at its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.metadata import load_model
from engine.metadata.errors import ConfigErrors
from engine.runtime.access import SYSTEM
from engine.runtime.errors import Invalid
from engine.runtime.records.imports import bulk_create
from tests.access_helpers import user
from tests.conftest import Env, EnvFactory, replace_roles

CUSTOMER = """\
entity: customer
label: {en: Customer, zh: 客户}
title: name
fields:
  name:         {type: text, required: true, label: {en: Name, zh: 名称}}
  credit_limit: {type: money, min: 0, label: {en: Credit limit, zh: 信用额度}}
"""

DEAL = """\
entity: deal
label: {en: Deal, zh: 交易}
title: name
fields:
  name:     {type: text, required: true, label: {en: Name, zh: 名称}}
  customer: {type: reference, to: customer, required: true, label: {en: Customer, zh: 客户}}
  amount:   {type: money, min: 0, label: {en: Amount, zh: 金额}}
validations:
  - rule: 'OR(ISBLANK(customer.credit_limit), amount <= customer.credit_limit)'
    field: amount
    message: {en: The deal exceeds the credit limit, zh: 交易超出信用额度}
    overridable_by: [credit_manager]
  - rule: 'amount <> 13'
    field: amount
    message: {en: Thirteen is not a price, zh: 13 不是价格}
"""

ROLES = """\
roles:
  admin:
    label: {en: Administrator, zh: 系统管理员}
    admin: true
  credit_manager:
    label: {en: Credit manager, zh: 信用经理}
    entities: {customer: all, deal: all}
  seller:
    label: {en: Seller, zh: 销售}
    entities: {customer: all, deal: all}
"""

EXCEEDS = "The deal exceeds the credit limit"


def write_config(config: Path, deal: str = DEAL) -> Path:
    (config / "entities").mkdir(parents=True, exist_ok=True)
    (config / "entities" / "customer.yaml").write_text(CUSTOMER, encoding="utf-8")
    (config / "entities" / "deal.yaml").write_text(deal, encoding="utf-8")
    replace_roles(config, ROLES)
    return config


@pytest.fixture
def world(make_env: EnvFactory, tmp_path: Path) -> Env:
    return make_env(write_config(tmp_path / "config"))


def refusal(exc: pytest.ExceptionInfo[Invalid]) -> str:
    return str(exc.value.fields["amount"])


def test_a_listed_role_saves_past_the_rule_and_others_are_held(world: Env) -> None:
    seller = user(world, "sam", "seller")
    manager = user(world, "cat", "credit_manager")
    acme = world.records.create(SYSTEM, "customer", {"name": "Acme", "credit_limit": "1000"})
    with pytest.raises(Invalid) as refused:
        world.records.create(seller, "deal", {"name": "Big", "customer": acme["id"],
                                              "amount": "1500"})
    assert refusal(refused) == EXCEEDS
    big = world.records.create(manager, "deal", {"name": "Big", "customer": acme["id"],
                                                 "amount": "1500"})
    assert big["amount"] == 1500
    small = world.records.create(seller, "deal", {"name": "Small", "customer": acme["id"],
                                                  "amount": "500"})
    with pytest.raises(Invalid) as refused:
        world.records.update(seller, "deal", small["id"], {"amount": "2000"}, small["version"])
    assert refusal(refused) == EXCEEDS
    raised = world.records.update(manager, "deal", small["id"], {"amount": "2000"},
                                  small["version"])
    assert raised["amount"] == 2000


def test_only_the_listed_rule_is_overridden(world: Env) -> None:
    manager = user(world, "cat", "credit_manager")
    acme = world.records.create(SYSTEM, "customer", {"name": "Acme", "credit_limit": "10"})
    with pytest.raises(Invalid) as refused:
        world.records.create(manager, "deal", {"name": "D", "customer": acme["id"],
                                               "amount": "13"})
    assert refusal(refused) == "Thirteen is not a price"


def test_a_user_holding_the_role_among_others_overrides(world: Env) -> None:
    both = user(world, "bo", "seller", "credit_manager")
    acme = world.records.create(SYSTEM, "customer", {"name": "Acme", "credit_limit": "10"})
    deal = world.records.create(both, "deal", {"name": "D", "customer": acme["id"],
                                               "amount": "99"})
    assert deal["amount"] == 99


def test_imports_hold_each_row_to_the_importers_roles(world: Env) -> None:
    seller = user(world, "sam", "seller")
    manager = user(world, "cat", "credit_manager")
    acme = world.records.create(SYSTEM, "customer", {"name": "Acme", "credit_limit": "100"})
    rows = [{"name": "Fits", "customer": acme["id"], "amount": "50"},
            {"name": "Too big", "customer": acme["id"], "amount": "500"}]
    by_seller = bulk_create(world.records, seller, "deal", rows)
    assert len(by_seller.ids) == 1
    assert [(i, {k: str(v) for k, v in p.items()}) for i, p in by_seller.errors] == [
        (1, {"amount": EXCEEDS})]
    by_manager = bulk_create(world.records, manager, "deal", rows)
    assert len(by_manager.ids) == 2 and by_manager.errors == []


def test_the_api_refuses_the_seller_and_takes_the_manager(world: Env) -> None:
    user(world, "sam", "seller")
    user(world, "cat", "credit_manager")
    acme = world.records.create(SYSTEM, "customer", {"name": "Acme", "credit_limit": "100"})
    body = {"name": "Big", "customer": acme["id"], "amount": "500"}
    seller = world.client(world.users.new_token("sam"))
    answer = seller.post("/api/deal", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"] == {"amount": EXCEEDS}
    zh = seller.post("/api/deal", json=body, headers={"Accept-Language": "zh-CN"})
    assert zh.json()["error"]["fields"] == {"amount": "交易超出信用额度"}
    manager = world.client(world.users.new_token("cat"))
    assert manager.post("/api/deal", json=body).status_code == 201


def test_an_unknown_role_is_an_error_at_its_place(tmp_path: Path) -> None:
    deal = DEAL.replace("overridable_by: [credit_manager]",
                        "overridable_by: [admin, credit_manger]")
    config = write_config(tmp_path / "config", deal)
    with pytest.raises(ConfigErrors) as failed:
        load_model(config)
    assert [str(e) for e in failed.value.errors] == [
        f"{config / 'entities' / 'deal.yaml'}:12:29: validations.0.overridable_by: "
        "no role 'credit_manger' (did you mean 'credit_manager'?)"]


def test_overridable_by_must_list_roles(tmp_path: Path) -> None:
    deal = DEAL.replace("overridable_by: [credit_manager]", "overridable_by: []")
    with pytest.raises(ConfigErrors) as failed:
        load_model(write_config(tmp_path / "config", deal))
    assert "overridable_by" in str(failed.value)
