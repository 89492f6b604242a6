"""A deleted record's page (engine/web/pages/recycled.py): it says the record is in the
recycle bin, to those who may restore it; to everyone else it is not there."""

from __future__ import annotations

from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from tests.access_helpers import departments, place, user
from tests.conftest import Env
from tests.test_web_forms import client_for
from tests.web_helpers import csrf_of, sign_in


def test_the_page_of_a_deleted_record_points_to_the_bin(env: Env, pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    env.records.delete(env.admin.actor(), "account", acme["id"])
    sign_in(pages)
    page = pages.get(f"/e/account/{acme['id']}")
    assert page.status_code == 410
    assert "<h1>Acme</h1>" in page.text
    assert "“Acme” (Account) is in the recycle bin." in page.text
    assert 'href="/e/account/trash">Open the recycle bin</a>' in page.text
    assert "admin deleted it on" in page.text
    restored = pages.post(f"/e/account/{acme['id']}/restore",
                          data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert restored.status_code == 303
    assert pages.get(f"/e/account/{acme['id']}").status_code == 200
    assert pages.get("/e/account/999999").status_code == 404  # never was: not found


def test_others_get_the_usual_not_found_page(env: Env) -> None:
    dep = departments(env)
    owner = user(env, "owner", "sales_rep", department=dep["SH"])
    user(env, "colleague", "sales_rep", department=dep["SH"])  # reads it, may not delete it
    user(env, "stranger", "sales_rep", department=dep["BJ"])  # may not even read it
    user(env, "mkt", "marketing")  # reads every opportunity, deletes none
    account = place(env, "account", {"name": "Acme"}, owner=owner, department=dep["SH"])
    deal = place(env, "opportunity", {"name": "Secret deal", "account": account["id"]},
                 owner=owner)
    env.records.delete(SYSTEM, "opportunity", deal["id"])
    env.records.delete(SYSTEM, "account", account["id"])
    for name in ("colleague", "stranger"):
        page = client_for(env, name).get(f"/e/account/{account['id']}")
        assert page.status_code == 404 and "Acme" not in page.text, name
        assert "recycle bin" not in page.text, name
    page = client_for(env, "mkt").get(f"/e/opportunity/{deal['id']}")
    assert page.status_code == 404 and "Secret deal" not in page.text
    mine = client_for(env, "owner").get(f"/e/opportunity/{deal['id']}")
    assert mine.status_code == 410 and "Secret deal" in mine.text
