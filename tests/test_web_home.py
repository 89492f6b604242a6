"""The dashboard (engine/web/home.py) and the layout around it; the global search is in
tests/test_web_search.py."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from engine.web.nav import AREAS
from tests.conftest import Env
from tests.web_helpers import sign_in

REPO = Path(__file__).resolve().parents[1]


def test_dashboard_shows_navigation_by_area_and_counts(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    env.records.create(actor, "account", {"name": "Acme"})
    env.records.create(actor, "account", {"name": "Globex"})
    sign_in(pages)
    page = pages.get("/").text
    areas = re.findall(r'<h2 id="area-(\w+)">', page)
    used = {e.area for e in env.model.entities}
    assert areas == [a for a in AREAS if a in used]  # menu order, empty areas left out
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
