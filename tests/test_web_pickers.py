"""Reference pickers (engine/web/pages/pickers.py): each match with its context (the target
form's `picker:` fields the viewer may see), the form's `picker_filter` matches first, and
the shipped rule that a contact reports to someone of the same account."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from tests.access_helpers import departments, place, user, write_roles
from tests.conftest import Env, EnvFactory
from tests.test_web_forms import client_for, version_of
from tests.web_helpers import csrf_of

_HIT = re.compile(r'<li role="option"( class="suggested")?>.*?<span class="pick-title">'
                  r'([^<]*)</span>(?: <span class="pick-context">([^<]*)</span>)?', re.S)


def hits(client: TestClient, url: str, **params: Any) -> list[tuple[str, str, bool]]:
    """(title, context, suggested) of each match, in order."""
    answer = client.get(url, params=params)
    assert answer.status_code == 200
    return [(m.group(2), m.group(3) or "", bool(m.group(1))) for m in _HIT.finditer(answer.text)]


def world(env: Env) -> dict[str, int]:
    r = env.records
    acme = r.create(SYSTEM, "account", {"name": "Acme", "city": "Shanghai"})["id"]
    other = r.create(SYSTEM, "account", {"name": "Other", "city": "Hamburg"})["id"]
    ann = r.create(SYSTEM, "contact", {"full_name": "Ann", "account": acme,
                                       "email": "ann@acme.example"})["id"]
    bob = r.create(SYSTEM, "contact", {"full_name": "Bob", "account": other,
                                       "email": "bob@other.example"})["id"]
    cy = r.create(SYSTEM, "contact", {"full_name": "Cy", "account": acme})["id"]
    return {"acme": acme, "other": other, "ann": ann, "bob": bob, "cy": cy}


def test_matches_show_their_context(env: Env) -> None:
    w = world(env)
    admin = client_for(env, "admin", "admin-password")
    assert hits(admin, "/e/opportunity/pick/account") == [
        ("Acme", "Shanghai", False), ("Other", "Hamburg", False)]
    # no account in the form yet: nothing is suggested, every contact is offered by name
    assert hits(admin, "/e/contact/pick/reports_to") == [
        ("Ann", "Acme · ann@acme.example", False), ("Bob", "Other · bob@other.example", False),
        ("Cy", "Acme", False)]
    assert hits(admin, "/e/contact/pick/reports_to", q="b") == [
        ("Bob", "Other · bob@other.example", False)]
    assert w


def test_picker_filter_offers_the_form_s_account_first(env: Env) -> None:
    w = world(env)
    admin = client_for(env, "admin", "admin-password")
    url = "/e/opportunity/pick/primary_contact"
    assert hits(admin, url, account=str(w["other"])) == [
        ("Bob", "Other · bob@other.example", True), ("Ann", "Acme · ann@acme.example", False),
        ("Cy", "Acme", False)]
    page = admin.get(url, params={"account": str(w["acme"])}).text
    assert page.index("Suggested") < page.index("Ann") < page.index("Cy") \
        < page.index("Others") < page.index("Bob")
    assert [t for t, _, s in hits(admin, url, account=str(w["acme"]), q="y")] == ["Cy"]
    # editing a record: without the field in the request, the stored account counts
    deal = env.records.create(SYSTEM, "opportunity", {"name": "D", "account": w["other"]})
    assert hits(admin, url, record_id=str(deal["id"]))[0] == (
        "Bob", "Other · bob@other.example", True)
    # the form's picker sends what the filter reads along with what is typed
    form = admin.get("/e/contact/new").text
    assert ('hx-include="form.record-form [name=account], '
            'form.record-form [name=record_id]"') in form


def test_context_and_filter_respect_the_viewer(make_env: EnvFactory, config_dir: Path) -> None:
    """A field hidden from the viewer is not shown as context; the filter never reaches a
    record the viewer cannot read, and a `$record` link to one counts as blank."""
    env = make_env(write_roles(config_dir, """\
roles:
  admin: {admin: true}
  rep:
    entities:
      account: {read: department, create: own, update: own}
      contact: {read: department, create: own, update: own}
      opportunity: own
      department: {read: all}
    fields:
      contact: {email: hidden}
