"""Browser tests: the real app under uvicorn, driven in headless Chromium by Playwright.

Chromium comes from Debian's `chromium` package (`make test` installs it through
scripts/chromium_ensure.sh); Playwright only drives it (`executable_path`), it never
downloads a browser of its own. Without Chromium the tests skip, except in CI (CI=true),
where they fail. Screenshots go to test-artifacts/screenshots/, which .ci/run prints.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine

from engine.metadata import load_model
from engine.metadata.model import Model
from engine.runtime.db import open_engine
from engine.runtime.schema import apply_plan, build_schema
from engine.runtime.users import Users
from engine.web.app import create_app

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
ADMIN_PASSWORD = "admin-password"
START_TIMEOUT_S = 20


@dataclass(frozen=True)
class LiveServer:
    url: str
    users: Users


def _missing_browser() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (bash scripts/chromium_ensure.sh installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = _missing_browser()
    if problem is not None:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@contextmanager
def served(model: Model, database: Path) -> Iterator[tuple[LiveServer, Engine]]:
    """The app of `model` on a new SQLite file at `database`, served by uvicorn in a thread
    on a free port of 127.0.0.1, and its engine (for a test's own records); user `admin` has
    the password ADMIN_PASSWORD."""
    engine = open_engine(f"sqlite:///{database}")
    apply_plan(engine, model)
    users = Users(engine, build_schema(model))
    users.add("admin", ["admin"], password=ADMIN_PASSWORD, display_name="Admin")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(model, engine), log_level="warning", lifespan="off",
                            ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", users), engine
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)
        sock.close()
        engine.dispose()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The app with the shipped config on a new SQLite file (see `served`)."""
    with served(load_model(REPO / "config"), tmp_path / "crm.db") as (server, _engine):
        yield server


# Playwright acts on an element the moment it shows, and a page shows before its deferred
# htmx script has wired it up: a select changed or a search typed then does nothing, and the
# test waits for an answer that never comes. A person cannot be that quick, so every page of
# the tests stays hidden (Playwright waits for visible elements) until DOMContentLoaded has
# reached the window, after the document's listeners, htmx's among them, have run. Set
# through the style property (CSSOM), which the pages' Content-Security-Policy allows.
READY_GATE = """
(() => {
  const hide = () => {
    if (!document.documentElement) return false;
    document.documentElement.style.visibility = "hidden";
    return true;
  };
  if (!hide()) {
    const watch = new MutationObserver(() => { if (hide()) watch.disconnect(); });
    watch.observe(document, {childList: true});
  }
  window.addEventListener("DOMContentLoaded", () => {
    document.documentElement.style.removeProperty("visibility");
  });
})();
"""


def new_context(browser: Any, base_url: str, **options: Any) -> Any:
    """A browser context (own cookies) on `base_url`: 1280x800 and English unless `options`
    say otherwise, a 10 s default timeout, and READY_GATE on every page."""
    options = {"locale": "en-US", "viewport": {"width": 1280, "height": 800}, **options}
    context = browser.new_context(base_url=base_url, **options)
    context.set_default_timeout(10_000)
    context.add_init_script(script=READY_GATE)
    return context


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser tab (own cookies) on the live server, English by default."""
    context = new_context(browser, live_server.url)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs  # a script dialog is an XSS that ran; tests assert there are none
    try:
        yield tab
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

