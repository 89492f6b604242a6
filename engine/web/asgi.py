"""ASGI entry point for uvicorn workers: `uvicorn engine.web.asgi:app`.

Reads CRM_CONFIG and CRM_DATABASE_URL (`crm serve` sets both for its workers) and the web
settings (CRM_SECRET_KEY and others, docs/ui.md).
"""

from __future__ import annotations

from starlette.applications import Starlette

from engine.metadata import load_model
from engine.runtime.db import open_engine
from engine.settings import Settings, SettingsError, WebSettings
from engine.web.app import create_app


def build() -> Starlette:
    settings = Settings.from_env()
    try:
        web = WebSettings.from_env()
    except SettingsError as exc:  # a bad setting is the operator's to fix: say which
        raise SystemExit(f"error: {exc}") from None
    return create_app(load_model(settings.config_dir), open_engine(settings.database_url), web)
