"""Helpers for page tests: read the CSRF token of a page, sign in through the form."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
from starlette.testclient import TestClient

T = TypeVar("T")

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry (every form of a page carries the same one)."""
    found = _TOKEN.search(html)
    assert found, "the page has no form with a csrf_token field"
    return found.group(1)


def sign_in(client: httpx.Client, name: str = "admin", password: str = "admin-password",
            next_url: str = "") -> httpx.Response:
    """Open /login, then send its form; returns the answer to the POST (not followed)."""
    page = client.get("/login")  # signed in already, this follows on to the dashboard
    return client.post("/login", data={"username": name, "password": password,
                                       "next": next_url, "csrf_token": csrf_of(page.text)},
                       follow_redirects=False)


def page_token(client: TestClient, path: str = "/") -> str:
    return csrf_of(client.get(path).text)


def run_in_own_loop(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main()` to the end in a new event loop on a thread of its own: the browser
    tests' Playwright keeps an event loop running in the main thread for the session, so
    asyncio.run there would be refused."""
    async def wrapped() -> T:
        return await main()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wrapped()).result()
