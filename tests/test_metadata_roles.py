"""config/roles.yaml, config/org.yaml and `cascade_assign`: what loads, and every mistake
reported as `file:line:col: message` by load_model and by `crm check` (exit 1)."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.cli import main
from engine.metadata import ConfigErrors, Model, load_model
from engine.metadata.roles import ACTIONS, DEFAULT_ROLES, FieldRule, Scope
from tests.conftest import CONFIG

SHIPPED_ROLES = ("admin", "executive", "sales_manager", "sales_rep", "presales", "marketing",
                 "finance", "service_manager", "service_agent", "partner")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped config at ./config, so errors name `config/roles.yaml`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_CONFIG", raising=False)
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)
    shutil.copytree(CONFIG, tmp_path / "config")
    return tmp_path


def errors_of(text: str, file: str = "roles.yaml") -> list[str]:
    """The errors load_model reports once `config/<file>` holds `text`."""
    Path("config", file).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_model("config")
    return [str(e) for e in info.value.errors]


def assert_errors(found: list[str], error: str) -> None:
    """One error; an expected message ending in "…" names only the start (which guide a
    message points to is the docs' business)."""
    assert len(found) == 1, found
    if error.endswith("…"):
        assert found[0].startswith(error[:-1]), found
    else:
        assert found == [error]


def set_cascade(text: str) -> None:
    """Replace account.yaml's `cascade_assign:` block with `text`."""
    path = Path("config/entities/account.yaml")
    source = path.read_text(encoding="utf-8")
    new, count = re.subn(r"cascade_assign:\n(?:  - .*\n(?:    .*\n)?)+", text, source)
    assert count == 1
    path.write_text(new, encoding="utf-8")


# -- the shipped config ---------------------------------------------------------------------


def test_shipped_roles_load() -> None:
    model = load_model(CONFIG)
    assert model.roles.names == SHIPPED_ROLES
    assert model.roles.source is not None and model.roles.source.endswith("roles.yaml")
    admin = model.roles.get("admin")
    assert admin is not None and admin.admin
    assert all(admin.scope(e, a) is Scope.ALL for e in model.entity_names for a in ACTIONS)
    rep = model.roles.get("sales_rep")
    assert rep is not None and not rep.admin
    assert rep.scope("account", "read") is Scope.DEPARTMENT
    assert rep.scope("account", "assign") is Scope.NONE  # an unlisted action is none
    assert rep.scope("lead", "delete") is Scope.NONE
    assert rep.field_rule("account", "credit_limit") is FieldRule.READONLY
    manager = model.roles.get("sales_manager")
    assert manager is not None
    # A bare scope stands for every action; "*" for every entity not named.
    assert {manager.scope("account", a) for a in ACTIONS} == {Scope.DEPARTMENT_TREE}
    assert manager.scope("product", "read") is Scope.ALL
    executive = model.roles.get("executive")
    assert executive is not None
    assert executive.scope("product", "export") is Scope.ALL
    assert executive.scope("product", "update") is Scope.NONE
    marketing = model.roles.get("marketing")
    assert marketing is not None and marketing.label.get("zh") == "市场营销"
    assert marketing.field_rule("opportunity", "amount") is FieldRule.HIDDEN
    finance = model.roles.get("finance")
    assert finance is not None and finance.label.get("zh") == "财务"
    assert {finance.scope("invoice", a) for a in ACTIONS} == {Scope.ALL}
    assert finance.scope("contract", "read") is Scope.ALL
    assert finance.scope("contract", "update") is Scope.NONE
    assert finance.field_rule("account", "credit_limit") is None
    # Only the executive's reading of everything rests on "*"; the others name their entities.
    for role in model.roles.roles:
        if not role.admin and role.name != "executive":
            assert "*" not in dict(role.grants), role.name


def test_shipped_org_loads() -> None:
    model = load_model(CONFIG)
    (hq,) = model.org
    assert (hq.name, hq.code, hq.kind) == ("Headquarters", "HQ", "headquarters")
    assert [u.code for u in hq.children] == ["NORTH", "EAST", "EU", "PARTNERS"]
    assert [u.name for u in hq.children[1].children] == ["Shanghai branch", "Hangzhou branch"]

    def count(units: tuple[Any, ...]) -> int:
        return sum(1 + count(u.children) for u in units)

    assert count(model.org) == 10


def test_without_roles_yaml_only_admin_exists(workdir: Path) -> None:
    Path("config/roles.yaml").unlink()
    Path("config/org.yaml").unlink()
    shutil.rmtree("config/flows")  # the shipped flows name the shipped roles
    shutil.rmtree("config/dashboards")  # and so do the shipped dashboards
    model = load_model("config")
    assert model.roles == DEFAULT_ROLES
    assert model.org == ()


def test_shipped_cascade_assign() -> None:
    account = load_model(CONFIG).entity("account")
    assert [c.entity for c in account.cascade_assign] == ["contact", "opportunity", "activity"]
    assert account.cascade_assign[0].compiled is None  # no condition: every child
    assert all(c.compiled is not None and c.compiled.sql_capable
               for c in account.cascade_assign[1:])


# -- roles.yaml errors ------------------------------------------------------------------------

ROLE_ERRORS = [
    ("roles:\n  admin:\n    admin: true\n  rep:\n    entities:\n      acount: all\n",
     "config/roles.yaml:6:7: roles.rep.entities: unknown entity 'acount' "
     "(did you mean 'account'?)"),
    ("roles:\n  rep:\n    fields:\n      acount: {name: hidden}\n",
     "config/roles.yaml:4:7: roles.rep.fields: unknown entity 'acount' "
     "(did you mean 'account'?)"),
    ("roles:\n  rep:\n    fields:\n      account: {credit_limt: hidden}\n",
     "config/roles.yaml:4:17: roles.rep.fields.account: unknown field 'credit_limt' "
     "(did you mean 'credit_limit'?)"),
    ("roles:\n  rep:\n    entities:\n      account: everything\n",
     "config/roles.yaml:4:16: roles.rep.entities.account: 'everything' is not one of "
     "['none', 'own', 'department', 'department_tree', 'all']"),
    ("roles:\n  rep:\n    entities:\n      account: {read: everything}\n",
     "config/roles.yaml:4:23: roles.rep.entities.account.read: 'everything' is not one of "
     "['none', 'own', 'department', 'department_tree', 'all']"),
    ("roles:\n  rep:\n    entities:\n      account: {reed: all}\n",
     "config/roles.yaml:4:17: roles.rep.entities.account: unknown key 'reed' "
     "(did you mean 'read'?)"),
    ("roles:\n  rep:\n    entities:\n      account: 3\n",
     "config/roles.yaml:4:16: roles.rep.entities.account: must be a mapping, not the number 3"),
    ("roles:\n  rep:\n    fields:\n      account: {name: secret}\n",
     "config/roles.yaml:4:23: roles.rep.fields.account.name: 'secret' is not one of "
     "['hidden', 'readonly']"),
    ("- admin\n- rep\n", "config/roles.yaml:1:1: roles.yaml is a mapping (see docs/…"),
    ("", "config/roles.yaml:1:1: roles.yaml is a mapping (see docs/…"),
    ("roles: [admin]\n", "config/roles.yaml:1:8: roles: must be a mapping, not a list"),
    ("roles:\n  rep:\n", "config/roles.yaml:2:3: roles.rep: a value is missing"),
    ("roles:\n  Sales-Rep:\n    admin: false\n",
     "config/roles.yaml:2:3: role name 'Sales-Rep' must match ^[a-z][a-z0-9_]{0,62}$"),
    ("roles:\n  rep:\n    entitles: {}\n",
     "config/roles.yaml:3:5: roles.rep: unknown key 'entitles' (did you mean 'entities'?)"),
    ("roles:\n  rep:\n    admin: yes please\n",
     "config/roles.yaml:3:12: roles.rep.admin: must be true or false, not the text "
     "'yes please'"),
]


@pytest.mark.parametrize(("text", "error"), ROLE_ERRORS)
def test_roles_errors_say_where(workdir: Path, text: str, error: str) -> None:
    assert_errors(errors_of(text), error)


def test_every_roles_error_is_reported_at_once(workdir: Path) -> None:
    text = ("roles:\n"
            "  rep:\n"
            "    entities:\n"
            "      acount: all\n"
            "      contact: own\n"
            "    fields:\n"
            "      account: {credit_limt: hidden, tier: readonly}\n"
            "  Bad:\n"
            "    admin: true\n")
    assert errors_of(text) == [
        "config/roles.yaml:4:7: roles.rep.entities: unknown entity 'acount' "
        "(did you mean 'account'?)",
        "config/roles.yaml:7:17: roles.rep.fields.account: unknown field 'credit_limt' "
        "(did you mean 'credit_limit'?)",
        "config/roles.yaml:8:3: role name 'Bad' must match ^[a-z][a-z0-9_]{0,62}$",
    ]


def test_crm_check_reports_roles_errors(workdir: Path) -> None:
    Path("config/roles.yaml").write_text(
        "roles:\n  rep:\n    entities:\n      acount: all\n      lead: own\n"
        "    fields:\n      lead: {statsu: hidden}\n",
        encoding="utf-8")
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "config/roles.yaml:4:7: roles.rep.entities: unknown entity 'acount' "
        "(did you mean 'account'?)",
        "config/roles.yaml:7:14: roles.rep.fields.lead: unknown field 'statsu' "
        "(did you mean 'status'?)",
        "error: 2 configuration error(s); nothing was applied",
    ]


