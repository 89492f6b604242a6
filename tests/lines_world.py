"""A small config of its own for the line-item tests: products, an `estimate` whose lines
(`estimate_line`) are edited as a grid on its form, with rollups over them, and a role
(`estimator`) that may change lines but not add them, nor write their discount."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import replace_roles

ESTIMATE = """\
entity: estimate
label: {en: Estimate, zh: 估价单}
plural: {en: Estimates, zh: 估价单}
area: sales
title: name
fields:
  name:        {type: text, required: true, max_length: 200, label: {en: Name, zh: 名称}}
  tax_rate:    {type: percent, default: 10, label: {en: Tax rate, zh: 税率}}
  line_count:  {type: rollup, of: estimate_line, via: estimate, agg: count,
                label: {en: Lines, zh: 行数}}
  subtotal:    {type: rollup, of: estimate_line.line_total, via: estimate, agg: sum,
                label: {en: Subtotal, zh: 小计}}
  grand_total: {type: money, formula: 'subtotal * (1 + tax_rate / 100)',
                label: {en: Grand total, zh: 总计}}
"""

ESTIMATE_LINE = """\
entity: estimate_line
label: {en: Estimate line, zh: 估价单明细}
plural: {en: Estimate lines, zh: 估价单明细}
area: sales
title: note
fields:
  estimate:   {type: reference, to: estimate, required: true, label: {en: Estimate, zh: 估价单}}
  product:    {type: reference, to: product, required: true, label: {en: Product, zh: 产品}}
  quantity:   {type: integer, required: true, min: 1, label: {en: Quantity, zh: 数量}}
  price:      {type: money, required: true, min: 0, label: {en: Unit price, zh: 单价}}
  discount:   {type: percent, default: 0, min: 0, max: 100, label: {en: Discount, zh: 折扣}}
  line_total: {type: money, formula: 'quantity * price * (1 - discount / 100)',
               label: {en: Line total, zh: 行金额}}
  position:   {type: integer, label: {en: Position, zh: 序号}}
  note:       {type: text, max_length: 200, label: {en: Note, zh: 备注}}
validations:
  - rule: 'NOT(AND(discount > 50, quantity < 10))'
    field: discount
    message: {en: A discount above 50 % needs at least 10 units, zh: 折扣超过 50% 时数量至少为 10}
"""

ESTIMATE_FORM = """\
form: estimate
sections:
  - label: {en: Estimate, zh: 估价单}
    fields: [name, tax_rate, line_count, subtotal, grand_total]
lines:
  entity: estimate_line
  label: {en: Items, zh: 明细}
  columns: [product, quantity, price, discount, line_total]
  order: position
  max_rows: 20
"""

PRODUCT = """\
entity: product
label: {en: Product, zh: 产品}
plural: {en: Products, zh: 产品}
area: sales
title: name
fields:
  name:       {type: text, required: true, max_length: 200, label: {en: Name, zh: 名称}}
  list_price: {type: money, min: 0, label: {en: List price, zh: 目录价}}
"""

ROLES = """\
roles:
  admin:
    label: {en: Administrator, zh: 系统管理员}
    admin: true
  estimator:
    label: {en: Estimator, zh: 估价员}
    description:
      en: "Works estimates; may change and remove their lines, not add them."
      zh: "处理估价单, 可修改和删除明细, 不能新增"
    entities:
      estimate: all
      estimate_line: {read: all, update: all, delete: all}
      product: {read: all}
    fields:
      estimate_line: {discount: readonly}
"""


def write_lines_config(config: Path) -> Path:
    """Write the config into the folder `config` (made if missing)."""
    (config / "entities").mkdir(parents=True, exist_ok=True)
    (config / "forms").mkdir(exist_ok=True)
    (config / "entities" / "product.yaml").write_text(PRODUCT, encoding="utf-8")
    (config / "entities" / "estimate.yaml").write_text(ESTIMATE, encoding="utf-8")
    (config / "entities" / "estimate_line.yaml").write_text(ESTIMATE_LINE, encoding="utf-8")
    (config / "forms" / "estimate.yaml").write_text(ESTIMATE_FORM, encoding="utf-8")
    replace_roles(config, ROLES)
    return config
