"""The one secure query (engine/runtime/records/secure.py): for every role scope its rows are
the records the roles allow for each action, hidden fields are unknown, a computed field or a
path through a reference is blank past a record the actor cannot read, and no other module of
the engine builds a query from the policy's row conditions."""

from __future__ import annotations

import ast
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import or_, select

from engine.messages import Message
from engine.runtime.access import SYSTEM, Actor
from engine.runtime.errors import NotFound
from engine.runtime.records import secure
from engine.runtime.records.aggregate import grouped_totals
from engine.runtime.records.query import Condition
from engine.runtime.records.secure import SecureRows
from tests.access_helpers import add_fields
from tests.access_world import (
    ACTORS,
    ALL,
    ASSIGNABLE,
    DELETABLE,
    HIDES,
    TREE,
    UPDATABLE,
    VISIBLE,
    World,
    build_world,
    name_marker,
)
from tests.conftest import EnvFactory

ENGINE = Path(__file__).resolve().parents[1] / "engine"

# Written out by hand from the roles of tests/access_world.py, as the matrix's are: a scope
# given as one word (`own`) covers export too, and the team counts for it as for read;
# r_all and r_reader name their actions and leave export out.
EXPORTABLE: dict[str, frozenset[str]] = {
    "admin": ALL, "u_none": frozenset(), "u_own": frozenset({"own"}),
    "u_dept": frozenset({"region"}), "u_tree": TREE, "u_all": frozenset(),
    "u_reader": frozenset(), "u_team": frozenset({"team_r", "team_e"}),
}
ALLOWED: dict[str, dict[str, frozenset[str]]] = {
    "read": {user: keys or frozenset() for user, keys in VISIBLE.items()},
    "update": UPDATABLE, "delete": DELETABLE, "assign": ASSIGNABLE, "export": EXPORTABLE,
}


@pytest.fixture
def world(make_env: EnvFactory, config_dir: Path) -> World:
    add_fields(config_dir, "opportunity",
               "account_label: {type: text, formula: 'account.name'}")
    return build_world(make_env, config_dir)


def _actor(world: World, user: str) -> Actor:
    found = world.env.users.by_name(user)
    assert found is not None
    return found.actor()


def _keys(world: World, entity: str, seen: SecureRows, *, branches: bool = False) -> set[str]:
    """The world's record keys among the builder's rows (`branches`: read as a list reads
    them, the state and the OR of the scope's alternatives)."""
    t = seen.table
    if branches:
        alternatives = seen.branches
        stmt = seen.records.compiled(entity).table.select().with_only_columns(t.c.id).where(
            *seen.state, *([] if alternatives is None else [or_(*alternatives)]))
    else:
        stmt = seen.select(t.c.id)
    with world.env.engine.connect() as conn:
        found = set(conn.execute(stmt).scalars())
    by_id = {i: k for k, i in world.ids[entity].items()}
    assert found <= set(by_id), "rows the world did not seed"
    return {by_id[i] for i in found}


def test_the_rows_are_the_records_each_role_allows_for_each_action(world: World) -> None:
    records = world.env.records
    problems = []
    for user in ACTORS:
        actor = _actor(world, user)
        for entity in ("account", "opportunity"):
            for action, allowed in ALLOWED.items():
                seen = secure.rows(records, actor, entity, action)
                got = _keys(world, entity, seen)
                if got != allowed[user]:
                    problems.append(f"{user} {action} {entity}: {sorted(got)}, "
                                    f"expected {sorted(allowed[user])}")
                if action == "read" and _keys(world, entity, seen, branches=True) != got:
                    problems.append(f"{user} {entity}: the branches give other rows")
    assert problems == []


def test_the_recycle_bin_and_history_forms_keep_the_scope(world: World) -> None:
    records = world.env.records
    for key in ("own", "region"):
        records.delete(SYSTEM, "opportunity", world.ids["opportunity"][key])
    u_tree, u_own = _actor(world, "u_tree"), _actor(world, "u_own")
    assert _keys(world, "opportunity", secure.rows(records, u_tree, "opportunity")) \
        == {"branch"}
    assert _keys(world, "opportunity", secure.rows(records, u_tree, "opportunity",
                                                   deleted=True)) == {"own", "region"}
    assert _keys(world, "opportunity", secure.rows(records, u_own, "opportunity",
                                                   deleted=True)) == {"own"}
    assert _keys(world, "opportunity", secure.rows(records, u_tree, "opportunity",
                                                   deleted=None)) == TREE
    # the engine: no scope at all
    assert _keys(world, "opportunity", secure.rows(records, SYSTEM, "opportunity",
                                                   deleted=None)) == ALL
    assert secure.rows(records, SYSTEM, "opportunity").predicate is None


