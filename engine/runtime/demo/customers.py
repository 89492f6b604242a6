"""Customers: accounts named like real companies (Chinese ones in Chinese, with Chinese
addresses), their buying teams as contacts, and some contacts' earlier jobs."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from engine.runtime.access import SYSTEM
from engine.runtime.demo.context import Account, Demo
from engine.runtime.demo.words import (
    CN_BANKS,
    CN_BRANDS,
    CN_BRANDS_PINYIN,
    CN_CITIES,
    CN_DEALER_TRADE,
    CN_FORMS,
    CN_SITES,
    CN_TRADES,
    EN_BANKS,
    EN_CITIES,
    EN_DEALER_TRADE,
    EN_FORMS,
    EN_SITES,
    EN_TRADES,
    TITLES,
)
from engine.runtime.users import User

INDUSTRIES = list(CN_TRADES)
CREDIT = {"strategic": 60_000_000, "key": 25_000_000, "standard": 8_000_000}
INTERESTS = ["golf", "sports", "travel", "reading", "music", "food", "tea", "photography",
             "technology", "arts"]


def make_customers(demo: Demo, size: int) -> None:
    demo.say("accounts")
    rnd = demo.rnd
    sellers = demo.sellers
    used: set[str] = set()
    for index, seller in enumerate(sellers):
        share = size // len(sellers) + (size % len(sellers) if index == 0 else 0)
        rows: list[dict[str, Any]] = []
        meta: list[tuple[str, str, dict[str, Any]]] = []
        for _ in range(share):
            lang = "zh" if rnd.random() < 0.55 else "en"
            dealer = seller.roles[0] == "partner" and rnd.random() < 0.3
            row, short = _account(demo, rnd, lang, used, dealer)
            rows.append(row)
            meta.append((lang, short, row))
        ids = demo.bulk(seller.actor(), "account", rows)
        for rid, (lang, short, row) in zip(ids, meta, strict=True):
            demo.accounts.append(Account(
                id=rid, lang=lang, short=short, owner=seller, industry=row["industry"],
                tier=row["tier"], credit_limit=row["credit_limit"], status=row["status"],
                opening=row["opening_receivable"] or Decimal(0)))
    _contacts(demo)


def _account(demo: Demo, rnd: random.Random, lang: str, used: set[str],
             dealer: bool) -> tuple[dict[str, Any], str]:
    fk = demo.fakers[lang]
    industry = rnd.choice(INDUSTRIES)
    name, short, city = company_name(demo, rnd, lang, industry, used, dealer=dealer)
    if lang == "zh":
        province = dict(CN_CITIES)[city]
        brand = short[len(city):]
        domain = f"{CN_BRANDS_PINYIN[brand]}-{city_code(city)}.com.cn"
        town = city if province.startswith(city) else f"{province}{city}市"
        address = f"{town}{rnd.choice(CN_SITES)}{fk.street_name()}{rnd.randrange(1, 999)}号"
        extra = {"country": "China", "city": city, "address": address,
                 "postcode": f"{rnd.randrange(100, 860)}{rnd.randrange(0, 1000):03d}",
                 "phone": f"+86 {rnd.randrange(10, 999)} {rnd.randrange(1000, 9999)} "
                          f"{rnd.randrange(1000, 9999)}",
                 "bank": f"{rnd.choice(CN_BANKS)}{city}分行",
                 "tax_id": f"91{rnd.randrange(110000, 660000)}{_code(rnd, 10)}",
                 "description": f"{city}地区{_zh_industry(industry)}企业"}
    else:
        country = dict(EN_CITIES)[city]
        family, _sp, trade = short.partition(" ")
        domain = f"{_ascii(family)}-{_ascii(trade.split()[0])}.com"
        extra = {"country": country, "city": city,
                 "address": f"{fk.building_number()} {fk.street_name()}, {city}",
                 "postcode": fk.postcode(),
                 "phone": f"+{rnd.randrange(1, 99)} {rnd.randrange(10, 99)} "
                          f"{rnd.randrange(100000, 999999)}",
                 "bank": f"{rnd.choice(EN_BANKS)} {city}",
                 "tax_id": f"{country[:2].upper()}{rnd.randrange(10**8, 10**9)}",
                 "description": f"{industry.replace('_', ' ').capitalize()} customer "
                                f"in {city}"}
    tier = rnd.choices(["strategic", "key", "standard"], [1, 3, 8])[0]
    status = "partner" if dealer else rnd.choices(["prospect", "customer", "former"],
                                                   [4, 5, 1])[0]
    lifecycle = {"prospect": rnd.choice(["target", "prospect", "opportunity"]),
                 "customer": rnd.choice(["signed", "signed", "satisfied"]),
                 "former": "signed", "partner": "satisfied"}[status]
    credit = (Decimal(CREDIT[tier]) if status in ("customer", "partner") and rnd.random() < 0.7
              else None)
    row: dict[str, Any] = {
        "name": name, "industry": industry, "tier": tier, "status": status,
        "account_type": "dealer" if dealer else "customer", "lifecycle": lifecycle,
        "value_rating": {"strategic": "a", "key": rnd.choice(["a", "b"]),
                         "standard": rnd.choice(["b", "c", "c", "d"])}[tier],
        "website": f"https://www.{domain}", "email": f"info@{domain}",
        "employees": rnd.randrange(20, 20_000),
        "annual_revenue": Decimal(rnd.randrange(1, 5_000)) * 100_000,
        "bank_account": "".join(str(rnd.randrange(10)) for _ in range(16)),
        "credit_limit": credit,
        "opening_receivable": (Decimal(rnd.randrange(5, 60)) * 10_000
                               if credit is not None and rnd.random() < 0.3 else None),
        **extra}
    return row, short


def company_name(demo: Demo, rnd: random.Random, lang: str, industry: str, used: set[str],
                 *, dealer: bool = False) -> tuple[str, str, str]:
    """A company's name, what people call it, and its city: city, trade name, trade and
    form in Chinese ("济南恒通物流有限公司"); family name, trade and form in English. Never
    one in `used` (another trade name, then a site of the city), which it joins."""
    fk = demo.fakers[lang]
    if lang == "zh":
        city = rnd.choice(CN_CITIES)[0]
        brand = rnd.choice(CN_BRANDS)
        trade = CN_DEALER_TRADE if dealer else rnd.choice(CN_TRADES[industry])
        name = f"{city}{brand}{trade}{rnd.choice(CN_FORMS)}"
        for _ in range(20):
            if name not in used:
                break
            brand = rnd.choice(CN_BRANDS)
            name = f"{city}{brand}{trade}{rnd.choice(CN_FORMS)}"
            if name in used:
                name = f"{city}{brand}{trade}（{rnd.choice(CN_SITES)}）有限公司"
        short = f"{city}{brand}"
    else:
        city, country = rnd.choice(EN_CITIES)
        forms = EN_FORMS[country]
        family = fk.last_name()
        trade = EN_DEALER_TRADE if dealer else rnd.choice(EN_TRADES[industry])
        name = f"{family} {trade} {rnd.choice(forms)}"
        for _ in range(20):
            if name not in used:
                break
            family = fk.last_name()
            name = f"{family} {trade} {rnd.choice(forms)}"
            if name in used:
                name = f"{family} {trade} {city} {rnd.choice(EN_SITES)}"
        short = f"{family} {trade}"
    n = 2
    base = name
    while name in used:  # a last resort that still reads as a company: its second site
        name = f"{base} {city} {n}" if lang == "en" else f"{base}{city}第{n}分公司"
        n += 1
    used.add(name)
    return name, short, city


def _contacts(demo: Demo) -> None:
    demo.say("contacts")
    rnd = demo.stream(1)
    by_owner: dict[int, list[Account]] = {}
    for account in demo.accounts:
        by_owner.setdefault(account.owner.id, []).append(account)
    owners = {a.owner.id: a.owner for a in demo.accounts}
    for owner_id, accounts in by_owner.items():
        owner: User = owners[owner_id]
        heads = demo.bulk(owner.actor(), "contact", [
            _person(demo, rnd, a, 0, None) for a in accounts])
        team_rows: list[dict[str, Any]] = []
        team_of: list[Account] = []
        for account, head in zip(accounts, heads, strict=True):
            account.contacts.append(head)
            for n in range(1, 1 + rnd.randrange(1, 5)):
                team_rows.append(_person(demo, rnd, account, n, head))
                team_of.append(account)
        for account, rid in zip(team_of, demo.bulk(owner.actor(), "contact", team_rows),
                                strict=True):
            account.contacts.append(rid)
    _job_changes(demo, rnd)


def _person(demo: Demo, rnd: random.Random, account: Account, n: int,
            head: int | None) -> dict[str, Any]:
    fk = demo.fakers[account.lang]
    titles = TITLES[account.lang]
    title = titles[0] if head is None else titles[1 + (n - 1 + rnd.randrange(3)) % 6]
    domain = f"{account.id}.example.com"
    local = (fk.last_romanized_name() if account.lang == "zh" else fk.last_name()).lower()
    return {
        "full_name": fk.name(), "account": account.id, "title": title, "reports_to": head,
        "email": f"{local}.{n}@{domain}",
        "phone": f"+86 {rnd.randrange(130, 190)} {rnd.randrange(1000, 9999)} "
                 f"{rnd.randrange(1000, 9999)}" if account.lang == "zh"
                 else f"+{rnd.randrange(1, 99)} {rnd.randrange(100000, 9999999)}",
        "is_primary": head is None,
        "buying_role": "decider" if head is None else rnd.choice(
            ["buyer", "user", "influencer", "gatekeeper"]),
        "influence": 5 if head is None else rnd.randrange(1, 5),
        "birthday": demo.today - timedelta(days=rnd.randrange(28 * 365, 60 * 365)),
        "interests": rnd.sample(INTERESTS, rnd.randrange(0, 3)),
    }


def _job_changes(demo: Demo, rnd: random.Random) -> None:
    """In a third of the accounts, the second contact came from another organisation: the
    job they held there, then this one (职务调动)."""
    rows: list[dict[str, Any]] = []
    for account in demo.accounts:
        for contact in account.contacts[1:2] if rnd.random() < 0.35 else []:
            moved = demo.past_day(rnd, newest=60, oldest=3 * 365)
            began = moved - timedelta(days=rnd.randrange(400, 3000))
            before = (f"{rnd.choice(CN_CITIES)[0]}{rnd.choice(CN_BRANDS)}"
                      f"{rnd.choice(CN_TRADES[account.industry])}有限公司"
                      if account.lang == "zh" else
                      f"{demo.fakers['en'].last_name()} "
                      f"{rnd.choice(EN_TRADES[account.industry])} Ltd")
            job = TITLES[account.lang][rnd.randrange(2, 7)]
            rows.append({"contact": contact, "job_title": job, "organisation": before,
                         "from_date": began, "to_date": moved - timedelta(days=1)})
            rows.append({"contact": contact, "job_title": job, "account": account.id,
                         "from_date": moved})
    demo.bulk(SYSTEM, "contact_job_change", rows)


def city_code(city: str) -> str:
    """A short ASCII tag for a city in a domain name (its position in the city list)."""
    return f"c{[c for c, _ in CN_CITIES].index(city) + 1}"


def _code(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(n))


_ZH_INDUSTRY = {"manufacturing": "制造业", "aviation": "航空", "automotive": "汽车",
                "energy": "能源", "construction": "建筑", "logistics": "物流",
                "healthcare": "医疗", "public_sector": "公共事业", "other": "农业"}


def _zh_industry(industry: str) -> str:
    return _ZH_INDUSTRY[industry]


def _ascii(word: str) -> str:
    return "".join(c for c in word.lower() if c.isascii() and c.isalnum()) or "co"
