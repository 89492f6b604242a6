"""The product hashes passwords with strong argon2 on every path (Users, the app, the CLI);
only the tests pass a cheap hasher, through Users' and create_app's parameter."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import select
from starlette.testclient import TestClient

from engine.cli import main
from engine.runtime.users import PASSWORD_HASHER, Users
from engine.web.app import create_app
from tests.conftest import CONFIG, REPO, Env
from tests.db_templates import ADMIN_PASSWORD
from tests.web_helpers import csrf_of, sign_in

STRONG = "m=65536,t=3,p=4"
CHEAP = "m=8,t=1,p=1"


def parameters(env: Env, name: str) -> str:
    """The argon2 parameters recorded in user `name`'s stored hash."""
    t = env.users.users
    with env.engine.connect() as conn:
        stored = conn.execute(select(t.c.password_hash).where(t.c.name == name)).scalar_one()
    found = re.fullmatch(r"\$argon2id\$v=19\$(m=\d+,t=\d+,p=\d+)\$[^$]+\$[^$]+", stored)
    assert found, stored
    return found.group(1)


def test_the_product_hasher_is_argon2id_at_rfc_9106_low_memory() -> None:
    assert (PASSWORD_HASHER.time_cost, PASSWORD_HASHER.memory_cost,
            PASSWORD_HASHER.parallelism) == (3, 65536, 4)
    assert PASSWORD_HASHER.hash("x").startswith(f"$argon2id$v=19${STRONG}$")


def test_users_hash_strongly_unless_given_a_hasher(env: Env) -> None:
    strong = Users(env.engine, env.records.schema)
    strong.add("bob", ["sales_rep"], password="correct horse")
    assert parameters(env, "bob") == STRONG
    assert strong.check_password("bob", "correct horse") is not None
    strong.set_password(strong.by_name("bob").id, "battery staple")
    assert parameters(env, "bob") == STRONG
    # the suite's own users (conftest.py) are hashed cheaply; a hash checks either way
    assert parameters(env, "admin") == CHEAP
    assert strong.check_password("admin", ADMIN_PASSWORD) is not None
    assert strong.check_password("admin", "not it at all") is None


def test_the_app_hashes_strongly_unless_given_a_hasher(env: Env) -> None:
    for app, expected in ((create_app(env.model, env.engine), STRONG),
                          (create_app(env.model, env.engine,
                                      password_hasher=PasswordHasher(time_cost=1,
                                                                     memory_cost=8,
                                                                     parallelism=1)), CHEAP)):
        client = TestClient(app, raise_server_exceptions=False)
        assert sign_in(client).status_code == 303
        page = client.get("/account/password")
        changed = client.post("/account/password", data={
            "current_password": ADMIN_PASSWORD, "new_password": ADMIN_PASSWORD,
            "confirm_password": ADMIN_PASSWORD, "csrf_token": csrf_of(page.text)},
            follow_redirects=False)
        assert changed.status_code == 303, changed.text
        assert parameters(env, "admin") == expected


def test_the_cli_hashes_strongly(env: Env, db_url: str) -> None:
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "--db", db_url, "user", "add",
                                       "carol", "--role", "sales_rep",
                                       "--password", "correct horse"])
    assert result.exit_code == 0, result.output
    assert parameters(env, "carol") == STRONG


def test_nothing_in_the_product_makes_another_hasher() -> None:
    """No setting or environment variable can choose the hasher: the engine makes one,
    with argon2-cffi's defaults, and passes it on."""
    made = [(path.relative_to(REPO).as_posix(), line.strip())
            for path in sorted((REPO / "engine").rglob("*.py"))
            for line in path.read_text(encoding="utf-8").splitlines()
            if "PasswordHasher(" in line]
    assert made == [("engine/runtime/users.py", "PASSWORD_HASHER = PasswordHasher()")]
