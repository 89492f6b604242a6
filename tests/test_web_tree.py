"""The decision tree (engine/web/pages/tree.py): contacts of an account by `reports_to`."""

from __future__ import annotations

from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import update
from starlette.testclient import TestClient

from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.web.pages.tree import build_forest, line_weight, tree_shape
from tests.access_helpers import departments, place, user
from tests.conftest import CONFIG, Env
from tests.web_helpers import sign_in


def browser(env: Env, name: str = "admin", password: str = "admin-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


class _Shape(HTMLParser):
    """Each tree item's id → the id of the item it is nested in (None for a root), and its
    weight class."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, int | None]] = []
        self.parent: dict[int, int | None] = {}
        self.weight: dict[int, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "li":
            return
        a = dict(attrs)
        node = int(a["data-id"] or 0) if "data-id" in a else None
        if node is not None:
            above = next((n for t, n in reversed(self.stack) if n is not None), None)
            self.parent[node] = above
            self.weight[node] = str(a.get("class"))
        self.stack.append((tag, node))

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self.stack.pop()


def shape(html: str) -> _Shape:
    parser = _Shape()
    parser.feed(html)
    return parser


def contact(env: Env, account: int, name: str, **more: Any) -> int:
    row = env.records.create(SYSTEM, "contact", {"full_name": name, "account": account, **more})
    return int(row["id"])


def test_contacts_drawn_by_reports_to(env: Env) -> None:
    acme = env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    other = env.records.create(SYSTEM, "account", {"name": "Other"})["id"]
    outside = contact(env, other, "Outside boss")
    ceo = contact(env, acme, "Chief", title="CEO", buying_role="decider", influence=5)
    cto = contact(env, acme, "Tech lead", title="CTO", buying_role="influencer", influence=3,
                  reports_to=ceo)
    dev = contact(env, acme, "Developer", buying_role="user", influence=1, reports_to=cto)
    buyer = contact(env, acme, "Buyer", buying_role="buyer")
    # written before contact.yaml's rule (same account) existed: stored data may still hold it
    t = env.records.schema.table("contact")
    with env.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == buyer).values(reports_to=outside))
    loner = contact(env, acme, "Loner")
    response = browser(env).get(f"/e/account/{acme}/tree/contact")
    assert response.status_code == 200
    html = response.text
    assert "<html" not in html and "<nav" not in html  # a fragment for the detail page
    found = shape(html)
    assert found.parent == {ceo: None, cto: ceo, dev: cto, buyer: None, loner: None}
    assert "Outside boss" not in html  # another account's contact is not drawn
    assert found.weight[ceo] == "tree-item w5" and found.weight[cto] == "tree-item w3"
    assert found.weight[dev] == "tree-item w1" and found.weight[loner] == "tree-item w1"
    assert '<span class="tree-text">CEO</span>' in html
    assert '<span class="visually-hidden">Buying role: </span>Decider</span>' in html
    influence = "Influence (1\N{EN DASH}5)"
    assert f'<span class="visually-hidden">{influence}: </span>5</span>' in html
    assert f'href="/e/contact/{cto}">Tech lead</a>' in html
    assert f"/e/account/{acme}/tree/contact?full=1" in html


def test_full_page_and_chinese(env: Env) -> None:
    acme = env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    contact(env, acme, "Chief", buying_role="decider", influence=4)
    client = browser(env)
    html = client.get(f"/e/account/{acme}/tree/contact", params={"full": "1"}).text
    assert 'class="side foldable"' in html and "<h1" in html and "Chief" in html
    assert f'href="/e/account/{acme}">Account · Acme</a>' in html
    token = client.get("/").text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/account/language", data={"language": "zh-CN", "csrf_token": token})
    zh = client.get(f"/e/account/{acme}/tree/contact").text
    assert "决策树" in zh and "采购角色" in zh


def test_empty_and_escaped(env: Env) -> None:
    acme = env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    client = browser(env)
    assert "No records to show." in client.get(f"/e/account/{acme}/tree/contact").text
    contact(env, acme, "<img src=x onerror=alert(1)>", title="<b>boss</b>")
    html = client.get(f"/e/account/{acme}/tree/contact").text
    assert "<img src=x" not in html and "<b>boss" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_not_found(env: Env) -> None:
    acme = env.records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    client = browser(env)
    for path in (f"/e/account/{acme}/tree/opportunity",  # no self-reference
                 f"/e/account/{acme}/tree/nothing", f"/e/nothing/{acme}/tree/contact",
                 f"/e/account/{acme + 1000}/tree/contact", "/e/account/0/tree/contact",
                 f"/e/contact/{acme}/tree/account"):
        assert client.get(path).status_code == 404, path


def test_only_contacts_the_viewer_can_read(env: Env) -> None:
    deps = departments(env)
    rep = user(env, "rep", "sales_rep", department=deps["SH"])
    user(env, "far", "sales_rep", department=deps["BJ"])
    account = place(env, "account", {"name": "Shared"}, department=deps["SH"])["id"]
    boss = place(env, "contact", {"full_name": "Hidden boss", "account": account},
                 department=deps["BJ"])["id"]
    mine = place(env, "contact", {"full_name": "Visible report", "account": account,
                                  "reports_to": boss}, owner=rep)["id"]
    html = browser(env, "rep", "a-password").get(f"/e/account/{account}/tree/contact").text
    assert "Hidden boss" not in html
    assert shape(html).parent == {mine: None}  # its manager is not visible: a root
    # a user who cannot see the account gets a 404, not an empty tree
    far = browser(env, "far", "a-password")
    assert far.get(f"/e/account/{account}/tree/contact").status_code == 404


def test_signed_out_goes_to_login(env: Env) -> None:
    client = env.client()
    client.headers["Accept"] = "text/html"
    response = client.get("/e/account/1/tree/contact", follow_redirects=False)
    assert response.status_code in (302, 303, 307) and "/login" in response.headers["location"]


def test_build_forest_guards_against_cycles() -> None:
    rows = [{"id": 1, "up": 2}, {"id": 2, "up": 3}, {"id": 3, "up": 1}, {"id": 4, "up": 1},
            {"id": 5, "up": None}, {"id": 6, "up": 6}, {"id": 7, "up": 99}]
    roots, children = build_forest(rows, "up")
    assert roots == [5, 6, 7, 1]  # a cycle is cut at its smallest id
    assert children[1] == [3, 4] and children[3] == [2] and children[2] == []
    seen = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        seen.append(node)
        stack.extend(children[node])
    assert sorted(seen) == [1, 2, 3, 4, 5, 6, 7]  # every row exactly once


def test_shape_and_weight_come_from_metadata() -> None:
    model = load_model(CONFIG)
    found = tree_shape(model, model.entity("account"), "contact")
    assert found is not None
    assert (found.via, found.parent_link) == ("account", "reports_to")
    assert found.columns == ("title", "buying_role", "influence")
    assert tree_shape(model, model.entity("account"), "opportunity") is None
    influence = model.entity("contact").field("influence")
    assert [line_weight(influence, v) for v in (1, 2, 3, 4, 5)] == [1, 2, 3, 4, 5]
    assert line_weight(influence, None) is None
    assert line_weight(model.entity("opportunity").field("amount"), Decimal(5)) is None
