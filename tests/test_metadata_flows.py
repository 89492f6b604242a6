"""config/flows/*.yaml (engine/metadata/flows.py): stage rules and triggers, checked
against their entity at load, every problem at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formula import MappingContext
from engine.metadata import ConfigErrors, load_model
from engine.metadata.flows import CreateAction, NotifyAction, SetAction

GOOD = """\
flow: pipeline
entity: opportunity
label: {en: Pipeline, zh: 流程}
stages:
  field: stage
  transitions: {prospecting: [qualification, lost], qualification: [proposal, lost]}
  guards:
    - {to: won, when: 'amount > 0', message: {en: A won deal has an amount, zh: 赢单需金额}}
  require: {lost: [lost_reason]}
triggers:
  - name: next_step_on_move
    on: [update]
    fields: [stage]
    when: 'ISCHANGED(stage) AND PRIORVALUE(stage) = "prospecting"'
    actions:
      - set: {next_step: '"Qualify " & name'}
      - create: {entity: activity, values: {subject: '"Call " & name'}}
      - notify: {to: owner, message: {en: Moved, zh: 已推进}}
"""


def flow_errors(config: Path, text: str, name: str = "pipeline.yaml") -> list[str]:
    folder = config / "flows"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_model(config)
    return [str(e) for e in caught.value.errors]


def test_a_flow_loads_with_its_formulas_compiled(config_dir: Path) -> None:
    (config_dir / "flows").mkdir(exist_ok=True)
    (config_dir / "flows" / "pipeline.yaml").write_text(GOOD, encoding="utf-8")
    model = load_model(config_dir)
    flow = next(f for f in model.flows if f.name == "pipeline")
    assert flow.entity == "opportunity" and flow.label.get("zh") == "流程"
    assert flow.stages is not None and flow.stages.field == "stage"
    assert flow.stages.allowed("prospecting", "lost")
    assert not flow.stages.allowed("prospecting", "won")
    assert flow.stages.allowed("proposal", "won")  # no entry: any move
    assert flow.stages.required("lost") == ("lost_reason",)
    guard = flow.stages.guards[0]
    assert guard.compiled.holds(MappingContext({"amount": 5}))
    assert not guard.compiled.holds(MappingContext({"amount": None}))
    (trigger,) = flow.triggers
    assert trigger.on == {"update"} and trigger.watched == ("stage",)
    kinds = [type(a) for a in trigger.actions]
    assert kinds == [SetAction, CreateAction, NotifyAction]
    assert len(flow.config_hash) == 16
    assert flow.loc.file.endswith("flows/pipeline.yaml") and flow.loc.line == 1


@pytest.mark.parametrize(("change", "expected"), [
    (("entity: opportunity", "entity: oportunity"),
     "2:9: entity: unknown entity 'oportunity' (did you mean 'opportunity'?)"),
    (("field: stage", "field: stag"), "5:10: stages.field: no field 'stag' of opportunity "
                                       "(did you mean 'stage'?)"),
    (("field: stage", "field: amount"), "stages need a choice field"),
    (("qualification: [proposal, lost]}", "qualification: [propsal, lost]}"),
     "'propsal' is not an option of stage (did you mean 'proposal'?)"),
    (("{to: won,", "{to: wonn,"), "'wonn' is not an option of stage"),
    (("when: 'amount > 0'", "when: 'amount > '"), "8:23: formula 1:9: the formula ends too early"),
    (("when: 'amount > 0'", "when: 'amount'"), "but a boolean is needed here"),
    (("{lost: [lost_reason]}", "{lost: [lost_reasons]}"),
     "no field 'lost_reasons' of opportunity (did you mean 'lost_reason'?)"),
    (("{lost: [lost_reason]}", "{lost: [weighted]}"), "computed by the engine"),
    (("on: [update]", "on: [updat]"), "triggers.0.on.0: 'updat' is not one of"),
    (("fields: [stage]", "fields: [stge]"), "no field 'stge' of opportunity"),
    (("set: {next_step:", "set: {next_stp:"), "no field 'next_stp' of opportunity"),
    (("set: {next_step:", "set: {weighted:"), "weighted is computed by the engine"),
    (("'\"Qualify \" & name'", "'amount'"), "gives a number, but text is needed here"),
    (("{entity: activity,", "{entity: activty,"), "unknown entity 'activty'"),
    (("values: {subject:", "values: {subjet:"), "no field 'subjet' of activity"),
    (("to: owner", "to: name"), "name is not a user field"),
    (("to: owner", "to: nobody"), "no field 'nobody' of opportunity"),
    (("- notify: {to: owner, message: {en: Moved, zh: 已推进}}",
      "- webhook: {url: 'ftp://example.org'}"), "actions.2.webhook.url: 'ftp://example.org' "
                                                "does not match"),
    (("- notify: {to: owner, message: {en: Moved, zh: 已推进}}",
      "- email: {to: [owner, name], subject: '\"Hi\"', text: 'amount'}"),
     "name is neither a user nor an email field"),
    (("- notify: {to: owner, message: {en: Moved, zh: 已推进}}",
      "- email: {to: [owner], subject: '\"Hi\"', text: 'amount'}"),
     "gives a number, but text is needed here"),
    (("- notify: {to: owner, message: {en: Moved, zh: 已推进}}",
      "- email: {to: [owner], subject: '\"Hi\"'}"), "missing key 'text'"),
    (("    on: [update]", "    on: [update]\n    color: red"),
     "triggers.0: unknown key 'color'"),
    (("ISCHANGED(stage) AND", "ISCHANGED(stag) AND"), "formula 1:11"),
])
def test_mistakes_are_reported_where_they_are(config_dir: Path, change: tuple[str, str],
                                              expected: str) -> None:
    old, new = change
    assert old in GOOD
    errors = flow_errors(config_dir, GOOD.replace(old, new))
    assert any("flows/pipeline.yaml:" in e and expected in e for e in errors), errors


def test_two_flows_of_one_name_are_refused(config_dir: Path) -> None:
    (config_dir / "flows").mkdir(exist_ok=True)
    (config_dir / "flows" / "a.yaml").write_text(GOOD, encoding="utf-8")
    errors = flow_errors(config_dir, GOOD, "b.yaml")
    assert any("b.yaml:1:7: flow: 'pipeline' is already defined in" in e for e in errors)


def test_a_flow_file_that_is_not_a_mapping(config_dir: Path) -> None:
    errors = flow_errors(config_dir, "- flow\n")
    assert any("is a mapping (see docs/flows.md)" in e for e in errors), errors


def test_a_trigger_name_is_unique_in_its_flow(config_dir: Path) -> None:
    text = GOOD + """\
  - name: next_step_on_move
    on: [create]
    actions:
      - set: {next_step: '"x"'}
