"""config/settings.yaml: install-wide settings that are neither entities nor access.

```yaml
currency: CNY
query_time_limit: 10      # seconds each query of a request may run
requests_per_user: 8      # requests one user may have running at once
time_zone: Asia/Shanghai  # the organisation's: pages, inputs, TODAY(), numbering; IANA
fiscal_year_start: 4      # the month the fiscal year starts in (reports' quarters, years)
holidays:                 # flows' schedules run on their dates (engine/metadata/holidays.py)
  spring_festival: {label: {en: Spring Festival, zh: 春节}, dates: [2026-02-17, 2027-02-06]}
```

>>> SiteSettings().currency, SiteSettings().query_time_limit, SiteSettings().time_zone
('CNY', 10.0, 'UTC')
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from babel.core import get_global
from babel.numbers import get_territory_currencies, list_currencies

from engine.metadata.delivery import SmtpSettings, WebhookSettings, load_smtp, load_webhooks
from engine.metadata.errors import ConfigError, did_you_mean
from engine.metadata.files import KNOWN_TYPES, AttachmentSettings
from engine.metadata.holidays import Holiday, load_holidays
from engine.metadata.snapshots import SnapshotSchedule, load_snapshot_schedule
from engine.metadata.yamlio import YamlDoc

DEFAULT_CURRENCY = "CNY"
DEFAULT_QUERY_TIME_LIMIT = 10.0
DEFAULT_REQUESTS_PER_USER = 8
DEFAULT_TIME_ZONE = "UTC"
DEFAULT_IMPORT_MAX_MB = 200.0


@dataclass(frozen=True)
class SiteSettings:
    currency: str = DEFAULT_CURRENCY
    """The ISO 4217 code of every money field's currency (pages show its symbol)."""
    query_time_limit: float = DEFAULT_QUERY_TIME_LIMIT
    """Seconds each query of a web request may run; a query past it is stopped (503)."""
    requests_per_user: int = DEFAULT_REQUESTS_PER_USER
    """Requests one signed-in user may have running at once; more answer 429."""
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    """How large an uploaded file may be, and which content types are taken."""
    time_zone: str = DEFAULT_TIME_ZONE
    """The IANA time zone of the organisation: where its days begin and end. Pages show
    datetimes and forms read them at their wall time there, TODAY() is its date,
    autonumber periods and the dashboard's week are its days, as are the calendar's."""
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    """Private targets flows' webhooks may call (engine/metadata/delivery.py)."""
    smtp: SmtpSettings | None = None
    """The mail server flows' emails go through; None: emails wait in the outbox."""
    fiscal_year_start: int = 1
    """The month (1-12) the fiscal year starts in: reports' quarter and year buckets and
    period presets follow it (engine/runtime/reports/fiscal.py)."""
    holidays: tuple[Holiday, ...] = ()
    """The organisation's holiday calendar (engine/metadata/holidays.py): flows' schedules
    run on its dates."""
    pipeline_snapshots: SnapshotSchedule | None = None
    """When the worker takes a pipeline snapshot (engine/metadata/snapshots.py); None:
    only on demand."""
    date_order: str = "dmy"
    """How a date typed with the day and month both 12 or less is read: "dmy" (5/12/2026
    is 5 December) or "mdy" (12/5/2026 is 5 December); a year first is always y/m/d."""
    import_max_mb: float = DEFAULT_IMPORT_MAX_MB
    """The largest file an import may read (settings.yaml `imports.max_size_mb`)."""
    changes_keep_days: int | None = None
    """How many days the change log keeps what happened (settings.yaml `changes.keep_days`;
    the worker deletes older rows, and the changes feed answers 410 to a cursor from before
    them); None: kept for ever."""

    @property
    def day_first(self) -> bool:
        return self.date_order != "mdy"

    @property
    def import_max_bytes(self) -> int:
        return int(self.import_max_mb * 1024 * 1024)

    def holiday(self, name: str) -> Holiday | None:
        return next((h for h in self.holidays if h.name == name), None)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@cache
def known_currencies() -> frozenset[str]:
    """The ISO 4217 codes Babel's CLDR data knows (so pages can name and format them)."""
    return frozenset(list_currencies())


@cache
def currencies_in_use() -> frozenset[str]:
    """The codes some country pays in today: the ones a typo is likely to be meant as
    (CLDR also knows retired ones such as YUN, which a hint should not offer)."""
    today = date.today()
    return frozenset(code for territory in get_global("territory_currencies")
                     for code in get_territory_currencies(territory, today, tender=True))


@cache
def known_time_zones() -> frozenset[str]:
    """The IANA time zone names this machine's time zone database knows."""
    return frozenset(available_timezones())


def load_settings(doc: YamlDoc, errors: list[ConfigError]) -> SiteSettings:
    """The settings of a schema-valid settings.yaml; an unknown currency or time zone is an
    error."""
    time_zone = str(doc.data.get("time_zone", DEFAULT_TIME_ZONE))
    if time_zone not in known_time_zones():
        hint = did_you_mean(time_zone, known_time_zones())
        errors.append(doc.error(["time_zone"], f"time_zone: unknown time zone {time_zone!r}; "
                                f"an IANA name such as Asia/Shanghai or UTC{hint}"))
        time_zone = DEFAULT_TIME_ZONE
    limits = SiteSettings(
        query_time_limit=float(doc.data.get("query_time_limit", DEFAULT_QUERY_TIME_LIMIT)),
        requests_per_user=int(doc.data.get("requests_per_user", DEFAULT_REQUESTS_PER_USER)),
        time_zone=time_zone, fiscal_year_start=int(doc.data.get("fiscal_year_start", 1)),
        attachments=_attachments(doc, errors),
        webhooks=load_webhooks(doc, errors), smtp=load_smtp(doc, errors),
        holidays=load_holidays(doc, errors),
        pipeline_snapshots=load_snapshot_schedule(doc),
        date_order=str(doc.data.get("date_order", "dmy")),
        import_max_mb=float((doc.data.get("imports") or {}).get("max_size_mb",
                                                                 DEFAULT_IMPORT_MAX_MB)),
        changes_keep_days=(doc.data.get("changes") or {}).get("keep_days"))
    currency = doc.data.get("currency", DEFAULT_CURRENCY)
    if currency not in known_currencies():
        hint = did_you_mean(currency.upper(), currencies_in_use())
        errors.append(doc.error(["currency"], f"currency: unknown currency code {currency!r}; "
                                f"an ISO 4217 code such as CNY, USD or EUR{hint}"))
        return limits
    return replace(limits, currency=currency)


def _attachments(doc: YamlDoc, errors: list[ConfigError]) -> AttachmentSettings:
    """`attachments:` of a schema-valid settings.yaml; a content type the engine cannot
    recognise by a file's content is an error (it could never be taken)."""
    data = doc.data.get("attachments") or {}
    default = AttachmentSettings()
    allowed = data.get("allowed_types", default.allowed_types)
    for i, ctype in enumerate(allowed):
        if ctype not in KNOWN_TYPES:
            hint = did_you_mean(ctype, set(KNOWN_TYPES))
            errors.append(doc.error(["attachments", "allowed_types", i],
                                    f"attachments.allowed_types: {ctype!r} is not a content "
                                    f"type the engine recognises{hint}"))
    return AttachmentSettings(
        max_size_mb=float(data.get("max_size_mb", default.max_size_mb)),
        allowed_types=tuple(t for t in allowed if t in KNOWN_TYPES))
