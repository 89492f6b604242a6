"""config/settings.yaml (engine/metadata/settings.py): the install's currency, checked when
the configuration loads, with `file:line:col` errors like every other config file."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
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
    assert replace(model.settings, holidays=(), pipeline_snapshots=None) \
        == SiteSettings(currency="CNY")
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


def test_the_change_log_keeps_everything_unless_told_how_many_days(config: Path) -> None:
    assert load_model(config).settings.changes_keep_days is None
    (config / "settings.yaml").write_text("changes: {keep_days: 90}\n", encoding="utf-8")
    assert load_model(config).settings.changes_keep_days == 90


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "'90'", "40000"])
def test_a_bad_keep_days_is_refused_with_its_place(config: Path, value: str) -> None:
    (config / "settings.yaml").write_text(f"changes:\n  keep_days: {value}\n",
                                          encoding="utf-8")
    found = errors(config)
    assert len(found) == 1 and found[0].startswith("config/settings.yaml:2:14: "), found
    assert "changes.keep_days" in found[0]


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


def test_the_shipped_holiday_calendar_has_the_lunar_festivals() -> None:
    settings = load_model(CONFIG).settings
    assert [h.name for h in settings.holidays] == ["spring_festival", "mid_autumn", "new_year"]
    spring, autumn, new_year = settings.holidays
    assert spring.label.get("zh") == "春节" and autumn.label.get("zh") == "中秋节"
    assert spring.dates == (date(2026, 2, 17), date(2027, 2, 6), date(2028, 1, 26),
                            date(2029, 2, 13), date(2030, 2, 3))
    assert autumn.dates == (date(2026, 9, 25), date(2027, 9, 15), date(2028, 10, 3),
                            date(2029, 9, 22), date(2030, 9, 12))
    assert new_year.dates == tuple(date(y, 1, 1) for y in range(2026, 2031))


def test_holiday_dates_are_kept_in_order(config: Path) -> None:
    (config / "settings.yaml").write_text(
        "holidays:\n  lantern:\n    dates: [2027-02-20, 2026-03-03]\n", encoding="utf-8")
    [lantern] = load_model(config).settings.holidays
    assert lantern.dates == (date(2026, 3, 3), date(2027, 2, 20))
    assert lantern.label.get("zh") == "Lantern"  # no label: its name


@pytest.mark.parametrize(("text", "expected"), [
    ("holidays:\n  sf:\n    dates: [2026-02-17, 2026-02-30]\n",
     "config/settings.yaml:3:25: holidays.sf.dates.1: '2026-02-30' is not a date (YYYY-MM-DD)"),
    ("holidays:\n  sf:\n    dates: ['17.02.2026']\n",
     "config/settings.yaml:3:13: holidays.sf.dates.0: '17.02.2026' is not a date "
     "(YYYY-MM-DD)"),
    ("holidays:\n  sf:\n    dates:\n      - 2026-02-17\n      - 2026-12-31\n",
     "config/settings.yaml:5:9: holidays.sf.dates.1: 2026 already has a date (2026-02-17); "
     "a holiday has one date a year"),
    ("holidays:\n  sf:\n    label: {en: SF}\n",
     "config/settings.yaml:3:5: holidays.sf: missing key 'dates'"),
])
def test_a_bad_holiday_is_refused_with_its_place(config: Path, text: str,
                                                 expected: str) -> None:
    (config / "settings.yaml").write_text(text, encoding="utf-8")
    assert errors(config) == [expected]