def test_crm_check_passes_on_the_shipped_config(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ")


# -- org.yaml errors --------------------------------------------------------------------------

ORG_ERRORS = [
    ("departments:\n  - {name: A, code: X}\n  - name: B\n    code: X\n",
     "config/org.yaml:4:11: code 'X' is already used by 'A'"),
    ("departments:\n  - name: A\n    code: X\n    children:\n      - {name: B, code: X}\n",
     "config/org.yaml:5:25: code 'X' is already used by 'A'"),
    ("departments:\n  - {name: A, kind: regoin}\n",
     "config/org.yaml:2:21: unknown kind 'regoin'; one of headquarters, region, branch, "
     "partner (did you mean 'region'?)"),
    ("departments:\n  - {code: A}\n", "config/org.yaml:2:5: departments.0: missing key 'name'"),
    ("departments:\n  - {name: A}\n  - {name: A}\n",
     "config/org.yaml:3:12: department 'A' appears twice under one parent"),
    ("departments:\n  - {name: A, manager: x}\n",
     "config/org.yaml:2:15: departments.0: unknown key 'manager'"),
    ("departments: []\n", "config/org.yaml:1:14: departments: [] should be non-empty"),
    ("[1, 2]\n", "config/org.yaml:1:1: org.yaml is a mapping (see docs/…"),
]


@pytest.mark.parametrize(("text", "error"), ORG_ERRORS)
def test_org_errors_say_where(workdir: Path, text: str, error: str) -> None:
    assert_errors(errors_of(text, "org.yaml"), error)


def test_org_needs_a_department_entity(workdir: Path) -> None:
    Path("config/entities/department.yaml").unlink()
    # roles.yaml names department too: drop it so the org error is the one left.
    Path("config/roles.yaml").unlink()
    # Entities with department fields (budgets, targets, announcements…) would fail first:
    # keep two that have none, so the org error is the one left.
    for path in Path("config/entities").glob("*.yaml"):
        if path.stem not in ("product", "product_line"):
            path.unlink()
    assert errors_of("departments:\n  - {name: A}\n", "org.yaml") == [
        "config/org.yaml:2:3: org.yaml needs a 'department' entity "
        "(config/entities/department.yaml)"]


# -- cascade_assign errors --------------------------------------------------------------------

CASCADE_ERRORS = [
    ("cascade_assign:\n  - contakt\n",
     "config/entities/account.yaml:8:5: cascade_assign: unknown entity 'contakt' "
     "(did you mean 'contact'?)"),
    ("cascade_assign:\n  - product\n",
     "config/entities/account.yaml:8:5: cascade_assign: product has no reference field "
     "to account"),
    ("cascade_assign:\n  - {entity: opportunity, when: 'amount + 1'}\n",
     "config/entities/account.yaml:8:5: formula 1:1: this formula gives a number, but a "
     "boolean is needed here"),
    ("cascade_assign:\n  - {entity: opportunity, when: 'stag = \"won\"'}\n",
     "config/entities/account.yaml:8:5: formula 1:1: unknown field 'stag'; did you mean "
     "'stage'?"),
    ("cascade_assign:\n  - {entity: opportunity, when: 'ISCHANGED(stage)'}\n",
     "config/entities/account.yaml:8:5: formula 1:1: ISCHANGED cannot run in the database, "
     "so this formula can't be filtered or sorted on"),
    ("cascade_assign:\n  - {entity: opportunity, if: 'TRUE'}\n",
     "config/entities/account.yaml:8:27: cascade_assign.0: unknown key 'if'"),
    ("cascade_assign:\n  - {when: 'TRUE'}\n",
     "config/entities/account.yaml:8:5: cascade_assign.0: missing key 'entity'"),
    ("cascade_assign: contact\n",
     "config/entities/account.yaml:7:17: cascade_assign: must be a list, not the text "
     "'contact'"),
]


@pytest.mark.parametrize(("text", "error"), CASCADE_ERRORS)
def test_cascade_errors_say_where(workdir: Path, text: str, error: str) -> None:
    set_cascade(text)
    with pytest.raises(ConfigErrors) as info:
        load_model("config")
    assert [str(e) for e in info.value.errors] == [error]
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        error, "error: 1 configuration error(s); nothing was applied"]


