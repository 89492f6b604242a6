"""After-sales service: queues and their members, service requests whose times run in order
(received ≤ first response ≤ resolved), the work orders that carry them out with the parts
used, and planned maintenance visits."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.runtime.access import SYSTEM
from engine.runtime.demo.catalogue import by_code, in_line
from engine.runtime.demo.context import Account, Demo, Product
from engine.runtime.users import User

# code, English, Chinese, kind (the key accounts' queue first: the others escalate to it)
QUEUES = [
    ("key", "Key accounts service", "重点客户服务", "key_accounts"),
    ("field", "Field service", "现场服务", "field_service"),
    ("hotline", "Service hotline", "服务热线", "hotline"),
    ("complaints", "Complaints", "投诉处理", "complaints"),
]
ESCALATES = {"field": "key", "hotline": "field", "complaints": "key"}
# targets as the queues' defaults have them: first response minutes, resolution hours
TARGETS = {"urgent": (30, 8), "high": (120, 24), "normal": (480, 72), "low": (1440, 168)}
SUBJECTS = {
    "repair": {"en": ["{m}: hydraulic oil leak", "{m} will not start", "Gearbox noise on {m}",
                      "{m}: engine overheating", "Brake fault on {m}"],
               "zh": ["{m}液压系统漏油", "{m}无法启动", "{m}变速箱异响", "{m}发动机水温过高",
                      "{m}制动故障"]},
    "complaint": {"en": ["Spare parts delivered late", "Engineer missed the appointment"],
                  "zh": ["配件交付延迟", "服务工程师未按约到场"]},
    "suggestion": {"en": ["Cab heater as an option for {m}", "Longer service interval"],
                   "zh": ["建议{m}增加驾驶室暖风选装", "建议延长保养周期"]},
    "inquiry": {"en": ["Service interval of {m}", "Warranty terms for {m}"],
                "zh": ["咨询{m}保养周期", "咨询{m}保修条款"]},
}


def make_service(demo: Demo) -> None:
    demo.say("service")
    queues = _queues(demo)
    requests = _requests(demo, queues)
    plans = _plans(demo, queues)
    _work_orders(demo, requests, plans)


def _team(demo: Demo) -> list[User]:
    return demo.with_role("service_agent", "service_manager") or demo.staff[:1]


def _queues(demo: Demo) -> dict[str, int]:
    ids: dict[str, int] = {}
    for code, en, zh, kind in QUEUES:
        ids[code] = demo.bulk(SYSTEM, "service_queue", [{
            "name": f"{en} · {zh}", "kind": kind,
            "escalates_to": ids.get(ESCALATES.get(code, ""))}])[0]
    rows = []
    for user in _team(demo) + demo.with_role("presales"):
        role = {"service_manager": "supervisor", "presales": "engineer"}.get(user.roles[0],
                                                                            "agent")
        for code in ids:
            rows.append({"queue": ids[code], "member": user.id, "role": role})
    demo.bulk(SYSTEM, "service_queue_member", rows)
    return ids


def _equipment_of(demo: Demo, account: Account) -> list[Product]:
    sold = [i.product for d in demo.deals if d.account is account and d.stage == "won"
            for i in d.items if i.product.family == "equipment"]
    return sold or [p for p in demo.products if p.family == "equipment"]


class Request:
    def __init__(self, account: Account, product: Product, status: str,
                 received: datetime, responded: datetime | None,
                 resolved: datetime | None, kind: str) -> None:
        self.account, self.product, self.status, self.kind = account, product, status, kind
        self.received, self.responded, self.resolved = received, responded, resolved
        self.id = 0


def _requests(demo: Demo, queues: dict[str, int]) -> list[Request]:
    rnd = demo.stream(30)
    team = _team(demo)
    rows: list[tuple[User, dict[str, Any]]] = []
    made: list[Request] = []
    served = [a for a in demo.accounts if a.status in ("customer", "former", "partner")]
    for n, account in enumerate(served):
        for _ in range(rnd.randrange(0, 5)):
            kind = rnd.choices(["repair", "complaint", "suggestion", "inquiry"], [6, 1, 1, 2])[0]
            priority = rnd.choices(["urgent", "high", "normal", "low"], [1, 3, 5, 2])[0]
            product = rnd.choice(_equipment_of(demo, account))
            received = demo.at(demo.past_day(rnd), rnd, start=0, end=24)
            respond, resolve = TARGETS[priority]
            responded = received + timedelta(minutes=rnd.randrange(2, int(respond * 1.4)))
            resolved = responded + timedelta(minutes=rnd.randrange(30, resolve * 72))
            age = demo.now - received
            status = ("closed" if age > timedelta(days=14) and rnd.random() < 0.93 else
                      "cancelled" if age > timedelta(days=14) else
                      rnd.choice(["new", "assigned", "in_progress", "waiting_customer",
                                  "resolved"]))
            if status == "resolved" and resolved > demo.now:
                status = "in_progress"
            if status in ("in_progress", "waiting_customer", "assigned") and \
                    responded > demo.now:
                status = "new"
            resolved_at: datetime | None = None
            shown_response: datetime | None = None
            if status not in ("new", "cancelled"):
                shown_response = responded
                resolved_at = resolved if status in ("resolved", "closed") else None
            queue = ("complaints" if kind == "complaint" else
                     "key" if account.tier == "strategic" else
                     "field" if kind == "repair" else "hotline")
            escalated = rnd.random() < 0.1 and queue in ESCALATES
            model = (product.zh if account.lang == "zh" else product.en).split("（")[0] \
                .split(",")[0]
            subject = rnd.choice(SUBJECTS[kind][account.lang]).format(m=model)
            lang = account.lang
            rows.append((team[n % len(team)], {
                "subject": subject[:200], "request_type": kind, "priority": priority,
                "status": status, "channel": rnd.choice(["phone", "call_center", "email",
                                                         "web", "on_site", "partner"]),
                "queue": queues[ESCALATES[queue] if escalated else queue],
                "escalation_level": 1 if escalated else 0, "account": account.id,
                "contact": rnd.choice(account.contacts), "product": product.id,
                "received_at": received, "first_response_at": shown_response,
                "resolved_at": resolved_at,
                "description": ("客户来电反映：" if lang == "zh" else "Customer reports: ")
                + subject,
                "resolution": (("已更换故障部件，设备恢复正常" if lang == "zh"
                                else "Faulty part replaced; machine back in service")
                               if resolved_at else None),
                "satisfaction": rnd.choices(["very_satisfied", "satisfied", "neutral",
                                             "dissatisfied", "very_dissatisfied"],
                                            [4, 5, 2, 1, 1])[0]
                if status == "closed" else None}))
            made.append(Request(account, product, status, received, shown_response,
                                resolved_at, kind))
    for rid, request in zip(demo.bulk_owned("service_request", rows), made, strict=True):
        request.id = rid
    return made


class Plan:
    def __init__(self, pid: int, account: Account, product: Product, done: bool,
                 day: datetime, maintained: bool) -> None:
        self.id, self.account, self.product, self.done, self.day = pid, account, product, \
            done, day
        self.maintained = maintained  # a maintenance visit, else a warranty inspection


def _plans(demo: Demo, queues: dict[str, int]) -> list[Plan]:
    """Maintenance visits for the accounts that bought a maintenance contract: quarterly,
    the past ones done, the coming ones planned or confirmed."""
    rnd = demo.stream(31)
    team = _team(demo)
    rows: list[tuple[User, dict[str, Any]]] = []
    made: list[tuple[Account, Product, bool, datetime, bool]] = []
    for deal in demo.deals:
        if deal.stage != "won":
            continue
        maintained = any(i.product.line == "SVC" for i in deal.items)
        if not maintained and not any(i.product.family == "equipment" for i in deal.items):
            continue
        account = deal.account
        product = rnd.choice(_equipment_of(demo, account))
        zh = account.lang == "zh"
        model = (product.zh if zh else product.en).split("（")[0].split(",")[0]
        step = 91 if maintained else 182  # maintenance quarterly, warranty checks twice a year
        for q in range(1, 6):
            day = deal.close_date + timedelta(days=step * q)
            if day > demo.today + timedelta(days=120):
                break
            done = day < demo.today
            subject = ((f"{model}季度保养" if zh else f"Quarterly maintenance of {model}")
                       if maintained else
                       (f"{model}保修期巡检" if zh else f"Warranty inspection of {model}"))
            rows.append((team[len(rows) % len(team)], {
                "subject": subject, "plan_type": "maintenance" if maintained else "inspection",
                "account": account.id, "contact": account.contacts[0], "product": product.id,
                "queue": queues["field"], "visit_date": day,
                "recurrence": "quarterly" if maintained else "half_yearly",
                "status": "done" if done else rnd.choice(["planned", "confirmed"]),
                "done_on": day if done else None}))
            made.append((account, product, done, demo.at(day, rnd), maintained))
    ids = demo.bulk_owned("service_plan", rows)
    return [Plan(pid, *m) for pid, m in zip(ids, made, strict=True)]


def _work_orders(demo: Demo, requests: list[Request], plans: list[Plan]) -> None:
    rnd = demo.stream(32)
    team = _team(demo)
    rate = by_code(demo, "SVC-HOUR").price
    rows: list[tuple[User, dict[str, Any]]] = []
    for n, r in enumerate(requests):
        if r.kind != "repair" or r.responded is None:
            continue
        zh = r.account.lang == "zh"
        tech = team[n % len(team)]
        start = r.responded + timedelta(minutes=rnd.randrange(10, 120))
        if r.resolved is not None:
            start = min(start, r.resolved)
            done_at: datetime | None = r.resolved
            status = "completed"
        else:
            done_at = None
            status = "in_progress" if start <= demo.now else "scheduled"
        hours = Decimal(max(1, round((done_at - start).total_seconds() / 3600 * 0.6)))\
            if done_at else None
        rows.append((tech, {
            "subject": ("维修：" if zh else "Repair: ") + r.product.zh.split("（")[0]
            if zh else f"Repair: {r.product.en.split(',')[0]}",
            "service_request": r.id, "account": r.account.id, "product": r.product.id,
            "technician": tech.id, "work_type": "repair", "status": status,
            "scheduled_at": start, "started_at": start if status != "scheduled" else None,
            "completed_at": done_at, "hours": hours, "hourly_rate": rate,
            "work_done": ("检查并更换故障部件" if zh else "Inspected and replaced the faulty part")
            if done_at else None}))
    for n, p in enumerate(plans):
        if not p.done:
            continue
        zh = p.account.lang == "zh"
        tech = team[n % len(team)]
        rows.append((tech, {
            "subject": ("定期保养" if zh else "Scheduled maintenance") if p.maintained
            else ("保修期巡检" if zh else "Warranty inspection"),
            "service_plan": p.id, "account": p.account.id, "product": p.product.id,
            "technician": tech.id, "status": "completed",
            "work_type": "maintenance" if p.maintained else "inspection",
            "scheduled_at": p.day, "started_at": p.day,
            "completed_at": p.day + timedelta(hours=3), "hours": Decimal(3),
            "hourly_rate": rate,
            "work_done": "更换机油、滤芯，全面检查" if zh else "Oil and filters changed, "
            "full inspection"}))
    ids = demo.bulk_owned("work_order", rows)
    parts = in_line(demo, "PRT")
    used: list[tuple[User, dict[str, Any]]] = []
    for wid, (tech, row) in zip(ids, rows, strict=True):
        if row["status"] != "completed" or rnd.random() < 0.4:
            continue
        for part in rnd.sample(parts, rnd.randrange(1, 3)):
            used.append((tech, {"work_order": wid, "product": part.id,
                                "quantity": Decimal(rnd.randrange(1, 4)),
                                "unit_price": part.price,
                                "warranty": rnd.random() < 0.3}))
    demo.bulk_owned("work_order_part", used)
