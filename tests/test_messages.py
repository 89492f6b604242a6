"""Server messages (engine/messages.py): an id with parameters, English as str, rendered in
the reader's language only at the edge; and no error in engine/ is built from bare text."""

from __future__ import annotations

import ast
import pickle
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from engine.messages import (
    LabelMessage,
    Message,
    by_field,
    either,
    joined,
    localize,
    msg,
    parts,
    structured,
)
from engine.metadata.labels import Label
from engine.web.i18n import translations

REPO = Path(__file__).resolve().parents[1]
ZH = translations()["zh-CN"].gettext


def test_a_message_is_its_english_text_and_keeps_its_id() -> None:
    m = msg("must be at least %(min)s", min=0)
    assert m == "must be at least 0" and isinstance(m, str)
    assert m.id == "must be at least %(min)s" and dict(m.params) == {"min": 0}
    assert localize(m, ZH, "zh-CN") == "不能小于 0"
    assert localize(m, translations()["en"].gettext, "en") == "must be at least 0"


def test_plain_text_is_shown_as_it_is() -> None:
    assert localize("is required", ZH, "zh-CN") == "is required"  # never matched back


def test_parameters_that_are_messages_or_labels_render_in_the_same_language() -> None:
    label = Label((("en", "Opportunity"), ("zh", "销售机会")))
    m = msg("%(field)s: %(problem)s", field=label, problem=msg("is required"))
    assert m == "Opportunity: is required"
    assert localize(m, ZH, "zh-CN") == "销售机会\uff1a必填"


def test_label_messages_carry_their_own_translations() -> None:
    rule = LabelMessage(Label((("en", "A lost opportunity needs a lost reason"),
                               ("zh", "丢单必须填写丢单原因"))))
    assert rule == "A lost opportunity needs a lost reason"
    assert localize(rule, ZH, "zh-CN") == "丢单必须填写丢单原因"


def test_joined_either_and_by_field() -> None:
    both = joined([msg("is required"), msg("must be a number")])
    assert both == "is required; must be a number"
    assert localize(both, ZH, "zh-CN") == "必填; 必须是数字"
    assert joined([msg("is required")]) is not None
    assert localize(either([msg("a number"), msg("a date")]), ZH, "zh-CN") == "数字或日期"
    fields = by_field({"amount": msg("must be a number")})
    assert fields == "amount: must be a number"
    assert localize(fields, ZH, "zh-CN") == "amount\uff1a必须是数字"


def test_messages_survive_pickling() -> None:
    m = msg("no %(entity)s %(id)s", entity="account", id=3)
    back = pickle.loads(pickle.dumps(m))
    assert back == m and back.id == m.id and dict(back.params) == dict(m.params)


def test_structured_gives_ids_and_json_parameters() -> None:
    label = Label((("en", "Opportunity"), ("zh", "销售机会")))
    m = msg("%(field)s: %(problem)s", field=label, problem=msg("must be at least %(min)s",
                                                             min=Decimal("0.5")))
    assert structured(m, ZH, "zh-CN") == {
        "message_id": "%(field)s: %(problem)s",
        "params": {"field": "销售机会",  # a label from config: in the reader's language
                   "problem": {"message_id": "must be at least %(min)s",
                               "params": {"min": "0.5"}}}}  # a Decimal as its text
    odd = msg("%(a)s %(b)s %(c)s %(d)s", a=float("nan"), b=1.5, c=True, d=None)
    assert structured(odd, ZH, "zh-CN")["params"] == {"a": "nan", "b": 1.5, "c": True,
                                                      "d": None}
    assert structured("stale", ZH, "zh-CN") == {"message_id": None, "params": {}}


