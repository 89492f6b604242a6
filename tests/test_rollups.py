"""Rollup summary fields kept exact (engine/runtime/rollups): every child change, on
SQLite and PostgreSQL, compared with a from-scratch recomputation; migrate's backfill;
`crm rollup check`; concurrent child writes; a property test over random operations."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from engine.cli import main
from engine.metadata import load_model
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine
from engine.runtime.errors import BadRequest, Invalid
from engine.runtime.records import ListQuery, Records
from engine.runtime.records.access_explain import explain_access
from engine.runtime.records.query import SortKey
from engine.runtime.rollups import compute
from engine.runtime.rollups.refresh import check_rollups, refresh_rollups, stale_rollups
from tests.conftest import Env, EnvFactory
from tests.deals import win

ROLLUPS = ("open_deals", "open_pipeline", "won_amount")
LOST_REASON = {"lost_reason": "price"}  # a lost deal needs one (opportunity.yaml)


@pytest.fixture
def records(env: Env) -> Records:
    return records_service(env.engine, env.model)


def sums(records: Records, account_id: int) -> tuple[Any, ...]:
    row = records.get(SYSTEM, "account", account_id)
    return tuple(row[n] for n in ROLLUPS)


def deal(records: Records, account: int, amount: str, stage: str = "prospecting",
         **more: Any) -> dict[str, Any]:
    return records.create(SYSTEM, "opportunity", {"name": f"Deal {amount}", "account": account,
                                                  "amount": amount, "stage": stage,
                                                  **LOST_REASON, **more})


def no_drift(records: Records) -> None:
    assert check_rollups(records) == []


def test_a_new_account_starts_empty(records: Records) -> None:
    acme = records.create(SYSTEM, "account", {"name": "Acme"})
    assert sums(records, acme["id"]) == (0, Decimal("0.00"), Decimal("0.00"))


def test_every_child_change_keeps_the_parent_exact(records: Records) -> None:
    acme = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    globex = records.create(SYSTEM, "account", {"name": "Globex"})["id"]
    # prospecting weighs 10 %, negotiation 80 % (probability in opportunity.yaml)
    a = deal(records, acme, "1000")
    b = deal(records, acme, "500", "negotiation")
    assert sums(records, acme) == (2, Decimal("500.00"), Decimal("0.00"))
    win(records, SYSTEM, a["id"], purge_quote=True)  # a is purged below
    assert sums(records, acme) == (1, Decimal("400.00"), Decimal("1000.00"))
    b = records.update(SYSTEM, "opportunity", b["id"], {"amount": "600"}, b["version"])
    assert sums(records, acme) == (1, Decimal("480.00"), Decimal("1000.00"))
    # moved to another account: both parents change
    b = records.update(SYSTEM, "opportunity", b["id"], {"account": globex}, b["version"])
    assert sums(records, acme) == (0, Decimal("0.00"), Decimal("1000.00"))
    assert sums(records, globex) == (1, Decimal("480.00"), Decimal("0.00"))
    # a change of a field no rollup reads leaves the parent alone (and its version)
    version = records.get(SYSTEM, "account", globex)["version"]
    records.update(SYSTEM, "opportunity", b["id"], {"name": "Renamed"}, b["version"])
    assert records.get(SYSTEM, "account", globex)["version"] == version
    records.delete(SYSTEM, "opportunity", a["id"])
    assert sums(records, acme) == (0, Decimal("0.00"), Decimal("0.00"))
    records.restore(SYSTEM, "opportunity", a["id"])
    assert sums(records, acme) == (0, Decimal("0.00"), Decimal("1000.00"))
    records.delete(SYSTEM, "opportunity", a["id"])
    records.purge(SYSTEM, "opportunity", a["id"])
    assert sums(records, acme) == (0, Decimal("0.00"), Decimal("0.00"))
    made = records.bulk_create(SYSTEM, "opportunity", [
        {"name": f"Bulk {i}", "account": acme if i % 2 else globex, "amount": "100",
         "stage": "proposal"} for i in range(6)], batch_size=4)
    assert made.created == 6 and made.errors == []
    assert sums(records, acme) == (3, Decimal("150.00"), Decimal("0.00"))
    assert sums(records, globex) == (4, Decimal("630.00"), Decimal("0.00"))
    no_drift(records)
    # the rollup is the engine's: a change of it is not audited, nor an edit (version)
    assert records.get(SYSTEM, "account", acme)["version"] == 1
    assert not {h["field"] for h in records.history(SYSTEM, "account", acme)} & set(ROLLUPS)


def test_the_hook_builds_a_rollups_statements_once(records: Records,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a rollup's SQL (its where and the formula fields it reads) cost several
    times running it: the hook builds each statement once per records service, and the
    reused statements still compute every write exactly."""
    built: list[str] = []
    parts = compute.parts

    def counting(records: Records, rf: compute.RollupField, t: Any) -> Any:
        built.append(rf.name)
        return parts(records, rf, t)

    monkeypatch.setattr(compute, "parts", counting)
    acme = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    globex = records.create(SYSTEM, "account", {"name": "Globex"})["id"]

    def writes(amount: str) -> None:
        a = deal(records, acme, amount)  # a create adds the new child
        b = deal(records, acme, amount, "negotiation")
        # from scratch: a stage change, a move to another parent
        win(records, SYSTEM, a["id"])
        records.update(SYSTEM, "opportunity", b["id"], {"account": globex}, b["version"])

    writes("1000")
    # the account's: once for adding, once from scratch (the deal's quote counts, which
    # its accepted quote moves, are built as they are first needed)
    first = sorted(built)
    assert sorted(n for n in built if n in ROLLUPS) == sorted(ROLLUPS * 2)
    writes("500")
    assert sorted(built) == first  # nothing was built again
    assert sums(records, acme) == (0, Decimal("0.00"), Decimal("1500.00"))
    assert sums(records, globex) == (2, Decimal("1200.00"), Decimal("0.00"))
    no_drift(records)


