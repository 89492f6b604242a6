"""Names of linked records read in the list's own query (engine/runtime/records/names.py):
the same names `fields.titles` gives, under the same read predicate, in one statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from engine.runtime.access import SYSTEM
from engine.runtime.records.query import parse_list_params
from engine.web.pages.fields import titles, user_names
from tests.access_helpers import departments, place, user
from tests.conftest import Env


def listed(env: Env, actor: Any, entity: str, links: dict[str, str]) -> Any:
    query = parse_list_params(env.model.entity(entity), {"page_size": "200"})
    return env.records.list_records(actor, entity, query, links=links)


def test_names_match_titles_for_every_reader_in_one_statement(env: Env) -> None:
    partner = user(env, "dealer", "partner")  # reads the accounts they own or share
    mine = place(env, "account", {"name": "Mine"}, owner=partner)["id"]
    theirs = env.records.create(SYSTEM, "account", {"name": "Theirs"})["id"]
    binned = place(env, "account", {"name": "Binned"}, owner=partner)["id"]
    for account in (mine, theirs, binned):
        place(env, "opportunity", {"name": f"Deal {account}", "account": account},
              owner=partner)
    env.records.delete(SYSTEM, "account", binned)
    links = {"account": "account", "owner_id": "crm_user"}
    statements: list[str] = []

    def seen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        statements.append(statement)

    for actor in (partner, env.admin.actor()):
        statements.clear()
        event.listen(env.engine, "before_cursor_execute", seen)
        try:
            page = listed(env, actor, "opportunity", links)
        finally:
            event.remove(env.engine, "before_cursor_execute", seen)
        # The names come with the rows: no statement of their own.
        assert sum("FROM account" in s for s in statements) == 1
        assert sum("crm_user" in s for s in statements) == 1
        assert page.named == {"account", "owner_id"}
        ids = [r["account"] for r in page.items]
        expected = {("account", i): n for i, n in titles(
            env.model, env.records, actor, "account", ids).items()}
        owners = [r["owner_id"] for r in page.items if r["owner_id"] is not None]
        expected |= {("crm_user", i): n for i, n in user_names(env.records, owners).items()}
        assert page.names == expected
        # The rows keep their own fields only: the names are not among them.
        assert all(not any(k.startswith("_name__") for k in r) for r in page.items)
    partner_names = listed(env, partner, "opportunity", links).names
    assert partner_names[("account", mine)] == "Mine"
    assert ("account", theirs) not in partner_names  # not readable: no name
    assert ("account", binned) not in partner_names  # in the recycle bin
    assert partner_names[("crm_user", partner.user_id)] == "dealer"


def test_a_self_link_and_a_blank_title_read_right(env: Env) -> None:
    account = env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    boss = env.records.create(SYSTEM, "contact", {"full_name": "Boss", "account": account})
    aide = env.records.create(SYSTEM, "contact", {"full_name": "Aide", "account": account,
                                                  "reports_to": boss["id"]})
    page = listed(env, SYSTEM, "contact", {"reports_to": "contact", "account": "account"})
    assert page.names[("contact", boss["id"])] == "Boss"  # contact → contact, aliased
    assert page.names[("account", account)] == "Acme"
    assert {r["id"] for r in page.items} == {boss["id"], aide["id"]}


def test_links_to_entities_the_reader_may_not_read_give_no_names(env: Env) -> None:
    partner = user(env, "dealer2", "partner")
    some = departments(env)["SH"]
    account = env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    deal = place(env, "opportunity", {"name": "Deal", "account": account}, owner=partner,
                 department=some)
    assert deal["department_id"] == some
    page = listed(env, partner, "opportunity", {"department_id": "department"})
    assert deal["id"] in {r["id"] for r in page.items}
    assert page.names == {}  # partners read no department: numbers only, no names
