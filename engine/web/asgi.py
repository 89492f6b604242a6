"""ASGI entry point for uvicorn workers: `uvicorn engine.web.asgi:app`.

Reads CRM_CONFIG and CRM_DATABASE_URL; `crm serve` sets both for its workers.
"""

from __future__ import annotations

from starlette.applications import Starlette

from engine.metadata import load_model
from engine.runtime.db import open_engine
from engine.settings import Settings
from engine.web.app import create_app


def build() -> Starlette:
    settings = Settings.from_env()
    return create_app(load_model(settings.config_dir), open_engine(settings.database_url))