def test_assign_with_cascade_keeps_rollups_and_users_cannot_write_them(
        records: Records, env: Env) -> None:
    acme = records.create(SYSTEM, "account", {"name": "Acme"})
    deal(records, acme["id"], "1000")
    bob = env.users.add("bob", ["sales_manager"])
    records.assign(SYSTEM, "account", acme["id"], owner=bob.id, department=None)
    assert sums(records, acme["id"]) == (1, Decimal("100.00"), Decimal("0.00"))
    with pytest.raises(Invalid) as caught:
        records.update(SYSTEM, "account", acme["id"], {"open_deals": 7}, 2)
    assert caught.value.fields == {
        "open_deals": "is a rollup the engine keeps and cannot be written"}
    with pytest.raises(Invalid):
        records.create(SYSTEM, "account", {"name": "Globex", "won_amount": "5"})


def test_lists_filter_and_sort_on_rollups_and_formulas_read_them(records: Records) -> None:
    ids = {}
    for name, amounts in (("Acme", ["100", "200"]), ("Globex", ["5000"]), ("Initech", [])):
        ids[name] = records.create(SYSTEM, "account", {"name": name})["id"]
        for amount in amounts:
            deal(records, ids[name], amount, "won")
    query = ListQuery(filter=records.compile_filter("account", "won_amount > 250"),
                      sort=(SortKey("won_amount", True),))
    page = records.list_records(SYSTEM, "account", query)
    assert [r["name"] for r in page.items] == ["Globex", "Acme"]
    page = records.list_records(SYSTEM, "account", ListQuery(
        filter=records.compile_filter("account", "AND(open_deals = 0, won_amount = 0)")))
    assert [r["name"] for r in page.items] == ["Initech"]


def test_a_rollup_of_a_rollup_follows_through_the_chain(make_env: EnvFactory,
                                                          config_dir: Path) -> None:
    path = config_dir / "entities" / "account.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "  won_amount:", "  group_won:     {type: rollup, of: account.won_amount, via: parent, "
        "agg: sum}\n  won_amount:"), encoding="utf-8")
    env = make_env(config_dir)
    records = records_service(env.engine, env.model)
    group = records.create(SYSTEM, "account", {"name": "Group"})["id"]
    top = records.create(SYSTEM, "account", {"name": "Holding"})["id"]
    records.update(SYSTEM, "account", group, {"parent": top}, 1)
    sub = records.create(SYSTEM, "account", {"name": "Plant", "parent": group})["id"]
    deal(records, sub, "700", "won")
    # the deal changes Plant's won_amount; that changes Group's group_won... and only that
    assert records.get(SYSTEM, "account", group)["group_won"] == Decimal("700.00")
    assert records.get(SYSTEM, "account", top)["group_won"] == Decimal("0.00")
    no_drift(records)


