"""Selling: campaigns and their participants, leads, competitors and their products, and
opportunities named for what they sell ("20 tractor units for Hartley Logistics",
"济南恒通二期配件框架协议"), with the competitors met, stage plans and presales teams."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from engine.metadata.model import Entity
from engine.runtime.access import SYSTEM
from engine.runtime.demo.catalogue import by_code, in_line
from engine.runtime.demo.context import YEARS, Account, Deal, Demo, Item, money
from engine.runtime.demo.customers import INDUSTRIES, company_name
from engine.runtime.users import User

# Share of opportunities per stage: a funnel, widest at the top.
FUNNEL = [("prospecting", 30), ("qualification", 22), ("proposal", 16), ("negotiation", 10),
          ("won", 12), ("lost", 10)]
OPEN_STAGES = ("prospecting", "qualification", "proposal", "negotiation")
# Opportunities a presales engineer joins (every 5th, up to this many), so that role has work.
PRESALES_TEAMS = 40
Rivals = list[tuple[int, list[tuple[int, str, int]]]]
"""The competitors: (id, [(their product id, our comparable product's code, their price)])."""


CN_ORDINALS = ["", "一", "二", "三", "四", "五", "六", "七", "八", "九"]

# type, English name, Chinese name (a campaign is run in one of them), location, line
CAMPAIGNS: list[tuple[str, str, str, str, str]] = [
    ("trade_show", "{year} Shanghai construction machinery fair", "{year}上海工程机械博览会",
     "上海新国际博览中心", "LDR"),
    ("roadshow", "{year} spring tractor roadshow, Shandong", "{year}春季拖拉机山东巡展",
     "济南、潍坊、临沂", "TRC"),
    ("seminar", "Electric forklift energy-saving seminar {year}", "{year}电动叉车节能研讨会",
     "杭州", "FLT"),
    ("webinar", "Fleet telematics webinar {year}", "{year}车队管理平台网络研讨会", "online",
     "TEL"),
    ("customer_visit", "Plant open day {year}", "{year}工厂开放日", "济南总装厂", "TRC"),
    ("trade_show", "{year} Hamburg logistics fair", "{year}汉堡物流展", "Hamburg Messe",
     "FLT"),
    ("email", "Service kit spring offer {year}", "{year}春季保养套件优惠", "email", "PRT"),
    ("seminar", "Leasing and instalment day {year}", "{year}融资租赁推介会", "北京", "FIN"),
]


def make_sales(demo: Demo, size: int, bant: Entity) -> None:
    _campaigns(demo, size)
    leads = _leads(demo, size)
    _campaign_members(demo, leads)
    competitors = _competitors(demo)
    _opportunities(demo, bant, competitors)
    _opportunity_competitors(demo)
    _stage_plans(demo)
    _teams(demo)


def _marketer(demo: Demo) -> User:
    return (demo.with_role("marketing") or demo.sellers)[0]


def _campaigns(demo: Demo, size: int) -> None:
    demo.say("campaigns")
    rnd = demo.stream(10)
    rows: list[dict[str, Any]] = []
    this_year = demo.today.year
    per_year = max(3, min(len(CAMPAIGNS), 3 + size // 60))
    for year in range(this_year - YEARS + 1, this_year + 1):
        for n, (kind, en, zh, place, line) in enumerate(CAMPAIGNS[:per_year]):
            start = date(year, 1 + (n * 12 // per_year + rnd.randrange(2)) % 12,
                         rnd.randrange(1, 25))
            end = start + timedelta(days={"trade_show": 4, "roadshow": 20, "email": 30}
                                    .get(kind, 1))
            zh_one = n % 2 == 0
            name = (zh if zh_one else en).format(year=year)
            budget = Decimal(rnd.randrange(5, 80)) * 10_000
            if end < demo.today:
                stage = rnd.choices(["completed", "follow_up", "cancelled"], [8, 2, 1])[0]
            elif start <= demo.today:
                stage = "running"
            else:
                stage = rnd.choice(["planned", "preparing"])
            spent = stage in ("completed", "follow_up", "running")
            rows.append({
                "name": name, "campaign_type": kind, "stage": stage, "start_date": start,
                "end_date": end, "product_line": demo.product_lines[line],
                "location": place if place != "online" else ("线上" if zh_one else "Online"),
                "budget": budget,
                "actual_cost": money(budget * Decimal(rnd.randrange(70, 112)) / 100)
                if spent else None,
                "expected_revenue": budget * rnd.randrange(8, 30),
                "rating": rnd.choice(["excellent", "good", "good", "fair", "poor"])
                if stage == "completed" else None,
                "description": "面向重点客户的年度活动" if zh_one
                else "Yearly event for key customers and prospects"})
    demo.campaigns = demo.bulk(_marketer(demo).actor(), "campaign", rows)


def _leads(demo: Demo, size: int) -> list[tuple[int, int | None]]:
    """Leads, some from campaigns: (lead id, campaign id)."""
    demo.say("leads")
    rnd = demo.stream(11)
    used = {a.short for a in demo.accounts}
    rows: list[dict[str, Any]] = []
    for i in range(max(10, size // 2)):
        lang = "en" if i % 3 else "zh"
        fk = demo.fakers[lang]
        industry = rnd.choice(INDUSTRIES)
        company, _short, _city = company_name(demo, rnd, lang, industry, used)
        source = rnd.choice(["website", "trade_show", "referral", "campaign", "cold_call",
                             "partner"])
        campaign = rnd.choice(demo.campaigns) if source in ("trade_show", "campaign") \
            else None
        received = demo.at(demo.past_day(rnd, oldest=2 * 365), rnd)
        age = (demo.now - received).days
        status = ("new" if age < 20 else "working" if age < 60 else
                  rnd.choice(["qualified", "disqualified", "converted", "working"]))
        rows.append({
            "company": company, "contact_name": fk.name(), "email": f"lead{i}@example.com",
            "phone": f"+86 {rnd.randrange(130, 190)} {rnd.randrange(1000, 9999)} "
                     f"{rnd.randrange(1000, 9999)}" if lang == "zh"
            else f"+1 {rnd.randrange(200, 999)} {rnd.randrange(100, 999)} "
                 f"{rnd.randrange(1000, 9999)}", "source": source, "status": status,
            "industry": industry, "campaign": campaign,
            "interests": rnd.sample(["equipment", "service", "parts", "financing",
                                     "training"], 2),
            "estimated_value": Decimal(rnd.randrange(10, 900)) * 1000,
            "received_at": received})
    ids = demo.bulk(_marketer(demo).actor(), "lead", rows)
    return [(rid, row["campaign"]) for rid, row in zip(ids, rows, strict=True)]


def _campaign_members(demo: Demo, leads: list[tuple[int, int | None]]) -> None:
    rnd = demo.stream(12)
    rows: list[dict[str, Any]] = []
    for lead, campaign in leads:
        if campaign is not None:
            rows.append({"campaign": campaign, "lead": lead,
                         "response": rnd.choice(["attended", "interested", "registered"])})
    for campaign in demo.campaigns:
        for account in rnd.sample(demo.accounts, min(len(demo.accounts), rnd.randrange(3, 12))):
            response = rnd.choice(["invited", "registered", "attended", "interested",
                                   "declined", "no_response"])
            rows.append({"campaign": campaign, "account": account.id,
                         "contact": rnd.choice(account.contacts), "response": response})
    demo.bulk(_marketer(demo).actor(), "campaign_member", rows)


# name, headquarters, threat, strengths, weaknesses, how to win, products: (name, line, ours)
COMPETITORS: list[tuple[str, str, str, str, str, str, list[tuple[str, str, str, int]]]] = [
    ("雷鸣重工股份有限公司", "潍坊", "high", "价格低，经销网络覆盖县级市场",
     "大马力机型可靠性一般，服务响应慢", "强调全生命周期成本和48小时服务承诺",
     [("雷鸣 M904 拖拉机", "TRC", "TX904", 205_000), ("雷鸣 LG50 装载机", "LDR", "WL50", 352_000)]),
    ("Fieldmaster Equipment", "Chicago", "high", "Strong brand with large farms; precision "
     "farming software", "Expensive; long parts lead times in Asia",
     "Lead with total cost of ownership and local parts stock",
     [("Fieldmaster 1300 tractor", "TRC", "TX1304", 455_000),
      ("Fieldmaster Connect telematics", "TEL", "TEL-FLEET", 3_100)]),
    ("北方叉车集团有限公司", "沈阳", "medium", "叉车产品线全，交货快", "电动叉车电池寿命短",
     "主推锂电叉车与电池保修", [("北方 CPCD30 叉车", "FLT", "FD30", 84_000),
                            ("北方 CPD25 电动叉车", "FLT", "FE25", 109_000)]),
    ("Nordlift AG", "Hamburg", "medium", "Premium electric forklifts; strong in Europe",
     "Few dealers in China; high price", "Offer financing and fleet telematics bundled",
     [("Nordlift E25 electric forklift", "FLT", "FE25", 142_000)]),
    ("华岳工程机械有限公司", "长沙", "low", "装载机价格有优势", "售后网点少，配件供应不稳定",
     "以配件框架协议锁定客户", [("华岳 ZL50 装载机", "LDR", "WL50", 338_000)]),
]


def _competitors(demo: Demo) -> Rivals:
    demo.say("competitors")
    ids = demo.bulk(SYSTEM, "competitor", [
        {"name": name, "headquarters": hq, "threat": threat, "strengths": strong,
         "weaknesses": weak, "strategy": how}
        for name, hq, threat, strong, weak, how, _p in COMPETITORS])
    rows = []
    for cid, (*_rest, products) in zip(ids, COMPETITORS, strict=True):
        for name, line, ours, price in products:
            rows.append({"name": name, "competitor": cid,
                         "product_line": demo.product_lines[line],
                         "our_product": by_code(demo, ours).id, "price": Decimal(price)})
    product_ids = iter(demo.bulk(SYSTEM, "competitor_product", rows))
    return [(cid, [(next(product_ids), ours, price) for _n, _l, ours, price in products])
            for cid, (*_rest, products) in zip(ids, COMPETITORS, strict=True)]


def _opportunities(demo: Demo, entity: Entity, competitors: Rivals) -> None:
    demo.say("opportunities")
    rnd = demo.rnd
    answers = demo.stream(13)
    rivals = demo.stream(14)
    names = {cid: spec[0] for (cid, _p), spec in zip(competitors, COMPETITORS, strict=True)}
    stages, weights = zip(*FUNNEL, strict=True)
    by_owner: dict[int, list[Account]] = {}
    for account in demo.accounts:
        by_owner.setdefault(account.owner.id, []).append(account)
    for accounts in by_owner.values():
        rows: list[dict[str, Any]] = []
        deals: list[Deal] = []
        for account in accounts:
            kinds_seen: dict[str, int] = {}
            repeat = account.status in ("customer", "former", "partner")
            for _ in range(rnd.randrange(2, 6) if repeat else rnd.randrange(1, 3)):
                stage = rnd.choices(stages, weights)[0]
                if stage == "won" and account.status == "prospect":
                    stage = "negotiation"  # a prospect has won no deal yet
                closed = stage in ("won", "lost")
                close = (demo.past_day(rnd, newest=5) if closed
                         else demo.today + timedelta(days=rnd.randrange(7, 270)))
                kind = rnd.choices(["fleet", "parts", "service", "telematics"],
                                   [6, 2, 2, 1])[0]
                kinds_seen[kind] = kinds_seen.get(kind, 0) + 1
                items, name = _basket(demo, rnd, account, kind, kinds_seen[kind])
                contact = rnd.choice(account.contacts)
                deal = Deal(id=0, account=account, name=name, stage=stage, close_date=close,
                            items=items, contact=contact)
                deals.append(deal)
                deal.rival = _rival(rivals, deal, competitors)
                rows.append({
                    "name": name, "account": account.id, "primary_contact": contact,
                    # a deal is won on its accepted quote (the pipeline's guard): it waits
                    # in negotiation until its quotes are made (quotes_contracts.py)
                    "amount": deal.amount, "stage": "negotiation" if stage == "won" else stage,
                    "close_date": close,
                    "lost_reason": rnd.choice(["price", "product", "relationship", "timing"])
                    if stage == "lost" else None,
                    "campaign": rnd.choice(demo.campaigns)
                    if demo.campaigns and rnd.random() < 0.15 else None,
                    "competitor": names[deal.rival[0]] if deal.rival else None,
                    "source": rnd.choice(["lead", "existing_customer", "partner", "tender"]),
                    "next_step": None if closed else _next_step(rnd, account.lang, stage),
                    **_bant(answers, entity)})
        ids = demo.bulk(accounts[0].owner.actor(), "opportunity", rows)
        for rid, deal in zip(ids, deals, strict=True):
            deal.id = rid
        demo.deals += deals


def _basket(demo: Demo, rnd: random.Random, account: Account, kind: str,
            phase: int) -> tuple[list[Item], str]:
    """What a deal sells, and its name in the account's language."""
    zh = account.lang == "zh"
    top = {"strategic": 30, "key": 14, "standard": 6}[account.tier]

    def discount() -> int:
        return rnd.choice([0, 0, 3, 5, 5, 8, 10, 12])

    if kind == "fleet":
        main = rnd.choice([p for p in demo.products if p.family == "equipment"])
        qty = rnd.randrange(1, top + 1)
        items = [Item(main, qty, discount())]
        kit = next((p for p in in_line(demo, "PRT") if p.code.startswith("KIT-")
                    and (p.code[4:6] == main.code[:2] or main.line == "FLT")), None)
        if kit is not None and rnd.random() < 0.5:
            items.append(Item(kit, qty * 2, discount()))
        if rnd.random() < 0.3:
            items.append(Item(by_code(demo, "TEL-FLEET"), qty, 0))
        if rnd.random() < 0.2:
            items.append(Item(by_code(demo, "FIN-LEASE36"), 1, 0))
        model = main.zh.split("（")[0].replace(" ", "")
        name = (f"{account.short}{_phase_zh(phase)}{qty}{main.unit_zh}{model}采购项目" if zh
                else f"{qty} {main.unit_en if qty > 1 else main.unit_en.rstrip('s')} "
                     f"for {account.short}{_phase_en(phase)}")
    elif kind == "parts":
        parts = rnd.sample(in_line(demo, "PRT"), rnd.randrange(2, 5))
        items = [Item(p, rnd.randrange(2, 2 * top + 3), discount()) for p in parts]
        name = (f"{account.short}{_phase_zh(phase) or '年度'}配件框架协议" if zh
                else f"Spare parts framework agreement{_phase_en(phase)} – {account.short}")
    elif kind == "service":
        plan = by_code(demo, rnd.choice(["SVC-BASIC", "SVC-FULL"]))
        qty = rnd.randrange(3, 3 * top + 4)
        items = [Item(plan, qty, discount())]
        if rnd.random() < 0.5:
            items.append(Item(by_code(demo, "SVC-HOUR"), rnd.randrange(20, 200), 0))
        what = "全保维修" if plan.code == "SVC-FULL" else "基础保养"
        name = (f"{account.short}{_phase_zh(phase)}{qty}台设备{what}服务合同" if zh
                else f"{qty}-machine {'full-service' if plan.code == 'SVC-FULL' else 'maintenance'}"
                     f" contract for {account.short}{_phase_en(phase)}")
    else:
        qty = rnd.randrange(10, 20 * top)
        items = [Item(by_code(demo, "TEL-FLEET"), qty, discount())]
        if rnd.random() < 0.5:
            items.append(Item(by_code(demo, "TEL-DIAG"), qty, discount()))
        name = (f"{account.short}{_phase_zh(phase)}车联网平台部署（{qty}车）" if zh
                else f"Telematics rollout{_phase_en(phase)}, {qty} vehicles – {account.short}")
    return items, name[:200]


def _phase_zh(phase: int) -> str:
    return f"{CN_ORDINALS[phase]}期" if 1 < phase < len(CN_ORDINALS) else ""


def _phase_en(phase: int) -> str:
    return f", phase {phase}" if phase > 1 else ""


def _next_step(rnd: random.Random, lang: str, stage: str) -> str:
    steps = {
        "en": {"prospecting": ["Book a site visit", "Send the product brochure"],
               "qualification": ["Confirm the budget with the CFO", "Demo at our plant"],
               "proposal": ["Send the revised quote", "Technical clarification meeting"],
               "negotiation": ["Agree the payment terms", "Final price review"]},
        "zh": {"prospecting": ["安排现场拜访", "寄送产品资料"],
               "qualification": ["与财务总监确认预算", "邀请来厂参观演示"],
               "proposal": ["发送修订报价", "技术澄清会"],
               "negotiation": ["商定付款条件", "最终价格谈判"]}}
    return rnd.choice(steps[lang][stage])


# Qualification answers (budget, authority, need, timeline) and the evaluation
# questionnaire, where the entity asks them.
_ANSWERED = ("budget", "authority", "need", "timeline", "eval_amount", "eval_urgency",
             "eval_funding", "eval_competition", "eval_relationship")


def _bant(rnd: random.Random, entity: Entity) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _ANSWERED:
        if entity.has_field(name):
            f = entity.field(name)
            out[name] = rnd.choice([None, *f.options])
    return out


def _rival(rnd: random.Random, deal: Deal, competitors: Rivals) -> tuple[int, int | None] | None:
    """Whom a deal past qualification met (six in ten do): a competitor selling what it
    sells, with their comparable product, or any competitor."""
    if deal.stage in ("prospecting", "qualification") or rnd.random() < 0.4:
        return None
    codes = {i.product.code for i in deal.items}
    matching: list[tuple[int, int | None]] = [
        (cid, p[0]) for cid, products in competitors for p in products if p[1] in codes]
    return rnd.choice(matching or [(c[0], None) for c in competitors])


def _opportunity_competitors(demo: Demo) -> None:
    rnd = demo.stream(16)
    rows: list[tuple[User, dict[str, Any]]] = []
    for deal in demo.deals:
        if deal.rival is None:
            continue
        cid, product = deal.rival
        outcome = {"won": "we_won", "lost": rnd.choice(["they_won", "they_won",
                                                        "no_decision"])}.get(deal.stage,
                                                                             "open")
        rows.append((deal.account.owner, {
            "opportunity": deal.id, "competitor": cid, "competitor_product": product,
            "their_price": money(deal.amount * Decimal(rnd.randrange(82, 108)) / 100),
            "our_position": {"we_won": "leading", "they_won": "behind"}.get(
                outcome, rnd.choice(["leading", "even", "behind"])),
            "outcome": outcome}))
    demo.bulk_owned("opportunity_competitor", rows)


def _stage_plans(demo: Demo) -> None:
    """Every third deal past qualification has its stages planned, and those behind it
    done (项目阶段进展: plan against actual)."""
    rnd = demo.stream(15)
    order = ["prospecting", "qualification", "proposal", "negotiation", "closing"]
    reached = {"proposal": 2, "negotiation": 3, "won": 5, "lost": 3}
    rows: list[tuple[User, dict[str, Any]]] = []
    for deal in demo.deals[::3]:
        if deal.stage not in reached:
            continue
        end = deal.close_date if deal.stage in ("won", "lost") \
            else demo.today + timedelta(days=rnd.randrange(10, 60))
        start = end - timedelta(days=30 * len(order) + rnd.randrange(30))
        for n, stage in enumerate(order):
            p_start = start + timedelta(days=30 * n)
            p_end = p_start + timedelta(days=29)
            row: dict[str, Any] = {"opportunity": deal.id, "stage": stage,
                                   "planned_start": p_start, "planned_end": p_end,
                                   "responsible_department": demo.department_of.get(
                                       deal.account.owner.id)}
            if n < reached[deal.stage]:
                a_start = p_start + timedelta(days=rnd.randrange(-3, 6))
                a_end = min(p_end + timedelta(days=rnd.randrange(-5, 15)), demo.today)
                row |= {"actual_start": a_start, "actual_end": max(a_start, a_end)}
            rows.append((deal.account.owner, row))
    demo.bulk_owned("opportunity_stage_plan", rows)


def _teams(demo: Demo) -> None:
    demo.say("opportunity teams")
    presales = demo.with_role("presales")
    for i, deal in enumerate(demo.deals[::5][:PRESALES_TEAMS] if presales else []):
        demo.records.set_team_member(SYSTEM, "opportunity", deal.id,
                                     presales[i % len(presales)].id, "edit")
