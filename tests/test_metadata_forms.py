"""config/forms/*.yaml: layouts checked against their entity, defaults for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formula import MappingContext
from engine.metadata import ConfigErrors, load_model
from tests.conftest import CONFIG
from tests.test_schema_evolution import set_field


def errors_of(config: Path, name: str, text: str) -> list[str]:
    (config / "forms" / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_model(config)
    return [str(e) for e in caught.value.errors]


def test_shipped_forms_lay_out_every_entity() -> None:
    model = load_model(CONFIG)
    opp = model.form("opportunity")
    assert opp.source is not None and opp.source.endswith("config/forms/opportunity.yaml")
    assert opp.list_columns == ("name", "account", "stage", "amount", "weighted",
                                "close_date", "owner")
    assert [s.label.get("zh") for s in opp.sections if s.label] == [
        "商机", "资格评估", "机会评估", "结果", "备注"]
    assert [(r.entity, r.via) for r in model.form("account").related] == [
        ("contact", "account"), ("opportunity", "account"), ("quote", "account"),
        ("contract", "account"), ("service_request", "account"), ("service_plan", "account"),
        ("campaign_member", "account"), ("activity", "account"), ("account", "parent")]
    for e in model.entities:  # every entity has a layout, configured or default
        form = model.form(e.name)
        assert form.list_columns and form.sections
        assert {f.name for f in form.fields} <= set(e.field_names)


def test_default_form_has_every_field_and_the_children(config_dir: Path) -> None:
    (config_dir / "forms" / "product.yaml").unlink()
    model = load_model(config_dir)
    product = model.form("product")
    assert product.source is None
    assert [f.name for f in product.fields] == list(model.entity("product").field_names)
    assert product.list_columns[0] == "name"
    assert "description" not in product.list_columns  # textareas are not list columns
    assert product.picker == product.list_columns[1:3]  # the first columns after the name
    assert ("quote_line", "product") in [(r.entity, r.via) for r in product.related]
    department = model.form("department")
    assert department.source is None
    assert department.related == ()  # only a self-reference points at it: no related list


def test_conditions_compile_to_boolean_formulas() -> None:
    model = load_model(CONFIG)
    lost = next(f for f in model.form("opportunity").fields if f.name == "lost_reason")
    assert lost.hidden_compiled is not None
    assert lost.hidden_compiled.holds(MappingContext({"stage": "won", "lost_reason": None}))
    assert not lost.hidden_compiled.holds(MappingContext({"stage": "lost",
                                                          "lost_reason": None}))


@pytest.mark.parametrize(("text", "expected"), [
    ("form: opportunty\n",
     "1:7: form: unknown entity 'opportunty' (did you mean 'opportunity'?)"),
    ("form: opportunity\nlist: [name, amout]\n",
     "2:14: no field 'amout' of opportunity (did you mean 'amount'?)"),
    ("form: opportunity\nsections:\n  - fields: [name, stagee]\n",
     "3:20: no field 'stagee' of opportunity (did you mean 'stage'?)"),
    ("form: opportunity\nsections:\n  - fields: [name]\n  - fields: [name]\n",
     "4:14: field 'name' is already on this form"),
    ("form: opportunity\nsections:\n  - fields:\n      - {field: name, hidden: 'amount +'}\n",
     "4:31: formula 1:9: the formula ends too early: expected a value"),
    ("form: opportunity\nsections:\n  - fields:\n      - {field: name, hidden: 'amount + 1'}\n",
     "4:31: formula 1:1: this formula gives a number, but a boolean is needed here"),
    ("form: opportunity\nrelated:\n  - {entity: product}\n",
     "3:5: product has no reference field to opportunity"),
    ("form: account\nrelated:\n  - {entity: contact, via: title}\n",
     "3:28: contact.title is not a reference field to account"),
    ("form: account\nrelated:\n  - {entity: contact, columns: [nme]}\n",
     "3:33: no field 'nme' of contact"),
    ("form: account\nrelated:\n  - {entity: contact, sort: -ful_name}\n",
     "3:29: no field 'ful_name' of contact (did you mean 'full_name'?)"),
    ("form: account\nrelated:\n  - {entity: opportunity, sort: weighted}\n",
     "3:33: opportunity.weighted is computed or cannot be sorted"),
    ("form: account\nrelated:\n  - {entity: contact, sort: 'name desc'}\n",
     "3:29: related.0.sort: 'name desc' does not match '^-?[a-z][a-z0-9_]*$'"),
    ("form: account\nsections:\n  - {fields: [name], columns: 9}\n",
     "3:31: sections.0.columns: 9 is greater than the maximum of 4"),
    ("form: account\nlayout: []\n", "2:1: unknown key 'layout'"),
])
def test_form_errors_say_where(config_dir: Path, text: str, expected: str) -> None:
    errors = errors_of(config_dir, "broken.yaml", text)
    assert errors == [f"{config_dir / 'forms' / 'broken.yaml'}:{expected}"]


def test_shipped_pickers_show_context_and_narrow_by_the_form() -> None:
    model = load_model(CONFIG)
    assert model.form("contact").picker == ("account", "email")
    assert model.form("account").picker == ("city",)
    assert model.form("product").picker == ("code", "product_line")
    for entity, name in (("contact", "reports_to"), ("opportunity", "primary_contact")):
        ff = next(f for f in model.form(entity).fields if f.name == name)
        assert ff.picker_filter == "account = $record.account"
        assert ff.picker_filter_compiled is not None
        assert ff.picker_filter_compiled.references == {("account",), ("$record", "account")}


PICKER_FILTER = ("form: contact\nsections:\n  - fields:\n"
                 "      - {field: %s, picker_filter: '%s'}\n")


@pytest.mark.parametrize(("field", "formula", "expected"), [
    ("reports_to", "acount = $record.account",
     "4:44: formula 1:1: unknown field 'acount'; did you mean 'account'?"),
    ("reports_to", "account = $record.acount",
     "4:44: formula 1:19: unknown field 'acount' on $record; did you mean 'account'?"),
    ("reports_to", "account.name = $record.account.name",
     "4:44: formula 1:16: $record is read as $record or $record.<field of contact> only"),
    ("reports_to", "reports_to.$record = account",
     "4:44: formula 1:1: $record is read as $record or $record.<field of contact> only"),
    ("reports_to", "ISCHANGED(account)",
     "4:44: formula 1:1: ISCHANGED cannot run in the database, so this formula can't be "
     "filtered or sorted on"),
    ("reports_to", "account",
     "4:44: formula 1:1: this formula gives a reference, but a boolean is needed here"),
    ("full_name", "account = $record.account",
     "4:43: picker_filter fits only a reference field; 'full_name' is text"),
])
def test_picker_filter_errors_say_where(config_dir: Path, field: str, formula: str,
                                        expected: str) -> None:
    errors = errors_of(config_dir, "contact.yaml", PICKER_FILTER % (field, formula))
    assert errors == [f"{config_dir / 'forms' / 'contact.yaml'}:{expected}"]


def test_picker_fields_and_record_outside_a_picker_filter(config_dir: Path) -> None:
    errors = errors_of(config_dir, "contact.yaml", "form: contact\npicker: [acount]\n")
    assert errors == [f"{config_dir / 'forms' / 'contact.yaml'}:2:10: no field 'acount' of "
                      "contact (did you mean 'account'?)"]
    errors = errors_of(config_dir, "contact.yaml", "form: contact\nsections:\n  - fields:\n"
                       "      - {field: title, hidden: '$record.account = account'}\n")
    assert errors == [f"{config_dir / 'forms' / 'contact.yaml'}:4:32: formula 1:1: "
                      "unknown field '$record'"]


def test_two_forms_for_one_entity(config_dir: Path) -> None:
    errors = errors_of(config_dir, "zz.yaml", "form: lead\n")
    assert len(errors) == 1
    assert errors[0].endswith("zz.yaml:1:7: form: lead already has a form in "
                              f"{config_dir / 'forms' / 'lead.yaml'}")


def test_related_list_must_say_which_link_when_there_are_two(config_dir: Path) -> None:
    set_field(config_dir, "activity", "billing_account", "{type: reference, to: account}")
    errors = errors_of(config_dir, "broken.yaml",
                       "form: product\nrelated:\n  - {entity: activity}\n")
    assert errors == [f"{config_dir / 'forms' / 'broken.yaml'}:3:5: activity has no reference "
                      "field to product"]
    (config_dir / "forms" / "account.yaml").write_text(
        "form: account\nrelated:\n  - {entity: activity}\n", encoding="utf-8")
    (config_dir / "forms" / "broken.yaml").unlink()
    with pytest.raises(ConfigErrors) as caught:
        load_model(config_dir)
    assert [str(e) for e in caught.value.errors] == [
        f"{config_dir / 'forms' / 'account.yaml'}:3:5: activity points to account by "
        "billing_account, account; say which with 'via'"]


def test_option_labels_per_locale_and_their_errors(config_dir: Path) -> None:
    stage = load_model(CONFIG).entity("opportunity").field("stage")
    assert (stage.option_label("won", "zh"), stage.option_label("won", "en")) == ("赢单", "Won")
    assert stage.option_label("not_an_option", "zh") == "Not an option"
    line = set_field(config_dir, "account", "rating",
                     "{type: choice, options: [hot, cold], option_labels: {hto: Hot}}")
    with pytest.raises(ConfigErrors) as caught:
        load_model(config_dir)
    assert [str(e) for e in caught.value.errors] == [
        f"{config_dir / 'entities' / 'account.yaml'}:{line}:64: fields.rating.option_labels: "
        "'hto' is not one of the options (did you mean 'hot'?)"]