def test_migrate_computes_a_new_rollup_for_existing_rows_and_redoes_a_changed_one(
        make_env: EnvFactory, config_dir: Path, db_url: str) -> None:
    env = make_env(config_dir)
    records = records_service(env.engine, env.model)
    refresh_rollups(records)
    acme = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    for amount in ("100", "250"):
        deal(records, acme, amount, "lost")
    deal(records, acme, "999", "won")
    path = config_dir / "entities" / "account.yaml"
    shipped = path.read_text(encoding="utf-8")
    lost = ("  lost_amount:   {type: rollup, of: opportunity.amount, via: account, agg: sum, "
            "where: 'stage = \"lost\"'}\n")
    path.write_text(shipped + lost, encoding="utf-8")  # lost_amount arrives
    runner = CliRunner()
    out = runner.invoke(main, ["--config", str(config_dir), "--db", db_url, "migrate"])
    assert out.exit_code == 0, out.output
    assert "computed rollups account.lost_amount: 1 records" in out.output
    records = records_service(env.engine, load_model(config_dir))
    assert records.get(SYSTEM, "account", acme)["lost_amount"] == Decimal("350.00")
    assert stale_rollups(records) == []
    out = runner.invoke(main, ["--config", str(config_dir), "--db", db_url, "migrate"])
    assert "computed rollup" not in out.output  # nothing new: nothing recomputed
    path.write_text(shipped + lost.replace('stage = "lost"', 'stage <> "lost"'),
                    encoding="utf-8")
    records = records_service(env.engine, load_model(config_dir))
    assert [rf.name for rf in stale_rollups(records)] == ["lost_amount"]
    progress: list[tuple[Any, ...]] = []
    assert refresh_rollups(records, lambda *a: progress.append(a), batch=1) == [
        ("account.lost_amount", 1)]
    assert progress[0] == ("account.lost_amount", 0, 1) and progress[-1][1:] == (1, 1)
    assert records.get(SYSTEM, "account", acme)["lost_amount"] == Decimal("999.00")


def test_rollup_check_reports_drift_and_fix_repairs_it(records: Records, env: Env,
                                                       config_dir: Path, db_url: str) -> None:
    acme = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    deal(records, acme, "100", "won")
    t = records.schema.table("account")
    with env.engine.begin() as conn:  # a value changed behind the engine's back
        conn.execute(update(t).where(t.c.id == acme).values(won_amount=Decimal("1"),
                                                             open_deals=5))
    runner = CliRunner()
    args = ["--config", str(config_dir), "--db", db_url, "rollup", "check"]
    out = runner.invoke(main, [*args, "account"])
    assert out.exit_code == 1
    assert f"account {acme} open_deals: stored 5, computed 0" in out.output
    assert f"account {acme} won_amount: stored 1.00, computed 100.00" in out.output
    assert "2 value(s) differ" in out.output
    out = runner.invoke(main, [*args, "--fix"])
    assert out.exit_code == 0 and "repaired 2 value(s)" in out.output
    assert sums(records, acme) == (0, Decimal("0.00"), Decimal("100.00"))
    out = runner.invoke(main, args)
    assert out.exit_code == 0 and "no drift" in out.output
    out = runner.invoke(main, [*args, "contact"])
    assert out.exit_code == 1 and "contact has no rollup fields" in out.output


def test_concurrent_child_writes_on_one_parent_lose_no_update(env: Env, db_url: str) -> None:
    records = records_service(env.engine, env.model)
    acme = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    engines = [open_engine(db_url) for _ in range(4)]
    services = [records_service(e, env.model) for e in engines]
    for service in services:  # each write holds its transaction open after its rollup
        service.hooks.on_before_commit("slow", lambda unit, changes: time.sleep(0.02))
    start = threading.Barrier(len(services))
    problems: list[BaseException] = []

    def write(service: Records) -> None:
        try:
            start.wait()
            for _ in range(5):
                deal(service, acme, "10", "won")
        except BaseException as exc:  # reported below
            problems.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in services]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for e in engines:
        e.dispose()
    assert problems == []
    assert sums(records, acme)[2] == Decimal("200.00")
    no_drift(records)


