"""Rollup summary fields in the configuration: their keys, their checks (each with its
text and `file:line:col`), result types, signatures, and the shipped ones.

Each test writes its own config/ under tmp_path and runs from there, so file names in
messages read as a user sees them. The schema and the web side are in
test_schema_evolution.py and test_openapi.py / below.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from engine.formula import FType
from engine.metadata import ConfigErrors, Model, Rollup, SourceLoc, load_model
from engine.types import FieldType
from tests.conftest import CONFIG, Env
from tests.web_helpers import csrf_of, sign_in

A = "config/entities/account.yaml"
DEAL = """\
entity: deal
fields:
  name:     {type: text}
  account:  {type: reference, to: account}
  owner_account: {type: reference, to: account}
  contact:  {type: reference, to: contact}
  amount:   {type: money}
  qty:      {type: integer}
  ratio:    {type: decimal}
  rate:     {type: percent}
  stage:    {type: choice, options: [open, won, lost]}
  closes:   {type: date}
  seen_at:  {type: datetime}
  done:     {type: boolean}
  double:   {type: money, formula: 'amount * 2'}
  quad:     {type: money, formula: 'double * 2'}
  tiered:   {type: money, formula: 'IF(account.name = "x", amount, 0)'}
  via_tier: {type: money, formula: 'tiered + 1'}
  aged:     {type: integer, formula: 'DAYS(TODAY(), closes)'}