def test_a_hidden_field_is_refused_as_a_field_that_does_not_exist(world: World) -> None:
    records = world.env.records
    masked = HIDES - {"u_none"}  # u_none reads no opportunity at all: no mask to speak of
    for user in ACTORS:
        actor = _actor(world, user)
        seen = secure.rows(records, actor, "opportunity")
        if user not in masked:
            assert {"amount", "weighted"} <= set(seen.columns)
            assert seen.column("amount") is not None
            continue
        assert {"amount", "weighted"}.isdisjoint(seen.columns), user
        assert {"name", "stage", "account_label"} <= set(seen.columns)
        for name, expr in seen.columns.items():  # one column alone reads as in the whole set
            assert str(select(seen.column(name))) == str(select(expr)), name
        with pytest.raises(NotFound) as none:
            seen.column("no_such_field")
        assert str(none.value.message) == "no field 'no_such_field' of opportunity"
        for name, refused in (
                ("amount", partial(seen.column, "amount")),
                ("weighted", partial(seen.column, "weighted")),  # a formula reading amount
                ("account.credit_limit", partial(seen.path, ("account", "credit_limit"))),
                ("amount", partial(seen.conditions, [Condition("amount", "gt", 1)]))):
            with pytest.raises(NotFound) as hidden:
                refused()
            assert type(hidden.value) is type(none.value)
            assert isinstance(hidden.value.message, Message)
            assert isinstance(none.value.message, Message)
            assert hidden.value.message.id == none.value.message.id, (user, name)
            assert str(hidden.value.message) == f"no field '{name}' of opportunity"
        with pytest.raises(NotFound):
            grouped_totals(records, actor, "opportunity", "stage", ["amount"])
        with pytest.raises(NotFound):  # a condition on a field that is not there: no 500
            grouped_totals(records, actor, "opportunity", "stage", [],
                           [Condition("no_such_field", "eq", 1)])


def test_a_computed_field_and_a_path_are_blank_past_a_record_the_actor_cannot_read(
        world: World) -> None:
    """u_team shares opportunity team_e, whose account ("other") they may not read."""
    records = world.env.records
    ids = world.ids["opportunity"]
    expected = {"admin": {"team_r": name_marker("account", "team_r"),
                          "team_e": name_marker("account", "other")},
                "u_team": {"team_r": name_marker("account", "team_r"), "team_e": None}}
    for user, names in expected.items():
        seen = secure.rows(records, _actor(world, user), "opportunity")
        t = seen.table
        stmt = seen.select(t.c.id, seen.column("account_label").label("label"),
                           seen.path(("account", "name")).label("path")) \
            .where(t.c.id.in_([ids["team_r"], ids["team_e"]]))
        with world.env.engine.connect() as conn:
            got = {r.id: (r.label, r.path) for r in conn.execute(stmt)}
        assert got == {ids[k]: (v, v) for k, v in names.items()}, user
    # the record's own page reads it alike
    shown = records.get(_actor(world, "u_team"), "opportunity", ids["team_e"])
    assert shown["account_label"] is None


def test_an_alias_carries_the_scope(world: World) -> None:
    records = world.env.records
    alias = records.compiled("account").table.alias("a2")
    seen = secure.rows(records, _actor(world, "u_dept"), "account", table=alias)
    assert seen.table is alias
    assert _keys(world, "account", seen) == {"region"}


# -- nothing else builds a query from the policy's row conditions ---------------------------

ROW_CONDITIONS = frozenset({"read_filter", "row_filter", "scope_filter", "scope_branches",
                            "read_branches"})
# (module, function) -> why it may ask the policy for a row condition itself.
ALLOWED_CALLERS: dict[tuple[str, str], str] = {
    ("runtime/access/reachable.py", "reachable_users"):
        "the access package (the policy's own reasoning) must not import records: which "
        "users an actor may name reads the departments they may read",
    ("runtime/access/assignable.py", "readable_with"):
        "runs the read policy on hypothetical owner/department values (a one-row subquery "
        "of literals, no table of records)",
    ("runtime/access/explain.py", "_action"):
        "explains the policy's own condition for one record, scope by scope",
}
EXEMPT_MODULES = {"runtime/records/secure.py": "the builder",
                  "runtime/access/policy.py": "the policy itself"}


class _Uses(ast.NodeVisitor):
    """(module, enclosing function, name) of every use of a row-condition method."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.function = "<module>"
        self.found: set[tuple[str, str, str]] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in ROW_CONDITIONS:
            self.found.add((self.module, self.function, node.attr))
        self.generic_visit(node)


def _callers() -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for path in sorted(ENGINE.rglob("*.py")):
        rel = path.relative_to(ENGINE).as_posix()
        if rel not in EXEMPT_MODULES:
            uses = _Uses(rel)
            uses.visit(ast.parse(path.read_text(encoding="utf-8")))
            found |= uses.found
    return found


def test_no_query_bypasses_the_builder() -> None:
    """Outside secure.py and the policy, only the listed functions ask the policy for a row
    condition (a new query must take its rows from `secure.rows`)."""
    offenders = sorted(c for c in _callers() if (c[0], c[1]) not in ALLOWED_CALLERS)
    assert offenders == [], "build the query on engine/runtime/records/secure.py rows()"
    stale = sorted(k for k in ALLOWED_CALLERS if not any(c[:2] == k for c in _callers()))
    assert stale == [], "an exception no longer needed: remove it from ALLOWED_CALLERS"


def test_no_module_reaches_into_the_records_service() -> None:
    """The names a query is built from are public: no `records._x` from another module."""
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        rel = path.relative_to(ENGINE).as_posix()
        if rel == "runtime/records/service.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") \
                    and ast.unparse(node.value).split(".")[-1] == "records":
                offenders.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
