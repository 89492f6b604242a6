"""The global search page (engine/web/pages/search.py): hits of every kind with their
entity and a line of context, access, paging through one entity, bad input."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.web.pages.search import HITS_PER_ENTITY
from tests.access_helpers import place, user
from tests.conftest import Env, EnvFactory
from tests.test_web_forms import client_for
from tests.web_helpers import sign_in


def hits(page: str) -> list[tuple[str, str, str]]:
    """(entity, title, context line) of each hit, tags and spaces squeezed out."""
    out = []
    for entity, body in re.findall(
            r'<section class="card search-group" id="hits-(\w+)"(.*?)</section>', page, re.S):
        for item in re.findall(r'<li class="hit">(.*?)</li>', body, re.S):
            title = re.search(r'class="hit-title"[^>]*>(.*?)</a>', item, re.S)
            context = re.search(r'<div class="hit-context">(.*?)</div>', item, re.S)
            assert title
            out.append((entity, _text(title.group(1)),
                        _text(context.group(1)) if context else ""))
    return out


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def test_hits_name_their_entity_and_what_matched(env: Env, pages: TestClient) -> None:
    acme = env.records.create(SYSTEM, "account", {"name": "Acme Rockets", "city": "Shanghai",
                                                  "industry": "manufacturing"})
    env.records.create(SYSTEM, "account", {"name": "Globex", "city": "Beijing"})
    zhang = env.records.create(SYSTEM, "contact", {
        "full_name": "Zhang Wei", "account": acme["id"], "email": "zhang@shanghai-steel.cn"})
    env.records.create(SYSTEM, "contact", {"full_name": "Ann Acmeson", "account": acme["id"]})
    sign_in(pages)
    page = pages.get("/search", params={"q": "shanghai"}).text
    assert hits(page) == [("account", "Acme Rockets", "City: Shanghai"),
                          ("contact", "Zhang Wei", "Email: zhang@shanghai-steel.cn")]
    assert '<span class="badge hit-kind">Contact</span>' in page
    assert "<mark>Shanghai</mark>" in page and "zhang@<mark>shanghai</mark>-steel.cn" in page
    assert f'href="/e/contact/{zhang["id"]}"' in page
    # a title match shows the first list column that has a value: the account, linked
    page = pages.get("/search", params={"q": "acme"}).text
    assert ("contact", "Ann Acmeson", "Account: Acme Rockets") in hits(page)
    # (the account's list: name, account_type — a default, customer — then industry…)
    assert ("account", "Acme Rockets", "Type: Customer") in hits(page)
    assert f'<a href="/e/account/{acme["id"]}">Acme Rockets</a></div>' in page
    none = pages.get("/search", params={"q": "<b>zzz"}).text
    assert "Nothing matches “&lt;b&gt;zzz”." in none
    assert 'value="&lt;b&gt;zzz"' in none  # the box keeps what was typed, as text


def test_labels_follow_the_viewer_language(env: Env, pages: TestClient) -> None:
    env.records.create(SYSTEM, "lead", {"company": "Huawei", "contact_name": "Li Na",
                                        "phone": "+86 755 2878 0808"})
    env.users.set_locale(env.admin.id, "zh-CN")
    sign_in(pages)
    page = pages.get("/search", params={"q": "2878"}).text
    assert hits(page) == [("lead", "Huawei", "电话: +86 755 2878 0808")]
    assert '<span class="badge hit-kind">线索</span>' in page


def test_only_what_the_viewer_may_see(make_env: EnvFactory, config_dir: Path) -> None:
    roles = config_dir / "roles.yaml"
    roles.write_text(roles.read_text(encoding="utf-8").replace(
        "      contact: {birthday: hidden}\n",
        "      contact: {birthday: hidden, email: hidden}\n"), encoding="utf-8")
    env = make_env(config_dir)
    dealer = user(env, "dealer", "partner")
    acme = place(env, "account", {"name": "Acme"}, owner=dealer)
    place(env, "contact", {"full_name": "Zhang Wei", "account": acme["id"],
                           "email": "zw@secret.cn", "phone": "021 5555"}, owner=dealer)
    place(env, "contact", {"full_name": "Zhang San", "account": acme["id"]})  # not theirs
    client = client_for(env, "dealer")
    assert hits(client.get("/search", params={"q": "secret"}).text) == []
    page = client.get("/search", params={"q": "zhang"}).text
    assert hits(page) == [("contact", "Zhang Wei", "Account: Acme")]
    assert "secret" not in page and "Zhang San" not in page


def test_more_hits_page_through_one_entity(env: Env, pages: TestClient) -> None:
    for i in range(HITS_PER_ENTITY + 1):
        env.records.create(SYSTEM, "account", {"name": f"Acme {i:02}"})
    sign_in(pages)
    page = pages.get("/search", params={"q": "acme"}).text
    assert len(hits(page)) == HITS_PER_ENTITY
    assert 'href="/search?q=acme&amp;entity=account"' in page
    one = pages.get("/search", params={"q": "acme", "entity": "account"}).text
    assert len(hits(one)) == HITS_PER_ENTITY + 1 and 'rel="next"' not in one
    assert 'href="/search?q=acme"' in one  # back to every kind


def test_bad_input_is_a_4xx_with_a_message(env: Env, pages: TestClient) -> None:
    sign_in(pages)
    long = pages.get("/search", params={"q": "x" * 101})
    assert long.status_code == 400
    assert "The search text is too long: at most 100 characters." in long.text
    assert pages.get("/search", params={"q": "a", "page": "0"}).status_code == 400
    assert pages.get("/search", params={"q": "a", "page": "²"}).status_code == 400
    assert pages.get("/search", params={"q": "a", "entity": "nope"}).status_code == 404
    nul = pages.get("/search", params={"q": "a\x00b"})
    assert nul.status_code == 400 and "NUL" in nul.text
    user(env, "mkt", "marketing")
    client = client_for(env, "mkt")
    assert client.get("/search", params={"q": "a", "entity": "quote"}).status_code == 403