"""
CONTACT = "entity: contact\nfields:\n  name: {type: text}\n"


def account(*fields: str, extra: str = "") -> str:
    """account.yaml with `fields` (one YAML line each, after `name` and `credit_limit`)."""
    lines = "".join(f"  {f}\n" for f in fields)
    return (f"entity: account\nfields:\n  name: {{type: text}}\n"
            f"  credit_limit: {{type: money}}\n{lines}{extra}")


class Config:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "entities").mkdir(parents=True)
        self.write("deal.yaml", DEAL)
        self.write("contact.yaml", CONTACT)

    def write(self, name: str, text: str) -> None:
        (self.root / "entities" / name).write_text(text, encoding="utf-8")

    def load(self, *fields: str, extra: str = "") -> Model:
        self.write("account.yaml", account(*fields, extra=extra))
        return load_model(self.root)

    def errors(self, *fields: str, extra: str = "") -> list[str]:
        self.write("account.yaml", account(*fields, extra=extra))
        with pytest.raises(ConfigErrors) as caught:
            load_model(self.root)
        return [str(e) for e in caught.value.errors]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(tmp_path)
    return Config(Path("config"))


# -- result types --------------------------------------------------------------------------

@pytest.mark.parametrize(("of", "agg", "expected"), [
    ("deal", "count", FieldType.INTEGER),
    ("deal.closes", "count", FieldType.INTEGER),
    ("deal.stage", "count", FieldType.INTEGER),
    ("deal.qty", "sum", FieldType.INTEGER),
    ("deal.amount", "sum", FieldType.MONEY),
    ("deal.ratio", "sum", FieldType.DECIMAL),
    ("deal.rate", "sum", FieldType.PERCENT),
    ("deal.double", "sum", FieldType.MONEY),
    ("deal.qty", "avg", FieldType.DECIMAL),
    ("deal.ratio", "avg", FieldType.DECIMAL),
    ("deal.rate", "avg", FieldType.DECIMAL),
    ("deal.amount", "avg", FieldType.MONEY),
    ("deal.qty", "min", FieldType.INTEGER),
    ("deal.amount", "max", FieldType.MONEY),
    ("deal.closes", "min", FieldType.DATE),
    ("deal.seen_at", "max", FieldType.DATETIME),
])
def test_the_result_type_follows_the_aggregate_and_the_field(
        cfg: Config, of: str, agg: str, expected: FieldType) -> None:
    model = cfg.load(f"r: {{type: rollup, of: {of}, via: account, agg: {agg}}}")
    f = model.entity("account").field("r")
    assert f.type is expected
    assert f.rollup == Rollup(child="deal", via="account", of=of.partition(".")[2] or None,
                              agg=agg, loc=SourceLoc(A, 5, 3),
                              reads=f.rollup.reads if f.rollup else ())
    assert f.derived and not f.computed
    assert f in model.entity("account").stored_fields
    assert model.entity("account").rollups == (f,)


def test_a_rollup_has_a_label_help_index_and_where(cfg: Config) -> None:
    model = cfg.load("won: {type: rollup, of: deal.amount, via: account, agg: sum, "
                     "where: 'stage = \"won\"', index: true, label: {en: Won, zh: 赢单}, "
                     "help: Won deals}")
    f = model.entity("account").field("won")
    assert f.index and f.label.get("zh") == "赢单" and f.help is not None
    assert f.rollup is not None and f.rollup.where == 'stage = "won"'
    compiled = f.rollup.where_compiled
    assert compiled is not None and compiled.type is FType.BOOLEAN
    assert compiled.references == frozenset({("stage",)})
    assert f.rollup.empty == 0
    assert not model.entity("deal").field("amount").derived
    assert model.entity("deal").field("double").derived


def test_empty_values() -> None:
    loc = SourceLoc("x", 1, 1)
    assert [Rollup("d", "a", "x", agg, loc).empty
            for agg in ("count", "sum", "min", "max", "avg")] == [0, 0, None, None, None]


def test_parent_formulas_and_rules_read_a_rollup_as_a_stored_field(cfg: Config) -> None:
    model = cfg.load(
        "total: {type: rollup, of: deal.amount, via: account, agg: sum}",
        "over_limit: {type: boolean, formula: 'total > credit_limit'}",
        "deals: {type: rollup, of: deal, via: account, agg: count}",
        "per_deal: {type: money, formula: 'total / deals'}",
        extra="validations:\n  - rule: 'total <= credit_limit'\n"
              "    message: Over the credit limit\n")
    e = model.entity("account")
    assert e.field("over_limit").compiled is not None
    assert e.field("per_deal").compiled is not None
    assert e.validations[0].compiled is not None
    assert e.validations[0].compiled.references == frozenset({("total",), ("credit_limit",)})


def test_other_entities_read_a_rollup_through_a_reference(cfg: Config) -> None:
    cfg.write("deal.yaml", DEAL + "  account_total: {type: money, formula: 'account.total'}\n")
    model = cfg.load("total: {type: rollup, of: deal.amount, via: account, agg: sum}")
    compiled = model.entity("deal").field("account_total").compiled
    assert compiled is not None and compiled.references == frozenset({("account", "total")})


def test_a_formula_of_the_wrong_type_over_a_rollup_is_an_error(cfg: Config) -> None:
    errors = cfg.errors("last_close: {type: rollup, of: deal.closes, via: account, agg: max}",
                        "bad: {type: integer, formula: 'last_close + \"x\"'}")
    assert len(errors) == 1 and errors[0].startswith(f"{A}:6:")


def test_a_rollup_of_a_rollup_aggregates_grandchildren(cfg: Config) -> None:
    cfg.write("line.yaml", "entity: line\nfields:\n  deal: {type: reference, to: deal}\n"
                           "  price: {type: money}\n")
    cfg.write("deal.yaml", DEAL + "  lines_total: {type: rollup, of: line.price, via: deal, "
                                  "agg: sum}\n")
    model = cfg.load("total: {type: rollup, of: deal.lines_total, via: account, agg: max}")
    total = model.entity("account").field("total")
    assert total.type is FieldType.MONEY
    nested = model.entity("deal").field("lines_total").rollup
    assert total.rollup is not None and nested is not None
    assert total.rollup.reads == (("lines_total (rollup)", nested.signature),
                                  ("lines_total (type)", "money"))
    assert nested.signature == 'sum(line.price) via deal reading {"price (type)": "money"}'



def test_the_shipped_rollups_load() -> None:
    model = load_model(CONFIG)
    account = model.entity("account")
    closed = model.entity("opportunity").field("stage").closed
    assert closed == ("won", "lost")
    every = {f.name: f for f in account.rollups}
    # the pipeline over the account's opportunities, the credit figures over its contracts
    by_name = {n: f for n, f in every.items() if f.rollup and f.rollup.child == "opportunity"}
    assert set(by_name) == {"open_deals", "open_pipeline", "won_amount"}
    credit = {n: (f.rollup.child, f.rollup.via, f.rollup.agg, f.rollup.of)
              for n, f in every.items() if n not in by_name and f.rollup}
    assert credit == {"contracted": ("contract", "account", "sum", "amount"),
                      "invoiced": ("contract", "account", "sum", "invoiced"),
                      "collected": ("contract", "account", "sum", "collected")}
    assert set(every) == set(by_name) | set(credit)
    assert by_name["open_deals"].type is FieldType.INTEGER
    assert by_name["open_pipeline"].type is FieldType.MONEY
    assert by_name["won_amount"].type is FieldType.MONEY
    for f in by_name.values():
        r = f.rollup
        assert r is not None and r.child == "opportunity" and r.via == "account"
        assert r.where_compiled is not None and r.where_compiled.sql_capable
        assert f.label.get("zh") != f.label.get("en")
    assert (by_name["open_deals"].rollup.agg, by_name["open_deals"].rollup.of) == (  # type: ignore[union-attr]
        "count", None)
    pipeline = by_name["open_pipeline"].rollup
    assert pipeline is not None and (pipeline.agg, pipeline.of) == ("sum", "weighted")
    assert dict(pipeline.reads) == {
        "weighted": model.entity("opportunity").field("weighted").formula,
        "probability": model.entity("opportunity").field("probability").formula,
        "weighted (type)": "money"}
    won = by_name["won_amount"].rollup
    assert won is not None and (won.agg, won.of, won.where) == ("sum", "amount", 'stage = "won"')
    # Every shipped rollup is on the account's form and list.
    form = model.form("account")
    assert {ff.name for ff in form.fields} >= set(by_name)
    assert set(form.list_columns) & set(by_name)


# -- signature -------------------------------------------------------------------------------

def test_the_signature_changes_when_any_part_does(cfg: Config) -> None:
    base = {"of": "deal.amount", "via": "account", "agg": "sum", "where": "'stage = \"won\"'"}

    def signature(**change: str) -> str:
        spec = ", ".join(f"{k}: {v}" for k, v in {**base, **change}.items())
        model = cfg.load(f"r: {{type: rollup, {spec}}}")
        r = model.entity("account").field("r").rollup
        assert r is not None
        return r.signature

    first = signature()
    assert first == ('sum(deal.amount) via account where stage = "won" reading '
                     '{"amount (type)": "money"}')
    assert signature() == first
    variants = [signature(of="deal.qty"), signature(via="owner_account"),
                signature(agg="max"), signature(where="'stage = \"lost\"'"),
                signature(of="deal.double")]
    assert len({first, *variants}) == 6
    # A formula field it aggregates is part of it: changing that formula changes it.
    quad = signature(of="deal.quad")
    assert quad == ('sum(deal.quad) via account where stage = "won" reading '
                    '{"double": "amount * 2", "quad": "double * 2", "quad (type)": "money"}')
    cfg.write("deal.yaml", DEAL.replace("formula: 'amount * 2'", "formula: 'amount * 3'"))
    assert signature(of="deal.quad") != quad
    # So is the type of the field it aggregates (converting the child's column changes
    # its values).
    cfg.write("deal.yaml", DEAL.replace("amount:   {type: money}", "amount:   {type: integer}"))
    assert signature() == ('sum(deal.amount) via account where stage = "won" reading '
                           '{"amount (type)": "integer"}')


def test_the_signature_ignores_the_label_and_the_index(cfg: Config) -> None:
    one = cfg.load("r: {type: rollup, of: deal, via: account, agg: count}")
    two = cfg.load("r: {type: rollup, of: deal, via: account, agg: count, index: true, "
                   "label: Deals}")
    r1, r2 = one.entity("account").field("r").rollup, two.entity("account").field("r").rollup
    assert r1 is not None and r2 is not None and r1.signature == r2.signature


# -- errors, each with its place ---------------------------------------------------------------

ERRORS: dict[str, tuple[str, list[str] | None]] = {
    "missing-keys": (
        "r: {type: rollup, label: R}",
        ["5:6: fields.r: a rollup field needs 'agg'",
         "5:6: fields.r: a rollup field needs 'of'",
         "5:6: fields.r: a rollup field needs 'via'"]),
    "required": (
        "r: {type: rollup, of: deal, via: account, agg: count, required: true}",
        ["5:57: fields.r.required does not fit a rollup field (the engine computes its "
         "value)"]),
    "default-and-max": (
        "r: {type: rollup, of: deal.qty, via: account, agg: sum, default: 0, max: 5}",
        ["5:59: fields.r.default does not fit a rollup field (the engine computes its value)",
         "5:71: fields.r.max does not fit a rollup field (the engine computes its value)"]),
    "unique-min-formula": (
        "r: {type: rollup, of: deal.qty, via: account, agg: sum, unique: true, min: 0, "
        "formula: '1'}",
        ["5:59: fields.r.unique does not fit a rollup field (the engine computes its value)",
         "5:73: fields.r.min does not fit a rollup field (the engine computes its value)",
         "5:81: fields.r.formula does not fit a rollup field (the engine computes its "
         "value)"]),
    "options": (
        "r: {type: rollup, of: deal, via: account, agg: count, options: [a]}",
        ["5:57: fields.r.options does not fit a rollup field"]),
    "of-on-another-type": (
        "r: {type: money, of: deal.amount, via: account}",
        ["5:20: fields.r.of does not fit a money field",
         "5:37: fields.r.via does not fit a money field"]),
    "of-shape": (
        "r: {type: rollup, of: deal.amount.x, via: account, agg: sum}",
        ["5:25: fields.r.of: 'deal.amount.x' is not 'child' or 'child.field' (an entity, "
         "or an entity and one of its fields)"]),
    "sum-needs-a-field": (
        "r: {type: rollup, of: deal, via: account, agg: sum}",
        ["5:25: fields.r.of: sum needs a field to aggregate: 'deal.field', not 'deal'"]),
    "unknown-agg": (
        "r: {type: rollup, of: deal.qty, via: account, agg: summ}",
        ["5:54: fields.r.agg: unknown aggregate 'summ' (did you mean 'sum'?): one of count, "
         "sum, min, max, avg"]),
    "unknown-child": (
        "r: {type: rollup, of: dael.amount, via: account, agg: sum}",
        ["5:25: fields.r.of: unknown entity 'dael' (did you mean 'deal'?)"]),
    "unknown-via": (
        "r: {type: rollup, of: deal, via: acount, agg: count}",
        ["5:36: fields.r.via: deal has no field 'acount' (did you mean 'account'?)"]),
    "via-not-a-reference": (
        "r: {type: rollup, of: deal, via: stage, agg: count}",
        ["5:36: fields.r.via: deal.stage is a choice field, not a reference to account"]),
    "via-to-another-entity": (
        "r: {type: rollup, of: deal, via: contact, agg: count}",
        ["5:36: fields.r.via: deal.contact is a reference to contact, not to account"]),
    "unknown-of-field": (
        "r: {type: rollup, of: deal.amout, via: account, agg: sum}",
        ["5:25: fields.r.of: deal has no field 'amout' (did you mean 'amount'?)"]),
    "sum-of-text": (
        "r: {type: rollup, of: deal.name, via: account, agg: sum}",
        ["5:25: fields.r.of: sum needs a number field (integer, decimal, money or percent); "
         "deal.name is a text field"]),
    "avg-of-date": (
        "r: {type: rollup, of: deal.closes, via: account, agg: avg}",
        ["5:25: fields.r.of: avg needs a number field (integer, decimal, money or percent); "
         "deal.closes is a date field"]),
    "max-of-boolean": (
        "r: {type: rollup, of: deal.done, via: account, agg: max}",
        ["5:25: fields.r.of: max needs a number, date or datetime field; deal.done is a "
         "boolean field"]),
    "min-of-choice": (
        "r: {type: rollup, of: deal.stage, via: account, agg: min}",
        ["5:25: fields.r.of: min needs a number, date or datetime field; deal.stage is a "
         "choice field"]),
    "where-not-a-condition": (
        "r: {type: rollup, of: deal, via: account, agg: count, where: 'amount + 1'}",
        ["5:64: fields.r.where: formula 1:1: this formula gives a number, but a boolean is "
         "needed here"]),
    "where-syntax": (
        "r: {type: rollup, of: deal, via: account, agg: count, where: 'stage = '}",
        None),
    "where-unknown-field": (
        "r: {type: rollup, of: deal, via: account, agg: count, where: 'stag = \"won\"'}",
        None),
    "where-through-a-reference": (
        "r: {type: rollup, of: deal, via: account, agg: count, "
        "where: 'AND(stage = \"won\", account.name = \"x\")'}",
        ["5:64: fields.r.where: formula 1:20: account.name is read through a reference; a "
         "rollup's where reads only deal's own fields (it is recomputed when a deal changes)"]),
    "where-not-in-sql": (
        "r: {type: rollup, of: deal, via: account, agg: count, where: 'ISCHANGED(stage)'}",
        ["5:64: fields.r.where: formula 1:1: ISCHANGED cannot run in the database, so this "
         "formula can't be filtered or sorted on"]),
    "where-reads-the-time": (
        "r: {type: rollup, of: deal, via: account, agg: count, where: 'closes < TODAY()'}",
        ["5:64: fields.r.where: formula 1:10: calls TODAY(), whose value changes while the "
         "records do not; a rollup is stored and recomputed only when a child record "
         "changes"]),
    "where-reads-a-formula-through-a-reference": (
        "r: {type: rollup, of: deal, via: account, agg: count, where: 'via_tier > 0'}",
        ["5:64: fields.r.where: formula 1:1: deal.via_tier -> tiered reads account.name "
         "through a reference; a rollup reads only deal's own fields (it is recomputed when "
         "a deal changes)"]),
    "of-a-formula-through-a-reference": (
        "r: {type: rollup, of: deal.tiered, via: account, agg: sum}",
        ["5:25: fields.r.of: deal.tiered reads account.name through a reference; a rollup "
         "reads only deal's own fields (it is recomputed when a deal changes)"]),
    "of-a-formula-that-reads-the-time": (
        "r: {type: rollup, of: deal.aged, via: account, agg: max}",
        ["5:25: fields.r.of: deal.aged: calls TODAY(), whose value changes while the records "
         "do not; a rollup is stored and recomputed only when a child record changes"]),
}


@pytest.mark.parametrize(("line", "expected"), list(ERRORS.values()), ids=list(ERRORS))
def test_error(cfg: Config, line: str, expected: list[str] | None) -> None:
    errors = cfg.errors(line)
    if expected is None:  # the formula's own message; here only its place matters
        assert len(errors) == 1 and errors[0].startswith(f"{A}:5:64: fields.r.where: "
                                                         "formula 1:")
        return
    assert errors == [f"{A}:{e}" for e in expected]


def test_an_unknown_field_in_where_suggests_the_childs_fields(cfg: Config) -> None:
    errors = cfg.errors("r: {type: rollup, of: deal, via: account, agg: count, "
                        "where: 'stag = \"won\"'}")
    assert "'stage'" in errors[0]


def test_a_rollup_of_itself_through_a_self_reference_is_a_cycle(cfg: Config) -> None:
    errors = cfg.errors("parent: {type: reference, to: account}",
                        "tree: {type: rollup, of: account.tree, via: parent, agg: sum}")
    assert errors == [f"{A}:6:3: fields.tree: rollup cycle: account.tree -> account.tree"]


def test_rollups_reading_each_other_through_where_are_a_cycle(cfg: Config) -> None:
    cfg.write("deal.yaml", DEAL + "  big_account: {type: rollup, of: account, via: deal, "
                                  "agg: count, where: 'deals > 1'}\n")
    errors = cfg.errors("deal: {type: reference, to: deal}",
                        "deals: {type: rollup, of: deal, via: account, agg: count, "
                        "where: 'big_account > 0'}")
    assert errors == [f"{A}:6:3: fields.deals: rollup cycle: account.deals -> "
                      "deal.big_account -> account.deals"]


def test_rollups_reading_each_other_through_a_formula_field_are_a_cycle(cfg: Config) -> None:
    cfg.write("deal.yaml", DEAL + "  top: {type: rollup, of: account.twice, via: deal, "
                                  "agg: max}\n  top2: {type: integer, formula: 'top'}\n")
    errors = cfg.errors("deal: {type: reference, to: deal}",
                        "most: {type: rollup, of: deal.top2, via: account, agg: max}",
                        "twice: {type: integer, formula: 'most * 2'}")
    assert errors == [f"{A}:6:3: fields.most: rollup cycle: account.most -> deal.top -> "
                      "account.most"]


def test_a_rollup_and_an_unrelated_mistake_are_reported_together(cfg: Config) -> None:
    errors = cfg.errors("r: {type: rollup, of: deal.qty, via: account, agg: sum, unique: true}",
                        "s: {type: money, max_length: 3}")
    assert errors == [
        f"{A}:5:59: fields.r.unique does not fit a rollup field (the engine computes its "
        "value)",
        f"{A}:6:20: fields.s.max_length does not fit a money field"]


def test_a_rollup_may_be_renamed(cfg: Config) -> None:
    model = cfg.load("deals: {type: rollup, of: deal, via: account, agg: count, "
                     "renamed_from: n_deals}")
    assert model.entity("account").field("deals").renamed_from == "n_deals"


# -- the web: read-only on forms, a stored field in lists ---------------------------------------


def _set_raw(env: Env, record_id: int, **values: object) -> None:
    """Write rollup columns with plain SQL (the engine's recompute is tested elsewhere)."""
    with env.engine.begin() as conn:
        conn.execute(text("UPDATE account SET " + ", ".join(f"{k} = :{k}" for k in values)
                          + " WHERE id = :id"), {**values, "id": record_id})


def test_a_form_shows_a_rollup_as_text_and_never_takes_it(env: Env, pages: TestClient) -> None:
    acme = env.records.create(env.admin.actor(), "account", {"name": "Acme"})
    _set_raw(env, acme["id"], open_deals=3, open_pipeline=1234.5, won_amount=None)
    sign_in(pages)
    path = f"/e/account/{acme['id']}/edit"
    page = pages.get(path).text
    pipeline = re.search(r'<output id="computed-open_pipeline"[^>]*>([^<]*)</output>', page)
    assert pipeline is not None and "1,234.50" in html.unescape(pipeline.group(1))
    assert re.search(r'<output id="computed-open_deals"[^>]*>3</output>', page)
    assert re.search(r'<output id="computed-won_amount"[^>]*></output>', page)
    for name in ("open_deals", "open_pipeline", "won_amount"):
        assert f'name="{name}"' not in page and f'id="f-{name}"' not in page
    new = pages.get("/e/account/new").text
    assert '<output id="computed-open_deals"' in new and 'name="open_deals"' not in new
    # A posted value is not taken: the field is the engine's.
    answer = pages.post(path, data={"csrf_token": csrf_of(page), "version": "1",
                                    "name": "Acme", "open_deals": "99",
                                    "open_pipeline": "5"})
    assert answer.status_code == 200 and "Changes saved." in answer.text, answer.text
    stored = env.records.get(env.admin.actor(), "account", acme["id"])
    assert stored["open_deals"] == 3 and str(stored["open_pipeline"]) == "1234.50"
    # The live preview does not send rollups back (they do not change while typing).
    preview = pages.post("/e/account/preview", data={
        "csrf_token": csrf_of(page), "record_id": str(acme["id"]), "name": "Acme"})
    assert preview.status_code == 200 and "computed-open" not in preview.text


def test_lists_sort_and_filter_on_a_rollup(env: Env, pages: TestClient) -> None:
    actor = env.admin.actor()
    ids = {n: env.records.create(actor, "account", {"name": n})["id"]
           for n in ("Acme", "Globex", "Initech")}
    _set_raw(env, ids["Acme"], open_deals=2, open_pipeline=500)
    _set_raw(env, ids["Globex"], open_deals=5, open_pipeline=2500.25)
    _set_raw(env, ids["Initech"], open_deals=0, open_pipeline=0)
    sign_in(pages)

    def titles(query: str) -> list[str]:
        r = pages.get(f"/e/account?{query}")
        assert r.status_code == 200, r.text
        tbody = r.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        return re.findall(r'<a href="/e/account/\d+">([^<]*)</a>', tbody)

    assert titles("sort=-open_pipeline") == ["Globex", "Acme", "Initech"]
    assert titles("sort=open_deals") == ["Initech", "Acme", "Globex"]
    assert titles("open_deals__gte=2&sort=name") == ["Acme", "Globex"]
    assert titles("open_pipeline__gt=1000") == ["Globex"]
    listed = pages.get("/e/account?sort=name").text
    assert "Open pipeline (weighted)" in listed and "2,500.25" in listed
