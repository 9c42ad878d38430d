"""Signing in to the DPO console over HTTP and posting its CSRF-protected forms."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    m = _CSRF.search(page.text)
    assert m, "no CSRF field on the page"
    return html.unescape(m.group(1))


async def sign_in(http: httpx.AsyncClient, key: str, *, lang: str = "en") -> None:
    page = await http.get(f"/dpo/signin?lang={lang}")
    r = await http.post(
        f"/dpo/signin?lang={lang}", data={"api_key": key, "_csrf_token": csrf_of(page)}
    )
    assert r.status_code == 303, r.text


async def post_form(
    http: httpx.AsyncClient, page_url: str, action: str, data: dict[str, Any]
) -> httpx.Response:
    """Open `page_url` for its CSRF token, then post `data` to `action` as the browser would."""
    page = await http.get(page_url)
    assert page.status_code == 200, page.text
    return await http.post(action, data={**data, "_csrf_token": csrf_of(page)})
