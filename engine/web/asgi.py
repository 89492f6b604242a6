"""ASGI entry point for uvicorn workers: `uvicorn engine.web.asgi:app`.

Reads CRM_CONFIG and CRM_DATABASE_URL (`crm serve` sets both for its workers) and the web
settings (CRM_SECRET_KEY and others, docs/ui.md).
"""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from engine.metadata import load_model
from engine.runtime.db import open_engine
from engine.settings import Settings, SettingsError, WebSettings
from engine.web.app import create_app


def freeze_startup() -> None:
    """Move everything alive now (the model, compiled statements and templates: what lives
    as long as the process) out of the garbage collector's generations, so its collections,
    which requests trigger, no longer rescan it. Once, after the app is built."""
    gc.collect()
    gc.freeze()


def build() -> Starlette:
    settings = Settings.from_env()
    try:
        web = WebSettings.from_env()
    except SettingsError as exc:  # a bad setting is the operator's to fix: say which
        raise SystemExit(f"error: {exc}") from None
    app = create_app(load_model(settings.config_dir), open_engine(settings.database_url), web)
    freeze_startup()
    return app