def test_a_rules_message_carries_its_rule_id() -> None:
    rule = LabelMessage(Label((("en", "Needs a reason"), ("zh", "需要原因"))),
                        "opportunity.validations.2")
    assert structured(rule, ZH, "zh-CN") == {"message_id": "Needs a reason", "params": {},
                                             "rule": "opportunity.validations.2"}
    back = pickle.loads(pickle.dumps(rule))
    assert back.rule == "opportunity.validations.2" and back == rule
    assert LabelMessage(Label((("en", "x"),))).rule is None


def test_joined_messages_come_apart_again() -> None:
    rule = LabelMessage(Label((("en", "Needs a reason"),)), "lead.validations.0")
    both = joined([msg("is required"), joined([msg("must be a number"), rule])])
    assert both == "is required; must be a number; Needs a reason"
    assert [p.id for p in parts(both)] == ["is required", "must be a number", "Needs a reason"]
    assert parts(both)[2] is rule
    assert parts(msg("is required")) == ["is required"] and parts("plain") == ["plain"]
    back = pickle.loads(pickle.dumps(joined([msg("is required"), rule], " / ")))
    assert back == "is required / Needs a reason" and [str(p) for p in parts(back)] == [
        "is required", "Needs a reason"]
    assert localize(back, ZH, "zh-CN") == "必填 / Needs a reason"


def test_a_translation_with_a_broken_placeholder_falls_back_to_the_template() -> None:
    m = msg("no user %(id)s", id=3)
    assert m.render(lambda _s: "找不到用户 %(name)s", "zh-CN") == "找不到用户 %(name)s"


@given(st.text(max_size=40), st.one_of(st.integers(), st.text(max_size=20), st.none()))
def test_any_parameter_value_renders_without_error(text: str, value: object) -> None:
    m = msg("%(value)s is already used", value=value)
    assert m == f"{value} is already used"
    assert localize(m, ZH, "zh-CN") == f"{value} 已被使用"
    assert localize(Message(text.replace("%", "%%")), ZH, "zh-CN") is not None


# -- every error in engine/ is built from a message, not from bare text ----------------

_ERRORS = {"ValueProblem", "NotFound", "Invalid", "BadRequest", "Forbidden", "Conflict",
           "Unauthorized", "RecordError", "TooLarge", "UnsupportedMedia", "FormulaError",
           "ArgTypeError"}


def _bare_text(node: ast.expr) -> bool:
    """A literal or f-string (possibly inside parentheses or a conditional)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(node.value)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.IfExp):
        return _bare_text(node.body) or _bare_text(node.orelse)
    if isinstance(node, ast.BinOp):
        return _bare_text(node.left) or _bare_text(node.right)
    return False


def _bare_messages(tree: ast.AST) -> list[int]:
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in _ERRORS:
            texts = [a for a in node.args if not isinstance(a, ast.Constant)
                     or isinstance(a.value, str)]
            dicts = [a for a in node.args if isinstance(a, ast.Dict)]
            if any(_bare_text(a) for a in texts[:2]) or any(
                    v is not None and _bare_text(v) for d in dicts for v in d.values):
                found.append(node.lineno)
        # errors["field"] = "text": a problem collected for a field
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript) \
                and isinstance(node.targets[0].value, ast.Name) \
                and node.targets[0].value.id in ("errors", "problems") \
                and _bare_text(node.value):
            found.append(node.lineno)
    return found


def test_the_check_below_sees_bare_text() -> None:
    source = ('raise NotFound(f"no {x}")\nraise Invalid(msg("ok"), {"a": "bare"})\n'
              'errors["a"] = "bare"\nraise Invalid(msg("ok"), {"a": msg("ok")})\n')
    assert sorted(_bare_messages(ast.parse(source))) == [1, 2, 3]


def test_no_error_in_engine_is_built_from_bare_text() -> None:
    """Bare text cannot be shown in the reader's language: use msg("…", name=value)."""
    offenders = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        for line in _bare_messages(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(f"{path.relative_to(REPO)}:{line}")
    assert not offenders, "errors built from bare text:\n" + "\n".join(offenders)
