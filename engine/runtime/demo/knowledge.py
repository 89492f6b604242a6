"""Knowledge and notices: articles with the products they concern, and headquarters'
announcements to the branches, with the read receipts of some who read them."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from engine.runtime.demo.catalogue import by_code
from engine.runtime.demo.context import Demo

# title, category, line, products, summary, body (each article is in one language)
ARTICLES: list[tuple[str, str, str, list[str], str, str]] = [
    ("拖拉机500小时保养作业指导", "service_repair", "TRC", ["KIT-TX-500", "TX904", "TX1304"],
     "500小时保养的项目、配件和工时标准", "更换机油及机油滤芯、柴油滤芯、空气滤芯；检查液压油位；"
     "标准工时2.5小时。"),
    ("Wheel loader hydraulic leak: a diagnosis checklist", "service_repair", "LDR",
     ["WL50", "PRT-HYD-PUMP"], "Find the leak before replacing the pump",
     "Clean the area, run the boom through a full cycle, check the hoses and the pump seal "
     "first; replace the pump only when the case drain flow is too high."),
    ("电动叉车与内燃叉车全生命周期成本对比", "solution", "FLT", ["FE25", "FD30"],
     "五年使用期内电动叉车的总成本更低", "以每天两班、每年300天计算，电动叉车五年总成本约低18%，"
     "主要来自能源和保养费用。"),
    ("Selling a fleet deal: from site visit to signed contract", "sales_method", "TRC", [],
     "The steps our best sellers follow", "Meet the fleet manager on site, measure the "
     "working hours, propose a trial unit, then quote with a maintenance contract."),
    ("济南港口装载机项目经验总结", "project_experience", "LDR", ["WL80"],
     "二十台大型装载机项目的投标与交付经验", "提前三个月介入技术交流，提供样机试用；"
     "交付分两批，验收一次通过。"),
    ("Telematics subscription: frequently asked questions", "faq", "TEL",
     ["TEL-FLEET", "TEL-DIAG"], "What customers ask before they subscribe",
     "Data is kept for three years; the diagnosis module needs the fleet subscription; "
     "billing is per vehicle and year."),
    ("Credit limits and signing contracts", "policy", "FIN", ["FIN-LEASE36"],
     "Who may sign past an account's credit limit", "A contract that would take the account "
     "past its available credit goes to the finance review; administrators may sign it."),
    ("融资租赁方案介绍", "product", "FIN", ["FIN-LEASE36", "FIN-INST12"],
     "36期融资租赁和12期分期付款的条件", "首付比例20%起，36期等额还款；分期付款需提供担保。"),
]
# title, kind, importance, whole company, body (en or zh)
ANNOUNCEMENTS: list[tuple[str, str, str, bool, str]] = [
    ("关于调整2025年度配件价格的通知", "notice", "important", True,
     "自下月1日起，部分配件目录价上调3%，已签合同按原价执行。"),
    ("New expense policy for customer visits", "policy", "normal", True,
     "Travel to a customer needs an approved visit plan; receipts within 30 days."),
    ("华东大区年中销售冲刺动员", "news", "normal", False,
     "第三季度重点推广电动叉车和车联网套餐，完成目标的团队另有奖励。"),
    ("Service engineers: hydraulic training in Jinan", "training", "important", False,
     "Two-day hydraulic systems course for field service engineers; register with your "
     "manager."),
    ("春节期间服务热线值班安排", "notice", "urgent", True,
     "春节期间服务热线24小时值守，现场服务按紧急程度安排。"),
]


def make_knowledge(demo: Demo) -> None:
    demo.say("knowledge base and announcements")
    rnd = demo.stream(50)
    author = (demo.with_role("presales", "service_manager") or demo.staff)[0]
    rows: list[dict[str, Any]] = []
    for n, (title, category, line, _products, summary, body) in enumerate(ARTICLES):
        draft = n == len(ARTICLES) - 1
        rows.append({"title": title, "category": category,
                     "product_line": demo.product_lines[line],
                     "status": "draft" if draft else "published",
                     "audience": "partners" if category in ("faq", "product") else "internal",
                     "published_on": None if draft else demo.past_day(rnd, newest=10),
                     "summary": summary, "body": body,
                     "tags": ",".join(_products[:3])})
    ids = demo.bulk(author.actor(), "knowledge_article", rows)
    demo.bulk(author.actor(), "knowledge_article_product", [
        {"article": aid, "product": by_code(demo, code).id}
        for aid, (*_r, products, _s, _b) in zip(ids, ARTICLES, strict=True)
        for code in products])
    _announcements(demo)


def _announcements(demo: Demo) -> None:
    rnd = demo.stream(51)
    publisher = (demo.with_role("executive") or demo.staff)[0]
    branches = demo.departments.get("branch") or demo.departments["headquarters"]
    rows: list[dict[str, Any]] = []
    for n, (title, kind, importance, whole, body) in enumerate(ANNOUNCEMENTS):
        published = demo.today - timedelta(days=20 + 150 * (len(ANNOUNCEMENTS) - n) +
                                           rnd.randrange(30))
        rows.append({"title": title, "kind": kind, "importance": importance,
                     "whole_company": whole, "status": "published" if whole else "draft",
                     "published_on": published, "read_receipt": True, "body": body,
                     "expires_on": published + timedelta(days=90)})
    ids = demo.bulk(publisher.actor(), "announcement", rows)
    targets = []
    for aid, row in zip(ids, rows, strict=True):
        if not row["whole_company"]:
            for dept in rnd.sample(branches, min(2, len(branches))):
                targets.append({"announcement": aid, "branch": dept})
    demo.bulk(publisher.actor(), "announcement_target", targets)
    for aid, row in zip(ids, rows, strict=True):  # published once it has its targets
        if not row["whole_company"]:
            demo.update("announcement", aid, {"status": "published"})
    reads = []
    for aid, row in zip(ids, rows, strict=True):
        for user in rnd.sample(demo.staff, max(1, len(demo.staff) * 2 // 3)):
            shown_on: date = row["published_on"]
            day = shown_on + timedelta(days=rnd.randrange(0, 10))
            reads.append((user, {"announcement": aid, "reader": user.id,
                                 "read_at": demo.at(min(day, demo.today), rnd)}))
    demo.bulk_owned("announcement_read", reads)
