"""The report builder (engine/web/pages/report_builder.py, report_draft.py) and saved
reports (engine/runtime/reports/saved.py): the live filter check, the preview, saving
personal and shared reports, who sees and changes them, hidden fields and unreadable
entities refused, and the export of a saved report into config/reports."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from engine.cli import main
from engine.metadata import load_model
from engine.runtime.reports.saved import SavedReports, saved_id
from tests.access_helpers import user
from tests.conftest import Env, EnvFactory, replace_roles
from tests.test_reports import deals
from tests.web_helpers import csrf_of, sign_in

REPO = Path(__file__).resolve().parents[1]


def browser(env: Env, name: str = "admin", password: str = "admin-password") -> TestClient:
    client = env.client()
    client.headers["Accept"] = "text/html,application/xhtml+xml"
    assert sign_in(client, name, password).status_code == 303
    return client


def form(client: TestClient, **fields: str) -> dict[str, str]:
    """A builder form as the page posts it (its CSRF token included)."""
    token = csrf_of(client.get("/reports/new").text)
    base = {"csrf_token": token, "entity": "opportunity", "label": "Won by owner",
            "name": "won_by_owner", "agg_0": "count"}
    base.update(fields)
    return base


def headers(client: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": csrf_of(client.get("/reports/new").text), "HX-Request": "true"}


def save(client: TestClient, **fields: str) -> str:
    """Save a report through the builder; its address (saved-<id>)."""
    answer = client.post("/reports/new", data=form(client, **fields), follow_redirects=False)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/reports/saved-")
    return location.removeprefix("/reports/")


def test_the_filter_is_checked_as_it_is_typed(env: Env) -> None:
    client = browser(env)
    hx = headers(client)
    ok = client.post("/reports/builder/check", headers=hx,
                     data={"entity": "opportunity", "filter": 'stage = "won"'})
    assert ok.status_code == 200 and "The formula is valid." in ok.text
    bad = client.post("/reports/builder/check", headers=hx,
                      data={"entity": "opportunity", "filter": 'stage = "won" AND amout > 1'})
    assert 'class="error"' in bad.text
    assert "1:19" in bad.text and "amout" in bad.text and "amount" in bad.text  # did you mean
    syntax = client.post("/reports/builder/check", headers=hx,
                         data={"entity": "opportunity", "filter": "stage = \n(1 +"})
    assert re.search(r"2:\d+", syntax.text), syntax.text
    assert client.post("/reports/builder/check", data={"entity": "opportunity",
                                                      "filter": "x"}).status_code == 403


def test_the_builder_offers_only_what_the_viewer_may_read(env: Env) -> None:
    user(env, "mkt", "marketing")  # opportunity.amount is hidden from marketing
    mkt = browser(env, "mkt", "a-password")
    page = mkt.get("/reports/new?entity=opportunity")
    assert page.status_code == 200
    assert 'value="stage"' in page.text and 'value="account.industry"' in page.text
    assert 'value="amount"' not in page.text and 'value="weighted"' not in page.text
    assert '<option value="service_queue"' not in page.text  # marketing reads no queues
    admin = browser(env).get("/reports/new?entity=opportunity").text
    assert 'value="amount"' in admin and 'value="owner"' in admin


def test_preview_runs_the_draft_on_live_data(env: Env) -> None:
    deals(env)
    client = browser(env)
    answer = client.post("/reports/builder/preview", headers=headers(client),
                         data=form(client, group_0="stage", agg_1="sum", agg_field_1="amount",
                                   filter='stage <> "lost"'))
    assert answer.status_code == 200, answer.text
    html = answer.text
    assert html.count('class="report-group"') == 3  # prospecting, proposal, won
    total = re.search(r'<tr class="report-total">.*?</tr>', html, re.S)
    assert total is not None and "¥10,000.00" in total.group(0) and ">4<" in total.group(0)
    assert "Sum of Amount" in html
    funnel = client.post("/reports/builder/preview", headers=headers(client),
                         data=form(client, group_0="stage", agg_1="sum", agg_field_1="amount",
                                   chart="funnel"))
    assert funnel.status_code == 200 and "<svg" in funnel.text
    assert "Funnel chart" in funnel.text
    two = client.post("/reports/builder/preview", headers=headers(client),
                      data=form(client, group_0="stage", group_1="owner", chart="bar"))
    assert two.status_code == 422 and "chart" in two.text and "<svg" not in two.text
    broken = client.post("/reports/builder/preview", headers=headers(client),
                         data=form(client, group_0="stag"))
    assert broken.status_code == 422 and "not a field you may report on" in broken.text


def test_a_saved_report_runs_exports_and_lists_beside_the_config_ones(env: Env,
                                                                     api: TestClient) -> None:
    deals(env)
    client = browser(env)
    name = save(client, group_0="owner", agg_1="sum", agg_field_1="amount",
                filter='stage <> "lost"', sort="sum_amount", desc="1", shared="1")
    page = client.get(f"/reports/{name}")
    assert page.status_code == 200 and "<h1>Won by owner</h1>" in page.text
    assert f'href="/reports/{name}/edit"' in page.text
    assert f'href="/reports/{name}"' in client.get("/reports").text
    listed = [r["report"] for r in api.get("/api/reports").json()["items"]]
    assert listed[-1] == name and "sales_funnel" in listed
    body = api.get(f"/api/reports/{name}").json()
    assert [r["values"]["owner"] for r in body["rows"]][:1] != [None]
    assert body["totals"]["values"]["sum_amount"] == "10000.00"
    csv = api.get(f"/api/reports/{name}?format=csv")
    assert csv.status_code == 200 and "10000" in csv.text
    assert client.get(f"/reports/{name}/export?format=xlsx").status_code == 200


def test_personal_and_shared_visibility(env: Env) -> None:
    deals(env)
    rep_a = browser(env, "rep_a", "a-password")
    rep_b = browser(env, "rep_b", "a-password")
    personal = save(rep_a, label="Mine", name="mine")
    shared = save(rep_a, label="Ours", name="ours", shared="1")
    # rep_b sees the shared one (and runs it over their own deals), not the personal one
    assert rep_b.get(f"/reports/{personal}").status_code == 404
    assert rep_b.get(f"/reports/{shared}").status_code == 200
    b_api = env.client(env.users.new_token("rep_b"))
    names = [r["report"] for r in b_api.get("/api/reports").json()["items"]]
    assert shared in names and personal not in names
    assert b_api.get(f"/api/reports/{shared}").json()["totals"]["values"]["count"] == 4
    assert b_api.get(f"/api/reports/{personal}").status_code == 404
    # only the author (or an administrator) changes it
    token = csrf_of(rep_b.get(f"/reports/{shared}").text)
    assert rep_b.get(f"/reports/{shared}/edit").status_code == 403
    assert rep_b.post(f"/reports/{shared}/delete",
                      data={"csrf_token": token}).status_code == 403
    assert 'action="/reports/' not in rep_b.get(f"/reports/{shared}").text.split("<table")[0]
    # no CSRF token, no change
    assert rep_a.post(f"/reports/{shared}/delete", data={}).status_code == 403
    edited = rep_a.post(f"/reports/{shared}/edit", follow_redirects=False,
                        data=form(rep_a, label="Ours, by stage", name="ours", group_0="stage",
                                  shared="1"))
    assert edited.status_code == 303
    assert "Ours, by stage" in rep_b.get(f"/reports/{shared}").text
    admin = browser(env)
    assert admin.get(f"/reports/{personal}").status_code == 404  # personal: its author only
    assert admin.get(f"/reports/{shared}/edit").status_code == 200
    token = csrf_of(rep_a.get(f"/reports/{shared}").text)
    assert rep_a.post(f"/reports/{shared}/delete", data={"csrf_token": token},
                      follow_redirects=False).status_code == 303
    assert rep_b.get(f"/reports/{shared}").status_code == 404


def test_a_rep_cannot_report_on_an_entity_they_cannot_read(env: Env) -> None:
    deals(env)
    rep = browser(env, "rep_a", "a-password")
    assert '<option value="service_queue"' not in rep.get("/reports/new").text
    data = form(rep, entity="service_queue", was_entity="service_queue")
    assert rep.post("/reports/new", data=data).status_code == 403
    assert rep.post("/reports/builder/preview", headers=headers(rep),
                    data=data).status_code == 403


def test_a_rep_cannot_report_on_a_hidden_field(make_env: EnvFactory,
                                               config_dir: Path) -> None:
    roles = (config_dir / "roles.yaml").read_text()
    roles = roles.replace(
        "      account: {credit_limit: readonly, tier: readonly, opening_receivable: readonly, "
        "opening_advance: readonly}",
        "      account: {credit_limit: readonly, tier: readonly, opening_receivable: readonly, "
        "opening_advance: readonly}\n      opportunity: {amount: hidden}", 1)
    replace_roles(config_dir, roles)
    env = make_env(config_dir)
    deals(env)
    rep = browser(env, "rep_a", "a-password")
    page = rep.get("/reports/new?entity=opportunity").text
    assert 'value="amount"' not in page and 'value="stage"' in page
    for fields in ({"group_0": "amount"}, {"agg_1": "sum", "agg_field_1": "amount"},
                   {"filter": "amount > 100"}):
        answer = rep.post("/reports/new", data=form(rep, **fields))
        assert answer.status_code in (403, 422), (fields, answer.status_code)
        preview = rep.post("/reports/builder/preview", headers=headers(rep),
                           data=form(rep, **fields))
        assert preview.status_code in (403, 422) and "report-total" not in preview.text
    # a definition naming it, saved behind the builder's back, is refused by the compiler
    store = SavedReports(env.records)
    actor = env.users.by_name_or_none("rep_a").actor()  # type: ignore[union-attr]
    text = ("report: sneaky\nentity: opportunity\n"
            "aggregates: [{name: total, agg: sum, field: amount}]\n")
    with pytest.raises(Exception, match="may not see"):
        store.save(actor, text, shared=False)
    check = rep.post("/reports/builder/check", headers=headers(rep),
                     data={"entity": "opportunity", "filter": "amount > 1"})
    assert 'class="error"' in check.text


def test_bad_definitions_are_refused_with_their_problem(env: Env) -> None:
    store = SavedReports(env.records)
    actor = env.admin.actor()
    with pytest.raises(Exception) as caught:
        store.save(actor, "report: x\nentity: opportunity\naggregates: []\n", shared=False)
    assert "aggregates" in str(getattr(caught.value, "fields", caught.value))
    with pytest.raises(Exception, match="not valid"):
        store.save(actor, "x" * 20_000, shared=False)
    client = browser(env)
    answer = client.post("/reports/new", data=form(client, limit="0"))
    assert answer.status_code == 422 and "limit" in answer.text


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fields=st.dictionaries(
    st.sampled_from(["entity", "group_0", "bucket_0", "agg_0", "agg_field_0", "agg_1",
                     "agg_field_1", "filter", "sort", "limit", "name", "label", "was_entity"]),
    st.text(max_size=30), max_size=8))
def test_any_builder_form_is_a_preview_or_a_4xx(env: Env, fields: dict[str, str]) -> None:
    client = _admin_client(env)
    answer = client.post("/reports/builder/preview", headers=_admin_headers(env),
                         data=fields)
    assert answer.status_code in (200, 403, 422), (fields, answer.text[:500])
    redrawn = client.post("/reports/builder/form", headers=_admin_headers(env), data=fields)
    assert redrawn.status_code == 200, (fields, redrawn.text[:500])


_CLIENTS: dict[int, tuple[TestClient, dict[str, str]]] = {}


def _admin_client(env: Env) -> TestClient:
    key = id(env)
    if key not in _CLIENTS:
        _CLIENTS.clear()
        client = browser(env)
        _CLIENTS[key] = (client, headers(client))
    return _CLIENTS[key][0]


def _admin_headers(env: Env) -> dict[str, str]:
    return _CLIENTS[id(env)][1]


def test_the_form_is_redrawn_for_the_choices_made(env: Env) -> None:
    client = browser(env)
    hx = headers(client)
    dated = client.post("/reports/builder/form", headers=hx,
                        data=form(client, group_0="close_date", agg_0="sum"))
    assert 'name="bucket_0"' in dated.text  # a date groups by a bucket
    assert 'name="group_1"' in dated.text  # room for another group
    assert re.search(r'name="agg_field_0".*?<option value="amount"', dated.text, re.S)
    assert 'value="name"' not in dated.text.split('name="agg_field_0"')[1].split("</select>")[0]
    other = client.post("/reports/builder/form", headers=hx,
                        data=form(client, entity="account", was_entity="opportunity",
                                  group_0="stage"))
    assert 'name="group_0"' in other.text and 'value="stage" selected' not in other.text
    elsewhere = client.post("/reports/builder/form", headers=hx,
                            data=form(client, action="https://example.org/steal"))
    assert 'action="/reports/new"' in elsewhere.text and "example.org" not in elsewhere.text


def test_an_admin_exports_a_saved_report_that_passes_crm_check(env: Env,
                                                               tmp_path: Path) -> None:
    deals(env)
    client = browser(env)
    name = save(client, label="Pipeline by month", name="pipeline_by_month",
                group_0="close_date", bucket_0="month", group_1="stage", agg_1="sum",
                agg_field_1="weighted", filter='stage <> "lost"', limit="500", shared="1",
                chart="stacked_bar")
    assert "<svg" in client.get(f"/reports/{name}").text
    download = client.get(f"/reports/{name}/yaml")
    assert download.status_code == 200
    assert 'filename="pipeline_by_month.yaml"' in download.headers["content-disposition"]
    assert "report: pipeline_by_month" in download.text
    rep = browser(env, "rep_a", "a-password")
    assert rep.get(f"/reports/{name}/yaml").status_code == 403
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (config / "reports" / "pipeline_by_month.yaml").write_text(download.text)
    model = load_model(config)  # what crm check loads
    report = model.report("pipeline_by_month")
    assert report is not None and [g.path for g in report.groups] == ["close_date", "stage"]
    assert report.chart is not None and report.chart.series == "stage"
    # the CLI writes the same file under the name it is given
    report_id = saved_id(name)
    out = config / "reports" / "pipeline_monthly.yaml"
    url = str(env.engine.url.render_as_string(hide_password=False))
    run = _crm(["--config", str(config), "--db", url, "report", "export", str(report_id),
                "-o", str(out)])
    assert run.exit_code == 0, run.stderr
    assert out.read_text().startswith("report: pipeline_monthly")
    check = _crm(["--config", str(config), "check"])
    assert check.exit_code == 0, check.stderr
    again = _crm(["--config", str(config), "--db", url, "report", "export", str(report_id),
                  "-o", str(out)])
    assert again.exit_code == 1 and "exists" in again.stderr
    missing = _crm(["--config", str(config), "--db", url, "report", "export", "999",
                    "-o", str(tmp_path / "x.yaml")])
    assert missing.exit_code == 1 and "no saved report" in missing.stderr


def _crm(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False)
