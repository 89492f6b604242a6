"""The pipeline board (engine/web/pages/board.py): columns, totals through the access policy,
moves through the records service, refusals shown on the card."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.records.aggregate import grouped_totals
from engine.runtime.records.query import Condition, ListQuery
from tests.access_helpers import departments, place, user
from tests.conftest import Env, EnvFactory
from tests.deals import accept_quote
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
    assert "¥12,000.50" in proposal and ">admin</p>" in proposal
    assert "2 in this column" in proposal
    assert totals(html, "proposal") == ["¥13,000.50", "¥6,500.25"]  # amount, weighted (50%)
    assert totals(html, "prospecting") == ["¥500.00", "¥50.00"]  # 10%
    assert totals(html, "won") == ["¥0.00", "¥0.00"]
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
    assert totals(html, "won") == ["¥100.00", "¥100.00"]
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
    assert totals(mine, "prospecting") == ["¥10.00", "¥1.00"]
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
    deal = accept_quote(env.records, deal["id"])  # a deal is won on an accepted quote
    client = browser(env)
    token = page_token(client, BOARD)
    response = client.post(f"/e/opportunity/{deal['id']}/move", follow_redirects=False, data={
        "field": "stage", "value": "won", "version": str(deal["version"]), "csrf_token": token,
        "mine": "1"})
    assert response.status_code == 303
    assert response.headers["location"] == BOARD + "?mine=1"
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["stage"] == "won"


def test_refused_move_shows_the_error_on_the_card(make_env: EnvFactory,
                                                  config_dir: Path) -> None:
    # a rule about the whole record (no `field:`) cannot be fixed on the card: it is shown
    path = config_dir / "entities" / "opportunity.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("    field: lost_reason\n", ""),
                    encoding="utf-8")
    env = make_env(config_dir)
    deal = opportunity(env, "Keeper", "300", "proposal")
    client = browser(env)
    token = page_token(client, BOARD)
    response = move(client, deal["id"], "lost", deal["version"], token=token)
    assert response.status_code == 422
    html = response.text
    assert 'class="board-error" role="alert">A lost opportunity needs a lost reason' in html
    assert "board-prompt" not in html
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
    assert totals(html, "won")[0] == "¥1,485.00"  # every record counts in the totals


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
    assert totals(html, "")[0] == "¥60.00"
    assert '<option value="" selected>—</option>' in last  # its move box starts blank


# -- compact cards, filters, fields asked for in place --------------------------------------


def card_html(html: str, record_id: int) -> str:
    found = re.search(rf'<article class="board-card[^"]*" id="board-card-{record_id}".*?</article>',
                      html, re.S)
    assert found, record_id
    return found.group(0)


def lost_reason_rule(config_dir: Path, *more_rules: str) -> Path:
    """The shipped config with the lost-reason rule naming its field (`field: lost_reason`),
    and more rules for opportunities."""
    path = config_dir / "entities" / "opportunity.yaml"
    text = path.read_text(encoding="utf-8")
    if "field: lost_reason" not in text:
        message = ("    message: {en: A lost opportunity needs a lost reason, "
                   "zh: 丢单必须填写丢单原因}\n")
        assert message in text
        text = text.replace(message, message + "    field: lost_reason\n")
    path.write_text(text.rstrip("\n") + "\n" + "".join(more_rules), encoding="utf-8")
    return config_dir


def test_cards_are_compact(env: Env) -> None:
    deal = opportunity(env, "Compact", "4200", "proposal", close_date="2031-03-31")
    html = browser(env).get(BOARD).text
    card = card_html(html, deal["id"])
    # title, account, amount, close date, owner; nothing else of the record
    assert ">Compact</a>" in card and ">Compact Ltd</p>" in card
    assert "¥4,200.00" in card and "Mar 31, 2031" in card and ">admin</p>" in card
    assert "Expected close date: </span>" in card  # labelled for screen readers
    # the move control sits in the card's small menu, closed until opened
    menu = re.search(r'<details class="board-menu">.*?</details>', card, re.S)
    assert menu and '<form class="board-move"' in menu.group(0)
    assert card.count("<form") == 1 and "Move card" in menu.group(0)
    assert 'aria-label="Move: Compact"' in menu.group(0)


def test_filter_by_owner_and_department(env: Env) -> None:
    deps = departments(env)
    boss = user(env, "boss", "sales_manager", department=deps["EAST"])
    rep = user(env, "rep", "sales_rep", department=deps["SH"])
    account = env.records.create(SYSTEM, "account", {"name": "Filtered Ltd"})
    data = {"account": account["id"], "stage": "proposal"}
    place(env, "opportunity", {**data, "name": "Boss deal", "amount": "10"}, owner=boss,
          department=deps["EAST"])
    place(env, "opportunity", {**data, "name": "Rep deal", "amount": "20"}, owner=rep,
          department=deps["SH"])
    opportunity(env, "Admin deal", "40", "proposal")  # no department: the boss cannot see it
    client = browser(env, "boss", "a-password")
    html = client.get(BOARD).text
    assert "Boss deal" in html and "Rep deal" in html and "Admin deal" not in html
    # the lists offer only owners and departments of records the boss can see
    owners = re.search(r'<select id="board-owner" name="owner_id">.*?</select>', html, re.S)
    assert owners and f'value="{rep.id}">rep (1)</option>' in owners.group(0)
    assert f'value="{boss.id}">boss (1)</option>' in owners.group(0)
    assert f'value="{env.admin.id}"' not in owners.group(0)
    places = re.search(r'<select id="board-department" name="department_id">.*?</select>',
                       html, re.S)
    assert places and f'value="{deps["SH"]}"' in places.group(0)
    assert f'value="{deps["NORTH"]}"' not in places.group(0)

    by_rep = client.get(BOARD, params={"owner_id": str(rep.id)}).text
    assert "Rep deal" in by_rep and "Boss deal" not in by_rep
    assert totals(by_rep, "proposal")[0] == "¥20.00"  # totals follow the filter
    assert f'<option value="{rep.id}" selected>' in by_rep
    # a move from the filtered board keeps the filter, with and without script
    assert f'<input type="hidden" name="owner_id" value="{rep.id}">' in by_rep
    by_dept = client.get(BOARD, params={"department_id": str(deps["EAST"])}).text
    assert "Boss deal" in by_dept and "Rep deal" not in by_dept
    assert totals(by_dept, "proposal")[0] == "¥10.00"
    both = client.get(BOARD, params={"owner_id": str(rep.id),
                                     "department_id": str(deps["EAST"])}).text
    assert "board-card-" not in both and "0 in this column" in column(both, "proposal")

    deal = env.records.list_records(SYSTEM, "opportunity", ListQuery(
        conditions=(Condition("name", "eq", "Rep deal"),))).items[0]
    token = page_token(client, BOARD)
    response = client.post(f"/e/opportunity/{deal['id']}/move", follow_redirects=False, data={
        "field": "stage", "value": "negotiation", "version": str(deal["version"]),
        "csrf_token": token, "owner_id": str(rep.id)})
    assert response.status_code == 303
    assert response.headers["location"] == f"{BOARD}?owner_id={rep.id}"

    # an emptied filter goes to the clean address; a bad one is a 400 page saying why
    response = client.get(BOARD, params={"owner_id": "", "mine": "1"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == BOARD + "?mine=1"
    for bad in ({"owner_id": "abc"}, {"department_id": "-1"}, {"owner_id": "0"}):
        response = client.get(BOARD, params=bad)
        assert response.status_code == 400, bad
        assert "Choose the owner and the department from the board" in response.text


def test_rep_filter_lists_only_what_they_see(env: Env) -> None:
    deps = departments(env)
    rep = user(env, "rep", "sales_rep", department=deps["SH"])
    user(env, "other", "sales_rep", department=deps["SH"])
    account = env.records.create(SYSTEM, "account", {"name": "Own Ltd"})
    place(env, "opportunity", {"name": "Own", "account": account["id"]}, owner=rep)
    place(env, "opportunity", {"name": "Theirs", "account": account["id"]},
          owner=env.users.by_name("other").actor())
    html = browser(env, "rep", "a-password").get(BOARD).text
    owners = re.search(r'<select id="board-owner" name="owner_id">.*?</select>', html, re.S)
    assert owners and ">rep (1)</option>" in owners.group(0)
    assert "other" not in owners.group(0) and "Theirs" not in html
    # filtering by someone whose records they cannot see shows nothing of them
    theirs = browser(env, "rep", "a-password").get(
        BOARD, params={"owner_id": str(env.users.by_name("other").id)}).text
    assert "board-card-" not in theirs and "Theirs" not in theirs


def test_move_to_lost_asks_for_the_lost_reason(make_env: EnvFactory,
                                               config_dir: Path) -> None:
    env = make_env(lost_reason_rule(config_dir))
    deal = opportunity(env, "Asker", "300", "proposal")
    client = browser(env)
    token = page_token(client, BOARD)
    response = move(client, deal["id"], "lost", deal["version"], token=token)
    assert response.status_code == 422
    card = card_html(response.text, deal["id"])
    assert 'data-value="proposal"' in card  # not moved yet: the card is where it was
    prompt = re.search(r'<form class="board-prompt".*?</form>', card, re.S)
    assert prompt, card
    form = prompt.group(0)
    assert 'data-target="lost"' in form and "To move it to Lost, fill in:" in form
    assert '<input type="hidden" name="value" value="lost">' in form
    assert f'<input type="hidden" name="version" value="{deal["version"]}">' in form
    assert f'<select id="board-fix-{deal["id"]}-lost_reason" name="set.lost_reason"' in form
    assert '<option value="price">Price</option>' in form  # options by their labels
    assert "A lost opportunity needs a lost reason" in form
    assert "Save and move" in form and "data-board-cancel" in form
    assert env.records.get(SYSTEM, "opportunity", deal["id"])["stage"] == "proposal"

    # sent without a reason: asked again, with the rule's message beside the field
    again = client.post(f"/e/opportunity/{deal['id']}/move", headers={
        "HX-Request": "true", "X-CSRF-Token": token}, data={
        "field": "stage", "value": "lost", "version": str(deal["version"]),
        "set.lost_reason": ""})
    assert again.status_code == 422 and 'class="board-prompt"' in again.text
    assert 'aria-invalid="true"' in again.text

    saved = client.post(f"/e/opportunity/{deal['id']}/move", headers={
        "HX-Request": "true", "X-CSRF-Token": token}, data={
        "field": "stage", "value": "lost", "version": str(deal["version"]),
        "set.lost_reason": "price"})
    assert saved.status_code == 200
    card = card_html(saved.text, deal["id"])
    assert 'data-value="lost"' in card and "board-prompt" not in card
    record = env.records.get(SYSTEM, "opportunity", deal["id"])
    assert record["stage"] == "lost" and record["lost_reason"] == "price"
    assert record["version"] == deal["version"] + 1  # one update: the move and the reason

    # in Chinese, the options and the message in Chinese
    other = opportunity(env, "Asker zh", "300", "proposal")
    client.post("/account/language", data={"language": "zh-CN", "csrf_token": token})
    zh = move(client, other["id"], "lost", other["version"], token=token)
    assert zh.status_code == 422
    assert '<option value="price">价格</option>' in zh.text and "丢单必须填写丢单原因" in zh.text
    assert "丢单原因</label>" in zh.text


def test_fields_asked_for_in_place_are_generic(make_env: EnvFactory,
                                              config_dir: Path) -> None:
    env = make_env(lost_reason_rule(
        config_dir,
        "  - rule: 'NOT(AND(stage = \"won\", ISBLANK(next_step)))'\n"
        "    message: {en: Say what happens after the win, zh: 请填写赢单后的下一步}\n"
        "    field: next_step\n",
        "  - rule: 'NOT(AND(stage = \"negotiation\", ISBLANK(primary_contact)))'\n"
        "    message: {en: Negotiations need a contact, zh: 商务谈判需要联系人}\n"
        "    field: primary_contact\n",
        "  - rule: 'NOT(AND(stage = \"qualification\", amount > 1000000))'\n"
        "    message: {en: Too big to qualify, zh: 金额过大}\n"))
    deal = opportunity(env, "Generic", "2000000", "proposal")
    deal = accept_quote(env.records, deal["id"])
    client = browser(env)
    token = page_token(client, BOARD)
    # a text field named by a rule: asked for as a text box
    response = move(client, deal["id"], "won", deal["version"], token=token)
    assert response.status_code == 422
    assert f'<input type="text" id="board-fix-{deal["id"]}-next_step" name="set.next_step"' \
        in response.text
    assert "Say what happens after the win" in response.text
    # a reference needs the record's own form (a picker): the refusal is only shown
    response = move(client, deal["id"], "negotiation", deal["version"], token=token)
    assert response.status_code == 422 and "board-prompt" not in response.text
    assert 'role="alert">Primary contact: Negotiations need a contact' in response.text
    # a rule about the record as a whole (several fields, no `field:`): shown, as before
    response = move(client, deal["id"], "qualification", deal["version"], token=token)
    assert response.status_code == 422 and "board-prompt" not in response.text
    assert "Too big to qualify" in response.text
    # what the prompt sends is saved only where the user may write and the form shows it:
    # a computed field and `description` (read-only once won by the form) are dropped
    saved = client.post(f"/e/opportunity/{deal['id']}/move", headers={
        "HX-Request": "true", "X-CSRF-Token": token}, data={
        "field": "stage", "value": "won", "version": str(deal["version"]),
        "set.next_step": "Kick-off", "set.probability": "5", "set.description": "sneaky"})
    assert saved.status_code == 200
    record = env.records.get(SYSTEM, "opportunity", deal["id"])
    assert record["stage"] == "won" and record["next_step"] == "Kick-off"
    assert record["description"] is None and record["probability"] == 100


def test_prompt_without_script_saves_the_move(make_env: EnvFactory, config_dir: Path) -> None:
    env = make_env(lost_reason_rule(config_dir))
    deal = opportunity(env, "Plain", "10", "proposal")
    client = browser(env)
    response = client.post(f"/e/opportunity/{deal['id']}/move", follow_redirects=False, data={
        "field": "stage", "value": "lost", "version": str(deal["version"]),
        "set.lost_reason": "timing", "csrf_token": page_token(client, BOARD)})
    assert response.status_code == 303
    record = env.records.get(SYSTEM, "opportunity", deal["id"])
    assert record["stage"] == "lost" and record["lost_reason"] == "timing"
