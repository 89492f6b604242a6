"""Template databases for the test suite: migrate once per session, copy for each test.

A template is keyed by the content of a config folder (each file's path in the folder and
its bytes), so the shipped config/ and every copy of it edited the same way share one. It
holds the migrated schema and user admin, made exactly as make_env makes them (apply_plan,
then Users.add); a copy gets the copying test's config hash in its migrations row.

SQLite: the template is a migrated file; a test's database is a byte copy of it.
PostgreSQL: the template is a database of migrated schemas; a test is given one schema of a
database created from it (PgTemplates says why and how).
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import Engine, update
from sqlalchemy.engine import URL

from engine.metadata import Model
from engine.runtime.db import drop_database, open_engine
from engine.runtime.schema import apply_plan, build_schema
from engine.runtime.schema.tables import MIGRATION_TABLE
from engine.runtime.users import User, Users

ADMIN_PASSWORD = "admin-password"
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
"""Argon2id at its cheapest, for the tests' users only: the product's hasher is fixed in
engine/runtime/users.py. A hash records its parameters, so checking one is as cheap."""


def config_key(config: Path) -> str:
    """What a template depends on: every file of the config folder, path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in config.rglob("*") if p.is_file()):
        digest.update(path.relative_to(config).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def seed(engine: Engine, model: Model) -> User:
    """Migrate the database to `model` and make sure user admin is there."""
    apply_plan(engine, model)
    users = Users(engine, build_schema(model), hasher=TEST_HASHER)
    return users.by_name_or_none("admin") or users.add("admin", ["admin"],
                                                       password=ADMIN_PASSWORD)


class Templates:
    """The config hash each template was migrated with, by config key."""

    def __init__(self) -> None:
        self.hashes: dict[str, str] = {}

    def stamp(self, engine: Engine, model: Model, key: str) -> None:
        """Record `model`'s config hash in the one migrations row of a copy of the template
        of `key`, as migrating with `model` would have: the hash covers the config files'
        paths too, and the template may have come from another copy of the same files."""
        if self.hashes[key] == model.config_hash:
            return
        table = build_schema(model).table(MIGRATION_TABLE)
        with engine.begin() as conn:
            conn.execute(update(table).values(config_hash=model.config_hash))


class SqliteTemplates(Templates):
    """Migrated SQLite files in `folder`, one per config key."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def copy(self, target: Path, model: Model, key: str) -> None:
        """Make `target` (a file not there yet) a copy of the template of `key`, building
        that from `model` first if there is none yet."""
        template = self.folder / f"{key}.db"
        if key not in self.hashes:
            self._build(template, model)
            self.hashes[key] = model.config_hash
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)

    @staticmethod
    def _build(template: Path, model: Model) -> None:
        template.unlink(missing_ok=True)
        engine = open_engine(f"sqlite:///{template}")
        try:
            seed(engine, model)
            with engine.connect() as conn:  # everything into the main file, the WAL emptied
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except BaseException:
            engine.dispose()
            template.unlink(missing_ok=True)
            raise
        engine.dispose()
        for extra in ("-wal", "-shm"):
            Path(f"{template}{extra}").unlink(missing_ok=True)


@dataclass
class Clone:
    """A database made from a template: its migrated schemas not handed out yet, and how
    many of those handed out are still in use."""

    name: str
    unused: list[str]
    in_use: int = 0


class PgTemplates(Templates):
    """Migrated PostgreSQL schemas for tests, on the server of `server_url`; `admin` is an
    AUTOCOMMIT engine on that server's test database.

    A template is a database holding SCHEMAS migrated schemas (s0, s1, ...), each made by
    migrating it on its own. A test is given one schema of a database created from the
    template (CREATE DATABASE ... TEMPLATE), as its search_path; when every schema of such a
    database has been handed out and given back, a thread drops it. So the tests keep a
    schema each, as before, and the server pays for one database copy and one drop (which
    forces a checkpoint in PostgreSQL 15: 0.1 to over 1 s on a busy machine) per SCHEMAS
    tests instead of one migration (0.2-0.4 s) per test.
    """

    SCHEMAS = 16
    MIGRATE_FIRST = 64
    """A session's first tests of a config migrate a new schema each, as before. A template
    costs SCHEMAS migrations, and each database dropped a checkpoint of the whole server
    (seconds when several test runs share it): a targeted run of a few dozen tests would
    lose more than it saves, and slow the other runs on the server down."""
    DROP_BACKLOG = 8
    """Databases waiting to be dropped, at most; release() waits beyond that."""

    def __init__(self, admin: Engine, server_url: URL) -> None:
        super().__init__()
        self.admin = admin
        self.server_url = server_url
        self.session = uuid.uuid4().hex[:10]
        self.templates: dict[str, str] = {}
        self._clones: dict[str, Clone] = {}
        """The database each key's schemas are handed out from now."""
        self._asked: dict[str, int] = {}
        self.migrate_first = self.MIGRATE_FIRST
        """MIGRATE_FIRST, or 0 for a run large enough to copy from the first test."""
        self._drops: queue.Queue[str | None] = queue.Queue(self.DROP_BACKLOG)
        self._dropper: threading.Thread | None = None
        self._drop_errors: list[str] = []

    def url(self, database: str, schema: str | None = None) -> str:
        url = self.server_url.set(database=database)
        if schema is not None:
            url = url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def worth_copying(self, key: str) -> bool:
        """Whether the next test of `key` should lease a schema (True) or migrate a new one
        (the session's first MIGRATE_FIRST tests of `key`)."""
        self._asked[key] = self._asked.get(key, 0) + 1
        return key in self.templates or self._asked[key] > self.migrate_first

    def lease(self, model: Model, key: str) -> tuple[Clone, str]:
        """A migrated schema no test has had, in a copy of the template of `key` (built from
        `model` first if there is none yet); give it back with release()."""
        clone = self._clones.get(key)
        if clone is None or not clone.unused:
            template = self.templates.get(key)
            if template is None:
                template = self._build(model, key)
                self.hashes[key] = model.config_hash
            name = f"t_{uuid.uuid4().hex[:16]}"
            self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            clone = self._clones[key] = Clone(name, [f"s{i}" for i in range(self.SCHEMAS)])
        clone.in_use += 1
        return clone, clone.unused.pop(0)

    def release(self, clone: Clone) -> None:
        """A test is done with its schema; drop the database once all its tests are."""
        clone.in_use -= 1
        if clone.unused or clone.in_use:
            return
        if self._dropper is None:
            self._dropper = threading.Thread(target=self._drop_queued, name="drop-databases",
                                             daemon=True)
            self._dropper.start()
        self._drops.put(clone.name)

    def drop(self, name: str) -> None:
        """Drop a database, ending connections a test left open (they are no use now)."""
        with self.admin.connect() as conn:
            drop_database(conn, name)

    def close(self) -> None:
        """Drop every database made: queued ones, partly used ones, then the templates;
        raise if a drop failed."""
        if self._dropper is not None:
            self._drops.put(None)
            self._dropper.join()
            self._dropper = None
        for clone in self._clones.values():
            if clone.unused:  # not queued: some schemas were never handed out
                self.drop(clone.name)
        for template in self.templates.values():
            self.drop(template)
        self._clones.clear()
        self.templates.clear()
        self.hashes.clear()
        if self._drop_errors:
            raise RuntimeError("test databases not dropped:\n" + "\n".join(self._drop_errors))

    def _drop_queued(self) -> None:
        while (name := self._drops.get()) is not None:
            try:
                self.drop(name)
            except Exception as exc:  # reported by close(), at the end of the session
                self._drop_errors.append(f"{name}: {exc}")

    def _build(self, model: Model, key: str) -> str:
        name = f"crm_template_{self.session}_{len(self.templates)}"
        self._execute(f'CREATE DATABASE "{name}"')
        try:
            engine = open_engine(self.url(name))
            with engine.begin() as conn:
                for i in range(self.SCHEMAS):
                    conn.exec_driver_sql(f'CREATE SCHEMA "s{i}"')
            engine.dispose()
            for i in range(self.SCHEMAS):
                engine = open_engine(self.url(name, f"s{i}"))
                try:
                    seed(engine, model)
                finally:
                    engine.dispose()
        except BaseException:
            self.drop(name)
            raise
        self.templates[key] = name
        return name

    def _execute(self, statement: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(statement)
