from tests.conftest import Env


def test_create_and_read_back(env: Env) -> None:
    actor = env.admin.actor()
    account = env.records.create(actor, "account", {"name": "Acme"})
    assert env.records.get(actor, "account", account["id"])["name"] == "Acme"