def test_a_child_may_point_back_through_any_reference(workdir: Path) -> None:
    # activity points to account through `account`; a when-less entry is fine.
    set_cascade("cascade_assign:\n  - activity\n")
    account = load_model("config").entity("account")
    assert [(c.entity, c.when) for c in account.cascade_assign] == [("activity", None)]


# -- any roles-shaped YAML: ConfigErrors with positions inside the file, nothing else ----------

_NAMES = st.sampled_from(["admin", "rep", "Rep", "x-y", "1a", "", "account", "lead", "*",
                          "acount", "product", "read", "update", "assign", "reed", "hidden",
                          "name", "credit_limit", "amount", "label", "description",
                          "entities", "fields", "roles", "true", "null", "日本"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                     st.sampled_from([s.value for s in Scope] + ["hidden", "readonly", "x",
                                                                 "", "Own", "*"]),
                     st.text(max_size=5))
_VALUES: Any = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_NAMES, inner, max_size=4)),
    max_leaves=12)
_GRANT = st.one_of(st.sampled_from([s.value for s in Scope]),
                   st.dictionaries(st.sampled_from([*ACTIONS, "reed", "*"]),
                                   st.sampled_from([s.value for s in Scope] + ["x"]),
                                   max_size=4),
                   _VALUES)
