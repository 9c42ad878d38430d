"""The API documents' pages work without internet: Swagger UI and ReDoc, served by the
real `tresor serve`, list the operations in Chromium while every request to anywhere but
the server itself is aborted, and nothing is even attempted elsewhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

from tests.support.browser import chromium_page, require_browser, serve


def _operations(base: str) -> int:
    with urlopen(f"{base}/schema/openapi.json", timeout=10) as response:
        document = json.load(response)
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return sum(1 for item in document["paths"].values() for m in item if m in methods)


def _offline(page: Any, base: str) -> tuple[list[str], list[str]]:
    """Cut the page off from everything but `base`; returns (aborted URLs, console errors)."""
    own = urlsplit(base).netloc
    aborted: list[str] = []
    problems: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if urlsplit(url).netloc == own or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            aborted.append(url)
            r.abort("internetdisconnected")

    page.context.route("**/*", route)
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and "favicon" not in m.text else None
        ),
    )
    return aborted, problems


def test_swagger_ui_and_redoc_list_the_operations_offline(tmp_path: Path):
    """With the network cut off, /schema/swagger shows one block per operation and
    /schema/redoc one section per operation; neither page sends a request to another host,
    and the Content-Security-Policy blocks nothing but ReDoc's footer logo."""
    require_browser()
    with serve(tmp_path) as tresor:
        expected = _operations(tresor.base)
        assert expected > 20
        with chromium_page(timeout_ms=30_000) as page:
            aborted, problems = _offline(page, tresor.base)
            page.goto(f"{tresor.base}/schema/swagger")
            page.wait_for_selector(".opblock")
            assert page.locator(".opblock").count() == expected
            assert page.get_by_text("/v1/lookup", exact=True).first.is_visible()

            page.goto(f"{tresor.base}/schema/redoc")
            page.wait_for_selector("[data-section-id^='operation/']")
            assert page.locator("[data-section-id^='operation/']").count() == expected
            assert aborted == []
            # ReDoc's "API docs by Redocly" footer names a logo on its CDN; the page's CSP
            # stops it before any request (so `aborted` stays empty). Nothing else may.
            blocked = [p for p in problems if "Content Security Policy" in p]
            assert [p for p in blocked if "cdn.redoc.ly/redoc/logo-mini.svg" not in p] == []
