"""A marketer in a real browser (Playwright, Debian's Chromium) against `tresor serve`:
signs in with a `marketing` key, plans two SMS offers for the same customers, books the
one served first, sees the conflict (the other is blocked by the basket for all of them),
reads the calendar and the reports with a what-if replay, with screenshots; no count on
any of those pages is a number below 10, a forecast's count that would give a masked one
away by subtraction says "hidden", and every DPO page is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.browser import chromium_page, require_browser
from tests.support.server import Served, serve

K = 10
CUSTOMERS = 12
EVIDENCE = {
    "touchpoint": "shop.counter", "method": "signature", "notice_version": "2026-10-sms",
    "language": "de", "explicit": True,
}  # fmt: skip


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, TRESOR_RETENTION_INTERVAL="0") as server:
        yield server


def _customers(served: Served) -> None:
    """12 customers with a consent to SMS offers, written by the CRM."""
    writer = served.client("crm", "writer")
    for i in range(CUSTOMERS):
        status, body = served.call(
            "POST", "/v1/subjects", writer, {"email": f"kunde{i}@example.org", "name": f"K {i}"}
        )
        assert status == 201, body
        status, body = served.call(
            "POST", f"/v1/subjects/{body['subject_id']}/consents", writer,
            {"purpose": "offers.sms", "evidence": EVIDENCE},
        )  # fmt: skip
        assert status == 201, body


def _window() -> tuple[str, str]:
    """A send window inside the current basket month (UTC), as datetime-local values."""
    now = datetime.now(UTC)
    start = now + timedelta(minutes=5)
    month_end = (now.replace(day=28) + timedelta(days=4)).replace(day=1, hour=0, minute=0)
    end = min(start + timedelta(days=1), month_end - timedelta(minutes=1))
    return start.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")


def _counts_ok(texts: list[str]) -> list[str]:
    """The shown counts that are numbers below k (must be none)."""
    return [t for t in texts if t.strip().isdigit() and int(t.strip()) < K]


def _plan(page, name: str, rank: int) -> None:
    start, end = _window()
    page.locator("#plan-name").fill(name)
    page.locator("#plan-brand").select_option("tresor")
    page.locator("#plan-purpose").select_option("offers.sms")
    page.locator("#plan-rank").fill(str(rank))
    page.locator("#plan-start").fill(start)
    page.locator("#plan-end").fill(end)
    page.get_by_role("button", name="Plan as a draft").click()
    page.wait_for_url(re.compile(r".*done=planned.*"))


def test_a_marketer_plans_two_campaigns_sees_the_conflict_and_reads_the_reports(served, tmp_path):
    """The walk of issue 21: plan, book, conflict, calendar, reports, the touchpoint
    report; screenshots taken and every count on them is >= 10 or "< 10"."""
    require_browser()
    _customers(served)
    key = served.client("planer", "marketing")
    shots = []
    with chromium_page(locale="en-GB", timeout_ms=30_000) as page:
        page.goto(served.base + "/dpo/signin?lang=en")
        page.get_by_label("API key (dpo)").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/dpo/campaigns.*"))
        nav = page.get_by_role("navigation", name=re.compile("Console", re.I))
        assert nav.get_by_role("link").all_inner_texts() == ["Campaigns", "Calendar", "Reports"]

        _plan(page, "Winter sale", 1)
        _plan(page, "Socks", 2)
        page.locator("tr.campaign-row", has_text="Winter sale").get_by_role(
            "button", name="Book"
        ).click()
        page.wait_for_url(re.compile(r".*done=booked.*"))
        socks = page.locator("tr.campaign-row", has_text="Socks").locator("td").all_inner_texts()
        # audience, reachable, blocked by basket: the conflict, for all 12 customers; the 12
        # blocked are "hidden", since beside the other reasons' "< 10" they would say 0.
        assert socks[3:6] == [str(CUSTOMERS), f"< {K}", "hidden"], socks
        winter = page.locator("tr.campaign-row", has_text="Winter sale").locator("td")
        assert winter.all_inner_texts()[3:5] == [str(CUSTOMERS), "hidden"]
        shots.append(tmp_path / "campaigns.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        plan_counts = page.locator("#campaign-plan td").all_inner_texts()

        page.get_by_role("link", name="Calendar").click()
        page.wait_for_url(re.compile(r".*/dpo/calendar.*"))
        assert page.locator("tr.calendar-row").count() >= 2
        shots.append(tmp_path / "calendar.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        calendar_counts = page.locator(".report-count").all_inner_texts()
        assert "hidden" in calendar_counts, calendar_counts

        page.get_by_role("link", name="Reports").click()
        page.wait_for_url(re.compile(r".*/dpo/reports.*"))
        page.locator("#points_commercial").fill("8")
        page.locator("#basket_points").fill("20")
        page.locator("#whatif-run").click()
        page.wait_for_url(re.compile(r".*whatif=1.*"))
        assert page.locator("#whatif").is_visible()
        assert page.locator("#basket-use").is_visible() and page.locator("#optouts").is_visible()
        shots.append(tmp_path / "reports.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        report_counts = page.locator(".report-count").all_inner_texts()

        page.locator("#touchpoint-report-link").click()
        page.wait_for_url(re.compile(r".*/dpo/reports/touchpoints.*"))
        assert page.locator("table.touchpoint-report[data-kind=indirect]").is_visible()
        shots.append(tmp_path / "touchpoints.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        report_counts += page.locator(".report-count").all_inner_texts()

        for path in ("/dpo/audit", "/dpo/subjects", "/dpo/requests", "/dpo/recipients"):
            response = page.goto(served.base + path + "?lang=en")
            assert response is not None and response.status == 403, path

    shown = [t for t in plan_counts if re.fullmatch(r"\d+|< \d+", t.strip())]
    shown += calendar_counts + report_counts
    assert report_counts and calendar_counts and f"< {K}" in shown
    assert _counts_ok(shown) == [], shown
    for shot in shots:
        assert shot.stat().st_size > 10_000, shot