_OPS = st.lists(st.tuples(
    st.sampled_from(["create", "stage", "amount", "move", "delete", "restore", "purge",
                     "bulk"]),
    st.integers(0, 2), st.integers(0, 5),
    st.sampled_from(["prospecting", "proposal", "negotiation", "won", "lost"])),
    min_size=1, max_size=12)


# Every aggregate, besides the shipped count and sums: min and max (added to on creates),
# avg (always recomputed), a count of non-blank values, and a date.
EVERY_AGGREGATE = """
  biggest_deal:  {type: rollup, of: opportunity.amount, via: account, agg: max}
  smallest_won:  {type: rollup, of: opportunity.amount, via: account, agg: min,
                  where: 'stage = "won"'}
  average_deal:  {type: rollup, of: opportunity.amount, via: account, agg: avg}
  dated_deals:   {type: rollup, of: opportunity.close_date, via: account, agg: count}
  first_close:   {type: rollup, of: opportunity.close_date, via: account, agg: min}
"""


@pytest.fixture
def every_aggregate(make_env: EnvFactory, config_dir: Path) -> Records:
    path = config_dir / "entities" / "account.yaml"
    path.write_text(path.read_text(encoding="utf-8") + EVERY_AGGREGATE, encoding="utf-8")
    env = make_env(config_dir)
    return records_service(env.engine, env.model)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_random_child_operations_never_leave_drift(every_aggregate: Records,
                                                   ops: list[Any]) -> None:
    """Whatever happens to the children, every stored rollup equals a recomputation (the
    database carries over from example to example: the invariant holds at every step)."""
    records = every_aggregate
    accounts = []
    for i in range(3):
        name = f"P{i}"
        page = records.list_records(SYSTEM, "account", ListQuery(
            filter=records.compile_filter("account", f'name = "{name}"')))
        accounts.append(page.items[0]["id"] if page.items else
                        records.create(SYSTEM, "account", {"name": name})["id"])
    for op, which, n, stage in ops:
        live = records.list_records(SYSTEM, "opportunity", ListQuery(page_size=200)).items
        binned = records.list_records(SYSTEM, "opportunity",
                                      ListQuery(page_size=200, deleted=True)).items
        if op == "create" or (not live and op in ("stage", "amount", "move", "delete")):
            # cents: a weighted amount then has a third decimal (100.05 x 10 % = 10.005)
            deal(records, accounts[which], f"{100 * (n + 1)}.{n}5", stage,
                 close_date=f"2027-0{n + 1}-1{which}" if n % 3 else None)
        elif op == "bulk":
            records.bulk_create(SYSTEM, "opportunity", [
                {"name": f"B{k}", "account": accounts[(which + k) % 3],
                 "amount": f"{n + k}.{k}5",
                 "stage": stage, "close_date": f"2026-1{k % 3}-0{n + 1}", **LOST_REASON}
                for k in range(n + 1)], batch_size=2)
        elif op in ("stage", "amount", "move", "delete"):
            d = live[n % len(live)]
            change = {"stage": {"stage": stage}, "amount": {"amount": f"{n * 7}.15"},
                      "move": {"account": accounts[which]}}.get(op)
            if change is None:
                records.delete(SYSTEM, "opportunity", d["id"])
            elif stage == "won" and op == "stage":
                # a deal is won on an accepted quote; the deal may be purged later
                win(records, SYSTEM, d["id"], purge_quote=True)
            else:
                records.update(SYSTEM, "opportunity", d["id"], change, d["version"])
        elif binned:
            d = binned[n % len(binned)]
            if op == "restore":
                records.restore(SYSTEM, "opportunity", d["id"])
            else:
                records.purge(SYSTEM, "opportunity", d["id"])
        no_drift(records)


