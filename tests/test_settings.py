"""Web settings from the environment (engine/settings.py): the signing key and limits."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.settings import SettingsError, WebSettings


def test_defaults_with_a_key_generated_once_into_the_key_file(tmp_path: Path) -> None:
    env = {"CRM_SECRET_KEY_FILE": str(tmp_path / "data" / "secret_key")}
    first = WebSettings.from_env(env)
    assert len(first.secret_key) >= 32
    assert WebSettings.from_env(env).secret_key == first.secret_key  # persisted
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list((tmp_path / "data").iterdir()) == [key_file]  # no stray temporary file
    assert (first.cookie_secure, first.session_idle_minutes, first.session_days,
            first.login_max_failures, first.login_window_minutes) == (False, 720, 7, 5, 15)


def test_values_from_the_environment(tmp_path: Path) -> None:
    s = WebSettings.from_env({"CRM_SECRET_KEY": "k" * 40, "CRM_COOKIE_SECURE": "true",
                              "CRM_SESSION_IDLE_MINUTES": "30", "CRM_SESSION_DAYS": "1",
                              "CRM_LOGIN_MAX_FAILURES": "3", "CRM_LOGIN_WINDOW_MINUTES": "60",
                              "CRM_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/24"})
    assert s.secret_key == b"k" * 40
    assert (s.cookie_secure, s.session_idle_minutes, s.session_days, s.login_max_failures,
            s.login_window_minutes) == (True, 30, 1, 3, 60)
    assert s.trusted_proxies == ("10.0.0.5", "192.168.0.0/24")


@pytest.mark.parametrize(("env", "message"), [
    ({"CRM_SECRET_KEY": "short"}, "CRM_SECRET_KEY must be at least 32 characters"),
    ({"CRM_COOKIE_SECURE": "maybe"}, "CRM_COOKIE_SECURE must be true or false"),
    ({"CRM_SESSION_DAYS": "0"}, "CRM_SESSION_DAYS must be a whole number"),
    ({"CRM_LOGIN_MAX_FAILURES": "five"}, "CRM_LOGIN_MAX_FAILURES must be a whole number"),
    ({"CRM_TRUSTED_PROXIES": "10.0.0.5,proxy.local"},
     "CRM_TRUSTED_PROXIES: 'proxy.local' is not an IP address"),
])
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        WebSettings.from_env({"CRM_SECRET_KEY": "k" * 40, **env})


def test_a_short_key_file_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "secret_key"
    key.write_text("too-short\n")
    with pytest.raises(SettingsError, match="at least 32 characters"):
        WebSettings.from_env({"CRM_SECRET_KEY_FILE": str(key)})


def test_crm_serve_refuses_a_bad_proxy_setting_before_starting(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from engine.cli import main

    result = CliRunner(env={"CRM_TRUSTED_PROXIES": "10.0.0.0/8,not-an-address"}).invoke(
        main, ["--db", f"sqlite:///{tmp_path / 'crm.db'}", "serve"])
    assert result.exit_code == 1
    assert "CRM_TRUSTED_PROXIES: 'not-an-address' is not an IP address" in result.stderr
    assert not (tmp_path / "crm.db").exists()  # refused before touching anything
