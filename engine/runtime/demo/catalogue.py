"""The catalogue of an equipment maker: product lines and products, in English and Chinese,
with list prices and unit costs (so quotes and contracts have margins)."""

# ruff: noqa: RUF001 - Chinese text, written with its full-width punctuation

from __future__ import annotations

from decimal import Decimal

from engine.runtime.access import SYSTEM
from engine.runtime.demo.context import Demo, Product, money

# code, English, Chinese, what the line is
LINES = [
    ("TRC", "Tractors", "拖拉机", "Wheeled tractors from 60 to 240 hp", "60–240马力轮式拖拉机"),
    ("LDR", "Wheel loaders", "装载机", "Wheel loaders from 3 to 8 t", "3–8吨轮式装载机"),
    ("FLT", "Forklifts", "叉车", "Diesel and electric forklifts", "内燃及电动叉车"),
    ("PRT", "Spare parts", "配件", "Genuine parts and service kits", "原厂配件及保养套件"),
    ("SVC", "Maintenance contracts", "维保服务", "Maintenance and repair contracts",
     "保养维修服务合同"),
    ("TEL", "Telematics software", "车联网软件", "Fleet telematics and remote diagnosis",
     "车队管理与远程诊断"),
    ("FIN", "Financing", "融资服务", "Leasing and instalment plans", "融资租赁与分期付款"),
]

# code, line, family, English, Chinese, list price (CNY), cost share, unit, how a
# quantity reads in a deal's name (en, zh)
ITEMS: list[tuple[str, str, str, str, str, int, float, str, str, str]] = [
    ("TX604", "TRC", "equipment", "TX604 tractor, 60 hp", "TX604 轮式拖拉机（60马力）",
     168_000, 0.78, "piece", "tractor units", "台"),
    ("TX904", "TRC", "equipment", "TX904 tractor, 90 hp", "TX904 轮式拖拉机（90马力）",
     238_000, 0.76, "piece", "tractor units", "台"),
    ("TX1304", "TRC", "equipment", "TX1304 tractor, 130 hp", "TX1304 轮式拖拉机（130马力）",
     386_000, 0.74, "piece", "tractor units", "台"),
    ("TX2404", "TRC", "equipment", "TX2404 tractor, 240 hp", "TX2404 大马力拖拉机（240马力）",
     752_000, 0.72, "piece", "tractor units", "台"),
    ("WL30", "LDR", "equipment", "WL30 wheel loader, 3 t", "WL30 轮式装载机（3吨）",
     265_000, 0.8, "piece", "wheel loaders", "台"),
    ("WL50", "LDR", "equipment", "WL50 wheel loader, 5 t", "WL50 轮式装载机（5吨）",
     398_000, 0.78, "piece", "wheel loaders", "台"),
    ("WL80", "LDR", "equipment", "WL80 wheel loader, 8 t", "WL80 大型装载机（8吨）",
     685_000, 0.75, "piece", "wheel loaders", "台"),
    ("FD30", "FLT", "equipment", "FD30 diesel forklift, 3 t", "FD30 内燃叉车（3吨）",
     92_000, 0.79, "piece", "forklifts", "台"),
    ("FE25", "FLT", "equipment", "FE25 electric forklift, 2.5 t", "FE25 电动叉车（2.5吨）",
     118_000, 0.77, "piece", "electric forklifts", "台"),
    ("FD70", "FLT", "equipment", "FD70 heavy forklift, 7 t", "FD70 重型叉车（7吨）",
     236_000, 0.76, "piece", "heavy forklifts", "台"),
    ("KIT-TX-500", "PRT", "spare_part", "Tractor 500-hour service kit",
     "拖拉机500小时保养套件", 3_800, 0.55, "set", "service kits", "套"),
    ("KIT-WL-1000", "PRT", "spare_part", "Loader 1000-hour service kit",
     "装载机1000小时保养套件", 6_900, 0.55, "set", "service kits", "套"),
    ("PRT-HYD-PUMP", "PRT", "spare_part", "Hydraulic pump assembly", "液压泵总成",
     21_500, 0.6, "piece", "hydraulic pumps", "件"),
    ("PRT-TYRE-LDR", "PRT", "spare_part", "Loader tyre 23.5-25", "装载机轮胎 23.5-25",
     7_600, 0.68, "piece", "loader tyres", "条"),
    ("PRT-BATT-FE", "PRT", "spare_part", "Forklift traction battery 48 V", "叉车牵引蓄电池 48V",
     26_800, 0.64, "piece", "traction batteries", "组"),
    ("SVC-BASIC", "SVC", "service", "Basic maintenance contract, per machine and year",
     "基础保养服务（每台每年）", 12_000, 0.5, "year", "machine-years of maintenance", "台·年"),
    ("SVC-FULL", "SVC", "service", "Full-service contract, per machine and year",
     "全保维修服务（每台每年）", 28_000, 0.58, "year", "machine-years of full service", "台·年"),
    ("SVC-HOUR", "SVC", "service", "Field service engineer hour", "现场服务工程师工时",
     480, 0.45, "hour", "service hours", "小时"),
    ("TEL-FLEET", "TEL", "software", "Fleet telematics subscription, per vehicle and year",
     "车队管理平台订阅（每车每年）", 2_400, 0.3, "year", "telematics subscriptions", "车·年"),
    ("TEL-DIAG", "TEL", "software", "Remote diagnosis module, per vehicle and year",
     "远程诊断模块（每车每年）", 1_600, 0.3, "year", "diagnosis subscriptions", "车·年"),
    ("FIN-LEASE36", "FIN", "financing", "36-month leasing arrangement fee",
     "36期融资租赁服务费", 18_000, 0.2, "piece", "leasing arrangements", "笔"),
    ("FIN-INST12", "FIN", "financing", "12-month instalment plan fee", "12期分期付款服务费",
     6_000, 0.2, "piece", "instalment plans", "笔"),
]


def make_catalogue(demo: Demo) -> None:
    demo.say("products")
    managers = demo.with_role("sales_manager", "presales") or demo.staff
    line_ids = demo.bulk(SYSTEM, "product_line", [
        {"name": f"{en} · {zh}", "code": code, "description": f"{den}\n{dzh}",
         "manager": managers[i % len(managers)].id if managers else None}
        for i, (code, en, zh, den, dzh) in enumerate(LINES)])
    demo.product_lines = {code: rid for (code, *_rest), rid in zip(LINES, line_ids,
                                                                  strict=True)}
    rows = []
    for code, line, family, en, zh, price, cost_share, unit, _qen, _qzh in ITEMS:
        rows.append({
            "name": f"{en} · {zh}", "code": code, "family": family,
            "product_line": demo.product_lines[line], "list_price": Decimal(price),
            "unit_cost": money(Decimal(price) * Decimal(str(cost_share))), "unit": unit,
            "description": f"{en}\n{zh}"})
    ids = demo.bulk(SYSTEM, "product", rows)
    demo.products = [
        Product(id=rid, code=code, en=en, zh=zh, family=family, line=line,
                price=Decimal(price), cost=money(Decimal(price) * Decimal(str(share))),
                unit_en=qen, unit_zh=qzh)
        for rid, (code, line, family, en, zh, price, share, _u, qen, qzh)
        in zip(ids, ITEMS, strict=True)]


def in_line(demo: Demo, line: str) -> list[Product]:
    return [p for p in demo.products if p.line == line]


def by_code(demo: Demo, code: str) -> Product:
    return next(p for p in demo.products if p.code == code)
