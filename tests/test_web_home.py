"""The dashboard (engine/web/home.py) and the layout around it; the global search is in
tests/test_web_search.py."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from starlette.testclient import TestClient

from engine.runtime.assembly import records_service
from engine.runtime.records.query import parse_list_params
from engine.web.dashboard import home_view
from engine.web.nav import AREAS
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.test_web_forms import zoned_client
from tests.web_helpers import csrf_of, sign_in

REPO = Path(__file__).resolve().parents[1]


def browser(env: Env, name: str = "admin", password: str = "a-password") -> TestClient:
    """A client signed in as `name` (users made by tests.access_helpers.user)."""
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    secret = "admin-password" if name == "admin" else password
    assert sign_in(client, name, secret).status_code == 303
    return client


def test_dashboard_shows_navigation_by_area_and_counts(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    env.records.create(actor, "account", {"name": "Acme"})
    env.records.create(actor, "account", {"name": "Globex"})
    sign_in(pages)
    page = pages.get("/").text
    areas = re.findall(r'<h2 id="area-(\w+)">', page)
    used = {e.area for e in env.model.entities}
    # menu order, empty areas left out; the reports after the entities' areas
    assert areas == [a for a in AREAS if a in used] + ["reports"]
    assert {"customers", "sales", "admin"} <= set(areas)
    assert '<a href="/e/opportunity"' in page
    counts = dict(re.findall(r'<a href="/e/(\w+)">[^<]+</a></td><td class="num">([\d,]+)<',
                             page))
    assert counts["account"] == "2" and counts["opportunity"] == "0"


def test_every_input_has_a_label(pages: TestClient) -> None:
    sign_in(pages)
    for path in ("/", "/search?q=a", "/account/password", "/login"):
        html = pages.get(path).text
        ids = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"',
                         html)
        unlabelled = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")(?![^>]*\bid=)',
                                html)
        assert not unlabelled, path
        for i in ids:
            assert f'for="{i}"' in html, (path, i)


def test_pages_use_only_local_scripts_and_styles(pages: TestClient) -> None:
    page = pages.get("/login").text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert all(s.startswith(("/", "#")) and not s.startswith("//") for s in sources), sources
    htmx = next(s for s in sources if "htmx" in s)
    assert re.fullmatch(r"/static/htmx-\d+\.\d+\.\d+\.min\.js", htmx)
    assert pages.get(htmx).status_code == 200
    assert '<body hx-headers=\'{"X-CSRF-Token": ' in page
    assert [p.name for p in (REPO / "static").glob("htmx*")] == [htmx.rsplit("/", 1)[1]]


# -- the home page of each role (engine/web/dashboard.py) ---------------------------------


def _menu(page: str) -> list[str]:
    """The entities the side menu links to, in order."""
    nav = re.split(r'<nav [^>]*class="side', page, maxsplit=1)[1].split("</nav>", 1)[0]
    return re.findall(r'<li><a href="/e/(\w+)"', nav)


def _section(page: str, section_id: str) -> str:
    found = re.search(rf'<section class="card [a-z]+" id="{section_id}"(.*?)</section>', page,
                      re.S)
    assert found, section_id
    return found.group(1)


def _this_week(at_hours: int) -> datetime:
    """A moment of this week (UTC): Monday 00:00 plus `at_hours`."""
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday())
    return datetime.combine(monday, time(0), UTC) + timedelta(hours=at_hours)


def test_each_role_sees_only_what_it_may_read_in_menu_and_dashboard(env: Env) -> None:
    dept = departments(env)
    user(env, "dealer", "partner", department=dept["PARTNERS"])
    user(env, "agent", "service_agent", department=dept["BJ"])
    user(env, "rep", "sales_rep", department=dept["BJ"])
    place(env, "lead", {"company": "Secret lead Co"})
    expected = {  # config/roles.yaml, in menu order (areas, then the configured order)
        "dealer": ["account", "contact", "contact_job_change", "opportunity", "activity", "note",
                   "quote", "quote_line", "contract", "contract_line", "service_request",
                   "service_plan", "work_order", "work_order_part", "product", "product_line",
                   "knowledge_article", "announcement", "announcement_read"],
        "agent": ["account", "contact", "contact_job_change", "activity", "note",
                  "service_queue", "service_queue_member", "service_request", "service_plan",
                  "work_order", "work_order_part", "execution_plan_line", "competitor_product",
                  "product_line", "product", "expense", "expense_budget", "knowledge_article",
                  "knowledge_article_product", "announcement", "announcement_target",
                  "announcement_read", "department"],
        "rep": ["account", "contact", "contact_job_change", "lead", "opportunity",
                "opportunity_competitor", "opportunity_stage_plan", "activity", "note",
                "sales_target", "competitor", "competitor_product", "product_line", "product",
                "quote", "quote_line", "contract", "contract_line", "execution_plan_line",
                "invoice", "receipt", "campaign", "campaign_member", "service_request",
                "service_plan", "work_order", "work_order_part", "expense", "expense_budget",
                "knowledge_article", "knowledge_article_product", "announcement",
                "announcement_target", "announcement_read", "department"],
    }
    menuless = {e.name for e in env.model.entities if not e.menu}
    assert {"quote_line", "announcement_target", "work_order_part"} <= menuless
    for name, entities in expected.items():
        client = browser(env, name)
        page = client.get("/").text
        # lines and links (menu: false) are reached from their parents, not the menu
        shown = sorted(set(entities) - menuless)
        assert sorted(_menu(page)) == shown, name
        counted = re.findall(r'<tr><td><a href="/e/(\w+)">', page)
        assert sorted(counted) == shown, name
        for hidden in set(entities) & menuless:  # still readable by their address
            assert client.get(f"/e/{hidden}").status_code == 200, (name, hidden)
        # the pages of another entity are refused, and nothing links there
        for other in {e.name for e in env.model.entities} - set(entities):
            assert not re.search(f'href="/e/{other}["/?]', page), (name, other)
            assert client.get(f"/e/{other}").status_code == 403, (name, other)
        assert "Access check" in page  # everyone may ask about themselves
    agent_page = browser(env, "agent").get("/").text
    assert 'id="open-opportunity"' not in agent_page  # service agents read no deals
    assert "Secret lead" not in browser(env, "dealer").get("/").text


def test_quick_create_offers_the_entities_the_user_may_create(env: Env) -> None:
    dept = departments(env)
    user(env, "agent", "service_agent", department=dept["BJ"])
    user(env, "boss", "executive")
    page = browser(env, "agent").get("/").text
    quick = page.split('<nav class="quick-create"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'href="/e/(\w+)/new"', quick) == [  # not lines nor links (menu: false)
        "contact", "activity", "note", "service_plan", "service_request", "work_order", "expense"]
    assert "New Activity" in quick
    # an executive reads everything and writes only their expenses, the budgets and receipts
    page = browser(env, "boss").get("/").text
    quick = page.split('<nav class="quick-create"', 1)[1].split("</nav>", 1)[0]
    assert sorted(re.findall(r'href="/e/(\w+)/new"', quick)) == ["expense", "expense_budget"]


def test_my_open_opportunities_count_only_mine_and_open(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    other = user(env, "other", "sales_rep", department=dept["BJ"])
    acme = place(env, "account", {"name": "Acme"}, owner=rep)
    for name, amount, stage, owner in (("A", "1000", "proposal", rep),  # 50 %: 500
                                       ("B", "2000", "negotiation", rep),  # 80 %: 1,600
                                       ("Won", "9000", "won", rep),
                                       ("Lost", "7000", "lost", rep),
                                       ("Theirs", "5000", "proposal", other)):
        place(env, "opportunity", {"name": name, "account": acme["id"], "amount": amount,
                                   "stage": stage, "lost_reason": "price"}, owner=owner)
    place(env, "opportunity", {"name": "Gone", "account": acme["id"], "amount": "300"},
          owner=rep)
    gone = env.records.list_records(env.admin.actor(), "opportunity", parse_list_params(
        env.model.entity("opportunity"), {"name": "Gone"})).items[0]
    env.records.delete(env.admin.actor(), "opportunity", gone["id"])
    page = browser(env, "rep").get("/").text
    block = _section(page, "open-opportunity")
    assert "My open Opportunities" in block
    assert '<dd class="count">2</dd>' in block
    assert '<dd class="amount">¥3,000.00</dd>' in block
    assert '<dd class="weighted">¥2,100.00</dd>' in block
    link = html.unescape(re.search(r'<a href="([^"]+)">Show them', block).group(1))  # type: ignore[union-attr]
    assert link == ("/e/opportunity?mine=1&stage__in=prospecting%2Cqualification%2C"
                    "proposal%2Cnegotiation")
    listed = browser(env, "rep").get(link).text
    assert sorted(re.findall(r'<a href="/e/opportunity/\d+">([^<]+)</a>', listed)) == ["A", "B"]
    # An admin who owns nothing has nothing open; a marketing user sees no amounts at all.
    admin_block = _section(browser(env).get("/").text, "open-opportunity")
    assert '<dd class="count">0</dd>' in admin_block
    user(env, "mkt", "marketing")
    mkt_block = _section(browser(env, "mkt").get("/").text, "open-opportunity")
    assert 'class="amount"' not in mkt_block and 'class="weighted"' not in mkt_block


def test_activities_due_this_week_are_mine_and_not_done(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    other = user(env, "other", "sales_rep", department=dept["BJ"])
    for subject, hours, status, owner in (
            ("Call <Acme>", 30, "planned", rep), ("Visit Globex", 10, "planned", rep),
            ("Done already", 20, "done", rep), ("Cancelled one", 20, "cancelled", rep),
            ("Next week", 7 * 24 + 10, "planned", rep), ("Last week", -10, "planned", rep),
            ("Not mine", 20, "planned", other)):
        place(env, "activity", {"subject": subject, "kind": "call", "status": status,
                                "due_at": _this_week(hours).isoformat()}, owner=owner)
    page = browser(env, "rep").get("/").text
    block = _section(page, "due-activity")
    titles = re.findall(r'<li><a href="/e/activity/\d+">([^<]+)</a>', block)
    assert titles == ["Visit Globex", "Call &lt;Acme&gt;"]  # earliest first, escaped
    assert 'My Activities due this week\n      <span class="badge">2</span>' in block
    theirs = _section(browser(env, "other").get("/").text, "due-activity")
    assert "Not mine" in theirs and "Visit Globex" not in theirs
    user(env, "dealer", "partner", department=dept["PARTNERS"])
    assert "Nothing due this week." in _section(browser(env, "dealer").get("/").text,
                                                "due-activity")


def test_the_week_is_the_organisations_monday_to_sunday(env: Env) -> None:
    """settings.yaml time_zone: Asia/Shanghai. At 16:30 UTC on Sunday, March 8 it is 00:30
    on Monday, March 9 there: this week is March 9 to 15 there, each day from its midnight
    there, Sunday included to its last minute."""
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    for subject, due in (("Monday 00:30 there", "2026-03-08T16:30:00Z"),
                         ("Sunday 23:30 there", "2026-03-15T15:30:00Z"),
                         ("Next Monday 00:00 there", "2026-03-15T16:00:00Z"),
                         ("Last Sunday 23:59 there", "2026-03-08T15:59:00Z")):
        place(env, "activity", {"subject": subject, "kind": "call", "status": "planned",
                                "due_at": due}, owner=rep)
    shanghai = replace(env.model, settings=replace(env.model.settings,
                                                   time_zone="Asia/Shanghai"))
    records = records_service(env.engine, shanghai,
                              lambda: datetime(2026, 3, 8, 16, 30, tzinfo=UTC))
    home = home_view(records, rep)
    assert home.week == (date(2026, 3, 9), date(2026, 3, 15))
    [due] = [d for d in home.due if d.entity.name == "activity"]
    assert [r.title for r in due.records] == ["Monday 00:30 there", "Sunday 23:30 there"]
    assert due.total == 2
    # the list the section links to: the same days, read in the same zone, the same records
    query = dict(parse_qsl(urlsplit(due.href).query))
    assert (query["due_at__gte"], query["due_at__lte"]) == ("2026-03-09", "2026-03-15")
    listed = zoned_client(env, "Asia/Shanghai", "rep", "a-password").get(due.href).text
    assert re.findall(r'<a href="/e/activity/\d+">([^<]+)</a>', listed) == \
        ["Monday 00:30 there", "Sunday 23:30 there"]
    # in UTC the same moment is still Sunday: the week of March 2 to 8
    utc = records_service(env.engine, env.model,
                          lambda: datetime(2026, 3, 8, 16, 30, tzinfo=UTC))
    [due] = [d for d in home_view(utc, rep).due if d.entity.name == "activity"]
    assert [r.title for r in due.records] == ["Last Sunday 23:59 there",
                                              "Monday 00:30 there"]


def test_home_page_in_chinese(env: Env) -> None:
    dept = departments(env)
    rep = user(env, "rep", "sales_rep", department=dept["BJ"])
    env.users.set_locale(rep.id, "zh-CN")
    page = browser(env, "rep").get("/").text
    assert "我负责的进行中销售机会" in page and "新建活动" in page
    assert "本周到期的我的活动" in page and "本周没有到期事项。" in page


def test_language_switch_keeps_the_path_and_query_string(env: Env) -> None:
    client = browser(env)
    page = client.get("/e/account?sort=-name&name__contains=a").text
    assert ('<input type="hidden" id="language-next" name="next" '
            'value="/e/account?sort=-name&amp;name__contains=a">') in page
    answer = client.post("/account/language", data={
        "csrf_token": csrf_of(page), "language": "zh-CN",
        "next": "/e/account?sort=-name&name__contains=a"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/e/account?sort=-name&name__contains=a"
    assert "<h1>客户</h1>" in client.get(answer.headers["location"]).text
    # After htmx replaced the results (and the address), the switch follows the new address.
    fragment = client.get("/e/account?sort=name", headers={"HX-Request": "true",
                                                          "HX-Target": "list-results"}).text
    assert ('<input type="hidden" id="language-next" name="next" value="/e/account?sort=name"'
            ' hx-swap-oob="true">') in fragment
