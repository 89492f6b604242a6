"""Curated words the demo names things with: cities, trades and trade names of customers,
so companies read like real ones ("济南恒通物流有限公司", "Hartley Logistics Ltd")."""

from __future__ import annotations

# (city, its province) — where the Chinese customers are; the branches' regions.
CN_CITIES: list[tuple[str, str]] = [
    ("济南", "山东省"), ("青岛", "山东省"), ("潍坊", "山东省"), ("临沂", "山东省"),
    ("沈阳", "辽宁省"), ("大连", "辽宁省"), ("长春", "吉林省"), ("哈尔滨", "黑龙江省"),
    ("北京", "北京市"), ("天津", "天津市"), ("石家庄", "河北省"), ("唐山", "河北省"),
    ("太原", "山西省"), ("郑州", "河南省"), ("洛阳", "河南省"), ("西安", "陕西省"),
    ("上海", "上海市"), ("杭州", "浙江省"), ("宁波", "浙江省"), ("温州", "浙江省"),
    ("南京", "江苏省"), ("苏州", "江苏省"), ("无锡", "江苏省"), ("徐州", "江苏省"),
    ("合肥", "安徽省"), ("芜湖", "安徽省"), ("武汉", "湖北省"), ("长沙", "湖南省"),
    ("南昌", "江西省"), ("福州", "福建省"), ("厦门", "福建省"), ("广州", "广东省"),
    ("深圳", "广东省"), ("佛山", "广东省"), ("成都", "四川省"), ("重庆", "重庆市"),
    ("昆明", "云南省"), ("南宁", "广西壮族自治区"), ("乌鲁木齐", "新疆维吾尔自治区"),
    ("兰州", "甘肃省"),
]
# Two-character trade names (字号) Chinese companies are called by.
CN_BRANDS = [
    "恒通", "华泰", "鑫达", "宏远", "永盛", "中联", "金桥", "瑞丰", "天成", "广汇",
    "顺安", "鸿运", "泰和", "联创", "宝丰", "凯达", "正大", "东方", "新华", "万通",
    "嘉禾", "隆基", "远航", "振华", "福瑞", "安泰", "博远", "丰源", "汇通", "昌盛",
]
# The trade a Chinese company's name says it is in, by industry.
CN_TRADES: dict[str, list[str]] = {
    "logistics": ["物流", "运输", "仓储物流", "供应链管理"],
    "construction": ["建设工程", "路桥工程", "建工", "市政工程"],
    "manufacturing": ["机械制造", "重工", "钢铁", "包装材料"],
    "energy": ["能源", "电力工程", "煤业", "新能源"],
    "aviation": ["航空地面服务", "机场服务", "航空货运"],
    "automotive": ["汽车贸易", "汽车零部件", "商用车销售服务"],
    "healthcare": ["医药物流", "医疗器械"],
    "public_sector": ["城市管理服务", "环卫服务", "港务"],
    "other": ["农业发展", "农机合作社", "粮食储运", "农垦"],
}
CN_FORMS = ["有限公司", "有限公司", "股份有限公司", "集团有限公司"]
CN_DEALER_TRADE = "工程机械销售"
CN_SITES = ["开发区", "高新区", "经开区", "港区", "新区"]

EN_CITIES: list[tuple[str, str]] = [
    ("Hamburg", "Germany"), ("Bremen", "Germany"), ("Hanover", "Germany"),
    ("Rotterdam", "Netherlands"), ("Antwerp", "Belgium"), ("Lyon", "France"),
    ("Milan", "Italy"), ("Gdansk", "Poland"), ("Manchester", "United Kingdom"),
    ("Leeds", "United Kingdom"), ("Dublin", "Ireland"), ("Aarhus", "Denmark"),
    ("Gothenburg", "Sweden"), ("Vienna", "Austria"), ("Chicago", "United States"),
    ("Houston", "United States"), ("Denver", "United States"), ("Omaha", "United States"),
    ("Sydney", "Australia"), ("Perth", "Australia"), ("Singapore", "Singapore"),
    ("Dubai", "United Arab Emirates"), ("Johannesburg", "South Africa"),
    ("Santiago", "Chile"),
]
EN_TRADES: dict[str, list[str]] = {
    "logistics": ["Logistics", "Freight", "Haulage", "Distribution"],
    "construction": ["Construction", "Civil Works", "Builders", "Infrastructure"],
    "manufacturing": ["Manufacturing", "Steelworks", "Fabrication", "Packaging"],
    "energy": ["Energy", "Power", "Mining", "Renewables"],
    "aviation": ["Airport Services", "Ground Handling", "Air Cargo"],
    "automotive": ["Motors", "Truck Centre", "Auto Parts"],
    "healthcare": ["Medical Supplies", "Pharma Logistics"],
    "public_sector": ["Port Authority", "City Works", "Waste Services"],
    "other": ["Farms", "Agriculture", "Grain Cooperative", "Growers"],
}
# The forms of company a country has (the first ones most often).
EN_FORMS = {"Germany": ["GmbH", "AG", "GmbH & Co. KG"], "Austria": ["GmbH", "AG"],
            "Netherlands": ["B.V.", "N.V."], "Belgium": ["NV", "BV"], "France": ["SA", "SAS"],
            "Italy": ["S.p.A.", "S.r.l."], "Poland": ["Sp. z o.o.", "S.A."],
            "United Kingdom": ["Ltd", "plc", "Group"], "Ireland": ["Ltd", "Group"],
            "Denmark": ["A/S", "ApS"], "Sweden": ["AB"], "United States": ["Inc.", "LLC", "Corp."],
            "Australia": ["Pty Ltd", "Group"], "Singapore": ["Pte. Ltd."],
            "United Arab Emirates": ["LLC", "FZE"], "South Africa": ["Pty Ltd"],
            "Chile": ["S.A.", "SpA"]}
EN_DEALER_TRADE = "Equipment Sales"
EN_SITES = ["North", "South", "East", "West", "Harbour", "Central"]

# Job titles of a customer's buying team, by language: the decider first.
TITLES = {
    "en": ["Managing Director", "Chief Financial Officer", "Purchasing Manager",
           "Fleet Manager", "Chief Engineer", "Operations Manager", "Workshop Supervisor"],
    "zh": ["总经理", "财务总监", "采购经理", "车队经理", "总工程师", "运营经理", "维修主管"],
}
# The trade names' pinyin, for the companies' web and mail domains.
CN_BRANDS_PINYIN = dict(zip(CN_BRANDS, [
    "hengtong", "huatai", "xinda", "hongyuan", "yongsheng", "zhonglian", "jinqiao",
    "ruifeng", "tiancheng", "guanghui", "shunan", "hongyun", "taihe", "lianchuang",
    "baofeng", "kaida", "zhengda", "dongfang", "xinhua", "wantong", "jiahe", "longji",
    "yuanhang", "zhenhua", "furui", "antai", "boyuan", "fengyuan", "huitong", "changsheng",
], strict=True))
CN_BANKS = ["中国工商银行", "中国建设银行", "中国农业银行", "中国银行", "交通银行", "招商银行",
            "兴业银行", "中信银行"]
EN_BANKS = ["Deutsche Bank", "ING", "BNP Paribas", "HSBC", "Barclays", "Citibank",
            "Commerzbank", "Standard Chartered"]
