"""Where the engine finds its configuration and database (flags, then environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.runtime.db import DEFAULT_URL


@dataclass(frozen=True)
class Settings:
    config_dir: str
    database_url: str

    @classmethod
    def from_env(cls, config_dir: str | None = None, database_url: str | None = None) -> Settings:
        return cls(
            config_dir=config_dir or os.environ.get("CRM_CONFIG", "config"),
            database_url=database_url or os.environ.get("CRM_DATABASE_URL", DEFAULT_URL),
        )