_ROLE = st.one_of(
    st.fixed_dictionaries({}, optional={
        "label": st.one_of(st.text(max_size=4), st.dictionaries(
            st.sampled_from(["en", "zh", "EN", "x"]), _SCALARS, max_size=2)),
        "admin": st.one_of(st.booleans(), _SCALARS),
        "entities": st.one_of(st.dictionaries(_NAMES, _GRANT, max_size=4), _VALUES),
        "fields": st.one_of(st.dictionaries(_NAMES, st.one_of(
            st.dictionaries(_NAMES, st.sampled_from(["hidden", "readonly", "shown"]),
                            max_size=3), _VALUES), max_size=3), _VALUES),
        "entitles": _VALUES,
    }),
    _VALUES)
_ROLES_DOC = st.one_of(
    st.fixed_dictionaries({"roles": st.dictionaries(_NAMES, _ROLE, max_size=4)},
                          optional={"extra": _VALUES}),
    _VALUES)


def _dump(data: Any) -> str:
    out = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(data, out)
    return out.getvalue()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=_ROLES_DOC, raw=st.one_of(st.none(), st.text(max_size=30)))
def test_any_roles_yaml_gives_a_model_or_config_errors(workdir: Path, data: Any,
                                                       raw: str | None) -> None:
    text = raw if raw is not None else _dump(data)
    Path("config/roles.yaml").write_text(text, encoding="utf-8")
    try:
        model = load_model("config")
    except ConfigErrors as exc:
        lines = text.count("\n") + 1
        assert exc.errors
        for err in exc.errors:
            if err.loc.file.startswith("config/flows/"):
                # a shipped flow names a role this roles.yaml lacks (approvers, pools)
                assert "role" in err.message, str(err)
                continue
            if err.loc.file != "config/roles.yaml":
                # a validation rule of an entity names a role this roles.yaml lacks
                assert "overridable_by: no role" in err.message, str(err)
                continue
            assert 1 <= err.loc.line <= lines + 1, str(err)
            assert err.loc.col >= 1 and err.message, str(err)
        return
    assert isinstance(model, Model)
    for role in model.roles.roles:
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,62}", role.name)
        for entity, _ in role.grants:
            assert entity == "*" or model.has_entity(entity)
