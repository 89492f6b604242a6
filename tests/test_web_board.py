"""The pipeline board (engine/web/pages/board.py): columns, totals through the access policy,
moves through the records service, refusals shown on the card."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.records.aggregate import grouped_totals
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.web_helpers import page_token, sign_in

BOARD = "/e/opportunity/board/stage"


def browser(env: Env, name: str = "admin", password: str = "admin-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def opportunity(env: Env, name: str, amount: str, stage: str, **more: Any) -> dict[str, Any]:
    actor = env.admin.actor()
    account = env.records.create(actor, "account", {"name": f"{name} Ltd"})
    return env.records.create(actor, "opportunity", {
        "name": name, "account": account["id"], "amount": amount, "stage": stage, **more})


def column(html: str, value: str) -> str:
    """The HTML of one board column."""
    found = re.search(rf'<section class="board-column" data-value="{value}".*?</section>', html,
                      re.S)
    assert found, value
    return found.group(0)


def totals(html: str, value: str) -> list[str]:
    return re.findall(r"<strong>([^<]+)</strong>", column(html, value))


def move(client: TestClient, record_id: int, value: str, version: int, *,
         token: str | None = None, fragment: bool = True) -> Any:
    headers = {"HX-Request": "true"} if fragment else {}
    if token is not None:
        headers["X-CSRF-Token"] = token
    return client.post(f"/e/opportunity/{record_id}/move", headers=headers,
                       data={"field": "stage", "value": value, "version": str(version)},
                       follow_redirects=False)


def test_columns_cards_and_totals(env: Env) -> None:
    big = opportunity(env, "Big deal", "12000.50", "proposal")
    opportunity(env, "Small deal", "1000", "proposal")
    opportunity(env, "Early", "500", "prospecting")
    client = browser(env)
    response = client.get(BOARD)
    assert response.status_code == 200
    html = response.text
    values = re.findall(r'<section class="board-column" data-value="([^"]*)"', html)
    assert values == ["prospecting", "qualification", "proposal", "negotiation", "won", "lost"]
    proposal = column(html, "proposal")
    # the most valuable first; title links to the record; money formatted; owner's name
    assert proposal.index("Big deal") < proposal.index("Small deal")
    assert f'href="/e/opportunity/{big["id"]}">Big deal</a>' in proposal
    assert "12,000.50" in proposal and ">admin</p>" in proposal
    assert "2 in this column" in proposal
    assert totals(html, "proposal") == ["13,000.50", "6,500.25"]  # amount, weighted (50%)
    assert totals(html, "prospecting") == ["500.00", "50.00"]  # 10%
    assert totals(html, "won") == ["0.00", "0.00"]
    assert 'src="/static/board.js"' in html and 'draggable="true"' in html
    assert env.client().get("/static/board.js").status_code == 200


def test_not_a_board_field_unknown_entity_and_signed_out(env: Env) -> None:
    client = browser(env)
    for path in ("/e/opportunity/board/source", "/e/opportunity/board/nothing",
                 "/e/nothing/board/stage", "/e/account/board/status"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "<h1>" in response.text  # an error page, not a stack trace
    signed_out = env.client()
    signed_out.headers["Accept"] = "text/html"
    response = signed_out.get(BOARD, follow_redirects=False)
    assert response.status_code in (302, 303, 307)
    assert "/login" in response.headers["location"]


def test_totals_count_only_visible_records(env: Env) -> None:
    deps = departments(env)
    rep = user(env, "rep", "sales_rep", department=deps["SH"])
    place(env, "opportunity", {"name": "Mine", "amount": "100", "stage": "won",
                               "account": opportunity(env, "Seed", "1", "lost",
                                                      lost_reason="price")["account"]},
          owner=rep)
    opportunity(env, "Not mine", "900000", "won")
    client = browser(env, "rep", "a-password")
    html = client.get(BOARD).text
    assert "Mine" in html and "Not mine" not in html and "900,000" not in html
    assert totals(html, "won") == ["100.00", "100.00"]
    assert "0 in this column" in column(html, "lost")  # the admin's lost deal is not counted
    # the same through the service, and for the admin everything
    assert grouped_totals(env.records, rep, "opportunity", "stage",
                          ["amount"])["won"].sums["amount"] == Decimal("100.00")
    admin_won = grouped_totals(env.records, SYSTEM, "opportunity", "stage", ["amount"])["won"]
    assert admin_won.count == 2 and admin_won.sums["amount"] == Decimal("900100.00")


def test_hidden_amount_never_shown(env: Env) -> None:
    departments(env)
    user(env, "mkt", "marketing")
    opportunity(env, "Secret sum", "777777", "proposal")
    html = browser(env, "mkt", "a-password").get(BOARD).text
    assert "Secret sum" in html
    assert "777" not in html and "388" not in html  # neither amount nor weighted
    assert "board-amount" not in html and 'draggable="true"' not in html  # no update right


def test_my_records_filter(env: Env) -> None:
    deps = departments(env)
    boss = user(env, "boss", "sales_manager", department=deps["EAST"])
    account = env.records.create(SYSTEM, "account", {"name": "Shared Ltd"})
    place(env, "opportunity", {"name": "Boss deal", "amount": "10", "account": account["id"]},
          owner=boss)
    place(env, "opportunity", {"name": "Team deal", "amount": "20", "account": account["id"]},
          department=deps["SH"])
    client = browser(env, "boss", "a-password")
    assert "Team deal" in client.get(BOARD).text
    mine = client.get(BOARD, params={"mine": "1"}).text
    assert "Boss deal" in mine and "Team deal" not in mine
    assert totals(mine, "prospecting") == ["10.00", "1.00"]
    assert 'id="board-mine" type="checkbox" name="mine" value="1" checked' in mine


def test_move_updates_record_card_and_totals(env: Env) -> None:
    deal = opportunity(env, "Mover", "2000", "prospecting")
    client = browser(env)
    token = page_token(client, BOARD)
    response = move(client, deal["id"], "negotiation", deal["version"], token=token)
    assert response.status_code == 200
    html = response.text
    assert f'id="board-card-{deal["id"]}"' in html and 'data-value="negotiation"' in html
    assert f'name="version" value="{deal["version"] + 1}"' in html
    assert re.search(r'id="board-totals-3" data-board-swap>.*?1,600\.00', html, re.S)  # 80%
    saved = env.records.get(SYSTEM, "opportunity", deal["id"])
    assert saved["stage"] == "negotiation" and saved["version"] == deal["version"] + 1
    history = env.records.history(SYSTEM, "opportunity", deal["id"])
    assert any(h.get("field") == "stage" for h in history)


def test_move_without_script_redirects_to_the_board(env: Env) -> None:
    deal = opportunity(env, "Form mover", "10", "prospecting")
    client = browser(env)
    token = page_token(client, BOARD)
    response = client.post(f"/e/opportunity/{deal['id']}/move", follow_redirects=False, data={
        "field": "stage", "value": "won", "version": str(deal["version"]), "csrf_token": token,
        "mine": "1"})
    assert response.status_code == 303
    assert response.headers["location"] == BOARD + "?mine=1"
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["stage"] == "won"


def test_refused_move_shows_the_error_on_the_card(env: Env) -> None:
    deal = opportunity(env, "Keeper", "300", "proposal")
    client = browser(env)
    token = page_token(client, BOARD)
    response = move(client, deal["id"], "lost", deal["version"], token=token)
    assert response.status_code == 422
    html = response.text
    assert 'class="board-error" role="alert">A lost opportunity needs a lost reason' in html
    assert 'data-value="proposal"' in html  # the card as it still is: back in its column
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["stage"] == "proposal"
    # an option that is not a column
    response = move(client, deal["id"], "nowhere", deal["version"], token=token)
    assert response.status_code == 400
    assert "Choose one of the columns of the board." in response.text
    # in Chinese, the rule's own Chinese message
    client.post("/account/language", data={"language": "zh-CN", "csrf_token": token})
    response = move(client, deal["id"], "lost", deal["version"], token=token)
    assert response.status_code == 422 and "丢单必须填写丢单原因" in response.text
    zh = client.get(BOARD).text  # columns titled by the options' Chinese labels
    assert '<h2 id="board-col-4">赢单</h2>' in zh and "加权金额" in zh


def test_stale_version_is_a_conflict(env: Env) -> None:
    deal = opportunity(env, "Racer", "300", "proposal")
    env.records.update(SYSTEM, "opportunity", deal["id"], {"next_step": "call"}, deal["version"])
    client = browser(env)
    response = move(client, deal["id"], "won", deal["version"], token=page_token(client, BOARD))
    assert response.status_code == 409
    assert "changed by someone else" in response.text
    assert f'name="version" value="{deal["version"] + 1}"' in response.text  # fresh card
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["stage"] == "proposal"


def test_move_without_csrf_token_is_refused(env: Env) -> None:
    deal = opportunity(env, "Guarded", "300", "proposal")
    client = browser(env)
    response = move(client, deal["id"], "won", deal["version"])
    assert response.status_code == 403
    response = move(client, deal["id"], "won", deal["version"], token="forged")
    assert response.status_code == 403
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["stage"] == "proposal"


def test_moves_the_user_may_not_make(env: Env) -> None:
    deps = departments(env)
    user(env, "exec", "executive")
    rep = user(env, "rep", "sales_rep", department=deps["SH"])
    user(env, "pre", "presales", department=deps["SH"])
    deal = opportunity(env, "Watched", "300", "proposal")
    exec_client = browser(env, "exec", "a-password")
    response = move(exec_client, deal["id"], "won", deal["version"],
                    token=page_token(exec_client, BOARD))
    assert response.status_code == 403
    assert "board-error" in response.text and 'data-value="proposal"' in response.text
    rep_client = browser(env, "rep", "a-password")  # cannot see it at all: 404, no card
    response = move(rep_client, deal["id"], "won", deal["version"],
                    token=page_token(rep_client, BOARD))
    assert response.status_code == 404
    assert "Watched" not in response.text and "board-card" not in response.text
    # presales: stage is read-only for the role; on a deal they share as a team member
    env.records.set_team_member(SYSTEM, "opportunity", deal["id"],
                                env.users.by_name("pre").id, "edit")
    pre_client = browser(env, "pre", "a-password")
    assert 'draggable="true"' not in pre_client.get(BOARD).text
    response = move(pre_client, deal["id"], "won", deal["version"] + 0,
                    token=page_token(pre_client, BOARD))
    assert response.status_code == 422 and "read-only" in response.text
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["stage"] == "proposal"
    del rep


def test_more_link_when_a_column_is_long(env: Env) -> None:
    account = env.records.create(SYSTEM, "account", {"name": "Many"})
    result = env.records.bulk_create(SYSTEM, "opportunity", [
        {"name": f"Deal {i:02}", "account": account["id"], "amount": str(i), "stage": "won"}
        for i in range(55)])
    assert result.created == 55
    html = browser(env).get(BOARD).text
    won = column(html, "won")
    assert won.count('<article class="board-card') == 50
    assert "Deal 54" in won and "Deal 04" not in won  # the 50 most valuable
    assert 'href="/e/opportunity?stage=won&amp;sort=-amount">See all 55 in the list</a>' in won
    assert totals(html, "won")[0] == "1,485.00"  # every record counts in the totals


def test_no_read_right_is_forbidden(env: Env) -> None:
    user(env, "agent", "service_agent")
    opportunity(env, "Elsewhere", "5", "won")
    client = browser(env, "agent", "a-password")
    response = client.get(BOARD)
    assert response.status_code == 403
    assert "Elsewhere" not in response.text


def test_records_without_a_value_get_a_column(env: Env) -> None:
    opportunity(env, "Unstaged", "40", "won")
    blank = opportunity(env, "Blank stage", "60", "won")
    env.records.update(SYSTEM, "opportunity", blank["id"], {"stage": None}, blank["version"])
    html = browser(env).get(BOARD).text
    last = column(html, "")
    assert "Without a value" in last and "Blank stage" in last and "Unstaged" not in last
    assert totals(html, "")[0] == "60.00"
    assert '<option value="" selected>—</option>' in last  # its move box starts blank
