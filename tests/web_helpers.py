"""Helpers for page tests: read the CSRF token of a page, sign in through the form."""

from __future__ import annotations

import re

import httpx
from starlette.testclient import TestClient

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