def test_a_dry_run_of_a_child_write_shows_the_rollup_change_and_keeps_nothing(
        records: Records) -> None:
    acme = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    run = records.dry_run(SYSTEM, lambda unit: records.create(
        SYSTEM, "opportunity", {"name": "X", "account": acme, "amount": "50", "stage": "won"},
        unit=unit))
    rollup = [c for c in run.changes if c.action == "rollup"]
    assert [(c.entity, c.record_id, c.changes) for c in rollup] == [
        ("account", acme, (("won_amount", Decimal("0.00"), Decimal("50.00")),))]
    assert rollup[0].cause is run.changes[0] and not rollup[0].audited
    assert sums(records, acme) == (0, Decimal("0.00"), Decimal("0.00"))


def test_the_api_and_app_keep_rollups(env: Env) -> None:
    api = env.client(env.users.new_token("admin"))
    acme = api.post("/api/account", json={"name": "Acme"}).json()
    made = api.post("/api/opportunity", json={"name": "X", "account": acme["id"],
                                               "amount": "75", "stage": "won"})
    assert made.status_code == 201, made.text
    got = api.get(f"/api/account/{acme['id']}").json()
    assert (got["open_deals"], got["won_amount"]) == (0, "75.00")
    refused = api.patch(f"/api/account/{acme['id']}", json={"version": got["version"],
                                                             "won_amount": "1"})
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"] == {
        "won_amount": "is a rollup the engine keeps and cannot be written"}


def test_a_rollup_of_a_hidden_field_is_hidden_too(env: Env) -> None:
    """Marketing may not see deal amounts (config/roles.yaml): nor their sums on the
    account, whether summed directly (won_amount) or through a formula (open_pipeline,
    of weighted = amount * probability); the count of open deals reads no amount."""
    records = records_service(env.engine, env.model)
    acme = records.create(SYSTEM, "account", {"name": "Acme"})["id"]
    deal(records, acme, "1000", "won")
    marketing = env.users.add("mia", ["marketing"]).actor()
    hidden = records.policy.hidden_fields(marketing, env.model.entity("account"))
    assert {"won_amount", "open_pipeline"} <= hidden and "open_deals" not in hidden
    row = records.get(marketing, "account", acme)
    assert "won_amount" not in row and "open_pipeline" not in row and row["open_deals"] == 0
    with pytest.raises(BadRequest):  # as unknown to a filter as a field that does not exist
        records.compile_filter("account", "won_amount > 0", marketing)
    explained = explain_access(records, SYSTEM, env.admin.actor(), "account", acme)["fields"]
    assert explained["won_amount"]["write"] == "computed"
    assert "rollup" in explained["won_amount"]["reason"]


def test_validation_rules_read_rollups(make_env: EnvFactory, config_dir: Path) -> None:
    """A rule on the parent reads its rollups as stored fields: the deals won on an account
    may not exceed its credit limit, checked when the account is saved and when a deal's
    write changes the rollup (engine/runtime/rollups/rules.py)."""
    path = config_dir / "entities" / "account.yaml"
    path.write_text(path.read_text(encoding="utf-8") + (
        "validations:\n"
        "  - rule: 'OR(ISBLANK(credit_limit), won_amount <= credit_limit)'\n"
        "    message: {en: Won deals exceed the credit limit, zh: 赢单金额超过信用额度}\n"
        "    field: credit_limit\n"), encoding="utf-8")
    env = make_env(config_dir)
    records = records_service(env.engine, env.model)
    acme = records.create(SYSTEM, "account", {"name": "Acme", "credit_limit": "100"})
    with pytest.raises(Invalid) as refused:  # the deal's write would break the account's rule
        deal(records, acme["id"], "150", "won")
    assert refused.value.fields == {"account": "Won deals exceed the credit limit"}
    deal(records, acme["id"], "80", "won")
    acme = records.get(SYSTEM, "account", acme["id"])
    assert acme["won_amount"] == Decimal("80.00")
    with pytest.raises(Invalid) as caught:  # the account's own save judges it too
        records.update(SYSTEM, "account", acme["id"], {"credit_limit": "50"}, acme["version"])
    assert caught.value.fields == {"credit_limit": "Won deals exceed the credit limit"}
    records.update(SYSTEM, "account", acme["id"], {"credit_limit": "200"}, acme["version"])