"""
    errors = flow_errors(config_dir, text)
    assert any("'next_step_on_move' is already a trigger of this flow" in e for e in errors)


def test_watched_fields_default_to_what_when_reads(config_dir: Path) -> None:
    text = GOOD.replace("    fields: [stage]\n", "")
    (config_dir / "flows").mkdir(exist_ok=True)
    (config_dir / "flows" / "pipeline.yaml").write_text(text, encoding="utf-8")
    (trigger,) = next(f for f in load_model(config_dir).flows if f.name == "pipeline").triggers
    assert trigger.watched == ("stage",)


CONVERT = """\
flow: conversion
entity: lead
conversions:
  - name: convert
    label: {en: Convert, zh: 转化}
    when: 'status <> "converted"'
    finds:
      - as: campaign_record
        entity: campaign
        match: {name: 'company'}
    creates:
      - as: account
        entity: account
        values: {name: 'company', industry: 'industry'}
        duplicate: {match: [name]}
      - as: contact
        entity: contact
        values: {full_name: 'BLANKVALUE(contact_name, company)', account: 'new.account'}
    set: {status: '"converted"', converted_account: 'new.account', notes: 'new.account.name'}
"""


def test_a_conversion_is_compiled_with_new_and_found(config_dir: Path) -> None:
    (config_dir / "flows").mkdir(exist_ok=True)
    (config_dir / "flows" / "conversion.yaml").write_text(CONVERT, encoding="utf-8")
    flow = next(f for f in load_model(config_dir).flows if f.name == "conversion")
    (conversion,) = flow.conversions
    assert conversion.main.name == "account" and conversion.label.get("zh") == "转化"
    assert [c.name for c in conversion.creates] == ["account", "contact"]
    assert conversion.creates[0].match == ("name",)
    (finding,) = conversion.finds
    assert finding.entity == "campaign" and finding.required is None
    assert conversion.creates[0].loc.line == 12


@pytest.mark.parametrize(("change", "expected"), [
    (("entity: account\n", "entity: acount\n"),
     "13:17: conversions.0.creates.0.entity: unknown entity 'acount' (did you mean 'account'?)"),
    (("values: {name: 'company',", "values: {nam: 'company',"),
     "conversions.0.creates.0.values.nam: no field 'nam' of account (did you mean 'name'?)"),
    (("{name: 'company',", "{name: 'estimated_value',"),
     "gives a number, but text is needed here"),
    (("account: 'new.account'}", "account: 'new.acount'}"), "formula 1:5"),
    # a record made later cannot be read before it is made
    (("values: {name: 'company',",
      "values: {description: 'new.contact.full_name', name: 'company',"), "formula 1:5"),
    (("match: [name]", "match: [nme]"), "no field 'nme' of account"),
    (("name: convert", "name: assign"), "'assign' is an action of every record"),
    (("match: {name: 'company'}", "match: {name: 'estimated_value'}"),
     "conversion.yaml:10:23: formula 1:1: this formula gives a number"),
    (("when: 'status <> \"converted\"'", "when: 'status'"), "but a boolean is needed here"),
    (("notes: 'new.account.name'", "notes: 'new.account.nme'"), "formula 1:13"),
    (("    set:", "    colour: red\n    set:"), "conversions.0: unknown key 'colour'"),
    (("converted_account: 'new.account',", "converted_account: 'found.campaign_record',"),
     "conversions.0.set.converted_account: 'found.campaign_record' points to campaign, "
     "but converted_account points to account"),
])
def test_conversion_mistakes_are_reported_where_they_are(config_dir: Path,
                                                         change: tuple[str, str],
                                                         expected: str) -> None:
    old, new = change
    assert old in CONVERT
    errors = flow_errors(config_dir, CONVERT.replace(old, new, 1), "conversion.yaml")
    assert any("flows/conversion.yaml:" in e and expected in e for e in errors), errors


def test_copied_lines_are_checked(config_dir: Path) -> None:
    text = """\
flow: contracting
entity: opportunity
conversions:
  - name: make_contract
    creates:
      - as: contract
        entity: contract
        values: {name: 'name', account: 'account'}
        lines:
          - entity: contract_line
            link: quote
            from: quote_lin
            via: quote
            of: 'id'
            values: {product: 'product'}
"""
    errors = flow_errors(config_dir, text, "contracting.yaml")
    assert any("12:19: conversions.0.creates.0.lines.0.from: unknown entity 'quote_lin' "
               "(did you mean 'quote_line'?)" in e for e in errors), errors
    assert any("lines.0.link: no field 'quote' of contract_line" in e for e in errors), errors
