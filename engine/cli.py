"""The `crm` command (DESIGN §5). Errors go to stderr and exit 1."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from engine.metadata import ConfigErrors, Model, load_model
from engine.metadata.report_text import renamed, report_from_text
from engine.metadata.reports import Report
from engine.runtime.assembly import records_service
from engine.runtime.db import open_engine, refresh_statistics
from engine.runtime.errors import RecordError
from engine.runtime.files.store import DiskStore
from engine.runtime.org import seed_org
from engine.runtime.records import Records
from engine.runtime.reports.saved import SavedReports
from engine.runtime.schema import PlanError, apply_plan, build_schema, plan_schema
from engine.settings import Settings, SettingsError, files_dir, trusted_proxies

F = TypeVar("F", bound=Callable[..., Any])
SHUTDOWN_GRACE = 3
"""Seconds `crm serve` lets running requests finish after SIGTERM before cancelling them."""


class Context:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def model(self) -> Model:
        try:
            return load_model(self.settings.config_dir)
        except ConfigErrors as exc:
            for err in exc.errors:
                click.echo(str(err), err=True)
            fail(f"{len(exc.errors)} configuration error(s); nothing was applied")

    def engine(self) -> Any:
        return open_engine(self.settings.database_url)


def _records(engine: Any, model: Model) -> Records:
    """The records service as the app assembles it, its files where the app keeps them
    (CRM_FILES_DIR), so a purge from the command line releases the same blobs."""
    return records_service(engine, model, files=DiskStore(files_dir()))


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def known_entity(model: Model, entity: str) -> None:
    """Exit 1 naming the entities there are, unless `entity` is one of them."""
    if not model.has_entity(entity):
        fail(f"no entity {entity!r}; entities: {', '.join(model.entity_names)}")


pass_ctx = click.make_pass_decorator(Context)


@click.group()
@click.option("--config", "config_dir", envvar="CRM_CONFIG", default="config",
              show_default=True, help="configuration folder")
@click.option("--db", "database_url", envvar="CRM_DATABASE_URL", default=None,
              help="database URL (default: SQLite file ./data/crm.db)")
@click.pass_context
def main(ctx: click.Context, config_dir: str, database_url: str | None) -> None:
    """MetaCRM: a CRM engine compiled from YAML metadata."""
    ctx.obj = Context(Settings.from_env(config_dir, database_url))


@main.command()
@pass_ctx
def check(ctx: Context) -> None:
    """Validate all configuration; print file:line:col: message per error."""
    model = ctx.model()
    fields = sum(len(e.fields) for e in model.entities)
    click.echo(f"ok: {len(model.entities)} entities, {fields} fields")


@main.command()
@click.option("--plan", "plan_only", is_flag=True, help="show the plan, change nothing")
@click.option("--allow-destructive", is_flag=True, help="apply steps that can lose data")
@click.option("--drop-archived", is_flag=True,
              help="drop archived columns (needs --allow-destructive)")
@pass_ctx
def migrate(ctx: Context, plan_only: bool, allow_destructive: bool, drop_archived: bool) -> None:
    """Show or apply the schema plan from config/ to the database."""
    model = ctx.model()
    engine = ctx.engine()
    try:
        if plan_only:
            plan = plan_schema(engine, model, drop_archived=drop_archived)
            click.echo(plan.describe())
            if plan.errors:
                sys.exit(1)
            return
        plan = apply_plan(engine, model, allow_destructive=allow_destructive,
                          drop_archived=drop_archived)
        records = _records(engine, model)
        seeded = seed_org(records)
        refreshed = _refresh_rollups(records)
        numbered = _number_existing(records)
        matched = _match_keys(records)
        refresh_statistics(engine)
    except PlanError as exc:
        for err in exc.errors:
            click.echo(f"error: {err}", err=True)
        fail("nothing was applied")
    except RecordError as exc:
        fail(f"nothing was seeded: {exc}")
    finally:
        engine.dispose()
    if plan.is_empty:
        click.echo("schema is up to date")
    else:
        click.echo(plan.describe())
        click.echo(f"applied {len(plan.steps)} step(s)")
    if seeded:
        click.echo(f"created {seeded} department(s) from config/org.yaml")
    if refreshed:
        click.echo(f"computed rollups {'; '.join(refreshed)}")
    if numbered:
        click.echo(f"numbered existing records {'; '.join(numbered)}")
    if matched:
        click.echo(f"computed duplicate match keys {'; '.join(matched)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--worker", "with_worker", is_flag=True,
              help="also run the flows worker (due timers, the outbox) in this process, as "
                   "`crm worker` does; one such process per database is enough")
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int, with_worker: bool) -> None:
    """Apply safe migrations, then serve the web app and API."""
    import uvicorn

    try:
        proxies = trusted_proxies()
    except SettingsError as exc:
        fail(str(exc))
    model = ctx.model()
    engine = ctx.engine()
    try:
        plan = apply_plan(engine, model, allow_destructive=False)
        # a rollup added since the last migrate is computed before anyone reads it
        records = _records(engine, model)
        refreshed = _refresh_rollups(records)
        numbered = _number_existing(records)
        _match_keys(records)
    except PlanError as exc:
        for err in exc.errors:
            click.echo(f"error: {err}", err=True)
        fail("not starting: run `crm migrate --plan` to see the pending changes")
    finally:
        engine.dispose()
    if not plan.is_empty:
        click.echo(f"applied {len(plan.steps)} schema step(s)")
    if refreshed:
        click.echo(f"computed rollups {'; '.join(refreshed)}")
    if numbered:
        click.echo(f"numbered existing records {'; '.join(numbered)}")
    os.environ["CRM_CONFIG"] = ctx.settings.config_dir
    os.environ["CRM_DATABASE_URL"] = ctx.settings.database_url
    stop = threading.Event()
    background: threading.Thread | None = None
    if with_worker:
        background = threading.Thread(target=_serve_worker, args=(ctx, model, stop),
                                      name="flows-worker", daemon=True)
        background.start()
    # On SIGTERM, requests still running after SHUTDOWN_GRACE seconds are cancelled, and
    # with them their queries (engine/web/limits.py): the server stops within seconds.
    try:
        uvicorn.run("engine.web.asgi:build", factory=True, host=host, port=port,
                    workers=workers, log_level="info",
                    timeout_graceful_shutdown=SHUTDOWN_GRACE, **proxy_options(proxies))
    finally:
        stop.set()
        if background is not None:
            background.join(timeout=SHUTDOWN_GRACE)


def _serve_worker(ctx: Context, model: Model, stop: threading.Event) -> None:
    """`crm serve --worker`: the flows worker beside the server, until the server stops."""
    from engine.runtime.flows.worker import Worker

    engine = ctx.engine()
    try:
        flows = Worker(_records(engine, model))
        click.echo(f"worker {flows.worker_id}: running beside the server")
        flows.run(stop)
    finally:
        engine.dispose()


def proxy_options(proxies: tuple[str, ...]) -> dict[str, Any]:
    """uvicorn's options for X-Forwarded-For: believed only from the proxies named in
    CRM_TRUSTED_PROXIES (uvicorn itself would believe 127.0.0.1 by default).

    >>> proxy_options(())
    {'proxy_headers': False}
    >>> proxy_options(("10.0.0.5",))
    {'proxy_headers': True, 'forwarded_allow_ips': ['10.0.0.5']}
    """
    if not proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(proxies)}


@main.command()
@click.option("--size", default=200, show_default=True, type=click.IntRange(1, 1_000_000),
              help="number of accounts")
@click.option("--if-empty", is_flag=True, help="do nothing when the database has data")
@pass_ctx
def demo(ctx: Context, size: int, if_empty: bool) -> None:
    """Fill the database with realistic demo data (English and Chinese)."""
    from engine.runtime.demo import DEMO_PASSWORD, existing_data, fill_demo
    from engine.runtime.users import Users

    model = ctx.model()
    engine = ctx.engine()
    try:
        apply_plan(engine, model)
        records = _records(engine, model)
        found = existing_data(records)
        if found:
            held = ", ".join(f"{n} {what}" for what, n in found.items())
            if if_empty:
                click.echo(f"demo: the database already has data ({held}); kept as it is, "
                           "no demo data added")
                return
            fail(f"the database already has data ({held}); demo data goes into a new database")
        users = Users(engine, records.schema)
        result = fill_demo(records, users, size=size,
                           progress=lambda step: click.echo(f"demo: {step}…"))
        refresh_statistics(engine)
        token = users.new_token("admin", "demo")
    except (PlanError, RecordError) as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    shown = ", ".join(f"{n} {e}" for e, n in result.counts.items())
    click.echo(f"demo: created {shown}")
    click.echo(f"demo: sign in as admin / {DEMO_PASSWORD}")
    click.echo("demo: API token for admin (shown once):")
    click.echo(token)


@main.command()
@click.argument("expr")
@click.option("--entity", required=True, help="the entity whose fields the formula reads")
@click.option("--record", "record_json", default=None,
              help='the record as JSON, e.g. \'{"amount": "1000", "account": {"name": "x"}}\'')
@pass_ctx
def formula(ctx: Context, expr: str, entity: str, record_json: str | None) -> None:
    """Check one formula and evaluate it on a record; print its value and type as JSON."""
    import json

    from engine.formula import FormulaError, SystemClock, compile_formula
    from engine.metadata.formula_checks import scope_of
    from engine.runtime.json_record import JsonRecord, RecordProblem
    from engine.runtime.values import to_json

    model = ctx.model()
    known_entity(model, entity)
    try:
        data = json.loads(record_json) if record_json else {}
    except json.JSONDecodeError as exc:
        fail(f"--record is not JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(data, dict):
        fail("--record is a JSON object of field values")
    try:
        compiled = compile_formula(expr, scope_of(model.entities, entity))
        record = JsonRecord(model, model.entity(entity), data,
                            SystemClock(model.settings.zone))
        value = compiled.evaluate(record)
    except FormulaError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except RecordProblem as exc:
        fail(f"--record: {exc}")
    shown = list(value) if isinstance(value, tuple) else to_json(value)
    click.echo(json.dumps({"value": shown, "type": compiled.type.value}, ensure_ascii=False))


@main.group()
def user() -> None:
    """Users and API tokens."""


@user.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="role name (repeatable)")
@click.option("--department", default=None, help="department id, code or name")
@click.option("--password", default=None, help="password (at least 8 characters)")
@pass_ctx
def user_add(ctx: Context, name: str, roles: tuple[str, ...], department: str | None,
             password: str | None) -> None:
    """Create a user."""
    from engine.runtime.users import Users

    model = ctx.model()
    engine = ctx.engine()
    try:
        apply_plan(engine, model)
        schema = build_schema(model)
        seed_org(_records(engine, model))
        dept_id = _department_id(engine, schema, department) if department else None
        created = Users(engine, schema).add(name, list(roles), password=password,
                                            department_id=dept_id)
    except (PlanError, RecordError) as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in getattr(exc, "fields", {}).items())
        fail(f"{exc}{' (' + detail + ')' if detail else ''}")
    finally:
        engine.dispose()
    click.echo(f"user {created.name} (id {created.id}) with roles {', '.join(created.roles)}")


def _department_id(engine: Any, schema: Any, value: str) -> int:
    from sqlalchemy import or_, select

    if "department" not in schema.metadata.tables:
        fail("there is no department entity in config")
    t = schema.table("department")
    cond = [t.c.name == value]
    if "code" in t.c:  # docs/access.md: `--department SH`
        cond.append(t.c.code == value)
    if value.isascii() and value.isdigit():
        cond.append(t.c.id == int(value))
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.id).where(or_(*cond), t.c.deleted_at.is_(None))).all()
    if len(rows) != 1:
        fail(f"no single department {value!r}")
    return int(rows[0][0])


@user.command("deactivate")
@click.argument("name")
@click.option("--transfer-to", "transfer_to", default=None,
              help="give everything NAME owns to this user first (one transaction)")
@pass_ctx
def user_deactivate(ctx: Context, name: str, transfer_to: str | None) -> None:
    """Deactivate a user (no sign-in, tokens revoked), optionally transferring their records."""
    from engine.runtime.access import SYSTEM
    from engine.runtime.users import Users

    model = ctx.model()
    engine = ctx.engine()
    try:
        records = _records(engine, model)
        users = Users(engine, records.schema)
        leaving = users.by_name(name)
        if transfer_to is None:
            users.set_active(name, False)
            users.revoke_tokens(name)
            moved: dict[str, int] = {}
        else:
            heir = users.by_name(transfer_to)
            moved = records.transfer_owned(SYSTEM, leaving.id, heir.id, deactivate=True)
    except RecordError as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in getattr(exc, "fields", {}).items())
        fail(f"{exc}{' (' + detail + ')' if detail else ''}")
    finally:
        engine.dispose()
    for entity, count in moved.items():
        click.echo(f"{entity}: {count} record(s) now owned by {transfer_to}")
    click.echo(f"user {name} is deactivated")


@user.command("reactivate")
@click.argument("name")
@pass_ctx
def user_reactivate(ctx: Context, name: str) -> None:
    """Let a deactivated user sign in again (new sessions and tokens; the old stay ended)."""
    from engine.runtime.users import Users

    model = ctx.model()
    engine = ctx.engine()
    try:
        Users(engine, build_schema(model)).set_active(name, True)
    except RecordError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    click.echo(f"user {name} is active")


@main.group()
def access() -> None:
    """Questions about access: who may see or change what, and why."""


@access.command("explain")
@click.argument("user_name", metavar="USER")
@click.argument("entity")
@click.argument("record_id", type=int)
@pass_ctx
def access_explain(ctx: Context, user_name: str, entity: str, record_id: int) -> None:
    """Why USER can or cannot see and change one record, action by action and field by field."""
    from engine.runtime.access import SYSTEM
    from engine.runtime.records.access_explain import explain_access
    from engine.runtime.users import Users

    model = ctx.model()
    known_entity(model, entity)
    engine = ctx.engine()
    try:
        records = _records(engine, model)
        subject = Users(engine, records.schema).by_name(user_name)
        out = explain_access(records, SYSTEM, subject.actor(), entity, record_id)
    except RecordError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    user_dept = out["user"]["department"] or "no department"
    click.echo(f"{user_name} (roles: {', '.join(subject.roles)}; {user_dept}) "
               f"and {entity} {record_id} (department: {out['record']['department'] or '-'}):")
    for action, verdict in out["actions"].items():
        mark = "yes" if verdict["allowed"] else "no "
        click.echo(f"  {mark} {action:<7} {verdict['reason']}")
    for name, verdict in out["fields"].items():
        if verdict["read"] == "hidden" or verdict["write"] == "readonly":
            click.echo(f"  field {name}: {verdict['write']} ({verdict['reason']})")


@main.command("export")
@click.argument("entity", required=False)
@click.option("--report", "report_name", default=None, help="export this report's rows instead")
@click.option("-o", "--output", "output", required=True,
              help="the file to write: .csv or .xlsx (the format is its extension)")
@click.option("--user", "user_name", default=None,
              help="export as this user: their export scope and fields (default: everyone's)")
@click.option("--language", default="en", show_default=True, help="headers' language (en, zh)")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="a report parameter's value (repeatable): period=this_year, "
                   "period_from=2026-01-01, department=mine, owner=any")
@pass_ctx
def export_command(ctx: Context, entity: str | None, report_name: str | None, output: str,
                   user_name: str | None, language: str, params: tuple[str, ...]) -> None:
    """Write ENTITY's records, or a report's rows (--report NAME, its parameters by
    --param NAME=VALUE), to a CSV or XLSX file."""
    from babel.numbers import get_currency_symbol

    from engine.runtime import export
    from engine.runtime.access import SYSTEM
    from engine.runtime.records.exported import export_list
    from engine.runtime.records.query import ListQuery
    from engine.runtime.reports import run_report
    from engine.runtime.reports.exported import report_export
    from engine.runtime.reports.params import resolve
    from engine.runtime.users import Users

    fmt = export.format_of(output)
    if fmt is None:
        fail(f"cannot tell the format of {output!r}: name a .csv or .xlsx file")
    if (entity is None) == (report_name is None):
        fail("name an entity or --report NAME (one of them)")
    model = ctx.model()
    report = model.report(report_name) if report_name is not None else None
    if report_name is not None and report is None:
        fail(f"no report {report_name!r}; reports: "
             f"{', '.join(r.name for r in model.reports) or '-'}")
    if entity is not None and not model.has_entity(entity):
        fail(f"no entity {entity!r}; entities: {', '.join(model.entity_names)}")
    given: dict[str, str] = {}
    for item in params:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            fail(f"--param {item!r}: write NAME=VALUE")
        given[key.strip()] = value.strip()
    if given and report is None:
        fail("--param sets a report's parameters: use it with --report NAME")
    if report is not None:
        known = {p.name for p in report.parameters}
        known |= {f"{n}_{end}" for n in known for end in ("from", "to")}
        for key in given:
            if key not in known:
                fail(f"--param {key}: report {report.name!r} has no such parameter; its "
                     f"parameters: {', '.join(sorted(known)) or '-'}")
    currency = model.settings.currency
    money = export.money_format(str(get_currency_symbol(currency, "zh_CN"
                                                        if currency == "CNY" else "en")))
    engine = ctx.engine()
    count = 0
    try:
        records = _records(engine, model)
        actor = SYSTEM if user_name is None else Users(engine, records.schema).by_name(
            user_name).actor()
        rows: Iterable[Mapping[str, Any]]
        if report is not None:
            values = resolve(records, actor, report, given)
            columns, rows = report_export(run_report(records, actor, report, "export",
                                                     values), language)
        else:
            assert entity is not None
            found = export_list(records, actor, entity, ListQuery(), locale=language)
            columns, rows = found.columns, found.rows

        def counted(items: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
            nonlocal count
            for item in items:
                count += 1
                yield item

        with open(output, "wb") as target:
            export.write(fmt, target, columns, counted(rows), money=money)
    except RecordError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {output!r}: {exc.strerror or exc}")
    finally:
        engine.dispose()
    click.echo(f"wrote {count} row(s) to {output}")


@user.command("token")
@click.argument("name")
@click.option("--label", default=None, help="what the token is for")
@pass_ctx
def user_token(ctx: Context, name: str, label: str | None) -> None:
    """Issue an API token; it is printed once, alone on the last line."""
    from engine.runtime.users import Users

    model = ctx.model()
    engine = ctx.engine()
    try:
        token = Users(engine, build_schema(model)).new_token(name, label)
    except RecordError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    click.echo(f"API token for {name} (store it now; it is not shown again):")
    click.echo(token)


def _refresh_rollups(records: Any) -> list[str]:
    """Compute the new or changed rollups for every record, with a progress bar on a
    terminal; returns what was computed over existing records ("account.won_amount:
    1,200 records"), nothing for a rollup of an empty table."""
    from rich.console import Console
    from rich.progress import Progress

    from engine.runtime.rollups.refresh import refresh_rollups, stale_rollups

    if not stale_rollups(records):
        return []
    console = Console(stderr=True)
    if not console.is_terminal:
        done = refresh_rollups(records)
    else:
        with Progress(console=console, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(name: str, finished: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(f"rollup {name}", total=total or 1)
                bar.update(tasks[name], completed=finished if total else 1)

            done = refresh_rollups(records, progress)
    return [f"{name}: {rows:,} records" for name, rows in done if rows]


def _number_existing(records: Any) -> list[str]:
    """Number the existing records of autonumber fields that have no number yet (a field
    new to an entity that has records), in id order; returns what was numbered
    ("quote.number: 1,200 records")."""
    from engine.runtime.records.autonumber import number_existing

    return [f"{name}: {rows:,} records" for name, rows in number_existing(records)]


def _match_keys(records: Any) -> list[str]:
    """Compute the duplicate rules' match keys of every record of the entities whose rules
    changed (engine/runtime/imports/duplicates.py); returns what was computed over existing
    records ("account: 2,400 keys")."""
    from engine.runtime.imports.duplicates import refresh_match_keys

    return [f"{name}: {keys:,} keys" for name, keys in refresh_match_keys(records) if keys]


@main.group()
def rollup() -> None:
    """Rollup summary fields: check them against a recomputation, repair drift."""


@rollup.command("check")
@click.argument("entity", required=False)
@click.option("--fix", is_flag=True, help="write the recomputed values where they differ")
@pass_ctx
def rollup_check(ctx: Context, entity: str | None, fix: bool) -> None:
    """Recompute every rollup (of ENTITY, or all) from scratch and report any drift;
    exit 1 when a stored value differs (and --fix was not given)."""
    from engine.runtime.rollups.refresh import check_rollups

    model = ctx.model()
    if entity is not None and not model.has_entity(entity):
        fail(f"no entity {entity!r}; entities: {', '.join(model.entity_names)}")
    if entity is not None and not any(f.rollup for f in model.entity(entity).fields):
        fail(f"{entity} has no rollup fields")
    engine = ctx.engine()
    try:
        drifts = check_rollups(_records(engine, model), entity, fix=fix)
    finally:
        engine.dispose()
    for d in drifts[:50]:
        click.echo(f"{d.entity} {d.record_id} {d.field}: stored {d.stored}, "
                   f"computed {d.computed}")
    if len(drifts) > 50:
        click.echo(f"... and {len(drifts) - 50} more")
    if not drifts:
        click.echo("rollups: no drift")
    elif fix:
        click.echo(f"rollups: repaired {len(drifts)} value(s)")
    else:
        fail(f"rollups: {len(drifts)} value(s) differ from a recomputation; "
             "`crm rollup check --fix` repairs them")


@main.group()
def flow() -> None:
    """Flows (config/flows): test one against a change without writing anything."""


@flow.command("test")
@click.argument("flow_name", metavar="FLOW")
@click.option("--entity", required=True, help="the entity the flow is about")
@click.option("--id", "record_id", type=int, default=None, help="an existing record to change")
@click.option("--record", "record_json", default=None,
              help="a new record as JSON, e.g. '{\"name\": \"Deal\", \"account\": 1}'")
@click.option("--set", "set_json", default=None,
              help="the change as JSON, e.g. '{\"stage\": \"won\"}'")
@pass_ctx
def flow_test(ctx: Context, flow_name: str, entity: str, record_id: int | None,
              record_json: str | None, set_json: str | None) -> None:
    """Dry run: which rules would fire or be skipped and why, and what would change; then
    roll back, writing nothing. Exit 1 when the change would be refused."""
    import json

    from engine.runtime.flows.dryrun import flow_test as dry_run

    def parsed(text: str | None, option: str) -> dict[str, Any] | None:
        if text is None:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(f"{option} is not JSON: {exc.msg} at column {exc.colno}")
        if not isinstance(value, dict):
            fail(f"{option} is a JSON object of field values")
        return value

    record = parsed(record_json, "--record")
    changes = parsed(set_json, "--set")
    model = ctx.model()
    engine = ctx.engine()
    try:
        report = dry_run(_records(engine, model), flow_name, entity, record_id=record_id,
                         record=record, changes=changes)
    except RecordError as exc:
        fail(str(exc.message))
    finally:
        engine.dispose()
    for line in report.lines():
        click.echo(line)
    if report.refused is not None:
        sys.exit(1)


@main.command()
@click.option("--once", is_flag=True, help="run one pass and exit")
@click.option("--id", "worker_id", default=None,
              help="the worker's name in the rows it claims (default: host:pid)")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="seconds between passes that found less than a batch")
@pass_ctx
def worker(ctx: Context, once: bool, worker_id: str | None, interval: float) -> None:
    """Run due flow timers, then deliver the outbox (webhooks, email); until stopped."""
    import signal
    import threading

    from engine.runtime.flows.worker import Pass, Worker

    model = ctx.model()
    engine = ctx.engine()
    try:
        flows = Worker(_records(engine, model), worker_id=worker_id)
        if once:
            click.echo(flows.run_once().describe())
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

        def report(done: Pass) -> None:
            if done.timers.claimed or done.deliveries.claimed:
                click.echo(done.describe())

        click.echo(f"worker {flows.worker_id}: every {interval:g} s; SIGTERM or Ctrl-C stops")
        flows.run(stop, interval, on_pass=report)
        click.echo(f"worker {flows.worker_id}: stopped")
    finally:
        engine.dispose()


@main.command()
@pass_ctx
def snapshot(ctx: Context) -> None:
    """Take a pipeline snapshot now: every open opportunity's stage, amounts, forecast
    category, close date, owner and department (docs/forecast.md)."""
    from engine.runtime.reports.snapshots import take

    model = ctx.model()
    engine = ctx.engine()
    try:
        taken = take(_records(engine, model))
    except RecordError as exc:
        fail(str(exc.message))
    finally:
        engine.dispose()
    click.echo(f"snapshot {taken.id}: {taken.deals} open deals at {taken.taken_at.isoformat()}")


@main.group()
def webhook() -> None:
    """The webhooks' delivery log (the outbox): list, replay."""


@webhook.command("list")
@click.option("--state", type=click.Choice(["pending", "sent", "exhausted"]), default=None,
              help="only messages in this state")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@pass_ctx
def webhook_list(ctx: Context, state: str | None, limit: int) -> None:
    """The latest webhooks, newest first: id, state, attempts, key, target, last error."""
    from engine.runtime.flows.outbox import WEBHOOK, messages

    engine = ctx.engine()
    try:
        with engine.connect() as conn:
            rows = messages(conn, kind=WEBHOOK, state=state, limit=limit)
    finally:
        engine.dispose()
    for m in rows:
        when = m["sent_at"] or m["next_attempt_at"]
        line = (f"{m['id']}\t{m['state']}\t{m['attempts']}\t{m['key']}\t"
                f"{m['payload'].get('url', '')}\t{when.isoformat() if when else ''}")
        if m["last_error"]:
            line += f"\t{m['last_error']}"
        click.echo(line)
    if not rows:
        click.echo("no webhooks")


@webhook.command("replay")
@click.argument("message_id", metavar="ID", type=int)
@pass_ctx
def webhook_replay(ctx: Context, message_id: int) -> None:
    """Send a sent or exhausted webhook again (back to pending, due now)."""
    from engine.runtime.flows.outbox import WEBHOOK, outbox_table, replay_message

    engine = ctx.engine()
    try:
        t = outbox_table()
        with engine.connect() as conn:
            kind = conn.execute(t.select().with_only_columns(t.c.kind)
                                .where(t.c.id == message_id)).scalar()
        if kind != WEBHOOK:
            fail(f"no webhook {message_id}")
        if not replay_message(engine, message_id):
            fail(f"webhook {message_id} is pending already")
    finally:
        engine.dispose()
    click.echo(f"webhook {message_id}: pending; `crm worker` sends it")


@main.group()
def report() -> None:
    """Reports saved from the report builder (docs/reports.md, "Report builder")."""


@report.command("export")
@click.argument("report_id", type=int)
@click.option("-o", "--output", "output", required=True,
              help="the report file to write: config/reports/<name>.yaml")
@click.option("--force", is_flag=True, help="replace the file if it exists")
@pass_ctx
def report_export(ctx: Context, report_id: int, output: str, force: bool) -> None:
    """Write saved report REPORT_ID (the N of /reports/saved-N) as a report file: its
    name is the file's name, and the file is checked as `crm check` checks it."""
    path = Path(output)
    if path.suffix != ".yaml":
        fail(f"{output}: a report file's name ends in .yaml")
    if not _REPORT_NAME.match(path.stem):
        fail(f"{path.stem!r}: a report's name is lower case letters, digits and _, "
             "starting with a letter")
    if path.exists() and not force:
        fail(f"{output} exists; --force replaces it")
    model = ctx.model()
    engine = ctx.engine()
    try:
        saved = SavedReports(_records(engine, model)).definition(report_id)
    finally:
        engine.dispose()
    if saved is None:
        fail(f"no saved report {report_id}")
    text = renamed(saved.definition, path.stem)
    checked = report_from_text(text, output, model.entities) if text is not None else []
    if text is None or not isinstance(checked, Report):
        for err in checked if isinstance(checked, list) else []:
            click.echo(str(err), err=True)
        fail(f"saved report {report_id} does not pass the configuration's checks")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    click.echo(f"wrote {output} (report {path.stem}, from saved report {report_id})")


_REPORT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")



@main.command("import")
@click.argument("entity")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--mapping", "mapping_file", default=None, type=click.Path(dir_okay=False),
              help="a mapping file (docs/import.md: entity, columns, key); columns it does "
                   "not name are matched by field name or label (en, zh)")
@click.option("--key", default=None,
              help="upsert by this unique field or external id: existing records updated")
@click.option("--dry-run", is_flag=True, help="check everything, write nothing")
@click.option("--errors", "errors_file", default=None, type=click.Path(dir_okay=False),
              help="where bad rows go (default: FILE's name + .errors, same format)")
@click.option("--on-duplicate", type=click.Choice(["skip", "update", "create"]),
              default="skip", show_default=True,
              help="a row that matches the entity's duplicate rules: skip it, update the "
                   "match, or create it anyway")
@click.option("--as", "user_name", default=None,
              help="import as this user: their access, they own the records "
                   "(default: the engine)")
@click.option("--language", type=click.Choice(["en", "zh", "zh-CN"]), default="en",
              show_default=True,
              help="the language of the error file's problems (a resumed import keeps "
                   "the one it started with)")
@pass_ctx
def import_command(ctx: Context, entity: str, file: str, mapping_file: str | None,
                   key: str | None, dry_run: bool, errors_file: str | None,
                   on_duplicate: str, user_name: str | None, language: str) -> None:
    """Import FILE (CSV or XLSX) into ENTITY's records; bad rows go to an error file.
    Resumable: run the same command again after an interruption and it goes on where it
    stopped."""
    from engine.runtime.access import SYSTEM
    from engine.runtime.imports.jobs import ImportOptions, open_job
    from engine.runtime.imports.mapping import load_mapping
    from engine.runtime.users import Users

    path = Path(file)
    if not path.is_file():
        fail(f"{file}: no such file")
    model = ctx.model()
    known_entity(model, entity)
    engine = ctx.engine()
    try:
        records = _records(engine, model)
        actor = SYSTEM if user_name is None else Users(engine, records.schema).by_name(
            user_name).actor()
        mapping = None
        if mapping_file is not None:
            try:
                mapping = load_mapping(Path(mapping_file), model)
            except ConfigErrors as exc:
                for err in exc.errors:
                    click.echo(str(err), err=True)
                fail(f"{mapping_file}: {len(exc.errors)} problem(s); nothing was imported")
            except OSError as exc:
                fail(f"{mapping_file}: {exc.strerror or exc}")
            if mapping.entity and mapping.entity != entity:
                fail(f"{mapping_file}: the mapping is for {mapping.entity}, not {entity}")
            key = key or mapping.key
        options = ImportOptions(entity=entity, mapping=mapping, key=key,
                                on_duplicate=on_duplicate,  # type: ignore[arg-type]
                                dry_run=dry_run,
                                language="zh-CN" if language == "zh" else language)
        job = open_job(records, actor, path, options, file_name=path.name,
                       errors=Path(errors_file) if errors_file else None)
        if job.rows_done:
            click.echo(f"resuming import job {job.id} at row {job.rows_done + 1:,}",
                       err=True)
        job = _run_import(records, actor, job.id)
    except RecordError as exc:
        for name, problem in (getattr(exc, "fields", None) or {}).items():
            click.echo(f"{file}: {name}: {problem}", err=True)
        fail(str(exc))
    finally:
        engine.dispose()
    if job.status != "done":
        fail(f"import job {job.id} {job.status} after {job.rows_done:,} row(s): "
             f"{job.message or ''} (run the same command again to resume)")
    what = "would be " if job.dry_run else ""
    click.echo(f"{'dry run: ' if job.dry_run else ''}{job.rows_done:,} row(s): "
               f"{job.created:,} {what}created, {job.updated:,} {what}updated, "
               f"{job.skipped:,} skipped, {job.failed:,} failed")
    if job.error_file is not None:
        click.echo(f"{job.failed + job.skipped:,} row(s) not imported, with their problems, "
                   f"in {job.error_file}: fix them there and import that file")


def _run_import(records: Any, actor: Any, job_id: int) -> Any:
    """Run the job with a progress bar (rows, rows/s, ETA) on a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from engine.runtime.imports.jobs import Job, run_job

    console = Console(stderr=True)
    if not console.is_terminal:
        return run_job(records, actor, job_id)
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TextColumn("{task.fields[rate]} rows/s"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("import", total=None, rate="-")
        first: list[int] = []

        def progress(job: Job) -> None:
            if not first:  # a resumed job: its speed and ETA count from here
                first.append(job.rows_done)
                bar.reset(task, total=job.total_rows, completed=job.rows_done, rate="-")
                return
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = (job.rows_done - first[0]) / elapsed if elapsed > 0 else 0.0
            bar.update(task, total=job.total_rows, completed=job.rows_done,
                       rate=f"{rate:,.0f}")

        return run_job(records, actor, job_id, progress=progress)


if __name__ == "__main__":  # `python -m engine.cli` as `crm`
    main()
