"""Where flows may deliver: the `webhooks` and `smtp` settings of config/settings.yaml.

```yaml
# config/settings.yaml
webhooks:
  allow: [127.0.0.1, 10.20.0.0/16, erp.internal]   # private targets let through
smtp:
  host: smtp.example.com
  port: 587
  from: crm@example.com
  starttls: true
  username: crm
  password_env: CRM_SMTP_PASSWORD                 # the password is read from this variable
```

>>> allow_entry("10.20.0.0/16"), allow_entry("erp.internal"), allow_entry("no way")
('10.20.0.0/16', 'erp.internal', None)
>>> SmtpSettings(host="mail", sender="crm@example.com").port
25
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from engine.metadata.errors import ConfigError
from engine.metadata.yamlio import YamlDoc

_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


@dataclass(frozen=True)
class WebhookSettings:
    allow: tuple[str, ...] = ()
    """Targets let through although they are private, loopback, link-local or otherwise
    not public: IP addresses, networks (`10.20.0.0/16`) or host names (matched as written
    in a webhook's URL, case aside). Public addresses need no entry."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    sender: str
    """The From address (`from:` in settings.yaml)."""
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    """The environment variable holding the password; the password is never in config."""


def allow_entry(text: str) -> str | None:
    """`text` as an allow-list entry (an address or network, normalised; or a host name in
    lower case), None when it is neither."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        pass
    return text.strip().lower().rstrip(".") if _HOST.match(text.strip()) else None


def load_webhooks(doc: YamlDoc, errors: list[ConfigError]) -> WebhookSettings:
    """`webhooks:` of a schema-valid settings.yaml; an entry that is neither an address, a
    network nor a host name is an error at its place."""
    data = doc.data.get("webhooks") or {}
    allowed: list[str] = []
    for i, text in enumerate(data.get("allow", [])):
        entry = allow_entry(str(text))
        if entry is None:
            errors.append(doc.error(["webhooks", "allow", i],
                                    f"webhooks.allow: {text!r} is not an IP address, a "
                                    f"network such as 10.0.0.0/8, or a host name"))
        else:
            allowed.append(entry)
    return WebhookSettings(tuple(allowed))


def load_smtp(doc: YamlDoc, errors: list[ConfigError]) -> SmtpSettings | None:
    """`smtp:` of a schema-valid settings.yaml, None when absent (email is then not sent:
    it waits in the outbox)."""
    data = doc.data.get("smtp")
    if not data:
        return None
    host = str(data["host"])
    if allow_entry(host) is None:
        errors.append(doc.error(["smtp", "host"], f"smtp.host: {host!r} is not a host name "
                                "or an IP address"))
    return SmtpSettings(host=host, sender=str(data["from"]), port=int(data.get("port", 25)),
                        starttls=bool(data.get("starttls", False)),
                        username=data.get("username"), password_env=data.get("password_env"))
