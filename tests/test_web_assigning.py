"""The assign form (engine/web/pages/assigning.py, records.py): pickers offer only whom the
assigner may assign to; a target out of the assigner's sight is warned about first and, once
confirmed, lands on the list with a notice, never on a 404."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from tests.access_helpers import departments, place, user, write_roles
from tests.conftest import Env, EnvFactory
from tests.test_web_forms import client_for
from tests.web_helpers import csrf_of


def offered(client: TestClient, entity: str, picker: str, q: str = "") -> list[str]:
    html = client.get(f"/e/{entity}/pick/{picker}", params={"q": q}).text
    return re.findall(r'<span class="pick-title">([^<]*)</span>', html)


def test_assign_pickers_offer_only_the_assign_scope(env: Env) -> None:
    d = departments(env)
    user(env, "manager", "sales_manager", department=d["NORTH"])
    user(env, "bj_rep", "sales_rep", department=d["BJ"])
    user(env, "sy_rep", "sales_rep", department=d["SY"])
    sh_rep = user(env, "sh_rep", "sales_rep", department=d["SH"])
    acc = place(env, "account", {"name": "North Co"}, department=d["BJ"])
    manager = client_for(env, "manager")
    assert offered(manager, "account", "_owner") == ["bj_rep", "manager", "sy_rep"]
    assert offered(manager, "account", "_owner", "rep") == ["bj_rep", "sy_rep"]
    assert offered(manager, "account", "_department") == [
        "Beijing branch", "North region", "Shenyang branch"]
    # the administrator reaches everyone
    admin = client_for(env, "admin", "admin-password")
    assert "sh_rep" in offered(admin, "account", "_owner")
    assert "East region" in offered(admin, "account", "_department", "east")
    # the server refuses what the picker does not offer, beside the form
    path = f"/e/account/{acc['id']}"
    page = manager.get(path).text
    refused = manager.post(f"{path}/assign", data={"csrf_token": csrf_of(page),
                                                   "_owner": str(sh_rep.id)})
    assert refused.status_code == 422
    assert "this user is not in a department you may assign records to" in refused.text
    refused = manager.post(f"{path}/assign", data={"csrf_token": csrf_of(page),
                                                   "_department": str(d["EAST"])})
    assert refused.status_code == 422 and "this department is outside" in refused.text
    assert env.records.get(env.admin.actor(), "account", acc["id"])["department_id"] == d["BJ"]


ROLES = """\
roles:
  admin: {admin: true}
  giver:
    entities:
      account: {read: own, update: own, assign: department}
      department: {read: all}
"""


def test_assigning_out_of_sight_warns_then_lands_on_the_list(make_env: EnvFactory,
                                                             config_dir: Path) -> None:
    env = make_env(write_roles(config_dir, ROLES))
    d = departments(env)
    giver = user(env, "giver", "giver", department=d["BJ"])
    colleague = user(env, "colleague", "giver", department=d["BJ"])
    acc = place(env, "account", {"name": "Handed Co"}, owner=giver)
    client = client_for(env, "giver")
    path = f"/e/account/{acc['id']}"
    page = client.get(path).text
    warned = client.post(f"{path}/assign", data={
        "csrf_token": csrf_of(page), "version": str(acc["version"]),
        "_owner": str(colleague.id)})
    assert warned.status_code == 200
    assert 'id="assign-warning"' in warned.text
    assert "You will no longer see this record" in warned.text
    assert 'name="confirmed" value="1"' in warned.text
    assert f'name="_owner" value="{colleague.id}"' in warned.text
    assert env.records.get(env.admin.actor(), "account", acc["id"])["owner_id"] == giver.id

    done = client.post(f"{path}/assign", data={
        "csrf_token": csrf_of(page), "version": str(acc["version"]),
        "_owner": str(colleague.id), "confirmed": "1"}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/e/account?notice=assigned-away-user-{colleague.id}"
    listed = client.get(done.headers["location"])
    assert listed.status_code == 200
    assert "Assigned to colleague; you no longer see it." in listed.text
    assert "Handed Co" not in listed.text
    assert env.records.get(env.admin.actor(), "account", acc["id"])["owner_id"] == colleague.id
    assert client.get(path).status_code == 404

    # to the department (no owner), in Chinese: the notice names the department
    mine = place(env, "account", {"name": "Pool Co"}, owner=giver)
    path = f"/e/account/{mine['id']}"
    page = client.get(path).text
    client.post("/account/language", data={"language": "zh-CN", "csrf_token": csrf_of(page)})
    done = client.post(f"{path}/assign", data={
        "csrf_token": csrf_of(page), "_department": str(d["BJ"]), "confirmed": "1"},
        follow_redirects=False)
    assert done.headers["location"] == f"/e/account?notice=assigned-away-department-{d['BJ']}"
    shown = client.get(done.headers["location"]).text
    assert "已分配给 Beijing branch" in shown and "你将不再看到这条记录" in shown


def test_assigning_within_sight_goes_back_to_the_record(env: Env) -> None:
    d = departments(env)
    user(env, "manager", "sales_manager", department=d["NORTH"])
    sy_rep = user(env, "sy_rep", "sales_rep", department=d["SY"])
    acc = place(env, "account", {"name": "North Co"}, department=d["BJ"])
    manager = client_for(env, "manager")
    path = f"/e/account/{acc['id']}"
    done = manager.post(f"{path}/assign", data={"csrf_token": csrf_of(manager.get(path).text),
                                                "_owner": str(sy_rep.id)},
                        follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"{path}?done=assigned"


def test_a_made_up_notice_names_nobody(env: Env) -> None:
    client = client_for(env, "admin", "admin-password")
    page = client.get("/e/account", params={"notice": "assigned-away-user-999999"}).text
    assert "Assigned; you no longer see it." in page
    page = client.get("/e/account", params={"notice": "assigned-away-<b>"}).text
    assert "no longer see" not in page
