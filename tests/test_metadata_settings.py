"""config/settings.yaml (engine/metadata/settings.py): the install's currency, checked when
the configuration loads, with `file:line:col` errors like every other config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.metadata import ConfigErrors, load_model
from engine.metadata.settings import SiteSettings
from tests.conftest import CONFIG

ACCOUNT = "entity: account\nfields:\n  name: {type: text}\n"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config/ in the current directory with one entity, so messages read `config/…`."""
    monkeypatch.chdir(tmp_path)
    root = Path("config")
    (root / "entities").mkdir(parents=True)
    (root / "entities" / "account.yaml").write_text(ACCOUNT, encoding="utf-8")
    return root


def errors(root: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load_model(root)
    return [str(e) for e in caught.value.errors]


def test_the_shipped_config_sets_cny() -> None:
    model = load_model(CONFIG)
    assert model.settings == SiteSettings(currency="CNY")
    assert "config/settings.yaml" in [s.replace(str(CONFIG.parent) + "/", "")
                                      for s in model.sources]


def test_without_a_settings_file_the_currency_is_cny(config: Path) -> None:
    assert load_model(config).settings.currency == "CNY"


def test_a_known_currency_is_taken_and_changes_the_config_hash(config: Path) -> None:
    before = load_model(config).config_hash
    (config / "settings.yaml").write_text("currency: USD\n", encoding="utf-8")
    model = load_model(config)
    assert model.settings.currency == "USD"
    assert model.config_hash != before
    assert "config/settings.yaml" in model.sources


@pytest.mark.parametrize(("text", "expected"), [
    ("currency: XYZ\n", "config/settings.yaml:1:11: currency: unknown currency code 'XYZ'; "
                        "an ISO 4217 code such as CNY, USD or EUR"),
    ("# money\ncurrency: cny\n", "config/settings.yaml:2:11: currency: unknown currency code "
                                 "'cny'; an ISO 4217 code such as CNY, USD or EUR "
                                 "(did you mean 'CNY'?)"),
    ("currency: CYN\n", "config/settings.yaml:1:11: currency: unknown currency code 'CYN'; "
                        "an ISO 4217 code such as CNY, USD or EUR (did you mean 'CNY'?)"),
    ("currency: 156\n", "config/settings.yaml:1:11: currency: must be text, not the number 156"),
    ("currancy: CNY\n", "config/settings.yaml:1:1: unknown key 'currancy' "
                        "(did you mean 'currency'?)"),
    ("- CNY\n", "config/settings.yaml:1:1: settings.yaml is a mapping "
                "(see docs/configuration.md)"),
])
def test_a_bad_setting_is_refused_with_its_place(config: Path, text: str,
                                                  expected: str) -> None:
    (config / "settings.yaml").write_text(text, encoding="utf-8")
    assert errors(config) == [expected]


def test_settings_errors_come_with_the_entities_errors(config: Path) -> None:
    (config / "settings.yaml").write_text("currency: XYZ\n", encoding="utf-8")
    (config / "entities" / "lead.yaml").write_text("entity: lead\nfields:\n  n: {type: txt}\n",
                                                   encoding="utf-8")
    found = errors(config)
    assert len(found) == 2
    assert found[0].startswith("config/entities/lead.yaml:3:")
    assert found[1].startswith("config/settings.yaml:1:11: currency: unknown currency code")


def test_a_time_zone_is_taken_and_utc_is_the_default(config: Path) -> None:
    assert load_model(config).settings.time_zone == "UTC"
    (config / "settings.yaml").write_text("time_zone: Asia/Shanghai\n", encoding="utf-8")
    settings = load_model(config).settings
    assert settings.time_zone == "Asia/Shanghai" and settings.zone.key == "Asia/Shanghai"


def test_an_unknown_time_zone_is_refused_with_a_hint(config: Path) -> None:
    (config / "settings.yaml").write_text("currency: CNY\ntime_zone: Asia/Shangai\n",
                                          encoding="utf-8")
    assert errors(config) == [
        "config/settings.yaml:2:12: time_zone: unknown time zone 'Asia/Shangai'; an IANA name "
        "such as Asia/Shanghai or UTC (did you mean 'Asia/Shanghai'?)"]