"""))
    d = departments(env)
    rep = user(env, "rep", "rep", department=d["BJ"])
    acme = place(env, "account", {"name": "Acme"}, department=d["BJ"])["id"]
    far = place(env, "account", {"name": "Far"}, department=d["SH"])["id"]
    place(env, "contact", {"full_name": "Ann", "account": acme, "email": "a@x.example"},
          owner=rep)
    place(env, "contact", {"full_name": "Zed", "account": far}, department=d["SH"])
    client = client_for(env, "rep")
    url = "/e/opportunity/pick/primary_contact"
    assert hits(client, url, account=str(acme)) == [("Ann", "Acme", True)]
    assert "a@x.example" not in client.get(url).text
    assert hits(client, url, account=str(far)) == [("Ann", "Acme", False)]


def test_reports_to_someone_of_another_account_is_refused(env: Env) -> None:
    w = world(env)
    admin = client_for(env, "admin", "admin-password")
    path = f"/e/contact/{w['cy']}/edit"
    page = admin.get(path).text
    data = {"csrf_token": csrf_of(page), "version": version_of(page), "full_name": "Cy",
            "account": str(w["acme"]), "reports_to": str(w["bob"])}
    refused = admin.post(path, data=data)
    assert refused.status_code == 422
    beside = re.search(r'<p class="error" id="err-reports_to">([^<]*)</p>', refused.text)
    assert beside and beside.group(1) == "A contact can only report to someone in the same " \
                                         "account"
    admin.post("/account/language", data={"language": "zh-CN", "csrf_token": csrf_of(page)})
    assert "直属上级必须是同一客户的联系人" in admin.post(path, data=data).text
    assert env.records.get(SYSTEM, "contact", w["cy"])["reports_to"] is None
    saved = admin.post(path, data=data | {"reports_to": str(w["ann"])}, follow_redirects=False)
    assert saved.status_code == 303
    assert env.records.get(SYSTEM, "contact", w["cy"])["reports_to"] == w["ann"]


# -- user pickers: only users the viewer may name (engine/runtime/access/reachable.py) -----


class Staff:
    """Two dealers in PARTNERS (the partner role reads no department), internal staff in
    SH, BJ and EAST (their roles read every department), and an opportunity of the first
    dealer."""

    def __init__(self, env: Env) -> None:
        d = departments(env)
        self.dealer = user(env, "dealer_one", "partner", department=d["PARTNERS"])
        self.colleague = user(env, "dealer_two", "partner", department=d["PARTNERS"])
        self.zhang = user(env, "zhang_sh", "sales_rep", department=d["SH"])
        self.li = user(env, "li_bj", "sales_rep", department=d["BJ"])
        self.boss = user(env, "boss_east", "sales_manager", department=d["EAST"])
        account = place(env, "account", {"name": "Dealer account"}, owner=self.dealer)
        self.deal = int(place(env, "opportunity", {"name": "Dealer deal",
                                                   "account": account["id"]},
                              owner=self.dealer)["id"])


def _names(client: TestClient, url: str, **params: Any) -> set[str]:
    return {title for title, _, _ in hits(client, url, **params)}


def test_a_partner_s_member_picker_offers_only_its_own_department(env: Env) -> None:
    s = Staff(env)
    url = "/e/opportunity/pick/_member"
    dealer = client_for(env, "dealer_one")
    assert _names(dealer, url) == {"dealer_one", "dealer_two"}
    assert _names(dealer, url, q="zhang") == set()
    assert _names(dealer, url, q="_") == {"dealer_one", "dealer_two"}
    # staff who may read every department (roles.yaml) reach everyone, as administrators do
    everyone = {"admin", "dealer_one", "dealer_two", "zhang_sh", "li_bj", "boss_east"}
    for name, password in (("boss_east", "a-password"), ("li_bj", "a-password"),
                           ("admin", "admin-password")):
        assert _names(client_for(env, name, password), url) == everyone
    # choosing by id is no way round it: the widget stays empty for staff
    for member, shown in ((s.zhang.id, False), (env.admin.id, False), (s.colleague.id, True)):
        widget = dealer.get(f"{url}/choose", params={"id": member})
        assert widget.status_code == 200
        assert ("dealer_two" in widget.text) is shown
        assert "zhang_sh" not in widget.text and ">admin<" not in widget.text


def test_the_team_refuses_a_user_the_picker_does_not_offer_as_if_unknown(env: Env) -> None:
    s = Staff(env)
    api = env.client(env.users.new_token("dealer_one"))
    team = f"/api/opportunity/{s.deal}/team"

    def refusal(body: dict[str, Any], name: str) -> str:
        resp = api.post(team, json=body)
        assert resp.status_code == 422, resp.text
        return resp.text.replace(name, "<who>")

    assert refusal({"user": "zhang_sh"}, "zhang_sh") == refusal({"user": "nobody_x"},
                                                                  "nobody_x")
    assert refusal({"user": s.zhang.id}, str(s.zhang.id)) == refusal({"user": 10**6},
                                                                     str(10**6))
    assert env.records.team(SYSTEM, "opportunity", s.deal) == []
    resp = api.post(team, json={"user": "dealer_two"})
    assert resp.status_code == 200 and [m["user"] for m in resp.json()["items"]] == [
        "dealer_two"]
    # the page's team form holds the same rule
    page = client_for(env, "dealer_one")
    path = f"/e/opportunity/{s.deal}"
    token = csrf_of(page.get(path).text)
    refused = page.post(f"{path}/team", data={"csrf_token": token, "_member": str(s.li.id)})
    assert refused.status_code == 422 and f"no active user with id {s.li.id}" in refused.text
    assert [m["user"] for m in env.records.team(SYSTEM, "opportunity", s.deal)] == [
        "dealer_two"]
