"""The shipped service model (config/entities/service_*.yaml, work_order*.yaml): response
times against the queue's targets, the rules that keep a request's times in order, and the
rollups of work orders and parts; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.runtime.access import SYSTEM
from engine.runtime.errors import Invalid
from engine.runtime.records.query import parse_list_params
from tests.conftest import Env
from tests.web_helpers import csrf_of, sign_in


def _account(env: Env, name: str = "Acme Machinery") -> dict[str, Any]:
    return env.records.create(SYSTEM, "account", {"name": name})


def _request(env: Env, **values: Any) -> dict[str, Any]:
    return env.records.create(SYSTEM, "service_request", {"subject": "Pump leaks", **values})


def _listed(env: Env, entity: str, **params: str) -> list[str]:
    page = env.records.list_records(SYSTEM, entity, parse_list_params(
        env.model.entity(entity), params))
    return [r["subject"] for r in page.items]


def test_response_times_are_measured_against_the_queue_targets(env: Env) -> None:
    queue = env.records.create(SYSTEM, "service_queue", {"name": "Beijing hotline"})
    assert (queue["response_minutes_urgent"], queue["resolve_hours_urgent"]) == (30, 8)
    acme = _account(env)
    late = _request(env, subject="late", account=acme["id"], queue=queue["id"],
                    priority="urgent", received_at="2026-03-02T09:00:00Z",
                    first_response_at="2026-03-02T09:25:59Z",
                    resolved_at="2026-03-02T19:00:00Z")
    assert (late["response_minutes"], late["response_target_minutes"]) == (25, 30)
    assert late["responded_in_time"] is True
    # ten hours against an eight-hour target
    assert (late["resolution_hours"], late["resolution_target_hours"]) == (Decimal("10"), 8)
    assert late["resolved_in_time"] is False
    quick = _request(env, subject="quick", account=acme["id"], queue=queue["id"],
                     priority="low", received_at="2026-03-02T09:00:00Z",
                     first_response_at="2026-03-03T10:00:00Z",
                     resolved_at="2026-03-04T09:00:00Z")
    assert (quick["response_minutes"], quick["response_target_minutes"]) == (1500, 1440)
    assert (quick["responded_in_time"], quick["resolved_in_time"]) == (False, True)
    waiting = _request(env, subject="waiting", account=acme["id"], queue=queue["id"],
                       received_at="2026-03-02T09:00:00Z")
    assert waiting["response_minutes"] is None and waiting["responded_in_time"] is None
    no_queue = _request(env, subject="no queue", account=acme["id"],
                        received_at="2026-03-02T09:00:00Z",
                        first_response_at="2026-03-02T09:10:00Z")
    assert no_queue["response_minutes"] == 10 and no_queue["responded_in_time"] is None
    # the same answers in the database: lists filter and sort on them
    assert _listed(env, "service_request", responded_in_time="true") == ["late"]
    assert _listed(env, "service_request", resolved_in_time="false") == ["late"]
    assert _listed(env, "service_request", response_minutes__gte="1",
                   sort="-response_minutes") == ["quick", "late", "no queue"]
    # a queue's tighter target changes the verdict of its requests
    env.records.update(SYSTEM, "service_queue", queue["id"],
                       {"response_minutes_urgent": 20}, queue["version"])
    assert env.records.get(SYSTEM, "service_request", late["id"])["responded_in_time"] is False


def test_a_request_is_received_when_created(env: Env) -> None:
    request = _request(env, account=_account(env)["id"])
    assert request["received_at"] is not None
    assert (request["status"], request["priority"], request["escalation_level"]) == (
        "new", "normal", 0)


@pytest.mark.parametrize(("values", "field"), [
    ({"first_response_at": "2026-03-02T08:59:59Z"}, "first_response_at"),
    ({"resolved_at": "2026-03-02T10:00:00Z"}, "resolved_at"),  # no first response
    ({"first_response_at": "2026-03-02T10:00:00Z", "resolved_at": "2026-03-02T09:30:00Z"},
     "resolved_at"),
    ({"status": "resolved"}, "resolved_at"),
    ({"status": "closed", "first_response_at": "2026-03-02T09:10:00Z",
      "resolved_at": "2026-03-02T09:30:00Z"}, "satisfaction"),
    ({"escalation_level": 4}, "escalation_level"),
])
def test_times_stay_in_order_and_closing_needs_satisfaction(
        env: Env, values: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as info:
        _request(env, account=_account(env)["id"], received_at="2026-03-02T09:00:00Z",
                 **values)
    assert list(info.value.fields) == [field]


def test_a_closed_request_with_its_times_and_satisfaction_saves(env: Env) -> None:
    closed = _request(env, account=_account(env)["id"], status="closed",
                      received_at="2026-03-02T09:00:00Z",
                      first_response_at="2026-03-02T09:00:00Z",
                      resolved_at="2026-03-02T09:00:00Z", satisfaction="satisfied")
    assert (closed["response_minutes"], closed["resolution_hours"]) == (0, Decimal("0"))


def test_the_contact_must_be_of_the_requests_account(env: Env) -> None:
    acme, globex = _account(env), _account(env, "Globex")
    stranger = env.records.create(SYSTEM, "contact", {"full_name": "Li Na",
                                                      "account": globex["id"]})
    with pytest.raises(Invalid) as info:
        _request(env, account=acme["id"], contact=stranger["id"])
    assert list(info.value.fields) == ["contact"]


def test_work_orders_carry_out_a_request_or_a_plan_and_roll_up(env: Env) -> None:
    acme = _account(env)
    request = _request(env, account=acme["id"])
    with pytest.raises(Invalid) as info:
        env.records.create(SYSTEM, "work_order", {"subject": "Visit", "account": acme["id"]})
    assert list(info.value.fields) == ["service_request"]
    other = _account(env, "Globex")
    with pytest.raises(Invalid) as info:
        env.records.create(SYSTEM, "work_order", {
            "subject": "Visit", "account": other["id"], "service_request": request["id"]})
    assert list(info.value.fields) == ["service_request"]

    order = env.records.create(SYSTEM, "work_order", {
        "subject": "Replace seal", "account": acme["id"], "service_request": request["id"],
        "hours": "2.5", "hourly_rate": "200"})
    part = env.records.create(SYSTEM, "product", {"name": "Seal kit", "code": "SK-1"})
    for quantity, price, warranty in [("2", "30.50", False), ("1", "99", True)]:
        env.records.create(SYSTEM, "work_order_part", {
            "work_order": order["id"], "product": part["id"], "quantity": quantity,
            "unit_price": price, "warranty": warranty})
    order = env.records.get(SYSTEM, "work_order", order["id"])
    assert (order["labour_cost"], order["parts_cost"], order["total_cost"]) == (
        Decimal("500.00"), Decimal("160.00"), Decimal("660.00"))
    request = env.records.get(SYSTEM, "service_request", request["id"])
    assert (request["work_orders"], request["work_hours"]) == (1, Decimal("2.5"))

    with pytest.raises(Invalid) as info:  # completed needs its times and hours
        env.records.update(SYSTEM, "work_order", order["id"], {"status": "completed"},
                           order["version"])
    assert list(info.value.fields) == ["completed_at"]
    with pytest.raises(Invalid) as info:
        env.records.update(SYSTEM, "work_order", order["id"], {
            "started_at": "2026-03-02T10:00:00Z", "completed_at": "2026-03-02T09:00:00Z"},
            order["version"])
    assert list(info.value.fields) == ["completed_at"]
    done = env.records.update(SYSTEM, "work_order", order["id"], {
        "status": "completed", "started_at": "2026-03-02T09:00:00Z",
        "completed_at": "2026-03-02T11:30:00Z"}, order["version"])
    assert done["status"] == "completed"


def test_service_plans_schedule_visits_and_count_their_work_orders(env: Env) -> None:
    acme = _account(env)
    plan = env.records.create(SYSTEM, "service_plan", {
        "subject": "Quarterly maintenance", "account": acme["id"],
        "visit_date": "2026-01-31", "recurrence": "quarterly"})
    assert plan["next_visit_date"] == date(2026, 4, 30)
    env.records.create(SYSTEM, "work_order", {
        "subject": "Maintenance", "account": acme["id"], "service_plan": plan["id"],
        "work_type": "maintenance"})
    assert env.records.get(SYSTEM, "service_plan", plan["id"])["work_orders"] == 1
    with pytest.raises(Invalid) as info:
        env.records.update(SYSTEM, "service_plan", plan["id"], {"status": "done"},
                           plan["version"])
    assert list(info.value.fields) == ["done_on"]
    assert env.model.entity("service_plan").field("visit_date").calendar


def test_a_queue_counts_its_active_members_and_open_requests(env: Env) -> None:
    queue = env.records.create(SYSTEM, "service_queue", {"name": "Field service",
                                                         "kind": "field_service"})
    env.records.create(SYSTEM, "service_queue_member", {
        "queue": queue["id"], "member": env.admin.id, "role": "supervisor"})
    acme = _account(env)
    _request(env, account=acme["id"], queue=queue["id"])
    _request(env, account=acme["id"], queue=queue["id"], status="cancelled")
    queue = env.records.get(SYSTEM, "service_queue", queue["id"])
    assert (queue["member_count"], queue["open_requests"]) == (1, 1)
    with pytest.raises(Invalid) as info:  # targets may not shrink as the priority falls
        env.records.update(SYSTEM, "service_queue", queue["id"],
                           {"response_minutes_low": 10}, queue["version"])
    assert list(info.value.fields) == ["_record"]


def test_the_service_pages_show_lists_forms_boards_and_related_lists(
        env: Env, pages: TestClient) -> None:
    sign_in(pages)
    acme = _account(env)
    queue = env.records.create(SYSTEM, "service_queue", {"name": "Beijing hotline"})
    request = _request(env, account=acme["id"], queue=queue["id"], priority="urgent")
    env.records.create(SYSTEM, "work_order", {
        "subject": "Replace the seal", "account": acme["id"], "service_request": request["id"]})
    detail = pages.get(f"/e/service_request/{request['id']}")
    assert detail.status_code == 200
    assert "Replace the seal" in detail.text and "Timeliness" in detail.text
    queue_page = pages.get(f"/e/service_queue/{queue['id']}")
    assert queue_page.status_code == 200 and "Pump leaks" in queue_page.text
    board = pages.get("/e/service_request/board/status")
    assert board.status_code == 200 and "Pump leaks" in board.text
    for name in ("service_queue", "service_queue_member", "service_request", "service_plan",
                 "work_order", "work_order_part"):
        for path in (f"/e/{name}", f"/e/{name}/new"):
            assert pages.get(path).status_code == 200, path
    pages.post("/account/language", data={"language": "zh-CN", "csrf_token": csrf_of(detail.text)})
    zh = pages.get(f"/e/service_request/{request['id']}")
    assert "服务及时性" in zh.text and "紧急" in zh.text
